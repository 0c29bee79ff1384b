//! The switch-facing view on the shared corpus, against tshark: LLDP neighbours (system name
//! and port id) and spanning-tree roots (per PVST+ VLAN) equal tshark's on every capture not
//! marked fuzzed, LACP actors equal tshark's, the LACP capture whose partner disappears gives
//! `lacp_partner_lost`, and no other capture raises a switch-port finding.
use std::{collections::BTreeSet, process::Command};

use l2watch::replay::AnalysisReport;
use l2watch_tests::{corpus_dir, privileged};
use serde_json::Value;

fn json(path: &str) -> Value {
    let text = std::fs::read_to_string(corpus_dir().join(path)).expect("read");
    serde_json::from_str(&text).expect("parse")
}

fn run(file: &str) -> AnalysisReport {
    l2watch_tests::analyze_corpus(file)
}

/// tshark's fields for `filter`, one tab-separated line per frame.
fn tshark(file: &str, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut c = Command::new("tshark");
    c.args([
        "-r",
        corpus_dir().join(file).to_str().unwrap(),
        "-Y",
        filter,
    ])
    .args(["-T", "fields", "-E", "occurrence=f"]);
    for f in fields {
        c.args(["-e", f]);
    }
    let out = c
        .output()
        .expect("tshark (`cargo xtask setup` installs Debian's tshark)");
    assert!(out.status.success(), "tshark on {file}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

const SWITCH_KINDS: &[&str] = &[
    "lldp_neighbour_changed",
    "vlan_mismatch",
    "stp_topology_churn",
    "stp_root_changed",
    "stp_bpdu_on_edge",
    "lacp_partner_lost",
    "lacp_partner_mismatch",
    "lacp_not_in_sync",
];

#[test]
fn neighbours_roots_and_lacp_actors_equal_tshark_on_the_corpus() {
    privileged!();
    let fuzzed: BTreeSet<String> = json("sources.json")
        .as_array()
        .expect("list")
        .iter()
        .filter(|s| s["kind"] == "fuzzed")
        .filter_map(|s| s["file"].as_str().map(String::from))
        .collect();
    let mut failures = Vec::new();
    let (mut names, mut roots, mut actors) = (0, 0, 0);
    for f in json("ground_truth.json")["files"]
        .as_array()
        .expect("files")
    {
        let name = f["file"].as_str().unwrap();
        if fuzzed.contains(name) {
            continue;
        }
        let switchy = ["stp", "lldp", "cdp", "lacp"]
            .iter()
            .any(|k| f["counts"][k].as_u64().unwrap_or(0) > 0);
        let r = run(name);
        let set = |v: &Value| -> BTreeSet<String> {
            v.as_array()
                .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
                .unwrap_or_default()
        };
        // LLDP system names.
        let got: BTreeSet<String> = r
            .neighbours
            .iter()
            .filter(|n| n.key.protocol.name() == "lldp")
            .filter_map(|n| n.neighbour.id.system_name.clone())
            .collect();
        let want = set(&f["lldp_system_names"]);
        names += want.len();
        if got != want {
            failures.push(format!("{name}: LLDP names {got:?}, tshark {want:?}"));
        }
        // Spanning-tree roots, priority/MAC as tshark prints them.
        let got: BTreeSet<String> = r.stp.iter().map(|s| s.stp.root_id.clone()).collect();
        let want = set(&f["stp_root_bridges"]);
        roots += want.len();
        if got != want {
            failures.push(format!("{name}: STP roots {got:?}, tshark {want:?}"));
        }
        // LACP actors (each port's latest PDU names its actor; tshark lists every pair).
        let got: BTreeSet<String> = r
            .lacp
            .iter()
            .map(|l| l.port.actor.system.to_string())
            .collect();
        let want: BTreeSet<String> = f["lacp_actor_partner"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| p[0].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        actors += want.len();
        if got != want {
            failures.push(format!("{name}: LACP actors {got:?}, tshark {want:?}"));
        }
        // Switch-port findings: only the LACP capture's lost partner.
        let kinds: Vec<&str> = r
            .findings
            .iter()
            .map(|x| x.kind.name())
            .filter(|k| SWITCH_KINDS.contains(k))
            .collect();
        let want: &[&str] = if name == "tcpdump_LACP.pcap" {
            &["lacp_partner_lost"]
        } else {
            &[]
        };
        if kinds != want {
            failures.push(format!(
                "{name}: switch findings {kinds:?}, expected {want:?}"
            ));
        }
        let any_state = !r.neighbours.is_empty() || !r.stp.is_empty() || !r.lacp.is_empty();
        if !switchy && any_state {
            failures.push(format!("{name}: switch state from a capture without any"));
        }
    }
    assert!(
        names >= 3 && roots >= 4 && actors >= 2,
        "the corpus changed: {names} names, {roots} roots, {actors} actors"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn lldp_and_cdp_neighbours_are_s1_and_s2_with_their_ports() {
    privileged!();
    let file = "tcpdump_LLDP_and_CDP.pcap";
    let r = run(file);
    let got: BTreeSet<(String, String, String)> = r
        .neighbours
        .iter()
        .map(|n| {
            (
                n.key.protocol.name().to_string(),
                n.name.clone(),
                n.neighbour.id.port.clone(),
            )
        })
        .collect();
    let mut want: BTreeSet<(String, String, String)> =
        tshark(file, "lldp", &["lldp.tlv.system.name", "lldp.port.id"])
            .into_iter()
            .map(|f| ("lldp".to_string(), f[0].clone(), f[1].clone()))
            .collect();
    want.extend(
        tshark(file, "cdp", &["cdp.deviceid", "cdp.portid"])
            .into_iter()
            .map(|f| ("cdp".to_string(), f[0].clone(), f[1].clone())),
    );
    assert_eq!(got, want);
    let names: BTreeSet<&str> = got.iter().map(|g| g.1.as_str()).collect();
    assert!(
        names.contains("S1.cisco.com") && names.contains("S2.cisco.com"),
        "{names:?}"
    );
    // CDP also says platform and native VLAN.
    let cdp: Vec<_> = r
        .neighbours
        .iter()
        .filter(|n| n.key.protocol.name() == "cdp")
        .collect();
    let platforms: BTreeSet<String> = tshark(file, "cdp", &["cdp.platform"])
        .into_iter()
        .map(|f| f[0].clone())
        .collect();
    let ours: BTreeSet<String> = cdp
        .iter()
        .filter_map(|n| n.neighbour.platform.clone())
        .collect();
    assert_eq!(ours, platforms);
    let vlans: BTreeSet<String> = tshark(file, "cdp", &["cdp.native_vlan"])
        .into_iter()
        .map(|f| f[0].clone())
        .collect();
    let ours: BTreeSet<String> = cdp
        .iter()
        .filter_map(|n| n.neighbour.native_vlan.map(|v| v.to_string()))
        .collect();
    assert_eq!(ours, vlans);
}

#[test]
fn rapid_pvst_roots_per_vlan_equal_tshark() {
    privileged!();
    let file = "tcpdump_rpvstp-trunk-native-vid5.pcap";
    let r = run(file);
    // The VLAN a BPDU speaks for: PVST+'s originating VLAN, else its 802.1Q tag, else none
    // (the IEEE BPDU of the common spanning tree).
    let got: BTreeSet<String> = r
        .stp
        .iter()
        .map(|s| {
            let vlan = s.key.pvst_vlan.or(s.key.seg.outer_vlan);
            format!(
                "{}:{}",
                vlan.map_or("cst".into(), |v| v.to_string()),
                s.stp.root_id
            )
        })
        .collect();
    let want: BTreeSet<String> = tshark(
        file,
        "stp",
        &[
            "stp.pvst.origvlan",
            "vlan.id",
            "stp.root.prio",
            "stp.root.hw",
        ],
    )
    .into_iter()
    .map(|f| {
        let vlan = [&f[0], &f[1]]
            .into_iter()
            .find(|v| !v.is_empty())
            .cloned()
            .unwrap_or_else(|| "cst".into());
        format!("{vlan}:{}/{}", f[2], f[3])
    })
    .collect();
    assert_eq!(got, want);
    assert_eq!(got.len(), 3, "VLAN 1, native VLAN 5 and the CST: {got:?}");
}

#[test]
fn the_lacp_capture_loses_its_partner() {
    privileged!();
    let r = run("tcpdump_LACP.pcap");
    let lost: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.kind.name() == "lacp_partner_lost")
        .collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    let e = &lost[0].evidence;
    assert_eq!(e["actor_system"], "00:13:c4:12:0f:00");
    assert_eq!(e["partner_system"], "00:00:00:00:00:00");
    assert_eq!(e["reason"], "partner_system_zero");
    assert!(
        e["actor_state"].as_str().unwrap().contains("defaulted"),
        "{e}"
    );
    // The partner comes back at the end of the capture: the port row shows the state of
    // its last LACPDU, as tshark reads it.
    let port = r
        .lacp
        .iter()
        .find(|l| l.port.actor.system.to_string() == "00:13:c4:12:0f:00")
        .expect("the switch's port");
    let last = tshark(
        "tcpdump_LACP.pcap",
        "lacp.actor.sysid == 00:13:c4:12:0f:00",
        &["lacp.partner.sysid", "lacp.actor.state"],
    );
    let last = last.last().expect("tshark sees the switch's LACPDUs");
    assert_eq!(port.port.partner.system.to_string(), last[0]);
    let state = u8::from_str_radix(last[1].trim_start_matches("0x"), 16).expect("hex state");
    assert_eq!(port.port.actor.state.synchronization, state & 0x08 != 0);
    assert_eq!(port.port.partner_lost, last[0] == "00:00:00:00:00:00");
}

#[test]
fn switch_changes_are_kept_in_the_database_history() {
    privileged!();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("replay.db");
    let replay = |file: &str| {
        let out = Command::new(l2watch_tests::l2watch_bin())
            .args(["replay", "--no-events", "--iface-name", "eth2", "--db"])
            .arg(&db)
            .arg(corpus_dir().join(file))
            .output()
            .expect("run l2watch replay");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    replay("tcpdump_LLDP_and_CDP.pcap");
    replay("tcpdump_LACP.pcap");
    let conn = rusqlite::Connection::open(&db).expect("open the database");
    let mut st = conn
        .prepare("SELECT kind, mac, detail FROM events WHERE interface = 'eth2' ORDER BY id")
        .unwrap();
    let rows: Vec<(String, String, Value)> = st
        .query_map([], |r| {
            let d: String = r.get(2)?;
            Ok((r.get(0)?, r.get(1)?, serde_json::from_str(&d).unwrap()))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let names: BTreeSet<String> = rows
        .iter()
        .filter(|r| r.0 == "neighbour_new")
        .filter_map(|r| r.2["neighbour"]["system_name"].as_str().map(String::from))
        .collect();
    assert!(
        names.contains("S1.cisco.com") && names.contains("S2.cisco.com"),
        "{rows:?}"
    );
    // The LACP port's partner went to zero, and came back: each change is a row.
    let lacp: Vec<&str> = rows
        .iter()
        .filter(|r| r.1 == "00:13:c4:12:0f:0d" && r.0.starts_with("lacp_"))
        .map(|r| r.2["lacp"]["partner"]["system"].as_str().unwrap())
        .collect();
    assert!(lacp.contains(&"00:00:00:00:00:00"), "{rows:?}");
    assert!(lacp.len() >= 3, "new, lost, back: {lacp:?}");
}
