//! The listener's accept loop: each connection on its own task (a slow client holds only its
//! own), an optional TLS handshake with a deadline, HTTP/1.1 from hyper with a header read
//! timeout and a header size cap, a connection cap, and in front of the router: basic auth,
//! the web config's extra headers, and refusal of request bodies (the API is read-only).
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderValue, Request, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Router,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::web::Web;

/// Limits against slow and oversized clients.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request's headers must arrive within this (also the TLS handshake's deadline).
    pub read_timeout: Duration,
    /// Connections served at once; more are closed at once and counted.
    pub max_connections: usize,
    /// Largest request head (request line and headers) accepted.
    pub max_request_bytes: usize,
}

/// The listener's counters, exported as `l2watch_http_*`.
#[derive(Debug, Default)]
pub struct HttpStats {
    pub connections: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    pub auth_failures: AtomicU64,
    pub requests_refused: AtomicU64,
    pub timeouts: AtomicU64,
    pub open: AtomicU64,
}

struct Guard<'a>(&'a AtomicU64);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Clone)]
struct Front {
    web: Arc<Web>,
    stats: Arc<HttpStats>,
}

/// Wraps the router in the web config's auth and headers and the read-only rule.
pub fn front(app: Router, web: Arc<Web>, stats: Arc<HttpStats>) -> Router {
    app.layer(axum::middleware::from_fn_with_state(
        Front { web, stats },
        guard,
    ))
}

fn refuse(code: StatusCode, msg: &str) -> Response {
    (code, axum::Json(serde_json::json!({ "error": msg }))).into_response()
}

async fn guard(State(f): State<Front>, req: Request<Body>, next: Next) -> Response {
    // Nothing reaches the router with a body: every endpoint is a read.
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    if chunked || length > 0 {
        f.stats.requests_refused.fetch_add(1, Ordering::Relaxed);
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "l2watch's API is read-only: requests carry no body",
        );
    }
    if let Some(auth) = &f.web.auth {
        let creds = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| basic_credentials(v.as_bytes()));
        let ok = match creds {
            Some((user, password)) if auth.known_good(&user, &password) => true,
            Some((user, password)) => {
                let Ok(_permit) = auth.gate.acquire().await else {
                    return refuse(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
                };
                let auth = auth.clone();
                tokio::task::spawn_blocking(move || auth.check(&user, &password))
                    .await
                    .unwrap_or(false)
            }
            None => false,
        };
        if !ok {
            f.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
            let mut r = refuse(
                StatusCode::UNAUTHORIZED,
                "authentication required: basic auth with a user from the web config",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"l2watch\", charset=\"UTF-8\""),
            );
            return r;
        }
    }
    let mut r = next.run(req).await;
    for (k, v) in &f.web.headers {
        r.headers_mut().insert(k.clone(), v.clone());
    }
    r
}

/// `Basic base64(user:password)` to its parts.
fn basic_credentials(v: &[u8]) -> Option<(String, String)> {
    use base64::Engine as _;
    let s = std::str::from_utf8(v).ok()?;
    let (scheme, rest) = s.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Serves `app` on `listener` until `stop`; each connection is a task of its own.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    web: Arc<Web>,
    limits: Limits,
    stats: Arc<HttpStats>,
    stop: CancellationToken,
) -> Result<(), String> {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin or die.
                    warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if stats.open.load(Ordering::Relaxed) as usize >= limits.max_connections {
            stats.connections_rejected.fetch_add(1, Ordering::Relaxed);
            debug!(%peer, "connection cap reached; closed");
            drop(tcp);
            continue;
        }
        stats.open.fetch_add(1, Ordering::Relaxed);
        stats.connections.fetch_add(1, Ordering::Relaxed);
        let _ = tcp.set_nodelay(true);
        let (app, web, stats, stop) = (app.clone(), web.clone(), stats.clone(), stop.clone());
        tokio::spawn(async move {
            let _open = Guard(&stats.open);
            match &web.tls {
                None => connection(tcp, app, limits, &stats, stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.read_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => connection(tls, app, limits, &stats, stop).await,
                        Ok(Err(e)) => {
                            stats.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
                            debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            stats.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
                            stats.timeouts.fetch_add(1, Ordering::Relaxed);
                            debug!(%peer, "TLS handshake timed out");
                        }
                    }
                }
            }
        });
    }
}

async fn connection<I>(
    io: I,
    app: Router,
    limits: Limits,
    stats: &HttpStats,
    stop: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // A reader of the event stream that falls behind has its connection closed through this.
    let kill = CancellationToken::new();
    let app = app.layer(axum::Extension(super::stream::ConnKill(kill.clone())));
    let svc = hyper_util::service::TowerToHyperService::new(app);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .max_buf_size(limits.max_request_bytes.max(8_192))
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = kill.cancelled() => Ok(()),
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            // A stream (server-sent events) never finishes on its own.
            match tokio::time::timeout(Duration::from_secs(1), conn.as_mut()).await {
                Ok(r) => r,
                Err(_) => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        if e.is_timeout() {
            stats.timeouts.fetch_add(1, Ordering::Relaxed);
        }
        debug!(error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_decoded() {
        // "prom:pa:ss" — the password may contain ':'.
        assert_eq!(
            basic_credentials(b"Basic cHJvbTpwYTpzcw=="),
            Some(("prom".into(), "pa:ss".into()))
        );
        assert_eq!(basic_credentials(b"Bearer abc"), None);
        assert_eq!(basic_credentials(b"Basic !!!"), None);
    }
}
