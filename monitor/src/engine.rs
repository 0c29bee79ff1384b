//! The engine: observations flow through the state stage (device table, DHCP servers), then the
//! detectors, then the findings store. Pure and clock-injected: the same observations with the
//! same timestamps always give the same table and findings, live or replayed.
use std::{collections::BTreeMap, net::IpAddr};

use monitor_common::DhcpMsgType;

use serde::Serialize;

use crate::{
    decode::dhcp::msg_type_name,
    detect::{
        apipa::ApipaConfig,
        arp_flood::ArpFloodConfig,
        arp_scan::ArpScanConfig,
        dhcp::{server_of, DhcpServerConfig, DhcpStormConfig},
        duplicate_ip::DuplicateIpConfig,
        kind,
        l2_loop::LoopConfig,
        mac_change::MacChangeConfig,
        mac_collision::MacCollisionConfig,
        registry::Detectors,
        Context, Finding, FindingEvent, FindingKind, Findings, Subject,
    },
    model::{FastMap, FastSet, Mac, Nanos, Observation, Segment, SECOND},
    state::{
        Addr6, Change, Change6, Device, DeviceKey, DeviceState, DeviceTable, DeviceTableConfig,
        DhcpServers, Ipv6State, Ipv6StateConfig, Lease, Router, RouterKey, Server, Server6,
        Server6Key, ServerKey, Source, Update6,
    },
};

/// Every engine setting; one section per stage and detector.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    pub devices: DeviceTableConfig,
    pub duplicate_ip: DuplicateIpConfig,
    pub mac_change: MacChangeConfig,
    pub mac_collision: MacCollisionConfig,
    pub dhcp_servers: DhcpServerConfig,
    pub dhcp_storm: DhcpStormConfig,
    pub apipa: ApipaConfig,
    pub arp_flood: ArpFloodConfig,
    pub arp_scan: ArpScanConfig,
    pub l2_loop: LoopConfig,
    /// DHCPv4 transactions (request paired with answers).
    pub dhcp_transactions: crate::state::dhcp_transactions::TxConfig,
    pub dhcp_unanswered: crate::detect::dhcp_unanswered::UnansweredConfig,
    pub dhcp_slow: crate::detect::dhcp_slow::SlowConfig,
    pub dhcp_nak_storm: crate::detect::dhcp_nak_storm::NakStormConfig,
    pub dhcp_pool: crate::detect::dhcp_pool::PoolConfig,
    pub pxe_boot: crate::detect::pxe_boot::PxeConfig,
    pub dhcp_relay: crate::detect::dhcp_relay::RelayConfig,
    /// IPv6 neighbours, routers and DHCPv6 servers: capacities.
    pub ipv6: Ipv6StateConfig,
    pub ipv6_dad: crate::detect::ipv6_dad::DadConfig,
    pub ipv6_routers: crate::detect::ipv6_router::RouterConfig,
    pub dhcpv6_servers: crate::detect::dhcpv6::Dhcpv6ServerConfig,
    /// The switch-facing view: capacities.
    pub switch_state: crate::state::SwitchStateConfig,
    /// What each port should see from its switch, and the switch-port detectors.
    pub switch: crate::detect::switch_ports::SwitchConfig,
    pub limits: Limits,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_dhcp_servers: usize,
    pub max_open_findings: usize,
    pub max_closed_findings: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_dhcp_servers: 1_024,
            max_open_findings: 10_000,
            max_closed_findings: 1_000,
        }
    }
}

/// What one observation did to the state stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Update {
    /// The device-table change it made, for the detectors.
    pub change: Option<Change>,
    /// The device row it touched (changed, refreshed or released), for the store.
    pub device: Option<DeviceKey>,
    /// The DHCP server it touched.
    pub server: Option<ServerKey>,
}

/// Applies an observation to the state stage.
pub fn update_state(
    table: &mut DeviceTable,
    servers: &mut DhcpServers,
    obs: &Observation,
    now: Nanos,
) -> Update {
    update_state_from(table, servers, obs, now, false)
}

/// [`update_state`] for an observation the kernel held back (`held_back`): an ARP claim no
/// newer than the table's knowledge of the address does not override it.
fn update_state_from(
    table: &mut DeviceTable,
    servers: &mut DhcpServers,
    obs: &Observation,
    now: Nanos,
    held_back: bool,
) -> Update {
    let mut up = Update::default();
    match obs {
        Observation::Arp {
            seg,
            ip,
            mac,
            probe,
            ..
        } => {
            // A prober does not hold the address yet; 0.0.0.0 is nobody's.
            if *probe || ip.is_unspecified() {
                return up;
            }
            let key = DeviceKey { seg: *seg, ip: *ip };
            up.change = Some(if held_back {
                table.observe_held_back(key, *mac, Source::Arp, now)
            } else {
                table.observe(key, *mac, Source::Arp, now)
            });
            up.device = Some(key);
        }
        Observation::Dhcp {
            seg, msg, src_mac, ..
        } => {
            if let Some((key, t)) = server_of(obs) {
                let offered = (!msg.yiaddr.is_unspecified()).then_some(msg.yiaddr);
                servers.observe(key, t, offered, now);
                up.server = Some(key);
            }
            let client = msg.chaddr.unwrap_or(*src_mac);
            match msg.kind() {
                Some(DhcpMsgType::Discover | DhcpMsgType::Request) => {
                    if let Some(name) = msg.host_name() {
                        table.note_client_name(*seg, client, name);
                    }
                }
                Some(DhcpMsgType::Ack) if !msg.yiaddr.is_unspecified() => {
                    let lease = msg.lease_time.map(|secs| Lease {
                        server: msg.server_id.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
                        lease_secs: secs,
                        expires: now.saturating_add(secs as u64 * SECOND),
                    });
                    let key = DeviceKey {
                        seg: *seg,
                        ip: msg.yiaddr,
                    };
                    up.change = Some(table.apply_ack(key, client, msg.host_name(), lease, now));
                    up.device = Some(key);
                }
                Some(DhcpMsgType::Release) if !msg.ciaddr.is_unspecified() => {
                    let key = DeviceKey {
                        seg: *seg,
                        ip: msg.ciaddr,
                    };
                    table.release(&key, client, now);
                    up.device = Some(key);
                }
                _ => {}
            }
        }
        // Signals, not state: the detectors take them.
        Observation::Loop { .. } | Observation::Scan { .. } => {}
        // The IPv6 state (`Ipv6State::update`) takes these.
        Observation::Neighbour { .. }
        | Observation::DadProbe { .. }
        | Observation::RouterAdvert { .. }
        | Observation::Dhcpv6 { .. } => {}
        // The switch state (`SwitchState::update`) takes these.
        Observation::Switch { .. } => {}
    }
    up
}

