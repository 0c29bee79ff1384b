//! The detector registry: the one list of detectors, each built from its own section of the
//! engine config. Adding a detector is its module plus one line here. On a reload, a detector
//! whose section did not change keeps its windows and memory; only changed ones start over.
use serde_json::Value;

use super::{
    apipa::Apipa, arp_flood::ArpFlood, arp_scan::ArpScan, dhcp::DhcpServerWatch, dhcp::DhcpStorm,
    dhcp_nak_storm::DhcpNakStorm, dhcp_pool::DhcpPool, dhcp_relay::DhcpRelay, dhcp_slow::DhcpSlow,
    dhcp_unanswered::DhcpUnanswered, dhcpv6::Dhcpv6Servers, duplicate_ip::DuplicateIp,
    ipv6_dad::Ipv6Dad, ipv6_lifetime_spoof::Ipv6LifetimeSpoof, ipv6_prefix::Ipv6Prefix,
    ipv6_ra_consistency::Ipv6RaConsistency, ipv6_router::Ipv6Router, l2_loop::L2Loop, lacp::Lacp,
    lldp_neighbour::LldpNeighbour, mac_change::MacChange, mac_collision::MacCollision,
    pxe_boot::PxeBoot, stp::Stp, vlan_mismatch::VlanMismatch, Context, Detector, Signal,
};
use crate::{
    engine::EngineConfig,
    model::{Nanos, Observation},
};

/// How to build one detector, and which settings it is built from.
struct Entry {
    name: &'static str,
    build: fn(&EngineConfig) -> Box<dyn Detector>,
    /// Its settings, to tell on a reload whether it must be rebuilt.
    settings: fn(&EngineConfig) -> Value,
}

fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Every detector, in the order they see an observation.
const REGISTRY: &[Entry] = &[
    Entry {
        name: "dhcp_servers",
        build: |c| Box::new(DhcpServerWatch::new(c.dhcp_servers.clone())),
        settings: |c| json(&c.dhcp_servers),
    },
    Entry {
        name: "duplicate_ip",
        build: |c| Box::new(DuplicateIp::new(c.duplicate_ip.clone())),
        settings: |c| json(&c.duplicate_ip),
    },
    Entry {
        name: "mac_change",
        build: |c| Box::new(MacChange::new(c.mac_change.clone())),
        settings: |c| json(&c.mac_change),
    },
    Entry {
        name: "mac_collision",
        build: |c| Box::new(MacCollision::new(c.mac_collision.clone())),
        settings: |c| json(&c.mac_collision),
    },
    Entry {
        name: "dhcp_storm",
        build: |c| Box::new(DhcpStorm::new(c.dhcp_storm.clone())),
        settings: |c| json(&c.dhcp_storm),
    },
    Entry {
        name: "apipa",
        build: |c| Box::new(Apipa::new(c.apipa.clone())),
        settings: |c| json(&c.apipa),
    },
    Entry {
        name: "arp_flood",
        build: |c| Box::new(ArpFlood::new(c.arp_flood.clone())),
        settings: |c| json(&c.arp_flood),
    },
    Entry {
        name: "arp_scan",
        build: |c| Box::new(ArpScan::new(c.arp_scan.clone())),
        settings: |c| json(&c.arp_scan),
    },
    Entry {
        name: "l2_loop",
        build: |c| Box::new(L2Loop::new(c.l2_loop.clone())),
        settings: |c| json(&c.l2_loop),
    },
    Entry {
        name: "ipv6_dad",
        build: |c| Box::new(Ipv6Dad::new(c.ipv6_dad.clone())),
        settings: |c| json(&c.ipv6_dad),
    },
    Entry {
        name: "ipv6_routers",
        build: |c| Box::new(Ipv6Router::new(c.ipv6_routers.clone())),
        settings: |c| json(&c.ipv6_routers),
    },
    Entry {
        name: "ipv6_lifetime_spoof",
        build: |c| Box::new(Ipv6LifetimeSpoof::new(&c.ipv6_routers)),
        settings: |c| json(&c.ipv6_routers),
    },
    Entry {
        name: "ipv6_prefix",
        build: |c| Box::new(Ipv6Prefix::new(c.ipv6_routers.clone())),
        settings: |c| json(&c.ipv6_routers),
    },
    Entry {
        name: "ipv6_ra_consistency",
        build: |c| Box::new(Ipv6RaConsistency::new(c.ipv6_routers.clone())),
        settings: |c| json(&c.ipv6_routers),
    },
    Entry {
        name: "dhcp_unanswered",
        build: |c| Box::new(DhcpUnanswered::new(c.dhcp_unanswered.clone())),
        settings: |c| json(&c.dhcp_unanswered),
    },
    Entry {
        name: "dhcp_slow",
        build: |c| Box::new(DhcpSlow::new(c.dhcp_slow.clone())),
        settings: |c| json(&c.dhcp_slow),
    },
    Entry {
        name: "dhcp_nak_storm",
        build: |c| Box::new(DhcpNakStorm::new(c.dhcp_nak_storm.clone())),
        settings: |c| json(&c.dhcp_nak_storm),
    },
    Entry {
        name: "dhcp_pool",
        build: |c| Box::new(DhcpPool::new(c.dhcp_pool.clone())),
        settings: |c| json(&c.dhcp_pool),
    },
    Entry {
        name: "pxe_boot",
        build: |c| Box::new(PxeBoot::new(c.pxe_boot.clone())),
        settings: |c| json(&c.pxe_boot),
    },
    Entry {
        name: "dhcp_relay",
        build: |c| Box::new(DhcpRelay::new(c.dhcp_relay.clone())),
        settings: |c| json(&c.dhcp_relay),
    },
    Entry {
        name: "dhcpv6_servers",
        build: |c| Box::new(Dhcpv6Servers::new(c.dhcpv6_servers.clone())),
        settings: |c| json(&c.dhcpv6_servers),
    },
    Entry {
        name: "lldp_neighbour",
        build: |c| Box::new(LldpNeighbour::new(c.switch.clone())),
        settings: |c| json(&c.switch),
    },
    Entry {
        name: "vlan_mismatch",
        build: |c| Box::new(VlanMismatch::new(c.switch.clone())),
        settings: |c| json(&c.switch),
    },
    Entry {
        name: "stp",
        build: |c| Box::new(Stp::new(c.switch.clone())),
        settings: |c| json(&c.switch),
    },
    Entry {
        name: "lacp",
        build: |c| Box::new(Lacp::new(c.switch.clone())),
        settings: |c| json(&c.switch),
    },
];

