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
    /// Routers heard again at least a second after their first advertisement.
    map: FastLru<RouterKey, Router>,
    /// Routers heard once so far: a flood of one-shot routers (THC's `flood_router26`)
    /// churns this tier only, and the established routers, which trust is judged by, survive.
    probation: FastLru<RouterKey, Router>,
    evictions: u64,
}

/// A router heard again this long after its first advertisement is established.
const PROMOTE_AFTER: Nanos = crate::model::SECOND;

impl Routers {
    pub fn new(capacity: usize) -> Self {
        let cap = capacity.max(1);
        let lru = |n: usize| fast_lru(NonZeroUsize::new(n.max(1)).expect("non-zero"));
        Routers {
            map: lru(cap),
            probation: lru(cap / 4),
            evictions: 0,
        }
    }

    /// Records an advertisement; true when the router is new.
    pub fn observe(&mut self, key: RouterKey, ra: &RouterAdvert, now: Nanos) -> bool {
        let new = !self.map.contains(&key) && !self.probation.contains(&key);
        if new {
            let r = Router {
                first_seen: now,
                last_seen: now,
                adverts: 0,
                last: None,
                retired_at: None,
            };
            if let Some((k, _)) = self.probation.push(key, r) {
                if k != key {
                    self.evictions += 1;
                }
            }
        } else if self
            .probation
            .peek(&key)
            .is_some_and(|r| now.saturating_sub(r.first_seen) >= PROMOTE_AFTER)
        {
            let r = self.probation.pop(&key).expect("present");
            if let Some((k, _)) = self.map.push(key, r) {
                if k != key {
                    self.evictions += 1;
                }
            }
        }
        let r = match self.map.get_mut(&key) {
            Some(r) => r,
            None => self.probation.get_mut(&key).expect("present"),
        };
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

    /// Puts back a router read from the store (established).
    pub fn restore(&mut self, key: RouterKey, r: Router) {
        self.map.put(key, r);
    }

    pub fn get(&self, key: &RouterKey) -> Option<&Router> {
        self.map.peek(key).or_else(|| self.probation.peek(key))
    }

    /// The routers of one segment.
    pub fn on(&self, seg: Segment) -> impl Iterator<Item = (&RouterKey, &Router)> {
        self.iter().filter(move |(k, _)| k.seg == seg)
    }

    /// Every router: established ones first, each tier most recently seen first.
    pub fn iter(&self) -> impl Iterator<Item = (&RouterKey, &Router)> {
        self.map.iter().chain(self.probation.iter())
    }

    pub fn len(&self) -> usize {
        self.map.len() + self.probation.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn evictions(&self) -> u64 {
        self.evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode::ra::Preference, model::SECOND};

    fn ra(lifetime: u16) -> RouterAdvert {
        RouterAdvert {
            hop_limit: 64,
            managed: false,
            other: false,
            home_agent: false,
            preference: Preference::Medium,
            router_lifetime_secs: lifetime,
            reachable_ms: 0,
            retrans_ms: 0,
            source_lladdr: None,
            mtu: None,
            prefixes: vec![],
            routes: vec![],
            rdnss: vec![],
            truncated: false,
        }
    }

    fn key(n: u32) -> RouterKey {
        let b = n.to_be_bytes();
        RouterKey {
            seg: Segment::from_vids(
                crate::model::Iface::named("eth0"),
                monitor_common::NO_VLAN,
                monitor_common::NO_VLAN,
            ),
            ip: std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, (n >> 16) as u16, n as u16),
            mac: Mac([2, 0, b[0], b[1], b[2], b[3]]),
        }
    }

    #[test]
    fn a_router_flood_churns_probation_and_the_real_router_survives() {
        let mut r = Routers::new(64);
        assert!(r.observe(key(0), &ra(1800), SECOND));
        assert!(
            !r.observe(key(0), &ra(1800), 5 * SECOND),
            "heard again: established"
        );
        for n in 1..=10_000 {
            r.observe(key(n), &ra(1800), 6 * SECOND);
        }
        let real = r.get(&key(0)).expect("the real router survived the flood");
        assert_eq!(
            real.first_seen, SECOND,
            "and keeps what makes it established"
        );
        assert!(r.len() <= 64 + 16);
        assert!(r.evictions() >= 10_000 - 16);
        // Retiring from its own MAC keeps its last real advertisement.
        r.observe(key(0), &ra(0), 7 * SECOND);
        let real = r.get(&key(0)).unwrap();
        assert_eq!(real.retired_at, Some(7 * SECOND));
        assert_eq!(real.last.as_ref().unwrap().router_lifetime_secs, 1800);
    }
}
