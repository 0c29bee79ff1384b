//! The `l2watch` command line.
use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use l2watch::{
    capture::{Probe, ProbeConfig},
    check,
    config::{Config, KernelConfig},
    counts::TSHARK_KEYS,
    query,
    replay::{analyze, ReplayError},
    run::run,
};
use tokio_util::sync::CancellationToken;
use tracing::info;

/// l2watch watches ARP and DHCPv4 on Ethernet links and VLAN trunks with an XDP program:
/// who holds which IP, which DHCP servers answer, and what changed. It never drops or alters
/// traffic.
///
/// Needs root, or CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON, on Linux >= 5.18 with BTF.
#[derive(Parser, Debug)]
#[command(name = "l2watch", version, propagate_version = true)]
struct Cli {
    /// Log format: human-readable text, or one JSON object per line (for log shippers).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// What to log: findings and a periodic summary at info; every kernel event
    /// (l2watch::event) and per-interface counters at debug. Takes a tracing filter too, e.g.
    /// "info,l2watch::event=debug". $L2WATCH_LOG overrides it.
    #[arg(long, global = true, value_name = "FILTER", default_value = "info")]
    log_level: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Attach to interfaces and watch: device table, DHCP servers, findings, metrics, API.
    ///
    /// Settings come from the config file (--config, default /etc/l2watch/l2watch.toml; an
    /// annotated example is deploy/l2watch.toml), and the flags below override it. Without
    /// --iface, every up, non-loopback Ethernet interface is watched (the log lists them).
    /// Native (driver) XDP is tried first, then generic mode; the log says which. Interfaces
    /// that go away are reattached when they come back. SIGHUP reloads the config without
    /// detaching; SIGINT/SIGTERM stop cleanly, detaching everything.
    ///
    /// Example: l2watch run --iface eth0 --iface eth1 --listen 127.0.0.1:9731
    Run(RunArgs),

    /// Run every frame of a pcap/pcapng capture through the real XDP program
    /// (BPF_PROG_TEST_RUN) and report its counters and events.
    ///
    /// Counts use the same keys and meaning as tshark filters (see the README), so they can be
    /// compared with `tshark -Y`. Rate limits are off: every message is seen.
    ///
    /// Exit codes: 0 done; 2 the file cannot be used (unreadable, not a capture, link type not
    /// Ethernet); 3 the file is truncated or corrupt part-way (the report covers the frames read
    /// before the byte offset named); 1 anything else (e.g. the program cannot be loaded).
    Replay(ReplayArgs),

    /// Devices a running agent knows: IP, MAC, interface, VLAN, source, state, host name;
    /// IPv6 addresses per station with how each was learnt (ns, na, dhcpv6) and its kind
    /// (link_local, eui64, privacy, dhcpv6).
    ///
    /// Example: l2watch devices --vlan 100 --family 6 --api http://rack1:9731
    Devices(DeviceArgs),

    /// Findings of a running agent: open ones, or every one since a time.
    ///
    /// Example: l2watch findings --since 24h
    Findings(FindingArgs),

    /// DHCP servers a running agent has seen, with their allowlist verdict and offered range.
    DhcpServers(QueryArgs),

    /// DHCPv6 servers a running agent has seen, by DUID (a relay's MAC is not a server),
    /// with the MACs they answered from and what they handed out.
    Dhcpv6Servers(QueryArgs),

    /// IPv6 routers a running agent has seen: source address and MAC per segment, prefixes,
    /// flags, router lifetime, and the allowlist's verdict.
    ///
    /// Example: l2watch routers --api http://rack1:9731
    Routers(QueryArgs),

    /// The switch behind each interface, from LLDP and CDP: system, port, native VLAN,
    /// and the LACP partner heard on the same interface. One line per neighbour:
    /// "eth2 → sw3.rack12 Gi1/0/17 (lldp), native VLAN 100, LACP with sw3.rack12 key 13".
    ///
    /// Example: l2watch neighbours --api http://rack1:9731
    Neighbours(QueryArgs),

    /// Spanning tree per interface and VLAN as the switch sends it: root bridge, root path
    /// cost, sending bridge and port, version, topology changes.
    Stp(QueryArgs),

