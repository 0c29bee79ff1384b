//! DHCPv4: counts by message type (option 53, found by a bounded walk of the options), and
//! sends each message to the agent with its BOOTP bytes. A storm's DISCOVERs may be dropped
//! by the token bucket (counted); leases, servers and conflicts (the stateful types) are
//! parked in `PENDING_DHCP` instead.
use aya_ebpf::{helpers::generated::bpf_xdp_load_bytes, programs::XdpContext};
use monitor_common::{
    config_flags, dhcp_type_is_stateful,
    proto::{DHCP_MAGIC, DHCP_OPT_END, DHCP_OPT_MSG_TYPE, DHCP_OPT_PAD},
    Bucket, Counter, DhcpEvent, EventKind, PendingDhcpKey, Stat, BOOTP_FIXED_LEN,
    DHCP_MAX_OPTIONS_SCANNED, DHCP_PAYLOAD_MAX,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use crate::{
    cursor::{Cursor, Short},
    maps::{bump_stat, config, per_cpu, DHCP_SCRATCH, EVENTS, PENDING_DHCP},
    rate::take_token,
    segment::{Counts, Segment},
};

/// The headers in front of the BOOTP message.
pub struct Frame<'a> {
    pub eth: &'a EthHdr,
    pub ip: &'a Ipv4Hdr,
    pub sport: u16,
    pub dport: u16,
}

#[inline(always)]
pub fn classify(
    ctx: &XdpContext,
    cur: &Cursor,
    seg: &Segment,
    f: &Frame,
    counts: &mut Counts,
) -> Result<(), Short> {
    // Malformed rule for DHCP: the 236-byte fixed BOOTP header must be present. Without it the
    // frame is DHCP (tshark agrees), malformed, has no message type and raises no event.
    let bootp_len = cur.remaining();
    if bootp_len < BOOTP_FIXED_LEN {
        counts.add(Counter::DhcpNoMsgtype);
        return Err(Short);
    }
    let offset = cur.offset();
    let msg_type = find_msg_type(ctx, offset, bootp_len as u32);
    if msg_type == 0 {
        counts.add(Counter::DhcpNoMsgtype);
    } else {
        counts.add(Counter::for_dhcp_type(msg_type));
    }

    let Some(cfg) = config() else { return Ok(()) };
    if cfg.flags & config_flags::DHCP_EVENTS == 0 {
        return Ok(());
    }
    let now = seg.now();
    // A storm's DISCOVERs may be dropped (counted); leases, servers and conflicts may not.
    let stateful = dhcp_type_is_stateful(msg_type);
    let allowed = take_token(Bucket::Dhcp, cfg, now);
    if !allowed {
        bump_stat(Stat::DhcpRateLimited);
        if !stateful {
            return Ok(());
        }
    }
    let Some(ev) = per_cpu(&DHCP_SCRATCH) else {
        return Ok(());
    };
    let copy_len = if bootp_len > DHCP_PAYLOAD_MAX {
        DHCP_PAYLOAD_MAX
    } else {
        bootp_len
    };
    // The verifier needs the length provably in 1..=DHCP_PAYLOAD_MAX.
    let len = (copy_len as u32) & (2 * DHCP_PAYLOAD_MAX as u32 - 1);
    // SAFETY: the destination is the scratch payload of DHCP_PAYLOAD_MAX bytes and `len` is
    // at most that; the helper bounds-checks the packet side itself.
    if len == 0
        || len > DHCP_PAYLOAD_MAX as u32
        || unsafe { bpf_xdp_load_bytes(ctx.ctx, offset, ev.payload.as_mut_ptr() as *mut _, len) }
            != 0
    {
        bump_stat(Stat::DhcpCopyFailed);
        return Ok(());
    }
    ev.header = seg.header(EventKind::Dhcp, now);
    ev.eth_src = f.eth.src_addr;
    ev.eth_dst = f.eth.dst_addr;
    ev.src_ip = f.ip.src_addr;
    ev.dst_ip = f.ip.dst_addr;
    ev.src_port = f.sport;
    ev.dst_port = f.dport;
    ev.msg_type = msg_type;
    ev._pad = 0;
    ev.bootp_len = bootp_len as u16;
    ev.payload_len = copy_len as u16;
    ev._pad2 = [0; 10];
    if allowed {
        if EVENTS.output::<DhcpEvent>(&*ev, 0).is_ok() {
            bump_stat(Stat::DhcpEventsSent);
            return Ok(());
        }
        bump_stat(Stat::DhcpRingbufFull);
        if !stateful {
            return Ok(());
        }
    }
    // BOOTP: xid at 4..8, chaddr at 28..34 (the fixed header was copied whole).
    let p = &ev.payload;
    let key = PendingDhcpKey {
        ifindex: seg.key.ifindex,
        outer_vid: seg.key.outer_vid,
        inner_vid: seg.key.inner_vid,
        xid: [p[4], p[5], p[6], p[7]],
        chaddr: [p[28], p[29], p[30], p[31], p[32], p[33]],
        msg_type,
        _pad: 0,
    };
    // The map value itself, by reference: a 1 KiB copy would not fit the 512-byte BPF stack.
    #[allow(clippy::needless_borrows_for_generic_args)]
    let parked = PENDING_DHCP.insert(key, &*ev, 0);
    if parked.is_ok() {
        bump_stat(Stat::DhcpDeferred);
    } else {
        bump_stat(Stat::DhcpPendingFull);
    }
    Ok(())
}

/// Finds option 53 in the options after the magic cookie; 0 when absent. Options are read
/// with bpf_xdp_load_bytes so the walking offset is a plain helper argument: the verifier
/// does not track its range, and the bounded loop verifies in a handful of states.
#[inline(always)]
fn find_msg_type(ctx: &XdpContext, bootp_off: u32, bootp_len: u32) -> u8 {
    let options = (BOOTP_FIXED_LEN + DHCP_MAGIC.len()) as u32;
    let mut cookie = [0u8; 4];
    // SAFETY (here and below): the destinations are local arrays of the lengths passed.
    if bootp_len < options
        || unsafe {
            bpf_xdp_load_bytes(
                ctx.ctx,
                bootp_off + BOOTP_FIXED_LEN as u32,
                cookie.as_mut_ptr() as *mut _,
                4,
            )
        } != 0
        || cookie != DHCP_MAGIC
    {
        return 0;
    }
    let mut i = options;
    for _ in 0..DHCP_MAX_OPTIONS_SCANNED {
        // Option 53 needs code, length and value: fewer than 3 bytes left cannot hold it.
        if i + 3 > bootp_len {
            return 0;
        }
        let mut opt = [0u8; 3];
        if unsafe { bpf_xdp_load_bytes(ctx.ctx, bootp_off + i, opt.as_mut_ptr() as *mut _, 3) } != 0
        {
            return 0;
        }
        match opt[0] {
            DHCP_OPT_PAD => i += 1,
            DHCP_OPT_END => return 0,
            DHCP_OPT_MSG_TYPE => return if opt[1] >= 1 { opt[2] } else { 0 },
            _ => i += 2 + opt[1] as u32,
        }
    }
    0
}
