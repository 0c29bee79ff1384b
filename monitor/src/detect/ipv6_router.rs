//! IPv6 routers: `ipv6_rogue_router` and `ipv6_competing_routers`. The settings (the
//! allowlist and what "established" means) are shared by every router detector.
//!
//! With an allowlist for the segment, a router whose MAC or source address it does not list
//! is rogue. Without one, the segment's established routers are trusted: those first seen at
//! least `established_secs` before the newcomer (the router table is persisted, so this
//! survives a restart). A later router that advertises a prefix no established router
//! advertises, or a higher preference than all of them, is rogue; routers that appeared
//! together (within `established_secs`) with different prefixes compete.
use std::{collections::BTreeSet, net::Ipv6Addr};

use super::{kind, secs, Context, Detector, FindingKind, Signal, Subject};
use crate::{
    decode::ra::Preference,
    model::{Mac, Nanos, Observation, Segment},
    state::{Router, RouterKey},
};

/// Routers and prefixes allowed on some VLANs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouterAllow {
    /// "untagged", "100", "200.2001", or "*" for every segment.
    pub vlan: String,
    /// Router MACs or link-local source addresses.
    #[serde(default)]
    pub routers: Vec<String>,
    /// Prefixes the segment's routers may advertise (CIDR); empty: any.
    #[serde(default)]
    pub prefixes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterConfig {
    /// A router first seen this long before a newcomer is established.
    pub established_secs: u64,
    /// Routers not heard from for this long no longer count (as established or competing).
    pub forget_secs: u64,
    /// Findings close after this long without a new signal.
    pub quiet_secs: u64,
    pub allow: Vec<RouterAllow>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            established_secs: 10,
            forget_secs: 3_600,
            quiet_secs: 900,
            allow: Vec::new(),
        }
    }
}

/// A parsed CIDR prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub net: Ipv6Addr,
    pub len: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, l) = s.split_once('/')?;
        let len: u8 = l.parse().ok().filter(|l| *l <= 128)?;
        Some(Cidr {
            net: a.parse().ok()?,
            len,
        })
    }

    /// Whether `p/len` lies inside this prefix.
    pub fn contains(&self, p: Ipv6Addr, len: u8) -> bool {
        if len < self.len {
            return false;
        }
        let mask = if self.len == 0 {
            0
        } else {
            u128::MAX << (128 - self.len as u32)
        };
        (u128::from(p) & mask) == (u128::from(self.net) & mask)
    }
}

impl RouterConfig {
    /// The allowlists covering `seg`.
    pub fn lists(&self, seg: &Segment) -> Vec<&RouterAllow> {
        self.allow
            .iter()
            .filter(|a| super::dhcp::covers(&a.vlan, seg))
            .collect()
    }

    /// Whether an allowlist covers the router's segment, and if so whether it lists it.
    pub fn authorized(&self, key: &RouterKey) -> Option<bool> {
        let lists = self.lists(&key.seg);
        if lists.iter().all(|a| a.routers.is_empty()) {
            return None;
        }
        let ip = key.ip.to_string();
        let mac = key.mac.to_string();
        Some(lists.iter().any(|a| {
            a.routers.iter().any(|r| {
                r.eq_ignore_ascii_case(&mac)
                    || r.eq_ignore_ascii_case(&ip)
                    || r.parse::<Ipv6Addr>().is_ok_and(|x| x == key.ip)
            })
        }))
    }

    /// The allowed prefixes of `seg`, if an allowlist names any.
    pub fn prefixes(&self, seg: &Segment) -> Option<Vec<Cidr>> {
        let v: Vec<Cidr> = self
            .lists(seg)
            .iter()
            .flat_map(|a| a.prefixes.iter().filter_map(|p| Cidr::parse(p)))
            .collect();
        (!v.is_empty()).then_some(v)
    }
}

/// A router as findings show it.
#[derive(serde::Serialize)]
pub(crate) struct RouterEvidence {
    pub ip: Ipv6Addr,
    pub mac: Mac,
    pub prefixes: Vec<String>,
    pub preference: Option<Preference>,
    pub managed: bool,
    pub other: bool,
    pub router_lifetime_secs: u16,
    pub first_seen: Nanos,
    pub last_seen: Nanos,
}

impl RouterEvidence {
    pub(crate) fn of(k: &RouterKey, r: &Router) -> RouterEvidence {
        let ra = r.last.as_ref();
        RouterEvidence {
            ip: k.ip,
            mac: k.mac,
            prefixes: r.prefixes(),
            preference: ra.map(|ra| ra.preference),
            managed: ra.is_some_and(|ra| ra.managed),
            other: ra.is_some_and(|ra| ra.other),
            router_lifetime_secs: ra.map_or(0, |ra| ra.router_lifetime_secs),
            first_seen: r.first_seen,
            last_seen: r.last_seen,
        }
    }
}

