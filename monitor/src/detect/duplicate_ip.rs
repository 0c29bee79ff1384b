//! duplicate_ip: two MACs alive on one IP at the same time. A change from one MAC to another
//! (a swapped NIC, a moved VM, a failover) is `mac_changed`, never this: the old MAC goes
//! quiet. This needs proof that both are alive, one of:
//! - both answer one ARP request (replies to the same asker) within `answer_window_ms`;
//! - their claims interleave at least twice (A B A B) within `window_secs`;
//! - a DHCPDECLINE (the client found the offered address in use).
use std::net::Ipv4Addr;

use monitor_common::DhcpMsgType;

use super::{kind, secs, Context, Detector, FindingKind, Signal, Subject};
use crate::{
    model::{Mac, Nanos, Observation, Segment},
    state::{Change, DeviceKey},
};

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DuplicateIpConfig {
    /// Claims interleaving within this many seconds count as both alive.
    pub window_secs: u64,
    /// Replies from two MACs to one asker within this many milliseconds: both answered.
    pub answer_window_ms: u64,
    /// A finding closes after this long without new evidence.
    pub quiet_secs: u64,
    /// IPs tracked at once (least recently claimed dropped first).
    pub max_tracked: usize,
}

impl Default for DuplicateIpConfig {
    fn default() -> Self {
        DuplicateIpConfig {
            window_secs: 60,
            answer_window_ms: 1_000,
            quiet_secs: 300,
            max_tracked: 100_000,
        }
    }
}

/// Runs of claims: consecutive claims by one MAC are one run.
const RUNS: usize = 4;

/// Recent claims on one IP that more than one MAC made.
#[derive(Debug, Default)]
struct Claims {
    /// Oldest first; at most [`RUNS`].
    runs: Vec<Run>,
    /// The last ARP reply: (MAC, asker, when).
    last_reply: Option<(Mac, Ipv4Addr, Nanos)>,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    mac: Mac,
    /// The run's last claim.
    last: Nanos,
    claims: u64,
}

impl Claims {
    fn push(&mut self, mac: Mac, now: Nanos) {
        match self.runs.last_mut() {
            Some(r) if r.mac == mac => {
                r.last = now;
                r.claims += 1;
            }
            _ => {
                if self.runs.len() == RUNS {
                    self.runs.remove(0);
                }
                self.runs.push(Run {
                    mac,
                    last: now,
                    claims: 1,
                });
            }
        }
    }

    /// A B A B: the last four runs alternate between two MACs, all within `window`.
    fn interleaved(&self, now: Nanos, window: Nanos) -> bool {
        let [a, b, c, d] = match self.runs.as_slice() {
            [.., a, b, c, d] => [a, b, c, d],
            _ => return false,
        };
        a.mac == c.mac && b.mac == d.mac && a.mac != b.mac && now.saturating_sub(a.last) <= window
    }

    fn claimants(&self) -> Vec<Claimant> {
        let mut macs: Vec<(Mac, Nanos, u64)> = Vec::new();
        for r in &self.runs {
            match macs.iter_mut().find(|m| m.0 == r.mac) {
                Some(m) => {
                    m.1 = m.1.max(r.last);
                    m.2 += r.claims;
                }
                None => macs.push((r.mac, r.last, r.claims)),
            }
        }
        macs.into_iter()
            .map(|(mac, t, n)| Claimant {
                mac,
                claims: Some(n),
                last_claim: Some(t),
                role: None,
                last_seen: None,
            })
            .collect()
    }
}

/// Why two MACs are known to be alive on one address at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Reason {
    #[serde(rename = "both answered one request")]
    BothAnswered,
    #[serde(rename = "interleaved claims")]
    Interleaved,
    #[serde(rename = "dhcp decline")]
    DhcpDecline,
}

/// One MAC claiming the address.
#[derive(Debug, Clone, serde::Serialize)]
struct Claimant {
    mac: Mac,
    /// Interleaved or answering claims: how many and the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    claims: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_claim: Option<Nanos>,
    /// A DHCPDECLINE: "decliner", or "holder" for the table's MAC of the address.
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seen: Option<Nanos>,
}

#[derive(serde::Serialize)]
struct DuplicateEvidence {
    ip: Ipv4Addr,
    reason: Reason,
    macs: Vec<Claimant>,
}

pub struct DuplicateIp {
    cfg: DuplicateIpConfig,
    claims: crate::model::FastLru<DeviceKey, Claims>,
}

