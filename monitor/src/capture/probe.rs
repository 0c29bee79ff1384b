//! Loads the embedded XDP object, configures it, attaches it to interfaces (native mode first,
//! then generic), runs frames through it with BPF_PROG_TEST_RUN, and reads its maps.
use std::{collections::BTreeMap, time::Duration};

use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray, PerCpuValues, ProgramArray, RingBuf},
    programs::{xdp::XdpLinkId, ProgramError, TestRun, TestRunOptions, Xdp, XdpMode},
    Ebpf, EbpfLoader,
};
use monitor_common::{
    config_flags, jump, map_names, map_sizes, Config, SegmentCounters, SegmentKey, Stat,
    IP6_PROGRAM_NAME, PROGRAM_NAME, SWITCH_PROGRAM_NAME, VLAN_MAX_DEPTH,
};

use super::event::{decode, KernelEvent};
use monitor_common::{
    ArpEvent, BindingKey, DhcpEvent, Ip6Event, NdEvent, NdKey, PendingDhcpKey, RouterKey,
    SwitchEvent, SwitchKey,
};

/// The compiled XDP object, built by build.rs with aya-build.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor"));

/// A bare XDP_PASS program (`monitor-ebpf/src/baseline.rs`), the benchmark's yardstick.
static BASELINE_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/baseline"));

/// The storm generator (`monitor-ebpf/src/storm.rs`): benchmarks and tests only.
static STORM_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/storm"));

/// The bare XDP_PASS program, loaded, for benchmarks.
pub struct Baseline {
    ebpf: Ebpf,
    link: Option<XdpLinkId>,
}

impl Baseline {
    pub fn load() -> Result<Baseline, ProbeError> {
        let mut ebpf = Ebpf::load(BASELINE_OBJECT).map_err(ProbeError::Load)?;
        let prog: &mut Xdp = ebpf
            .program_mut("baseline")
            .ok_or(ProbeError::Missing("program"))?
            .try_into()?;
        prog.load()?;
        Ok(Baseline { ebpf, link: None })
    }

    /// Attaches the bare program to `iface` in native mode (the benchmark's yardstick on a
    /// live interface); it stays until this value is dropped.
    pub fn attach(&mut self, iface: &str) -> Result<(), ProbeError> {
        let prog: &mut Xdp = self
            .ebpf
            .program_mut("baseline")
            .ok_or(ProbeError::Missing("program"))?
            .try_into()?;
        self.link = Some(prog.attach(iface, XdpMode::Driver)?);
        Ok(())
    }

    /// Runs one frame `repeat` times; returns the kernel's mean time per run.
    pub fn test_run_repeat(&mut self, frame: &[u8], repeat: u32) -> Result<Duration, ProbeError> {
        let prog: &mut Xdp = self
            .ebpf
            .program_mut("baseline")
            .ok_or(ProbeError::Missing("program"))?
            .try_into()?;
        let r = prog.test_run(TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..TestRunOptions::default()
        })?;
        Ok(r.duration)
    }
}

/// The storm generator, loaded: each [`Storm::send`] offers `n` frames into the interface
/// it was configured with, as fast as the kernel makes them (BPF_PROG_TEST_RUN live frames).
pub struct Storm {
    ebpf: Ebpf,
    template: Vec<u8>,
}

impl Storm {
    /// Loads the generator: frames go out of `ifindex` (in the caller's network namespace),
    /// station `first + n % stations`.
    pub fn load(ifindex: u32, first: u32, stations: u32) -> Result<Storm, ProbeError> {
        let mut ebpf = Ebpf::load(STORM_OBJECT).map_err(ProbeError::Load)?;
        let prog: &mut Xdp = ebpf
            .program_mut("storm")
            .ok_or(ProbeError::Missing("program"))?
            .try_into()?;
        prog.load()?;
        let name = "STORM_CONFIG";
        let map = ebpf.map_mut(name).ok_or(ProbeError::Missing(name))?;
        let mut arr: Array<_, monitor_common::StormConfig> =
            Array::try_from(map).map_err(|source| ProbeError::Map { name, source })?;
        let cfg = monitor_common::StormConfig {
            ifindex,
            first,
            stations,
            _pad: 0,
        };
        arr.set(0, cfg, 0)
            .map_err(|source| ProbeError::Map { name, source })?;
        // An ARP reply template (sender fields are rewritten per frame), to a broadcast.
        let mut t = vec![0xff; 6];
        t.extend_from_slice(&[0x02, 0x10, 0, 0, 0, 0, 0x08, 0x06]);
        t.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
        t.extend_from_slice(&[0x02, 0x10, 0, 0, 0, 0, 198, 18, 0, 0]);
        t.extend_from_slice(&[0, 0, 0, 0, 0, 0, 198, 19, 255, 254]);
        t.resize(60, 0);
        Ok(Storm { ebpf, template: t })
    }

