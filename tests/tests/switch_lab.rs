//! The switch-facing lab against the real `l2watch run` on four interfaces: a Linux bridge
//! with STP on (real BPDUs; a priority change moves the root, a flapping port churns the
//! topology, and the port is configured as an edge), real lldpd sending LLDP and CDP (a port
//! VLAN id other than the expected one, then a new system name), and crafted LACPDUs on two
//! bond members (a second switch system, a partner that goes away, a port out of sync).
//! Each condition gives its finding with its evidence; the steady stream of unchanged PDUs
//! is suppressed in the kernel.
use std::time::{Duration, Instant};

use l2watch_tests::{
    agent::Agent,
    corpus_dir, http, privileged,
    switch::{lacp_frame, lacpdu, state, LacpSide, SwitchLab},
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);
const PORT: u16 = 9747;

const SWITCH_A: [u8; 6] = [0x00, 0x13, 0xc4, 0x12, 0x0f, 0x00];
const SWITCH_B: [u8; 6] = [0x00, 0x13, 0xc4, 0x99, 0x0f, 0x00];
const US: [u8; 6] = [0x02, 0x77, 0x00, 0x00, 0x0b, 0x01];

fn side(system: [u8; 6], port: u16, state: u8) -> LacpSide {
    LacpSide {
        system_priority: 32768,
        system,
        key: 13,
        port_priority: 32768,
        port,
        state,
    }
}

fn api(lab: &SwitchLab, path: &str) -> Value {
    http::json(&lab.mon, PORT, path)
}

/// Waits for an open finding of `kind` that `pred` accepts.
fn finding(lab: &SwitchLab, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
    http::open_finding(&lab.mon, PORT, kind, WAIT, pred)
}

/// Waits until `path`'s JSON satisfies `pred`; returns it.
fn until(lab: &SwitchLab, path: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = api(lab, path);
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}:\n{v:#}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_lab_builds_lacpdus_exactly_as_the_real_capture_encodes_them() {
    // The first LACPDU of the corpus capture, rebuilt from its own field values.
    let mut first = None;
    l2watch::pcap::read_capture(&corpus_dir().join("tcpdump_LACP.pcap"), |f| {
        if first.is_none() {
            first = Some(f.data.to_vec());
        }
    })
    .expect("read the corpus capture");
    let f = first.expect("a frame");
    let pdu = &f[14..14 + 110];
    let read = |o: usize| LacpSide {
        system_priority: u16::from_be_bytes([pdu[o], pdu[o + 1]]),
        system: pdu[o + 2..o + 8].try_into().unwrap(),
        key: u16::from_be_bytes([pdu[o + 8], pdu[o + 9]]),
        port_priority: u16::from_be_bytes([pdu[o + 10], pdu[o + 11]]),
        port: u16::from_be_bytes([pdu[o + 12], pdu[o + 13]]),
        state: pdu[o + 14],
    };
    let max_delay = u16::from_be_bytes([pdu[44], pdu[45]]);
    assert_eq!(lacpdu(&read(4), &read(24), max_delay), pdu);
    let src: [u8; 6] = f[6..12].try_into().unwrap();
    assert_eq!(lacp_frame(src, &read(4), &read(24))[..14], f[..14]);
}

