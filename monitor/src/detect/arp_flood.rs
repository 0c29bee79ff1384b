//! arp_flood: many new bindings per second on one segment, as a random-MAC flood makes. While
//! it is open the device table puts the segment's new rows in its probation tier (evicted
//! first), and the engine folds the per-binding findings the flood causes into its evidence.

use super::{kind, lazy_lru, secs, Context, Detector, FindingKind, Signal, Subject};
use crate::{
    model::{Mac, Nanos, Observation, Segment, SECOND},
    state::Change,
};

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArpFloodConfig {
    /// New bindings on one segment within one second that make a flood. A rack's mass PXE
    /// boot brings a few hundred; a flood tool brings tens of thousands.
    pub new_per_sec: u64,
    /// The finding closes after this long below the threshold.
    pub quiet_secs: u64,
}

impl Default for ArpFloodConfig {
    fn default() -> Self {
        ArpFloodConfig {
            new_per_sec: 2_000,
            quiet_secs: 60,
        }
    }
}

/// Segments tracked at most (each costs a few dozen bytes).
const MAX_SEGMENTS: usize = 4_096;
/// MACs kept as a sample of the flood.
const SAMPLES: usize = 5;

struct Window {
    start: Nanos,
    count: u64,
    /// New bindings since the flood began (while it stays above the threshold).
    total: u64,
    peak: u64,
    sample: Vec<Mac>,
}

/// A flood of new bindings on one segment.
#[derive(serde::Serialize)]
struct FloodEvidence<'a> {
    new_bindings_per_sec: u64,
    peak_per_sec: u64,
    /// Since the flood began.
    new_bindings: u64,
    threshold_per_sec: u64,
    sample_macs: &'a [crate::model::Mac],
    table_devices: usize,
}

pub struct ArpFlood {
    cfg: ArpFloodConfig,
    windows: crate::model::FastLru<Segment, Window>,
}

impl ArpFlood {
    pub fn new(cfg: ArpFloodConfig) -> Self {
        ArpFlood {
            cfg,
            windows: lazy_lru(MAX_SEGMENTS),
        }
    }
}

impl Detector for ArpFlood {
    fn name(&self) -> &'static str {
        "arp_flood"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::ARP_FLOOD]
    }

    fn observe(&mut self, obs: &Observation, ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        let (Some(Change::New), Observation::Arp { seg, mac, .. }) = (ctx.change, obs) else {
            return vec![];
        };
        let w = self.windows.get_or_insert_mut(*seg, || Window {
            start: now,
            count: 0,
            total: 0,
            peak: 0,
            sample: Vec::new(),
        });
        if now.saturating_sub(w.start) >= SECOND {
            if w.count < self.cfg.new_per_sec {
                w.total = 0;
                w.sample.clear();
            }
            w.start = now;
            w.count = 0;
        }
        w.count += 1;
        w.total += 1;
        w.peak = w.peak.max(w.count);
        if w.sample.len() < SAMPLES {
            w.sample.push(*mac);
        }
        // Signal on crossing the threshold and then once per thousand: the finding stays
        // fresh without building evidence for every frame of a flood.
        if w.count < self.cfg.new_per_sec
            || (w.count != self.cfg.new_per_sec && !w.count.is_multiple_of(1_000))
        {
            return vec![];
        }
        vec![Signal {
            kind: kind::ARP_FLOOD,
            subject: Subject::Segment(*seg),
            seg: *seg,
            packets: w.count,
            evidence: super::evidence(&FloodEvidence {
                new_bindings_per_sec: w.count,
                peak_per_sec: w.peak,
                new_bindings: w.total,
                threshold_per_sec: self.cfg.new_per_sec,
                sample_macs: &w.sample,
                table_devices: ctx.table.len(),
            }),
            quiet: secs(self.cfg.quiet_secs),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tests_support::{arp, Harness};
    use std::net::Ipv4Addr;

    fn station(i: u32) -> (Mac, Ipv4Addr) {
        let b = i.to_be_bytes();
        (
            Mac([2, 0x10, b[0], b[1], b[2], b[3]]),
            Ipv4Addr::from(0x0a00_0000 | i),
        )
    }

    fn cfg() -> ArpFloodConfig {
        ArpFloodConfig {
            new_per_sec: 100,
            quiet_secs: 5,
        }
    }

    #[test]
    fn many_new_bindings_within_a_second_open_one_flood_per_segment() {
        let mut h = Harness::new(ArpFlood::new(cfg()));
        let mut signals = Vec::new();
        for i in 0..250 {
            let (mac, ip) = station(i);
            signals.extend(h.feed(&arp(mac, ip), SECOND + i as u64 * 1_000_000));
        }
        assert_eq!(signals.len(), 1, "one signal on crossing, none per binding");
        let s = &signals[0];
        assert_eq!(s.kind, kind::ARP_FLOOD);
        assert_eq!(s.subject.to_string(), "eth2/vlan10");
        assert_eq!(s.evidence["new_bindings_per_sec"], 100);
        assert_eq!(s.evidence["sample_macs"].as_array().unwrap().len(), SAMPLES);
    }

    #[test]
    fn just_below_the_threshold_or_spread_over_seconds_is_no_flood() {
        let mut h = Harness::new(ArpFlood::new(cfg()));
        for i in 0..99 {
            let (mac, ip) = station(i);
            assert!(h.feed(&arp(mac, ip), SECOND).is_empty());
        }
        // 99 per second for three seconds: never 100 within one.
        for i in 99..297 {
            let (mac, ip) = station(i);
            let t = 2 * SECOND + (i as u64 - 99) / 99 * SECOND;
            assert!(h.feed(&arp(mac, ip), t).is_empty(), "binding {i}");
        }
    }

    #[test]
    fn refreshes_are_not_new_bindings() {
        let mut h = Harness::new(ArpFlood::new(cfg()));
        let (mac, ip) = station(1);
        for i in 0..500 {
            assert!(h.feed(&arp(mac, ip), SECOND + i).is_empty());
        }
    }
}
