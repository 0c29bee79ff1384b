//! Every DHCP server seen, per segment, from its OFFER, ACK and NAK replies: identity (option
//! 54, else the IP source) and MAC, counts, and the range of addresses it handed out. Bounded.
use std::{net::Ipv4Addr, num::NonZeroUsize};

use monitor_common::DhcpMsgType;
use serde::Serialize;

use crate::model::{Mac, Nanos, Segment};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ServerKey {
    #[serde(flatten)]
    pub seg: Segment,
    /// Option 54, or the IP source when the reply has none.
    pub server_id: Ipv4Addr,
    pub mac: Mac,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Server {
    pub first_seen: Nanos,
    pub last_seen: Nanos,
    pub offers: u64,
    pub acks: u64,
    pub naks: u64,
    /// Lowest and highest address offered or acknowledged.
    pub lowest_offered: Option<Ipv4Addr>,
    pub highest_offered: Option<Ipv4Addr>,
    /// Addresses handed out, most recent last (at most 8 kept).
    pub recent_offers: Vec<Ipv4Addr>,
}

impl Server {
    /// Whether this server's handed-out range intersects `other`'s.
    pub fn range_overlaps(&self, other: &Server) -> bool {
        match (
            self.lowest_offered,
            self.highest_offered,
            other.lowest_offered,
            other.highest_offered,
        ) {
            (Some(a0), Some(a1), Some(b0), Some(b1)) => a0 <= b1 && b0 <= a1,
            _ => false,
        }
    }
}

pub struct DhcpServers {
    servers: crate::model::FastLru<ServerKey, Server>,
    evictions: u64,
}

impl DhcpServers {
    pub fn new(capacity: usize) -> Self {
        DhcpServers {
            servers: crate::model::fast_lru(NonZeroUsize::new(capacity.max(1)).expect("non-zero")),
            evictions: 0,
        }
    }

    /// Records a server reply; returns true when the server is new.
    pub fn observe(
        &mut self,
        key: ServerKey,
        msg_type: u8,
        offered: Option<Ipv4Addr>,
        now: Nanos,
    ) -> bool {
        let mut new = false;
        if !self.servers.contains(&key) {
            new = true;
            let s = Server {
                first_seen: now,
                last_seen: now,
                offers: 0,
                acks: 0,
                naks: 0,
                lowest_offered: None,
                highest_offered: None,
                recent_offers: Vec::new(),
            };
            if let Some((k, _)) = self.servers.push(key, s) {
                if k != key {
                    self.evictions += 1;
                }
            }
        }
        let s = self.servers.get_mut(&key).expect("just inserted");
        s.last_seen = s.last_seen.max(now);
        match DhcpMsgType::from_code(msg_type) {
            Some(DhcpMsgType::Offer) => s.offers += 1,
            Some(DhcpMsgType::Ack) => s.acks += 1,
            Some(DhcpMsgType::Nak) => s.naks += 1,
            _ => {}
        }
        if let Some(ip) = offered.filter(|ip| !ip.is_unspecified()) {
            s.lowest_offered = Some(s.lowest_offered.map_or(ip, |l| l.min(ip)));
            s.highest_offered = Some(s.highest_offered.map_or(ip, |h| h.max(ip)));
            if !s.recent_offers.contains(&ip) {
                if s.recent_offers.len() == 8 {
                    s.recent_offers.remove(0);
                }
                s.recent_offers.push(ip);
            }
        }
        new
    }

    /// Puts back a server read from the store.
    pub fn restore(&mut self, key: ServerKey, s: Server) {
        self.servers.put(key, s);
    }

    pub fn get(&self, key: &ServerKey) -> Option<&Server> {
        self.servers.peek(key)
    }

    /// Servers of one segment seen since `since`.
    pub fn active_on(&self, seg: Segment, since: Nanos) -> Vec<(ServerKey, &Server)> {
        let mut v: Vec<_> = self
            .servers
            .iter()
            .filter(|(k, s)| k.seg == seg && s.last_seen >= since)
            .map(|(k, s)| (*k, s))
            .collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ServerKey, &Server)> {
        self.servers.iter()
    }

    pub fn len(&self) -> usize {
        self.servers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    pub fn evictions(&self) -> u64 {
        self.evictions
    }
}
