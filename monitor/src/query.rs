//! The query commands (`devices`, `findings`, `dhcp-servers`, `events`): ask a running agent's
//! JSON API and print an aligned table, or the JSON itself.
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

/// Where the query commands look for the agent unless `--api` says otherwise.
pub const DEFAULT_API: &str = "http://127.0.0.1:9731";

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(
        "cannot reach the agent at {api}: {source}; is `l2watch run` running there? pass --api URL"
    )]
    Connect {
        api: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("the agent at {api} answered {status}: {message}")]
    Status {
        api: String,
        status: u16,
        message: String,
    },
    #[error("{message}")]
    Setup { message: String },
    #[error("the agent at {api} sent a reply that is not JSON: {source}")]
    Body {
        api: String,
        #[source]
        source: Box<ureq::Error>,
    },
}

/// How to reach the agent: its URL, and for a listener behind a web config, the CA that
/// signed its certificate and basic-auth credentials.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub api: String,
    /// PEM file of the CA to trust for an https:// API (default: the system's roots).
    pub ca_file: Option<std::path::PathBuf>,
    /// Basic-auth user and password.
    pub auth: Option<(String, String)>,
}

impl Target {
    pub fn plain(api: &str) -> Target {
        Target {
            api: api.to_string(),
            ..Default::default()
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api.trim_end_matches('/'))
    }

    /// An HTTP agent for this target; `timeout` None for a stream.
    fn agent(&self, timeout: Option<Duration>) -> Result<ureq::Agent, QueryError> {
        let mut b = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(timeout);
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).map_err(|e| QueryError::Setup {
                message: format!("--ca-file {}: {e}", ca.display()),
            })?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|i| match i {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(QueryError::Setup {
                    message: format!("--ca-file {}: no PEM certificate in it", ca.display()),
                });
            }
            b = b.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        Ok(b.build().into())
    }

    fn request(
        &self,
        agent: &ureq::Agent,
        path: &str,
    ) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let mut r = agent.get(&self.url(path));
        if let Some((u, p)) = &self.auth {
            use base64::Engine as _;
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            r = r.header("Authorization", &format!("Basic {token}"));
        }
        r
    }
}

/// GETs `path` (with its query string) from the API; returns the JSON body.
pub fn get(target: &Target, path: &str) -> Result<Value, QueryError> {
    let api = &target.api;
    let agent = target.agent(Some(Duration::from_secs(15)))?;
    let mut resp = target
        .request(&agent, path)
        .call()
        .map_err(|e| QueryError::Connect {
            api: api.to_string(),
            source: Box::new(e),
        })?;
    let status = resp.status().as_u16();
    let body: Value = resp.body_mut().read_json().map_err(|e| QueryError::Body {
        api: api.to_string(),
        source: Box::new(e),
    })?;
    if status >= 400 {
        return Err(QueryError::Status {
            api: api.to_string(),
            status,
            message: body["error"].as_str().unwrap_or("(no message)").to_string(),
        });
    }
    Ok(body)
}

/// One server-sent event.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Sse {
    pub id: Option<u64>,
    pub event: String,
    pub data: String,
}

