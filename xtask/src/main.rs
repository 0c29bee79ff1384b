//! Developer tasks: `setup` (toolchain and test packages, idempotent), `run`, `test`, `bench`,
//! `lab` and `demo`. Every task but `setup` runs setup first, so a fresh machine needs only the
//! README commands.
mod lab;

use std::{
    env,
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
    time::Instant,
};

use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Parser, Subcommand};

/// The bpf-linker release known to build against nightly's LLVM here.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// cargo-deb builds the Debian package (`cargo xtask deb`).
const CARGO_DEB_VERSION: &str = "3.8.0";
/// cargo-fuzz runs the libFuzzer targets in fuzz/ (`cargo xtask fuzz`).
const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// Seconds each fuzz target runs in `cargo xtask test` (a smoke: crashes that come quickly).
const FUZZ_SMOKE_SECS: u64 = 20;

/// Debian packages the tests and the lab use: real software, no mocks.
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("iproute2", "ip netns / veth / bridge for namespace tests"),
    ("dnsmasq-base", "real DHCP servers in the lab"),
    ("isc-dhcp-client", "dhclient, real DHCP clients"),
    ("iputils-arping", "arping, real ARP announcements"),
    (
        "prometheus",
        "promtool and a real Prometheus for end-to-end tests",
    ),
    ("ieee-data", "the IEEE OUI registry for vendor names"),
    ("ethtool", "rxvlan checks in the lab"),
    (
        "arpwatch",
        "the storm benchmark's peer (cargo xtask bench storm)",
    ),
    ("arpalert", "the storm benchmark's second peer"),
    (
        "radvd",
        "real IPv6 routers (legitimate and rogue) in the lab",
    ),
    (
        "iputils-ping",
        "ping, real neighbour discovery between lab hosts",
    ),
    ("thc-ipv6", "kill_router6, the lab's router-lifetime spoof"),
    (
        "tshark",
        "the corpus tests pair DHCP transactions as tshark does (dhcp.id)",
    ),
    ("lldpd", "real LLDP and CDP neighbours in the lab"),
    ("openssl", "certificates for the TLS listener tests"),
    ("curl", "the TLS and auth tests' HTTP client"),
    (
        "chromium",
        "a real headless browser for the status page test",
    ),
    ("lintian", "checks the Debian package (cargo xtask deb)"),
];

