//! l2_loop: the same group-addressed frame seen again and again within a short window, the
//! signature of a switching loop (or a broadcast storm from one sender). The kernel hashes the
//! first bytes of every broadcast and multicast frame and sends one loop event per frame and
//! window past its threshold; one finding per segment gathers them.

use super::{kind, secs, Context, Detector, FindingKind, Signal, Subject};
use crate::model::{Nanos, Observation};

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoopConfig {
    /// The finding closes after this long without another looping frame.
    pub quiet_secs: u64,
}

impl Default for LoopConfig {
    fn default() -> Self {
        LoopConfig { quiet_secs: 60 }
    }
}

/// One group-addressed frame coming round again and again.
#[derive(serde::Serialize)]
struct LoopEvidence {
    src_mac: crate::model::Mac,
    dst_mac: crate::model::Mac,
    ether_type: String,
    copies_in_window: u32,
    window_secs: f64,
}

pub struct L2Loop {
    cfg: LoopConfig,
}

impl L2Loop {
    pub fn new(cfg: LoopConfig) -> Self {
        L2Loop { cfg }
    }
}

impl Detector for L2Loop {
    fn name(&self) -> &'static str {
        "l2_loop"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::L2_LOOP]
    }

    fn observe(&mut self, obs: &Observation, _ctx: &Context<'_>, _now: Nanos) -> Vec<Signal> {
        let Observation::Loop {
            seg,
            src_mac,
            dst_mac,
            ether_type,
            count,
            window_ms,
        } = obs
        else {
            return vec![];
        };
        vec![Signal {
            kind: kind::L2_LOOP,
            subject: Subject::Segment(*seg),
            seg: *seg,
            packets: *count as u64,
            evidence: super::evidence(&LoopEvidence {
                src_mac: *src_mac,
                dst_mac: *dst_mac,
                ether_type: format!("{ether_type:#06x}"),
                copies_in_window: *count,
                window_secs: *window_ms as f64 / 1000.0,
            }),
            quiet: secs(self.cfg.quiet_secs),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        detect::tests_support::{arp, seg, Harness},
        model::Mac,
    };

    #[test]
    fn a_loop_event_is_one_finding_per_segment() {
        let mut h = Harness::new(L2Loop::new(LoopConfig::default()));
        let obs = |src: u8| Observation::Loop {
            seg: seg(),
            src_mac: Mac([2, 0, 0, 0, 0, src]),
            dst_mac: Mac([0xff; 6]),
            ether_type: 0x0806,
            count: 201,
            window_ms: 1000,
        };
        let a = h.feed(&obs(1), 1);
        let b = h.feed(&obs(2), 2);
        assert_eq!(a.len(), 1);
        assert_eq!(
            a[0].subject, b[0].subject,
            "two looping frames, one segment"
        );
        assert_eq!(a[0].evidence["ether_type"], "0x0806");
        assert!(h
            .feed(
                &arp(Mac([2, 0, 0, 0, 0, 1]), "10.0.0.1".parse().unwrap()),
                3
            )
            .is_empty());
    }
}
