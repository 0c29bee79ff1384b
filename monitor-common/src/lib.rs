//! The contract between the l2watch XDP program and its agent.
//!
//! Every code that crosses the kernel/userspace boundary (counter indices, event kinds, flag
//! bits, map names) and every struct stored in a map or pushed through the ring buffer is
//! defined here once, so kernel code, metric labels and JSON keys cannot drift apart.
#![no_std]

use core::mem::size_of;

/// How many stacked VLAN tags (802.1Q 0x8100, 802.1ad 0x88a8, legacy QinQ 0x9100) the XDP
/// program walks. Deeper frames are counted in [`Counter::DepthMore`] and classified no further.
pub const VLAN_MAX_DEPTH: usize = 4;

/// VLAN ID value meaning "no tag at this position". Real VIDs are 12-bit, so this cannot clash.
pub const NO_VLAN: u16 = 0xffff;

/// Bytes of the BOOTP message (fixed header, magic cookie and options) copied into a
/// [`DhcpEvent`]. 236 fixed + 4 cookie leaves 784 bytes of options: more than the 312 that
/// RFC 2131 guarantees, enough for option overload into `sname`/`file`, which sit inside the
/// fixed header and so are always copied.
pub const DHCP_PAYLOAD_MAX: usize = 1024;

/// Length of the fixed BOOTP header, up to and including `file`.
pub const BOOTP_FIXED_LEN: usize = 236;

/// Upper bound on DHCP options the kernel walks looking for option 53. Option 53 is almost
/// always first; the bound keeps the verifier's work small.
pub const DHCP_MAX_OPTIONS_SCANNED: usize = 32;

/// Extension headers the IPv6 walk steps over before giving up (counted as other).
pub const IPV6_MAX_EXT_HEADERS: usize = 8;

/// Options of a DHCPv6 relay message the kernel walks looking for the relayed message.
pub const DHCPV6_MAX_RELAY_OPTIONS: usize = 8;

/// Options of a neighbour solicitation or advertisement the kernel walks for the link-layer
/// address and the DAD nonce (both come first in every stack seen in practice).
pub const ND_MAX_OPTIONS: usize = 4;

/// Bytes of an IPv6 message (a router advertisement from its ICMPv6 type on, a DHCPv6
/// message from its msg-type on) copied into an [`Ip6Event`]: a router with 30 prefixes and
/// a DHCPv6 reply with a dozen addresses both fit.
pub const IP6_PAYLOAD_MAX: usize = 1024;

/// Bytes of a switch-protocol PDU (LLDP, CDP, BPDU, LACPDU) copied into a [`SwitchEvent`]:
/// LACPDUs are 110, BPDUs at most 102 (MSTP with one MSTI more), LLDP and CDP from real
/// switches a few hundred. A longer PDU is reported cut (`wire_len` says how long it was).
pub const SWITCH_PAYLOAD_MAX: usize = 512;

/// The switch protocols the kernel reports ([`SwitchEvent::proto`]), with the names the
/// agent uses for them.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SwitchProto {
    /// EtherType 0x88cc; the payload starts at the first TLV.
    Lldp = 1,
    /// LLC/SNAP, Cisco OUI, 0x2000; the payload starts at the CDP version byte.
    Cdp = 2,
    /// LLC SAP 0x42; the payload starts at the BPDU's protocol id.
    Stp = 3,
    /// LLC/SNAP, Cisco OUI, 0x010b (PVST+); the payload starts at the BPDU.
    Pvst = 4,
    /// Slow protocols subtype 1; the payload starts at the subtype.
    Lacp = 5,
}

impl SwitchProto {
    pub const ALL: &'static [SwitchProto] = &[
        SwitchProto::Lldp,
        SwitchProto::Cdp,
        SwitchProto::Stp,
        SwitchProto::Pvst,
        SwitchProto::Lacp,
    ];

    pub const fn from_code(code: u8) -> Option<SwitchProto> {
        Some(match code {
            1 => SwitchProto::Lldp,
            2 => SwitchProto::Cdp,
            3 => SwitchProto::Stp,
            4 => SwitchProto::Pvst,
            5 => SwitchProto::Lacp,
            _ => return None,
        })
    }

    pub const fn name(self) -> &'static str {
        match self {
            SwitchProto::Lldp => "lldp",
            SwitchProto::Cdp => "cdp",
            SwitchProto::Stp => "stp",
            SwitchProto::Pvst => "pvst",
            SwitchProto::Lacp => "lacp",
        }
    }
}

/// Wire constants of the protocols the program parses: one home for kernel and agent.
pub mod proto {
    pub const ETH_P_IP: u16 = 0x0800;
    pub const ETH_P_ARP: u16 = 0x0806;
    pub const ETH_P_8021Q: u16 = 0x8100;
    pub const ETH_P_8021AD: u16 = 0x88a8;
    /// Pre-standard QinQ outer tag, still sent by some switches.
    pub const ETH_P_QINQ_LEGACY: u16 = 0x9100;
    pub const ETH_P_IPV6: u16 = 0x86dd;
    /// LLDP (IEEE 802.1AB).
    pub const ETH_P_LLDP: u16 = 0x88cc;
    /// Slow protocols (IEEE 802.3 annex 57A): LACP is subtype 1, marker 2, OAM 3.
    pub const ETH_P_SLOW: u16 = 0x8809;
    pub const SLOW_SUBTYPE_LACP: u8 = 1;
    /// An EtherType field below this is an 802.3 length: an LLC header follows.
    pub const ETH_P_802_3_MIN: u16 = 0x0600;
    /// LLC: the spanning-tree SAP (DSAP, SSAP, UI) and SNAP.
    pub const LLC_STP: [u8; 3] = [0x42, 0x42, 0x03];
    pub const LLC_SNAP: [u8; 3] = [0xaa, 0xaa, 0x03];
    /// Cisco's OUI under SNAP, with CDP's and PVST+'s protocol ids.
    pub const OUI_CISCO: [u8; 3] = [0x00, 0x00, 0x0c];
    pub const SNAP_PID_CDP: u16 = 0x2000;
    pub const SNAP_PID_PVST: u16 = 0x010b;
    /// STP BPDU types and flag bits.
    pub const BPDU_TCN: u8 = 0x80;
    pub const BPDU_FLAG_TC: u8 = 0x01;
    pub const IPPROTO_UDP: u8 = 17;
    pub const IPPROTO_ICMPV6: u8 = 58;
    /// IPv6 extension headers the walk steps over.
    pub const IPV6_HOP_BY_HOP: u8 = 0;
    pub const IPV6_ROUTING: u8 = 43;
    pub const IPV6_FRAGMENT: u8 = 44;
    pub const IPV6_DEST_OPTS: u8 = 60;
    /// DHCPv6 client and server ports.
    pub const DHCPV6_CLIENT: u16 = 546;
    pub const DHCPV6_SERVER: u16 = 547;
    /// DHCPv6 RELAY-FORW and RELAY-REPL, and the option holding the relayed message.
    pub const DHCPV6_RELAY_FORW: u8 = 12;
    pub const DHCPV6_RELAY_REPL: u8 = 13;
    pub const DHCPV6_OPT_RELAY_MSG: u16 = 9;
    /// Teredo (RFC 4380): IPv6 in UDP, which tshark counts as IPv6.
    pub const TEREDO_PORT: u16 = 3544;
    /// ICMPv6 neighbour discovery types.
    pub const ND_RS: u8 = 133;
    pub const ND_RA: u8 = 134;
    pub const ND_NS: u8 = 135;
    pub const ND_NA: u8 = 136;
    pub const ND_REDIRECT: u8 = 137;
    /// Neighbour discovery option types the kernel reads (RFC 4861, RFC 3971 nonce).
    pub const ND_OPT_SOURCE_LLADDR: u8 = 1;
    pub const ND_OPT_TARGET_LLADDR: u8 = 2;
    pub const ND_OPT_NONCE: u8 = 14;
    /// DHCP server and client ports.
    pub const BOOTPS: u16 = 67;
    pub const BOOTPC: u16 = 68;
    /// The DHCP magic cookie after the fixed BOOTP header (RFC 2131 section 3).
    pub const DHCP_MAGIC: [u8; 4] = [0x63, 0x82, 0x53, 0x63];
    /// DHCP option codes the kernel or the agent read.
    pub const DHCP_OPT_PAD: u8 = 0;
    pub const DHCP_OPT_MSG_TYPE: u8 = 53;
    pub const DHCP_OPT_END: u8 = 255;
    /// ARP opcodes.
    pub const ARP_REQUEST: u16 = 1;
    pub const ARP_REPLY: u16 = 2;
}

/// DHCP message types (option 53), one vocabulary for kernel counters, pending-map policy,
/// event details, metric labels and JSON.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DhcpMsgType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
    Inform = 8,
}

