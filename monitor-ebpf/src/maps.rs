//! Every map of the classifier, one doc comment each: what it holds and who reads it. Sizes
//! come from `monitor_common::map_sizes`; the loader overrides the configurable ones (and
//! checks at load time that each map it sizes is here).
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
};
use monitor_common::{
    jump, map_sizes, ArpEvent, BindingKey, BindingRun, BindingValue, Bucket, BucketState, Config,
    DhcpEvent, FrameKey, FrameSeen, Ip6Event, LoopRun, NdEvent, NdKey, PendingDhcpKey, RouterKey,
    RouterSeen, ScanKey, ScanState, SegmentCacheEntry, SegmentCounters, SegmentKey, Stat,
    SwitchEvent, SwitchKey, VLAN_MAX_DEPTH,
};

/// Segment -> its slot in `SEGMENT_COUNTERS`. Added here on a segment's first frame, read by
/// the agent to label the slots. Size set by the loader (same as `SEGMENT_COUNTERS`).
#[map]
pub static SEGMENT_SLOTS: HashMap<SegmentKey, u32> =
    HashMap::with_max_entries(map_sizes::SEGMENTS, 0);

/// Per-segment frame counters, one slot per segment, per CPU; read and summed by the agent at
/// scrape time. Bounded: once every slot is taken, new segments go to `OVERFLOW_COUNTERS`.
#[map]
pub static SEGMENT_COUNTERS: PerCpuArray<SegmentCounters> =
    PerCpuArray::with_max_entries(map_sizes::SEGMENTS, 0);

/// Slot -> the segment that claimed it. A `BPF_NOEXIST` insert here is how a CPU claims a
/// slot: atomic under the bucket lock, and it needs no atomic instructions (the object is built
/// for BPF CPU v1). Size set by the loader (same as `SEGMENT_COUNTERS`).
#[map]
pub static SLOT_OWNERS: HashMap<u32, SegmentKey> =
    HashMap::with_max_entries(map_sizes::SEGMENTS, 0);

/// Hint for the next free slot; a stale read only costs a failed claim.
#[map]
pub static NEXT_SLOT: Array<u32> = Array::with_max_entries(1, 0);

/// The segment each CPU saw last and its slot. Frames arrive in runs per segment, and a hit
/// costs two inlined per-CPU array lookups instead of a hash lookup.
#[map]
pub static SEGMENT_CACHE: PerCpuArray<SegmentCacheEntry> = PerCpuArray::with_max_entries(1, 0);

/// Counters for frames whose segment did not fit in `SEGMENT_COUNTERS`, indexed by tag depth
/// (0..=VLAN_MAX_DEPTH) so tagged and untagged totals stay exact. Read by the agent.
#[map]
pub static OVERFLOW_COUNTERS: PerCpuArray<SegmentCounters> =
    PerCpuArray::with_max_entries(VLAN_MAX_DEPTH as u32 + 1, 0);

/// Self-monitoring counters indexed by `Stat`: every event or count lost is counted here.
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Stat::COUNT as u32, 0);

/// Last reported MAC per (segment, IP, kind): suppresses exact repeats within the refresh
/// interval so an ARP storm of one binding costs userspace nothing. Written only here.
#[map]
pub static BINDINGS: LruHashMap<BindingKey, BindingValue> =
    LruHashMap::with_max_entries(map_sizes::BINDINGS, 0);

/// Runtime configuration, index 0, written by the agent.
#[map]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// Token buckets indexed by `Bucket`, per CPU; protect userspace during storms.
#[map]
pub static RATE_BUCKETS: PerCpuArray<BucketState> =
    PerCpuArray::with_max_entries(Bucket::COUNT as u32, 0);

/// Per-CPU slot where a DHCP event is assembled before `bpf_ringbuf_output` copies it out:
/// one code path whether or not the event is sent, and no large struct on the BPF stack.
#[map]
pub static DHCP_SCRATCH: PerCpuArray<DhcpEvent> = PerCpuArray::with_max_entries(1, 0);

/// ARP binding changes, DHCP messages, loop and scan signals for the agent. Size set by the
/// loader.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(map_sizes::RINGBUF_BYTES, 0);

/// ARP events the token bucket or a full ring buffer held back, newest per binding; the agent
/// drains them in batches. A plain hash, not LRU: when it is full nothing already waiting is
/// evicted, the new event is counted lost and its binding left unremembered, so its next frame
/// tries again. Size set by the loader.
#[map]
pub static PENDING_ARP: HashMap<BindingKey, ArpEvent> =
    HashMap::with_max_entries(map_sizes::PENDING_ARP, 0);

/// State-bearing DHCP messages (OFFER, DECLINE, ACK, NAK, RELEASE) held back likewise.
#[map]
pub static PENDING_DHCP: HashMap<PendingDhcpKey, DhcpEvent> =
    HashMap::with_max_entries(map_sizes::PENDING_DHCP, 0);

/// Group-addressed frames by hash of their first bytes, per segment: a frame that comes back
/// again and again within one window is going round a loop. Kernel only.
#[map]
pub static FRAMES_SEEN: LruHashMap<FrameKey, FrameSeen> =
    LruHashMap::with_max_entries(map_sizes::FRAMES_SEEN, 0);

