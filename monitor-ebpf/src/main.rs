//! l2watch XDP classifier: parses Ethernet and stacked VLAN tags, counts ARP and DHCPv4 per
//! segment in per-CPU maps, and pushes only state changes through a ring buffer. It always
//! returns XDP_PASS: a monitor never drops or alters traffic.
#![no_std]
#![no_main]

use core::mem::size_of;

use aya_ebpf::{
    bindings::{xdp_action::XDP_PASS, BPF_NOEXIST},
    helpers::generated::{bpf_ktime_get_coarse_ns, bpf_xdp_load_bytes},
    macros::{map, xdp},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::XdpContext,
};
use aya_log_ebpf::debug;
use monitor_common::{
    arp_flags, binding_kind, config_flags, event_kind, ArpEvent, BindingKey, BindingValue, Bucket,
    BucketState, Config, Counter, DhcpEvent, EventHeader, SegmentCacheEntry, SegmentCounters,
    SegmentKey, Stat, BOOTP_FIXED_LEN, DHCP_MAX_OPTIONS_SCANNED, DHCP_PAYLOAD_MAX, NO_VLAN,
    VLAN_MAX_DEPTH,
};
use network_types::{arp::ArpHdr, eth::EthHdr, ip::Ipv4Hdr, udp::UdpHdr, vlan::VlanHdr};

/// Segment -> its slot in `SEGMENT_COUNTERS`. Added here on a segment's first frame, read by
/// the agent to label the slots. Size set by the loader (same as `SEGMENT_COUNTERS`).
#[map]
static SEGMENT_SLOTS: HashMap<SegmentKey, u32> = HashMap::with_max_entries(4096, 0);

/// Per-segment frame counters, one slot per segment, per CPU; read and summed by the agent at
/// scrape time. Bounded: once every slot is taken, new segments go to `OVERFLOW_COUNTERS`.
#[map]
static SEGMENT_COUNTERS: PerCpuArray<SegmentCounters> = PerCpuArray::with_max_entries(4096, 0);

/// Slot -> the segment that claimed it. A `BPF_NOEXIST` insert here is how a CPU claims a
/// slot: atomic under the bucket lock, and it needs no atomic instructions (the object is built
/// for BPF CPU v1). Size set by the loader (same as `SEGMENT_COUNTERS`).
#[map]
static SLOT_OWNERS: HashMap<u32, SegmentKey> = HashMap::with_max_entries(4096, 0);

/// Hint for the next free slot; a stale read only costs a failed claim.
#[map]
static NEXT_SLOT: Array<u32> = Array::with_max_entries(1, 0);

/// The segment each CPU saw last and its slot. Frames arrive in runs per segment, and a hit
/// costs two inlined per-CPU array lookups instead of a hash lookup.
#[map]
static SEGMENT_CACHE: PerCpuArray<SegmentCacheEntry> = PerCpuArray::with_max_entries(1, 0);

/// Counters for frames whose segment did not fit in `SEGMENT_COUNTERS`, indexed by tag depth
/// (0..=VLAN_MAX_DEPTH) so tagged and untagged totals stay exact. Read by the agent.
#[map]
static OVERFLOW_COUNTERS: PerCpuArray<SegmentCounters> =
    PerCpuArray::with_max_entries(VLAN_MAX_DEPTH as u32 + 1, 0);

/// Self-monitoring counters indexed by `Stat`: every event or count lost is counted here.
#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Stat::COUNT as u32, 0);

/// Last reported MAC per (segment, IP, kind): suppresses exact repeats within the refresh
/// interval so an ARP storm of one binding costs userspace nothing. Written only here.
#[map]
static BINDINGS: LruHashMap<BindingKey, BindingValue> = LruHashMap::with_max_entries(65536, 0);

/// Runtime configuration, index 0, written by the agent.
#[map]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// Token buckets indexed by `Bucket`, per CPU; protect userspace during storms.
#[map]
static RATE_BUCKETS: PerCpuArray<BucketState> =
    PerCpuArray::with_max_entries(Bucket::COUNT as u32, 0);

/// Per-CPU slot where a DHCP event is assembled before `bpf_ringbuf_output` copies it out:
/// one code path whether or not the event is sent, and no large struct on the BPF stack.
#[map]
static DHCP_SCRATCH: PerCpuArray<DhcpEvent> = PerCpuArray::with_max_entries(1, 0);