impl DhcpMsgType {
    pub const ALL: &'static [DhcpMsgType] = &[
        DhcpMsgType::Discover,
        DhcpMsgType::Offer,
        DhcpMsgType::Request,
        DhcpMsgType::Decline,
        DhcpMsgType::Ack,
        DhcpMsgType::Nak,
        DhcpMsgType::Release,
        DhcpMsgType::Inform,
    ];

    pub const fn from_code(code: u8) -> Option<DhcpMsgType> {
        Some(match code {
            1 => DhcpMsgType::Discover,
            2 => DhcpMsgType::Offer,
            3 => DhcpMsgType::Request,
            4 => DhcpMsgType::Decline,
            5 => DhcpMsgType::Ack,
            6 => DhcpMsgType::Nak,
            7 => DhcpMsgType::Release,
            8 => DhcpMsgType::Inform,
            _ => return None,
        })
    }

    /// The stable name: metric label, JSON, history kind (`dhcp_<name>`).
    pub const fn name(self) -> &'static str {
        match self {
            DhcpMsgType::Discover => "discover",
            DhcpMsgType::Offer => "offer",
            DhcpMsgType::Request => "request",
            DhcpMsgType::Decline => "decline",
            DhcpMsgType::Ack => "ack",
            DhcpMsgType::Nak => "nak",
            DhcpMsgType::Release => "release",
            DhcpMsgType::Inform => "inform",
        }
    }

    /// Its per-segment counter.
    pub const fn counter(self) -> Counter {
        match self {
            DhcpMsgType::Discover => Counter::DhcpDiscover,
            DhcpMsgType::Offer => Counter::DhcpOffer,
            DhcpMsgType::Request => Counter::DhcpRequest,
            DhcpMsgType::Decline => Counter::DhcpDecline,
            DhcpMsgType::Ack => Counter::DhcpAck,
            DhcpMsgType::Nak => Counter::DhcpNak,
            DhcpMsgType::Release => Counter::DhcpRelease,
            DhcpMsgType::Inform => Counter::DhcpInform,
        }
    }

    /// Types whose loss would lose state (a lease, a server, a conflict): when the token
    /// bucket or the ring buffer holds them back they wait in `PENDING_DHCP` instead.
    pub const fn is_stateful(self) -> bool {
        matches!(
            self,
            DhcpMsgType::Offer
                | DhcpMsgType::Decline
                | DhcpMsgType::Ack
                | DhcpMsgType::Nak
                | DhcpMsgType::Release
        )
    }

    /// A server's answer.
    pub const fn is_server_reply(self) -> bool {
        matches!(
            self,
            DhcpMsgType::Offer | DhcpMsgType::Ack | DhcpMsgType::Nak
        )
    }
}

/// Names of the maps in the object file, used by the loader.
pub mod map_names {
    /// Hash: [`super::SegmentKey`] -> slot (u32) in `SEGMENT_COUNTERS`, added by the kernel.
    pub const SEGMENT_SLOTS: &str = "SEGMENT_SLOTS";
    /// Per-CPU array of [`super::SegmentCounters`], indexed by slot.
    pub const SEGMENT_COUNTERS: &str = "SEGMENT_COUNTERS";
    /// Hash: slot (u32) -> the [`super::SegmentKey`] that claimed it (kernel-internal).
    pub const SLOT_OWNERS: &str = "SLOT_OWNERS";
    /// Per-CPU array with one [`super::SegmentCacheEntry`].
    pub const SEGMENT_CACHE: &str = "SEGMENT_CACHE";
    /// Per-CPU array indexed by tag depth (0..=VLAN_MAX_DEPTH): counters for frames whose
    /// segment got no slot (all taken).
    pub const OVERFLOW_COUNTERS: &str = "OVERFLOW_COUNTERS";
    /// Per-CPU array indexed by [`super::Stat`].
    pub const STATS: &str = "STATS";
    /// LRU hash: [`super::BindingKey`] -> [`super::BindingValue`].
    pub const BINDINGS: &str = "BINDINGS";
    /// Array with one [`super::Config`].
    pub const CONFIG: &str = "CONFIG";
    /// Per-CPU array indexed by [`super::Bucket`]: token-bucket state.
    pub const RATE_BUCKETS: &str = "RATE_BUCKETS";
    /// Ring buffer of every event: ARP, DHCP, loop, scan, ND, RA and DHCPv6.
    pub const EVENTS: &str = "EVENTS";
    /// Hash: [`super::BindingKey`] -> [`super::ArpEvent`] held back by the token bucket or a
    /// full ring buffer, until the agent drains it.
    pub const PENDING_ARP: &str = "PENDING_ARP";
    /// Hash: [`super::PendingDhcpKey`] -> [`super::DhcpEvent`] for state-bearing DHCP messages
    /// (OFFER, DECLINE, ACK, NAK, RELEASE) held back likewise.
    pub const PENDING_DHCP: &str = "PENDING_DHCP";
    /// LRU hash: [`super::FrameKey`] -> [`super::FrameSeen`]: how often one group-addressed
    /// frame was seen in the current loop window.
    pub const FRAMES_SEEN: &str = "FRAMES_SEEN";
    /// Per-CPU array with one [`super::BindingRun`] (kernel-internal).
    pub const BINDING_RUN: &str = "BINDING_RUN";
    /// Per-CPU array with one [`super::LoopRun`] (kernel-internal).
    pub const LOOP_RUN: &str = "LOOP_RUN";
    /// LRU hash: [`super::ScanKey`] -> [`super::ScanState`]: distinct ARP targets per sender.
    pub const ARP_SCANS: &str = "ARP_SCANS";
    /// Program array of the tail-called programs ([`super::jump`]).
    pub const JUMPS: &str = "JUMPS";
    /// LRU hash: [`super::NdKey`] (MAC zero) -> [`super::BindingValue`]: the last IPv6 -> MAC
    /// binding reported, as `BINDINGS` is for ARP.
    pub const ND_BINDINGS: &str = "ND_BINDINGS";
    /// Hash: [`super::NdKey`] -> [`super::NdEvent`] held back by the token bucket or a full
    /// ring buffer (bindings and DAD probes; a probe's key carries its MAC).
    pub const PENDING_ND: &str = "PENDING_ND";
    /// LRU hash: [`super::RouterKey`] -> [`super::RouterSeen`]: the content hash of each
    /// router's last advertisement reported.
    pub const ROUTERS_SEEN: &str = "ROUTERS_SEEN";
    /// Hash: [`super::RouterKey`] -> [`super::Ip6Event`]: each router's newest held-back RA.
    pub const PENDING_RA: &str = "PENDING_RA";
    /// Hash: [`super::PendingDhcpKey`] -> [`super::Ip6Event`]: state-bearing DHCPv6 messages
    /// (ADVERTISE, REPLY, RELEASE, DECLINE, RECONFIGURE, RELAY-REPL) held back.
    pub const PENDING_DHCP6: &str = "PENDING_DHCP6";
    /// Content hash of the last switch PDU reported per (segment, source, protocol).
    pub const SWITCH_SEEN: &str = "SWITCH_SEEN";
    /// Held-back switch PDUs, newest per (segment, source, protocol), drained by the agent.
    pub const PENDING_SWITCH: &str = "PENDING_SWITCH";
}

/// Default capacities of the maps the loader sizes (`ProbeConfig` starts from these).
pub mod map_sizes {
    pub const SEGMENTS: u32 = 4096;
    pub const BINDINGS: u32 = 65536;
    pub const RINGBUF_BYTES: u32 = 16 << 20;
    pub const PENDING_ARP: u32 = 65536;
    pub const PENDING_DHCP: u32 = 2048;
    pub const FRAMES_SEEN: u32 = 16384;
    pub const ARP_SCANS: u32 = 8192;
    pub const ND_BINDINGS: u32 = 65536;
    pub const PENDING_ND: u32 = 65536;
    pub const ROUTERS_SEEN: u32 = 1024;
    pub const PENDING_RA: u32 = 1024;
    pub const PENDING_DHCP6: u32 = 2048;
    pub const SWITCH_SEEN: u32 = 4096;
    pub const PENDING_SWITCH: u32 = 1024;
}

/// Whether a DHCPv6 message type carries state (a server's answer, a lease given back or
/// refused): held back in `PENDING_DHCP6` rather than dropped when the bucket is empty.
pub const fn dhcpv6_type_is_stateful(msg_type: u8) -> bool {
    matches!(msg_type, 2 | 7 | 8 | 9 | 10 | 13)
}

/// Whether a raw option-53 value is a [`DhcpMsgType::is_stateful`] type.
pub const fn dhcp_type_is_stateful(msg_type: u8) -> bool {
    match DhcpMsgType::from_code(msg_type) {
        Some(t) => t.is_stateful(),
        None => false,
    }
}

/// Bytes of a group-addressed frame hashed for loop detection (from the Ethernet header on).
pub const LOOP_HASH_BYTES: usize = 64;

