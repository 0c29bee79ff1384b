//! duplicate_ip: two or more MACs actively claim one IP. Evidence is one of: claims that
//! alternate (A, then B, then A again within the window: both alive, unlike a MAC change where
//! the old MAC goes quiet); an RFC 5227 probe for an address another MAC holds; a DHCPDECLINE.
use std::net::Ipv4Addr;

use serde_json::json;

use super::{kind, secs, Context, Detector, Signal};
use crate::{
    model::{Mac, Nanos, Observation, Segment},
    state::{Change, DeviceKey},
};

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DuplicateIpConfig {
    /// Claims from two MACs within this many seconds count as both alive.
    pub window_secs: u64,
    /// A finding closes after this long without new evidence.
    pub quiet_secs: u64,
    /// IPs tracked at once (least recently claimed dropped first).
    pub max_tracked: usize,
}

impl Default for DuplicateIpConfig {
    fn default() -> Self {
        DuplicateIpConfig {
            window_secs: 60,
            quiet_secs: 300,
            max_tracked: 100_000,
        }
    }
}

/// Recent claimants of one IP.
#[derive(Debug, Default)]
struct Claims {
    /// (MAC, last claim, claims) most recent last; at most 4.
    macs: Vec<(Mac, Nanos, u64)>,
}

pub struct DuplicateIp {
    cfg: DuplicateIpConfig,
    claims: crate::model::FastLru<DeviceKey, Claims>,
}

impl DuplicateIp {
    pub fn new(cfg: DuplicateIpConfig) -> Self {
        let cap = cfg.max_tracked;
        DuplicateIp {
            cfg,
            claims: super::lazy_lru(cap),
        }
    }

    fn signal(
        &self,
        seg: Segment,
        ip: Ipv4Addr,
        reason: &str,
        macs: serde_json::Value,
        packets: u64,
    ) -> Signal {
        Signal {
            kind: kind::DUPLICATE_IP,
            subject: format!("{seg} {ip}"),
            seg,
            packets,
            evidence: json!({ "ip": ip, "reason": reason, "macs": macs }),
            quiet: secs(self.cfg.quiet_secs),
        }
    }

    fn claim(&mut self, key: DeviceKey, mac: Mac, ctx: &Context<'_>, now: Nanos) -> Option<Signal> {
        let window = secs(self.cfg.window_secs);
        if !self.claims.contains(&key) {
            // One claimant needs no memory here: the device table has its MAC and last
            // sighting. Tracking starts when a second MAC takes the address, seeded with the
            // first MAC's last sighting (which the table kept as `previous`).
            let moved = matches!(
                ctx.change,
                Some(Change::Moved { .. } | Change::FlipFlop { .. })
            );
            let previous = ctx.table.get(&key).and_then(|d| d.previous);
            let (Some((old, seen)), true) = (previous, moved) else {
                return None;
            };
            self.claims.put(
                key,
                Claims {
                    macs: vec![(old, seen, 1)],
                },
            );
        }
        let c = self.claims.get_mut(&key).expect("present");
        let prev_own = c
            .macs
            .iter()
            .find(|(m, _, _)| *m == mac)
            .map(|(_, t, _)| *t);
        let latest_other = c
            .macs
            .iter()
            .filter(|(m, t, _)| *m != mac && now.saturating_sub(*t) <= window)
            .map(|(_, t, _)| *t)
            .max();
        // Update this MAC's entry (kept most recent last).
        let count = match c.macs.iter().position(|(m, _, _)| *m == mac) {
            Some(i) => {
                let (_, _, n) = c.macs.remove(i);
                n + 1
            }
            None => 1,
        };
        if c.macs.len() == 4 {
            c.macs.remove(0);
        }
        c.macs.push((mac, now, count));
        // Both alive: this MAC claimed before another MAC's latest claim, and again now, all
        // within the window.
        let alive = matches!((prev_own, latest_other), (Some(own), Some(other))
            if own <= other && now.saturating_sub(own) <= window);
        if !alive {
            return None;
        }
        let macs: Vec<_> = c
            .macs
            .iter()
            .filter(|(_, t, _)| now.saturating_sub(*t) <= window)
            .map(|(m, t, n)| json!({ "mac": m, "last_claim": t, "claims": n }))
            .collect();
        let packets = c.macs.iter().map(|(_, _, n)| n).sum();
        Some(self.signal(key.seg, key.ip, "alternating claims", macs.into(), packets))
    }
}

