//! The status page at `/`: one server-rendered, read-only HTML page (maud escapes every value),
//! no JavaScript, refreshed by the browser every [`REFRESH_SECS`]. What an operator opening
//! the agent's port wants first: open findings, DHCP servers and devices per segment, and
//! whether the agent itself is healthy.
use std::{
    collections::BTreeMap,
    sync::{atomic::Ordering, Arc},
    time::{Duration, UNIX_EPOCH},
};

use axum::{extract::State, response::Html};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use monitor_common::Stat;

use super::Shared;
use crate::model::{wall_clock, Nanos};

pub const REFRESH_SECS: u64 = 10;
/// Rows of each table at most; the API has the rest.
const MAX_ROWS: usize = 200;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em;margin:0}h2{font-size:1.1em;margin-top:1.6em}\
table{border-collapse:collapse;margin-top:.4em}th,td{text-align:left;padding:.2em .8em;\
border-bottom:1px solid #ddd;vertical-align:top}th{background:#f4f4f4}\
.ok{color:#1a7f37}.bad{color:#cf222e;font-weight:600}.muted{color:#777}\
code{font-size:.9em}nav a{margin-right:1em}td.ev{max-width:48em;overflow-wrap:anywhere}";

fn ago(now: Nanos, t: Nanos) -> String {
    let secs = now.saturating_sub(t) / 1_000_000_000;
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

fn at(t: Nanos) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_nanos(t)).to_string()
}

/// What the page shows, copied under the locks and rendered after.
struct View {
    findings: Vec<crate::detect::Finding>,
    servers: Vec<crate::engine::ServerRow>,
    devices: BTreeMap<(String, String), usize>,
    links: Vec<(String, String)>,
    drops: Vec<(&'static str, u64)>,
    lag_ns: u64,
    undecodable: u64,
    history_dropped: u64,
    store_errors: Option<u64>,
    ready: bool,
}

fn view(s: &Shared) -> View {
    let e = s.engine.lock().expect("engine lock");
    let mut findings: Vec<_> = e.open_findings().into_iter().cloned().collect();
    let servers = e.server_rows();
    let mut devices: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (k, _) in e.table().iter() {
        *devices
            .entry((k.seg.iface.name().to_string(), k.seg.vlan_label()))
            .or_default() += 1;
    }
    let history_dropped = e.stats().history_dropped;
    drop(e);
    // Newest first.
    findings.sort_by_key(|f| std::cmp::Reverse(f.opened));
    let links = s
        .links
        .read()
        .expect("links lock")
        .values()
        .map(|l| {
            (
                l.name.clone(),
                l.mode
                    .map_or("detached (down or gone)", |m| m.name())
                    .to_string(),
            )
        })
        .collect();
    let stats = s
        .probe
        .lock()
        .expect("probe lock")
        .stats()
        .unwrap_or_default();
    let drops = Stat::ALL
        .iter()
        .filter(|st| {
            let n = st.name();
            n.ends_with("_ringbuf_full") || n.ends_with("_pending_full") || n.ends_with("_map_full")
        })
        .map(|st| (st.name(), stats.get(st.index()).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect();
    View {
        findings,
        servers,
        devices,
        links,
        drops,
        lag_ns: s.lag_ns.load(Ordering::Relaxed),
        undecodable: s.undecodable.load(Ordering::Relaxed),
        history_dropped,
        store_errors: s
            .store_stats
            .as_ref()
            .map(|st| st.errors.load(Ordering::Relaxed)),
        ready: s.ready.load(Ordering::Relaxed),
    }
}

pub async fn page(State(s): State<Arc<Shared>>) -> Html<String> {
    let v = tokio::task::spawn_blocking(move || view(&s))
        .await
        .expect("status view");
    Html(render(&v, wall_clock()).into_string())
}

fn render(v: &View, now: Nanos) -> Markup {
    let version = env!("CARGO_PKG_VERSION");
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content=(REFRESH_SECS);
                meta name="viewport" content="width=device-width";
                title { "l2watch " (version) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "l2watch " (version) }
                p.muted { "Layer-2 monitor. Updated " (at(now)) "; this page refreshes every " (REFRESH_SECS) " s." }
                nav {
                    a href="/metrics" { "/metrics" }
                    a href="/api/v1/findings" { "findings" }
                    a href="/api/v1/devices" { "devices" }
                    a href="/api/v1/dhcp/servers" { "DHCP servers" }
                    a href="/api/v1/events" { "events" }
                    a href="/api/v1/events/stream" { "event stream" }
                    a href="/readyz" { "/readyz" }
                }

                h2 id="findings" { "Open findings (" (v.findings.len()) ")" }
                @if v.findings.is_empty() {
                    p.ok { "None: no layer-2 trouble seen." }
                } @else {
                    table id="findings-table" {
                        tr { th { "Kind" } th { "Interface" } th { "VLAN" } th { "Subject" } th { "Opened" } th { "Last seen" } th { "Packets" } th { "Evidence" } }
                        @for f in v.findings.iter().take(MAX_ROWS) {
                            tr {
                                td.bad { (f.kind.name()) }
                                td { (f.seg.iface.name()) }
                                td { (f.vlan) }
                                td { code { (f.subject.to_string()) } }
                                td title=(at(f.opened)) { (ago(now, f.opened)) " ago" }
                                td { (ago(now, f.last_seen)) " ago" }
                                td { (f.packets) }
                                td.ev { code { (f.evidence.to_string()) } }
                            }
                        }
                    }
                }

                h2 id="dhcp" { "DHCP servers (" (v.servers.len()) ")" }
                @if v.servers.is_empty() {
                    p.muted { "None seen yet." }
                } @else {
                    table id="dhcp-table" {
                        tr { th { "Interface" } th { "VLAN" } th { "Server" } th { "MAC" } th { "Authorised" } th { "Offers" } th { "Acks" } th { "Naks" } th { "Range" } th { "Last seen" } }
                        @for r in v.servers.iter().take(MAX_ROWS) {
                            tr {
                                td { (r.key.seg.iface.name()) }
                                td { (r.vlan) }
                                td { (r.key.server_id.to_string()) }
                                td { code { (r.key.mac.to_string()) } }
                                @match r.authorized {
                                    Some(true) => td.ok { "yes" },
                                    Some(false) => td.bad { "NO" },
                                    None => td.muted { "no allowlist" },
                                }
                                td { (r.server.offers) }
                                td { (r.server.acks) }
                                td { (r.server.naks) }
                                td {
                                    @match (r.server.lowest_offered, r.server.highest_offered) {
                                        (Some(a), Some(b)) => { (a.to_string()) " – " (b.to_string()) },
                                        _ => "-",
                                    }
                                }
                                td { (ago(now, r.server.last_seen)) " ago" }
                            }
                        }
                    }
                }

                h2 id="devices" { "Devices per segment (" (v.devices.values().sum::<usize>()) ")" }
                @if v.devices.is_empty() {
                    p.muted { "None learnt yet." }
                } @else {
                    table id="devices-table" {
                        tr { th { "Interface" } th { "VLAN" } th { "Devices" } }
                        @for ((iface, vlan), n) in v.devices.iter().take(MAX_ROWS) {
                            tr { td { (iface) } td { (vlan) } td { (n) } }
                        }
                    }
                }

                h2 id="agent" { "Agent" }
                table id="agent-table" {
                    tr { th { "Ready" } @if v.ready { td.ok { "yes" } } @else { td.bad { "no" } } }
                    @for (name, mode) in &v.links {
                        tr { th { "Interface " (name) } @if mode.starts_with("detached") { td.bad { (mode) } } @else { td.ok { "attached, " (mode) " XDP" } } }
                    }
                    tr { th { "Ring-buffer lag" } td { (format!("{:.3} s", v.lag_ns as f64 / 1e9)) } }
                    tr { th { "Kernel drops" }
                        @if v.drops.is_empty() { td.ok { "none" } } @else {
                            td.bad { @for (n, c) in &v.drops { (n) " " (c) br; } }
                        }
                    }
                    tr { th { "Undecodable events" } td { (v.undecodable) } }
                    tr { th { "History events dropped" } td { (v.history_dropped) } }
                    @if let Some(e) = v.store_errors {
                        tr { th { "Database write errors" } @if e == 0 { td.ok { "0" } } @else { td.bad { (e) } } }
                    } @else {
                        tr { th { "Database" } td.muted { "none (--no-db)" } }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_an_empty_agent_says_so() {
        let v = View {
            findings: Vec::new(),
            servers: Vec::new(),
            devices: [(("eth0<script>".to_string(), "100".to_string()), 3)].into(),
            links: vec![("eth0".into(), "native".into())],
            drops: Vec::new(),
            lag_ns: 0,
            undecodable: 0,
            history_dropped: 0,
            store_errors: None,
            ready: true,
        };
        let html = render(&v, 1_800_000_000_000_000_000).into_string();
        assert!(html.contains("eth0&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script"));
        assert!(html.contains("None: no layer-2 trouble seen."));
        assert!(html.contains(r#"http-equiv="refresh" content="10""#));
    }
}