/// ARP binding changes and DHCP messages for the agent. Size set by the loader.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 22, 0);

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const ETH_P_QINQ_LEGACY: u16 = 0x9100;
const IPPROTO_UDP: u8 = 17;
const BOOTPS: u16 = 67;
const BOOTPC: u16 = 68;
const DHCP_MAGIC: [u8; 4] = [0x63, 0x82, 0x53, 0x63];
const NANOS: u64 = 1_000_000_000;
/// Longest idle time the token bucket refills for; caps `elapsed * rate` far below u64::MAX.
const BUCKET_MAX_IDLE_NS: u64 = 10 * NANOS;

#[xdp]
pub fn l2watch(ctx: XdpContext) -> u32 {
    classify(&ctx);
    XDP_PASS
}

/// The counters of the frame's segment: each class it belongs to is one increment here.
struct Counts<'a>(&'a mut SegmentCounters);

impl Counts<'_> {
    #[inline(always)]
    fn add(&mut self, c: Counter) {
        self.0.counts[c as usize] += 1;
    }
}

/// Monotonic time at tick resolution: refresh intervals and token buckets need no better, and
/// it is far cheaper than bpf_ktime_get_ns.
#[inline(always)]
fn now_ns() -> u64 {
    // SAFETY: helper without arguments.
    unsafe { bpf_ktime_get_coarse_ns() }
}

/// Bounds-checked parsing cursor over the packet: every header read goes through `take`.
struct Cursor {
    pos: usize,
    end: usize,
}

impl Cursor {
    #[inline(always)]
    fn new(ctx: &XdpContext) -> Self {
        Cursor {
            pos: ctx.data(),
            end: ctx.data_end(),
        }
    }

    /// Returns a pointer to a `T` at the cursor and advances past it, or None if the packet is
    /// too short.
    #[inline(always)]
    fn take<T>(&mut self) -> Option<*const T> {
        let start = self.pos;
        if start + size_of::<T>() > self.end {
            return None;
        }
        self.pos = start + size_of::<T>();
        Some(start as *const T)
    }

    /// Skips `n` bytes (n < 64, for IPv4 options) if they are present.
    #[inline(always)]
    fn skip_small(&mut self, n: usize) -> Option<()> {
        let n = n & 0x3f;
        if self.pos + n > self.end {
            return None;
        }
        self.pos += n;
        Some(())
    }
}

/// Where the frame sits: filled in by the Ethernet/VLAN walk.
#[derive(Clone, Copy)]
struct Segment {
    key: SegmentKey,
    depth: usize,
}

#[inline(always)]
fn classify(ctx: &XdpContext) {
    let mut seg = Segment {
        key: SegmentKey {
            ifindex: ctx.ingress_ifindex() as u32,
            outer_vid: NO_VLAN,
            inner_vid: NO_VLAN,
        },
        depth: 0,
    };
    let mut cur = Cursor::new(ctx);
    let walked = walk_tags(&mut cur, &mut seg);
    let Some(slot) = segment_counters(&seg) else {
        return;
    };
    let mut counts = Counts(slot);
    counts.add(Counter::Frames);
    counts.add(Counter::for_depth(seg.depth));
    match walked {
        Walk::Truncated => counts.add(Counter::Malformed),
        Walk::TooDeep => counts.add(Counter::Other),
        Walk::EtherType(eth, ETH_P_ARP) => {
            counts.add(Counter::Arp);
            classify_arp(ctx, &mut cur, &seg, eth, &mut counts);
        }
        Walk::EtherType(eth, ETH_P_IP) => {
            counts.add(Counter::Ipv4);
            if !classify_ipv4(ctx, &mut cur, &seg, eth, &mut counts) {
                counts.add(Counter::Other);
            }
        }
        Walk::EtherType(..) => counts.add(Counter::Other),
    }
}

/// Where the Ethernet/VLAN walk ended.
enum Walk<'a> {
    /// The frame ends inside the Ethernet header or a tag.
    Truncated,
    /// More than VLAN_MAX_DEPTH tags: counted by depth, not classified.
    TooDeep,
    /// The EtherType after the tags.
    EtherType(&'a EthHdr, u16),
}

