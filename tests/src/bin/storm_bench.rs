//! `cargo xtask bench storm`: the live path end to end under a generator that offers line
//! rate. Each case runs in its own namespaces (`l2watch_tests::storm::StormLab`): the kernel's
//! generator on CPU 0 redirects ARP stations into a veth, and on its other end l2watch (default
//! settings, database on), arpwatch or arpalert runs pinned to CPU 1. Per case and tool:
//! stations recorded, time from the end of the traffic until all were, userspace CPU per
//! million frames and per station, whole-machine kernel CPU per million frames, ring-buffer
//! drops and peak RSS; for the repeated-binding case also receive throughput with l2watch
//! against a bare XDP_PASS program and against no program, measured in the same run.
use std::{
    io::{BufRead, BufReader},
    process::{Child, Stdio},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use l2watch::capture::Baseline;
use l2watch_tests::{http, storm::StormLab};

const PORT: u16 = 19750;
const SETTLE: Duration = Duration::from_secs(5);
/// CPU is read this long after the traffic ends: two of l2watch's store flushes.
const AFTER: Duration = Duration::from_millis(2_500);

#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    first: u32,
    stations: u32,
    frames: u64,
    pps: Option<u64>,
    /// Distinct stations the traffic holds.
    expect: u64,
}

const CASES: &[Case] = &[
    Case {
        name: "65,535 cycling, 10 kpps",
        first: 0,
        stations: 65_535,
        frames: 100_000,
        pps: Some(10_000),
        expect: 65_535,
    },
    Case {
        name: "65,535 cycling, 100 kpps",
        first: 0,
        stations: 65_535,
        frames: 500_000,
        pps: Some(100_000),
        expect: 65_535,
    },
    Case {
        name: "65,535 cycling, 1 Mpps",
        first: 0,
        stations: 65_535,
        frames: 3_000_000,
        pps: Some(1_000_000),
        expect: 65_535,
    },
    Case {
        name: "65,535 cycling, max",
        first: 0,
        stations: 65_535,
        frames: 3_000_000,
        pps: None,
        expect: 65_535,
    },
    Case {
        name: "65,535 in one burst, max",
        first: 0,
        stations: 65_535,
        frames: 65_535,
        pps: None,
        expect: 65_535,
    },
    Case {
        name: "1M unique MACs, max",
        first: 1 << 20,
        stations: 1_000_000,
        frames: 1_000_000,
        pps: None,
        expect: 1_000_000,
    },
    Case {
        name: "one binding repeated, max",
        first: 7,
        stations: 0,
        frames: 5_000_000,
        pps: None,
        expect: 1,
    },
];

#[derive(Clone, Copy, PartialEq)]
enum Tool {
    L2watch,
    Arpwatch,
    Arpalert,
    /// A bare XDP_PASS program: the kernel-cost yardstick.
    Bare,
    /// Nothing attached.
    Nothing,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::L2watch => "l2watch",
            Tool::Arpwatch => "arpwatch",
            Tool::Arpalert => "arpalert",
            Tool::Bare => "bare XDP_PASS",
            Tool::Nothing => "no program",
        }
    }
}

struct Row {
    case: &'static str,
    tool: Tool,
    stations: u64,
    expect: u64,
    settle: Option<Duration>,
    user_cpu: f64,
    ingest_cpu: f64,
    kernel_cpu: f64,
    offered: u64,
    received: u64,
    secs: f64,
    drops: u64,
    /// Events the kernel sent or deferred (l2watch only).
    events: u64,
    /// Events that found the ring buffer full, and were deferred (l2watch only).
    ring_full: u64,
    rss_mb: u64,
}

/// A peer or the agent, counting what it recorded.
struct Running {
    child: Option<Child>,
    recorded: Arc<AtomicU64>,
    _baseline: Option<Baseline>,
    _dir: tempfile::TempDir,
}

