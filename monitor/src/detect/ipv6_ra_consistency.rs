//! `ipv6_ra_inconsistent`: two routers on one segment that disagree in what RFC 4861
//! section 6.2.7 says routers must agree on: the current hop limit, the M and O flags,
//! reachable time and retransmission timer (where both say), the MTU, and the valid and
//! preferred lifetimes of a prefix both advertise. Hosts then flap between the two answers.
use serde_json::json;

use super::{
    ipv6_router::{advert, RouterConfig, RouterEvidence},
    kind, secs, Context, Detector, FindingKind, Signal, Subject,
};
use crate::{
    decode::RouterAdvert,
    model::{Nanos, Observation},
};

pub struct Ipv6RaConsistency {
    cfg: RouterConfig,
}

impl Ipv6RaConsistency {
    pub fn new(cfg: RouterConfig) -> Self {
        Ipv6RaConsistency { cfg }
    }
}

/// The fields on which `a` and `b` disagree: (field, a's value, b's value).
pub fn differences(a: &RouterAdvert, b: &RouterAdvert) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut both = |name: &str, x: u64, y: u64, zero_means_unspecified: bool| {
        if x != y && !(zero_means_unspecified && (x == 0 || y == 0)) {
            out.push((name.to_string(), x.to_string(), y.to_string()));
        }
    };
    both("hop_limit", a.hop_limit as u64, b.hop_limit as u64, true);
    both("managed", a.managed as u64, b.managed as u64, false);
    both("other", a.other as u64, b.other as u64, false);
    both(
        "reachable_ms",
        a.reachable_ms as u64,
        b.reachable_ms as u64,
        true,
    );
    both("retrans_ms", a.retrans_ms as u64, b.retrans_ms as u64, true);
    if let (Some(x), Some(y)) = (a.mtu, b.mtu) {
        both("mtu", x as u64, y as u64, false);
    }
    for p in &a.prefixes {
        if let Some(q) = b
            .prefixes
            .iter()
            .find(|q| q.prefix == p.prefix && q.length == p.length)
        {
            let c = p.cidr();
            both(
                &format!("{c} valid_secs"),
                p.valid_secs as u64,
                q.valid_secs as u64,
                false,
            );
            both(
                &format!("{c} preferred_secs"),
                p.preferred_secs as u64,
                q.preferred_secs as u64,
                false,
            );
        }
    }
    out
}

impl Detector for Ipv6RaConsistency {
    fn name(&self) -> &'static str {
        "ipv6_ra_consistency"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::IPV6_RA_INCONSISTENT]
    }

    fn observe(&mut self, obs: &Observation, ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        let Some((ra, key, me)) = advert(obs, ctx) else {
            return vec![];
        };
        // A retiring router's last words are not configuration.
        if ra.router_lifetime_secs == 0 {
            return vec![];
        }
        let forget = secs(self.cfg.forget_secs);
        let mut conflicts = Vec::new();
        for (k, r) in ctx.v6.routers.on(key.seg) {
            if *k == key || now.saturating_sub(r.last_seen) > forget {
                continue;
            }
            let Some(other) = r.last.as_ref().filter(|o| o.router_lifetime_secs != 0) else {
                continue;
            };
            let d = differences(ra, other);
            if !d.is_empty() {
                conflicts.push(json!({
                    "other": RouterEvidence::of(k, r),
                    "differences": d
                        .into_iter()
                        .map(|(f, a, b)| json!({ "field": f, "this": a, "other": b }))
                        .collect::<Vec<_>>(),
                }));
            }
        }
        if conflicts.is_empty() {
            return vec![];
        }
        vec![Signal {
            kind: kind::IPV6_RA_INCONSISTENT,
            subject: Subject::Segment(key.seg),
            seg: key.seg,
            packets: 1,
            evidence: json!({ "router": RouterEvidence::of(&key, me), "conflicts": conflicts }),
            quiet: secs(self.cfg.quiet_secs),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        decode::ra::Preference,
        detect::{
            ipv6_router::tests::{adv, ra},
            tests_support::Harness,
        },
        model::SECOND,
    };

    #[test]
    fn routers_that_disagree_on_flags_or_mtu_are_inconsistent() {
        let mut h = Harness::new(Ipv6RaConsistency::new(RouterConfig::default()));
        let m = Preference::Medium;
        assert!(h
            .feed(&adv(1, ra("2001:db8:1::", 1800, m)), SECOND)
            .is_empty());
        assert!(
            h.feed(&adv(2, ra("2001:db8:1::", 1800, m)), 2 * SECOND)
                .is_empty(),
            "two routers that agree"
        );
        let mut other = ra("2001:db8:1::", 1800, m);
        other.managed = true;
        other.mtu = Some(9000);
        let s = h.feed(&adv(3, other), 3 * SECOND);
        assert_eq!(s.len(), 1);
        let fields: Vec<_> = s[0].evidence["conflicts"][0]["differences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(fields, ["managed", "mtu"]);
    }
}
