//! The engine's vocabulary: segments, observations and timestamps, shared by every stage after
//! decoding. Time is always passed in (ns since the Unix epoch), never read inside the engine.
use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
};

use serde::Serialize;

pub use crate::capture::Mac;
use crate::decode::{DhcpMessage, Dhcpv6Message, RouterAdvert};

/// The engine's hasher: foldhash, seeded per process. Keys come off the wire (MACs, IPs), so
/// a fixed-seed hash would invite collisions; SipHash, std's default, cost several times more
/// per lookup on these small keys.
pub type FastHash = foldhash::fast::RandomState;
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastHash>;
pub type FastSet<K> = std::collections::HashSet<K, FastHash>;
pub type FastLru<K, V> = lru::LruCache<K, V, FastHash>;

/// A bounded LRU with the engine's hasher.
pub fn fast_lru<K: std::hash::Hash + Eq, V>(cap: std::num::NonZeroUsize) -> FastLru<K, V> {
    lru::LruCache::with_hasher(cap, FastHash::default())
}

/// Nanoseconds since the Unix epoch.
pub type Nanos = u64;

pub const SECOND: Nanos = 1_000_000_000;

/// The wall clock, for the sources that feed the engine (which never reads it itself).
pub fn wall_clock() -> Nanos {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as Nanos)
}

/// An interface, known by its name: the ifindex is a detail of attachment that changes when
/// a device is re-created or the host reboots, so nothing the agent reports or stores uses
/// it. Names are interned once (the engine copies and hashes segments on every event); the
/// set of names is bounded by [`MAX_IFACE_NAMES`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Iface(u32);

/// Distinct interface names one process interns; past it, new names share [`Iface::OVERFLOW`].
pub const MAX_IFACE_NAMES: usize = 4096;

#[derive(Default)]
struct Interner {
    ids: std::collections::HashMap<&'static str, u32>,
    names: Vec<&'static str>,
}

fn interner() -> &'static std::sync::RwLock<Interner> {
    static I: std::sync::OnceLock<std::sync::RwLock<Interner>> = std::sync::OnceLock::new();
    I.get_or_init(|| {
        let mut i = Interner::default();
        i.ids.insert(OVERFLOW_NAME, 0);
        i.names.push(OVERFLOW_NAME);
        std::sync::RwLock::new(i)
    })
}

const OVERFLOW_NAME: &str = "other-interfaces";

impl Iface {
    /// Where names past [`MAX_IFACE_NAMES`] go.
    pub const OVERFLOW: Iface = Iface(0);

    /// The interface called `name`.
    pub fn named(name: &str) -> Iface {
        if let Some(id) = interner().read().expect("iface names").ids.get(name) {
            return Iface(*id);
        }
        let mut i = interner().write().expect("iface names");
        if let Some(id) = i.ids.get(name) {
            return Iface(*id);
        }
        if i.names.len() >= MAX_IFACE_NAMES {
            return Iface::OVERFLOW;
        }
        // Leaked on purpose: bounded by MAX_IFACE_NAMES, and kept for the process's life.
        let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
        let id = i.names.len() as u32;
        i.names.push(leaked);
        i.ids.insert(leaked, id);
        Iface(id)
    }

    pub fn name(self) -> &'static str {
        interner().read().expect("iface names").names[self.0 as usize]
    }
}

impl fmt::Display for Iface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Debug for Iface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.name())
    }
}

/// By name, so that listings sort as an operator reads them.
impl Ord for Iface {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self.0 == other.0 {
            return std::cmp::Ordering::Equal;
        }
        self.name().cmp(other.name())
    }
}

impl PartialOrd for Iface {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for Iface {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Iface {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Iface::named(&s))
    }
}

/// Where something was seen: interface and VLAN IDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Segment {
    #[serde(rename = "interface")]
    pub iface: Iface,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outer_vlan: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inner_vlan: Option<u16>,
}

impl Segment {
    /// The segment in one word: interface, then each VLAN (0xffff for none, which no VID is).
    pub fn packed(&self) -> u64 {
        let v = |v: Option<u16>| v.unwrap_or(0xffff) as u64;
        (self.iface.0 as u64) << 32 | v(self.outer_vlan) << 16 | v(self.inner_vlan)
    }
}

/// One word per segment: the engine hashes segments on every event.
impl std::hash::Hash for Segment {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u64(self.packed());
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.iface.name())?;
        match (self.outer_vlan, self.inner_vlan) {
            (None, _) => Ok(()),
            (Some(o), None) => write!(f, "/vlan{o}"),
            (Some(o), Some(i)) => write!(f, "/vlan{o}.{i}"),
        }
    }
}