/// Bits of the per-sender target bitmap used to estimate distinct ARP targets.
pub const SCAN_BITMAP_WORDS: usize = 4;

/// The XDP_PASS verdict (UAPI `enum xdp_action`): the only one the program returns.
pub const XDP_PASS: u32 = 2;

/// Name of the XDP program in the object file.
pub const PROGRAM_NAME: &str = "l2watch";

/// Name of the XDP program the classifier tail-calls to turn IPv6 neighbour discovery and
/// DHCPv6 into events (loaded, never attached).
pub const IP6_PROGRAM_NAME: &str = "l2watch_ip6";

/// Name of the XDP program the classifier tail-calls to turn a changed LLDP, CDP, BPDU or
/// LACPDU into an event (loaded, never attached).
pub const SWITCH_PROGRAM_NAME: &str = "l2watch_switch";

/// Slots of the `JUMPS` program array.
pub mod jump {
    /// [`super::IP6_PROGRAM_NAME`].
    pub const IP6_EVENTS: u32 = 0;
    /// [`super::SWITCH_PROGRAM_NAME`].
    pub const SWITCH_EVENTS: u32 = 1;
    pub const COUNT: u32 = 2;
}

/// A metric family the agent exports kernel values under. Which value goes where is said once,
/// by each [`Counter`] and [`Stat`] (`export()`); `/metrics` iterates them, so a new one
/// cannot be left out.
#[derive(Debug, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    /// The label that tells the family's values apart ("" for a family of one value).
    pub label: &'static str,
    /// Counters: labelled by VLAN as well as interface.
    pub per_vlan: bool,
}

/// Defines a `#[repr(u32)]` enum of named indices with `ALL`, `COUNT`, `name()` and
/// `export()`: each value's metric family and label value, or None for values the agent
/// derives or keeps to itself.
macro_rules! named_indices {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $label:literal => $export:expr,)+ }) => {
        $(#[$meta])*
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in index order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            /// Number of values; the length of arrays indexed by this type.
            pub const COUNT: usize = Self::ALL.len();

            /// The stable name used as JSON key and metric label.
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }

            /// Index into arrays of length [`Self::COUNT`].
            pub const fn index(self) -> usize {
                self as usize
            }

            /// The metric family and label value this is exported under, if it is.
            pub const fn export(self) -> Option<(&'static Family, &'static str)> {
                match self {
                    $($name::$variant => $export,)+
                }
            }
        }
    };
}

const fn exp(f: &'static Family, label: &'static str) -> Option<(&'static Family, &'static str)> {
    Some((f, label))
}

/// The metric families of [`Counter`]s (per interface, and VLAN where `per_vlan`) and of
/// [`Stat`]s (global), in exposition order.
pub mod families {
    use super::Family;

    pub const FRAMES: Family = Family {
        name: "l2watch_frames_total",
        help: "Frames seen by the XDP program, by interface and number of VLAN tags.",
        label: "depth",
        per_vlan: false,
    };
    pub const MALFORMED: Family = Family {
        name: "l2watch_frames_malformed_total",
        help:
            "Frames cut short inside a header their own type fields promise (counted, passed on).",
        label: "",
        per_vlan: true,
    };
    pub const ARP: Family = Family {
        name: "l2watch_arp_packets_total",
        help: "ARP packets by interface, VLAN and operation.",
        label: "op",
        per_vlan: true,
    };
    pub const ARP_SPECIAL: Family = Family {
        name: "l2watch_arp_special_packets_total",
        help: "ARP packets that are gratuitous, RFC 5227 probes or announcements.",
        label: "kind",
        per_vlan: true,
    };
    pub const DHCP: Family = Family {
        name: "l2watch_dhcp_messages_total",
        help: "DHCPv4 messages by interface, VLAN and message type (option 53; none = BOOTP).",
        label: "type",
        per_vlan: true,
    };
    pub const BROADCAST: Family = Family {
        name: "l2watch_broadcast_frames_total",
        help: "Frames to a broadcast or multicast destination.",
        label: "",
        per_vlan: true,
    };
    pub const LOOP_FRAMES: Family = Family {
        name: "l2watch_loop_frames_total",
        help: "Copies of one broadcast/multicast frame beyond kernel.loop_repeats within one \
               loop window: frames going round a switching loop.",
        label: "",
        per_vlan: true,
    };
    pub const ARP_BINDINGS_NEW: Family = Family {
        name: "l2watch_arp_bindings_new_total",
        help: "IP-to-MAC bindings the kernel saw new or changed (before any rate limit).",
        label: "",
        per_vlan: true,
    };
    pub const ARP_SCANS: Family = Family {
        name: "l2watch_arp_scans_total",
        help: "ARP senders that asked for kernel.scan_targets distinct addresses in one window.",
        label: "",
        per_vlan: true,
    };
    pub const ND: Family = Family {
        name: "l2watch_nd_messages_total",
        help: "IPv6 neighbour discovery messages by interface, VLAN and type (rs, ra, ns, na, \
               redirect).",
        label: "type",
        per_vlan: true,
    };
    pub const ND_SPECIAL: Family = Family {
        name: "l2watch_nd_special_total",
        help: "Neighbour discovery that matters on its own: DAD probes (NS from ::), RAs with \
               router lifetime 0, and ND behind extension headers or fragments (evasion).",
        label: "kind",
        per_vlan: true,
    };
    pub const DHCPV6: Family = Family {
        name: "l2watch_dhcpv6_messages_total",
        help: "DHCPv6 messages by interface, VLAN and message type (a relayed message also \
               counts its own type).",
        label: "type",
        per_vlan: true,
    };
    pub const SWITCH_PDUS: Family = Family {
        name: "l2watch_switch_pdus_total",
        help: "Frames from the switch side by protocol: lldp, cdp, stp (STP, RSTP, MSTP, PVST+ \
               BPDUs), lacp, and other slow protocols.",
        label: "protocol",
        per_vlan: true,
    };
    pub const STP_CHANGES: Family = Family {
        name: "l2watch_stp_topology_changes_total",
        help: "BPDUs announcing a topology change: the TC flag set (topology_change), or a \
               topology change notification BPDU (tcn).",
        label: "kind",
        per_vlan: true,
    };
    /// Every counter family.
    pub const COUNTERS: &[&Family] = &[
        &FRAMES,
        &MALFORMED,
        &ARP,
        &ARP_SPECIAL,
        &DHCP,
        &BROADCAST,
        &LOOP_FRAMES,
        &ARP_BINDINGS_NEW,
        &ARP_SCANS,
        &ND,
        &ND_SPECIAL,
        &DHCPV6,
        &SWITCH_PDUS,
        &STP_CHANGES,
    ];

    pub const KERNEL_EVENTS: Family = Family {
        name: "l2watch_kernel_events_total",
        help: "Events the kernel pushed to the ring buffer.",
        label: "kind",
        per_vlan: false,
    };
    pub const DEFERRED: Family = Family {
        name: "l2watch_kernel_events_deferred_total",
        help: "Events the token bucket or a full ring buffer held back into the kernel's \
               pending maps; the agent drains them, so they arrive late, not never.",
        label: "kind",
        per_vlan: false,
    };
    pub const PENDING_FULL: Family = Family {
        name: "l2watch_kernel_pending_full_total",
        help: "Held-back events lost because the pending map was full (an ARP binding is \
               retried by its next frame).",
        label: "kind",
        per_vlan: false,
    };
    pub const SUPPRESSED: Family = Family {
        name: "l2watch_kernel_events_suppressed_total",
        help: "Repeats of a known ARP or IPv6 binding, or of a router's unchanged advertisement, \
               within the refresh interval (by design, not a loss).",
        label: "kind",
        per_vlan: false,
    };
    pub const RATE_LIMITED: Family = Family {
        name: "l2watch_kernel_events_rate_limited_total",
        help: "Events the per-CPU token bucket held back: ARP, ND, RAs and state-bearing \
               DHCP and DHCPv6 are deferred (see l2watch_kernel_events_deferred_total), a \
               storm's DISCOVERs, REQUESTs and SOLICITs dropped.",
        label: "kind",
        per_vlan: false,
    };
    pub const RINGBUF_DROPS: Family = Family {
        name: "l2watch_ringbuf_drops_total",
        help: "Events that met a full ring buffer (the agent fell behind): state-bearing \
               kinds are then deferred, the rest lost.",
        label: "kind",
        per_vlan: false,
    };
    pub const MAP_FULL: Family = Family {
        name: "l2watch_kernel_map_full_total",
        help: "Inserts refused because a kernel map was full.",
        label: "map",
        per_vlan: false,
    };
    pub const KERNEL_ERRORS: Family = Family {
        name: "l2watch_kernel_errors_total",
        help: "Other kernel-side conditions, by reason.",
        label: "reason",
        per_vlan: false,
    };
    /// Every stat family.
    pub const STATS: &[&Family] = &[
        &KERNEL_EVENTS,
        &DEFERRED,
        &PENDING_FULL,
        &SUPPRESSED,
        &RATE_LIMITED,
        &RINGBUF_DROPS,
        &MAP_FULL,
        &KERNEL_ERRORS,
    ];
}