impl Detector for DuplicateIp {
    fn name(&self) -> &'static str {
        kind::DUPLICATE_IP
    }

    fn observe(&mut self, obs: &Observation, ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        let window = secs(self.cfg.window_secs);
        match obs {
            Observation::Arp {
                seg,
                ip,
                mac,
                probe,
                ..
            } => {
                let key = DeviceKey { seg: *seg, ip: *ip };
                if *probe {
                    // A probe for an address another MAC holds and used recently.
                    return match ctx.table.get(&key) {
                        Some(d) if d.mac != *mac && now.saturating_sub(d.last_seen) <= window => {
                            let macs = json!([
                                { "mac": d.mac, "role": "holder", "last_seen": d.last_seen },
                                { "mac": mac, "role": "prober", "last_seen": now },
                            ]);
                            vec![self.signal(*seg, *ip, "probe for a held address", macs, 1)]
                        }
                        _ => vec![],
                    };
                }
                if ip.is_unspecified() {
                    return vec![];
                }
                self.claim(key, *mac, ctx, now).into_iter().collect()
            }
            Observation::Dhcp {
                seg, msg, src_mac, ..
            } if msg.msg_type == Some(4) => {
                // DHCPDECLINE: the client found its offered address in use.
                let Some(ip) = msg.requested_ip else {
                    return vec![];
                };
                let decliner = msg.chaddr.unwrap_or(*src_mac);
                let holder = ctx
                    .table
                    .get(&DeviceKey { seg: *seg, ip })
                    .filter(|d| d.mac != decliner)
                    .map(|d| json!({ "mac": d.mac, "role": "holder", "last_seen": d.last_seen }));
                let mut macs =
                    vec![json!({ "mac": decliner, "role": "decliner", "last_seen": now })];
                macs.extend(holder);
                vec![self.signal(*seg, ip, "dhcp decline", macs.into(), 1)]
            }
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        detect::tests_support::{arp, dhcp_decline, seg, Harness},
        model::SECOND,
    };

    const A: Mac = Mac([2, 0, 0, 0, 0, 0xa]);
    const B: Mac = Mac([2, 0, 0, 0, 0, 0xb]);
    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 7);

    fn harness() -> Harness<DuplicateIp> {
        Harness::new(DuplicateIp::new(DuplicateIpConfig::default()))
    }

    #[test]
    fn alternating_claims_are_a_duplicate() {
        let mut h = harness();
        assert!(h.feed(&arp(A, IP), SECOND).is_empty());
        assert!(
            h.feed(&arp(B, IP), 2 * SECOND).is_empty(),
            "one change is not yet a duplicate"
        );
        let s = h.feed(&arp(A, IP), 3 * SECOND);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].kind, kind::DUPLICATE_IP);
        assert_eq!(s[0].evidence["macs"].as_array().unwrap().len(), 2);
        assert_eq!(s[0].subject, format!("{} 10.0.0.7", seg()));
    }

    #[test]
    fn a_mac_change_is_not_a_duplicate() {
        let mut h = harness();
        h.feed(&arp(A, IP), SECOND);
        for t in 2..10 {
            assert!(h.feed(&arp(B, IP), t * SECOND).is_empty());
        }
    }

    #[test]
    fn window_boundary() {
        let mut h = harness();
        h.feed(&arp(A, IP), 0);
        h.feed(&arp(B, IP), 30 * SECOND);
        // A's previous claim is exactly 60 s old: inside the window.
        assert_eq!(h.feed(&arp(A, IP), 60 * SECOND).len(), 1);
        let mut h = harness();
        h.feed(&arp(A, IP), 0);
        h.feed(&arp(B, IP), 30 * SECOND);
        assert!(h.feed(&arp(A, IP), 60 * SECOND + 1).is_empty());
    }

    #[test]
    fn probe_for_a_held_address() {
        let mut h = harness();
        h.feed(&arp(A, IP), SECOND);
        let mut probe = arp(B, IP);
        if let Observation::Arp { probe: p, .. } = &mut probe {
            *p = true;
        }
        let s = h.feed(&probe, 2 * SECOND);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].evidence["reason"], "probe for a held address");
        // A probe for an address nobody holds is normal DAD.
        let mut other = arp(B, Ipv4Addr::new(10, 0, 0, 8));
        if let Observation::Arp { probe: p, .. } = &mut other {
            *p = true;
        }
        assert!(h.feed(&other, 3 * SECOND).is_empty());
    }

    #[test]
    fn dhcp_decline_names_the_holder() {
        let mut h = harness();
        h.feed(&arp(A, IP), SECOND);
        let s = h.feed(&dhcp_decline(B, IP), 2 * SECOND);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].evidence["macs"].as_array().unwrap().len(), 2);
    }
}