/// Engine-level counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    pub observations: u64,
    pub arp_observations: u64,
    pub dhcp_observations: u64,
    pub device_evictions: u64,
    pub dhcp_server_evictions: u64,
    pub findings_dropped: u64,
    /// History events not kept because the journal was full (the store fell behind).
    pub history_dropped: u64,
    /// Events not handed to the live stream because its outbox was full.
    pub stream_dropped: u64,
    /// IP bindings that moved to another MAC (flip flops included).
    pub mac_moves: u64,
    /// Bindings new to the device table.
    pub devices_learnt: u64,
    /// Findings folded into an open flood instead of opening on their own.
    pub findings_folded: u64,
    /// Device changes in a flood's probation tier, kept in memory but not stored.
    pub flood_rows_not_stored: u64,
    pub loop_observations: u64,
    pub scan_observations: u64,
    /// IPv6: neighbour bindings, DAD probes, router advertisements, DHCPv6 messages.
    pub nd_observations: u64,
    pub dad_observations: u64,
    pub ra_observations: u64,
    pub dhcpv6_observations: u64,
    pub switch_observations: u64,
    /// IPv6 addresses that moved to another MAC.
    pub ipv6_moves: u64,
    pub ipv6_station_evictions: u64,
    pub router_evictions: u64,
    pub dhcpv6_server_evictions: u64,
}

/// One entry of the event history: a binding learnt or changed, or a DHCP message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEvent {
    /// Increasing over the agent's life (restored from the store): the database row's id and
    /// the event stream's `id:`, so a reconnecting reader resumes after it. 0 until the engine
    /// numbers it.
    pub id: u64,
    pub ts: Nanos,
    #[serde(flatten)]
    pub seg: Segment,
    /// `arp_new`, `arp_moved`, ..., `dhcp_ack`, ...: static for what the engine makes, owned
    /// for what the store reads back.
    pub kind: std::borrow::Cow<'static, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    pub mac: Mac,
    /// Kind-specific detail (ARP: opcode and RFC 5227 flags; DHCP: xid, addresses, host
    /// name, lease; IPv6: the NA flags, the DAD nonce, the RA's contents, DHCPv6 DUIDs).
    #[serde(skip_serializing_if = "Detail::is_empty")]
    pub detail: Detail,
}

/// A history event's detail. ARP's is typed, so a storm of new stations builds no JSON until
/// it is written; the rest is JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Detail {
    Arp {
        op: u16,
        gratuitous: bool,
        probe: bool,
        announcement: bool,
        /// The MAC that held the IP before, for a move or flip flop.
        previous: Option<Mac>,
    },
    Json(serde_json::Value),
}

impl Detail {
    /// The names of the ARP flags that are set.
    fn arp_flags(&self) -> impl Iterator<Item = &'static str> {
        let set = match self {
            Detail::Arp {
                gratuitous,
                probe,
                announcement,
                ..
            } => [*gratuitous, *probe, *announcement],
            Detail::Json(_) => [false; 3],
        };
        ["gratuitous", "probe", "announcement"]
            .into_iter()
            .zip(set)
            .filter_map(|(name, on)| on.then_some(name))
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Detail::Json(serde_json::Value::Null))
    }

    /// The detail as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Detail::Json(v) => v.clone(),
            Detail::Arp { .. } => serde_json::to_value(self).unwrap_or_default(),
        }
    }

    /// Writes the detail's JSON text into `out` (cleared first); false when there is none.
    pub fn write_json(&self, out: &mut String) -> bool {
        use std::fmt::Write as _;
        out.clear();
        match self {
            Detail::Json(serde_json::Value::Null) => false,
            Detail::Json(v) => {
                let _ = write!(out, "{v}");
                true
            }
            Detail::Arp { op, previous, .. } => {
                let _ = write!(out, "{{\"op\":{op}");
                for name in self.arp_flags() {
                    let _ = write!(out, ",\"{name}\":true");
                }
                if let Some(p) = previous {
                    let _ = write!(out, ",\"previous_mac\":\"{p}\"");
                }
                out.push('}');
                true
            }
        }
    }
}

impl Serialize for Detail {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        match self {
            Detail::Json(v) => v.serialize(s),
            Detail::Arp { op, previous, .. } => {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("op", op)?;
                for name in self.arp_flags() {
                    m.serialize_entry(name, &true)?;
                }
                if let Some(p) = previous {
                    m.serialize_entry("previous_mac", p)?;
                }
                m.end()
            }
        }
    }
}

impl HistoryEvent {
    /// An ARP binding seen again unchanged (`arp_refreshed`): for the live stream only (MAAS's
    /// REFRESHED), as the history would grow by a row per station per refresh.
    pub fn refreshed(
        obs: &Observation,
        change: Option<Change>,
        now: Nanos,
    ) -> Option<HistoryEvent> {
        match obs {
            Observation::Arp { ip, .. }
                if change == Some(Change::Refreshed) && !ip.is_unspecified() =>
            {
                Self::of_with(obs, change, now, true)
            }
            _ => None,
        }
    }

    /// The history entry for an observation and the change it made to the device table
    /// (MAAS's and arpwatch's words: new, moved, flip_flop). None for refreshes, which only
    /// move `last_seen` (the device row has it) and would flood the history of a big segment.
    pub fn of(obs: &Observation, change: Option<Change>, now: Nanos) -> Option<HistoryEvent> {
        Self::of_with(obs, change, now, false)
    }

    /// [`HistoryEvent::of`], with ARP refreshes as `arp_refreshed` when `refreshes`.
    fn of_with(
        obs: &Observation,
        change: Option<Change>,
        now: Nanos,
        refreshes: bool,
    ) -> Option<HistoryEvent> {
        use serde_json::json;
        match obs {
            Observation::Arp {
                seg,
                ip,
                mac,
                op,
                gratuitous,
                probe,
                announcement,
                ..
            } => {
                let kind = match change {
                    Some(Change::Refreshed) if refreshes => "arp_refreshed",
                    Some(Change::Refreshed) => return None,
                    Some(Change::New) => "arp_new",
                    Some(Change::Moved { .. }) => "arp_moved",
                    Some(Change::FlipFlop { .. }) => "arp_flip_flop",
                    None if *probe => "arp_probe",
                    None => return None,
                };
                Some(HistoryEvent {
                    id: 0,
                    ts: now,
                    seg: *seg,
                    kind: kind.into(),
                    ip: Some(IpAddr::V4(*ip)),
                    mac: *mac,
                    detail: Detail::Arp {
                        op: *op,
                        gratuitous: *gratuitous,
                        probe: *probe,
                        announcement: *announcement,
                        previous: match change {
                            Some(Change::Moved { old_mac } | Change::FlipFlop { old_mac }) => {
                                Some(old_mac)
                            }
                            _ => None,
                        },
                    },
                })
            }
            Observation::Dhcp {
                seg,
                src_mac,
                src_ip,
                msg,
            } => {
                let mut detail = json!({ "xid": format!("{:#010x}", msg.xid) });
                let addrs = [
                    ("src_ip", Some(*src_ip)),
                    ("ciaddr", Some(msg.ciaddr)),
                    ("yiaddr", Some(msg.yiaddr)),
                    ("server_id", msg.server_id),
                    ("requested_ip", msg.requested_ip),
                ];
                for (name, ip) in addrs {
                    if let Some(ip) = ip.filter(|ip| !ip.is_unspecified()) {
                        detail[name] = json!(ip);
                    }
                }
                if let Some(h) = msg.host_name() {
                    detail["hostname"] = json!(h);
                }
                if let Some(l) = msg.lease_time {
                    detail["lease_secs"] = json!(l);
                }
                let ip = [msg.yiaddr, msg.ciaddr, msg.requested_ip.unwrap_or(*src_ip)]
                    .into_iter()
                    .find(|ip| !ip.is_unspecified())
                    .map(IpAddr::V4);
                Some(HistoryEvent {
                    id: 0,
                    ts: now,
                    seg: *seg,
                    kind: format!("dhcp_{}", msg_type_name(msg.msg_type)).into(),
                    ip,
                    mac: msg.chaddr.unwrap_or(*src_mac),
                    detail: Detail::Json(detail),
                })
            }
            // Their findings carry them.
            Observation::Loop { .. } | Observation::Scan { .. } => None,
            // IPv6 history is written by `of6`, which sees the IPv6 state's update.
            Observation::Neighbour { .. }
            | Observation::DadProbe { .. }
            | Observation::RouterAdvert { .. }
            | Observation::Dhcpv6 { .. } => None,
            // Switch history is written by `of_switch`, which sees the switch state's update.
            Observation::Switch { .. } => None,
        }
    }

