//! Every capture of the shared corpus replayed through the real XDP program: counts must
//! equal tshark's (`ground_truth.json`) on every file not marked fuzzed; the fuzzed file must
//! pass every frame without a crash. Bad files get clear errors with byte offsets.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Command,
};

use l2watch::{capture::ProbeConfig, replay::replay};
use l2watch_tests::{corpus_dir, l2watch_bin, privileged, probe::load};
use serde_json::Value;

/// Every key `l2watch replay` reports with tshark's meaning (`counts::TSHARK_KEYS`): ARP,
/// DHCPv4, VLANs, IPv6 neighbour discovery and DHCPv6.
const KEYS: &[&str] = l2watch::counts::TSHARK_KEYS;

/// Files `sources.json` marks as fuzzed: only "no crash, everything passed" applies.
fn fuzzed() -> Vec<String> {
    let path = corpus_dir().join("sources.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read sources"))
        .expect("parse sources");
    let fuzzed: Vec<String> = v
        .as_array()
        .expect("a list of sources")
        .iter()
        .filter(|s| s["kind"] == "fuzzed")
        .map(|s| s["file"].as_str().expect("file").to_string())
        .collect();
    assert!(
        fuzzed.iter().any(|f| f == "tcpdump_arp-oobr.pcap"),
        "{fuzzed:?}"
    );
    fuzzed
}

fn ground_truth() -> Value {
    let path = corpus_dir().join("ground_truth.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read ground truth"))
        .expect("parse ground truth")
}