#[derive(Parser)]
#[command(name = "xtask", about = "l2watch developer tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what building and testing need: nightly + rust-src, bpf-linker built against
    /// nightly's own libLLVM, and (as root) the Debian packages the tests use. Idempotent.
    Setup,
    /// Build in release mode and run `l2watch run` with the given arguments.
    ///
    /// Example: cargo xtask run -- --iface eth0
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Run every test: formatting, clippy, unit tests, BPF_PROG_TEST_RUN fixtures, corpus
    /// replay and live network-namespace tests. Set L2WATCH_REQUIRE_PRIVILEGED=1 to make
    /// privileged tests fail instead of skip when not root.
    Test {
        /// Skip `cargo fmt --check` and clippy.
        #[arg(long)]
        no_lint: bool,
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Measure the XDP program per packet with BPF_PROG_TEST_RUN, as ratios to a bare
    /// XDP_PASS program measured in the same run; then the engine's ingest rate and memory per
    /// device, and SQLite write throughput, each against a baseline from the same run.
    ///
    /// `cargo xtask bench storm [CASE...]` instead runs the live path end to end: a kernel
    /// generator offering up to line rate into a veth, l2watch (defaults), arpwatch and
    /// arpalert on the other end, side by side (needs root; about 10 minutes). `bench storm
    /// throughput [ROUNDS]` measures l2watch against a bare XDP_PASS program in interleaved
    /// pairs; `bench storm attack [SECS]` floods unique MACs at 1 Mpps and watches the agent.
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Fuzz the decoders with libFuzzer (cargo-fuzz, nightly): DHCPv4, ring records,
    /// pcap/pcapng, the config and web config, RA, DHCPv6, LLDP, CDP, BPDUs, LACPDUs. Seeds
    /// come from the shared corpus; a crash fails with its input saved under
    /// fuzz/artifacts/TARGET/ (turn it into a regression test). Prints executions per second
    /// and coverage per target.
    ///
    /// Example: cargo xtask fuzz --secs 600 dhcp lldp
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = FUZZ_SMOKE_SECS)]
        secs: u64,
        /// Build without optimisations: compiles in half the time, runs fewer executions
        /// per second (what the CI smoke uses).
        #[arg(long)]
        dev: bool,
        /// Targets run at once (one core each).
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Targets to run [default: all].
        targets: Vec<String>,
    },
    /// Run the demo's churn (DHCP clients and servers, a rogue server, a duplicate IP, NIC
    /// swaps, storms, VLAN/QinQ, IPv6) against one agent for N minutes, sampling its RSS,
    /// open descriptors, database size and scrape time every 10 s (needs root; not in CI).
    ///
    /// Example: sudo cargo xtask soak --minutes 30 --csv soak.csv
    Soak {
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        /// Also write the samples as CSV.
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// The l2watch binary [default: build and use target/release/l2watch].
        #[arg(long, value_name = "PATH")]
        agent: Option<PathBuf>,
    },
    /// Build the Debian package, target/debian/l2watch_<version>_amd64.deb (cargo-deb, release
    /// build), and check it with lintian (errors fail). Install it with `dpkg -i`.
    Deb {
        /// Skip the lintian check.
        #[arg(long)]
        no_lintian: bool,
    },
    /// A private layer-2 lab in network namespaces: a hub bridge (every port sees every
    /// frame, like a SPAN port), a monitor port for l2watch, and hosts running real dnsmasq,
    /// dhclient and arping. `up` leaves it running; `step` plays scenario steps on it.
    Lab {
        #[command(subcommand)]
        cmd: lab::LabCmd,
    },
    /// Try l2watch without a rack: builds the lab, runs the agent on its monitor port, plays
    /// scripted churn (DHCP clients, a rogue DHCP server, a duplicate IP, a swapped NIC, a
    /// DHCP storm, VLAN and QinQ traffic) and shows the agent's view live. Ctrl-C stops it and
    /// removes every namespace.
    Demo {
        /// The l2watch binary to run [default: build and use target/release/l2watch].
        #[arg(long, value_name = "PATH")]
        agent: Option<PathBuf>,
        /// Stop by itself after this many seconds.
        #[arg(long, value_name = "SECS")]
        duration: Option<u64>,
        /// Seconds between screens of the live view.
        #[arg(long, value_name = "SECS", default_value_t = 2)]
        refresh: u64,
        /// Print each screen after the last instead of redrawing (for logs and pipes).
        #[arg(long)]
        plain: bool,
    },
}

