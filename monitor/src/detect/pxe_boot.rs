//! `pxe_boot_server_conflict`: on one segment, servers offer PXE clients different boot
//! servers (option 66, else siaddr) or boot files (option 67, else `file`) within the window:
//! which one a machine boots from depends on which offer it takes, so commissioning fails at
//! random. Evidence: each server's boot offer, with the client and transaction it went to.
use std::net::Ipv4Addr;

use super::{kind, secs, Context, Detector, FindingKind, Signal, Subject};
use crate::model::{FastMap, Mac, Nanos, Observation, Segment};

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PxeConfig {
    pub window_secs: u64,
    pub quiet_secs: u64,
}

impl Default for PxeConfig {
    fn default() -> Self {
        PxeConfig {
            window_secs: 600,
            quiet_secs: 900,
        }
    }
}

/// Servers remembered per segment, and segments.
const PER_SEGMENT: usize = 16;
const MAX_SEGMENTS: usize = 4_096;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
struct BootOffer {
    server: Ipv4Addr,
    mac: Mac,
    boot_server: Option<String>,
    boot_file: Option<String>,
    client: Mac,
    xid: String,
    at: Nanos,
}

pub struct PxeBoot {
    cfg: PxeConfig,
    offers: FastMap<Segment, Vec<BootOffer>>,
}

impl PxeBoot {
    pub fn new(cfg: PxeConfig) -> Self {
        PxeBoot {
            cfg,
            offers: FastMap::default(),
        }
    }
}

impl Detector for PxeBoot {
    fn name(&self) -> &'static str {
        "pxe_boot"
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[kind::PXE_BOOT_SERVER_CONFLICT]
    }

    fn observe(&mut self, obs: &Observation, ctx: &Context<'_>, now: Nanos) -> Vec<Signal> {
        let (Some((server, kind_, _)), Some(key)) = (ctx.tx.answer, ctx.tx.key) else {
            return vec![];
        };
        let Observation::Dhcp { src_mac, msg, .. } = obs else {
            return vec![];
        };
        if !matches!(kind_, "offer" | "ack") || !ctx.txs.get(&key).is_some_and(|t| t.pxe) {
            return vec![];
        }
        let offer = BootOffer {
            server,
            mac: *src_mac,
            boot_server: msg.boot_server(),
            boot_file: msg.boot_file().map(str::to_string),
            client: key.client,
            xid: format!("{:#010x}", key.xid),
            at: now,
        };
        if offer.boot_server.is_none() && offer.boot_file.is_none() {
            return vec![];
        }
        if !self.offers.contains_key(&key.seg) && self.offers.len() >= MAX_SEGMENTS {
            return vec![];
        }
        let window = secs(self.cfg.window_secs);
        let list = self.offers.entry(key.seg).or_default();
        list.retain(|o| o.server != server && now.saturating_sub(o.at) <= window);
        if list.len() >= PER_SEGMENT {
            list.remove(0);
        }
        list.push(offer);
        let differ = list.iter().any(|a| {
            list.iter()
                .any(|b| (&a.boot_server, &a.boot_file) != (&b.boot_server, &b.boot_file))
        });
        if !differ {
            return vec![];
        }
        vec![Signal {
            kind: kind::PXE_BOOT_SERVER_CONFLICT,
            subject: Subject::Segment(key.seg),
            seg: key.seg,
            packets: 1,
            evidence: serde_json::json!({ "offers": list }),
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

    fn pxe_discover(xid: u32) -> Observation {
        let mut o = dhcp_msg(Mac([2, 0, 0, 0, 9, 9]), 1, xid);
        if let Observation::Dhcp { msg, .. } = &mut o {
            msg.vendor_class = Some("PXEClient:Arch:00007:UNDI:003016".into());
            msg.client_arch = vec![7];
        }
        o
    }

    fn offer(server: u8, xid: u32, file: &str) -> Observation {
        let mut o = dhcp_msg(Mac([2, 0, 0, 0, 0, server]), 2, xid);
        if let Observation::Dhcp { msg, .. } = &mut o {
            msg.siaddr = Ipv4Addr::new(10, 0, 0, server);
            msg.file = Some(file.into());
        }
        o
    }

    #[test]
    fn two_servers_offering_different_boot_files_conflict() {
        let mut h = Harness::new(PxeBoot::new(PxeConfig::default()));
        h.feed(&pxe_discover(1), SECOND);
        assert!(h.feed(&offer(1, 1, "grubx64.efi"), SECOND + 1).is_empty());
        let s = h.feed(&offer(2, 1, "pxelinux.0"), SECOND + 2);
        assert_eq!(s.len(), 1);
        let offers = s[0].evidence["offers"].as_array().unwrap();
        assert_eq!(offers.len(), 2);
        assert_eq!(offers[1]["boot_file"], "pxelinux.0");
        assert_eq!(offers[1]["boot_server"], "10.0.0.2");
    }

    #[test]
    fn agreeing_servers_and_non_pxe_clients_are_not_a_conflict() {
        let mut h = Harness::new(PxeBoot::new(PxeConfig::default()));
        h.feed(&pxe_discover(1), SECOND);
        let mut a = offer(1, 1, "grubx64.efi");
        let mut b = offer(2, 1, "grubx64.efi");
        for o in [&mut a, &mut b] {
            if let Observation::Dhcp { msg, .. } = o {
                msg.siaddr = Ipv4Addr::new(10, 0, 0, 5);
            }
        }
        assert!(h.feed(&a, SECOND + 1).is_empty());
        assert!(h.feed(&b, SECOND + 2).is_empty());
        // Not a PXE client: its offers say nothing about booting.
        h.feed(&dhcp_msg(Mac([2, 0, 0, 0, 9, 9]), 1, 2), 2 * SECOND);
        assert!(h.feed(&offer(3, 2, "other.efi"), 2 * SECOND + 1).is_empty());
    }
}
