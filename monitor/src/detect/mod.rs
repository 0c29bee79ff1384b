//! Detectors: one module each, each a pure `observe(..., now) -> signals` with its own config.
//! A signal says "this condition holds now, with this evidence"; `Findings` turns signals into
//! findings that open, update, and close after the detector's quiet period.
pub mod apipa;
pub mod arp_flood;
pub mod arp_scan;
pub mod dhcp;
pub mod dhcp_nak_storm;
pub mod dhcp_pool;
pub mod dhcp_relay;
pub mod dhcp_slow;
pub mod dhcp_unanswered;
pub mod dhcpv6;
pub mod duplicate_ip;
pub mod ipv6_dad;
pub mod ipv6_lifetime_spoof;
pub mod ipv6_prefix;
pub mod ipv6_ra_consistency;
pub mod ipv6_router;
pub mod l2_loop;
pub mod lacp;
pub mod lldp_neighbour;
pub mod mac_change;
pub mod mac_collision;
pub mod pxe_boot;
pub mod registry;
pub mod stp;
pub mod subject;
pub mod switch_ports;
pub mod vlan_mismatch;

pub use subject::Subject;

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;
use serde_json::Value;

use crate::{
    model::{Nanos, Observation, Segment},
    state::{Change, DeviceTable, DhcpServers, Ipv6State, Update6},
};