/// The running detectors, each with the settings it was built from.
pub struct Detectors {
    running: Vec<(Value, Box<dyn Detector>)>,
}

impl Detectors {
    pub fn build(cfg: &EngineConfig) -> Detectors {
        Detectors {
            running: REGISTRY
                .iter()
                .map(|e| ((e.settings)(cfg), (e.build)(cfg)))
                .collect(),
        }
    }

    /// A set of given detectors (tests of the engine's plumbing).
    #[cfg(test)]
    pub fn of(detectors: Vec<Box<dyn Detector>>) -> Detectors {
        Detectors {
            running: detectors.into_iter().map(|d| (Value::Null, d)).collect(),
        }
    }

    /// Rebuilds the detectors whose settings changed; returns their names.
    pub fn reconfigure(&mut self, cfg: &EngineConfig) -> Vec<&'static str> {
        let mut rebuilt = Vec::new();
        for (e, (settings, d)) in REGISTRY.iter().zip(&mut self.running) {
            let new = (e.settings)(cfg);
            if new != *settings {
                *settings = new;
                *d = (e.build)(cfg);
                rebuilt.push(e.name);
            }
        }
        rebuilt
    }

    /// Every detector's signals for one observation.
    pub fn observe(&mut self, obs: &Observation, ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        let mut out = Vec::new();
        for (_, d) in &mut self.running {
            out.extend(d.observe(obs, ctx, now));
        }
        out
    }

    /// Every detector's tick.
    pub fn tick(&mut self, now: Nanos) -> Vec<Signal> {
        let mut out = Vec::new();
        for (_, d) in &mut self.running {
            out.extend(d.tick(now));
        }
        out
    }

    /// Names and kinds of the running detectors.
    #[cfg(test)]
    pub fn describe(&self) -> Vec<(&'static str, &'static [super::FindingKind])> {
        self.running
            .iter()
            .map(|(_, d)| (d.name(), d.kinds()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{kind, FindingKind};

    #[test]
    fn every_finding_kind_has_one_detector() {
        let d = Detectors::build(&EngineConfig::default());
        let mut kinds: Vec<FindingKind> = d
            .describe()
            .iter()
            .flat_map(|(_, k)| k.iter().copied())
            .collect();
        kinds.sort();
        let mut all = FindingKind::ALL.to_vec();
        all.sort();
        assert_eq!(kinds, all);
        let names: Vec<_> = d.describe().iter().map(|(n, _)| *n).collect();
        let registry: Vec<_> = REGISTRY.iter().map(|e| e.name).collect();
        assert_eq!(names, registry, "a detector's name() is its registry name");
    }

    #[test]
    fn a_reload_rebuilds_only_changed_detectors() {
        let mut cfg = EngineConfig::default();
        let mut d = Detectors::build(&cfg);
        assert!(d.reconfigure(&cfg).is_empty());
        cfg.mac_change.quiet_secs += 1;
        assert_eq!(d.reconfigure(&cfg), ["mac_change"]);
        assert!(d.reconfigure(&cfg).is_empty());
        let _ = kind::MAC_CHANGED;
    }
}
