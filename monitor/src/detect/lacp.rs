//! LACP as the switch sends it (the switch's port is the LACPDU's actor, and its partner
//! fields say what it knows of us):
//! - `lacp_partner_lost`: the switch has lost us: partner system 00:00:00:00:00:00, or its
//!   partner information expired or defaulted;
//! - `lacp_partner_mismatch`: members of one bond (`[engine.switch.ports] bond`, or sysfs)
//!   hear from different switch systems or keys, so they do not aggregate;
//! - `lacp_not_in_sync`: a port stays out of sync for longer than `lacp_sync_secs`.
use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    kind, secs, switch_ports::SwitchConfig, Context, Detector, FindingKind, Signal, Subject,
};
use crate::{
    decode::SwitchPdu,
    model::{FastMap, Mac, Nanos, Observation, Segment},
    state::switch::{LacpKey, LacpPort},
};

#[derive(Serialize)]
struct LostEvidence<'a> {
    reason: &'static str,
    actor_system: Mac,
    actor_key: u16,
    actor_port: u16,
    actor_state: &'a str,
    partner_system: Mac,
    partner_state: &'a str,
}

#[derive(Serialize)]
struct Member {
    interface: String,
    system: Mac,
    key: u16,
    port: u16,
}

#[derive(Serialize)]
struct MismatchEvidence {
    bond: String,
    members: Vec<Member>,
}

#[derive(Serialize)]
struct SyncEvidence<'a> {
    out_of_sync_secs: u64,
    threshold_secs: u64,
    actor_system: Mac,
    actor_port: u16,
    actor_state: &'a str,
}

/// LACP ports tracked.
const MAX_PORTS: usize = 1_024;

pub struct Lacp {
    cfg: SwitchConfig,
    /// Interface -> its bond.
    bond_of: BTreeMap<String, String>,
    /// The last LACPDU of each port, for the sync timer and the bond comparison.
    ports: FastMap<LacpKey, LacpPort>,
}

impl Lacp {
    pub fn new(cfg: SwitchConfig) -> Self {
        Lacp {
            bond_of: super::switch_ports::bond_of(&cfg),
            cfg,
            ports: FastMap::default(),
        }
    }

    fn mismatch(&self, seg: Segment, now: Nanos) -> Option<Signal> {
        let bond = self.bond_of.get(seg.iface.name())?;
        let fresh = secs(self.cfg.quiet_secs);
        // Each member's latest sender: a point-to-point link has one, and a newer one (the
        // cable moved to another switch) replaces it.
        let mut latest: BTreeMap<&str, (Nanos, Member)> = BTreeMap::new();
        for (k, p) in &self.ports {
            let iface = k.seg.iface.name();
            if self.bond_of.get(iface) != Some(bond)
                || now.saturating_sub(p.last_seen) > fresh
                || p.partner_lost
                || latest.get(iface).is_some_and(|(t, _)| *t >= p.last_seen)
            {
                continue;
            }
            let m = Member {
                interface: iface.to_string(),
                system: p.actor.system,
                key: p.actor.key,
                port: p.actor.port,
            };
            latest.insert(iface, (p.last_seen, m));
        }
        let members: Vec<Member> = latest.into_values().map(|(_, m)| m).collect();
        let first = members.first()?;
        let differ = members
            .iter()
            .any(|m| (m.system, m.key) != (first.system, first.key));
        differ.then(|| Signal {
            kind: kind::LACP_PARTNER_MISMATCH,
            subject: Subject::Bond(bond.clone()),
            seg,
            packets: 1,
            evidence: super::evidence(&MismatchEvidence {
                bond: bond.clone(),
                members,
            }),
            quiet: secs(self.cfg.quiet_secs),
        })
    }
}

