use std::net::Ipv4Addr;

use super::*;
use crate::{
    detect::tests_support::{arp, dhcp_reply},
    engine::{Engine, EngineConfig},
};

const A: Mac = Mac([2, 0, 0, 0, 0, 0xa]);
const B: Mac = Mac([2, 0, 0, 0, 0, 0xb]);
const CAPS: Caps = Caps {
    devices: 1_000,
    servers: 100,
    closed_findings: 100,
    addrs6: 1_000,
    routers: 100,
    servers6: 100,
};

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, last)
}

/// An engine that saw two devices, a MAC change (an open finding), a DHCP server and its ACK.
fn busy_engine() -> Engine {
    let mut e = Engine::new(EngineConfig::default()).with_journal(1_000);
    e.observe(&arp(A, ip(1)), SECOND);
    e.observe(&arp(B, ip(2)), 2 * SECOND);
    e.observe(&arp(B, ip(1)), 3 * SECOND);
    e.observe(&dhcp_reply(A, ip(254), 5, ip(50)), 4 * SECOND);
    e
}

fn state(e: &Engine) -> (String, String, String) {
    let devices = serde_json::to_string(&e.device_rows(10 * SECOND, |_| None)).unwrap();
    let servers = serde_json::to_string(&e.server_rows()).unwrap();
    let findings = serde_json::to_string(&e.open_findings()).unwrap();
    (devices, servers, findings)
}

#[test]
fn a_batch_written_and_read_back_restores_the_same_engine_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/l2watch.db");
    let (mut store, note) = Store::open(&path).unwrap();
    assert_eq!(note, OpenNote::Created);
    let mut e = busy_engine();
    let changes = e.take_changes();
    assert_eq!(changes.devices.len(), 3, "{changes:?}");
    assert_eq!(changes.servers.len(), 1);
    assert!(changes.findings.iter().any(|f| f.kind == kind::MAC_CHANGED));
    // Three ARP bindings learnt or changed, and one ACK.
    assert_eq!(changes.events.len(), 4, "{:?}", changes.events);
    store.write(&changes).unwrap();
    assert!(e.take_changes().is_empty(), "the journal was drained");
    drop(store);

    let (store, note) = Store::open(&path).unwrap();
    assert_eq!(note, OpenNote::Opened);
    let (restored, skipped) = store.load(CAPS).unwrap();
    assert_eq!(skipped, 0);
    let mut back = Engine::new(EngineConfig::default());
    back.restore(restored);
    assert_eq!(state(&back), state(&e));
    let events = store.events_since(0, 100).unwrap();
    let kinds: Vec<_> = events.iter().map(|e| &*e.kind).collect();
    assert_eq!(kinds, ["arp_new", "arp_new", "arp_moved", "dhcp_ack"]);
    assert_eq!(events[3].ip, Some(ip(50).into()));
    assert_eq!(events[3].detail.to_json()["server_id"], "10.0.0.254");
}

#[test]
fn restored_findings_close_after_their_quiet_period_and_the_close_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l2watch.db");
    let (mut store, _) = Store::open(&path).unwrap();
    let mut e = busy_engine();
    store.write(&e.take_changes()).unwrap();
    let (restored, _) = store.load(CAPS).unwrap();
    let mut back = Engine::new(EngineConfig::default()).with_journal(10);
    back.restore(restored);
    let open = back.open_findings().len();
    assert!(open > 0);
    let closed = back.tick(1_000_000 * SECOND);
    assert_eq!(closed.len(), open);
    store.write(&back.take_changes()).unwrap();
    let (again, _) = store.load(CAPS).unwrap();
    assert!(again.open_findings.is_empty());
    assert_eq!(again.closed_findings.len(), open);
    assert_eq!(store.findings_since(0).unwrap().len(), open);
}

#[test]
fn an_older_schema_is_migrated_keeping_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO devices (ifindex, outer_vlan, inner_vlan, ip, mac, first_seen, last_seen,
             source) VALUES (2, 10, -1, '10.0.0.9', '02:00:00:00:00:0a', 1, 2, 'arp')",
            [],
        )
        .unwrap();
    }
    let (store, note) = Store::open(&path).unwrap();
    assert_eq!(
        note,
        OpenNote::Migrated {
            from: 1,
            to: SCHEMA_VERSION
        }
    );
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let (r, _) = store.load(CAPS).unwrap();
    assert_eq!(r.devices.len(), 1);
    let (k, d) = &r.devices[0];
    assert_eq!(
        (k.ip, k.seg.outer_vlan, k.seg.inner_vlan),
        (ip(9), Some(10), None)
    );
    assert_eq!(d.mac, A);
}

