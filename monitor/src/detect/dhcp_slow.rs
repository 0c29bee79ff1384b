//! `dhcp_slow`: the median delay from DISCOVER to the first OFFER on a segment stays above
//! `threshold_ms` over the window (at least `min_samples` transactions): a server behind a
//! slow relay, an overloaded one, or a port in STP listening state eating the first tries.
//! Offers are only recorded as they come; the median is taken once a tick, so a burst of
//! offers costs no sort each.
use std::{collections::VecDeque, net::Ipv4Addr};

use super::{kind, secs, Context, Detector, FindingKind, Signal, Subject};
use crate::model::{FastMap, Nanos, Observation, Segment};

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlowConfig {
    pub threshold_ms: u64,
    pub window_secs: u64,
    pub min_samples: usize,
    pub quiet_secs: u64,
}

impl Default for SlowConfig {
    fn default() -> Self {
        SlowConfig {
            threshold_ms: 1_000,
            window_secs: 300,
            min_samples: 3,
            quiet_secs: 300,
        }
    }
}

const PER_SEGMENT: usize = 256;
const MAX_SEGMENTS: usize = 4_096;

#[derive(serde::Serialize)]
struct Evidence {
    median_ms: f64,
    threshold_ms: u64,
    samples: usize,
    /// Each server's median first-offer delay.
    servers: Vec<(Ipv4Addr, f64)>,
    window_secs: u64,
}

pub struct DhcpSlow {
    cfg: SlowConfig,
    /// First-offer delays per segment: (when, server, delay), oldest first.
    delays: FastMap<Segment, VecDeque<(Nanos, Ipv4Addr, Nanos)>>,
}

impl DhcpSlow {
    pub fn new(cfg: SlowConfig) -> Self {
        DhcpSlow {
            cfg,
            delays: FastMap::default(),
        }
    }
}

fn median_ms(mut v: Vec<Nanos>) -> f64 {
    v.sort_unstable();
    let n = v.len();
    let m = if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0
    };
    m / 1e6
}

impl Detector for DhcpSlow {
    fn name(&self) -> &'static str {
        "dhcp_slow"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::DHCP_SLOW]
    }

    /// Records the delay of each transaction's first offer; the median is judged once a tick.
    fn observe(&mut self, obs: &Observation, ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        let (Some((server, "offer", delay)), Some(key)) = (ctx.tx.answer, ctx.tx.key) else {
            return vec![];
        };
        // Only each transaction's first offer: later ones say how slow the others were.
        let first = ctx
            .txs
            .get(&key)
            .is_some_and(|t| t.answers.iter().filter(|a| a.kind == "offer").count() == 1);
        if !first || !matches!(obs, Observation::Dhcp { .. }) {
            return vec![];
        }
        let seg = key.seg;
        if !self.delays.contains_key(&seg) && self.delays.len() >= MAX_SEGMENTS {
            return vec![];
        }
        let d = self.delays.entry(seg).or_default();
        if d.len() >= PER_SEGMENT {
            d.pop_front();
        }
        d.push_back((now, server, delay));
        vec![]
    }

    fn tick(&mut self, now: Nanos) -> Vec<Signal> {
        let window = secs(self.cfg.window_secs);
        let mut out = Vec::new();
        self.delays.retain(|seg, d| {
            while d.front().is_some_and(|x| now.saturating_sub(x.0) > window) {
                d.pop_front();
            }
            if d.len() < self.cfg.min_samples.max(1) {
                return !d.is_empty();
            }
            let median = median_ms(d.iter().map(|x| x.2).collect());
            if median > self.cfg.threshold_ms as f64 {
                let mut per: FastMap<Ipv4Addr, Vec<Nanos>> = FastMap::default();
                for x in d.iter() {
                    per.entry(x.1).or_default().push(x.2);
                }
                let mut servers: Vec<(Ipv4Addr, f64)> =
                    per.into_iter().map(|(s, v)| (s, median_ms(v))).collect();
                servers.sort_by_key(|s| s.0);
                out.push(Signal {
                    kind: kind::DHCP_SLOW,
                    subject: Subject::Segment(*seg),
                    seg: *seg,
                    packets: 1,
                    evidence: super::evidence(&Evidence {
                        median_ms: median,
                        threshold_ms: self.cfg.threshold_ms,
                        samples: d.len(),
                        servers,
                        window_secs: self.cfg.window_secs,
                    }),
                    quiet: secs(self.cfg.quiet_secs),
                });
            }
            true
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        detect::tests_support::{dhcp_msg, Harness},
        model::{Mac, SECOND},
    };

    #[test]
    fn a_median_first_offer_over_the_threshold_is_slow() {
        let mut h = Harness::new(DhcpSlow::new(SlowConfig::default()));
        let srv = Mac([2, 0, 0, 0, 0, 1]);
        for (n, delay_ms) in [(1u32, 1500u64), (2, 1600), (3, 200)] {
            let t = n as u64 * 10 * SECOND;
            // The client's DISCOVER carries chaddr 02:00:00:00:09:09, as the server's offer.
            h.feed(&dhcp_msg(Mac([2, 0, 0, 0, 9, 9]), 1, n), t);
            assert!(h
                .feed(&dhcp_msg(srv, 2, n), t + delay_ms * 1_000_000)
                .is_empty());
            if n < 3 {
                assert!(
                    h.detector.tick(t + 2 * SECOND).is_empty(),
                    "too few samples yet"
                );
            }
        }
        let last = h.detector.tick(32 * SECOND);
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].evidence["median_ms"], 1500.0);
        assert_eq!(last[0].evidence["servers"][0][0], "10.0.0.1");
        // A second server's later offer to the same client is not a first offer.
        h.feed(&dhcp_msg(Mac([2, 0, 0, 0, 0, 2]), 2, 3), 33 * SECOND);
        assert_eq!(h.detector.tick(34 * SECOND)[0].evidence["samples"], 3);
    }
}
