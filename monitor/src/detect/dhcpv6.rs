//! DHCPv6 servers, by DUID: `dhcpv6_rogue_server` (a server the segment's allowlist does
//! not list) and `dhcpv6_competing_servers` (two or more servers answering on one segment
//! within the window). Keyed by DUID, not MAC: servers behind a relay answer through the
//! relay's MAC, and one relay must not look like one server. The allowlist has the shape of
//! DHCPv4's, and names servers by DUID, MAC or address.
use std::net::Ipv6Addr;

use super::{dhcp::Allow, kind, secs, Context, Detector, FindingKind, Signal, Subject};
use crate::{
    decode::Duid,
    model::{Mac, Nanos, Observation},
    state::{Server6, Server6Key},
};

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dhcpv6ServerConfig {
    /// Two servers answering within this many seconds compete.
    pub window_secs: u64,
    /// Findings close after this long without an answer from the server(s).
    pub quiet_secs: u64,
    /// The DHCPv4 allowlist's shape: servers by DUID, MAC or address.
    pub allow: Vec<Allow>,
}

impl Default for Dhcpv6ServerConfig {
    fn default() -> Self {
        Dhcpv6ServerConfig {
            window_secs: 300,
            quiet_secs: 900,
            allow: Vec::new(),
        }
    }
}

impl Dhcpv6ServerConfig {
    /// Whether an allowlist covers the server's segment, and if so whether it lists it.
    pub fn authorized(&self, key: &Server6Key, s: &Server6) -> Option<bool> {
        let lists = Allow::covering(&self.allow, &key.seg);
        if lists.is_empty() {
            return None;
        }
        Some(lists.iter().any(|a| {
            a.servers.iter().any(|x| {
                x.parse::<Duid>().is_ok_and(|d| d == key.duid)
                    || x.parse::<Mac>().is_ok_and(|m| s.macs.contains(&m))
                    || x.parse::<Ipv6Addr>()
                        .is_ok_and(|ip| s.source_ips.contains(&ip))
            })
        }))
    }
}

#[derive(serde::Serialize)]
struct ServerEvidence<'a> {
    duid: &'a Duid,
    /// The MAC inside a DUID-LLT or DUID-LL: the machine the server was set up on.
    #[serde(skip_serializing_if = "Option::is_none")]
    duid_mac: Option<Mac>,
    #[serde(flatten)]
    server: &'a Server6,
    authorized: Option<bool>,
}

pub struct Dhcpv6Servers {
    cfg: Dhcpv6ServerConfig,
}

impl Dhcpv6Servers {
    pub fn new(cfg: Dhcpv6ServerConfig) -> Self {
        Dhcpv6Servers { cfg }
    }

    fn describe<'a>(&self, k: &'a Server6Key, s: &'a Server6) -> ServerEvidence<'a> {
        ServerEvidence {
            duid: &k.duid,
            duid_mac: k.duid.mac(),
            server: s,
            authorized: self.cfg.authorized(k, s),
        }
    }
}

impl Detector for Dhcpv6Servers {
    fn name(&self) -> &'static str {
        "dhcpv6_servers"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::DHCPV6_ROGUE_SERVER, kind::DHCPV6_COMPETING_SERVERS]
    }

    fn observe(&mut self, obs: &Observation, ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        if !matches!(obs, Observation::Dhcpv6 { .. }) {
            return vec![];
        }
        let Some(key) = &ctx.update6.server else {
            return vec![];
        };
        let Some(server) = ctx.v6.servers.get(key) else {
            return vec![];
        };
        let quiet = secs(self.cfg.quiet_secs);
        let mut out = Vec::new();
        if self.cfg.authorized(key, server) == Some(false) {
            out.push(Signal {
                kind: kind::DHCPV6_ROGUE_SERVER,
                subject: Subject::Duid(key.seg, key.duid.clone()),
                seg: key.seg,
                packets: 1,
                evidence: super::evidence(&self.describe(key, server)),
                quiet,
            });
        }
        let since = now.saturating_sub(secs(self.cfg.window_secs));
        let active = ctx.v6.servers.active_on(key.seg, since);
        if active.len() >= 2 {
            let servers: Vec<_> = active.iter().map(|(k, s)| self.describe(k, s)).collect();
            out.push(Signal {
                kind: kind::DHCPV6_COMPETING_SERVERS,
                subject: Subject::Segment(key.seg),
                seg: key.seg,
                packets: 1,
                evidence: serde_json::json!({ "servers": servers }),
                quiet,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        decode::{dhcpv6, Dhcpv6Message},
        detect::tests_support::{seg, Harness},
        model::SECOND,
    };

    fn answer(duid: u8, mac: u8) -> Observation {
        Observation::Dhcpv6 {
            seg: seg(),
            src_mac: Mac([2, 0, 0, 0, 0, mac]),
            src_ip: format!("fe80::{mac}").parse().unwrap(),
            dst_mac: Mac([2, 0, 0, 0, 0, 0x99]),
            msg: Box::new(Dhcpv6Message {
                msg_type: dhcpv6::ADVERTISE,
                xid: Some(1),
                client_duid: None,
                server_duid: Some(Duid(vec![0, 4, duid])),
                addresses: vec![],
                prefixes: vec![],
                status: None,
                preference: None,
                dns_servers: vec![],
                relays: vec![],
                truncated: false,
            }),
        }
    }

    #[test]
    fn servers_are_told_apart_by_duid_not_mac() {
        let mut h = Harness::new(Dhcpv6Servers::new(Dhcpv6ServerConfig::default()));
        assert!(h.feed(&answer(1, 1), SECOND).is_empty());
        // Another server behind the same relay MAC: two servers, competing.
        let s = h.feed(&answer(2, 1), 2 * SECOND);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].kind, kind::DHCPV6_COMPETING_SERVERS);
        assert_eq!(s[0].evidence["servers"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_server_off_the_allowlist_is_rogue() {
        let cfg = Dhcpv6ServerConfig {
            allow: vec![Allow {
                vlan: "*".into(),
                servers: vec!["000401".into()],
            }],
            ..Dhcpv6ServerConfig::default()
        };
        let mut h = Harness::new(Dhcpv6Servers::new(cfg));
        assert!(h.feed(&answer(1, 1), SECOND).is_empty());
        let s = h.feed(&answer(2, 2), 2 * SECOND);
        assert_eq!(s[0].kind, kind::DHCPV6_ROGUE_SERVER);
        assert_eq!(s[0].subject.to_string(), format!("{} duid 000402", seg()));
    }
}
