//! The HTTP listener: `/metrics`, the JSON API under `/api/v1`, `/healthz` and `/readyz`.
//! Errors are JSON objects with an `error` message and the right status code.
use std::{
    sync::{atomic::Ordering, Arc},
    time::{Duration, UNIX_EPOCH},
};

use axum::{
    extract::{Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::Shared;
use crate::{
    model::{wall_clock as now_ns, Mac, Nanos},
    state::vendor::vendors,
    store::Store,
};

/// An API error: a status and a message for the operator.
pub struct ApiError(StatusCode, String);

impl ApiError {
    pub fn new(code: StatusCode, msg: impl Into<String>) -> ApiError {
        ApiError(code, msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

type ApiResult = Result<Response, ApiError>;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(super::status::page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/devices", get(devices))
        .route("/api/v1/findings", get(findings))
        .route("/api/v1/dhcp/servers", get(servers))
        .route("/api/v1/dhcpv6/servers", get(servers6))
        .route("/api/v1/ipv6/routers", get(routers))
        .route("/api/v1/switch/neighbours", get(neighbours))
        .route("/api/v1/switch/stp", get(stp))
        .route("/api/v1/switch/lacp", get(lacp))
        .route("/api/v1/events", get(events))
        .route("/api/v1/events/stream", get(super::stream::stream))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "no such endpoint; see /api/v1/devices, /api/v1/findings, /api/v1/dhcp/servers, \
                 /api/v1/dhcpv6/servers, /api/v1/ipv6/routers, /api/v1/switch/neighbours, \
                 /api/v1/switch/stp, /api/v1/switch/lacp, /api/v1/events, /api/v1/events/stream, \
                 /metrics, /healthz, \
                 /readyz"
                    .into(),
            )
        })
        .with_state(shared)
}

async fn metrics(State(s): State<Arc<Shared>>) -> ApiResult {
    let text = tokio::task::spawn_blocking(move || super::metrics::render(&s))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    if s.ready.load(Ordering::Relaxed) {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: programs not attached or database not open yet".into(),
        )
        .into_response()
    }
}

/// A point in time: RFC 3339 (`2026-11-24T10:00:00Z`), Unix seconds, or an age (`15m`, `2h`).
pub fn parse_since(s: &str, now: Nanos) -> Result<Nanos, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(secs.saturating_mul(1_000_000_000));
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as Nanos));
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now.saturating_sub(d.as_nanos() as Nanos));
    }
    Err(format!(
        "since={s:?}: use RFC 3339 (2026-11-24T10:00:00Z), Unix seconds, or an age like 15m or 2h"
    ))
}