#[inline(always)]
fn walk_tags<'a>(cur: &mut Cursor, seg: &mut Segment) -> Walk<'a> {
    let Some(eth) = cur.take::<EthHdr>() else {
        return Walk::Truncated;
    };
    // SAFETY: `take` checked the header lies inside the packet.
    let eth = unsafe { &*eth };
    let mut ether_type = u16::from_be(eth.ether_type);
    for i in 0..VLAN_MAX_DEPTH {
        if !is_vlan_tpid(ether_type) {
            break;
        }
        let Some(tag) = cur.take::<VlanHdr>() else {
            return Walk::Truncated;
        };
        // SAFETY: bounds checked by `take`.
        let tag = unsafe { &*tag };
        let vid = u16::from_be_bytes(tag.tci) & 0x0fff;
        if i == 0 {
            seg.key.outer_vid = vid;
        } else {
            seg.key.inner_vid = vid;
        }
        seg.depth = i + 1;
        ether_type = u16::from_be(tag.ether_type);
    }
    if is_vlan_tpid(ether_type) {
        seg.depth = VLAN_MAX_DEPTH + 1;
        return Walk::TooDeep;
    }
    Walk::EtherType(eth, ether_type)
}

#[inline(always)]
fn is_vlan_tpid(t: u16) -> bool {
    t == ETH_P_8021Q || t == ETH_P_8021AD || t == ETH_P_QINQ_LEGACY
}

/// Fixed part of an ARP header (htype, ptype, hlen, plen, oper).
#[repr(C)]
struct ArpFixed {
    htype: [u8; 2],
    ptype: [u8; 2],
    hlen: u8,
    plen: u8,
    oper: [u8; 2],
}

#[inline(always)]
fn classify_arp(
    ctx: &XdpContext,
    cur: &mut Cursor,
    seg: &Segment,
    eth: &EthHdr,
    counts: &mut Counts,
) {
    // Malformed rule for ARP: the 8-byte fixed header decides the opcode; without it the frame
    // is ARP and malformed. An Ethernet/IPv4 ARP must then carry its 20 address bytes.
    let start = cur.pos;
    let Some(fixed) = cur.take::<ArpFixed>() else {
        counts.add(Counter::Malformed);
        return;
    };
    // SAFETY: bounds checked by `take`.
    let fixed = unsafe { &*fixed };
    let op = u16::from_be_bytes(fixed.oper);
    match op {
        1 => counts.add(Counter::ArpRequest),
        2 => counts.add(Counter::ArpReply),
        _ => counts.add(Counter::ArpOtherOpcode),
    }
    if u16::from_be_bytes(fixed.htype) != 1
        || u16::from_be_bytes(fixed.ptype) != ETH_P_IP
        || fixed.hlen != 6
        || fixed.plen != 4
    {
        bump_stat(Stat::ArpNotEthernetIpv4);
        return;
    }
    cur.pos = start;
    let Some(arp) = cur.take::<ArpHdr>() else {
        counts.add(Counter::Malformed);
        return;
    };
    // SAFETY: bounds checked by `take`.
    let arp = unsafe { &*arp };
    let spa = arp.spa;
    let tpa = arp.tpa;
    let tha_zero = arp.tha == [0u8; 6];
    let mut flags = 0u16;
    if spa == tpa {
        counts.add(Counter::ArpGratuitous);
        flags |= arp_flags::GRATUITOUS;
        if op == 1 && tha_zero {
            counts.add(Counter::ArpAnnouncement);
            flags |= arp_flags::ANNOUNCEMENT;
        }
    }
    let spa_zero = spa == [0u8; 4];
    if op == 1 && spa_zero && tha_zero {
        counts.add(Counter::ArpProbe);
        flags |= arp_flags::PROBE;
    }

    let Some(cfg) = CONFIG.get(0) else { return };
    if cfg.flags & config_flags::ARP_EVENTS == 0 {
        return;
    }
    if !spa_zero {
        arp_binding(
            ctx,
            seg,
            eth,
            arp,
            op,
            flags,
            binding_kind::SENDER,
            spa,
            cfg,
        );
    } else if flags & arp_flags::PROBE != 0 {
        arp_binding(ctx, seg, eth, arp, op, flags, binding_kind::PROBE, tpa, cfg);
    }
}