    /// Offers `n` frames; returns when the kernel has sent them.
    pub fn send(&mut self, n: u32) -> Result<(), ProbeError> {
        let prog: &mut Xdp = self
            .ebpf
            .program_mut("storm")
            .ok_or(ProbeError::Missing("program"))?
            .try_into()?;
        prog.test_run(TestRunOptions {
            data_in: Some(&self.template),
            repeat: n.max(1),
            attrs: aya::programs::TestRunAttrs::new().xdp_live_frames(64),
            ..TestRunOptions::default()
        })?;
        Ok(())
    }
}

/// Settings the kernel program runs with; written to the CONFIG map and map sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    /// A binding already reported is reported again after this long.
    pub refresh: Duration,
    pub arp_events: bool,
    pub dhcp_events: bool,
    /// Apply the per-CPU token buckets (off for replay, so every message is seen).
    pub rate_limit: bool,
    pub arp_rate_per_sec: u32,
    pub arp_burst: u32,
    pub dhcp_rate_per_sec: u32,
    pub dhcp_burst: u32,
    /// Capacity of the per-segment counter map (interface x VLAN pairs).
    pub max_segments: u32,
    /// Capacity of the binding-suppression LRU map.
    pub max_bindings: u32,
    /// Ring-buffer size in bytes (a power of two, multiple of the page size).
    pub ringbuf_bytes: u32,
    /// Capacity of the map of ARP events held back until the agent drains them.
    pub max_pending_arp: u32,
    /// Capacity of the map of state-bearing DHCP messages held back likewise.
    pub max_pending_dhcp: u32,
    /// Emit IPv6 neighbour binding, DAD probe and router advertisement events.
    pub nd_events: bool,
    /// Emit DHCPv6 events (through the DHCP token bucket).
    pub dhcpv6_events: bool,
    pub nd_rate_per_sec: u32,
    pub nd_burst: u32,
    /// Capacity of the IPv6 binding-suppression LRU map.
    pub max_nd_bindings: u32,
    /// Capacity of the map of ND events held back.
    pub max_pending_nd: u32,
    /// Capacity of the map of state-bearing DHCPv6 messages held back.
    pub max_pending_dhcp6: u32,
    /// Emit an event for each changed LLDP, CDP, BPDU or LACPDU.
    pub switch_events: bool,
    pub switch_rate_per_sec: u32,
    pub switch_burst: u32,
    /// Capacity of the map of switch PDUs held back (newest per sender).
    pub max_pending_switch: u32,
    /// A group-addressed frame seen more than this often within `loop_window` is looping;
    /// 0 turns loop detection off.
    pub loop_repeats: u32,
    pub loop_window: Duration,
    /// Distinct ARP targets from one sender within `scan_window` that make it a scanner;
    /// 0 turns scan detection off.
    pub scan_targets: u32,
    pub scan_window: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            refresh: Duration::from_secs(60),
            arp_events: true,
            dhcp_events: true,
            rate_limit: true,
            arp_rate_per_sec: 100_000,
            arp_burst: 100_000,
            dhcp_rate_per_sec: 10_000,
            dhcp_burst: 10_000,
            max_segments: map_sizes::SEGMENTS,
            max_bindings: map_sizes::BINDINGS,
            ringbuf_bytes: map_sizes::RINGBUF_BYTES,
            max_pending_arp: map_sizes::PENDING_ARP,
            max_pending_dhcp: map_sizes::PENDING_DHCP,
            nd_events: true,
            dhcpv6_events: true,
            nd_rate_per_sec: 100_000,
            nd_burst: 100_000,
            max_nd_bindings: map_sizes::ND_BINDINGS,
            max_pending_nd: map_sizes::PENDING_ND,
            max_pending_dhcp6: map_sizes::PENDING_DHCP6,
            switch_events: true,
            switch_rate_per_sec: 1_000,
            switch_burst: 1_000,
            max_pending_switch: map_sizes::PENDING_SWITCH,
            loop_repeats: 200,
            loop_window: Duration::from_secs(1),
            scan_targets: 64,
            scan_window: Duration::from_secs(10),
        }
    }
}

