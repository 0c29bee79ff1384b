//! The agent's configuration: a TOML file (`--config FILE`, default [`DEFAULT_PATH`]) that
//! flags override. Every section has defaults, so an empty file is a valid one; an unknown key
//! or a wrong type is an error naming the key, its line and the fix. `deploy/l2watch.toml` is
//! the annotated example, and a test keeps it equal to the defaults.
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::{capture::ProbeConfig, engine::EngineConfig, store::Retention};

pub const DEFAULT_PATH: &str = "/etc/l2watch/l2watch.toml";
/// 9731: an unassigned port next to the exporters' range; /metrics and the API share it.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9731";

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Interfaces to monitor; empty means every up, non-loopback Ethernet interface.
    pub interfaces: Vec<String>,
    /// Address of /metrics, the JSON API, /healthz and /readyz.
    pub listen: SocketAddr,
    /// How often counters are logged, in seconds.
    pub stats_interval_secs: u64,
    pub database: DatabaseConfig,
    pub kernel: KernelConfig,
    pub metrics: MetricsConfig,
    pub web: WebConfig,
    pub engine: EngineConfig,
}

/// The listener's protection: TLS and basic auth from a web config file, and limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// node_exporter's web-config.yml (tls_server_config, basic_auth_users,
    /// http_server_config); empty serves plain HTTP without auth.
    pub config_file: PathBuf,
    /// A request's headers (and a TLS handshake) must arrive within this many seconds.
    pub read_timeout_secs: u64,
    /// Connections served at once; more are closed and counted.
    pub max_connections: usize,
    /// Largest request head accepted, in bytes (at least 8192).
    pub max_request_bytes: usize,
    /// Live event streams (/api/v1/events/stream) at once; more get 503.
    pub max_streams: usize,
    /// Events a stream may fall behind before it is cut off (and counted); the engine never
    /// waits for a reader.
    pub stream_buffer: usize,
    /// Recent events kept in memory for a reconnecting stream's Last-Event-ID.
    pub stream_replay: usize,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            config_file: PathBuf::new(),
            read_timeout_secs: 10,
            max_connections: 256,
            max_request_bytes: 16_384,
            max_streams: 32,
            stream_buffer: 4_096,
            stream_replay: 10_000,
        }
    }
}

impl WebConfig {
    pub fn limits(&self) -> crate::export::serve::Limits {
        crate::export::serve::Limits {
            read_timeout: Duration::from_secs(self.read_timeout_secs),
            max_connections: self.max_connections,
            max_request_bytes: self.max_request_bytes,
        }
    }

    /// The web config file, if one is set.
    pub fn file(&self) -> Option<&Path> {
        (!self.config_file.as_os_str().is_empty()).then_some(self.config_file.as_path())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interfaces: Vec::new(),
            listen: DEFAULT_LISTEN.parse().expect("valid default"),
            stats_interval_secs: 10,
            database: DatabaseConfig::default(),
            kernel: KernelConfig::default(),
            metrics: MetricsConfig::default(),
            web: WebConfig::default(),
            engine: EngineConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// false keeps state in memory only.
    pub enabled: bool,
    pub path: PathBuf,
    /// How often changes are written; a crash loses at most this much.
    pub flush_interval_ms: u64,
    pub retention: Retention,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            enabled: true,
            path: crate::store::DEFAULT_PATH.into(),
            flush_interval_ms: 1_000,
            retention: Retention::default(),
        }
    }
}

/// The XDP program's settings (rates are per CPU).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KernelConfig {
    /// Re-report an unchanged IP->MAC binding after this many seconds.
    pub refresh_secs: u64,
    pub arp_rate: u32,
    pub arp_burst: u32,
    pub dhcp_rate: u32,
    pub dhcp_burst: u32,
    /// Counter slots for (interface, VLAN) segments; more are counted in overflow slots.
    pub max_segments: u32,
    /// Bindings the kernel remembers to suppress repeats (LRU).
    pub max_bindings: u32,
    /// Events the token bucket holds back wait in these kernel maps until the agent drains
    /// them, every pending_drain_ms; only a full map loses one.
    pub max_pending_arp: u32,
    pub max_pending_dhcp: u32,
    /// IPv6 neighbour discovery: bindings, DAD probes and router advertisements share one
    /// bucket; DHCPv6 shares the DHCP one.
    pub nd_rate: u32,
    pub nd_burst: u32,
    /// IPv6 bindings the kernel remembers (LRU), and what waits for the agent.
    pub max_nd_bindings: u32,
    pub max_pending_nd: u32,
    pub max_pending_dhcp6: u32,
    /// Switch protocols: changed LLDP, CDP, BPDUs and LACPDUs, and what waits for the agent.
    pub switch_rate: u32,
    pub switch_burst: u32,
    pub max_pending_switch: u32,
    pub pending_drain_ms: u64,
    /// One broadcast/multicast frame seen more than this often within loop_window_ms is going
    /// round a loop; 0 turns loop detection off.
    pub loop_repeats: u32,
    pub loop_window_ms: u64,
    /// An ARP sender asking for this many distinct addresses within scan_window_secs is
    /// scanning; 0 turns scan detection off.
    pub scan_targets: u32,
    pub scan_window_secs: u64,
}

