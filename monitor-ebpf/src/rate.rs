//! Token buckets, one per event class per CPU: they protect the agent during storms. What a
//! bucket holds back is parked in the pending maps (ARP, state-bearing DHCP), not lost.
use monitor_common::{config_flags, Bucket, Config};

use crate::maps::RATE_BUCKETS;

pub const NANOS: u64 = 1_000_000_000;
/// Longest idle time the token bucket refills for; caps `elapsed * rate` far below u64::MAX.
const BUCKET_MAX_IDLE_NS: u64 = 10 * NANOS;

/// True when an event of `bucket` may be sent now.
#[inline(always)]
pub fn take_token(bucket: Bucket, cfg: &Config, now: u64) -> bool {
    if cfg.flags & config_flags::RATE_LIMIT == 0 {
        return true;
    }
    let (rate, burst) = match bucket {
        Bucket::Arp => (cfg.arp_rate_per_sec as u64, cfg.arp_burst as u64),
        Bucket::Dhcp => (cfg.dhcp_rate_per_sec as u64, cfg.dhcp_burst as u64),
        Bucket::Nd => (cfg.nd_rate_per_sec as u64, cfg.nd_burst as u64),
        Bucket::Switch => (cfg.switch_rate_per_sec as u64, cfg.switch_burst as u64),
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
