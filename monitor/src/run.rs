//! Live mode, the agent's composition root: load the program, attach it to the interfaces,
//! feed the ring buffer and the kernel's pending maps into the pipeline on a dedicated ingest
//! thread, serve metrics and the API, follow the interfaces as they go down, disappear and
//! come back, reload the configuration on SIGHUP, and detach cleanly when the shutdown token
//! fires. Every task runs in one supervised set (`supervise`): one that fails clears
//! readiness and ends the process with an error.
use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use monitor_common::{Counter, SegmentCounters, Stat, NO_VLAN};
use tokio::io::unix::AsyncFd;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::{
    capture::{decode, probe::Pending, Probe, ProbeError},
    config::{Config, ConfigError},
    engine::Engine,
    export::{api, Link, Shared},
    links,
    model::{wall_clock, Nanos},
    pipeline::Pipeline,
    store::{Caps, OpenNote, Store, StoreError, Writer},
    supervise::Supervisor,
};

/// Re-reads the configuration (file plus flags) for SIGHUP.
pub type Reload = Box<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// How long the tasks get to stop after shutdown (the last store batch is written in it).
const STOP_GRACE: Duration = Duration::from_secs(30);
/// How long a failed agent keeps answering /readyz with 503 before it exits.
const NOT_READY_GRACE: Duration = Duration::from_secs(1);
/// Least time between two ring-buffer drains.
const MIN_DRAIN_GAP: Duration = Duration::from_millis(2);
/// Ring-buffer records fed to the engine per lock hold, so the API is never locked out long.
const INGEST_BATCH: usize = 4_096;
/// How often monitored interfaces are checked for down, gone and back besides the kernel's
/// link events, which say so at once.
const LINK_POLL: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("no interface to monitor: auto mode found no up, non-loopback Ethernet interface; pass --iface IF")]
    NoInterface,
    #[error("cannot watch the ring buffer: {0}")]
    Poll(#[source] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("draining the kernel's pending maps failed: {0}")]
    Pending(#[source] std::io::Error),
    #[error("the {0} task failed: {1}")]
    Task(&'static str, String),
    #[error(
        "cannot listen on {addr}: {source}; pass --listen ADDR:PORT (or set listen in the config)"
    )]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Web(#[from] crate::export::web::WebConfigError),
}

/// Opens the database and restores the engine from it.
fn open_store(cfg: &Config) -> Result<(Engine, Option<(Writer, PathBuf)>), RunError> {
    // The live stream's outbox holds a batch's events until the ingest thread publishes them.
    let engine = Engine::new(cfg.engine.clone()).with_stream(crate::pipeline::JOURNAL_EVENTS);
    if !cfg.database.enabled {
        info!("no database: state lives in memory only");
        return Ok((engine, None));
    }
    let path = &cfg.database.path;
    let (store, note) = Store::open(path)?;
    match &note {
        OpenNote::MovedAside { reason, aside } => warn!(
            path = %path.display(),
            aside = %aside.display(),
            reason = %reason,
            "database was corrupt: moved it aside and started a new one"
        ),
        OpenNote::Migrated { from, to } => {
            info!(path = %path.display(), from, to, "database schema migrated")
        }
        OpenNote::Created | OpenNote::Opened => {}
    }
    let caps = Caps::of(&cfg.engine);
    let (restored, skipped) = store.load(caps)?;
    info!(
        path = %path.display(),
        devices = restored.devices.len(),
        dhcp_servers = restored.servers.len(),
        open_findings = restored.open_findings.len(),
        skipped_rows = skipped,
        "database open; state restored"
    );
    let mut engine = engine.with_journal(crate::pipeline::JOURNAL_EVENTS);
    engine.restore(restored);
    let writer = Writer::spawn(store, cfg.database.retention.clone(), caps, wall_clock);
    Ok((engine, Some((writer, path.clone()))))
}

/// The interfaces to monitor: the configured ones, or every up Ethernet interface.
fn interfaces(cfg: &Config) -> Result<Vec<String>, RunError> {
    if !cfg.interfaces.is_empty() {
        return Ok(cfg.interfaces.clone());
    }
    let d = links::discover(std::path::Path::new("/sys/class/net"));
    for (name, why) in &d.skipped {
        info!(iface = %name, reason = why, "auto mode: not monitoring");
    }
    if d.chosen.is_empty() {
        return Err(RunError::NoInterface);
    }
    info!(interfaces = %d.chosen.join(","), "auto mode: monitoring every up Ethernet interface");
    Ok(d.chosen)
}

/// Runs until `shutdown` is cancelled. Programs are detached when this returns.
pub async fn run(cfg: Config, reload: Reload, shutdown: CancellationToken) -> Result<(), RunError> {
    // First: a SIGHUP before the handler exists would terminate the process.
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(RunError::Poll)?;
    // The web config before anything is attached: a bad one is an error at once.
    let web = Arc::new(match cfg.web.file() {
        Some(path) => crate::export::web::Web::load(path)?,
        None => crate::export::web::Web::plain(),
    });
    let ifaces = interfaces(&cfg)?;
    let (engine, writer) = open_store(&cfg)?;
    let (writer, db) = match writer {
        Some((w, p)) => (Some(w), Some(p)),
        None => (None, None),
    };
    let mut probe = Probe::load(&cfg.kernel.probe_config(true))?;
    let mut attached = BTreeMap::new();
    let ifaces_by_index = crate::links::IfaceNames::default();
    for iface in &ifaces {
        let mode = probe.attach(iface)?;
        let ifindex = links::ifindex(iface).unwrap_or(0);
        info!(iface = %iface, ifindex, mode = mode.name(), "attached XDP program");
        ifaces_by_index.insert(ifindex, iface);
        attached.insert(
            ifindex,
            Link {
                name: iface.clone(),
                mode: Some(mode),
            },
        );
    }
    let logger = kernel_log(&mut probe, shutdown.clone());
    let events = probe
        .take_events()
        .ok_or(ProbeError::Missing("ring buffer"))?;
    let pending = probe
        .take_pending()
        .ok_or(ProbeError::Missing("pending maps"))?;
    let shared = Arc::new(
        Shared::new(
            engine,
            probe,
            db,
            writer.as_ref().map(|w| w.stats.clone()),
            cfg.metrics.clone(),
            ifaces_by_index,
        )
        .with_hub(crate::export::stream::EventHub::new(
            cfg.web.stream_buffer,
            cfg.web.stream_replay,
            cfg.web.max_streams,
        )),
    );
    *shared.links.write().expect("links lock") = attached;

    if web.http2_requested {
        info!("http_server_config.http2 is set: l2watch serves HTTP/1.1 only, which every client speaks");
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: cfg.listen,
            source,
        })?;
    info!(
        listen = %cfg.listen,
        tls = web.tls.is_some(),
        basic_auth = web.auth.is_some(),
        "serving /, /metrics, /api/v1, /healthz and /readyz"
    );

    // Every task in one supervised set: one that ends before shutdown stops the agent.
    let mut tasks = Supervisor::new(shutdown.clone());
    {
        let app = crate::export::serve::front(
            api::router(shared.clone()),
            web.clone(),
            shared.http.clone(),
        );
        let stop = shutdown.clone();
        let limits = cfg.web.limits();
        let stats = shared.http.clone();
        tasks.spawn(
            "http",
            crate::export::serve::serve(listener, app, web, limits, stats, stop),
        );
    }
    {
        let shared = shared.clone();
        let timers = Timers {
            summary: cfg.stats_interval(),
            drain: cfg.pending_drain(),
        };
        let flush = cfg.flush_interval();
        tasks.spawn_thread("ingest", move |stop| {
            let pipeline = Pipeline::new(writer, flush);
            ingest(events, pending, &shared, pipeline, timers, stop).map_err(|e| e.to_string())
        });
    }
    tasks.spawn(
        "links",
        watch_links(shared.clone(), ifaces.clone(), shutdown.clone()),
    );
    if let Some(l) = logger {
        tasks.spawn("kernel-log", l);
    }
    shared.ready.store(true, Ordering::Relaxed);
    info!(interfaces = ifaces.len(), "ready");

    let mut current = cfg;
    let mut failure = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            f = tasks.failed() => {
                shared.ready.store(false, Ordering::Relaxed);
                tracing::error!(task = f.task, error = %f.reason, "task failed: not ready; stopping");
                failure = Some(RunError::Task(f.task, f.reason));
                // Answer /readyz with 503 for a moment, so probes see why, then stop.
                tokio::time::sleep(NOT_READY_GRACE).await;
                shutdown.cancel();
                break;
            }
            _ = hup.recv() => apply_reload(&shared, &reload, &mut current),
        }
    }
    shared.ready.store(false, Ordering::Relaxed);
    let stuck = tasks.drain(STOP_GRACE).await;
    if stuck > 0 {
        warn!(tasks = stuck, "tasks did not stop in time");
    }
    drop(shared);
    if let Some(e) = failure {
        return Err(e);
    }
    info!(interfaces = ifaces.len(), "detached; bye");
    Ok(())
}

