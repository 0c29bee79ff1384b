//! Packet fixtures for BPF_PROG_TEST_RUN: each has a description, the frame, the expected
//! verdict (always XDP_PASS), the counters it must move and the events it must raise.
use monitor_common::{event_kind, SwitchProto};

use crate::frames::{
    arp, dhcp, ipv4_other, ipv6, udp, Bootp, Built, Ip, BROADCAST, L2, TPID_8021AD, TPID_8021Q,
    TPID_QINQ,
};

pub const MAC_A: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b];
pub const MAC_SRV: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x53];
pub const IP_A: [u8; 4] = [10, 0, 0, 1];
pub const IP_B: [u8; 4] = [10, 0, 0, 2];
pub const IP_SRV: [u8; 4] = [10, 0, 0, 254];
const ZERO_MAC: [u8; 6] = [0; 6];

/// An event a fixture must raise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Arp {
        kind: u8,
        ip: [u8; 4],
        mac: [u8; 6],
        outer: Option<u16>,
        inner: Option<u16>,
    },
    Dhcp {
        msg_type: u8,
        outer: Option<u16>,
        inner: Option<u16>,
    },
    /// A frame repeating past the loop threshold.
    Loop {
        src: [u8; 6],
        outer: Option<u16>,
    },
    /// An ARP sender past the scan threshold.
    Scan {
        mac: [u8; 6],
        outer: Option<u16>,
    },
    /// An IPv6 binding (NdNew ...) or a DAD probe.
    Nd {
        kind: u8,
        ip: [u8; 16],
        mac: [u8; 6],
        nonce: Option<[u8; 6]>,
        outer: Option<u16>,
        inner: Option<u16>,
    },
    /// A router advertisement, from its source address and MAC.
    Ra {
        src_ip: [u8; 16],
        mac: [u8; 6],
    },
    Dhcpv6 {
        msg_type: u8,
    },
    /// A switch PDU (`SwitchProto` code).
    Switch {
        proto: u8,
        outer: Option<u16>,
    },
}

#[derive(Debug, Clone)]
pub struct Fixture {
    pub name: String,
    pub description: &'static str,
    pub frame: Built,
    /// Number of VLAN tags in the frame.
    pub tags: usize,
    /// Class counters the frame must increment by one (frames, depth and tagged totals are
    /// derived from `tags`); every other counter must stay put.
    pub counters: Vec<&'static str>,
    /// Kernel stats it must increment by one.
    pub stats: Vec<&'static str>,
    pub events: Vec<Expect>,
}

impl Fixture {
    /// All counters the frame must move, including the derived ones.
    pub fn expected_counts(&self) -> Vec<&'static str> {
        let mut c = vec!["frames"];
        c.push(match self.tags {
            0 => "depth_0",
            1 => "depth_1",
            2 => "depth_2",
            3 => "depth_3",
            _ => "depth_more",
        });
        if self.tags > 0 {
            c.push("vlan_tagged");
            if self.counters.contains(&"arp") {
                c.push("arp_vlan_tagged");
            }
            if self.counters.contains(&"dhcp") {
                c.push("dhcp_vlan_tagged");
            }
            if self.counters.iter().any(|c| ND_TYPES.contains(c)) {
                c.push("icmpv6_nd_vlan_tagged");
            }
        }
        if self.tags > 1 {
            c.push("vlan_two_or_more_tags");
        }
        // A group destination (the I/G bit), when the Ethernet header is there.
        if self.frame.bytes.len() >= 14 && self.frame.bytes[0] & 1 != 0 {
            c.push("broadcast");
        }
        for e in &self.events {
            if let Expect::Arp { kind, .. } = e {
                if *kind == event_kind::ARP_NEW || *kind == event_kind::ARP_CHANGED {
                    c.push("arp_bindings_new");
                }
            }
        }
        c.extend(self.counters.iter().copied());
        c
    }
}

/// The neighbour discovery counters (tshark's `icmpv6_nd_vlan_tagged` counts these frames).
const ND_TYPES: &[&str] = &[
    "icmpv6_rs",
    "icmpv6_ra",
    "icmpv6_ns",
    "icmpv6_na",
    "icmpv6_redirect",
];

const LINK_LOCAL: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const UNSPECIFIED: [u8; 16] = [0; 16];