impl ProbeConfig {
    /// Replay: every event, no rate limit.
    pub fn replay() -> Self {
        ProbeConfig {
            rate_limit: false,
            ..Self::default()
        }
    }

    /// The CONFIG map's value; `clock_ns` is the replay clock (0 live).
    pub fn kernel_config(&self, clock_ns: u64) -> Config {
        let mut flags = 0;
        if self.arp_events {
            flags |= config_flags::ARP_EVENTS;
        }
        if self.dhcp_events {
            flags |= config_flags::DHCP_EVENTS;
        }
        if self.rate_limit {
            flags |= config_flags::RATE_LIMIT;
        }
        if self.nd_events {
            flags |= config_flags::ND_EVENTS;
        }
        if self.dhcpv6_events {
            flags |= config_flags::DHCPV6_EVENTS;
        }
        if self.switch_events {
            flags |= config_flags::SWITCH_EVENTS;
        }
        Config {
            refresh_ns: self.refresh.as_nanos().min(u64::MAX as u128) as u64,
            arp_rate_per_sec: self.arp_rate_per_sec,
            arp_burst: self.arp_burst,
            dhcp_rate_per_sec: self.dhcp_rate_per_sec,
            dhcp_burst: self.dhcp_burst,
            flags,
            loop_repeats: self.loop_repeats,
            loop_window_ms: self.loop_window.as_millis().min(u32::MAX as u128) as u32,
            scan_targets: self.scan_targets,
            scan_window_ms: self.scan_window.as_millis().min(u32::MAX as u128) as u32,
            nd_rate_per_sec: self.nd_rate_per_sec,
            nd_burst: self.nd_burst,
            switch_rate_per_sec: self.switch_rate_per_sec,
            switch_burst: self.switch_burst,
            _pad: 0,
            clock_ns,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "loading the XDP program failed: {0} (needs root, or CAP_BPF + CAP_NET_ADMIN + \
         CAP_PERFMON, and a kernel >= 5.18 with BTF; run `l2watch check`)"
    )]
    Load(#[source] aya::EbpfError),
    #[error("the XDP object has no {0}: the embedded object and this binary disagree")]
    Missing(&'static str),
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("program: {0}")]
    Program(#[from] ProgramError),
    #[error("interface {0} does not exist")]
    UnknownInterface(String),
    #[error(
        "attaching to {iface} failed in native mode ({native}) and in generic mode ({generic})"
    )]
    Attach {
        iface: String,
        native: String,
        generic: String,
    },
    #[error("BPF_PROG_TEST_RUN needs at least 14 bytes (an Ethernet header), got {0}")]
    FrameTooShort(usize),
}

/// How the program got attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// Native (driver) XDP.
    Native,
    /// Generic (SKB) XDP.
    Generic,
}

impl AttachMode {
    pub fn name(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        }
    }
}

