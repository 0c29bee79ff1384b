//! DHCPv6 messages (RFC 8415), from the msg-type byte on. A relay message (RELAY-FORW,
//! RELAY-REPL) is unwrapped through its Relay Message option, up to [`MAX_RELAY_DEPTH`]
//! hops; each hop is kept, and the innermost message gives the rest: the client and server
//! DUIDs, the addresses (IA_NA, IA_TA) and prefixes (IA_PD) offered with their lifetimes,
//! the status code and the server preference.
use std::{fmt, net::Ipv6Addr};

use serde::Serialize;

use crate::{capture::hex, model::Mac};

/// Relay hops unwrapped at most (RFC 8415 HOP_COUNT_LIMIT is 8).
pub const MAX_RELAY_DEPTH: usize = 8;
/// Addresses and prefixes kept per message: a reply to many IAs is summarised, not stored whole.
pub const MAX_LEASES: usize = 16;

pub const SOLICIT: u8 = 1;
pub const ADVERTISE: u8 = 2;
pub const REQUEST: u8 = 3;
pub const REPLY: u8 = 7;
pub const DECLINE: u8 = 9;
pub const RELAY_FORW: u8 = 12;
pub const RELAY_REPL: u8 = 13;

/// The name of a message type: metric label, JSON, history kind (`dhcpv6_<name>`).
pub fn type_name(t: u8) -> &'static str {
    match t {
        1 => "solicit",
        2 => "advertise",
        3 => "request",
        4 => "confirm",
        5 => "renew",
        6 => "rebind",
        7 => "reply",
        8 => "release",
        9 => "decline",
        10 => "reconfigure",
        11 => "information_request",
        12 => "relay_forw",
        13 => "relay_repl",
        _ => "other",
    }
}

/// A DHCP Unique Identifier: opaque bytes, shown as hex.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Duid(pub Vec<u8>);

impl Duid {
    /// DUID-LLT (1) and DUID-LL (3) over Ethernet carry a MAC: the one the server was set up on.
    pub fn mac(&self) -> Option<Mac> {
        let b = &self.0;
        let at = match (b.first(), b.get(1)) {
            (Some(0), Some(1)) => 8,
            (Some(0), Some(3)) => 4,
            _ => return None,
        };
        if b.len() != at + 6 || b[2..4] != [0, 1] {
            return None;
        }
        Some(Mac([
            b[at],
            b[at + 1],
            b[at + 2],
            b[at + 3],
            b[at + 4],
            b[at + 5],
        ]))
    }
}

impl fmt::Display for Duid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for Duid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Duid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for Duid {
    type Err = String;

    /// Hex, with or without `:` between bytes.
    fn from_str(s: &str) -> Result<Duid, String> {
        let digits: String = s.chars().filter(|c| *c != ':').collect();
        if digits.is_empty() || !digits.len().is_multiple_of(2) || digits.len() > 260 {
            return Err(format!(
                "{s:?} is not a DUID (expected hex like 00010001...)"
            ));
        }
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map(Duid)
            .map_err(|_| format!("{s:?} is not a DUID (expected hex like 00010001...)"))
    }
}

/// An address handed out (IA_NA or IA_TA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Lease6 {
    pub address: Ipv6Addr,
    pub preferred_secs: u32,
    pub valid_secs: u32,
    /// IA_TA: a temporary address.
    pub temporary: bool,
}

/// A prefix delegated (IA_PD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Prefix6 {
    pub prefix: Ipv6Addr,
    pub length: u8,
    pub preferred_secs: u32,
    pub valid_secs: u32,
}

/// One relay hop a message passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Relay {
    pub msg_type: u8,
    pub hop_count: u8,
    pub link_address: Ipv6Addr,
    pub peer_address: Ipv6Addr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface_id: Option<String>,
}

