//! IPv4 as far as DHCP needs it: the header (with its variable IHL), then UDP on the DHCP
//! ports. A non-first fragment carries no UDP header and is left alone.
use aya_ebpf::programs::XdpContext;
use monitor_common::{
    proto::{BOOTPC, BOOTPS, IPPROTO_UDP, TEREDO_PORT},
    Counter,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr, udp::UdpHdr};

use crate::{
    cursor::{Cursor, Short},
    dhcp, ipv6,
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
    cur.skip::<0x3f>(ihl - Ipv4Hdr::LEN)?;
    let udp = cur.take::<UdpHdr>()?;
    let sport = u16::from_be_bytes(udp.src);
    let dport = u16::from_be_bytes(udp.dst);
    if sport == TEREDO_PORT || dport == TEREDO_PORT {
        return teredo(ctx, cur, counts);
    }
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

/// Teredo (RFC 4380): IPv6 in UDP, after an optional authentication header (0x0001) and an
/// optional origin indication (0x0000). tshark counts the inner packet as IPv6, and so do we;
/// a UDP 3544 payload that is not IPv6 is left alone.
#[inline(always)]
fn teredo(ctx: &XdpContext, cur: &mut Cursor, counts: &mut Counts) -> Result<(), Short> {
    let m = cur.mark();
    let Ok(h) = cur.take::<[u8; 4]>() else {
        return Ok(());
    };
    if h[0] == 0 && h[1] == 1 {
        // Client identifier, authentication value, nonce (8) and confirmation (1).
        if cur.skip::<0xff>(h[2] as usize).is_err()
            || cur.skip::<0xff>(h[3] as usize).is_err()
            || cur.skip::<0xff>(9).is_err()
        {
            return Ok(());
        }
    } else {
        cur.reset(m);
    }
    let m = cur.mark();
    match cur.take::<[u8; 8]>() {
        Ok(o) if o[0] == 0 && o[1] == 0 => {}
        _ => cur.reset(m),
    }
    let m = cur.mark();
    let Ok(v) = cur.take::<[u8; 1]>() else {
        return Ok(());
    };
    if v[0] >> 4 != 6 {
        return Ok(());
    }
    cur.reset(m);
    ipv6::classify(ctx, cur, counts, None)
}

#[inline(always)]
fn is_dhcp_port(p: u16) -> bool {
    p == BOOTPS || p == BOOTPC
}