/// Defines [`FindingKind`] with its stable names and a `kind::CONST` for each.
macro_rules! finding_kinds {
    ($($(#[$m:meta])* $variant:ident / $konst:ident = $name:literal,)+) => {
        /// What a finding is about. Each carries its stable name once: the metric label, the
        /// JSON value, the alert rules' matcher and the database column all use it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum FindingKind {
            $($(#[$m])* $variant,)+
        }

        impl FindingKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [FindingKind] = &[$(FindingKind::$variant,)+];

            pub const fn name(self) -> &'static str {
                match self {
                    $(FindingKind::$variant => $name,)+
                }
            }
        }

        /// The kinds by the constant names detectors use.
        pub mod kind {
            use super::FindingKind;
            $(pub const $konst: FindingKind = FindingKind::$variant;)+

            /// Findings about one binding or MAC that a flood causes by the thousand: while
            /// `arp_flood` is open on their segment they are folded into its evidence instead.
            pub const FOLDED_BY_FLOOD: &[FindingKind] =
                &[DUPLICATE_IP, MAC_CHANGED, MAC_FLIP_FLOP, MAC_COLLISION];

            /// Changes of one address's MAC: while `duplicate_ip` is open for that address,
            /// they are folded into it (the duplicate explains them).
            pub const FOLDED_BY_DUPLICATE: &[FindingKind] = &[MAC_CHANGED, MAC_FLIP_FLOP];

            /// The kind called `s`, if it is one.
            pub fn parse(s: &str) -> Option<FindingKind> {
                FindingKind::ALL.iter().copied().find(|k| k.name() == s)
            }
        }
    };
}

finding_kinds! {
    /// Two MACs alive at once on one IP.
    DuplicateIp / DUPLICATE_IP = "duplicate_ip",
    /// An IP moved to another MAC.
    MacChanged / MAC_CHANGED = "mac_changed",
    /// An IP moved back to the MAC it had before.
    MacFlipFlop / MAC_FLIP_FLOP = "mac_flip_flop",
    /// One MAC on several segments at once.
    MacCollision / MAC_COLLISION = "mac_collision",
    /// A DHCP server that is not on the segment's allowlist.
    DhcpServerSeen / DHCP_SERVER_SEEN = "dhcp_server_seen",
    DhcpRogueServer / DHCP_ROGUE_SERVER = "dhcp_rogue_server",
    DhcpCompetingServers / DHCP_COMPETING_SERVERS = "dhcp_competing_servers",
    DhcpStorm / DHCP_STORM = "dhcp_storm",
    DhcpStarvation / DHCP_STARVATION = "dhcp_starvation",
    Apipa / APIPA = "apipa",
    ArpFlood / ARP_FLOOD = "arp_flood",
    ArpScan / ARP_SCAN = "arp_scan",
    L2Loop / L2_LOOP = "l2_loop",
    /// A DAD probe for an address another MAC holds, or two stations probing one address.
    Ipv6DuplicateAddress / IPV6_DUPLICATE_ADDRESS = "ipv6_duplicate_address",
    /// One MAC answering other stations' DAD probes: nobody can configure an address.
    DadDos / DAD_DOS = "dad_dos",
    /// A router not on the allowlist, or a newcomer with a new prefix or a higher preference.
    Ipv6RogueRouter / IPV6_ROGUE_ROUTER = "ipv6_rogue_router",
    /// Routers that appeared together advertising different prefixes.
    Ipv6CompetingRouters / IPV6_COMPETING_ROUTERS = "ipv6_competing_routers",
    /// A lifetime-0 RA claiming a known router's address from another MAC (kill_router6).
    Ipv6RouterLifetimeSpoof / IPV6_ROUTER_LIFETIME_SPOOF = "ipv6_router_lifetime_spoof",
    /// A prefix outside the segment's allowlist, or one already known on another segment.
    Ipv6PrefixMismatch / IPV6_PREFIX_MISMATCH = "ipv6_prefix_mismatch",
    /// Two routers on one segment that disagree (RFC 4861 section 6.2.7).
    Ipv6RaInconsistent / IPV6_RA_INCONSISTENT = "ipv6_ra_inconsistent",
    /// A DHCPv6 server (by DUID) that the segment's allowlist does not list.
    Dhcpv6RogueServer / DHCPV6_ROGUE_SERVER = "dhcpv6_rogue_server",
    /// Two or more DHCPv6 servers (by DUID) answering on one segment.
    Dhcpv6CompetingServers / DHCPV6_COMPETING_SERVERS = "dhcpv6_competing_servers",
    /// DISCOVERs on a segment, and no OFFER: its DHCP is silent.
    DhcpUnanswered / DHCP_UNANSWERED = "dhcp_unanswered",
    /// The median DISCOVER-to-OFFER delay on a segment stays above the threshold.
    DhcpSlow / DHCP_SLOW = "dhcp_slow",
    /// Many NAKs on one segment.
    DhcpNakStorm / DHCP_NAK_STORM = "dhcp_nak_storm",
    /// A server that offered before now only NAKs, or stays silent while clients ask.
    DhcpPoolExhausted / DHCP_POOL_EXHAUSTED = "dhcp_pool_exhausted",
    /// Servers offer PXE clients different boot servers or files.
    PxeBootServerConflict / PXE_BOOT_SERVER_CONFLICT = "pxe_boot_server_conflict",
    /// A segment's DHCP relays (giaddr) changed.
    DhcpRelayChanged / DHCP_RELAY_CHANGED = "dhcp_relay_changed",
    /// An interface's LLDP/CDP neighbour or its port changed: the cable was moved.
    LldpNeighbourChanged / LLDP_NEIGHBOUR_CHANGED = "lldp_neighbour_changed",
    /// The switch's native VLAN for an interface is not the one expected.
    VlanMismatch / VLAN_MISMATCH = "vlan_mismatch",
    /// Topology changes on a spanning tree above the configured rate.
    StpTopologyChurn / STP_TOPOLOGY_CHURN = "stp_topology_churn",
    /// A new root bridge on a spanning tree.
    StpRootChanged / STP_ROOT_CHANGED = "stp_root_changed",
    /// BPDUs on an interface configured as an edge (host) port.
    StpBpduOnEdge / STP_BPDU_ON_EDGE = "stp_bpdu_on_edge",
    /// The switch lost its LACP partner (us): partner zero, expired or defaulted.
    LacpPartnerLost / LACP_PARTNER_LOST = "lacp_partner_lost",
    /// Members of one bond hear different LACP partner systems or keys.
    LacpPartnerMismatch / LACP_PARTNER_MISMATCH = "lacp_partner_mismatch",
    /// A LACP port stays out of sync past the threshold.
    LacpNotInSync / LACP_NOT_IN_SYNC = "lacp_not_in_sync",
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A kind equals its stable name.
impl PartialEq<&str> for FindingKind {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl Serialize for FindingKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// What a detector reports: a condition that holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub kind: FindingKind,
    /// What the finding is about, unique within the kind.
    pub subject: Subject,
    pub seg: Segment,
    /// Packets behind this signal.
    pub packets: u64,
    pub evidence: Value,
    /// Close the finding after this long without a new signal.
    pub quiet: Nanos,
}

/// What a detector sees besides the observation: the device table after the update, and the
/// change the update made.
pub struct Context<'a> {
    pub table: &'a DeviceTable,
    pub servers: &'a DhcpServers,
    pub change: Option<Change>,
    /// IPv6 neighbours, routers and DHCPv6 servers after the update, and what it did.
    pub v6: &'a Ipv6State,
    pub update6: &'a Update6,
    /// DHCPv4 transactions after the update, and what the message did to its own.
    pub txs: &'a crate::state::dhcp_transactions::Transactions,
    pub tx: &'a crate::state::dhcp_transactions::TxUpdate,
    /// The switch-facing view after the update, and what the PDU did to it.
    pub switch: &'a crate::state::SwitchState,
    pub update_sw: &'a crate::state::SwitchUpdate,
}

/// A finding: a condition with evidence that opened, may still be open, or closed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub subject: Subject,
    #[serde(flatten)]
    pub seg: Segment,
    pub vlan: String,
    pub opened: Nanos,
    pub last_seen: Nanos,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed: Option<Nanos>,
    pub packets: u64,
    pub evidence: Value,
    /// Closes after this long without a new signal.
    #[serde(skip)]
    pub quiet: Nanos,
}

