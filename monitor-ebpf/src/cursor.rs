//! The parsing cursor: the one place that turns packet bytes into header references. Every
//! read is bounds-checked against `data_end` first (in the form the verifier recognises), and
//! the references it hands out live no longer than the packet (xdp-tutorial's
//! `parse_*hdr(&cursor, data_end)`, aya's `ptr_at`). Callers never write `unsafe` to read a
//! header.
use core::{marker::PhantomData, mem::size_of};

use aya_ebpf::programs::XdpContext;

/// The frame ends before a header its own type fields promise: the one malformed-frame
/// outcome, counted once by the classifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Short;

/// A header type the cursor may hand out a reference to.
///
/// # Safety
/// The type must be `repr(C)` plain data, valid for every bit pattern, with an alignment
/// of at most 2: packet data is 2-byte aligned at the Ethernet header (XDP headroom is a
/// multiple of 4 and `NET_IP_ALIGN` is 2 or 0), and BPF loads have no alignment faults.
pub unsafe trait Header {}

// SAFETY: repr(C) byte arrays and u16 fields from network-types; alignment at most 2.
unsafe impl Header for network_types::eth::EthHdr {}
// SAFETY: as above.
unsafe impl Header for network_types::vlan::VlanHdr {}
// SAFETY: as above.
unsafe impl Header for network_types::arp::ArpHdr {}
// SAFETY: as above (the IPv4 addresses are byte arrays).
unsafe impl Header for network_types::ip::Ipv4Hdr {}
// SAFETY: as above.
unsafe impl Header for network_types::udp::UdpHdr {}
// SAFETY: as above (addresses are byte arrays).
unsafe impl Header for network_types::ip::Ipv6Hdr {}
// SAFETY: bytes, alignment 1.
unsafe impl<const N: usize> Header for [u8; N] {}

/// A saved cursor position.
#[derive(Clone, Copy)]
pub struct Mark(usize);

/// A position in one packet.
pub struct Cursor<'p> {
    start: usize,
    pos: usize,
    end: usize,
    _packet: PhantomData<&'p XdpContext>,
}

impl<'p> Cursor<'p> {
    #[inline(always)]
    pub fn new(ctx: &'p XdpContext) -> Self {
        Cursor {
            start: ctx.data(),
            pos: ctx.data(),
            end: ctx.data_end(),
            _packet: PhantomData,
        }
    }

    /// The header at the cursor, which moves past it.
    #[inline(always)]
    pub fn take<T: Header>(&mut self) -> Result<&'p T, Short> {
        let at = self.pos;
        if at + size_of::<T>() > self.end {
            return Err(Short);
        }
        self.pos = at + size_of::<T>();
        // SAFETY: the check above keeps [at, at + size_of::<T>()) inside the packet, which
        // outlives 'p; `T: Header` makes any bytes a valid, suitably aligned T.
        Ok(unsafe { &*(at as *const T) })
    }

    /// Skips `n` bytes if they are there. `MASK` (one less than a power of two) bounds `n`
    /// for the verifier: 0x3f for IPv4 options, 0xff for a length byte, 0x7ff for an IPv6
    /// extension header.
    #[inline(always)]
    pub fn skip<const MASK: usize>(&mut self, n: usize) -> Result<(), Short> {
        let n = n & MASK;
        if self.pos + n > self.end {
            return Err(Short);
        }
        self.pos += n;
        Ok(())
    }

    /// Where the cursor is, to come back to with [`Cursor::reset`].
    #[inline(always)]
    pub fn mark(&self) -> Mark {
        Mark(self.pos)
    }

    /// Back to a [`Mark`] of this cursor (to read a header again in full).
    #[inline(always)]
    pub fn reset(&mut self, m: Mark) {
        self.pos = m.0;
    }

    /// Bytes from the start of the frame to the cursor.
    #[inline(always)]
    pub fn offset(&self) -> u32 {
        (self.pos - self.start) as u32
    }

    /// Bytes from the cursor to the end of the frame.
    #[inline(always)]
    pub fn remaining(&self) -> usize {
        self.end - self.pos
    }
}