#[test]
fn replay_agrees_with_tshark_on_the_whole_corpus() {
    privileged!();
    let gt = ground_truth();
    let files = gt["files"].as_array().expect("files");
    assert!(files.len() >= 30, "corpus has {} files", files.len());
    let mut failures = Vec::new();
    let fuzzed = fuzzed();
    for f in files {
        let name = f["file"].as_str().expect("file name");
        let mut probe = load(&ProbeConfig::replay());
        let report = replay(
            &corpus_dir().join(name),
            &mut probe,
            false,
            "replay",
            &mut |_, _, _: &_| {},
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Some(e) = &report.error {
            failures.push(format!("{name}: {e}"));
        }
        if report.verdicts_not_pass != 0 || report.undecodable_events != 0 {
            failures.push(format!(
                "{name}: {} non-PASS verdicts, {} undecodable events",
                report.verdicts_not_pass, report.undecodable_events
            ));
        }
        let want = &f["counts"];
        let keys: &[&str] = if fuzzed.iter().any(|x| x == name) {
            &["frames"]
        } else {
            KEYS
        };
        for k in keys {
            let w = want[k].as_u64().unwrap_or_else(|| panic!("{name}: no {k}"));
            let g = report.counts.get(k).copied().unwrap_or(u64::MAX);
            if g != w {
                failures.push(format!("{name}: {k} = {g}, tshark says {w}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The sets `ground_truth.json` holds for IPv6, from the kernel's events of one replay:
/// RA sources ([MAC, address]), DAD targets, and every DUID in an ADVERTISE or REPLY.
fn ipv6_sets(name: &str) -> BTreeMap<&'static str, BTreeSet<String>> {
    use l2watch::capture::KernelEvent;
    let mut probe = load(&ProbeConfig::replay());
    // JSON text of each member, as ground_truth.json writes them.
    let mut sets: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for k in SETS {
        sets.insert(k, BTreeSet::new());
    }
    replay(
        &corpus_dir().join(name),
        &mut probe,
        false,
        "replay",
        &mut |_, _, ev: &KernelEvent| match ev {
            KernelEvent::RouterAdvert(r) => {
                let pair = serde_json::json!([
                    l2watch::capture::Mac(r.eth_src).to_string(),
                    std::net::Ipv6Addr::from(r.src_ip).to_string()
                ]);
                sets.get_mut("icmpv6_ra_sources")
                    .unwrap()
                    .insert(pair.to_string());
            }
            KernelEvent::Nd(n) if n.header.kind == monitor_common::event_kind::DAD_PROBE => {
                let t = std::net::Ipv6Addr::from(n.ip).to_string();
                sets.get_mut("icmpv6_dad_targets")
                    .unwrap()
                    .insert(Value::from(t).to_string());
            }
            KernelEvent::Dhcpv6(d) => {
                let p = &d.payload[..d.payload_len as usize];
                let Ok(m) = l2watch::decode::dhcpv6::decode(p, d.payload_len == d.wire_len) else {
                    return;
                };
                if m.is_server_reply() {
                    let set = sets.get_mut("dhcpv6_duids_in_server_messages").unwrap();
                    for duid in [&m.client_duid, &m.server_duid].into_iter().flatten() {
                        set.insert(Value::from(duid.to_string()).to_string());
                    }
                }
            }
            _ => {}
        },
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    sets
}

/// RA sources tshark lists that l2watch does not report as routers, each with why. Their
/// frames still count as RAs (the counts test checks `icmpv6_ra` on every file).
const NOT_ROUTERS: &[(&str, &str, &str)] = &[
    (
        "suricata-verify_output-eve-ftp-data.pcap",
        r#"["18:59:33:f4:49:1f","fe80::8000:f227:62c7:9547"]"#,
        "its RAs come inside Teredo (IPv6 in UDP 3544 over IPv4): a tunnel's router, not this link's",
    ),
    (
        "zeek_icmp6-nd-short-options.pcap",
        r#"["00:11:22:33:44:55","fe80::10"]"#,
        "its only RA is 8 bytes, shorter than the 16-byte RA header: hosts discard it \
         (RFC 4861 section 6.1.2), and l2watch counts it as malformed",
    ),
];

const SETS: [&str; 3] = [
    "icmpv6_ra_sources",
    "icmpv6_dad_targets",
    "dhcpv6_duids_in_server_messages",
];

#[test]
fn ipv6_routers_dad_targets_and_dhcpv6_duids_agree_with_tshark() {
    privileged!();
    let gt = ground_truth();
    let fuzzed = fuzzed();
    let mut failures = Vec::new();
    let mut non_empty = 0;
    for f in gt["files"].as_array().expect("files") {
        let name = f["file"].as_str().expect("file name");
        if fuzzed.iter().any(|x| x == name) {
            continue;
        }
        let got = ipv6_sets(name);
        for k in SETS {
            let want: BTreeSet<String> = f[k]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: no set {k}"))
                .iter()
                .map(|v| v.to_string())
                .filter(|m| {
                    !(k == "icmpv6_ra_sources"
                        && NOT_ROUTERS.iter().any(|(f, x, _)| *f == name && x == m))
                })
                .collect();
            non_empty += !want.is_empty() as usize;
            if got[k] != want {
                failures.push(format!("{name}: {k} = {:?}, tshark says {want:?}", got[k]));
            }
        }
    }
    assert!(
        non_empty >= 15,
        "only {non_empty} non-empty sets: the corpus changed?"
    );
    // Each exception is one tshark really lists, so none outlives its reason.
    for (file, member, why) in NOT_ROUTERS {
        let f = gt["files"]
            .as_array()
            .expect("files")
            .iter()
            .find(|f| f["file"] == *file)
            .unwrap_or_else(|| panic!("{file} left the corpus"));
        let listed = f["icmpv6_ra_sources"].as_array().is_some_and(|v| {
            v.iter()
                .any(|m| *m == serde_json::from_str::<Value>(member).unwrap())
        });
        assert!(listed, "{file}: tshark no longer lists {member} ({why})");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_ns_nonce_capture_yields_the_dad_target_with_its_nonce() {
    privileged!();
    let file = corpus_dir().join("tcpdump_icmpv6-ns-nonce.pcap");
    let v = replay_json(&file);
    let dad: Vec<&Value> = v["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "dad_probe")
        .collect();
    assert_eq!(dad.len(), 1, "{dad:?}");
    assert_eq!(dad[0]["ip"], "fe80::546f:f7ff:fee1:f");
    assert_eq!(dad[0]["mac"], "56:6f:f7:e1:00:0f");
    assert_eq!(dad[0]["nonce"], "6069604c0aaa");
}

#[test]
fn dhcp_flood_and_arp_sweep_raise_the_expected_events() {
    privileged!();
    // 10000 DISCOVERs: every one is an event when rate limits are off (replay).
    let mut probe = load(&ProbeConfig::replay());
    let r = replay(
        &corpus_dir().join("suricata-verify_dhcp-request-flood.pcap"),
        &mut probe,
        false,
        "replay",
        &mut |_, _, _: &_| {},
    )
    .expect("replay");
    assert_eq!(r.event_counts.get("dhcp"), Some(&10_000));
    assert_eq!(r.stats["dhcp_ringbuf_full"], 0);
    // nmap sweep: 503 requests from one host, one binding: one event, 502 suppressed.
    let mut probe = load(&ProbeConfig::replay());
    let r = replay(
        &corpus_dir().join("zeek_nmap-vsn.pcap"),
        &mut probe,
        false,
        "replay",
        &mut |_, _, _: &_| {},
    )
    .expect("replay");
    assert_eq!(r.event_counts.get("arp_new"), Some(&1));
    assert_eq!(r.stats["arp_suppressed"], 502);
}

/// `l2watch replay --json FILE`, which must succeed, as JSON.
fn replay_json(file: &Path) -> Value {
    let out = l2watch(&["replay", "--json", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn l2watch(args: &[&str]) -> std::process::Output {
    Command::new(l2watch_bin())
        .args(args)
        .output()
        .expect("run l2watch")
}

#[test]
fn replay_json_has_the_tshark_keys() {
    privileged!();
    let file = corpus_dir().join("zeek_icmp_dot1q.pcap");
    let v = replay_json(&file);
    for k in KEYS {
        assert!(v["counts"][k].is_u64(), "missing counts.{k}");
    }
    assert_eq!(v["counts"]["arp_vlan_tagged"], 6);
    assert!(v["events"].as_array().is_some_and(|e| !e.is_empty()));
}

fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("l2watch-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write temp file");
    p
}

#[test]
fn truncated_capture_reports_offset_and_partial_counts() {
    privileged!();
    let src = std::fs::read(corpus_dir().join("ipfixprobe_arp.pcap")).expect("read");
    // 24-byte header, then 16-byte record headers + 42..60-byte frames: cut mid-file.
    let cut = &src[..src.len() - 30];
    let p = temp_file("truncated.pcap", cut);
    let out = l2watch(&["replay", "--json", "--no-events", p.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("truncated at byte"), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("partial report");
    let frames = v["counts"]["frames"].as_u64().unwrap();
    assert!(
        (40..45).contains(&frames),
        "read {frames} frames before the cut"
    );
    assert!(v["error"].as_str().unwrap().contains("byte"));
}

#[test]
fn corrupt_record_reports_its_offset() {
    privileged!();
    let mut bytes =
        std::fs::read(corpus_dir().join("chrissanders_arp_resolution.pcapng")).expect("read");
    // Break the block-length trailer of the last block.
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&[0xff, 0xff, 0xff, 0x7f]);
    let p = temp_file("corrupt.pcapng", &bytes);
    let out = l2watch(&["replay", p.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("at byte"), "{stderr}");
}

#[test]
fn non_ethernet_and_non_capture_files_exit_2() {
    privileged!();
    let mut sll = Vec::new();
    sll.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    sll.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0]);
    sll.extend_from_slice(&113u32.to_le_bytes());
    let p = temp_file("sll.pcap", &sll);
    let out = l2watch(&["replay", p.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("link type 113") && stderr.contains("not Ethernet"),
        "{stderr}"
    );

    let p = temp_file("notes.txt", b"definitely not a capture file\n");
    let out = l2watch(&["replay", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let out = l2watch(&["replay", "/nonexistent/file.pcap"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(Path::new(&l2watch_bin()).exists());
}