/// How a finding changed.
#[derive(Debug, Clone, PartialEq)]
pub enum FindingEvent {
    Opened(Finding),
    Closed(Finding),
}

/// Open findings, recently closed ones, and counts; bounded.
pub struct Findings {
    open: crate::model::FastMap<(FindingKind, Subject), Finding>,
    closed: VecDeque<Finding>,
    closed_cap: usize,
    open_cap: usize,
    opened_total: BTreeMap<FindingKind, u64>,
    dropped: u64,
    folded: u64,
}

impl Findings {
    pub fn new(open_cap: usize, closed_cap: usize) -> Self {
        Findings {
            open: Default::default(),
            closed: VecDeque::new(),
            closed_cap,
            open_cap,
            opened_total: BTreeMap::new(),
            dropped: 0,
            folded: 0,
        }
    }

    /// Merges a signal: opens a finding or refreshes the open one.
    pub fn signal(&mut self, s: Signal, now: Nanos) -> Option<FindingEvent> {
        let key = (s.kind, s.subject);
        if let Some(f) = self.open.get_mut(&key) {
            f.last_seen = f.last_seen.max(now);
            f.packets += s.packets;
            // What was folded into this finding stays with it.
            let mut evidence = s.evidence;
            for k in ["folded", "folded_samples"] {
                if let (Some(v), true) = (f.evidence.get(k), evidence.is_object()) {
                    evidence[k] = v.clone();
                }
            }
            f.evidence = evidence;
            f.quiet = s.quiet;
            return None;
        }
        if self.open.len() >= self.open_cap {
            self.dropped += 1;
            return None;
        }
        let f = Finding {
            kind: key.0,
            subject: key.1.clone(),
            seg: s.seg,
            vlan: s.seg.vlan_label(),
            opened: now,
            last_seen: now,
            closed: None,
            packets: s.packets,
            evidence: s.evidence,
            quiet: s.quiet,
        };
        *self.opened_total.entry(key.0).or_default() += 1;
        self.open.insert(key, f.clone());
        Some(FindingEvent::Opened(f))
    }