    /// LACP per interface: the switch's system, key and port, what it knows of us, the
    /// state flags (sync, collecting, distributing, timeout, expired, defaulted), the bond.
    Lacp(QueryArgs),

    /// A running agent's event history (bindings learnt or changed, DHCP messages).
    ///
    /// Example: l2watch events --since 15m --limit 100
    Events(EventArgs),

    /// Preflight: kernel, BTF, capabilities and, per interface, existence, XDP support and
    /// hardware VLAN stripping, each with its fix. Changes nothing.
    ///
    /// Exit codes: 0 all good; 1 warnings (l2watch runs, but look); 2 errors (it will not run).
    Check(CheckArgs),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Config file. Missing is fine at the default path (defaults apply), an error elsewhere.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,

    /// Interface to monitor (repeat for several). Default: every up Ethernet interface.
    #[arg(long = "iface", short = 'i', value_name = "IF")]
    interfaces: Vec<String>,

    /// Address for /metrics, /api/v1, /healthz and /readyz [default: 0.0.0.0:9731].
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<std::net::SocketAddr>,

    /// TLS and basic auth for the listener: node_exporter's web-config.yml
    /// (tls_server_config: cert_file, key_file, client_ca_file, client_auth_type;
    /// basic_auth_users: user: bcrypt-hash). Same as web.config_file in the config.
    #[arg(long = "web.config.file", value_name = "FILE")]
    web_config_file: Option<PathBuf>,

    /// How often to log counters, e.g. 10s, 1m [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    stats_interval: Option<Duration>,

    /// SQLite database for devices, DHCP servers, findings and event history. Created (with
    /// its directory) if missing; state is restored from it on start. An older schema is
    /// migrated; a corrupt file is moved aside to PATH.corrupt-<time> and a new one started.
    /// [default: /var/lib/l2watch/l2watch.db]
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,

    /// Keep state in memory only: no database is read or written.
    #[arg(long, conflicts_with = "db")]
    no_db: bool,

    /// How often changes are written to the database; a crash loses at most this much
    /// [default: 1s].
    #[arg(long, value_parser = parse_duration)]
    flush_interval: Option<Duration>,

    /// Delete history events older than this many days [default: 30].
    #[arg(long, value_name = "DAYS")]
    event_retention_days: Option<u64>,

    /// Keep at most this many history events, oldest going first [default: 1000000].
    #[arg(long, value_name = "N")]
    max_events: Option<u64>,

    /// Maximum devices in the table (memory and database); the least recently seen entry is
    /// evicted past it, and evictions are counted [default: 100000].
    #[arg(long, value_name = "N")]
    max_devices: Option<usize>,

    /// VLAN label values per interface in /metrics; the rest are summed as vlan="other"
    /// [default: 32].
    #[arg(long, value_name = "N")]
    vlan_label_cap: Option<usize>,

    #[command(flatten)]
    kernel: KernelArgs,
}

impl RunArgs {
    /// The file's configuration with these flags on top.
    fn config(&self) -> Result<Config, l2watch::config::ConfigError> {
        let (path, explicit) = match &self.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(l2watch::config::DEFAULT_PATH), false),
        };
        let mut c = Config::load(&path, explicit)?;
        if !self.interfaces.is_empty() {
            c.interfaces = self.interfaces.clone();
        }
        if let Some(v) = self.listen {
            c.listen = v;
        }
        if let Some(v) = &self.web_config_file {
            c.web.config_file = v.clone();
        }
        if let Some(v) = self.stats_interval {
            c.stats_interval_secs = v.as_secs().max(1);
        }
        if let Some(v) = &self.db {
            c.database.path = v.clone();
            c.database.enabled = true;
        }
        if self.no_db {
            c.database.enabled = false;
        }
        if let Some(v) = self.flush_interval {
            c.database.flush_interval_ms = (v.as_millis() as u64).max(1);
        }
        if let Some(v) = self.event_retention_days {
            c.database.retention.event_days = v;
        }
        if let Some(v) = self.max_events {
            c.database.retention.max_events = v;
        }
        if let Some(v) = self.max_devices {
            c.engine.devices.capacity = v;
        }
        if let Some(v) = self.vlan_label_cap {
            c.metrics.vlan_label_cap = v;
        }
        self.kernel.apply(&mut c.kernel);
        c.validate(&path)?;
        Ok(c)
    }
}

