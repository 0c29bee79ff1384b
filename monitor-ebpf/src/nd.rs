//! ICMPv6, counted by neighbour discovery type: router solicitation and advertisement
//! (with router lifetime 0 apart), neighbour solicitation (from `::`: a DAD probe) and
//! advertisement, redirect. On the link itself (not in a tunnel), an NS, NA or RA with hop
//! limit 255 (RFC 4861: anything else was routed, and every host ignores it) is queued for
//! `ip6_events`, which reports bindings, DAD probes and changed advertisements.
use monitor_common::{
    config_flags,
    proto::{ND_NA, ND_NS, ND_RA, ND_REDIRECT, ND_RS},
    Counter,
};
use network_types::ip::Ipv6Hdr;

use crate::{
    cursor::{Cursor, Header, Short},
    ip6_events::{self, Job, Message},
    ipv6::Link,
    maps::config,
    segment::Counts,
};

/// Type, code and checksum.
#[repr(C)]
struct Icmp6Hdr {
    kind: u8,
    _code: u8,
    _checksum: [u8; 2],
}

// SAFETY: repr(C) bytes, alignment 1.
unsafe impl Header for Icmp6Hdr {}

/// The fixed part of a Router Advertisement after the ICMPv6 header.
#[repr(C)]
struct RaFixed {
    _hop_limit: u8,
    _flags: u8,
    lifetime: [u8; 2],
    _reachable: [u8; 4],
    _retrans: [u8; 4],
}

// SAFETY: repr(C) bytes, alignment 1.
unsafe impl Header for RaFixed {}

/// The fixed part of a neighbour solicitation or advertisement after the ICMPv6 header:
/// reserved or R/S/O flags, and the target address (read again by `ip6_events`).
#[repr(C)]
struct NsNaFixed {
    _flags: [u8; 4],
    _target: [u8; 16],
}

// SAFETY: repr(C) bytes, alignment 1.
unsafe impl Header for NsNaFixed {}

/// The only hop limit neighbour discovery may arrive with.
const ND_HOP_LIMIT: u8 = 255;

#[inline(always)]
pub fn classify(
    cur: &mut Cursor,
    ip: &Ipv6Hdr,
    counts: &mut Counts,
    behind_ext: bool,
    link: Option<&Link>,
    msg: Message,
) -> Result<(), Short> {
    counts.add(Counter::Icmpv6);
    let h = cur.take::<Icmp6Hdr>()?;
    match h.kind {
        ND_RS => counts.add(Counter::Icmpv6Rs),
        ND_RA => counts.add(Counter::Icmpv6Ra),
        ND_NS => {
            counts.add(Counter::Icmpv6Ns);
            if ip.src_addr == [0u8; 16] {
                counts.add(Counter::Icmpv6DadNs);
            }
        }
        ND_NA => counts.add(Counter::Icmpv6Na),
        ND_REDIRECT => counts.add(Counter::Icmpv6Redirect),
        _ => return Ok(()),
    }
    if behind_ext {
        counts.add(Counter::NdEvasion);
    }
    match h.kind {
        ND_RA => {
            let ra = cur.take::<RaFixed>()?;
            if ra.lifetime == [0, 0] {
                counts.add(Counter::Icmpv6RaLifetimeZero);
            }
        }
        // The target is what an NS or NA is about: without it the message is cut short.
        ND_NS | ND_NA => {
            cur.take::<NsNaFixed>()?;
        }
        _ => {}
    }
    let Some(link) = link else { return Ok(()) };
    if ip.hop_limit != ND_HOP_LIMIT || !matches!(h.kind, ND_NS | ND_NA | ND_RA) {
        return Ok(());
    }
    match config() {
        Some(cfg) if cfg.flags & config_flags::ND_EVENTS != 0 => {
            ip6_events::queue(link, Job::Nd, h.kind, msg, 0, 0);
        }
        _ => {}
    }
    Ok(())
}
