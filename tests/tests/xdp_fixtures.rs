//! Packet fixtures through the loaded XDP program with BPF_PROG_TEST_RUN: every class, 0 to 4
//! VLAN tags, IPv4 options and fragments, non-DHCP UDP, DHCPv6 and IPv6 ND. Then the kernel's
//! state machine: suppression, MAC change, refresh, token buckets deferring into the pending
//! maps, map overflow, loop repeats and ARP scans.
use std::time::Duration;

use l2watch::capture::ProbeConfig;
use l2watch_tests::{
    fixtures::{self, Expect, IP_A, MAC_A, MAC_B},
    frames::{arp, ipv6, BROADCAST, L2, TPID_8021Q},
    privileged,
    probe::{load, run},
};
use monitor_common::{event_kind, Counter, Stat};

#[test]
fn every_fixture_counts_and_reports_exactly() {
    privileged!();
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
    // Keeps the table honest: each counter is moved by at least one fixture. Loop repeats and
    // scans take hundreds of frames, not one: their own tests below move them.
    let all = fixtures::all();
    for c in Counter::ALL {
        if matches!(c, Counter::LoopRepeats | Counter::ArpScans) {
            continue;
        }
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
    privileged!();
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
    privileged!();
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
    privileged!();
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
fn token_bucket_defers_state_and_drops_only_storm_discovers() {
    privileged!();
    // Tiny bursts and a rate far too slow to refill during the test.
    let mut probe = load(&ProbeConfig {
        rate_limit: true,
        dhcp_burst: 3,
        dhcp_rate_per_sec: 1,
        arp_burst: 2,
        arp_rate_per_sec: 1,
        ..ProbeConfig::replay()
    });
    let all = fixtures::all();
    let frame = |name: &str| {
        all.iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("fixture {name}"))
            .frame
            .bytes
            .clone()
    };
    let discover = frame("dhcp_discover/untagged");
    let ack = frame("dhcp_ack");
    let stations: Vec<Vec<u8>> = (1..=6u8).map(|i| arp_station(i, 1)).collect();
    let mut frames: Vec<&[u8]> = std::iter::repeat_n(discover.as_slice(), 10).collect();
    frames.extend(std::iter::repeat_n(ack.as_slice(), 2));
    frames.extend(stations.iter().map(|f| f.as_slice()));
    let out = run(&mut probe, &frames);
    assert_eq!(out.count("dhcp_discover"), 10, "counting is never limited");
    assert_eq!(out.count("arp"), 6);
    // A storm's DISCOVERs past the burst are dropped and counted...
    assert_eq!(out.stat("dhcp_events_sent"), 3);
    assert_eq!(out.stat("dhcp_rate_limited"), 9);
    // ...but leases wait in the pending map and arrive all the same.
    assert_eq!(out.stat("dhcp_deferred"), 2);
    assert_eq!(out.stat("arp_events_sent"), 2);
    assert_eq!(out.stat("arp_rate_limited"), 4);
    assert_eq!(out.stat("arp_deferred"), 4);
    let acks = out
        .expects()
        .iter()
        .filter(|e| matches!(e, Expect::Dhcp { msg_type: 5, .. }))
        .count();
    assert_eq!(acks, 2, "both held-back ACKs were drained");
    let ips: Vec<[u8; 4]> = out
        .expects()
        .iter()
        .filter_map(|e| match e {
            Expect::Arp { ip, kind, .. } if *kind == event_kind::ARP_NEW => Some(*ip),
            _ => None,
        })
        .collect();
    assert_eq!(ips, (1..=6u8).map(|i| [10, 0, 1, i]).collect::<Vec<_>>());
}

/// Runs owned frames in order.
fn run_all(
    probe: &mut l2watch::capture::Probe,
    frames: &[Vec<u8>],
) -> l2watch_tests::probe::Outcome {
    run(
        probe,
        &frames.iter().map(|f| f.as_slice()).collect::<Vec<_>>(),
    )
}

/// The events of `out` that `keep` accepts.
fn only(out: &l2watch_tests::probe::Outcome, keep: impl Fn(&Expect) -> bool) -> Vec<Expect> {
    out.expects().into_iter().filter(|e| keep(e)).collect()
}

/// An ARP reply from station `i` of segment-less block `b`: MAC 02:10:00:00:b:i, IP 10.0.b.i.
fn arp_station(i: u8, b: u8) -> Vec<u8> {
    let mac = [0x02, 0x10, 0, 0, b, i];
    arp(
        &L2::new(mac, BROADCAST),
        2,
        mac,
        [10, 0, b, i],
        [0; 6],
        [10, 0, b, 254],
    )
    .bytes
}

#[test]
fn a_full_pending_map_loses_nothing_it_cannot_retry() {
    privileged!();
    let mut probe = load(&ProbeConfig {
        rate_limit: true,
        arp_burst: 1,
        arp_rate_per_sec: 1,
        max_pending_arp: 2,
        ..ProbeConfig::replay()
    });
    let stations: Vec<Vec<u8>> = (1..=6u8).map(|i| arp_station(i, 2)).collect();
    // No drain between frames: one sent, two parked, three find the pending map full.
    for f in &stations {
        probe.test_run(f).expect("test run");
    }
    let mut arrived = 0;
    probe.drain_events(|ev| {
        ev.expect("decodes");
        arrived += 1;
    });
    let first = run(&mut probe, &[]);
    assert_eq!(first.stat("arp_events_sent"), 1);
    assert_eq!(first.stat("arp_deferred"), 2);
    assert_eq!(first.stat("arp_pending_full"), 3);
    assert_eq!(arrived, 3, "sent and parked events all arrive");
    // The three that found it full were not remembered: their next frames report them.
    let again: Vec<&[u8]> = stations.iter().map(|f| f.as_slice()).collect();
    let second = run(&mut probe, &again);
    let new: Vec<[u8; 4]> = second
        .expects()
        .iter()
        .filter_map(|e| match e {
            Expect::Arp { ip, kind, .. } if *kind == event_kind::ARP_NEW => Some(*ip),
            _ => None,
        })
        .collect();
    assert_eq!(new.len(), 3, "{new:?}");
    assert_eq!(
        second.stat("arp_suppressed") - first.stat("arp_suppressed"),
        3
    );
}

#[test]
fn a_frame_going_round_is_counted_past_the_threshold_with_one_event() {
    privileged!();
    let mut probe = load(&ProbeConfig {
        loop_repeats: 200,
        loop_window: Duration::from_secs(60),
        ..ProbeConfig::replay()
    });
    let a = arp_from(MAC_A);
    let b = arp_from(MAC_B);
    let copies = |f: &[u8], n| std::iter::repeat_n(f.to_vec(), n).collect::<Vec<_>>();
    // 200 copies is the threshold itself: no loop yet.
    let at = copies(&a, 200);
    let out = run_all(&mut probe, &at);
    assert_eq!(out.count("loop_repeats"), 0);
    assert_eq!(out.count("broadcast"), 200);
    assert!(out
        .expects()
        .iter()
        .all(|e| !matches!(e, Expect::Loop { .. })));
    // 50 more: each is counted, and one event names the frame's sender.
    let past = copies(&a, 50);
    let out = run_all(&mut probe, &past);
    assert_eq!(out.count("loop_repeats"), 50);
    assert_eq!(out.stat("loop_events_sent"), 1);
    let loops: Vec<_> = only(&out, |e| matches!(e, Expect::Loop { .. }));
    assert_eq!(
        loops,
        [Expect::Loop {
            src: MAC_A,
            outer: None
        }]
    );
    // Another frame has its own count; unicast frames are never counted.
    let other = copies(&b, 100);
    let out = run_all(&mut probe, &other);
    assert_eq!(out.count("loop_repeats"), 50);
}

#[test]
fn an_arp_sender_asking_for_many_targets_is_one_scan() {
    privileged!();
    let mut probe = load(&ProbeConfig::replay());
    let ask = |target: u8| {
        arp(
            &L2::new(MAC_A, BROADCAST),
            1,
            MAC_A,
            [192, 168, 1, 71],
            [0; 6],
            [192, 168, 1, target],
        )
        .bytes
    };
    // A host asking for its gateway and a few peers again and again is no scanner.
    let normal: Vec<Vec<u8>> = (0..300).map(|i| ask(1 + (i % 8) as u8)).collect();
    let out = run_all(&mut probe, &normal);
    assert_eq!(out.count("arp_scans"), 0);
    // A sweep of 2..254, as nmap does, is one scan event however long it goes on.
    let sweep: Vec<Vec<u8>> = (2..=254).map(ask).collect();
    let out = run_all(&mut probe, &sweep);
    assert_eq!(out.count("arp_scans"), 1);
    assert_eq!(out.stat("scan_events_sent"), 1);
    let scans: Vec<_> = only(&out, |e| matches!(e, Expect::Scan { .. }));
    assert_eq!(
        scans,
        [Expect::Scan {
            mac: MAC_A,
            outer: None
        }]
    );
}

#[test]
fn events_off_still_counts() {
    privileged!();
    let mut probe = load(&ProbeConfig {
        arp_events: false,
        dhcp_events: false,
        nd_events: false,
        dhcpv6_events: false,
        switch_events: false,
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
    assert!(out.count("icmpv6_ns") > 0 && out.count("dhcpv6") > 0);
    assert!(out.count("lldp") > 0 && out.count("stp") > 0 && out.count("lacp") > 0);
}

#[test]
fn segment_map_overflow_is_counted_and_totals_stay_exact() {
    privileged!();
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

#[test]
fn ipv6_in_teredo_counts_as_ipv6_as_tshark_does() {
    privileged!();
    use l2watch_tests::frames::{udp, Ip};
    // A router solicitation from a Teredo client to its server (RFC 4380 qualification), with
    // an origin indication in front; then the same with an authentication header; then a UDP
    // 3544 payload that is not IPv6.
    let mut rs = vec![0x60, 0, 0, 0, 0, 8, 58, 255];
    rs.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    rs.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    rs.extend_from_slice(&[133, 0, 0, 0, 0, 0, 0, 0]);
    let origin = [&[0u8, 0, 0x12, 0x34, 1, 2, 3, 4][..], &rs[..]].concat();
    let auth = [&[0u8, 1, 2, 1, 9, 9, 7][..], &[0; 9][..], &rs[..]].concat();
    let l2 = L2::new(MAC_A, MAC_B);
    let ip = Ip::udp([10, 0, 0, 1], [10, 0, 0, 2]);
    let frames: Vec<Vec<u8>> = [&origin[..], &auth[..], &[1, 2, 3, 4][..]]
        .iter()
        .map(|p| udp(&l2, &ip, 40_000, 3544, p, 0).bytes)
        .collect();
    let mut probe = load(&ProbeConfig::replay());
    let out = run(
        &mut probe,
        &frames.iter().map(|f| &f[..]).collect::<Vec<_>>(),
    );
    assert!(out.all_passed());
    for (key, want) in [
        ("ipv4", 3),
        ("ipv6", 2),
        ("icmpv6", 2),
        ("icmpv6_rs", 2),
        ("malformed", 0),
        ("dhcp", 0),
    ] {
        assert_eq!(out.count(key), want, "{key}");
    }
}

/// An NA from `mac` for 2001:db8::`n`, with a target link-layer option naming `tlla`.
fn na(mac: [u8; 6], n: u8, tlla: [u8; 6]) -> Vec<u8> {
    let mut m = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
    m.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, n]);
    m.extend_from_slice(&[2, 1]);
    m.extend_from_slice(&tlla);
    ipv6(&L2::new(mac, BROADCAST), 58, &m).bytes
}

/// An RA from `mac` (source fe80::1) with router lifetime `lifetime`.
fn ra(mac: [u8; 6], lifetime: u16) -> Vec<u8> {
    let mut m = vec![134, 0, 0, 0, 64, 0];
    m.extend_from_slice(&lifetime.to_be_bytes());
    m.extend_from_slice(&[0; 8]);
    ipv6(&L2::new(mac, BROADCAST), 58, &m).bytes
}

/// A DHCPv6 message of `msg_type` with transaction id `xid`, from `mac`.
fn dhcpv6(mac: [u8; 6], msg_type: u8, xid: u8) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&547u16.to_be_bytes());
    u.extend_from_slice(&546u16.to_be_bytes());
    u.extend_from_slice(&12u16.to_be_bytes());
    u.extend_from_slice(&[0, 0, msg_type, 0, 0, xid]);
    ipv6(&L2::new(mac, BROADCAST), 17, &u).bytes
}