/// Reports `ip` -> sender MAC if it is new, changed, or due for a refresh; else suppresses it.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn arp_binding(
    ctx: &XdpContext,
    seg: &Segment,
    eth: &EthHdr,
    arp: &ArpHdr,
    op: u16,
    flags: u16,
    binding: u8,
    ip: [u8; 4],
    cfg: &Config,
) {
    let key = BindingKey {
        ifindex: seg.key.ifindex,
        outer_vid: seg.key.outer_vid,
        inner_vid: seg.key.inner_vid,
        ip,
        kind: binding,
        _pad: [0; 3],
    };
    let mac = arp.sha;
    let now = now_ns();
    let mut old_mac = [0u8; 6];
    // SAFETY: the value is plain data; a concurrent update can at worst give a stale MAC,
    // which only causes one extra or one missed refresh.
    let kind = match unsafe { BINDINGS.get(key) } {
        None => event_kind::ARP_NEW,
        Some(prev) if prev.mac != mac => {
            old_mac = prev.mac;
            event_kind::ARP_CHANGED
        }
        Some(prev) => {
            if now.wrapping_sub(prev.reported_ns) < cfg.refresh_ns {
                bump_stat(Stat::ArpSuppressed);
                return;
            }
            event_kind::ARP_REFRESH
        }
    };
    if !take_token(Bucket::Arp, cfg, now) {
        bump_stat(Stat::ArpRateLimited);
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<ArpEvent>(0) else {
        bump_stat(Stat::ArpRingbufFull);
        return;
    };
    entry.write(ArpEvent {
        header: header(kind, seg, now),
        op,
        flags,
        ip,
        mac,
        old_mac,
        sender_ip: arp.spa,
        target_ip: arp.tpa,
        target_mac: arp.tha,
        eth_src: eth.src_addr,
        binding,
        _pad: [0; 7],
    });
    entry.submit(0);
    bump_stat(Stat::ArpEventsSent);
    if kind == event_kind::ARP_CHANGED {
        debug!(
            ctx,
            "binding changed on ifindex {}: {:i} now at {:mac}",
            seg.key.ifindex,
            u32::from_be_bytes(ip),
            mac
        );
    }
    // Only a reported binding is remembered, so a lost event is retried on the next frame.
    let value = BindingValue {
        mac,
        _pad: [0; 2],
        reported_ns: now,
    };
    if BINDINGS.insert(key, value, 0).is_err() {
        bump_stat(Stat::BindingMapFull);
    }
}

#[inline(always)]
fn header(kind: u8, seg: &Segment, now: u64) -> EventHeader {
    EventHeader {
        kind,
        depth: seg.depth as u8,
        _pad: 0,
        ifindex: seg.key.ifindex,
        outer_vid: seg.key.outer_vid,
        inner_vid: seg.key.inner_vid,
        _pad2: 0,
        ktime_ns: now,
    }
}

/// Returns true when the frame was recognised as DHCP (so it is not "other").
#[inline(always)]
fn classify_ipv4(
    ctx: &XdpContext,
    cur: &mut Cursor,
    seg: &Segment,
    eth: &EthHdr,
    counts: &mut Counts,
) -> bool {
    let Some(ip) = cur.take::<Ipv4Hdr>() else {
        counts.add(Counter::Malformed);
        return false;
    };
    // SAFETY: bounds checked by `take`.
    let ip = unsafe { &*ip };
    let ihl = ((ip.vihl & 0x0f) as usize) * 4;
    if ihl < Ipv4Hdr::LEN {
        counts.add(Counter::Malformed);
        return false;
    }
    // A non-first fragment carries no UDP header.
    if u16::from_be_bytes(ip.frags) & 0x1fff != 0 || ip.proto != IPPROTO_UDP {
        return false;
    }
    if cur.skip_small(ihl - Ipv4Hdr::LEN).is_none() {
        counts.add(Counter::Malformed);
        return false;
    }
    let Some(udp) = cur.take::<UdpHdr>() else {
        counts.add(Counter::Malformed);
        return false;
    };
    // SAFETY: bounds checked by `take`.
    let udp = unsafe { &*udp };
    let sport = u16::from_be_bytes(udp.src);
    let dport = u16::from_be_bytes(udp.dst);
    if !is_dhcp_port(sport) && !is_dhcp_port(dport) {
        return false;
    }
    counts.add(Counter::Dhcp);
    classify_dhcp(ctx, cur, seg, eth, ip, sport, dport, counts);
    true
}

#[inline(always)]
fn is_dhcp_port(p: u16) -> bool {
    p == BOOTPS || p == BOOTPC
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn classify_dhcp(
    ctx: &XdpContext,
    cur: &Cursor,
    seg: &Segment,
    eth: &EthHdr,
    ip: &Ipv4Hdr,
    sport: u16,
    dport: u16,
    counts: &mut Counts,
) {
    // Malformed rule for DHCP: the 236-byte fixed BOOTP header must be present. Without it the
    // frame is DHCP (tshark agrees), malformed, has no message type and raises no event.
    let bootp_len = cur.end - cur.pos;
    if bootp_len < BOOTP_FIXED_LEN {
        counts.add(Counter::Malformed);
        counts.add(Counter::DhcpNoMsgtype);
        return;
    }
    let offset = (cur.pos - ctx.data()) as u32;
    let msg_type = find_msg_type(ctx, offset, bootp_len as u32);
    if msg_type == 0 {
        counts.add(Counter::DhcpNoMsgtype);
    } else {
        counts.add(Counter::for_dhcp_type(msg_type));
    }

    let Some(cfg) = CONFIG.get(0) else { return };
    if cfg.flags & config_flags::DHCP_EVENTS == 0 {
        return;
    }
    let now = now_ns();
    if !take_token(Bucket::Dhcp, cfg, now) {
        bump_stat(Stat::DhcpRateLimited);
        return;
    }
    let Some(ev) = DHCP_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU map value, only this CPU touches it while the program runs.
    let ev = unsafe { &mut *ev };
    let copy_len = if bootp_len > DHCP_PAYLOAD_MAX {
        DHCP_PAYLOAD_MAX
    } else {
        bootp_len
    };
    // The verifier needs the length provably in 1..=DHCP_PAYLOAD_MAX.
    let len = (copy_len as u32) & (2 * DHCP_PAYLOAD_MAX as u32 - 1);
    if len == 0
        || len > DHCP_PAYLOAD_MAX as u32
        || unsafe { bpf_xdp_load_bytes(ctx.ctx, offset, ev.payload.as_mut_ptr() as *mut _, len) }
            != 0
    {
        bump_stat(Stat::DhcpCopyFailed);
        return;
    }
    ev.header = header(event_kind::DHCP, seg, now);
    ev.eth_src = eth.src_addr;
    ev.eth_dst = eth.dst_addr;
    ev.src_ip = ip.src_addr;
    ev.dst_ip = ip.dst_addr;
    ev.src_port = sport;
    ev.dst_port = dport;
    ev.msg_type = msg_type;
    ev._pad = 0;
    ev.bootp_len = bootp_len as u16;
    ev.payload_len = copy_len as u16;
    ev._pad2 = [0; 10];
    if EVENTS.output::<DhcpEvent>(&*ev, 0).is_err() {
        bump_stat(Stat::DhcpRingbufFull);
    } else {
        bump_stat(Stat::DhcpEventsSent);
    }
}

/// Finds option 53 in the options after the magic cookie; 0 when absent. Options are read
/// with bpf_xdp_load_bytes so the walking offset is a plain helper argument: the verifier
/// does not track its range, and the bounded loop verifies in a handful of states.
#[inline(always)]
fn find_msg_type(ctx: &XdpContext, bootp_off: u32, bootp_len: u32) -> u8 {
    let options = (BOOTP_FIXED_LEN + DHCP_MAGIC.len()) as u32;
    let mut cookie = [0u8; 4];
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
            0 => i += 1,
            255 => return 0,
            53 => return if opt[1] >= 1 { opt[2] } else { 0 },
            _ => i += 2 + opt[1] as u32,
        }
    }
    0
}