/// The maps the loader sizes from the configuration, with their sizes.
fn sized_maps(cfg: &ProbeConfig) -> [(&'static str, u32); 11] {
    [
        (map_names::SEGMENT_SLOTS, cfg.max_segments),
        (map_names::SLOT_OWNERS, cfg.max_segments),
        (map_names::SEGMENT_COUNTERS, cfg.max_segments),
        (map_names::BINDINGS, cfg.max_bindings),
        (map_names::EVENTS, cfg.ringbuf_bytes),
        (map_names::PENDING_ARP, cfg.max_pending_arp),
        (map_names::PENDING_DHCP, cfg.max_pending_dhcp),
        (map_names::ND_BINDINGS, cfg.max_nd_bindings),
        (map_names::PENDING_ND, cfg.max_pending_nd),
        (map_names::PENDING_DHCP6, cfg.max_pending_dhcp6),
        (map_names::PENDING_SWITCH, cfg.max_pending_switch),
    ]
}

/// A loaded instance of the XDP program and its maps.
pub struct Probe {
    ebpf: Ebpf,
    events: Option<RingBuf<MapData>>,
    pending: Option<Pending>,
    cfg: ProbeConfig,
    /// Attachments by interface name, so one can be dropped when its interface goes away.
    links: BTreeMap<String, XdpLinkId>,
}

/// Counters summed over CPUs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub segments: BTreeMap<SegmentKey, SegmentCounters>,
    /// Frames whose segment did not fit, by tag depth.
    pub overflow: Vec<SegmentCounters>,
    pub stats: Vec<u64>,
}

impl Probe {
    /// Loads the program, sizes its maps and writes its configuration.
    pub fn load(cfg: &ProbeConfig) -> Result<Probe, ProbeError> {
        if OBJECT.is_empty() {
            return Err(ProbeError::Missing(
                "the XDP object: this binary was built with L2WATCH_NO_EBPF=1 (for fuzzing)",
            ));
        }
        let mut loader = EbpfLoader::new();
        for (name, size) in sized_maps(cfg) {
            loader.map_max_entries(name, size);
        }
        let mut ebpf = loader.load(OBJECT).map_err(ProbeError::Load)?;
        // aya ignores a size for a map the object does not have: a renamed map would keep
        // its compiled-in size silently.
        for (name, _) in sized_maps(cfg) {
            if ebpf.map(name).is_none() {
                return Err(ProbeError::Missing(name));
            }
        }
        // The tail-called event programs first: the classifier's slots must hold them
        // before the classifier sees a frame.
        let mut fds = Vec::new();
        for (name, slot) in [
            (IP6_PROGRAM_NAME, jump::IP6_EVENTS),
            (SWITCH_PROGRAM_NAME, jump::SWITCH_EVENTS),
        ] {
            let p: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or(ProbeError::Missing(name))?
                .try_into()?;
            p.load()?;
            fds.push((slot, p.fd()?.try_clone().map_err(ProgramError::from)?));
        }
        let mut jumps = ProgramArray::try_from(
            ebpf.map_mut(map_names::JUMPS)
                .ok_or(ProbeError::Missing(map_names::JUMPS))?,
        )
        .map_err(|source| ProbeError::Map {
            name: map_names::JUMPS,
            source,
        })?;
        for (slot, fd) in &fds {
            jumps.set(*slot, fd, 0).map_err(|source| ProbeError::Map {
                name: map_names::JUMPS,
                source,
            })?;
        }
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or(ProbeError::Missing("program"))?
            .try_into()?;
        prog.load()?;
        let events = ebpf
            .take_map(map_names::EVENTS)
            .ok_or(ProbeError::Missing(map_names::EVENTS))?;
        let events = RingBuf::try_from(events).map_err(|source| ProbeError::Map {
            name: map_names::EVENTS,
            source,
        })?;
        let pending = Pending::take(&mut ebpf)?;
        let mut probe = Probe {
            ebpf,
            events: Some(events),
            pending: Some(pending),
            cfg: cfg.clone(),
            links: BTreeMap::new(),
        };
        probe.configure(cfg)?;
        Ok(probe)
    }

    /// Writes a new configuration; takes effect on the next frame.
    pub fn configure(&mut self, cfg: &ProbeConfig) -> Result<(), ProbeError> {
        self.cfg = cfg.clone();
        self.write_config(cfg.kernel_config(0))
    }

    /// Replay: sets the capture time the loop and scan windows run on.
    pub fn set_clock(&mut self, clock_ns: u64) -> Result<(), ProbeError> {
        self.write_config(self.cfg.kernel_config(clock_ns.max(1)))
    }