/// SIGHUP: re-reads the configuration and applies what can change without a restart.
fn apply_reload(shared: &Shared, reload: &Reload, current: &mut Config) {
    let new = match reload() {
        Ok(c) => c,
        Err(e) => {
            shared.reload_errors.fetch_add(1, Ordering::Relaxed);
            warn!(error = %e, "configuration reload refused; the running configuration stays");
            return;
        }
    };
    let (new, restart) = current.reloadable(new);
    let rebuilt = shared
        .engine
        .lock()
        .expect("engine lock")
        .reconfigure(&new.engine);
    *shared.metrics.write().expect("metrics lock") = new.metrics.clone();
    let kernel = new.kernel.probe_config(true);
    if let Err(e) = shared.probe.lock().expect("probe lock").configure(&kernel) {
        warn!(error = %e, "kernel settings not applied");
    }
    shared.reloads.fetch_add(1, Ordering::Relaxed);
    // Detectors whose settings did not change keep their windows.
    let rebuilt = rebuilt.join(",");
    if restart.is_empty() {
        info!(detectors_restarted = %rebuilt, "configuration reloaded");
    } else {
        warn!(
            detectors_restarted = %rebuilt,
            needs_restart = %restart.join(","),
            "configuration reloaded; these settings take effect on restart"
        );
    }
    *current = new;
}

