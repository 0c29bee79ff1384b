//! DHCP service health, aggregated for the metrics: each server's answer delays as a
//! histogram, transactions by outcome, unanswered DISCOVERs and REQUESTs, and offers per boot
//! server, per segment. Bounded: past `MAX_KEYS` new keys are not tracked (and counted).
//! Hash maps, not ordered ones: segments order by interface name, and a lookup per message
//! must not compare names; the exporter sorts at scrape time.
use std::net::Ipv4Addr;

use crate::model::{FastMap, Nanos, Segment};

use super::dhcp_transactions::{Outcome, Transaction, TxUpdate};

/// Upper bounds of the answer-delay histogram, in seconds.
pub const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// Keys kept per map at most.
pub const MAX_KEYS: usize = 1_024;

/// A histogram: per-bucket counts (not cumulative), the count and the sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hist {
    pub buckets: [u64; BUCKETS.len()],
    pub count: u64,
    pub sum_secs: f64,
}

impl Hist {
    pub fn observe(&mut self, secs: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum_secs += secs;
    }

    /// The quantile `q` (0..1) estimated from the buckets, as Prometheus's
    /// `histogram_quantile` does (linear within a bucket); None when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q * self.count as f64;
        let mut seen = 0u64;
        let mut lower = 0.0;
        for (i, n) in self.buckets.iter().enumerate() {
            if (seen + n) as f64 >= rank && *n > 0 {
                let within = (rank - seen as f64) / *n as f64;
                return Some(lower + (BUCKETS[i] - lower) * within);
            }
            seen += n;
            lower = BUCKETS[i];
        }
        Some(*BUCKETS.last().expect("buckets"))
    }
}

/// What a server offers to boot from.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BootOffer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_file: Option<String>,
}

#[derive(Debug, Default)]
pub struct DhcpHealth {
    /// (segment, server, answer kind) -> delays.
    pub response: FastMap<(Segment, Ipv4Addr, &'static str), Hist>,
    pub outcomes: FastMap<(Segment, Outcome), u64>,
    /// (segment, "discover" | "request" | "inform") -> unanswered transactions.
    pub unanswered: FastMap<(Segment, &'static str), u64>,
    /// (segment, boot server) -> offers naming it.
    pub boot_offers: FastMap<(Segment, String), u64>,
    /// (segment, server) -> the boot server and file of its latest offer that named one.
    pub boot_offer: FastMap<(Segment, Ipv4Addr), BootOffer>,
    /// Keys not tracked because a map was full.
    pub dropped: u64,
}

fn bump<K: std::hash::Hash + Eq>(m: &mut FastMap<K, u64>, k: K, dropped: &mut u64) {
    if let Some(v) = m.get_mut(&k) {
        *v += 1;
    } else if m.len() < MAX_KEYS {
        m.insert(k, 1);
    } else {
        *dropped += 1;
    }
}

impl DhcpHealth {
    /// Takes what one message did to its transaction.
    pub fn observe(&mut self, up: &TxUpdate, tx: Option<&Transaction>) {
        let Some(key) = up.key else { return };
        if let Some((server, kind, delay)) = up.answer {
            let k = (key.seg, server, kind);
            if !self.response.contains_key(&k) && self.response.len() >= MAX_KEYS {
                self.dropped += 1;
            } else {
                self.response
                    .entry(k)
                    .or_default()
                    .observe(delay as f64 / 1e9);
            }
            if kind == "offer" {
                if let Some(a) = tx.and_then(|t| t.answers.last()) {
                    if let Some(b) = &a.boot_server {
                        bump(
                            &mut self.boot_offers,
                            (key.seg, b.to_string()),
                            &mut self.dropped,
                        );
                    }
                    if a.boot_server.is_some() || a.boot_file.is_some() {
                        let offer = BootOffer {
                            boot_server: a.boot_server.as_deref().map(str::to_string),
                            boot_file: a.boot_file.as_deref().map(str::to_string),
                        };
                        let k = (key.seg, server);
                        if self.boot_offer.contains_key(&k) || self.boot_offer.len() < MAX_KEYS {
                            self.boot_offer.insert(k, offer);
                        } else {
                            self.dropped += 1;
                        }
                    }
                }
            }
        }
        if let Some(o) = up.ended {
            bump(&mut self.outcomes, (key.seg, o), &mut self.dropped);
        }
    }

    /// Takes a transaction that timed out.
    pub fn unanswered(&mut self, seg: Segment, tx: &Transaction) {
        let kind = if tx.request_at.is_some() {
            "request"
        } else {
            "discover"
        };
        bump(&mut self.unanswered, (seg, kind), &mut self.dropped);
        bump(
            &mut self.outcomes,
            (seg, Outcome::Unanswered),
            &mut self.dropped,
        );
    }

    /// The quantiles of a server's offer delays on a segment: (p50, p90, p99) in seconds.
    pub fn offer_quantiles(&self, seg: Segment, server: Ipv4Addr) -> Option<(f64, f64, f64)> {
        let h = self.response.get(&(seg, server, "offer"))?;
        Some((h.quantile(0.5)?, h.quantile(0.9)?, h.quantile(0.99)?))
    }
}

/// Nanoseconds as seconds, for evidence and rows.
pub fn secs(ns: Nanos) -> f64 {
    ns as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let mut h = Hist::default();
        for _ in 0..50 {
            h.observe(0.003);
        }
        for _ in 0..50 {
            h.observe(1.5);
        }
        assert_eq!(h.count, 100);
        // The 50th value is the last one in (0.001, 0.005].
        assert!((h.quantile(0.5).unwrap() - 0.005).abs() < 1e-9);
        let p90 = h.quantile(0.9).unwrap();
        assert!(p90 > 1.0 && p90 <= 2.0, "{p90}");
        assert_eq!(Hist::default().quantile(0.5), None);
    }
}
