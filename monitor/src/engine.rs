//! The engine: observations flow through the state stage (device table, DHCP servers), then the
//! detectors, then the findings store. Pure and clock-injected: the same observations with the
//! same timestamps always give the same table and findings, live or replayed.
use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    detect::{
        apipa::{Apipa, ApipaConfig},
        dhcp::{server_of, DhcpServerConfig, DhcpServerWatch, DhcpStorm, DhcpStormConfig},
        duplicate_ip::{DuplicateIp, DuplicateIpConfig},
        mac_change::{MacChange, MacChangeConfig},
        mac_collision::{MacCollision, MacCollisionConfig},
        Context, Detector, Finding, FindingEvent, Findings,
    },
    model::{Mac, Nanos, Observation, SECOND},
    state::{
        Change, DeviceKey, DeviceState, DeviceTable, DeviceTableConfig, DhcpServers, Lease, Source,
    },
};

/// Every engine setting; one section per stage and detector.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    pub devices: DeviceTableConfig,
    pub duplicate_ip: DuplicateIpConfig,
    pub mac_change: MacChangeConfig,
    pub mac_collision: MacCollisionConfig,
    pub dhcp_servers: DhcpServerConfig,
    pub dhcp_storm: DhcpStormConfig,
    pub apipa: ApipaConfig,
    pub limits: Limits,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_dhcp_servers: usize,
    pub max_open_findings: usize,
    pub max_closed_findings: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_dhcp_servers: 1_024,
            max_open_findings: 10_000,
            max_closed_findings: 1_000,
        }
    }
}

/// Applies an observation to the state stage; returns the device-table change it made.
pub fn update_state(
    table: &mut DeviceTable,
    servers: &mut DhcpServers,
    obs: &Observation,
    now: Nanos,
) -> Option<Change> {
    match obs {
        Observation::Arp {
            seg,
            ip,
            mac,
            probe,
            ..
        } => {
            // A prober does not hold the address yet; 0.0.0.0 is nobody's.
            if *probe || ip.is_unspecified() {
                return None;
            }
            Some(table.observe(DeviceKey { seg: *seg, ip: *ip }, *mac, Source::Arp, now))
        }
        Observation::Dhcp {
            seg, msg, src_mac, ..
        } => {
            if let Some((key, t)) = server_of(obs) {
                let offered = (!msg.yiaddr.is_unspecified()).then_some(msg.yiaddr);
                servers.observe(key, t, offered, now);
            }
            let client = msg.chaddr.unwrap_or(*src_mac);
            match msg.msg_type {
                Some(1 | 3) => {
                    if let Some(name) = msg.host_name() {
                        table.note_client_name(*seg, client, name);
                    }
                    None
                }
                Some(5) if !msg.yiaddr.is_unspecified() => {
                    let lease = msg.lease_time.map(|secs| Lease {
                        server: msg.server_id.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
                        lease_secs: secs,
                        expires: now.saturating_add(secs as u64 * SECOND),
                    });
                    let key = DeviceKey {
                        seg: *seg,
                        ip: msg.yiaddr,
                    };
                    Some(table.apply_ack(key, client, msg.host_name(), lease, now))
                }
                Some(7) if !msg.ciaddr.is_unspecified() => {
                    let key = DeviceKey {
                        seg: *seg,
                        ip: msg.ciaddr,
                    };
                    table.release(&key, client, now);
                    None
                }
                _ => None,
            }
        }
    }
}

/// Engine-level counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    pub observations: u64,
    pub arp_observations: u64,
    pub dhcp_observations: u64,
    pub device_evictions: u64,
    pub dhcp_server_evictions: u64,
    pub findings_dropped: u64,
}