/// Token bucket per CPU; true when an event may be sent.
#[inline(always)]
fn take_token(bucket: Bucket, cfg: &Config, now: u64) -> bool {
    if cfg.flags & config_flags::RATE_LIMIT == 0 {
        return true;
    }
    let (rate, burst) = match bucket {
        Bucket::Arp => (cfg.arp_rate_per_sec as u64, cfg.arp_burst as u64),
        Bucket::Dhcp => (cfg.dhcp_rate_per_sec as u64, cfg.dhcp_burst as u64),
    };
    let Some(state) = RATE_BUCKETS.get_ptr_mut(bucket as u32) else {
        return false;
    };
    // SAFETY: per-CPU map value, only this CPU touches it while the program runs.
    let state = unsafe { &mut *state };
    let cap = burst * NANOS;
    let idle = now.wrapping_sub(state.last_ns);
    let refill = if idle > BUCKET_MAX_IDLE_NS {
        cap
    } else {
        idle * rate
    };
    let mut tokens = state.tokens_nano + refill;
    if tokens > cap {
        tokens = cap;
    }
    state.last_ns = now;
    if tokens >= NANOS {
        state.tokens_nano = tokens - NANOS;
        true
    } else {
        state.tokens_nano = tokens;
        false
    }
}

#[inline(always)]
fn bump_stat(s: Stat) {
    if let Some(v) = STATS.get_ptr_mut(s as u32) {
        // SAFETY: per-CPU value.
        unsafe { *v += 1 };
    }
}