/// Follows the monitored interfaces: logs when one goes down or comes up, and reattaches
/// when one that disappeared comes back (under a new ifindex, as a re-created device does).
async fn watch_links(
    shared: Arc<Shared>,
    ifaces: Vec<String>,
    shutdown: CancellationToken,
) -> crate::supervise::TaskResult {
    use futures_util::{FutureExt as _, StreamExt as _};
    use netlink_sys::AsyncSocket as _;
    let mut up: BTreeMap<String, bool> = ifaces.iter().map(|n| (n.clone(), true)).collect();
    // The kernel's link events (RTNLGRP_LINK, through rtnetlink): an interface going down,
    // coming up, disappearing or re-created is seen at once. A slow poll stays as a safety
    // net (a multicast message lost to a full socket buffer) and retries a failed reattach.
    let (mut conn, _handle, mut messages) =
        rtnetlink::new_connection().map_err(|e| format!("cannot open rtnetlink: {e}"))?;
    conn.socket_mut()
        .socket_mut()
        .bind(&netlink_sys::SocketAddr::new(
            0,
            rtnetlink::constants::RTMGRP_LINK,
        ))
        .map_err(|e| format!("cannot subscribe to link events (RTNLGRP_LINK): {e}"))?;
    let conn = tokio::spawn(conn);
    let mut tick = tokio::time::interval(LINK_POLL);
    let result = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            m = messages.next() => if m.is_none() {
                break Err("the rtnetlink link-event socket closed".to_string());
            },
            _ = tick.tick() => {}
        }
        // A flap comes as a burst of messages: one pass over the interfaces for all of them.
        while let Some(Some(_)) = messages.next().now_or_never() {}
        for _ in 0..3 {
            if !reconcile_links(&shared, &ifaces, &mut up) {
                break;
            }
        }
    };
    conn.abort();
    result
}

