//! The switch-facing view, per interface: LLDP and CDP neighbours, spanning tree per segment
//! and VLAN, and LACP partners. Updated in one place, [`SwitchState::update`], from the
//! changed PDUs the kernel reports; bounded (what does not fit is counted, known entries
//! stay).
use std::net::IpAddr;

use serde::Serialize;

use crate::{
    decode::{
        lacp::{Lacpdu, Side},
        stp::{Bpdu, BridgeId, Version},
        SwitchPdu,
    },
    model::{FastMap, Mac, Nanos, Observation, Segment},
};

/// Neighbours, spanning-tree views and LACP ports kept, each.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SwitchStateConfig {
    pub max_neighbours: usize,
    pub max_stp: usize,
    pub max_lacp: usize,
}

impl Default for SwitchStateConfig {
    fn default() -> Self {
        SwitchStateConfig {
            max_neighbours: 4_096,
            max_stp: 4_096,
            max_lacp: 1_024,
        }
    }
}

/// LLDP or CDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Discovery {
    Lldp,
    Cdp,
}

impl Discovery {
    pub fn name(self) -> &'static str {
        match self {
            Discovery::Lldp => "lldp",
            Discovery::Cdp => "cdp",
        }
    }
}

/// One neighbour announcement source: a protocol from one MAC on a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct NeighbourKey {
    #[serde(flatten)]
    pub seg: Segment,
    pub protocol: Discovery,
    pub src_mac: Mac,
}

/// Who the neighbour is and where we are plugged in: what a cable move changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// LLDP chassis id, or CDP device id.
    pub chassis: String,
    pub port: String,
    /// LLDP system name, or CDP device id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Neighbour {
    #[serde(flatten)]
    pub id: Identity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub management: Vec<IpAddr>,
    /// LLDP port VLAN id (802.1), or CDP native VLAN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub native_vlan: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_frame: Option<u16>,
    /// LLDP link aggregation TLV: (enabled, aggregated port id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<crate::decode::lldp::Aggregation>,
    pub ttl_secs: u16,
    pub first_seen: Nanos,
    pub last_seen: Nanos,
    /// Times the identity changed under this key.
    pub changes: u64,
}

impl Neighbour {
    fn of(pdu: &SwitchPdu, now: Nanos) -> Option<(Discovery, Neighbour)> {
        let n = |id, d: Option<&str>, mgmt, vlan, platform, max_frame, agg, ttl| Neighbour {
            id,
            port_description: d.map(str::to_string),
            management: mgmt,
            native_vlan: vlan,
            platform,
            max_frame,
            aggregation: agg,
            ttl_secs: ttl,
            first_seen: now,
            last_seen: now,
            changes: 0,
        };
        Some(match pdu {
            SwitchPdu::Lldp(l) => (
                Discovery::Lldp,
                n(
                    Identity {
                        chassis: l.chassis_id.clone(),
                        port: l.port_id.clone(),
                        system_name: l.system_name.clone(),
                    },
                    l.port_description.as_deref(),
                    l.management.clone(),
                    l.port_vlan,
                    l.system_description
                        .as_ref()
                        .map(|d| d.lines().next().unwrap_or("").to_string()),
                    l.max_frame,
                    l.aggregation,
                    l.ttl_secs,
                ),
            ),
            SwitchPdu::Cdp(c) => (
                Discovery::Cdp,
                n(
                    Identity {
                        chassis: c.device_id.clone().unwrap_or_default(),
                        port: c.port_id.clone().unwrap_or_default(),
                        system_name: c.device_id.clone(),
                    },
                    None,
                    c.addresses.clone(),
                    c.native_vlan,
                    c.platform.clone(),
                    None,
                    None,
                    c.ttl_secs as u16,
                ),
            ),
            _ => return None,
        })
    }

    /// The name to show: the system name, else the chassis id.
    pub fn name(&self) -> &str {
        self.id.system_name.as_deref().unwrap_or(&self.id.chassis)
    }
}

