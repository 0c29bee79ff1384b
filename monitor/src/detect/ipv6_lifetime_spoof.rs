//! `ipv6_router_lifetime_spoof`: a router advertisement with router lifetime 0 that claims
//! another station's router address: THC `kill_router6`, which makes every host drop its
//! default route. The claim is caught whichever arrives first:
//! - the address is a router's that advertised a lifetime from another MAC (before the spoof,
//!   or after it, when the real router's next RA comes);
//! - or another MAC holds the address (neighbour discovery says so);
//! - or the address is an EUI-64 one, made from a different MAC than the sender's.
//!
//! A router retiring itself (lifetime 0 from its own MAC) is recorded in the router table and
//! the history (`router_retired`), not raised.
use super::{
    ipv6_router::{advert, RouterConfig, RouterEvidence},
    kind, secs, Context, Detector, FindingKind, Signal, Subject,
};
use crate::{
    model::{Mac, Nanos, Observation},
    state::{neighbours6::eui64, RouterKey},
};

#[derive(serde::Serialize)]
struct SpoofEvidence {
    claimed_address: std::net::Ipv6Addr,
    spoofing_mac: Mac,
    /// "known_router", "address_held" or "eui64_mismatch".
    reason: &'static str,
    /// The MAC the address belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    owner_mac: Option<Mac>,
    /// The router the address belongs to, when it advertised.
    #[serde(skip_serializing_if = "Option::is_none")]
    router: Option<RouterEvidence>,
}

pub struct Ipv6LifetimeSpoof {
    quiet: Nanos,
    held: Nanos,
}

impl Ipv6LifetimeSpoof {
    pub fn new(cfg: &RouterConfig) -> Self {
        Ipv6LifetimeSpoof {
            quiet: secs(cfg.quiet_secs),
            held: secs(cfg.forget_secs),
        }
    }

    /// The real router behind `key`'s address: same address, another MAC, with a lifetime.
    fn owner<'a>(
        ctx: &'a Context<'_>,
        key: &RouterKey,
    ) -> Option<(&'a RouterKey, &'a crate::state::Router)> {
        ctx.v6.routers.on(key.seg).find(|(k, r)| {
            k.ip == key.ip
                && k.mac != key.mac
                && r.last
                    .as_ref()
                    .is_some_and(|ra| ra.router_lifetime_secs != 0)
        })
    }

    /// Whether `key` only ever advertised lifetime 0.
    fn only_zero(ctx: &Context<'_>, key: &RouterKey) -> bool {
        ctx.v6.routers.get(key).is_some_and(|r| {
            r.retired_at.is_some()
                && r.last
                    .as_ref()
                    .is_none_or(|ra| ra.router_lifetime_secs == 0)
        })
    }
}

