//! DHCP detectors. `DhcpServerWatch`: dhcp_server_seen (every server, while it answers),
//! dhcp_rogue_server (a server not on the segment's allowlist), dhcp_competing_servers (two or
//! more servers answering on one segment within the window, with their ranges). `DhcpStorm`:
//! dhcp_storm (DISCOVER+REQUEST rate over a threshold) and dhcp_starvation (many distinct
//! client MACs in a short time).
use std::collections::VecDeque;

use monitor_common::DhcpMsgType;

use super::{kind, secs, Context, Detector, FindingKind, Signal, Subject};
use crate::{
    model::{Mac, Nanos, Observation, Segment, SECOND},
    state::{Server, ServerKey},
};

/// Servers allowed on some VLANs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Allow {
    /// "untagged", "100", "200.2001", or "*" for every segment.
    pub vlan: String,
    /// DHCPv4: server identifiers (option 54 IPs) or MACs. DHCPv6: server DUIDs (hex),
    /// MACs or IPv6 source addresses.
    pub servers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DhcpServerConfig {
    /// Two servers answering within this many seconds compete.
    pub window_secs: u64,
    /// Findings close after this long without a reply from the server(s).
    pub quiet_secs: u64,
    /// Allowlists. A segment with an allowlist calls any other server rogue.
    pub allow: Vec<Allow>,
}

/// Whether an allowlist's `vlan` ("untagged", "100", "200.2001" or "*") covers `seg`.
pub fn covers(vlan: &str, seg: &Segment) -> bool {
    vlan == "*" || vlan == seg.vlan_label()
}

impl Allow {
    /// The allowlists of `allow` that cover `seg`.
    pub fn covering<'a>(allow: &'a [Allow], seg: &Segment) -> Vec<&'a Allow> {
        allow.iter().filter(|a| covers(&a.vlan, seg)).collect()
    }
}

impl DhcpServerConfig {
    /// Whether an allowlist covers `key`'s segment, and if so whether it lists the server.
    pub fn authorized(&self, key: &ServerKey) -> Option<bool> {
        let lists = Allow::covering(&self.allow, &key.seg);
        if lists.is_empty() {
            return None;
        }
        let id = key.server_id.to_string();
        let mac = key.mac.to_string();
        Some(lists.iter().any(|a| {
            a.servers
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&id) || s.eq_ignore_ascii_case(&mac))
        }))
    }
}

impl Default for DhcpServerConfig {
    fn default() -> Self {
        DhcpServerConfig {
            window_secs: 300,
            quiet_secs: 900,
            allow: Vec::new(),
        }
    }
}

/// A DHCP server as a finding shows it.
#[derive(serde::Serialize)]
struct ServerEvidence<'a> {
    server_id: std::net::Ipv4Addr,
    mac: Mac,
    offers: u64,
    acks: u64,
    naks: u64,
    lowest_offered: Option<std::net::Ipv4Addr>,
    highest_offered: Option<std::net::Ipv4Addr>,
    recent_offers: &'a [std::net::Ipv4Addr],
    /// The allowlist's verdict; None where no allowlist covers the segment.
    authorized: Option<bool>,
    first_seen: Nanos,
    last_seen: Nanos,
}

#[derive(serde::Serialize)]
struct CompetingEvidence<'a> {
    servers: Vec<ServerEvidence<'a>>,
    ranges_overlap: bool,
}

#[derive(serde::Serialize)]
struct StormEvidence {
    messages_in_window: u64,
    window_secs: u64,
    threshold_per_sec: u64,
}

#[derive(serde::Serialize)]
struct StarvationEvidence {
    distinct_clients: usize,
    window_secs: u64,
    threshold: usize,
}

pub struct DhcpServerWatch {
    cfg: DhcpServerConfig,
    /// When each server, and each segment's competition (with how many servers), was last
    /// signalled: an open finding is refreshed at most once a second, so a busy server's
    /// every reply does not rebuild its evidence.
    last: crate::model::FastLru<ServerKey, Nanos>,
    last_competing: crate::model::FastLru<Segment, (Nanos, usize)>,
}

/// The shortest time between two signals of one open finding.
const RESIGNAL: Nanos = SECOND;

impl DhcpServerWatch {
    pub fn new(cfg: DhcpServerConfig) -> Self {
        DhcpServerWatch {
            cfg,
            last: super::lazy_lru(4_096),
            last_competing: super::lazy_lru(4_096),
        }
    }

    /// Whether an allowlist covers `key`'s segment, and if so whether it lists the server.
    pub fn authorized(&self, key: &ServerKey) -> Option<bool> {
        self.cfg.authorized(key)
    }