/// One spanning-tree view: a segment, and the VLAN a PVST+ BPDU names (None: the common
/// spanning tree, or plain STP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct StpKey {
    #[serde(flatten)]
    pub seg: Segment,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pvst_vlan: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StpView {
    pub version: &'static str,
    pub root: BridgeId,
    /// `32768/00:19:06:ea:b8:80`, as tshark prints a root.
    pub root_id: String,
    pub root_cost: u32,
    /// The bridge that sent the last BPDU, and from which port.
    pub bridge: BridgeId,
    pub bridge_id: String,
    pub port: u16,
    pub sender_mac: Mac,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    pub topology_change: bool,
    pub hello_ms: u32,
    pub max_age_ms: u32,
    pub forward_delay_ms: u32,
    /// BPDUs with the topology-change flag, and TCN BPDUs, seen.
    pub topology_changes: u64,
    pub tcns: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_topology_change: Option<Nanos>,
    pub root_changes: u64,
    pub first_seen: Nanos,
    pub last_seen: Nanos,
}

/// One LACP sender on a segment (the switch's port, as the actor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct LacpKey {
    #[serde(flatten)]
    pub seg: Segment,
    pub src_mac: Mac,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LacpPort {
    pub actor: Side,
    pub partner: Side,
    pub actor_state: String,
    pub partner_state: String,
    /// The partner is gone: no partner system, or the actor's partner information expired
    /// or defaulted.
    pub partner_lost: bool,
    /// Since when the actor has been out of sync (None: in sync).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_sync_since: Option<Nanos>,
    pub first_seen: Nanos,
    pub last_seen: Nanos,
}

impl LacpPort {
    fn of(pdu: &Lacpdu, prev: Option<&LacpPort>, now: Nanos) -> LacpPort {
        let in_sync = pdu.actor.state.synchronization;
        LacpPort {
            actor: pdu.actor,
            partner: pdu.partner,
            actor_state: pdu.actor.state.names(),
            partner_state: pdu.partner.state.names(),
            partner_lost: pdu.partner_lost(),
            out_of_sync_since: match (in_sync, prev.and_then(|p| p.out_of_sync_since)) {
                (true, _) => None,
                (false, Some(t)) => Some(t),
                (false, None) => Some(now),
            },
            first_seen: prev.map_or(now, |p| p.first_seen),
            last_seen: now,
        }
    }
}

/// What one observation did to the switch state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SwitchUpdate {
    /// A neighbour announcement, and the identity it had before if that changed
    /// (`Some(None)`: a new neighbour).
    pub neighbour: Option<(NeighbourKey, Option<Option<Identity>>)>,
    /// A BPDU: its view, and the root before if the root changed (`Some(None)`: first seen).
    pub stp: Option<(StpKey, Option<Option<BridgeId>>)>,
    /// A LACPDU: its port, and the port's previous state.
    pub lacp: Option<(LacpKey, Option<LacpPort>)>,
}

pub struct SwitchState {
    cfg: SwitchStateConfig,
    neighbours: FastMap<NeighbourKey, Neighbour>,
    stp: FastMap<StpKey, StpView>,
    lacp: FastMap<LacpKey, LacpPort>,
    dropped: u64,
}

impl SwitchState {
    pub fn new(cfg: &SwitchStateConfig) -> Self {
        SwitchState {
            cfg: cfg.clone(),
            neighbours: FastMap::default(),
            stp: FastMap::default(),
            lacp: FastMap::default(),
            dropped: 0,
        }
    }

