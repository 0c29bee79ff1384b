//! mac_changed and mac_flip_flop: the device table saw an IP move to another MAC, or move back
//! to the MAC it had recently (arpwatch's "changed ethernet address" and "flip flop").

use super::{kind, secs, Context, Detector, FindingKind, Signal, Subject};
use crate::{
    model::{Nanos, Observation},
    state::Change,
};

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MacChangeConfig {
    /// A finding closes after this long without another change.
    pub quiet_secs: u64,
}

impl Default for MacChangeConfig {
    fn default() -> Self {
        MacChangeConfig { quiet_secs: 600 }
    }
}

/// An address that moved from one MAC to another.
#[derive(serde::Serialize)]
struct ChangeEvidence {
    ip: std::net::Ipv4Addr,
    old_mac: crate::model::Mac,
    new_mac: crate::model::Mac,
    /// MAC changes of this address the device table has counted.
    changes: u32,
}

pub struct MacChange {
    cfg: MacChangeConfig,
}

impl MacChange {
    pub fn new(cfg: MacChangeConfig) -> Self {
        MacChange { cfg }
    }
}

impl Detector for MacChange {
    fn name(&self) -> &'static str {
        "mac_change"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::MAC_CHANGED, kind::MAC_FLIP_FLOP]
    }

    fn observe(&mut self, obs: &Observation, ctx: &Context<'_>, _now: Nanos) -> Vec<Signal> {
        let (kind, old) = match ctx.change {
            Some(Change::Moved { old_mac }) => (kind::MAC_CHANGED, old_mac),
            Some(Change::FlipFlop { old_mac }) => (kind::MAC_FLIP_FLOP, old_mac),
            _ => return vec![],
        };
        let (seg, ip, mac) = match obs {
            Observation::Arp { seg, ip, mac, .. } => (*seg, *ip, *mac),
            Observation::Dhcp {
                seg, msg, src_mac, ..
            } => (*seg, msg.yiaddr, msg.chaddr.unwrap_or(*src_mac)),
            // IPv6 moves are the neighbour table's; signals are not bindings.
            _ => return vec![],
        };
        let changes = ctx
            .table
            .get(&crate::state::DeviceKey { seg, ip })
            .map_or(0, |d| d.mac_changes);
        vec![Signal {
            kind,
            subject: Subject::Address(seg, ip),
            seg,
            packets: 1,
            evidence: super::evidence(&ChangeEvidence {
                ip,
                old_mac: old,
                new_mac: mac,
                changes,
            }),
            quiet: secs(self.cfg.quiet_secs),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        detect::tests_support::{arp, Harness},
        model::{Mac, SECOND},
    };
    use std::net::Ipv4Addr;

    #[test]
    fn change_then_flip_flop() {
        let mut h = Harness::new(MacChange::new(MacChangeConfig::default()));
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        let (a, b) = (Mac([2, 0, 0, 0, 0, 1]), Mac([2, 0, 0, 0, 0, 2]));
        assert!(h.feed(&arp(a, ip), SECOND).is_empty());
        assert!(h.feed(&arp(a, ip), 2 * SECOND).is_empty());
        let s = h.feed(&arp(b, ip), 3 * SECOND);
        assert_eq!(s[0].kind, kind::MAC_CHANGED);
        assert_eq!(s[0].evidence["old_mac"], "02:00:00:00:00:01");
        let s = h.feed(&arp(a, ip), 4 * SECOND);
        assert_eq!(s[0].kind, kind::MAC_FLIP_FLOP);
        assert_eq!(s[0].evidence["changes"], 2);
    }
}
