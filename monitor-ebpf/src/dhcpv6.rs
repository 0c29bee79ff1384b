//! DHCPv6 (UDP 546/547): counted by message type. A relay message (RELAY-FORW, RELAY-REPL)
//! also counts the type of the message it relays, as tshark does, found by a bounded walk of
//! its options with `bpf_xdp_load_bytes` (the offsets need no verifier range tracking).
//! On the link itself every message is queued for `ip6_events`, which sends it whole.
use aya_ebpf::{helpers::generated::bpf_xdp_load_bytes, programs::XdpContext};
use monitor_common::{
    config_flags,
    proto::{DHCPV6_OPT_RELAY_MSG, DHCPV6_RELAY_FORW, DHCPV6_RELAY_REPL},
    Counter, DHCPV6_MAX_RELAY_OPTIONS,
};

use crate::{
    cursor::{Cursor, Short},
    ip6_events::{self, Job, Message},
    ipv6::Link,
    maps::config,
    segment::Counts,
};

/// msg-type, hop-count, link-address and peer-address of a relay message.
const RELAY_HEADER: u32 = 34;

#[inline(always)]
pub fn classify(
    ctx: &XdpContext,
    cur: &mut Cursor,
    counts: &mut Counts,
    link: Option<&Link>,
    msg: Message,
    (sport, dport): (u16, u16),
) -> Result<(), Short> {
    counts.add(Counter::Dhcpv6);
    let start = cur.offset();
    let len = cur.remaining() as u32;
    let msg_type = cur.take::<[u8; 1]>()?[0];
    counts.add(Counter::for_dhcpv6_type(msg_type));
    if let Some(link) = link {
        match config() {
            Some(cfg) if cfg.flags & config_flags::DHCPV6_EVENTS != 0 => {
                ip6_events::queue(link, Job::Dhcpv6, msg_type, msg, sport, dport);
            }
            _ => {}
        }
    }
    if msg_type != DHCPV6_RELAY_FORW && msg_type != DHCPV6_RELAY_REPL {
        return Ok(());
    }
    // Options of the relay message; a relayed relay message is walked in turn.
    let mut i = RELAY_HEADER;
    for _ in 0..DHCPV6_MAX_RELAY_OPTIONS {
        if i + 5 > len {
            return Ok(());
        }
        let mut opt = [0u8; 5];
        // SAFETY: the destination is a local array of the 5 bytes asked for; the helper
        // bounds-checks the packet side.
        if unsafe { bpf_xdp_load_bytes(ctx.ctx, start + i, opt.as_mut_ptr() as *mut _, 5) } != 0 {
            return Ok(());
        }
        let code = u16::from_be_bytes([opt[0], opt[1]]);
        let olen = u16::from_be_bytes([opt[2], opt[3]]) as u32;
        if code == DHCPV6_OPT_RELAY_MSG {
            let inner = opt[4];
            counts.add(Counter::for_dhcpv6_type(inner));
            if inner != DHCPV6_RELAY_FORW && inner != DHCPV6_RELAY_REPL {
                return Ok(());
            }
            i += 4 + RELAY_HEADER;
            continue;
        }
        i += 4 + olen;
    }
    Ok(())
}