/// The counters for `seg`: the per-CPU cached slot, else the slot from `SEGMENT_SLOTS`, else a
/// new slot, else (all slots taken) the overflow counters for the frame's depth.
#[inline(always)]
fn segment_counters(seg: &Segment) -> Option<&'static mut SegmentCounters> {
    let cache = SEGMENT_CACHE.get_ptr_mut(0)?;
    // SAFETY: per-CPU map value, only this CPU touches it while the program runs.
    let cache = unsafe { &mut *cache };
    let slot = if cache.slot_plus_one != 0 && cache.key == seg.key {
        cache.slot_plus_one - 1
    } else {
        let slot = match unsafe { SEGMENT_SLOTS.get(seg.key) } {
            Some(s) => *s,
            None => match new_slot(seg) {
                Some(s) => s,
                None => return overflow_counters(seg),
            },
        };
        cache.key = seg.key;
        cache.slot_plus_one = slot + 1;
        slot
    };
    let counters = SEGMENT_COUNTERS.get_ptr_mut(slot)?;
    // SAFETY: per-CPU map value, only this CPU touches it while the program runs.
    Some(unsafe { &mut *counters })
}

/// Claims a free slot for a segment seen for the first time.
#[inline(always)]
fn new_slot(seg: &Segment) -> Option<u32> {
    /// Claims tried past the hint: covers CPUs racing for the same free slot.
    const CLAIM_TRIES: u32 = 4;
    let next = NEXT_SLOT.get_ptr_mut(0)?;
    // SAFETY: `next` points at a u32 in an array map; a torn or stale value only costs a retry.
    let hint = unsafe { core::ptr::read_volatile(next) };
    let mut claimed = None;
    for i in 0..CLAIM_TRIES {
        let slot = hint.wrapping_add(i);
        // The counter array's own bound is the capacity.
        if SEGMENT_COUNTERS.get_ptr(slot).is_none() {
            break;
        }
        if SLOT_OWNERS
            .insert(slot, seg.key, BPF_NOEXIST as u64)
            .is_ok()
        {
            claimed = Some(slot);
            break;
        }
    }
    let Some(slot) = claimed else {
        bump_stat(Stat::SegmentMapFull);
        return None;
    };
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(next, slot + 1) };
    if SEGMENT_SLOTS
        .insert(seg.key, slot, BPF_NOEXIST as u64)
        .is_ok()
    {
        return Some(slot);
    }
    // Another CPU registered this segment first: use its slot; ours stays unused.
    bump_stat(Stat::SegmentSlotRaced);
    // SAFETY: the value is a plain u32 written once.
    unsafe { SEGMENT_SLOTS.get(seg.key) }.copied()
}

#[inline(always)]
fn overflow_counters(seg: &Segment) -> Option<&'static mut SegmentCounters> {
    let depth = if seg.depth > VLAN_MAX_DEPTH {
        VLAN_MAX_DEPTH
    } else {
        seg.depth
    };
    let p = OVERFLOW_COUNTERS.get_ptr_mut(depth as u32)?;
    // SAFETY: per-CPU map value.
    Some(unsafe { &mut *p })
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
