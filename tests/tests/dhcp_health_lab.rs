//! The lab's DHCP service-health steps against the real `l2watch run`: a healthy crafted
//! VLAN, a crafted VLAN whose clients nobody answers, srv's real dnsmasq slowed down with
//! `--dhcp-reply-delay`, and two real dnsmasq servers offering a real PXE dhclient different
//! boot files. Each planted condition is found with its evidence; the healthy VLAN raises
//! nothing; the slow server's measured OFFER delay is within 10% of its configured delay.
use std::time::{Duration, Instant};

use l2watch_lab::dhcp_health;
use l2watch_tests::{
    agent::Agent,
    http,
    lab::Lab,
    privileged,
    scenario::{self, mac_of, Step},
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(40);
const PORT: u16 = 9742;

fn step(lab: &mut Lab, s: Step) -> String {
    s.run(lab)
        .unwrap_or_else(|e| panic!("lab step {}: {e}", s.name()))
}

fn api(lab: &Lab, path: &str) -> Value {
    http::json(&lab.mon, PORT, path)
}

/// Waits for an open finding of `kind` that `pred` accepts.
fn finding(lab: &Lab, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
    http::open_finding(&lab.mon, PORT, kind, WAIT, pred)
}

#[test]
fn silent_slow_and_conflicting_dhcp_with_real_servers() {
    privileged!();
    let mut lab = scenario::standard();
    let config = lab.path("l2watch.toml");
    // DISCOVERs count as unanswered after 3 s (10 s by default), to keep the test short.
    std::fs::write(&config, "[engine.dhcp_unanswered]\nwait_secs = 3\n").unwrap();
    let mut agent = Agent::serving(&lab.mon, &lab.mon_if, PORT, Some(&config), WAIT);

    step(&mut lab, Step::DhcpServer);
    step(&mut lab, Step::HealthyVlan);
    step(&mut lab, Step::DeadVlan);
    let dead = dhcp_health::DEAD_VLAN.to_string();
    let f = finding(&lab, "dhcp_unanswered", |f| f["vlan"] == dead.as_str());
    // Opened once the first round had waited; the second round joins its evidence later.
    assert!(f["evidence"]["discovers"].as_u64().unwrap() >= 3, "{f}");
    assert_eq!(f["evidence"]["clients"].as_array().unwrap().len(), 3, "{f}");

    step(&mut lab, Step::SlowDhcp);
    let slow = finding(&lab, "dhcp_slow", |f| f["vlan"] == "untagged");
    let median = slow["evidence"]["median_ms"].as_f64().unwrap();
    let want = dhcp_health::REPLY_DELAY_SECS as f64 * 1000.0;
    assert!(
        (median - want).abs() <= want * 0.10,
        "measured {median} ms, configured {want} ms: {slow}"
    );
    let servers = api(&lab, "/api/v1/dhcp/servers");
    let srv = servers["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["server_id"] == scenario::SERVER)
        .expect("srv listed");
    assert!(
        srv["offer_delay_seconds"]["p50"].as_f64().unwrap() > 1.0,
        "{srv}"
    );

    step(&mut lab, Step::PxeConflict);
    let pxe = finding(&lab, "pxe_boot_server_conflict", |_| true);
    let files: std::collections::BTreeSet<&str> = pxe["evidence"]["offers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["boot_file"].as_str())
        .collect();
    assert_eq!(
        files,
        [dhcp_health::BOOT_FILE, dhcp_health::OTHER_BOOT_FILE].into(),
        "{pxe}"
    );
    // The PXE client's device row: PXE, its architecture, the boot offer it took.
    let deadline = Instant::now() + WAIT;
    let c1 = loop {
        let d = api(
            &lab,
            &format!("/api/v1/devices?family=4&mac={}", mac_of("c1")),
        );
        if let Some(row) = d["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["boot"]["pxe"] == true)
        {
            break row.clone();
        }
        assert!(Instant::now() < deadline, "c1's PXE row:\n{d:#}");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(c1["boot"]["arch"], "x64_uefi", "{c1}");
    assert!(c1["boot"]["boot_file"].is_string(), "{c1}");

    // The healthy VLAN raised no health finding (its server is inventory: dhcp_server_seen).
    let healthy = dhcp_health::HEALTHY_VLAN.to_string();
    let all = api(&lab, "/api/v1/findings");
    let health = [
        "dhcp_unanswered",
        "dhcp_slow",
        "dhcp_nak_storm",
        "dhcp_pool_exhausted",
        "pxe_boot_server_conflict",
        "dhcp_relay_changed",
    ];
    let on_healthy: Vec<&Value> = all["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["vlan"] == healthy.as_str())
        .filter(|f| health.contains(&f["kind"].as_str().unwrap_or("")))
        .collect();
    assert!(on_healthy.is_empty(), "{on_healthy:#?}");
    let metrics = http::get(&lab.mon, PORT, "/metrics").1;
    let bound = l2watch_tests::prom::sum(
        &metrics,
        "l2watch_dhcp_transactions_total",
        &[("vlan", healthy.as_str()), ("outcome", "bound")],
    );
    assert_eq!(bound, 3.0, "the healthy VLAN's three clients were bound");
    assert_eq!(agent.stop(WAIT), Some(0), "log:\n{}", agent.log());
}
