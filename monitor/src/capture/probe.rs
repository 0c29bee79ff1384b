//! Loads the embedded XDP object, configures it, attaches it to interfaces (native mode first,
//! then generic), runs frames through it with BPF_PROG_TEST_RUN, and reads its maps.
use std::{collections::BTreeMap, time::Duration};

use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray, PerCpuValues, RingBuf},
    programs::{xdp::XdpLinkId, ProgramError, TestRun, TestRunOptions, Xdp, XdpMode},
    Ebpf, EbpfLoader,
};
use monitor_common::{
    config_flags, map_names, Config, SegmentCounters, SegmentKey, Stat, PROGRAM_NAME,
    VLAN_MAX_DEPTH,
};

use super::event::{decode, KernelEvent};

/// The compiled XDP object, built by build.rs with aya-build.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor"));

/// A bare XDP_PASS program (`monitor-ebpf/src/baseline.rs`), the benchmark's yardstick.
static BASELINE_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/baseline"));

/// The bare XDP_PASS program, loaded, for benchmarks.
pub struct Baseline {
    ebpf: Ebpf,
}

impl Baseline {
    pub fn load() -> Result<Baseline, ProbeError> {
        let mut ebpf = Ebpf::load(BASELINE_OBJECT).map_err(ProbeError::Load)?;
        let prog: &mut Xdp = ebpf
            .program_mut("baseline")
            .ok_or(ProbeError::Missing("program"))?
            .try_into()?;
        prog.load()?;
        Ok(Baseline { ebpf })
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
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            refresh: Duration::from_secs(60),
            arp_events: true,
            dhcp_events: true,
            rate_limit: true,
            arp_rate_per_sec: 2_000,
            arp_burst: 10_000,
            dhcp_rate_per_sec: 1_000,
            dhcp_burst: 5_000,
            max_segments: 4_096,
            max_bindings: 65_536,
            ringbuf_bytes: 4 << 20,
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

    fn kernel_config(&self) -> Config {
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
        Config {
            refresh_ns: self.refresh.as_nanos().min(u64::MAX as u128) as u64,
            arp_rate_per_sec: self.arp_rate_per_sec,
            arp_burst: self.arp_burst,
            dhcp_rate_per_sec: self.dhcp_rate_per_sec,
            dhcp_burst: self.dhcp_burst,
            flags,
            _pad: 0,
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

/// A loaded instance of the XDP program and its maps.
pub struct Probe {
    ebpf: Ebpf,
    events: Option<RingBuf<MapData>>,
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
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(map_names::SEGMENT_SLOTS, cfg.max_segments)
            .map_max_entries(map_names::SLOT_OWNERS, cfg.max_segments)
            .map_max_entries(map_names::SEGMENT_COUNTERS, cfg.max_segments)
            .map_max_entries(map_names::BINDINGS, cfg.max_bindings)
            .map_max_entries(map_names::EVENTS, cfg.ringbuf_bytes)
            .load(OBJECT)
            .map_err(ProbeError::Load)?;
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
        let mut probe = Probe {
            ebpf,
            events: Some(events),
            links: BTreeMap::new(),
        };
        probe.configure(cfg)?;
        Ok(probe)
    }

    /// Writes a new configuration; takes effect on the next frame.
    pub fn configure(&mut self, cfg: &ProbeConfig) -> Result<(), ProbeError> {
        let name = map_names::CONFIG;
        let map = self.ebpf.map_mut(name).ok_or(ProbeError::Missing(name))?;
        let mut arr: Array<_, Config> =
            Array::try_from(map).map_err(|source| ProbeError::Map { name, source })?;
        arr.set(0, cfg.kernel_config(), 0)
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

        let name = map_names::STATS;
        let map = self.ebpf.map(name).ok_or(ProbeError::Missing(name))?;
        let st: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map).map_err(|source| ProbeError::Map { name, source })?;
        let mut stats = Vec::with_capacity(Stat::COUNT);
        for s in Stat::ALL {
            let v = st
                .get(&(*s as u32), 0)
                .map_err(|source| ProbeError::Map { name, source })?;
            stats.push(v.iter().sum());
        }
        Ok(Snapshot {
            segments,
            overflow,
            stats,
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
