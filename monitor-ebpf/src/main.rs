//! l2watch XDP classifier: parses Ethernet and stacked VLAN tags, counts ARP and DHCPv4 per
//! segment in per-CPU maps, and pushes only state changes through a ring buffer. What the
//! token bucket or a full ring buffer holds back waits in the pending maps for the agent to
//! drain, so a storm delays state changes but does not lose them. It also spots frames going
//! round a switching loop and ARP scanners. It always returns XDP_PASS: a monitor never drops
//! or alters traffic.
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
    arp_flags, binding_kind, config_flags, dhcp_type_is_stateful, event_kind, map_sizes, ArpEvent,
    BindingKey, BindingRun, BindingValue, Bucket, BucketState, Config, Counter, DhcpEvent,
    EventHeader, FrameKey, FrameSeen, LoopEvent, LoopRun, PendingDhcpKey, ScanEvent, ScanKey,
    ScanState, SegmentCacheEntry, SegmentCounters, SegmentKey, Stat, BOOTP_FIXED_LEN,
    DHCP_MAX_OPTIONS_SCANNED, DHCP_PAYLOAD_MAX, LOOP_HASH_BYTES, NO_VLAN, SCAN_BITMAP_WORDS,
    VLAN_MAX_DEPTH,
};
use network_types::{arp::ArpHdr, eth::EthHdr, ip::Ipv4Hdr, udp::UdpHdr, vlan::VlanHdr};

/// Segment -> its slot in `SEGMENT_COUNTERS`. Added here on a segment's first frame, read by
/// the agent to label the slots. Size set by the loader (same as `SEGMENT_COUNTERS`).
#[map]
static SEGMENT_SLOTS: HashMap<SegmentKey, u32> = HashMap::with_max_entries(map_sizes::SEGMENTS, 0);

/// Per-segment frame counters, one slot per segment, per CPU; read and summed by the agent at
/// scrape time. Bounded: once every slot is taken, new segments go to `OVERFLOW_COUNTERS`.
#[map]
static SEGMENT_COUNTERS: PerCpuArray<SegmentCounters> =
    PerCpuArray::with_max_entries(map_sizes::SEGMENTS, 0);

/// Slot -> the segment that claimed it. A `BPF_NOEXIST` insert here is how a CPU claims a
/// slot: atomic under the bucket lock, and it needs no atomic instructions (the object is built
/// for BPF CPU v1). Size set by the loader (same as `SEGMENT_COUNTERS`).
#[map]
static SLOT_OWNERS: HashMap<u32, SegmentKey> = HashMap::with_max_entries(map_sizes::SEGMENTS, 0);

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
static BINDINGS: LruHashMap<BindingKey, BindingValue> =
    LruHashMap::with_max_entries(map_sizes::BINDINGS, 0);

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

/// ARP binding changes, DHCP messages, loop and scan signals for the agent. Size set by the
/// loader.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(map_sizes::RINGBUF_BYTES, 0);

/// ARP events the token bucket or a full ring buffer held back, newest per binding; the agent
/// drains them in batches. A plain hash, not LRU: when it is full nothing already waiting is
/// evicted, the new event is counted lost and its binding left unremembered, so its next frame
/// tries again. Size set by the loader.
#[map]
static PENDING_ARP: HashMap<BindingKey, ArpEvent> =
    HashMap::with_max_entries(map_sizes::PENDING_ARP, 0);

/// State-bearing DHCP messages (OFFER, DECLINE, ACK, NAK, RELEASE) held back likewise.
#[map]
static PENDING_DHCP: HashMap<PendingDhcpKey, DhcpEvent> =
    HashMap::with_max_entries(map_sizes::PENDING_DHCP, 0);

/// Group-addressed frames by hash of their first bytes, per segment: a frame that comes back
/// again and again within one window is going round a loop. Kernel only.
#[map]
static FRAMES_SEEN: LruHashMap<FrameKey, FrameSeen> =
    LruHashMap::with_max_entries(map_sizes::FRAMES_SEEN, 0);