#[test]
fn ifindex_keys_become_interface_names() {
    // Schema 3 keyed rows by ifindex. Index 1 is the loopback in every network namespace;
    // 999999 exists nowhere, so it becomes a name that says so.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.db");
    {
        let conn = Connection::open(&path).unwrap();
        for m in &schema::MIGRATIONS[..3] {
            conn.execute_batch(m).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute_batch(
            "INSERT INTO devices (ifindex, outer_vlan, inner_vlan, ip, mac, first_seen,
                 last_seen, source) VALUES
                 (1, 10, -1, '10.0.0.9', '02:00:00:00:00:0a', 1, 2, 'arp'),
                 (999999, -1, -1, '10.0.0.9', '02:00:00:00:00:0b', 1, 2, 'arp');
             INSERT INTO dhcp_servers (ifindex, outer_vlan, inner_vlan, server_id, mac,
                 first_seen, last_seen, offers, acks, naks) VALUES
                 (1, 10, -1, '10.0.0.1', '02:00:00:00:00:01', 1, 2, 3, 0, 0);
             INSERT INTO findings (kind, subject, opened, ifindex, outer_vlan, inner_vlan,
                 last_seen, closed, packets, quiet_ns, evidence) VALUES
                 ('mac_changed', 'if1/vlan10 10.0.0.9', 1, 1, 10, -1, 2, 3, 1, 10, '{}'),
                 ('apipa', 'if10 169.254.0.1', 1, 1, -1, -1, 2, 3, 1, 10, '{}');
             INSERT INTO events (ts, kind, ifindex, outer_vlan, inner_vlan, ip, mac) VALUES
                 (5, 'new', 1, 10, -1, '10.0.0.9', '02:00:00:00:00:0a');",
        )
        .unwrap();
    }
    let (store, note) = Store::open(&path).unwrap();
    assert_eq!(
        note,
        OpenNote::Migrated {
            from: 3,
            to: SCHEMA_VERSION
        }
    );
    let (r, skipped) = store.load(CAPS).unwrap();
    assert_eq!(skipped, 0);
    let mut names: Vec<_> = r
        .devices
        .iter()
        .map(|(k, _)| (k.seg.iface.name(), k.seg.outer_vlan))
        .collect();
    names.sort();
    assert_eq!(names, [("ifindex-999999", None), ("lo", Some(10))]);
    assert_eq!(r.servers.len(), 1);
    assert_eq!(r.servers[0].0.seg.iface.name(), "lo");
    let mut subjects: Vec<_> = r
        .closed_findings
        .iter()
        .map(|f| (f.subject.to_string(), f.seg.iface.name()))
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            // Only a subject that began with this row's own `ifN` is renamed.
            ("if10 169.254.0.1".to_string(), "lo"),
            ("lo/vlan10 10.0.0.9".to_string(), "lo"),
        ]
    );
    let ev = store.events_since(0, 10).unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].seg.iface.name(), "lo");
}

#[test]
fn a_newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let before = std::fs::read(&path).unwrap();
    let err = Store::open(&path).err().expect("refused");
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
    assert!(err.to_string().contains("--db"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

fn aside_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".corrupt-"))
        .collect()
}

#[test]
fn a_file_that_is_not_a_database_is_moved_aside_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l2watch.db");
    let junk = vec![0x5a; 8192];
    std::fs::write(&path, &junk).unwrap();
    let (mut store, note) = Store::open(&path).unwrap();
    let OpenNote::MovedAside { reason, aside } = note else {
        panic!("{note:?}")
    };
    assert!(reason.contains("not a database"), "{reason}");
    assert_eq!(
        std::fs::read(&aside).unwrap(),
        junk,
        "the old bytes are kept"
    );
    store.write(&busy_engine().take_changes()).unwrap();
    assert_eq!(store.counts().unwrap()[0], ("devices", 3));
}