    /// The history entry for a switch PDU that changed something: a neighbour seen first or
    /// changed (the cable moved), a spanning-tree root seen first or changed, a LACP port
    /// whose partner or state changed.
    pub fn of_switch(
        obs: &Observation,
        up: &crate::state::SwitchUpdate,
        sw: &crate::state::SwitchState,
        now: Nanos,
    ) -> Option<HistoryEvent> {
        use serde_json::json;
        let Observation::Switch { seg, src_mac, .. } = obs else {
            return None;
        };
        let (kind, detail) = if let Some((k, Some(before))) = &up.neighbour {
            let n = sw.neighbour(k)?;
            let kind = if before.is_some() {
                "neighbour_changed"
            } else {
                "neighbour_new"
            };
            (
                kind,
                json!({ "protocol": k.protocol, "neighbour": n, "before": before }),
            )
        } else if let Some((k, Some(before))) = &up.stp {
            let v = sw.stp_view(k)?;
            let kind = if before.is_some() {
                "stp_root_changed"
            } else {
                "stp_root_new"
            };
            let old = before.map(|b| b.to_string());
            (
                kind,
                json!({ "pvst_vlan": k.pvst_vlan, "stp": v, "before": old }),
            )
        } else if let Some((k, prev)) = &up.lacp {
            let p = sw.lacp_port(k)?;
            let same = prev.as_ref().is_some_and(|o| {
                o.partner.system == p.partner.system
                    && o.partner.key == p.partner.key
                    && o.actor_state == p.actor_state
            });
            if same {
                return None;
            }
            let kind = if prev.is_some() {
                "lacp_changed"
            } else {
                "lacp_new"
            };
            (kind, json!({ "lacp": p, "before": prev }))
        } else {
            return None;
        };
        Some(HistoryEvent {
            id: 0,
            ts: now,
            seg: *seg,
            kind: kind.into(),
            ip: None,
            mac: *src_mac,
            detail: Detail::Json(detail),
        })
    }

    /// The history entry for an IPv6 observation: an address learnt or moved, a DAD probe, a
    /// router seen first or retiring, a DHCPv6 server's answer.
    pub fn of6(obs: &Observation, up: &Update6, now: Nanos) -> Option<HistoryEvent> {
        use serde_json::json;
        let (seg, kind, ip, mac, detail) = match obs {
            Observation::Neighbour {
                seg,
                ip,
                mac,
                advert,
                router,
                ..
            } => {
                let kind = match up.neighbour {
                    Some((_, Change6::New)) => "nd_new",
                    Some((_, Change6::Moved { .. })) => "nd_moved",
                    _ => return None,
                };
                let mut d = json!({ "message": if *advert { "na" } else { "ns" } });
                if let Some((_, Change6::Moved { old_mac })) = up.neighbour {
                    d["old_mac"] = json!(old_mac);
                }
                if *router {
                    d["router"] = json!(true);
                }
                (*seg, kind, Some(IpAddr::V6(*ip)), *mac, d)
            }
            Observation::DadProbe {
                seg,
                target,
                mac,
                nonce,
            } => {
                let d = json!({ "nonce": nonce.map(|n| crate::capture::hex(&n)) });
                (*seg, "dad_probe", Some(IpAddr::V6(*target)), *mac, d)
            }
            Observation::RouterAdvert {
                seg,
                src_mac,
                src_ip,
                ra,
            } => {
                let kind = match up.router {
                    Some((_, true)) => "router_new",
                    _ if ra.router_lifetime_secs == 0 => "router_retired",
                    _ => return None,
                };
                (*seg, kind, Some(IpAddr::V6(*src_ip)), *src_mac, json!(ra))
            }
            Observation::Dhcpv6 {
                seg, src_mac, msg, ..
            } => {
                let ip = msg.addresses.first().map(|a| IpAddr::V6(a.address));
                let kind = match msg.msg_type {
                    1 => "dhcpv6_solicit",
                    2 => "dhcpv6_advertise",
                    3 => "dhcpv6_request",
                    7 => "dhcpv6_reply",
                    8 => "dhcpv6_release",
                    9 => "dhcpv6_decline",
                    _ => return None,
                };
                (*seg, kind, ip, *src_mac, json!(msg))
            }
            _ => return None,
        };
        Some(HistoryEvent {
            id: 0,
            ts: now,
            seg,
            kind: kind.into(),
            ip,
            mac,
            detail: Detail::Json(detail),
        })
    }
}

/// What changed since the last [`Engine::take_changes`]: one batch for the store.
#[derive(Debug, Default)]
pub struct Changes {
    pub devices: Vec<(DeviceKey, Device)>,
    pub servers: Vec<(ServerKey, Server)>,
    /// IPv6 addresses: the station holding each now.
    pub addrs6: Vec<(Segment, Mac, Addr6)>,
    pub routers: Vec<(RouterKey, Router)>,
    pub servers6: Vec<(Server6Key, Server6)>,
    /// Open findings that opened or were refreshed, and findings that closed.
    pub findings: Vec<Finding>,
    pub events: Vec<HistoryEvent>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.rows() == 0
    }

    pub fn rows(&self) -> usize {
        self.devices.len()
            + self.servers.len()
            + self.addrs6.len()
            + self.routers.len()
            + self.servers6.len()
            + self.findings.len()
            + self.events.len()
    }
}

/// Keys touched since the last batch. Dirty sets coalesce: a device refreshed a thousand
/// times between two batches is written once. Bounded by the tables they point into, except
/// the history, which has its own cap.
struct Journal {
    devices: FastSet<DeviceKey>,
    servers: FastSet<ServerKey>,
    addrs6: FastSet<(Segment, std::net::Ipv6Addr)>,
    routers: FastSet<RouterKey>,
    servers6: FastSet<Server6Key>,
    findings: FastSet<(FindingKind, Subject)>,
    closed: Vec<Finding>,
    events: Vec<HistoryEvent>,
    max_events: usize,
}

impl Journal {
    fn new(max_events: usize) -> Self {
        Journal {
            devices: FastSet::default(),
            servers: FastSet::default(),
            addrs6: FastSet::default(),
            routers: FastSet::default(),
            servers6: FastSet::default(),
            findings: FastSet::default(),
            closed: Vec::new(),
            events: Vec::new(),
            max_events,
        }
    }
}