/// A parsed DHCPv6 message: the innermost one, with the relay hops around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dhcpv6Message {
    /// The innermost message's type.
    pub msg_type: u8,
    /// The transaction id (none for a relay message whose inner message is missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_duid: Option<Duid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_duid: Option<Duid>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Lease6>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<Prefix6>,
    /// Status code (0 success); the first one, at any level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preference: Option<u8>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_servers: Vec<Ipv6Addr>,
    /// Outermost first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub relays: Vec<Relay>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl Dhcpv6Message {
    /// A server's answer (ADVERTISE or REPLY), possibly relayed.
    pub fn is_server_reply(&self) -> bool {
        matches!(self.msg_type, ADVERTISE | REPLY)
    }

    pub fn type_name(&self) -> &'static str {
        type_name(self.msg_type)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Dhcpv6Error {
    #[error("DHCPv6 message of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("option {code} at byte {at} runs past the end of its message")]
    Overrun { code: u16, at: usize },
    #[error("relay messages nested deeper than {MAX_RELAY_DEPTH}")]
    TooDeep,
}

impl Dhcpv6Error {
    /// The label the decode-error counter uses.
    pub fn kind(&self) -> &'static str {
        match self {
            Dhcpv6Error::Short(_) => "dhcpv6_short",
            Dhcpv6Error::Overrun { .. } => "dhcpv6_bad_option",
            Dhcpv6Error::TooDeep => "dhcpv6_relay_depth",
        }
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

/// The options in `b`: (code, value). An option running past the end is an error unless
/// the capture was cut short (`complete` false), when the walk just stops.
fn options(b: &[u8], complete: bool) -> Result<Vec<(u16, &[u8])>, Dhcpv6Error> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= b.len() {
        let code = be16(&b[at..]);
        let len = be16(&b[at + 2..]) as usize;
        let end = at + 4 + len;
        if end > b.len() {
            if complete {
                return Err(Dhcpv6Error::Overrun { code, at });
            }
            break;
        }
        out.push((code, &b[at + 4..end]));
        at = end;
    }
    Ok(out)
}

/// Parses `msg`; `complete` says whether the capture held all of it.
pub fn decode(msg: &[u8], complete: bool) -> Result<Dhcpv6Message, Dhcpv6Error> {
    let mut m = Dhcpv6Message {
        msg_type: 0,
        xid: None,
        client_duid: None,
        server_duid: None,
        addresses: Vec::new(),
        prefixes: Vec::new(),
        status: None,
        preference: None,
        dns_servers: Vec::new(),
        relays: Vec::new(),
        truncated: !complete,
    };
    let mut cur = msg;
    for _ in 0..=MAX_RELAY_DEPTH {
        let t = *cur.first().ok_or(Dhcpv6Error::Short(0))?;
        m.msg_type = t;
        if t == RELAY_FORW || t == RELAY_REPL {
            if cur.len() < 34 {
                return Err(Dhcpv6Error::Short(cur.len()));
            }
            let mut relay = Relay {
                msg_type: t,
                hop_count: cur[1],
                link_address: addr(&cur[2..]),
                peer_address: addr(&cur[18..]),
                interface_id: None,
            };
            let mut inner = None;
            for (code, v) in options(&cur[34..], complete)? {
                match code {
                    9 => inner = Some(v),
                    18 => relay.interface_id = Some(hex(v)),
                    13 if v.len() >= 2 && m.status.is_none() => m.status = Some(be16(v)),
                    _ => {}
                }
            }
            m.relays.push(relay);
            match inner {
                Some(v) if !v.is_empty() => cur = v,
                _ => return Ok(m),
            }
            continue;
        }
        if cur.len() < 4 {
            return Err(Dhcpv6Error::Short(cur.len()));
        }
        m.xid = Some(u32::from_be_bytes([0, cur[1], cur[2], cur[3]]));
        for (code, v) in options(&cur[4..], complete)? {
            match code {
                1 => m.client_duid = Some(Duid(v.to_vec())),
                2 => m.server_duid = Some(Duid(v.to_vec())),
                3 if v.len() >= 12 => ia(&mut m, &v[12..], false, complete)?,
                4 if v.len() >= 4 => ia(&mut m, &v[4..], true, complete)?,
                25 if v.len() >= 12 => ia(&mut m, &v[12..], false, complete)?,
                7 if !v.is_empty() => m.preference = Some(v[0]),
                13 if v.len() >= 2 && m.status.is_none() => m.status = Some(be16(v)),
                23 => m.dns_servers.extend(v.chunks_exact(16).map(addr)),
                _ => {}
            }
        }
        return Ok(m);
    }
    Err(Dhcpv6Error::TooDeep)
}

