//! Live mode: attach to interfaces, read the ring buffer under tokio, log events and counters,
//! and detach cleanly when the shutdown token fires.
use std::{collections::BTreeMap, net::Ipv4Addr, path::PathBuf, time::Duration};

use aya::maps::{MapData, RingBuf};
use monitor_common::{event_kind, Counter, SegmentCounters, NO_VLAN};
use tokio::{io::unix::AsyncFd, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    capture::{decode, KernelEvent, Mac, Probe, ProbeConfig, ProbeError},
    decode::{observe, segment},
    detect::FindingEvent,
    engine::{Engine, EngineConfig},
    model::Nanos,
    store::{Caps, OpenNote, Retention, Store, StoreError, Writer},
};

/// What `l2watch run` needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub interfaces: Vec<String>,
    pub probe: ProbeConfig,
    /// How often counters are logged.
    pub stats_interval: Duration,
    pub engine: EngineConfig,
    /// The SQLite database; None keeps state in memory only.
    pub db: Option<PathBuf>,
    pub retention: Retention,
    /// How often changes are written to the database (at most this much is lost on a crash).
    pub flush_interval: Duration,
}

/// History events that may wait for the writer between two flushes.
const JOURNAL_EVENTS: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("no interface given: pass --iface IF (repeatable)")]
    NoInterface,
    #[error("cannot watch the ring buffer: {0}")]
    Poll(#[source] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Opens the database and restores the engine from it.
fn open_store(opts: &RunOptions) -> Result<(Engine, Option<Writer>), RunError> {
    let engine = Engine::new(opts.engine.clone());
    let Some(path) = &opts.db else {
        info!("no database: state lives in memory only");
        return Ok((engine, None));
    };
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
        devices: opts.engine.devices.capacity,
        servers: opts.engine.limits.max_dhcp_servers,
        closed_findings: opts.engine.limits.max_closed_findings,
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
    let writer = Writer::spawn(store, opts.retention.clone(), caps, unix_now);
    Ok((engine, Some(writer)))
}

/// Runs until `shutdown` is cancelled. Programs are detached when this returns (the links are
/// owned by the probe, which is dropped here).
pub async fn run(opts: RunOptions, shutdown: CancellationToken) -> Result<(), RunError> {
    if opts.interfaces.is_empty() {
        return Err(RunError::NoInterface);
    }
    let (engine, writer) = open_store(&opts)?;
    let mut probe = Probe::load(&opts.probe)?;
    let mut names = BTreeMap::new();
    for iface in &opts.interfaces {
        let mode = probe.attach(iface)?;
        let ifindex = ifindex(iface).unwrap_or(0);
        names.insert(ifindex, iface.clone());
        info!(iface = %iface, ifindex, mode = mode.name(), "attached XDP program");
    }
    let logger = spawn_kernel_log(&mut probe, shutdown.clone());
    let events = probe
        .take_events()
        .ok_or(ProbeError::Missing("ring buffer"))?;
    let sink = Sink {
        engine,
        writer,
        flush_interval: opts.flush_interval,
    };
    let reader = tokio::spawn(read_events(events, sink, names.clone(), shutdown.clone()));

    let mut ticker = tokio::time::interval(opts.stats_interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => log_counters(&probe, &names),
        }
    }
    log_counters(&probe, &names);
    match reader.await {
        Ok(Err(e)) => warn!(error = %e, "ring-buffer reader failed"),
        Err(e) => warn!(error = %e, "ring-buffer reader panicked"),
        Ok(Ok(())) => {}
    }
    if let Some(l) = logger {
        let _ = l.await;
    }
    drop(probe);
    info!(interfaces = opts.interfaces.len(), "detached; bye");
    Ok(())
}

fn ifindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
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

/// The engine and where its changes go.
struct Sink {
    engine: Engine,
    writer: Option<Writer>,
    flush_interval: Duration,
}

async fn read_events(
    ring: RingBuf<MapData>,
    sink: Sink,
    names: BTreeMap<u32, String>,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    // SAFETY: the RingBuf owns its map fd and keeps it open while the AsyncFd lives.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| RunError::Poll(e.into_parts().1))?;
    let mut undecodable = 0u64;
    let Sink {
        mut engine,
        writer,
        flush_interval,
    } = sink;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut flush = tokio::time::interval(flush_interval);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {
                for f in engine.tick(unix_now()) {
                    log_finding(&f, &names);
                }
            }
            _ = flush.tick() => {
                if let Some(w) = &writer {
                    w.flush(|| engine.take_changes());
                }
            }
            guard = fd.readable_mut() => {
                let mut guard = guard.map_err(RunError::Poll)?;
                let ring = guard.get_inner_mut();
                while let Some(item) = ring.next() {
                    match decode(&item) {
                        Ok(ev) => {
                            log_event(&ev, &names);
                            match observe(&ev) {
                                Ok(obs) => {
                                    for f in engine.observe(&obs, unix_now()) {
                                        log_finding(&f, &names);
                                    }
                                }
                                Err(e) => warn!(error = %e, "event not understood"),
                            }
                        }
                        Err(e) => {
                            undecodable += 1;
                            warn!(error = %e, undecodable, "undecodable ring-buffer record");
                        }
                    }
                }
                guard.clear_ready();
            }
        }
    }
    // Whatever arrived before shutdown is still reported and stored.
    let ring = fd.get_mut();
    while let Some(item) = ring.next() {
        if let Ok(ev) = decode(&item) {
            log_event(&ev, &names);
            if let Ok(obs) = observe(&ev) {
                for f in engine.observe(&obs, unix_now()) {
                    log_finding(&f, &names);
                }
            }
        }
    }
    if let Some(w) = writer {
        w.finish(engine.take_changes()).await;
    }
    Ok(())
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

fn iface_name(names: &BTreeMap<u32, String>, ifindex: u32) -> String {
    names
        .get(&ifindex)
        .cloned()
        .unwrap_or_else(|| format!("if{ifindex}"))
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
fn log_counters(probe: &Probe, names: &BTreeMap<u32, String>) {
    let snap = match probe.snapshot() {
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
        for (t, x) in total.counts.iter_mut().zip(c.counts.iter()) {
            *t += x;
        }
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