impl Segment {
    /// From the kernel's VLAN IDs, where [`monitor_common::NO_VLAN`] means no tag.
    pub fn from_vids(iface: Iface, outer_vid: u16, inner_vid: u16) -> Segment {
        let vid = |v: u16| (v != monitor_common::NO_VLAN).then_some(v);
        Segment {
            iface,
            outer_vlan: vid(outer_vid),
            inner_vlan: vid(inner_vid),
        }
    }

    /// The VLAN part as metric/JSON text: "untagged", "100" or "200.2001".
    pub fn vlan_label(&self) -> String {
        match (self.outer_vlan, self.inner_vlan) {
            (None, _) => "untagged".into(),
            (Some(o), None) => o.to_string(),
            (Some(o), Some(i)) => format!("{o}.{i}"),
        }
    }
}

/// What the kernel said about an ARP binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArpChange {
    New,
    Changed,
    Refresh,
}

/// One decoded event, ready for the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    Arp {
        seg: Segment,
        change: ArpChange,
        /// The IP the binding is about (the probed IP for a probe).
        ip: Ipv4Addr,
        mac: Mac,
        /// Whom the frame was for: a reply's target is the host that asked.
        target_ip: Ipv4Addr,
        op: u16,
        gratuitous: bool,
        probe: bool,
        announcement: bool,
    },
    Dhcp {
        seg: Segment,
        src_mac: Mac,
        src_ip: Ipv4Addr,
        msg: Box<DhcpMessage>,
    },
    /// The kernel saw one group-addressed frame more than its loop threshold in one window.
    Loop {
        seg: Segment,
        src_mac: Mac,
        dst_mac: Mac,
        ether_type: u16,
        /// Copies in the window when the threshold was crossed.
        count: u32,
        window_ms: u32,
    },
    /// The kernel saw one ARP sender ask for many distinct targets in one window.
    Scan {
        seg: Segment,
        mac: Mac,
        /// The sender's IP.
        ip: Ipv4Addr,
        /// Distinct targets (estimated from below).
        targets: u32,
        requests: u32,
        window_ms: u32,
    },
    /// An IPv6 -> MAC binding from an NS (its source) or NA (its target), new, changed or
    /// due for a refresh.
    Neighbour {
        seg: Segment,
        change: ArpChange,
        ip: Ipv6Addr,
        mac: Mac,
        /// The MAC reported before (a change only).
        old_mac: Option<Mac>,
        /// From an NA (else an NS).
        advert: bool,
        /// NA flags R and O.
        router: bool,
        solicited: bool,
        override_flag: bool,
    },
    /// A duplicate address detection probe: an NS from `::` for `target`.
    DadProbe {
        seg: Segment,
        target: Ipv6Addr,
        mac: Mac,
        /// The RFC 7527 nonce, if the prober sent one.
        nonce: Option<[u8; 6]>,
    },
    RouterAdvert {
        seg: Segment,
        src_mac: Mac,
        src_ip: Ipv6Addr,
        ra: Box<RouterAdvert>,
    },
    Dhcpv6 {
        seg: Segment,
        src_mac: Mac,
        src_ip: Ipv6Addr,
        /// The Ethernet destination: the client, for a REPLY straight to it.
        dst_mac: Mac,
        msg: Box<Dhcpv6Message>,
    },
    /// A changed LLDP, CDP, BPDU or LACPDU (and every BPDU announcing a topology change).
    Switch {
        seg: Segment,
        src_mac: Mac,
        pdu: Box<crate::decode::SwitchPdu>,
    },
}

impl Observation {
    pub fn segment(&self) -> Segment {
        match self {
            Observation::Arp { seg, .. }
            | Observation::Dhcp { seg, .. }
            | Observation::Loop { seg, .. }
            | Observation::Scan { seg, .. }
            | Observation::Neighbour { seg, .. }
            | Observation::DadProbe { seg, .. }
            | Observation::RouterAdvert { seg, .. }
            | Observation::Dhcpv6 { seg, .. }
            | Observation::Switch { seg, .. } => *seg,
        }
    }
}

/// 169.254.0.0/16: a host that gave up on DHCP.
pub fn is_apipa(ip: Ipv4Addr) -> bool {
    ip.octets()[0] == 169 && ip.octets()[1] == 254
}
