//! The listener as an operator exposes it, against the real agent in a namespace:
//! - TLS and basic auth from a node_exporter-style web config: a real Prometheus scrapes over
//!   TLS with basic auth; curl without credentials gets 401, a wrong CA fails the handshake,
//!   plain HTTP to the TLS port fails; bodies and other methods are refused (read-only);
//!   a client that never finishes its handshake is timed out and does not hold up others;
//!   an oversized request head is refused; `limit` is capped.
//! - The status page at `/` in a real headless Chromium, over TLS and auth: a screenshot is
//!   taken and the findings table shows a planted duplicate IP.
//! - The live event stream: filters, resume by Last-Event-ID (from memory and, after a
//!   restart, from the database), a slow reader cut off and counted while the engine keeps
//!   up, and the MAAS neighbour feed from `l2watch events --follow --format maas-netmon`.
//!
//! Every namespace, process and file is removed on drop, also on failure.
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::Command,
    sync::{atomic::AtomicBool, Arc},
    time::{Duration, Instant},
};

use l2watch_tests::{
    agent::Agent,
    frames::{arp, BROADCAST, L2, TPID_8021AD, TPID_8021Q},
    http, l2watch_bin,
    netns::{send_frames, veth_pair, Netns},
    privileged,
    proc::Proc,
    prom::sample,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
const PORT: u16 = 9731;
const PROM_PORT: u16 = 9090;
const USER: &str = "prometheus";
const PASSWORD: &str = "s3cret-scrape";
const MAC_A: [u8; 6] = [2, 0x77, 0, 0, 0, 0xa];
const MAC_B: [u8; 6] = [2, 0x77, 0, 0, 0, 0xb];

fn claim(mac: [u8; 6], ip: [u8; 4], tags: &[(u16, u16)]) -> Vec<u8> {
    let mut l2 = L2::new(mac, BROADCAST);
    for (tpid, vid) in tags {
        l2 = l2.tag(*tpid, *vid);
    }
    arp(&l2, 2, mac, ip, [0; 6], [10, 7, 0, 254]).bytes
}

fn sh_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A CA, a server certificate it signed for 127.0.0.1, and a second CA that signed nothing.
struct Certs {
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn certs(dir: &Path) -> Certs {
    let p = |n: &str| dir.join(n);
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for (name, cn) in [
        ("ca", "l2watch test CA"),
        ("other-ca", "somebody else's CA"),
    ] {
        sh_ok(
            Command::new("openssl")
                .args(["req", "-x509"])
                .args(ec)
                .args(["-days", "2", "-subj", &format!("/CN={cn}"), "-keyout"])
                .arg(p(&format!("{name}.key")))
                .arg("-out")
                .arg(p(&format!("{name}.pem"))),
        );
    }
    sh_ok(
        Command::new("openssl")
            .arg("req")
            .args(ec)
            .args(["-subj", "/CN=127.0.0.1", "-keyout"])
            .arg(p("server.key"))
            .arg("-out")
            .arg(p("server.csr")),
    );
    std::fs::write(
        p("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    sh_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(p("server.csr"))
            .arg("-CA")
            .arg(p("ca.pem"))
            .arg("-CAkey")
            .arg(p("ca.key"))
            .arg("-CAcreateserial")
            .arg("-extfile")
            .arg(p("server.ext"))
            .arg("-out")
            .arg(p("server.pem")),
    );
    Certs {
        ca: p("ca.pem"),
        other_ca: p("other-ca.pem"),
        cert: p("server.pem"),
        key: p("server.key"),
    }
}

/// A client certificate (and key) for `cn`, signed by the CA `ca` (a name in `dir`).
fn client_cert(dir: &Path, ca: &str, cn: &str) -> (PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    let (key, csr, cert) = (
        p(&format!("{cn}.key")),
        p(&format!("{cn}.csr")),
        p(&format!("{cn}.pem")),
    );
    sh_ok(
        Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
            ])
            .args(["-subj", &format!("/CN={cn}"), "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&csr),
    );
    std::fs::write(
        p("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    sh_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(p(&format!("{ca}.pem")))
            .arg("-CAkey")
            .arg(p(&format!("{ca}.key")))
            .arg("-CAcreateserial")
            .arg("-extfile")
            .arg(p("client.ext"))
            .arg("-out")
            .arg(&cert),
    );
    (cert, key)
}

/// The web config: TLS with the test certificate, one user with a bcrypt hash.
fn web_config(dir: &Path, c: &Certs) -> PathBuf {
    let hash = bcrypt::hash(PASSWORD, 8).unwrap();
    let path = dir.join("web-config.yml");
    std::fs::write(
        &path,
        format!(
            "# node_exporter's format\ntls_server_config:\n  cert_file: {}\n  key_file: {}\n\
             http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\n\
             basic_auth_users:\n  {USER}: {hash}\n",
            c.cert.display(),
            c.key.display()
        ),
    )
    .unwrap();
    path
}

/// curl in `ns`: (exit code, HTTP status or 0, body).
fn curl(ns: &Netns, args: &[&str]) -> (i32, u16, String) {
    let out = ns
        .command("curl")
        .args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl (cargo xtask setup installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        out.status.code().unwrap_or(-1),
        code.trim().parse().unwrap_or(0),
        body.to_string(),
    )
}

/// A TCP connection made inside `ns` (the socket stays there whichever thread uses it).
fn connect_in(ns: &Netns, port: u16) -> TcpStream {
    let path = format!("/var/run/netns/{}", ns.name);
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).unwrap();
        // SAFETY: moves only this thread into the namespace.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        TcpStream::connect(("127.0.0.1", port)).expect("connect")
    })
    .join()
    .unwrap()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

fn start(ns: &Netns, args: &[&str]) -> Agent {
    let mut a = Agent::start_with_log(ns, args, "info");
    a.wait_for("ready", WAIT, |v| v["message"] == "ready");
    a
}

/// What the TLS tests share: a directory with the certificates and the web config, and a
/// monitor namespace with a veth to a peer.
struct TlsLab {
    dir: tempfile::TempDir,
    certs: Certs,
    web: PathBuf,
    mon: Netns,
    peer: Netns,
    mon_if: String,
    peer_if: String,
}

fn tls_lab(prefix: &str) -> TlsLab {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(dir.path());
    let web = web_config(dir.path(), &certs);
    let mon = Netns::new(prefix);
    let peer = Netns::new(&format!("{prefix}p"));
    let (mon_if, peer_if) = veth_pair(&mon, &peer);
    TlsLab {
        dir,
        certs,
        web,
        mon,
        peer,
        mon_if,
        peer_if,
    }
}

/// The agent on `mon_if` without a database, serving with the web config `web`.
fn start_tls(mon: &Netns, mon_if: &str, web: &Path, extra: &[&str]) -> Agent {
    let listen = format!("127.0.0.1:{PORT}");
    let web = web.to_str().unwrap();
    let mut args = vec!["run", "--iface", mon_if, "--no-db", "--listen", &listen];
    args.extend(["--web.config.file", web]);
    args.extend(extra);
    start(mon, &args)
}

fn config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("l2watch.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn tls_and_basic_auth_guard_the_listener_and_prometheus_scrapes_through_them() {
    privileged!();
    let TlsLab {
        dir,
        certs: c,
        web,
        mon,
        peer: _peer,
        mon_if,
        ..
    } = tls_lab("tls");

    // A broken web config is refused before anything is attached, naming the key.
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "basic_auth_users:\n  alice: not-a-hash\n").unwrap();
    let out = mon
        .command(l2watch_bin().to_str().unwrap())
        .args(["run", "--iface", &mon_if, "--no-db", "--web.config.file"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("basic_auth_users.alice") && err.contains("htpasswd"),
        "{err}"
    );

    let cfg = config(dir.path(), "[web]\nread_timeout_secs = 2\n");
    let mut agent = start_tls(&mon, &mon_if, &web, &["--config", cfg.to_str().unwrap()]);
    let url = |p: &str| format!("https://127.0.0.1:{PORT}{p}");
    let ca = c.ca.to_str().unwrap();
    let auth = format!("{USER}:{PASSWORD}");

    // No credentials, wrong ones: 401 with a challenge. Right ones: 200, with the headers.
    let (_, code, body) = curl(&mon, &["--cacert", ca, &url("/metrics")]);
    assert_eq!(code, 401, "{body}");
    let (_, code, _) = curl(
        &mon,
        &[
            "--cacert",
            ca,
            "-u",
            "prometheus:wrong",
            &url("/api/v1/devices"),
        ],
    );
    assert_eq!(code, 401);
    let (_, code, _) = curl(&mon, &["--cacert", ca, "-u", "nobody:x", &url("/")]);
    assert_eq!(code, 401);
    let (_, code, head) = curl(
        &mon,
        &[
            "--cacert",
            ca,
            "-u",
            &auth,
            "-D",
            "-",
            "-o",
            "/dev/null",
            &url("/metrics"),
        ],
    );
    assert_eq!(code, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{head}"
    );
    assert!(head.to_ascii_lowercase().contains("www-authenticate") || !head.contains("401"));
    // A CA that did not sign the certificate fails the handshake (curl: 60).
    let (exit, code, _) = curl(
        &mon,
        &[
            "--cacert",
            c.other_ca.to_str().unwrap(),
            "-u",
            &auth,
            &url("/metrics"),
        ],
    );
    assert_eq!((exit, code), (60, 0), "a wrong CA must fail verification");
    // Plain HTTP to the TLS port gets no answer.
    let (exit, code, _) = curl(&mon, &[&format!("http://127.0.0.1:{PORT}/metrics")]);
    assert!(
        exit != 0 && code != 200,
        "plain HTTP on the TLS port: exit {exit} code {code}"
    );

    // Read-only: a body is refused, other methods are not allowed.
    let (_, code, body) = curl(
        &mon,
        &[
            "--cacert",
            ca,
            "-u",
            &auth,
            "-X",
            "POST",
            "-d",
            "x=1",
            &url("/api/v1/findings"),
        ],
    );
    assert_eq!(code, 413, "{body}");
    let (_, code, _) = curl(
        &mon,
        &[
            "--cacert",
            ca,
            "-u",
            &auth,
            "-X",
            "DELETE",
            &url("/api/v1/findings"),
        ],
    );
    assert_eq!(code, 405);
    // Caps on limit, with the range in the message.
    let (_, code, body) = curl(
        &mon,
        &[
            "--cacert",
            ca,
            "-u",
            &auth,
            &url("/api/v1/devices?limit=1000000"),
        ],
    );
    assert_eq!(code, 400);
    assert!(body.contains("1..=100000"), "{body}");
    // An oversized request head is refused.
    let big = format!("X-Big: {}", "a".repeat(40_000));
    let (_, code, _) = curl(
        &mon,
        &["--cacert", ca, "-u", &auth, "-H", &big, &url("/metrics")],
    );
    assert_ne!(code, 200, "a 40 kB header must not be served");

    // A client that connects and sends nothing holds only its own connection: others are
    // served while it waits, and it is closed after the read timeout (2 s here).
    let mut slow = connect_in(&mon, PORT);
    slow.write_all(&[0x16, 0x03, 0x01]).unwrap(); // the first bytes of a ClientHello
    let (_, code, _) = curl(
        &mon,
        &[
            "--cacert",
            ca,
            "-u",
            &auth,
            "-o",
            "/dev/null",
            &url("/healthz"),
        ],
    );
    assert_eq!(code, 200, "served while a slow client is connected");
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 64];
    let n = slow.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the slow client is closed by the server");

    // A real Prometheus scrapes it over TLS with basic auth.
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: l2watch\n    \
             scheme: https\n    tls_config:\n      ca_file: {ca}\n    basic_auth:\n      \
             username: {USER}\n      password: {PASSWORD}\n    static_configs:\n      \
             - targets: ['127.0.0.1:{PORT}']\n"
        ),
    )
    .unwrap();
    let mut cmd = mon.command("prometheus");
    cmd.arg(format!("--config.file={}", prom_cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{PROM_PORT}"))
        .arg("--log.level=warn");
    let _prom = Proc::spawn(cmd, Arc::new(AtomicBool::new(false))).expect("start prometheus");
    let mut last = String::new();
    wait_until("Prometheus to scrape l2watch over TLS", || {
        let Ok((_, body)) = http::try_get(&mon, PROM_PORT, "/api/v1/targets") else {
            return false;
        };
        last = body.clone();
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        v["data"]["activeTargets"].as_array().is_some_and(|t| {
            t.iter().any(|t| {
                t["health"] == "up"
                    && t["scrapeUrl"]
                        .as_str()
                        .is_some_and(|u| u.starts_with("https://"))
            })
        })
    });
    let (_, body) = http::get(&mon, PROM_PORT, "/api/v1/query?query=l2watch_build_info");
    assert!(body.contains("\"version\""), "{body}; targets: {last}");

    // The refusals were counted.
    let (_, _, metrics) = curl(&mon, &["--cacert", ca, "-u", &auth, &url("/metrics")]);
    let m = |name: &str| sample(&metrics, name, &[]).unwrap_or(0.0);
    assert!(m("l2watch_http_auth_failures_total") >= 3.0, "{metrics}");
    assert!(m("l2watch_http_tls_handshake_failures_total") >= 2.0);
    assert!(m("l2watch_http_timeouts_total") >= 1.0);
    assert!(m("l2watch_http_requests_refused_total") >= 1.0);

    // Mutual TLS: with client_auth_type RequireAndVerifyClientCert, only a client certificate
    // signed by client_ca_file gets through the handshake.
    agent.stop(WAIT);
    let (good_cert, good_key) = client_cert(dir.path(), "ca", "rack-client");
    let (bad_cert, bad_key) = client_cert(dir.path(), "other-ca", "stranger");
    let mtls = dir.path().join("mtls.yml");
    std::fs::write(
        &mtls,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {ca}\n",
            c.cert.display(),
            c.key.display()
        ),
    )
    .unwrap();
    let _agent = start_tls(&mon, &mon_if, &mtls, &[]);
    let with_cert = |cert: Option<(&PathBuf, &PathBuf)>| {
        let mut args = vec!["--cacert".to_string(), ca.to_string()];
        if let Some((c, k)) = cert {
            args.extend(["--cert".into(), c.display().to_string()]);
            args.extend(["--key".into(), k.display().to_string()]);
        }
        args.push(url("/healthz"));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(&mon, &refs)
    };
    let (exit, code, _) = with_cert(None);
    assert!(
        exit != 0 && code != 200,
        "no client certificate: exit {exit}, code {code}"
    );
    let (exit, code, _) = with_cert(Some((&bad_cert, &bad_key)));
    assert!(
        exit != 0 && code != 200,
        "a certificate from another CA: exit {exit}, code {code}"
    );
    let (_, code, body) = with_cert(Some((&good_cert, &good_key)));
    assert_eq!(code, 200, "{body}");
}

