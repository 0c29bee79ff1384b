//! IPv4 as far as DHCP needs it: the header (with its variable IHL), then UDP on the DHCP
//! ports. A non-first fragment carries no UDP header and is left alone.
use aya_ebpf::programs::XdpContext;
use monitor_common::{
    proto::{BOOTPC, BOOTPS, IPPROTO_UDP},
    Counter,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr, udp::UdpHdr};

use crate::{
    cursor::{Cursor, Short},
    dhcp,
    segment::{Counts, Segment},
};

/// Classifies an IPv4 frame; sets `*dhcp_seen` when it is DHCP (so it is not "other").
#[inline(always)]
pub fn classify(
    ctx: &XdpContext,
    cur: &mut Cursor,
    seg: &Segment,
    eth: &EthHdr,
    counts: &mut Counts,
    dhcp_seen: &mut bool,
) -> Result<(), Short> {
    let ip = cur.take::<Ipv4Hdr>()?;
    let ihl = ((ip.vihl & 0x0f) as usize) * 4;
    if ihl < Ipv4Hdr::LEN {
        return Err(Short);
    }
    if u16::from_be_bytes(ip.frags) & 0x1fff != 0 || ip.proto != IPPROTO_UDP {
        return Ok(());
    }
    cur.skip_small(ihl - Ipv4Hdr::LEN)?;
    let udp = cur.take::<UdpHdr>()?;
    let sport = u16::from_be_bytes(udp.src);
    let dport = u16::from_be_bytes(udp.dst);
    if !is_dhcp_port(sport) && !is_dhcp_port(dport) {
        return Ok(());
    }
    counts.add(Counter::Dhcp);
    *dhcp_seen = true;
    let frame = dhcp::Frame {
        eth,
        ip,
        sport,
        dport,
    };
    dhcp::classify(ctx, cur, seg, &frame, counts)
}

#[inline(always)]
fn is_dhcp_port(p: u16) -> bool {
    p == BOOTPS || p == BOOTPC
}
