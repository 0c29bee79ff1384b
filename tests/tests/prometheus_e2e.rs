//! End to end with a real Prometheus (Debian's package) in the lab's monitor namespace: it
//! scrapes the real agent and evaluates `deploy/prometheus/l2watch.rules.yml` as shipped but
//! for `for:` cut to seconds. Through Prometheus's HTTP API: no alert is pending or firing
//! while the lab is clean (one DHCP server, clients, VLAN traffic); the competing-DHCP alert
//! fires when a second dnsmasq answers, the duplicate-IP alert when two hosts claim one IP;
//! and every query of the Grafana dashboard runs without error. Bounded by timeouts; the lab
//! (namespaces, dnsmasq, agent, Prometheus) is removed on drop, also on failure.
use std::time::{Duration, Instant};

use l2watch_tests::{
    grafana::{dashboard, dashboard_exprs, grafana_expand},
    http::{encode, try_get},
    l2watch_bin,
    lab::Lab,
    netns::{send_frames, veth_pair, Netns},
    privileged,
    scenario::{self, Step},
    switch, workspace_root,
};
use serde_json::Value;

const AGENT_PORT: u16 = 9731;
const PROM_PORT: u16 = 9090;
/// What every `for:` of the shipped rules becomes here.
const FOR: &str = "2s";

/// The shipped rules with every `for:` set to [`FOR`].
fn rules_for_test() -> String {
    let rules =
        std::fs::read_to_string(workspace_root().join("deploy/prometheus/l2watch.rules.yml"))
            .expect("read the rules");
    let mut n = 0;
    let out: Vec<String> = rules
        .lines()
        .map(|l| match l.trim_start().strip_prefix("for: ") {
            Some(_) => {
                n += 1;
                format!("{}for: {FOR}", &l[..l.len() - l.trim_start().len()])
            }
            None => l.to_string(),
        })
        .collect();
    assert!(n >= 11, "only {n} `for:` lines rewritten");
    out.join("\n") + "\n"
}

struct Prom<'a> {
    lab: &'a Lab,
}