    /// Counts a signal into the open finding `into` instead of opening one of its own: the
    /// evidence keeps a count per folded kind and the first few subjects. Returns false when
    /// `into` is not open.
    pub fn fold(&mut self, into: (FindingKind, &Subject), s: &Signal) -> bool {
        const SAMPLES: usize = 10;
        let Some(f) = self.open.get_mut(&(into.0, into.1.clone())) else {
            return false;
        };
        let ev = &mut f.evidence;
        if !ev.is_object() {
            *ev = Value::Object(Default::default());
        }
        let n = ev["folded"][s.kind.name()].as_u64().unwrap_or(0);
        ev["folded"][s.kind.name()] = (n + 1).into();
        let samples = &mut ev["folded_samples"];
        if !samples.is_array() {
            *samples = Value::Array(Vec::new());
        }
        if let Some(v) = samples.as_array_mut().filter(|v| v.len() < SAMPLES) {
            v.push(serde_json::json!({ "kind": s.kind.name(), "subject": s.subject.to_string() }));
        }
        self.folded += 1;
        true
    }

    /// Closes the open findings of `kinds` about `into`'s subject and folds each into `into`
    /// (which must be open): one problem, one open finding. The closed ones say where they
    /// went (`folded_into`). Returns them.
    pub fn absorb(
        &mut self,
        into: (FindingKind, &Subject),
        kinds: &[FindingKind],
        now: Nanos,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        for k in kinds {
            let key = (*k, into.1.clone());
            let Some(mut f) = self.open.remove(&key) else {
                continue;
            };
            let s = Signal {
                kind: f.kind,
                subject: f.subject.clone(),
                seg: f.seg,
                packets: f.packets,
                evidence: f.evidence.clone(),
                quiet: f.quiet,
            };
            if !self.fold(into, &s) {
                // `into` is not open: put it back as it was.
                self.open.insert(key, f);
                continue;
            }
            f.closed = Some(now);
            if f.evidence.is_object() {
                f.evidence["folded_into"] = into.0.name().into();
            }
            if self.closed.len() == self.closed_cap {
                self.closed.pop_front();
            }
            self.closed.push_back(f.clone());
            out.push(f);
        }
        out
    }

    /// Signals folded into another finding.
    pub fn folded(&self) -> u64 {
        self.folded
    }

    /// Closes findings quiet for longer than their period.
    pub fn tick(&mut self, now: Nanos) -> Vec<FindingEvent> {
        let expired: Vec<_> = self
            .open
            .iter()
            .filter(|(_, f)| now.saturating_sub(f.last_seen) > f.quiet)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for k in expired {
            if let Some(mut f) = self.open.remove(&k) {
                f.closed = Some(now);
                if self.closed.len() == self.closed_cap {
                    self.closed.pop_front();
                }
                self.closed.push_back(f.clone());
                out.push(FindingEvent::Closed(f));
            }
        }
        out
    }

    /// The open finding of `kind` about `subject`.
    pub fn get(&self, kind: FindingKind, subject: &Subject) -> Option<&Finding> {
        self.open.get(&(kind, subject.clone()))
    }

    /// Puts back a finding read from the store: open ones stay open (and close after their
    /// quiet period as usual), closed ones join the recent list.
    pub fn restore(&mut self, f: Finding) {
        if f.closed.is_some() {
            if self.closed.len() == self.closed_cap {
                self.closed.pop_front();
            }
            self.closed.push_back(f);
        } else if self.open.len() < self.open_cap {
            self.open.insert((f.kind, f.subject.clone()), f);
        } else {
            self.dropped += 1;
        }
    }

    /// Open findings, sorted by kind and subject.
    pub fn open(&self) -> Vec<&Finding> {
        let mut v: Vec<_> = self.open.values().collect();
        v.sort_by(|a, b| (a.kind, &a.subject).cmp(&(b.kind, &b.subject)));
        v
    }

    pub fn closed(&self) -> impl Iterator<Item = &Finding> {
        self.closed.iter()
    }

    pub fn opened_total(&self) -> &BTreeMap<FindingKind, u64> {
        &self.opened_total
    }