impl Default for KernelConfig {
    fn default() -> Self {
        let p = ProbeConfig::default();
        KernelConfig {
            refresh_secs: p.refresh.as_secs(),
            arp_rate: p.arp_rate_per_sec,
            arp_burst: p.arp_burst,
            dhcp_rate: p.dhcp_rate_per_sec,
            dhcp_burst: p.dhcp_burst,
            max_segments: p.max_segments,
            max_bindings: p.max_bindings,
            max_pending_arp: p.max_pending_arp,
            max_pending_dhcp: p.max_pending_dhcp,
            nd_rate: p.nd_rate_per_sec,
            nd_burst: p.nd_burst,
            max_nd_bindings: p.max_nd_bindings,
            max_pending_nd: p.max_pending_nd,
            max_pending_dhcp6: p.max_pending_dhcp6,
            switch_rate: p.switch_rate_per_sec,
            switch_burst: p.switch_burst,
            max_pending_switch: p.max_pending_switch,
            pending_drain_ms: 250,
            loop_repeats: p.loop_repeats,
            loop_window_ms: p.loop_window.as_millis() as u64,
            scan_targets: p.scan_targets,
            scan_window_secs: p.scan_window.as_secs(),
        }
    }
}

impl KernelConfig {
    pub fn probe_config(&self, rate_limit: bool) -> ProbeConfig {
        ProbeConfig {
            refresh: Duration::from_secs(self.refresh_secs),
            rate_limit,
            arp_rate_per_sec: self.arp_rate,
            arp_burst: self.arp_burst,
            dhcp_rate_per_sec: self.dhcp_rate,
            dhcp_burst: self.dhcp_burst,
            max_segments: self.max_segments,
            max_bindings: self.max_bindings,
            max_pending_arp: self.max_pending_arp,
            max_pending_dhcp: self.max_pending_dhcp,
            nd_rate_per_sec: self.nd_rate,
            nd_burst: self.nd_burst,
            max_nd_bindings: self.max_nd_bindings,
            max_pending_nd: self.max_pending_nd,
            max_pending_dhcp6: self.max_pending_dhcp6,
            switch_rate_per_sec: self.switch_rate,
            switch_burst: self.switch_burst,
            max_pending_switch: self.max_pending_switch,
            loop_repeats: self.loop_repeats,
            loop_window: Duration::from_millis(self.loop_window_ms),
            scan_targets: self.scan_targets,
            scan_window: Duration::from_secs(self.scan_window_secs),
            ..ProbeConfig::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// VLAN label values per interface (the busiest by frames); the rest are summed under
    /// vlan="other".
    pub vlan_label_cap: usize,
    /// Series of l2watch_dhcp_server_info at most; more are counted, not exported.
    pub server_info_cap: usize,
    /// Export l2watch_device_info (one series per device: ip, mac, vlan) for fleet-wide
    /// PromQL. Off by default: per-device series belong in the API.
    pub device_info: bool,
    pub device_info_cap: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            vlan_label_cap: 32,
            server_info_cap: 64,
            device_info: false,
            device_info_cap: 1_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}; pass --config FILE, or create it (deploy/l2watch.toml is an annotated example)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path}: {message}\nfix: correct or remove that key; deploy/l2watch.toml lists every key with its default")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

impl Config {
    /// Parses TOML text; `path` is for messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Reads `path`. A missing file is an error only when `explicit` (the operator named it);
    /// the default path may be absent, and then defaults apply.
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                Ok(Config::default())
            }
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Checks what types alone cannot.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        for a in &self.engine.dhcp_servers.allow {
            let v = a.vlan.as_str();
            let ok = v == "*"
                || v == "untagged"
                || v.split('.').count() <= 2
                    && v.split('.')
                        .all(|p| p.parse::<u16>().is_ok_and(|n| n < 4096));
            if !ok {
                return Err(invalid(
                    "engine.dhcp_servers.allow.vlan",
                    format!(
                        "{v:?} is not a VLAN: use \"*\", \"untagged\", \"100\" or \"200.2001\""
                    ),
                ));
            }
            for s in &a.servers {
                if s.parse::<std::net::Ipv4Addr>().is_err()
                    && s.parse::<crate::model::Mac>().is_err()
                {
                    return Err(invalid(
                        "engine.dhcp_servers.allow.servers",
                        format!("{s:?} is neither an IPv4 address nor a MAC"),
                    ));
                }
            }
        }
        for (key, v) in [
            ("kernel.max_segments", self.kernel.max_segments),
            ("kernel.max_bindings", self.kernel.max_bindings),
            ("kernel.max_pending_arp", self.kernel.max_pending_arp),
            ("kernel.max_pending_dhcp", self.kernel.max_pending_dhcp),
            ("kernel.max_nd_bindings", self.kernel.max_nd_bindings),
            ("kernel.max_pending_nd", self.kernel.max_pending_nd),
            ("kernel.max_pending_dhcp6", self.kernel.max_pending_dhcp6),
            ("kernel.max_pending_switch", self.kernel.max_pending_switch),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1".into()));
            }
        }
        if !(10..=2_000).contains(&self.kernel.pending_drain_ms) {
            return Err(invalid(
                "kernel.pending_drain_ms",
                "must be 10 to 2000: held-back events reach the table within it (the \
                 completeness bound is 2 s)"
                    .into(),
            ));
        }
        if self.kernel.loop_repeats > 0 && self.kernel.loop_window_ms == 0 {
            return Err(invalid(
                "kernel.loop_window_ms",
                "must be at least 1 while loop_repeats is on (set loop_repeats = 0 to turn \
                 loop detection off)"
                    .into(),
            ));
        }
        if self.kernel.scan_targets > 256 {
            return Err(invalid(
                "kernel.scan_targets",
                "at most 256: the kernel estimates distinct targets with a 256-bit map".into(),
            ));
        }
        if let Err(m) = self.engine.switch.subnets() {
            return Err(invalid("engine.switch.vlan_subnets", m));
        }
        for (iface, p) in &self.engine.switch.ports {
            if p.native_vlan.is_some_and(|v| !(1..4095).contains(&v)) {
                return Err(invalid(
                    "engine.switch.ports.native_vlan",
                    format!("{iface}: a VLAN id is 1 to 4094"),
                ));
            }
        }
        if self.engine.switch.quiet_secs <= self.kernel.refresh_secs {
            return Err(invalid(
                "engine.switch.quiet_secs",
                format!(
                    "must be longer than kernel.refresh_secs ({}): an unchanged switch PDU is \
                     re-reported only that often, so a shorter quiet period would close \
                     findings that still hold",
                    self.kernel.refresh_secs
                ),
            ));
        }
        for (key, v) in [
            ("web.read_timeout_secs", self.web.read_timeout_secs as usize),
            ("web.max_connections", self.web.max_connections),
            ("web.max_streams", self.web.max_streams),
            ("web.stream_buffer", self.web.stream_buffer),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1".into()));
            }
        }
        if self.web.max_request_bytes < 8_192 {
            return Err(invalid(
                "web.max_request_bytes",
                "must be at least 8192 (HTTP's smallest practical request head)".into(),
            ));
        }
        if self.engine.devices.capacity == 0 {
            return Err(invalid(
                "engine.devices.capacity",
                "must be at least 1".into(),
            ));
        }
        if self.database.flush_interval_ms == 0 {
            return Err(invalid(
                "database.flush_interval_ms",
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }

    pub fn stats_interval(&self) -> Duration {
        Duration::from_secs(self.stats_interval_secs.max(1))
    }

    /// How often the kernel's pending maps are drained.
    pub fn pending_drain(&self) -> Duration {
        Duration::from_millis(self.kernel.pending_drain_ms)
    }

    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.database.flush_interval_ms)
    }

    /// What a reload can apply: `new` with every restart-only setting kept at its running
    /// value (`self`), and the names of those `new` wanted to change.
    pub fn reloadable(&self, mut new: Config) -> (Config, Vec<&'static str>) {
        fn keep<T: PartialEq + Clone>(
            name: &'static str,
            running: &T,
            new: &mut T,
            changed: &mut Vec<&'static str>,
        ) {
            if running != new {
                changed.push(name);
                *new = running.clone();
            }
        }
        let mut changed = Vec::new();
        let c = &mut changed;
        keep("interfaces", &self.interfaces, &mut new.interfaces, c);
        keep("listen", &self.listen, &mut new.listen, c);
        keep("web", &self.web, &mut new.web, c);
        keep("database", &self.database, &mut new.database, c);
        keep(
            "kernel.max_segments",
            &self.kernel.max_segments,
            &mut new.kernel.max_segments,
            c,
        );
        keep(
            "kernel.max_bindings",
            &self.kernel.max_bindings,
            &mut new.kernel.max_bindings,
            c,
        );
        keep(
            "kernel.max_pending_arp",
            &self.kernel.max_pending_arp,
            &mut new.kernel.max_pending_arp,
            c,
        );
        keep(
            "kernel.pending_drain_ms",
            &self.kernel.pending_drain_ms,
            &mut new.kernel.pending_drain_ms,
            c,
        );
        keep(
            "kernel.max_pending_dhcp",
            &self.kernel.max_pending_dhcp,
            &mut new.kernel.max_pending_dhcp,
            c,
        );
        keep(
            "kernel.max_nd_bindings",
            &self.kernel.max_nd_bindings,
            &mut new.kernel.max_nd_bindings,
            c,
        );
        keep(
            "kernel.max_pending_nd",
            &self.kernel.max_pending_nd,
            &mut new.kernel.max_pending_nd,
            c,
        );
        keep(
            "kernel.max_pending_dhcp6",
            &self.kernel.max_pending_dhcp6,
            &mut new.kernel.max_pending_dhcp6,
            c,
        );
        keep(
            "kernel.max_pending_switch",
            &self.kernel.max_pending_switch,
            &mut new.kernel.max_pending_switch,
            c,
        );
        keep(
            "engine.devices.capacity",
            &self.engine.devices.capacity,
            &mut new.engine.devices.capacity,
            c,
        );
        (new, changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::parse(text, Path::new("t.toml"))
            .expect_err("must be rejected")
            .to_string()
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(
            Config::parse("", Path::new("t.toml")).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn the_shipped_example_is_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/l2watch.toml");
        let text = std::fs::read_to_string(&path).expect("deploy/l2watch.toml");
        let cfg = Config::parse(&text, &path).expect("the example parses");
        assert_eq!(
            cfg,
            Config::default(),
            "deploy/l2watch.toml drifted from the defaults"
        );
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let e = err("listen = \"0.0.0.0:1\"\n[kernel]\nrefresh_sec = 5\n");
        assert!(e.contains("refresh_sec"), "{e}");
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("refresh_secs"), "the valid keys are listed: {e}");
        assert!(e.contains("fix:"), "{e}");
        let e = err("[engine.duplicate_ip]\nwindow = 5\n");
        assert!(e.contains("window") && e.contains("line 2"), "{e}");
        let e = err("interface = [\"eth0\"]\n");
        assert!(e.contains("interface") && e.contains("interfaces"), "{e}");
    }

    #[test]
    fn wrong_types_and_values_are_named() {
        let e = err("[kernel]\narp_rate = \"fast\"\n");
        assert!(e.contains("arp_rate") || e.contains("line 2"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        let e = err("listen = \"localhost\"\n");
        assert!(e.contains("listen") || e.contains("line 1"), "{e}");
        let e = err("[[engine.dhcp_servers.allow]]\nvlan = \"10\"\nservers = [\"10.0.0.300\"]\n");
        assert!(
            e.contains("engine.dhcp_servers.allow.servers") && e.contains("10.0.0.300"),
            "{e}"
        );
        let e = err("[[engine.dhcp_servers.allow]]\nvlan = \"ten\"\nservers = []\n");
        assert!(e.contains("engine.dhcp_servers.allow.vlan"), "{e}");
        let e = err("[engine.mac_collision]\nignore_macs = [\"router\"]\n");
        assert!(e.contains("router") && e.contains("MAC"), "{e}");
        let e = err("[engine.devices]\ncapacity = 0\n");
        assert!(e.contains("engine.devices.capacity"), "{e}");
    }

    #[test]
    fn a_reload_keeps_restart_only_settings_and_names_them() {
        let running = Config::default();
        let mut new = Config {
            listen: "127.0.0.1:1".parse().unwrap(),
            ..Config::default()
        };
        new.engine.devices.capacity = 5;
        new.engine.duplicate_ip.window_secs = 5;
        let (applied, changed) = running.reloadable(new);
        assert_eq!(changed, ["listen", "engine.devices.capacity"]);
        assert_eq!(applied.listen, running.listen);
        assert_eq!(
            applied.engine.devices.capacity,
            running.engine.devices.capacity
        );
        assert_eq!(
            applied.engine.duplicate_ip.window_secs, 5,
            "reloadable ones apply"
        );
    }

    #[test]
    fn a_missing_default_file_means_defaults_but_a_named_one_is_an_error() {
        let p = Path::new("/nonexistent/l2watch.toml");
        assert_eq!(Config::load(p, false).unwrap(), Config::default());
        let e = Config::load(p, true).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/l2watch.toml"), "{e}");
    }
}
