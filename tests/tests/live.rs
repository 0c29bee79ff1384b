//! Live attach in a network namespace: the real `l2watch run` binary on one end of a veth
//! pair, crafted ARP and DHCP frames (untagged, 802.1Q, QinQ) sent from the other end through
//! AF_PACKET. Checks events, suppression, MAC change, counters, and a clean detach on SIGTERM.
use std::time::Duration;

use l2watch_tests::{
    agent::Agent,
    fixtures::{MAC_A, MAC_B},
    frames::{arp, dhcp, Bootp, Ip, BROADCAST, L2, TPID_8021AD, TPID_8021Q},
    netns::{send_frames, veth_pair, Netns},
    privileged,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn is_event(v: &Value, kind: &str, field: &str, value: &str) -> bool {
    v["target"] == "l2watch::event" && v["kind"] == kind && v[field] == value
}

#[test]
fn live_attach_reports_events_counters_and_detaches() {
    privileged!();
    let mon = Netns::new("mon");
    let peer = Netns::new("peer");
    let (mon_if, peer_if) = veth_pair(&mon, &peer);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("l2watch.db");
    let mut agent = Agent::start(
        &mon,
        &[
            "run",
            "--iface",
            &mon_if,
            "--stats-interval",
            "500ms",
            "--db",
            db.to_str().expect("utf-8"),
        ],
    );
    let attached = agent.wait_for("attach", WAIT, |v| v["message"] == "attached XDP program");
    assert_eq!(attached["iface"], mon_if.as_str());
    assert_eq!(attached["mode"], "native", "veth supports native XDP here");
    assert!(
        mon.link_details(&mon_if).contains("xdp"),
        "no XDP program on {mon_if}"
    );

    let ip = [10, 9, 0, 1];
    let untagged = L2::new(MAC_A, BROADCAST);
    let claim = |mac, l2: &L2, ip| arp(l2, 2, mac, ip, [0; 6], [10, 9, 0, 254]).bytes;
    let a = claim(MAC_A, &untagged, ip);
    // A new binding, five repeats (suppressed in the kernel), then another MAC for the IP.
    send_frames(&peer, &peer_if, &vec![a.clone(); 6]);
    agent.wait_for("arp_new", WAIT, |v| {
        is_event(v, "arp_new", "ip", "10.9.0.1")
    });
    send_frames(
        &peer,
        &peer_if,
        &[claim(MAC_B, &L2::new(MAC_B, BROADCAST), ip)],
    );
    let changed = agent.wait_for("arp_changed", WAIT, |v| {
        is_event(v, "arp_changed", "ip", "10.9.0.1")
    });
    assert_eq!(changed["mac"], "02:00:00:00:00:0b");
    assert_eq!(changed["old_mac"], "02:00:00:00:00:0a");
    let finding = agent.wait_for("mac_changed finding", WAIT, |v| {
        v["target"] == "l2watch::finding" && v["kind"] == "mac_changed"
    });
    assert_eq!(finding["state"], "opened");
    assert!(finding["evidence"]
        .as_str()
        .unwrap()
        .contains("02:00:00:00:00:0a"));

    // Tagged and QinQ ARP, then DHCPDISCOVER untagged and QinQ.
    let dot1q = L2::new(MAC_A, BROADCAST).tag(TPID_8021Q, 100);
    let qinq = L2::new(MAC_A, BROADCAST)
        .tag(TPID_8021AD, 200)
        .tag(TPID_8021Q, 2001);
    let discover = Bootp::dhcp(1, 0xfeed, MAC_A, 1, &[12, 4, b'n', b'o', b'd', b'e']);
    let bcast = Ip::udp([0; 4], [255; 4]);
    send_frames(
        &peer,
        &peer_if,
        &[
            claim(MAC_A, &dot1q, [10, 9, 1, 5]),
            claim(MAC_A, &qinq, [10, 9, 2, 5]),
            dhcp(&untagged, &bcast, &discover).bytes,
            dhcp(&qinq, &bcast, &discover).bytes,
        ],
    );
    let tagged = agent.wait_for("802.1Q event", WAIT, |v| {
        is_event(v, "arp_new", "ip", "10.9.1.5")
    });
    assert_eq!(tagged["vlan"], "100");
    let q = agent.wait_for("QinQ event", WAIT, |v| {
        is_event(v, "arp_new", "ip", "10.9.2.5")
    });
    assert_eq!(q["vlan"], "200.2001");
    assert_eq!(q["tags"], 2);
    agent.wait_for("untagged DHCP", WAIT, |v| {
        is_event(v, "dhcp", "vlan", "untagged")
    });
    let d = agent.wait_for("QinQ DHCP", WAIT, |v| {
        is_event(v, "dhcp", "vlan", "200.2001")
    });
    assert_eq!(d["msg_type"], 1);
    assert_eq!(d["src_mac"], "02:00:00:00:00:0a");

    // Counters: exactly what was sent (IPv6 is off in these namespaces).
    agent.wait_for("counters", WAIT, |v| {
        v["target"] == "l2watch::counters"
            && v["iface"] == mon_if.as_str()
            && v["arp"] == 9
            && v["dhcp"] == 2
            && v["tagged"] == 3
    });
    agent.wait_for("suppression stats", WAIT, |v| {
        v["target"] == "l2watch::counters"
            && v["stats"].as_str().is_some_and(|s| {
                let p = l2watch_tests::prom::pairs(s);
                let has = |k: &str, v: &str| p.iter().any(|(pk, pv)| pk == k && pv == v);
                has("arp_suppressed", "5") && has("dhcp_events_sent", "2")
            })
    });
    let arp_new = agent
        .seen
        .iter()
        .filter(|v| is_event(v, "arp_new", "ip", "10.9.0.1"))
        .count();
    assert_eq!(
        arp_new,
        1,
        "repeats must be suppressed; log:\n{}",
        agent.log()
    );

    assert_eq!(agent.stop(WAIT), Some(0), "log:\n{}", agent.log());
    assert!(
        agent.seen.iter().any(|v| v["message"] == "detached; bye"),
        "log:\n{}",
        agent.log()
    );
    assert!(
        !mon.link_details(&mon_if).contains("prog/xdp"),
        "XDP program still attached after SIGTERM:\n{}",
        mon.link_details(&mon_if)
    );
}

#[test]
fn unknown_interface_is_a_clear_error() {
    privileged!();
    let ns = Netns::new("err");
    let out = ns
        .command(l2watch_tests::l2watch_bin().to_str().unwrap())
        .args(["run", "--no-db", "--iface", "nosuchif0"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("interface nosuchif0 does not exist"),
        "{stderr}"
    );
}