impl Detector for Lacp {
    fn name(&self) -> &'static str {
        "lacp"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[
            kind::LACP_PARTNER_LOST,
            kind::LACP_PARTNER_MISMATCH,
            kind::LACP_NOT_IN_SYNC,
        ]
    }

    fn observe(&mut self, obs: &Observation, ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        let (Observation::Switch { seg, src_mac, pdu }, Some((key, _))) =
            (obs, &ctx.update_sw.lacp)
        else {
            return vec![];
        };
        let SwitchPdu::Lacp(l) = &**pdu else {
            return vec![];
        };
        let Some(port) = ctx.switch.lacp_port(key) else {
            return vec![];
        };
        if self.ports.contains_key(key) || self.ports.len() < MAX_PORTS {
            self.ports.insert(*key, port.clone());
        }
        let mut out = Vec::new();
        if port.partner_lost {
            let reason = if l.partner.system == Mac([0; 6]) {
                "partner_system_zero"
            } else if l.actor.state.expired {
                "expired"
            } else {
                "defaulted"
            };
            out.push(Signal {
                kind: kind::LACP_PARTNER_LOST,
                subject: Subject::Mac(*seg, *src_mac),
                seg: *seg,
                packets: 1,
                evidence: super::evidence(&LostEvidence {
                    reason,
                    actor_system: l.actor.system,
                    actor_key: l.actor.key,
                    actor_port: l.actor.port,
                    actor_state: &port.actor_state,
                    partner_system: l.partner.system,
                    partner_state: &port.partner_state,
                }),
                quiet: secs(self.cfg.quiet_secs),
            });
        }
        out.extend(self.mismatch(*seg, now));
        out
    }

    fn tick(&mut self, now: Nanos) -> Vec<Signal> {
        let limit = secs(self.cfg.lacp_sync_secs);
        let fresh = secs(self.cfg.quiet_secs);
        self.ports
            .iter()
            .filter(|(_, p)| now.saturating_sub(p.last_seen) <= fresh)
            .filter_map(|(k, p)| {
                let since = p.out_of_sync_since?;
                let out_for = now.saturating_sub(since);
                (out_for > limit).then(|| Signal {
                    kind: kind::LACP_NOT_IN_SYNC,
                    subject: Subject::Mac(k.seg, k.src_mac),
                    seg: k.seg,
                    packets: 0,
                    evidence: super::evidence(&SyncEvidence {
                        out_of_sync_secs: out_for / crate::model::SECOND,
                        threshold_secs: self.cfg.lacp_sync_secs,
                        actor_system: p.actor.system,
                        actor_port: p.actor.port,
                        actor_state: &p.actor_state,
                    }),
                    quiet: secs(self.cfg.quiet_secs),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        decode::lacp,
        detect::{switch_ports::PortExpect, tests_support::Harness},
        model::{Iface, SECOND},
    };

    fn on(iface: &str, actor: [u8; 6], key: u16, state: u8, partner: [u8; 6]) -> Observation {
        let mut b = vec![1, 1, 1, 20, 0x80, 0];
        b.extend(actor);
        b.extend(key.to_be_bytes());
        b.extend([0x80, 0, 0, 7, state, 0, 0, 0, 2, 20, 0x80, 0]);
        b.extend(partner);
        b.extend([0, 13, 0x80, 0, 0, 1, 0x3d, 0, 0, 0]);
        b.extend([0; 70]);
        Observation::Switch {
            seg: Segment {
                iface: Iface::named(iface),
                outer_vlan: None,
                inner_vlan: None,
            },
            src_mac: Mac([actor[0], actor[1], actor[2], actor[3], actor[4], 0x10]),
            pdu: Box::new(SwitchPdu::Lacp(lacp::decode(&b).unwrap())),
        }
    }

    const SW1: [u8; 6] = [0, 0x13, 0xc4, 0x12, 0x0f, 0];
    const SW2: [u8; 6] = [0, 0x13, 0xc4, 0x99, 0x0f, 0];
    const US: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const SYNCED: u8 = 0x3d;

    #[test]
    fn a_partner_gone_to_zero_is_lost() {
        let mut h = Harness::new(Lacp::new(SwitchConfig::default()));
        assert!(h.feed(&on("eth2", SW1, 13, SYNCED, US), SECOND).is_empty());
        let s = h.feed(&on("eth2", SW1, 13, 0x45, [0; 6]), 2 * SECOND);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].kind, kind::LACP_PARTNER_LOST);
        assert_eq!(s[0].evidence["reason"], "partner_system_zero");
    }

    #[test]
    fn bond_members_hearing_different_switches() {
        let mut cfg = SwitchConfig {
            bonds_from_sysfs: false,
            ..Default::default()
        };
        for i in ["eth2", "eth3"] {
            cfg.ports.insert(
                i.into(),
                PortExpect {
                    bond: Some("bond0".into()),
                    ..Default::default()
                },
            );
        }
        let mut h = Harness::new(Lacp::new(cfg));
        assert!(h.feed(&on("eth2", SW1, 13, SYNCED, US), SECOND).is_empty());
        assert!(h.feed(&on("eth3", SW1, 13, SYNCED, US), SECOND).is_empty());
        let s = h.feed(&on("eth3", SW2, 13, SYNCED, US), 2 * SECOND);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].subject.to_string(), "bond bond0");
        assert_eq!(s[0].evidence["members"][1]["system"], "00:13:c4:99:0f:00");
    }

    #[test]
    fn out_of_sync_past_the_threshold() {
        let mut h = Harness::new(Lacp::new(SwitchConfig::default()));
        h.feed(&on("eth2", SW1, 13, 0x05, US), SECOND);
        assert!(h.detector.tick(20 * SECOND).is_empty());
        let s = h.detector.tick(40 * SECOND);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].evidence["out_of_sync_secs"], 39);
        h.feed(&on("eth2", SW1, 13, SYNCED, US), 41 * SECOND);
        assert!(h.detector.tick(80 * SECOND).is_empty());
    }
}
