//! ICMPv6, counted by neighbour discovery type: router solicitation and advertisement
//! (with router lifetime 0 apart), neighbour solicitation (from `::`: a DAD probe) and
//! advertisement, redirect.
use monitor_common::{
    proto::{ND_NA, ND_NS, ND_RA, ND_REDIRECT, ND_RS},
    Counter,
};
use network_types::ip::Ipv6Hdr;

use crate::{
    cursor::{Cursor, Header, Short},
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

#[inline(always)]
pub fn classify(
    cur: &mut Cursor,
    ip: &Ipv6Hdr,
    counts: &mut Counts,
    behind_ext: bool,
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
    if h.kind == ND_RA {
        let ra = cur.take::<RaFixed>()?;
        if ra.lifetime == [0, 0] {
            counts.add(Counter::Icmpv6RaLifetimeZero);
        }
    }
    Ok(())
}
