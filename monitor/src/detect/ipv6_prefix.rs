//! `ipv6_prefix_mismatch`: a router advertises a prefix that does not belong on its segment:
//! outside the prefixes the segment's allowlist names, or a prefix that a router on another
//! segment (another VLAN or interface) advertised first: a router answering on the wrong
//! VLAN, or RAs leaking across a trunk. One finding per segment and prefix.
use super::{
    ipv6_router::{advert, RouterConfig, RouterEvidence},
    kind, secs, Context, Detector, FindingKind, Signal, Subject,
};
use crate::model::{Nanos, Observation, Segment};

#[derive(serde::Serialize)]
struct MismatchEvidence {
    prefix: String,
    /// "not_allowlisted" or "known_on_other_segment".
    reason: &'static str,
    router: RouterEvidence,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    other_segment: Option<Segment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    other_router: Option<RouterEvidence>,
}

pub struct Ipv6Prefix {
    cfg: RouterConfig,
}

impl Ipv6Prefix {
    pub fn new(cfg: RouterConfig) -> Self {
        Ipv6Prefix { cfg }
    }
}

impl Detector for Ipv6Prefix {
    fn name(&self) -> &'static str {
        "ipv6_prefix"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::IPV6_PREFIX_MISMATCH]
    }

    fn observe(&mut self, obs: &Observation, ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        let Some((ra, key, me)) = advert(obs, ctx) else {
            return vec![];
        };
        let allowed = self.cfg.prefixes(&key.seg);
        let forget = secs(self.cfg.forget_secs);
        let mut out = Vec::new();
        // A prefix with valid lifetime 0 is being withdrawn: nothing to check.
        for p in ra.prefixes.iter().filter(|p| p.valid_secs != 0) {
            let cidr = p.cidr();
            let mut ev = MismatchEvidence {
                prefix: cidr.clone(),
                reason: "not_allowlisted",
                router: RouterEvidence::of(&key, me),
                allowed: vec![],
                other_segment: None,
                other_router: None,
            };
            if let Some(list) = &allowed {
                if list.iter().any(|c| c.contains(p.prefix, p.length)) {
                    continue;
                }
                ev.allowed = list
                    .iter()
                    .map(|c| format!("{}/{}", c.net, c.len))
                    .collect();
            } else {
                let first = ctx.v6.routers.iter().find(|(k, r)| {
                    k.seg != key.seg
                        && r.first_seen < me.first_seen
                        && now.saturating_sub(r.last_seen) <= forget
                        && r.prefixes().contains(&cidr)
                });
                let Some((ok, or)) = first else { continue };
                ev.reason = "known_on_other_segment";
                ev.other_segment = Some(ok.seg);
                ev.other_router = Some(RouterEvidence::of(ok, or));
            }
            out.push(Signal {
                kind: kind::IPV6_PREFIX_MISMATCH,
                subject: Subject::Prefix(key.seg, cidr),
                seg: key.seg,
                packets: 1,
                evidence: super::evidence(&ev),
                quiet: secs(self.cfg.quiet_secs),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        decode::ra::Preference,
        detect::{
            ipv6_router::{
                tests::{adv, ra},
                RouterAllow,
            },
            tests_support::Harness,
        },
        model::{Iface, SECOND},
    };

    #[test]
    fn a_prefix_from_another_vlan_or_outside_the_allowlist_is_a_mismatch() {
        let mut h = Harness::new(Ipv6Prefix::new(RouterConfig::default()));
        let m = Preference::Medium;
        assert!(h
            .feed(&adv(1, ra("2001:db8:1::", 1800, m)), SECOND)
            .is_empty());
        let mut leak = adv(2, ra("2001:db8:1::", 1800, m));
        if let Observation::RouterAdvert { seg, .. } = &mut leak {
            *seg = Segment::from_vids(Iface::named("eth1"), 200, monitor_common::NO_VLAN);
        }
        let s = h.feed(&leak, 2 * SECOND);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].evidence["reason"], "known_on_other_segment");
        assert_eq!(s[0].subject.to_string(), "eth1/vlan200 2001:db8:1::/64");

        let cfg = RouterConfig {
            allow: vec![RouterAllow {
                vlan: "*".into(),
                routers: vec![],
                prefixes: vec!["2001:db8:1::/48".into()],
            }],
            ..RouterConfig::default()
        };
        let mut h = Harness::new(Ipv6Prefix::new(cfg));
        assert!(h
            .feed(&adv(1, ra("2001:db8:1:5::", 1800, m)), SECOND)
            .is_empty());
        let s = h.feed(&adv(1, ra("2001:db8:99::", 1800, m)), 2 * SECOND);
        assert_eq!(s[0].evidence["reason"], "not_allowlisted");
    }
}
