//! Router advertisements (RFC 4861 §4.2), from the ICMPv6 type byte on: the fixed header,
//! then the options the router findings use (source link-layer address, MTU, prefix
//! information, route information, RDNSS). Other options are skipped by their length; a
//! zero length or an option running past the message is an error, as RFC 4861 requires.
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

use crate::model::Mac;

/// Default router preference (RFC 4191 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preference {
    Low,
    Medium,
    High,
    /// The reserved value 10, which receivers treat as medium.
    Reserved,
}

impl Preference {
    fn from_bits(b: u8) -> Preference {
        match b & 0b11 {
            0b00 => Preference::Medium,
            0b01 => Preference::High,
            0b11 => Preference::Low,
            _ => Preference::Reserved,
        }
    }

    /// Its rank for comparison: what a host prefers, reserved counted as medium.
    pub fn rank(self) -> u8 {
        match self {
            Preference::Low => 0,
            Preference::Medium | Preference::Reserved => 1,
            Preference::High => 2,
        }
    }
}

/// A prefix information option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PrefixInfo {
    pub prefix: Ipv6Addr,
    pub length: u8,
    /// L: the prefix is on-link.
    pub on_link: bool,
    /// A: hosts may autoconfigure addresses in it (SLAAC).
    pub autonomous: bool,
    pub valid_secs: u32,
    pub preferred_secs: u32,
}

impl PrefixInfo {
    /// `2001:db8::/64`.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.prefix, self.length)
    }
}

/// A parsed router advertisement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterAdvert {
    pub hop_limit: u8,
    /// M: addresses from DHCPv6.
    pub managed: bool,
    /// O: other configuration from DHCPv6.
    pub other: bool,
    /// H: a Mobile IPv6 home agent.
    pub home_agent: bool,
    pub preference: Preference,
    /// 0: not a default router (or retiring).
    pub router_lifetime_secs: u16,
    pub reachable_ms: u32,
    pub retrans_ms: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_lladdr: Option<Mac>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    pub prefixes: Vec<PrefixInfo>,
    /// Route information options (RFC 4191): prefix in CIDR form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
    /// Recursive DNS servers (RFC 8106).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rdnss: Vec<Ipv6Addr>,
    /// The message was cut short by the capture limit (options after it are missing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RaError {
    #[error("router advertisement of {0} bytes, shorter than its 16-byte header")]
    Short(usize),
    #[error("not a router advertisement (ICMPv6 type {0})")]
    NotRa(u8),
    #[error("option at byte {0} has length zero")]
    ZeroLength(usize),
    #[error("option of type {kind} at byte {at} runs past the end")]
    Overrun { kind: u8, at: usize },
}