fn main() {
    if let Err(e) = main_result() {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}

fn main_result() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root()?;
    env::set_current_dir(&root)?;
    match cli.cmd {
        Cmd::Setup => setup(),
        Cmd::Run { args } => {
            setup()?;
            cargo(&["build", "--release", "-p", "l2watch"])?;
            let mut cmd = Command::new(root.join("target/release/l2watch"));
            cmd.arg("run").args(args);
            exit_with(
                cmd.status()
                    .context("cannot start target/release/l2watch")?,
            )
        }
        Cmd::Test { no_lint, args } => {
            setup()?;
            let start = Instant::now();
            if !no_lint {
                cargo(&["fmt", "--all", "--", "--check"])
                    .context("code is not formatted: run `cargo fmt --all`")?;
                // The eBPF crate only builds for the BPF target with nightly: lint it there.
                cargo(&[
                    "clippy",
                    "--workspace",
                    "--exclude",
                    "monitor-ebpf",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ])?;
                run(Command::new("cargo").args([
                    "+nightly",
                    "clippy",
                    "-p",
                    "monitor-ebpf",
                    "--target",
                    "bpfel-unknown-none",
                    "-Z",
                    "build-std=core",
                    "--release",
                    "--target-dir",
                    "target/ebpf-clippy",
                    "--",
                    "-D",
                    "warnings",
                ]))?;
            }
            // The live and CLI tests run the real binary; the package test installs a package
            // of it (`cargo xtask deb` builds the same package from a release build), checked
            // by lintian here.
            cargo(&["build", "-p", "l2watch"])?;
            let deb = build_deb(true)?;
            lintian(&deb)?;
            // Every test binary runs even after one fails, so a CI log shows all failures.
            let mut test_args: Vec<OsString> = ["test", "--workspace", "--no-fail-fast"]
                .iter()
                .map(OsString::from)
                .collect();
            test_args.extend(args);
            let cargo_bin = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            run(Command::new(cargo_bin)
                .args(&test_args)
                .env("L2WATCH_DEB", &deb))?;
            // Every decoder under libFuzzer for a short smoke.
            fuzz(FUZZ_SMOKE_SECS, true, 2, &[])?;
            eprintln!("xtask test: done in {:.0?}", start.elapsed());
            Ok(())
        }
        Cmd::Soak {
            minutes,
            csv,
            agent,
        } => {
            setup()?;
            let agent = release_agent(agent, &root)?;
            lab::soak(lab::SoakOpts {
                agent,
                minutes,
                csv,
            })
        }
        Cmd::Fuzz {
            secs,
            dev,
            jobs,
            targets,
        } => {
            setup()?;
            fuzz(secs, dev, jobs, &targets)
        }
        Cmd::Deb { no_lintian } => {
            setup()?;
            let deb = build_deb(false)?;
            if !no_lintian {
                lintian(&deb)?;
            }
            println!("{}", deb.display());
            Ok(())
        }
        Cmd::Bench { args } if args.first().is_some_and(|a| a == "storm") => {
            setup()?;
            cargo(&["build", "--release", "-p", "l2watch"])?;
            cargo(&[
                "build",
                "--release",
                "-p",
                "l2watch-tests",
                "--bin",
                "l2watch-storm-bench",
            ])?;
            let mut cmd = Command::new(root.join("target/release/l2watch-storm-bench"));
            cmd.args(&args[1..]);
            exit_with(cmd.status().context("cannot start the storm benchmark")?)
        }
        Cmd::Bench { args } => {
            setup()?;
            cargo(&[
                "build",
                "--release",
                "-p",
                "l2watch-tests",
                "--bin",
                "l2watch-bench",
                "--bin",
                "l2watch-engine-bench",
            ])?;
            // Kernel half (XDP under BPF_PROG_TEST_RUN), then userspace half (engine, store).
            let mut cmd = Command::new(root.join("target/release/l2watch-bench"));
            cmd.args(&args);
            let status = cmd.status().context("cannot start the XDP benchmark")?;
            if !status.success() {
                return exit_with(status);
            }
            println!();
            let mut cmd = Command::new(root.join("target/release/l2watch-engine-bench"));
            exit_with(cmd.status().context("cannot start the engine benchmark")?)
        }
        Cmd::Lab { cmd } => {
            setup()?;
            lab::lab(cmd)
        }
        Cmd::Demo {
            agent,
            duration,
            refresh,
            plain,
        } => {
            setup()?;
            let agent = release_agent(agent, &root)?;
            use std::io::IsTerminal as _;
            lab::demo(lab::DemoOpts {
                agent,
                duration: duration.map(std::time::Duration::from_secs),
                refresh: std::time::Duration::from_secs(refresh.max(1)),
                plain: plain || !std::io::stdout().is_terminal(),
            })
        }
    }
}

/// The agent to run: the one named, else a fresh release build.
fn release_agent(named: Option<PathBuf>, root: &Path) -> Result<PathBuf> {
    match named {
        Some(a) => Ok(a),
        None => {
            cargo(&["build", "--release", "-p", "l2watch"])?;
            Ok(root.join("target/release/l2watch"))
        }
    }
}

fn exit_with(status: ExitStatus) -> Result<()> {
    if status.success() {
        Ok(())
    } else {
        std::process::exit(status.code().unwrap_or(1))
    }
}

fn workspace_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    Ok(manifest
        .parent()
        .ok_or_else(|| anyhow!("xtask has no parent directory"))?
        .to_path_buf())
}

