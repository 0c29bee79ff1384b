//! `dhcp_pool_exhausted`: a server that offered on a segment before now answers REQUESTs
//! with NAKs only, or stays silent while clients keep sending DISCOVERs (and it offered
//! within `memory_secs`): its pool is used up, or it stopped serving. Evidence: when it last
//! offered, the DISCOVERs and clients it left unanswered, its NAKs.
use std::{collections::VecDeque, net::Ipv4Addr};

use monitor_common::DhcpMsgType;

use super::{kind, secs, Context, Detector, FindingKind, Signal, Subject};
use crate::model::{FastMap, Mac, Nanos, Observation, Segment};

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    pub window_secs: u64,
    /// DISCOVERs, from at least two clients, the server left unanswered within the window.
    pub min_discovers: usize,
    /// NAKs within the window, with no ACK, that make it exhausted.
    pub min_naks: usize,
    /// A server that last offered longer ago than this is gone, not exhausted.
    pub memory_secs: u64,
    pub quiet_secs: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            window_secs: 60,
            min_discovers: 5,
            min_naks: 3,
            memory_secs: 3_600,
            quiet_secs: 300,
        }
    }
}

const PER_SEGMENT: usize = 1_024;
const MAX_SERVERS: usize = 4_096;

#[derive(Default)]
struct ServerState {
    mac: Mac,
    last_offer: Nanos,
    naks: VecDeque<Nanos>,
    last_ack: Option<Nanos>,
}

#[derive(serde::Serialize)]
struct Evidence {
    server: Ipv4Addr,
    mac: Mac,
    /// "silent" or "naks_only".
    reason: &'static str,
    last_offer: Nanos,
    discovers_unanswered: usize,
    clients: Vec<Mac>,
    naks_in_window: usize,
    window_secs: u64,
}

pub struct DhcpPool {
    cfg: PoolConfig,
    servers: FastMap<(Segment, Ipv4Addr), ServerState>,
    discovers: FastMap<Segment, VecDeque<(Nanos, Mac)>>,
}

impl DhcpPool {
    pub fn new(cfg: PoolConfig) -> Self {
        DhcpPool {
            cfg,
            servers: FastMap::default(),
            discovers: FastMap::default(),
        }
    }

    fn signal(&self, seg: Segment, server: Ipv4Addr, s: &ServerState, ev: Evidence) -> Signal {
        Signal {
            kind: kind::DHCP_POOL_EXHAUSTED,
            subject: Subject::Server(seg, server, s.mac),
            seg,
            packets: 1,
            evidence: super::evidence(&ev),
            quiet: secs(self.cfg.quiet_secs),
        }
    }
}