impl RaError {
    /// The label the decode-error counter uses.
    pub fn kind(&self) -> &'static str {
        match self {
            RaError::Short(_) | RaError::NotRa(_) => "ra_short",
            RaError::ZeroLength(_) | RaError::Overrun { .. } => "ra_bad_option",
        }
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

/// Parses `msg` (the ICMPv6 message); `complete` says whether the capture held all of it.
pub fn decode(msg: &[u8], complete: bool) -> Result<RouterAdvert, RaError> {
    if msg.len() < 16 {
        return Err(RaError::Short(msg.len()));
    }
    if msg[0] != monitor_common::proto::ND_RA {
        return Err(RaError::NotRa(msg[0]));
    }
    let flags = msg[5];
    let mut ra = RouterAdvert {
        hop_limit: msg[4],
        managed: flags & 0x80 != 0,
        other: flags & 0x40 != 0,
        home_agent: flags & 0x20 != 0,
        preference: Preference::from_bits(flags >> 3),
        router_lifetime_secs: u16::from_be_bytes([msg[6], msg[7]]),
        reachable_ms: be32(&msg[8..]),
        retrans_ms: be32(&msg[12..]),
        source_lladdr: None,
        mtu: None,
        prefixes: Vec::new(),
        routes: Vec::new(),
        rdnss: Vec::new(),
        truncated: !complete,
    };
    let mut at = 16;
    while at + 2 <= msg.len() {
        let (kind, len8) = (msg[at], msg[at + 1] as usize);
        if len8 == 0 {
            return Err(RaError::ZeroLength(at));
        }
        let end = at + len8 * 8;
        if end > msg.len() {
            if !complete {
                break;
            }
            return Err(RaError::Overrun { kind, at });
        }
        let o = &msg[at..end];
        match kind {
            1 if o.len() >= 8 => {
                ra.source_lladdr = Some(Mac([o[2], o[3], o[4], o[5], o[6], o[7]]));
            }
            3 if o.len() >= 32 => ra.prefixes.push(PrefixInfo {
                length: o[2],
                on_link: o[3] & 0x80 != 0,
                autonomous: o[3] & 0x40 != 0,
                valid_secs: be32(&o[4..]),
                preferred_secs: be32(&o[8..]),
                prefix: addr(&o[16..]),
            }),
            5 if o.len() >= 8 => ra.mtu = Some(be32(&o[4..])),
            // Route information: prefix length, then 0, 8 or 16 bytes of prefix.
            24 if o.len() >= 8 => {
                let mut p = [0u8; 16];
                let have = (o.len() - 8).min(16);
                p[..have].copy_from_slice(&o[8..8 + have]);
                ra.routes.push(format!("{}/{}", Ipv6Addr::from(p), o[2]));
            }
            25 if o.len() >= 24 => {
                for a in o[8..].chunks_exact(16) {
                    ra.rdnss.push(addr(a));
                }
            }
            _ => {}
        }
        at = end;
    }
    Ok(ra)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RA like radvd's: M=0 O=1 Prf=high, lifetime 1800, SLLA, MTU 1500, one prefix, RDNSS.
    pub fn sample() -> Vec<u8> {
        let mut m = vec![
            134,
            0,
            0,
            0,
            64,
            0x40 | 0x08,
            0x07,
            0x08,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        m.extend([1, 1, 2, 0, 0, 0, 0, 1]);
        m.extend([5, 1, 0, 0, 0, 0, 0x05, 0xdc]);
        m.extend([
            3, 4, 64, 0xc0, 0, 0, 0x0e, 0x10, 0, 0, 0x07, 0x08, 0, 0, 0, 0,
        ]);
        m.extend("2001:db8:1::".parse::<Ipv6Addr>().unwrap().octets());
        m.extend([25, 3, 0, 0, 0, 0, 0x0e, 0x10]);
        m.extend("2001:db8:1::53".parse::<Ipv6Addr>().unwrap().octets());
        m
    }

    #[test]
    fn parses_flags_prefixes_mtu_and_rdnss() {
        let ra = decode(&sample(), true).unwrap();
        assert!(!ra.managed && ra.other && !ra.home_agent);
        assert_eq!(ra.preference, Preference::High);
        assert_eq!(ra.router_lifetime_secs, 1800);
        assert_eq!(ra.source_lladdr, Some(Mac([2, 0, 0, 0, 0, 1])));
        assert_eq!(ra.mtu, Some(1500));
        assert_eq!(ra.prefixes.len(), 1);
        let p = ra.prefixes[0];
        assert_eq!(p.cidr(), "2001:db8:1::/64");
        assert!(p.on_link && p.autonomous);
        assert_eq!((p.valid_secs, p.preferred_secs), (3600, 1800));
        assert_eq!(
            ra.rdnss,
            vec!["2001:db8:1::53".parse::<Ipv6Addr>().unwrap()]
        );
    }

    #[test]
    fn bad_options_are_errors_and_a_short_capture_is_not() {
        let mut m = sample();
        m[17] = 0;
        assert_eq!(decode(&m, true), Err(RaError::ZeroLength(16)));
        let m = sample();
        let cut = &m[..m.len() - 4];
        assert!(matches!(
            decode(cut, true),
            Err(RaError::Overrun { kind: 25, .. })
        ));
        let ra = decode(cut, false).unwrap();
        assert!(ra.truncated && ra.rdnss.is_empty() && ra.prefixes.len() == 1);
        assert_eq!(decode(&m[..10], true), Err(RaError::Short(10)));
    }
}