fn start(lab: &StormLab, tool: Tool) -> Running {
    let dir = tempfile::tempdir().expect("temp dir");
    let recorded = Arc::new(AtomicU64::new(0));
    let pin = |prog: &str| {
        let mut c = lab.mon.command("taskset");
        c.args(["-c", "1", prog]);
        c
    };
    let (child, baseline) = match tool {
        Tool::L2watch => {
            let db = dir.path().join("l2watch.db");
            let child = pin(agent_bin().to_str().unwrap())
                .args(["run", "--iface", &lab.mon_if, "--listen"])
                .arg(format!("127.0.0.1:{PORT}"))
                .args(["--db", db.to_str().unwrap()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start l2watch");
            let deadline = Instant::now() + Duration::from_secs(20);
            while http::try_get(&lab.mon, PORT, "/readyz").map(|r| r.0) != Ok(200) {
                assert!(Instant::now() < deadline, "l2watch did not get ready");
                std::thread::sleep(Duration::from_millis(50));
            }
            (Some(child), None)
        }
        Tool::Arpwatch | Tool::Arpalert => {
            // Both read the interface with libpcap; the address makes the storm's
            // 198.18.0.0/15 a local network, not "bogons".
            lab.mon
                .exec(&["ip", "addr", "add", "198.19.255.254/15", "dev", &lab.mon_if]);
            let mut c = if tool == Tool::Arpwatch {
                let dat = dir.path().join("arp.dat");
                std::fs::write(&dat, "").unwrap();
                let mut c = pin("arpwatch");
                c.args(["-d", "-N", "-i", &lab.mon_if, "-n", "198.18.0.0/15", "-f"])
                    .arg(&dat);
                c
            } else {
                let conf = dir.path().join("arpalert.conf");
                let p = |n: &str| dir.path().join(n).display().to_string();
                std::fs::write(&conf, format!(
                    "maclist file = \"{}\"\nmaclist alert file = \"{}\"\nmaclist leases file = \"{}\"\n\
                     lock file = \"{}\"\nuse syslog = false\nlog level = 6\nuser = root\n\
                     daemon = false\ncatch only arp = true\ndump new address = false\n\
                     anti flood interval = 0\nanti flood global = 1000000000\nmax entry = 2000000\n\
                     log new address = true\nalert on new address = false\nmod on new address = false\n\
                     log new mac address = false\nalert on new mac address = false\n",
                    p("allow"), p("deny"), p("leases"), p("pid")
                )).unwrap();
                for f in ["allow", "deny"] {
                    std::fs::write(dir.path().join(f), "").unwrap();
                }
                let mut c = pin("arpalert");
                c.args(["-F", "-f"]).arg(&conf).args(["-i", &lab.mon_if]);
                c
            };
            let mut child = c
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", tool.name()));
            let marker = if tool == Tool::Arpwatch {
                "new station"
            } else {
                "type=new,"
            };
            for out in [
                child
                    .stdout
                    .take()
                    .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
                child
                    .stderr
                    .take()
                    .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
            ]
            .into_iter()
            .flatten()
            {
                let r = recorded.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(out).lines().map_while(Result::ok) {
                        if line.contains(marker) {
                            r.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
            std::thread::sleep(Duration::from_secs(2));
            (Some(child), None)
        }
        Tool::Bare => {
            let mut b = Baseline::load().expect("load the bare program");
            let ns = lab.mon.name.clone();
            let iface = lab.mon_if.clone();
            // Attach from inside the monitor namespace.
            let b = std::thread::scope(|s| {
                s.spawn(|| {
                    enter(&ns);
                    b.attach(&iface).expect("attach the bare program");
                    b
                })
                .join()
                .unwrap()
            });
            (None, Some(b))
        }
        Tool::Nothing => (None, None),
    };
    Running {
        child,
        recorded,
        _baseline: baseline,
        _dir: dir,
    }
}

/// The release agent beside this binary (`cargo xtask bench storm` builds both).
fn agent_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe.with_file_name("l2watch");
    assert!(
        bin.exists(),
        "{} not found: run `cargo xtask bench storm`",
        bin.display()
    );
    bin
}

fn enter(ns: &str) {
    use std::os::fd::AsRawFd as _;
    let f = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("netns");
    // SAFETY: moves only this thread into the namespace.
    assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Stations recorded, events lost, events the kernel sent or deferred, ring buffer full.
fn recorded(lab: &StormLab, tool: Tool, run: &Running) -> (u64, u64, u64, u64) {
    match tool {
        Tool::L2watch => {
            let text = http::try_get(&lab.mon, PORT, "/metrics").map_or(String::new(), |r| r.1);
            (
                metric(&text, "l2watch_devices_learnt_total"),
                metric(&text, "l2watch_kernel_pending_full_total"),
                metric(&text, "l2watch_kernel_events_total")
                    + metric(&text, "l2watch_kernel_events_deferred_total"),
                metric(&text, "l2watch_ringbuf_drops_total"),
            )
        }
        _ => (run.recorded.load(Ordering::Relaxed), 0, 0, 0),
    }
}

/// On-CPU time of every thread of `pid` (or only the one named `thread`), in seconds, from
/// the scheduler's nanosecond accounting (`/proc/PID/task/TID/schedstat`): clock ticks are
/// too coarse for the half-second figures here.
fn cpu_of(pid: u32, thread: Option<&str>) -> f64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let mut ns = 0u64;
    for t in dir.flatten() {
        if let Some(name) = thread {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if comm.trim() != name {
                continue;
            }
        }
        let st = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        ns += st
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    ns as f64 / 1e9
}

fn proc_cpu(pid: u32) -> f64 {
    cpu_of(pid, None)
}

fn thread_cpu(pid: u32, name: &str) -> f64 {
    cpu_of(pid, Some(name))
}

/// System + softirq + irq time of the whole machine, seconds.
fn kernel_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq
    (cpu.get(2).unwrap_or(&0.0) + cpu.get(5).unwrap_or(&0.0) + cpu.get(6).unwrap_or(&0.0)) / 100.0
}

fn peak_rss_mb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

fn rx_packets(lab: &StormLab) -> u64 {
    let out = lab.mon.exec(&[
        "cat",
        &format!("/sys/class/net/{}/statistics/rx_packets", lab.mon_if),
    ]);
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn measure(case: Case, tool: Tool) -> Row {
    let lab = StormLab::new();
    let mut run = start(&lab, tool);
    let pid = run.child.as_ref().map(|c| c.id());
    let cpu0 = pid.map_or(0.0, proc_cpu);
    let ingest0 = pid.map_or(0.0, |p| thread_cpu(p, "l2watch-ingest"));
    let k0 = kernel_cpu();
    let rx0 = rx_packets(&lab);
    let took = lab.offer(case.first, case.stations, case.frames, case.pps, Some(0));
    let k1 = kernel_cpu();
    let rx1 = rx_packets(&lab);
    // Wait for the tool to record everything it will: all stations, or no change for SETTLE.
    let end = Instant::now();
    let mut settle = None;
    let (mut last, mut last_change) = (u64::MAX, Instant::now());
    let (stations, drops, events, ring_full) = loop {
        let (n, drops, events, ring_full) = recorded(&lab, tool, &run);
        if n >= case.expect && matches!(tool, Tool::L2watch | Tool::Arpwatch | Tool::Arpalert) {
            settle = Some(end.elapsed());
            break (n, drops, events, ring_full);
        }
        if n != last {
            (last, last_change) = (n, Instant::now());
        }
        if last_change.elapsed() > SETTLE || pid.is_none() {
            break (n, drops, events, ring_full);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Every tool gets the same time after the traffic before its CPU is read, so what it
    // does later (l2watch's store flush, a peer's file writes) is counted too.
    if pid.is_some() {
        std::thread::sleep(AFTER.saturating_sub(end.elapsed()));
    }
    let user_cpu = pid.map_or(0.0, proc_cpu) - cpu0;
    let ingest_cpu = pid.map_or(0.0, |p| thread_cpu(p, "l2watch-ingest")) - ingest0;
    let rss_mb = pid.map_or(0, peak_rss_mb);
    if let Some(mut c) = run.child.take() {
        // SAFETY: signalling the child we started, by its PID.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let _ = c.wait();
    }
    Row {
        case: case.name,
        tool,
        stations,
        expect: case.expect,
        settle,
        user_cpu,
        ingest_cpu,
        kernel_cpu: k1 - k0,
        offered: case.frames,
        received: rx1 - rx0,
        secs: took.as_secs_f64(),
        drops,
        events,
        ring_full,
        rss_mb,
    }
}

/// Under attack: 1 Mpps of unique random MACs for 60 s, after five real stations, with a
/// scrape of /metrics every 250 ms. Reports RSS, scrape latency, the table, the findings and
/// whether the real stations survived.
fn attack(secs: u64) {
    let lab = StormLab::new();
    let mut run = start(&lab, Tool::L2watch);
    let pid = run.child.as_ref().map(|c| c.id()).expect("agent");
    let rss = |field: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    };
    // Five real stations first, outside the flood's addresses (as in tests/tests/storm.rs).
    let real: Vec<([u8; 6], [u8; 4])> = (1..=5u8)
        .map(|i| ([0x02, 0x77, 0, 0, 0, i], [10, 77, 0, i]))
        .collect();
    let frames: Vec<Vec<u8>> = real
        .iter()
        .map(|(mac, ip)| {
            l2watch_tests::frames::arp(
                &l2watch_tests::frames::L2::new(*mac, l2watch_tests::frames::BROADCAST),
                2,
                *mac,
                *ip,
                [0; 6],
                *ip,
            )
            .bytes
        })
        .collect();
    l2watch_tests::netns::send_frames(&lab.gen, &lab.gen_if, &frames);
    std::thread::sleep(Duration::from_millis(500));
    let rss_before = rss("VmRSS:");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scraper = {
        let stop = stop.clone();
        let ns = lab.mon.name.clone();
        std::thread::spawn(move || {
            let ns = l2watch_tests::netns::Netns::adopt(&ns).expect("monitor namespace");
            let mut lat = Vec::new();
            let mut failed = 0;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match http::try_get(&ns, PORT, "/metrics") {
                    Ok((200, _)) => lat.push(t.elapsed()),
                    _ => failed += 1,
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            // Adopted: the lab owns the namespace and deletes it.
            std::mem::forget(ns);
            (lat, failed)
        })
    };
    let took = lab.offer(
        1 << 24,
        u32::MAX,
        secs * 1_000_000,
        Some(1_000_000),
        Some(0),
    );
    stop.store(true, Ordering::Relaxed);
    let (mut lat, failed) = scraper.join().expect("scraper");
    lat.sort();
    let q = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let text = http::try_get(&lab.mon, PORT, "/metrics").map_or(String::new(), |r| r.1);
    let findings = http::try_get(&lab.mon, PORT, "/api/v1/findings").map_or(String::new(), |r| r.1);
    let v: serde_json::Value = serde_json::from_str(&findings).unwrap_or_default();
    let kinds: std::collections::BTreeMap<String, usize> = v["findings"]
        .as_array()
        .map(|a| {
            let mut m = std::collections::BTreeMap::new();
            for f in a {
                *m.entry(f["kind"].as_str().unwrap_or("?").to_string())
                    .or_default() += 1;
            }
            m
        })
        .unwrap_or_default();
    let real = real
        .iter()
        .filter(|(mac, ip)| {
            let ip = std::net::Ipv4Addr::from(*ip);
            let mac = l2watch::capture::Mac(*mac).to_string();
            http::try_get(&lab.mon, PORT, &format!("/api/v1/devices?ip={ip}"))
                .map(|r| r.1.contains(&mac))
                .unwrap_or(false)
        })
        .count();
    println!(
        "Under attack: unique MACs at 1 Mpps offered for {secs} s ({:.2} Mpps reached, {:.1} s)",
        secs as f64 * 1e6 / took.as_secs_f64() / 1e6,
        took.as_secs_f64()
    );
    println!();
    println!("| figure | value |");
    println!("|---|---:|");
    println!(
        "| frames received | {} |",
        metric(&text, "l2watch_frames_total")
    );
    println!(
        "| devices in the table (capacity 100,000) | {} |",
        metric(&text, "l2watch_devices")
    );
    println!(
        "| devices evicted | {} |",
        metric(&text, "l2watch_device_evictions_total")
    );
    println!(
        "| events lost (pending maps full) | {} |",
        metric(&text, "l2watch_kernel_pending_full_total")
    );
    println!(
        "| findings folded into the flood | {} |",
        metric(&text, "l2watch_findings_folded_total")
    );
    println!(
        "| flood rows kept out of the database | {} |",
        metric(&text, "l2watch_flood_rows_not_stored_total")
    );
    println!("| open findings by kind | {kinds:?} |");
    println!("| real stations still listed, same MAC | {real} / 5 |");
    println!(
        "| RSS before / after / peak, MB | {rss_before} / {} / {} |",
        rss("VmRSS:"),
        rss("VmHWM:")
    );
    println!(
        "| agent CPU, s (of {:.0} s) | {:.1} |",
        took.as_secs_f64(),
        proc_cpu(pid)
    );
    println!("| scrapes: answered / failed | {} / {failed} |", lat.len());
    println!(
        "| scrape time p50 / p99 / max, ms | {:.0} / {:.0} / {:.0} |",
        q(0.5).as_secs_f64() * 1e3,
        q(0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    if let Some(mut c) = run.child.take() {
        // SAFETY: signalling the child we started, by its PID.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let _ = c.wait();
    }
}

/// Receive throughput with one binding repeated at full rate: l2watch against a bare XDP_PASS
/// program, `rounds` interleaved pairs, the median ratio (the machine's speed drifts more
/// between runs than the difference measured).
fn throughput(rounds: usize) {
    let case = Case {
        name: "one binding repeated, max",
        first: 7,
        stations: 0,
        frames: 3_000_000,
        pps: None,
        expect: 1,
    };
    let mut ratios = Vec::new();
    println!("| round | l2watch Mpps | bare XDP_PASS Mpps | ratio |");
    println!("|---:|---:|---:|---:|");
    for i in 1..=rounds {
        let l = measure(case, Tool::L2watch);
        let b = measure(case, Tool::Bare);
        let (lm, bm) = (
            l.received as f64 / l.secs / 1e6,
            b.received as f64 / b.secs / 1e6,
        );
        ratios.push(lm / bm);
        println!("| {i} | {lm:.3} | {bm:.3} | {:.3} |", lm / bm);
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    println!(
        "| median | | | **{:.3}** (min {:.3}, max {:.3}) |",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1]
    );
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("throughput") {
        let rounds = std::env::args()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(7);
        throughput(rounds);
        return;
    }
    if std::env::args().nth(1).as_deref() == Some("attack") {
        let secs = std::env::args()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(60);
        attack(secs);
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("bench storm needs root (XDP, network namespaces)");
        std::process::exit(2);
    }
    let only: Vec<String> = std::env::args().skip(1).collect();
    println!("Storm benchmark: generator on CPU 0 (BPF_PROG_TEST_RUN live frames into a veth), tools pinned to CPU 1.");
    println!("CPU: the tool's on-CPU time (user + system, all threads) from the traffic's start to 2.5 s after its end.");
    println!();
    println!("| case | tool | stations recorded | all recorded after | user CPU s | user µs/station | ingest µs/station | kernel events | user s/Mpkt | kernel s/Mpkt | offered Mpps | received Mpps | ring full (deferred) | events lost | peak RSS MB |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut l2w_10k = 0.0;
    for case in CASES {
        if !only.is_empty() && !only.iter().any(|o| case.name.contains(o.as_str())) {
            continue;
        }
        // The kernel's cost is measured against a bare XDP_PASS program and no program on
        // the same traffic, in every case.
        let tools = [
            Tool::L2watch,
            Tool::Bare,
            Tool::Nothing,
            Tool::Arpwatch,
            Tool::Arpalert,
        ];
        for tool in tools {
            let r = measure(*case, tool);
            let per_station = if r.stations > 0 {
                r.user_cpu * 1e6 / r.stations as f64
            } else {
                0.0
            };
            if tool == Tool::L2watch && case.pps == Some(10_000) {
                l2w_10k = r.user_cpu;
            }
            let recorded = if matches!(tool, Tool::Bare | Tool::Nothing) {
                "-".to_string()
            } else {
                format!("{} / {}", r.stations, r.expect)
            };
            println!(
                "| {} | {} | {} | {} | {:.3} | {:.2} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {} |",
                r.case,
                r.tool.name(),
                recorded,
                r.settle
                    .map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64())),
                r.user_cpu,
                per_station,
                if tool == Tool::L2watch && r.stations > 0 {
                    format!("{:.2}", r.ingest_cpu * 1e6 / r.stations as f64)
                } else {
                    "-".into()
                },
                if tool == Tool::L2watch {
                    r.events.to_string()
                } else {
                    "-".into()
                },
                r.user_cpu / (r.received.max(1) as f64 / 1e6),
                r.kernel_cpu / (r.received.max(1) as f64 / 1e6),
                r.offered as f64 / r.secs / 1e6,
                r.received as f64 / r.secs / 1e6,
                if tool == Tool::L2watch {
                    r.ring_full.to_string()
                } else {
                    "-".into()
                },
                if tool == Tool::L2watch {
                    r.drops.to_string()
                } else {
                    "-".into()
                },
                if r.rss_mb > 0 {
                    r.rss_mb.to_string()
                } else {
                    "-".into()
                },
            );
            if tool == Tool::Arpwatch && case.pps == Some(10_000) && r.user_cpu > 0.0 {
                println!(
                    "|  | l2watch / arpwatch user CPU | {:.3}x |  |  |  |  |  |  |  |  |  |  |  |  |",
                    l2w_10k / r.user_cpu
                );
            }
        }
    }
}