/// Kernel-side settings shared by `run` and `replay`; unset ones come from the config.
#[derive(clap::Args, Debug, Clone)]
struct KernelArgs {
    /// Re-report an unchanged IP->MAC binding after this long (repeats inside it are
    /// suppressed in the kernel) [default: 60s].
    #[arg(long, value_parser = parse_duration)]
    refresh: Option<Duration>,

    /// ARP events per second per CPU once the burst is spent (excess is counted, not sent)
    /// [default: 2000].
    #[arg(long)]
    arp_rate: Option<u32>,

    /// ARP event burst per CPU [default: 10000].
    #[arg(long)]
    arp_burst: Option<u32>,

    /// DHCP events per second per CPU once the burst is spent [default: 1000].
    #[arg(long)]
    dhcp_rate: Option<u32>,

    /// DHCP event burst per CPU [default: 5000].
    #[arg(long)]
    dhcp_burst: Option<u32>,

    /// Capacity of the per-(interface, VLAN) counter map; segments beyond it are counted in
    /// an overflow slot and reported as such [default: 4096].
    #[arg(long)]
    max_segments: Option<u32>,

    /// Capacity of the kernel's binding map (least recently used entries are evicted)
    /// [default: 65536].
    #[arg(long)]
    max_bindings: Option<u32>,
}

impl KernelArgs {
    fn apply(&self, k: &mut KernelConfig) {
        if let Some(v) = self.refresh {
            k.refresh_secs = v.as_secs();
        }
        for (dst, src) in [
            (&mut k.arp_rate, self.arp_rate),
            (&mut k.arp_burst, self.arp_burst),
            (&mut k.dhcp_rate, self.dhcp_rate),
            (&mut k.dhcp_burst, self.dhcp_burst),
            (&mut k.max_segments, self.max_segments),
            (&mut k.max_bindings, self.max_bindings),
        ] {
            if let Some(v) = src {
                *dst = v;
            }
        }
    }

    /// `k` (the config's kernel section, with these flags applied) as the loader takes it.
    fn probe_config(&self, k: &KernelConfig, rate_limit: bool) -> ProbeConfig {
        let mut p = k.probe_config(rate_limit);
        // Sub-second refresh (tests, benches) survives the seconds-based config.
        if let Some(r) = self.refresh {
            p.refresh = r;
        }
        p
    }
}

#[derive(clap::Args, Debug)]
struct QueryArgs {
    /// The agent's API.
    #[arg(long, value_name = "URL", default_value = l2watch::query::DEFAULT_API, env = "L2WATCH_API")]
    api: String,

    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,

    /// CA certificate (PEM) that signed the agent's certificate, for an https:// API whose
    /// web config serves TLS with a private CA [default: the system's roots].
    #[arg(long, value_name = "FILE", env = "L2WATCH_API_CA_FILE")]
    ca_file: Option<PathBuf>,

    /// Basic-auth user for an agent whose web config lists basic_auth_users; the password
    /// comes from $L2WATCH_API_PASSWORD (never on the command line, where ps shows it).
    #[arg(long, value_name = "USER", env = "L2WATCH_API_USER")]
    user: Option<String>,
}

impl QueryArgs {
    fn target(&self) -> query::Target {
        query::Target {
            api: self.api.clone(),
            ca_file: self.ca_file.clone(),
            auth: self
                .user
                .clone()
                .map(|u| (u, std::env::var("L2WATCH_API_PASSWORD").unwrap_or_default())),
        }
    }
}

#[derive(clap::Args, Debug)]
struct DeviceArgs {
    #[command(flatten)]
    q: QueryArgs,
    /// Only this IP.
    #[arg(long)]
    ip: Option<String>,
    /// Only this MAC.
    #[arg(long)]
    mac: Option<String>,
    /// Only this VLAN: "untagged", "100" or "200.2001".
    #[arg(long)]
    vlan: Option<String>,
    /// Only this interface.
    #[arg(long)]
    interface: Option<String>,
    /// Only IPv4 rows (4: the device table) or IPv6 rows (6: each station's addresses, with
    /// how each was learnt). Both by default.
    #[arg(long, value_parser = ["4", "6"])]
    family: Option<String>,
    /// At most this many rows (1..=100000) [default: 10000].
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(clap::Args, Debug)]
struct FindingArgs {
    #[command(flatten)]
    q: QueryArgs,
    /// Every finding (open and closed) opened or closed since: RFC 3339, Unix seconds, or an
    /// age like 24h. Without it: open findings only.
    #[arg(long)]
    since: Option<String>,
}

