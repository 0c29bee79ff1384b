//! l2_loop: the same group-addressed frame seen again and again within a short window, the
//! signature of a switching loop (or a broadcast storm from one sender). The kernel hashes the
//! first bytes of every broadcast and multicast frame and sends one loop event per frame and
//! window past its threshold; one finding per segment gathers them.
//!
//! A DAD probe that comes back with its own MAC and nonce within `dad_echo_ms` is the
//! prober's frame looped back (RFC 7527) and counts too: `dad_echoes` of them within the
//! window make the finding, long before a storm crosses the kernel's frame threshold.
use std::{collections::VecDeque, net::Ipv6Addr};

use super::{kind, secs, Context, Detector, FindingKind, Signal, Subject};
use crate::model::{FastMap, Mac, Nanos, Observation, Segment};

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoopConfig {
    /// The finding closes after this long without another looping frame.
    pub quiet_secs: u64,
    /// A DAD probe seen again (same MAC and nonce) within this many ms is an echo.
    pub dad_echo_ms: u64,
    /// Echoed DAD probes on a segment within dad_echo_window_secs that make a loop (0: off).
    pub dad_echoes: u32,
    pub dad_echo_window_secs: u64,
}

impl Default for LoopConfig {
    fn default() -> Self {
        LoopConfig {
            quiet_secs: 60,
            dad_echo_ms: 500,
            dad_echoes: 2,
            dad_echo_window_secs: 60,
        }
    }
}

/// DAD probes remembered for echo detection (the newest; one per prober and target).
const MAX_PROBES: usize = 4_096;

/// A DAD probe that came back.
#[derive(serde::Serialize)]
struct EchoEvidence {
    cause: &'static str,
    address: Ipv6Addr,
    mac: Mac,
    nonce: String,
    echoes_in_window: usize,
    window_secs: u64,
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
    /// The last probe per (segment, target, MAC): its nonce and when.
    probes: FastMap<(Segment, Ipv6Addr, Mac), ([u8; 6], Nanos)>,
    /// Echo times per segment, oldest first.
    echoes: FastMap<Segment, VecDeque<Nanos>>,
    /// When `probes` was last swept.
    swept: Nanos,
}

impl L2Loop {
    pub fn new(cfg: LoopConfig) -> Self {
        L2Loop {
            cfg,
            probes: FastMap::default(),
            echoes: FastMap::default(),
            swept: 0,
        }
    }

    fn dad_probe(
        &mut self,
        seg: Segment,
        target: Ipv6Addr,
        mac: Mac,
        nonce: [u8; 6],
        now: Nanos,
    ) -> Option<Signal> {
        let echo_ns = self.cfg.dad_echo_ms.saturating_mul(1_000_000);
        let key = (seg, target, mac);
        let echo = self
            .probes
            .get(&key)
            .is_some_and(|(n, t)| *n == nonce && now.saturating_sub(*t) <= echo_ns);
        if self.probes.len() >= MAX_PROBES
            && !self.probes.contains_key(&key)
            && now.saturating_sub(self.swept) > echo_ns
        {
            // Swept at most once per echo window: a probe flood costs no sweep per probe.
            self.swept = now;
            self.probes
                .retain(|_, (_, t)| now.saturating_sub(*t) <= echo_ns);
        }
        if self.probes.len() < MAX_PROBES || self.probes.contains_key(&key) {
            self.probes.insert(key, (nonce, now));
        }
        if !echo || self.cfg.dad_echoes == 0 {
            return None;
        }
        let window = secs(self.cfg.dad_echo_window_secs);
        if self.echoes.len() >= MAX_PROBES && !self.echoes.contains_key(&seg) {
            return None;
        }
        let list = self.echoes.entry(seg).or_default();
        while list
            .front()
            .is_some_and(|t| now.saturating_sub(*t) > window)
        {
            list.pop_front();
        }
        if list.len() < MAX_PROBES {
            list.push_back(now);
        }
        (list.len() >= self.cfg.dad_echoes as usize).then(|| Signal {
            kind: kind::L2_LOOP,
            subject: Subject::Segment(seg),
            seg,
            packets: 1,
            evidence: super::evidence(&EchoEvidence {
                cause: "dad_probe_echoed",
                address: target,
                mac,
                nonce: crate::capture::hex(&nonce),
                echoes_in_window: list.len(),
                window_secs: self.cfg.dad_echo_window_secs,
            }),
            quiet: secs(self.cfg.quiet_secs),
        })
    }
}

impl Detector for L2Loop {
    fn name(&self) -> &'static str {
        "l2_loop"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::L2_LOOP]
    }

    fn observe(&mut self, obs: &Observation, _ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        if let Observation::DadProbe {
            seg,
            target,
            mac,
            nonce: Some(nonce),
        } = obs
        {
            return self
                .dad_probe(*seg, *target, *mac, *nonce, now)
                .into_iter()
                .collect();
        }
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

    #[test]
    fn a_dad_probe_echoed_back_counts_as_a_loop_and_a_retransmission_does_not() {
        let mut h = Harness::new(L2Loop::new(LoopConfig::default()));
        let probe = Observation::DadProbe {
            seg: seg(),
            target: "fe80::1".parse().unwrap(),
            mac: Mac([2, 0, 0, 0, 0, 1]),
            nonce: Some([5; 6]),
        };
        let s = crate::model::SECOND;
        assert!(h.feed(&probe, s).is_empty());
        // Linux retransmits with the same nonce a second later: not an echo.
        assert!(h.feed(&probe, 2 * s).is_empty());
        assert!(h.feed(&probe, 2 * s + 1_000_000).is_empty(), "one echo");
        let out = h.feed(&probe, 2 * s + 2_000_000);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, kind::L2_LOOP);
        assert_eq!(out[0].evidence["cause"], "dad_probe_echoed");
        assert_eq!(out[0].evidence["nonce"], "050505050505");
    }
}
