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
use l2watch_tests::{http, l2watch_bin, storm::StormLab};

const PORT: u16 = 19750;
const SETTLE: Duration = Duration::from_secs(5);

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
    kernel_cpu: f64,
    offered: u64,
    received: u64,
    secs: f64,
    drops: u64,
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
            let child = pin(l2watch_bin().to_str().unwrap())
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
                     anti flood interval = 0\nanti flood global = 0\nmax entry = 2000000\n\
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

fn recorded(lab: &StormLab, tool: Tool, run: &Running) -> (u64, u64) {
    match tool {
        Tool::L2watch => {
            let text = http::try_get(&lab.mon, PORT, "/metrics").map_or(String::new(), |r| r.1);
            (
                metric(&text, "l2watch_devices_learnt_total"),
                metric(&text, "l2watch_kernel_pending_full_total"),
            )
        }
        _ => (run.recorded.load(Ordering::Relaxed), 0),
    }
}

/// utime + stime of a process in seconds.
fn proc_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of stat, counted after the command name.
    (t(11) + t(12)) / 100.0
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
    let k0 = kernel_cpu();
    let rx0 = rx_packets(&lab);
    let took = lab.offer(case.first, case.stations, case.frames, case.pps, Some(0));
    let k1 = kernel_cpu();
    let rx1 = rx_packets(&lab);
    // Wait for the tool to record everything it will: all stations, or no change for SETTLE.
    let end = Instant::now();
    let mut settle = None;
    let (mut last, mut last_change) = (u64::MAX, Instant::now());
    let (stations, drops) = loop {
        let (n, drops) = recorded(&lab, tool, &run);
        if n >= case.expect && matches!(tool, Tool::L2watch | Tool::Arpwatch | Tool::Arpalert) {
            settle = Some(end.elapsed());
            break (n, drops);
        }
        if n != last {
            (last, last_change) = (n, Instant::now());
        }
        if last_change.elapsed() > SETTLE || pid.is_none() {
            break (n, drops);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let user_cpu = pid.map_or(0.0, proc_cpu) - cpu0;
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
        kernel_cpu: k1 - k0,
        offered: case.frames,
        received: rx1 - rx0,
        secs: took.as_secs_f64(),
        drops,
        rss_mb,
    }
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("bench storm needs root (XDP, network namespaces)");
        std::process::exit(2);
    }
    let only: Vec<String> = std::env::args().skip(1).collect();
    println!("Storm benchmark: generator on CPU 0 (BPF_PROG_TEST_RUN live frames into a veth), tools pinned to CPU 1");
    println!();
    println!("| case | tool | stations recorded | all recorded after | user CPU s | user µs/station | user s/Mpkt | kernel s/Mpkt | offered Mpps | received Mpps | events lost | peak RSS MB |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut l2w_10k = 0.0;
    for case in CASES {
        if !only.is_empty() && !only.iter().any(|o| case.name.contains(o.as_str())) {
            continue;
        }
        let mut tools = vec![Tool::L2watch, Tool::Arpwatch, Tool::Arpalert];
        if case.stations == 0 {
            tools = vec![
                Tool::L2watch,
                Tool::Bare,
                Tool::Nothing,
                Tool::Arpwatch,
                Tool::Arpalert,
            ];
        }
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
                "| {} | {} | {} | {} | {:.3} | {:.2} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} |",
                r.case,
                r.tool.name(),
                recorded,
                r.settle
                    .map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64())),
                r.user_cpu,
                per_station,
                r.user_cpu / (r.received.max(1) as f64 / 1e6),
                r.kernel_cpu / (r.received.max(1) as f64 / 1e6),
                r.offered as f64 / r.secs / 1e6,
                r.received as f64 / r.secs / 1e6,
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
                    "|  | l2watch / arpwatch user CPU | {:.3}x |  |  |  |  |  |  |  |  |  |",
                    l2w_10k / r.user_cpu
                );
            }
        }
    }
}
