//! mac_collision: one MAC active on more than one interface or VLAN at once, as cloned VMs
//! are. Routers that use one MAC on every VLAN of a trunk are legitimate: list them in
//! `ignore_macs`.

use monitor_common::DhcpMsgType;
use smallvec::SmallVec;

use super::{kind, secs, Context, Detector, FindingKind, Signal, Subject};
use crate::model::{Mac, Nanos, Observation, Segment};

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MacCollisionConfig {
    /// Seen on two segments within this many seconds counts as "at once".
    pub window_secs: u64,
    pub quiet_secs: u64,
    /// MACs that legitimately live on several segments (routers, the rack controller).
    pub ignore_macs: Vec<Mac>,
    pub max_tracked: usize,
}

impl Default for MacCollisionConfig {
    fn default() -> Self {
        MacCollisionConfig {
            window_secs: 300,
            quiet_secs: 900,
            ignore_macs: Vec::new(),
            max_tracked: 100_000,
        }
    }
}

/// Where a colliding MAC was seen.
#[derive(serde::Serialize)]
struct SeenOn {
    interface: crate::model::Iface,
    vlan: String,
    last_seen: Nanos,
}

#[derive(serde::Serialize)]
struct CollisionEvidence {
    mac: Mac,
    segments: Vec<SeenOn>,
}

pub struct MacCollision {
    cfg: MacCollisionConfig,
    /// Where MACs were seen in DHCP but are not in the device table (clients before their
    /// ACK, servers). Everything else needs no copy here: the table's per-MAC view has it.
    dhcp_seen: crate::model::FastLru<Mac, SmallVec<[(Segment, Nanos); 1]>>,
}

impl MacCollision {
    pub fn new(cfg: MacCollisionConfig) -> Self {
        let cap = cfg.max_tracked;
        MacCollision {
            cfg,
            dhcp_seen: super::lazy_lru(cap),
        }
    }
}

impl MacCollision {
    fn forget(&mut self, mac: Mac, seg: Segment) {
        if let Some(segs) = self.dhcp_seen.peek_mut(&mac) {
            segs.retain(|(s, _)| *s != seg);
            if segs.is_empty() {
                self.dhcp_seen.pop(&mac);
            }
        }
    }
}