impl DuplicateIp {
    pub fn new(cfg: DuplicateIpConfig) -> Self {
        let cap = cfg.max_tracked;
        DuplicateIp {
            cfg,
            claims: super::lazy_lru(cap),
        }
    }

    fn signal(
        &self,
        seg: Segment,
        ip: Ipv4Addr,
        reason: Reason,
        macs: Vec<Claimant>,
        packets: u64,
    ) -> Signal {
        Signal {
            kind: kind::DUPLICATE_IP,
            subject: Subject::Address(seg, ip),
            seg,
            packets,
            evidence: super::evidence(&DuplicateEvidence { ip, reason, macs }),
            quiet: secs(self.cfg.quiet_secs),
        }
    }

    fn claim(
        &mut self,
        key: DeviceKey,
        mac: Mac,
        reply_to: Option<Ipv4Addr>,
        ctx: &Context<'_>,
        now: Nanos,
    ) -> Option<Signal> {
        if !self.claims.contains(&key) {
            // One claimant needs no memory here: the device table has its MAC and last
            // sighting. Tracking starts when a second MAC takes the address, seeded with the
            // first MAC's last sighting (which the table kept as `previous`).
            let moved = matches!(
                ctx.change,
                Some(Change::Moved { .. } | Change::FlipFlop { .. })
            );
            let previous = ctx.table.get(&key).and_then(|d| d.previous);
            let (Some((old, seen)), true) = (previous, moved) else {
                return None;
            };
            let mut c = Claims::default();
            c.push(old, seen);
            self.claims.put(key, c);
        }
        let window = secs(self.cfg.window_secs);
        let answer_window = self.cfg.answer_window_ms.saturating_mul(1_000_000);
        let c = self.claims.get_mut(&key).expect("present");
        c.push(mac, now);
        let mut reason = None;
        if let Some(asker) = reply_to {
            if let Some((other, to, at)) = c.last_reply {
                if other != mac && to == asker && now.saturating_sub(at) <= answer_window {
                    reason = Some(Reason::BothAnswered);
                }
            }
            c.last_reply = Some((mac, asker, now));
        }
        if reason.is_none() && c.interleaved(now, window) {
            reason = Some(Reason::Interleaved);
        }
        let reason = reason?;
        let packets = c.runs.iter().map(|r| r.claims).sum();
        let macs = c.claimants();
        Some(self.signal(key.seg, key.ip, reason, macs, packets))
    }
}