pub struct Engine {
    table: DeviceTable,
    servers: DhcpServers,
    server_watch: DhcpServerWatch,
    detectors: Vec<Box<dyn Detector + Send>>,
    findings: Findings,
    stats: EngineStats,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Engine {
            table: DeviceTable::new(cfg.devices),
            servers: DhcpServers::new(cfg.limits.max_dhcp_servers),
            server_watch: DhcpServerWatch::new(cfg.dhcp_servers),
            detectors: vec![
                Box::new(DuplicateIp::new(cfg.duplicate_ip)),
                Box::new(MacChange::new(cfg.mac_change)),
                Box::new(MacCollision::new(cfg.mac_collision)),
                Box::new(DhcpStorm::new(cfg.dhcp_storm)),
                Box::new(Apipa::new(cfg.apipa)),
            ],
            findings: Findings::new(cfg.limits.max_open_findings, cfg.limits.max_closed_findings),
            stats: EngineStats::default(),
        }
    }

    /// Feeds one observation; returns findings opened by it.
    pub fn observe(&mut self, obs: &Observation, now: Nanos) -> Vec<FindingEvent> {
        self.stats.observations += 1;
        match obs {
            Observation::Arp { .. } => self.stats.arp_observations += 1,
            Observation::Dhcp { .. } => self.stats.dhcp_observations += 1,
        }
        let change = update_state(&mut self.table, &mut self.servers, obs, now);
        let ctx = Context {
            table: &self.table,
            servers: &self.servers,
            change,
        };
        let mut signals = self.server_watch.observe(obs, &ctx, now);
        for d in &mut self.detectors {
            signals.extend(d.observe(obs, &ctx, now));
        }
        let out = signals
            .into_iter()
            .filter_map(|s| self.findings.signal(s, now))
            .collect();
        self.stats.device_evictions = self.table.evictions();
        self.stats.dhcp_server_evictions = self.servers.evictions();
        self.stats.findings_dropped = self.findings.dropped();
        out
    }

    /// Closes findings that went quiet.
    pub fn tick(&mut self, now: Nanos) -> Vec<FindingEvent> {
        self.findings.tick(now)
    }

    pub fn table(&self) -> &DeviceTable {
        &self.table
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    pub fn open_findings(&self) -> Vec<&Finding> {
        self.findings.open()
    }

    pub fn closed_findings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.closed()
    }

    pub fn findings_opened_total(&self) -> &BTreeMap<&'static str, u64> {
        self.findings.opened_total()
    }

    /// The device table as reported (JSON, API), most recently seen first.
    pub fn device_rows(
        &self,
        now: Nanos,
        vendor: impl Fn(&Mac) -> Option<String>,
    ) -> Vec<DeviceRow> {
        self.table
            .iter()
            .map(|(k, d)| DeviceRow {
                key: *k,
                vlan: k.seg.vlan_label(),
                mac: d.mac,
                vendor: vendor(&d.mac),
                first_seen: d.first_seen,
                last_seen: d.last_seen,
                source: d.source,
                hostname: d.hostname.as_deref().map(str::to_string),
                lease: d.lease,
                state: self.table.state(d, now),
                mac_changes: d.mac_changes,
            })
            .collect()
    }

    /// The DHCP servers as reported.
    pub fn server_rows(&self) -> Vec<ServerRow> {
        let mut v: Vec<_> = self
            .servers
            .iter()
            .map(|(k, s)| ServerRow {
                key: *k,
                vlan: k.seg.vlan_label(),
                authorized: self.server_watch.authorized(k),
                server: s.clone(),
            })
            .collect();
        v.sort_by_key(|r| r.key);
        v
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceRow {
    #[serde(flatten)]
    pub key: DeviceKey,
    pub vlan: String,
    pub mac: Mac,
    pub vendor: Option<String>,
    pub first_seen: Nanos,
    pub last_seen: Nanos,
    pub source: Source,
    pub hostname: Option<String>,
    pub lease: Option<Lease>,
    pub state: DeviceState,
    pub mac_changes: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerRow {
    #[serde(flatten)]
    pub key: crate::state::ServerKey,
    pub vlan: String,
    pub authorized: Option<bool>,
    #[serde(flatten)]
    pub server: crate::state::Server,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{dhcp::Allow, tests_support::dhcp_reply};
    use std::net::Ipv4Addr;

    #[test]
    fn server_rows_carry_the_allowlist_verdict_once() {
        let mut cfg = EngineConfig::default();
        cfg.dhcp_servers.allow = vec![Allow {
            vlan: "*".into(),
            servers: vec!["10.0.0.1".into()],
        }];
        let mut e = Engine::new(cfg);
        for (mac, ip) in [(0x51, [10, 0, 0, 1]), (0x52, [10, 0, 0, 2])] {
            let obs = dhcp_reply(
                Mac([2, 0, 0, 0, 0, mac]),
                Ipv4Addr::from(ip),
                2,
                Ipv4Addr::new(10, 0, 0, 50),
            );
            e.observe(&obs, SECOND);
        }
        let rows = e.server_rows();
        let verdicts: Vec<_> = rows.iter().map(|r| r.authorized).collect();
        assert_eq!(verdicts, [Some(true), Some(false)]);
        let json = serde_json::to_string(&rows[1]).unwrap();
        assert_eq!(json.matches("\"authorized\"").count(), 1, "{json}");
        assert!(json.contains("\"authorized\":false"), "{json}");
    }
}