#[derive(serde::Serialize)]
struct RogueEvidence {
    router: RouterEvidence,
    /// "not_allowlisted", "new_prefix" or "higher_preference".
    reason: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    new_prefixes: Vec<String>,
    established: Vec<RouterEvidence>,
}

#[derive(serde::Serialize)]
struct CompetingEvidence {
    routers: Vec<RouterEvidence>,
}

pub struct Ipv6Router {
    cfg: RouterConfig,
}

impl Ipv6Router {
    pub fn new(cfg: RouterConfig) -> Self {
        Ipv6Router { cfg }
    }
}

/// The advertisement an observation carries, with its router as the state stage now has it:
/// what every router detector starts from.
pub(crate) fn advert<'a>(
    obs: &'a Observation,
    ctx: &'a Context<'_>,
) -> Option<(&'a crate::decode::RouterAdvert, RouterKey, &'a Router)> {
    let Observation::RouterAdvert { ra, .. } = obs else {
        return None;
    };
    let (key, _) = ctx.update6.router?;
    Some((ra, key, ctx.v6.routers.get(&key)?))
}

/// Whether an advertisement offers anything: a default route (lifetime above 0) or a
/// prefix to configure addresses from. One that offers nothing (a retirement, or a
/// `kill_router6` spoof of one) is no router to trust or compete with.
pub(crate) fn offers_something(ra: &crate::decode::RouterAdvert) -> bool {
    ra.router_lifetime_secs != 0 || ra.prefixes.iter().any(|p| p.valid_secs != 0)
}