impl Detector for Ipv6LifetimeSpoof {
    fn name(&self) -> &'static str {
        "ipv6_lifetime_spoof"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::IPV6_ROUTER_LIFETIME_SPOOF]
    }

    fn observe(&mut self, obs: &Observation, ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        let Some((ra, key, me)) = advert(obs, ctx) else {
            return vec![];
        };
        let signal = |spoofer: &RouterKey, ev: SpoofEvidence| Signal {
            kind: kind::IPV6_ROUTER_LIFETIME_SPOOF,
            subject: Subject::Address6(spoofer.seg, spoofer.ip),
            seg: spoofer.seg,
            packets: 1,
            evidence: super::evidence(&ev),
            quiet: self.quiet,
        };
        if ra.router_lifetime_secs != 0 {
            // The real router speaking after a spoof of it.
            let spoofers: Vec<_> = ctx
                .v6
                .routers
                .on(key.seg)
                .filter(|(k, r)| {
                    k.ip == key.ip
                        && k.mac != key.mac
                        && Self::only_zero(ctx, k)
                        && r.retired_at
                            .is_some_and(|t| now.saturating_sub(t) <= self.held)
                })
                .map(|(k, _)| *k)
                .collect();
            return spoofers
                .iter()
                .map(|s| {
                    signal(
                        s,
                        SpoofEvidence {
                            claimed_address: key.ip,
                            spoofing_mac: s.mac,
                            reason: "known_router",
                            owner_mac: Some(key.mac),
                            router: Some(RouterEvidence::of(&key, me)),
                        },
                    )
                })
                .collect();
        }
        if !Self::only_zero(ctx, &key) {
            // A router that advertised a lifetime before, retiring from its own MAC.
            return vec![];
        }
        let mut ev = SpoofEvidence {
            claimed_address: key.ip,
            spoofing_mac: key.mac,
            reason: "known_router",
            owner_mac: None,
            router: None,
        };
        if let Some((rk, r)) = Self::owner(ctx, &key) {
            ev.owner_mac = Some(rk.mac);
            ev.router = Some(RouterEvidence::of(rk, r));
        } else if let Some((m, _)) = ctx
            .v6
            .neighbours
            .holder(key.seg, key.ip)
            .filter(|(m, a)| *m != key.mac && now.saturating_sub(a.last_seen) <= self.held)
        {
            ev.reason = "address_held";
            ev.owner_mac = Some(m);
        } else {
            let iid: [u8; 8] = key.ip.octets()[8..].try_into().expect("8 bytes");
            // An EUI-64 identifier has ff:fe in its middle; the MAC it came from is inside.
            if iid[3] != 0xff || iid[4] != 0xfe || iid == eui64(key.mac) {
                return vec![];
            }
            let owner = Mac([iid[0] ^ 0x02, iid[1], iid[2], iid[5], iid[6], iid[7]]);
            ev.reason = "eui64_mismatch";
            ev.owner_mac = Some(owner);
        }
        vec![signal(&key, ev)]
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

    fn claim(mac: u8, ip: &str, lifetime: u16) -> Observation {
        let mut o = adv(mac, ra("2001:db8:1::", lifetime, Preference::Medium));
        if let Observation::RouterAdvert { src_ip, .. } = &mut o {
            *src_ip = ip.parse().unwrap();
        }
        o
    }

    #[test]
    fn a_lifetime_zero_claim_from_another_mac_is_a_spoof_and_retiring_is_not() {
        let mut h = Harness::new(Ipv6LifetimeSpoof::new(&RouterConfig::default()));
        assert!(h.feed(&claim(1, "fe80::1", 1800), SECOND).is_empty());
        let s = h.feed(&claim(9, "fe80::1", 0), 2 * SECOND);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].evidence["reason"], "known_router");
        assert_eq!(s[0].evidence["spoofing_mac"], "02:00:00:00:00:09");
        assert_eq!(s[0].evidence["owner_mac"], "02:00:00:00:00:01");
        // The router retiring itself from its own MAC.
        assert!(h.feed(&claim(1, "fe80::1", 0), 3 * SECOND).is_empty());
    }

    #[test]
    fn a_spoof_before_the_real_router_speaks_is_caught_either_way() {
        // The EUI-64 address of 02:00:00:00:00:01, claimed from ...:09.
        let ll = "fe80::ff:fe00:1";
        let mut h = Harness::new(Ipv6LifetimeSpoof::new(&RouterConfig::default()));
        let s = h.feed(&claim(9, ll, 0), SECOND);
        assert_eq!(s[0].evidence["reason"], "eui64_mismatch");
        assert_eq!(s[0].evidence["owner_mac"], "02:00:00:00:00:01");
        let s = h.feed(&claim(1, ll, 1800), 2 * SECOND);
        assert_eq!(s.len(), 1, "the real router's RA confirms it");
        assert_eq!(s[0].evidence["spoofing_mac"], "02:00:00:00:00:09");
        // A retirement of an address that is not EUI-64 and not known: nothing to go on.
        let mut h = Harness::new(Ipv6LifetimeSpoof::new(&RouterConfig::default()));
        assert!(h.feed(&claim(9, "fe80::1234", 0), SECOND).is_empty());
    }
}