/// Compares the monitored interfaces with the kernel's: logs up and down, detaches what went
/// away, reattaches what came back. Returns true when another pass is needed (a device was
/// replaced under its name: detached now, attached on the next pass).
fn reconcile_links(shared: &Shared, ifaces: &[String], up: &mut BTreeMap<String, bool>) -> bool {
    let mut again = false;
    for name in ifaces {
        let now_idx = links::ifindex(name);
        let known = shared
            .links
            .read()
            .expect("links lock")
            .iter()
            .find(|(_, l)| &l.name == name)
            .map(|(i, l)| (*i, l.mode));
        match (known, now_idx) {
            // Still there under the same index: only up/down can change.
            (Some((idx, Some(_))), Some(now)) if idx == now => {
                let is_up = links::is_up(name);
                if up.insert(name.clone(), is_up) != Some(is_up) {
                    if is_up {
                        info!(iface = %name, "interface up again; program still attached");
                    } else {
                        warn!(iface = %name, "interface down; program stays attached");
                    }
                }
            }
            // Gone, or replaced by a new device of the same name.
            (Some((idx, Some(_))), now) => {
                warn!(iface = %name, ifindex = idx, "interface gone; will reattach when it comes back");
                shared.probe.lock().expect("probe lock").detach(name);
                let mut l = shared.links.write().expect("links lock");
                if let Some(link) = l.get_mut(&idx) {
                    link.mode = None;
                }
                drop(l);
                if now.is_some() {
                    // Replaced: the next pass reattaches it.
                    again = true;
                    continue;
                }
            }
            // Detached and back: attach again.
            (Some((idx, None)), Some(now)) => {
                let res = shared.probe.lock().expect("probe lock").attach(name);
                match res {
                    Ok(mode) => {
                        shared.ifaces.insert(now, name);
                        let mut l = shared.links.write().expect("links lock");
                        l.remove(&idx);
                        l.insert(
                            now,
                            Link {
                                name: name.clone(),
                                mode: Some(mode),
                            },
                        );
                        drop(l);
                        up.insert(name.clone(), links::is_up(name));
                        info!(iface = %name, ifindex = now, mode = mode.name(), "interface back; reattached XDP program");
                    }
                    Err(e) => {
                        warn!(iface = %name, error = %e, "interface back but reattach failed; retrying")
                    }
                }
            }
            _ => {}
        }
    }

    again
}

/// Forwards aya-log records from the kernel program to tracing; None when the program has
/// no log buffer to read.
fn kernel_log(
    probe: &mut Probe,
    shutdown: CancellationToken,
) -> Option<impl std::future::Future<Output = crate::supervise::TaskResult>> {
    let logger = match aya_log::EbpfLogger::init(probe.ebpf_mut()) {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "kernel log forwarding unavailable");
            return None;
        }
    };
    // SAFETY: the logger owns its ring-buffer fd and keeps it open while the AsyncFd lives.
    let mut fd =
        match unsafe { AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE) } {
            Ok(fd) => fd,
            Err(e) => {
                warn!(error = %e, "kernel log forwarding unavailable");
                return None;
            }
        };
    Some(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                guard = fd.readable_mut() => match guard {
                    Ok(mut g) => {
                        g.get_inner_mut().flush();
                        g.clear_ready();
                    }
                    Err(e) => return Err(format!("kernel log poll: {e}")),
                },
            }
        }
    })
}

/// How often the ingest thread does what it does besides reading the ring buffer (the
/// pipeline keeps its own tick and flush cadence).
struct Timers {
    /// Summary lines.
    summary: Duration,
    /// Drains of the kernel's pending maps: what the token bucket held back reaches the
    /// device table within this.
    drain: Duration,
}