#[test]
fn ipv6_repeats_are_suppressed_and_a_new_holder_or_router_content_is_reported() {
    privileged!();
    let mut probe = load(&ProbeConfig::replay());
    let frames = vec![
        na(MAC_A, 1, MAC_A),
        na(MAC_A, 1, MAC_A),
        na(MAC_B, 1, MAC_B),
        ra(MAC_A, 1800),
        ra(MAC_A, 1800),
        ra(MAC_A, 0),
    ];
    let out = run_all(&mut probe, &frames);
    assert_eq!(out.stat("nd_events_sent"), 2);
    assert_eq!(out.stat("nd_suppressed"), 1);
    let kinds: Vec<u8> = out
        .events
        .iter()
        .filter_map(|e| match e {
            l2watch::capture::KernelEvent::Nd(n) => Some(n.header.kind),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, [event_kind::ND_NEW, event_kind::ND_CHANGED]);
    let changed = out.events.iter().find_map(|e| match e {
        l2watch::capture::KernelEvent::Nd(n) if n.header.kind == event_kind::ND_CHANGED => Some(*n),
        _ => None,
    });
    assert_eq!(changed.map(|n| (n.mac, n.old_mac)), Some((MAC_B, MAC_A)));
    // The same RA twice is one event; the router retiring changes it, so it is reported.
    assert_eq!(out.stat("ra_events_sent"), 2);
    assert_eq!(out.stat("ra_suppressed"), 1);
}

#[test]
fn ipv6_token_buckets_defer_bindings_routers_and_dhcpv6_answers() {
    privileged!();
    let mut probe = load(&ProbeConfig {
        rate_limit: true,
        nd_burst: 2,
        nd_rate_per_sec: 1,
        dhcp_burst: 1,
        dhcp_rate_per_sec: 1,
        ..ProbeConfig::replay()
    });
    let mut frames: Vec<Vec<u8>> = (1..=6).map(|n| na(MAC_A, n, MAC_A)).collect();
    frames.push(ra(MAC_B, 1800));
    frames.extend((1..=3).map(|x| dhcpv6(MAC_B, 1, x)));
    frames.extend((1..=3).map(|x| dhcpv6(MAC_B, 2, x)));
    let out = run_all(&mut probe, &frames);
    assert_eq!(out.count("icmpv6_na"), 6, "counting is never limited");
    assert_eq!(out.stat("nd_events_sent"), 2);
    assert_eq!(out.stat("nd_rate_limited"), 4);
    assert_eq!(out.stat("nd_deferred"), 4);
    assert_eq!(out.stat("ra_rate_limited"), 1);
    assert_eq!(out.stat("ra_deferred"), 1);
    // SOLICITs past the burst are dropped; ADVERTISEs wait and arrive.
    assert_eq!(out.stat("dhcpv6_events_sent"), 1);
    assert_eq!(out.stat("dhcpv6_rate_limited"), 5);
    assert_eq!(out.stat("dhcpv6_deferred"), 3);
    let nd = only(&out, |e| matches!(e, Expect::Nd { .. }));
    assert_eq!(nd.len(), 6, "every binding arrived: {nd:?}");
    assert_eq!(only(&out, |e| matches!(e, Expect::Ra { .. })).len(), 1);
    let adverts = only(&out, |e| matches!(e, Expect::Dhcpv6 { msg_type: 2 }));
    assert_eq!(adverts.len(), 3);
}

fn lldp_frame(mac: [u8; 6], port: &[u8]) -> Vec<u8> {
    l2watch_tests::switch::lldp_frame(mac, "sw3.rack12", std::str::from_utf8(port).unwrap())
}

fn bpdu_frame(mac: [u8; 6], tc: bool) -> Vec<u8> {
    l2watch_tests::switch::bpdu_frame(mac, 32768, tc)
}

#[test]
fn an_unchanged_switch_pdu_stream_sends_one_event_and_changes_are_sent_at_once() {
    privileged!();
    // The live agent's settings: refresh 60 s, rate limits on.
    let mut probe = load(&ProbeConfig::default());
    let mut frames: Vec<Vec<u8>> = (0..100).map(|_| lldp_frame(MAC_A, b"Gi1/0/17")).collect();
    frames.extend((0..100).map(|_| bpdu_frame(MAC_B, false)));
    let out = run_all(&mut probe, &frames);
    assert_eq!(out.count("lldp"), 100);
    assert_eq!(out.count("stp"), 100);
    assert_eq!(
        out.stat("switch_events_sent"),
        2,
        "the first of each stream"
    );
    assert_eq!(out.stat("switch_suppressed"), 198);
    // A changed PDU is sent at once; a topology change every time.
    let mut more = vec![lldp_frame(MAC_A, b"Gi1/0/18")];
    more.extend((0..3).map(|_| bpdu_frame(MAC_B, true)));
    more.push(bpdu_frame(MAC_B, false));
    let out = run_all(&mut probe, &more);
    assert_eq!(out.stat("switch_events_sent"), 2 + 1 + 3 + 1);
    assert_eq!(out.stat("switch_suppressed"), 198);
    let kinds: Vec<Expect> = only(&out, |e| matches!(e, Expect::Switch { .. }));
    assert_eq!(kinds.len(), 5, "{kinds:?}");
}

#[test]
fn switch_events_past_the_bucket_wait_in_the_pending_map_and_arrive() {
    privileged!();
    let mut probe = load(&ProbeConfig {
        rate_limit: true,
        switch_burst: 1,
        switch_rate_per_sec: 1,
        ..ProbeConfig::replay()
    });
    let frames = vec![
        lldp_frame(MAC_A, b"p1"),
        lldp_frame(MAC_A, b"p2"),
        lldp_frame(MAC_A, b"p3"),
        lldp_frame(MAC_B, b"q1"),
    ];
    let out = run_all(&mut probe, &frames);
    assert_eq!(out.stat("switch_events_sent"), 1);
    assert_eq!(out.stat("switch_rate_limited"), 3);
    assert_eq!(out.stat("switch_deferred"), 3);
    assert_eq!(out.stat("switch_pending_full"), 0);
    // Each frame is drained before the next (one pending slot per sender), so all arrive.
    let ports: Vec<String> = out
        .events
        .iter()
        .filter_map(|e| match e {
            l2watch::capture::KernelEvent::Switch(w) => {
                let p = &w.payload[..w.payload_len as usize];
                Some(String::from_utf8_lossy(&p[12..14]).into_owned())
            }
            _ => None,
        })
        .collect();
    assert_eq!(ports, ["p1", "p2", "p3", "q1"]);
}
