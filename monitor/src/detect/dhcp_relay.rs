//! `dhcp_relay_changed`: a segment's relays (the giaddr of its DHCP traffic) changed: a
//! new relay joined relays known for at least `settle_secs`. Information, not an alarm, but
//! it explains outages (a relay moved to another router, a second one answering).
use std::net::Ipv4Addr;

use super::{kind, secs, Context, Detector, FindingKind, Signal, Subject};
use crate::model::{FastMap, Nanos, Observation, Segment};

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    pub settle_secs: u64,
    pub quiet_secs: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            settle_secs: 60,
            quiet_secs: 3_600,
        }
    }
}

const PER_SEGMENT: usize = 16;
const MAX_SEGMENTS: usize = 4_096;

#[derive(serde::Serialize)]
struct Evidence {
    new_relay: Ipv4Addr,
    known_relays: Vec<Ipv4Addr>,
    known_since: Nanos,
}

pub struct DhcpRelay {
    cfg: RelayConfig,
    /// Per segment: each relay and when it was first seen.
    relays: FastMap<Segment, Vec<(Ipv4Addr, Nanos)>>,
}

impl DhcpRelay {
    pub fn new(cfg: RelayConfig) -> Self {
        DhcpRelay {
            cfg,
            relays: FastMap::default(),
        }
    }
}

impl Detector for DhcpRelay {
    fn name(&self) -> &'static str {
        "dhcp_relay"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::DHCP_RELAY_CHANGED]
    }

    fn observe(&mut self, obs: &Observation, _ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        let Observation::Dhcp { seg, msg, .. } = obs else {
            return vec![];
        };
        let relay = msg.giaddr;
        if relay.is_unspecified() {
            return vec![];
        }
        if !self.relays.contains_key(seg) && self.relays.len() >= MAX_SEGMENTS {
            return vec![];
        }
        let known = self.relays.entry(*seg).or_default();
        if known.iter().any(|r| r.0 == relay) {
            return vec![];
        }
        let since = known.iter().map(|r| r.1).min();
        let settled = since.is_some_and(|t| now.saturating_sub(t) >= secs(self.cfg.settle_secs));
        let before: Vec<Ipv4Addr> = known.iter().map(|r| r.0).collect();
        if known.len() < PER_SEGMENT {
            known.push((relay, now));
        }
        if !settled {
            return vec![];
        }
        vec![Signal {
            kind: kind::DHCP_RELAY_CHANGED,
            subject: Subject::Segment(*seg),
            seg: *seg,
            packets: 1,
            evidence: super::evidence(&Evidence {
                new_relay: relay,
                known_relays: before,
                known_since: since.unwrap_or(0),
            }),
            quiet: secs(self.cfg.quiet_secs),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        detect::tests_support::{dhcp_msg, Harness},
        model::{Mac, SECOND},
    };

    fn via(relay: [u8; 4], xid: u32) -> Observation {
        let mut o = dhcp_msg(Mac([2, 0, 0, 0, 9, 9]), 1, xid);
        if let Observation::Dhcp { msg, .. } = &mut o {
            msg.giaddr = Ipv4Addr::from(relay);
        }
        o
    }

    #[test]
    fn a_new_relay_after_the_known_ones_settled_is_a_change() {
        let mut h = Harness::new(DhcpRelay::new(RelayConfig::default()));
        assert!(h.feed(&via([10, 1, 0, 1], 1), SECOND).is_empty());
        // Two relays from the start are the segment's relays, not a change.
        assert!(h.feed(&via([10, 1, 0, 2], 2), 2 * SECOND).is_empty());
        assert!(h.feed(&via([10, 1, 0, 1], 3), 100 * SECOND).is_empty());
        let s = h.feed(&via([10, 9, 0, 1], 4), 120 * SECOND);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].evidence["new_relay"], "10.9.0.1");
        assert_eq!(s[0].evidence["known_relays"].as_array().unwrap().len(), 2);
    }
}