#[derive(clap::Args, Debug)]
struct EventArgs {
    #[command(flatten)]
    q: QueryArgs,
    /// Events since: RFC 3339, Unix seconds, or an age like 15m [default: 1h].
    #[arg(long)]
    since: Option<String>,
    /// At most this many events (1..=10000) [default: 1000].
    #[arg(long, conflicts_with = "follow")]
    limit: Option<usize>,
    /// Stream events as they happen (/api/v1/events/stream), for good: a lost connection or
    /// a restarted agent is followed by a reconnect that resumes after the last event seen.
    #[arg(long, short = 'f', conflicts_with = "since")]
    follow: bool,
    /// With --follow: only these kinds, comma-separated; a family (arp, dhcp, dhcpv6, nd,
    /// dad, router, neighbour, stp, lacp) takes all its kinds (arp_new, arp_refreshed,
    /// arp_moved, arp_flip_flop, arp_probe; dhcp_discover...). Example: --kind arp,dhcp_ack
    #[arg(long, requires = "follow")]
    kind: Option<String>,
    /// With --follow: only this VLAN ("untagged", "100", "200.300").
    #[arg(long, requires = "follow")]
    vlan: Option<String>,
    /// With --follow: only this interface.
    #[arg(long = "iface", short = 'i', value_name = "IF", requires = "follow")]
    iface: Option<String>,
    /// With --follow: text (one line per event), json (one object per line), or
    /// maas-netmon (MAAS's neighbour feed: NEW, REFRESHED at most every 600 s, MOVED; needs
    /// --iface; QinQ is reported under its outer VID).
    #[arg(long, value_enum, default_value_t = FollowFormat::Text, requires = "follow")]
    format: FollowFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum FollowFormat {
    Text,
    Json,
    MaasNetmon,
}

#[derive(clap::Args, Debug)]
struct CheckArgs {
    /// Interface to check (repeat for several). Default: those `run` would pick.
    #[arg(long = "iface", short = 'i', value_name = "IF")]
    interfaces: Vec<String>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct ReplayArgs {
    /// Capture file (pcap or pcapng, Ethernet link type).
    file: PathBuf,

    /// Print one JSON object: counts (tshark keys), kernel stats, event counts and events.
    #[arg(long)]
    json: bool,

    /// Leave the event list out of the report (counts only).
    #[arg(long)]
    no_events: bool,

    /// Config file: its [engine] and [kernel] sections apply exactly as they do for `run`, so
    /// a capture gives the findings the agent would have given. Without it, defaults apply
    /// (the default config path is not read, so a replay does not change with the host).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,

    /// Interface name for frames whose capture does not name one (pcap files, and pcapng
    /// interface blocks without if_name). Findings and rows carry it.
    #[arg(long, value_name = "NAME", default_value = l2watch::replay::DEFAULT_IFACE_NAME)]
    iface_name: String,

    /// Also write the result (devices, DHCP servers, findings, history) to this SQLite
    /// database, through the same store the agent uses. Nothing is read from it.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,

    #[command(flatten)]
    kernel: KernelArgs,
}

impl ReplayArgs {
    /// The config file's settings (or the defaults) with these flags on top.
    fn config(&self) -> Result<Config, l2watch::config::ConfigError> {
        let mut c = match &self.config {
            Some(p) => Config::load(p, true)?,
            None => Config::default(),
        };
        self.kernel.apply(&mut c.kernel);
        if let Some(p) = &self.config {
            c.validate(p)?;
        }
        Ok(c)
    }
}

/// A duration as humantime reads it (`500ms`, `10s`, `5m`, `1h 30m`); a bare number is seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration ({e}): use e.g. 500ms, 10s, 5m, 1h"))
}

fn init_logging(format: LogFormat, level: &str) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::{fmt, EnvFilter};
    let filter = EnvFilter::try_from_env("L2WATCH_LOG").unwrap_or_else(|_| {
        EnvFilter::try_new(level).unwrap_or_else(|e| {
            eprintln!("error: --log-level {level:?}: {e}; use e.g. info, debug or \"info,l2watch::event=debug\"");
            std::process::exit(2)
        })
    });
    // Colour for people at a terminal only: journald and log files get plain text.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log_level);
    let fail = |e: anyhow::Error| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    };
    match cli.command {
        Command::Run(args) => run_cmd(args).map_or_else(fail, |()| ExitCode::SUCCESS),
        Command::Replay(args) => replay_cmd(args),
        Command::Devices(a) => {
            let qs = query::query_string(&[
                ("ip", a.ip),
                ("mac", a.mac),
                ("vlan", a.vlan),
                ("interface", a.interface),
                ("family", a.family),
                ("limit", a.limit.map(|l| l.to_string())),
            ]);
            query_cmd(&a.q, &format!("/api/v1/devices{qs}"), query::devices_table)
        }
        Command::Findings(a) => {
            let qs = query::query_string(&[("since", a.since)]);
            query_cmd(
                &a.q,
                &format!("/api/v1/findings{qs}"),
                query::findings_table,
            )
        }
        Command::DhcpServers(q) => query_cmd(&q, "/api/v1/dhcp/servers", query::servers_table),
        Command::Dhcpv6Servers(q) => query_cmd(&q, "/api/v1/dhcpv6/servers", query::servers6_table),
        Command::Routers(q) => query_cmd(&q, "/api/v1/ipv6/routers", query::routers_table),
        Command::Neighbours(q) => {
            query_cmd(&q, "/api/v1/switch/neighbours", query::neighbours_lines)
        }
        Command::Stp(q) => query_cmd(&q, "/api/v1/switch/stp", query::stp_table),
        Command::Lacp(q) => query_cmd(&q, "/api/v1/switch/lacp", query::lacp_table),
        Command::Events(a) if a.follow => follow_cmd(a),
        Command::Events(a) => {
            let qs = query::query_string(&[
                ("since", a.since),
                ("limit", a.limit.map(|l| l.to_string())),
            ]);
            query_cmd(&a.q, &format!("/api/v1/events{qs}"), query::events_table)
        }
        Command::Check(a) => check_cmd(a),
    }
}

