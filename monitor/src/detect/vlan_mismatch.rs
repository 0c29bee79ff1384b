//! `vlan_mismatch`: the switch puts an interface in another VLAN than the operator expects.
//! Either LLDP's port VLAN id (or CDP's native VLAN) differs from `native_vlan` configured
//! for the interface under `[engine.switch.ports]`, or untagged ARP on the interface comes
//! from a subnet `[engine.switch.vlan_subnets]` assigns to another VLAN than the one the
//! switch advertises.
use std::net::Ipv4Addr;

use serde::Serialize;

use super::{
    kind, secs,
    switch_ports::{ipnet_lite::Net4, SwitchConfig},
    Context, Detector, FindingKind, Signal, Subject,
};
use crate::{
    decode::SwitchPdu,
    model::{FastMap, Iface, Nanos, Observation, Segment},
};

#[derive(Serialize)]
struct Evidence {
    /// `config` (the interface's native_vlan) or `subnet` (untagged traffic's subnet).
    source: &'static str,
    advertised_vlan: u16,
    protocol: &'static str,
    neighbour: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected_vlan: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subnet: Option<String>,
}

/// Interfaces tracked for the subnet test.
const MAX_IFACES: usize = 4_096;

pub struct VlanMismatch {
    cfg: SwitchConfig,
    subnets: Vec<(u16, Net4)>,
    /// Per interface: what its switch advertises (VLAN, protocol, neighbour name).
    advertised: FastMap<Iface, (u16, &'static str, String)>,
    /// Per interface: the last untagged host seen whose subnet names a VLAN.
    seen: FastMap<Iface, (Ipv4Addr, u16, Net4)>,
}

impl VlanMismatch {
    pub fn new(cfg: SwitchConfig) -> Self {
        VlanMismatch {
            // Checked at config load; a bad entry here only disables the subnet test.
            subnets: cfg.subnets().unwrap_or_default(),
            cfg,
            advertised: FastMap::default(),
            seen: FastMap::default(),
        }
    }

    fn signal(&self, seg: Segment, e: Evidence) -> Signal {
        Signal {
            kind: kind::VLAN_MISMATCH,
            subject: Subject::Segment(seg),
            seg,
            packets: 1,
            evidence: super::evidence(&e),
            quiet: secs(self.cfg.quiet_secs),
        }
    }

    /// The subnet test for `iface`, once both sides are known.
    fn by_subnet(&self, seg: Segment) -> Option<Signal> {
        let (vlan, protocol, name) = self.advertised.get(&seg.iface)?;
        let (host, subnet_vlan, net) = self.seen.get(&seg.iface)?;
        (subnet_vlan != vlan).then(|| {
            self.signal(
                seg,
                Evidence {
                    source: "subnet",
                    advertised_vlan: *vlan,
                    protocol,
                    neighbour: name.clone(),
                    expected_vlan: Some(*subnet_vlan),
                    host: Some(*host),
                    subnet: Some(net.to_string()),
                },
            )
        })
    }
}

impl Detector for VlanMismatch {
    fn name(&self) -> &'static str {
        "vlan_mismatch"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::VLAN_MISMATCH]
    }

    fn observe(&mut self, obs: &Observation, ctx: &Context<'_>, _now: Nanos) -> Vec<Signal> {
        match obs {
            Observation::Switch { seg, pdu, .. } if seg.outer_vlan.is_none() => {
                let (vlan, protocol) = match &**pdu {
                    SwitchPdu::Lldp(l) => (l.port_vlan, "lldp"),
                    SwitchPdu::Cdp(c) => (c.native_vlan, "cdp"),
                    _ => return vec![],
                };
                let Some(vlan) = vlan else { return vec![] };
                let name = ctx
                    .update_sw
                    .neighbour
                    .as_ref()
                    .and_then(|(k, _)| ctx.switch.neighbour(k))
                    .map(|n| n.name().to_string())
                    .unwrap_or_default();
                if self.advertised.contains_key(&seg.iface) || self.advertised.len() < MAX_IFACES {
                    self.advertised
                        .insert(seg.iface, (vlan, protocol, name.clone()));
                }
                let mut out = Vec::new();
                let expected = self.cfg.port(seg.iface.name()).and_then(|p| p.native_vlan);
                if let Some(e) = expected.filter(|e| *e != vlan) {
                    out.push(self.signal(
                        *seg,
                        Evidence {
                            source: "config",
                            advertised_vlan: vlan,
                            protocol,
                            neighbour: name,
                            expected_vlan: Some(e),
                            host: None,
                            subnet: None,
                        },
                    ));
                }
                out.extend(self.by_subnet(*seg));
                out
            }
            Observation::Arp { seg, ip, probe, .. }
                if seg.outer_vlan.is_none() && !probe && !self.subnets.is_empty() =>
            {
                let Some((v, net)) = self.subnets.iter().find(|(_, n)| n.contains(*ip)) else {
                    return vec![];
                };
                if self.seen.contains_key(&seg.iface) || self.seen.len() < MAX_IFACES {
                    self.seen.insert(seg.iface, (*ip, *v, *net));
                }
                self.by_subnet(*seg).into_iter().collect()
            }
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        decode::lldp::Lldp,
        detect::{
            switch_ports::PortExpect,
            tests_support::{arp_on, Harness},
        },
        model::{Mac, SECOND},
    };

    fn untagged() -> Segment {
        Segment {
            iface: Iface::named("eth2"),
            outer_vlan: None,
            inner_vlan: None,
        }
    }

    fn lldp(pvid: u16) -> Observation {
        Observation::Switch {
            seg: untagged(),
            src_mac: Mac([0, 0x1b, 0, 0, 0, 1]),
            pdu: Box::new(SwitchPdu::Lldp(Lldp {
                chassis_id: "c".into(),
                port_id: "Gi1/0/17".into(),
                system_name: Some("sw3.rack12".into()),
                port_vlan: Some(pvid),
                ..Lldp::default()
            })),
        }
    }

    #[test]
    fn the_advertised_vlan_against_the_configured_one() {
        let mut cfg = SwitchConfig::default();
        cfg.ports.insert(
            "eth2".into(),
            PortExpect {
                native_vlan: Some(100),
                ..Default::default()
            },
        );
        let mut h = Harness::new(VlanMismatch::new(cfg));
        assert!(h.feed(&lldp(100), SECOND).is_empty());
        let s = h.feed(&lldp(200), 2 * SECOND);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].evidence["expected_vlan"], 100);
        assert_eq!(s[0].evidence["advertised_vlan"], 200);
        assert_eq!(s[0].evidence["neighbour"], "sw3.rack12");
    }

    #[test]
    fn untagged_hosts_from_another_vlans_subnet() {
        let mut cfg = SwitchConfig::default();
        cfg.vlan_subnets.insert("100".into(), "10.77.0.0/24".into());
        cfg.vlan_subnets.insert("200".into(), "10.78.0.0/24".into());
        let mut h = Harness::new(VlanMismatch::new(cfg));
        let host = |ip: [u8; 4]| arp_on(untagged(), Mac([2, 0, 0, 0, 0, 9]), ip.into());
        assert!(h.feed(&host([10, 77, 0, 9]), SECOND).is_empty());
        assert!(h.feed(&lldp(100), 2 * SECOND).is_empty());
        let s = h.feed(&host([10, 78, 0, 9]), 3 * SECOND);
        assert_eq!(s[0].evidence["source"], "subnet");
        assert_eq!(s[0].evidence["expected_vlan"], 200);
        assert_eq!(s[0].evidence["subnet"], "10.78.0.0/24");
    }
}