impl Detector for Ipv6Router {
    fn name(&self) -> &'static str {
        "ipv6_routers"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::IPV6_ROGUE_ROUTER, kind::IPV6_COMPETING_ROUTERS]
    }

    fn observe(&mut self, obs: &Observation, ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        let Some((ra, key, me)) = advert(obs, ctx) else {
            return vec![];
        };
        if !offers_something(ra) {
            return vec![];
        }
        let quiet = secs(self.cfg.quiet_secs);
        let rogue = |reason, new_prefixes, established| Signal {
            kind: kind::IPV6_ROGUE_ROUTER,
            subject: Subject::Router(key.seg, key.ip, key.mac),
            seg: key.seg,
            packets: 1,
            evidence: super::evidence(&RogueEvidence {
                router: RouterEvidence::of(&key, me),
                reason,
                new_prefixes,
                established,
            }),
            quiet,
        };
        if let Some(ok) = self.cfg.authorized(&key) {
            return if ok {
                vec![]
            } else {
                vec![rogue("not_allowlisted", vec![], vec![])]
            };
        }
        let est = secs(self.cfg.established_secs);
        let alive = |r: &Router| now.saturating_sub(r.last_seen) <= secs(self.cfg.forget_secs);
        let others: Vec<(&RouterKey, &Router)> = ctx
            .v6
            .routers
            .on(key.seg)
            .filter(|(k, r)| {
                **k != key && alive(r) && r.last.as_ref().is_some_and(offers_something)
            })
            .collect();
        let established: Vec<_> = others
            .iter()
            .filter(|(_, r)| r.first_seen.saturating_add(est) <= me.first_seen)
            .collect();
        let mine: BTreeSet<String> = me.prefixes().into_iter().collect();
        if !established.is_empty() {
            let known: BTreeSet<String> =
                established.iter().flat_map(|(_, r)| r.prefixes()).collect();
            let new: Vec<String> = mine.difference(&known).cloned().collect();
            let rank = |r: &Router| r.last.as_ref().map_or(0, |ra| ra.preference.rank());
            let best = established.iter().map(|(_, r)| rank(r)).max().unwrap_or(0);
            let list = || {
                established
                    .iter()
                    .map(|(k, r)| RouterEvidence::of(k, r))
                    .collect()
            };
            if !new.is_empty() {
                return vec![rogue("new_prefix", new, list())];
            }
            if rank(me) > best {
                return vec![rogue("higher_preference", vec![], list())];
            }
            return vec![];
        }
        // No established router: those that appeared with it compete if they differ.
        let peers: Vec<_> = others
            .iter()
            .filter(|(_, r)| r.first_seen.abs_diff(me.first_seen) < est)
            .filter(|(_, r)| r.prefixes().into_iter().collect::<BTreeSet<_>>() != mine)
            .collect();
        if peers.is_empty() {
            return vec![];
        }
        let mut routers = vec![RouterEvidence::of(&key, me)];
        routers.extend(peers.iter().map(|(k, r)| RouterEvidence::of(k, r)));
        vec![Signal {
            kind: kind::IPV6_COMPETING_ROUTERS,
            subject: Subject::Segment(key.seg),
            seg: key.seg,
            packets: 1,
            evidence: super::evidence(&CompetingEvidence { routers }),
            quiet,
        }]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{
        decode::{ra::PrefixInfo, RouterAdvert},
        detect::tests_support::{seg, Harness},
        model::SECOND,
    };

    pub fn ra(prefix: &str, lifetime: u16, pref: Preference) -> Box<RouterAdvert> {
        Box::new(RouterAdvert {
            hop_limit: 64,
            managed: false,
            other: false,
            home_agent: false,
            preference: pref,
            router_lifetime_secs: lifetime,
            reachable_ms: 0,
            retrans_ms: 0,
            source_lladdr: None,
            mtu: Some(1500),
            prefixes: vec![PrefixInfo {
                prefix: prefix.parse().unwrap(),
                length: 64,
                on_link: true,
                autonomous: true,
                valid_secs: 86_400,
                preferred_secs: 14_400,
            }],
            routes: vec![],
            rdnss: vec![],
            truncated: false,
        })
    }

    pub fn adv(mac: u8, ra: Box<RouterAdvert>) -> Observation {
        Observation::RouterAdvert {
            seg: seg(),
            src_mac: Mac([2, 0, 0, 0, 0, mac]),
            src_ip: format!("fe80::{mac}").parse().unwrap(),
            ra,
        }
    }

    fn kinds(v: &[Signal]) -> Vec<&'static str> {
        v.iter().map(|s| s.kind.name()).collect()
    }

    #[test]
    fn a_newcomer_with_a_new_prefix_or_higher_preference_is_rogue() {
        let mut h = Harness::new(Ipv6Router::new(RouterConfig::default()));
        let m = Preference::Medium;
        assert!(h
            .feed(&adv(1, ra("2001:db8:1::", 1800, m)), SECOND)
            .is_empty());
        assert!(h
            .feed(&adv(1, ra("2001:db8:1::", 1800, m)), 30 * SECOND)
            .is_empty());
        // A second router with the same prefix is a backup, not a rogue.
        assert!(h
            .feed(&adv(2, ra("2001:db8:1::", 1800, m)), 40 * SECOND)
            .is_empty());
        let s = h.feed(&adv(3, ra("2001:db8:bad::", 1800, m)), 50 * SECOND);
        assert_eq!(kinds(&s), ["ipv6_rogue_router"]);
        assert_eq!(s[0].evidence["reason"], "new_prefix");
        assert_eq!(s[0].evidence["new_prefixes"][0], "2001:db8:bad::/64");
        let s = h.feed(
            &adv(4, ra("2001:db8:1::", 1800, Preference::High)),
            60 * SECOND,
        );
        assert_eq!(s[0].evidence["reason"], "higher_preference");
    }

    #[test]
    fn routers_appearing_together_with_different_prefixes_compete() {
        let mut h = Harness::new(Ipv6Router::new(RouterConfig::default()));
        let m = Preference::Medium;
        assert!(h
            .feed(&adv(1, ra("2001:db8:1::", 1800, m)), SECOND)
            .is_empty());
        let s = h.feed(&adv(2, ra("2001:db8:2::", 1800, m)), 2 * SECOND);
        assert_eq!(kinds(&s), ["ipv6_competing_routers"]);
        assert_eq!(s[0].evidence["routers"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn the_allowlist_decides_when_there_is_one() {
        let cfg = RouterConfig {
            allow: vec![RouterAllow {
                vlan: "*".into(),
                routers: vec!["fe80::1".into()],
                prefixes: vec![],
            }],
            ..RouterConfig::default()
        };
        let mut h = Harness::new(Ipv6Router::new(cfg));
        let m = Preference::Medium;
        assert!(h
            .feed(&adv(1, ra("2001:db8:1::", 1800, m)), SECOND)
            .is_empty());
        let s = h.feed(&adv(2, ra("2001:db8:1::", 1800, m)), 60 * SECOND);
        assert_eq!(s[0].evidence["reason"], "not_allowlisted");
    }

    #[test]
    fn cidr_containment() {
        let c = Cidr::parse("2001:db8::/32").unwrap();
        assert!(c.contains("2001:db8:5::".parse().unwrap(), 64));
        assert!(!c.contains("2001:db9::".parse().unwrap(), 64));
        assert!(!c.contains("2001:db8::".parse().unwrap(), 16));
        assert!(Cidr::parse("2001:db8::/129").is_none());
    }
}
