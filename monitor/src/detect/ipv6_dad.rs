//! Duplicate address detection, watched from the wire (RFC 4862, RFC 7527):
//! - `ipv6_duplicate_address`: a DAD probe for an address another MAC holds (answered or
//!   not), or two stations probing one address with different nonces within the window;
//! - `dad_dos`: one MAC answering (by NA, or by a probe of its own) other stations' probes
//!   for several distinct addresses: nobody on the segment can configure one (THC's
//!   `dos-new-ip6`);
//!
//! A probe coming back with the same MAC and nonce is the prober's own frame looped back
//! (RFC 7527): never a duplicate here (both need another MAC), and `l2_loop` counts it.
use std::{collections::VecDeque, net::Ipv6Addr};

use super::{kind, secs, Context, Detector, FindingKind, Signal, Subject};
use crate::{
    capture::hex,
    model::{FastMap, Mac, Nanos, Observation, Segment},
    state::AddrKind,
};

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DadConfig {
    /// Two probes for one address from different MACs within this many seconds collide.
    pub window_secs: u64,
    /// An address seen held within this many seconds counts as held.
    pub held_secs: u64,
    /// An answer (NA, or a counter-probe) within this many ms of another station's probe
    /// answers it.
    pub answer_ms: u64,
    /// Distinct addresses one MAC answered within window_secs that make a dad_dos.
    pub dos_targets: usize,
    /// Findings close after this long without a new signal.
    pub quiet_secs: u64,
}

impl Default for DadConfig {
    fn default() -> Self {
        DadConfig {
            window_secs: 60,
            held_secs: 600,
            answer_ms: 1_000,
            dos_targets: 3,
            quiet_secs: 300,
        }
    }
}

/// Probed addresses remembered (a mass PXE boot probes thousands: each is kept, unlike
/// NDPMon's single last target), probers per address, and answers per answering MAC.
const MAX_PROBES: usize = 65_536;
const PROBERS_PER_TARGET: usize = 4;
const MAX_ANSWERS: usize = 64;
/// Answering MACs tracked at most.
const MAX_ANSWERERS: usize = 16_384;

/// One station's probe for an address.
#[derive(Clone, Copy)]
struct Probe {
    mac: Mac,
    nonce: Option<[u8; 6]>,
    at: Nanos,
}

#[derive(serde::Serialize)]
struct DuplicateEvidence {
    address: Ipv6Addr,
    prober: Mac,
    #[serde(skip_serializing_if = "Option::is_none")]
    prober_nonce: Option<String>,
    /// The other MAC: the holder, or the other prober.
    other: Mac,
    /// "held" (the other MAC holds it) or "probed" (both probed it).
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    other_nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    held_as: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    held_last_seen: Option<Nanos>,
}

#[derive(serde::Serialize)]
struct DosEvidence {
    answerer: Mac,
    /// Addresses whose probes it answered, most recent last.
    targets: Vec<Ipv6Addr>,
    /// Stations whose probes it answered.
    victims: Vec<Mac>,
    window_secs: u64,
}

/// An answer to a probe: the target, the prober it answered, and when.
type Answer = (Ipv6Addr, Mac, Nanos);

pub struct Ipv6Dad {
    cfg: DadConfig,
    /// Recent probes per (segment, target), newest last: an index, so a flood of probes
    /// costs one lookup each.
    probes: FastMap<(Segment, Ipv6Addr), Vec<Probe>>,
    /// The same keys in the order they were last probed, for expiry.
    order: VecDeque<(Nanos, Segment, Ipv6Addr)>,
    /// Per answering (segment, MAC): (target, victim, when).
    answers: FastMap<(Segment, Mac), VecDeque<Answer>>,
    /// When `answers` was last swept.
    swept: Nanos,
}

impl Ipv6Dad {
    pub fn new(cfg: DadConfig) -> Self {
        Ipv6Dad {
            cfg,
            probes: FastMap::default(),
            order: VecDeque::new(),
            answers: FastMap::default(),
            swept: 0,
        }
    }

    /// Forgets probes older than the window, and the oldest addresses past the cap.
    fn expire(&mut self, now: Nanos) {
        let window = secs(self.cfg.window_secs);
        while let Some(&(at, seg, target)) = self.order.front() {
            if now.saturating_sub(at) <= window && self.order.len() <= MAX_PROBES {
                break;
            }
            self.order.pop_front();
            // Only if this was its latest probe (a newer one has its own entry behind).
            if let Some(list) = self.probes.get(&(seg, target)) {
                if list.last().is_none_or(|p| p.at <= at) {
                    self.probes.remove(&(seg, target));
                }
            }
        }
    }

