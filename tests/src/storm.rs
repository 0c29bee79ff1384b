//! Storms for the live tests and `cargo xtask bench storm`: a generator namespace and a monitor
//! namespace joined by a veth pair, and the kernel's own generator (BPF_PROG_TEST_RUN live
//! frames redirecting into the veth) offering station after station at a set rate or as fast
//! as the kernel can.
use std::{
    fs::File,
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use l2watch::capture::Storm;

use crate::netns::{veth_pair, Netns};

/// Two namespaces and the veth between them; deleted on drop.
pub struct StormLab {
    pub gen: Netns,
    pub mon: Netns,
    pub gen_if: String,
    pub mon_if: String,
}

impl StormLab {
    pub fn new() -> StormLab {
        let gen = Netns::new("gen");
        let mon = Netns::new("mon");
        let (gen_if, mon_if) = veth_pair(&gen, &mon);
        // NAPI on the receiver, so the veth accepts redirected frames even with no XDP
        // program attached (the "no program" baseline).
        mon.exec(&["ethtool", "-K", &mon_if, "gro", "on"]);
        StormLab {
            gen,
            mon,
            gen_if,
            mon_if,
        }
    }

    /// Offers `total` frames of stations `first .. first + stations` (round robin; 0: one
    /// station) at `pps` frames per second, or as fast as possible when `pps` is None.
    /// Runs in the generator namespace, pinned to `cpu` when given. Returns the time it took.
    pub fn offer(
        &self,
        first: u32,
        stations: u32,
        total: u64,
        pps: Option<u64>,
        cpu: Option<usize>,
    ) -> Duration {
        let nspath = format!("/var/run/netns/{}", self.gen.name);
        let ifindex = self.gen.ifindex(&self.gen_if);
        std::thread::spawn(move || {
            let f = File::open(&nspath).unwrap_or_else(|e| panic!("open {nspath}: {e}"));
            // SAFETY: moves only this thread into the namespace, and pins only this thread.
            unsafe {
                assert_eq!(libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET), 0);
                if let Some(cpu) = cpu {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
                }
            }
            let mut storm = Storm::load(ifindex, first, stations)
                .unwrap_or_else(|e| panic!("loading the storm generator: {e}"));
            let start = Instant::now();
            let mut sent = 0u64;
            while sent < total {
                let n = match pps {
                    None => (total - sent).min(1 << 20),
                    Some(pps) => {
                        // Paced in 1 ms steps: send what the clock says is due.
                        let due = (start.elapsed().as_secs_f64() * pps as f64) as u64;
                        let due = due.min(total);
                        if due <= sent {
                            std::thread::sleep(Duration::from_micros(500));
                            continue;
                        }
                        (due - sent).min(1 << 20)
                    }
                };
                storm
                    .send(n as u32)
                    .unwrap_or_else(|e| panic!("storm generator: {e}"));
                sent += n;
            }
            start.elapsed()
        })
        .join()
        .expect("storm thread panicked")
    }
}

impl Default for StormLab {
    fn default() -> Self {
        Self::new()
    }
}

/// The MAC and IP of storm station `n` (what `monitor-ebpf/src/storm.rs` writes).
pub fn station(n: u32) -> (String, String) {
    let s = n.to_be_bytes();
    let ip = 0xc612_0000u32 | (n & 0x1_ffff);
    (
        format!("02:10:{:02x}:{:02x}:{:02x}:{:02x}", s[0], s[1], s[2], s[3]),
        std::net::Ipv4Addr::from(ip).to_string(),
    )
}