/// What the store read back, for [`Engine::restore`].
#[derive(Debug, Default)]
pub struct Restored {
    /// Least recently seen first.
    pub devices: Vec<(DeviceKey, Device)>,
    pub servers: Vec<(ServerKey, Server)>,
    /// Least recently seen first.
    pub addrs6: Vec<(Segment, Mac, Addr6)>,
    pub routers: Vec<(RouterKey, Router)>,
    pub servers6: Vec<(Server6Key, Server6)>,
    pub open_findings: Vec<Finding>,
    /// Oldest first.
    pub closed_findings: Vec<Finding>,
    /// The newest history event's id (0 for none): numbering goes on after it.
    pub last_event_id: u64,
}

pub struct Engine {
    table: DeviceTable,
    servers: DhcpServers,
    txs: crate::state::dhcp_transactions::Transactions,
    /// Answer delays, outcomes, unanswered requests and boot offers, for the metrics.
    health: crate::state::dhcp_health::DhcpHealth,
    v6: Ipv6State,
    sw: crate::state::SwitchState,
    /// The DHCP allowlists, for the server list's verdict.
    dhcp_allow: DhcpServerConfig,
    router_allow: crate::detect::ipv6_router::RouterConfig,
    dhcpv6_allow: crate::detect::dhcpv6::Dhcpv6ServerConfig,
    /// Member interface -> bond, for the LACP rows (config and sysfs, read at build and reload).
    bond_of: BTreeMap<String, String>,
    detectors: Detectors,
    findings: Findings,
    stats: EngineStats,
    journal: Option<Journal>,
    /// Numbered events for the live stream, taken by [`Engine::take_stream`].
    outbox: Option<Outbox>,
    next_event_id: u64,
    /// Segments with an open `arp_flood`, with the finding's subject.
    flooding: FastMap<Segment, Subject>,
}

