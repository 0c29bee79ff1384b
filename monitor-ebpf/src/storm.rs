//! The storm generator for tests and `cargo xtask bench storm` (never attached by the agent):
//! run with BPF_PROG_TEST_RUN in live-frames mode, it turns each copy of an ARP template into
//! station `n` of a pattern (MAC 02:10:n, IP 198.18.0.0/15 + n) and redirects it into a veth,
//! which offers far more than an AF_PACKET sender can.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action::XDP_ABORTED,
    helpers::generated::bpf_redirect,
    macros::{map, xdp},
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};
use monitor_common::StormConfig;

/// What to generate, index 0, written by the driver.
#[map]
static STORM_CONFIG: Array<StormConfig> = Array::with_max_entries(1, 0);

/// Frames generated so far on this CPU: the station sequence.
#[map]
static STORM_SEQ: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Offsets in an untagged Ethernet/IPv4 ARP frame.
const ETH_SRC: usize = 6;
const ARP_SHA: usize = 22;
const ARP_SPA: usize = 28;
const ARP_LEN: usize = 42;

#[xdp]
pub fn storm(ctx: XdpContext) -> u32 {
    let Some(cfg) = STORM_CONFIG.get(0) else {
        return XDP_ABORTED;
    };
    let Some(seq) = STORM_SEQ.get_ptr_mut(0) else {
        return XDP_ABORTED;
    };
    // SAFETY: per-CPU map value, only this CPU touches it while the program runs.
    let seq = unsafe { &mut *seq };
    let n = *seq;
    *seq = n + 1;
    let station = if cfg.stations == 0 {
        cfg.first
    } else {
        cfg.first + (n % cfg.stations as u64) as u32
    };
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + ARP_LEN > end {
        return XDP_ABORTED;
    }
    let s = station.to_be_bytes();
    let mac = [0x02, 0x10, s[0], s[1], s[2], s[3]];
    let ip = (0xc612_0000u32 | (station & 0x1_ffff)).to_be_bytes();
    // SAFETY: the frame holds ARP_LEN bytes (checked above); byte writes need no alignment.
    unsafe {
        let p = start as *mut u8;
        for (i, b) in mac.iter().enumerate() {
            *p.add(ETH_SRC + i) = *b;
            *p.add(ARP_SHA + i) = *b;
        }
        for (i, b) in ip.iter().enumerate() {
            *p.add(ARP_SPA + i) = *b;
        }
        bpf_redirect(cfg.ifindex, 0) as u32
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
