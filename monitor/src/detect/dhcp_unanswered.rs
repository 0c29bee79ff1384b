//! `dhcp_unanswered`: on a segment, at least `min_discovers` DISCOVERs from at least
//! `min_clients` clients within the window, each waited on for `wait_secs`, and no OFFER
//! since: the VLAN's DHCP is silent (a broken relay, a dead server, a port stuck in STP
//! listening). Checked once a tick; it closes `quiet_secs` after offers resume.
use std::collections::VecDeque;

use super::{kind, secs, Context, Detector, FindingKind, Signal, Subject};
use crate::model::{FastMap, Mac, Nanos, Observation, Segment};

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnansweredConfig {
    pub min_discovers: usize,
    pub min_clients: usize,
    pub window_secs: u64,
    /// A DISCOVER counts once it has waited this long for an OFFER.
    pub wait_secs: u64,
    pub quiet_secs: u64,
}

impl Default for UnansweredConfig {
    fn default() -> Self {
        UnansweredConfig {
            min_discovers: 3,
            min_clients: 1,
            window_secs: 60,
            wait_secs: 10,
            quiet_secs: 5,
        }
    }
}

/// DISCOVERs remembered per segment, and segments at most.
const PER_SEGMENT: usize = 1_024;
const MAX_SEGMENTS: usize = 4_096;

#[derive(Default)]
struct SegState {
    /// (when, client, xid), oldest first.
    discovers: VecDeque<(Nanos, Mac, u32)>,
    last_offer: Option<Nanos>,
}

#[derive(serde::Serialize)]
struct Evidence {
    discovers: usize,
    clients: Vec<Mac>,
    xids: Vec<String>,
    first_discover: Nanos,
    last_discover: Nanos,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_offer: Option<Nanos>,
    window_secs: u64,
}

pub struct DhcpUnanswered {
    cfg: UnansweredConfig,
    segs: FastMap<Segment, SegState>,
}

impl DhcpUnanswered {
    pub fn new(cfg: UnansweredConfig) -> Self {
        DhcpUnanswered {
            cfg,
            segs: FastMap::default(),
        }
    }
}

impl Detector for DhcpUnanswered {
    fn name(&self) -> &'static str {
        "dhcp_unanswered"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::DHCP_UNANSWERED]
    }

    fn observe(&mut self, obs: &Observation, _ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        let Observation::Dhcp {
            seg, src_mac, msg, ..
        } = obs
        else {
            return vec![];
        };
        let t = msg.kind();
        if !matches!(
            t,
            Some(monitor_common::DhcpMsgType::Discover | monitor_common::DhcpMsgType::Offer)
        ) {
            return vec![];
        }
        if !self.segs.contains_key(seg) && self.segs.len() >= MAX_SEGMENTS {
            return vec![];
        }
        let s = self.segs.entry(*seg).or_default();
        if t == Some(monitor_common::DhcpMsgType::Offer) {
            s.last_offer = Some(now);
        } else {
            if s.discovers.len() >= PER_SEGMENT {
                s.discovers.pop_front();
            }
            s.discovers
                .push_back((now, msg.chaddr.unwrap_or(*src_mac), msg.xid));
        }
        vec![]
    }

    fn tick(&mut self, now: Nanos) -> Vec<Signal> {
        let window = secs(self.cfg.window_secs);
        let wait = secs(self.cfg.wait_secs);
        let mut out = Vec::new();
        self.segs.retain(|seg, s| {
            while s
                .discovers
                .front()
                .is_some_and(|d| now.saturating_sub(d.0) > window)
            {
                s.discovers.pop_front();
            }
            // Waited long enough, and not answered by an offer since.
            let unanswered: Vec<&(Nanos, Mac, u32)> = s
                .discovers
                .iter()
                .filter(|d| now.saturating_sub(d.0) >= wait)
                .filter(|d| s.last_offer.is_none_or(|o| o < d.0))
                .collect();
            let mut clients: Vec<Mac> = unanswered.iter().map(|d| d.1).collect();
            clients.sort();
            clients.dedup();
            if unanswered.len() >= self.cfg.min_discovers.max(1)
                && clients.len() >= self.cfg.min_clients.max(1)
            {
                let mut xids: Vec<String> = unanswered
                    .iter()
                    .map(|d| format!("{:#010x}", d.2))
                    .collect();
                xids.dedup();
                xids.truncate(10);
                clients.truncate(10);
                out.push(Signal {
                    kind: kind::DHCP_UNANSWERED,
                    subject: Subject::Segment(*seg),
                    seg: *seg,
                    packets: unanswered.len() as u64,
                    evidence: super::evidence(&Evidence {
                        discovers: unanswered.len(),
                        clients,
                        xids,
                        first_discover: unanswered.first().map_or(0, |d| d.0),
                        last_discover: unanswered.last().map_or(0, |d| d.0),
                        last_offer: s.last_offer,
                        window_secs: self.cfg.window_secs,
                    }),
                    quiet: secs(self.cfg.quiet_secs),
                });
            }
            !s.discovers.is_empty()
                || s.last_offer
                    .is_some_and(|o| now.saturating_sub(o) <= window)
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        detect::tests_support::{dhcp_msg, seg, Harness},
        model::SECOND,
    };

    #[test]
    fn discovers_nobody_answers_open_it_and_an_offer_ends_it() {
        let mut h = Harness::new(DhcpUnanswered::new(UnansweredConfig::default()));
        let client = Mac([2, 0, 0, 0, 1, 1]);
        for n in 0..3u64 {
            h.feed(&dhcp_msg(client, 1, n as u32), n * 3 * SECOND);
        }
        assert!(
            h.detector.tick(15 * SECOND).is_empty(),
            "the last has not waited 10 s"
        );
        let s = h.detector.tick(16 * SECOND);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].kind, kind::DHCP_UNANSWERED);
        assert_eq!(s[0].evidence["discovers"], 3);
        assert_eq!(s[0].evidence["clients"][0], "02:00:00:00:01:01");
        // An offer: what came before it is answered.
        h.feed(&dhcp_msg(Mac([2, 0, 0, 0, 0, 1]), 2, 9), 17 * SECOND);
        assert!(h.detector.tick(18 * SECOND).is_empty());
    }

    #[test]
    fn a_server_that_answers_keeps_it_quiet() {
        let mut h = Harness::new(DhcpUnanswered::new(UnansweredConfig::default()));
        for n in 0..5u64 {
            h.feed(
                &dhcp_msg(Mac([2, 0, 0, 0, 1, n as u8]), 1, n as u32),
                n * SECOND,
            );
            h.feed(
                &dhcp_msg(Mac([2, 0, 0, 0, 0, 1]), 2, n as u32),
                n * SECOND + 10_000_000,
            );
        }
        assert!(h.detector.tick(30 * SECOND).is_empty());
        let _ = seg();
    }
}
