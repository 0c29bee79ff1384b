//! The agent's tasks are supervised as one set: when the ring-buffer reader (the ingest
//! thread) or another task fails (forced here through test hooks), `/readyz` turns 503, the
//! task and reason are logged, and the process exits non-zero so that systemd or Kubernetes
//! restarts it, instead of serving stale data.
use std::{
    io::{BufRead, BufReader},
    process::Stdio,
    time::{Duration, Instant},
};

use l2watch_tests::{
    http, l2watch_bin,
    netns::{veth_pair, Netns},
    privileged,
};

#[test]
fn a_failed_ingest_clears_readiness_and_exits_non_zero() {
    privileged!();
    fails_and_exits(
        "ingest",
        ("L2WATCH_TEST_FAIL_INGEST_AFTER_MS", "4000"),
        19761,
    );
}

#[test]
fn a_failed_link_watcher_clears_readiness_and_exits_non_zero() {
    privileged!();
    fails_and_exits("links", ("L2WATCH_TEST_FAIL_TASK", "links:4000"), 19762);
}

/// Starts the agent with the hook `env`, sees it ready, then not ready, then exit 1 with a
/// line naming `task` and the hook. The hooks fire 4 s after start: each readiness poll runs
/// a process in the namespace, and under CI load 1.5 s left too short a window to see 200.
fn fails_and_exits(task: &str, env: (&str, &str), port: u16) {
    let mon = Netns::new("sup");
    let peer = Netns::new("supp");
    let (mon_if, _) = veth_pair(&mon, &peer);
    let mut child = mon
        .command(l2watch_bin().to_str().unwrap())
        .args(["--log-format", "json", "run", "--no-db", "--iface", &mon_if])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env(env.0, env.1)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start l2watch");
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    // Ready first, then not ready once the task fails. The listener answers 503 for a moment
    // before the agent is ready too (it binds before the programs' tasks start): only a 503
    // after a 200 is the failure.
    let mut states = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let s = http::try_get(&mon, port, "/readyz").map(|r| r.0).ok();
        if states.last() != Some(&s) {
            states.push(s);
        }
        if s == Some(503) && states.contains(&Some(200)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(states.contains(&Some(200)), "never ready: {states:?}");
    assert_eq!(
        states.last(),
        Some(&Some(503)),
        "readiness never cleared: {states:?}"
    );
    let status = child.wait().expect("wait");
    let log = log.join().unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "exit status {status:?}; log:\n{}",
        log.join("\n")
    );
    let failed = log
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "task failed: not ready; stopping")
        .unwrap_or_else(|| panic!("no failure line in:\n{}", log.join("\n")));
    assert_eq!(failed["task"], task, "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("test hook"),
        "{failed}"
    );
}