/// Reads server-sent events from `r`, calling `each` per event, until the stream ends.
pub fn read_sse(r: impl std::io::BufRead, mut each: impl FnMut(Sse)) -> std::io::Result<()> {
    let mut cur = Sse::default();
    for line in r.lines() {
        let line = line?;
        if line.is_empty() {
            if !cur.data.is_empty() || !cur.event.is_empty() {
                each(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with(':') {
            continue; // keep-alive comment
        }
        let (field, value) = line.split_once(':').unwrap_or((&line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => cur.id = value.parse().ok(),
            "event" => cur.event = value.to_string(),
            "data" => {
                if !cur.data.is_empty() {
                    cur.data.push('\n');
                }
                cur.data.push_str(value);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Follows `/api/v1/events/stream` (`query` holds the filters) for good: each event's JSON
/// goes to `each`. A dropped connection, a restarted agent or a cut-off for reading too
/// slowly is followed by a reconnect that resumes after the last id seen (Last-Event-ID);
/// problems go to stderr, once per outage.
pub fn follow(target: &Target, query: &str, mut each: impl FnMut(&Value)) -> QueryError {
    let mut last: Option<u64> = None;
    let mut backoff = Duration::from_millis(250);
    let mut complained = false;
    loop {
        let agent = match target.agent(None) {
            Ok(a) => a,
            Err(e) => return e,
        };
        let mut req = target.request(&agent, &format!("/api/v1/events/stream{query}"));
        if let Some(id) = last {
            req = req.header("Last-Event-ID", &id.to_string());
        }
        match req.call() {
            Ok(resp) if resp.status().as_u16() < 400 => {
                if complained {
                    eprintln!("l2watch: event stream at {} resumed", target.api);
                    complained = false;
                }
                backoff = Duration::from_millis(250);
                let reader = std::io::BufReader::new(resp.into_body().into_reader());
                let _ = read_sse(reader, |ev| {
                    if let Some(id) = ev.id {
                        last = Some(id);
                    }
                    if ev.event == "dropped" {
                        eprintln!(
                            "l2watch: the agent cut this reader off for falling behind; resuming"
                        );
                        return;
                    }
                    if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
                        each(&v);
                    }
                });
            }
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let message = resp
                    .body_mut()
                    .read_json::<Value>()
                    .ok()
                    .and_then(|b| b["error"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "(no message)".into());
                // A refusal that waiting will not fix (auth, a bad filter) ends the follow.
                if matches!(status, 400 | 401 | 403 | 404) {
                    return QueryError::Status {
                        api: target.api.clone(),
                        status,
                        message,
                    };
                }
                if !complained {
                    eprintln!(
                        "l2watch: the agent at {} answered {status}: {message}; retrying",
                        target.api
                    );
                    complained = true;
                }
            }
            Err(e) => {
                if !complained {
                    eprintln!(
                        "l2watch: cannot reach the agent at {}: {e}; retrying",
                        target.api
                    );
                    complained = true;
                }
            }
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One followed event as a line of text: the columns of `events`, space-separated.
pub fn event_line(e: &Value) -> String {
    let mut cells = event_cells(e);
    if cells.last().is_some_and(|d| d == "-") {
        cells.pop();
    }
    cells[3] = format!("vlan={}", cells[3]);
    cells.join(" ")
}

/// An event's columns: time, kind, interface, VLAN, IP, MAC, detail.
fn event_cells(e: &Value) -> Vec<String> {
    vec![
        time(&e["ts"]),
        text(&e["kind"]),
        text(&e["interface"]),
        text(&e["vlan"]),
        text(&e["ip"]),
        text(&e["mac"]),
        if e["detail"].is_null() {
            "-".into()
        } else {
            e["detail"].to_string()
        },
    ]
}

/// Builds a query string from the pairs whose value is set.
pub fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Formats ns since the epoch as RFC 3339 (UTC, seconds).
pub fn time(v: &Value) -> String {
    match v.as_u64() {
        Some(ns) if ns > 0 => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
        }
        _ => "-".into(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An aligned table: a header row, then rows; columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(headers.to_vec())];
    for r in rows {
        out.push(line(r.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

fn list<'a>(body: &'a Value, key: &str) -> &'a [Value] {
    body[key].as_array().map_or(&[], |v| v.as_slice())
}

pub fn devices_table(body: &Value) -> String {
    let rows: Vec<Vec<String>> = list(body, "devices")
        .iter()
        .map(|d| {
            vec![
                text(&d["ip"]),
                text(&d["mac"]),
                text(&d["interface"]),
                text(&d["vlan"]),
                // IPv6 rows: how the address was learnt, and its kind.
                if d["family"] == 6 {
                    format!("{} ({})", text(&d["learnt"]), text(&d["kind"]))
                } else {
                    text(&d["source"])
                },
                text(&d["state"]),
                text(&d["hostname"]),
                time(&d["last_seen"]),
                text(&d["vendor"]),
                {
                    let b = &d["boot"];
                    let mut parts = Vec::new();
                    if b["pxe"] == true {
                        parts.push(format!("pxe {}", b["arch"].as_str().unwrap_or("?")));
                    }
                    let offer = boot(b);
                    if offer != "-" {
                        parts.push(offer);
                    }
                    if let Some(r) = b["relay"].as_str() {
                        parts.push(format!("via {r}"));
                    }
                    if let Some(c) = b["circuit_id"].as_str() {
                        parts.push(format!("circuit {c}"));
                    }
                    if parts.is_empty() {
                        "-".into()
                    } else {
                        parts.join(" ")
                    }
                },
            ]
        })
        .collect();
    table(
        &[
            "IP",
            "MAC",
            "INTERFACE",
            "VLAN",
            "SOURCE",
            "STATE",
            "HOSTNAME",
            "LAST SEEN",
            "VENDOR",
            "BOOT",
        ],
        &rows,
    ) + &truncated_note(body)
}

/// A line under a table the agent cut to its row limit, saying how to see the rest.
fn truncated_note(body: &Value) -> String {
    if body["truncated"] == true {
        format!(
            "\n({} of {} shown: narrow with --vlan, --interface or --ip, or raise --limit)",
            body["count"], body["total"]
        )
    } else {
        String::new()
    }
}

pub fn routers_table(body: &Value) -> String {
    let rows: Vec<Vec<String>> = list(body, "routers")
        .iter()
        .map(|r| {
            let ra = &r["last"];
            let flags: Vec<&str> = [("managed", "M"), ("other", "O"), ("home_agent", "H")]
                .into_iter()
                .filter(|(k, _)| ra[k] == true)
                .map(|(_, f)| f)
                .collect();
            let prefixes: Vec<String> = r["prefixes"]
                .as_array()
                .map(|v| v.iter().map(text).collect())
                .unwrap_or_default();
            vec![
                text(&r["ip"]),
                text(&r["mac"]),
                text(&r["interface"]),
                text(&r["vlan"]),
                if prefixes.is_empty() {
                    "-".into()
                } else {
                    prefixes.join(",")
                },
                if flags.is_empty() {
                    "-".into()
                } else {
                    flags.join("")
                },
                text(&ra["preference"]),
                text(&ra["router_lifetime_secs"]),
                match r["authorized"].as_bool() {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "-".into(),
                },
                time(&r["last_seen"]),
            ]
        })
        .collect();
    table(
        &[
            "ADDRESS",
            "MAC",
            "INTERFACE",
            "VLAN",
            "PREFIXES",
            "FLAGS",
            "PREFERENCE",
            "LIFETIME",
            "ALLOWED",
            "LAST SEEN",
        ],
        &rows,
    )
}

/// One line per LLDP/CDP neighbour: "eth2 → sw3.rack12 Gi1/0/17 (lldp), native VLAN 100,
/// LACP with sw3.rack12 key 13". The LACP partner is named after the neighbour when its
/// system id is the neighbour's chassis MAC, as it is on most switches.
pub fn neighbours_lines(body: &Value) -> String {
    let rows = list(body, "neighbours");
    if rows.is_empty() {
        return "no LLDP or CDP neighbours seen yet (switches announce every 30 to 60 s)".into();
    }
    let mut out = Vec::new();
    for n in rows {
        let mut line = text(&n["interface"]);
        if n["vlan"] != "untagged" {
            line.push_str(&format!(" vlan {}", text(&n["vlan"])));
        }
        line.push_str(&format!(
            " → {} {} ({})",
            text(&n["name"]),
            text(&n["port"]),
            text(&n["protocol"])
        ));
        if let Some(v) = n["native_vlan"].as_u64() {
            line.push_str(&format!(", native VLAN {v}"));
        }
        if let Some(p) = n["platform"].as_str().filter(|p| !p.is_empty()) {
            line.push_str(&format!(", {p}"));
        }
        if let Some(m) = n["management"].as_array().and_then(|m| m.first()) {
            line.push_str(&format!(", management {}", text(m)));
        }
        let l = &n["lacp"];
        if l.is_object() {
            let system = text(&l["system"]);
            let who = if n["chassis"].as_str() == Some(system.as_str()) {
                text(&n["name"])
            } else {
                system
            };
            line.push_str(&format!(", LACP with {who} key {}", text(&l["key"])));
        }
        out.push(line);
    }
    out.join("\n")
}

pub fn stp_table(body: &Value) -> String {
    let rows: Vec<Vec<String>> = list(body, "stp")
        .iter()
        .map(|s| {
            vec![
                text(&s["interface"]),
                match s["pvst_vlan"].as_u64() {
                    Some(v) => format!("{} (pvst {v})", text(&s["vlan"])),
                    None => text(&s["vlan"]),
                },
                text(&s["version"]),
                text(&s["root_id"]),
                text(&s["root_cost"]),
                format!(
                    "{} port {:#06x}",
                    text(&s["bridge_id"]),
                    s["port"].as_u64().unwrap_or(0)
                ),
                text(&s["role"]),
                format!("{}/{}", text(&s["topology_changes"]), text(&s["tcns"])),
                text(&s["root_changes"]),
                time(&s["last_seen"]),
            ]
        })
        .collect();
    table(
        &[
            "INTERFACE",
            "VLAN",
            "VERSION",
            "ROOT",
            "COST",
            "SENDER",
            "ROLE",
            "TC/TCN",
            "ROOT CHANGES",
            "LAST SEEN",
        ],
        &rows,
    )
}

pub fn lacp_table(body: &Value) -> String {
    let rows: Vec<Vec<String>> = list(body, "lacp")
        .iter()
        .map(|l| {
            let a = &l["actor"];
            let p = &l["partner"];
            vec![
                text(&l["interface"]),
                text(&l["bond"]),
                format!(
                    "{} key {} port {}",
                    text(&a["system"]),
                    text(&a["key"]),
                    text(&a["port"])
                ),
                text(&l["actor_state"]),
                format!("{} key {}", text(&p["system"]), text(&p["key"])),
                text(&l["partner_state"]),
                if l["partner_lost"] == true {
                    "LOST".into()
                } else {
                    "ok".into()
                },
                time(&l["last_seen"]),
            ]
        })
        .collect();
    table(
        &[
            "INTERFACE",
            "BOND",
            "SWITCH (ACTOR)",
            "SWITCH STATE",
            "US (PARTNER)",
            "OUR STATE",
            "PARTNER",
            "LAST SEEN",
        ],
        &rows,
    )
}

pub fn servers6_table(body: &Value) -> String {
    let rows: Vec<Vec<String>> = list(body, "servers")
        .iter()
        .map(|s| {
            let macs: Vec<String> = s["macs"]
                .as_array()
                .map(|v| v.iter().map(text).collect())
                .unwrap_or_default();
            vec![
                text(&s["duid"]),
                text(&s["interface"]),
                text(&s["vlan"]),
                macs.join(","),
                text(&s["advertises"]),
                text(&s["replies"]),
                text(&s["relayed"]),
                match s["authorized"].as_bool() {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "-".into(),
                },
                time(&s["last_seen"]),
            ]
        })
        .collect();
    table(
        &[
            "DUID",
            "INTERFACE",
            "VLAN",
            "MACS",
            "ADVERTISES",
            "REPLIES",
            "RELAYED",
            "ALLOWED",
            "LAST SEEN",
        ],
        &rows,
    )
}

pub fn findings_table(body: &Value) -> String {
    let rows: Vec<Vec<String>> = list(body, "findings")
        .iter()
        .map(|f| {
            vec![
                text(&f["kind"]),
                text(&f["state"]),
                text(&f["interface"]),
                text(&f["vlan"]),
                time(&f["opened"]),
                time(&f["last_seen"]),
                text(&f["packets"]),
                text(&f["subject"]),
            ]
        })
        .collect();
    table(
        &[
            "KIND",
            "STATE",
            "INTERFACE",
            "VLAN",
            "OPENED",
            "LAST SEEN",
            "PACKETS",
            "SUBJECT",
        ],
        &rows,
    )
}

/// Seconds as whole milliseconds.
fn ms(v: &Value) -> String {
    v.as_f64()
        .map_or("-".into(), |s| format!("{:.0}", s * 1000.0))
}

/// A boot offer as `file@server`, `-` when none.
fn boot(v: &Value) -> String {
    match (v["boot_file"].as_str(), v["boot_server"].as_str()) {
        (Some(f), Some(s)) => format!("{f}@{s}"),
        (Some(f), None) => f.to_string(),
        (None, Some(s)) => format!("@{s}"),
        (None, None) => "-".into(),
    }
}

pub fn servers_table(body: &Value) -> String {
    let rows: Vec<Vec<String>> = list(body, "servers")
        .iter()
        .map(|s| {
            let range = match (s["lowest_offered"].as_str(), s["highest_offered"].as_str()) {
                (Some(a), Some(b)) => format!("{a}-{b}"),
                _ => "-".into(),
            };
            vec![
                text(&s["server_id"]),
                text(&s["mac"]),
                text(&s["interface"]),
                text(&s["vlan"]),
                match s["authorized"].as_bool() {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "-".into(),
                },
                text(&s["offers"]),
                text(&s["acks"]),
                text(&s["naks"]),
                range,
                match s["offer_delay_seconds"].as_object() {
                    Some(q) => format!("{}/{}/{}", ms(&q["p50"]), ms(&q["p90"]), ms(&q["p99"])),
                    None => "-".into(),
                },
                boot(&s["boot_offer"]),
                time(&s["last_seen"]),
            ]
        })
        .collect();
    table(
        &[
            "SERVER",
            "MAC",
            "INTERFACE",
            "VLAN",
            "AUTHORIZED",
            "OFFERS",
            "ACKS",
            "NAKS",
            "RANGE",
            "OFFER MS P50/90/99",
            "BOOT",
            "LAST SEEN",
        ],
        &rows,
    )
}

pub fn events_table(body: &Value) -> String {
    let rows: Vec<Vec<String>> = list(body, "events").iter().map(event_cells).collect();
    table(
        &["TIME", "KIND", "INTERFACE", "VLAN", "IP", "MAC", "DETAIL"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_neighbour_line_names_the_switch_port_vlan_and_lacp_partner() {
        let body = serde_json::json!({"neighbours": [{
            "interface": "eth2", "vlan": "untagged", "protocol": "lldp",
            "name": "sw3.rack12", "chassis": "00:13:c4:12:0f:00", "port": "Gi1/0/17",
            "native_vlan": 100,
            "lacp": {"system": "00:13:c4:12:0f:00", "key": 13, "port": 17, "state": "sync"}
        }, {
            "interface": "eth3", "vlan": "100", "protocol": "cdp", "name": "S1",
            "chassis": "S1", "port": "Fa0/13", "platform": "cisco WS-C3560",
            "lacp": {"system": "00:13:c4:99:0f:00", "key": 7, "port": 1, "state": ""}
        }]});
        assert_eq!(
            neighbours_lines(&body),
            "eth2 → sw3.rack12 Gi1/0/17 (lldp), native VLAN 100, LACP with sw3.rack12 key 13\n\
             eth3 vlan 100 → S1 Fa0/13 (cdp), cisco WS-C3560, LACP with 00:13:c4:99:0f:00 key 7"
        );
        assert!(neighbours_lines(&serde_json::json!({"neighbours": []})).starts_with("no LLDP"));
    }

    #[test]
    fn tables_align_and_show_missing_values_as_dashes() {
        let body = json!({ "devices": [
            { "ip": "10.0.0.1", "mac": "02:00:00:00:00:01", "interface": "eth0", "vlan": "100",
              "source": "dhcp", "state": "active", "hostname": "node-a",
              "last_seen": 1_700_000_000_000_000_000u64, "vendor": null },
            { "ip": "10.0.0.200", "mac": "02:00:00:00:00:02", "interface": "eth0",
              "vlan": "untagged", "source": "arp", "state": "stale", "hostname": null,
              "last_seen": 0, "vendor": "Acme" },
        ]});
        let t = devices_table(&body);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        let col = lines[0].find("MAC").unwrap();
        assert_eq!(lines[1].find("02:00"), Some(col));
        assert_eq!(lines[2].find("02:00"), Some(col));
        assert!(lines[1].contains("2023-11-14T22:13:20Z"), "{t}");
        assert!(lines[2].contains(" - "), "{t}");
    }

    #[test]
    fn query_strings_skip_unset_values_and_escape() {
        assert_eq!(query_string(&[("ip", None)]), "");
        assert_eq!(
            query_string(&[
                ("vlan", Some("200.2001".into())),
                ("since", Some("2 h".into()))
            ]),
            "?vlan=200.2001&since=2%20h"
        );
    }
}