/// Events waiting for the live stream between two takes; bounded, overflow counted.
struct Outbox {
    events: Vec<HistoryEvent>,
    cap: usize,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Engine {
            table: DeviceTable::new(cfg.devices.clone()),
            servers: DhcpServers::new(cfg.limits.max_dhcp_servers),
            txs: crate::state::dhcp_transactions::Transactions::new(
                cfg.dhcp_transactions.capacity,
                cfg.dhcp_transactions.timeout_secs.saturating_mul(SECOND),
            ),
            health: Default::default(),
            v6: Ipv6State::new(&cfg.ipv6),
            sw: crate::state::SwitchState::new(&cfg.switch_state),
            dhcp_allow: cfg.dhcp_servers.clone(),
            router_allow: cfg.ipv6_routers.clone(),
            dhcpv6_allow: cfg.dhcpv6_servers.clone(),
            bond_of: crate::detect::switch_ports::bond_of(&cfg.switch),
            detectors: Detectors::build(&cfg),
            findings: Findings::new(cfg.limits.max_open_findings, cfg.limits.max_closed_findings),
            stats: EngineStats::default(),
            journal: None,
            outbox: None,
            next_event_id: 1,
            flooding: FastMap::default(),
        }
    }

    /// Applies a new configuration (SIGHUP). The device table, servers and findings keep their
    /// contents; a detector whose settings changed starts over with empty windows, the others
    /// keep theirs. Capacities need a restart. Returns the detectors rebuilt.
    pub fn reconfigure(&mut self, cfg: &EngineConfig) -> Vec<&'static str> {
        self.table.set_windows(&cfg.devices);
        self.dhcp_allow = cfg.dhcp_servers.clone();
        self.router_allow = cfg.ipv6_routers.clone();
        self.dhcpv6_allow = cfg.dhcpv6_servers.clone();
        self.bond_of = crate::detect::switch_ports::bond_of(&cfg.switch);
        self.detectors.reconfigure(cfg)
    }

    /// Keeps a journal of what changed for [`Engine::take_changes`] (the store sink). At most
    /// `max_events` history events wait between two batches; more are dropped and counted.
    pub fn with_journal(mut self, max_events: usize) -> Self {
        self.journal = Some(Journal::new(max_events));
        self
    }

    /// Keeps every numbered event (the history's, and ARP refreshes, which the history leaves
    /// out) for [`Engine::take_stream`]; at most `cap` wait between two takes.
    pub fn with_stream(mut self, cap: usize) -> Self {
        self.outbox = Some(Outbox {
            events: Vec::new(),
            cap: cap.max(1),
        });
        self
    }

    /// The events numbered since the last take, oldest first.
    pub fn take_stream(&mut self) -> Vec<HistoryEvent> {
        self.outbox
            .as_mut()
            .map(|o| std::mem::take(&mut o.events))
            .unwrap_or_default()
    }

    /// Loads state read back from the store. Call before the first observation.
    pub fn restore(&mut self, r: Restored) {
        self.next_event_id = self.next_event_id.max(r.last_event_id + 1);
        for (k, d) in r.devices {
            self.table.restore(k, d);
        }
        for (k, s) in r.servers {
            self.servers.restore(k, s);
        }
        for (seg, mac, a) in r.addrs6 {
            self.v6.neighbours.restore(seg, mac, a);
        }
        for (k, rt) in r.routers {
            self.v6.routers.restore(k, rt);
        }
        for (k, s) in r.servers6 {
            self.v6.servers.restore(k, s);
        }
        for f in r.closed_findings {
            self.findings.restore(f);
        }
        for f in r.open_findings {
            if f.kind == kind::ARP_FLOOD {
                self.flood_opened(f.seg, &f.subject);
            }
            self.findings.restore(f);
        }
    }

    fn flood_opened(&mut self, seg: Segment, subject: &Subject) {
        self.flooding.insert(seg, subject.clone());
        self.table.set_flooding(seg, true);
    }

    /// Everything that changed since the last call, ready to be written as one batch.
    pub fn take_changes(&mut self) -> Changes {
        let Some(j) = self.journal.as_mut() else {
            return Changes::default();
        };
        let devices = j
            .devices
            .drain()
            .filter_map(|k| self.table.get(&k).map(|d| (k, d.clone())))
            .collect();
        let servers = j
            .servers
            .drain()
            .filter_map(|k| self.servers.get(&k).map(|s| (k, s.clone())))
            .collect();
        let n6 = &self.v6.neighbours;
        let addrs6 = j
            .addrs6
            .drain()
            .filter_map(|(seg, ip)| n6.holder(seg, ip).map(|(mac, a)| (seg, mac, *a)))
            .collect();
        let routers = j
            .routers
            .drain()
            .filter_map(|k| self.v6.routers.get(&k).map(|r| (k, r.clone())))
            .collect();
        let servers6 = j
            .servers6
            .drain()
            .filter_map(|k| self.v6.servers.get(&k).cloned().map(|s| (k, s)))
            .collect();
        let mut findings: Vec<Finding> = j
            .findings
            .drain()
            .filter_map(|(kind, subject)| self.findings.get(kind, &subject).cloned())
            .collect();
        findings.append(&mut j.closed);
        Changes {
            devices,
            servers,
            addrs6,
            routers,
            servers6,
            findings,
            events: std::mem::take(&mut j.events),
        }
    }

    /// Feeds one observation; returns findings opened by it.
    pub fn observe(&mut self, obs: &Observation, now: Nanos) -> Vec<FindingEvent> {
        self.observe_from(obs, now, false)
    }

    /// Feeds one observation the kernel held back (drained from its pending maps, so late):
    /// a claim no newer than what the table knows does not override it.
    pub fn observe_held_back(&mut self, obs: &Observation, now: Nanos) -> Vec<FindingEvent> {
        self.observe_from(obs, now, true)
    }

    fn observe_from(
        &mut self,
        obs: &Observation,
        now: Nanos,
        held_back: bool,
    ) -> Vec<FindingEvent> {
        self.stats.observations += 1;
        match obs {
            Observation::Arp { .. } => self.stats.arp_observations += 1,
            Observation::Dhcp { .. } => self.stats.dhcp_observations += 1,
            Observation::Loop { .. } => self.stats.loop_observations += 1,
            Observation::Scan { .. } => self.stats.scan_observations += 1,
            Observation::Neighbour { .. } => self.stats.nd_observations += 1,
            Observation::DadProbe { .. } => self.stats.dad_observations += 1,
            Observation::RouterAdvert { .. } => self.stats.ra_observations += 1,
            Observation::Dhcpv6 { .. } => self.stats.dhcpv6_observations += 1,
            Observation::Switch { .. } => self.stats.switch_observations += 1,
        }
        let up = update_state_from(&mut self.table, &mut self.servers, obs, now, held_back);
        let up6 = self.v6.update(obs, now);
        let up_sw = self.sw.update(obs, now);
        let tx = match obs {
            Observation::Dhcp {
                seg, src_mac, msg, ..
            } => self.txs.observe(*seg, *src_mac, msg, now),
            _ => Default::default(),
        };
        if let Some(k) = tx.key {
            let t = self.txs.get(&k);
            self.health.observe(&tx, t);
            // An ACK with a lease: how the machine boots, and the path it came by.
            if let (Some(t), Some(dev), Observation::Dhcp { msg, .. }) = (t, up.device, obs) {
                if msg.kind() == Some(DhcpMsgType::Ack) && !msg.yiaddr.is_unspecified() {
                    let boot = crate::state::Boot {
                        pxe: t.pxe,
                        arch: t
                            .arch
                            .map(|a| crate::decode::dhcp::arch_name(a).to_string()),
                        boot_server: msg.boot_server(),
                        boot_file: msg.boot_file().map(str::to_string),
                        relay: t.relay,
                        circuit_id: t.circuit_id.clone(),
                        remote_id: t.remote_id.clone(),
                    };
                    self.table.set_boot(&dev, boot);
                }
            }
        }
        if let Some((_, Change6::Moved { .. })) = up6.neighbour {
            self.stats.ipv6_moves += 1;
        }
        match up.change {
            Some(Change::Moved { .. } | Change::FlipFlop { .. }) => self.stats.mac_moves += 1,
            Some(Change::New) => self.stats.devices_learnt += 1,
            _ => {}
        }
        let ctx = Context {
            table: &self.table,
            servers: &self.servers,
            change: up.change,
            v6: &self.v6,
            update6: &up6,
            txs: &self.txs,
            tx: &tx,
            switch: &self.sw,
            update_sw: &up_sw,
        };
        let signals = self.detectors.observe(obs, &ctx, now);
        // While a flood churns a full table, its own rows (the probation tier) are not
        // stored, nor is their history: they are evicted within moments, and the flood
        // finding counts them. A burst that fits the table is stored whole, and a row seen
        // again after the flood is promoted and stored then.
        let flood_row = up
            .device
            .is_some_and(|k| self.table.is_full() && self.table.in_probation(&k));
        if let Some(j) = self.journal.as_mut() {
            if flood_row {
                self.stats.flood_rows_not_stored += 1;
            } else {
                j.devices.extend(up.device);
            }
            j.servers.extend(up.server);
            if let Some((ip, _)) = up6.neighbour {
                j.addrs6.insert((obs.segment(), ip));
            }
            for ip in &up6.leased {
                j.addrs6.insert((obs.segment(), *ip));
            }
            if let Some((k, _)) = up6.router {
                j.routers.insert(k);
            }
            if let Some(k) = &up6.server {
                j.servers6.insert(k.clone());
            }
        }
        if !flood_row && (self.journal.is_some() || self.outbox.is_some()) {
            let ev = HistoryEvent::of(obs, up.change, now)
                .or_else(|| HistoryEvent::of6(obs, &up6, now))
                .or_else(|| HistoryEvent::of_switch(obs, &up_sw, &self.sw, now));
            // A refresh is numbered for the stream only: the history leaves it out.
            let (ev, stored) = match ev {
                Some(ev) => (Some(ev), true),
                None if self.outbox.is_some() => {
                    (HistoryEvent::refreshed(obs, up.change, now), false)
                }
                None => (None, false),
            };
            if let Some(mut ev) = ev {
                ev.id = self.next_event_id;
                self.next_event_id += 1;
                if let Some(o) = self.outbox.as_mut() {
                    if o.events.len() < o.cap {
                        o.events.push(ev.clone());
                    } else {
                        self.stats.stream_dropped += 1;
                    }
                }
                if let Some(j) = self.journal.as_mut().filter(|_| stored) {
                    if j.events.len() < j.max_events {
                        j.events.push(ev);
                    } else {
                        self.stats.history_dropped += 1;
                    }
                }
            }
        }
        self.apply(signals, now)
    }

    /// Turns signals into findings: folded into the finding that explains them (an open
    /// `arp_flood` on their segment, the `duplicate_ip` of their address), or opened or
    /// refreshed on their own. Returns what opened and what closed into something else.
    fn apply(&mut self, signals: Vec<crate::detect::Signal>, now: Nanos) -> Vec<FindingEvent> {
        if let Some(j) = self.journal.as_mut() {
            for s in &signals {
                j.findings.insert((s.kind, s.subject.clone()));
            }
        }
        let mut out = Vec::new();
        for s in signals {
            if let Some(flood) = self.flooding.get(&s.seg) {
                if kind::FOLDED_BY_FLOOD.contains(&s.kind)
                    && self.findings.fold((kind::ARP_FLOOD, flood), &s)
                {
                    continue;
                }
            }
            // The duplicate explains its address's MAC changes.
            if kind::FOLDED_BY_DUPLICATE.contains(&s.kind)
                && self.findings.fold((kind::DUPLICATE_IP, &s.subject), &s)
            {
                continue;
            }
            if let Some(ev) = self.findings.signal(s, now) {
                let mut absorbed = Vec::new();
                if let FindingEvent::Opened(f) = &ev {
                    if f.kind == kind::ARP_FLOOD {
                        let (seg, subject) = (f.seg, f.subject.clone());
                        self.flood_opened(seg, &subject);
                    }
                    if f.kind == kind::DUPLICATE_IP {
                        absorbed = self.findings.absorb(
                            (kind::DUPLICATE_IP, &f.subject),
                            kind::FOLDED_BY_DUPLICATE,
                            now,
                        );
                    }
                }
                out.push(ev);
                for f in absorbed {
                    if let Some(j) = self.journal.as_mut() {
                        j.closed.push(f.clone());
                    }
                    out.push(FindingEvent::Closed(f));
                }
            }
        }
        out
    }

    /// Once per pipeline tick: the detectors' own tick (conditions that hold because something
    /// did not happen), then findings that went quiet are closed.
    pub fn tick(&mut self, now: Nanos) -> Vec<FindingEvent> {
        for (k, t) in self.txs.tick(now) {
            self.health.unanswered(k.seg, &t);
        }
        let signals = self.detectors.tick(now);
        let mut out = self.apply(signals, now);
        let closed = self.findings.tick(now);
        for ev in &closed {
            if let FindingEvent::Closed(f) = ev {
                if f.kind == kind::ARP_FLOOD {
                    self.flooding.remove(&f.seg);
                    self.table.set_flooding(f.seg, false);
                }
                if let Some(j) = self.journal.as_mut() {
                    j.closed.push(f.clone());
                }
            }
        }
        out.extend(closed);
        out
    }

    pub fn table(&self) -> &DeviceTable {
        &self.table
    }

    /// The IPv6 neighbours, routers and DHCPv6 servers.
    pub fn ipv6(&self) -> &Ipv6State {
        &self.v6
    }

    /// The switch-facing view: LLDP/CDP neighbours, spanning tree, LACP.
    pub fn switch(&self) -> &crate::state::SwitchState {
        &self.sw
    }

    /// The LLDP and CDP neighbours, by interface; each with the LACP partner heard on the
    /// same interface, if any.
    pub fn neighbour_rows(&self) -> Vec<NeighbourRow> {
        let mut v: Vec<_> = self
            .sw
            .neighbours()
            .map(|(k, n)| NeighbourRow {
                key: *k,
                vlan: k.seg.vlan_label(),
                name: n.name().to_string(),
                lacp: self
                    .sw
                    .lacp()
                    .filter(|(l, _)| l.seg == k.seg)
                    .map(|(_, p)| LacpSummary {
                        system: p.actor.system,
                        key: p.actor.key,
                        port: p.actor.port,
                        state: p.actor_state.clone(),
                    })
                    .min_by_key(|s| s.system),
                neighbour: n.clone(),
            })
            .collect();
        v.sort_by_key(|r| r.key);
        v
    }

    /// The spanning trees seen, by segment and PVST+ VLAN.
    pub fn stp_rows(&self) -> Vec<StpRow> {
        let mut v: Vec<_> = self
            .sw
            .stp()
            .map(|(k, s)| StpRow {
                key: *k,
                vlan: k.seg.vlan_label(),
                stp: s.clone(),
            })
            .collect();
        v.sort_by_key(|r| r.key);
        v
    }

    /// The LACP ports seen, with the bond each interface belongs to.
    pub fn lacp_rows(&self) -> Vec<LacpRow> {
        let mut v: Vec<_> = self
            .sw
            .lacp()
            .map(|(k, p)| LacpRow {
                key: *k,
                vlan: k.seg.vlan_label(),
                bond: self.bond_of.get(k.seg.iface.name()).cloned(),
                port: p.clone(),
            })
            .collect();
        v.sort_by_key(|r| r.key);
        v
    }

    /// The DHCPv4 transactions.
    pub fn transactions(&self) -> &crate::state::dhcp_transactions::Transactions {
        &self.txs
    }

    /// Answer delays, outcomes, unanswered requests and boot offers.
    pub fn dhcp_health(&self) -> &crate::state::dhcp_health::DhcpHealth {
        &self.health
    }

    /// The engine's counters; evictions and drops are read from the tables that count them.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            device_evictions: self.table.evictions(),
            dhcp_server_evictions: self.servers.evictions(),
            ipv6_station_evictions: self.v6.neighbours.evictions(),
            router_evictions: self.v6.routers.evictions(),
            dhcpv6_server_evictions: self.v6.servers.evictions(),
            findings_dropped: self.findings.dropped(),
            findings_folded: self.findings.folded(),
            ..self.stats.clone()
        }
    }

    pub fn open_findings(&self) -> Vec<&Finding> {
        self.findings.open()
    }

    pub fn closed_findings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.closed()
    }

    pub fn findings_opened_total(&self) -> &BTreeMap<FindingKind, u64> {
        self.findings.opened_total()
    }

    /// The device table as reported (JSON, API), most recently seen first.
    pub fn device_rows(
        &self,
        now: Nanos,
        vendor: impl Fn(&Mac) -> Option<String>,
    ) -> Vec<DeviceRow> {
        self.device_rows_where(now, vendor, |_, _| true)
    }

    /// The rows `keep` accepts; the test runs before a row is built.
    pub fn device_rows_where(
        &self,
        now: Nanos,
        vendor: impl Fn(&Mac) -> Option<String>,
        keep: impl Fn(&DeviceKey, &Device) -> bool,
    ) -> Vec<DeviceRow> {
        self.table
            .iter()
            .filter(|(k, d)| keep(k, d))
            .map(|(k, d)| DeviceRow {
                key: *k,
                vlan: k.seg.vlan_label(),
                mac: d.mac,
                vendor: vendor(&d.mac),
                first_seen: d.first_seen,
                last_seen: d.last_seen,
                source: d.source,
                hostname: d.hostname.as_deref().map(str::to_string),
                lease: d.lease,
                state: self.table.state(d, now),
                mac_changes: d.mac_changes,
                boot: d.boot.as_deref().cloned(),
            })
            .collect()
    }

    /// The IPv6 addresses `keep` accepts, most recently seen station first.
    pub fn address6_rows_where(
        &self,
        now: Nanos,
        vendor: impl Fn(&Mac) -> Option<String>,
        keep: impl Fn(&Segment, &Mac, &Addr6) -> bool,
    ) -> Vec<Address6Row> {
        let stale = self.table.stale_after();
        let mut out = Vec::new();
        for ((seg, mac), st) in self.v6.neighbours.iter() {
            for a in st.addrs.iter().rev().filter(|a| keep(seg, mac, a)) {
                out.push(Address6Row {
                    family: 6,
                    seg: *seg,
                    vlan: seg.vlan_label(),
                    ip: a.ip,
                    mac: *mac,
                    vendor: vendor(mac),
                    kind: a.kind.name(),
                    learnt: a.learnt.name(),
                    first_seen: a.first_seen,
                    last_seen: a.last_seen,
                    state: if now.saturating_sub(a.last_seen) > stale {
                        DeviceState::Stale
                    } else {
                        DeviceState::Active
                    },
                });
            }
        }
        out
    }

    /// The DHCPv4 transactions as reported, oldest first.
    pub fn transaction_rows(&self) -> Vec<TxRow> {
        let mut v: Vec<TxRow> = self
            .txs
            .iter()
            .map(|(k, t)| TxRow {
                key: *k,
                vlan: k.seg.vlan_label(),
                xid_hex: format!("{:#010x}", k.xid),
                tx: t.clone(),
            })
            .collect();
        v.sort_by_key(|r| (r.tx.started, r.key));
        v
    }

    /// The IPv6 routers as reported, by segment.
    pub fn router_rows(&self) -> Vec<RouterRow> {
        let mut v: Vec<_> = self
            .v6
            .routers
            .iter()
            .map(|(k, r)| RouterRow {
                key: *k,
                vlan: k.seg.vlan_label(),
                prefixes: r.prefixes(),
                authorized: self.router_allow.authorized(k),
                router: r.clone(),
            })
            .collect();
        v.sort_by_key(|r| r.key);
        v
    }

    /// The DHCPv6 servers as reported, by segment and DUID.
    pub fn server6_rows(&self) -> Vec<Server6Row> {
        let mut v: Vec<_> = self
            .v6
            .servers
            .iter()
            .map(|(k, s)| Server6Row {
                key: k.clone(),
                vlan: k.seg.vlan_label(),
                duid_mac: k.duid.mac(),
                authorized: self.dhcpv6_allow.authorized(k, s),
                server: s.clone(),
            })
            .collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }

    /// The DHCP servers as reported.
    pub fn server_rows(&self) -> Vec<ServerRow> {
        let mut v: Vec<_> = self
            .servers
            .iter()
            .map(|(k, s)| ServerRow {
                key: *k,
                vlan: k.seg.vlan_label(),
                authorized: self.dhcp_allow.authorized(k),
                boot_offer: self.health.boot_offer.get(&(k.seg, k.server_id)).cloned(),
                offer_delay_seconds: self
                    .health
                    .offer_quantiles(k.seg, k.server_id)
                    .map(|(p50, p90, p99)| Quantiles { p50, p90, p99 }),
                server: s.clone(),
            })
            .collect();
        v.sort_by_key(|r| r.key);
        v
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceRow {
    #[serde(flatten)]
    pub key: DeviceKey,
    pub vlan: String,
    pub mac: Mac,
    pub vendor: Option<String>,
    pub first_seen: Nanos,
    pub last_seen: Nanos,
    pub source: Source,
    pub hostname: Option<String>,
    pub lease: Option<Lease>,
    pub state: DeviceState,
    pub mac_changes: u32,
    /// PXE, architecture, boot server and file, relay and circuit (DHCP devices).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot: Option<crate::state::Boot>,
}

/// One IPv6 address of a station, as reported (JSON, API).
#[derive(Debug, Clone, Serialize)]
pub struct Address6Row {
    pub family: u8,
    #[serde(flatten)]
    pub seg: Segment,
    pub vlan: String,
    pub ip: std::net::Ipv6Addr,
    pub mac: Mac,
    pub vendor: Option<String>,
    /// link_local, eui64 (SLAAC from the MAC), privacy (RFC 4941/7217 or static), dhcpv6.
    pub kind: &'static str,
    /// How it was learnt last: ns, na, dhcpv6.
    pub learnt: &'static str,
    pub first_seen: Nanos,
    pub last_seen: Nanos,
    pub state: DeviceState,
}

/// A DHCPv4 transaction as reported.
#[derive(Debug, Clone, Serialize)]
pub struct TxRow {
    #[serde(flatten)]
    pub key: crate::state::dhcp_transactions::TxKey,
    pub vlan: String,
    /// The transaction id as tshark shows `dhcp.id`.
    pub xid_hex: String,
    #[serde(flatten)]
    pub tx: crate::state::dhcp_transactions::Transaction,
}

/// An LLDP or CDP neighbour as reported.
#[derive(Debug, Clone, Serialize)]
pub struct NeighbourRow {
    #[serde(flatten)]
    pub key: crate::state::switch::NeighbourKey,
    pub vlan: String,
    /// System name, else chassis id.
    pub name: String,
    #[serde(flatten)]
    pub neighbour: crate::state::switch::Neighbour,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lacp: Option<LacpSummary>,
}

/// The LACP partner heard on an interface, in one line.
#[derive(Debug, Clone, Serialize)]
pub struct LacpSummary {
    pub system: Mac,
    pub key: u16,
    pub port: u16,
    pub state: String,
}

/// A spanning tree as reported.
#[derive(Debug, Clone, Serialize)]
pub struct StpRow {
    #[serde(flatten)]
    pub key: crate::state::switch::StpKey,
    pub vlan: String,
    #[serde(flatten)]
    pub stp: crate::state::switch::StpView,
}

/// A LACP port as reported.
#[derive(Debug, Clone, Serialize)]
pub struct LacpRow {
    #[serde(flatten)]
    pub key: crate::state::switch::LacpKey,
    pub vlan: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bond: Option<String>,
    #[serde(flatten)]
    pub port: crate::state::switch::LacpPort,
}

/// An IPv6 router as reported.
#[derive(Debug, Clone, Serialize)]
pub struct RouterRow {
    #[serde(flatten)]
    pub key: RouterKey,
    pub vlan: String,
    pub prefixes: Vec<String>,
    /// The allowlist's verdict; None where no allowlist names routers for the segment.
    pub authorized: Option<bool>,
    #[serde(flatten)]
    pub router: Router,
}

/// A DHCPv6 server as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Server6Row {
    #[serde(flatten)]
    pub key: Server6Key,
    pub vlan: String,
    /// The MAC inside a DUID-LLT or DUID-LL.
    pub duid_mac: Option<Mac>,
    pub authorized: Option<bool>,
    #[serde(flatten)]
    pub server: Server6,
}

