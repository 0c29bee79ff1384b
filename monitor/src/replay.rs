//! Offline replay: every Ethernet frame of a capture goes through the loaded XDP program with
//! BPF_PROG_TEST_RUN, exactly as it would on a wire, and its events through the same pipeline
//! `run` uses, on the capture's clock; the counters, events and findings are reported.
use std::{collections::BTreeMap, path::Path};

use serde::Serialize;
use tracing::warn;

use crate::{
    capture::{DecodeError, EventRecord, KernelEvent, Probe, ProbeError},
    counts,
    engine::{Engine, EngineConfig},
    model::{Iface, Nanos},
    pcap::{read_capture, CaptureError},
    pipeline::Pipeline,
    store::Writer,
};

/// What a replay found.
#[derive(Debug, Serialize)]
pub struct ReplayReport {
    pub file: String,
    /// tshark-compatible totals plus every raw counter.
    pub counts: BTreeMap<&'static str, u64>,
    /// Kernel self-monitoring counters.
    pub stats: BTreeMap<&'static str, u64>,
    /// Events per kind.
    pub event_counts: BTreeMap<&'static str, u64>,
    /// Frames the program returned something other than XDP_PASS for (must stay 0).
    pub verdicts_not_pass: u64,
    /// Frames shorter than an Ethernet header: counted as frames and malformed here, since
    /// BPF_PROG_TEST_RUN refuses them (a real NIC never delivers them to XDP).
    pub runt_frames: u64,
    /// Ring-buffer records that did not decode.
    pub undecodable_events: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventRecord>,
    /// Set when the capture could not be read to the end; counts cover what was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
}

/// Where a replay's events go: [`ReplaySink::at`] when the capture's clock moves (before the
/// frame's events), then [`ReplaySink::event`] for each event of that frame.
pub trait ReplaySink {
    fn at(&mut self, _ts: Nanos) {}
    fn event(&mut self, ts: Nanos, iface: Iface, ev: &KernelEvent);
}

impl<F: FnMut(Nanos, Iface, &KernelEvent)> ReplaySink for F {
    fn event(&mut self, ts: Nanos, iface: Iface, ev: &KernelEvent) {
        self(ts, iface, ev)
    }
}

/// The default interface name of a replayed frame that names none (pcap, or pcapng without
/// `if_name`).
pub const DEFAULT_IFACE_NAME: &str = "replay";

/// Replays `path` through `probe`. The sink sees each event with its frame's capture
/// timestamp (ns since the epoch) and interface: the pcapng block's `if_name`, else
/// `iface_name`. A capture error after some frames still yields a report, with `error` set;
/// an error before any frame (unreadable, not Ethernet) is returned.
pub fn replay(
    path: &Path,
    probe: &mut Probe,
    keep_events: bool,
    iface_name: &str,
    sink: &mut impl ReplaySink,
) -> Result<ReplayReport, ReplayError> {
    let default_iface = Iface::named(iface_name);
    let mut verdicts_not_pass = 0u64;
    let mut runt_frames = 0u64;
    let mut undecodable = 0u64;
    let mut events = Vec::new();
    let mut event_counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut run_error: Option<ProbeError> = None;
    let mut clock = None;

    let result = read_capture(path, |frame| {
        if run_error.is_some() {
            return;
        }
        if frame.data.len() < 14 {
            runt_frames += 1;
            return;
        }
        // The loop and scan windows run on the capture's clock, not on how fast we replay.
        if clock != Some(frame.ts_ns) {
            clock = Some(frame.ts_ns);
            sink.at(frame.ts_ns);
            if let Err(e) = probe.set_clock(frame.ts_ns) {
                run_error = Some(e);
                return;
            }
        }
        match probe.test_run(frame.data) {
            Ok(monitor_common::XDP_PASS) => {}
            Ok(_) => verdicts_not_pass += 1,
            Err(e) => {
                run_error = Some(e);
                return;
            }
        }
        let iface = frame.interface.map_or(default_iface, Iface::named);
        probe.drain_events(|ev: Result<KernelEvent, DecodeError>| match ev {
            Ok(ev) => {
                *event_counts
                    .entry(monitor_common::event_kind::name(ev.kind()))
                    .or_default() += 1;
                sink.event(frame.ts_ns, iface, &ev);
                if keep_events {
                    events.push(EventRecord::new(&ev, iface));
                }
            }
            Err(e) => {
                undecodable += 1;
                warn!(error = %e, "undecodable ring-buffer record");
            }
        });
    });
    if let Some(e) = run_error {
        return Err(e.into());
    }
    let error = match result {
        Ok(_) => None,
        Err(e) if e.is_partial() => Some(e.to_string()),
        Err(e) => return Err(e.into()),
    };
    let snap = probe.snapshot()?;
    let mut counts = counts::totals(&snap);
    *counts.entry("frames").or_default() += runt_frames;
    *counts.entry("malformed").or_default() += runt_frames;
    *counts.entry("depth_0").or_default() += runt_frames;
    Ok(ReplayReport {
        file: path.display().to_string(),
        counts,
        stats: counts::stats(&snap),
        event_counts,
        verdicts_not_pass,
        runt_frames,
        undecodable_events: undecodable,
        events,
        error,
    })
}