/// Where bpf-linker and its LLVM prefix live; must match monitor/build.rs.
/// Every fuzz target: the `[[bin]]` names of fuzz/Cargo.toml.
fn fuzz_targets(root: &Path) -> Result<Vec<String>> {
    let manifest = fs::read_to_string(root.join("fuzz/Cargo.toml"))?;
    Ok(manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "l2watch-fuzz")
        .map(str::to_owned)
        .collect())
}

/// Seeds, builds and runs the fuzz targets for `secs` each; prints a line per target.
fn fuzz(secs: u64, dev: bool, jobs: usize, only: &[String]) -> Result<()> {
    let root = workspace_root()?;
    let all = fuzz_targets(&root)?;
    let targets: Vec<String> = if only.is_empty() {
        all.clone()
    } else {
        for t in only {
            if !all.contains(t) {
                bail!("no fuzz target {t:?}: the targets are {}", all.join(", "));
            }
        }
        only.to_vec()
    };
    let corpus = env::var_os("L2WATCH_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/corpus/pcap"));
    let seeds = root.join("target/fuzz-corpus");
    if corpus.join("ground_truth.json").exists() {
        cargo(&[
            "build",
            "-p",
            "l2watch-tests",
            "--bin",
            "l2watch-fuzz-seeds",
        ])?;
        run(Command::new(root.join("target/debug/l2watch-fuzz-seeds"))
            .arg(&corpus)
            .arg(&seeds))?;
    } else {
        eprintln!(
            "xtask fuzz: no shared corpus at {} (set L2WATCH_CORPUS): targets start unseeded",
            corpus.display()
        );
    }
    let cargo_fuzz = tools_dir().join("bin/cargo-fuzz");
    // Coverage-guided without a sanitizer: the decoders are safe Rust, and the build and the
    // runs are several times faster; debug assertions (overflow checks) stay on.
    let common = [
        "--sanitizer",
        "none",
        if dev { "--dev" } else { "--release" },
        "--debug-assertions",
    ];
    let fuzz_target_dir = root.join("target/fuzz");
    let nightly = |c: &mut Command| {
        c.current_dir(root.join("fuzz"))
            .env("RUSTUP_TOOLCHAIN", "nightly")
            .env("L2WATCH_NO_EBPF", "1")
            .env_remove("CARGO")
            .env_remove("RUSTC");
    };
    let mut build = Command::new(&cargo_fuzz);
    nightly(&mut build);
    run(build
        .arg("build")
        .args(common)
        .arg("--target-dir")
        .arg(&fuzz_target_dir))
    .context("building the fuzz targets failed")?;
    let mut report = Vec::new();
    // `jobs` targets at a time, each its own libFuzzer process on its own core.
    let spawn = |t: &String| -> Result<std::process::Child> {
        let dir = seeds.join(t);
        fs::create_dir_all(&dir)?;
        let mut cmd = Command::new(&cargo_fuzz);
        nightly(&mut cmd);
        cmd.arg("run")
            .args(common)
            .arg("--target-dir")
            .arg(&fuzz_target_dir)
            .arg(t)
            .arg(&dir)
            .args([
                "--",
                &format!("-max_total_time={secs}"),
                "-print_final_stats=1",
                "-max_len=4096",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run cargo fuzz run {t}"))
    };
    let mut outputs = Vec::new();
    for chunk in targets.chunks(jobs.max(1)) {
        let children: Vec<_> = chunk
            .iter()
            .map(|t| spawn(t).map(|c| (t.clone(), c)))
            .collect::<Result<_>>()?;
        for (t, c) in children {
            outputs.push((t, c.wait_with_output()?));
        }
    }
    for (t, out) in &outputs {
        let dir = seeds.join(t);
        let log = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            // The panic (message and location), then libFuzzer's summary with the input.
            let lines: Vec<&str> = log.lines().collect();
            let panic: Vec<&str> = lines
                .iter()
                .position(|l| l.contains("panicked at"))
                .map(|i| lines[i..(i + 3).min(lines.len())].to_vec())
                .unwrap_or_default();
            let tail = &lines[lines.len().saturating_sub(25)..];
            bail!(
                "fuzz target {t} failed (a crash: the input is under fuzz/artifacts/{t}/; \
                 add it as a regression test):\n{}\n...\n{}",
                panic.join("\n"),
                tail.join("\n")
            );
        }
        let stat = |key: &str| {
            log.lines().find_map(|l| {
                l.strip_prefix(key)?
                    .trim()
                    .strip_prefix(':')?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
        };
        let cov = log
            .lines()
            .rev()
            .find_map(|l| {
                let i = l.find(" cov: ")?;
                l[i + 6..].split_whitespace().next()?.parse::<u64>().ok()
            })
            .unwrap_or(0);
        let execs = stat("stat::number_of_executed_units").unwrap_or(0);
        let line = format!(
            "{t:<12} {secs:>5} s  {execs:>11} execs  {:>8} exec/s  cov {cov:>6}  corpus {}",
            stat("stat::average_exec_per_sec").unwrap_or(0),
            fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0),
        );
        eprintln!("xtask fuzz: {line}");
        report.push(line);
    }
    println!("{}", report.join("\n"));
    Ok(())
}

/// Builds the package with cargo-deb; returns its path. `test_build`: package the dev
/// build the tests already made (stripped, fast compression) into target/debian-test/, so
/// the CI proves the packaging without a second, release build of everything.
fn build_deb(test_build: bool) -> Result<PathBuf> {
    let root = workspace_root()?;
    let out_dir = root.join(if test_build {
        "target/debian-test"
    } else {
        "target/debian"
    });
    fs::create_dir_all(&out_dir)?;
    let mut cmd = Command::new(tools_dir().join("bin/cargo-deb"));
    cmd.current_dir(&root)
        .args(["deb", "-p", "l2watch", "--output"])
        .arg(&out_dir);
    if test_build {
        cmd.args(["--profile", "dev", "--strip", "--fast"]);
    }
    let out = output(&mut cmd).context("cargo-deb failed")?;
    let path = out
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.ends_with(".deb"))
        .ok_or_else(|| anyhow!("cargo-deb printed no package path: {out}"))?;
    Ok(PathBuf::from(path))
}

