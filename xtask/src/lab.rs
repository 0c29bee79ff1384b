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
    let abort = lab.abort_flag();
    Step::DhcpServer.run(lab).map_err(|e| anyhow!(e))?;
    let config = lab.path("l2watch.toml");
    std::fs::write(&config, demo_config(lab))?;
    let agent_path = opts.agent.to_str().context("agent path is not UTF-8")?;
    let config_arg = config.to_str().context("lab path is not UTF-8")?;
    let agent = lab
        .start_daemon(
            "agent",
            None,
            agent_path,
            &["--log-format", "json", "run", "--config", config_arg],
        )
        .map_err(|e| anyhow!(e))?;
    let agent_log = agent.log.clone();
    wait_ready(lab, &agent_log)?;

    let mon = lab.mon.name.clone();
    let header = format!(
        "l2watch demo: a private lab segment in network namespaces; Ctrl-C stops it and removes everything\n\
         \x20 metrics: ip netns exec {mon} curl -s {API}/metrics\n\
         \x20 API:     ip netns exec {mon} curl -s {API}/api/v1/devices   (findings, dhcp/servers, events)\n\
         \x20 CLI:     ip netns exec {mon} {agent_path} findings --since 10m\n\
         \x20 agent:   attached to {} in {mon}; log {}",
        lab.mon_if,
        agent_log.display()
    );

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
        let mut frame = 0u64;
        loop {
            let elapsed = started.elapsed();
            let stop = STOP.load(Ordering::SeqCst)
                || opts.duration.is_some_and(|d| elapsed >= d)
                || done.load(Ordering::SeqCst);
            if stop {
                abort.store(true, Ordering::SeqCst);
                break;
            }
            frame += 1;
            let steps = narration.lock().expect("lock").clone();
            show(
                &mon, agent_path, &header, &steps, elapsed, frame, opts.plain,
            );
            let next = Instant::now() + opts.refresh;
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
