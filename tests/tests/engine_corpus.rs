//! The whole pipeline (XDP program -> decode -> device table -> detectors) on the shared
//! corpus, checked against tshark's ground truth: DHCP servers by option 54, ARP sender pairs
//! as devices, duplicate-IP only where tshark raises its expert, leases from real captures.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use l2watch::{
    capture::ProbeConfig,
    replay::{analyze, Analysis, AnalysisReport},
};
use l2watch_tests::{corpus_dir, privileged, probe::load};
use serde_json::Value;

fn ground_truth() -> Vec<Value> {
    let text = std::fs::read_to_string(corpus_dir().join("ground_truth.json")).expect("read");
    let v: Value = serde_json::from_str(&text).expect("parse");
    v["files"].as_array().expect("files").clone()
}

fn run(file: &str) -> AnalysisReport {
    l2watch_tests::analyze_corpus(file)
}

/// `if7` and the like: an interface named by its index.
fn is_ifindex_name(s: &str) -> bool {
    s.strip_prefix("if")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn pipeline_agrees_with_tshark_on_servers_devices_and_duplicates() {
    privileged!();
    let mut failures = Vec::new();
    for f in ground_truth() {
        let name = f["file"].as_str().unwrap();
        let fuzzed = name == "tcpdump_arp-oobr.pcap";
        let r = run(name);
        // Undecodable events only in a fuzzed file, or at most as many as tshark finds
        // malformed frames (the LLDP frames missing their chassis TLV).
        let tshark_malformed = f["counts"]["malformed"].as_u64().unwrap_or(0);
        if r.decode_errors.values().sum::<u64>() > tshark_malformed
            && !fuzzed
            && name != "tcpdump_dhcp-rfc4388.pcap"
        {
            failures.push(format!("{name}: decode errors {:?}", r.decode_errors));
        }

        // DHCP servers: identified by option 54 like tshark's dhcp_server_ids_in_replies.
        let want = strings(&f["dhcp_server_ids_in_replies"]);
        let got: BTreeSet<String> = r
            .dhcp_servers
            .iter()
            .map(|s| s.key.server_id.to_string())
            .collect();
        if want != got {
            failures.push(format!("{name}: servers {got:?}, tshark {want:?}"));
        }

        // ARP sender pairs: every IP becomes a device (one per segment it was seen on) held by
        // one of its tshark MACs; an IP with one MAC is held by exactly that MAC.
        if !fuzzed {
            let mut by_ip: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for p in f["arp_sender_pairs"].as_array().unwrap() {
                let (mac, ip) = (p[0].as_str().unwrap(), p[1].as_str().unwrap());
                if ip != "0.0.0.0" {
                    by_ip.entry(ip.into()).or_default().insert(mac.into());
                }
            }
            for (ip, macs) in &by_ip {
                let held: Vec<String> = r
                    .devices
                    .iter()
                    .filter(|d| d.key.ip.to_string() == *ip)
                    .map(|d| d.mac.to_string())
                    .collect();
                if held.is_empty() || !held.iter().all(|m| macs.contains(m)) {
                    failures.push(format!(
                        "{name}: {ip} held by {held:?}, tshark senders {macs:?}"
                    ));
                }
            }
        }

        // tshark's duplicate-address expert fires whenever an IP shows two MACs, which
        // l2watch tells apart: two alive at once (duplicate_ip) or one after the other
        // (mac_changed, mac_flip_flop). None of them where tshark raises no expert; some of
        // them where it does.
        let two_macs: BTreeSet<String> = r
            .findings
            .iter()
            .filter(|x| ["duplicate_ip", "mac_changed", "mac_flip_flop"].contains(&x.kind.name()))
            .map(|x| x.evidence["ip"].as_str().unwrap().to_string())
            .collect();
        let expert = strings(&f["arp_duplicate_ip_expert_ips"]);
        if expert.is_empty() && !two_macs.is_empty() {
            failures.push(format!(
                "{name}: two MACs for {two_macs:?} on a clean capture"
            ));
        }
        if !expert.is_empty() && two_macs.intersection(&expert).next().is_none() {
            failures.push(format!("{name}: no finding about tshark's {expert:?}"));
        }

        // Names, not numbers: every finding and row names its interface.
        for x in &r.findings {
            let text = format!("{} {}", x.subject, x.seg);
            if x.subject.to_string().split([' ', '/']).any(is_ifindex_name)
                || is_ifindex_name(x.seg.iface.name())
            {
                failures.push(format!("{name}: finding says ifN: {text}"));
            }
        }
        for d in &r.devices {
            if is_ifindex_name(d.key.seg.iface.name()) || d.key.seg.iface.name().is_empty() {
                failures.push(format!("{name}: device on {}", d.key.seg));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn leases_hostnames_and_dhcp_findings_from_real_captures() {
    privileged!();
    // The Wireshark DORA sample: 192.168.0.10 leased for 3600 s by 192.168.0.1.
    let r = run("arkime_wireshark-dhcp.pcap");
    let d = r
        .devices
        .iter()
        .find(|d| d.key.ip.to_string() == "192.168.0.10")
        .expect("leased device");
    assert_eq!(d.mac.to_string(), "00:0b:82:01:fc:42");
    let lease = d.lease.expect("lease");
    assert_eq!(
        (lease.server.to_string().as_str(), lease.lease_secs),
        ("192.168.0.1", 3600)
    );
    assert_eq!(d.vendor.as_deref(), Some("Grandstream Networks, Inc."));
    assert_eq!(r.dhcp_servers[0].server.offers, 1);
    assert_eq!(r.dhcp_servers[0].server.acks, 1);

    // 10000 DISCOVERs at one instant: a storm.
    let r = run("suricata-verify_dhcp-request-flood.pcap");
    assert!(r.findings.iter().any(|f| f.kind == "dhcp_storm"));
    // 250 ACKs from 250 IP sources but one option 54: one server, no competition.
    let r = run("zeek_dhcp_flood.pcap");
    assert_eq!(r.dhcp_servers.len(), 1);
    assert!(r
        .findings
        .iter()
        .all(|f| f.kind != "dhcp_competing_servers"));
    // Windows hosts that first used APIPA addresses.
    let r = run("suricata-verify_smb2-ntlmssp-negotiateflags.pcap");
    assert!(r.findings.iter().any(|f| f.kind == "apipa"));
    assert!(Path::new(&corpus_dir()).exists());
}

/// Files `sources.json` marks as fuzzed: only "no crash" applies to them.
fn fuzzed_files() -> BTreeSet<String> {
    let text = std::fs::read_to_string(corpus_dir().join("sources.json")).expect("read");
    let v: Value = serde_json::from_str(&text).expect("parse");
    v.as_array()
        .expect("list")
        .iter()
        .filter(|s| s["kind"] == "fuzzed")
        .filter_map(|s| s["file"].as_str().map(String::from))
        .collect()
}

#[test]
fn the_nmap_sweep_is_an_arp_scan_and_clean_captures_raise_no_storm_findings() {
    privileged!();
    let fuzzed = fuzzed_files();
    let mut failures = Vec::new();
    for f in ground_truth() {
        let name = f["file"].as_str().unwrap();
        if fuzzed.contains(name) {
            // Only "no crash": the run itself is the check.
            run(name);
            continue;
        }
        let r = run(name);
        let storm: Vec<String> = r
            .findings
            .iter()
            .filter(|x| ["arp_scan", "arp_flood", "l2_loop"].contains(&x.kind.name()))
            .map(|x| format!("{} {}", x.kind, x.subject))
            .collect();
        if name == "zeek_nmap-vsn.pcap" {
            let scans: Vec<_> = r.findings.iter().filter(|x| x.kind == "arp_scan").collect();
            match scans.as_slice() {
                [s] => {
                    assert_eq!(s.evidence["sender_ip"], "192.168.1.71", "{s:?}");
                    assert!(
                        s.evidence["distinct_targets_at_least"].as_u64().unwrap() >= 64,
                        "{s:?}"
                    );
                }
                other => failures.push(format!("{name}: expected one arp_scan, got {other:?}")),
            }
            if storm.len() != 1 {
                failures.push(format!("{name}: {storm:?}"));
            }
        } else if !storm.is_empty() {
            failures.push(format!("{name}: {storm:?} on a clean capture"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The IPv6 findings of the corpus: kill_router6's spoof is caught (the spoofed RA comes
/// before the real router's, so it is caught on the address's EUI-64 identifier and
/// confirmed by the router's own RA), and no other capture (clean ND among them) raises any
/// IPv6 finding: no ipv6_duplicate_address, no rogue or competing routers.
#[test]
fn kill_router6_is_a_lifetime_spoof_and_clean_nd_raises_no_ipv6_finding() {
    privileged!();
    let fuzzed = fuzzed_files();
    let mut failures = Vec::new();
    let ipv6 = |k: &str| k.starts_with("ipv6_") || k.starts_with("dhcpv6_") || k == "dad_dos";
    for f in ground_truth() {
        let name = f["file"].as_str().unwrap();
        if fuzzed.contains(name) {
            continue;
        }
        let r = run(name);
        let got: Vec<(String, String)> = r
            .findings
            .iter()
            .filter(|x| ipv6(x.kind.name()))
            .map(|x| (x.kind.name().to_string(), x.subject.to_string()))
            .collect();
        if name == "suricata-verify_kill_router6.pcap" {
            let want = vec![(
                "ipv6_router_lifetime_spoof".to_string(),
                "replay fe80::6600:6aff:fe5b:8eb3".to_string(),
            )];
            if got != want {
                failures.push(format!("{name}: {got:?}, expected {want:?}"));
            }
            let spoof = r
                .findings
                .iter()
                .find(|x| x.kind == "ipv6_router_lifetime_spoof")
                .expect("the spoof");
            assert_eq!(
                spoof.evidence["spoofing_mac"], "00:50:b6:19:e6:50",
                "{spoof:?}"
            );
            assert_eq!(
                spoof.evidence["owner_mac"], "64:00:6a:5b:8e:b3",
                "{spoof:?}"
            );
            // Both RA sources are in the router table; the spoofer only ever retired.
            let routers: BTreeSet<String> =
                r.routers.iter().map(|x| x.key.mac.to_string()).collect();
            assert_eq!(
                routers,
                ["00:50:b6:19:e6:50", "64:00:6a:5b:8e:b3"]
                    .map(String::from)
                    .into()
            );
        } else if !got.is_empty() {
            failures.push(format!(
                "{name}: {got:?} on a capture without an IPv6 attack"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The DHCPv6 captures fill the server list by DUID, and the ND captures the IPv6 addresses
/// of their stations, each with how it was learnt.
#[test]
fn dhcpv6_servers_by_duid_and_ipv6_addresses_per_station() {
    privileged!();
    let r = run("tcpdump_dhcpv6-ia-na.pcap");
    let duids: Vec<String> = r
        .dhcpv6_servers
        .iter()
        .map(|s| s.key.duid.to_string())
        .collect();
    // The server's DUID-LLT (the client's DUID-LL is the other one tshark lists).
    assert_eq!(
        duids,
        ["000100011846488c001122334455"],
        "{:?}",
        r.dhcpv6_servers
    );
    let s = &r.dhcpv6_servers[0];
    assert_eq!(
        s.duid_mac.map(|m| m.to_string()).as_deref(),
        Some("00:11:22:33:44:55")
    );
    assert_eq!((s.server.advertises, s.server.replies), (1, 1));
    assert_eq!(
        s.server
            .recent_addresses
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>(),
        ["2a00:1:1:200:38e6:b22e:c440:acdf"]
    );
    let r = run("zeek_icmp6-nd-options.pcap");
    let rows: BTreeSet<(String, String, &str)> = r
        .addresses6
        .iter()
        .map(|a| (a.ip.to_string(), a.mac.to_string(), a.kind))
        .collect();
    assert!(
        rows.contains(&(
            "2001:db8:0:1:c000:54ff:fef5:0".into(),
            "c2:00:54:f5:00:00".into(),
            "eui64"
        )),
        "{rows:?}"
    );
    assert!(rows.iter().any(|r| r.2 == "link_local"), "{rows:?}");
}

/// DHCP transactions paired by (segment, xid, client): the relayed capture shows its two
/// relays (the ground truth's third giaddr is in a lease query, not a DORA), and zeek's shows
/// the NAK, then the ACK of the client's second REQUEST, then its DECLINE.
#[test]
fn dhcp_transactions_show_relays_and_outcomes_in_order() {
    privileged!();
    let r = run("tcpdump_dhcp-rfc4388.pcap");
    let relays: BTreeSet<String> = r
        .dhcp_transactions
        .iter()
        .filter_map(|t| t.tx.relay.map(|g| g.to_string()))
        .collect();
    assert_eq!(relays, ["10.30.1.1", "10.50.1.1"].map(String::from).into());
    let gt = ground_truth();
    let giaddrs = strings(
        &gt.iter()
            .find(|f| f["file"] == "tcpdump_dhcp-rfc4388.pcap")
            .unwrap()["dhcp_giaddrs"],
    );
    assert!(
        relays.is_subset(&giaddrs),
        "{relays:?} against tshark's {giaddrs:?}"
    );
    for t in &r.dhcp_transactions {
        assert_eq!(t.tx.outcome.name(), "bound", "{t:?}");
        let offer = t.tx.first_offer_delay().expect("an offer");
        assert!(offer > 0, "{t:?}");
    }
    let r = run("zeek_dhcp.pcap");
    let t = r
        .dhcp_transactions
        .iter()
        .find(|t| t.xid_hex == "0x000007c0")
        .expect("the DORA's transaction");
    let outcomes: Vec<&str> = t.tx.outcomes.iter().map(|o| o.name()).collect();
    assert_eq!(outcomes, ["nak", "bound", "declined"], "{t:?}");
    assert_eq!(t.key.client.to_string(), "90:b1:1c:99:49:29");
}

/// Every DHCP transaction is paired as tshark pairs it: on every capture not marked fuzzed,
/// the (transaction id, client MAC) pairs of the transaction table equal those of tshark's
/// `dhcp.id` and `dhcp.hw.mac_addr` over every message with a type 1 to 8 (option 53).
#[test]
fn dhcp_transactions_pair_as_tshark_pairs_them() {
    privileged!();
    let fuzzed = fuzzed_files();
    let mut failures = Vec::new();
    let mut paired = 0;
    for f in ground_truth() {
        let name = f["file"].as_str().unwrap();
        if fuzzed.contains(name) || f["counts"]["dhcp"].as_u64() == Some(0) {
            continue;
        }
        let out = std::process::Command::new("tshark")
            .args(["-r", corpus_dir().join(name).to_str().unwrap()])
            .args(["-Y", "dhcp.option.dhcp >= 1 && dhcp.option.dhcp <= 8"])
            .args(["-T", "fields", "-e", "dhcp.id", "-e", "dhcp.hw.mac_addr"])
            // chaddr, not the copy inside a client identifier (option 61).
            .args(["-E", "occurrence=f"])
            .output()
            .expect("tshark (`cargo xtask setup` installs Debian's tshark)");
        assert!(out.status.success(), "tshark on {name}");
        let want: BTreeSet<(String, String)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (id, mac) = l.split_once('\t')?;
                Some((id.to_string(), mac.to_string()))
            })
            .collect();
        let r = run(name);
        let got: BTreeSet<(String, String)> = r
            .dhcp_transactions
            .iter()
            .map(|t| (t.xid_hex.clone(), t.key.client.to_string()))
            .collect();
        paired += got.len();
        if got != want {
            failures.push(format!("{name}: {got:?}, tshark pairs {want:?}"));
        }
    }
    assert!(paired >= 50, "only {paired} transactions in the corpus");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rows_are_named_by_the_capture_interface_or_the_flag() {
    privileged!();
    let analysis = |name: &str| Analysis {
        iface_name: name.into(),
        ..Analysis::default()
    };
    let ifaces = |r: &AnalysisReport| -> BTreeSet<String> {
        r.devices
            .iter()
            .map(|d| d.key.seg.iface.name().to_string())
            .chain(r.findings.iter().map(|f| f.seg.iface.name().to_string()))
            .collect()
    };
    let file = |f: &str| corpus_dir().join(f);
    // A pcapng whose interface block names its interface (if_name "eth1").
    let mut probe = load(&ProbeConfig::replay());
    let r = analyze(
        &file("pcap-parser_wireshark_samples-test.pcapng"),
        &mut probe,
        analysis("trunk0"),
        false,
    )
    .unwrap();
    assert_eq!(ifaces(&r), BTreeSet::from(["eth1".to_string()]));
    assert!(r
        .findings
        .iter()
        .all(|f| f.subject.to_string().starts_with("eth1 ")));
    // A pcap names nothing: the flag's name, or `replay` by default.
    let mut probe = load(&ProbeConfig::replay());
    let r = analyze(
        &file("zeek_nmap-vsn.pcap"),
        &mut probe,
        analysis("trunk0"),
        false,
    )
    .unwrap();
    assert_eq!(ifaces(&r), BTreeSet::from(["trunk0".to_string()]));
    let mut probe = load(&ProbeConfig::replay());
    let r = analyze(
        &file("zeek_nmap-vsn.pcap"),
        &mut probe,
        Analysis::default(),
        false,
    )
    .unwrap();
    assert_eq!(ifaces(&r), BTreeSet::from(["replay".to_string()]));
}
