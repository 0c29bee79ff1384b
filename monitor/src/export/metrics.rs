//! `/metrics`: built on each scrape from the kernel maps (summed over CPUs now), the engine and
//! the store's counters, in a fresh registry, so nothing is cached between scrapes.
//!
//! Cardinality is bounded by construction: interfaces are the monitored ones; the VLAN label
//! takes at most `vlan_label_cap` values per interface (the busiest by frames) and folds the
//! rest into `vlan="other"`; kinds, ops and message types are fixed sets; per-server and
//! per-device series are capped. Nothing is labelled by MAC unless `device_info` asks for it.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use monitor_common::{Counter, SegmentCounters, Stat};
use prometheus::{Encoder, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use super::Shared;
use crate::model::Iface;
use crate::{detect::FindingKind, model::Segment};

pub const OTHER: &str = "other";

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("reading kernel counters: {0}")]
    Probe(#[from] crate::capture::ProbeError),
    #[error("building metrics: {0}")]
    Prometheus(#[from] prometheus::Error),
}

/// Chooses, per interface, which VLAN labels are exported as themselves.
pub struct VlanLabels {
    keep: HashMap<Iface, BTreeSet<String>>,
    /// Distinct VLAN values folded into "other", per interface.
    pub folded: BTreeMap<Iface, usize>,
}

impl VlanLabels {
    /// Keeps the `cap` busiest segments of each interface, by frames.
    pub fn busiest(frames: impl IntoIterator<Item = (Segment, u64)>, cap: usize) -> VlanLabels {
        let mut per_if: HashMap<Iface, Vec<(u64, String)>> = HashMap::new();
        for (seg, n) in frames {
            per_if
                .entry(seg.iface)
                .or_default()
                .push((n, seg.vlan_label()));
        }
        let mut keep = HashMap::new();
        let mut folded = BTreeMap::new();
        for (iface, mut v) in per_if {
            // Busiest first; ties by label, so the choice is stable between scrapes.
            v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            folded.insert(iface, v.len().saturating_sub(cap));
            keep.insert(iface, v.into_iter().take(cap).map(|(_, l)| l).collect());
        }
        VlanLabels { keep, folded }
    }

    /// The label for a segment: its VLAN when kept, else "other".
    pub fn label(&self, seg: &Segment) -> String {
        let l = seg.vlan_label();
        match self.keep.get(&seg.iface) {
            Some(k) if k.contains(&l) => l,
            _ => OTHER.into(),
        }
    }
}

fn segment_of(k: &monitor_common::SegmentKey, ifaces: &crate::links::IfaceNames) -> Segment {
    Segment::from_vids(ifaces.resolve(k.ifindex), k.outer_vid, k.inner_vid)
}

struct Out(Registry);

impl Out {
    fn counter(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, MetricsError> {
        let c = IntCounterVec::new(Opts::new(name, help), labels)?;
        self.0.register(Box::new(c.clone()))?;
        Ok(c)
    }

    fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec, MetricsError> {
        let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
        self.0.register(Box::new(g.clone()))?;
        Ok(g)
    }

    fn float_gauge(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<GaugeVec, MetricsError> {
        let g = GaugeVec::new(Opts::new(name, help), labels)?;
        self.0.register(Box::new(g.clone()))?;
        Ok(g)
    }
}

const DEPTHS: [(Counter, &str); 5] = [
    (Counter::Depth0, "0"),
    (Counter::Depth1, "1"),
    (Counter::Depth2, "2"),
    (Counter::Depth3, "3"),
    (Counter::DepthMore, "4+"),
];

const ARP_OPS: [(Counter, &str); 3] = [
    (Counter::ArpRequest, "request"),
    (Counter::ArpReply, "reply"),
    (Counter::ArpOtherOpcode, "other"),
];

const ARP_KINDS: [(Counter, &str); 3] = [
    (Counter::ArpGratuitous, "gratuitous"),
    (Counter::ArpProbe, "probe"),
    (Counter::ArpAnnouncement, "announcement"),
];

const DHCP_TYPES: [(Counter, &str); 10] = [
    (Counter::DhcpDiscover, "discover"),
    (Counter::DhcpOffer, "offer"),
    (Counter::DhcpRequest, "request"),
    (Counter::DhcpDecline, "decline"),
    (Counter::DhcpAck, "ack"),
    (Counter::DhcpNak, "nak"),
    (Counter::DhcpRelease, "release"),
    (Counter::DhcpInform, "inform"),
    (Counter::DhcpOtherMsgtype, "other"),
    (Counter::DhcpNoMsgtype, "none"),
];

/// The text exposition of every metric, now.
pub fn render(shared: &Shared) -> Result<String, MetricsError> {
    let cfg = shared.metrics.read().expect("metrics lock").clone();
    let snap = shared.probe.lock().expect("probe lock").snapshot()?;
    let name = |iface: Iface| iface.name().to_string();
    let out = Out(Registry::new());

    // Kernel counters, per segment, folded to bounded labels.
    let vlans = VlanLabels::busiest(
        snap.segments
            .iter()
            .map(|(k, c)| (segment_of(k, &shared.ifaces), c.get(Counter::Frames))),
        cfg.vlan_label_cap,
    );
    let mut per_label: BTreeMap<(String, String), SegmentCounters> = BTreeMap::new();
    for (k, c) in &snap.segments {
        let seg = segment_of(k, &shared.ifaces);
        per_label
            .entry((name(seg.iface), vlans.label(&seg)))
            .or_insert(SegmentCounters::ZERO)
            .add(c);
    }
    let frames = out.counter(
        "l2watch_frames_total",
        "Frames seen by the XDP program, by interface and number of VLAN tags.",
        &["interface", "depth"],
    )?;
    let malformed = out.counter(
        "l2watch_frames_malformed_total",
        "Frames cut short inside a header their own type fields promise (counted, passed on).",
        &["interface", "vlan"],
    )?;
    let arp = out.counter(
        "l2watch_arp_packets_total",
        "ARP packets by interface, VLAN and operation.",
        &["interface", "vlan", "op"],
    )?;
    let arp_kind = out.counter(
        "l2watch_arp_special_packets_total",
        "ARP packets that are gratuitous, RFC 5227 probes or announcements.",
        &["interface", "vlan", "kind"],
    )?;
    let dhcp = out.counter(
        "l2watch_dhcp_messages_total",
        "DHCPv4 messages by interface, VLAN and message type (option 53; none = BOOTP).",
        &["interface", "vlan", "type"],
    )?;
    let per_segment = [
        (
            "l2watch_broadcast_frames_total",
            "Frames to a broadcast or multicast destination.",
            Counter::Broadcast,
        ),
        (
            "l2watch_loop_frames_total",
            "Copies of one broadcast/multicast frame beyond kernel.loop_repeats within one \
             loop window: frames going round a switching loop.",
            Counter::LoopRepeats,
        ),
        (
            "l2watch_arp_bindings_new_total",
            "IP-to-MAC bindings the kernel saw new or changed (before any rate limit).",
            Counter::ArpBindingsNew,
        ),
        (
            "l2watch_arp_scans_total",
            "ARP senders that asked for kernel.scan_targets distinct addresses in one window.",
            Counter::ArpScans,
        ),
    ];
    for (metric, help, ctr) in per_segment {
        let m = out.counter(metric, help, &["interface", "vlan"])?;
        for ((iface, vlan), c) in &per_label {
            m.with_label_values(&[iface, vlan]).inc_by(c.get(ctr));
        }
    }
    for ((iface, vlan), c) in &per_label {
        for (ctr, depth) in DEPTHS {
            frames.with_label_values(&[iface, depth]).inc_by(c.get(ctr));
        }
        malformed
            .with_label_values(&[iface, vlan])
            .inc_by(c.get(Counter::Malformed));
        for (ctr, op) in ARP_OPS {
            arp.with_label_values(&[iface, vlan, op]).inc_by(c.get(ctr));
        }
        for (ctr, k) in ARP_KINDS {
            arp_kind
                .with_label_values(&[iface, vlan, k])
                .inc_by(c.get(ctr));
        }
        for (ctr, t) in DHCP_TYPES {
            dhcp.with_label_values(&[iface, vlan, t]).inc_by(c.get(ctr));
        }
    }
    let overflow = out.counter(
        "l2watch_segment_overflow_frames_total",
        "Frames of (interface, VLAN) segments beyond the kernel's segment map, by tag depth.",
        &["depth"],
    )?;
    for (i, c) in snap.overflow.iter().enumerate() {
        let depth = DEPTHS.get(i).map_or("4+", |d| d.1);
        overflow
            .with_label_values(&[depth])
            .inc_by(c.get(Counter::Frames));
    }
    let folded = out.gauge(
        "l2watch_vlan_labels_folded",
        "Distinct VLANs of an interface summed under vlan=\"other\" (over metrics.vlan_label_cap).",
        &["interface"],
    )?;
    for (ifindex, n) in &vlans.folded {
        folded.with_label_values(&[&name(*ifindex)]).set(*n as i64);
    }

    // Kernel self-monitoring.
    let stat = |s: Stat| snap.stats.get(s as usize).copied().unwrap_or(0);
    let sent = out.counter(
        "l2watch_kernel_events_total",
        "Events the kernel pushed to the ring buffer.",
        &["kind"],
    )?;
    sent.with_label_values(&["arp"])
        .inc_by(stat(Stat::ArpEventsSent));
    sent.with_label_values(&["dhcp"])
        .inc_by(stat(Stat::DhcpEventsSent));
    sent.with_label_values(&["loop"])
        .inc_by(stat(Stat::LoopEventsSent));
    sent.with_label_values(&["scan"])
        .inc_by(stat(Stat::ScanEventsSent));
    let deferred = out.counter(
        "l2watch_kernel_events_deferred_total",
        "Events the token bucket or a full ring buffer held back into the kernel's pending \
         maps; the agent drains them, so they arrive late, not never.",
        &["kind"],
    )?;
    deferred
        .with_label_values(&["arp"])
        .inc_by(stat(Stat::ArpDeferred));
    deferred
        .with_label_values(&["dhcp"])
        .inc_by(stat(Stat::DhcpDeferred));
    let pending_full = out.counter(
        "l2watch_kernel_pending_full_total",
        "Held-back events lost because the pending map was full (an ARP binding is retried \
         by its next frame).",
        &["kind"],
    )?;
    pending_full
        .with_label_values(&["arp"])
        .inc_by(stat(Stat::ArpPendingFull));
    pending_full
        .with_label_values(&["dhcp"])
        .inc_by(stat(Stat::DhcpPendingFull));
    out.counter(
        "l2watch_kernel_events_suppressed_total",
        "ARP repeats of a known binding within the refresh interval (by design, not a loss).",
        &[],
    )?
    .with_label_values::<&str>(&[])
    .inc_by(stat(Stat::ArpSuppressed));
    let limited = out.counter(
        "l2watch_kernel_events_rate_limited_total",
        "Events the per-CPU token bucket held back: ARP and state-bearing DHCP are deferred \
         (see l2watch_kernel_events_deferred_total), a storm's DISCOVERs and REQUESTs dropped.",
        &["kind"],
    )?;
    limited
        .with_label_values(&["arp"])
        .inc_by(stat(Stat::ArpRateLimited));
    limited
        .with_label_values(&["dhcp"])
        .inc_by(stat(Stat::DhcpRateLimited));
    let drops = out.counter(
        "l2watch_ringbuf_drops_total",
        "Events lost because the ring buffer was full (the agent fell behind).",
        &["kind"],
    )?;
    drops
        .with_label_values(&["arp"])
        .inc_by(stat(Stat::ArpRingbufFull));
    drops
        .with_label_values(&["dhcp"])
        .inc_by(stat(Stat::DhcpRingbufFull));
    let full = out.counter(
        "l2watch_kernel_map_full_total",
        "Inserts refused because a kernel map was full.",
        &["map"],
    )?;
    full.with_label_values(&["segments"])
        .inc_by(stat(Stat::SegmentMapFull));
    full.with_label_values(&["bindings"])
        .inc_by(stat(Stat::BindingMapFull));
    let kerr = out.counter(
        "l2watch_kernel_errors_total",
        "Other kernel-side conditions, by reason.",
        &["reason"],
    )?;
    for (s, r) in [
        (Stat::SegmentSlotRaced, "segment_slot_raced"),
        (Stat::DhcpCopyFailed, "dhcp_copy_failed"),
        (Stat::ArpNotEthernetIpv4, "arp_not_ethernet_ipv4"),
        (Stat::SignalRingbufFull, "signal_ringbuf_full"),
    ] {
        kerr.with_label_values(&[r]).inc_by(stat(s));
    }

    // The engine.
    // The engine. Under its lock only a count per segment and copies of small rows are made
    // (the table can hold a million devices); labels are built after it is released.
    let e = shared.engine.lock().expect("engine lock");
    let mut per_seg: HashMap<Segment, i64> = HashMap::new();
    let mut info_raw = Vec::new();
    for (k, d) in e.table().iter() {
        *per_seg.entry(k.seg).or_default() += 1;
        if cfg.device_info && info_raw.len() < cfg.device_info_cap {
            info_raw.push((k.seg, k.ip, d.mac));
        }
    }
    let open_raw: Vec<(FindingKind, Segment)> =
        e.open_findings().iter().map(|f| (f.kind, f.seg)).collect();
    let opened_total = e.findings_opened_total().clone();
    let rows = e.server_rows();
    let st = e.stats();
    drop(e);
    let mut devices: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (seg, n) in per_seg {
        *devices
            .entry((name(seg.iface), vlans.label(&seg)))
            .or_default() += n;
    }
    let info_rows: Vec<_> = info_raw
        .into_iter()
        .map(|(seg, ip, mac)| {
            (
                (name(seg.iface), vlans.label(&seg)),
                ip.to_string(),
                mac.to_string(),
            )
        })
        .collect();
    let g = out.gauge(
        "l2watch_devices",
        "Devices (IP->MAC bindings) in the table, by interface and VLAN.",
        &["interface", "vlan"],
    )?;
    for ((i, v), n) in &devices {
        g.with_label_values(&[i, v]).set(*n);
    }
    if cfg.device_info {
        let g = out.gauge(
            "l2watch_device_info",
            "One series per device (capped by metrics.device_info_cap).",
            &["interface", "vlan", "ip", "mac"],
        )?;
        for ((i, v), ip, mac) in &info_rows {
            g.with_label_values(&[i, v, ip, mac]).set(1);
        }
    }
    let open = out.gauge(
        "l2watch_findings_open",
        "Findings open now, by kind, interface and VLAN.",
        &["kind", "interface", "vlan"],
    )?;
    for k in FindingKind::ALL {
        // Every kind, so alerts on absent series are not needed.
        open.with_label_values(&[k.name(), "", ""]).set(0);
    }
    let mut open_counts: BTreeMap<(&str, String, String), i64> = BTreeMap::new();
    for (kind, seg) in open_raw {
        *open_counts
            .entry((kind.name(), name(seg.iface), vlans.label(&seg)))
            .or_default() += 1;
    }
    for ((k, i, v), n) in &open_counts {
        open.with_label_values(&[*k, i.as_str(), v.as_str()])
            .set(*n);
    }
    let opened = out.counter(
        "l2watch_findings_opened_total",
        "Findings opened since the agent started, by kind.",
        &["kind"],
    )?;
    for k in FindingKind::ALL {
        let n = opened_total.get(k).copied().unwrap_or(0);
        opened.with_label_values(&[k.name()]).inc_by(n);
    }
    let servers = out.gauge(
        "l2watch_dhcp_servers",
        "DHCP servers seen (OFFER, ACK or NAK), by interface and VLAN.",
        &["interface", "vlan"],
    )?;
    let info = out.gauge(
        "l2watch_dhcp_server_info",
        "One series per DHCP server (capped by metrics.server_info_cap).",
        &["interface", "vlan", "server_ip", "mac", "authorized"],
    )?;
    let mut per_seg: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (n, r) in rows.iter().enumerate() {
        let (i, v) = (name(r.key.seg.iface), vlans.label(&r.key.seg));
        *per_seg.entry((i.clone(), v.clone())).or_default() += 1;
        if n < cfg.server_info_cap {
            let auth = match r.authorized {
                Some(true) => "true",
                Some(false) => "false",
                None => "unknown",
            };
            info.with_label_values(&[
                &i,
                &v,
                &r.key.server_id.to_string(),
                &r.key.mac.to_string(),
                auth,
            ])
            .set(1);
        }
    }
    for ((i, v), n) in &per_seg {
        servers.with_label_values(&[i, v]).set(*n);
    }
    out.gauge(
        "l2watch_dhcp_server_info_dropped",
        "DHCP servers not exported as l2watch_dhcp_server_info because of the cap.",
        &[],
    )?
    .with_label_values::<&str>(&[])
    .set(rows.len().saturating_sub(cfg.server_info_cap) as i64);
    for (n, help, v) in [
        (
            "l2watch_mac_moves_total",
            "IP bindings that moved to another MAC (flip flops included).",
            st.mac_moves,
        ),
        (
            "l2watch_device_evictions_total",
            "Devices evicted from the full table (those learnt during a flood first, then the \
             least recently seen).",
            st.device_evictions,
        ),
        (
            "l2watch_devices_learnt_total",
            "Bindings new to the device table.",
            st.devices_learnt,
        ),
        (
            "l2watch_findings_folded_total",
            "Per-binding findings folded into an open arp_flood instead of opening their own.",
            st.findings_folded,
        ),
        (
            "l2watch_flood_rows_not_stored_total",
            "Device changes of a flood's own rows (learnt during arp_flood, not seen since): \
             kept in memory, evicted first, not written to the database.",
            st.flood_rows_not_stored,
        ),
        (
            "l2watch_dhcp_server_evictions_total",
            "DHCP servers evicted from the full server list.",
            st.dhcp_server_evictions,
        ),
        (
            "l2watch_findings_dropped_total",
            "Findings not opened because the open-finding cap was reached.",
            st.findings_dropped,
        ),
        (
            "l2watch_history_dropped_total",
            "History events dropped because the store fell behind.",
            st.history_dropped,
        ),
        (
            "l2watch_observations_total",
            "Events the engine processed.",
            st.observations,
        ),
        (
            "l2watch_events_undecodable_total",
            "Ring-buffer records or DHCP payloads the agent could not decode.",
            shared
                .undecodable
                .load(std::sync::atomic::Ordering::Relaxed),
        ),
        (
            "l2watch_config_reloads_total",
            "Configuration reloads (SIGHUP) applied.",
            shared.reloads.load(std::sync::atomic::Ordering::Relaxed),
        ),
        (
            "l2watch_config_reload_errors_total",
            "Configuration reloads refused (the running configuration was kept).",
            shared
                .reload_errors
                .load(std::sync::atomic::Ordering::Relaxed),
        ),
    ] {
        out.counter(n, help, &[])?
            .with_label_values::<&str>(&[])
            .inc_by(v);
    }

    // The agent itself.
    let attach = out.gauge(
        "l2watch_attach_mode",
        "1 for the XDP mode each interface is attached in (native or generic); detached = down or gone.",
        &["interface", "mode"],
    )?;
    for l in shared.links.read().expect("links lock").values() {
        let mode = l.mode.map_or("detached", |m| m.name());
        attach.with_label_values(&[&l.name, mode]).set(1);
    }
    out.float_gauge(
        "l2watch_ringbuf_lag_seconds",
        "Age of the last ring-buffer record when the agent read it.",
        &[],
    )?
    .with_label_values::<&str>(&[])
    .set(shared.lag_ns.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e9);
    if let Some(s) = &shared.store_stats {
        use std::sync::atomic::Ordering::Relaxed;
        for (n, help, v) in [
            (
                "l2watch_store_batches_total",
                "Batches committed to the database.",
                s.batches.load(Relaxed),
            ),
            (
                "l2watch_store_rows_total",
                "Rows written to the database.",
                s.rows.load(Relaxed),
            ),
            (
                "l2watch_store_errors_total",
                "Batches that failed to commit (their rows are lost).",
                s.errors.load(Relaxed),
            ),
            (
                "l2watch_store_busy_total",
                "Flushes deferred because the writer was busy (nothing lost).",
                s.busy.load(Relaxed),
            ),
            (
                "l2watch_store_pruned_rows_total",
                "Rows removed by retention.",
                s.pruned.load(Relaxed),
            ),
        ] {
            out.counter(n, help, &[])?
                .with_label_values::<&str>(&[])
                .inc_by(v);
        }
        out.float_gauge(
            "l2watch_store_last_commit_seconds",
            "Duration of the last database commit.",
            &[],
        )?
        .with_label_values::<&str>(&[])
        .set(s.last_commit_us.load(Relaxed) as f64 / 1e6);
    }
    out.gauge(
        "l2watch_build_info",
        "Always 1; the labels say which l2watch this is.",
        &["version"],
    )?
    .with_label_values(&[env!("CARGO_PKG_VERSION")])
    .set(1);

    let mut buf = Vec::new();
    TextEncoder::new().encode(&out.0.gather(), &mut buf)?;
    Ok(String::from_utf8(buf).expect("the text format is UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(vlan: Option<u16>) -> Segment {
        Segment {
            iface: crate::model::Iface::named("eth2"),
            outer_vlan: vlan,
            inner_vlan: None,
        }
    }

    #[test]
    fn vlan_labels_keep_the_busiest_and_fold_the_rest() {
        let frames = (1..=10u16).map(|v| (seg(Some(v)), u64::from(v) * 10));
        let l = VlanLabels::busiest(frames.chain([(seg(None), 1_000)]), 3);
        assert_eq!(l.label(&seg(None)), "untagged");
        assert_eq!(l.label(&seg(Some(10))), "10");
        assert_eq!(l.label(&seg(Some(9))), "9");
        assert_eq!(l.label(&seg(Some(8))), OTHER);
        assert_eq!(l.label(&seg(Some(4000))), OTHER, "never seen by the kernel");
        assert_eq!(l.folded[&crate::model::Iface::named("eth2")], 8);
    }
}
