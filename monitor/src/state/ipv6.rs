//! The IPv6 half of the state stage: neighbours, routers and DHCPv6 servers, updated from
//! one observation at a time, as `engine::update_state` does for IPv4.
use serde::Serialize;

use super::{
    neighbours6::Neighbours6Config, Change6, Dhcpv6Servers, Learnt, Neighbours6, RouterKey,
    Routers, Server6Key,
};
use crate::model::{Nanos, Observation};

/// Capacities of the IPv6 state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ipv6StateConfig {
    pub neighbours: Neighbours6Config,
    /// Routers (segment, address, MAC) kept at most.
    pub max_routers: usize,
    /// DHCPv6 servers (segment, DUID) kept at most.
    pub max_dhcpv6_servers: usize,
}

impl Default for Ipv6StateConfig {
    fn default() -> Self {
        Ipv6StateConfig {
            neighbours: Neighbours6Config::default(),
            max_routers: 1_024,
            max_dhcpv6_servers: 1_024,
        }
    }
}

pub struct Ipv6State {
    pub neighbours: Neighbours6,
    pub routers: Routers,
    pub servers: Dhcpv6Servers,
}

/// What one observation did to the IPv6 state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update6 {
    /// The address it bound, and what that did.
    pub neighbour: Option<(std::net::Ipv6Addr, Change6)>,
    /// The router it came from, and whether the router is new.
    pub router: Option<(RouterKey, bool)>,
    /// The DHCPv6 server that answered.
    pub server: Option<Server6Key>,
    /// Addresses a DHCPv6 REPLY bound to its client.
    pub leased: Vec<std::net::Ipv6Addr>,
}

impl Ipv6State {
    pub fn new(cfg: &Ipv6StateConfig) -> Self {
        Ipv6State {
            neighbours: Neighbours6::new(&cfg.neighbours),
            routers: Routers::new(cfg.max_routers),
            servers: Dhcpv6Servers::new(cfg.max_dhcpv6_servers),
        }
    }

    pub fn update(&mut self, obs: &Observation, now: Nanos) -> Update6 {
        let mut up = Update6::default();
        match obs {
            Observation::Neighbour {
                seg,
                ip,
                mac,
                advert,
                ..
            } => {
                let learnt = if *advert { Learnt::Na } else { Learnt::Ns };
                let c = self.neighbours.observe(*seg, *ip, *mac, learnt, now);
                up.neighbour = Some((*ip, c));
            }
            Observation::RouterAdvert {
                seg,
                src_mac,
                src_ip,
                ra,
            } => {
                let key = RouterKey {
                    seg: *seg,
                    ip: *src_ip,
                    mac: *src_mac,
                };
                let new = self.routers.observe(key, ra, now);
                up.router = Some((key, new));
            }
            Observation::Dhcpv6 {
                seg,
                src_mac,
                src_ip,
                dst_mac,
                msg,
            } => {
                up.server = self.servers.observe(*seg, *src_mac, *src_ip, msg, now);
                // A REPLY straight to the client (not through a relay) binds what it hands
                // out to the client's MAC.
                if msg.msg_type == crate::decode::dhcpv6::REPLY
                    && msg.relays.is_empty()
                    && msg.status.unwrap_or(0) == 0
                    && dst_mac.0[0] & 1 == 0
                {
                    for a in &msg.addresses {
                        self.neighbours
                            .observe(*seg, a.address, *dst_mac, Learnt::Dhcpv6, now);
                        up.leased.push(a.address);
                    }
                }
            }
            _ => {}
        }
        up
    }
}
