//! Live mode: load the program, attach it to the interfaces, read the ring buffer under tokio
//! into the engine, serve metrics and the API, write changes to the database, follow the
//! interfaces as they go down, disappear and come back, reload the configuration on SIGHUP,
//! and detach cleanly when the shutdown token fires.
use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    path::PathBuf,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use monitor_common::{event_kind, Counter, SegmentCounters, NO_VLAN};
use tokio::{io::unix::AsyncFd, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    capture::{decode, KernelEvent, Mac, Probe, ProbeError},
    config::{Config, ConfigError},
    decode::{observe, segment},
    detect::FindingEvent,
    engine::Engine,
    export::{api, iface_name, Link, Shared},
    links,
    model::Nanos,
    store::{Caps, OpenNote, Store, StoreError, Writer},
};

/// Re-reads the configuration (file plus flags) for SIGHUP.
pub type Reload = Box<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// History events that may wait for the writer between two flushes.
const JOURNAL_EVENTS: usize = 100_000;
/// How often monitored interfaces are checked for down, gone and back.
const LINK_POLL: Duration = Duration::from_secs(1);

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
    #[error(
        "cannot listen on {addr}: {source}; pass --listen ADDR:PORT (or set listen in the config)"
    )]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Opens the database and restores the engine from it.
fn open_store(cfg: &Config) -> Result<(Engine, Option<(Writer, PathBuf)>), RunError> {
    let engine = Engine::new(cfg.engine.clone());
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
    let caps = Caps {
        devices: cfg.engine.devices.capacity,
        servers: cfg.engine.limits.max_dhcp_servers,
        closed_findings: cfg.engine.limits.max_closed_findings,
    };
    let (restored, skipped) = store.load(caps)?;
    info!(
        path = %path.display(),
        devices = restored.devices.len(),
        dhcp_servers = restored.servers.len(),
        open_findings = restored.open_findings.len(),
        skipped_rows = skipped,
        "database open; state restored"
    );
    let mut engine = engine.with_journal(JOURNAL_EVENTS);
    engine.restore(restored);
    let writer = Writer::spawn(store, cfg.database.retention.clone(), caps, unix_now);
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
    let ifaces = interfaces(&cfg)?;
    let (engine, writer) = open_store(&cfg)?;
    let (writer, db) = match writer {
        Some((w, p)) => (Some(w), Some(p)),
        None => (None, None),
    };
    let mut probe = Probe::load(&cfg.kernel.probe_config(true))?;
    let mut attached = BTreeMap::new();
    for iface in &ifaces {
        let mode = probe.attach(iface)?;
        let ifindex = links::ifindex(iface).unwrap_or(0);
        info!(iface = %iface, ifindex, mode = mode.name(), "attached XDP program");
        attached.insert(
            ifindex,
            Link {
                name: iface.clone(),
                mode: Some(mode),
            },
        );
    }
    let logger = spawn_kernel_log(&mut probe, shutdown.clone());
    let events = probe
        .take_events()
        .ok_or(ProbeError::Missing("ring buffer"))?;
    let shared = Arc::new(Shared::new(
        engine,
        probe,
        db,
        writer.as_ref().map(|w| w.stats.clone()),
        cfg.metrics.clone(),
    ));
    *shared.links.write().expect("links lock") = attached;

    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: cfg.listen,
            source,
        })?;
    info!(listen = %cfg.listen, "serving /metrics, /api/v1, /healthz and /readyz");
    let server = {
        let app = api::router(shared.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
            {
                warn!(error = %e, "HTTP server failed");
            }
        })
    };
    let reader = tokio::spawn(read_events(
        events,
        shared.clone(),
        writer,
        cfg.flush_interval(),
        shutdown.clone(),
    ));
    let watcher = tokio::spawn(watch_links(
        shared.clone(),
        ifaces.clone(),
        shutdown.clone(),
    ));
    shared.ready.store(true, Ordering::Relaxed);
    info!(interfaces = ifaces.len(), "ready");

    let mut current = cfg;
    let mut ticker = tokio::time::interval(current.stats_interval());
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => log_counters(&shared),
            _ = hup.recv() => apply_reload(&shared, &reload, &mut current),
        }
    }
    shared.ready.store(false, Ordering::Relaxed);
    log_counters(&shared);
    match reader.await {
        Ok(Err(e)) => warn!(error = %e, "ring-buffer reader failed"),
        Err(e) => warn!(error = %e, "ring-buffer reader panicked"),
        Ok(Ok(())) => {}
    }
    let _ = watcher.await;
    let _ = server.await;
    if let Some(l) = logger {
        let _ = l.await;
    }
    drop(shared);
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
    shared
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
    if restart.is_empty() {
        info!("configuration reloaded");
    } else {
        warn!(
            needs_restart = %restart.join(","),
            "configuration reloaded; these settings take effect on restart"
        );
    }
    *current = new;
}