/// `events --follow`: prints the stream until interrupted (or until the agent refuses it).
fn follow_cmd(a: EventArgs) -> ExitCode {
    use std::io::Write as _;
    if a.format == FollowFormat::MaasNetmon && a.iface.is_none() {
        eprintln!("error: --format maas-netmon follows one interface, as maas-netmon IFNAME does: pass --iface IF");
        return ExitCode::from(2);
    }
    let kind = match a.format {
        // MAAS's feed is made of ARP bindings only.
        FollowFormat::MaasNetmon => Some(a.kind.unwrap_or_else(|| "arp".into())),
        _ => a.kind,
    };
    let qs = query::query_string(&[("kind", kind), ("vlan", a.vlan), ("interface", a.iface)]);
    let mut feed = l2watch::maas::Feed::default();
    let out = std::io::stdout();
    let e = query::follow(&a.q.target(), &qs, |ev| {
        let line = match a.format {
            FollowFormat::Text if !a.q.json => Some(query::event_line(ev)),
            FollowFormat::Text | FollowFormat::Json => Some(ev.to_string()),
            FollowFormat::MaasNetmon => feed.line(ev),
        };
        if let Some(l) = line {
            let mut o = out.lock();
            // A closed pipe (| head) ends the follow.
            if writeln!(o, "{l}").and_then(|_| o.flush()).is_err() {
                std::process::exit(0);
            }
        }
    });
    eprintln!("error: {e}");
    ExitCode::FAILURE
}

