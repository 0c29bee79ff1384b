//! `lldp_neighbour_changed`: the LLDP or CDP neighbour of an interface changed, so the cable
//! was moved (or the switch renamed or re-cabled):
//! - at once, when the same sender names another chassis, port or system;
//! - on an untagged segment, when a neighbour whose time-to-live ran out without a new
//!   announcement has been replaced by another that is still announcing. The kernel
//!   re-reports an unchanged announcement every `kernel.refresh_secs`, so a neighbour is
//!   gone once both its TTL (LLDP's 120 s, CDP's 180 s by default) and `quiet_secs` (longer
//!   than the refresh) passed without an announcement.
//!   Several neighbours announcing at once (a shared VLAN, a hub) are not a change.
use serde::Serialize;

use super::{
    kind, secs, switch_ports::SwitchConfig, Context, Detector, FindingKind, Signal, Subject,
};
use crate::{
    model::{FastMap, Nanos, Observation, Segment, SECOND},
    state::switch::{Discovery, Identity, NeighbourKey},
};

#[derive(Serialize)]
struct Evidence<'a> {
    protocol: Discovery,
    src_mac: String,
    before: &'a Identity,
    now: &'a Identity,
    /// `same_sender` (it names someone else) or `replaced` (the old one's TTL ran out).
    how: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    port_description: Option<&'a str>,
}

/// What the detector remembers of each neighbour on an untagged segment.
#[derive(Clone)]
struct Seen {
    key: NeighbourKey,
    id: Identity,
    port_description: Option<String>,
    first_seen: Nanos,
    last_seen: Nanos,
    ttl: Nanos,
    /// Reported as replaced already.
    reported: bool,
}

/// Neighbours remembered per segment, and segments.
const PER_SEGMENT: usize = 8;
const MAX_SEGMENTS: usize = 4_096;

pub struct LldpNeighbour {
    cfg: SwitchConfig,
    seen: FastMap<Segment, Vec<Seen>>,
}

impl LldpNeighbour {
    pub fn new(cfg: SwitchConfig) -> Self {
        LldpNeighbour {
            cfg,
            seen: FastMap::default(),
        }
    }

    fn signal(&self, seg: Segment, e: &Evidence<'_>) -> Signal {
        Signal {
            kind: kind::LLDP_NEIGHBOUR_CHANGED,
            subject: Subject::Segment(seg),
            seg,
            packets: 1,
            evidence: super::evidence(e),
            quiet: secs(self.cfg.quiet_secs),
        }
    }
}