/// The ARP binding this CPU decided on last and when: see `arp_binding`. Kernel only.
#[map]
static BINDING_RUN: PerCpuArray<BindingRun> = PerCpuArray::with_max_entries(1, 0);

/// The frame this CPU saw last, while it keeps coming: see `check_loop`. Kernel only.
#[map]
static LOOP_RUN: PerCpuArray<LoopRun> = PerCpuArray::with_max_entries(1, 0);

/// Distinct targets each ARP sender asked for in the current window (a hashed bitmap).
/// Kernel only.
#[map]
static ARP_SCANS: LruHashMap<ScanKey, ScanState> =
    LruHashMap::with_max_entries(map_sizes::ARP_SCANS, 0);

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
const MILLIS: u64 = 1_000_000;
/// "Not read yet" for the per-frame clock. Not zero: an all-zero `Segment` compiles to a call
/// of a BPF memset routine on every frame.
const CLOCK_UNSET: u64 = u64::MAX;
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
struct Segment {
    key: SegmentKey,
    depth: usize,
    /// The kernel clock, read at most once per frame ([`CLOCK_UNSET`]: not yet).
    clock: core::cell::Cell<u64>,
}

impl Segment {
    /// Monotonic time at tick resolution, read on first use: frames that need no time (most)
    /// pay nothing, and those that do read it once.
    #[inline(always)]
    fn now(&self) -> u64 {
        let t = self.clock.get();
        if t != CLOCK_UNSET {
            return t;
        }
        let t = now_ns();
        self.clock.set(t);
        t
    }
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
        clock: core::cell::Cell::new(CLOCK_UNSET),
    };
    let mut cur = Cursor::new(ctx);
    let walked = walk_tags(&mut cur, &mut seg);
    let Some(slot) = segment_counters(&seg) else {
        return;
    };
    let mut counts = Counts(slot);
    counts.add(Counter::Frames);
    counts.add(Counter::for_depth(seg.depth));
    if group_destination(ctx) {
        counts.add(Counter::Broadcast);
        if let Walk::EtherType(eth, ether_type) = walked {
            check_loop(ctx, &seg, eth, ether_type, &mut counts);
        }
    }
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

/// True when the destination MAC has the group (I/G) bit: broadcast or multicast.
#[inline(always)]
fn group_destination(ctx: &XdpContext) -> bool {
    let mut cur = Cursor::new(ctx);
    match cur.take::<EthHdr>() {
        // SAFETY: bounds checked by `take`.
        Some(eth) => unsafe { &*eth }.dst_addr[0] & 1 != 0,
        None => false,
    }
}

/// Where the Ethernet/VLAN walk ended.
#[derive(Clone, Copy)]
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
    if op == 1 && spa != tpa {
        check_scan(seg, arp, cfg, counts);
    }
    if cfg.flags & config_flags::ARP_EVENTS == 0 {
        return;
    }
    let b = ArpFrame {
        eth,
        arp,
        op,
        flags,
    };
    if !spa_zero {
        arp_binding(ctx, seg, &b, binding_kind::SENDER, spa, cfg, counts);
    } else if flags & arp_flags::PROBE != 0 {
        arp_binding(ctx, seg, &b, binding_kind::PROBE, tpa, cfg, counts);
    }
}

/// The parts of an ARP frame an event is built from.
struct ArpFrame<'a> {
    eth: &'a EthHdr,
    arp: &'a ArpHdr,
    op: u16,
    flags: u16,
}

