//! What `deploy/` ships: the Prometheus rules pass `promtool check rules`, every alert passes
//! its `promtool test rules` cases (firing and quiet), and every metric the rules use is one
//! the agent exports.
use std::{collections::BTreeSet, path::Path, process::Command};

use l2watch_tests::workspace_root;

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
    let root = workspace_root();
    let exported = std::fs::read_to_string(root.join("monitor/src/export/metrics.rs")).unwrap();
    let exported: BTreeSet<String> = metric_names(&exported)
        .into_iter()
        .filter(|n| exported_literal(&root, n))
        .collect();
    let rules = std::fs::read_to_string(root.join("deploy/prometheus/l2watch.rules.yml")).unwrap();
    let used = metric_names(&rules);
    assert!(used.len() >= 5, "{used:?}");
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "rules use metrics the agent does not export: {unknown:?}"
    );
}

/// Whether `name` appears as a quoted metric name in the exporter.
fn exported_literal(root: &Path, name: &str) -> bool {
    std::fs::read_to_string(root.join("monitor/src/export/metrics.rs"))
        .unwrap()
        .contains(&format!("\"{name}\""))
}
