//! mac_collision: one MAC active on more than one interface or VLAN at once, as cloned VMs
//! are. Routers that use one MAC on every VLAN of a trunk are legitimate: list them in
//! `ignore_macs`.
use std::num::NonZeroUsize;

use lru::LruCache;
use serde_json::json;

use super::{kind, secs, Context, Detector, Signal};
use crate::model::{Mac, Nanos, Observation, Segment};

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MacCollisionConfig {
    /// Seen on two segments within this many seconds counts as "at once".
    pub window_secs: u64,
    pub quiet_secs: u64,
    /// MACs that legitimately live on several segments (routers, the rack controller).
    pub ignore_macs: Vec<String>,
    pub max_tracked: usize,
}

impl Default for MacCollisionConfig {
    fn default() -> Self {
        MacCollisionConfig {
            window_secs: 300,
            quiet_secs: 900,
            ignore_macs: Vec::new(),
            max_tracked: 100_000,
        }
    }
}

pub struct MacCollision {
    cfg: MacCollisionConfig,
    ignore: Vec<String>,
    seen: LruCache<Mac, Vec<(Segment, Nanos)>>,
}

impl MacCollision {
    pub fn new(cfg: MacCollisionConfig) -> Self {
        let ignore = cfg
            .ignore_macs
            .iter()
            .map(|m| m.to_ascii_lowercase())
            .collect();
        let cap = NonZeroUsize::new(cfg.max_tracked.max(1)).expect("non-zero");
        MacCollision {
            cfg,
            ignore,
            seen: LruCache::new(cap),
        }
    }
}

impl Detector for MacCollision {
    fn observe(&mut self, obs: &Observation, _ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        let (seg, mac) = match obs {
            Observation::Arp { seg, mac, .. } => (*seg, *mac),
            Observation::Dhcp { seg, src_mac, .. } => (*seg, *src_mac),
        };
        if mac.0[0] & 1 != 0 || self.ignore.contains(&mac.to_string()) {
            return vec![];
        }
        let window = secs(self.cfg.window_secs);
        let segs = self.seen.get_or_insert_mut(mac, Vec::new);
        segs.retain(|(s, t)| *s != seg && now.saturating_sub(*t) <= window);
        segs.push((seg, now));
        if segs.len() > 8 {
            segs.remove(0);
        }
        if segs.len() < 2 {
            return vec![];
        }
        let list: Vec<_> = segs
            .iter()
            .map(|(s, t)| json!({ "ifindex": s.ifindex, "vlan": s.vlan_label(), "last_seen": t }))
            .collect();
        vec![Signal {
            kind: kind::MAC_COLLISION,
            subject: mac.to_string(),
            seg,
            packets: 1,
            evidence: json!({ "mac": mac, "segments": list }),
            quiet: secs(self.cfg.quiet_secs),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        detect::tests_support::{arp_on, Harness},
        model::SECOND,
    };
    use std::net::Ipv4Addr;

    fn seg(vlan: u16) -> Segment {
        Segment {
            ifindex: 2,
            outer_vlan: Some(vlan),
            inner_vlan: None,
        }
    }

    #[test]
    fn same_mac_on_two_vlans_within_window() {
        let mac = Mac([2, 0, 0, 0, 0, 9]);
        let mut h = Harness::new(MacCollision::new(MacCollisionConfig::default()));
        assert!(h
            .feed(&arp_on(seg(10), mac, Ipv4Addr::new(10, 0, 0, 1)), 0)
            .is_empty());
        let s = h.feed(
            &arp_on(seg(20), mac, Ipv4Addr::new(10, 0, 1, 1)),
            300 * SECOND,
        );
        assert_eq!(s.len(), 1, "exactly at the window edge");
        assert_eq!(s[0].evidence["segments"].as_array().unwrap().len(), 2);
        let mut h = Harness::new(MacCollision::new(MacCollisionConfig::default()));
        h.feed(&arp_on(seg(10), mac, Ipv4Addr::new(10, 0, 0, 1)), 0);
        assert!(h
            .feed(
                &arp_on(seg(20), mac, Ipv4Addr::new(10, 0, 1, 1)),
                300 * SECOND + 1
            )
            .is_empty());
    }

    #[test]
    fn ignored_macs_and_same_segment_are_quiet() {
        let mac = Mac([2, 0, 0, 0, 0, 9]);
        let mut h = Harness::new(MacCollision::new(MacCollisionConfig {
            ignore_macs: vec!["02:00:00:00:00:09".into()],
            ..Default::default()
        }));
        h.feed(&arp_on(seg(10), mac, Ipv4Addr::new(10, 0, 0, 1)), 0);
        assert!(h
            .feed(&arp_on(seg(20), mac, Ipv4Addr::new(10, 0, 1, 1)), SECOND)
            .is_empty());
        let mut h = Harness::new(MacCollision::new(MacCollisionConfig::default()));
        h.feed(&arp_on(seg(10), mac, Ipv4Addr::new(10, 0, 0, 1)), 0);
        assert!(h
            .feed(&arp_on(seg(10), mac, Ipv4Addr::new(10, 0, 0, 2)), SECOND)
            .is_empty());
    }
}