/// Reports `ip` -> sender MAC if it is new, changed, or due for a refresh; else suppresses it.
/// An event the token bucket or the ring buffer holds back goes to `PENDING_ARP`.
#[inline(always)]
fn arp_binding(
    ctx: &XdpContext,
    seg: &Segment,
    b: &ArpFrame,
    binding: u8,
    ip: [u8; 4],
    cfg: &Config,
    counts: &mut Counts,
) {
    let key = BindingKey {
        ifindex: seg.key.ifindex,
        outer_vid: seg.key.outer_vid,
        inner_vid: seg.key.inner_vid,
        ip,
        kind: binding,
        _pad: 0,
        _pad2: 0,
    };
    let mac = b.arp.sha;
    let now = seg.now();
    // The same binding again on this CPU within the same clock tick gets the same answer
    // without the shared map: a storm of one frame costs no hash lookup, and a change another
    // CPU saw is still seen, at most one tick late. (Refresh 0 reports every frame: no run.)
    let run = BINDING_RUN.get_ptr_mut(0);
    if let Some(run) = run {
        // SAFETY: per-CPU map value, only this CPU touches it while the program runs.
        let run = unsafe { &*run };
        if run.at_ns == now && cfg.refresh_ns != 0 && run.key == key && run.mac == mac {
            bump_stat(Stat::ArpSuppressed);
            return;
        }
    }
    let mut changed_from = None;
    // SAFETY: the value is plain data; a concurrent update can at worst give a stale MAC,
    // which only causes one extra or one missed refresh.
    let kind = match unsafe { BINDINGS.get(key) } {
        None => event_kind::ARP_NEW,
        Some(prev) if prev.mac != mac => {
            changed_from = Some(prev.mac);
            event_kind::ARP_CHANGED
        }
        Some(prev) => {
            if now.wrapping_sub(prev.reported_ns) < cfg.refresh_ns {
                bump_stat(Stat::ArpSuppressed);
                note_run(run, &key, mac, now);
                return;
            }
            event_kind::ARP_REFRESH
        }
    };
    if kind != event_kind::ARP_REFRESH {
        counts.add(Counter::ArpBindingsNew);
    }
    let ev = ArpEvent {
        header: header(kind, seg, now),
        op: b.op,
        flags: b.flags,
        ip,
        mac,
        old_mac: changed_from.unwrap_or([0; 6]),
        sender_ip: b.arp.spa,
        target_ip: b.arp.tpa,
        target_mac: b.arp.tha,
        eth_src: b.eth.src_addr,
        binding,
        _pad: [0; 7],
    };
    if !take_token(Bucket::Arp, cfg, now) {
        bump_stat(Stat::ArpRateLimited);
        if defer_arp(&key, &ev, now) {
            note_run(run, &key, mac, now);
        }
        return;
    }
    if EVENTS.output::<ArpEvent>(&ev, 0).is_err() {
        bump_stat(Stat::ArpRingbufFull);
        if defer_arp(&key, &ev, now) {
            note_run(run, &key, mac, now);
        }
        return;
    }
    note_run(run, &key, mac, now);
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
    remember(&key, mac, now);
}

/// Parks a held-back ARP event for the agent's next drain (the newest per binding wins);
/// false when the pending map is full (then the binding is not remembered: it is retried).
#[inline(always)]
fn defer_arp(key: &BindingKey, ev: &ArpEvent, now: u64) -> bool {
    if PENDING_ARP.insert(key, ev, 0).is_ok() {
        bump_stat(Stat::ArpDeferred);
        remember(key, ev.mac, now);
        true
    } else {
        bump_stat(Stat::ArpPendingFull);
        false
    }
}

/// Records the binding this CPU just decided on, reported or suppressed.
#[inline(always)]
fn note_run(run: Option<*mut BindingRun>, key: &BindingKey, mac: [u8; 6], now: u64) {
    if let Some(run) = run {
        // SAFETY: per-CPU map value, only this CPU touches it while the program runs.
        let run = unsafe { &mut *run };
        run.key = *key;
        run.mac = mac;
        run.at_ns = now;
    }
}

/// Only a reported (sent or parked) binding is remembered, so a lost event is retried on the
/// next frame.
#[inline(always)]
fn remember(key: &BindingKey, mac: [u8; 6], now: u64) {
    let value = BindingValue {
        mac,
        _pad: [0; 2],
        reported_ns: now,
    };
    if BINDINGS.insert(key, value, 0).is_err() {
        bump_stat(Stat::BindingMapFull);
    }
}