#[test]
fn the_status_page_in_headless_chromium_shows_a_planted_duplicate_ip_over_tls_and_auth() {
    privileged!();
    let TlsLab {
        dir,
        certs: c,
        web,
        mon,
        peer,
        mon_if,
        peer_if,
    } = tls_lab("page");
    let _agent = start_tls(&mon, &mon_if, &web, &[]);
    // Two MACs claim 10.7.0.9 in turn (A B A B): both alive, a duplicate IP.
    for mac in [MAC_A, MAC_B, MAC_A, MAC_B] {
        send_frames(&peer, &peer_if, &[claim(mac, [10, 7, 0, 9], &[])]);
        std::thread::sleep(Duration::from_millis(300));
    }
    let ca = c.ca.to_str().unwrap();
    let auth = format!("{USER}:{PASSWORD}");
    wait_until("the duplicate_ip finding", || {
        let (_, code, body) = curl(
            &mon,
            &[
                "--cacert",
                ca,
                "-u",
                &auth,
                &format!("https://127.0.0.1:{PORT}/api/v1/findings"),
            ],
        );
        code == 200 && body.contains("duplicate_ip")
    });

    // Kept after the test, for a look: target/tmp/status-page.png.
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let profile = dir.path().join("chromium-profile");
    let chromium = |extra: &[&str]| {
        let out = mon
            .command("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--ignore-certificate-errors",
                "--window-size=1280,900",
                "--virtual-time-budget=3000",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(format!("https://{auth}@127.0.0.1:{PORT}/"))
            .env("HOME", dir.path())
            .output()
            .expect("chromium (cargo xtask setup installs it)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, dom, err) = chromium(&["--dump-dom"]);
    assert!(ok, "chromium failed: {err}");
    let table = dom
        .split("id=\"findings-table\"")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap_or_else(|| panic!("no findings table in the page:\n{dom}\n{err}"));
    assert!(table.contains("duplicate_ip"), "{table}");
    assert!(table.contains("10.7.0.9"), "{table}");
    assert!(
        dom.contains("l2watch ") && dom.contains("href=\"/metrics\""),
        "{dom}"
    );
    assert!(
        dom.contains("id=\"dhcp\"")
            && dom.contains("id=\"devices-table\"")
            && dom.contains("id=\"agent-table\"")
    );
    assert!(!dom.contains("<script"), "no JavaScript on the page");
    let (ok, _, err) = chromium(&[&format!("--screenshot={}", shot.display())]);
    assert!(ok, "chromium screenshot failed: {err}");
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    eprintln!("status page screenshot: {}", shot.display());
}

/// Reads server-sent events from a stream opened in `ns`: (id, event, data) per event, until
/// `n` arrive or the deadline passes.
fn sse_events(
    s: &mut BufReader<TcpStream>,
    n: usize,
    within: Duration,
) -> Vec<(u64, String, Value)> {
    s.get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let (mut id, mut ev, mut data) = (0, String::new(), String::new());
    let mut line = String::new();
    while out.len() < n && Instant::now() < deadline {
        line.clear();
        match s.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => continue,
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            if !data.is_empty() {
                out.push((
                    id,
                    std::mem::take(&mut ev),
                    serde_json::from_str(&data).unwrap(),
                ));
                data.clear();
            }
        } else if let Some(v) = l.strip_prefix("id: ").or_else(|| l.strip_prefix("id:")) {
            id = v.trim().parse().unwrap();
        } else if let Some(v) = l
            .strip_prefix("event: ")
            .or_else(|| l.strip_prefix("event:"))
        {
            ev = v.trim().to_string();
        } else if let Some(v) = l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")) {
            data.push_str(v);
        }
    }
    out
}

/// Opens the stream with `query` and optional Last-Event-ID; past the response head.
fn open_stream(ns: &Netns, query: &str, last: Option<u64>) -> BufReader<TcpStream> {
    let mut s = connect_in(ns, PORT);
    let last = last.map_or(String::new(), |l| format!("Last-Event-ID: {l}\r\n"));
    write!(s, "GET /api/v1/events/stream{query} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n{last}\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    r.read_line(&mut line).unwrap();
    assert!(line.contains(" 200 "), "stream answered {line}");
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    r
}

#[test]
fn the_event_stream_filters_resumes_cuts_off_slow_readers_and_feeds_maas() {
    privileged!();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("l2watch.db");
    let cfg = config(dir.path(), "[web]\nstream_buffer = 64\n");
    let mon = Netns::new("sse");
    let peer = Netns::new("ssep");
    let (mon_if, peer_if) = veth_pair(&mon, &peer);
    let args = [
        "run",
        "--iface",
        &mon_if,
        "--db",
        db.to_str().unwrap(),
        "--flush-interval",
        "200ms",
        "--listen",
        &format!("127.0.0.1:{PORT}"),
        "--config",
        cfg.to_str().unwrap(),
        "--refresh",
        "1s",
    ];
    let mut agent = start(&mon, &args);
    let api = format!("http://127.0.0.1:{PORT}");
    let follow = |extra: &[&str]| {
        let mut cmd = mon.command(l2watch_bin().to_str().unwrap());
        cmd.args(["events", "--follow", "--api", &api]).args(extra);
        Proc::spawn(cmd, Arc::new(AtomicBool::new(false))).expect("events --follow")
    };
    // MAAS's feed through the shipped shim, as MAAS runs it: `maas-netmon IFNAME`.
    let mut maas = {
        let shim = l2watch_tests::workspace_root().join("deploy/maas/maas-netmon");
        let mut cmd = mon.command(shim.to_str().unwrap());
        cmd.arg(&mon_if)
            .env("L2WATCH_BIN", l2watch_bin())
            .env("L2WATCH_API", &api);
        Proc::spawn(cmd, Arc::new(AtomicBool::new(false))).expect("deploy/maas/maas-netmon")
    };
    let mut moved_only = follow(&["--kind", "arp_moved", "--format", "json"]);
    let mut all = open_stream(&mon, "", None);
    let mut vlan100 = open_stream(&mon, "?vlan=100", None);
    // Let the followers connect before anything happens.
    wait_until("four readers", || {
        let (_, m) = http::get(&mon, PORT, "/metrics");
        sample(&m, "l2watch_event_stream_readers", &[]) == Some(4.0)
    });

    // A on 10.7.0.1 (VLAN 100), a probe (0.0.0.0, never in the feed), B takes 10.7.0.1,
    // and a QinQ binding (outer 200, inner 300).
    send_frames(
        &peer,
        &peer_if,
        &[claim(MAC_A, [10, 7, 0, 1], &[(TPID_8021Q, 100)])],
    );
    std::thread::sleep(Duration::from_millis(300));
    let probe = arp(
        &L2::new(MAC_A, BROADCAST),
        1,
        MAC_A,
        [0; 4],
        [0; 6],
        [10, 7, 0, 2],
    )
    .bytes;
    send_frames(&peer, &peer_if, &[probe]);
    send_frames(
        &peer,
        &peer_if,
        &[claim(MAC_B, [10, 7, 0, 1], &[(TPID_8021Q, 100)])],
    );
    std::thread::sleep(Duration::from_millis(300));
    send_frames(
        &peer,
        &peer_if,
        &[claim(
            MAC_A,
            [10, 9, 0, 1],
            &[(TPID_8021AD, 200), (TPID_8021Q, 300)],
        )],
    );

    let evs = sse_events(&mut all, 4, WAIT);
    let kinds: Vec<&str> = evs.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(
        kinds,
        ["arp_new", "arp_probe", "arp_moved", "arp_new"],
        "{evs:?}"
    );
    assert!(
        evs.windows(2).all(|w| w[0].0 < w[1].0),
        "ids increase: {evs:?}"
    );
    let moved = evs.iter().find(|e| e.1 == "arp_moved").unwrap();
    assert_eq!(moved.2["detail"]["previous_mac"], "02:77:00:00:00:0a");
    let v100 = sse_events(&mut vlan100, 2, WAIT);
    assert_eq!(v100.len(), 2);
    assert!(v100.iter().all(|e| e.2["vlan"] == "100"), "{v100:?}");

    // The MAAS feed: NEW, MOVED with previous_mac, QinQ under the outer VID; fields exact.
    let mut lines = Vec::new();
    for _ in 0..3 {
        let l = maas.wait_for_line("\"event\"", WAIT).unwrap();
        lines.push(serde_json::from_str::<Value>(&l).unwrap_or_else(|e| panic!("{e}: {l}")));
    }
    fn shape(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort();
        k
    }
    assert_eq!(lines[0]["event"], "NEW");
    assert_eq!(lines[0]["vid"], 100);
    assert_eq!(lines[0]["ip"], "10.7.0.1");
    assert_eq!(lines[0]["mac"], "02:77:00:00:00:0a");
    assert!(lines[0]["time"].is_u64());
    assert_eq!(shape(&lines[0]), ["event", "ip", "mac", "time", "vid"]);
    assert_eq!(lines[1]["event"], "MOVED");
    assert_eq!(lines[1]["previous_mac"], "02:77:00:00:00:0a");
    assert_eq!(
        shape(&lines[1]),
        ["event", "ip", "mac", "previous_mac", "time", "vid"]
    );
    assert_eq!(
        (lines[2]["event"].as_str(), lines[2]["vid"].as_u64()),
        (Some("NEW"), Some(200))
    );
    let moved_line = moved_only.wait_for_line("arp_moved", WAIT).unwrap();
    assert!(moved_line.contains("10.7.0.1"));

    // B again after the 1 s kernel refresh: the stream carries arp_refreshed, and the MAAS
    // feed stays quiet (REFRESHED at most once per 600 s per binding).
    std::thread::sleep(Duration::from_millis(1_500));
    send_frames(
        &peer,
        &peer_if,
        &[claim(MAC_B, [10, 7, 0, 1], &[(TPID_8021Q, 100)])],
    );
    let r = sse_events(&mut all, 1, WAIT);
    assert_eq!(
        r.first().map(|e| e.1.as_str()),
        Some("arp_refreshed"),
        "{r:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let out = maas.output();
    assert_eq!(
        out.matches("\"event\"").count(),
        3,
        "no REFRESHED within 600 s:\n{out}"
    );
    assert!(
        !moved_only.output().contains("arp_new"),
        "--kind arp_moved lets only moves through"
    );

    // Resume from memory: after the first event's id, everything after it, in order.
    let first = evs[0].0;
    let mut resumed = open_stream(&mon, "", Some(first));
    let again = sse_events(&mut resumed, 4, WAIT);
    assert_eq!(
        again.iter().map(|e| e.0).collect::<Vec<_>>(),
        [evs[1].0, evs[2].0, evs[3].0, r[0].0]
    );

    // A reader that reads nothing falls behind and is cut off; the engine keeps up.
    let slow = connect_in(&mon, PORT);
    // SAFETY: a plain setsockopt on our own socket.
    unsafe {
        let small: libc::c_int = 2048;
        libc::setsockopt(
            slow.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &small as *const _ as *const libc::c_void,
            4,
        );
    }
    (&slow)
        .write_all(b"GET /api/v1/events/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let storm: Vec<Vec<u8>> = (0..20_000u32)
        .map(|i| {
            let mac = [2, 0x55, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
            claim(mac, [10, 20, (i >> 8) as u8, i as u8], &[(TPID_8021Q, 300)])
        })
        .collect();
    send_frames(&peer, &peer_if, &storm);
    wait_until("the slow reader cut off and every station learnt", || {
        let (_, m) = http::get(&mon, PORT, "/metrics");
        let cut = sample(&m, "l2watch_event_stream_cut_off_total", &[]).unwrap_or(0.0);
        let (_, d) = http::get(&mon, PORT, "/api/v1/devices?vlan=300&limit=100000");
        let v: Value = serde_json::from_str(&d).unwrap_or_default();
        cut >= 1.0 && v["total"] == 20_000
    });
    drop(slow);

    // Restart: ids go on after the stored ones, and a resume older than memory is served
    // from the database.
    drop((all, vlan100, resumed));
    agent.stop(WAIT);
    let _agent = start(&mon, &args);
    let mut from_db = open_stream(&mon, "?kind=arp_moved,arp_new&vlan=100", Some(0));
    let stored = sse_events(&mut from_db, 2, WAIT);
    assert_eq!(
        stored
            .iter()
            .map(|e| (e.0, e.1.as_str()))
            .collect::<Vec<_>>(),
        [
            (
                evs.iter()
                    .find(|e| e.1 == "arp_new" && e.2["vlan"] == "100")
                    .unwrap()
                    .0,
                "arp_new"
            ),
            (moved.0, "arp_moved")
        ],
        "{stored:?}"
    );
    send_frames(
        &peer,
        &peer_if,
        &[claim(MAC_A, [10, 7, 0, 77], &[(TPID_8021Q, 100)])],
    );
    let fresh = sse_events(&mut from_db, 1, WAIT);
    assert!(
        fresh[0].0 > moved.0 + 20_000,
        "ids continue after the stored ones: {fresh:?}"
    );
}
