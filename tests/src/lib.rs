//! Helpers shared by l2watch's integration tests: the privilege gate, a frame builder, network
//! namespace guards that clean up on drop, and an AF_PACKET sender that runs inside a namespace.
pub mod agent;
pub mod fixtures;
pub mod grafana;
pub mod http;
pub mod probe;
pub mod prom;
pub mod storm;

// The lab (namespaces, frames, real software) is its own crate so xtask can use it too.
pub use l2watch_lab::{frames, lab, netns, proc, scenario, switch};

use std::path::PathBuf;

/// Returns true when the test may run privileged work. When not root it prints why it skips,
/// or panics if `L2WATCH_REQUIRE_PRIVILEGED=1` (CI sets it): privileged tests never skip in CI.
pub fn require_privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let why = "needs root (BPF program load, XDP attach, network namespaces)";
    if std::env::var("L2WATCH_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{test}: {why}, and L2WATCH_REQUIRE_PRIVILEGED=1 forbids skipping");
    }
    // Straight to the stderr handle: libtest captures eprintln! of passing tests, and a skip
    // must be visible.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {why}; run as root, or set L2WATCH_REQUIRE_PRIVILEGED=1 to fail"
    );
    false
}

/// The first line of every privileged test: the test returns (after saying why on stderr)
/// when it may not run here, and fails instead under `L2WATCH_REQUIRE_PRIVILEGED=1`. The
/// test's own name is used; nothing to keep in sync.
#[macro_export]
macro_rules! privileged {
    () => {{
        fn here() {}
        let name = ::std::any::type_name_of_val(&here);
        let name = name.strip_suffix("::here").unwrap_or(name);
        let name = name.rsplit("::").next().unwrap_or(name);
        if !$crate::require_privileged(name) {
            return;
        }
    }};
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The shared capture corpus: `$L2WATCH_CORPUS`, else `../shared/corpus/pcap` beside the
/// workspace. Panics with the fix when it is missing: the corpus tests are not optional.
pub fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("L2WATCH_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/corpus/pcap"));
    assert!(
        dir.join("ground_truth.json").exists(),
        "capture corpus not found at {} (set L2WATCH_CORPUS to the directory holding \
         ground_truth.json)",
        dir.display()
    );
    dir
}

/// The `l2watch` binary built by `cargo build -p l2watch` (xtask test builds it first).
pub fn l2watch_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("L2WATCH_BIN") {
        return PathBuf::from(p);
    }
    profile_bin("l2watch", "cargo build -p l2watch")
}

/// The `xtask` binary (`cargo xtask ...` builds it; so does `cargo xtask test`).
pub fn xtask_bin() -> PathBuf {
    profile_bin("xtask", "cargo build -p xtask")
}

fn profile_bin(name: &str, build: &str) -> PathBuf {
    // Test executables live in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    let bin = profile_dir.join(name);
    assert!(
        bin.exists(),
        "{} not found: build it with `{build}` (cargo xtask test does)",
        bin.display()
    );
    bin
}

/// The whole pipeline on one corpus capture, replayed through a fresh program.
pub fn analyze_corpus(file: &str) -> l2watch::replay::AnalysisReport {
    let mut probe = probe::load(&l2watch::capture::ProbeConfig::replay());
    l2watch::replay::analyze(
        &corpus_dir().join(file),
        &mut probe,
        l2watch::replay::Analysis::default(),
        false,
    )
    .unwrap_or_else(|e| panic!("{file}: {e}"))
}
