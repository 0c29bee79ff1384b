//! Spanning tree as the switch sends it, per segment and (PVST+) VLAN:
//! - `stp_root_changed`: a new root bridge (its priority or MAC) on a spanning tree seen
//!   before;
//! - `stp_topology_churn`: at least `churn_changes` topology changes within
//!   `churn_window_secs`. A change is a run of BPDUs with the topology-change flag (a root
//!   keeps it set for max age + forward delay, RSTP for two hellos) or of TCN BPDUs, ended
//!   by a gap of more than two hello times;
//! - `stp_bpdu_on_edge`: BPDUs on an interface configured as an edge (host) port.
use std::collections::VecDeque;

use serde::Serialize;

use super::{
    kind, secs, switch_ports::SwitchConfig, Context, Detector, FindingKind, Signal, Subject,
};
use crate::{
    decode::SwitchPdu,
    model::{FastMap, Nanos, Observation, SECOND},
    state::switch::StpKey,
};

#[derive(Serialize)]
struct RootEvidence {
    before: String,
    now: String,
    root_cost: u32,
    bridge: String,
    sender_mac: String,
    version: &'static str,
}

#[derive(Serialize)]
struct ChurnEvidence {
    changes: usize,
    window_secs: u64,
    topology_change_bpdus: u64,
    tcn_bpdus: u64,
    root: String,
    last_sender: String,
}

#[derive(Serialize)]
struct EdgeEvidence {
    bridge: String,
    root: String,
    sender_mac: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pvst_vlan: Option<u16>,
    version: &'static str,
}

/// Spanning trees tracked for churn.
const MAX_TREES: usize = 4_096;

struct Churn {
    /// When each recent change began.
    starts: VecDeque<Nanos>,
    last_tc: Nanos,
}

pub struct Stp {
    cfg: SwitchConfig,
    churn: FastMap<StpKey, Churn>,
}

impl Stp {
    pub fn new(cfg: SwitchConfig) -> Self {
        Stp {
            cfg,
            churn: FastMap::default(),
        }
    }
}