/// An IPv6 frame from `src` whose classifier needs the 40-byte header plus `needs` bytes of
/// what follows it (`payload` starts right after the IPv6 header).
fn ip6(l2: &L2, src: [u8; 16], next: u8, payload: &[u8], needs: usize) -> Built {
    let mut b = ipv6(l2, next, payload);
    let at = b.class_len + 8;
    b.bytes[at..at + 16].copy_from_slice(&src);
    b.full_len = b.class_len + 40 + needs;
    b
}

/// ICMPv6 `kind` with `body` after its 4-byte header.
fn icmp6(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind, 0, 0, 0];
    m.extend_from_slice(body);
    m
}

/// UDP 546 -> 547 holding `dhcpv6`.
fn udp6(dhcpv6: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&546u16.to_be_bytes());
    u.extend_from_slice(&547u16.to_be_bytes());
    u.extend_from_slice(&((8 + dhcpv6.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(dhcpv6);
    u
}

/// Builds an untagged fixture: name, description, frame, counters, stats, events.
type MakeFixture<'a> = dyn Fn(&str, &'static str, Built, Vec<&'static str>, Vec<&'static str>, Vec<Expect>) -> Fixture
    + 'a;

fn nd_new(l2: &L2, ip: [u8; 16], mac: [u8; 6]) -> Expect {
    nd_ev(l2, event_kind::ND_NEW, ip, mac, None)
}

fn nd_ev(l2: &L2, kind: u8, ip: [u8; 16], mac: [u8; 6], nonce: Option<[u8; 6]>) -> Expect {
    let (outer, inner) = vlans(l2);
    Expect::Nd {
        kind,
        ip,
        mac,
        nonce,
        outer,
        inner,
    }
}

/// An NS or NA option: type, length in 8-byte units, and six bytes (a MAC or a nonce).
fn nd_opt(kind: u8, six: [u8; 6]) -> Vec<u8> {
    let mut o = vec![kind, 1];
    o.extend_from_slice(&six);
    o
}

/// The fixtures for IPv6 neighbour discovery and DHCPv6 (untagged).
fn ipv6_fixtures(l2: &L2, one: &MakeFixture) -> Vec<Fixture> {
    let target = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let ns = icmp6(135, &[&[0u8; 4][..], &target[..]].concat());
    let ra = icmp6(134, &[64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0]);
    let router = Expect::Ra {
        src_ip: LINK_LOCAL,
        mac: l2.src,
    };
    let other_mac = [0x02, 0, 0x5e, 0x10, 0, 0x77];
    let nonce = [1, 2, 3, 4, 5, 6];
    let mut v = vec![
        one(
            "nd_router_solicitation",
            "ICMPv6 133",
            ip6(l2, LINK_LOCAL, 58, &icmp6(133, &[0; 4]), 4),
            vec!["other", "ipv6", "icmpv6", "icmpv6_rs"],
            vec![],
            vec![],
        ),
        one(
            "nd_router_advertisement",
            "ICMPv6 134, router lifetime 1800 s: reported whole, from its source and MAC",
            ip6(l2, LINK_LOCAL, 58, &ra, 16),
            vec!["other", "ipv6", "icmpv6", "icmpv6_ra"],
            vec!["ra_events_sent"],
            vec![router.clone()],
        ),
        one(
            "nd_router_advertisement_lifetime_zero",
            "ICMPv6 134 with router lifetime 0: the router retires, or someone says it does",
            ip6(l2, LINK_LOCAL, 58, &icmp6(134, &[64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 16),
            vec!["other", "ipv6", "icmpv6", "icmpv6_ra", "icmpv6_ra_lifetime_zero"],
            vec!["ra_events_sent"],
            vec![router.clone()],
        ),
        one(
            "nd_router_advertisement_routed",
            "an RA with hop limit 64 was routed: counted, and every host ignores it, so no event",
            {
                let mut b = ip6(l2, LINK_LOCAL, 58, &ra, 16);
                b.bytes[b.class_len + 7] = 64;
                b
            },
            vec!["other", "ipv6", "icmpv6", "icmpv6_ra"],
            vec![],
            vec![],
        ),
        one(
            "nd_neighbor_advertisement",
            "ICMPv6 136 without a target link-layer option: the target is at the Ethernet source",
            ip6(l2, LINK_LOCAL, 58, &icmp6(136, &[&[0x60, 0, 0, 0][..], &target[..]].concat()), 24),
            vec!["other", "ipv6", "icmpv6", "icmpv6_na"],
            vec!["nd_events_sent"],
            vec![nd_new(l2, target, l2.src)],
        ),
        one(
            "nd_neighbor_advertisement_tlla",
            "ICMPv6 136 with a target link-layer option: the target is at the option's MAC",
            ip6(
                l2,
                LINK_LOCAL,
                58,
                &icmp6(136, &[&[0x20, 0, 0, 0][..], &target[..], &nd_opt(2, other_mac)[..]].concat()),
                24,
            ),
            vec!["other", "ipv6", "icmpv6", "icmpv6_na"],
            vec!["nd_events_sent"],
            vec![nd_new(l2, target, other_mac)],
        ),
        one(
            "nd_neighbor_solicitation_slla",
            "ICMPv6 135 with a source link-layer option: the source is at the option's MAC",
            ip6(l2, LINK_LOCAL, 58, &[&ns[..], &nd_opt(1, other_mac)[..]].concat(), 24),
            vec!["other", "ipv6", "icmpv6", "icmpv6_ns"],
            vec!["nd_events_sent"],
            vec![nd_new(l2, LINK_LOCAL, other_mac)],
        ),
        one(
            "nd_redirect",
            "ICMPv6 137",
            ip6(l2, LINK_LOCAL, 58, &icmp6(137, &[0; 36]), 4),
            vec!["other", "ipv6", "icmpv6", "icmpv6_redirect"],
            vec![],
            vec![],
        ),
        one(
            "nd_dad_probe",
            "neighbour solicitation from :: (duplicate address detection): its target and MAC",
            ip6(l2, UNSPECIFIED, 58, &ns, 24),
            vec!["other", "ipv6", "icmpv6", "icmpv6_ns", "icmpv6_dad_ns"],
            vec!["nd_events_sent"],
            vec![nd_ev(l2, event_kind::DAD_PROBE, target, l2.src, None)],
        ),
        one(
            "nd_dad_probe_nonce",
            "a DAD probe with an RFC 7527 nonce option: the nonce comes along",
            ip6(l2, UNSPECIFIED, 58, &[&ns[..], &nd_opt(14, nonce)[..]].concat(), 24),
            vec!["other", "ipv6", "icmpv6", "icmpv6_ns", "icmpv6_dad_ns"],
            vec!["nd_events_sent"],
            vec![nd_ev(l2, event_kind::DAD_PROBE, target, l2.src, Some(nonce))],
        ),
        one(
            "icmpv6_echo",
            "ICMPv6 echo request: ICMPv6, not neighbour discovery",
            ip6(l2, LINK_LOCAL, 58, &icmp6(128, &[0, 1, 0, 1]), 4),
            vec!["other", "ipv6", "icmpv6"],
            vec![],
            vec![],
        ),
        one(
            "nd_behind_hop_by_hop",
            "a neighbour solicitation behind a hop-by-hop header: evasion (RFC 6980), still reported",
            ip6(l2, LINK_LOCAL, 0, &[&[58, 0, 1, 4, 0, 0, 0, 0][..], &ns[..]].concat(), 8 + 24),
            vec!["other", "ipv6", "icmpv6", "icmpv6_ns", "nd_evasion"],
            vec!["nd_events_sent"],
            vec![nd_new(l2, LINK_LOCAL, l2.src)],
        ),
        one(
            "nd_in_first_fragment",
            "a neighbour solicitation in a first fragment: not dissected (tshark neither), evasion",
            // Its ICMPv6 type is peeked, not required: a cut there is a fragment, not malformed.
            ip6(l2, LINK_LOCAL, 44, &[&[58, 0, 0, 1, 0, 0, 0, 7][..], &ns[..]].concat(), 8),
            vec!["other", "ipv6", "nd_evasion"],
            vec![],
            vec![],
        ),
        one(
            "icmpv6_later_fragment",
            "a non-first fragment of ICMPv6: no upper layer to count",
            ip6(l2, LINK_LOCAL, 44, &[&[58, 0, 0, 0x10, 0, 0, 0, 7][..], &ns[..]].concat(), 8),
            vec!["other", "ipv6"],
            vec![],
            vec![],
        ),
        one(
            "ipv6_tcp",
            "IPv6 TCP: IPv6, nothing more",
            ip6(l2, LINK_LOCAL, 6, &[0; 20], 0),
            vec!["other", "ipv6"],
            vec![],
            vec![],
        ),
        one(
            "dhcpv6_relay_forw_solicit",
            "RELAY-FORW holding a SOLICIT (option 9): both types count, as in tshark",
            ip6(
                l2,
                LINK_LOCAL,
                17,
                &udp6(&[&[12u8, 0][..], &[0; 32][..], &[0, 9, 0, 4, 1, 0, 0, 1][..]].concat()),
                9,
            ),
            vec!["other", "ipv6", "dhcpv6", "dhcpv6_relay_forw", "dhcpv6_solicit"],
            vec!["dhcpv6_events_sent"],
            vec![Expect::Dhcpv6 { msg_type: 12 }],
        ),
    ];
    let types: [(u8, &'static str); 13] = [
        (2, "dhcpv6_advertise"),
        (3, "dhcpv6_request"),
        (4, "dhcpv6_confirm"),
        (5, "dhcpv6_renew"),
        (6, "dhcpv6_rebind"),
        (7, "dhcpv6_reply"),
        (8, "dhcpv6_release"),
        (9, "dhcpv6_decline"),
        (10, "dhcpv6_reconfigure"),
        (11, "dhcpv6_information_request"),
        (13, "dhcpv6_relay_repl"),
        (14, "dhcpv6_other"),
        (200, "dhcpv6_other"),
    ];
    for (t, name) in types {
        v.push(one(
            &format!("dhcpv6_type_{t}"),
            "a DHCPv6 message of this type: counted, and sent whole",
            ip6(l2, LINK_LOCAL, 17, &udp6(&[t, 0, 0, 1]), 9),
            vec!["other", "ipv6", "dhcpv6", name],
            vec!["dhcpv6_events_sent"],
            vec![Expect::Dhcpv6 { msg_type: t }],
        ));
    }
    v
}

/// A frame of `ether_type` (or an 802.3 length) with `payload`; `needs` bytes of it decide
/// the class, so a cut before them is malformed.
fn l2_frame(l2: &L2, ether_type: u16, payload: &[u8], needs: usize) -> Built {
    let mut bytes = l2.bytes(ether_type);
    let class_len = bytes.len();
    bytes.extend_from_slice(payload);
    Built {
        bytes,
        class_len,
        full_len: class_len + needs,
    }
}

/// LLDP, LACP and the other slow protocols, STP/RSTP/PVST+ BPDUs and CDP (untagged).
fn switch_fixtures(l2: &L2, one: &MakeFixture) -> Vec<Fixture> {
    let stp_llc = [0x42, 0x42, 0x03];
    let snap = |pid: u16| {
        let p = pid.to_be_bytes();
        [0xaa, 0xaa, 0x03, 0x00, 0x00, 0x0c, p[0], p[1]]
    };
    // A configuration BPDU: protocol 0, version 0, type 0, flags, then 31 bytes.
    let config = |flags: u8| [&[0u8, 0, 0, 0, flags][..], &[0u8; 30][..]].concat();
    let rst = [&[0u8, 0, 2, 2, 0x3c][..], &[0u8; 31][..]].concat();
    let outer = vlans(l2).0;
    let sw = |p: SwitchProto| Expect::Switch {
        proto: p as u8,
        outer,
    };
    vec![
        one(
            "lldp",
            "EtherType 0x88cc: an LLDP frame",
            l2_frame(l2, 0x88cc, &[0x02, 0x07, 0x04, 2, 0, 0, 0, 0, 1, 0, 0], 2),
            vec!["other", "lldp"],
            vec!["switch_events_sent"],
            vec![sw(SwitchProto::Lldp)],
        ),
        one(
            "lacp",
            "slow protocols, subtype 1: an LACPDU",
            l2_frame(l2, 0x8809, &[1, 1, 1, 0x14, 0, 0], 1),
            vec!["other", "lacp"],
            vec!["switch_events_sent"],
            vec![sw(SwitchProto::Lacp)],
        ),
        one(
            "slow_marker",
            "slow protocols, subtype 2 (marker): not LACP",
            l2_frame(l2, 0x8809, &[2, 1, 1, 0x10], 1),
            vec!["other", "slow_other"],
            vec![],
            vec![],
        ),
        one(
            "stp_config_topology_change",
            "802.3 + LLC 0x42: a configuration BPDU with the topology-change flag",
            l2_frame(l2, 38, &[&stp_llc[..], &config(0x01)[..]].concat(), 3 + 5),
            vec!["other", "stp", "stp_topology_change"],
            vec!["switch_events_sent"],
            vec![sw(SwitchProto::Stp)],
        ),
        one(
            "stp_tcn",
            "802.3 + LLC 0x42: a topology change notification BPDU",
            l2_frame(l2, 7, &[&stp_llc[..], &[0, 0, 0, 0x80][..]].concat(), 3 + 4),
            vec!["other", "stp", "stp_tcn"],
            vec!["switch_events_sent"],
            vec![sw(SwitchProto::Stp)],
        ),
        one(
            "pvst_rst_bpdu",
            "802.3 + SNAP, Cisco OUI, protocol 0x010b: a PVST+ RST BPDU, no topology change",
            l2_frame(l2, 44, &[&snap(0x010b)[..], &rst[..]].concat(), 8 + 5),
            vec!["other", "stp"],
            vec!["switch_events_sent"],
            vec![sw(SwitchProto::Pvst)],
        ),
        one(
            "cdp",
            "802.3 + SNAP, Cisco OUI, protocol 0x2000: a CDP frame",
            l2_frame(
                l2,
                16,
                &[&snap(0x2000)[..], &[2, 180, 0, 0, 0, 1, 0, 4][..]].concat(),
                8 + 4,
            ),
            vec!["other", "cdp"],
            vec!["switch_events_sent"],
            vec![sw(SwitchProto::Cdp)],
        ),
        one(
            "llc_other",
            "802.3 + LLC of another SAP (NetBIOS 0xf0): other, nothing more",
            l2_frame(l2, 20, &[0xf0, 0xf0, 0x03, 0, 0, 0, 0, 0], 3),
            vec!["other"],
            vec![],
            vec![],
        ),
    ]
}

fn vlans(l2: &L2) -> (Option<u16>, Option<u16>) {
    let outer = l2.tags.first().map(|t| t.1);
    let inner = if l2.tags.len() >= 2 {
        l2.tags.last().map(|t| t.1)
    } else {
        None
    };
    (outer, inner)
}

fn arp_new(l2: &L2, ip: [u8; 4], mac: [u8; 6]) -> Expect {
    let (outer, inner) = vlans(l2);
    Expect::Arp {
        kind: event_kind::ARP_NEW,
        ip,
        mac,
        outer,
        inner,
    }
}

fn dhcp_ev(l2: &L2, msg_type: u8) -> Expect {
    let (outer, inner) = vlans(l2);
    Expect::Dhcp {
        msg_type,
        outer,
        inner,
    }
}

/// Layer 2 variants exercised for ARP and DHCP: 0 to 3 tags with every TPID.
pub fn l2_variants(src: [u8; 6]) -> Vec<(&'static str, L2)> {
    let b = || L2::new(src, BROADCAST);
    vec![
        ("untagged", b()),
        ("dot1q", b().tag(TPID_8021Q, 100)),
        ("qinq_88a8", b().tag(TPID_8021AD, 200).tag(TPID_8021Q, 2001)),
        ("qinq_9100", b().tag(TPID_QINQ, 300).tag(TPID_8021Q, 30)),
        (
            "three_tags",
            b().tag(TPID_8021Q, 30)
                .tag(TPID_8021Q, 20)
                .tag(TPID_8021Q, 10),
        ),
    ]
}

fn dhcp_name(t: u8) -> &'static str {
    match t {
        1 => "dhcp_discover",
        2 => "dhcp_offer",
        3 => "dhcp_request",
        4 => "dhcp_decline",
        5 => "dhcp_ack",
        6 => "dhcp_nak",
        7 => "dhcp_release",
        8 => "dhcp_inform",
        _ => "dhcp_other_msgtype",
    }
}

/// Every fixture.
pub fn all() -> Vec<Fixture> {
    let mut v = Vec::new();
    for (variant, l2) in l2_variants(MAC_A) {
        let tags = l2.tags.len();
        let f = |name: &str,
                 description: &'static str,
                 frame: Built,
                 counters: Vec<&'static str>,
                 events: Vec<Expect>| Fixture {
            name: format!("{name}/{variant}"),
            description,
            frame,
            tags,
            counters,
            stats: if events.iter().any(|e| matches!(e, Expect::Arp { .. })) {
                vec!["arp_events_sent"]
            } else if events.iter().any(|e| matches!(e, Expect::Nd { .. })) {
                vec!["nd_events_sent"]
            } else if events.is_empty() {
                vec![]
            } else {
                vec!["dhcp_events_sent"]
            },
            events,
        };
        v.push(f(
            "arp_request",
            "who-has IP_B from IP_A: a new IP_A binding",
            arp(&l2, 1, MAC_A, IP_A, ZERO_MAC, IP_B),
            vec!["arp", "arp_request"],
            vec![arp_new(&l2, IP_A, MAC_A)],
        ));
        v.push(f(
            "arp_reply",
            "IP_A is-at MAC_A",
            arp(&l2, 2, MAC_A, IP_A, MAC_B, IP_B),
            vec!["arp", "arp_reply"],
            vec![arp_new(&l2, IP_A, MAC_A)],
        ));
        v.push(f(
            "arp_announcement",
            "RFC 5227 announcement: request, sender IP == target IP, target MAC zero",
            arp(&l2, 1, MAC_A, IP_A, ZERO_MAC, IP_A),
            vec!["arp", "arp_request", "arp_gratuitous", "arp_announcement"],
            vec![arp_new(&l2, IP_A, MAC_A)],
        ));
        v.push(f(
            "arp_gratuitous_reply",
            "gratuitous reply: sender IP == target IP, op 2 (not an announcement)",
            arp(&l2, 2, MAC_A, IP_A, BROADCAST, IP_A),
            vec!["arp", "arp_reply", "arp_gratuitous"],
            vec![arp_new(&l2, IP_A, MAC_A)],
        ));
        v.push(f(
            "arp_probe",
            "RFC 5227 probe for IP_B: sender IP 0.0.0.0, target MAC zero; binding of the probed IP",
            arp(&l2, 1, MAC_A, [0; 4], ZERO_MAC, IP_B),
            vec!["arp", "arp_request"],
            vec![arp_new(&l2, IP_B, MAC_A)],
        ));
        let last = v.last_mut().expect("just pushed");
        last.counters.push("arp_probe");
        v.push(f(
            "dhcp_discover",
            "DHCPDISCOVER from a client, broadcast",
            dhcp(
                &l2,
                &Ip::udp([0; 4], [255; 4]),
                &Bootp::dhcp(1, 0x1000, MAC_A, 1, &[]),
            ),
            vec!["ipv4", "dhcp", "dhcp_discover"],
            vec![dhcp_ev(&l2, 1)],
        ));
        v.push(f(
            "nd_neighbor_solicitation",
            "ICMPv6 135 on every tag stack: tshark's icmpv6_nd_vlan_tagged when tagged",
            ip6(&l2, LINK_LOCAL, 58, &icmp6(135, &[0; 20]), 24),
            vec!["other", "ipv6", "icmpv6", "icmpv6_ns"],
            vec![nd_new(&l2, LINK_LOCAL, MAC_A)],
        ));
    }

    let l2 = L2::new(MAC_A, BROADCAST);
    let one = |name: &str,
               description: &'static str,
               frame: Built,
               counters: Vec<&'static str>,
               stats: Vec<&'static str>,
               events: Vec<Expect>| Fixture {
        name: name.to_string(),
        description,
        frame,
        tags: 0,
        counters,
        stats,
        events,
    };
    v.push(one(
        "arp_sender_zero_not_probe",
        "request with sender IP 0 but a non-zero target MAC: not a probe, no binding",
        arp(&l2, 1, MAC_A, [0; 4], MAC_B, IP_B),
        vec!["arp", "arp_request"],
        vec![],
        vec![],
    ));
    v.push(one(
        "arp_other_opcode",
        "InARP request (opcode 8) still binds the sender",
        arp(&l2, 8, MAC_A, IP_A, ZERO_MAC, IP_B),
        vec!["arp", "arp_other_opcode"],
        vec!["arp_events_sent"],
        vec![arp_new(&l2, IP_A, MAC_A)],
    ));
    let mut non_eth = arp(&l2, 1, MAC_A, IP_A, ZERO_MAC, IP_B);
    non_eth.bytes[14 + 4] = 8; // hlen 8: not Ethernet/IPv4 ARP
    non_eth.full_len = non_eth.class_len + 8;
    v.push(one(
        "arp_not_ethernet_ipv4",
        "ARP with hardware length 8: counted by opcode, no binding",
        non_eth,
        vec!["arp", "arp_request"],
        vec!["arp_not_ethernet_ipv4"],
        vec![],
    ));
    let four = L2::new(MAC_A, BROADCAST)
        .tag(TPID_8021AD, 1)
        .tag(TPID_8021Q, 2)
        .tag(TPID_8021Q, 3)
        .tag(TPID_8021Q, 4);
    v.push(Fixture {
        name: "arp_four_tags".into(),
        description: "four stacked tags: the deepest the program walks, still classified",
        frame: arp(&four, 2, MAC_A, IP_A, MAC_B, IP_B),
        tags: 4,
        counters: vec!["arp", "arp_reply"],
        stats: vec!["arp_events_sent"],
        events: vec![arp_new(&four, IP_A, MAC_A)],
    });
    let five = four.clone().tag(TPID_8021Q, 5);
    let mut deep = arp(&five, 2, MAC_A, IP_A, MAC_B, IP_B);
    deep.class_len = 14 + 4 * 4;
    deep.full_len = deep.class_len;
    v.push(Fixture {
        name: "five_tags".into(),
        description: "five stacked tags: counted by depth, not classified",
        frame: deep,
        tags: 5,
        counters: vec!["other"],
        stats: vec![],
        events: vec![],
    });

    let srv_ip = Ip::udp(IP_SRV, [255; 4]);
    for t in 2..=8u8 {
        let op = if matches!(t, 2 | 5 | 6) { 2 } else { 1 };
        let name = dhcp_name(t);
        v.push(one(
            name,
            "each DHCP message type 1..8 from option 53",
            dhcp(
                &l2,
                &srv_ip,
                &Bootp::dhcp(op, 0x2000 + t as u32, MAC_B, t, &[]),
            ),
            vec!["ipv4", "dhcp", name],
            vec!["dhcp_events_sent"],
            vec![dhcp_ev(&l2, t)],
        ));
    }
    v.push(one(
        "dhcp_leasequery",
        "option 53 = 10 (RFC 4388 LEASEQUERY): other message type",
        dhcp(&l2, &srv_ip, &Bootp::dhcp(1, 0x3000, MAC_B, 10, &[])),
        vec!["ipv4", "dhcp", "dhcp_other_msgtype"],
        vec!["dhcp_events_sent"],
        vec![dhcp_ev(&l2, 10)],
    ));
    let mut bootp = Bootp::dhcp(1, 0x4000, MAC_A, 1, &[]);
    bootp.dhcp = false;
    bootp.options = vec![];
    v.push(one(
        "bootp_plain",
        "plain BOOTP without magic cookie: DHCP with no message type",
        dhcp(&l2, &Ip::udp([0; 4], [255; 4]), &bootp),
        vec!["ipv4", "dhcp", "dhcp_no_msgtype_bootp"],
        vec!["dhcp_events_sent"],
        vec![dhcp_ev(&l2, 0)],
    ));
    let mut late = Bootp::dhcp(1, 0x5000, MAC_A, 3, &[]);
    late.options = vec![0, 0, 12, 4, b'h', b'o', b's', b't', 61, 7, 1];
    late.options.extend_from_slice(&MAC_A);
    late.options.extend_from_slice(&[53, 1, 3, 255]);
    v.push(one(
        "dhcp_option53_late",
        "option 53 after pads, hostname and client id",
        dhcp(&l2, &Ip::udp([0; 4], [255; 4]), &late),
        vec!["ipv4", "dhcp", "dhcp_request"],
        vec!["dhcp_events_sent"],
        vec![dhcp_ev(&l2, 3)],
    ));
    let mut bad = Bootp::dhcp(1, 0x6000, MAC_A, 1, &[]);
    bad.options = vec![12, 250, b'x'];
    v.push(one(
        "dhcp_option_overrun",
        "an option length running past the message: no message type, no crash",
        dhcp(&l2, &Ip::udp([0; 4], [255; 4]), &bad),
        vec!["ipv4", "dhcp", "dhcp_no_msgtype_bootp"],
        vec!["dhcp_events_sent"],
        vec![dhcp_ev(&l2, 0)],
    ));
    let mut with_opts = Ip::udp([0; 4], [255; 4]);
    with_opts.options = vec![0x94, 0x04, 0, 0, 1, 1, 1, 0]; // router alert + NOPs: IHL 7
    v.push(one(
        "dhcp_ipv4_options",
        "DHCPDISCOVER in an IPv4 header with options (IHL 7)",
        dhcp(&l2, &with_opts, &Bootp::dhcp(1, 0x7000, MAC_A, 1, &[])),
        vec!["ipv4", "dhcp", "dhcp_discover"],
        vec!["dhcp_events_sent"],
        vec![dhcp_ev(&l2, 1)],
    ));
    let mut first_frag = Ip::udp([0; 4], [255; 4]);
    first_frag.more_fragments = true;
    v.push(one(
        "dhcp_first_fragment",
        "first fragment (MF set, offset 0) carries the UDP header: DHCP",
        dhcp(&l2, &first_frag, &Bootp::dhcp(1, 0x8000, MAC_A, 1, &[])),
        vec!["ipv4", "dhcp", "dhcp_discover"],
        vec!["dhcp_events_sent"],
        vec![dhcp_ev(&l2, 1)],
    ));
    let mut later_frag = Ip::udp([0; 4], [255; 4]);
    later_frag.frag_offset = 185;
    let mut lf = dhcp(&l2, &later_frag, &Bootp::dhcp(1, 0x9000, MAC_A, 1, &[]));
    lf.class_len = 14;
    lf.full_len = 14 + 20;
    v.push(one(
        "udp_non_first_fragment",
        "non-first fragment whose payload happens to look like UDP/67: not DHCP",
        lf,
        vec!["ipv4", "other"],
        vec![],
        vec![],
    ));
    let dns = udp(&l2, &Ip::udp(IP_A, IP_B), 40000, 53, &[0u8; 40], 0);
    v.push(one(
        "udp_dns",
        "UDP to port 53: IPv4, other",
        dns,
        vec!["ipv4", "other"],
        vec![],
        vec![],
    ));
    v.push(one(
        "dhcp_server_port_source_only",
        "UDP 67 -> 40000: port 67 on one side is enough (tshark's rule)",
        udp(
            &l2,
            &Ip::udp(IP_SRV, IP_A),
            67,
            40000,
            &Bootp::dhcp(2, 0xa000, MAC_A, 5, &[]).bytes(),
            236,
        ),
        vec!["ipv4", "dhcp", "dhcp_ack"],
        vec!["dhcp_events_sent"],
        vec![dhcp_ev(&l2, 5)],
    ));
    let mut tcp_ip = Ip::udp(IP_A, IP_B);
    tcp_ip.proto = 6;
    let mut tcp = vec![0u8; 20];
    tcp[2..4].copy_from_slice(&67u16.to_be_bytes());
    tcp[12] = 5 << 4;
    v.push(one(
        "tcp_port_67",
        "TCP to port 67: not DHCP",
        ipv4_other(&l2, &tcp_ip, &tcp),
        vec!["ipv4", "other"],
        vec![],
        vec![],
    ));
    let mut dhcpv6 = vec![0u8; 8 + 4];
    dhcpv6[0..2].copy_from_slice(&546u16.to_be_bytes());
    dhcpv6[2..4].copy_from_slice(&547u16.to_be_bytes());
    dhcpv6[4..6].copy_from_slice(&12u16.to_be_bytes());
    dhcpv6[8] = 1; // SOLICIT
    v.push(one(
        "dhcpv6_solicit",
        "DHCPv6 SOLICIT (UDP 546 -> 547 over IPv6): not DHCPv4",
        {
            let mut b = ipv6(&l2, 17, &dhcpv6);
            b.full_len = b.class_len + 40 + 9;
            b
        },
        vec!["other", "ipv6", "dhcpv6", "dhcpv6_solicit"],
        vec!["dhcpv6_events_sent"],
        vec![Expect::Dhcpv6 { msg_type: 1 }],
    ));
    let mut ns = vec![135u8, 0, 0, 0, 0, 0, 0, 0];
    ns.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    v.push(one(
        "ipv6_neighbor_solicitation",
        "IPv6 neighbour solicitation (ICMPv6 135): the IPv6 analogue of ARP, not ARP",
        {
            let mut b = ipv6(&l2, 58, &ns);
            b.full_len = b.class_len + 40 + 24;
            b
        },
        vec!["other", "ipv6", "icmpv6", "icmpv6_ns"],
        vec!["nd_events_sent"],
        vec![nd_new(&l2, LINK_LOCAL, MAC_A)],
    ));
    let mut bad_ihl = ipv4_other(&l2, &tcp_ip, &tcp);
    bad_ihl.bytes[14] = 0x43;
    v.push(one(
        "ipv4_ihl_too_small",
        "IPv4 with IHL 3 (< 5): malformed",
        bad_ihl,
        vec!["ipv4", "other", "malformed"],
        vec![],
        vec![],
    ));
    v.extend(ipv6_fixtures(&l2, &one));
    v.extend(switch_fixtures(&l2, &one));
    v
}