named_indices! {
    /// Per-segment frame counters. A frame increments every counter whose class it belongs to
    /// (an ARP announcement is `arp`, `arp_request`, `arp_gratuitous` and `arp_announcement`),
    /// mirroring the tshark display filters in `shared/corpus/pcap/README.md`.
    Counter {
        /// Every frame seen.
        Frames = "frames" => None,
        /// Frames with no VLAN tag.
        Depth0 = "depth_0" => exp(&families::FRAMES, "0"),
        /// Frames with one VLAN tag.
        Depth1 = "depth_1" => exp(&families::FRAMES, "1"),
        /// Frames with two VLAN tags.
        Depth2 = "depth_2" => exp(&families::FRAMES, "2"),
        /// Frames with three VLAN tags.
        Depth3 = "depth_3" => exp(&families::FRAMES, "3"),
        /// Frames with four or more VLAN tags; not classified further than this.
        DepthMore = "depth_more" => exp(&families::FRAMES, "4+"),
        /// EtherType 0x0806 after the tags (tshark `arp`).
        Arp = "arp" => None,
        /// ARP opcode 1.
        ArpRequest = "arp_request" => exp(&families::ARP, "request"),
        /// ARP opcode 2.
        ArpReply = "arp_reply" => exp(&families::ARP, "reply"),
        /// ARP with any other opcode.
        ArpOtherOpcode = "arp_other_opcode" => exp(&families::ARP, "other"),
        /// Sender IP equals target IP (tshark `arp.isgratuitous`).
        ArpGratuitous = "arp_gratuitous" => exp(&families::ARP_SPECIAL, "gratuitous"),
        /// RFC 5227 probe: request, sender IP 0.0.0.0, target MAC zero (tshark `arp.isprobe`).
        ArpProbe = "arp_probe" => exp(&families::ARP_SPECIAL, "probe"),
        /// RFC 5227 announcement: request, sender IP == target IP, target MAC zero.
        ArpAnnouncement = "arp_announcement" => exp(&families::ARP_SPECIAL, "announcement"),
        /// IPv4, not a non-first fragment, UDP with port 67 or 68 on either side (tshark `dhcp`).
        Dhcp = "dhcp" => None,
        /// Option 53 = 1.
        DhcpDiscover = "dhcp_discover" => exp(&families::DHCP, "discover"),
        /// Option 53 = 2.
        DhcpOffer = "dhcp_offer" => exp(&families::DHCP, "offer"),
        /// Option 53 = 3.
        DhcpRequest = "dhcp_request" => exp(&families::DHCP, "request"),
        /// Option 53 = 4.
        DhcpDecline = "dhcp_decline" => exp(&families::DHCP, "decline"),
        /// Option 53 = 5.
        DhcpAck = "dhcp_ack" => exp(&families::DHCP, "ack"),
        /// Option 53 = 6.
        DhcpNak = "dhcp_nak" => exp(&families::DHCP, "nak"),
        /// Option 53 = 7.
        DhcpRelease = "dhcp_release" => exp(&families::DHCP, "release"),
        /// Option 53 = 8.
        DhcpInform = "dhcp_inform" => exp(&families::DHCP, "inform"),
        /// Option 53 with a value above 8 (lease query and friends).
        DhcpOtherMsgtype = "dhcp_other_msgtype" => exp(&families::DHCP, "other"),
        /// No option 53 found: plain BOOTP, or a message the bounded scan could not read.
        DhcpNoMsgtype = "dhcp_no_msgtype_bootp" => exp(&families::DHCP, "none"),
        /// IPv4 frames (any protocol).
        Ipv4 = "ipv4" => None,
        /// EtherType 0x86dd after the tags, or IPv6 in Teredo (UDP 3544) (tshark `ipv6`).
        Ipv6 = "ipv6" => None,
        /// Frames that are neither ARP nor DHCPv4.
        Other = "other" => None,
        /// Frames to a group (broadcast or multicast) destination MAC.
        Broadcast = "broadcast" => exp(&families::BROADCAST, ""),
        /// Group-addressed frames seen more than `loop_repeats` times within one loop window:
        /// copies going round a switching loop.
        LoopRepeats = "loop_repeats" => exp(&families::LOOP_FRAMES, ""),
        /// ARP bindings the kernel found new or changed (sent, deferred or lost alike).
        ArpBindingsNew = "arp_bindings_new" => exp(&families::ARP_BINDINGS_NEW, ""),
        /// ARP senders that asked for at least `scan_targets` distinct addresses in one window.
        ArpScans = "arp_scans" => exp(&families::ARP_SCANS, ""),
        /// A header the frame's own type fields promise is cut short (see `classify` docs).
        Malformed = "malformed" => exp(&families::MALFORMED, ""),
        /// ICMPv6 after the extension headers, not a non-first fragment (tshark `icmpv6`).
        Icmpv6 = "icmpv6" => None,
        /// ICMPv6 type 133.
        Icmpv6Rs = "icmpv6_rs" => exp(&families::ND, "rs"),
        /// ICMPv6 type 134.
        Icmpv6Ra = "icmpv6_ra" => exp(&families::ND, "ra"),
        /// ICMPv6 type 135.
        Icmpv6Ns = "icmpv6_ns" => exp(&families::ND, "ns"),
        /// ICMPv6 type 136.
        Icmpv6Na = "icmpv6_na" => exp(&families::ND, "na"),
        /// ICMPv6 type 137.
        Icmpv6Redirect = "icmpv6_redirect" => exp(&families::ND, "redirect"),
        /// Neighbour Solicitation from `::`: duplicate address detection (RFC 4862).
        Icmpv6DadNs = "icmpv6_dad_ns" => exp(&families::ND_SPECIAL, "dad_probe"),
        /// Router Advertisement with router lifetime 0: the router retires (or is spoofed).
        Icmpv6RaLifetimeZero = "icmpv6_ra_lifetime_zero" => exp(&families::ND_SPECIAL, "ra_lifetime_zero"),
        /// ND behind extension headers or in a fragment, which RFC 6980 forbids: evasion.
        NdEvasion = "nd_evasion" => exp(&families::ND_SPECIAL, "evasion"),
        /// UDP port 546 or 547 on either side (tshark `dhcpv6`).
        Dhcpv6 = "dhcpv6" => None,
        /// DHCPv6 message types 1..=13 (a relayed message counts its own type too, as in
        /// tshark: a RELAY-FORW holding a SOLICIT is both).
        Dhcpv6Solicit = "dhcpv6_solicit" => exp(&families::DHCPV6, "solicit"),
        Dhcpv6Advertise = "dhcpv6_advertise" => exp(&families::DHCPV6, "advertise"),
        Dhcpv6Request = "dhcpv6_request" => exp(&families::DHCPV6, "request"),
        Dhcpv6Confirm = "dhcpv6_confirm" => exp(&families::DHCPV6, "confirm"),
        Dhcpv6Renew = "dhcpv6_renew" => exp(&families::DHCPV6, "renew"),
        Dhcpv6Rebind = "dhcpv6_rebind" => exp(&families::DHCPV6, "rebind"),
        Dhcpv6Reply = "dhcpv6_reply" => exp(&families::DHCPV6, "reply"),
        Dhcpv6Release = "dhcpv6_release" => exp(&families::DHCPV6, "release"),
        Dhcpv6Decline = "dhcpv6_decline" => exp(&families::DHCPV6, "decline"),
        Dhcpv6Reconfigure = "dhcpv6_reconfigure" => exp(&families::DHCPV6, "reconfigure"),
        Dhcpv6InformationRequest = "dhcpv6_information_request" => exp(&families::DHCPV6, "information_request"),
        Dhcpv6RelayForw = "dhcpv6_relay_forw" => exp(&families::DHCPV6, "relay_forw"),
        Dhcpv6RelayRepl = "dhcpv6_relay_repl" => exp(&families::DHCPV6, "relay_repl"),
        /// Any other DHCPv6 message type (lease query, bulk lease query, ...).
        Dhcpv6Other = "dhcpv6_other" => exp(&families::DHCPV6, "other"),
        /// EtherType 0x88cc (tshark `lldp`).
        Lldp = "lldp" => exp(&families::SWITCH_PDUS, "lldp"),
        /// LLC/SNAP, Cisco OUI, protocol 0x2000 (tshark `cdp`).
        Cdp = "cdp" => exp(&families::SWITCH_PDUS, "cdp"),
        /// BPDUs: LLC 0x42, or PVST+ (SNAP, Cisco OUI, protocol 0x010b) (tshark `stp`).
        Stp = "stp" => exp(&families::SWITCH_PDUS, "stp"),
        /// BPDUs with the topology-change flag (tshark `stp.flags.tc == 1`).
        StpTopologyChange = "stp_topology_change" => exp(&families::STP_CHANGES, "topology_change"),
        /// Topology change notification BPDUs (tshark `stp.type == 0x80`).
        StpTcn = "stp_tcn" => exp(&families::STP_CHANGES, "tcn"),
        /// Slow protocols subtype 1 (tshark `lacp`).
        Lacp = "lacp" => exp(&families::SWITCH_PDUS, "lacp"),
        /// Other slow protocols (marker, OAM, ...).
        SlowOther = "slow_other" => exp(&families::SWITCH_PDUS, "slow_other"),
    }
}