/// The live source of the pipeline, on its own thread: waits for the ring buffer (or the next
/// timer), feeds every record to the pipeline in batches, drains the kernel's pending maps,
/// moves the pipeline's clock (findings tick, store flush), and logs a summary per interval.
/// Nothing here logs per event above debug.
fn ingest(
    mut ring: RingBuf<MapData>,
    mut pending: Pending,
    shared: &Shared,
    mut pipeline: Pipeline,
    timers: Timers,
    shutdown: &CancellationToken,
) -> Result<(), RunError> {
    use std::os::fd::AsRawFd as _;
    use std::time::Instant;
    let fd = ring.as_raw_fd();
    let start = Instant::now();
    let mut next_pending = start + timers.drain;
    let mut next_summary = start + timers.summary;
    let mut summary = Summary::new(shared);
    // A test hook: the supervision test makes the ingest fail on purpose.
    let fail_hook = std::env::var_os("L2WATCH_TEST_FAIL_INGEST_AFTER_MS")
        .and_then(|v| v.to_str()?.parse::<u64>().ok())
        .map(|ms| start + Duration::from_millis(ms));
    while !shutdown.is_cancelled() {
        let now = Instant::now();
        // The pipeline's own timers (findings tick, store flush) are at most a second apart.
        let due = next_pending
            .min(next_summary)
            .min(now + Duration::from_millis(100));
        let wait = due.saturating_duration_since(now);
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; the ring buffer keeps the fd open.
        let rc = unsafe { libc::poll(&mut pfd, 1, wait.as_millis() as i32) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(RunError::Poll(e));
            }
        }
        summary.events += drain_ring(&mut ring, shared, &mut pipeline);
        // A trickle of events would wake this thread for each one; a short pause after a
        // drain gathers the next ones into one batch (state lags by at most this).
        std::thread::sleep(MIN_DRAIN_GAP);
        let now = Instant::now();
        if now >= next_pending {
            summary.pending += drain_pending(&mut pending, shared, &mut pipeline)?;
            next_pending = now + timers.drain;
        }
        let wall = wall_clock();
        if pipeline.due(wall) {
            let mut engine = shared.engine.lock().expect("engine lock");
            pipeline.advance(&mut engine, wall);
        }
        if now >= next_summary {
            summary.log(shared);
            log_counters(shared);
            next_summary = now + timers.summary;
        }
        if fail_hook.is_some_and(|t| now >= t) {
            return Err(RunError::Task(
                "ingest",
                "failed on purpose (test hook)".into(),
            ));
        }
    }
    // Whatever arrived before shutdown is still reported and stored.
    drain_ring(&mut ring, shared, &mut pipeline);
    drain_pending(&mut pending, shared, &mut pipeline)?;
    summary.log(shared);
    let mut engine = shared.engine.lock().expect("engine lock");
    pipeline.finish(&mut engine);
    Ok(())
}

/// What the summary line reports: counts over the last interval.
struct Summary {
    since: std::time::Instant,
    events: u64,
    pending: u64,
    last_engine: crate::engine::EngineStats,
    last_stats: Vec<u64>,
}

impl Summary {
    fn new(shared: &Shared) -> Summary {
        Summary {
            since: std::time::Instant::now(),
            events: 0,
            pending: 0,
            last_engine: shared.engine.lock().expect("engine lock").stats(),
            last_stats: kernel_stats(shared),
        }
    }

    /// One INFO line: bindings learnt and moved, DHCP messages, what the kernel held back or
    /// lost, and the table's size, since the last line.
    fn log(&mut self, shared: &Shared) {
        let (e, devices, open) = {
            let eng = shared.engine.lock().expect("engine lock");
            (eng.stats(), eng.table().len(), eng.open_findings().len())
        };
        let k = kernel_stats(shared);
        let d = |s: Stat| {
            let i = s.index();
            k.get(i).copied().unwrap_or(0) - self.last_stats.get(i).copied().unwrap_or(0)
        };
        let lost = d(Stat::ArpPendingFull)
            + d(Stat::DhcpPendingFull)
            + d(Stat::DhcpRateLimited).saturating_sub(d(Stat::DhcpDeferred));
        info!(
            target: "l2watch::summary",
            secs = self.since.elapsed().as_secs_f64().round() as u64,
            learnt = e.devices_learnt - self.last_engine.devices_learnt,
            moved = e.mac_moves - self.last_engine.mac_moves,
            dhcp = e.dhcp_observations - self.last_engine.dhcp_observations,
            events = self.events,
            deferred = d(Stat::ArpDeferred) + d(Stat::DhcpDeferred),
            drained = self.pending,
            lost,
            evicted = e.device_evictions - self.last_engine.device_evictions,
            devices,
            open_findings = open,
            "summary"
        );
        self.since = std::time::Instant::now();
        self.events = 0;
        self.pending = 0;
        self.last_engine = e;
        self.last_stats = k;
    }
}

fn kernel_stats(shared: &Shared) -> Vec<u64> {
    shared
        .probe
        .lock()
        .expect("probe lock")
        .stats()
        .unwrap_or_default()
}