impl Detector for DhcpPool {
    fn name(&self) -> &'static str {
        "dhcp_pool"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::DHCP_POOL_EXHAUSTED]
    }

    fn observe(&mut self, obs: &Observation, _ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        let Observation::Dhcp {
            seg, src_mac, msg, ..
        } = obs
        else {
            return vec![];
        };
        let window = secs(self.cfg.window_secs);
        match msg.kind() {
            Some(DhcpMsgType::Offer | DhcpMsgType::Ack | DhcpMsgType::Nak) => {
                let server = msg.server_id.unwrap_or(Ipv4Addr::UNSPECIFIED);
                if !self.servers.contains_key(&(*seg, server)) && self.servers.len() >= MAX_SERVERS
                {
                    return vec![];
                }
                let s = self.servers.entry((*seg, server)).or_default();
                s.mac = *src_mac;
                match msg.kind() {
                    Some(DhcpMsgType::Offer) => s.last_offer = now,
                    Some(DhcpMsgType::Ack) => s.last_ack = Some(now),
                    _ => {
                        while s
                            .naks
                            .front()
                            .is_some_and(|t| now.saturating_sub(*t) > window)
                        {
                            s.naks.pop_front();
                        }
                        if s.naks.len() < PER_SEGMENT {
                            s.naks.push_back(now);
                        }
                    }
                }
                let s = &self.servers[&(*seg, server)];
                let acked = s.last_ack.is_some_and(|t| now.saturating_sub(t) <= window);
                if msg.kind() == Some(DhcpMsgType::Nak)
                    && s.last_offer > 0
                    && !acked
                    && s.naks.len() >= self.cfg.min_naks.max(1)
                {
                    let ev = Evidence {
                        server,
                        mac: s.mac,
                        reason: "naks_only",
                        last_offer: s.last_offer,
                        discovers_unanswered: 0,
                        clients: vec![],
                        naks_in_window: s.naks.len(),
                        window_secs: self.cfg.window_secs,
                    };
                    return vec![self.signal(*seg, server, s, ev)];
                }
                vec![]
            }
            Some(DhcpMsgType::Discover) => {
                let q = self.discovers.entry(*seg).or_default();
                while q.front().is_some_and(|d| now.saturating_sub(d.0) > window) {
                    q.pop_front();
                }
                if q.len() >= PER_SEGMENT {
                    q.pop_front();
                }
                q.push_back((now, msg.chaddr.unwrap_or(*src_mac)));
                let q = &self.discovers[seg];
                let mut out = Vec::new();
                for ((sseg, server), s) in &self.servers {
                    if sseg != seg
                        || s.last_offer == 0
                        || now.saturating_sub(s.last_offer) > secs(self.cfg.memory_secs)
                    {
                        continue;
                    }
                    // DISCOVERs since its last offer.
                    let since: Vec<&(Nanos, Mac)> =
                        q.iter().filter(|d| d.0 > s.last_offer).collect();
                    let mut clients: Vec<Mac> = since.iter().map(|d| d.1).collect();
                    clients.sort();
                    clients.dedup();
                    let long = since
                        .first()
                        .is_some_and(|d| now.saturating_sub(d.0) >= window / 2);
                    if since.len() >= self.cfg.min_discovers.max(1) && clients.len() >= 2 && long {
                        clients.truncate(10);
                        let ev = Evidence {
                            server: *server,
                            mac: s.mac,
                            reason: "silent",
                            last_offer: s.last_offer,
                            discovers_unanswered: since.len(),
                            clients,
                            naks_in_window: s.naks.len(),
                            window_secs: self.cfg.window_secs,
                        };
                        out.push(self.signal(*seg, *server, s, ev));
                    }
                }
                out
            }
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        detect::tests_support::{dhcp_msg, Harness},
        model::SECOND,
    };

    #[test]
    fn a_server_that_offered_then_goes_silent_while_clients_ask_is_exhausted() {
        let mut h = Harness::new(DhcpPool::new(PoolConfig::default()));
        let srv = Mac([2, 0, 0, 0, 0, 1]);
        h.feed(&dhcp_msg(Mac([2, 0, 0, 0, 1, 1]), 1, 1), SECOND);
        h.feed(&dhcp_msg(srv, 2, 1), SECOND + 1);
        let mut last = vec![];
        for n in 0..6u64 {
            let client = Mac([2, 0, 0, 0, 2, n as u8]);
            last = h.feed(
                &dhcp_msg(client, 1, 10 + n as u32),
                10 * SECOND + n * 8 * SECOND,
            );
        }
        assert_eq!(last.len(), 1, "{last:?}");
        assert_eq!(last[0].evidence["reason"], "silent");
        assert_eq!(
            last[0].subject.to_string(),
            "eth2/vlan10 10.0.0.1 02:00:00:00:00:01"
        );
    }

    #[test]
    fn naks_without_acks_are_exhaustion_and_a_busy_healthy_server_is_not() {
        let mut h = Harness::new(DhcpPool::new(PoolConfig::default()));
        let srv = Mac([2, 0, 0, 0, 0, 1]);
        h.feed(&dhcp_msg(srv, 2, 1), SECOND);
        assert!(h.feed(&dhcp_msg(srv, 6, 2), 2 * SECOND).is_empty());
        assert!(h.feed(&dhcp_msg(srv, 6, 3), 3 * SECOND).is_empty());
        let s = h.feed(&dhcp_msg(srv, 6, 4), 4 * SECOND);
        assert_eq!(s[0].evidence["reason"], "naks_only");
        let mut h = Harness::new(DhcpPool::new(PoolConfig::default()));
        for n in 0..20u64 {
            let t = n * 5 * SECOND;
            h.feed(&dhcp_msg(Mac([2, 0, 0, 0, 2, n as u8]), 1, n as u32), t);
            assert!(h.feed(&dhcp_msg(srv, 2, n as u32), t + 1).is_empty());
        }
    }
}