    fn write_config(&mut self, c: Config) -> Result<(), ProbeError> {
        let name = map_names::CONFIG;
        let map = self.ebpf.map_mut(name).ok_or(ProbeError::Missing(name))?;
        let mut arr: Array<_, Config> =
            Array::try_from(map).map_err(|source| ProbeError::Map { name, source })?;
        arr.set(0, c, 0)
            .map_err(|source| ProbeError::Map { name, source })
    }

    /// The aya object, for the log forwarder.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// Attaches to `iface`, native mode first, then generic; returns the mode obtained.
    pub fn attach(&mut self, iface: &str) -> Result<AttachMode, ProbeError> {
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or(ProbeError::Missing("program"))?
            .try_into()?;
        let (mode, link) = match prog.attach(iface, XdpMode::Driver) {
            Ok(link) => (AttachMode::Native, link),
            Err(ProgramError::UnknownInterface { .. }) => {
                return Err(ProbeError::UnknownInterface(iface.to_string()))
            }
            Err(native) => match prog.attach(iface, XdpMode::Skb) {
                Ok(link) => (AttachMode::Generic, link),
                Err(generic) => {
                    return Err(ProbeError::Attach {
                        iface: iface.to_string(),
                        native: error_chain(&native),
                        generic: error_chain(&generic),
                    })
                }
            },
        };
        self.links.insert(iface.to_string(), link);
        Ok(mode)
    }

    /// Forgets (and detaches, if it still exists) the attachment to `iface`. Used when the
    /// interface went away: the kernel already dropped the program with the device.
    pub fn detach(&mut self, iface: &str) {
        let Some(link) = self.links.remove(iface) else {
            return;
        };
        if let Some(Ok(prog)) = self
            .ebpf
            .program_mut(PROGRAM_NAME)
            .map(<&mut Xdp>::try_from)
        {
            let _ = prog.detach(link);
        }
    }

    /// Runs one frame through the program with BPF_PROG_TEST_RUN; returns the XDP verdict.
    pub fn test_run(&mut self, frame: &[u8]) -> Result<u32, ProbeError> {
        Ok(self.test_run_repeat(frame, 1)?.0)
    }