    /// Applies a switch observation; anything else changes nothing.
    pub fn update(&mut self, obs: &Observation, now: Nanos) -> SwitchUpdate {
        let mut up = SwitchUpdate::default();
        let Observation::Switch { seg, src_mac, pdu } = obs else {
            return up;
        };
        match &**pdu {
            SwitchPdu::Lldp(_) | SwitchPdu::Cdp(_) => {
                let Some((protocol, mut n)) = Neighbour::of(pdu, now) else {
                    return up;
                };
                let key = NeighbourKey {
                    seg: *seg,
                    protocol,
                    src_mac: *src_mac,
                };
                let change = match self.neighbours.get(&key) {
                    Some(old) => {
                        n.first_seen = old.first_seen;
                        n.changes = old.changes;
                        (old.id != n.id).then(|| {
                            n.changes += 1;
                            Some(old.id.clone())
                        })
                    }
                    None if self.neighbours.len() >= self.cfg.max_neighbours => {
                        self.dropped += 1;
                        return up;
                    }
                    None => Some(None),
                };
                self.neighbours.insert(key, n);
                up.neighbour = Some((key, change));
            }
            SwitchPdu::Stp(b) => up.stp = self.bpdu(*seg, *src_mac, b, now),
            SwitchPdu::Lacp(l) => {
                let key = LacpKey {
                    seg: *seg,
                    src_mac: *src_mac,
                };
                let prev = self.lacp.get(&key).cloned();
                if prev.is_none() && self.lacp.len() >= self.cfg.max_lacp {
                    self.dropped += 1;
                    return up;
                }
                self.lacp.insert(key, LacpPort::of(l, prev.as_ref(), now));
                up.lacp = Some((key, prev));
            }
        }
        up
    }

    fn bpdu(
        &mut self,
        seg: Segment,
        src_mac: Mac,
        b: &Bpdu,
        now: Nanos,
    ) -> Option<(StpKey, Option<Option<BridgeId>>)> {
        let key = StpKey {
            seg,
            pvst_vlan: b.pvst_vlan,
        };
        let known = self.stp.contains_key(&key);
        if !known && (b.is_tcn() || self.stp.len() >= self.cfg.max_stp) {
            // A TCN alone names no root (not a loss); a full map keeps what it knows.
            if !b.is_tcn() {
                self.dropped += 1;
            }
            return None;
        }
        if let (false, Some(c)) = (known, b.config) {
            self.stp.insert(
                key,
                StpView {
                    version: b.version.name(),
                    root: c.root,
                    root_id: c.root.to_string(),
                    root_cost: c.root_cost,
                    bridge: c.bridge,
                    bridge_id: c.bridge.to_string(),
                    port: c.port,
                    sender_mac: src_mac,
                    role: c.role,
                    topology_change: false,
                    hello_ms: c.hello_ms,
                    max_age_ms: c.max_age_ms,
                    forward_delay_ms: c.forward_delay_ms,
                    topology_changes: 0,
                    tcns: 0,
                    last_topology_change: None,
                    root_changes: 0,
                    first_seen: now,
                    last_seen: now,
                },
            );
        }
        let v = self.stp.get_mut(&key)?;
        v.last_seen = now;
        let mut change = (!known).then_some(None);
        match b.config {
            None => {
                v.tcns += 1;
                v.last_topology_change = Some(now);
            }
            Some(c) => {
                if known && c.root != v.root {
                    change = Some(Some(v.root));
                    v.root_changes += 1;
                }
                if b.version != Version::Other {
                    v.version = b.version.name();
                }
                v.root = c.root;
                v.root_id = c.root.to_string();
                v.root_cost = c.root_cost;
                v.bridge = c.bridge;
                v.bridge_id = c.bridge.to_string();
                v.port = c.port;
                v.sender_mac = src_mac;
                v.role = c.role;
                v.topology_change = c.topology_change;
                v.hello_ms = c.hello_ms;
                v.max_age_ms = c.max_age_ms;
                v.forward_delay_ms = c.forward_delay_ms;
                if c.topology_change {
                    v.topology_changes += 1;
                    v.last_topology_change = Some(now);
                }
            }
        }
        Some((key, change))
    }

    pub fn neighbours(&self) -> impl Iterator<Item = (&NeighbourKey, &Neighbour)> {
        self.neighbours.iter()
    }

    pub fn stp(&self) -> impl Iterator<Item = (&StpKey, &StpView)> {
        self.stp.iter()
    }