    /// Signals dropped because the open-finding cap was reached.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// A detector: one module, one config section, built by the [`registry`].
pub trait Detector: Send {
    /// Its name: the config section under `[engine]` and the name in logs.
    fn name(&self) -> &'static str;
    /// The finding kinds it reports.
    fn kinds(&self) -> &'static [FindingKind];
    /// Looks at one observation, after the state stage applied it.
    fn observe(&mut self, obs: &Observation, ctx: &Context<'_>, now: Nanos) -> Vec<Signal>;
    /// Once per pipeline tick: for conditions that hold because something did *not* happen.
    fn tick(&mut self, _now: Nanos) -> Vec<Signal> {
        Vec::new()
    }
}

/// An LRU map bounded at `cap` that grows as entries arrive instead of reserving `cap` up
/// front: most detector maps stay nearly empty, and a reservation would cost every agent the
/// worst case.
pub(crate) fn lazy_lru<K: std::hash::Hash + Eq, V>(cap: usize) -> crate::model::FastLru<K, V> {
    let mut c = lru::LruCache::unbounded_with_hasher(crate::model::FastHash::default());
    c.resize(std::num::NonZeroUsize::new(cap.max(1)).expect("non-zero"));
    c
}

/// A detector's typed evidence, as the JSON a finding carries (every evidence type is a
/// `#[derive(Serialize)]` struct next to its detector, so a key cannot be misspelt).
pub(crate) fn evidence<T: Serialize>(e: &T) -> Value {
    serde_json::to_value(e).unwrap_or(Value::Null)
}

/// Seconds to ns, for configs.
pub(crate) fn secs(s: u64) -> Nanos {
    s.saturating_mul(crate::model::SECOND)
}

/// Test helpers: a device table and server list fed exactly as the engine feeds them.
#[cfg(test)]
pub(crate) mod tests_support {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::{
        decode::DhcpMessage,
        engine::update_state,
        model::{ArpChange, Mac},
        state::DeviceTableConfig,
    };

    pub fn seg() -> Segment {
        Segment {
            iface: crate::model::Iface::named("eth2"),
            outer_vlan: Some(10),
            inner_vlan: None,
        }
    }

    pub fn arp_on(seg: Segment, mac: Mac, ip: Ipv4Addr) -> Observation {
        Observation::Arp {
            seg,
            change: ArpChange::New,
            ip,
            mac,
            target_ip: Ipv4Addr::new(10, 0, 0, 254),
            op: 2,
            gratuitous: false,
            probe: false,
            announcement: false,
        }
    }

    pub fn arp(mac: Mac, ip: Ipv4Addr) -> Observation {
        arp_on(seg(), mac, ip)
    }

    fn msg(op: u8, msg_type: u8, chaddr: Mac) -> DhcpMessage {
        let mut bytes = vec![0u8; 236];
        bytes[0] = op;
        bytes[1] = 1;
        bytes[2] = 6;
        bytes[28..34].copy_from_slice(&chaddr.0);
        bytes.extend_from_slice(&monitor_common::proto::DHCP_MAGIC);
        bytes.extend_from_slice(&[53, 1, msg_type, 255]);
        crate::decode::decode_dhcp(&bytes, true).expect("valid")
    }

    pub fn dhcp_from_client(mac: Mac, msg_type: u8) -> Observation {
        Observation::Dhcp {
            seg: seg(),
            src_mac: mac,
            src_ip: Ipv4Addr::UNSPECIFIED,
            msg: Box::new(msg(1, msg_type, mac)),
        }
    }

    /// A DHCP message of `msg_type` with `xid` from `src`: a client's (its own chaddr) or a
    /// server's (server id 10.0.0.<last byte of src>, to client 02:00:00:00:09:09).
    pub fn dhcp_msg(src: Mac, msg_type: u8, xid: u32) -> Observation {
        let server = matches!(msg_type, 2 | 5 | 6);
        let client = if server { Mac([2, 0, 0, 0, 9, 9]) } else { src };
        let mut m = msg(if server { 2 } else { 1 }, msg_type, client);
        m.xid = xid;
        if server {
            m.server_id = Some(Ipv4Addr::new(10, 0, 0, src.0[5]));
        }
        Observation::Dhcp {
            seg: seg(),
            src_mac: src,
            src_ip: m.server_id.unwrap_or(Ipv4Addr::UNSPECIFIED),
            msg: Box::new(m),
        }
    }

