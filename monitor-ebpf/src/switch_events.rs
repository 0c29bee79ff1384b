//! Switch-protocol events, in their own program: the classifier (`switch`) counts an LLDP,
//! CDP, BPDU or LACPDU frame and queues a [`SwitchJob`] in a per-CPU slot, then tail-calls
//! `l2watch_switch`, which copies the PDU with `bpf_xdp_load_bytes`, hashes it, and reports
//! it only when the hash differs from the sender's last (`SWITCH_SEEN`, per segment, source
//! MAC, protocol and, for BPDUs, the sender's bridge priority, which holds the PVST+ VLAN).
//! The steady stream of identical PDUs a switch sends every few seconds costs the agent
//! nothing; one copy per refresh interval (`refresh_ns`, as for bindings) tells it the
//! sender is still there, so a condition that holds keeps its finding open. BPDUs announcing a topology change are reported every time: their rate is what
//! the agent watches. What the token bucket or a full ring buffer holds back waits in
//! `PENDING_SWITCH`, newest per sender.
use aya_ebpf::{
    helpers::generated::{bpf_xdp_get_buff_len, bpf_xdp_load_bytes},
    programs::XdpContext,
};
use monitor_common::{
    config_flags, Bucket, EventKind, RouterSeen, Stat, SwitchEvent, SwitchKey, SwitchProto,
    SWITCH_PAYLOAD_MAX,
};

use crate::{
    maps::{
        bump_stat, config, per_cpu, EVENTS, PENDING_SWITCH, SWITCH_JOB, SWITCH_SCRATCH, SWITCH_SEEN,
    },
    rate::take_token,
    segment::Segment,
};

/// Words of the payload the hash reads.
const WORDS: usize = SWITCH_PAYLOAD_MAX / 8;

/// The `l2watch_switch` program: the job the classifier queued on this CPU.
#[inline(always)]
pub fn run(ctx: &XdpContext) {
    let Some(j) = per_cpu(&SWITCH_JOB) else {
        return;
    };
    let job = *j;
    j.proto = 0;
    if job.proto == 0 {
        return;
    }
    let Some(cfg) = config() else { return };
    if cfg.flags & config_flags::SWITCH_EVENTS == 0 {
        return;
    }
    let Some(ev) = per_cpu(&SWITCH_SCRATCH) else {
        return;
    };
    let mut eth = [0u8; 12];
    // SAFETY: the destination is a local array of 12 bytes; the helper bounds-checks the
    // packet side.
    if unsafe { bpf_xdp_load_bytes(ctx.ctx, 0, eth.as_mut_ptr() as *mut _, 12) } != 0 {
        return;
    }
    // SAFETY: reads the length of the frame this program runs on.
    let frame = unsafe { bpf_xdp_get_buff_len(ctx.ctx) } as u32;
    let rest = frame.saturating_sub(job.start);
    let pdu_len = if job.len == 0 || job.len > rest {
        rest
    } else {
        job.len
    };
    let wanted = if pdu_len > SWITCH_PAYLOAD_MAX as u32 {
        SWITCH_PAYLOAD_MAX as u32
    } else {
        pdu_len
    };
    // The verifier needs the length provably in 1..=SWITCH_PAYLOAD_MAX.
    let len = wanted & (2 * SWITCH_PAYLOAD_MAX as u32 - 1);
    // SAFETY: the destination is the scratch payload of SWITCH_PAYLOAD_MAX bytes and `len`
    // is at most that; the helper bounds-checks the packet side itself.
    if len == 0
        || len > SWITCH_PAYLOAD_MAX as u32
        || unsafe { bpf_xdp_load_bytes(ctx.ctx, job.start, ev.payload.as_mut_ptr() as *mut _, len) }
            != 0
    {
        bump_stat(Stat::SwitchCopyFailed);
        return;
    }
    let hash = content_hash(&ev.payload, len as usize, job.proto);
    let p = &ev.payload;
    let bpdu = job.proto == SwitchProto::Stp as u8 || job.proto == SwitchProto::Pvst as u8;
    let sub = if bpdu && len >= 19 {
        u16::from_be_bytes([p[17], p[18]])
    } else {
        0
    };
    let mut seg = Segment::new(job.ifindex);
    seg.key.outer_vid = job.outer_vid;
    seg.key.inner_vid = job.inner_vid;
    seg.depth = job.depth as usize;
    let now = seg.now();
    let key = SwitchKey {
        ifindex: job.ifindex,
        outer_vid: job.outer_vid,
        inner_vid: job.inner_vid,
        mac: [eth[6], eth[7], eth[8], eth[9], eth[10], eth[11]],
        proto: job.proto,
        _pad: 0,
        sub,
        _pad2: 0,
    };
    // SAFETY: plain data; a concurrent update can at worst cost one extra event.
    if let Some(prev) = unsafe { SWITCH_SEEN.get(key) } {
        if prev.hash == hash
            && job.topology_change == 0
            && now.wrapping_sub(prev.reported_ns) < cfg.refresh_ns
        {
            bump_stat(Stat::SwitchSuppressed);
            return;
        }
    }
    ev.header = seg.header(EventKind::SwitchPdu, now);
    ev.eth_dst = [eth[0], eth[1], eth[2], eth[3], eth[4], eth[5]];
    ev.eth_src = key.mac;
    ev.proto = job.proto;
    ev._pad = 0;
    ev.wire_len = if pdu_len > 0xffff {
        0xffff
    } else {
        pdu_len as u16
    };
    ev.payload_len = len as u16;
    ev._pad2 = [0; 6];
    let allowed = take_token(Bucket::Switch, cfg, now);
    if !allowed {
        bump_stat(Stat::SwitchRateLimited);
    }
    if allowed && EVENTS.output::<SwitchEvent>(&*ev, 0).is_ok() {
        bump_stat(Stat::SwitchEventsSent);
    } else {
        if allowed {
            bump_stat(Stat::SwitchRingbufFull);
        }
        // The map value by reference: the event would not fit the BPF stack.
        #[allow(clippy::needless_borrows_for_generic_args)]
        let parked = PENDING_SWITCH.insert(key, &*ev, 0);
        if parked.is_ok() {
            bump_stat(Stat::SwitchDeferred);
        } else {
            // Not remembered: the sender's next PDU tries again.
            bump_stat(Stat::SwitchPendingFull);
            return;
        }
    }
    let seen = RouterSeen {
        hash,
        reported_ns: now,
    };
    // An LRU map: when full it forgets the oldest sender, which is at worst reported again.
    let _ = SWITCH_SEEN.insert(key, seen, 0);
}

/// A 64-bit hash of the first `len` bytes of `p`, word by word (bytes past `len` in the last
/// word are masked: the scratch slot holds an older PDU there).
#[inline(always)]
fn content_hash(p: &[u8; SWITCH_PAYLOAD_MAX], len: usize, proto: u8) -> u64 {
    let mut h: u64 = (len as u64) << 8 | proto as u64;
    for i in 0..WORDS {
        let o = i * 8;
        if o >= len {
            break;
        }
        let mut w = u64::from_le_bytes([
            p[o],
            p[o + 1],
            p[o + 2],
            p[o + 3],
            p[o + 4],
            p[o + 5],
            p[o + 6],
            p[o + 7],
        ]);
        let left = len - o;
        if left < 8 {
            w &= (1u64 << (left * 8)) - 1;
        }
        h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
    }
    h
}