impl Counter {
    /// Counter for a DHCP message type from option 53.
    /// Spelled out rather than through [`DhcpMsgType::counter`]: that form compiles to an
    /// index the verifier cannot bound (the agent's tests check the two agree).
    pub const fn for_dhcp_type(msg_type: u8) -> Counter {
        match msg_type {
            1 => Counter::DhcpDiscover,
            2 => Counter::DhcpOffer,
            3 => Counter::DhcpRequest,
            4 => Counter::DhcpDecline,
            5 => Counter::DhcpAck,
            6 => Counter::DhcpNak,
            7 => Counter::DhcpRelease,
            8 => Counter::DhcpInform,
            _ => Counter::DhcpOtherMsgtype,
        }
    }

    /// Counter for a tag depth.
    pub const fn for_depth(depth: usize) -> Counter {
        match depth {
            0 => Counter::Depth0,
            1 => Counter::Depth1,
            2 => Counter::Depth2,
            3 => Counter::Depth3,
            _ => Counter::DepthMore,
        }
    }

    /// Counter for a DHCPv6 message type.
    pub const fn for_dhcpv6_type(msg_type: u8) -> Counter {
        match msg_type {
            1 => Counter::Dhcpv6Solicit,
            2 => Counter::Dhcpv6Advertise,
            3 => Counter::Dhcpv6Request,
            4 => Counter::Dhcpv6Confirm,
            5 => Counter::Dhcpv6Renew,
            6 => Counter::Dhcpv6Rebind,
            7 => Counter::Dhcpv6Reply,
            8 => Counter::Dhcpv6Release,
            9 => Counter::Dhcpv6Decline,
            10 => Counter::Dhcpv6Reconfigure,
            11 => Counter::Dhcpv6InformationRequest,
            12 => Counter::Dhcpv6RelayForw,
            13 => Counter::Dhcpv6RelayRepl,
            _ => Counter::Dhcpv6Other,
        }
    }
}

named_indices! {
    /// Global self-monitoring counters: every way an event or a count can be lost.
    Stat {
        /// ARP binding events pushed to the ring buffer.
        ArpEventsSent = "arp_events_sent" => exp(&families::KERNEL_EVENTS, "arp"),
        /// DHCP events pushed to the ring buffer.
        DhcpEventsSent = "dhcp_events_sent" => exp(&families::KERNEL_EVENTS, "dhcp"),
        /// ARP frames whose binding was already reported within the refresh interval.
        ArpSuppressed = "arp_suppressed" => exp(&families::SUPPRESSED, "arp"),
        /// ARP events dropped by the token bucket.
        ArpRateLimited = "arp_rate_limited" => exp(&families::RATE_LIMITED, "arp"),
        /// DHCP events dropped by the token bucket.
        DhcpRateLimited = "dhcp_rate_limited" => exp(&families::RATE_LIMITED, "dhcp"),
        /// ARP events lost because the ring buffer was full.
        ArpRingbufFull = "arp_ringbuf_full" => exp(&families::RINGBUF_DROPS, "arp"),
        /// DHCP events lost because the ring buffer was full.
        DhcpRingbufFull = "dhcp_ringbuf_full" => exp(&families::RINGBUF_DROPS, "dhcp"),
        /// Frames whose segment got no slot because all are taken (counted in overflow).
        SegmentMapFull = "segment_map_full" => exp(&families::MAP_FULL, "segments"),
        /// Slots lost because two CPUs saw a new segment at the same instant (stays tiny).
        SegmentSlotRaced = "segment_slot_raced" => exp(&families::KERNEL_ERRORS, "segment_slot_raced"),
        /// Binding updates the LRU map refused.
        BindingMapFull = "binding_map_full" => exp(&families::MAP_FULL, "bindings"),
        /// DHCP payload copies that failed (should stay zero).
        DhcpCopyFailed = "dhcp_copy_failed" => exp(&families::KERNEL_ERRORS, "dhcp_copy_failed"),
        /// ARP frames that are not Ethernet/IPv4 ARP (other hardware or protocol sizes).
        ArpNotEthernetIpv4 = "arp_not_ethernet_ipv4" => exp(&families::KERNEL_ERRORS, "arp_not_ethernet_ipv4"),
        /// ARP events held back (token bucket empty or ring buffer full) into `PENDING_ARP`;
        /// the agent drains them, so they are late, not lost.
        ArpDeferred = "arp_deferred" => exp(&families::DEFERRED, "arp"),
        /// DHCP events held back into `PENDING_DHCP` likewise.
        DhcpDeferred = "dhcp_deferred" => exp(&families::DEFERRED, "dhcp"),
        /// ARP events lost: held back while `PENDING_ARP` was full. The binding is not
        /// remembered, so its next frame tries again.
        ArpPendingFull = "arp_pending_full" => exp(&families::PENDING_FULL, "arp"),
        /// State-bearing DHCP events lost: held back while `PENDING_DHCP` was full.
        DhcpPendingFull = "dhcp_pending_full" => exp(&families::PENDING_FULL, "dhcp"),
        /// Loop (repeated frame) events sent.
        LoopEventsSent = "loop_events_sent" => exp(&families::KERNEL_EVENTS, "loop"),
        /// ARP scan events sent.
        ScanEventsSent = "scan_events_sent" => exp(&families::KERNEL_EVENTS, "scan"),
        /// Loop or scan events lost to a full ring buffer (the counters still count).
        SignalRingbufFull = "signal_ringbuf_full" => exp(&families::KERNEL_ERRORS, "signal_ringbuf_full"),
        /// IPv6 neighbour binding and DAD probe events pushed to the ring buffer.
        NdEventsSent = "nd_events_sent" => exp(&families::KERNEL_EVENTS, "nd"),
        /// Neighbour bindings already reported within the refresh interval.
        NdSuppressed = "nd_suppressed" => exp(&families::SUPPRESSED, "nd"),
        /// ND events the token bucket held back (into `PENDING_ND`).
        NdRateLimited = "nd_rate_limited" => exp(&families::RATE_LIMITED, "nd"),
        /// ND events that met a full ring buffer (then parked in `PENDING_ND`).
        NdRingbufFull = "nd_ringbuf_full" => exp(&families::RINGBUF_DROPS, "nd"),
        /// ND events parked in `PENDING_ND`.
        NdDeferred = "nd_deferred" => exp(&families::DEFERRED, "nd"),
        /// ND events lost: `PENDING_ND` was full (a binding is retried by its next frame).
        NdPendingFull = "nd_pending_full" => exp(&families::PENDING_FULL, "nd"),
        /// Binding updates `ND_BINDINGS` refused.
        NdBindingMapFull = "nd_binding_map_full" => exp(&families::MAP_FULL, "nd_bindings"),
        /// Router advertisements pushed to the ring buffer.
        RaEventsSent = "ra_events_sent" => exp(&families::KERNEL_EVENTS, "ra"),
        /// Router advertisements identical to the router's last one within the refresh interval.
        RaSuppressed = "ra_suppressed" => exp(&families::SUPPRESSED, "ra"),
        /// RA events the token bucket held back (into `PENDING_RA`).
        RaRateLimited = "ra_rate_limited" => exp(&families::RATE_LIMITED, "ra"),
        /// RA events that met a full ring buffer (then parked in `PENDING_RA`).
        RaRingbufFull = "ra_ringbuf_full" => exp(&families::RINGBUF_DROPS, "ra"),
        /// RA events parked in `PENDING_RA` (newest per router).
        RaDeferred = "ra_deferred" => exp(&families::DEFERRED, "ra"),
        /// RA events lost: `PENDING_RA` was full (the router's next RA is retried).
        RaPendingFull = "ra_pending_full" => exp(&families::PENDING_FULL, "ra"),
        /// DHCPv6 events pushed to the ring buffer.
        Dhcpv6EventsSent = "dhcpv6_events_sent" => exp(&families::KERNEL_EVENTS, "dhcpv6"),
        /// DHCPv6 events the token bucket held back: stateful ones parked, the rest dropped.
        Dhcpv6RateLimited = "dhcpv6_rate_limited" => exp(&families::RATE_LIMITED, "dhcpv6"),
        /// DHCPv6 events that met a full ring buffer.
        Dhcpv6RingbufFull = "dhcpv6_ringbuf_full" => exp(&families::RINGBUF_DROPS, "dhcpv6"),
        /// Stateful DHCPv6 events parked in `PENDING_DHCP6`.
        Dhcpv6Deferred = "dhcpv6_deferred" => exp(&families::DEFERRED, "dhcpv6"),
        /// Stateful DHCPv6 events lost: `PENDING_DHCP6` was full.
        Dhcpv6PendingFull = "dhcpv6_pending_full" => exp(&families::PENDING_FULL, "dhcpv6"),
        /// IPv6 message copies (RA, DHCPv6) that failed (should stay zero).
        Ip6CopyFailed = "ip6_copy_failed" => exp(&families::KERNEL_ERRORS, "ip6_copy_failed"),
        /// Changed switch PDUs (LLDP, CDP, BPDUs, LACPDUs) pushed to the ring buffer.
        SwitchEventsSent = "switch_events_sent" => exp(&families::KERNEL_EVENTS, "switch"),
        /// Switch PDUs identical to the sender's last one (the steady stream, by design).
        SwitchSuppressed = "switch_suppressed" => exp(&families::SUPPRESSED, "switch"),
        /// Switch events the token bucket held back (into `PENDING_SWITCH`).
        SwitchRateLimited = "switch_rate_limited" => exp(&families::RATE_LIMITED, "switch"),
        /// Switch events that met a full ring buffer (then parked in `PENDING_SWITCH`).
        SwitchRingbufFull = "switch_ringbuf_full" => exp(&families::RINGBUF_DROPS, "switch"),
        /// Switch events parked in `PENDING_SWITCH` (newest per sender and protocol).
        SwitchDeferred = "switch_deferred" => exp(&families::DEFERRED, "switch"),
        /// Switch events lost: `PENDING_SWITCH` was full (the sender's next PDU is retried).
        SwitchPendingFull = "switch_pending_full" => exp(&families::PENDING_FULL, "switch"),
        /// Switch PDUs that could not be copied: an 802.3 length field shorter than the
        /// headers it covers (else zero).
        SwitchCopyFailed = "switch_copy_failed" => exp(&families::KERNEL_ERRORS, "switch_copy_failed"),
    }
}