    /// Another station's probe for `target` within `answer_ms`, if any.
    fn probed_by_other(&self, seg: Segment, target: Ipv6Addr, mac: Mac, now: Nanos) -> Option<Mac> {
        let ms = self.cfg.answer_ms * 1_000_000;
        self.probes
            .get(&(seg, target))?
            .iter()
            .rev()
            .find(|p| p.mac != mac && now.saturating_sub(p.at) <= ms)
            .map(|p| p.mac)
    }

    /// `mac` answered `victim`'s probe for `target`: a dad_dos once it has answered enough
    /// distinct addresses.
    fn answered(
        &mut self,
        seg: Segment,
        mac: Mac,
        target: Ipv6Addr,
        victim: Mac,
        now: Nanos,
    ) -> Option<Signal> {
        let window = secs(self.cfg.window_secs);
        if self.answers.len() >= MAX_ANSWERERS && !self.answers.contains_key(&(seg, mac)) {
            // Swept at most once a window: a flood of answerers costs no sweep per answer.
            if now.saturating_sub(self.swept) > window {
                self.swept = now;
                self.answers
                    .retain(|_, v| v.back().is_some_and(|a| now.saturating_sub(a.2) <= window));
            }
            if self.answers.len() >= MAX_ANSWERERS {
                return None;
            }
        }
        let list = self.answers.entry((seg, mac)).or_default();
        while list
            .front()
            .is_some_and(|a| now.saturating_sub(a.2) > window)
        {
            list.pop_front();
        }
        if !list.iter().any(|a| a.0 == target) {
            if list.len() >= MAX_ANSWERS {
                list.pop_front();
            }
            list.push_back((target, victim, now));
        }
        if list.len() < self.cfg.dos_targets.max(1) {
            return None;
        }
        let mut victims: Vec<Mac> = list.iter().map(|a| a.1).collect();
        victims.sort();
        victims.dedup();
        Some(Signal {
            kind: kind::DAD_DOS,
            subject: Subject::Mac(seg, mac),
            seg,
            packets: 1,
            evidence: super::evidence(&DosEvidence {
                answerer: mac,
                targets: list.iter().map(|a| a.0).collect(),
                victims,
                window_secs: self.cfg.window_secs,
            }),
            quiet: secs(self.cfg.quiet_secs),
        })
    }
}

