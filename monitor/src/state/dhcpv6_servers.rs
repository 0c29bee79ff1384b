//! DHCPv6 servers, keyed by segment and server DUID: a server behind a relay answers through
//! the relay's MAC, so the MAC is evidence, not identity. Bounded (least recently seen
//! evicted).
use std::{net::Ipv6Addr, num::NonZeroUsize};

use serde::Serialize;

use crate::{
    decode::{Dhcpv6Message, Duid},
    model::{fast_lru, FastLru, Mac, Nanos, Segment},
};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Server6Key {
    #[serde(flatten)]
    pub seg: Segment,
    pub duid: Duid,
}

/// Addresses and MACs kept per server.
const RECENT: usize = 8;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Server6 {
    pub first_seen: Nanos,
    pub last_seen: Nanos,
    pub advertises: u64,
    pub replies: u64,
    /// MACs its answers came from (the server's own, or relays').
    pub macs: Vec<Mac>,
    /// Source addresses of its answers.
    pub source_ips: Vec<Ipv6Addr>,
    /// Answers that came through a relay.
    pub relayed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preference: Option<u8>,
    /// Addresses and prefixes (CIDR) it handed out recently.
    pub recent_addresses: Vec<Ipv6Addr>,
    pub recent_prefixes: Vec<String>,
}

fn remember<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if let Some(i) = v.iter().position(|y| *y == x) {
        v.remove(i);
    } else if v.len() >= RECENT {
        v.remove(0);
    }
    v.push(x);
}

pub struct Dhcpv6Servers {
    map: FastLru<Server6Key, Server6>,
    evictions: u64,
}

impl Dhcpv6Servers {
    pub fn new(capacity: usize) -> Self {
        Dhcpv6Servers {
            map: fast_lru(NonZeroUsize::new(capacity.max(1)).expect("non-zero")),
            evictions: 0,
        }
    }

    /// Records a server's answer (ADVERTISE or REPLY, possibly relayed); returns its key.
    pub fn observe(
        &mut self,
        seg: Segment,
        src_mac: Mac,
        src_ip: Ipv6Addr,
        msg: &Dhcpv6Message,
        now: Nanos,
    ) -> Option<Server6Key> {
        let duid = msg.server_duid.clone().filter(|_| msg.is_server_reply())?;
        let key = Server6Key { seg, duid };
        if !self.map.contains(&key) {
            let s = Server6 {
                first_seen: now,
                ..Server6::default()
            };
            if let Some((k, _)) = self.map.push(key.clone(), s) {
                if k != key {
                    self.evictions += 1;
                }
            }
        }
        let s = self.map.get_mut(&key).expect("just inserted");
        s.last_seen = now;
        if msg.msg_type == crate::decode::dhcpv6::ADVERTISE {
            s.advertises += 1;
        } else {
            s.replies += 1;
        }
        if !msg.relays.is_empty() {
            s.relayed += 1;
        }
        remember(&mut s.macs, src_mac);
        remember(&mut s.source_ips, src_ip);
        if msg.preference.is_some() {
            s.preference = msg.preference;
        }
        for a in &msg.addresses {
            remember(&mut s.recent_addresses, a.address);
        }
        for p in &msg.prefixes {
            remember(&mut s.recent_prefixes, format!("{}/{}", p.prefix, p.length));
        }
        Some(key)
    }

    pub fn restore(&mut self, key: Server6Key, s: Server6) {
        self.map.put(key, s);
    }

    pub fn get(&self, key: &Server6Key) -> Option<&Server6> {
        self.map.peek(key)
    }

    /// Servers on `seg` that answered since `since`.
    pub fn active_on(&self, seg: Segment, since: Nanos) -> Vec<(&Server6Key, &Server6)> {
        let mut v: Vec<_> = self
            .map
            .iter()
            .filter(|(k, s)| k.seg == seg && s.last_seen >= since)
            .collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Server6Key, &Server6)> {
        self.map.iter()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn evictions(&self) -> u64 {
        self.evictions
    }
}
