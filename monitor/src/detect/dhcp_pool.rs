//! `dhcp_pool_exhausted`: a server that offered on a segment before now answers REQUESTs
//! with NAKs only, or stays silent while clients keep sending DISCOVERs (and it offered
//! within `memory_secs`): its pool is used up, or it stopped serving. Or, for a server whose
//! range is configured (`ranges`), its last `end_offers` offers all fall in the last
//! `end_percent` of that range: the free addresses left are the last ones. (The range a
//! server was given cannot be seen on the wire: servers hand out addresses by hash or from
//! either end, so without it this third test is off.) Evidence: when it last offered, the
//! DISCOVERs and clients it left unanswered, its NAKs, or the offers at the end.
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
    /// Servers' configured ranges, for the end-of-range test.
    pub ranges: Vec<PoolRange>,
    pub end_percent: u32,
    pub end_offers: usize,
}

/// A server's address range, as configured on it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PoolRange {
    /// Its server identifier (option 54).
    pub server: Ipv4Addr,
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            window_secs: 60,
            min_discovers: 5,
            min_naks: 3,
            memory_secs: 3_600,
            quiet_secs: 300,
            ranges: Vec::new(),
            end_percent: 10,
            end_offers: 5,
        }
    }
}

const PER_SEGMENT: usize = 1_024;
const MAX_SERVERS: usize = 4_096;

#[derive(Default)]
struct ServerState {
    mac: Mac,
    last_offer: Nanos,
    /// Its most recent offered addresses, newest last.
    offered: VecDeque<Ipv4Addr>,
    naks: VecDeque<Nanos>,
    last_ack: Option<Nanos>,
}

#[derive(serde::Serialize)]
struct Evidence {
    server: Ipv4Addr,
    mac: Mac,
    /// "silent", "naks_only" or "end_of_range".
    reason: &'static str,
    last_offer: Nanos,
    discovers_unanswered: usize,
    clients: Vec<Mac>,
    naks_in_window: usize,
    window_secs: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    offers_at_end: Vec<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    range: Option<(Ipv4Addr, Ipv4Addr)>,
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

    /// The end-of-range test, for a server with a configured range.
    fn end_of_range(&self, seg: Segment, server: Ipv4Addr, s: &ServerState) -> Option<Signal> {
        let r = self.cfg.ranges.iter().find(|r| r.server == server)?;
        let (first, last) = (u32::from(r.first), u32::from(r.last));
        if last <= first || s.offered.len() < self.cfg.end_offers.max(1) {
            return None;
        }
        let span = (last - first) as u64 + 1;
        let tail = (span * self.cfg.end_percent.min(100) as u64).div_ceil(100) as u32;
        let from = last.saturating_sub(tail.saturating_sub(1));
        let all_at_end = s
            .offered
            .iter()
            .all(|a| (from..=last).contains(&u32::from(*a)));
        if !all_at_end {
            return None;
        }
        let ev = Evidence {
            server,
            mac: s.mac,
            reason: "end_of_range",
            last_offer: s.last_offer,
            discovers_unanswered: 0,
            clients: vec![],
            naks_in_window: s.naks.len(),
            window_secs: self.cfg.window_secs,
            offers_at_end: s.offered.iter().copied().collect(),
            range: Some((r.first, r.last)),
        };
        Some(self.signal(seg, server, s, ev))
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
                    Some(DhcpMsgType::Offer) => {
                        s.last_offer = now;
                        if !msg.yiaddr.is_unspecified() {
                            if s.offered.len() >= self.cfg.end_offers.max(1) {
                                s.offered.pop_front();
                            }
                            s.offered.push_back(msg.yiaddr);
                        }
                    }
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
                if msg.kind() == Some(DhcpMsgType::Offer) {
                    return self.end_of_range(*seg, server, s).into_iter().collect();
                }
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
                        offers_at_end: vec![],
                        range: None,
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
                    // DISCOVERs since its last offer (the queue is in time order: only the
                    // newest are looked at, so an answering server costs nothing here).
                    let mut since: Vec<&(Nanos, Mac)> =
                        q.iter().rev().take_while(|d| d.0 > s.last_offer).collect();
                    if since.len() < self.cfg.min_discovers.max(1) {
                        continue;
                    }
                    since.reverse();
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
                            offers_at_end: vec![],
                            range: None,
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
    fn offers_piling_at_the_end_of_a_configured_range_are_exhaustion() {
        let cfg = PoolConfig {
            ranges: vec![PoolRange {
                server: Ipv4Addr::new(10, 0, 0, 1),
                first: Ipv4Addr::new(10, 0, 0, 100),
                last: Ipv4Addr::new(10, 0, 0, 199),
            }],
            ..PoolConfig::default()
        };
        let mut h = Harness::new(DhcpPool::new(cfg));
        let srv = Mac([2, 0, 0, 0, 0, 1]);
        let offer = |y: u8| {
            let mut o = dhcp_msg(srv, 2, y as u32);
            if let Observation::Dhcp { msg, .. } = &mut o {
                msg.yiaddr = Ipv4Addr::new(10, 0, 0, y);
            }
            o
        };
        // Spread offers, then four at the end: not yet five in a row.
        for (n, y) in [120u8, 150, 190, 191, 192, 193].into_iter().enumerate() {
            assert!(
                h.feed(&offer(y), n as u64 * SECOND).is_empty(),
                "offer of .{y}"
            );
        }
        let s = h.feed(&offer(195), 10 * SECOND);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].evidence["reason"], "end_of_range");
        assert_eq!(s[0].evidence["offers_at_end"].as_array().unwrap().len(), 5);
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