/// The clock of the loop and scan windows: the kernel's, or the capture's in replay.
#[inline(always)]
fn window_now(cfg: &Config, seg: &Segment) -> u64 {
    if cfg.clock_ns != 0 {
        cfg.clock_ns
    } else {
        seg.now()
    }
}

/// Counts a group-addressed frame by the hash of its first bytes; past `loop_repeats` copies
/// within one window it is going round a loop: counted per frame, one event per window.
#[inline(always)]
fn check_loop(ctx: &XdpContext, seg: &Segment, eth: &EthHdr, ether_type: u16, counts: &mut Counts) {
    let Some(cfg) = CONFIG.get(0) else { return };
    if cfg.loop_repeats == 0 {
        return;
    }
    let frame_len = ctx.data_end() - ctx.data();
    let n = if frame_len > LOOP_HASH_BYTES {
        LOOP_HASH_BYTES
    } else {
        frame_len
    };
    // The verifier needs the length provably in 1..=LOOP_HASH_BYTES; the frame holds an
    // Ethernet header, so n >= 14 and this mask keeps it as it is.
    let n = ((n as u32).wrapping_sub(1) & (LOOP_HASH_BYTES as u32 - 1)) + 1;
    // Zeroed word by word: `[0; 8]` compiles to a call of a BPF memset routine, a tenth of
    // this function's cost on a storm of one frame.
    let mut words: [u64; LOOP_HASH_BYTES / 8] = [1; LOOP_HASH_BYTES / 8];
    for w in words.iter_mut() {
        // SAFETY: a valid, aligned pointer to our own stack array.
        unsafe { core::ptr::write_volatile(w, 0) };
    }
    // SAFETY: `words` has LOOP_HASH_BYTES bytes and n is at most that.
    if unsafe { bpf_xdp_load_bytes(ctx.ctx, 0, words.as_mut_ptr() as *mut _, n) } != 0 {
        return;
    }
    // FNV-1a over 64-bit words, then the length: identical copies hash alike, cheaply.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for w in words {
        hash = (hash ^ w).wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash = (hash ^ frame_len as u64).wrapping_mul(0x0000_0100_0000_01b3);
    let key = FrameKey {
        hash,
        ifindex: seg.key.ifindex,
        outer_vid: seg.key.outer_vid,
        inner_vid: seg.key.inner_vid,
    };
    let now = window_now(cfg, seg);
    let window = cfg.loop_window_ms as u64 * MILLIS;
    // A run of copies of one frame on this CPU (a loop, or one sender's storm) is counted in
    // the per-CPU run cache without a hash lookup. A run's first copy counts in the shared map
    // (so interleaved frames are counted too), and a run of more than one copy is written back
    // when another frame ends it; distinct frames, the common case, cost no write-back.
    let Some(run) = LOOP_RUN.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU map value, only this CPU touches it while the program runs.
    let run = unsafe { &mut *run };
    let first = run.key != key || run.copies == 0;
    if first {
        if run.copies > 1 {
            let _ = FRAMES_SEEN.insert(run.key, run.seen, 0);
        }
        run.key = key;
        run.copies = 0;
    }
    run.copies += 1;
    let seen: *mut FrameSeen = if first {
        match FRAMES_SEEN.get_ptr_mut(key) {
            Some(p) => p,
            None => {
                let fresh = FrameSeen {
                    window_start_ns: now,
                    count: 1,
                    reported: 0,
                };
                let _ = FRAMES_SEEN.insert(key, fresh, 0);
                run.seen = fresh;
                return;
            }
        }
    } else {
        &mut run.seen
    };
    // SAFETY: a shared map value (a concurrent update from another CPU only blurs the count)
    // or this CPU's run cache.
    let seen = unsafe { &mut *seen };
    if now.wrapping_sub(seen.window_start_ns) > window {
        seen.window_start_ns = now;
        seen.count = 0;
        seen.reported = 0;
    }
    seen.count += 1;
    let past = seen.count > cfg.loop_repeats;
    let report = past && seen.reported == 0;
    if report {
        seen.reported = 1;
    }
    let count = seen.count;
    if first {
        run.seen = *seen;
    }
    if !past {
        return;
    }
    counts.add(Counter::LoopRepeats);
    if !report {
        return;
    }
    let ev = LoopEvent {
        header: header(event_kind::LOOP, seg, seg.now()),
        hash,
        count,
        window_ms: cfg.loop_window_ms,
        eth_dst: eth.dst_addr,
        eth_src: eth.src_addr,
        ether_type,
        frame_len: frame_len as u16,
        _pad: [0; 8],
    };
    if EVENTS.output::<LoopEvent>(&ev, 0).is_ok() {
        bump_stat(Stat::LoopEventsSent);
    } else {
        bump_stat(Stat::SignalRingbufFull);
    }
}