impl Detector for MacCollision {
    fn name(&self) -> &'static str {
        "mac_collision"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::MAC_COLLISION]
    }

    fn observe(&mut self, obs: &Observation, ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        let (seg, mac) = match obs {
            Observation::Arp { seg, mac, .. } => (*seg, *mac),
            Observation::Dhcp { seg, src_mac, .. } => (*seg, *src_mac),
            Observation::Neighbour { seg, mac, .. } | Observation::DadProbe { seg, mac, .. } => {
                (*seg, *mac)
            }
            Observation::RouterAdvert { seg, src_mac, .. } => (*seg, *src_mac),
            // A DHCPv6 answer can come through a relay's MAC.
            // A switch sends its PDUs on every VLAN of a trunk from one MAC.
            Observation::Dhcpv6 { .. }
            | Observation::Loop { .. }
            | Observation::Scan { .. }
            | Observation::Switch { .. } => return vec![],
        };
        if mac.0[0] & 1 != 0 || self.cfg.ignore_macs.contains(&mac) {
            return vec![];
        }
        let window = secs(self.cfg.window_secs);
        let recent = |t: Nanos| now.saturating_sub(t) <= window;
        if let Observation::Dhcp { msg, .. } = obs {
            // Once the ACK puts the client in the table, the table speaks for it here.
            if let (Some(DhcpMsgType::Ack), Some(client)) = (msg.kind(), msg.chaddr) {
                self.forget(client, seg);
            }
            let in_table = ctx.table.by_mac(&mac).iter().any(|k| k.seg == seg);
            if !in_table {
                let segs = self.dhcp_seen.get_or_insert_mut(mac, SmallVec::new);
                segs.retain(|(s, t)| *s != seg && recent(*t));
                if segs.len() == 8 {
                    segs.remove(0);
                }
                segs.push((seg, now));
            }
        }
        // Every segment this MAC was active on within the window: this one first.
        let mut segs: SmallVec<[(Segment, Nanos); 4]> = SmallVec::new();
        segs.push((seg, now));
        let from_table = ctx.table.by_mac(&mac).iter().filter_map(|k| {
            let d = ctx.table.get(k)?;
            (d.mac == mac).then_some((k.seg, d.last_seen))
        });
        let from_dhcp = self.dhcp_seen.peek(&mac).into_iter().flatten().copied();
        for (s, t) in from_table.chain(from_dhcp) {
            if !recent(t) {
                continue;
            }
            if let Some(e) = segs.iter_mut().find(|(x, _)| *x == s) {
                e.1 = e.1.max(t);
            } else if segs.len() < 8 {
                segs.push((s, t));
            }
        }
        if segs.len() < 2 {
            return vec![];
        }
        segs[1..].sort();
        let segments: Vec<_> = segs
            .iter()
            .map(|(s, t)| SeenOn {
                interface: s.iface,
                vlan: s.vlan_label(),
                last_seen: *t,
            })
            .collect();
        vec![Signal {
            kind: kind::MAC_COLLISION,
            subject: Subject::Station(mac),
            seg,
            packets: 1,
            evidence: super::evidence(&CollisionEvidence { mac, segments }),
            quiet: secs(self.cfg.quiet_secs),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        detect::tests_support::{arp_on, Harness},
        model::SECOND,
    };
    use std::net::Ipv4Addr;

    fn seg(vlan: u16) -> Segment {
        Segment {
            iface: crate::model::Iface::named("eth2"),
            outer_vlan: Some(vlan),
            inner_vlan: None,
        }
    }

    #[test]
    fn same_mac_on_two_vlans_within_window() {
        let mac = Mac([2, 0, 0, 0, 0, 9]);
        let mut h = Harness::new(MacCollision::new(MacCollisionConfig::default()));
        assert!(h
            .feed(&arp_on(seg(10), mac, Ipv4Addr::new(10, 0, 0, 1)), 0)
            .is_empty());
        let s = h.feed(
            &arp_on(seg(20), mac, Ipv4Addr::new(10, 0, 1, 1)),
            300 * SECOND,
        );
        assert_eq!(s.len(), 1, "exactly at the window edge");
        assert_eq!(s[0].evidence["segments"].as_array().unwrap().len(), 2);
        let mut h = Harness::new(MacCollision::new(MacCollisionConfig::default()));
        h.feed(&arp_on(seg(10), mac, Ipv4Addr::new(10, 0, 0, 1)), 0);
        assert!(h
            .feed(
                &arp_on(seg(20), mac, Ipv4Addr::new(10, 0, 1, 1)),
                300 * SECOND + 1
            )
            .is_empty());
    }

    fn discover_on(seg: Segment, mac: Mac) -> Observation {
        match crate::detect::tests_support::dhcp_from_client(mac, 1) {
            Observation::Dhcp {
                src_mac,
                src_ip,
                msg,
                ..
            } => Observation::Dhcp {
                seg,
                src_mac,
                src_ip,
                msg,
            },
            o => o,
        }
    }

    #[test]
    fn cloned_clients_discovering_on_two_vlans_collide_before_any_lease() {
        let mac = Mac([2, 0, 0, 0, 0, 7]);
        let mut h = Harness::new(MacCollision::new(MacCollisionConfig::default()));
        assert!(h.feed(&discover_on(seg(10), mac), 0).is_empty());
        let s = h.feed(&discover_on(seg(20), mac), SECOND);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].evidence["segments"][1]["vlan"], "10");
        // A lone client on one VLAN, however chatty, is fine.
        let mut h = Harness::new(MacCollision::new(MacCollisionConfig::default()));
        for t in 0..5 {
            assert!(h.feed(&discover_on(seg(10), mac), t * SECOND).is_empty());
        }
    }

    #[test]
    fn ignored_macs_and_same_segment_are_quiet() {
        let mac = Mac([2, 0, 0, 0, 0, 9]);
        let mut h = Harness::new(MacCollision::new(MacCollisionConfig {
            ignore_macs: vec![mac],
            ..Default::default()
        }));
        h.feed(&arp_on(seg(10), mac, Ipv4Addr::new(10, 0, 0, 1)), 0);
        assert!(h
            .feed(&arp_on(seg(20), mac, Ipv4Addr::new(10, 0, 1, 1)), SECOND)
            .is_empty());
        let mut h = Harness::new(MacCollision::new(MacCollisionConfig::default()));
        h.feed(&arp_on(seg(10), mac, Ipv4Addr::new(10, 0, 0, 1)), 0);
        assert!(h
            .feed(&arp_on(seg(10), mac, Ipv4Addr::new(10, 0, 0, 2)), SECOND)
            .is_empty());
    }
}
