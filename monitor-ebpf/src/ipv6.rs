//! IPv6: the header, then a bounded walk of the extension headers (hop-by-hop, routing,
//! destination options, fragment), then neighbour discovery (`nd`) or DHCPv6 (`dhcpv6`).
//! Counted the way tshark counts: a fragment's upper layer is not dissected. Neighbour
//! discovery behind extension headers or in a fragment, which RFC 6980 forbids, is also
//! counted as evasion.
use aya_ebpf::programs::XdpContext;
use monitor_common::{
    proto::{
        DHCPV6_CLIENT, DHCPV6_SERVER, IPPROTO_ICMPV6, IPPROTO_UDP, IPV6_DEST_OPTS, IPV6_FRAGMENT,
        IPV6_HOP_BY_HOP, IPV6_ROUTING,
    },
    Counter, IPV6_MAX_EXT_HEADERS,
};
use network_types::{ip::Ipv6Hdr, udp::UdpHdr};

use crate::{
    cursor::{Cursor, Header, Short},
    dhcpv6,
    ip6_events::Message,
    nd,
    segment::{Counts, Segment},
};

/// The link an IPv6 packet arrived on directly. Absent for IPv6 inside a tunnel, whose
/// neighbours are not on this link (counted, not reported).
pub struct Link<'a> {
    pub seg: &'a Segment,
    /// Offset of the IPv6 header.
    pub ip_off: u32,
    /// Set when an `ip6_events` job was queued: the entry point then tail-calls it.
    pub queued: core::cell::Cell<bool>,
}

/// The first two bytes of every extension header but the fragment header.
#[repr(C)]
struct ExtHdr {
    next: u8,
    len8: u8,
}

// SAFETY: repr(C) bytes, alignment 1.
unsafe impl Header for ExtHdr {}

/// The fragment header.
#[repr(C)]
struct FragHdr {
    next: u8,
    _reserved: u8,
    /// Offset (13 bits, in 8-byte units), 2 reserved bits, M (more fragments).
    offset_m: [u8; 2],
    _id: [u8; 4],
}

// SAFETY: repr(C) bytes, alignment 1.
unsafe impl Header for FragHdr {}

/// ICMPv6 type 133..=137 is neighbour discovery.
const ND_TYPES: core::ops::RangeInclusive<u8> = 133..=137;

/// Classifies an IPv6 packet at the cursor (after the Ethernet and VLAN headers, or inside a
/// tunnel).
#[inline(always)]
pub fn classify(
    ctx: &XdpContext,
    cur: &mut Cursor,
    counts: &mut Counts,
    link: Option<&Link>,
) -> Result<(), Short> {
    counts.add(Counter::Ipv6);
    let ip = cur.take::<Ipv6Hdr>()?;
    // Where the IPv6 payload ends: Ethernet padding past it is not part of any message.
    let payload_end = cur.offset() + u16::from_be_bytes(ip.payload_len) as u32;
    let mut next = ip.next_hdr;
    let mut behind_ext = false;
    for _ in 0..IPV6_MAX_EXT_HEADERS {
        match next {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => {
                let h = cur.take::<ExtHdr>()?;
                next = h.next;
                // (len8 + 1) * 8 bytes in all, two of them already taken.
                cur.skip::<0x7ff>((h.len8 as usize + 1) * 8 - 2)?;
                behind_ext = true;
            }
            IPV6_FRAGMENT => {
                let f = cur.take::<FragHdr>()?;
                // A fragment's upper layer is not dissected (tshark does not either, unless
                // it can reassemble). ND in the first fragment is still evasion.
                let offset = u16::from_be_bytes(f.offset_m) >> 3;
                if offset == 0 && f.next == IPPROTO_ICMPV6 {
                    if let Ok(t) = cur.take::<[u8; 1]>() {
                        if ND_TYPES.contains(&t[0]) {
                            counts.add(Counter::NdEvasion);
                        }
                    }
                }
                return Ok(());
            }
            _ => break,
        }
    }
    match next {
        IPPROTO_ICMPV6 => {
            let msg = message(cur, payload_end);
            nd::classify(cur, ip, counts, behind_ext, link, msg)
        }
        IPPROTO_UDP => {
            let udp = cur.take::<UdpHdr>()?;
            let sport = u16::from_be_bytes(udp.src);
            let dport = u16::from_be_bytes(udp.dst);
            if is_dhcpv6_port(sport) || is_dhcpv6_port(dport) {
                let msg = message(cur, payload_end);
                dhcpv6::classify(ctx, cur, counts, link, msg, (sport, dport))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// The message at the cursor, up to the end of the IPv6 payload (or of the frame, when the
/// payload length claims more than is there).
#[inline(always)]
fn message(cur: &Cursor, payload_end: u32) -> Message {
    let start = cur.offset();
    let in_frame = cur.remaining() as u32;
    let claimed = payload_end.saturating_sub(start);
    Message {
        start,
        len: if claimed < in_frame {
            claimed
        } else {
            in_frame
        },
    }
}

#[inline(always)]
fn is_dhcpv6_port(p: u16) -> bool {
    p == DHCPV6_CLIENT || p == DHCPV6_SERVER
}