    /// Runs one frame `repeat` times; returns the verdict and the kernel's mean time per run.
    pub fn test_run_repeat(
        &mut self,
        frame: &[u8],
        repeat: u32,
    ) -> Result<(u32, Duration), ProbeError> {
        if frame.len() < 14 {
            return Err(ProbeError::FrameTooShort(frame.len()));
        }
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or(ProbeError::Missing("program"))?
            .try_into()?;
        let opts = TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..TestRunOptions::default()
        };
        let r = prog.test_run(opts)?;
        Ok((r.return_value, r.duration))
    }

    /// Takes the ring buffer, for a reader that polls it asynchronously.
    pub fn take_events(&mut self) -> Option<RingBuf<MapData>> {
        self.events.take()
    }

    /// Takes the pending maps, for the reader that drains them.
    pub fn take_pending(&mut self) -> Option<Pending> {
        self.pending.take()
    }

    /// Decodes every event waiting in the ring buffer (if it was not taken).
    pub fn drain_events(
        &mut self,
        mut on_event: impl FnMut(Result<KernelEvent, super::event::DecodeError>),
    ) {
        if let Some(rb) = self.events.as_mut() {
            while let Some(item) = rb.next() {
                on_event(decode(&item));
            }
        }
        if let Some(p) = self.pending.as_mut() {
            if let Err(e) = p.drain(|ev| on_event(Ok(ev))) {
                tracing::warn!(error = %e, "draining the pending maps failed");
            }
        }
    }

    /// The self-monitoring counters alone, summed over CPUs, indexed by [`Stat`].
    pub fn stats(&self) -> Result<Vec<u64>, ProbeError> {
        let name = map_names::STATS;
        let map = self.ebpf.map(name).ok_or(ProbeError::Missing(name))?;
        let st: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map).map_err(|source| ProbeError::Map { name, source })?;
        Stat::ALL
            .iter()
            .map(|s| {
                st.get(&(*s as u32), 0)
                    .map(|v| v.iter().sum())
                    .map_err(|source| ProbeError::Map { name, source })
            })
            .collect()
    }

    /// Reads every counter, summed over CPUs.
    pub fn snapshot(&self) -> Result<Snapshot, ProbeError> {
        let name = map_names::SEGMENT_SLOTS;
        let map = self.ebpf.map(name).ok_or(ProbeError::Missing(name))?;
        let slots: HashMap<_, SegmentKey, u32> =
            HashMap::try_from(map).map_err(|source| ProbeError::Map { name, source })?;
        let cname = map_names::SEGMENT_COUNTERS;
        let map = self.ebpf.map(cname).ok_or(ProbeError::Missing(cname))?;
        let counters: PerCpuArray<_, SegmentCounters> =
            PerCpuArray::try_from(map).map_err(|source| ProbeError::Map {
                name: cname,
                source,
            })?;
        let mut segments = BTreeMap::new();
        for item in slots.iter() {
            let (key, slot) = item.map_err(|source| ProbeError::Map { name, source })?;
            let values = counters.get(&slot, 0).map_err(|source| ProbeError::Map {
                name: cname,
                source,
            })?;
            segments.insert(key, sum_counters(&values));
        }

        let name = map_names::OVERFLOW_COUNTERS;
        let map = self.ebpf.map(name).ok_or(ProbeError::Missing(name))?;
        let ovf: PerCpuArray<_, SegmentCounters> =
            PerCpuArray::try_from(map).map_err(|source| ProbeError::Map { name, source })?;
        let mut overflow = Vec::with_capacity(VLAN_MAX_DEPTH + 1);
        for i in 0..=VLAN_MAX_DEPTH as u32 {
            let v = ovf
                .get(&i, 0)
                .map_err(|source| ProbeError::Map { name, source })?;
            overflow.push(sum_counters(&v));
        }

        Ok(Snapshot {
            segments,
            overflow,
            stats: self.stats()?,
        })
    }
}