impl Prom<'_> {
    fn api(&self, path: &str) -> Result<Value, String> {
        let (status, body) = try_get(&self.lab.mon, PROM_PORT, path)?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if status != 200 || v["status"] != "success" {
            return Err(format!("{path}: HTTP {status}: {body}"));
        }
        Ok(v["data"].clone())
    }

    fn query(&self, q: &str) -> Result<Vec<Value>, String> {
        let data = self.api(&format!("/api/v1/query?query={}", encode(q)))?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// Alerts as (name, state, labels).
    fn alerts(&self) -> Vec<(String, String, Value)> {
        let data = self.api("/api/v1/alerts").expect("alerts");
        data["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["labels"]["alertname"].as_str().unwrap().to_string(),
                    a["state"].as_str().unwrap().to_string(),
                    a.clone(),
                )
            })
            .collect()
    }

    fn wait(&self, what: &str, timeout: Duration, mut ok: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + timeout;
        while !ok(self) {
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; alerts: {:?}",
                self.alerts()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The value of a one-series query, if any.
    fn scalar(&self, q: &str) -> Option<f64> {
        let r = self.query(q).ok()?;
        r.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Waits until every rule group has been evaluated for 3 s (three evaluations) over a
    /// scrape taken after now, so an expression true on the current state has become at least
    /// pending, by Prometheus's own evaluation times rather than a sleep.
    fn settle(&self) {
        let t0 = self.scalar("vector(time())").expect("time()");
        let mut scraped = 0.0;
        self.wait("a scrape after now", Duration::from_secs(30), |p| {
            p.scalar("timestamp(l2watch_build_info)").is_some_and(|t| {
                scraped = t;
                t > t0 + 1.0
            })
        });
        self.wait("3 s of rule evaluations", Duration::from_secs(30), |p| {
            p.last_evaluations()
                .is_some_and(|ts| !ts.is_empty() && ts.iter().all(|t| *t >= scraped + 3.0))
        });
    }

    /// When each rule group was last evaluated (Unix seconds).
    fn last_evaluations(&self) -> Option<Vec<f64>> {
        let data = self.api("/api/v1/rules").ok()?;
        data["groups"]
            .as_array()?
            .iter()
            .map(|g| {
                let t = humantime::parse_rfc3339(g["lastEvaluation"].as_str()?).ok()?;
                Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64())
            })
            .collect()
    }
}

fn firing(p: &Prom, name: &str) -> Option<Value> {
    p.alerts()
        .into_iter()
        .find(|(n, s, _)| n == name && s == "firing")
        .map(|a| a.2)
}

#[test]
fn prometheus_fires_competing_dhcp_and_duplicate_ip_and_nothing_when_clean() {
    privileged!();
    let mut lab = scenario::standard();
    let dir = lab.dir().to_path_buf();
    std::fs::write(dir.join("rules.yml"), rules_for_test()).unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: [rules.yml]\n\
             scrape_configs:\n  - job_name: l2watch\n    static_configs:\n      \
             - targets: ['127.0.0.1:{AGENT_PORT}']\n"
        ),
    )
    .unwrap();
    let s = |p: std::path::PathBuf| p.to_str().unwrap().to_string();
    let (bin, db) = (s(l2watch_bin()), s(dir.join("l2watch.db")));
    let mon_if = lab.mon_if.clone();
    // A second interface facing a "switch" directly, as a rack controller's NIC faces a
    // switch port: LACPDUs are never forwarded by the lab's hub bridge.
    let sw = Netns::new("e2esw");
    let (sw_if, sw_far) = veth_pair(&lab.mon, &sw);
    lab.start_daemon(
        "agent",
        None,
        &bin,
        &[
            "run",
            "--iface",
            &mon_if,
            "--iface",
            &sw_if,
            "--db",
            &db,
            "--listen",
            "127.0.0.1:9731",
        ],
    )
    .unwrap();
    let (config, tsdb) = (s(dir.join("prometheus.yml")), s(dir.join("tsdb")));
    lab.start_daemon(
        "prometheus",
        None,
        "prometheus",
        &[
            &format!("--config.file={config}"),
            &format!("--storage.tsdb.path={tsdb}"),
            &format!("--web.listen-address=127.0.0.1:{PROM_PORT}"),
            "--log.level=warn",
        ],
    )
    .unwrap();

    let prom = Prom { lab: &lab };
    let started = Instant::now();
    prom.wait(
        "Prometheus to load the rules",
        Duration::from_secs(60),
        |p| {
            p.api("/api/v1/rules")
                .is_ok_and(|d| d["groups"].as_array().is_some_and(|g| g.len() == 2))
        },
    );
    prom.wait(
        "the agent's target to be up",
        Duration::from_secs(60),
        |p| p.scalar(r#"up{job="l2watch"}"#) == Some(1.0),
    );
    let rules = prom.api("/api/v1/rules").unwrap();
    let alert_rules: usize = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .filter(|r| r["type"] == "alerting")
        .count();
    assert_eq!(alert_rules, 35);

    // Clean phase: one server, clients through their whole lease life, tagged traffic; an
    // IPv6 router with SLAAC hosts, and a DHCPv6 server with its client.
    for step in [
        Step::DhcpServer,
        Step::DhcpClients,
        Step::VlanFrames,
        Step::Ipv6Router,
        Step::Dhcpv6,
        Step::PxeClient,
    ] {
        step.run(&mut lab)
            .unwrap_or_else(|e| panic!("{}: {e}", step.name()));
    }
    // A healthy switch port: LLDP, BPDUs of its own root, LACP in sync with us.
    let switch_mac = [0x00, 0x1b, 0x2b, 0x00, 0x00, 0x01];
    let side = |system, state| switch::LacpSide {
        system_priority: 32768,
        system,
        key: 13,
        port_priority: 32768,
        port: 17,
        state,
    };
    let us = side([0x02, 0x77, 0x00, 0x00, 0x0e, 0x01], switch::state::UP);
    for _ in 0..3 {
        send_frames(
            &sw,
            &sw_far,
            &[
                switch::lldp_frame(switch_mac, "sw3.rack12", "Gi1/0/17"),
                switch::bpdu_frame(switch_mac, 32768, false),
                switch::lacp_frame(switch_mac, &side(switch_mac, switch::state::UP), &us),
            ],
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let prom = Prom { lab: &lab };
    prom.wait(
        "the clean traffic in Prometheus",
        Duration::from_secs(30),
        |p| {
            p.scalar(r#"sum(l2watch_dhcp_messages_total{type="release"})"#)
                .is_some_and(|v| v >= 2.0)
                && p.scalar(r#"sum(l2watch_devices{vlan="200.300"})"#) == Some(1.0)
                && p.scalar("sum(l2watch_dhcpv6_servers)") == Some(1.0)
                && p.scalar("sum(l2watch_lacp_synchronized)") == Some(1.0)
                && p.scalar("count(l2watch_switch_neighbour_info)") == Some(1.0)
        },
    );
    prom.settle();
    let clean = prom.alerts();
    assert!(clean.is_empty(), "alerts in the clean phase: {clean:#?}");

    // A competing server answers the next clients.
    for step in [Step::RogueDhcp, Step::DhcpClients] {
        step.run(&mut lab)
            .unwrap_or_else(|e| panic!("{}: {e}", step.name()));
    }
    let prom = Prom { lab: &lab };
    prom.wait(
        "L2watchDhcpCompetingServers to fire",
        Duration::from_secs(60),
        |p| firing(p, "L2watchDhcpCompetingServers").is_some(),
    );
    let a = firing(&prom, "L2watchDhcpCompetingServers").unwrap();
    assert_eq!(a["labels"]["interface"], mon_if.as_str(), "{a}");
    assert_eq!(a["labels"]["vlan"], "untagged", "{a}");
    assert_eq!(a["labels"]["severity"], "critical", "{a}");
    assert!(
        a["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains(&mon_if),
        "runbook text rendered with the labels: {a}"
    );

    // Two hosts claim one address.
    Step::DuplicateIp.run(&mut lab).unwrap();
    let prom = Prom { lab: &lab };
    prom.wait("L2watchDuplicateIp to fire", Duration::from_secs(60), |p| {
        firing(p, "L2watchDuplicateIp").is_some()
    });

    // Every dashboard query runs against the real series and has data after this scenario.
    let dash = dashboard();
    let mut empty = Vec::new();
    for (title, expr) in dashboard_exprs(&dash) {
        let q = grafana_expand(&expr);
        let r = prom
            .query(&q)
            .unwrap_or_else(|e| panic!("panel {title:?}: {q}: {e}"));
        if r.is_empty() {
            empty.push(format!("{title}: {q}"));
        }
    }
    assert!(
        empty.is_empty(),
        "dashboard queries without data: {empty:#?}"
    );
    println!("end-to-end in {:.0?}", started.elapsed());
}