/// Runs a read on its own read-only connection, off the async threads.
pub(super) async fn read_store<T: Send + 'static>(
    db: std::path::PathBuf,
    f: impl FnOnce(&Store) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let internal = |e: String| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e);
    tokio::task::spawn_blocking(move || Store::open_readonly(&db).and_then(|st| f(&st)))
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(|e| internal(e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceQuery {
    ip: Option<String>,
    mac: Option<String>,
    vlan: Option<String>,
    interface: Option<String>,
    /// 4, 6, or both (absent).
    family: Option<String>,
    limit: Option<usize>,
}

/// Rows one list request returns by default, and at most: a big table is read in pages of
/// filters (an interface, a VLAN), not in one answer.
const DEFAULT_ROWS: usize = 10_000;
const MAX_ROWS: usize = 100_000;

fn row_limit(limit: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    match limit.unwrap_or(default) {
        0 => Err(bad(format!("limit=0: use 1..={max}"))),
        l if l > max => Err(bad(format!("limit={l}: use 1..={max}"))),
        l => Ok(l),
    }
}

/// `{"count", key: rows}` cut to `limit`, with the total and whether it was cut.
fn capped(key: &str, mut out: Vec<Value>, limit: usize) -> Response {
    let total = out.len();
    out.truncate(limit);
    Json(json!({
        "count": out.len(),
        "total": total,
        "truncated": total > out.len(),
        key: out,
    }))
    .into_response()
}

async fn devices(State(s): State<Arc<Shared>>, Query(q): Query<DeviceQuery>) -> ApiResult {
    let limit = row_limit(q.limit, DEFAULT_ROWS, MAX_ROWS)?;
    let (v4, v6) = match q.family.as_deref() {
        None => (true, true),
        Some("4") => (true, false),
        Some("6") => (false, true),
        Some(other) => return Err(bad(format!("family={other:?}: use 4 or 6"))),
    };
    let ip =
        q.ip.as_deref()
            .map(|v| {
                v.parse::<std::net::IpAddr>()
                    .map_err(|_| bad(format!("ip={v:?} is not an IPv4 or IPv6 address")))
            })
            .transpose()?;
    // An address of one family rules out the other's rows.
    let (v4, v6) = match ip {
        Some(std::net::IpAddr::V4(_)) => (v4, false),
        Some(std::net::IpAddr::V6(_)) => (false, v6),
        None => (v4, v6),
    };
    let mac = q
        .mac
        .as_deref()
        .map(|v| v.parse::<Mac>().map_err(|e| bad(e.to_string())))
        .transpose()?;
    let vlan = q.vlan.as_deref();
    let interface = q.interface.as_deref();
    let seg_ok = |seg: &crate::model::Segment| {
        vlan.is_none_or(|v| seg.vlan_label() == v)
            && interface.is_none_or(|i| seg.iface.name() == i)
    };
    // Filter on the table before rows are built: a query for one IP must not build a million.
    let engine = s.engine.lock().expect("engine lock");
    let now = now_ns();
    let mut out: Vec<Value> = Vec::new();
    if v4 {
        let rows = engine.device_rows_where(
            now,
            |m| vendors().lookup(m),
            |k, d| {
                ip.is_none_or(|ip| std::net::IpAddr::V4(k.ip) == ip)
                    && mac.is_none_or(|m| d.mac == m)
                    && seg_ok(&k.seg)
            },
        );
        out.extend(rows.into_iter().filter_map(|r| {
            let mut v = serde_json::to_value(&r).ok()?;
            v["interface"] = json!(r.key.seg.iface);
            v["family"] = json!(4);
            Some(v)
        }));
    }
    if v6 {
        let rows = engine.address6_rows_where(
            now,
            |m| vendors().lookup(m),
            |seg, m, a| {
                ip.is_none_or(|ip| std::net::IpAddr::V6(a.ip) == ip)
                    && mac.is_none_or(|x| *m == x)
                    && seg_ok(seg)
            },
        );
        out.extend(rows.iter().filter_map(|r| serde_json::to_value(r).ok()));
    }
    drop(engine);
    Ok(capped("devices", out, limit))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindingQuery {
    /// "open" (default) or "all".
    state: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
}

async fn findings(State(s): State<Arc<Shared>>, Query(q): Query<FindingQuery>) -> ApiResult {
    let now = now_ns();
    let limit = row_limit(q.limit, DEFAULT_ROWS, MAX_ROWS)?;
    let all = match q.state.as_deref() {
        None | Some("open") => q.since.is_some(),
        Some("all") => true,
        Some(other) => return Err(bad(format!("state={other:?}: use open or all"))),
    };
    let since = q
        .since
        .as_deref()
        .map(|v| parse_since(v, now).map_err(bad))
        .transpose()?
        .unwrap_or(0);
    let list: Vec<crate::detect::Finding> = if !all {
        s.engine
            .lock()
            .expect("engine lock")
            .open_findings()
            .into_iter()
            .cloned()
            .collect()
    } else if let Some(db) = s.db.clone() {
        // The database has every finding within retention, not only the recent ones.
        read_store(db, move |st| st.findings_since(since)).await?
    } else {
        let e = s.engine.lock().expect("engine lock");
        let mut v: Vec<_> = e.open_findings().into_iter().cloned().collect();
        v.extend(e.closed_findings().cloned());
        v.retain(|f| f.closed.is_none() || f.closed >= Some(since) || f.opened >= since);
        v
    };
    let out: Vec<Value> = list
        .iter()
        .filter_map(|f| {
            let mut v = serde_json::to_value(f).ok()?;
            v["interface"] = json!(f.seg.iface);
            v["state"] = json!(if f.closed.is_some() { "closed" } else { "open" });
            Some(v)
        })
        .collect();
    Ok(capped("findings", out, limit))
}

async fn servers(State(s): State<Arc<Shared>>) -> ApiResult {
    let rows = s.engine.lock().expect("engine lock").server_rows();
    let out: Vec<Value> = rows
        .iter()
        .filter_map(|r| {
            let mut v = serde_json::to_value(r).ok()?;
            v["interface"] = json!(r.key.seg.iface);
            Some(v)
        })
        .collect();
    Ok(Json(json!({ "count": out.len(), "servers": out })).into_response())
}

async fn servers6(State(s): State<Arc<Shared>>) -> ApiResult {
    let rows = s.engine.lock().expect("engine lock").server6_rows();
    let out: Vec<Value> = rows
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    Ok(Json(json!({ "count": out.len(), "servers": out })).into_response())
}

/// Rows of the engine as a JSON list under `key`, with their count.
fn rows<T: serde::Serialize>(key: &str, rows: &[T]) -> ApiResult {
    let out: Vec<Value> = rows
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    Ok(Json(json!({ "count": out.len(), key: out })).into_response())
}

async fn neighbours(State(s): State<Arc<Shared>>) -> ApiResult {
    let r = s.engine.lock().expect("engine lock").neighbour_rows();
    rows("neighbours", &r)
}

async fn stp(State(s): State<Arc<Shared>>) -> ApiResult {
    let r = s.engine.lock().expect("engine lock").stp_rows();
    rows("stp", &r)
}

async fn lacp(State(s): State<Arc<Shared>>) -> ApiResult {
    let r = s.engine.lock().expect("engine lock").lacp_rows();
    rows("lacp", &r)
}

async fn routers(State(s): State<Arc<Shared>>) -> ApiResult {
    let rows = s.engine.lock().expect("engine lock").router_rows();
    let out: Vec<Value> = rows
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    Ok(Json(json!({ "count": out.len(), "routers": out })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventQuery {
    since: Option<String>,
    limit: Option<usize>,
}

/// Most events one request returns.
const MAX_EVENTS: usize = 10_000;

async fn events(State(s): State<Arc<Shared>>, Query(q): Query<EventQuery>) -> ApiResult {
    let Some(db) = s.db.clone() else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            "the event history lives in the database, and this agent runs without one (--no-db)"
                .into(),
        ));
    };
    let now = now_ns();
    let since = match q.since.as_deref() {
        Some(v) => parse_since(v, now).map_err(bad)?,
        None => now.saturating_sub(Duration::from_secs(3_600).as_nanos() as Nanos),
    };
    let limit = q.limit.unwrap_or(1_000);
    if limit == 0 || limit > MAX_EVENTS {
        return Err(bad(format!("limit={limit}: use 1..={MAX_EVENTS}")));
    }
    let list = read_store(db, move |st| st.events_since(since, limit)).await?;
    let out: Vec<Value> = list.iter().map(super::stream::event_json).collect();
    Ok(Json(json!({ "count": out.len(), "since": since, "events": out })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_rfc3339_unix_seconds_and_ages() {
        let now = 1_800_000_000 * 1_000_000_000;
        assert_eq!(
            parse_since("1700000000", now),
            Ok(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_since("2023-11-14T22:13:20Z", now),
            Ok(1_700_000_000_000_000_000)
        );
        assert_eq!(parse_since("15m", now), Ok(now - 900_000_000_000));
        assert!(parse_since("yesterday", now)
            .unwrap_err()
            .contains("RFC 3339"));
    }
}