/// Token buckets in `RATE_BUCKETS`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    Arp = 0,
    /// DHCPv4 and DHCPv6.
    Dhcp = 1,
    /// IPv6 neighbour bindings, DAD probes and router advertisements.
    Nd = 2,
    /// Changed LLDP, CDP, BPDUs and LACPDUs.
    Switch = 3,
}

impl Bucket {
    pub const COUNT: usize = 4;
}

/// Identifies a segment: the interface a frame arrived on and its outer and inner VLAN IDs.
/// With three or more tags, `inner_vid` is the innermost tag parsed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentKey {
    pub ifindex: u32,
    /// Outermost VID, or [`NO_VLAN`].
    pub outer_vid: u16,
    /// Innermost VID when there are two or more tags, else [`NO_VLAN`].
    pub inner_vid: u16,
}

/// The segment a CPU saw last and its slot: a run of frames on one segment needs no hash
/// lookup. `slot_plus_one == 0` marks an empty entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentCacheEntry {
    pub key: SegmentKey,
    pub slot_plus_one: u32,
    pub _pad: u32,
}

/// Per-segment counters, indexed by [`Counter`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentCounters {
    pub counts: [u64; Counter::COUNT],
}

impl SegmentCounters {
    pub const ZERO: SegmentCounters = SegmentCounters {
        counts: [0; Counter::COUNT],
    };

    pub fn get(&self, c: Counter) -> u64 {
        self.counts[c.index()]
    }

    /// Adds `other` counter by counter (summing CPUs, segments, interfaces).
    pub fn add(&mut self, other: &SegmentCounters) {
        for (d, s) in self.counts.iter_mut().zip(other.counts.iter()) {
            *d += s;
        }
    }
}

/// What a [`BindingKey`] tracks.
pub mod binding_kind {
    /// Sender IP -> sender MAC, from any ARP with a non-zero sender IP.
    pub const SENDER: u8 = 0;
    /// Probed IP -> prober MAC, from RFC 5227 probes (sender IP 0.0.0.0).
    pub const PROBE: u8 = 1;
}

/// Key of the kernel's binding-suppression LRU map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BindingKey {
    pub ifindex: u32,
    pub outer_vid: u16,
    pub inner_vid: u16,
    /// IPv4 address, network byte order.
    pub ip: [u8; 4],
    /// One of [`binding_kind`].
    pub kind: u8,
    // Scalars, not `[u8; 3]`: the kernel builds this key on every ARP frame, and a zeroed
    // array compiles to a call of a BPF memset routine.
    pub _pad: u8,
    pub _pad2: u16,
}

/// Value of the binding-suppression LRU map: the last MAC reported and when.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindingValue {
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
    /// `bpf_ktime_get_coarse_ns()` of the last event sent for this binding.
    pub reported_ns: u64,
}

/// Bits of [`Config::flags`].
pub mod config_flags {
    /// Emit ARP binding events.
    pub const ARP_EVENTS: u32 = 1 << 0;
    /// Emit DHCP events.
    pub const DHCP_EVENTS: u32 = 1 << 1;
    /// Apply the token buckets. Replay turns this off so every message is seen.
    pub const RATE_LIMIT: u32 = 1 << 2;
    /// Emit IPv6 neighbour binding, DAD probe and router advertisement events.
    pub const ND_EVENTS: u32 = 1 << 3;
    /// Emit DHCPv6 events.
    pub const DHCPV6_EVENTS: u32 = 1 << 4;
    /// Emit switch-protocol events (changed LLDP, CDP, BPDUs, LACPDUs).
    pub const SWITCH_EVENTS: u32 = 1 << 5;
}

/// Runtime configuration written by userspace into the `CONFIG` array (index 0). An all-zero
/// config (never written) disables events, so a half-loaded program stays silent.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// A binding already reported is reported again after this long (a refresh).
    pub refresh_ns: u64,
    /// ARP events per second per CPU once the burst is spent.
    pub arp_rate_per_sec: u32,
    /// ARP token-bucket depth.
    pub arp_burst: u32,
    /// DHCP events per second per CPU once the burst is spent.
    pub dhcp_rate_per_sec: u32,
    /// DHCP token-bucket depth.
    pub dhcp_burst: u32,
    /// [`config_flags`] bits.
    pub flags: u32,
    /// A group-addressed frame seen more than this often within `loop_window_ms` is looping.
    pub loop_repeats: u32,
    pub loop_window_ms: u32,
    /// Distinct ARP targets (bits of the sender's bitmap) within `scan_window_ms` that make
    /// the sender a scanner.
    pub scan_targets: u32,
    pub scan_window_ms: u32,
    /// ND events (bindings, DAD probes, RAs) per second per CPU once the burst is spent.
    pub nd_rate_per_sec: u32,
    /// ND token-bucket depth.
    pub nd_burst: u32,
    /// Switch events per second per CPU once the burst is spent.
    pub switch_rate_per_sec: u32,
    /// Switch token-bucket depth.
    pub switch_burst: u32,
    pub _pad: u32,
    /// Replay only: the capture's time for the loop and scan windows (frames replay far
    /// faster than they were captured). 0: the kernel clock.
    pub clock_ns: u64,
}

/// Token-bucket state, per CPU. Tokens are kept in nano-events so refill needs no division.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BucketState {
    pub tokens_nano: u64,
    pub last_ns: u64,
}

/// Ring-buffer event kinds: the first byte of every event.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// First sighting of an (interface, VLANs, IP) -> MAC binding.
    ArpNew = 1,
    /// A known IP now comes from another MAC; `old_mac` holds the previous one.
    ArpChanged = 2,
    /// The same binding again after the refresh interval.
    ArpRefresh = 3,
    /// A DHCP message (every one, subject to the token bucket).
    Dhcp = 4,
    /// One group-addressed frame repeated past the loop threshold ([`LoopEvent`]).
    Loop = 5,
    /// One ARP sender asked for many distinct targets ([`ScanEvent`]).
    Scan = 6,
    /// First sighting of an (interface, VLANs, IPv6) -> MAC binding ([`NdEvent`]).
    NdNew = 7,
    /// A known IPv6 address now comes from another MAC; `old_mac` holds the previous one.
    NdChanged = 8,
    /// The same IPv6 binding again after the refresh interval.
    NdRefresh = 9,
    /// A duplicate address detection probe: NS from `::` ([`NdEvent`], every one).
    DadProbe = 10,
    /// A router advertisement that differs from the router's last, or is due for a refresh
    /// ([`Ip6Event`]).
    RouterAdvert = 11,
    /// A DHCPv6 message ([`Ip6Event`], every one, subject to the token bucket).
    Dhcpv6 = 12,
    /// An LLDP, CDP, BPDU or LACPDU that differs from its sender's last one
    /// ([`SwitchEvent`]); BPDUs announcing a topology change, every one.
    SwitchPdu = 13,
}

