//! IPv6 events, in their own program: the classifier (`nd`, `dhcpv6`) counts a frame and
//! queues a [`Job`] of offsets and the segment in a per-CPU slot, then tail-calls
//! `l2watch_ip6`, which reads the frame with `bpf_xdp_load_bytes` only. The verifier checks
//! this program once from one entry state, instead of once per VLAN and extension-header
//! path of the classifier. It reports:
//! - IPv6 -> MAC bindings from NS sources (and their source link-layer address) and NA
//!   targets (and their target link-layer address) that are new, changed or due for a
//!   refresh; exact repeats are suppressed here, as ARP's are;
//! - every DAD probe (NS from `::`), with its target, MAC and nonce;
//! - router advertisements that differ from the router's last one, or are due for a
//!   refresh, whole, for the agent to parse;
//! - every DHCPv6 message, whole.
//!
//! What the token bucket or a full ring buffer holds back waits in `PENDING_ND`,
//! `PENDING_RA` and (state-bearing DHCPv6) `PENDING_DHCP6`.
use aya_ebpf::{helpers::generated::bpf_xdp_load_bytes, programs::XdpContext};
use monitor_common::{
    dhcpv6_type_is_stateful, nd_binding, nd_flags,
    proto::{ND_NA, ND_NS, ND_OPT_NONCE, ND_OPT_SOURCE_LLADDR, ND_OPT_TARGET_LLADDR, ND_RA},
    BindingValue, Bucket, Config, EventKind, Ip6Event, NdEvent, NdKey, PendingDhcpKey, RouterKey,
    RouterSeen, Stat, IP6_PAYLOAD_MAX, ND_MAX_OPTIONS,
};

use crate::{
    ipv6::Link,
    maps::{
        bump_stat, config, per_cpu, EVENTS, IP6_JOB, IP6_SCRATCH, ND_BINDINGS, ND_SCRATCH,
        PENDING_DHCP6, PENDING_ND, PENDING_RA, ROUTERS_SEEN,
    },
    rate::take_token,
    segment::Segment,
};

/// Where a message sits in the frame.
#[derive(Clone, Copy)]
pub struct Message {
    /// Offset of its first byte (the ICMPv6 type, the DHCPv6 msg-type).
    pub start: u32,
    /// Its bytes: the IPv6 payload after the extension headers (and UDP), without any
    /// Ethernet padding.
    pub len: u32,
}

/// What `l2watch_ip6` is asked to do.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Job {
    None = 0,
    /// An NS, NA or RA (`msg_type` is the ICMPv6 type).
    Nd = 1,
    Dhcpv6 = 2,
}

/// The per-CPU hand-over from the classifier to `l2watch_ip6` (`IP6_JOB`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Ip6Job {
    pub job: u8,
    pub msg_type: u8,
    pub depth: u8,
    pub _pad: u8,
    pub ifindex: u32,
    pub outer_vid: u16,
    pub inner_vid: u16,
    /// Offset of the IPv6 header.
    pub ip_off: u32,
    pub msg_start: u32,
    pub msg_len: u32,
    pub sport: u16,
    pub dport: u16,
}

/// Queues `job` for the tail call after classification; [`Link::queued`] tells the entry
/// point to make it.
#[inline(always)]
pub fn queue(link: &Link, job: Job, msg_type: u8, msg: Message, sport: u16, dport: u16) {
    let Some(j) = per_cpu(&IP6_JOB) else { return };
    j.job = job as u8;
    j.msg_type = msg_type;
    j.depth = link.seg.depth as u8;
    j._pad = 0;
    j.ifindex = link.seg.key.ifindex;
    j.outer_vid = link.seg.key.outer_vid;
    j.inner_vid = link.seg.key.inner_vid;
    j.ip_off = link.ip_off;
    j.msg_start = msg.start;
    j.msg_len = msg.len;
    j.sport = sport;
    j.dport = dport;
    link.queued.set(true);
}

/// The frame's addresses, read once.
struct Addrs {
    /// Ethernet destination then source.
    eth: [u8; 12],
    /// IPv6 source then destination.
    ip: [u8; 32],
}

impl Addrs {
    fn eth_dst(&self) -> [u8; 6] {
        let e = &self.eth;
        [e[0], e[1], e[2], e[3], e[4], e[5]]
    }
    fn eth_src(&self) -> [u8; 6] {
        let e = &self.eth;
        [e[6], e[7], e[8], e[9], e[10], e[11]]
    }
    fn ip_src(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.ip[..16]);
        a
    }
    fn ip_dst(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.ip[16..]);
        a
    }
}

