//! The shipped Grafana dashboard's queries, for the promtool check and for the end-to-end
//! test that runs them against a real Prometheus.

/// Every PromQL expression of the Grafana dashboard (panels and template variables), with
/// Grafana's variables replaced by what they expand to at their widest.
pub fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("every target has an expr");
            out.push((
                p["title"].as_str().unwrap_or("?").to_string(),
                expr.to_string(),
            ));
        }
    }
    out
}

/// Grafana's variables replaced as an all-selecting dashboard would send them.
pub fn grafana_expand(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__range", "1h")
        .replace("$instance", ".*")
        .replace("$interface", ".*")
        .replace("$vlan", ".*")
}

/// The dashboard as shipped.
pub fn dashboard() -> serde_json::Value {
    let path = crate::workspace_root().join("deploy/grafana/l2watch-dashboard.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read the dashboard"))
        .expect("the dashboard is JSON")
}
