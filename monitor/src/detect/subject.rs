//! What a finding is about, typed: a segment, an address or a MAC on a segment, a DHCP server,
//! or a MAC wherever it is seen. Unique within a kind, it is the finding's key; its text (the
//! interface by name, then the item) is what the API, logs and database show.
use std::{fmt, net::Ipv4Addr};

use serde::Serialize;

use crate::model::{Mac, Segment};

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
    /// Read back from a database in a form this build does not know.
    Text(String),
}

impl Subject {
    /// The subject of a stored finding on `seg`, from its text.
    pub fn parse(text: &str, seg: Segment) -> Subject {
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
            [one] => match (one.parse::<Ipv4Addr>(), one.parse::<Mac>()) {
                (Ok(ip), _) => Subject::Address(seg, ip),
                (_, Ok(mac)) => Subject::Mac(seg, mac),
                _ => Subject::Text(text.to_string()),
            },
            [ip, mac] => match (ip.parse(), mac.parse()) {
                (Ok(ip), Ok(mac)) => Subject::Server(seg, ip, mac),
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
