//! `cargo xtask lab up|down|status|step` and `cargo xtask demo`: the standard lab of
//! `l2watch-lab` (namespaces, a hub bridge, real dnsmasq/dhclient/arping) from the command
//! line, and a one-minute demo that runs the agent on it with scripted churn and a live view.
use std::{
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context as _, Result};
use clap::Subcommand;
use l2watch_lab::{
    lab::Lab,
    scenario::{self, Step, HOSTS},
};

/// Where `lab up` keeps the lab's files and state: tmpfs, gone at reboot like the namespaces.
pub const DEFAULT_DIR: &str = "/run/l2watch-lab";
/// The agent's listener inside the monitor namespace.
const API: &str = "http://127.0.0.1:9731";

#[derive(Subcommand)]
pub enum LabCmd {
    /// Build the standard lab (hub bridge, monitor port, 8 hosts) and start the authorised
    /// DHCP server. It stays up, owned by a state file, until `lab down`.
    Up {
        /// Directory for the lab's state, logs and leases.
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// Stop the lab's processes (by PID) and delete its namespaces and directory.
    Down {
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// Show the lab's namespaces, hosts and running daemons.
    Status {
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// Run scenario steps, in order, on the lab that is up.
    Step {
        /// Steps to run; `--list` shows them.
        #[arg(required_unless_present = "list")]
        steps: Vec<String>,
        /// List the steps.
        #[arg(long)]
        list: bool,
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
    },
}

fn state_file(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

fn require_root(what: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("{what} needs root: it creates network namespaces, veth pairs and a bridge");
    }
    Ok(())
}

fn list_steps() -> String {
    Step::ALL
        .iter()
        .map(|s| format!("  {:<16} {}\n", s.name(), s.about()))
        .collect()
}

fn parse_steps(names: &[String]) -> Result<Vec<Step>> {
    names
        .iter()
        .map(|n| {
            Step::parse(n)
                .ok_or_else(|| anyhow!("no lab step {n:?}; the steps are:\n{}", list_steps()))
        })
        .collect()
}

fn describe(lab: &Lab) -> String {
    let mut s = format!(
        "  monitor port: {} in namespace {} (attach l2watch here)\n  hub: bridge br0 in {} (ageing 0: every port sees every frame)\n  hosts:\n",
        lab.mon_if, lab.mon.name, lab.hub.name
    );
    for (name, mac, addr) in HOSTS {
        let h = lab.host(name);
        s += &format!(
            "    {name:<8} {mac}  {:<13} {} in {}\n",
            addr.unwrap_or("-"),
            h.iface,
            h.ns.name
        );
    }
    s
}

pub fn lab(cmd: LabCmd) -> Result<()> {
    match cmd {
        LabCmd::Up { dir } => {
            require_root("lab up")?;
            let state = state_file(&dir);
            if state.exists() {
                bail!(
                    "a lab is already up (state in {}); `cargo xtask lab down --dir {}` first",
                    state.display(),
                    dir.display()
                );
            }
            let mut lab = Lab::in_dir(dir.clone());
            scenario::populate(&mut lab);
            let served = Step::DhcpServer.run(&mut lab).map_err(|e| anyhow!(e))?;
            println!("lab up: {served}\n{}", describe(&lab));
            println!(
                "watch it:  ip netns exec {} target/release/l2watch run --iface {} --no-db\n\
                 query it:  ip netns exec {} target/release/l2watch findings   (devices, dhcp-servers, events)\n\
                 churn:     cargo xtask lab step <step>...\n{}\
                 remove:    cargo xtask lab down",
                lab.mon.name,
                lab.mon_if,
                lab.mon.name,
                list_steps()
            );
            lab.persist(&state)
                .with_context(|| format!("cannot write {}", state.display()))
        }
        LabCmd::Down { dir } => {
            require_root("lab down")?;
            let state = state_file(&dir);
            if !state.exists() {
                println!(
                    "lab down: no lab is up ({} does not exist)",
                    state.display()
                );
                return Ok(());
            }
            for line in Lab::teardown(&state).map_err(|e| anyhow!(e))? {
                println!("  {line}");
            }
            println!("lab down: done");
            Ok(())
        }
        LabCmd::Status { dir } => with_lab(&dir, |lab| {
            print!("{}", describe(lab));
            println!("  running: {}", lab.running_daemons().join(", "));
            Ok(())
        }),
        LabCmd::Step { steps, list, dir } => {
            if list {
                print!("{}", list_steps());
                return Ok(());
            }
            let steps = parse_steps(&steps)?;
            with_lab(&dir, |lab| {
                for s in steps {
                    let out = s.run(lab).map_err(|e| anyhow!("{}: {e}", s.name()))?;
                    println!("{}: {out}", s.name());
                }
                Ok(())
            })
        }
    }
}

/// Takes the lab that is up, runs `f`, and hands the lab back to its state file, also when
/// `f` fails or panics: only `lab down` tears it down.
fn with_lab(dir: &Path, f: impl FnOnce(&mut Lab) -> Result<()>) -> Result<()> {
    require_root("the lab")?;
    let state = state_file(dir);
    if !state.exists() {
        bail!("no lab is up; `cargo xtask lab up` first");
    }
    let mut lab = Lab::load(&state).map_err(|e| {
        anyhow!("{e}; the lab is broken, `cargo xtask lab down` removes what is left")
    })?;
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| f(&mut lab)));
    lab.persist(&state)
        .with_context(|| format!("cannot write {}", state.display()))?;
    match r {
        Ok(r) => r,
        Err(_) => bail!("a lab step panicked (see above); the lab is still up"),
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Options of `cargo xtask demo`.
pub struct DemoOpts {
    pub agent: PathBuf,
    pub duration: Option<Duration>,
    pub refresh: Duration,
    pub plain: bool,
}

/// The scripted churn: (step, seconds to let it show before the next).
const SCRIPT: &[(Option<Step>, u64)] = &[
    (Some(Step::DhcpClients), 4),
    (Some(Step::VlanFrames), 4),
    (Some(Step::DuplicateIp), 6),
    (Some(Step::RogueDhcp), 1),
    (Some(Step::DhcpClients), 6),
    (Some(Step::RogueDhcpStop), 2),
    (Some(Step::MacChange), 6),
    (Some(Step::DhcpStorm), 6),
    (Some(Step::Ipv6Router), 4),
    (Some(Step::Dhcpv6), 4),
    (Some(Step::RogueRouter), 4),
    (Some(Step::RouterSpoof), 4),
    (Some(Step::Ipv6Duplicate), 4),
    (Some(Step::Ipv6VlanFrames), 6),
    (None, 30),
];

/// The agent configuration of the demo: the monitor port, a database in the lab, the
/// authorised server on the allowlist, and findings that close after 20 quiet seconds so
/// the demo shows them closing.
fn demo_config(lab: &Lab) -> String {
    format!(
        r#"interfaces = ["{mon_if}"]
listen = "127.0.0.1:9731"
stats_interval_secs = 60

[database]
path = "{db}"
flush_interval_ms = 500

[engine.duplicate_ip]
quiet_secs = 20

[engine.mac_change]
quiet_secs = 20

[engine.dhcp_servers]
window_secs = 20
quiet_secs = 20

[[engine.dhcp_servers.allow]]
vlan = "*"
servers = ["{server}"]

[engine.dhcp_storm]
starvation_window_secs = 20
quiet_secs = 20

[engine.ipv6_dad]
quiet_secs = 20

[engine.ipv6_routers]
established_secs = 3
quiet_secs = 20
"#,
        mon_if = lab.mon_if,
        db = lab.path("l2watch.db").display(),
        server = scenario::SERVER,
    )
}

pub fn demo(opts: DemoOpts) -> Result<()> {
    require_root("the demo")?;
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let started = Instant::now();
    eprintln!("demo: building the lab (namespaces, bridge, 8 hosts)...");
    let mut lab = scenario::standard();
    let names: Vec<String> = [&lab.hub, &lab.mon]
        .into_iter()
        .chain(lab.hosts.iter().map(|h| &h.ns))
        .map(|n| n.name.clone())
        .collect();
    eprintln!("demo: namespaces {}", names.join(" "));
    let result = run_demo(&mut lab, &opts, started);
    eprintln!("demo: stopping the agent and the lab's processes, deleting the namespaces...");
    drop(lab);
    let left = leftover_namespaces(&names);
    if !left.is_empty() {
        bail!("namespaces left behind: {left:?}");
    }
    println!("demo: stopped; no namespace left");
    result
}

fn leftover_namespaces(names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| Path::new("/var/run/netns").join(n).exists())
        .cloned()
        .collect()
}

fn run_demo(lab: &mut Lab, opts: &DemoOpts, started: Instant) -> Result<()> {
    let agent_path = opts.agent.to_str().context("agent path is not UTF-8")?;
    let mon = lab.mon.name.clone();
    let mut header = String::new();
    let mut frame = 0u64;
    drive(
        lab,
        agent_path,
        &demo_config,
        opts.duration,
        opts.refresh,
        started,
        |view, steps, elapsed| {
            if header.is_empty() {
                let log = &view.agent_log;
                header = format!(
                    "l2watch demo: a private lab segment in network namespaces; Ctrl-C stops it and removes everything\n\
                     \x20 metrics: ip netns exec {mon} curl -s {API}/metrics\n\
                     \x20 API:     ip netns exec {mon} curl -s {API}/api/v1/devices   (findings, dhcp/servers, events)\n\
                     \x20 CLI:     ip netns exec {mon} {agent_path} findings --since 10m\n\
                     \x20 agent:   attached to {} in {mon}; log {}",
                    view.mon_if,
                    log.display()
                );
            }
            frame += 1;
            show(&mon, agent_path, &header, steps, elapsed, frame, opts.plain);
        },
    )
}

/// What a view of the running lab reads while the churn holds the lab.
struct View {
    mon_if: String,
    agent_log: PathBuf,
    agent_pid: u32,
    dir: PathBuf,
}

/// Starts the authorised DHCP server and the agent (with `config`) on the lab, plays the
/// scripted churn on its own thread, and calls `tick` every `every` until `duration`, Ctrl-C
/// or the churn ends.
fn drive(
    lab: &mut Lab,
    agent_path: &str,
    config: &dyn Fn(&Lab) -> String,
    duration: Option<Duration>,
    every: Duration,
    started: Instant,
    mut tick: impl FnMut(&View, &[String], Duration),
) -> Result<()> {
    let abort = lab.abort_flag();
    Step::DhcpServer.run(lab).map_err(|e| anyhow!(e))?;
    let config_path = lab.path("l2watch.toml");
    std::fs::write(&config_path, config(lab))?;
    let config_arg = config_path.to_str().context("lab path is not UTF-8")?;
    let agent = lab
        .start_daemon(
            "agent",
            None,
            agent_path,
            &["--log-format", "json", "run", "--config", config_arg],
        )
        .map_err(|e| anyhow!(e))?;
    let (agent_log, agent_pid) = (agent.log.clone(), agent.pid);
    wait_ready(lab, &agent_log)?;
    let view = View {
        mon_if: lab.mon_if.clone(),
        agent_log,
        agent_pid,
        dir: lab.path(""),
    };

    // The churn runs on its own thread with the lab; the view polls the agent's API.
    let narration = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let churn_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let done = Arc::new(AtomicBool::new(false));
    std::thread::scope(|scope| {
        let (narration2, churn_error2, done2) =
            (narration.clone(), churn_error.clone(), done.clone());
        let abort2 = abort.clone();
        let lab_ref: &mut Lab = lab;
        scope.spawn(move || {
            let r =
                std::panic::catch_unwind(AssertUnwindSafe(|| churn(lab_ref, &narration2, &abort2)));
            let err = match r {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some("a lab step panicked".to_string()),
            };
            if !abort2.load(Ordering::SeqCst) {
                *churn_error2.lock().expect("lock") = err;
            }
            done2.store(true, Ordering::SeqCst);
        });
        loop {
            let elapsed = started.elapsed();
            let stop = STOP.load(Ordering::SeqCst)
                || duration.is_some_and(|d| elapsed >= d)
                || done.load(Ordering::SeqCst);
            if stop {
                abort.store(true, Ordering::SeqCst);
                break;
            }
            let steps = narration.lock().expect("lock").clone();
            tick(&view, &steps, elapsed);
            let next = Instant::now() + every;
            while Instant::now() < next && !STOP.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    if let Some(e) = churn_error.lock().expect("lock").take() {
        bail!("the scenario failed: {e}");
    }
    Ok(())
}

fn wait_ready(lab: &mut Lab, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("\"message\":\"ready\"") {
            return Ok(());
        }
        let agent = lab.daemon("agent").expect("started");
        if !agent.alive() {
            bail!("the agent exited:\n{}", agent.log_tail());
        }
        if Instant::now() >= deadline || STOP.load(Ordering::SeqCst) {
            bail!("the agent is not ready after 20 s:\n{}", agent.log_tail());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn churn(
    lab: &mut Lab,
    narration: &std::sync::Mutex<Vec<String>>,
    abort: &AtomicBool,
) -> Result<(), String> {
    let t0 = Instant::now();
    let say = |line: String| {
        let mut n = narration.lock().expect("lock");
        n.push(format!("[{:>4.0?}] {line}", t0.elapsed()));
        let len = n.len();
        if len > 6 {
            n.drain(..len - 6);
        }
    };
    for round in 1.. {
        for (step, pause) in SCRIPT {
            if abort.load(Ordering::SeqCst) {
                return Ok(());
            }
            match step {
                Some(s) => {
                    say(format!("round {round}, {}: {}", s.name(), s.about()));
                    let out = s.run(lab)?;
                    say(format!("  -> {out}"));
                }
                None => say(format!(
                    "quiet for {pause} s: open findings close after 20 s without new evidence"
                )),
            }
            let until = Instant::now() + Duration::from_secs(*pause);
            while Instant::now() < until && !abort.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    Ok(())
}

/// One screen of the live view: where things are, what the scenario did, and the agent's
/// devices, DHCP servers and findings as its own CLI prints them.
fn show(
    mon: &str,
    agent: &str,
    header: &str,
    steps: &[String],
    elapsed: Duration,
    frame: u64,
    plain: bool,
) {
    let query = |args: &[&str], max_lines: usize| -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", mon, agent])
            .args(args)
            .args(["--api", API])
            .output();
        let text = match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
            Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
            Err(e) => format!("cannot run {agent}: {e}"),
        };
        let lines: Vec<&str> = text.lines().collect();
        let mut s = lines
            .iter()
            .take(max_lines)
            .copied()
            .collect::<Vec<_>>()
            .join("\n");
        if lines.len() > max_lines {
            s += &format!("\n  ... {} more", lines.len() - max_lines);
        }
        s
    };
    let mut screen = String::new();
    if plain {
        screen += &format!("==== view {frame} at {elapsed:.0?} ====\n");
    } else {
        screen += "\x1b[2J\x1b[H";
    }
    screen += header;
    screen += &format!("\n\nSCENARIO ({elapsed:.0?})\n");
    for s in steps {
        screen += &format!("  {s}\n");
    }
    screen += &format!("\nDEVICES\n{}\n", query(&["devices"], 14));
    screen += &format!("\nDHCP SERVERS\n{}\n", query(&["dhcp-servers"], 6));
    screen += &format!(
        "\nFINDINGS (opened or closed in the last 10 minutes)\n{}\n",
        query(&["findings", "--since", "10m"], 16)
    );
    print!("{screen}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
}

/// Options of `cargo xtask soak`.
pub struct SoakOpts {
    pub agent: PathBuf,
    pub minutes: u64,
    /// Where the samples go (CSV), besides the summary on stdout.
    pub csv: Option<PathBuf>,
}

/// History events and stream events kept in the soak: small, so the caps fill within the
/// warm-up and whatever grows after it is a leak, not a table filling up.
const SOAK_MAX_EVENTS: u64 = 5_000;
const SOAK_STREAM_REPLAY: u64 = 2_000;

/// The soak's agent: the demo's, with small history and stream caps (above) and the stats
/// line every 10 s.
fn soak_config(lab: &Lab) -> String {
    demo_config(lab).replace("stats_interval_secs = 60", "stats_interval_secs = 10")
        + &format!(
            "\n[database.retention]\nmax_events = {SOAK_MAX_EVENTS}\n\n[web]\nstream_replay = \
             {SOAK_STREAM_REPLAY}\n"
        )
}

/// One sample of the agent: resident memory, open descriptors, database files, scrape time.
struct Sample {
    secs: u64,
    rss_kb: u64,
    fds: u64,
    db_bytes: u64,
    scrape_ms: f64,
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn sample(view: &View, mon: &str, elapsed: Duration) -> Sample {
    let fds = std::fs::read_dir(format!("/proc/{}/fd", view.agent_pid))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    let db_bytes = ["l2watch.db", "l2watch.db-wal", "l2watch.db-shm"]
        .iter()
        .filter_map(|f| std::fs::metadata(view.dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    // curl's own transfer time: the scrape, not the process start.
    let scrape_ms = Command::new("ip")
        .args([
            "netns",
            "exec",
            mon,
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{time_total}",
        ])
        .arg(format!("{API}/metrics"))
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(-1.0, |s| s * 1e3);
    Sample {
        secs: elapsed.as_secs(),
        rss_kb: rss_kb(view.agent_pid),
        fds,
        db_bytes,
        scrape_ms,
    }
}

/// `cargo xtask soak`: the demo's churn (DHCP clients and servers, a rogue server, a
/// duplicate IP, NIC swaps, DHCP storms, VLAN and QinQ frames, IPv6 routers and DHCPv6)
/// against one agent for `minutes`, sampling it every 10 s; prints the samples and whether
/// memory and descriptors stayed flat after warm-up and the database within its bound.
pub fn soak(opts: SoakOpts) -> Result<()> {
    require_root("the soak")?;
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let started = Instant::now();
    let mut lab = scenario::standard();
    let mon = lab.mon.name.clone();
    let names: Vec<String> = [&lab.hub, &lab.mon]
        .into_iter()
        .chain(lab.hosts.iter().map(|h| &h.ns))
        .map(|n| n.name.clone())
        .collect();
    let agent_path = opts
        .agent
        .to_str()
        .context("agent path is not UTF-8")?
        .to_string();
    let mut samples: Vec<Sample> = Vec::new();
    let every = Duration::from_secs(10);
    eprintln!(
        "soak: {} minutes of churn against {agent_path}; a sample every 10 s",
        opts.minutes
    );
    println!(
        "{:>6}  {:>9}  {:>4}  {:>10}  {:>9}",
        "secs", "rss_kb", "fds", "db_bytes", "scrape_ms"
    );
    let result = drive(
        &mut lab,
        &agent_path,
        &soak_config,
        Some(Duration::from_secs(opts.minutes * 60)),
        every,
        started,
        |view, _steps, elapsed| {
            let s = sample(view, &mon, elapsed);
            println!(
                "{:>6}  {:>9}  {:>4}  {:>10}  {:>9.1}",
                s.secs, s.rss_kb, s.fds, s.db_bytes, s.scrape_ms
            );
            samples.push(s);
        },
    );
    drop(lab);
    let left = leftover_namespaces(&names);
    if !left.is_empty() {
        bail!("namespaces left behind: {left:?}");
    }
    result?;
    if let Some(path) = &opts.csv {
        let mut text = String::from("secs,rss_kb,fds,db_bytes,scrape_ms\n");
        for s in &samples {
            text += &format!(
                "{},{},{},{},{:.1}\n",
                s.secs, s.rss_kb, s.fds, s.db_bytes, s.scrape_ms
            );
        }
        std::fs::write(path, text)?;
    }
    summarize(&samples);
    Ok(())
}

/// After a warm-up of a fifth of the run (at least a minute): the range of RSS and
/// descriptors, the largest database, and scrape times.
fn summarize(samples: &[Sample]) {
    let Some(last) = samples.last() else {
        println!("soak: no samples");
        return;
    };
    let warm = (last.secs / 5).max(60);
    let after: Vec<&Sample> = samples.iter().filter(|s| s.secs >= warm).collect();
    if after.len() < 2 {
        println!("soak: too short to judge (warm-up is {warm} s)");
        return;
    }
    let range = |f: &dyn Fn(&Sample) -> u64| {
        let v: Vec<u64> = after.iter().map(|s| f(s)).collect();
        (
            *v.iter().min().unwrap(),
            *v.iter().max().unwrap(),
            v[0],
            *v.last().unwrap(),
        )
    };
    let (rmin, rmax, rfirst, rlast) = range(&|s| s.rss_kb);
    let (fmin, fmax, _, _) = range(&|s| s.fds);
    let (_, dmax, dfirst, dlast) = range(&|s| s.db_bytes);
    let mut scrape: Vec<f64> = after
        .iter()
        .map(|s| s.scrape_ms)
        .filter(|v| *v >= 0.0)
        .collect();
    scrape.sort_by(f64::total_cmp);
    let p = |q: f64| {
        scrape
            .get(((scrape.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(-1.0)
    };
    println!(
        "soak: {} s, {} samples after a {warm} s warm-up\n\
         \x20 RSS {rfirst} -> {rlast} kB (min {rmin}, max {rmax}: {:+.1}% first to last)\n\
         \x20 open fds {fmin}..{fmax}\n\
         \x20 database {dfirst} -> {dlast} bytes (max {dmax}; history capped at {SOAK_MAX_EVENTS} events)\n\
         \x20 scrape median {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        last.secs,
        after.len(),
        (rlast as f64 - rfirst as f64) / rfirst.max(1) as f64 * 100.0,
        p(0.5),
        p(0.95),
        p(1.0),
    );
}