impl Detector for LldpNeighbour {
    fn name(&self) -> &'static str {
        "lldp_neighbour"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::LLDP_NEIGHBOUR_CHANGED]
    }

    fn observe(&mut self, obs: &Observation, ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        let (Observation::Switch { seg, .. }, Some((key, change))) =
            (obs, &ctx.update_sw.neighbour)
        else {
            return vec![];
        };
        let Some(n) = ctx.switch.neighbour(key) else {
            return vec![];
        };
        if seg.outer_vlan.is_none()
            && (self.seen.contains_key(seg) || self.seen.len() < MAX_SEGMENTS)
        {
            let list = self.seen.entry(*seg).or_default();
            let entry = Seen {
                key: *key,
                id: n.id.clone(),
                port_description: n.port_description.clone(),
                first_seen: n.first_seen,
                last_seen: now,
                ttl: (n.ttl_secs as u64).max(1) * SECOND,
                reported: false,
            };
            if let Some(i) = list.iter().position(|s| s.key == *key) {
                list[i] = entry;
            } else if list.len() < PER_SEGMENT {
                list.push(entry);
            } else if let Some(i) = (0..list.len()).min_by_key(|i| list[*i].last_seen) {
                // Forget the one heard from least recently.
                list[i] = entry;
            }
        }
        let Some(Some(before)) = change else {
            return vec![];
        };
        vec![self.signal(
            *seg,
            &Evidence {
                protocol: key.protocol,
                src_mac: key.src_mac.to_string(),
                before,
                now: &n.id,
                how: "same_sender",
                port_description: n.port_description.as_deref(),
            },
        )]
    }

    fn tick(&mut self, now: Nanos) -> Vec<Signal> {
        let settle = secs(self.cfg.neighbour_settle_secs);
        // An unchanged announcement reaches the agent once per kernel refresh, so a sender
        // is gone only once both its TTL and the quiet period (longer than the refresh)
        // passed without one.
        let quiet = secs(self.cfg.quiet_secs);
        let mut out = Vec::new();
        for (seg, list) in &mut self.seen {
            let alive = |s: &Seen| now <= s.last_seen.saturating_add(s.ttl.max(quiet));
            for i in 0..list.len() {
                let old = &list[i];
                if old.reported || alive(old) || now.saturating_sub(old.first_seen) < settle {
                    continue;
                }
                // Its successor: same protocol, another chassis, first heard after it, alive.
                let Some(new) = list
                    .iter()
                    .filter(|s| {
                        s.key.protocol == old.key.protocol
                            && s.id.chassis != old.id.chassis
                            && s.first_seen > old.first_seen
                            && alive(s)
                    })
                    .max_by_key(|s| s.first_seen)
                else {
                    continue;
                };
                let e = Evidence {
                    protocol: new.key.protocol,
                    src_mac: new.key.src_mac.to_string(),
                    before: &old.id,
                    now: &new.id,
                    how: "replaced",
                    port_description: new.port_description.as_deref(),
                };
                out.push(Signal {
                    kind: kind::LLDP_NEIGHBOUR_CHANGED,
                    subject: Subject::Segment(*seg),
                    seg: *seg,
                    packets: 1,
                    evidence: super::evidence(&e),
                    quiet: secs(self.cfg.quiet_secs),
                });
                list[i].reported = true;
            }
            // What ran out and was reported, or has no successor, is forgotten after a while.
            list.retain(|s| {
                now <= s
                    .last_seen
                    .saturating_add(s.ttl.max(quiet).saturating_mul(4))
            });
        }
        self.seen.retain(|_, l| !l.is_empty());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        decode::{lldp::Lldp, SwitchPdu},
        detect::tests_support::Harness,
        model::{Iface, Mac},
    };

    pub fn lldp(mac: u8, chassis: &str, port: &str) -> Observation {
        Observation::Switch {
            seg: Segment {
                iface: Iface::named("eth2"),
                outer_vlan: None,
                inner_vlan: None,
            },
            src_mac: Mac([0, 0x1b, 0, 0, 0, mac]),
            pdu: Box::new(SwitchPdu::Lldp(Lldp {
                chassis_id: chassis.into(),
                port_id: port.into(),
                ttl_secs: 120,
                system_name: Some(format!("{chassis}.rack12")),
                ..Lldp::default()
            })),
        }
    }

    #[test]
    fn the_same_sender_naming_another_port_is_a_change_a_first_sighting_is_not() {
        let mut h = Harness::new(LldpNeighbour::new(SwitchConfig::default()));
        assert!(h.feed(&lldp(1, "sw3", "Gi1/0/17"), SECOND).is_empty());
        assert!(h.feed(&lldp(1, "sw3", "Gi1/0/17"), 60 * SECOND).is_empty());
        let s = h.feed(&lldp(1, "sw3", "Gi1/0/18"), 61 * SECOND);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].evidence["before"]["port"], "Gi1/0/17");
        assert_eq!(s[0].evidence["now"]["port"], "Gi1/0/18");
        assert_eq!(s[0].evidence["how"], "same_sender");
    }

    #[test]
    fn a_neighbour_replaced_after_its_ttl_ran_out_is_a_change() {
        let cfg = SwitchConfig {
            quiet_secs: 90,
            ..Default::default()
        };
        let mut h = Harness::new(LldpNeighbour::new(cfg));
        h.feed(&lldp(1, "sw3", "Gi1/0/17"), SECOND);
        // Another switch on the port; the first is still within its TTL (120 s).
        h.feed(&lldp(2, "sw4", "Te1/1"), 30 * SECOND);
        assert!(h.detector.tick(100 * SECOND).is_empty());
        h.feed(&lldp(2, "sw4", "Te1/1"), 90 * SECOND);
        let s = h.detector.tick(122 * SECOND);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].evidence["before"]["chassis"], "sw3");
        assert_eq!(s[0].evidence["now"]["chassis"], "sw4");
        assert_eq!(s[0].evidence["how"], "replaced");
        assert!(h.detector.tick(130 * SECOND).is_empty(), "reported once");
    }

    #[test]
    fn neighbours_announcing_together_are_not_a_change() {
        let mut h = Harness::new(LldpNeighbour::new(SwitchConfig::default()));
        for t in [1, 61, 121, 181] {
            h.feed(&lldp(1, "sw3", "Gi1/0/17"), t * SECOND);
            h.feed(&lldp(2, "sw4", "Te1/1"), t * SECOND);
            assert!(h.detector.tick((t + 30) * SECOND).is_empty());
        }
    }
}
