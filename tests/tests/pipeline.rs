//! One pipeline: corpus captures give the same findings through `l2watch replay` as through a
//! live `l2watch run` that receives the same frames on a veth, given the same config file.
//! The captures are joined into one (one after the other, each keeping its own pacing), so
//! both sides see one stream in one order.
//! The config matters (an allowlist turns one server into inventory and another into a rogue),
//! so both sides must honour it; interfaces are named, never `ifN`.
use std::{
    collections::BTreeSet,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use l2watch::pcap::read_capture;
use l2watch_tests::{
    agent::Agent,
    corpus_dir, http, l2watch_bin,
    netns::{send_frames, veth_pair, Netns},
    privileged,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
const PORT: u16 = 9731;

/// A short capture each, so live pacing can follow the capture's clock: DHCP from an
/// allowlisted server, DHCP from another server, an nmap ARP sweep, a DHCP request flood.
const FILES: &[&str] = &[
    "arkime_wireshark-dhcp.pcap",
    "zeek_dhcp.pcap",
    "zeek_nmap-vsn.pcap",
    "suricata-verify_dhcp-request-flood.pcap",
];

const CONFIG: &str = r#"
[engine.dhcp_servers]
allow = [{ vlan = "*", servers = ["192.168.0.1"] }]
"#;

type Found = BTreeSet<(String, String)>;

/// (kind, subject) of every finding, open or closed, in a JSON list.
fn found(list: &Value) -> Found {
    list.as_array()
        .expect("a list of findings")
        .iter()
        .map(|f| {
            let (kind, subject) = (f["kind"].as_str().unwrap(), f["subject"].as_str().unwrap());
            (kind.to_string(), subject.to_string())
        })
        .collect()
}

fn replay(file: &Path, iface: &str, config: Option<&Path>) -> Found {
    let mut cmd = Command::new(l2watch_bin());
    cmd.args(["replay", "--json", "--no-events", "--iface-name", iface]);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let out = cmd.arg(file).output().expect("run l2watch replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("replay JSON");
    found(&report["findings"])
}

/// Joins `files` into one pcap at `out`: each capture's frames keep their spacing, and each
/// capture starts a second after the previous one ends.
fn join(files: &[&str], out: &Path) {
    let mut bytes: Vec<u8> = Vec::new();
    // pcap, nanosecond timestamps, Ethernet.
    bytes.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&4u16.to_le_bytes());
    bytes.extend_from_slice(&[0; 8]);
    bytes.extend_from_slice(&65_535u32.to_le_bytes());
    bytes.extend_from_slice(&1u32.to_le_bytes());
    let mut next = 1_700_000_000 * 1_000_000_000u64;
    for f in files {
        let mut frames: Vec<(u64, Vec<u8>)> = Vec::new();
        read_capture(&corpus_dir().join(f), |fr| {
            frames.push((fr.ts_ns, fr.data.to_vec()))
        })
        .expect("read capture");
        let t0 = frames.first().map_or(0, |f| f.0);
        let mut last = next;
        for (ts, data) in frames {
            let t = next + ts.saturating_sub(t0);
            last = last.max(t);
            bytes.extend_from_slice(&((t / 1_000_000_000) as u32).to_le_bytes());
            bytes.extend_from_slice(&((t % 1_000_000_000) as u32).to_le_bytes());
            bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&data);
        }
        next = last + 1_000_000_000;
    }
    std::fs::write(out, bytes).expect("write the joined capture");
}

/// Sends a capture's frames from `iface` in `ns`, keeping the capture's gaps between them.
fn play(ns: &Netns, iface: &str, file: &Path) {
    let mut frames: Vec<(u64, Vec<u8>)> = Vec::new();
    read_capture(file, |f| frames.push((f.ts_ns, f.data.to_vec()))).expect("read capture");
    let start = Instant::now();
    let t0 = frames.first().map_or(0, |f| f.0);
    let mut batch = Vec::new();
    let mut batch_at = 0;
    for (ts, data) in frames {
        let at = ts.saturating_sub(t0);
        // Frames within a millisecond of each other go out together.
        if at > batch_at + 1_000_000 && !batch.is_empty() {
            send_frames(ns, iface, &std::mem::take(&mut batch));
        }
        if batch.is_empty() {
            batch_at = at;
            let due = Duration::from_nanos(at);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        batch.push(data);
    }
    send_frames(ns, iface, &batch);
}

#[test]
fn replay_and_run_give_the_same_findings_with_the_same_config() {
    privileged!();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("l2watch.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mon = Netns::new("pipe");
    let peer = Netns::new("pipep");
    let (mon_if, peer_if) = veth_pair(&mon, &peer);

    // Replay, with and without the config: the config must change the result.
    let joined = dir.path().join("joined.pcap");
    join(FILES, &joined);
    let want = replay(&joined, &mon_if, Some(&config));
    let without = replay(&joined, &mon_if, None);
    let kinds = |s: &Found| s.iter().map(|(k, _)| k.clone()).collect::<BTreeSet<_>>();
    for k in ["dhcp_rogue_server", "arp_scan", "dhcp_storm"] {
        assert!(kinds(&want).contains(k), "replay with the config: {want:?}");
    }
    assert!(
        !kinds(&want).contains("dhcp_server_seen"),
        "allowlisted or rogue, never merely seen: {want:?}"
    );
    assert!(
        kinds(&without).contains("dhcp_server_seen")
            && !kinds(&without).contains("dhcp_rogue_server"),
        "without the config: {without:?}"
    );
    for (_, subject) in &want {
        assert!(
            subject.starts_with(&mon_if) || !subject.contains(' '),
            "named by the interface: {subject}"
        );
    }

    // Live, same config, same frames.
    let mut agent = Agent::start(
        &mon,
        &[
            "run",
            "--iface",
            &mon_if,
            "--no-db",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    agent.wait_for("ready", WAIT, |v| v["message"] == "ready");
    play(&peer, &peer_if, &joined);
    let deadline = Instant::now() + WAIT;
    let live = loop {
        let (code, body) = http::get(&mon, PORT, "/api/v1/findings?state=all");
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let live = found(&v["findings"]);
        if live == want || Instant::now() > deadline {
            break live;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        live,
        want,
        "run and replay disagree\nonly live: {:?}\nonly replay: {:?}",
        live.difference(&want).collect::<Vec<_>>(),
        want.difference(&live).collect::<Vec<_>>()
    );
    assert_eq!(agent.stop(WAIT), Some(0), "{}", agent.log());
}

#[test]
fn replay_writes_its_result_through_the_agents_store() {
    privileged!();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("replay.db");
    let out = Command::new(l2watch_bin())
        .args([
            "replay",
            "--json",
            "--no-events",
            "--iface-name",
            "trunk0",
            "--db",
        ])
        .arg(&db)
        .arg(corpus_dir().join("zeek_dhcp.pcap"))
        .output()
        .expect("run l2watch replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("replay JSON");
    let conn = rusqlite::Connection::open(&db).expect("open the database");
    let rows = |sql: &str| -> Vec<(String, String)> {
        let mut st = conn.prepare(sql).unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    // The same devices, servers and findings the report lists, on the interface by name.
    let devices = rows("SELECT ip, interface FROM devices ORDER BY ip");
    let want: Vec<(String, String)> = report["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["ip"].as_str().unwrap().to_string(), "trunk0".to_string()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(!want.is_empty());
    assert_eq!(devices, want);
    let servers = rows("SELECT server_id, interface FROM dhcp_servers");
    assert_eq!(servers, [("128.2.6.152".to_string(), "trunk0".to_string())]);
    let findings = rows("SELECT kind, subject FROM findings ORDER BY kind");
    assert_eq!(
        findings,
        found(&report["findings"]).into_iter().collect::<Vec<_>>()
    );
}
