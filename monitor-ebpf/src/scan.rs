//! ARP scan detection: a hashed bitmap of the targets each sender asked for in the current
//! window; a sender that reaches `scan_targets` distinct targets is scanning, counted per
//! frame and reported once per window.
use monitor_common::{
    Config, Counter, EventKind, ScanEvent, ScanKey, ScanState, Stat, SCAN_BITMAP_WORDS,
};
use network_types::arp::ArpHdr;

use crate::{
    maps::{bump_stat, ARP_SCANS, EVENTS},
    segment::{Counts, Segment},
};

const MILLIS: u64 = 1_000_000;

/// Marks the request's target in its sender's bitmap.
#[inline(always)]
pub fn check(seg: &Segment, arp: &ArpHdr, cfg: &Config, counts: &mut Counts) {
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
    let now = seg.window_now(cfg);
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
        header: seg.header(EventKind::Scan, seg.now()),
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
