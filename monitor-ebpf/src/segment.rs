//! Where a frame sits: its segment (interface and VLAN IDs), the per-segment counter slot it
//! counts into, the per-frame clock, and the header every event starts with. Slots are
//! claimed on a segment's first frame; when all are taken, frames count in the overflow
//! counters by tag depth, so totals stay exact.
use aya_ebpf::{bindings::BPF_NOEXIST, helpers::generated::bpf_ktime_get_coarse_ns};
use monitor_common::{
    Config, Counter, EventHeader, EventKind, SegmentCounters, SegmentKey, Stat, NO_VLAN,
    VLAN_MAX_DEPTH,
};

use crate::maps::{
    bump_stat, per_cpu, NEXT_SLOT, OVERFLOW_COUNTERS, SEGMENT_CACHE, SEGMENT_COUNTERS,
    SEGMENT_SLOTS, SLOT_OWNERS,
};

/// "Not read yet" for the per-frame clock. Not zero: an all-zero `Segment` compiles to a call
/// of a BPF memset routine on every frame.
const CLOCK_UNSET: u64 = u64::MAX;

/// Where the frame sits: filled in by the Ethernet/VLAN walk.
pub struct Segment {
    pub key: SegmentKey,
    /// VLAN tags in front of the payload (VLAN_MAX_DEPTH + 1: more than the walk reads).
    pub depth: usize,
    /// The kernel clock, read at most once per frame ([`CLOCK_UNSET`]: not yet).
    clock: core::cell::Cell<u64>,
}

impl Segment {
    /// An untagged frame on `ifindex`, until the VLAN walk says otherwise.
    #[inline(always)]
    pub fn new(ifindex: u32) -> Segment {
        Segment {
            key: SegmentKey {
                ifindex,
                outer_vid: NO_VLAN,
                inner_vid: NO_VLAN,
            },
            depth: 0,
            clock: core::cell::Cell::new(CLOCK_UNSET),
        }
    }

    /// Monotonic time at tick resolution, read on first use: frames that need no time (most)
    /// pay nothing, and those that do read it once. Refresh intervals and token buckets need
    /// no better, and it is far cheaper than bpf_ktime_get_ns.
    #[inline(always)]
    pub fn now(&self) -> u64 {
        let t = self.clock.get();
        if t != CLOCK_UNSET {
            return t;
        }
        // SAFETY: helper without arguments.
        let t = unsafe { bpf_ktime_get_coarse_ns() };
        self.clock.set(t);
        t
    }

    /// The clock of the loop and scan windows: the kernel's, or the capture's in replay.
    #[inline(always)]
    pub fn window_now(&self, cfg: &Config) -> u64 {
        if cfg.clock_ns != 0 {
            cfg.clock_ns
        } else {
            self.now()
        }
    }

    /// The head of an event about this frame.
    #[inline(always)]
    pub fn header(&self, kind: EventKind, now: u64) -> EventHeader {
        EventHeader {
            kind: kind.code(),
            depth: self.depth as u8,
            _pad: 0,
            ifindex: self.key.ifindex,
            outer_vid: self.key.outer_vid,
            inner_vid: self.key.inner_vid,
            _pad2: 0,
            ktime_ns: now,
        }
    }
}

/// The counters of the frame's segment: each class it belongs to is one increment here.
pub struct Counts(&'static mut SegmentCounters);

impl Counts {
    #[inline(always)]
    pub fn add(&mut self, c: Counter) {
        self.0.counts[c as usize] += 1;
    }
}

/// The counters for `seg`: the per-CPU cached slot, else the slot from `SEGMENT_SLOTS`, else a
/// new slot, else (all slots taken) the overflow counters for the frame's depth.
#[inline(always)]
pub fn counters(seg: &Segment) -> Option<Counts> {
    let cache = per_cpu(&SEGMENT_CACHE)?;
    let slot = if cache.slot_plus_one != 0 && cache.key == seg.key {
        cache.slot_plus_one - 1
    } else {
        // SAFETY: the value is a plain u32 written once.
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
    Some(Counts(unsafe { &mut *counters }))
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
fn overflow_counters(seg: &Segment) -> Option<Counts> {
    let depth = if seg.depth > VLAN_MAX_DEPTH {
        VLAN_MAX_DEPTH
    } else {
        seg.depth
    };
    let p = OVERFLOW_COUNTERS.get_ptr_mut(depth as u32)?;
    // SAFETY: per-CPU map value.
    Some(Counts(unsafe { &mut *p }))
}
