//! apipa: a host using 169.254.0.0/16, which means DHCP failed for it.

use super::{kind, secs, Context, Detector, FindingKind, Signal, Subject};
use crate::model::{is_apipa, Nanos, Observation};

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApipaConfig {
    pub quiet_secs: u64,
}

impl Default for ApipaConfig {
    fn default() -> Self {
        ApipaConfig { quiet_secs: 600 }
    }
}

/// A host that gave itself a link-local address.
#[derive(serde::Serialize)]
struct ApipaEvidence {
    ip: std::net::Ipv4Addr,
    mac: crate::model::Mac,
    /// Still probing for it (RFC 5227), not yet using it.
    probe: bool,
}

pub struct Apipa {
    cfg: ApipaConfig,
}

impl Apipa {
    pub fn new(cfg: ApipaConfig) -> Self {
        Apipa { cfg }
    }
}

impl Detector for Apipa {
    fn name(&self) -> &'static str {
        "apipa"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::APIPA]
    }

    fn observe(&mut self, obs: &Observation, _ctx: &Context<'_>, _now: Nanos) -> Vec<Signal> {
        match obs {
            Observation::Arp {
                seg,
                ip,
                mac,
                probe,
                ..
            } if is_apipa(*ip) => vec![Signal {
                kind: kind::APIPA,
                subject: Subject::Mac(*seg, *mac),
                seg: *seg,
                packets: 1,
                evidence: super::evidence(&ApipaEvidence {
                    ip: *ip,
                    mac: *mac,
                    probe: *probe,
                }),
                quiet: secs(self.cfg.quiet_secs),
            }],
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        detect::tests_support::{arp, Harness},
        model::Mac,
    };
    use std::net::Ipv4Addr;

    #[test]
    fn link_local_only() {
        let mut h = Harness::new(Apipa::new(ApipaConfig::default()));
        let mac = Mac([2, 0, 0, 0, 0, 1]);
        assert_eq!(h.feed(&arp(mac, Ipv4Addr::new(169, 254, 3, 4)), 1).len(), 1);
        assert!(h
            .feed(&arp(mac, Ipv4Addr::new(169, 253, 3, 4)), 2)
            .is_empty());
        assert!(h
            .feed(&arp(mac, Ipv4Addr::new(10, 254, 3, 4)), 3)
            .is_empty());
    }
}