/// The options inside an IA_NA, IA_TA or IA_PD.
fn ia(m: &mut Dhcpv6Message, b: &[u8], temporary: bool, complete: bool) -> Result<(), Dhcpv6Error> {
    for (code, v) in options(b, complete)? {
        match code {
            5 if v.len() >= 24 && m.addresses.len() < MAX_LEASES => m.addresses.push(Lease6 {
                address: addr(v),
                preferred_secs: be32(&v[16..]),
                valid_secs: be32(&v[20..]),
                temporary,
            }),
            26 if v.len() >= 25 && m.prefixes.len() < MAX_LEASES => m.prefixes.push(Prefix6 {
                preferred_secs: be32(v),
                valid_secs: be32(&v[4..]),
                length: v[8],
                prefix: addr(&v[9..]),
            }),
            13 if v.len() >= 2 && m.status.is_none() => m.status = Some(be16(v)),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(code: u16, v: &[u8]) -> Vec<u8> {
        let mut o = code.to_be_bytes().to_vec();
        o.extend((v.len() as u16).to_be_bytes());
        o.extend(v);
        o
    }

    fn advertise() -> Vec<u8> {
        let mut m = vec![ADVERTISE, 0x12, 0x34, 0x56];
        m.extend(opt(1, &[0, 3, 0, 1, 2, 0, 0, 0, 0, 0x0c]));
        m.extend(opt(
            2,
            &[0, 1, 0, 1, 0x18, 0x3f, 0x4e, 0xf0, 2, 0, 0, 0, 0, 1],
        ));
        let mut iaaddr = "2001:db8:1::100"
            .parse::<Ipv6Addr>()
            .unwrap()
            .octets()
            .to_vec();
        iaaddr.extend([0, 0, 0x0e, 0x10, 0, 0, 0x1c, 0x20]);
        let mut ia_na = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        ia_na.extend(opt(5, &iaaddr));
        m.extend(opt(3, &ia_na));
        m.extend(opt(7, &[255]));
        m
    }

    #[test]
    fn parses_duids_addresses_and_preference() {
        let m = decode(&advertise(), true).unwrap();
        assert_eq!(m.msg_type, ADVERTISE);
        assert_eq!(m.xid, Some(0x123456));
        assert_eq!(
            m.client_duid.as_ref().unwrap().to_string(),
            "0003000102000000000c"
        );
        let server = m.server_duid.clone().unwrap();
        assert_eq!(server.mac(), Some(Mac([2, 0, 0, 0, 0, 1])));
        assert_eq!(m.addresses.len(), 1);
        assert_eq!(m.addresses[0].address.to_string(), "2001:db8:1::100");
        assert_eq!(
            (m.addresses[0].preferred_secs, m.addresses[0].valid_secs),
            (3600, 7200)
        );
        assert_eq!(m.preference, Some(255));
        assert!(m.is_server_reply());
    }

    #[test]
    fn unwraps_relay_replies_and_rejects_overruns() {
        let mut r = vec![RELAY_REPL, 1];
        r.extend("2001:db8:1::1".parse::<Ipv6Addr>().unwrap().octets());
        r.extend("fe80::c".parse::<Ipv6Addr>().unwrap().octets());
        r.extend(opt(18, b"eth0"));
        r.extend(opt(9, &advertise()));
        let m = decode(&r, true).unwrap();
        assert_eq!(m.msg_type, ADVERTISE);
        assert_eq!(m.relays.len(), 1);
        assert_eq!(m.relays[0].interface_id.as_deref(), Some("65746830"));
        assert!(m.server_duid.is_some());
        let cut = &r[..r.len() - 3];
        assert!(matches!(
            decode(cut, true),
            Err(Dhcpv6Error::Overrun { .. })
        ));
        assert!(decode(cut, false).is_ok());
        assert_eq!(decode(&[1, 2], true), Err(Dhcpv6Error::Short(2)));
    }

    #[test]
    fn duids_parse_from_hex() {
        let d: Duid = "00:01:00:01:18:3f:4e:f0:00:11:22:33:44:55".parse().unwrap();
        assert_eq!(d.to_string(), "00010001183f4ef0001122334455");
        assert!("0g".parse::<Duid>().is_err() && "".parse::<Duid>().is_err());
    }
}