/// Delay quantiles, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quantiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerRow {
    #[serde(flatten)]
    pub key: crate::state::ServerKey,
    pub vlan: String,
    pub authorized: Option<bool>,
    /// The boot server and file of its latest offer that named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_offer: Option<crate::state::dhcp_health::BootOffer>,
    /// Its OFFER delay (from the DISCOVER), estimated from the histogram's buckets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer_delay_seconds: Option<Quantiles>,
    #[serde(flatten)]
    pub server: crate::state::Server,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{dhcp::Allow, tests_support::dhcp_reply};
    use std::net::Ipv4Addr;

    #[test]
    fn arp_detail_writes_the_json_it_serializes_to() {
        let d = Detail::Arp {
            op: 1,
            gratuitous: true,
            probe: false,
            announcement: true,
            previous: None,
        };
        let mut text = String::new();
        assert!(d.write_json(&mut text));
        assert_eq!(text, r#"{"op":1,"gratuitous":true,"announcement":true}"#);
        assert_eq!(serde_json::to_string(&d).unwrap(), text);
        assert_eq!(
            d.to_json(),
            serde_json::from_str::<serde_json::Value>(&text).unwrap()
        );
        let moved = Detail::Arp {
            op: 2,
            gratuitous: false,
            probe: false,
            announcement: false,
            previous: Some(Mac([2, 0, 0, 0, 0, 0xb])),
        };
        assert!(moved.write_json(&mut text));
        assert_eq!(text, r#"{"op":2,"previous_mac":"02:00:00:00:00:0b"}"#);
        assert_eq!(serde_json::to_string(&moved).unwrap(), text);
        assert!(!Detail::Json(serde_json::Value::Null).write_json(&mut text));
        assert!(Detail::Json(serde_json::Value::Null).is_empty());
    }

    fn claim(mac: Mac, ip: Ipv4Addr, op: u16, target_ip: Ipv4Addr) -> Observation {
        Observation::Arp {
            seg: crate::detect::tests_support::seg(),
            change: crate::model::ArpChange::Changed,
            ip,
            mac,
            target_ip,
            op,
            gratuitous: op == 1,
            probe: false,
            announcement: op == 1,
        }
    }

    fn open_kinds(e: &Engine) -> Vec<(&'static str, String)> {
        e.open_findings()
            .iter()
            .map(|f| (f.kind.name(), f.subject.to_string()))
            .collect()
    }

    const MS: Nanos = 1_000_000;

    #[test]
    fn a_nic_swap_is_a_change_and_a_flip_back_not_a_duplicate() {
        // The lab's NIC swap: f1:01 announces twice, f2:02 twice, then f1:01 twice.
        let (a, b) = (Mac([2, 0, 0, 0, 0xf1, 1]), Mac([2, 0, 0, 0, 0xf2, 2]));
        let ip = Ipv4Addr::new(10, 77, 0, 60);
        let mut e = Engine::new(EngineConfig::default());
        for (i, mac) in [a, a, b, b, a, a].into_iter().enumerate() {
            e.observe(&claim(mac, ip, 1, ip), SECOND + i as Nanos * 500 * MS);
        }
        let subject = format!("{} {ip}", crate::detect::tests_support::seg());
        assert_eq!(
            open_kinds(&e),
            [
                ("mac_changed", subject.clone()),
                ("mac_flip_flop", subject.clone())
            ]
        );
    }

    #[test]
    fn a_real_duplicate_is_one_finding_that_absorbs_the_changes_it_explains() {
        // Both hosts answer every request from the asker: replies A, B, A, B within ms.
        let (a, b) = (Mac([2, 0, 0, 0, 2, 1]), Mac([2, 0, 0, 0, 2, 2]));
        let (ip, asker) = (Ipv4Addr::new(10, 77, 0, 50), Ipv4Addr::new(10, 77, 0, 1));
        let mut e = Engine::new(EngineConfig::default()).with_journal(100);
        let mut events = Vec::new();
        e.observe(&claim(a, ip, 1, ip), SECOND);
        for (i, mac) in [b, a, b, a, b].into_iter().enumerate() {
            events.extend(e.observe(&claim(mac, ip, 2, asker), 10 * SECOND + i as Nanos * MS));
        }
        let subject = format!("{} {ip}", crate::detect::tests_support::seg());
        assert_eq!(open_kinds(&e), [("duplicate_ip", subject.clone())]);
        let dup = e.open_findings()[0].clone();
        let macs: Vec<_> = dup.evidence["macs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mac"].as_str().unwrap().to_string())
            .collect();
        assert!(
            macs.contains(&a.to_string()) && macs.contains(&b.to_string()),
            "{macs:?}"
        );
        assert_eq!(dup.evidence["reason"], "both answered one request");
        // mac_changed opened on the first reply, before there was proof; it is closed into
        // the duplicate, and the flip-flops after it never open.
        assert_eq!(dup.evidence["folded"]["mac_changed"], 1, "{}", dup.evidence);
        assert!(dup.evidence["folded"]["mac_flip_flop"].as_u64().unwrap() >= 1);
        let closed: Vec<_> = events
            .iter()
            .filter_map(|ev| match ev {
                FindingEvent::Closed(f) => Some((f.kind.name(), f.evidence["folded_into"].clone())),
                _ => None,
            })
            .collect();
        assert_eq!(closed, [("mac_changed", serde_json::json!("duplicate_ip"))]);
        // The store hears of the closing too.
        let changes = e.take_changes();
        assert!(changes
            .findings
            .iter()
            .any(|f| f.kind == kind::MAC_CHANGED && f.closed.is_some()));
    }

    /// A detector that reports on its tick, not on observations: a segment that stayed
    /// silent.
    struct Silence;

    impl crate::detect::Detector for Silence {
        fn name(&self) -> &'static str {
            "silence"
        }
        fn kinds(&self) -> &'static [FindingKind] {
            &[kind::APIPA]
        }
        fn observe(
            &mut self,
            _: &Observation,
            _: &Context<'_>,
            _: Nanos,
        ) -> Vec<crate::detect::Signal> {
            vec![]
        }
        fn tick(&mut self, _now: Nanos) -> Vec<crate::detect::Signal> {
            let seg = crate::detect::tests_support::seg();
            vec![crate::detect::Signal {
                kind: kind::APIPA,
                subject: Subject::Segment(seg),
                seg,
                packets: 0,
                evidence: serde_json::json!({ "silent": true }),
                quiet: 10 * SECOND,
            }]
        }
    }

    #[test]
    fn a_detectors_tick_opens_findings_that_reach_the_store() {
        let mut e = Engine::new(EngineConfig::default()).with_journal(10);
        e.detectors = Detectors::of(vec![Box::new(Silence)]);
        let opened = e.tick(SECOND);
        assert!(
            matches!(&opened[..], [FindingEvent::Opened(f)] if f.kind == kind::APIPA),
            "{opened:?}"
        );
        assert!(e.tick(2 * SECOND).is_empty(), "refreshed, not opened again");
        let stored = e.take_changes();
        assert_eq!(stored.findings.len(), 1);
    }

    #[test]
    fn an_allowlisted_server_is_inventory_not_a_finding() {
        let mut cfg = EngineConfig::default();
        cfg.dhcp_servers.allow = vec![Allow {
            vlan: "*".into(),
            servers: vec!["10.0.0.1".into()],
        }];
        let mut e = Engine::new(cfg);
        let offer = dhcp_reply(
            Mac([2, 0, 0, 0, 0, 1]),
            Ipv4Addr::new(10, 0, 0, 1),
            2,
            Ipv4Addr::new(10, 0, 0, 50),
        );
        assert!(e.observe(&offer, SECOND).is_empty());
        assert!(e.open_findings().is_empty());
        assert_eq!(e.server_rows().len(), 1);
        assert_eq!(e.server_rows()[0].authorized, Some(true));
    }

    #[test]
    fn a_reload_keeps_the_windows_of_unchanged_detectors() {
        // Halfway to an interleaving duplicate (A B A), a reload that changes another
        // detector's settings must not forget the claims: the next B proves it.
        let (a, b) = (Mac([2, 0, 0, 0, 3, 1]), Mac([2, 0, 0, 0, 3, 2]));
        let ip = Ipv4Addr::new(10, 0, 0, 33);
        let run = |change: fn(&mut EngineConfig)| {
            let mut cfg = EngineConfig::default();
            let mut e = Engine::new(cfg.clone());
            for (i, mac) in [a, b, a].into_iter().enumerate() {
                e.observe(&claim(mac, ip, 1, ip), (1 + i as Nanos) * SECOND);
            }
            change(&mut cfg);
            let rebuilt = e.reconfigure(&cfg);
            e.observe(&claim(b, ip, 1, ip), 4 * SECOND);
            let dup = e
                .open_findings()
                .iter()
                .any(|f| f.kind == kind::DUPLICATE_IP);
            (rebuilt, dup)
        };
        assert_eq!(run(|c| c.apipa.quiet_secs += 1), (vec!["apipa"], true));
        assert_eq!(
            run(|c| c.duplicate_ip.window_secs += 1),
            (vec!["duplicate_ip"], false),
            "a changed detector starts over"
        );
    }

    #[test]
    fn server_rows_carry_the_allowlist_verdict_once() {
        let mut cfg = EngineConfig::default();
        cfg.dhcp_servers.allow = vec![Allow {
            vlan: "*".into(),
            servers: vec!["10.0.0.1".into()],
        }];
        let mut e = Engine::new(cfg);
        for (mac, ip) in [(0x51, [10, 0, 0, 1]), (0x52, [10, 0, 0, 2])] {
            let obs = dhcp_reply(
                Mac([2, 0, 0, 0, 0, mac]),
                Ipv4Addr::from(ip),
                2,
                Ipv4Addr::new(10, 0, 0, 50),
            );
            e.observe(&obs, SECOND);
        }
        let rows = e.server_rows();
        let verdicts: Vec<_> = rows.iter().map(|r| r.authorized).collect();
        assert_eq!(verdicts, [Some(true), Some(false)]);
        let json = serde_json::to_string(&rows[1]).unwrap();
        assert_eq!(json.matches("\"authorized\"").count(), 1, "{json}");
        assert!(json.contains("\"authorized\":false"), "{json}");
    }
}