    pub fn lacp(&self) -> impl Iterator<Item = (&LacpKey, &LacpPort)> {
        self.lacp.iter()
    }

    pub fn neighbour(&self, k: &NeighbourKey) -> Option<&Neighbour> {
        self.neighbours.get(k)
    }

    pub fn stp_view(&self, k: &StpKey) -> Option<&StpView> {
        self.stp.get(k)
    }

    pub fn lacp_port(&self, k: &LacpKey) -> Option<&LacpPort> {
        self.lacp.get(k)
    }

    /// New entries refused because their map was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        decode::{lldp::Lldp, stp},
        model::{Iface, SECOND},
    };

    fn seg() -> Segment {
        Segment {
            iface: Iface::named("eth2"),
            outer_vlan: None,
            inner_vlan: None,
        }
    }

    fn lldp(chassis: &str, port: &str) -> Observation {
        Observation::Switch {
            seg: seg(),
            src_mac: Mac([0, 0x1b, 0, 0, 0, 1]),
            pdu: Box::new(SwitchPdu::Lldp(Lldp {
                chassis_id: chassis.into(),
                port_id: port.into(),
                ttl_secs: 120,
                system_name: Some("sw3.rack12".into()),
                ..Lldp::default()
            })),
        }
    }

    #[test]
    fn a_neighbour_is_new_then_changed_only_when_its_identity_does() {
        let mut s = SwitchState::new(&SwitchStateConfig::default());
        let up = s.update(&lldp("c1", "Gi1/0/17"), SECOND);
        assert_eq!(up.neighbour.unwrap().1, Some(None));
        let up = s.update(&lldp("c1", "Gi1/0/17"), 2 * SECOND);
        assert_eq!(up.neighbour.unwrap().1, None);
        let up = s.update(&lldp("c1", "Gi1/0/18"), 3 * SECOND);
        let old = up.neighbour.unwrap().1.unwrap().unwrap();
        assert_eq!(old.port, "Gi1/0/17");
        let (_, n) = s.neighbours().next().unwrap();
        assert_eq!((n.changes, n.first_seen), (1, SECOND));
    }

    #[test]
    fn the_maps_are_bounded_and_count_what_they_refuse() {
        let mut s = SwitchState::new(&SwitchStateConfig {
            max_neighbours: 1,
            ..Default::default()
        });
        s.update(&lldp("c1", "p"), SECOND);
        let mut other = lldp("c2", "p");
        if let Observation::Switch { src_mac, .. } = &mut other {
            *src_mac = Mac([2, 0, 0, 0, 0, 2]);
        }
        assert!(s.update(&other, SECOND).neighbour.is_none());
        assert_eq!(s.dropped(), 1);
        // The known one still updates.
        assert!(s.update(&lldp("c1", "q"), SECOND).neighbour.is_some());
    }

    #[test]
    fn a_root_change_names_the_old_root() {
        let mut s = SwitchState::new(&SwitchStateConfig::default());
        let bpdu = |prio: u8| {
            let mut b = vec![0, 0, 0, 0, 0, prio, 0, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0];
            b.extend([prio, 0, 2, 0, 0, 0, 0, 1, 0x80, 1]);
            b.extend([0, 0, 0x14, 0, 2, 0, 0x0f, 0]);
            Observation::Switch {
                seg: seg(),
                src_mac: Mac([2, 0, 0, 0, 0, 1]),
                pdu: Box::new(SwitchPdu::Stp(stp::decode(&b, false).unwrap())),
            }
        };
        assert_eq!(s.update(&bpdu(0x80), SECOND).stp.unwrap().1, Some(None));
        assert_eq!(s.update(&bpdu(0x80), 2 * SECOND).stp.unwrap().1, None);
        let old = s
            .update(&bpdu(0x10), 3 * SECOND)
            .stp
            .unwrap()
            .1
            .unwrap()
            .unwrap();
        assert_eq!(old.priority, 32768);
        let (_, v) = s.stp().next().unwrap();
        assert_eq!((v.root.priority, v.root_changes), (4096, 1));
    }
}
