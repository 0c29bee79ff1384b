//! A minimal HTTP/1.1 GET from inside a namespace (the agent listens there), so API tests need
//! no client that could reach anything outside it.
use std::{
    fs::File,
    io::{Read, Write},
    net::TcpStream,
    os::fd::AsRawFd,
    time::Duration,
};

use crate::netns::Netns;

/// GETs `path` from 127.0.0.1:`port` in `ns`; returns the status and the body.
pub fn get(ns: &Netns, port: u16, path: &str) -> (u16, String) {
    try_get(ns, port, path).unwrap_or_else(|e| panic!("GET {path} on port {port}: {e}"))
}

/// [`get`], with an error instead of a panic when nothing listens yet or the reply breaks.
pub fn try_get(ns: &Netns, port: u16, path: &str) -> Result<(u16, String), String> {
    let nspath = format!("/var/run/netns/{}", ns.name);
    let path = path.to_string();
    std::thread::spawn(move || {
        let f = File::open(&nspath).unwrap_or_else(|e| panic!("open {nspath}: {e}"));
        // SAFETY: moves only this thread into the namespace.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").ok_or("not an HTTP reply")?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or("no status code")?;
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        Ok((
            status,
            if chunked {
                dechunk(body)
            } else {
                body.to_string()
            },
        ))
    })
    .join()
    .expect("HTTP thread panicked")
}

/// Percent-encodes a query parameter value (PromQL has spaces, braces, quotes).
pub fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// GETs `path` and parses its JSON, asserting status 200.
pub fn json(ns: &Netns, port: u16, path: &str) -> serde_json::Value {
    let (status, body) = get(ns, port, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Polls the JSON at `path` until `pred` holds; panics with the last body after `timeout`.
pub fn wait_json(
    ns: &Netns,
    port: u16,
    path: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let v = json(ns, port, path);
        if pred(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}:\n{v:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits up to `wait` for an open finding of `kind` that `pred` accepts, from the agent on
/// `port` in `ns`; panics with the findings it saw when none comes.
pub fn open_finding(
    ns: &Netns,
    port: u16,
    kind: &str,
    wait: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let v = json(ns, port, "/api/v1/findings");
        if let Some(f) = v["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .find(|f| f["kind"] == kind && pred(f))
        {
            return f.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {kind} finding:\n{v:#}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