    pub fn dhcp_decline(mac: Mac, ip: Ipv4Addr) -> Observation {
        let mut m = msg(1, 4, mac);
        m.requested_ip = Some(ip);
        Observation::Dhcp {
            seg: seg(),
            src_mac: mac,
            src_ip: Ipv4Addr::UNSPECIFIED,
            msg: Box::new(m),
        }
    }

    pub fn dhcp_reply(
        server_mac: Mac,
        server: Ipv4Addr,
        msg_type: u8,
        yiaddr: Ipv4Addr,
    ) -> Observation {
        let mut m = msg(2, msg_type, Mac([2, 0, 0, 0, 9, 9]));
        m.server_id = Some(server);
        m.yiaddr = yiaddr;
        m.lease_time = Some(3600);
        Observation::Dhcp {
            seg: seg(),
            src_mac: server_mac,
            src_ip: server,
            msg: Box::new(m),
        }
    }

    pub struct Harness<D> {
        pub detector: D,
        pub table: DeviceTable,
        pub servers: DhcpServers,
        pub v6: crate::state::Ipv6State,
        pub txs: crate::state::dhcp_transactions::Transactions,
        pub switch: crate::state::SwitchState,
    }

    impl<D: Detector> Harness<D> {
        pub fn new(detector: D) -> Self {
            Harness {
                detector,
                table: DeviceTable::new(DeviceTableConfig::default()),
                servers: DhcpServers::new(64),
                v6: crate::state::Ipv6State::new(&Default::default()),
                txs: crate::state::dhcp_transactions::Transactions::new(
                    1_024,
                    10 * crate::model::SECOND,
                ),
                switch: crate::state::SwitchState::new(&Default::default()),
            }
        }

        pub fn feed(&mut self, obs: &Observation, now: Nanos) -> Vec<Signal> {
            let change = update_state(&mut self.table, &mut self.servers, obs, now).change;
            let update6 = self.v6.update(obs, now);
            let update_sw = self.switch.update(obs, now);
            let tx = match obs {
                Observation::Dhcp {
                    seg, src_mac, msg, ..
                } => self.txs.observe(*seg, *src_mac, msg, now),
                _ => Default::default(),
            };
            let ctx = Context {
                table: &self.table,
                servers: &self.servers,
                change,
                v6: &self.v6,
                update6: &update6,
                txs: &self.txs,
                tx: &tx,
                switch: &self.switch,
                update_sw: &update_sw,
            };
            self.detector.observe(obs, &ctx, now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SECOND;

    fn sig(subject: &str) -> Signal {
        Signal {
            kind: kind::APIPA,
            subject: Subject::Text(subject.into()),
            seg: Segment {
                iface: crate::model::Iface::named("eth1"),
                outer_vlan: None,
                inner_vlan: None,
            },
            packets: 1,
            evidence: Value::Null,
            quiet: 10 * SECOND,
        }
    }

    #[test]
    fn opens_updates_and_closes_after_quiet_period() {
        let mut f = Findings::new(10, 10);
        assert!(matches!(
            f.signal(sig("a"), SECOND),
            Some(FindingEvent::Opened(_))
        ));
        assert_eq!(f.signal(sig("a"), 5 * SECOND), None);
        assert!(
            f.tick(15 * SECOND).is_empty(),
            "quiet for exactly 10 s: still open"
        );
        let closed = f.tick(15 * SECOND + 1);
        assert!(
            matches!(&closed[..], [FindingEvent::Closed(x)] if x.packets == 2 && x.closed == Some(15 * SECOND + 1))
        );
        assert!(f.open().is_empty());
        assert_eq!(f.opened_total()[&kind::APIPA], 1);
    }

    #[test]
    fn lazy_lru_is_bounded() {
        let mut c = lazy_lru::<u32, u32>(3);
        for i in 0..10 {
            c.put(i, i);
        }
        assert_eq!(c.len(), 3);
        assert!(c.contains(&9) && !c.contains(&6));
    }

    #[test]
    fn open_findings_are_capped_and_the_overflow_counted() {
        let mut f = Findings::new(2, 2);
        for s in ["a", "b", "c", "d"] {
            f.signal(sig(s), SECOND);
        }
        assert_eq!(f.open().len(), 2);
        assert_eq!(f.dropped(), 2);
    }
}