impl Detector for Stp {
    fn name(&self) -> &'static str {
        "stp"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[
            kind::STP_ROOT_CHANGED,
            kind::STP_TOPOLOGY_CHURN,
            kind::STP_BPDU_ON_EDGE,
        ]
    }

    fn observe(&mut self, obs: &Observation, ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        let Observation::Switch {
            seg, src_mac, pdu, ..
        } = obs
        else {
            return vec![];
        };
        let SwitchPdu::Stp(bpdu) = &**pdu else {
            return vec![];
        };
        let quiet = secs(self.cfg.quiet_secs);
        let mut out = Vec::new();
        let key = StpKey {
            seg: *seg,
            pvst_vlan: bpdu.pvst_vlan,
        };
        let view = ctx.switch.stp_view(&key);
        if self.cfg.port(seg.iface.name()).is_some_and(|p| p.edge) {
            out.push(Signal {
                kind: kind::STP_BPDU_ON_EDGE,
                subject: Subject::Segment(*seg),
                seg: *seg,
                packets: 1,
                evidence: super::evidence(&EdgeEvidence {
                    bridge: view.map(|v| v.bridge_id.clone()).unwrap_or_default(),
                    root: view.map(|v| v.root_id.clone()).unwrap_or_default(),
                    sender_mac: src_mac.to_string(),
                    pvst_vlan: bpdu.pvst_vlan,
                    version: bpdu.version.name(),
                }),
                quiet,
            });
        }
        if let (Some((k, Some(Some(before)))), Some(v)) = (&ctx.update_sw.stp, view) {
            if *k == key {
                out.push(Signal {
                    kind: kind::STP_ROOT_CHANGED,
                    subject: Subject::Stp(*seg, bpdu.pvst_vlan),
                    seg: *seg,
                    packets: 1,
                    evidence: super::evidence(&RootEvidence {
                        before: before.to_string(),
                        now: v.root_id.clone(),
                        root_cost: v.root_cost,
                        bridge: v.bridge_id.clone(),
                        sender_mac: src_mac.to_string(),
                        version: v.version,
                    }),
                    quiet,
                });
            }
        }
        if !bpdu.announces_change() {
            return out;
        }
        if !self.churn.contains_key(&key) && self.churn.len() >= MAX_TREES {
            return out;
        }
        let hello = view.map_or(2 * SECOND, |v| v.hello_ms.max(1_000) as u64 * 1_000_000);
        let c = self.churn.entry(key).or_insert(Churn {
            starts: VecDeque::new(),
            last_tc: 0,
        });
        let window = secs(self.cfg.churn_window_secs);
        if c.starts.is_empty() || now.saturating_sub(c.last_tc) > 2 * hello {
            c.starts.push_back(now);
        }
        c.last_tc = now;
        while c
            .starts
            .front()
            .is_some_and(|t| now.saturating_sub(*t) > window)
        {
            c.starts.pop_front();
        }
        if c.starts.len() >= self.cfg.churn_changes.max(1) as usize {
            out.push(Signal {
                kind: kind::STP_TOPOLOGY_CHURN,
                subject: Subject::Stp(*seg, bpdu.pvst_vlan),
                seg: *seg,
                packets: 1,
                evidence: super::evidence(&ChurnEvidence {
                    changes: c.starts.len(),
                    window_secs: self.cfg.churn_window_secs,
                    topology_change_bpdus: view.map_or(0, |v| v.topology_changes),
                    tcn_bpdus: view.map_or(0, |v| v.tcns),
                    root: view.map(|v| v.root_id.clone()).unwrap_or_default(),
                    last_sender: src_mac.to_string(),
                }),
                quiet,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        decode::stp,
        detect::{switch_ports::PortExpect, tests_support::Harness},
        model::{Iface, Mac, Segment},
    };

    fn seg() -> Segment {
        Segment {
            iface: Iface::named("eth2"),
            outer_vlan: None,
            inner_vlan: None,
        }
    }

    /// A configuration BPDU from root priority `prio` (high byte), hello 1 s.
    fn bpdu(prio: u8, tc: bool) -> Observation {
        let mut b = vec![0, 0, 0, 0, tc as u8, prio, 0, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        b.extend([prio, 0, 2, 0, 0, 0, 0, 1, 0x80, 1]);
        b.extend([0, 0, 0x14, 0, 1, 0, 0x0f, 0]);
        Observation::Switch {
            seg: seg(),
            src_mac: Mac([2, 0, 0, 0, 0, 1]),
            pdu: Box::new(SwitchPdu::Stp(stp::decode(&b, false).unwrap())),
        }
    }

    fn kinds(s: &[Signal]) -> Vec<&'static str> {
        s.iter().map(|s| s.kind.name()).collect()
    }

    #[test]
    fn a_new_root_is_a_change_the_first_is_not() {
        let mut h = Harness::new(Stp::new(SwitchConfig::default()));
        assert!(h.feed(&bpdu(0x80, false), SECOND).is_empty());
        let s = h.feed(&bpdu(0x10, false), 2 * SECOND);
        assert_eq!(kinds(&s), ["stp_root_changed"]);
        assert_eq!(s[0].evidence["before"], "32768/02:00:00:00:00:01");
        assert_eq!(s[0].evidence["now"], "4096/02:00:00:00:00:01");
        assert_eq!(s[0].subject.to_string(), "eth2 stp");
    }

    #[test]
    fn runs_of_topology_changes_count_once_each() {
        let cfg = SwitchConfig {
            churn_changes: 3,
            ..Default::default()
        };
        let mut h = Harness::new(Stp::new(cfg));
        let mut t = SECOND;
        let mut churned = false;
        for change in 0..3 {
            // One change: TC-flagged BPDUs every hello (1 s) for 8 s, then a quiet gap.
            for _ in 0..8 {
                let s = h.feed(&bpdu(0x80, true), t);
                churned |= kinds(&s).contains(&"stp_topology_churn");
                t += SECOND;
            }
            assert_eq!(churned, change == 2, "after change {change}");
            h.feed(&bpdu(0x80, false), t);
            t += 10 * SECOND;
        }
    }

    #[test]
    fn bpdus_on_an_edge_port() {
        let mut cfg = SwitchConfig::default();
        cfg.ports.insert(
            "eth2".into(),
            PortExpect {
                edge: true,
                ..Default::default()
            },
        );
        let mut h = Harness::new(Stp::new(cfg));
        let s = h.feed(&bpdu(0x80, false), SECOND);
        assert_eq!(kinds(&s), ["stp_bpdu_on_edge"]);
        assert_eq!(s[0].evidence["root"], "32768/02:00:00:00:00:01");
    }
}
