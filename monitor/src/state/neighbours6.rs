//! IPv6 neighbours: per station (segment and MAC) the IPv6 addresses it holds, each with how
//! it was learnt and what kind of address it is; and per address the station holding it.
//! Bounded twice: stations (least recently seen evicted) and addresses per station (the
//! least recently seen of that station's addresses goes first, as privacy addresses rotate).
//! A station seen once waits on probation (an eighth of the capacity) until it is seen again a
//! second later: a flood of one-shot MACs (THC's `flood_advertise6`) churns probation only,
//! and the established stations survive it.
use std::{net::Ipv6Addr, num::NonZeroUsize};

use serde::Serialize;

use crate::model::{fast_lru, FastLru, FastMap, Mac, Nanos, Segment};

/// How an address was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Learnt {
    /// The source of a neighbour solicitation.
    Ns,
    /// The target of a neighbour advertisement.
    Na,
    /// A DHCPv6 REPLY to the station.
    Dhcpv6,
}

impl Learnt {
    pub fn name(self) -> &'static str {
        match self {
            Learnt::Ns => "ns",
            Learnt::Na => "na",
            Learnt::Dhcpv6 => "dhcpv6",
        }
    }

    pub fn parse(s: &str) -> Option<Learnt> {
        [Learnt::Ns, Learnt::Na, Learnt::Dhcpv6]
            .into_iter()
            .find(|l| l.name() == s)
    }
}

/// What kind of address it is, from its form and how it was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddrKind {
    /// fe80::/10.
    LinkLocal,
    /// Global or unique-local with the interface identifier derived from the MAC (EUI-64):
    /// classic SLAAC.
    Eui64,
    /// Global or unique-local with another identifier: a privacy (RFC 4941) or stable
    /// opaque (RFC 7217) SLAAC address, or a static one.
    Privacy,
    /// Handed out by a DHCPv6 server.
    Dhcpv6,
}

impl AddrKind {
    pub fn name(self) -> &'static str {
        match self {
            AddrKind::LinkLocal => "link_local",
            AddrKind::Eui64 => "eui64",
            AddrKind::Privacy => "privacy",
            AddrKind::Dhcpv6 => "dhcpv6",
        }
    }

    /// The kind of `ip` held by `mac`.
    pub fn of(ip: Ipv6Addr, mac: Mac, learnt: Learnt) -> AddrKind {
        if ip.segments()[0] & 0xffc0 == 0xfe80 {
            AddrKind::LinkLocal
        } else if learnt == Learnt::Dhcpv6 {
            AddrKind::Dhcpv6
        } else if ip.octets()[8..] == eui64(mac) {
            AddrKind::Eui64
        } else {
            AddrKind::Privacy
        }
    }
}

/// The modified EUI-64 interface identifier of a MAC (RFC 4291 appendix A).
pub fn eui64(mac: Mac) -> [u8; 8] {
    let m = mac.0;
    [m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]
}

/// One address of a station.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Addr6 {
    pub ip: Ipv6Addr,
    pub kind: AddrKind,
    /// How it was learnt last.
    pub learnt: Learnt,
    pub first_seen: Nanos,
    pub last_seen: Nanos,
}

/// A station's addresses, most recently seen last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Station6 {
    pub first_seen: Nanos,
    pub addrs: Vec<Addr6>,
}