impl Detector for DuplicateIp {
    fn name(&self) -> &'static str {
        "duplicate_ip"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::DUPLICATE_IP]
    }

    fn observe(&mut self, obs: &Observation, ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        match obs {
            Observation::Arp {
                seg,
                ip,
                mac,
                target_ip,
                op,
                probe,
                gratuitous,
                ..
            } => {
                // A probe claims nothing yet; the prober's later announcement does.
                if *probe || ip.is_unspecified() {
                    return vec![];
                }
                let key = DeviceKey { seg: *seg, ip: *ip };
                let reply_to = (*op == 2 && !*gratuitous).then_some(*target_ip);
                self.claim(key, *mac, reply_to, ctx, now)
                    .into_iter()
                    .collect()
            }
            Observation::Dhcp {
                seg, msg, src_mac, ..
            } if msg.kind() == Some(DhcpMsgType::Decline) => {
                // DHCPDECLINE: the client found its offered address in use.
                let Some(ip) = msg.requested_ip else {
                    return vec![];
                };
                let decliner = msg.chaddr.unwrap_or(*src_mac);
                let seen = |mac, role, last_seen| Claimant {
                    mac,
                    claims: None,
                    last_claim: None,
                    role: Some(role),
                    last_seen: Some(last_seen),
                };
                let holder = ctx
                    .table
                    .get(&DeviceKey { seg: *seg, ip })
                    .filter(|d| d.mac != decliner)
                    .map(|d| seen(d.mac, "holder", d.last_seen));
                let mut macs = vec![seen(decliner, "decliner", now)];
                macs.extend(holder);
                vec![self.signal(*seg, ip, Reason::DhcpDecline, macs, 1)]
            }
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        detect::tests_support::{arp, dhcp_decline, seg, Harness},
        model::SECOND,
    };

    const A: Mac = Mac([2, 0, 0, 0, 0, 0xa]);
    const B: Mac = Mac([2, 0, 0, 0, 0, 0xb]);
    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 7);
    const ASKER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const MS: Nanos = 1_000_000;

    fn harness() -> Harness<DuplicateIp> {
        Harness::new(DuplicateIp::new(DuplicateIpConfig::default()))
    }

    /// An announcement (gratuitous request): a claim that answers nobody.
    fn announce(mac: Mac) -> Observation {
        let mut o = arp(mac, IP);
        if let Observation::Arp {
            op,
            gratuitous,
            target_ip,
            ..
        } = &mut o
        {
            (*op, *gratuitous, *target_ip) = (1, true, IP);
        }
        o
    }

    /// A reply to `to`.
    fn reply(mac: Mac, to: Ipv4Addr) -> Observation {
        let mut o = arp(mac, IP);
        if let Observation::Arp { op, target_ip, .. } = &mut o {
            (*op, *target_ip) = (2, to);
        }
        o
    }

    #[test]
    fn a_swapped_nic_and_its_return_are_not_a_duplicate() {
        // The lab's NIC swap: each MAC claims twice in a row, the claims never interleave.
        let mut h = harness();
        for (t, mac) in [(0, A), (1, A), (2, B), (3, B), (4, A), (5, A)] {
            assert!(h.feed(&announce(mac), t * SECOND).is_empty(), "t={t}");
        }
    }

    #[test]
    fn claims_that_interleave_twice_are_a_duplicate() {
        let mut h = harness();
        assert!(h.feed(&announce(A), SECOND).is_empty());
        assert!(h.feed(&announce(B), 2 * SECOND).is_empty());
        assert!(
            h.feed(&announce(A), 3 * SECOND).is_empty(),
            "A B A is a flip back"
        );
        let s = h.feed(&announce(B), 4 * SECOND);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].kind, kind::DUPLICATE_IP);
        assert_eq!(s[0].evidence["reason"], "interleaved claims");
        let macs: Vec<_> = s[0].evidence["macs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mac"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(macs, [A.to_string(), B.to_string()]);
        assert_eq!(s[0].subject.to_string(), format!("{} 10.0.0.7", seg()));
    }

    #[test]
    fn interleaving_must_fit_the_window() {
        let mut h = harness();
        h.feed(&announce(A), 0);
        h.feed(&announce(B), 20 * SECOND);
        h.feed(&announce(A), 40 * SECOND);
        // The first run ended at 0: exactly 60 s before is inside the window.
        assert_eq!(h.feed(&announce(B), 60 * SECOND).len(), 1);
        let mut h = harness();
        h.feed(&announce(A), 0);
        h.feed(&announce(B), 20 * SECOND);
        h.feed(&announce(A), 40 * SECOND);
        assert!(h.feed(&announce(B), 60 * SECOND + 1).is_empty());
    }

    #[test]
    fn both_answering_one_request_is_a_duplicate() {
        let mut h = harness();
        h.feed(&announce(A), 0);
        assert!(h.feed(&reply(B, ASKER), 5 * SECOND).is_empty());
        let s = h.feed(&reply(A, ASKER), 5 * SECOND + 3 * MS);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].evidence["reason"], "both answered one request");
    }

    #[test]
    fn replies_to_different_askers_or_too_far_apart_are_not() {
        let mut h = harness();
        h.feed(&announce(A), 0);
        h.feed(&reply(B, ASKER), 5 * SECOND);
        assert!(h
            .feed(&reply(A, Ipv4Addr::new(10, 0, 0, 2)), 5 * SECOND + MS)
            .is_empty());
        let mut h = harness();
        h.feed(&announce(A), 0);
        h.feed(&reply(B, ASKER), 5 * SECOND);
        assert!(h.feed(&reply(A, ASKER), 6 * SECOND + 1).is_empty());
    }

    #[test]
    fn a_probe_claims_nothing() {
        let mut h = harness();
        h.feed(&announce(A), SECOND);
        let mut probe = arp(B, IP);
        if let Observation::Arp { probe: p, .. } = &mut probe {
            *p = true;
        }
        assert!(h.feed(&probe, 2 * SECOND).is_empty());
    }

    #[test]
    fn dhcp_decline_names_the_holder() {
        let mut h = harness();
        h.feed(&arp(A, IP), SECOND);
        let s = h.feed(&dhcp_decline(B, IP), 2 * SECOND);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].evidence["macs"].as_array().unwrap().len(), 2);
    }
}
