//! Packet fixtures through the loaded XDP program with BPF_PROG_TEST_RUN: every class, 0 to 4
//! VLAN tags, IPv4 options and fragments, non-DHCP UDP, DHCPv6 and IPv6 ND. Then the kernel's
//! state machine: suppression, MAC change, refresh, token buckets and map overflow.
use std::time::Duration;

use l2watch::capture::ProbeConfig;
use l2watch_tests::{
    fixtures::{self, Expect, IP_A, MAC_A, MAC_B},
    frames::{arp, BROADCAST, L2, TPID_8021Q},
    probe::{load, run},
    require_privileged,
};
use monitor_common::{event_kind, Counter, Stat};

#[test]
fn every_fixture_counts_and_reports_exactly() {
    if !require_privileged("every_fixture_counts_and_reports_exactly") {
        return;
    }
    let all = fixtures::all();
    assert!(all.len() >= 55, "fixture table shrank to {}", all.len());
    let mut failures = Vec::new();
    for f in &all {
        let mut probe = load(&ProbeConfig::replay());
        let out = run(&mut probe, &[&f.frame.bytes]);
        let ctx = format!("{} ({})", f.name, f.description);
        if !out.all_passed() {
            failures.push(format!(
                "{ctx}: verdict {:?}, expected XDP_PASS",
                out.verdicts
            ));
        }
        let expected = f.expected_counts();
        for (key, got) in &out.counts {
            let want = expected.iter().filter(|k| *k == key).count() as u64;
            if *got != want {
                failures.push(format!("{ctx}: counter {key} = {got}, expected {want}"));
            }
        }
        for s in Stat::ALL {
            let want = f.stats.contains(&s.name()) as u64;
            if out.stat(s.name()) != want {
                failures.push(format!(
                    "{ctx}: stat {} = {}, expected {want}",
                    s.name(),
                    out.stat(s.name())
                ));
            }
        }
        if out.expects() != f.events {
            failures.push(format!(
                "{ctx}: events {:?}, expected {:?}",
                out.expects(),
                f.events
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn counters_cover_every_class_in_the_table() {
    // Keeps the table honest: each counter is moved by at least one fixture.
    let all = fixtures::all();
    for c in Counter::ALL {
        assert!(
            all.iter().any(|f| f.expected_counts().contains(&c.name())),
            "no fixture moves counter {}",
            c.name()
        );
    }
}

fn arp_from(mac: [u8; 6]) -> Vec<u8> {
    arp(
        &L2::new(mac, BROADCAST),
        2,
        mac,
        IP_A,
        [0; 6],
        [10, 0, 0, 9],
    )
    .bytes
}

#[test]
fn repeats_are_suppressed_and_a_changed_mac_is_reported() {
    if !require_privileged("repeats_are_suppressed_and_a_changed_mac_is_reported") {
        return;
    }
    let mut probe = load(&ProbeConfig::replay());
    let a = arp_from(MAC_A);
    let b = arp_from(MAC_B);
    let out = run(&mut probe, &[&a, &a, &a, &a, &b, &b, &a]);
    let kinds: Vec<&str> = out
        .events
        .iter()
        .map(|e| event_kind::name(e.kind()))
        .collect();
    assert_eq!(
        kinds,
        ["arp_new", "arp_changed", "arp_changed"],
        "{kinds:?}"
    );
    assert_eq!(out.stat("arp_suppressed"), 4);
    assert_eq!(out.stat("arp_events_sent"), 3);
    assert_eq!(out.count("arp"), 7);
    match &out.events[1] {
        l2watch::capture::KernelEvent::Arp(e) => {
            assert_eq!(e.mac, MAC_B);
            assert_eq!(e.old_mac, MAC_A);
        }
        other => panic!(
            "expected an ARP event, got {:?}",
            l2watch_tests::probe::to_expect(other)
        ),
    }
}

#[test]
fn same_ip_on_another_vlan_is_another_binding() {
    if !require_privileged("same_ip_on_another_vlan_is_another_binding") {
        return;
    }
    let mut probe = load(&ProbeConfig::replay());
    let untagged = arp_from(MAC_A);
    let tagged = arp(
        &L2::new(MAC_A, BROADCAST).tag(TPID_8021Q, 7),
        2,
        MAC_A,
        IP_A,
        [0; 6],
        [10, 0, 0, 9],
    )
    .bytes;
    let out = run(&mut probe, &[&untagged, &tagged, &tagged]);
    let got = out.expects();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(matches!(
        got[1],
        Expect::Arp {
            outer: Some(7),
            kind: event_kind::ARP_NEW,
            ..
        }
    ));
    assert_eq!(out.stat("arp_suppressed"), 1);
}

#[test]
fn refresh_interval_zero_reports_every_frame() {
    if !require_privileged("refresh_interval_zero_reports_every_frame") {
        return;
    }
    let mut probe = load(&ProbeConfig {
        refresh: Duration::ZERO,
        ..ProbeConfig::replay()
    });
    let a = arp_from(MAC_A);
    let out = run(&mut probe, &[&a, &a, &a]);
    let kinds: Vec<&str> = out
        .events
        .iter()
        .map(|e| event_kind::name(e.kind()))
        .collect();
    assert_eq!(kinds, ["arp_new", "arp_refresh", "arp_refresh"]);
    assert_eq!(out.stat("arp_suppressed"), 0);
}

#[test]
fn token_bucket_limits_events_and_counts_the_rest() {
    if !require_privileged("token_bucket_limits_events_and_counts_the_rest") {
        return;
    }
    // Burst 3 and a rate far too slow to refill during the test.
    let mut probe = load(&ProbeConfig {
        rate_limit: true,
        dhcp_burst: 3,
        dhcp_rate_per_sec: 1,
        arp_burst: 2,
        arp_rate_per_sec: 1,
        refresh: Duration::ZERO,
        ..ProbeConfig::replay()
    });
    let all = fixtures::all();
    let discover = &all
        .iter()
        .find(|f| f.name == "dhcp_discover/untagged")
        .expect("fixture")
        .frame
        .bytes;
    let a = arp_from(MAC_A);
    let frames: Vec<&[u8]> = std::iter::repeat_n(discover.as_slice(), 10)
        .chain(std::iter::repeat_n(a.as_slice(), 6))
        .collect();
    let out = run(&mut probe, &frames);
    assert_eq!(
        out.count("dhcp_discover"),
        10,
        "counting is never rate-limited"
    );
    assert_eq!(out.count("arp"), 6);
    assert_eq!(out.stat("dhcp_events_sent"), 3);
    assert_eq!(out.stat("dhcp_rate_limited"), 7);
    assert_eq!(out.stat("arp_events_sent"), 2);
    assert_eq!(out.stat("arp_rate_limited"), 4);
    assert_eq!(out.events.len(), 5);
}

#[test]
fn events_off_still_counts() {
    if !require_privileged("events_off_still_counts") {
        return;
    }
    let mut probe = load(&ProbeConfig {
        arp_events: false,
        dhcp_events: false,
        ..ProbeConfig::replay()
    });
    let mut frames = Vec::new();
    for f in fixtures::all() {
        frames.push(f.frame.bytes);
    }
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    let out = run(&mut probe, &refs);
    assert!(out.events.is_empty());
    assert_eq!(out.count("frames"), frames.len() as u64);
    assert!(out.count("arp") > 0 && out.count("dhcp") > 0);
}

#[test]
fn segment_map_overflow_is_counted_and_totals_stay_exact() {
    if !require_privileged("segment_map_overflow_is_counted_and_totals_stay_exact") {
        return;
    }
    let mut probe = load(&ProbeConfig {
        max_segments: 4,
        ..ProbeConfig::replay()
    });
    // 1 untagged + 20 VLANs, ARP on each: only 4 segments fit.
    let mut frames = vec![arp_from(MAC_A)];
    for vid in 1..=20u16 {
        frames.push(
            arp(
                &L2::new(MAC_A, BROADCAST).tag(TPID_8021Q, vid),
                1,
                MAC_A,
                IP_A,
                [0; 6],
                [10, 0, 0, 9],
            )
            .bytes,
        );
    }
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    let out = run(&mut probe, &refs);
    assert_eq!(out.stat("segment_map_full"), 17);
    assert_eq!(out.count("frames"), 21);
    assert_eq!(out.count("arp"), 21);
    assert_eq!(out.count("vlan_tagged"), 20);
    assert_eq!(out.count("arp_vlan_tagged"), 20);
    let snap = probe.snapshot().expect("snapshot");
    assert_eq!(snap.segments.len(), 4);
}
