//! Storms against the real agent with its default settings: every station of a 65,535-station
//! burst reaches the device table, and a unique-MAC flood stays bounded, opens one flood
//! finding, and leaves the real stations seen before it in the table. Functional checks only:
//! the figures are `cargo xtask bench storm`'s.
use std::time::{Duration, Instant};

use l2watch_tests::{
    agent::Agent,
    frames::{arp, BROADCAST, L2},
    http,
    netns::send_frames,
    privileged,
    storm::{station, StormLab},
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// One storm at a time: two generators at full rate on two cores would make the veth drop
/// frames before any XDP program sees them.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn json(lab: &StormLab, port: u16, path: &str) -> Value {
    let (status, body) = http::get(&lab.mon, port, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

/// Every sample of `name` summed, by exact name.
fn metric(text: &str, name: &str) -> f64 {
    l2watch_tests::prom::sum(text, name, &[])
}

/// Waits until `pred` holds for the agent's metrics; panics with the last scrape.
fn wait_metrics(lab: &StormLab, port: u16, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = http::try_get(&lab.mon, port, "/metrics").map_or(String::new(), |r| r.1);
        if pred(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last scrape:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start(lab: &StormLab, port: u16, db: &std::path::Path) -> Agent {
    let listen = format!("127.0.0.1:{port}");
    let mut agent = Agent::start_with_log(
        &lab.mon,
        &[
            "run",
            "--iface",
            &lab.mon_if,
            "--listen",
            &listen,
            "--db",
            db.to_str().expect("utf-8"),
        ],
        "info",
    );
    agent.wait_for("ready", WAIT, |v| v["message"] == "ready");
    agent
}

#[test]
fn a_65535_station_burst_is_learnt_whole_with_defaults() {
    privileged!();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = StormLab::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("l2watch.db");
    let port = 19741;
    let mut agent = start(&lab, port, &db);
    // One burst, as fast as the kernel makes frames: every station speaks exactly once.
    lab.offer(0, 65_535, 65_535, None, None);
    // The kernel's own counts say how many frames and new bindings XDP saw, should the veth
    // ever drop frames before it.
    let text = wait_metrics(
        &lab,
        port,
        "65,535 devices (see l2watch_frames_total and l2watch_arp_bindings_new_total)",
        |t| metric(t, "l2watch_devices") >= 65_535.0,
    );
    assert_eq!(metric(&text, "l2watch_devices"), 65_535.0);
    assert_eq!(metric(&text, "l2watch_kernel_pending_full_total"), 0.0);
    assert_eq!(metric(&text, "l2watch_ringbuf_drops_total"), 0.0);
    // The API lists them all, and the first and last stations are there as sent.
    // A list answer is capped (10,000 by default): ask for all of them.
    let devices = json(&lab, port, "/api/v1/devices?limit=100000");
    assert_eq!(devices["count"], 65_535);
    assert_eq!(devices["truncated"], false);
    for n in [0, 65_534] {
        let (mac, ip) = station(n);
        let d = json(&lab, port, &format!("/api/v1/devices?ip={ip}"));
        assert_eq!(d["devices"][0]["mac"], mac.as_str(), "{d}");
    }
    // Persistence is off the ingest path but keeps up: every station reaches the database.
    let deadline = Instant::now() + WAIT;
    loop {
        let n: i64 =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .and_then(|c| c.query_row("SELECT count(*) FROM devices", [], |r| r.get(0)))
                .unwrap_or(0);
        if n == 65_535 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "database holds {n} of 65,535 devices"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(agent.stop(WAIT), Some(0));
}

#[test]
fn a_unique_mac_flood_is_one_bounded_finding_and_real_stations_stay() {
    privileged!();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = StormLab::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("l2watch.db");
    let port = 19742;
    let mut agent = start(&lab, port, &db);
    let rss_before = rss_kb(agent.pid());
    // Five real stations announce themselves before the flood.
    let real: Vec<([u8; 6], [u8; 4])> = (1..=5u8)
        .map(|i| ([0x02, 0x77, 0, 0, 0, i], [10, 77, 0, i]))
        .collect();
    let frames: Vec<Vec<u8>> = real
        .iter()
        .map(|(mac, ip)| arp(&L2::new(*mac, BROADCAST), 2, *mac, *ip, [0; 6], *ip).bytes)
        .collect();
    send_frames(&lab.gen, &lab.gen_if, &frames);
    wait_metrics(&lab, port, "the real stations", |t| {
        metric(t, "l2watch_devices") >= 5.0
    });
    // A million unique MACs (their IPs repeat every 131,072, so bindings also move).
    lab.offer(1 << 20, 1_000_000, 1_000_000, None, None);
    let text = wait_metrics(&lab, port, "the flood finding", |t| {
        l2watch_tests::prom::sum(t, "l2watch_findings_open", &[("kind", "arp_flood")]) == 1.0
    });
    // Bounded: the table at its capacity with evictions counted, the process small.
    let devices = metric(&text, "l2watch_devices");
    assert!(devices <= 100_000.0, "{devices} devices past the capacity");
    assert!(metric(&text, "l2watch_device_evictions_total") > 0.0);
    let findings = json(&lab, port, "/api/v1/findings");
    let open: Vec<&str> = findings["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        open.iter().filter(|k| **k == "arp_flood").count(),
        1,
        "one flood finding per segment: {open:?}"
    );
    assert!(
        !open
            .iter()
            .any(|k| *k == "mac_changed" || *k == "mac_flip_flop"),
        "per-binding findings are folded into the flood: {open:?}"
    );
    // The real stations learnt before the flood are still in the table.
    for (mac, ip) in &real {
        let ip = std::net::Ipv4Addr::from(*ip);
        let d = json(&lab, port, &format!("/api/v1/devices?ip={ip}"));
        assert_eq!(d["count"], 1, "{ip} evicted by the flood: {d}");
        let mac = l2watch::capture::Mac(*mac).to_string();
        assert_eq!(d["devices"][0]["mac"], mac.as_str());
    }
    let grown_mb = (rss_kb(agent.pid()) - rss_before) / 1024;
    eprintln!("flood: RSS grew by {grown_mb} MB, {devices} devices");
    assert!(grown_mb < 256, "RSS grew by {grown_mb} MB");
    assert_eq!(agent.stop(WAIT), Some(0));
}

fn rss_kb(pid: u32) -> i64 {
    // The agent runs under `ip netns exec`, which execs it: the PID is the agent's.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
