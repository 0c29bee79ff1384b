//! Turns the kernel's per-segment counters into totals keyed like `ground_truth.json`, so a
//! replay can be compared with tshark key by key.
use std::collections::BTreeMap;

use monitor_common::{Counter, SegmentCounters, Stat, NO_VLAN};

use crate::capture::Snapshot;

/// The keys `l2watch replay --json` reports, with tshark's meaning (see the corpus README).
pub const TSHARK_KEYS: &[&str] = &[
    "frames",
    "arp",
    "arp_request",
    "arp_reply",
    "arp_other_opcode",
    "arp_gratuitous",
    "arp_probe",
    "arp_announcement",
    "arp_vlan_tagged",
    "dhcp",
    "dhcp_discover",
    "dhcp_offer",
    "dhcp_request",
    "dhcp_decline",
    "dhcp_ack",
    "dhcp_nak",
    "dhcp_release",
    "dhcp_inform",
    "dhcp_other_msgtype",
    "dhcp_no_msgtype_bootp",
    "dhcp_vlan_tagged",
    "vlan_tagged",
    "vlan_two_or_more_tags",
    "ipv6",
    "icmpv6",
    "icmpv6_rs",
    "icmpv6_ra",
    "icmpv6_ns",
    "icmpv6_na",
    "icmpv6_redirect",
    "icmpv6_dad_ns",
    "icmpv6_ra_lifetime_zero",
    "icmpv6_nd_vlan_tagged",
    "dhcpv6",
    "dhcpv6_solicit",
    "dhcpv6_advertise",
    "dhcpv6_request",
    "dhcpv6_confirm",
    "dhcpv6_renew",
    "dhcpv6_rebind",
    "dhcpv6_reply",
    "dhcpv6_release",
    "dhcpv6_decline",
    "dhcpv6_information_request",
    "dhcpv6_relay_forw",
    "dhcpv6_relay_repl",
    "lldp",
    "cdp",
    "stp",
    "stp_topology_change",
    "stp_tcn",
    "lacp",
];

/// Totals over all segments (and the overflow slots), keyed by tshark-compatible names, plus
/// every raw counter under its own name.
pub fn totals(snap: &Snapshot) -> BTreeMap<&'static str, u64> {
    let mut all = SegmentCounters::ZERO;
    let mut tagged = SegmentCounters::ZERO;
    for (key, c) in &snap.segments {
        all.add(c);
        if key.outer_vid != NO_VLAN {
            tagged.add(c);
        }
    }
    for (depth, c) in snap.overflow.iter().enumerate() {
        all.add(c);
        if depth > 0 {
            tagged.add(c);
        }
    }
    let mut out: BTreeMap<&'static str, u64> = Counter::ALL
        .iter()
        .map(|c| (c.name(), all.get(*c)))
        .collect();
    out.insert("arp_vlan_tagged", tagged.get(Counter::Arp));
    out.insert("dhcp_vlan_tagged", tagged.get(Counter::Dhcp));
    out.insert("vlan_tagged", tagged.get(Counter::Frames));
    out.insert(
        "icmpv6_nd_vlan_tagged",
        [
            Counter::Icmpv6Rs,
            Counter::Icmpv6Ra,
            Counter::Icmpv6Ns,
            Counter::Icmpv6Na,
            Counter::Icmpv6Redirect,
        ]
        .iter()
        .map(|c| tagged.get(*c))
        .sum(),
    );
    out.insert(
        "vlan_two_or_more_tags",
        all.get(Counter::Depth2) + all.get(Counter::Depth3) + all.get(Counter::DepthMore),
    );
    out
}

/// Self-monitoring counters by name.
pub fn stats(snap: &Snapshot) -> BTreeMap<&'static str, u64> {
    Stat::ALL
        .iter()
        .map(|s| (s.name(), snap.stats.get(s.index()).copied().unwrap_or(0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_common::SegmentKey;

    #[test]
    fn tagged_totals_include_overflow_by_depth() {
        let mut snap = Snapshot::default();
        let mut c = SegmentCounters::ZERO;
        c.counts[Counter::Frames.index()] = 3;
        c.counts[Counter::Arp.index()] = 2;
        c.counts[Counter::Depth2.index()] = 3;
        snap.segments.insert(
            SegmentKey {
                ifindex: 1,
                outer_vid: 10,
                inner_vid: 20,
            },
            c,
        );
        let mut u = SegmentCounters::ZERO;
        u.counts[Counter::Frames.index()] = 5;
        u.counts[Counter::Depth0.index()] = 5;
        snap.segments.insert(
            SegmentKey {
                ifindex: 1,
                outer_vid: NO_VLAN,
                inner_vid: NO_VLAN,
            },
            u,
        );
        let mut o = SegmentCounters::ZERO;
        o.counts[Counter::Frames.index()] = 7;
        o.counts[Counter::Arp.index()] = 7;
        o.counts[Counter::Depth1.index()] = 7;
        snap.overflow = vec![SegmentCounters::ZERO, o];
        snap.stats = vec![0; Stat::COUNT];
        let t = totals(&snap);
        assert_eq!(t["frames"], 15);
        assert_eq!(t["vlan_tagged"], 10);
        assert_eq!(t["arp_vlan_tagged"], 9);
        assert_eq!(t["vlan_two_or_more_tags"], 3);
        for k in TSHARK_KEYS {
            assert!(t.contains_key(k), "missing key {k}");
        }
    }
}