/// A replay through the whole pipeline: the capture report plus the engine's view at the end
/// of the capture (capture timestamps drive the engine's clock).
#[derive(Debug, Serialize)]
pub struct AnalysisReport {
    #[serde(flatten)]
    pub capture: ReplayReport,
    pub devices: Vec<crate::engine::DeviceRow>,
    /// IPv6 addresses, per station.
    pub addresses6: Vec<crate::engine::Address6Row>,
    pub dhcp_servers: Vec<crate::engine::ServerRow>,
    pub routers: Vec<crate::engine::RouterRow>,
    /// DHCPv4 transactions, paired by (segment, xid, client MAC).
    pub dhcp_transactions: Vec<crate::engine::TxRow>,
    pub dhcpv6_servers: Vec<crate::engine::Server6Row>,
    /// LLDP and CDP neighbours, spanning trees and LACP ports.
    pub neighbours: Vec<crate::engine::NeighbourRow>,
    pub stp: Vec<crate::engine::StpRow>,
    pub lacp: Vec<crate::engine::LacpRow>,
    /// Open findings at the end of the capture, then those that closed during it.
    pub findings: Vec<crate::detect::Finding>,
    pub engine: crate::engine::EngineStats,
    /// Events that did not decode, by reason.
    pub decode_errors: BTreeMap<&'static str, u64>,
}

/// What [`analyze`] runs: the engine's settings, the interface name for frames that name
/// none, and where (if anywhere) to store the result.
pub struct Analysis {
    pub engine: EngineConfig,
    pub iface_name: String,
    pub writer: Option<Writer>,
    pub flush: std::time::Duration,
}

impl Default for Analysis {
    fn default() -> Self {
        Analysis {
            engine: EngineConfig::default(),
            iface_name: DEFAULT_IFACE_NAME.into(),
            writer: None,
            flush: std::time::Duration::from_secs(1),
        }
    }
}

/// Replays `path` through `probe` and the same pipeline `run` uses, on the capture's clock.
pub fn analyze(
    path: &Path,
    probe: &mut Probe,
    a: Analysis,
    keep_events: bool,
) -> Result<AnalysisReport, ReplayError> {
    struct Sink {
        engine: Engine,
        pipeline: Pipeline,
        last_ts: Nanos,
    }
    impl ReplaySink for Sink {
        fn at(&mut self, ts: Nanos) {
            self.last_ts = self.last_ts.max(ts);
            self.pipeline.advance(&mut self.engine, ts);
        }
        fn event(&mut self, ts: Nanos, iface: Iface, ev: &KernelEvent) {
            self.pipeline.feed(&mut self.engine, ev, iface, ts, false);
        }
    }
    let journal = a.writer.is_some();
    let mut engine = Engine::new(a.engine);
    if journal {
        engine = engine.with_journal(crate::pipeline::JOURNAL_EVENTS);
    }
    let mut sink = Sink {
        engine,
        pipeline: Pipeline::new(a.writer, a.flush),
        last_ts: 0,
    };
    let capture = replay(path, probe, keep_events, &a.iface_name, &mut sink)?;
    let Sink {
        mut engine,
        pipeline,
        last_ts,
    } = sink;
    let decode_errors = pipeline.undecodable().clone();
    pipeline.finish(&mut engine);
    let vendors = crate::state::vendor::vendors();
    let mut findings: Vec<_> = engine.open_findings().into_iter().cloned().collect();
    findings.extend(engine.closed_findings().cloned());
    Ok(AnalysisReport {
        capture,
        devices: engine.device_rows(last_ts, |m| vendors.lookup(m)),
        addresses6: engine.address6_rows_where(last_ts, |m| vendors.lookup(m), |_, _, _| true),
        dhcp_servers: engine.server_rows(),
        routers: engine.router_rows(),
        dhcp_transactions: engine.transaction_rows(),
        dhcpv6_servers: engine.server6_rows(),
        neighbours: engine.neighbour_rows(),
        stp: engine.stp_rows(),
        lacp: engine.lacp_rows(),
        findings,
        engine: engine.stats(),
        decode_errors,
    })
}