/// Reads `N` bytes at `off` of the frame.
#[inline(always)]
fn load<const N: usize>(ctx: &XdpContext, off: u32, out: &mut [u8; N]) -> bool {
    // SAFETY: the destination is a local array of the N bytes asked for; the helper
    // bounds-checks the packet side.
    unsafe { bpf_xdp_load_bytes(ctx.ctx, off, out.as_mut_ptr() as *mut _, N as u32) == 0 }
}

/// The `l2watch_ip6` program: the job the classifier queued on this CPU.
#[inline(always)]
pub fn run(ctx: &XdpContext) {
    let Some(j) = per_cpu(&IP6_JOB) else { return };
    let job = *j;
    j.job = Job::None as u8;
    let Some(cfg) = config() else { return };
    let mut seg = Segment::new(job.ifindex);
    seg.key.outer_vid = job.outer_vid;
    seg.key.inner_vid = job.inner_vid;
    seg.depth = job.depth as usize;
    let mut a = Addrs {
        eth: [0; 12],
        ip: [0; 32],
    };
    if !load(ctx, 0, &mut a.eth) || !load(ctx, job.ip_off + 8, &mut a.ip) {
        return;
    }
    let msg = Message {
        start: job.msg_start,
        len: job.msg_len,
    };
    if job.job == Job::Nd as u8 {
        match job.msg_type {
            ND_NS | ND_NA => neighbour(ctx, &seg, cfg, &a, job.msg_type, msg),
            ND_RA => advertisement(ctx, &seg, cfg, &a, msg),
            _ => {}
        }
    } else if job.job == Job::Dhcpv6 as u8 {
        dhcpv6(ctx, &seg, cfg, &a, &job, msg);
    }
}

/// What the options of an NS or NA said.
struct NdOptions {
    source: [u8; 6],
    target: [u8; 6],
    nonce: [u8; 6],
    has_source: bool,
    has_target: bool,
    has_nonce: bool,
}

/// Walks at most [`ND_MAX_OPTIONS`] options from `off` to `end`. A zero length ends the
/// walk (RFC 4861 says to discard such a message; the counts are kept).
#[inline(always)]
fn read_options(ctx: &XdpContext, off: u32, end: u32) -> NdOptions {
    let mut o = NdOptions {
        source: [0; 6],
        target: [0; 6],
        nonce: [0; 6],
        has_source: false,
        has_target: false,
        has_nonce: false,
    };
    let mut at = off;
    for _ in 0..ND_MAX_OPTIONS {
        let mut opt = [0u8; 8];
        if at + 8 > end || !load(ctx, at, &mut opt) || opt[1] == 0 {
            break;
        }
        let value = [opt[2], opt[3], opt[4], opt[5], opt[6], opt[7]];
        match opt[0] {
            ND_OPT_SOURCE_LLADDR if opt[1] == 1 => {
                o.source = value;
                o.has_source = true;
            }
            ND_OPT_TARGET_LLADDR if opt[1] == 1 => {
                o.target = value;
                o.has_target = true;
            }
            // RFC 3971: at least 6 bytes of nonce; RFC 7527 uses 6.
            ND_OPT_NONCE => {
                o.nonce = value;
                o.has_nonce = true;
            }
            _ => {}
        }
        at += opt[1] as u32 * 8;
    }
    o
}