impl Detector for Ipv6Dad {
    fn name(&self) -> &'static str {
        "ipv6_dad"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::IPV6_DUPLICATE_ADDRESS, kind::DAD_DOS]
    }

    fn observe(&mut self, obs: &Observation, ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        // Every other observation (ARP, DHCP, ...) leaves the probe index alone.
        if !matches!(
            obs,
            Observation::DadProbe { .. } | Observation::Neighbour { advert: true, .. }
        ) {
            return Vec::new();
        }
        self.expire(now);
        let quiet = secs(self.cfg.quiet_secs);
        match obs {
            Observation::DadProbe {
                seg,
                target,
                mac,
                nonce,
            } => {
                let (seg, target, mac, nonce) = (*seg, *target, *mac, *nonce);
                let mut out = Vec::new();
                let held_window = secs(self.cfg.held_secs);
                let holder =
                    ctx.v6.neighbours.holder(seg, target).filter(|(m, a)| {
                        *m != mac && now.saturating_sub(a.last_seen) <= held_window
                    });
                let other_probe = self.probes.get(&(seg, target)).and_then(|l| {
                    l.iter()
                        .rev()
                        .find(|p| p.mac != mac && p.nonce != nonce)
                        .copied()
                });
                let ev = match (holder, other_probe) {
                    (Some((other, a)), _) => Some(DuplicateEvidence {
                        address: target,
                        prober: mac,
                        prober_nonce: nonce.map(|n| hex(&n)),
                        other,
                        reason: "held",
                        other_nonce: None,
                        held_as: Some(AddrKind::name(a.kind)),
                        held_last_seen: Some(a.last_seen),
                    }),
                    (None, Some(p)) => Some(DuplicateEvidence {
                        address: target,
                        prober: mac,
                        prober_nonce: nonce.map(|n| hex(&n)),
                        other: p.mac,
                        reason: "probed",
                        other_nonce: p.nonce.map(|n| hex(&n)),
                        held_as: None,
                        held_last_seen: None,
                    }),
                    _ => None,
                };
                // A counter-probe for an address another station is probing answers it.
                if let Some(victim) = self.probed_by_other(seg, target, mac, now) {
                    out.extend(self.answered(seg, mac, target, victim, now));
                }
                if let Some(e) = ev {
                    out.push(Signal {
                        kind: kind::IPV6_DUPLICATE_ADDRESS,
                        subject: Subject::Address6(seg, target),
                        seg,
                        packets: 1,
                        evidence: super::evidence(&e),
                        quiet,
                    });
                }
                let list = self.probes.entry((seg, target)).or_default();
                list.retain(|p| p.mac != mac);
                if list.len() >= PROBERS_PER_TARGET {
                    list.remove(0);
                }
                list.push(Probe {
                    mac,
                    nonce,
                    at: now,
                });
                self.order.push_back((now, seg, target));
                out
            }
            Observation::Neighbour {
                seg,
                ip,
                mac,
                advert: true,
                ..
            } => match self.probed_by_other(*seg, *ip, *mac, now) {
                Some(victim) => self
                    .answered(*seg, *mac, *ip, victim, now)
                    .into_iter()
                    .collect(),
                None => Vec::new(),
            },
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        detect::tests_support::{seg, Harness},
        model::{ArpChange, SECOND},
    };

    fn probe(mac: u8, target: &str, nonce: u8) -> Observation {
        Observation::DadProbe {
            seg: seg(),
            target: target.parse().unwrap(),
            mac: Mac([2, 0, 0, 0, 0, mac]),
            nonce: Some([nonce; 6]),
        }
    }

    fn na(mac: u8, ip: &str) -> Observation {
        Observation::Neighbour {
            seg: seg(),
            change: ArpChange::New,
            ip: ip.parse().unwrap(),
            mac: Mac([2, 0, 0, 0, 0, mac]),
            old_mac: None,
            advert: true,
            router: false,
            solicited: false,
            override_flag: true,
        }
    }

    fn kinds(v: &[Signal]) -> Vec<&'static str> {
        v.iter().map(|s| s.kind.name()).collect()
    }

    #[test]
    fn a_probe_for_a_held_address_or_a_second_prober_is_a_duplicate() {
        let mut h = Harness::new(Ipv6Dad::new(DadConfig::default()));
        assert!(h.feed(&na(1, "2001:db8::5"), SECOND).is_empty());
        let s = h.feed(&probe(2, "2001:db8::5", 7), 2 * SECOND);
        assert_eq!(kinds(&s), ["ipv6_duplicate_address"]);
        assert_eq!(s[0].evidence["reason"], "held");
        assert_eq!(s[0].evidence["other"], "02:00:00:00:00:01");
        assert_eq!(s[0].evidence["prober_nonce"], "070707070707");
        let mut h = Harness::new(Ipv6Dad::new(DadConfig::default()));
        assert!(h.feed(&probe(3, "fe80::9", 1), SECOND).is_empty());
        let s = h.feed(&probe(4, "fe80::9", 2), 3 * SECOND);
        assert_eq!(kinds(&s), ["ipv6_duplicate_address"]);
        assert_eq!(s[0].evidence["reason"], "probed");
    }

    #[test]
    fn a_clean_boot_and_a_retransmission_are_nothing() {
        let mut h = Harness::new(Ipv6Dad::new(DadConfig::default()));
        assert!(h.feed(&probe(1, "fe80::1", 1), SECOND).is_empty());
        // Linux retransmits with the same nonce a second later: not an echo, not a duplicate.
        assert!(h.feed(&probe(1, "fe80::1", 1), 2 * SECOND).is_empty());
        assert!(h.feed(&na(1, "fe80::1"), 3 * SECOND).is_empty());
        assert!(h.feed(&probe(2, "fe80::2", 2), 4 * SECOND).is_empty());
    }

    #[test]
    fn an_echoed_probe_is_not_a_duplicate() {
        let mut h = Harness::new(Ipv6Dad::new(DadConfig::default()));
        for n in 0..5 {
            assert!(h
                .feed(&probe(1, "fe80::1", 5), SECOND + n * 1_000_000)
                .is_empty());
        }
    }

    #[test]
    fn answering_every_probe_is_dad_dos() {
        let mut h = Harness::new(Ipv6Dad::new(DadConfig::default()));
        let mut last = Vec::new();
        for n in 1..=3u8 {
            let t = n as u64 * 10 * SECOND;
            let target = format!("2001:db8::{n}");
            h.feed(&probe(n, &target, n), t);
            last = h.feed(&na(0xee, &target), t + 100_000_000);
        }
        assert_eq!(kinds(&last), ["dad_dos"]);
        assert_eq!(last[0].evidence["targets"].as_array().unwrap().len(), 3);
        assert_eq!(
            last[0].subject.to_string(),
            format!("{} 02:00:00:00:00:ee", seg())
        );
    }
}