impl EventKind {
    pub const ALL: &'static [EventKind] = &[
        EventKind::ArpNew,
        EventKind::ArpChanged,
        EventKind::ArpRefresh,
        EventKind::Dhcp,
        EventKind::Loop,
        EventKind::Scan,
        EventKind::NdNew,
        EventKind::NdChanged,
        EventKind::NdRefresh,
        EventKind::DadProbe,
        EventKind::RouterAdvert,
        EventKind::Dhcpv6,
        EventKind::SwitchPdu,
    ];

    /// The wire code ([`EventHeader::kind`]).
    pub const fn code(self) -> u8 {
        self as u8
    }

    pub const fn from_code(code: u8) -> Option<EventKind> {
        Some(match code {
            1 => EventKind::ArpNew,
            2 => EventKind::ArpChanged,
            3 => EventKind::ArpRefresh,
            4 => EventKind::Dhcp,
            5 => EventKind::Loop,
            6 => EventKind::Scan,
            7 => EventKind::NdNew,
            8 => EventKind::NdChanged,
            9 => EventKind::NdRefresh,
            10 => EventKind::DadProbe,
            11 => EventKind::RouterAdvert,
            12 => EventKind::Dhcpv6,
            13 => EventKind::SwitchPdu,
            _ => return None,
        })
    }

    /// Stable name for logs, JSON and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::ArpNew => "arp_new",
            EventKind::ArpChanged => "arp_changed",
            EventKind::ArpRefresh => "arp_refresh",
            EventKind::Dhcp => "dhcp",
            EventKind::Loop => "loop",
            EventKind::Scan => "scan",
            EventKind::NdNew => "nd_new",
            EventKind::NdChanged => "nd_changed",
            EventKind::NdRefresh => "nd_refresh",
            EventKind::DadProbe => "dad_probe",
            EventKind::RouterAdvert => "router_advert",
            EventKind::Dhcpv6 => "dhcpv6",
            EventKind::SwitchPdu => "switch_pdu",
        }
    }
}

/// The wire codes of [`EventKind`], for `match` on a record's first byte.
pub mod event_kind {
    use super::EventKind;

    pub const ARP_NEW: u8 = EventKind::ArpNew.code();
    pub const ARP_CHANGED: u8 = EventKind::ArpChanged.code();
    pub const ARP_REFRESH: u8 = EventKind::ArpRefresh.code();
    pub const DHCP: u8 = EventKind::Dhcp.code();
    pub const LOOP: u8 = EventKind::Loop.code();
    pub const SCAN: u8 = EventKind::Scan.code();
    pub const ND_NEW: u8 = EventKind::NdNew.code();
    pub const ND_CHANGED: u8 = EventKind::NdChanged.code();
    pub const ND_REFRESH: u8 = EventKind::NdRefresh.code();
    pub const DAD_PROBE: u8 = EventKind::DadProbe.code();
    pub const ROUTER_ADVERT: u8 = EventKind::RouterAdvert.code();
    pub const DHCPV6: u8 = EventKind::Dhcpv6.code();
    pub const SWITCH_PDU: u8 = EventKind::SwitchPdu.code();

    /// The name of a wire code, "unknown" for one no kind has.
    pub const fn name(kind: u8) -> &'static str {
        match EventKind::from_code(kind) {
            Some(k) => k.name(),
            None => "unknown",
        }
    }
}

/// Bits of [`ArpEvent::flags`], same meaning as the matching [`Counter`]s.
pub mod arp_flags {
    pub const GRATUITOUS: u16 = 1 << 0;
    pub const PROBE: u16 = 1 << 1;
    pub const ANNOUNCEMENT: u16 = 1 << 2;
}

/// Where a frame was seen: the common head of every event.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHeader {
    /// One of [`event_kind`].
    pub kind: u8,
    /// Number of VLAN tags in front of the payload.
    pub depth: u8,
    pub _pad: u16,
    pub ifindex: u32,
    pub outer_vid: u16,
    pub inner_vid: u16,
    pub _pad2: u32,
    /// `bpf_ktime_get_coarse_ns()` (CLOCK_MONOTONIC, tick resolution) at classification.
    pub ktime_ns: u64,
}

/// An ARP binding change.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpEvent {
    pub header: EventHeader,
    pub op: u16,
    /// [`arp_flags`] bits.
    pub flags: u16,
    /// The IP the binding is about: the sender IP, or the probed IP for a probe.
    pub ip: [u8; 4],
    /// The MAC now holding `ip` (ARP sender hardware address).
    pub mac: [u8; 6],
    /// The MAC previously reported for `ip` ([`event_kind::ARP_CHANGED`] only, else zero).
    pub old_mac: [u8; 6],
    pub sender_ip: [u8; 4],
    pub target_ip: [u8; 4],
    pub target_mac: [u8; 6],
    /// Ethernet source address (can differ from the ARP sender MAC in proxy or spoofed ARP).
    pub eth_src: [u8; 6],
    /// One of [`binding_kind`].
    pub binding: u8,
    pub _pad: [u8; 7],
}

/// A DHCP message: addressing plus the raw BOOTP bytes for userspace to parse.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhcpEvent {
    pub header: EventHeader,
    pub eth_src: [u8; 6],
    pub eth_dst: [u8; 6],
    pub src_ip: [u8; 4],
    pub dst_ip: [u8; 4],
    pub src_port: u16,
    pub dst_port: u16,
    /// Option 53 as the kernel found it, 0 when none.
    pub msg_type: u8,
    pub _pad: u8,
    /// BOOTP bytes present in the frame (may exceed `payload_len`).
    pub bootp_len: u16,
    /// Bytes of `payload` that are valid.
    pub payload_len: u16,
    pub _pad2: [u8; 10],
    pub payload: [u8; DHCP_PAYLOAD_MAX],
}

/// Key of `PENDING_DHCP`: one held-back message per segment, transaction, client and type.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PendingDhcpKey {
    pub ifindex: u32,
    pub outer_vid: u16,
    pub inner_vid: u16,
    pub xid: [u8; 4],
    pub chaddr: [u8; 6],
    pub msg_type: u8,
    pub _pad: u8,
}

/// Key of `FRAMES_SEEN`: a group-addressed frame's hash on its segment.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameKey {
    pub hash: u64,
    pub ifindex: u32,
    pub outer_vid: u16,
    pub inner_vid: u16,
}

/// Value of `FRAMES_SEEN`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameSeen {
    pub window_start_ns: u64,
    /// Copies in the current window.
    pub count: u32,
    /// 1 once this window's loop event was sent.
    pub reported: u32,
}

/// The ARP binding a CPU decided on last (`BINDING_RUN`): the same binding again within the
/// same clock tick gets the same answer without a lookup in `BINDINGS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindingRun {
    pub key: BindingKey,
    pub mac: [u8; 6],
    pub _pad: u16,
    /// The coarse clock at the decision; 0 before the first.
    pub at_ns: u64,
}

/// A CPU's current run of one frame (`LOOP_RUN`): its key, its count so far, and how many
/// copies came in a row on this CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopRun {
    pub key: FrameKey,
    pub seen: FrameSeen,
    pub copies: u32,
    pub _pad: u32,
}

/// Key of `ARP_SCANS`: an ARP sender on its segment.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScanKey {
    pub ifindex: u32,
    pub outer_vid: u16,
    pub inner_vid: u16,
    pub mac: [u8; 6],
    pub _pad: u16,
}

/// Value of `ARP_SCANS`: a bitmap of hashed target IPs in the current window.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanState {
    pub window_start_ns: u64,
    pub bitmap: [u64; SCAN_BITMAP_WORDS],
    /// Bits set (an estimate of distinct targets from below).
    pub targets: u32,
    /// Requests in the window.
    pub requests: u32,
    /// 1 once this window's scan event was sent.
    pub reported: u32,
    pub _pad: u32,
}

/// What an [`NdKey`] tracks.
pub mod nd_binding {
    /// IPv6 address -> MAC: an NS's source and its source link-layer address, or an NA's
    /// target and its target link-layer address (the Ethernet source when the option is
    /// absent).
    pub const HOLDER: u8 = 0;
    /// A DAD probe's target, from the prober's MAC (the key's `mac`).
    pub const DAD: u8 = 1;
}