/// What an observation did to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change6 {
    New,
    Refreshed,
    /// The address was held by `old_mac`.
    Moved {
        old_mac: Mac,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Neighbours6Config {
    /// Stations (segment and MAC) kept at most.
    pub capacity: usize,
    /// Addresses kept per station at most.
    pub max_addrs_per_station: usize,
}

impl Default for Neighbours6Config {
    fn default() -> Self {
        Neighbours6Config {
            capacity: 65_536,
            max_addrs_per_station: 16,
        }
    }
}

pub struct Neighbours6 {
    /// Stations seen again at least [`PROMOTE_AFTER`] after their first sighting.
    stations: FastLru<(Segment, Mac), Station6>,
    /// Stations seen once so far: a flood of one-shot MACs churns this tier only, and the
    /// established stations survive it.
    probation: FastLru<(Segment, Mac), Station6>,
    holders: FastMap<(Segment, Ipv6Addr), Mac>,
    per_station: usize,
    evictions: u64,
}

/// A station seen again this long after its first sighting is established.
pub const PROMOTE_AFTER: Nanos = crate::model::SECOND;

impl Neighbours6 {
    pub fn new(cfg: &Neighbours6Config) -> Self {
        let cap = cfg.capacity.max(2);
        let probation = (cap / 8).max(1);
        let lru = |n: usize| fast_lru(NonZeroUsize::new(n).expect("non-zero"));
        Neighbours6 {
            stations: lru(cap - probation),
            probation: lru(probation),
            holders: FastMap::default(),
            per_station: cfg.max_addrs_per_station.max(1),
            evictions: 0,
        }
    }

    fn peek_mut(&mut self, key: &(Segment, Mac)) -> Option<&mut Station6> {
        if self.stations.contains(key) {
            self.stations.peek_mut(key)
        } else {
            self.probation.peek_mut(key)
        }
    }

    /// Forgets an evicted station's addresses.
    fn evicted(&mut self, (s, m): (Segment, Mac), gone: Station6) {
        self.evictions += 1;
        for a in gone.addrs {
            if self.holders.get(&(s, a.ip)) == Some(&m) {
                self.holders.remove(&(s, a.ip));
            }
        }
    }

    /// The station's entry, in its tier: promoted when seen again after [`PROMOTE_AFTER`],
    /// created on probation when new. `established` puts a new one straight in the main tier
    /// (a station read back from the store).
    fn entry(&mut self, key: (Segment, Mac), now: Nanos, established: bool) -> &mut Station6 {
        if self.stations.contains(&key) {
            return self.stations.get_mut(&key).expect("present");
        }
        let promote = match self.probation.peek(&key) {
            Some(st) => established || now.saturating_sub(st.first_seen) >= PROMOTE_AFTER,
            None => established,
        };
        if promote {
            let st = self.probation.pop(&key).unwrap_or(Station6 {
                first_seen: now,
                ..Station6::default()
            });
            if let Some((k, gone)) = self.stations.push(key, st) {
                if k != key {
                    self.evicted(k, gone);
                }
            }
            return self.stations.get_mut(&key).expect("just inserted");
        }
        if !self.probation.contains(&key) {
            let st = Station6 {
                first_seen: now,
                ..Station6::default()
            };
            if let Some((k, gone)) = self.probation.push(key, st) {
                if k != key {
                    self.evicted(k, gone);
                }
            }
        }
        self.probation.get_mut(&key).expect("just inserted")
    }

    /// `mac` holds `ip` on `seg` now.
    pub fn observe(
        &mut self,
        seg: Segment,
        ip: Ipv6Addr,
        mac: Mac,
        learnt: Learnt,
        now: Nanos,
    ) -> Change6 {
        self.observe_in(seg, ip, mac, learnt, now, false)
    }

    fn observe_in(
        &mut self,
        seg: Segment,
        ip: Ipv6Addr,
        mac: Mac,
        learnt: Learnt,
        now: Nanos,
        established: bool,
    ) -> Change6 {
        let mut change = Change6::New;
        if let Some(old) = self.holders.get(&(seg, ip)).copied() {
            if old == mac {
                change = Change6::Refreshed;
            } else {
                change = Change6::Moved { old_mac: old };
                if let Some(st) = self.peek_mut(&(seg, old)) {
                    st.addrs.retain(|a| a.ip != ip);
                }
            }
        }
        let kind = AddrKind::of(ip, mac, learnt);
        let per_station = self.per_station;
        let st = self.entry((seg, mac), now, established);
        let mut dropped = None;
        if let Some(i) = st.addrs.iter().position(|a| a.ip == ip) {
            let mut a = st.addrs.remove(i);
            a.last_seen = now;
            // DHCPv6 says more than a later NS about the same address.
            if a.kind != AddrKind::Dhcpv6 || learnt == Learnt::Dhcpv6 {
                a.kind = kind;
                a.learnt = learnt;
            }
            st.addrs.push(a);
        } else {
            if st.addrs.len() >= per_station {
                dropped = Some(st.addrs.remove(0).ip);
            }
            st.addrs.push(Addr6 {
                ip,
                kind,
                learnt,
                first_seen: now,
                last_seen: now,
            });
        }
        if let Some(gone) = dropped {
            self.holders.remove(&(seg, gone));
        }
        self.holders.insert((seg, ip), mac);
        change
    }

    /// Puts back an address read from the store (its station established).
    pub fn restore(&mut self, seg: Segment, mac: Mac, a: Addr6) {
        let ip = a.ip;
        self.observe_in(seg, ip, mac, a.learnt, a.last_seen, true);
        if let Some(st) = self.peek_mut(&(seg, mac)) {
            st.first_seen = st.first_seen.min(a.first_seen);
            if let Some(x) = st.addrs.iter_mut().find(|x| x.ip == ip) {
                *x = a;
            }
        }
    }

    /// The station holding `ip`, and when it was last seen with it.
    pub fn holder(&self, seg: Segment, ip: Ipv6Addr) -> Option<(Mac, &Addr6)> {
        let mac = *self.holders.get(&(seg, ip))?;
        let a = self.station(seg, mac)?.addrs.iter().find(|a| a.ip == ip)?;
        Some((mac, a))
    }

    pub fn station(&self, seg: Segment, mac: Mac) -> Option<&Station6> {
        self.stations
            .peek(&(seg, mac))
            .or_else(|| self.probation.peek(&(seg, mac)))
    }

    /// Every station: established ones first, each tier most recently seen first.
    pub fn iter(&self) -> impl Iterator<Item = (&(Segment, Mac), &Station6)> {
        self.stations.iter().chain(self.probation.iter())
    }

    /// Addresses held.
    pub fn addresses(&self) -> usize {
        self.holders.len()
    }

    pub fn stations(&self) -> usize {
        self.stations.len() + self.probation.len()
    }

    pub fn evictions(&self) -> u64 {
        self.evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Iface;

    fn seg() -> Segment {
        Segment::from_vids(Iface::named("eth0"), 100, monitor_common::NO_VLAN)
    }

    #[test]
    fn kinds_follow_the_address_form() {
        let mac = Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        let ip = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        assert_eq!(
            AddrKind::of(ip("fe80::1"), mac, Learnt::Ns),
            AddrKind::LinkLocal
        );
        assert_eq!(
            AddrKind::of(ip("2001:db8::5054:ff:fe12:3456"), mac, Learnt::Na),
            AddrKind::Eui64
        );
        assert_eq!(
            AddrKind::of(ip("2001:db8::1234"), mac, Learnt::Na),
            AddrKind::Privacy
        );
        assert_eq!(
            AddrKind::of(ip("2001:db8::1234"), mac, Learnt::Dhcpv6),
            AddrKind::Dhcpv6
        );
    }

    #[test]
    fn addresses_group_per_station_bounded_and_move() {
        let mut t = Neighbours6::new(&Neighbours6Config {
            capacity: 16,
            max_addrs_per_station: 2,
        });
        let (a, b) = (Mac([2, 0, 0, 0, 0, 1]), Mac([2, 0, 0, 0, 0, 2]));
        let ip = |n: u16| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n);
        let s = crate::model::SECOND;
        assert_eq!(t.observe(seg(), ip(1), a, Learnt::Ns, s), Change6::New);
        assert_eq!(
            t.observe(seg(), ip(1), a, Learnt::Na, 2 * s),
            Change6::Refreshed
        );
        t.observe(seg(), ip(2), a, Learnt::Ns, 3 * s);
        t.observe(seg(), ip(3), a, Learnt::Ns, 4 * s);
        let st = t.station(seg(), a).unwrap();
        assert_eq!(
            st.addrs.iter().map(|x| x.ip).collect::<Vec<_>>(),
            [ip(2), ip(3)]
        );
        assert!(
            t.holder(seg(), ip(1)).is_none(),
            "the oldest address went with its slot"
        );
        assert_eq!(
            t.observe(seg(), ip(3), b, Learnt::Na, 5 * s),
            Change6::Moved { old_mac: a }
        );
        assert_eq!(t.holder(seg(), ip(3)).unwrap().0, b);
        assert_eq!(t.station(seg(), a).unwrap().addrs.len(), 1);
    }

    #[test]
    fn a_flood_of_one_shot_stations_churns_probation_and_real_ones_survive() {
        let mut t = Neighbours6::new(&Neighbours6Config {
            capacity: 1_024,
            max_addrs_per_station: 16,
        });
        let s = crate::model::SECOND;
        let real: Vec<Mac> = (1..=100u8).map(|i| Mac([2, 0, 0, 0, 1, i])).collect();
        for (i, m) in real.iter().enumerate() {
            let ip = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, i as u16);
            t.observe(seg(), ip, *m, Learnt::Na, s);
            // Seen again (a refresh, another address) a minute later: established.
            t.observe(seg(), ip, *m, Learnt::Na, 61 * s);
        }
        for i in 0..100_000u32 {
            let b = i.to_be_bytes();
            let ip = Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, (i >> 16) as u16, i as u16);
            t.observe(
                seg(),
                ip,
                Mac([2, 0xff, b[0], b[1], b[2], b[3]]),
                Learnt::Na,
                62 * s,
            );
        }
        for m in &real {
            assert!(
                t.station(seg(), *m).is_some(),
                "{m} was evicted by the flood"
            );
        }
        assert!(t.stations() <= 1_024);
        assert!(t.evictions() >= 100_000 - 128, "{}", t.evictions());
    }
}
