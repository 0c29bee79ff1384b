//! IPv6 routers: every source of router advertisements per segment (link-local address and
//! MAC), when it was first and last seen, and its latest advertisement. Bounded (least
//! recently seen evicted); persisted, so "established" survives a restart.
use std::{net::Ipv6Addr, num::NonZeroUsize};

use serde::Serialize;

use crate::{
    decode::RouterAdvert,
    model::{fast_lru, FastLru, Mac, Nanos, Segment},
};

/// A router: its segment, source address and MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RouterKey {
    #[serde(flatten)]
    pub seg: Segment,
    pub ip: Ipv6Addr,
    pub mac: Mac,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Router {
    pub first_seen: Nanos,
    pub last_seen: Nanos,
    pub adverts: u64,
    /// The last advertisement with a non-zero router lifetime, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<RouterAdvert>,
    /// When it last advertised router lifetime 0 (retiring, or a spoof of it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<Nanos>,
}

impl Router {
    /// The prefixes of its last advertisement, in CIDR form.
    pub fn prefixes(&self) -> Vec<String> {
        self.last
            .as_ref()
            .map(|ra| ra.prefixes.iter().map(|p| p.cidr()).collect())
            .unwrap_or_default()
    }
}

pub struct Routers {
    map: FastLru<RouterKey, Router>,
    evictions: u64,
}

impl Routers {
    pub fn new(capacity: usize) -> Self {
        Routers {
            map: fast_lru(NonZeroUsize::new(capacity.max(1)).expect("non-zero")),
            evictions: 0,
        }
    }

    /// Records an advertisement; true when the router is new.
    pub fn observe(&mut self, key: RouterKey, ra: &RouterAdvert, now: Nanos) -> bool {
        let new = !self.map.contains(&key);
        if new {
            let r = Router {
                first_seen: now,
                last_seen: now,
                adverts: 0,
                last: None,
                retired_at: None,
            };
            if let Some((k, _)) = self.map.push(key, r) {
                if k != key {
                    self.evictions += 1;
                }
            }
        }
        let r = self.map.get_mut(&key).expect("just inserted");
        r.last_seen = now;
        r.adverts += 1;
        if ra.router_lifetime_secs == 0 {
            r.retired_at = Some(now);
            // A retiring router's prefixes still say what it is: keep them unless it never
            // advertised anything else.
            if r.last.is_none() {
                r.last = Some(ra.clone());
            }
        } else {
            r.retired_at = None;
            r.last = Some(ra.clone());
        }
        new
    }

    pub fn restore(&mut self, key: RouterKey, r: Router) {
        self.map.put(key, r);
    }

    pub fn get(&self, key: &RouterKey) -> Option<&Router> {
        self.map.peek(key)
    }

    /// The routers of one segment.
    pub fn on(&self, seg: Segment) -> impl Iterator<Item = (&RouterKey, &Router)> {
        self.map.iter().filter(move |(k, _)| k.seg == seg)
    }

    /// Every router, most recently seen first.
    pub fn iter(&self) -> impl Iterator<Item = (&RouterKey, &Router)> {
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