/// Bits of [`NdEvent::flags`].
pub mod nd_flags {
    /// NA: the sender is a router (R).
    pub const ROUTER: u8 = 1 << 0;
    /// NA: an answer to a solicitation (S).
    pub const SOLICITED: u8 = 1 << 1;
    /// NA: override an existing cache entry (O).
    pub const OVERRIDE: u8 = 1 << 2;
    /// The MAC came from a link-layer address option, not the Ethernet source.
    pub const LLADDR_OPTION: u8 = 1 << 3;
    /// A nonce option (RFC 3971, used by RFC 7527 enhanced DAD) was present.
    pub const NONCE: u8 = 1 << 4;
}

/// Key of `ND_BINDINGS` (MAC zero: one per address) and `PENDING_ND` (MAC set for a DAD
/// probe, so two stations probing one target wait side by side).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NdKey {
    pub ifindex: u32,
    pub outer_vid: u16,
    pub inner_vid: u16,
    pub ip: [u8; 16],
    pub mac: [u8; 6],
    /// One of [`nd_binding`].
    pub kind: u8,
    pub _pad: u8,
}

/// An IPv6 neighbour binding change or a DAD probe.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NdEvent {
    pub header: EventHeader,
    /// ICMPv6 type: 135 (NS) or 136 (NA).
    pub icmp_type: u8,
    /// One of [`nd_binding`].
    pub binding: u8,
    /// [`nd_flags`] bits.
    pub flags: u8,
    pub _pad: u8,
    /// The address the binding is about: NS source, NA target, or the DAD probe's target.
    pub ip: [u8; 16],
    /// The MAC holding (or probing for) `ip`.
    pub mac: [u8; 6],
    /// The MAC previously reported ([`event_kind::ND_CHANGED`] only, else zero).
    pub old_mac: [u8; 6],
    pub eth_src: [u8; 6],
    /// The DAD nonce (when [`nd_flags::NONCE`]).
    pub nonce: [u8; 6],
    pub src_ip: [u8; 16],
    pub dst_ip: [u8; 16],
    pub _pad2: [u8; 4],
}

/// Key of `ROUTERS_SEEN` and `PENDING_RA`: a router by its source address and MAC.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouterKey {
    pub ifindex: u32,
    pub outer_vid: u16,
    pub inner_vid: u16,
    pub src_ip: [u8; 16],
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

/// Value of `ROUTERS_SEEN`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouterSeen {
    /// Hash of the last advertisement reported (its bytes from the ICMPv6 type on).
    pub hash: u64,
    pub reported_ns: u64,
}

/// An IPv6 message for userspace to parse: a router advertisement or a DHCPv6 message.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ip6Event {
    pub header: EventHeader,
    pub eth_src: [u8; 6],
    pub eth_dst: [u8; 6],
    pub src_ip: [u8; 16],
    pub dst_ip: [u8; 16],
    /// UDP ports (DHCPv6; zero for an RA).
    pub src_port: u16,
    pub dst_port: u16,
    /// ICMPv6 type (134) or DHCPv6 msg-type.
    pub msg_type: u8,
    pub _pad: u8,
    /// Bytes of the message in the frame (may exceed `payload_len`).
    pub wire_len: u16,
    /// Bytes of `payload` that are valid.
    pub payload_len: u16,
    pub _pad2: [u8; 2],
    pub payload: [u8; IP6_PAYLOAD_MAX],
}

/// Key of `SWITCH_SEEN` and `PENDING_SWITCH`: one sender of one protocol on a segment.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SwitchKey {
    pub ifindex: u32,
    pub outer_vid: u16,
    pub inner_vid: u16,
    pub mac: [u8; 6],
    /// [`SwitchProto`] code.
    pub proto: u8,
    pub _pad: u8,
    /// BPDUs: the sender's bridge priority field (with PVST+, its system id extension is the
    /// VLAN), so one switch's BPDUs for several VLANs do not replace each other. Else 0.
    pub sub: u16,
    pub _pad2: u16,
}

/// A switch-protocol PDU for userspace to parse.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwitchEvent {
    pub header: EventHeader,
    pub eth_src: [u8; 6],
    pub eth_dst: [u8; 6],
    /// [`SwitchProto`] code.
    pub proto: u8,
    pub _pad: u8,
    /// Bytes of the PDU in the frame (may exceed `payload_len`).
    pub wire_len: u16,
    /// Bytes of `payload` that are valid.
    pub payload_len: u16,
    pub _pad2: [u8; 6],
    pub payload: [u8; SWITCH_PAYLOAD_MAX],
}

/// A frame going round: the same group-addressed bytes `count` times within one window.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopEvent {
    pub header: EventHeader,
    pub hash: u64,
    pub count: u32,
    pub window_ms: u32,
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    /// EtherType after the tags.
    pub ether_type: u16,
    pub frame_len: u16,
    pub _pad: [u8; 8],
}

/// An ARP sender that asked for at least `scan_targets` distinct addresses in one window.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanEvent {
    pub header: EventHeader,
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
    pub sender_ip: [u8; 4],
    /// The target of the request that crossed the threshold.
    pub last_target: [u8; 4],
    pub targets: u32,
    pub requests: u32,
    pub window_ms: u32,
    pub _pad2: u32,
}

/// What the storm generator (`monitor-ebpf/src/storm.rs`, for benchmarks and tests) makes:
/// station `first + n % stations` for the n-th frame (`stations == 0`: always `first`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StormConfig {
    /// Interface the frames are redirected into.
    pub ifindex: u32,
    pub first: u32,
    pub stations: u32,
    pub _pad: u32,
}

// The layouts are part of the ABI between two separately compiled objects: pin their sizes.
const _: () = assert!(size_of::<SegmentKey>() == 8);
const _: () = assert!(size_of::<SegmentCounters>() == 8 * Counter::COUNT);
const _: () = assert!(size_of::<SegmentCacheEntry>() == 16);
const _: () = assert!(size_of::<BindingKey>() == 16);
const _: () = assert!(size_of::<BindingValue>() == 16);
const _: () = assert!(size_of::<Config>() == 72);
const _: () = assert!(size_of::<PendingDhcpKey>() == 20);
const _: () = assert!(size_of::<StormConfig>() == 16);
const _: () = assert!(size_of::<FrameKey>() == 16);
const _: () = assert!(size_of::<FrameSeen>() == 16);
const _: () = assert!(size_of::<LoopRun>() == 40);
const _: () = assert!(size_of::<BindingRun>() == 32);
const _: () = assert!(size_of::<ScanKey>() == 16);
const _: () = assert!(size_of::<ScanState>() == 56);
const _: () = assert!(size_of::<LoopEvent>() == 64);
const _: () = assert!(size_of::<ScanEvent>() == 56);
const _: () = assert!(size_of::<BucketState>() == 16);
const _: () = assert!(size_of::<EventHeader>() == 24);
const _: () = assert!(size_of::<ArpEvent>() == 72);
const _: () = assert!(size_of::<DhcpEvent>() == 24 + 40 + DHCP_PAYLOAD_MAX);
const _: () = assert!(size_of::<NdKey>() == 32);
const _: () = assert!(size_of::<NdEvent>() == 104);
const _: () = assert!(size_of::<RouterKey>() == 32);
const _: () = assert!(size_of::<RouterSeen>() == 16);
const _: () = assert!(size_of::<Ip6Event>() == 80 + IP6_PAYLOAD_MAX);
const _: () = assert!(size_of::<SwitchKey>() == 20);
const _: () = assert!(size_of::<SwitchEvent>() == 48 + SWITCH_PAYLOAD_MAX);

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are repr(C), Copy, made of integers and byte arrays with explicit
    // padding fields, so every bit pattern is valid.
    unsafe impl aya::Pod for SegmentKey {}
    unsafe impl aya::Pod for SegmentCounters {}
    unsafe impl aya::Pod for SegmentCacheEntry {}
    unsafe impl aya::Pod for BindingKey {}
    unsafe impl aya::Pod for BindingValue {}
    unsafe impl aya::Pod for Config {}
    unsafe impl aya::Pod for BucketState {}
    unsafe impl aya::Pod for PendingDhcpKey {}
    unsafe impl aya::Pod for StormConfig {}
    unsafe impl aya::Pod for FrameKey {}
    unsafe impl aya::Pod for FrameSeen {}
    unsafe impl aya::Pod for ScanKey {}
    unsafe impl aya::Pod for ScanState {}
    unsafe impl aya::Pod for EventHeader {}
    unsafe impl aya::Pod for ArpEvent {}
    unsafe impl aya::Pod for DhcpEvent {}
    unsafe impl aya::Pod for LoopEvent {}
    unsafe impl aya::Pod for ScanEvent {}
    unsafe impl aya::Pod for NdKey {}
    unsafe impl aya::Pod for NdEvent {}
    unsafe impl aya::Pod for RouterKey {}
    unsafe impl aya::Pod for RouterSeen {}
    unsafe impl aya::Pod for Ip6Event {}
    unsafe impl aya::Pod for SwitchKey {}
    unsafe impl aya::Pod for SwitchEvent {}
}