    fn describe<'a>(
        key: &ServerKey,
        s: &'a Server,
        authorized: Option<bool>,
    ) -> ServerEvidence<'a> {
        ServerEvidence {
            server_id: key.server_id,
            mac: key.mac,
            offers: s.offers,
            acks: s.acks,
            naks: s.naks,
            lowest_offered: s.lowest_offered,
            highest_offered: s.highest_offered,
            recent_offers: &s.recent_offers,
            authorized,
            first_seen: s.first_seen,
            last_seen: s.last_seen,
        }
    }
}

/// The server a reply comes from, if `obs` is a server reply.
pub fn server_of(obs: &Observation) -> Option<(ServerKey, u8)> {
    match obs {
        Observation::Dhcp {
            seg,
            src_mac,
            src_ip,
            msg,
        } if msg.is_server_reply() => Some((
            ServerKey {
                seg: *seg,
                server_id: msg.server_id.unwrap_or(*src_ip),
                mac: *src_mac,
            },
            msg.msg_type.unwrap_or(0),
        )),
        _ => None,
    }
}

impl Detector for DhcpServerWatch {
    fn name(&self) -> &'static str {
        "dhcp_servers"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[
            kind::DHCP_SERVER_SEEN,
            kind::DHCP_ROGUE_SERVER,
            kind::DHCP_COMPETING_SERVERS,
        ]
    }

    fn observe(&mut self, obs: &Observation, ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        let Some((key, _)) = server_of(obs) else {
            return vec![];
        };
        let Some(server) = ctx.servers.get(&key) else {
            return vec![];
        };
        let quiet = secs(self.cfg.quiet_secs);
        let auth = self.authorized(&key);
        let subject = Subject::Server(key.seg, key.server_id, key.mac);
        // One finding per problem: an allowlisted server is inventory (the server list
        // shows it), one not on the list is rogue, and only where no allowlist speaks is a
        // server reported as merely seen.
        let seen_kind = match auth {
            Some(true) => None,
            Some(false) => Some(kind::DHCP_ROGUE_SERVER),
            None => Some(kind::DHCP_SERVER_SEEN),
        };
        let fresh = self
            .last
            .get(&key)
            .is_none_or(|t| now.saturating_sub(*t) >= RESIGNAL);
        if fresh {
            self.last.put(key, now);
        }
        let mut out: Vec<Signal> = seen_kind
            .filter(|_| fresh)
            .map(|kind| Signal {
                kind,
                subject,
                seg: key.seg,
                packets: 1,
                evidence: super::evidence(&Self::describe(&key, server, auth)),
                quiet,
            })
            .into_iter()
            .collect();
        let since = now.saturating_sub(secs(self.cfg.window_secs));
        let active = ctx.servers.active_on(key.seg, since);
        let mut ids: Vec<_> = active.iter().map(|(k, _)| k.server_id).collect();
        ids.dedup();
        let due = self
            .last_competing
            .get(&key.seg)
            .is_none_or(|(t, n)| *n != ids.len() || now.saturating_sub(*t) >= RESIGNAL);
        if ids.len() >= 2 && due {
            self.last_competing.put(key.seg, (now, ids.len()));
            let overlap = active.iter().enumerate().any(|(i, (ka, a))| {
                active[i + 1..]
                    .iter()
                    .any(|(kb, b)| ka.server_id != kb.server_id && a.range_overlaps(b))
            });
            let servers: Vec<_> = active
                .iter()
                .map(|(k, s)| Self::describe(k, s, self.authorized(k)))
                .collect();
            out.push(Signal {
                kind: kind::DHCP_COMPETING_SERVERS,
                subject: Subject::Segment(key.seg),
                seg: key.seg,
                packets: 1,
                evidence: super::evidence(&CompetingEvidence {
                    servers,
                    ranges_overlap: overlap,
                }),
                quiet,
            });
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DhcpStormConfig {
    /// DISCOVER+REQUEST per second on one segment, averaged over the window, above which it is
    /// a storm.
    pub storm_rate_per_sec: u64,
    pub storm_window_secs: u64,
    /// Distinct client MACs sending DISCOVER within the window, at or above which it is
    /// starvation.
    pub starvation_clients: usize,
    pub starvation_window_secs: u64,
    pub quiet_secs: u64,
    pub max_segments: usize,
}

impl Default for DhcpStormConfig {
    fn default() -> Self {
        DhcpStormConfig {
            storm_rate_per_sec: 50,
            storm_window_secs: 10,
            starvation_clients: 100,
            starvation_window_secs: 60,
            quiet_secs: 120,
            max_segments: 4_096,
        }
    }
}

#[derive(Default)]
struct SegRate {
    /// (second, messages) most recent last.
    buckets: VecDeque<(u64, u64)>,
    clients: crate::model::FastMap<Mac, Nanos>,
    /// When `clients` was last pruned to the window.
    pruned: Nanos,
}

pub struct DhcpStorm {
    cfg: DhcpStormConfig,
    segs: crate::model::FastLru<Segment, SegRate>,
}

impl DhcpStorm {
    pub fn new(cfg: DhcpStormConfig) -> Self {
        let cap = cfg.max_segments;
        DhcpStorm {
            cfg,
            segs: super::lazy_lru(cap),
        }
    }
}

impl Detector for DhcpStorm {
    fn name(&self) -> &'static str {
        "dhcp_storm"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::DHCP_STORM, kind::DHCP_STARVATION]
    }

    fn observe(&mut self, obs: &Observation, _ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        let Observation::Dhcp {
            seg, msg, src_mac, ..
        } = obs
        else {
            return vec![];
        };
        if !matches!(
            msg.kind(),
            Some(DhcpMsgType::Discover | DhcpMsgType::Request)
        ) {
            return vec![];
        }
        let cfg = &self.cfg;
        let st = self.segs.get_or_insert_mut(*seg, SegRate::default);
        let sec = now / SECOND;
        match st.buckets.back_mut() {
            Some((s, n)) if *s == sec => *n += 1,
            _ => st.buckets.push_back((sec, 1)),
        }
        while st
            .buckets
            .front()
            .is_some_and(|(s, _)| sec.saturating_sub(*s) >= cfg.storm_window_secs)
        {
            st.buckets.pop_front();
        }
        let mut out = Vec::new();
        let in_window: u64 = st.buckets.iter().map(|(_, n)| n).sum();
        if in_window > cfg.storm_rate_per_sec * cfg.storm_window_secs {
            out.push(Signal {
                kind: kind::DHCP_STORM,
                subject: Subject::Segment(*seg),
                seg: *seg,
                packets: 1,
                evidence: super::evidence(&StormEvidence {
                    messages_in_window: in_window,
                    window_secs: cfg.storm_window_secs,
                    threshold_per_sec: cfg.storm_rate_per_sec,
                }),
                quiet: secs(cfg.quiet_secs),
            });
        }
        if msg.kind() == Some(DhcpMsgType::Discover) {
            let window = secs(cfg.starvation_window_secs);
            st.clients.insert(msg.chaddr.unwrap_or(*src_mac), now);
            // Prune to the window once the threshold is reached, at most every 100 ms; past
            // twice the threshold keep the newest `threshold` (so the sort runs once per
            // `threshold` new clients, not on each).
            if st.clients.len() >= cfg.starvation_clients
                && now.saturating_sub(st.pruned) >= SECOND / 10
            {
                st.pruned = now;
                st.clients.retain(|_, t| now.saturating_sub(*t) <= window);
            }
            if st.clients.len() > cfg.starvation_clients.max(1) * 2 {
                let mut times: Vec<_> = st.clients.values().copied().collect();
                times.sort_unstable();
                let cut = times[times.len() - cfg.starvation_clients.max(1)];
                st.clients.retain(|_, t| *t >= cut);
            }
            if st.clients.len() >= cfg.starvation_clients {
                out.push(Signal {
                    kind: kind::DHCP_STARVATION,
                    subject: Subject::Segment(*seg),
                    seg: *seg,
                    packets: 1,
                    evidence: super::evidence(&StarvationEvidence {
                        distinct_clients: st.clients.len(),
                        window_secs: cfg.starvation_window_secs,
                        threshold: cfg.starvation_clients,
                    }),
                    quiet: secs(cfg.quiet_secs),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        detect::tests_support::{dhcp_from_client, dhcp_reply, Harness},
        model::SECOND,
    };
    use std::net::Ipv4Addr;

    const S1: Mac = Mac([2, 0, 0, 0, 0, 0x51]);
    const S2: Mac = Mac([2, 0, 0, 0, 0, 0x52]);

    #[test]
    fn one_server_is_seen_not_competing() {
        let mut h = Harness::new(DhcpServerWatch::new(DhcpServerConfig::default()));
        let s = h.feed(
            &dhcp_reply(
                S1,
                Ipv4Addr::new(10, 0, 0, 1),
                2,
                Ipv4Addr::new(10, 0, 0, 50),
            ),
            SECOND,
        );
        let kinds: Vec<_> = s.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [kind::DHCP_SERVER_SEEN]);
    }

    #[test]
    fn two_servers_compete_and_ranges_overlap() {
        let mut h = Harness::new(DhcpServerWatch::new(DhcpServerConfig::default()));
        h.feed(
            &dhcp_reply(
                S1,
                Ipv4Addr::new(10, 0, 0, 1),
                2,
                Ipv4Addr::new(10, 0, 0, 50),
            ),
            SECOND,
        );
        h.feed(
            &dhcp_reply(
                S1,
                Ipv4Addr::new(10, 0, 0, 1),
                2,
                Ipv4Addr::new(10, 0, 0, 90),
            ),
            SECOND,
        );
        let s = h.feed(
            &dhcp_reply(
                S2,
                Ipv4Addr::new(10, 0, 0, 2),
                2,
                Ipv4Addr::new(10, 0, 0, 60),
            ),
            2 * SECOND,
        );
        let c = s
            .iter()
            .find(|s| s.kind == kind::DHCP_COMPETING_SERVERS)
            .expect("competing");
        assert_eq!(c.evidence["servers"].as_array().unwrap().len(), 2);
        assert_eq!(c.evidence["ranges_overlap"], true);
    }

    #[test]
    fn competing_window_boundary_and_disjoint_ranges() {
        // S1 offers at 0, S2 (another range) at `t`.
        let second_offer_at = |t| {
            let mut h = Harness::new(DhcpServerWatch::new(DhcpServerConfig::default()));
            let offer = |mac, server, yiaddr| dhcp_reply(mac, server, 2, yiaddr);
            h.feed(
                &offer(S1, Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 50)),
                0,
            );
            h.feed(
                &offer(S2, Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 1, 60)),
                t,
            )
        };
        let s = second_offer_at(300 * SECOND);
        let c = s
            .iter()
            .find(|s| s.kind == kind::DHCP_COMPETING_SERVERS)
            .expect("at the edge");
        assert_eq!(c.evidence["ranges_overlap"], false);
        let s = second_offer_at(300 * SECOND + 1);
        assert!(s.iter().all(|s| s.kind != kind::DHCP_COMPETING_SERVERS));
    }

    #[test]
    fn allowlist_makes_others_rogue() {
        let cfg = DhcpServerConfig {
            allow: vec![Allow {
                vlan: "*".into(),
                servers: vec!["10.0.0.1".into()],
            }],
            ..Default::default()
        };
        let mut h = Harness::new(DhcpServerWatch::new(cfg));
        let s = h.feed(
            &dhcp_reply(
                S1,
                Ipv4Addr::new(10, 0, 0, 1),
                5,
                Ipv4Addr::new(10, 0, 0, 50),
            ),
            SECOND,
        );
        assert!(
            s.is_empty(),
            "an allowlisted server is inventory, not a finding: {s:?}"
        );
        let s = h.feed(
            &dhcp_reply(
                S2,
                Ipv4Addr::new(10, 0, 0, 2),
                2,
                Ipv4Addr::new(10, 0, 0, 60),
            ),
            SECOND,
        );
        let kinds: Vec<_> = s.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [kind::DHCP_ROGUE_SERVER, kind::DHCP_COMPETING_SERVERS],
            "rogue once, not also seen"
        );
        let r = &s[0];
        assert_eq!(r.evidence["authorized"], false);
    }

    #[test]
    fn storm_over_threshold_only() {
        let cfg = DhcpStormConfig {
            storm_rate_per_sec: 5,
            storm_window_secs: 2,
            ..Default::default()
        };
        let mut h = Harness::new(DhcpStorm::new(cfg));
        let mac = Mac([2, 0, 0, 0, 0, 1]);
        // 10 messages in 2 s is exactly the threshold: not a storm; the 11th is.
        for i in 0..10 {
            assert!(
                h.feed(&dhcp_from_client(mac, 1), i * SECOND / 5).is_empty(),
                "message {i}"
            );
        }
        let s = h.feed(&dhcp_from_client(mac, 3), 19 * SECOND / 10);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].kind, kind::DHCP_STORM);
        // Much later the window is empty again.
        assert!(h.feed(&dhcp_from_client(mac, 1), 100 * SECOND).is_empty());
    }

    #[test]
    fn starvation_counts_distinct_clients() {
        let cfg = DhcpStormConfig {
            starvation_clients: 20,
            storm_rate_per_sec: 1_000,
            ..Default::default()
        };
        let mut h = Harness::new(DhcpStorm::new(cfg));
        for i in 0..19u8 {
            assert!(h
                .feed(&dhcp_from_client(Mac([2, 0, 0, 0, 1, i]), 1), SECOND)
                .is_empty());
        }
        // The same client again does not count twice.
        assert!(h
            .feed(&dhcp_from_client(Mac([2, 0, 0, 0, 1, 0]), 1), SECOND)
            .is_empty());
        let s = h.feed(&dhcp_from_client(Mac([2, 0, 0, 0, 1, 19]), 1), 2 * SECOND);
        assert_eq!(s[0].kind, kind::DHCP_STARVATION);
        assert_eq!(s[0].evidence["distinct_clients"], 20);
    }
}