/// An NS or NA: reports its binding if new, changed or due, and every DAD probe.
#[inline(always)]
fn neighbour(ctx: &XdpContext, seg: &Segment, cfg: &Config, a: &Addrs, kind: u8, msg: Message) {
    // Flags (NA: R, S, O; NS: reserved) and the target.
    let mut fixed = [0u8; 20];
    if msg.len < 24 || !load(ctx, msg.start + 4, &mut fixed) {
        return;
    }
    let Some(ev) = per_cpu(&ND_SCRATCH) else {
        return;
    };
    let opts = read_options(ctx, msg.start + 24, msg.start + msg.len);
    let mut target = [0u8; 16];
    target.copy_from_slice(&fixed[4..]);
    let src = a.ip_src();
    ev.icmp_type = kind;
    ev.binding = nd_binding::HOLDER;
    ev.flags = 0;
    ev._pad = 0;
    ev.ip = src;
    ev.mac = a.eth_src();
    ev.old_mac = [0; 6];
    ev.eth_src = a.eth_src();
    ev.nonce = [0; 6];
    ev.src_ip = src;
    ev.dst_ip = a.ip_dst();
    ev._pad2 = [0; 4];
    if kind == ND_NA {
        ev.ip = target;
        let f = fixed[0];
        if f & 0x80 != 0 {
            ev.flags |= nd_flags::ROUTER;
        }
        if f & 0x40 != 0 {
            ev.flags |= nd_flags::SOLICITED;
        }
        if f & 0x20 != 0 {
            ev.flags |= nd_flags::OVERRIDE;
        }
        if opts.has_target {
            ev.mac = opts.target;
            ev.flags |= nd_flags::LLADDR_OPTION;
        }
    } else if src == [0u8; 16] {
        ev.ip = target;
        ev.binding = nd_binding::DAD;
        if opts.has_nonce {
            ev.nonce = opts.nonce;
            ev.flags |= nd_flags::NONCE;
        }
    } else if opts.has_source {
        ev.mac = opts.source;
        ev.flags |= nd_flags::LLADDR_OPTION;
    }
    // The unspecified address, or a multicast one (a malformed NA), is nobody's.
    if ev.ip == [0u8; 16] || ev.ip[0] == 0xff {
        return;
    }
    let now = seg.now();
    let mut key = NdKey {
        ifindex: seg.key.ifindex,
        outer_vid: seg.key.outer_vid,
        inner_vid: seg.key.inner_vid,
        ip: ev.ip,
        mac: [0; 6],
        kind: ev.binding,
        _pad: 0,
    };
    let kind = if ev.binding == nd_binding::DAD {
        // Every probe counts (two stations probing one target, an echo with the same
        // nonce): held-back ones wait per prober.
        key.mac = ev.mac;
        EventKind::DadProbe
    } else {
        // SAFETY: plain data; a concurrent update can at worst cost one extra refresh.
        match unsafe { ND_BINDINGS.get(key) } {
            None => EventKind::NdNew,
            Some(prev) if prev.mac != ev.mac => {
                ev.old_mac = prev.mac;
                EventKind::NdChanged
            }
            Some(prev) => {
                if now.wrapping_sub(prev.reported_ns) < cfg.refresh_ns {
                    bump_stat(Stat::NdSuppressed);
                    return;
                }
                EventKind::NdRefresh
            }
        }
    };
    ev.header = seg.header(kind, now);
    let allowed = take_token(Bucket::Nd, cfg, now);
    if !allowed {
        bump_stat(Stat::NdRateLimited);
    }
    if allowed && EVENTS.output::<NdEvent>(&*ev, 0).is_ok() {
        bump_stat(Stat::NdEventsSent);
    } else {
        if allowed {
            bump_stat(Stat::NdRingbufFull);
        }
        // The scratch value by reference, not copied to the stack.
        #[allow(clippy::needless_borrows_for_generic_args)]
        let parked = PENDING_ND.insert(key, &*ev, 0);
        if parked.is_ok() {
            bump_stat(Stat::NdDeferred);
        } else {
            // Not remembered: the binding's next frame tries again.
            bump_stat(Stat::NdPendingFull);
            return;
        }
    }
    if kind != EventKind::DadProbe {
        let value = BindingValue {
            mac: ev.mac,
            _pad: [0; 2],
            reported_ns: now,
        };
        if ND_BINDINGS.insert(key, value, 0).is_err() {
            bump_stat(Stat::NdBindingMapFull);
        }
    }
}

/// An RA: copied whole, and reported when it differs from the router's last one or is due.
#[inline(always)]
fn advertisement(ctx: &XdpContext, seg: &Segment, cfg: &Config, a: &Addrs, msg: Message) {
    let Some(ev) = per_cpu(&IP6_SCRATCH) else {
        return;
    };
    let Some(len) = copy_message(ctx, ev, msg) else {
        return;
    };
    if len < 16 {
        return;
    }
    // The content key: the ICMPv6 checksum covers every byte of the message (and the
    // addresses), so with the length and the fixed header it changes whenever the contents
    // do. Hashing the bytes themselves would cost a loop per word; a change crafted to keep
    // the checksum is still reported at the next refresh.
    let p = &ev.payload;
    let fixed = u64::from_le_bytes([p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]]);
    let rest = (u32::from_le_bytes([p[12], p[13], p[14], p[15]]) as u64) << 32
        | (u16::from_le_bytes([p[2], p[3]]) as u64) << 16
        | (len as u64 & 0xffff);
    let hash = fixed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ rest;
    let now = seg.now();
    let key = RouterKey {
        ifindex: seg.key.ifindex,
        outer_vid: seg.key.outer_vid,
        inner_vid: seg.key.inner_vid,
        src_ip: a.ip_src(),
        mac: a.eth_src(),
        _pad: [0; 2],
    };
    // SAFETY: plain data; a concurrent update can at worst cost one extra event.
    if let Some(prev) = unsafe { ROUTERS_SEEN.get(key) } {
        if prev.hash == hash && now.wrapping_sub(prev.reported_ns) < cfg.refresh_ns {
            bump_stat(Stat::RaSuppressed);
            return;
        }
    }
    fill(ev, seg, a, EventKind::RouterAdvert, now);
    ev.src_port = 0;
    ev.dst_port = 0;
    ev.msg_type = ND_RA;
    ev.wire_len = msg.len as u16;
    let allowed = take_token(Bucket::Nd, cfg, now);
    if !allowed {
        bump_stat(Stat::RaRateLimited);
    }
    if allowed && EVENTS.output::<Ip6Event>(&*ev, 0).is_ok() {
        bump_stat(Stat::RaEventsSent);
    } else {
        if allowed {
            bump_stat(Stat::RaRingbufFull);
        }
        // The map value by reference: a 1 KiB copy would not fit the BPF stack.
        #[allow(clippy::needless_borrows_for_generic_args)]
        let parked = PENDING_RA.insert(key, &*ev, 0);
        if parked.is_ok() {
            bump_stat(Stat::RaDeferred);
        } else {
            bump_stat(Stat::RaPendingFull);
            return;
        }
    }
    let seen = RouterSeen {
        hash,
        reported_ns: now,
    };
    // An LRU map: when full it forgets the oldest router, which is at worst reported again.
    let _ = ROUTERS_SEEN.insert(key, seen, 0);
}

