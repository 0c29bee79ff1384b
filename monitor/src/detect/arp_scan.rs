//! arp_scan: one MAC asking for many distinct addresses, as nmap's host discovery does. The
//! kernel counts distinct targets per sender in a hashed bitmap and sends one scan event per
//! window; this detector turns it into a finding per scanner.

use super::{kind, secs, Context, Detector, FindingKind, Signal, Subject};
use crate::model::{Mac, Nanos, Observation};

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArpScanConfig {
    /// Senders never reported (routers and rack controllers that ARP for many hosts).
    pub ignore_macs: Vec<Mac>,
    /// The finding closes after this long without another scan window.
    pub quiet_secs: u64,
}

impl Default for ArpScanConfig {
    fn default() -> Self {
        ArpScanConfig {
            ignore_macs: Vec::new(),
            quiet_secs: 300,
        }
    }
}

/// One sender asking for many addresses in one window.
#[derive(serde::Serialize)]
struct ScanEvidence {
    mac: crate::model::Mac,
    sender_ip: std::net::Ipv4Addr,
    /// The kernel's hashed bitmap estimates from below.
    distinct_targets_at_least: u32,
    requests: u32,
    window_secs: f64,
}

pub struct ArpScan {
    cfg: ArpScanConfig,
}

impl ArpScan {
    pub fn new(cfg: ArpScanConfig) -> Self {
        ArpScan { cfg }
    }
}

impl Detector for ArpScan {
    fn name(&self) -> &'static str {
        "arp_scan"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::ARP_SCAN]
    }

    fn observe(&mut self, obs: &Observation, _ctx: &Context<'_>, _now: Nanos) -> Vec<Signal> {
        let Observation::Scan {
            seg,
            mac,
            ip,
            targets,
            requests,
            window_ms,
        } = obs
        else {
            return vec![];
        };
        if self.cfg.ignore_macs.contains(mac) {
            return vec![];
        }
        vec![Signal {
            kind: kind::ARP_SCAN,
            subject: Subject::Mac(*seg, *mac),
            seg: *seg,
            packets: *requests as u64,
            evidence: super::evidence(&ScanEvidence {
                mac: *mac,
                sender_ip: *ip,
                distinct_targets_at_least: *targets,
                requests: *requests,
                window_secs: *window_ms as f64 / 1000.0,
            }),
            quiet: secs(self.cfg.quiet_secs),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tests_support::{seg, Harness};
    use std::net::Ipv4Addr;

    fn scan(mac: Mac) -> Observation {
        Observation::Scan {
            seg: seg(),
            mac,
            ip: Ipv4Addr::new(192, 168, 1, 71),
            targets: 64,
            requests: 70,
            window_ms: 10_000,
        }
    }

    #[test]
    fn a_scan_event_is_a_finding_about_its_sender_unless_ignored() {
        let m = Mac([0, 0x16, 0xcb, 0x92, 0x6e, 0x21]);
        let mut h = Harness::new(ArpScan::new(ArpScanConfig::default()));
        let s = h.feed(&scan(m), 1);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].subject.to_string(), "eth2/vlan10 00:16:cb:92:6e:21");
        assert_eq!(s[0].evidence["distinct_targets_at_least"], 64);
        let mut h = Harness::new(ArpScan::new(ArpScanConfig {
            ignore_macs: vec![m],
            ..Default::default()
        }));
        assert!(h.feed(&scan(m), 1).is_empty());
    }
}
