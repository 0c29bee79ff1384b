//! Exporters: Prometheus `/metrics` and the JSON API, served on one listener. Both read the
//! agent's live state when asked: kernel counters are summed over CPUs at scrape time (there
//! is no second copy to drift), the device table and findings are read under a short lock.
pub mod api;
pub mod metrics;
pub mod serve;
pub mod status;
pub mod stream;
pub mod web;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU64},
        Arc, Mutex, RwLock,
    },
};

use crate::{
    capture::{AttachMode, Probe},
    config::MetricsConfig,
    engine::Engine,
    store::StoreStats,
};

/// One monitored interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    /// None while the interface is down or gone (it is reattached when it comes back).
    pub mode: Option<AttachMode>,
}

/// What the exporters read. The engine task and the link watcher write it.
pub struct Shared {
    pub engine: Mutex<Engine>,
    pub probe: Mutex<Probe>,
    /// Monitored interfaces by current ifindex.
    pub links: RwLock<BTreeMap<u32, Link>>,
    /// The database file, when there is one.
    pub db: Option<PathBuf>,
    pub store_stats: Option<Arc<StoreStats>>,
    pub metrics: RwLock<MetricsConfig>,
    /// Programs attached and database open.
    pub ready: AtomicBool,
    pub undecodable: AtomicU64,
    /// Age of the last ring-buffer record when it was read, in ns.
    pub lag_ns: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_errors: AtomicU64,
    /// Names for the ifindexes kernel counters and events carry.
    pub ifaces: crate::links::IfaceNames,
    pub http: Arc<serve::HttpStats>,
    /// The live event stream's ring and readers.
    pub hub: stream::EventHub,
}

impl Shared {
    pub fn new(
        engine: Engine,
        probe: Probe,
        db: Option<PathBuf>,
        store_stats: Option<Arc<StoreStats>>,
        metrics: MetricsConfig,
        ifaces: crate::links::IfaceNames,
    ) -> Shared {
        Shared {
            engine: Mutex::new(engine),
            probe: Mutex::new(probe),
            links: RwLock::new(BTreeMap::new()),
            db,
            store_stats,
            metrics: RwLock::new(metrics),
            ready: AtomicBool::new(false),
            undecodable: AtomicU64::new(0),
            lag_ns: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            reload_errors: AtomicU64::new(0),
            ifaces,
            http: Arc::default(),
            hub: stream::EventHub::new(4_096, 10_000, 32),
        }
    }

    /// Sizes the event stream (the web config's stream_buffer, stream_replay, max_streams).
    pub fn with_hub(mut self, hub: stream::EventHub) -> Shared {
        self.hub = hub;
        self
    }
}
