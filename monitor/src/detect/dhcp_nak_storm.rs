//! `dhcp_nak_storm`: at least `naks` NAKs on one segment within the window: clients asking
//! for leases from another network (a server or relay on the wrong VLAN), or a server that
//! lost its leases.
use std::{collections::VecDeque, net::Ipv4Addr};

use super::{kind, secs, Context, Detector, FindingKind, Signal, Subject};
use crate::model::{FastMap, Mac, Nanos, Observation, Segment};

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NakStormConfig {
    pub naks: usize,
    pub window_secs: u64,
    pub quiet_secs: u64,
}

impl Default for NakStormConfig {
    fn default() -> Self {
        NakStormConfig {
            naks: 10,
            window_secs: 60,
            quiet_secs: 120,
        }
    }
}

const PER_SEGMENT: usize = 1_024;
const MAX_SEGMENTS: usize = 4_096;

#[derive(serde::Serialize)]
struct Evidence {
    naks_in_window: usize,
    window_secs: u64,
    servers: Vec<Ipv4Addr>,
    clients: Vec<Mac>,
}

pub struct DhcpNakStorm {
    cfg: NakStormConfig,
    naks: FastMap<Segment, VecDeque<(Nanos, Ipv4Addr, Mac)>>,
}

impl DhcpNakStorm {
    pub fn new(cfg: NakStormConfig) -> Self {
        DhcpNakStorm {
            cfg,
            naks: FastMap::default(),
        }
    }
}

impl Detector for DhcpNakStorm {
    fn name(&self) -> &'static str {
        "dhcp_nak_storm"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::DHCP_NAK_STORM]
    }

    fn observe(&mut self, _obs: &Observation, ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        let (Some((server, "nak", _)), Some(key)) = (ctx.tx.answer, ctx.tx.key) else {
            return vec![];
        };
        let seg = key.seg;
        if !self.naks.contains_key(&seg) && self.naks.len() >= MAX_SEGMENTS {
            return vec![];
        }
        let window = secs(self.cfg.window_secs);
        let q = self.naks.entry(seg).or_default();
        while q.front().is_some_and(|x| now.saturating_sub(x.0) > window) {
            q.pop_front();
        }
        if q.len() >= PER_SEGMENT {
            q.pop_front();
        }
        q.push_back((now, server, key.client));
        if q.len() < self.cfg.naks.max(1) {
            return vec![];
        }
        let mut servers: Vec<Ipv4Addr> = q.iter().map(|x| x.1).collect();
        servers.sort();
        servers.dedup();
        let mut clients: Vec<Mac> = q.iter().map(|x| x.2).collect();
        clients.sort();
        clients.dedup();
        clients.truncate(10);
        vec![Signal {
            kind: kind::DHCP_NAK_STORM,
            subject: Subject::Segment(seg),
            seg,
            packets: 1,
            evidence: super::evidence(&Evidence {
                naks_in_window: q.len(),
                window_secs: self.cfg.window_secs,
                servers,
                clients,
            }),
            quiet: secs(self.cfg.quiet_secs),
        }]
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
    fn ten_naks_in_a_minute_are_a_storm_nine_are_not() {
        let mut h = Harness::new(DhcpNakStorm::new(NakStormConfig::default()));
        let srv = Mac([2, 0, 0, 0, 0, 1]);
        for n in 0..9u32 {
            assert!(h.feed(&dhcp_msg(srv, 6, n), n as u64 * SECOND).is_empty());
        }
        let s = h.feed(&dhcp_msg(srv, 6, 9), 9 * SECOND);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].evidence["naks_in_window"], 10);
        assert_eq!(s[0].evidence["servers"][0], "10.0.0.1");
        // A minute later the first ones have left the window.
        assert!(h.feed(&dhcp_msg(srv, 6, 10), 70 * SECOND).is_empty());
    }
}
