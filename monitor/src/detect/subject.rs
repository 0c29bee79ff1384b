//! What a finding is about, typed: a segment, an address or a MAC on a segment, a DHCP server,
//! or a MAC wherever it is seen. Unique within a kind, it is the finding's key; its text (the
//! interface by name, then the item) is what the API, logs and database show.
use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
};

use serde::Serialize;

use crate::{
    decode::Duid,
    model::{Mac, Segment},
};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// A whole segment: floods, storms, competing servers, loops.
    Segment(Segment),
    /// An IPv4 address on a segment: duplicates and MAC changes.
    Address(Segment, Ipv4Addr),
    /// A station on a segment: APIPA, scanners.
    Mac(Segment, Mac),
    /// A DHCP server (server identifier and MAC) on a segment.
    Server(Segment, Ipv4Addr, Mac),
    /// A MAC wherever it is seen: collisions across segments.
    Station(Mac),
    /// An IPv6 address on a segment: duplicates, spoofed router addresses.
    Address6(Segment, Ipv6Addr),
    /// An IPv6 router (source address and MAC) on a segment.
    Router(Segment, Ipv6Addr, Mac),
    /// An IPv6 prefix (CIDR) on a segment.
    Prefix(Segment, String),
    /// A DHCPv6 server by DUID on a segment.
    Duid(Segment, Duid),
    /// A spanning tree on a segment: the common one, or a PVST+ VLAN's.
    Stp(Segment, Option<u16>),
    /// A bond, by name.
    Bond(String),
    /// Read back from a database in a form this build does not know.
    Text(String),
}

impl Subject {
    /// The subject of a stored finding on `seg`, from its text.
    pub fn parse(text: &str, seg: Segment) -> Subject {
        if let Some(b) = text.strip_prefix("bond ") {
            return Subject::Bond(b.to_string());
        }
        let head = seg.to_string();
        let Some(rest) = text.strip_prefix(head.as_str()) else {
            return match text.parse::<Mac>() {
                Ok(m) => Subject::Station(m),
                Err(_) => Subject::Text(text.to_string()),
            };
        };
        let parts: Vec<&str> = rest.split_whitespace().collect();
        if !rest.is_empty() && !rest.starts_with(' ') {
            return Subject::Text(text.to_string());
        }
        match parts.as_slice() {
            [] => Subject::Segment(seg),
            ["stp"] => Subject::Stp(seg, None),
            [one] => match (
                one.parse::<Ipv4Addr>(),
                one.parse::<Mac>(),
                one.parse::<Ipv6Addr>(),
            ) {
                (Ok(ip), _, _) => Subject::Address(seg, ip),
                (_, Ok(mac), _) => Subject::Mac(seg, mac),
                (_, _, Ok(ip)) => Subject::Address6(seg, ip),
                _ if one.contains('/')
                    && one
                        .split('/')
                        .next()
                        .is_some_and(|p| p.parse::<Ipv6Addr>().is_ok()) =>
                {
                    Subject::Prefix(seg, one.to_string())
                }
                _ => Subject::Text(text.to_string()),
            },
            ["stp", "vlan", v] => match v.parse() {
                Ok(v) => Subject::Stp(seg, Some(v)),
                Err(_) => Subject::Text(text.to_string()),
            },
            ["duid", d] => match d.parse::<Duid>() {
                Ok(d) => Subject::Duid(seg, d),
                Err(_) => Subject::Text(text.to_string()),
            },
            [ip, mac] => match (ip.parse::<Ipv4Addr>(), ip.parse::<Ipv6Addr>(), mac.parse()) {
                (Ok(ip), _, Ok(mac)) => Subject::Server(seg, ip, mac),
                (_, Ok(ip), Ok(mac)) => Subject::Router(seg, ip, mac),
                _ => Subject::Text(text.to_string()),
            },
            _ => Subject::Text(text.to_string()),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Segment(s) => write!(f, "{s}"),
            Subject::Address(s, ip) => write!(f, "{s} {ip}"),
            Subject::Mac(s, mac) => write!(f, "{s} {mac}"),
            Subject::Server(s, ip, mac) => write!(f, "{s} {ip} {mac}"),
            Subject::Station(mac) => write!(f, "{mac}"),
            Subject::Address6(s, ip) => write!(f, "{s} {ip}"),
            Subject::Router(s, ip, mac) => write!(f, "{s} {ip} {mac}"),
            Subject::Prefix(s, p) => write!(f, "{s} {p}"),
            Subject::Duid(s, d) => write!(f, "{s} duid {d}"),
            Subject::Stp(s, None) => write!(f, "{s} stp"),
            Subject::Stp(s, Some(v)) => write!(f, "{s} stp vlan {v}"),
            Subject::Bond(b) => write!(f, "bond {b}"),
            Subject::Text(t) => f.write_str(t),
        }
    }
}

impl Serialize for Subject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Iface;

    #[test]
    fn text_round_trips() {
        let seg = Segment {
            iface: Iface::named("eth0"),
            outer_vlan: Some(100),
            inner_vlan: Some(7),
        };
        let mac = Mac([2, 0, 0, 0, 0, 1]);
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        for s in [
            Subject::Segment(seg),
            Subject::Address(seg, ip),
            Subject::Mac(seg, mac),
            Subject::Server(seg, ip, mac),
            Subject::Station(mac),
            Subject::Address6(seg, "fe80::1".parse().unwrap()),
            Subject::Router(seg, "fe80::1".parse().unwrap(), mac),
            Subject::Prefix(seg, "2001:db8:1::/64".into()),
            Subject::Duid(seg, "000300010200000000ff".parse().unwrap()),
            Subject::Stp(seg, None),
            Subject::Stp(seg, Some(5)),
            Subject::Bond("bond0".into()),
        ] {
            assert_eq!(Subject::parse(&s.to_string(), seg), s, "{s}");
        }
        assert_eq!(
            s("eth0/vlan100.7 what is this", seg),
            "eth0/vlan100.7 what is this"
        );
        assert_eq!(s("eth01 10.0.0.1", seg), "eth01 10.0.0.1");
        fn s(t: &str, seg: Segment) -> String {
            match Subject::parse(t, seg) {
                Subject::Text(x) => x,
                other => panic!("{other:?}"),
            }
        }
    }
}
