//! The operator surface against a live agent in a namespace: the JSON API, the query commands,
//! /metrics checked by promtool, `check`, config errors, SIGHUP reload, auto mode, reattach,
//! and bounded cardinality under a flood of VLAN tags and random MACs.
use std::{
    io::Write as _,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use l2watch_tests::{
    agent::Agent,
    fixtures::{MAC_A, MAC_B, MAC_SRV},
    frames::{arp, dhcp, Bootp, Ip, BROADCAST, L2, TPID_8021AD, TPID_8021Q},
    http, l2watch_bin,
    netns::{send_frames, sh, veth_pair, Netns},
    privileged,
    prom::sample,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);
const PORT: u16 = 9731;

fn claim(mac: [u8; 6], ip: [u8; 4], vlan: Option<u16>) -> Vec<u8> {
    let mut l2 = L2::new(mac, BROADCAST);
    if let Some(v) = vlan {
        l2 = l2.tag(TPID_8021Q, v);
    }
    arp(&l2, 2, mac, ip, [0; 6], [10, 7, 0, 254]).bytes
}

/// `l2watch ARGS` inside `ns`.
fn cli(ns: &Netns, args: &[&str]) -> Output {
    ns.command(l2watch_bin().to_str().expect("utf-8"))
        .args(args)
        .output()
        .expect("run l2watch")
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn start(ns: &Netns, args: &[&str]) -> Agent {
    let mut agent = Agent::start(ns, args);
    agent.wait_for("ready", WAIT, |v| v["message"] == "ready");
    agent
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (cargo xtask setup installs the prometheus package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn api_cli_and_metrics_against_a_live_agent() {
    privileged!();
    let mon = Netns::new("api");
    let peer = Netns::new("apip");
    let (mon_if, peer_if) = veth_pair(&mon, &peer);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("l2watch.db");
    let mut agent = start(
        &mon,
        &[
            "run",
            "--iface",
            &mon_if,
            "--db",
            db.to_str().unwrap(),
            "--flush-interval",
            "200ms",
        ],
    );
    let (s, body) = http::get(&mon, PORT, "/readyz");
    assert_eq!((s, body.contains("ready")), (200, true), "{body}");

    // Two devices (one on VLAN 100), a MAC change, and a DHCP server's OFFER.
    let offer = Bootp {
        yiaddr: [10, 7, 0, 50],
        ..Bootp::dhcp(2, 7, MAC_A, 2, &[54, 4, 10, 7, 0, 1, 51, 4, 0, 0, 14, 16])
    };
    send_frames(
        &peer,
        &peer_if,
        &[
            claim(MAC_A, [10, 7, 0, 1], None),
            claim(MAC_B, [10, 7, 1, 2], Some(100)),
            claim(MAC_B, [10, 7, 0, 1], None),
            dhcp(
                &L2::new(MAC_SRV, BROADCAST),
                &Ip::udp([10, 7, 0, 1], [255; 4]),
                &offer,
            )
            .bytes,
        ],
    );
    agent.wait_for("mac_changed", WAIT, |v| v["kind"] == "mac_changed");
    let api = format!("http://127.0.0.1:{PORT}");

    // Query commands: JSON, filters, tables.
    let all = json_of(&cli(&mon, &["devices", "--api", &api, "--json"]));
    assert_eq!(all["count"], 2, "{all}");
    let one = json_of(&cli(
        &mon,
        &["devices", "--api", &api, "--json", "--vlan", "100"],
    ));
    assert_eq!(one["devices"][0]["ip"], "10.7.1.2", "{one}");
    assert_eq!(one["devices"][0]["interface"], mon_if.as_str());
    let by_mac = json_of(&cli(
        &mon,
        &[
            "devices",
            "--api",
            &api,
            "--json",
            "--mac",
            "02:00:00:00:00:0b",
        ],
    ));
    assert_eq!(by_mac["count"], 2, "B holds both addresses now: {by_mac}");
    let table = cli(&mon, &["devices", "--api", &api]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.starts_with("IP "), "{table}");
    assert!(
        table.contains("10.7.1.2") && table.contains(" 100 "),
        "{table}"
    );
    let bad = cli(&mon, &["devices", "--api", &api, "--mac", "nope"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("400") && err.contains("not a MAC address"),
        "{err}"
    );

    let f = json_of(&cli(&mon, &["findings", "--api", &api, "--json"]));
    assert!(
        f["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["kind"] == "mac_changed" && x["state"] == "open"),
        "{f}"
    );
    let servers = json_of(&cli(&mon, &["dhcp-servers", "--api", &api, "--json"]));
    assert_eq!(servers["servers"][0]["server_id"], "10.7.0.1", "{servers}");
    let stable =
        String::from_utf8_lossy(&cli(&mon, &["dhcp-servers", "--api", &api]).stdout).into_owned();
    assert!(
        stable.contains("10.7.0.1") && stable.contains("02:00:00:00:00:53"),
        "{stable}"
    );
    wait_until("events stored", || {
        let e = json_of(&cli(&mon, &["events", "--api", &api, "--json"]));
        e["count"].as_u64() >= Some(4)
    });
    let since = json_of(&cli(
        &mon,
        &["findings", "--api", &api, "--json", "--since", "1h"],
    ));
    assert!(since["count"].as_u64() >= Some(1), "{since}");

    // Errors are JSON with a message.
    let (s, body) = http::get(&mon, PORT, "/api/v1/nope");
    assert_eq!(s, 404);
    assert!(serde_json::from_str::<Value>(&body).unwrap()["error"].is_string());
    let (s, body) = http::get(&mon, PORT, "/api/v1/events?limit=0");
    assert_eq!(s, 400, "{body}");
    let (s, body) = http::get(&mon, PORT, "/api/v1/findings?since=yesterday");
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("RFC 3339"), "{body}");
    let (s, _) = http::get(&mon, PORT, "/healthz");
    assert_eq!(s, 200);

    // Metrics: the kernel counters summed at scrape time, the engine's state, promtool-clean.
    let (s, text) = http::get(&mon, PORT, "/metrics");
    assert_eq!(s, 200);
    promtool_check(&text);
    let iface = ("interface", mon_if.as_str());
    assert_eq!(
        sample(
            &text,
            "l2watch_arp_packets_total",
            &[iface, ("vlan", "untagged"), ("op", "reply")]
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "l2watch_arp_packets_total",
            &[iface, ("vlan", "100"), ("op", "reply")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "l2watch_dhcp_messages_total",
            &[iface, ("vlan", "untagged"), ("type", "offer")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "l2watch_devices", &[iface, ("vlan", "untagged")]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "l2watch_findings_open",
            &[("kind", "mac_changed"), iface]
        ),
        Some(1.0),
        "{}",
        text.lines()
            .filter(|l| l.contains("findings_open"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        sample(
            &text,
            "l2watch_findings_opened_total",
            &[("kind", "mac_changed")]
        ),
        Some(1.0)
    );
    assert_eq!(sample(&text, "l2watch_mac_moves_total", &[]), Some(1.0));
    assert_eq!(
        sample(
            &text,
            "l2watch_dhcp_server_info",
            &[("server_ip", "10.7.0.1"), ("authorized", "unknown")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "l2watch_attach_mode", &[iface, ("mode", "native")]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "l2watch_frames_total", &[iface, ("depth", "1")]),
        Some(1.0)
    );
    assert!(sample(&text, "l2watch_build_info", &[]).is_some());
    // Summed at scrape time: one more frame shows up in the next scrape.
    send_frames(&peer, &peer_if, &[claim(MAC_A, [10, 7, 0, 9], None)]);
    wait_until("a fresh count", || {
        let (_, t) = http::get(&mon, PORT, "/metrics");
        sample(
            &t,
            "l2watch_arp_packets_total",
            &[iface, ("vlan", "untagged"), ("op", "reply")],
        ) == Some(3.0)
    });
    assert_eq!(agent.stop(WAIT), Some(0), "{}", agent.log());
}

#[test]
fn check_reports_rxvlan_with_its_fix_and_exit_codes_differ() {
    privileged!();
    let a = Netns::new("chk");
    let b = Netns::new("chkp");
    let (ia, _) = veth_pair(&a, &b);
    a.exec(&["ethtool", "-K", &ia, "rxvlan", "on"]);
    let on = cli(&a, &["check", "--iface", &ia]);
    let text = String::from_utf8_lossy(&on.stdout);
    assert_eq!(on.status.code(), Some(1), "warning exit:\n{text}");
    assert!(
        text.contains("rxvlan") && text.contains(&format!("ethtool -K {ia} rxvlan off")),
        "{text}"
    );
    assert!(text.contains("native XDP supported"), "{text}");
    a.exec(&["ethtool", "-K", &ia, "rxvlan", "off"]);
    let off = cli(&a, &["check", "--iface", &ia, "--json"]);
    assert_eq!(
        off.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&off.stdout)
    );
    for line in String::from_utf8_lossy(&off.stdout).lines() {
        let v: Value = serde_json::from_str(line).expect("one JSON object per line");
        assert_eq!(v["level"], "ok", "{v}");
    }
    let missing = cli(&a, &["check", "--iface", "nosuch0"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stdout).contains("no such interface"));
}

#[test]
fn config_errors_name_the_key_and_sighup_reloads_without_detaching() {
    privileged!();
    let mon = Netns::new("cfg");
    let peer = Netns::new("cfgp");
    let (mon_if, peer_if) = veth_pair(&mon, &peer);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("l2watch.toml");

    std::fs::write(&cfg, "[kernel]\narp_rat = 5\n").unwrap();
    let out = cli(&mon, &["run", "--no-db", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("arp_rat") && err.contains("line 2") && err.contains("arp_rate"),
        "{err}"
    );
    let out = cli(
        &mon,
        &["run", "--no-db", "--config", "/nonexistent/l2watch.toml"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/l2watch.toml"));

    // A good config; then an allowlist via SIGHUP: the server becomes rogue, no detach.
    std::fs::write(
        &cfg,
        format!("interfaces = [\"{mon_if}\"]\n[database]\nenabled = false\n"),
    )
    .unwrap();
    let mut agent = start(&mon, &["run", "--config", cfg.to_str().unwrap()]);
    std::fs::write(
        &cfg,
        format!(
            "interfaces = [\"{mon_if}\"]\n[database]\nenabled = false\n\
             [[engine.dhcp_servers.allow]]\nvlan = \"*\"\nservers = [\"10.7.0.2\"]\n"
        ),
    )
    .unwrap();
    let hup = |agent: &Agent| {
        // SAFETY: signalling the agent we started, by its PID.
        unsafe { libc::kill(agent.pid() as i32, libc::SIGHUP) };
    };
    hup(&agent);
    let reload = agent.wait_for("reload", WAIT, |v| v["message"] == "configuration reloaded");
    // Only the detector whose section changed starts over; the others keep their windows.
    assert_eq!(reload["detectors_restarted"], "dhcp_servers", "{reload}");
    let offer = Bootp {
        yiaddr: [10, 7, 0, 60],
        ..Bootp::dhcp(2, 9, MAC_A, 2, &[54, 4, 10, 7, 0, 1])
    };
    send_frames(
        &peer,
        &peer_if,
        &[dhcp(
            &L2::new(MAC_SRV, BROADCAST),
            &Ip::udp([10, 7, 0, 1], [255; 4]),
            &offer,
        )
        .bytes],
    );
    agent.wait_for("rogue server", WAIT, |v| v["kind"] == "dhcp_rogue_server");
    // A broken file is refused; the agent keeps running with what it had.
    std::fs::write(&cfg, "listen = 5\n").unwrap();
    hup(&agent);
    let refused = agent.wait_for("refused", WAIT, |v| {
        v["message"] == "configuration reload refused; the running configuration stays"
    });
    assert!(
        refused["error"].as_str().unwrap().contains("listen"),
        "{refused}"
    );
    let (_, text) = http::get(&mon, PORT, "/metrics");
    assert_eq!(
        sample(&text, "l2watch_config_reloads_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "l2watch_config_reload_errors_total", &[]),
        Some(1.0)
    );
    assert!(mon.link_details(&mon_if).contains("xdp"), "still attached");
    assert_eq!(agent.stop(WAIT), Some(0), "{}", agent.log());
}

#[test]
fn auto_mode_watches_every_up_ethernet_interface_and_reattaches_when_one_comes_back() {
    privileged!();
    let mon = Netns::new("auto");
    let peer = Netns::new("autop");
    let tag = l2watch_tests::netns::unique_tag();
    let (name, pname) = (format!("l2wr{tag}"), format!("l2wq{tag}"));
    let make = || {
        sh(Command::new("ip").args([
            "link", "add", &name, "netns", &mon.name, "type", "veth", "peer", "name", &pname,
            "netns", &peer.name,
        ]));
        mon.exec(&["ip", "link", "set", &name, "up"]);
        peer.exec(&["ip", "link", "set", &pname, "up"]);
    };
    make();
    // A second, down interface: auto mode must skip it and say why.
    let (down_if, _) = veth_pair(&mon, &peer);
    mon.exec(&["ip", "link", "set", &down_if, "down"]);
    let mut agent = start(&mon, &["run", "--no-db"]);
    let chosen = agent.wait_for("auto mode", WAIT, |v| {
        v["message"] == "auto mode: monitoring every up Ethernet interface"
    });
    assert_eq!(chosen["interfaces"], name.as_str(), "{}", agent.log());
    agent.wait_for("skip", WAIT, |v| {
        v["iface"] == down_if.as_str() && v["reason"] == "down"
    });
    agent.wait_for("skip lo", WAIT, |v| {
        v["iface"] == "lo" && v["reason"] == "loopback"
    });

    // Flaps are seen from the kernel's link events, not on the next poll (every 10 s): each
    // down and up is logged long before a poll could have seen it. The latency (from starting
    // `ip link set`, which includes spawning it, to the log line) is printed; the issue's
    // bound is 100 ms.
    let mut latencies = Vec::new();
    for _ in 0..5 {
        for (state, msg) in [
            ("down", "interface down; program stays attached"),
            ("up", "interface up again; program still attached"),
        ] {
            agent.drain();
            let n = agent.seen.iter().filter(|v| v["message"] == msg).count() + 1;
            let start = std::time::SystemTime::now();
            mon.exec(&["ip", "link", "set", &name, state]);
            let hits = agent.wait_for_n(msg, n, Duration::from_secs(2), |v| v["message"] == msg);
            let line = hits.last().unwrap();
            let logged = humantime::parse_rfc3339(line["timestamp"].as_str().unwrap()).unwrap();
            latencies.push(logged.duration_since(start).unwrap_or_default());
        }
    }
    latencies.sort();
    let _ = writeln!(
        std::io::stderr(),
        "link flap seen within (ip link set started to log line): median {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );

    // Down, then gone, then back under a new ifindex.
    mon.exec(&["ip", "link", "set", &name, "down"]);
    agent.wait_for("down", WAIT, |v| {
        v["message"] == "interface down; program stays attached"
    });
    mon.exec(&["ip", "link", "del", &name]);
    agent.wait_for("gone", WAIT, |v| {
        v["message"] == "interface gone; will reattach when it comes back"
    });
    make();
    let back = agent.wait_for("back", WAIT, |v| {
        v["message"] == "interface back; reattached XDP program"
    });
    assert_eq!(back["iface"], name.as_str());
    assert!(mon.link_details(&name).contains("xdp"), "reattached");
    send_frames(&peer, &pname, &[claim(MAC_A, [10, 7, 3, 3], None)]);
    // Named by its name, not the new index: state before and after lands on one interface.
    agent.wait_for("event after reattach", WAIT, |v| {
        v["ip"] == "10.7.3.3" && v["iface"] == name.as_str()
    });
    assert_eq!(agent.stop(WAIT), Some(0), "{}", agent.log());
}

#[test]
fn a_flood_of_vlans_and_random_macs_keeps_series_and_memory_bounded() {
    privileged!();
    let mon = Netns::new("flood");
    let peer = Netns::new("floodp");
    let (mon_if, peer_if) = veth_pair(&mon, &peer);
    let mut agent = start(
        &mon,
        &[
            "run",
            "--iface",
            &mon_if,
            "--no-db",
            "--max-devices",
            "20000",
        ],
    );
    let rss = |agent: &Agent| -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", agent.pid())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    };
    let before = rss(&agent);
    // 5,000 VLAN tags, then 100,000 random MACs claiming random addresses.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Single tags stop at 4,094 VIDs: QinQ pairs give 5,000 distinct segments.
    let vlans: Vec<Vec<u8>> = (0..5_000u16)
        .map(|v| {
            let l2 = L2::new(MAC_A, BROADCAST)
                .tag(TPID_8021AD, 200 + v / 2_500)
                .tag(TPID_8021Q, v % 2_500 + 1);
            arp(
                &l2,
                2,
                MAC_A,
                [10, 8, (v >> 8) as u8, v as u8],
                [0; 6],
                [10, 8, 255, 254],
            )
            .bytes
        })
        .collect();
    send_frames(&peer, &peer_if, &vlans);
    for chunk in 0..10 {
        let frames: Vec<Vec<u8>> = (0..10_000)
            .map(|_| {
                let r = next().to_be_bytes();
                let mac = [0x02, r[0], r[1], r[2], r[3], r[4]];
                claim(mac, [10, 9 + chunk, r[5], r[6]], None)
            })
            .collect();
        send_frames(&peer, &peer_if, &frames);
    }
    let iface = ("interface", mon_if.as_str());
    let mut text = String::new();
    wait_until("every frame counted", || {
        text = http::get(&mon, PORT, "/metrics").1;
        let total: f64 = ["0", "2"]
            .iter()
            .filter_map(|d| sample(&text, "l2watch_frames_total", &[iface, ("depth", d)]))
            .sum::<f64>()
            + ["0", "2"]
                .iter()
                .filter_map(|d| {
                    sample(
                        &text,
                        "l2watch_segment_overflow_frames_total",
                        &[("depth", d)],
                    )
                })
                .sum::<f64>();
        total >= 105_000.0
    });
    // The kernel counts frames at once; the engine sees their events a moment later (ring
    // buffer, then the ingest thread). Wait for the flood to outgrow the 20,000-device table
    // (about 98,000 distinct bindings arrive).
    let limited_and_evicted = |text: &str| {
        let limited = sample(
            text,
            "l2watch_kernel_events_rate_limited_total",
            &[("kind", "arp")],
        )
        .unwrap_or(0.0);
        (
            limited,
            sample(text, "l2watch_device_evictions_total", &[]).unwrap_or(0.0),
        )
    };
    wait_until("the MAC flood's overflow counted", || {
        text = http::get(&mon, PORT, "/metrics").1;
        let (limited, evicted) = limited_and_evicted(&text);
        limited + evicted > 0.0
    });
    promtool_check(&text);
    let all = l2watch_tests::prom::samples(&text);
    let series = all.len();
    let vlan_values: std::collections::BTreeSet<&str> = all
        .iter()
        .filter(|s| s.name == "l2watch_arp_packets_total")
        .filter_map(|s| s.labels.iter().find(|(k, _)| k == "vlan"))
        .map(|(_, v)| v.as_str())
        .collect();
    let after = rss(&agent);
    let folded = sample(&text, "l2watch_vlan_labels_folded", &[iface]).unwrap_or(0.0);
    let overflow = l2watch_tests::prom::sum(&text, "l2watch_segment_overflow_frames_total", &[]);
    let (limited, evicted) = limited_and_evicted(&text);
    let _ = writeln!(
        std::io::stderr(),
        "flood: {series} series, {} VLAN label values, {folded} VLANs folded into other, \
         {overflow} frames in the segment overflow slot, {limited} ARP events rate-limited, \
         {evicted} devices evicted, agent RSS {before} kB -> {after} kB",
        vlan_values.len()
    );
    // 32 VLAN labels + "other" (+ untagged among them) per metric, whatever the flood.
    assert!(vlan_values.len() <= 33, "{vlan_values:?}");
    assert!(vlan_values.contains("other"));
    // Bounded by the contract: each VLAN label (33 at most) carries one series per exported
    // per-VLAN kernel value plus the device gauge, and each exported kernel stat is one
    // global series; the rest (per interface, engine, agent) is a fixed budget, whatever the
    // flood.
    let per_vlan = monitor_common::Counter::ALL
        .iter()
        .filter(|c| c.export().is_some_and(|(f, _)| f.per_vlan))
        .count();
    let stats = monitor_common::Stat::ALL
        .iter()
        .filter(|s| s.export().is_some())
        .count();
    let bound = 33 * (per_vlan + 1) + stats + 140;
    assert!(series <= bound, "{series} series, bound {bound}");
    assert!(folded > 4_000.0, "the folded VLANs are counted");
    assert!(overflow > 0.0, "segments beyond the kernel map are counted");
    assert!(
        limited + evicted > 0.0,
        "the MAC flood's overflow is counted"
    );
    assert!(
        after < before + 256 * 1024,
        "RSS grew from {before} kB to {after} kB"
    );
    assert_eq!(agent.stop(WAIT), Some(0));
}