/// The ARP binding this CPU decided on last and when: see `arp_binding`. Kernel only.
#[map]
pub static BINDING_RUN: PerCpuArray<BindingRun> = PerCpuArray::with_max_entries(1, 0);

/// The frame this CPU saw last, while it keeps coming: see `check_loop`. Kernel only.
#[map]
pub static LOOP_RUN: PerCpuArray<LoopRun> = PerCpuArray::with_max_entries(1, 0);

/// Distinct targets each ARP sender asked for in the current window (a hashed bitmap).
/// Kernel only.
#[map]
pub static ARP_SCANS: LruHashMap<ScanKey, ScanState> =
    LruHashMap::with_max_entries(map_sizes::ARP_SCANS, 0);

/// Last reported MAC per (segment, IPv6 address): `BINDINGS` for neighbour discovery, so a
/// steady stream of NS/NA for known neighbours costs userspace nothing. Written only here.
/// Size set by the loader.
#[map]
pub static ND_BINDINGS: LruHashMap<NdKey, BindingValue> =
    LruHashMap::with_max_entries(map_sizes::ND_BINDINGS, 0);

/// ND binding and DAD probe events held back, newest per key; a plain hash like
/// `PENDING_ARP`. Size set by the loader.
#[map]
pub static PENDING_ND: HashMap<NdKey, NdEvent> =
    HashMap::with_max_entries(map_sizes::PENDING_ND, 0);

/// Each router's last reported advertisement, as a content hash: an unchanged RA within the
/// refresh interval is suppressed, a changed one is sent at once. Kernel only.
#[map]
pub static ROUTERS_SEEN: LruHashMap<RouterKey, RouterSeen> =
    LruHashMap::with_max_entries(map_sizes::ROUTERS_SEEN, 0);

/// Each router's newest held-back RA. Size set by the loader.
#[map]
pub static PENDING_RA: HashMap<RouterKey, Ip6Event> =
    HashMap::with_max_entries(map_sizes::PENDING_RA, 0);

/// State-bearing DHCPv6 messages held back, like `PENDING_DHCP`. Size set by the loader.
#[map]
pub static PENDING_DHCP6: HashMap<PendingDhcpKey, Ip6Event> =
    HashMap::with_max_entries(map_sizes::PENDING_DHCP6, 0);

/// Per-CPU slot where an RA or DHCPv6 event is assembled (and an RA hashed) before it is sent
/// or parked: no 1 KiB struct on the BPF stack.
#[map]
pub static IP6_SCRATCH: PerCpuArray<Ip6Event> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU slot where an ND binding or DAD event is assembled: the classifier's inlined
/// frame is already near the 512-byte BPF stack.
#[map]
pub static ND_SCRATCH: PerCpuArray<NdEvent> = PerCpuArray::with_max_entries(1, 0);

/// The programs the classifier tail-calls ([`monitor_common::jump`]); filled by the loader.
#[map]
pub static JUMPS: ProgramArray = ProgramArray::with_max_entries(jump::COUNT, 0);

/// The job the classifier queued for `l2watch_ip6` on this CPU.
#[map]
pub static IP6_JOB: PerCpuArray<crate::ip6_events::Ip6Job> = PerCpuArray::with_max_entries(1, 0);

/// Each switch-protocol sender's last reported PDU, as a content hash: an unchanged PDU is
/// suppressed, a changed one is sent at once. Kernel only.
#[map]
pub static SWITCH_SEEN: LruHashMap<SwitchKey, RouterSeen> =
    LruHashMap::with_max_entries(map_sizes::SWITCH_SEEN, 0);

/// Each switch-protocol sender's newest held-back PDU. Size set by the loader.
#[map]
pub static PENDING_SWITCH: HashMap<SwitchKey, SwitchEvent> =
    HashMap::with_max_entries(map_sizes::PENDING_SWITCH, 0);

/// Per-CPU slot where a switch PDU is copied and hashed before it is sent or parked.
#[map]
pub static SWITCH_SCRATCH: PerCpuArray<SwitchEvent> = PerCpuArray::with_max_entries(1, 0);

/// The job the classifier queued for `l2watch_switch` on this CPU.
#[map]
pub static SWITCH_JOB: PerCpuArray<crate::switch::SwitchJob> = PerCpuArray::with_max_entries(1, 0);

/// Counts one self-monitoring event.
#[inline(always)]
pub fn bump_stat(s: Stat) {
    if let Some(v) = STATS.get_ptr_mut(s as u32) {
        // SAFETY: per-CPU value, only this CPU touches it while the program runs.
        unsafe { *v += 1 };
    }
}

/// The configuration the agent wrote (index 0 is always present in an array map).
#[inline(always)]
pub fn config() -> Option<&'static Config> {
    CONFIG.get(0)
}

/// This CPU's value in a one-entry per-CPU scratch map. A `&mut` from a shared map is sound
/// here for the reason aya's own `get_ptr_mut(&self)` is: the value belongs to this CPU, and
/// the program runs to completion on it; callers take it once per frame.
#[inline(always)]
#[allow(clippy::mut_from_ref)]
pub fn per_cpu<T>(map: &'static PerCpuArray<T>) -> Option<&'static mut T> {
    let p = map.get_ptr_mut(0)?;
    // SAFETY: a per-CPU map value: only this CPU touches it while the program runs, and the
    // program does not re-enter itself on one CPU.
    Some(unsafe { &mut *p })
}