#[test]
fn stp_lldp_cdp_and_lacp_conditions_with_real_software() {
    privileged!();
    let mut lab = SwitchLab::new();
    let [stp_if, lldp_if, a_if, b_if] = lab.mon_ifaces().map(str::to_string);
    let config = lab.path("l2watch.toml");
    std::fs::write(
        &config,
        format!(
            "[engine.switch]\nchurn_changes = 2\nchurn_window_secs = 120\nlacp_sync_secs = 3\n\
             quiet_secs = 120\nbonds_from_sysfs = false\n\
             [engine.switch.ports.{stp_if}]\nedge = true\n\
             [engine.switch.ports.{lldp_if}]\nnative_vlan = 100\n\
             [engine.switch.ports.{a_if}]\nbond = \"bond0\"\n\
             [engine.switch.ports.{b_if}]\nbond = \"bond0\"\n"
        ),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{PORT}");
    let mut args = vec!["run", "--listen", &listen, "--no-db", "--config"];
    args.push(config.to_str().unwrap());
    for i in [&stp_if, &lldp_if, &a_if, &b_if] {
        args.extend(["--iface", i.as_str()]);
    }
    let mut agent = Agent::start_with_log(&lab.mon, &args, "info");
    agent.wait_for("ready", WAIT, |v| v["message"] == "ready");

    // Spanning tree: the bridge is its own root, on a port configured as an edge.
    let edge = finding(&lab, "stp_bpdu_on_edge", |f| {
        f["interface"] == stp_if.as_str()
    });
    let root_before = edge["evidence"]["root"].as_str().unwrap().to_string();
    assert!(root_before.starts_with("32768/"), "{edge}");
    lab.set_bridge_priority(4096);
    let moved = finding(&lab, "stp_root_changed", |f| {
        f["interface"] == stp_if.as_str()
    });
    assert_eq!(moved["evidence"]["before"], root_before.as_str());
    assert!(
        moved["evidence"]["now"]
            .as_str()
            .unwrap()
            .starts_with("4096/"),
        "{moved}"
    );
    // Two topology changes, apart: the port flaps, the flag clears, it flaps again.
    lab.flap();
    until(&lab, "/api/v1/switch/stp", "a topology change", |v| {
        v["stp"][0]["topology_changes"].as_u64().unwrap_or(0) > 0
    });
    until(&lab, "/api/v1/switch/stp", "the flag cleared", |v| {
        v["stp"][0]["topology_change"] == false
    });
    std::thread::sleep(Duration::from_secs(3));
    lab.flap();
    let churn = finding(&lab, "stp_topology_churn", |f| {
        f["interface"] == stp_if.as_str()
    });
    assert!(
        churn["evidence"]["changes"].as_u64().unwrap() >= 2,
        "{churn}"
    );
    let stp = api(&lab, "/api/v1/switch/stp");
    assert_eq!(stp["stp"][0]["version"], "stp", "{stp}");
    assert!(
        stp["stp"][0]["root_changes"].as_u64().unwrap() >= 1,
        "{stp}"
    );

    // LLDP and CDP from real lldpd: the neighbour, then a port VLAN other than expected,
    // then a new system name on the same port.
    lab.start_lldpd("sw3.rack12", 100).expect("lldpd");
    let n = until(
        &lab,
        "/api/v1/switch/neighbours",
        "sw3 by LLDP and CDP",
        |v| {
            let rows = v["neighbours"].as_array().unwrap();
            ["lldp", "cdp"].iter().all(|p| {
                rows.iter()
                    .any(|r| r["protocol"] == *p && r["name"] == "sw3.rack12")
            })
        },
    );
    let lldp = n["neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["protocol"] == "lldp")
        .unwrap()
        .clone();
    assert_eq!(lldp["port"], lab.lldp.far_if.as_str(), "{lldp}");
    assert_eq!(lldp["native_vlan"], 100, "{lldp}");
    assert_eq!(lldp["interface"], lldp_if.as_str());
    let out = agent_cli(&lab, &["neighbours"]);
    let want = format!(
        "{lldp_if} → sw3.rack12 {} (lldp), native VLAN 100",
        lab.lldp.far_if
    );
    assert!(out.lines().any(|l| l.starts_with(&want)), "{out}");
    assert!(
        !api(&lab, "/api/v1/findings")["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "vlan_mismatch"),
        "VLAN 100 is the expected one"
    );
    lab.set_pvid(200).expect("pvid");
    let opened = |kind: &str| {
        api(&lab, "/api/v1/findings")["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == kind)
    };
    let mismatch = finding(&lab, "vlan_mismatch", |f| {
        f["interface"] == lldp_if.as_str()
    });
    assert_eq!(mismatch["evidence"]["expected_vlan"], 100);
    assert_eq!(mismatch["evidence"]["advertised_vlan"], 200);
    assert_eq!(mismatch["evidence"]["neighbour"], "sw3.rack12");
    assert!(
        !opened("lldp_neighbour_changed"),
        "a new port VLAN is not a new neighbour"
    );
    lab.rename("sw4.rack12").expect("rename");
    // LLDP and CDP both say so: one problem, one finding on the interface.
    let changed = finding(&lab, "lldp_neighbour_changed", |f| {
        f["interface"] == lldp_if.as_str() && f["evidence"]["now"]["system_name"] == "sw4.rack12"
    });
    assert_eq!(changed["evidence"]["before"]["system_name"], "sw3.rack12");
    assert_eq!(changed["evidence"]["now"]["system_name"], "sw4.rack12");

    // LACP: two members hear one switch, then member b hears another; member a's partner
    // goes away; member b's port falls out of sync.
    let us = side(US, 1, state::UP);
    lab.send_lacp(&lab.lacpa, SWITCH_A, &side(SWITCH_A, 1, state::UP), &us, 3);
    lab.send_lacp(&lab.lacpb, SWITCH_A, &side(SWITCH_A, 2, state::UP), &us, 3);
    until(&lab, "/api/v1/switch/lacp", "both members", |v| {
        v["count"] == 2
            && v["lacp"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["bond"] == "bond0")
    });
    let other = [0x00, 0x13, 0xc4, 0x99, 0x0f, 0x01];
    lab.send_lacp(&lab.lacpb, other, &side(SWITCH_B, 2, state::UP), &us, 3);
    let mm = finding(&lab, "lacp_partner_mismatch", |_| true);
    assert_eq!(mm["subject"], "bond bond0");
    let systems: Vec<&str> = mm["evidence"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["system"].as_str().unwrap())
        .collect();
    assert!(
        systems.contains(&"00:13:c4:12:0f:00") && systems.contains(&"00:13:c4:99:0f:00"),
        "{mm}"
    );
    let lost_state = state::ACTIVITY | state::AGGREGATION | state::DEFAULTED;
    let nobody = side([0; 6], 0, 0);
    lab.send_lacp(
        &lab.lacpa,
        SWITCH_A,
        &side(SWITCH_A, 1, lost_state),
        &nobody,
        3,
    );
    let lost = finding(&lab, "lacp_partner_lost", |f| {
        f["interface"] == a_if.as_str()
    });
    assert_eq!(lost["evidence"]["reason"], "partner_system_zero");
    let unsynced = state::ACTIVITY | state::AGGREGATION;
    lab.send_lacp(&lab.lacpb, other, &side(SWITCH_B, 2, unsynced), &us, 3);
    let sync = finding(&lab, "lacp_not_in_sync", |f| {
        f["interface"] == b_if.as_str()
    });
    assert!(
        sync["evidence"]["out_of_sync_secs"].as_u64().unwrap() >= 3,
        "{sync}"
    );

    // The steady stream cost no events: unchanged BPDUs and LLDPDUs were suppressed.
    // The bridge and lldpd keep sending unchanged PDUs every second: the suppressed count
    // grows past the sent one while nothing changes (waited for, not sampled once).
    let deadline = Instant::now() + WAIT;
    let metrics = loop {
        let (_, metrics) = http::get(&lab.mon, PORT, "/metrics");
        let suppressed = metric(
            &metrics,
            "l2watch_kernel_events_suppressed_total{kind=\"switch\"}",
        );
        let sent = metric(&metrics, "l2watch_kernel_events_total{kind=\"switch\"}");
        if suppressed > sent {
            break metrics;
        }
        assert!(
            Instant::now() < deadline,
            "suppressed {suppressed}, sent {sent}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        metrics.contains("l2watch_switch_neighbour_info{interface=\""),
        "neighbour info series"
    );
    assert_eq!(agent.stop(WAIT), Some(0), "log:\n{}", agent.log());
}

/// The value of the sample named exactly `series` in an exposition.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in the exposition"))
}

/// `l2watch ARGS --api` against the lab's agent, run in the monitor namespace.
fn agent_cli(lab: &SwitchLab, args: &[&str]) -> String {
    let api = format!("http://127.0.0.1:{PORT}");
    let out = lab
        .mon
        .command(l2watch_tests::l2watch_bin().to_str().unwrap())
        .args(args)
        .args(["--api", &api])
        .output()
        .expect("run l2watch");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