fn query_cmd(q: &QueryArgs, path: &str, table: fn(&serde_json::Value) -> String) -> ExitCode {
    match query::get(&q.target(), path) {
        Ok(body) => {
            if q.json {
                println!("{}", serde_json::to_string_pretty(&body).expect("JSON"));
            } else {
                println!("{}", table(&body));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_cmd(a: CheckArgs) -> ExitCode {
    let mut items = check::system();
    let ifaces = if a.interfaces.is_empty() {
        let d = l2watch::links::discover(std::path::Path::new("/sys/class/net"));
        if d.chosen.is_empty() {
            items.push(check::Item {
                level: check::Level::Error,
                subject: "interfaces".into(),
                message: "no up, non-loopback Ethernet interface to watch".into(),
                fix: Some("bring one up, or name one with --iface".into()),
            });
        }
        d.chosen
    } else {
        a.interfaces
    };
    for i in &ifaces {
        items.extend(check::interface(i));
    }
    for i in &items {
        if a.json {
            println!("{}", serde_json::to_string(i).expect("JSON"));
        } else {
            println!("{i}");
        }
    }
    ExitCode::from(check::worst(&items).exit_code())
}

fn run_cmd(args: RunArgs) -> anyhow::Result<()> {
    let cfg = args.config()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(async {
        let shutdown = CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
            tokio::select! {
                _ = term.recv() => info!(signal = "SIGTERM", "shutting down"),
                _ = int.recv() => info!(signal = "SIGINT", "shutting down"),
            }
            signals.cancel();
        });
        let reload: l2watch::run::Reload = Box::new(move || args.config());
        run(cfg, reload, shutdown)
            .await
            .context("l2watch run failed (try `l2watch check` for a preflight)")
    })
}

fn replay_cmd(args: ReplayArgs) -> ExitCode {
    let cfg = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut probe = match Probe::load(&args.kernel.probe_config(&cfg.kernel, false)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let writer = match &args.db {
        None => None,
        Some(path) => match l2watch::store::Store::open(path) {
            Ok((store, _)) => {
                let caps = l2watch::store::Caps::of(&cfg.engine);
                // Retention runs on the wall clock; a capture's rows are as old as the
                // capture, so nothing is aged out of a replay's database.
                let keep = l2watch::store::Retention {
                    event_days: u64::MAX,
                    closed_finding_days: u64::MAX,
                    ..cfg.database.retention.clone()
                };
                Some(l2watch::store::Writer::spawn(
                    store,
                    keep,
                    caps,
                    l2watch::model::wall_clock,
                ))
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let analysis = l2watch::replay::Analysis {
        engine: cfg.engine.clone(),
        iface_name: args.iface_name.clone(),
        writer,
        flush: cfg.flush_interval(),
    };
    let report = match analyze(&args.file, &mut probe, analysis, !args.no_events) {
        Ok(r) => r,
        Err(ReplayError::Capture(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
    } else {
        print_report(&report);
    }
    if let Some(e) = &report.capture.error {
        eprintln!("error: {e} (counts above cover the frames before it)");
        return ExitCode::from(3);
    }
    ExitCode::SUCCESS
}

fn print_report(report: &l2watch::replay::AnalysisReport) {
    let c = &report.capture;
    println!("{}", c.file);
    for key in TSHARK_KEYS {
        println!("  {key:<24} {}", c.counts.get(key).copied().unwrap_or(0));
    }
    println!("  kernel stats:");
    for (k, v) in &c.stats {
        println!("    {k:<22} {v}");
    }
    println!("  devices: {}", report.devices.len());
    for d in &report.devices {
        println!(
            "    {:<15} {} {:<9} {:<17} {} {}",
            d.key.ip,
            d.key.seg,
            d.vlan,
            d.mac,
            d.hostname.as_deref().unwrap_or("-"),
            d.vendor.as_deref().unwrap_or("")
        );
    }
    println!("  dhcp servers: {}", report.dhcp_servers.len());
    for s in &report.dhcp_servers {
        println!(
            "    {:<15} {} {} offers={} acks={} naks={}",
            s.key.server_id, s.key.mac, s.vlan, s.server.offers, s.server.acks, s.server.naks
        );
    }
    println!("  findings: {}", report.findings.len());
    for f in &report.findings {
        println!("    {:<24} {} {}", f.kind, f.subject, f.evidence);
    }
    for ev in &c.events {
        println!("  {}", serde_json::to_string(ev).expect("event serialises"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("ten").is_err());
        assert_eq!(
            parse_duration("1h 30m").unwrap(),
            Duration::from_secs(5_400)
        );
        let e = parse_duration("5 parsecs").unwrap_err();
        assert!(e.contains("use e.g. 500ms"), "{e}");
    }
}