#[test]
fn a_damaged_page_is_found_by_the_check_and_the_file_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l2watch.db");
    {
        let (mut store, _) = Store::open(&path).unwrap();
        let mut e = Engine::new(EngineConfig::default()).with_journal(100_000);
        for i in 0..5_000u32 {
            let b = i.to_be_bytes();
            e.observe(
                &arp(
                    Mac([2, 0, b[0], b[1], b[2], b[3]]),
                    Ipv4Addr::from(0x0a00_0000 + i),
                ),
                SECOND,
            );
        }
        store.write(&e.take_changes()).unwrap();
        store.checkpoint().unwrap();
    }
    // Scribble over the middle of the file: b-tree pages, not the header.
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 64 * 1024);
    let mid = bytes.len() / 2;
    bytes[mid..mid + 8192].fill(0xff);
    std::fs::write(&path, &bytes).unwrap();
    let (_, note) = Store::open(&path).unwrap();
    assert!(matches!(note, OpenNote::MovedAside { .. }), "{note:?}");
    assert_eq!(aside_files(dir.path()).len(), 1);
}

#[test]
fn errors_that_are_not_corruption_keep_the_path_untouched() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be: cannot open, but nothing is corrupt.
    let path = dir.path().join("l2watch.db");
    std::fs::create_dir(&path).unwrap();
    let err = Store::open(&path).err().expect("error");
    assert!(matches!(err, StoreError::Sql { .. }), "{err}");
    assert!(path.is_dir());
    assert!(aside_files(dir.path()).is_empty());
}

#[test]
fn retention_drops_old_and_surplus_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = Store::open(&dir.path().join("l2watch.db")).unwrap();
    let day = 86_400 * SECOND;
    let mut e = Engine::new(EngineConfig::default()).with_journal(1_000);
    for i in 0..20u8 {
        // One new device a day for 20 days.
        e.observe(&arp(Mac([2, 0, 0, 0, 1, i]), ip(i)), u64::from(i) * day + 1);
    }
    store.write(&e.take_changes()).unwrap();
    let ret = Retention {
        event_days: 10,
        max_events: 5,
        closed_finding_days: 1,
    };
    let caps = Caps { devices: 8, ..CAPS };
    let gone = store.prune(20 * day, &ret, caps).unwrap();
    // Events: 10 fall to age (days 0..=9), 5 more to the count cap; devices: 12 over the cap.
    assert_eq!(gone, 10 + 5 + 12);
    let counts = store.counts().unwrap();
    assert_eq!(counts[0], ("devices", 8));
    assert_eq!(counts[3], ("events", 5));
    let kept = store.events_since(0, 100).unwrap();
    assert_eq!(
        kept.first().map(|e| e.ip),
        Some(Some(ip(15).into())),
        "the newest five remain"
    );
    let (r, _) = store.load(caps).unwrap();
    assert_eq!(r.devices.first().map(|(k, _)| k.ip), Some(ip(12)));
    assert_eq!(r.devices.last().map(|(k, _)| k.ip), Some(ip(19)));
}

#[test]
fn a_full_journal_drops_history_and_counts_it_but_keeps_state() {
    let mut e = Engine::new(EngineConfig::default()).with_journal(2);
    for i in 1..=5 {
        e.observe(&arp(A, ip(i)), SECOND);
    }
    let c = e.take_changes();
    assert_eq!(c.events.len(), 2);
    assert_eq!(c.devices.len(), 5);
    assert_eq!(e.stats().history_dropped, 3);
}

