//! `kill -9` never corrupts the database and loses at most the last batch. The real agent
//! stores ARP bindings crafted on a veth pair; it is killed with SIGKILL at several moments,
//! including while frames are still arriving; each time the database must pass SQLite's
//! integrity check, hold every binding that was seen well before the kill, and restore on the
//! next start.
use std::{collections::BTreeSet, path::Path, time::Duration};

use l2watch_tests::{
    agent::Agent,
    frames::{arp, BROADCAST, L2},
    netns::{send_frames, veth_pair, Netns},
    require_privileged,
};
use rusqlite::{Connection, OpenFlags};

const WAIT: Duration = Duration::from_secs(20);
const FLUSH_MS: u64 = 200;

/// An announcement binding 10.61.<wave>.<i> to a MAC unique to it.
fn binding(wave: u8, i: u8) -> Vec<u8> {
    let mac = [0x02, 0x61, 0, 0, wave, i];
    let ip = [10, 61, wave, i];
    arp(
        &L2::new(mac, BROADCAST),
        2,
        mac,
        ip,
        [0; 6],
        [10, 61, 255, 254],
    )
    .bytes
}

fn wave(w: u8) -> Vec<Vec<u8>> {
    (1..=200).map(|i| binding(w, i)).collect()
}

fn stored_ips(db: &Path) -> BTreeSet<String> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok", "database corrupt after kill -9");
    let mut st = conn.prepare("SELECT ip FROM devices").unwrap();
    let ips = st
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    ips
}

fn start(mon: &Netns, iface: &str, db: &Path) -> Agent {
    let mut agent = Agent::start(
        mon,
        &[
            "run",
            "--iface",
            iface,
            "--db",
            db.to_str().expect("utf-8"),
            "--flush-interval",
            &format!("{FLUSH_MS}ms"),
        ],
    );
    agent.wait_for("attach", WAIT, |v| v["message"] == "attached XDP program");
    agent
}

fn events_of_wave(agent: &mut Agent, w: u8, n: usize) {
    let prefix = format!("10.61.{w}.");
    agent.wait_for_n("wave events", n, WAIT, |v| {
        v["target"] == "l2watch::event"
            && v["ip"].as_str().is_some_and(|ip| ip.starts_with(&prefix))
    });
}

#[test]
fn kill_9_loses_at_most_the_last_batch_and_never_corrupts() {
    if !require_privileged("kill_9_loses_at_most_the_last_batch_and_never_corrupts") {
        return;
    }
    let mon = Netns::new("crash");
    let peer = Netns::new("crashp");
    let (mon_if, peer_if) = veth_pair(&mon, &peer);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("l2watch.db");

    let mut confirmed: BTreeSet<String> = BTreeSet::new();
    let mut lost_report = Vec::new();
    for round in 0..3u8 {
        let mut agent = start(&mon, &mon_if, &db);
        let restored = agent.wait_for("restore", WAIT, |v| {
            v["message"] == "database open; state restored"
        });
        assert_eq!(
            restored["devices"].as_u64(),
            Some(confirmed.len() as u64),
            "restored device count"
        );
        // Wave A: seen, then left for five flush intervals: it must survive the kill.
        let a = round * 2 + 1;
        send_frames(&peer, &peer_if, &wave(a));
        events_of_wave(&mut agent, a, 200);
        std::thread::sleep(Duration::from_millis(5 * FLUSH_MS));
        // Wave B: killed right after it is seen (round 0), half a flush interval later
        // (round 1), or when only part of it has been seen (round 2).
        let b = a + 1;
        let frames = wave(b);
        match round {
            0 => {
                send_frames(&peer, &peer_if, &frames);
                events_of_wave(&mut agent, b, 200);
            }
            1 => {
                send_frames(&peer, &peer_if, &frames);
                events_of_wave(&mut agent, b, 200);
                std::thread::sleep(Duration::from_millis(FLUSH_MS / 2));
            }
            _ => {
                send_frames(&peer, &peer_if, &frames[..100]);
                events_of_wave(&mut agent, b, 50);
            }
        }
        agent.kill9();
        let ips = stored_ips(&db);
        let wave_a: BTreeSet<String> = (1..=200).map(|i| format!("10.61.{a}.{i}")).collect();
        let missing: Vec<_> = wave_a.difference(&ips).collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} of wave A lost by kill -9: {missing:?}",
            missing.len()
        );
        assert!(
            confirmed.is_subset(&ips),
            "round {round}: earlier rounds lost"
        );
        let b_kept = ips
            .iter()
            .filter(|ip| ip.starts_with(&format!("10.61.{b}.")))
            .count();
        lost_report.push(format!("round {round}: wave B kept {b_kept}/200"));
        confirmed = ips;
    }
    // Each restart restored exactly what was stored; print what the kills cost.
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "kill -9: {}", lost_report.join("; "));
}