/// lintian on the package: errors fail, warnings are printed.
fn lintian(deb: &Path) -> Result<()> {
    if Command::new("lintian").arg("--version").output().is_err() {
        bail!("lintian is not installed: run `sudo cargo xtask setup` (it installs the lintian package)");
    }
    run(Command::new("lintian")
        .args(["--fail-on", "error", "--no-tag-display-limit", "--info"])
        .arg(deb))
    .context("lintian found errors in the package")
}

fn tools_dir() -> PathBuf {
    if let Some(dir) = env::var_os("L2WATCH_TOOLS_DIR") {
        return PathBuf::from(dir);
    }
    let cache = env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    cache.join("l2watch-tools")
}

fn cargo<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Result<()> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(args);
    run(&mut cmd)
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn setup() -> Result<()> {
    let start = Instant::now();
    ensure_nightly()?;
    ensure_bpf_linker()?;
    ensure_cargo_tool("cargo-deb", CARGO_DEB_VERSION, "cargo-deb")?;
    ensure_cargo_tool("cargo-fuzz", CARGO_FUZZ_VERSION, "cargo-fuzz")?;
    ensure_debian_packages()?;
    eprintln!("xtask setup: ready in {:.1?}", start.elapsed());
    Ok(())
}

fn ensure_nightly() -> Result<()> {
    let have_nightly = Command::new("rustc")
        .args(["+nightly", "-V"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have_nightly {
        eprintln!("xtask setup: installing the nightly toolchain (builds the eBPF crate)");
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let src = Path::new(sysroot.trim()).join("lib/rustlib/src/rust/library/core");
    if !src.exists() {
        eprintln!("xtask setup: adding rust-src to nightly (needed for -Z build-std=core)");
        run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    Ok(())
}

/// Builds bpf-linker against the libLLVM shipped inside the nightly toolchain, so the two
/// always agree on the LLVM version. The LLVM major and file name come from the toolchain.
fn ensure_bpf_linker() -> Result<()> {
    let vv = output(Command::new("rustc").args(["+nightly", "-vV"]))?;
    let llvm = vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .ok_or_else(|| anyhow!("`rustc +nightly -vV` does not report an LLVM version"))?
        .trim()
        .to_string();
    let major = llvm
        .split('.')
        .next()
        .ok_or_else(|| anyhow!("odd LLVM version {llvm}"))?
        .to_string();
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let libdir = Path::new(sysroot.trim()).join("lib");
    let lib_prefix = format!("libLLVM.so.{major}.");
    let libllvm = fs::read_dir(&libdir)
        .with_context(|| format!("cannot list {}", libdir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with(&lib_prefix))
        .ok_or_else(|| {
            anyhow!(
                "no {lib_prefix}* in {}: is nightly's rustc linked against its own LLVM?",
                libdir.display()
            )
        })?;

    let tools = tools_dir();
    let stamp_path = tools.join("bpf-linker.stamp");
    let stamp = format!("bpf-linker {BPF_LINKER_VERSION} llvm-{major} {libllvm}\n");
    let linker = tools.join("bin/bpf-linker");
    if linker.exists() && fs::read_to_string(&stamp_path).ok().as_deref() == Some(&stamp) {
        return Ok(());
    }
    eprintln!(
        "xtask setup: building bpf-linker {BPF_LINKER_VERSION} against nightly's LLVM {llvm} \
         (about 80 s, once)"
    );
    let prefix = tools.join("llvm");
    let prefix_lib = prefix.join("lib");
    fs::create_dir_all(&prefix_lib)?;
    for name in ["libLLVM.so", libllvm.as_str()] {
        let link = prefix_lib.join(name);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(libdir.join(&libllvm), &link)
            .with_context(|| format!("cannot link {}", link.display()))?;
    }
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        .env("LLVM_PREFIX", &prefix)
        .args([
            "install",
            &format!("bpf-linker@{BPF_LINKER_VERSION}"),
            "--locked",
            "--force",
            "--no-default-features",
            "--features",
            &format!("llvm-{major}"),
            "--root",
        ])
        .arg(&tools))
    .context("building bpf-linker failed")?;
    fs::write(&stamp_path, stamp)?;
    Ok(())
}

/// `cargo install`s a cargo subcommand into the tools directory, once per version.
fn ensure_cargo_tool(krate: &str, version: &str, bin: &str) -> Result<()> {
    let tools = tools_dir();
    let stamp_path = tools.join(format!("{krate}.stamp"));
    let stamp = format!("{krate} {version}\n");
    if tools.join("bin").join(bin).exists()
        && fs::read_to_string(&stamp_path).ok().as_deref() == Some(&stamp)
    {
        return Ok(());
    }
    eprintln!("xtask setup: building {krate} {version} (once)");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        .args([
            "install",
            &format!("{krate}@{version}"),
            "--locked",
            "--force",
            "--root",
        ])
        .arg(&tools))
    .with_context(|| format!("building {krate} failed"))?;
    fs::write(&stamp_path, stamp)?;
    Ok(())
}

fn ensure_debian_packages() -> Result<()> {
    if !Path::new("/usr/bin/dpkg-query").exists() {
        eprintln!("xtask setup: not a Debian system; install by hand: iproute2, dnsmasq, dhclient, arping, prometheus");
        return Ok(());
    }
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| {
            Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .map(|o| !String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
                .unwrap_or(true)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "xtask setup: missing Debian packages {missing:?}; privileged tests need them: \
             sudo apt-get install {}",
            missing.join(" ")
        );
        return Ok(());
    }
    eprintln!("xtask setup: installing Debian packages {missing:?}");
    run(Command::new("apt-get")
        .args(["update", "-q"])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    // Debian starts lldpd on install, which would announce this host on every interface of
    // the root namespace; the lab runs its own in namespaces. Only a copy we just installed
    // is stopped.
    if missing.contains(&"lldpd") && Path::new("/run/systemd/system").exists() {
        let _ = Command::new("systemctl")
            .args(["disable", "--now", "lldpd"])
            .status();
    }
    Ok(())
}