/// A DHCPv6 message: sent whole, or parked when it carries state and is held back.
#[inline(always)]
fn dhcpv6(ctx: &XdpContext, seg: &Segment, cfg: &Config, a: &Addrs, job: &Ip6Job, msg: Message) {
    let now = seg.now();
    let msg_type = job.msg_type;
    let stateful = dhcpv6_type_is_stateful(msg_type);
    let allowed = take_token(Bucket::Dhcp, cfg, now);
    if !allowed {
        bump_stat(Stat::Dhcpv6RateLimited);
        if !stateful {
            return;
        }
    }
    let Some(ev) = per_cpu(&IP6_SCRATCH) else {
        return;
    };
    if copy_message(ctx, ev, msg).is_none() {
        return;
    }
    fill(ev, seg, a, EventKind::Dhcpv6, now);
    ev.src_port = job.sport;
    ev.dst_port = job.dport;
    ev.msg_type = msg_type;
    ev.wire_len = msg.len as u16;
    if allowed {
        if EVENTS.output::<Ip6Event>(&*ev, 0).is_ok() {
            bump_stat(Stat::Dhcpv6EventsSent);
            return;
        }
        bump_stat(Stat::Dhcpv6RingbufFull);
        if !stateful {
            return;
        }
    }
    // msg-type and transaction id (a relay's hop count and link address) and the sender.
    let p = &ev.payload;
    let key = PendingDhcpKey {
        ifindex: seg.key.ifindex,
        outer_vid: seg.key.outer_vid,
        inner_vid: seg.key.inner_vid,
        xid: [p[0], p[1], p[2], p[3]],
        chaddr: a.eth_src(),
        msg_type,
        _pad: 0,
    };
    // The map value by reference: a 1 KiB copy would not fit the BPF stack.
    #[allow(clippy::needless_borrows_for_generic_args)]
    let parked = PENDING_DHCP6.insert(key, &*ev, 0);
    if parked.is_ok() {
        bump_stat(Stat::Dhcpv6Deferred);
    } else {
        bump_stat(Stat::Dhcpv6PendingFull);
    }
}

/// Copies the message (at most [`IP6_PAYLOAD_MAX`] bytes) into the scratch event; returns the
/// bytes copied.
#[inline(always)]
fn copy_message(ctx: &XdpContext, ev: &mut Ip6Event, msg: Message) -> Option<u32> {
    let wanted = if msg.len > IP6_PAYLOAD_MAX as u32 {
        IP6_PAYLOAD_MAX as u32
    } else {
        msg.len
    };
    // The verifier needs the length provably in 1..=IP6_PAYLOAD_MAX.
    let len = wanted & (2 * IP6_PAYLOAD_MAX as u32 - 1);
    // SAFETY: the destination is the scratch payload of IP6_PAYLOAD_MAX bytes and `len` is
    // at most that; the helper bounds-checks the packet side itself.
    if len == 0
        || len > IP6_PAYLOAD_MAX as u32
        || unsafe { bpf_xdp_load_bytes(ctx.ctx, msg.start, ev.payload.as_mut_ptr() as *mut _, len) }
            != 0
    {
        bump_stat(Stat::Ip6CopyFailed);
        return None;
    }
    ev.payload_len = len as u16;
    Some(len)
}

/// The addressing part of an [`Ip6Event`].
#[inline(always)]
fn fill(ev: &mut Ip6Event, seg: &Segment, a: &Addrs, kind: EventKind, now: u64) {
    ev.header = seg.header(kind, now);
    ev.eth_src = a.eth_src();
    ev.eth_dst = a.eth_dst();
    ev.src_ip = a.ip_src();
    ev.dst_ip = a.ip_dst();
    ev._pad = 0;
    ev._pad2 = [0; 2];
}