/// Marks the request's target in its sender's bitmap; a sender that reaches `scan_targets`
/// distinct targets within one window is scanning: counted, one event per window.
#[inline(always)]
fn check_scan(seg: &Segment, arp: &ArpHdr, cfg: &Config, counts: &mut Counts) {
    if cfg.scan_targets == 0 {
        return;
    }
    let key = ScanKey {
        ifindex: seg.key.ifindex,
        outer_vid: seg.key.outer_vid,
        inner_vid: seg.key.inner_vid,
        mac: arp.sha,
        _pad: 0,
    };
    // Multiplicative hash of the target address into one of 256 bits.
    let bit = (u32::from_ne_bytes(arp.tpa).wrapping_mul(0x9e37_79b1) >> 24) as usize;
    let word = (bit >> 6) & (SCAN_BITMAP_WORDS - 1);
    let mask = 1u64 << (bit & 63);
    let now = window_now(cfg, seg);
    let Some(st) = ARP_SCANS.get_ptr_mut(key) else {
        let mut fresh = ScanState {
            window_start_ns: now,
            bitmap: [0; SCAN_BITMAP_WORDS],
            targets: 1,
            requests: 1,
            reported: 0,
            _pad: 0,
        };
        fresh.bitmap[word] = mask;
        let _ = ARP_SCANS.insert(key, fresh, 0);
        return;
    };
    // SAFETY: map value; a concurrent update from another CPU only blurs the estimate.
    let st = unsafe { &mut *st };
    if now.wrapping_sub(st.window_start_ns) > cfg.scan_window_ms as u64 * MILLIS {
        st.window_start_ns = now;
        st.bitmap = [0; SCAN_BITMAP_WORDS];
        st.targets = 0;
        st.requests = 0;
        st.reported = 0;
    }
    st.requests += 1;
    if st.bitmap[word] & mask == 0 {
        st.bitmap[word] |= mask;
        st.targets += 1;
    }
    if st.targets < cfg.scan_targets || st.reported != 0 {
        return;
    }
    st.reported = 1;
    counts.add(Counter::ArpScans);
    let ev = ScanEvent {
        header: header(event_kind::SCAN, seg, seg.now()),
        mac: arp.sha,
        _pad: [0; 2],
        sender_ip: arp.spa,
        last_target: arp.tpa,
        targets: st.targets,
        requests: st.requests,
        window_ms: cfg.scan_window_ms,
        _pad2: 0,
    };
    if EVENTS.output::<ScanEvent>(&ev, 0).is_ok() {
        bump_stat(Stat::ScanEventsSent);
    } else {
        bump_stat(Stat::SignalRingbufFull);
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
    let now = seg.now();
    // A storm's DISCOVERs may be dropped (counted); leases, servers and conflicts may not.
    let stateful = dhcp_type_is_stateful(msg_type);
    let allowed = take_token(Bucket::Dhcp, cfg, now);
    if !allowed {
        bump_stat(Stat::DhcpRateLimited);
        if !stateful {
            return;
        }
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
    if allowed {
        if EVENTS.output::<DhcpEvent>(&*ev, 0).is_ok() {
            bump_stat(Stat::DhcpEventsSent);
            return;
        }
        bump_stat(Stat::DhcpRingbufFull);
        if !stateful {
            return;
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