fn sum_counters(values: &PerCpuValues<SegmentCounters>) -> SegmentCounters {
    let mut total = SegmentCounters::ZERO;
    for v in values.iter() {
        total.add(v);
    }
    total
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The maps where the kernel parks events the token bucket or a full ring buffer held back.
/// Draining takes them out with `BPF_MAP_LOOKUP_AND_DELETE_BATCH`, thousands per system call,
/// which aya does not wrap.
pub struct Pending {
    arp: MapData,
    dhcp: MapData,
    nd: MapData,
    ra: MapData,
    dhcp6: MapData,
    switch: MapData,
    arp_buf: BatchBuf<BindingKey, ArpEvent>,
    dhcp_buf: BatchBuf<PendingDhcpKey, DhcpEvent>,
    nd_buf: BatchBuf<NdKey, NdEvent>,
    ra_buf: BatchBuf<RouterKey, Ip6Event>,
    dhcp6_buf: BatchBuf<PendingDhcpKey, Ip6Event>,
    switch_buf: BatchBuf<SwitchKey, SwitchEvent>,
}

/// Entries taken per system call.
const BATCH: usize = 4096;
/// DHCP events are 1 KiB each: a smaller batch keeps the buffer small.
const DHCP_BATCH: usize = 256;

struct BatchBuf<K, V> {
    keys: Vec<K>,
    values: Vec<V>,
}

impl<K: aya::Pod, V: aya::Pod> BatchBuf<K, V> {
    fn zeroed(n: usize) -> Self {
        // SAFETY: Pod types are plain data for which all-zero is a valid value.
        let (k, v) = unsafe { (std::mem::zeroed::<K>(), std::mem::zeroed::<V>()) };
        BatchBuf {
            keys: vec![k; n],
            values: vec![v; n],
        }
    }
}

impl Pending {
    fn take(ebpf: &mut Ebpf) -> Result<Pending, ProbeError> {
        let mut take = |name: &'static str| -> Result<MapData, ProbeError> {
            match ebpf.take_map(name).ok_or(ProbeError::Missing(name))? {
                aya::maps::Map::HashMap(m) => Ok(m),
                _ => Err(ProbeError::Missing(name)),
            }
        };
        let arp = take(map_names::PENDING_ARP)?;
        let dhcp = take(map_names::PENDING_DHCP)?;
        let nd = take(map_names::PENDING_ND)?;
        let ra = take(map_names::PENDING_RA)?;
        let dhcp6 = take(map_names::PENDING_DHCP6)?;
        let switch = take(map_names::PENDING_SWITCH)?;
        Ok(Pending {
            arp,
            dhcp,
            nd,
            ra,
            dhcp6,
            switch,
            arp_buf: BatchBuf::zeroed(BATCH),
            dhcp_buf: BatchBuf::zeroed(DHCP_BATCH),
            nd_buf: BatchBuf::zeroed(BATCH),
            ra_buf: BatchBuf::zeroed(DHCP_BATCH),
            dhcp6_buf: BatchBuf::zeroed(DHCP_BATCH),
            switch_buf: BatchBuf::zeroed(DHCP_BATCH),
        })
    }

    /// Takes every parked event out of the kernel and hands each to `f`; returns how many.
    pub fn drain(&mut self, mut f: impl FnMut(KernelEvent)) -> Result<usize, std::io::Error> {
        let mut n = 0;
        n += drain_map(&self.arp, &mut self.arp_buf, |v| f(KernelEvent::Arp(*v)))?;
        n += drain_map(&self.dhcp, &mut self.dhcp_buf, |v| {
            f(KernelEvent::Dhcp(Box::new(*v)))
        })?;
        n += drain_map(&self.nd, &mut self.nd_buf, |v| f(KernelEvent::Nd(*v)))?;
        n += drain_map(&self.ra, &mut self.ra_buf, |v| {
            f(KernelEvent::RouterAdvert(Box::new(*v)))
        })?;
        n += drain_map(&self.dhcp6, &mut self.dhcp6_buf, |v| {
            f(KernelEvent::Dhcpv6(Box::new(*v)))
        })?;
        n += drain_map(&self.switch, &mut self.switch_buf, |v| {
            f(KernelEvent::Switch(Box::new(*v)))
        })?;
        Ok(n)
    }
}

/// `bpf_attr` for the `BPF_MAP_*_BATCH` commands (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

const BPF_MAP_LOOKUP_AND_DELETE_BATCH: libc::c_long = 25;

fn drain_map<K, V>(
    map: &MapData,
    buf: &mut BatchBuf<K, V>,
    mut f: impl FnMut(&V),
) -> Result<usize, std::io::Error> {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    let fd = map.fd().as_fd().as_raw_fd();
    let mut total = 0;
    // The batch token of a hash map is a bucket index (u32); u64 leaves room.
    let mut token_in: u64 = 0;
    let mut token_out: u64 = 0;
    let mut first = true;
    // Bounded: the kernel keeps adding while we drain; stop after one map's worth of rounds.
    for _ in 0..64 {
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                &mut token_in as *mut u64 as u64
            },
            out_batch: &mut token_out as *mut u64 as u64,
            keys: buf.keys.as_mut_ptr() as u64,
            values: buf.values.as_mut_ptr() as u64,
            count: buf.keys.len() as u32,
            map_fd: fd as u32,
            ..BatchAttr::default()
        };
        // SAFETY: attr points at buffers of `count` keys and values of the map's own types,
        // which outlive the call; the kernel writes at most `count` of each.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_AND_DELETE_BATCH,
                &mut attr as *mut BatchAttr,
                std::mem::size_of::<BatchAttr>() as u32,
            )
        };
        let err = (rc < 0).then(std::io::Error::last_os_error);
        let got = (attr.count as usize).min(buf.values.len());
        for v in &buf.values[..got] {
            f(v);
        }
        total += got;
        match err {
            None => {}
            // ENOENT: the walk reached the end of the map.
            Some(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(total),
            Some(e) => return Err(e),
        }
        token_in = token_out;
        first = false;
    }
    Ok(total)
}
