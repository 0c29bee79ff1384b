//! The `l2watch` command line.
use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use l2watch::{
    capture::{Probe, ProbeConfig},
    counts::TSHARK_KEYS,
    engine::EngineConfig,
    replay::{analyze, ReplayError},
    run::{run, RunOptions},
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
    /// Attach to interfaces and log ARP binding changes, DHCP messages and counters.
    ///
    /// Native (driver) XDP is tried first, then generic mode; the log says which one each
    /// interface got. Stops cleanly, detaching everything, on SIGINT or SIGTERM.
    ///
    /// Example: l2watch run --iface eth0 --iface eth1
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
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Interface to monitor (repeat for several).
    #[arg(long = "iface", short = 'i', value_name = "IF", required = true)]
    interfaces: Vec<String>,

    /// How often to log counters, e.g. 10s, 1m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    stats_interval: Duration,

    /// SQLite database for devices, DHCP servers, findings and event history. Created (with
    /// its directory) if missing; state is restored from it on start. An older schema is
    /// migrated; a corrupt file is moved aside to PATH.corrupt-<time> and a new one started.
    #[arg(long, value_name = "PATH", default_value = l2watch::store::DEFAULT_PATH)]
    db: PathBuf,

    /// Keep state in memory only: no database is read or written.
    #[arg(long, conflicts_with = "db")]
    no_db: bool,

    /// How often changes are written to the database; a crash loses at most this much.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    flush_interval: Duration,

    /// Delete history events older than this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    event_retention_days: u64,

    /// Keep at most this many history events (oldest go first).
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    max_events: u64,

    /// Maximum devices in the table (memory and database); the least recently seen entry is
    /// evicted past it, and evictions are counted.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    max_devices: usize,

    #[command(flatten)]
    kernel: KernelArgs,
}

/// Kernel-side settings shared by `run` and `replay`.
#[derive(clap::Args, Debug)]
struct KernelArgs {
    /// Re-report an unchanged IP->MAC binding after this long (repeats inside it are
    /// suppressed in the kernel).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    refresh: Duration,

    /// ARP events per second per CPU once the burst is spent (excess is counted, not sent).
    #[arg(long, default_value_t = 2_000)]
    arp_rate: u32,

    /// ARP event burst per CPU.
    #[arg(long, default_value_t = 10_000)]
    arp_burst: u32,

    /// DHCP events per second per CPU once the burst is spent.
    #[arg(long, default_value_t = 1_000)]
    dhcp_rate: u32,

    /// DHCP event burst per CPU.
    #[arg(long, default_value_t = 5_000)]
    dhcp_burst: u32,

    /// Capacity of the per-(interface, VLAN) counter map; segments beyond it are counted in
    /// an overflow slot and reported as such.
    #[arg(long, default_value_t = 4_096)]
    max_segments: u32,

    /// Capacity of the kernel's binding map (least recently used entries are evicted).
    #[arg(long, default_value_t = 65_536)]
    max_bindings: u32,
}

impl KernelArgs {
    fn probe_config(&self, rate_limit: bool) -> ProbeConfig {
        ProbeConfig {
            refresh: self.refresh,
            rate_limit,
            arp_rate_per_sec: self.arp_rate,
            arp_burst: self.arp_burst,
            dhcp_rate_per_sec: self.dhcp_rate,
            dhcp_burst: self.dhcp_burst,
            max_segments: self.max_segments,
            max_bindings: self.max_bindings,
            ..ProbeConfig::default()
        }
    }
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

    #[command(flatten)]
    kernel: KernelArgs,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration: use e.g. 500ms, 10s, 5m, 1h"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1_000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        _ => return Err(format!("unknown unit in '{s}': use ms, s, m or h")),
    };
    Ok(Duration::from_millis(ms))
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::{fmt, EnvFilter};
    let filter = EnvFilter::try_from_env("L2WATCH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Run(args) => match run_cmd(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Replay(args) => replay_cmd(args),
    }
}

fn run_cmd(args: RunArgs) -> anyhow::Result<()> {
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
        let mut engine = EngineConfig::default();
        engine.devices.capacity = args.max_devices;
        let opts = RunOptions {
            interfaces: args.interfaces,
            probe: args.kernel.probe_config(true),
            stats_interval: args.stats_interval,
            engine,
            db: (!args.no_db).then_some(args.db),
            retention: l2watch::store::Retention {
                event_days: args.event_retention_days,
                max_events: args.max_events,
                ..Default::default()
            },
            flush_interval: args.flush_interval,
        };
        run(opts, shutdown)
            .await
            .context("l2watch run failed (try `l2watch check` for a preflight)")
    })
}

fn replay_cmd(args: ReplayArgs) -> ExitCode {
    let mut probe = match Probe::load(&args.kernel.probe_config(false)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match analyze(
        &args.file,
        &mut probe,
        EngineConfig::default(),
        !args.no_events,
    ) {
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
        assert!(parse_duration("5y").is_err());
    }
}