/// IPv6 neighbours, routers and DHCPv6 servers survive a restart: the router table is what
/// "established" is judged by, so a router trusted before the restart stays trusted.
#[test]
fn ipv6_state_is_written_and_read_back() {
    use crate::{
        decode::{dhcpv6, Dhcpv6Message, Duid},
        model::{ArpChange, Observation, Segment},
    };
    let seg = Segment::from_vids(
        crate::model::Iface::named("eth0"),
        100,
        monitor_common::NO_VLAN,
    );
    let ra = crate::decode::ra::decode(
        &[
            134, 0, 0, 0, 64, 0x40, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 3, 4, 64, 0xc0, 0, 0, 0x0e,
            0x10, 0, 0, 0x07, 0x08, 0, 0, 0, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0,
        ],
        true,
    )
    .unwrap();
    let mut e = Engine::new(EngineConfig::default()).with_journal(1_000);
    e.observe(
        &Observation::Neighbour {
            seg,
            change: ArpChange::New,
            ip: "2001:db8:1::a".parse().unwrap(),
            mac: A,
            old_mac: None,
            advert: true,
            router: false,
            solicited: false,
            override_flag: true,
        },
        SECOND,
    );
    e.observe(
        &Observation::RouterAdvert {
            seg,
            src_mac: B,
            src_ip: "fe80::b".parse().unwrap(),
            ra: Box::new(ra),
        },
        2 * SECOND,
    );
    e.observe(
        &Observation::Dhcpv6 {
            seg,
            src_mac: B,
            src_ip: "fe80::b".parse().unwrap(),
            dst_mac: A,
            msg: Box::new(Dhcpv6Message {
                msg_type: dhcpv6::REPLY,
                xid: Some(7),
                client_duid: None,
                server_duid: Some(Duid(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 0xb])),
                addresses: vec![dhcpv6::Lease6 {
                    address: "2001:db8:1::100".parse().unwrap(),
                    preferred_secs: 100,
                    valid_secs: 200,
                    temporary: false,
                }],
                prefixes: vec![],
                status: None,
                preference: Some(7),
                dns_servers: vec![],
                relays: vec![],
                truncated: false,
            }),
        },
        3 * SECOND,
    );
    let changes = e.take_changes();
    assert_eq!(
        changes.addrs6.len(),
        2,
        "the NA's address and the REPLY's: {changes:?}"
    );
    assert_eq!((changes.routers.len(), changes.servers6.len()), (1, 1));
    let kinds: Vec<_> = changes.events.iter().map(|e| &*e.kind).collect();
    assert_eq!(kinds, ["nd_new", "router_new", "dhcpv6_reply"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l2watch.db");
    let (mut store, _) = Store::open(&path).unwrap();
    store.write(&changes).unwrap();
    let (restored, skipped) = store.load(CAPS).unwrap();
    assert_eq!(skipped, 0);
    let mut back = Engine::new(EngineConfig::default());
    back.restore(restored);
    let text = |e: &Engine| {
        (
            serde_json::to_string(&e.address6_rows_where(10 * SECOND, |_| None, |_, _, _| true))
                .unwrap(),
            serde_json::to_string(&e.router_rows()).unwrap(),
            serde_json::to_string(&e.server6_rows()).unwrap(),
        )
    };
    assert_eq!(text(&back), text(&e));
    let (addrs, routers, servers) = text(&back);
    assert!(addrs.contains("\"kind\":\"dhcpv6\""), "{addrs}");
    assert!(routers.contains("2001:db8:1::/64"), "{routers}");
    assert!(
        servers.contains("\"duid\":\"0003000102000000000b\""),
        "{servers}"
    );
}

#[test]
fn event_ids_are_the_engines_go_on_after_a_restore_and_never_collide() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l2watch.db");
    let (mut store, _) = Store::open(&path).unwrap();
    let mut e = busy_engine().with_stream(100);
    e.observe(&arp(A, ip(9)), 5 * SECOND);
    let streamed: Vec<u64> = e.take_stream().iter().map(|ev| ev.id).collect();
    store.write(&e.take_changes()).unwrap();
    let stored: Vec<u64> = store
        .events_since(0, 100)
        .unwrap()
        .iter()
        .map(|ev| ev.id)
        .collect();
    assert_eq!(stored, [1, 2, 3, 4, 5]);
    assert_eq!(streamed, [5], "the stream numbers as the history does");

    // Restored, an engine numbers after the stored ids.
    let (restored, _) = store.load(CAPS).unwrap();
    assert_eq!(restored.last_event_id, 5);
    let mut back = Engine::new(EngineConfig::default())
        .with_journal(100)
        .with_stream(100);
    back.restore(restored);
    back.observe(&arp(B, ip(7)), 6 * SECOND);
    assert_eq!(back.take_stream()[0].id, 6);
    store.write(&back.take_changes()).unwrap();

    // Not restored (a replay into an existing file): its ids 1.. become the next row ids.
    let mut fresh = Engine::new(EngineConfig::default()).with_journal(100);
    fresh.observe(&arp(A, ip(20)), 7 * SECOND);
    fresh.observe(&arp(B, ip(21)), 8 * SECOND);
    store.write(&fresh.take_changes()).unwrap();
    let ids: Vec<u64> = store
        .events_between(0, u64::MAX, 100)
        .unwrap()
        .iter()
        .map(|ev| ev.id)
        .collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7, 8]);
    let between: Vec<u64> = store
        .events_between(2, 6, 100)
        .unwrap()
        .iter()
        .map(|ev| ev.id)
        .collect();
    assert_eq!(between, [3, 4, 5]);
}
