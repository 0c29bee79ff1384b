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
use monitor_common::families;

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

/// A metric family the exporter registers: its name, type and help.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FamilyInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub help: String,
    pub labels: Vec<String>,
}

/// The registry of one scrape, and every family registered in it (with or without samples:
/// the text format leaves a labelled family without samples out).
struct Out(Registry, std::cell::RefCell<Vec<FamilyInfo>>);

impl Out {
    fn new() -> Out {
        Out(Registry::new(), Default::default())
    }

    fn note(&self, name: &str, kind: &'static str, help: &str, labels: &[&str]) {
        self.1.borrow_mut().push(FamilyInfo {
            name: name.into(),
            kind,
            help: help.into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
        });
    }

    fn counter(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, MetricsError> {
        let c = IntCounterVec::new(Opts::new(name, help), labels)?;
        self.0.register(Box::new(c.clone()))?;
        self.note(name, "counter", help, labels);
        Ok(c)
    }

    fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec, MetricsError> {
        let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
        self.0.register(Box::new(g.clone()))?;
        self.note(name, "gauge", help, labels);
        Ok(g)
    }

    /// A histogram family from bucket counts the engine keeps (the client library only
    /// observes values one by one): `rows` are label values and their histogram.
    fn histogram(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        rows: Vec<(Vec<String>, crate::state::dhcp_health::Hist)>,
    ) -> Result<(), MetricsError> {
        use prometheus::proto;
        let mut metrics = Vec::new();
        for (values, h) in rows {
            let mut m = proto::Metric::default();
            m.set_label(
                labels
                    .iter()
                    .zip(values)
                    .map(|(l, v)| {
                        let mut p = proto::LabelPair::default();
                        p.set_name(l.to_string());
                        p.set_value(v);
                        p
                    })
                    .collect(),
            );
            let mut hist = proto::Histogram::default();
            let mut cumulative = 0;
            hist.set_bucket(
                crate::state::dhcp_health::BUCKETS
                    .iter()
                    .zip(h.buckets)
                    .map(|(b, n)| {
                        cumulative += n;
                        let mut bucket = proto::Bucket::default();
                        bucket.set_upper_bound(*b);
                        bucket.set_cumulative_count(cumulative);
                        bucket
                    })
                    .collect(),
            );
            hist.set_sample_count(h.count);
            hist.set_sample_sum(h.sum_secs);
            m.set_histogram(hist);
            metrics.push(m);
        }
        let mut mf = proto::MetricFamily::default();
        mf.set_name(name.to_string());
        mf.set_help(help.to_string());
        mf.set_field_type(proto::MetricType::HISTOGRAM);
        mf.set_metric(metrics);
        let desc = prometheus::core::Desc::new(
            name.to_string(),
            help.to_string(),
            labels.iter().map(|l| l.to_string()).collect(),
            Default::default(),
        )?;
        self.0.register(Box::new(Fixed { desc, mf }))?;
        self.note(name, "histogram", help, labels);
        Ok(())
    }

    fn float_gauge(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<GaugeVec, MetricsError> {
        let g = GaugeVec::new(Opts::new(name, help), labels)?;
        self.0.register(Box::new(g.clone()))?;
        self.note(name, "gauge", help, labels);
        Ok(g)
    }
}

/// A family built by hand (a histogram from the engine's bucket counts).
struct Fixed {
    desc: prometheus::core::Desc,
    mf: prometheus::proto::MetricFamily,
}

impl prometheus::core::Collector for Fixed {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        vec![self.mf.clone()]
    }
}

/// The text exposition of every metric, now. Each subsystem is its own collector: one that
/// fails is logged and reported as `l2watch_collector_up{collector} 0`, and the others are
/// still exported.
pub fn render(shared: &Shared) -> Result<String, MetricsError> {
    let out = collect(shared)?;
    let mut buf = Vec::new();
    TextEncoder::new().encode(&out.0.gather(), &mut buf)?;
    Ok(String::from_utf8(buf).expect("the text format is UTF-8"))
}

/// Every metric family the exporter registers, as it does for a scrape, whether or not it
/// has samples now: the list documentation, alert rules and dashboards are checked against.
pub fn catalog(shared: &Shared) -> Result<Vec<FamilyInfo>, MetricsError> {
    let mut v = collect(shared)?.1.into_inner();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(v)
}

fn collect(shared: &Shared) -> Result<Out, MetricsError> {
    let cfg = shared.metrics.read().expect("metrics lock").clone();
    let out = Out::new();
    let snap = shared.probe.lock().expect("probe lock").snapshot();
    // The engine's series use the same VLAN labels as the kernel's.
    let vlans = VlanLabels::busiest(
        snap.iter().flat_map(|s| {
            s.segments
                .iter()
                .map(|(k, c)| (segment_of(k, &shared.ifaces), c.get(Counter::Frames)))
        }),
        cfg.vlan_label_cap,
    );
    let results = [
        (
            "kernel",
            snap.map_err(MetricsError::from)
                .and_then(|snap| kernel(&out, shared, &snap, &vlans)),
        ),
        ("engine", engine(&out, shared, &vlans, &cfg)),
        ("store", store(&out, shared)),
        ("agent", agent(&out, shared)),
    ];
    let up = out.gauge(
        "l2watch_collector_up",
        "1 when the collector read its subsystem for this scrape, 0 when it failed (logged).",
        &["collector"],
    )?;
    for (name, r) in results {
        if let Err(e) = &r {
            tracing::warn!(collector = name, error = %e, "metrics collector failed");
        }
        up.with_label_values(&[name]).set(i64::from(r.is_ok()));
    }
    Ok(out)
}

/// Kernel counters per segment and the kernel's self-monitoring stats. Which value goes to
/// which family is said once, in `monitor_common` (`Counter::export`, `Stat::export`).
fn kernel(
    out: &Out,
    shared: &Shared,
    snap: &crate::capture::Snapshot,
    vlans: &VlanLabels,
) -> Result<(), MetricsError> {
    let mut per_label: BTreeMap<(String, String), SegmentCounters> = BTreeMap::new();
    for (k, c) in &snap.segments {
        let seg = segment_of(k, &shared.ifaces);
        per_label
            .entry((seg.iface.name().to_string(), vlans.label(&seg)))
            .or_insert(SegmentCounters::ZERO)
            .add(c);
    }
    let mut families = BTreeMap::new();
    for f in families::COUNTERS {
        let mut labels = vec!["interface"];
        if f.per_vlan {
            labels.push("vlan");
        }
        if !f.label.is_empty() {
            labels.push(f.label);
        }
        families.insert(f.name, out.counter(f.name, f.help, &labels)?);
    }
    for ((iface, vlan), c) in &per_label {
        for ctr in Counter::ALL {
            let Some((f, value)) = ctr.export() else {
                continue;
            };
            let mut labels = vec![iface.as_str()];
            if f.per_vlan {
                labels.push(vlan);
            }
            if !f.label.is_empty() {
                labels.push(value);
            }
            families[f.name]
                .with_label_values(&labels)
                .inc_by(c.get(*ctr));
        }
    }
    let overflow = out.counter(
        "l2watch_segment_overflow_frames_total",
        "Frames of (interface, VLAN) segments beyond the kernel's segment map, by tag depth.",
        &["depth"],
    )?;
    for (i, c) in snap.overflow.iter().enumerate() {
        let depth = Counter::for_depth(i).export().map_or("4+", |e| e.1);
        overflow
            .with_label_values(&[depth])
            .inc_by(c.get(Counter::Frames));
    }
    let folded = out.gauge(
        "l2watch_vlan_labels_folded",
        "Distinct VLANs of an interface summed under vlan=\"other\" (over metrics.vlan_label_cap).",
        &["interface"],
    )?;
    for (iface, n) in &vlans.folded {
        folded.with_label_values(&[iface.name()]).set(*n as i64);
    }
    let mut stat_families = BTreeMap::new();
    for f in families::STATS {
        let labels: &[&str] = if f.label.is_empty() { &[] } else { &[f.label] };
        stat_families.insert(f.name, out.counter(f.name, f.help, labels)?);
    }
    for s in Stat::ALL {
        let Some((f, value)) = s.export() else {
            continue;
        };
        let labels: &[&str] = if f.label.is_empty() { &[] } else { &[value] };
        let v = snap.stats.get(s.index()).copied().unwrap_or(0);
        stat_families[f.name].with_label_values(labels).inc_by(v);
    }
    Ok(())
}

/// The switch-facing view: neighbours, spanning trees and LACP ports, each an info series
/// capped by `metrics.server_info_cap` (the rows are sorted, so the capped set is stable).
fn switch_ports(
    out: &Out,
    vlans: &VlanLabels,
    cfg: &crate::config::MetricsConfig,
    (neighbours, stp, lacp, dropped): (
        Vec<crate::engine::NeighbourRow>,
        Vec<crate::engine::StpRow>,
        Vec<crate::engine::LacpRow>,
        u64,
    ),
) -> Result<(), MetricsError> {
    let cap = cfg.server_info_cap;
    let g = out.gauge(
        "l2watch_switch_neighbours",
        "LLDP and CDP neighbours heard, by interface and protocol.",
        &["interface", "protocol"],
    )?;
    let mut per: BTreeMap<(String, &str), i64> = BTreeMap::new();
    for n in &neighbours {
        *per.entry((n.key.seg.iface.name().to_string(), n.key.protocol.name()))
            .or_default() += 1;
    }
    for ((i, p), n) in &per {
        g.with_label_values(&[i.as_str(), p]).set(*n);
    }
    let info = out.gauge(
        "l2watch_switch_neighbour_info",
        "One series per LLDP/CDP neighbour (capped by metrics.server_info_cap): the switch          and port behind an interface, and the native VLAN it advertises (\"\" when none).",
        &["interface", "vlan", "protocol", "system", "port", "native_vlan"],
    )?;
    // Names come off the wire: at most 64 characters each in a label.
    let short = |s: &str| s.chars().take(64).collect::<String>();
    for n in neighbours.iter().take(cap) {
        info.with_label_values(&[
            n.key.seg.iface.name(),
            &vlans.label(&n.key.seg),
            n.key.protocol.name(),
            &short(&n.name),
            &short(&n.neighbour.id.port),
            &n.neighbour
                .native_vlan
                .map(|v| v.to_string())
                .unwrap_or_default(),
        ])
        .set(1);
    }
    let info = out.gauge(
        "l2watch_stp_root_info",
        "One series per spanning tree seen (capped by metrics.server_info_cap): its root          bridge (priority/MAC) and version; pvst_vlan is the PVST+ VLAN (\"\" for the common          tree).",
        &["interface", "vlan", "pvst_vlan", "root", "version"],
    )?;
    let changes = out.counter(
        "l2watch_stp_root_changes_total",
        "Root bridge changes per spanning tree (capped like l2watch_stp_root_info).",
        &["interface", "vlan", "pvst_vlan"],
    )?;
    for s in stp.iter().take(cap) {
        let pv = s.key.pvst_vlan.map(|v| v.to_string()).unwrap_or_default();
        let (i, v) = (s.key.seg.iface.name(), vlans.label(&s.key.seg));
        info.with_label_values(&[i, &v, &pv, &s.stp.root_id, s.stp.version])
            .set(1);
        changes
            .with_label_values(&[i, &v, &pv])
            .inc_by(s.stp.root_changes);
    }
    let info = out.gauge(
        "l2watch_lacp_port_info",
        "One series per LACP port heard (capped by metrics.server_info_cap): the switch's \
         system and key, and the bond of the interface (\"\" when none); 1 while the switch \
         has us as its partner, 0 once it lost us.",
        &["interface", "bond", "actor_system", "actor_key"],
    )?;
    let sync = out.gauge(
        "l2watch_lacp_synchronized",
        "1 while the switch's LACP port is in sync (and collecting and distributing), else 0.",
        &["interface", "bond", "actor_system"],
    )?;
    for l in lacp.iter().take(cap) {
        let bond = l.bond.clone().unwrap_or_default();
        let sys = l.port.actor.system.to_string();
        let i = l.key.seg.iface.name();
        info.with_label_values(&[i, &bond, &sys, &l.port.actor.key.to_string()])
            .set(i64::from(!l.port.partner_lost));
        let s = l.port.actor.state;
        sync.with_label_values(&[i, &bond, &sys]).set(i64::from(
            s.synchronization && s.collecting && s.distributing,
        ));
    }
    out.counter(
        "l2watch_switch_state_dropped_total",
        "Neighbours, spanning trees or LACP ports not tracked: their table was full.",
        &[],
    )?
    .with_label_values::<&str>(&[])
    .inc_by(dropped);
    Ok(())
}

/// The device table, findings, DHCP servers and the engine's counters.
fn engine(
    out: &Out,
    shared: &Shared,
    vlans: &VlanLabels,
    cfg: &crate::config::MetricsConfig,
) -> Result<(), MetricsError> {
    let name = |iface: Iface| iface.name().to_string();
    // Under its lock only a count per segment and copies of small rows are made
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
    let mut addrs6: HashMap<Segment, i64> = HashMap::new();
    for ((seg, _), st) in e.ipv6().neighbours.iter() {
        *addrs6.entry(*seg).or_default() += st.addrs.len() as i64;
    }
    let routers = e.router_rows();
    let servers6: Vec<Segment> = e.ipv6().servers.iter().map(|(k, _)| k.seg).collect();
    let health = e.dhcp_health();
    // Sorted, so that the capped set is stable from scrape to scrape.
    let mut response: Vec<_> = health
        .response
        .iter()
        .map(|((seg, server, kind), h)| (*seg, *server, *kind, h.clone()))
        .collect();
    response.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    response.truncate(cfg.server_info_cap.saturating_mul(3));
    let outcomes: Vec<_> = health.outcomes.iter().map(|(k, n)| (*k, *n)).collect();
    let unanswered: Vec<_> = health.unanswered.iter().map(|(k, n)| (*k, *n)).collect();
    let mut boot: Vec<_> = health
        .boot_offers
        .iter()
        .map(|((seg, b), n)| (*seg, b.clone(), *n))
        .collect();
    boot.sort();
    boot.truncate(cfg.server_info_cap);
    let mut pxe: BTreeMap<(Segment, &'static str), BTreeSet<crate::model::Mac>> = BTreeMap::new();
    for (k, t) in e.transactions().iter() {
        if t.pxe {
            let arch = t.arch.map_or("unknown", crate::decode::dhcp::arch_name);
            pxe.entry((k.seg, arch)).or_default().insert(k.client);
        }
    }
    let health_dropped = health.dropped;
    let st = e.stats();
    let switch = (
        e.neighbour_rows(),
        e.stp_rows(),
        e.lacp_rows(),
        e.switch().dropped(),
    );
    drop(e);
    switch_ports(out, vlans, cfg, switch)?;
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
    let by_label = |segs: &mut dyn Iterator<Item = (Segment, i64)>| {
        let mut m: BTreeMap<(String, String), i64> = BTreeMap::new();
        for (seg, n) in segs {
            *m.entry((name(seg.iface), vlans.label(&seg))).or_default() += n;
        }
        m
    };
    let g = out.gauge(
        "l2watch_ipv6_addresses",
        "IPv6 addresses held by stations (NS, NA, DHCPv6), by interface and VLAN.",
        &["interface", "vlan"],
    )?;
    for ((i, v), n) in by_label(&mut addrs6.into_iter()) {
        g.with_label_values(&[&i, &v]).set(n);
    }
    let g = out.gauge(
        "l2watch_ipv6_routers",
        "IPv6 routers (source address and MAC) that sent router advertisements, by interface \
         and VLAN.",
        &["interface", "vlan"],
    )?;
    for ((i, v), n) in by_label(&mut routers.iter().map(|r| (r.key.seg, 1))) {
        g.with_label_values(&[&i, &v]).set(n);
    }
    let info = out.gauge(
        "l2watch_ipv6_router_info",
        "One series per IPv6 router (capped by metrics.server_info_cap); 1 while it \
         advertises a lifetime, 0 once it retired (lifetime 0).",
        &["interface", "vlan", "router_ip", "mac", "authorized"],
    )?;
    for r in routers.iter().take(cfg.server_info_cap) {
        let auth = match r.authorized {
            Some(true) => "true",
            Some(false) => "false",
            None => "unknown",
        };
        info.with_label_values(&[
            &name(r.key.seg.iface),
            &vlans.label(&r.key.seg),
            &r.key.ip.to_string(),
            &r.key.mac.to_string(),
            auth,
        ])
        .set(r.router.retired_at.is_none() as i64);
    }
    let mut hist_rows: BTreeMap<Vec<String>, crate::state::dhcp_health::Hist> = BTreeMap::new();
    for (seg, server, kind, h) in response {
        let k = vec![
            name(seg.iface),
            vlans.label(&seg),
            server.to_string(),
            kind.into(),
        ];
        let e = hist_rows.entry(k).or_default();
        // Segments folded into vlan="other" add up.
        for (a, b) in e.buckets.iter_mut().zip(h.buckets) {
            *a += b;
        }
        e.count += h.count;
        e.sum_secs += h.sum_secs;
    }
    out.histogram(
        "l2watch_dhcp_response_seconds",
        "DHCP answer delay per server: an OFFER from the client's DISCOVER, an ACK or NAK from \
         its REQUEST (at most metrics.server_info_cap servers).",
        &["interface", "vlan", "server", "type"],
        hist_rows.into_iter().collect(),
    )?;
    let c = out.counter(
        "l2watch_dhcp_transactions_total",
        "DHCP transactions ended, by outcome (bound, nak, declined, informed, unanswered).",
        &["interface", "vlan", "outcome"],
    )?;
    for ((seg, o), n) in outcomes {
        c.with_label_values(&[&name(seg.iface), &vlans.label(&seg), o.name()])
            .inc_by(n);
    }
    let c = out.counter(
        "l2watch_dhcp_unanswered_total",
        "DISCOVERs and REQUESTs no server answered within engine.dhcp_transactions.timeout_secs.",
        &["interface", "vlan", "type"],
    )?;
    for ((seg, t), n) in unanswered {
        c.with_label_values(&[&name(seg.iface), &vlans.label(&seg), t])
            .inc_by(n);
    }
    let g = out.gauge(
        "l2watch_dhcp_pxe_clients",
        "PXE clients (vendor class PXEClient, or option 93) in the transaction table, by \
         architecture.",
        &["interface", "vlan", "arch"],
    )?;
    for ((seg, arch), clients) in &pxe {
        g.with_label_values(&[name(seg.iface).as_str(), vlans.label(seg).as_str(), arch])
            .add(clients.len() as i64);
    }
    let c = out.counter(
        "l2watch_dhcp_boot_offers_total",
        "OFFERs naming a boot server (option 66, else siaddr), by boot server (at most \
         metrics.server_info_cap).",
        &["interface", "vlan", "boot_server"],
    )?;
    for (seg, b, n) in boot {
        c.with_label_values(&[&name(seg.iface), &vlans.label(&seg), &b])
            .inc_by(n);
    }
    out.counter(
        "l2watch_dhcp_health_keys_dropped_total",
        "DHCP health keys (server delays, outcomes, boot servers) not tracked: a map was full.",
        &[],
    )?
    .with_label_values::<&str>(&[])
    .inc_by(health_dropped);
    let g = out.gauge(
        "l2watch_dhcpv6_servers",
        "DHCPv6 servers (by DUID) that answered, by interface and VLAN.",
        &["interface", "vlan"],
    )?;
    for ((i, v), n) in by_label(&mut servers6.into_iter().map(|s| (s, 1))) {
        g.with_label_values(&[&i, &v]).set(n);
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
            "Findings folded into another that explains them (an open arp_flood, or the \
             duplicate_ip of their address) instead of opening their own.",
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
            "l2watch_ipv6_moves_total",
            "IPv6 addresses that moved to another MAC.",
            st.ipv6_moves,
        ),
        (
            "l2watch_ipv6_station_evictions_total",
            "IPv6 stations (segment and MAC, with their addresses) evicted from the full table.",
            st.ipv6_station_evictions,
        ),
        (
            "l2watch_ipv6_router_evictions_total",
            "IPv6 routers evicted from the full router table.",
            st.router_evictions,
        ),
        (
            "l2watch_dhcpv6_server_evictions_total",
            "DHCPv6 servers evicted from the full server list.",
            st.dhcpv6_server_evictions,
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
            "l2watch_event_stream_outbox_dropped_total",
            "Events not published to the live stream because a batch overfilled its outbox.",
            st.stream_dropped,
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
    Ok(())
}

/// The store writer's counters (when there is a database).
fn store(out: &Out, shared: &Shared) -> Result<(), MetricsError> {
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
    Ok(())
}

/// The agent itself: attachments, ring-buffer lag, build.
fn agent(out: &Out, shared: &Shared) -> Result<(), MetricsError> {
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
    {
        use std::sync::atomic::Ordering::Relaxed;
        let h = &shared.http;
        for (n, help, v) in [
            (
                "l2watch_http_connections_total",
                "Connections the listener accepted.",
                h.connections.load(Relaxed),
            ),
            (
                "l2watch_http_connections_rejected_total",
                "Connections closed at once because web.max_connections were open.",
                h.connections_rejected.load(Relaxed),
            ),
            (
                "l2watch_http_tls_handshake_failures_total",
                "TLS handshakes that failed or timed out (wrong CA, plain HTTP to a TLS port).",
                h.tls_handshake_failures.load(Relaxed),
            ),
            (
                "l2watch_http_auth_failures_total",
                "Requests refused with 401: no or wrong basic-auth credentials.",
                h.auth_failures.load(Relaxed),
            ),
            (
                "l2watch_http_requests_refused_total",
                "Requests refused because they carried a body (the API is read-only).",
                h.requests_refused.load(Relaxed),
            ),
            (
                "l2watch_http_timeouts_total",
                "Connections closed because the request head or TLS handshake was too slow.",
                h.timeouts.load(Relaxed),
            ),
        ] {
            out.counter(n, help, &[])?
                .with_label_values::<&str>(&[])
                .inc_by(v);
        }
        let st = &shared.hub.stats;
        for (n, help, v) in [
            (
                "l2watch_event_stream_published_total",
                "Events published to the live stream (/api/v1/events/stream).",
                st.published.load(Relaxed),
            ),
            (
                "l2watch_event_stream_cut_off_total",
                "Stream readers cut off for falling web.stream_buffer events behind.",
                st.cut_off.load(Relaxed),
            ),
            (
                "l2watch_event_stream_lagged_events_total",
                "Events the cut-off readers had not read (they resume with Last-Event-ID).",
                st.lagged_events.load(Relaxed),
            ),
            (
                "l2watch_event_stream_refused_total",
                "Streams refused with 503 because web.max_streams were open.",
                st.refused.load(Relaxed),
            ),
        ] {
            out.counter(n, help, &[])?
                .with_label_values::<&str>(&[])
                .inc_by(v);
        }
        out.gauge(
            "l2watch_event_stream_readers",
            "Live stream readers connected now.",
            &[],
        )?
        .with_label_values::<&str>(&[])
        .set(st.open.load(Relaxed) as i64);
        out.gauge(
            "l2watch_http_connections_open",
            "Connections open now.",
            &[],
        )?
        .with_label_values::<&str>(&[])
        .set(h.open.load(Relaxed) as i64);
    }
    out.gauge(
        "l2watch_build_info",
        "Always 1; the labels say which l2watch this is.",
        &["version"],
    )?
    .with_label_values(&[env!("CARGO_PKG_VERSION")])
    .set(1);
    Ok(())
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
    fn every_kernel_value_is_exported_once_under_a_listed_family() {
        use monitor_common::{DhcpMsgType, Family};
        let check = |exports: Vec<(&'static Family, &'static str)>, listed: &[&Family]| {
            let mut seen = BTreeSet::new();
            for (f, v) in exports {
                assert!(listed.contains(&f), "{} is not listed", f.name);
                assert_eq!(f.label.is_empty(), v.is_empty(), "{}: {v:?}", f.name);
                assert!(seen.insert((f.name, v)), "{} {v} twice", f.name);
            }
            for f in listed {
                assert!(
                    seen.iter().any(|(n, _)| *n == f.name),
                    "{} is empty",
                    f.name
                );
            }
        };
        check(
            Counter::ALL.iter().filter_map(|c| c.export()).collect(),
            families::COUNTERS,
        );
        // Every stat is exported: they are how loss is seen.
        assert!(Stat::ALL.iter().all(|s| s.export().is_some()));
        check(
            Stat::ALL.iter().filter_map(|s| s.export()).collect(),
            families::STATS,
        );
        // The kernel's spelled-out DHCP counter agrees with the message types.
        for code in 0..=255u8 {
            let want =
                DhcpMsgType::from_code(code).map_or(Counter::DhcpOtherMsgtype, |t| t.counter());
            assert_eq!(Counter::for_dhcp_type(code), want, "{code}");
        }
        for t in DhcpMsgType::ALL {
            assert_eq!(Some(*t), DhcpMsgType::from_code(*t as u8));
            assert_eq!(t.counter().export().map(|e| e.1), Some(t.name()));
        }
    }

    #[test]
    fn a_histogram_from_bucket_counts_is_a_prometheus_histogram() {
        let out = Out::new();
        let mut h = crate::state::dhcp_health::Hist::default();
        h.observe(0.003);
        h.observe(0.3);
        h.observe(20.0);
        out.histogram(
            "t_seconds",
            "test",
            &["server"],
            vec![(vec!["10.0.0.1".into()], h)],
        )
        .unwrap();
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&out.0.gather(), &mut buf)
            .unwrap();
        let text = String::from_utf8(buf).unwrap();
        for line in [
            "# TYPE t_seconds histogram",
            r#"t_seconds_bucket{server="10.0.0.1",le="0.001"} 0"#,
            r#"t_seconds_bucket{server="10.0.0.1",le="0.005"} 1"#,
            r#"t_seconds_bucket{server="10.0.0.1",le="0.5"} 2"#,
            r#"t_seconds_bucket{server="10.0.0.1",le="10"} 2"#,
            r#"t_seconds_bucket{server="10.0.0.1",le="+Inf"} 3"#,
            r#"t_seconds_count{server="10.0.0.1"} 3"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
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
