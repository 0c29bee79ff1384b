//! What `deploy/` ships: the Prometheus rules pass `promtool check rules`, every alert passes
//! its `promtool test rules` cases (firing and quiet), and every metric the rules, dashboard
//! and federation use is one the agent exports, by the exporter's own list of the families it
//! registers (`export::metrics::catalog`), not by reading its source.
use std::{collections::BTreeSet, path::Path, process::Command};

use l2watch::{
    capture::ProbeConfig,
    config::MetricsConfig,
    engine::{Engine, EngineConfig},
    export::{metrics::catalog, Shared},
    links::IfaceNames,
    store::StoreStats,
};
use l2watch_tests::{
    grafana::{dashboard_exprs, grafana_expand},
    privileged,
    probe::load,
    workspace_root,
};

/// Every metric family the exporter registers, asked of the exporter: a loaded program, an
/// engine, a store attached, and the opt-in per-device series on, so nothing is left out.
fn exported() -> BTreeSet<String> {
    let metrics = MetricsConfig {
        device_info: true,
        ..MetricsConfig::default()
    };
    let shared = Shared::new(
        Engine::new(EngineConfig::default()),
        load(&ProbeConfig::default()),
        None,
        Some(std::sync::Arc::new(StoreStats::default())),
        metrics,
        IfaceNames::default(),
    );
    let families = catalog(&shared).expect("the exporter lists its families");
    assert!(families.len() >= 40, "{families:?}");
    // A histogram is queried by its series: _bucket, _sum and _count.
    families
        .into_iter()
        .flat_map(|f| {
            if f.kind == "histogram" {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .map(|s| format!("{}{s}", f.name))
                    .collect()
            } else {
                vec![f.name]
            }
        })
        .collect()
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool (`cargo xtask setup` installs Debian's prometheus package)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

/// `l2watch_*` names in `text` (recording-rule names, with colons, left out).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(p) = text[i..].find("l2watch_") {
        let start = i + p;
        let prev_ok = start == 0 || !(b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b':');
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        if prev_ok && b.get(end) != Some(&b':') {
            names.insert(text[start..end].to_string());
        }
        i = end;
    }
    names
}

#[test]
fn rules_are_valid_and_every_alert_is_tested() {
    let dir = workspace_root().join("deploy/prometheus");
    let check = promtool(&["check", "rules", "l2watch.rules.yml"], &dir);
    assert!(check.contains("SUCCESS"), "{check}");
    let test = promtool(&["test", "rules", "l2watch.rules.test.yml"], &dir);
    assert!(test.contains("SUCCESS"), "{test}");
    // Every alert has a test case.
    let rules = std::fs::read_to_string(dir.join("l2watch.rules.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("l2watch.rules.test.yml")).unwrap();
    for alert in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "{alert} has no promtool test"
        );
    }
}

#[test]
fn rules_use_only_metrics_the_agent_exports() {
    privileged!();
    let root = workspace_root();
    let exported = exported();
    let rules = std::fs::read_to_string(root.join("deploy/prometheus/l2watch.rules.yml")).unwrap();
    let used = metric_names(&rules);
    assert!(used.len() >= 5, "{used:?}");
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "rules use metrics the agent does not export: {unknown:?}"
    );
}

#[test]
fn dashboard_covers_the_issue_and_every_panel_parses_with_exported_metrics() {
    privileged!();
    let root = workspace_root();
    let path = root.join("deploy/grafana/l2watch-dashboard.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("valid JSON");
    let panels = dash["panels"].as_array().unwrap();
    // The sections the dashboard promises, and unique panel ids.
    let rows: Vec<&str> = panels
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for want in [
        "Traffic",
        "Devices",
        "Findings",
        "DHCP servers",
        "IPv6 neighbour discovery",
        "DHCP service health",
        "Self-monitoring",
    ] {
        assert!(
            rows.iter().any(|r| r.starts_with(want)),
            "no {want} row in {rows:?}"
        );
    }
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "duplicate panel ids");
    for p in panels.iter().filter(|p| p["type"] != "row") {
        assert!(
            p["targets"].as_array().is_some_and(|t| !t.is_empty()),
            "panel {} has no query",
            p["title"]
        );
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
    }

    // Every expression parses: promtool checks each as a recording rule.
    let exprs = dashboard_exprs(&dash);
    assert!(exprs.len() >= 25, "{}", exprs.len());
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, e)) in exprs.iter().enumerate() {
        rules += &format!(
            "      - record: dashboard:panel_{i}\n        expr: {}\n",
            serde_json::to_string(&grafana_expand(e)).unwrap()
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("dashboard.rules.yml"), rules).unwrap();
    let check = promtool(&["check", "rules", "dashboard.rules.yml"], tmp.path());
    assert!(
        check.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{check}"
    );

    // Only metrics the agent exports, in panels and in the variables' label_values().
    let text = std::fs::read_to_string(&path).unwrap();
    let used = metric_names(&text);
    let exported = exported();
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard uses metrics the agent does not export: {unknown:?}"
    );
    assert!(used.len() >= 25, "{used:?}");
}

#[test]
fn federation_example_is_valid_and_every_fleet_alert_is_tested() {
    privileged!();
    let root = workspace_root();
    let dir = root.join("deploy/prometheus/federation");
    for config in ["site.prometheus.yml", "global.prometheus.yml"] {
        // check config also checks the rule files each one loads.
        let out = promtool(&["check", "config", config], &dir);
        assert!(
            out.contains("is valid prometheus config file syntax"),
            "{out}"
        );
    }
    let test = promtool(&["test", "rules", "fleet.rules.test.yml"], &dir);
    assert!(test.contains("SUCCESS"), "{test}");
    let rules = std::fs::read_to_string(dir.join("fleet.rules.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("fleet.rules.test.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 4, "{alerts:?}");
    for alert in alerts {
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "{alert} has no promtool test"
        );
    }
    // What the fleet layer federates and alerts on is what the agents and site rules export.
    let global = std::fs::read_to_string(dir.join("global.prometheus.yml")).unwrap();
    let used = metric_names(&format!("{rules}\n{global}"));
    let exported = exported();
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(unknown.is_empty(), "not exported: {unknown:?}");
    let site_rules =
        std::fs::read_to_string(root.join("deploy/prometheus/l2watch.rules.yml")).unwrap();
    // Recording rules the fleet uses are recorded by the site rules (and federated).
    let recorded: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("l2watch:"))
        .collect();
    assert!(!recorded.is_empty());
    for rec in recorded {
        assert!(
            site_rules.contains(&format!("record: {rec}")),
            "{rec} is not recorded"
        );
    }
}
