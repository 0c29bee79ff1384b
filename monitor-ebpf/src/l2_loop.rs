//! Switching-loop detection: every group-addressed frame is hashed (FNV-1a over its first
//! `LOOP_HASH_BYTES`); a frame seen more than `loop_repeats` times within one window is going
//! round a loop, counted per copy and reported once per window.
use aya_ebpf::{helpers::generated::bpf_xdp_load_bytes, programs::XdpContext};
use monitor_common::{Counter, EventKind, FrameKey, FrameSeen, LoopEvent, Stat, LOOP_HASH_BYTES};
use network_types::eth::EthHdr;

use crate::{
    maps::{bump_stat, config, per_cpu, EVENTS, FRAMES_SEEN, LOOP_RUN},
    segment::{Counts, Segment},
};

const MILLIS: u64 = 1_000_000;

/// Counts a group-addressed frame by the hash of its first bytes; past `loop_repeats` copies
/// within one window it is going round a loop: counted per frame, one event per window.
#[inline(always)]
pub fn check(ctx: &XdpContext, seg: &Segment, eth: &EthHdr, ether_type: u16, counts: &mut Counts) {
    let Some(cfg) = config() else { return };
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
    let now = seg.window_now(cfg);
    let window = cfg.loop_window_ms as u64 * MILLIS;
    // A run of copies of one frame on this CPU (a loop, or one sender's storm) is counted in
    // the per-CPU run cache without a hash lookup. A run's first copy counts in the shared map
    // (so interleaved frames are counted too), and a run of more than one copy is written back
    // when another frame ends it; distinct frames, the common case, cost no write-back.
    let Some(run) = per_cpu(&LOOP_RUN) else {
        return;
    };
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
        header: seg.header(EventKind::Loop, seg.now()),
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