/// Feeds every waiting ring-buffer record to the pipeline, a batch per engine lock hold;
/// returns how many records it read.
fn drain_ring(ring: &mut RingBuf<MapData>, shared: &Shared, pipeline: &mut Pipeline) -> u64 {
    let mut total = 0;
    loop {
        let clock = Clock::now();
        let mut engine = shared.engine.lock().expect("engine lock");
        let mut n = 0;
        let mut last_ktime = None;
        let mut names = shared.ifaces.batch();
        while n < INGEST_BATCH {
            let Some(item) = ring.next() else { break };
            n += 1;
            match decode(&item) {
                Ok(ev) => {
                    let h = ev.header();
                    last_ktime = Some(h.ktime_ns);
                    let iface = names.resolve(h.ifindex);
                    if !pipeline.feed(&mut engine, &ev, iface, clock.at(h.ktime_ns), false) {
                        shared.undecodable.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    let n = shared.undecodable.fetch_add(1, Ordering::Relaxed) + 1;
                    warn!(error = %e, undecodable = n, "undecodable ring-buffer record");
                }
            }
        }
        let out = engine.take_stream();
        drop(engine);
        shared.hub.publish(out);
        total += n as u64;
        if let Some(k) = last_ktime {
            shared
                .lag_ns
                .store(monotonic_coarse_ns().saturating_sub(k), Ordering::Relaxed);
        }
        if n < INGEST_BATCH {
            return total;
        }
    }
}

/// Takes what the kernel held back out of its pending maps and feeds it to the pipeline.
fn drain_pending(
    pending: &mut Pending,
    shared: &Shared,
    pipeline: &mut Pipeline,
) -> Result<u64, RunError> {
    let clock = Clock::now();
    let mut names = shared.ifaces.batch();
    let mut engine = shared.engine.lock().expect("engine lock");
    let n = pending
        .drain(|ev| {
            let h = ev.header();
            let iface = names.resolve(h.ifindex);
            if !pipeline.feed(&mut engine, &ev, iface, clock.at(h.ktime_ns), true) {
                shared.undecodable.fetch_add(1, Ordering::Relaxed);
            }
        })
        .map_err(RunError::Pending)?;
    let out = engine.take_stream();
    drop(engine);
    shared.hub.publish(out);
    Ok(n as u64)
}

/// Kernel monotonic time to wall-clock time, read once per batch.
struct Clock {
    unix: Nanos,
    mono: u64,
}

impl Clock {
    fn now() -> Clock {
        Clock {
            unix: wall_clock(),
            mono: monotonic_coarse_ns(),
        }
    }

    /// When the kernel saw the frame: events held back arrive late, but keep their time.
    fn at(&self, ktime_ns: u64) -> Nanos {
        self.unix
            .saturating_sub(self.mono.saturating_sub(ktime_ns))
            .min(self.unix)
    }
}

/// The clock the kernel stamps events with (bpf_ktime_get_coarse_ns).
fn monotonic_coarse_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Logs per-interface totals and any non-zero loss counter.
fn log_counters(shared: &Shared) {
    let snap = match shared.probe.lock().expect("probe lock").snapshot() {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "reading counters failed");
            return;
        }
    };
    let mut per_if: BTreeMap<u32, (SegmentCounters, u64)> = BTreeMap::new();
    for (key, c) in &snap.segments {
        let (total, tagged) = per_if
            .entry(key.ifindex)
            .or_insert((SegmentCounters::ZERO, 0));
        total.add(c);
        if key.outer_vid != NO_VLAN {
            *tagged += c.get(Counter::Frames);
        }
    }
    for (ifindex, (c, tagged)) in &per_if {
        debug!(
            target: "l2watch::counters",
            iface = %shared.ifaces.resolve(*ifindex),
            frames = c.get(Counter::Frames),
            tagged = *tagged,
            arp = c.get(Counter::Arp),
            arp_request = c.get(Counter::ArpRequest),
            arp_reply = c.get(Counter::ArpReply),
            dhcp = c.get(Counter::Dhcp),
            malformed = c.get(Counter::Malformed),
            "counters"
        );
    }
    let lost: Vec<String> = crate::counts::stats(&snap)
        .into_iter()
        .filter(|(_, v)| *v > 0)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    debug!(target: "l2watch::counters", stats = %lost.join(" "), "kernel stats");
}