/// Follows the monitored interfaces: logs when one goes down or comes up, and reattaches
/// when one that disappeared comes back (under a new ifindex, as a re-created device does).
async fn watch_links(shared: Arc<Shared>, ifaces: Vec<String>, shutdown: CancellationToken) {
    let mut up: BTreeMap<String, bool> = ifaces.iter().map(|n| (n.clone(), true)).collect();
    let mut tick = tokio::time::interval(LINK_POLL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for name in &ifaces {
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
                        // Replaced: the next tick reattaches it.
                        continue;
                    }
                }
                // Detached and back: attach again.
                (Some((idx, None)), Some(now)) => {
                    let res = shared.probe.lock().expect("probe lock").attach(name);
                    match res {
                        Ok(mode) => {
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
    }
}

/// Forwards aya-log records from the kernel program to tracing.
fn spawn_kernel_log(probe: &mut Probe, shutdown: CancellationToken) -> Option<JoinHandle<()>> {
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
    Some(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                guard = fd.readable_mut() => match guard {
                    Ok(mut g) => {
                        g.get_inner_mut().flush();
                        g.clear_ready();
                    }
                    Err(e) => {
                        warn!(error = %e, "kernel log poll failed");
                        break;
                    }
                },
            }
        }
    }))
}

async fn read_events(
    ring: RingBuf<MapData>,
    shared: Arc<Shared>,
    writer: Option<Writer>,
    flush_interval: Duration,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    // SAFETY: the RingBuf owns its map fd and keeps it open while the AsyncFd lives.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| RunError::Poll(e.into_parts().1))?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut flush = tokio::time::interval(flush_interval);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {
                let closed = shared.engine.lock().expect("engine lock").tick(unix_now());
                let names = shared.names();
                for f in closed {
                    log_finding(&f, &names);
                }
            }
            _ = flush.tick() => {
                if let Some(w) = &writer {
                    let mut e = shared.engine.lock().expect("engine lock");
                    w.flush(|| e.take_changes());
                }
            }
            guard = fd.readable_mut() => {
                let mut guard = guard.map_err(RunError::Poll)?;
                drain(guard.get_inner_mut(), &shared);
                guard.clear_ready();
            }
        }
    }
    // Whatever arrived before shutdown is still reported and stored.
    drain(fd.get_mut(), &shared);
    if let Some(w) = writer {
        let last = shared.engine.lock().expect("engine lock").take_changes();
        w.finish(last).await;
    }
    Ok(())
}

/// Feeds every waiting ring-buffer record to the engine, under one lock.
fn drain(ring: &mut RingBuf<MapData>, shared: &Shared) {
    let names = shared.names();
    let mut engine = shared.engine.lock().expect("engine lock");
    let mut last_ktime = None;
    while let Some(item) = ring.next() {
        match decode(&item) {
            Ok(ev) => {
                last_ktime = Some(ev.header().ktime_ns);
                log_event(&ev, &names);
                match observe(&ev) {
                    Ok(obs) => {
                        for f in engine.observe(&obs, unix_now()) {
                            log_finding(&f, &names);
                        }
                    }
                    Err(e) => {
                        shared.undecodable.fetch_add(1, Ordering::Relaxed);
                        warn!(error = %e, "event not understood");
                    }
                }
            }
            Err(e) => {
                let n = shared.undecodable.fetch_add(1, Ordering::Relaxed) + 1;
                warn!(error = %e, undecodable = n, "undecodable ring-buffer record");
            }
        }
    }
    if let Some(k) = last_ktime {
        shared
            .lag_ns
            .store(monotonic_coarse_ns().saturating_sub(k), Ordering::Relaxed);
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

fn unix_now() -> Nanos {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as Nanos)
}

/// One structured line per finding opened or closed: easy to grep and to ship to syslog.
fn log_finding(ev: &FindingEvent, names: &BTreeMap<u32, String>) {
    let (state, f) = match ev {
        FindingEvent::Opened(f) => ("opened", f),
        FindingEvent::Closed(f) => ("closed", f),
    };
    warn!(
        target: "l2watch::finding",
        state,
        kind = f.kind,
        iface = %iface_name(names, f.seg.ifindex),
        vlan = %f.vlan,
        subject = %f.subject,
        packets = f.packets,
        evidence = %f.evidence,
        "finding {state}"
    );
}

fn log_event(ev: &KernelEvent, names: &BTreeMap<u32, String>) {
    match ev {
        KernelEvent::Arp(a) => {
            let old = (a.header.kind == event_kind::ARP_CHANGED).then_some(Mac(a.old_mac));
            info!(
                target: "l2watch::event",
                kind = event_kind::name(a.header.kind),
                iface = %iface_name(names, a.header.ifindex),
                vlan = %segment(&a.header).vlan_label(),
                tags = a.header.depth,
                ip = %Ipv4Addr::from(a.ip),
                mac = %Mac(a.mac),
                old_mac = old.map(|m| m.to_string()),
                op = a.op,
                "arp binding"
            );
        }
        KernelEvent::Dhcp(d) => {
            info!(
                target: "l2watch::event",
                kind = "dhcp",
                iface = %iface_name(names, d.header.ifindex),
                vlan = %segment(&d.header).vlan_label(),
                tags = d.header.depth,
                msg_type = d.msg_type,
                src_mac = %Mac(d.eth_src),
                src_ip = %Ipv4Addr::from(d.src_ip),
                dst_ip = %Ipv4Addr::from(d.dst_ip),
                bootp_len = d.bootp_len,
                "dhcp message"
            );
        }
    }
}

/// Logs per-interface totals and any non-zero loss counter.
fn log_counters(shared: &Shared) {
    let names = shared.names();
    let names = &names;
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
        info!(
            target: "l2watch::counters",
            iface = %iface_name(names, *ifindex),
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
    info!(target: "l2watch::counters", stats = %lost.join(" "), "kernel stats");
}
