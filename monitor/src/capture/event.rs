//! Decodes ring-buffer records into typed events, checking length and kind first: a record the
//! agent does not understand is an error value, never a panic or a misread.
use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
};

use monitor_common::{
    arp_flags, event_kind, nd_flags, ArpEvent, DhcpEvent, EventHeader, Ip6Event, LoopEvent,
    NdEvent, ScanEvent, SwitchEvent, SwitchProto, DHCP_PAYLOAD_MAX, IP6_PAYLOAD_MAX,
    SWITCH_PAYLOAD_MAX,
};
use serde::Serialize;

/// A decoded kernel event.
#[derive(Clone)]
pub enum KernelEvent {
    Arp(ArpEvent),
    Dhcp(Box<DhcpEvent>),
    Loop(LoopEvent),
    Scan(ScanEvent),
    /// An IPv6 neighbour binding or a DAD probe.
    Nd(NdEvent),
    RouterAdvert(Box<Ip6Event>),
    Dhcpv6(Box<Ip6Event>),
    /// A changed LLDP, CDP, BPDU or LACPDU.
    Switch(Box<SwitchEvent>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty ring-buffer record")]
    Empty,
    #[error("record of kind {kind} has {len} bytes, expected {expected}")]
    Length {
        kind: u8,
        len: usize,
        expected: usize,
    },
    #[error("unknown event kind {0}")]
    UnknownKind(u8),
    #[error("DHCP event claims {0} payload bytes, more than the {DHCP_PAYLOAD_MAX} it can hold")]
    PayloadLength(u16),
    #[error("IPv6 event claims {0} payload bytes, more than the {IP6_PAYLOAD_MAX} it can hold")]
    Ip6PayloadLength(u16),
    #[error(
        "switch event claims {0} payload bytes, more than the {SWITCH_PAYLOAD_MAX} it can hold"
    )]
    SwitchPayloadLength(u16),
    #[error("switch event of unknown protocol {0}")]
    SwitchProto(u8),
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<KernelEvent, DecodeError> {
    let kind = *bytes.first().ok_or(DecodeError::Empty)?;
    match kind {
        event_kind::ARP_NEW | event_kind::ARP_CHANGED | event_kind::ARP_REFRESH => {
            Ok(KernelEvent::Arp(read_struct::<ArpEvent>(kind, bytes)?))
        }
        event_kind::DHCP => {
            let ev = read_struct::<DhcpEvent>(kind, bytes)?;
            if ev.payload_len as usize > DHCP_PAYLOAD_MAX {
                return Err(DecodeError::PayloadLength(ev.payload_len));
            }
            Ok(KernelEvent::Dhcp(Box::new(ev)))
        }
        event_kind::LOOP => Ok(KernelEvent::Loop(read_struct::<LoopEvent>(kind, bytes)?)),
        event_kind::SCAN => Ok(KernelEvent::Scan(read_struct::<ScanEvent>(kind, bytes)?)),
        event_kind::ND_NEW
        | event_kind::ND_CHANGED
        | event_kind::ND_REFRESH
        | event_kind::DAD_PROBE => Ok(KernelEvent::Nd(read_struct::<NdEvent>(kind, bytes)?)),
        event_kind::ROUTER_ADVERT | event_kind::DHCPV6 => {
            let ev = read_struct::<Ip6Event>(kind, bytes)?;
            if ev.payload_len as usize > IP6_PAYLOAD_MAX {
                return Err(DecodeError::Ip6PayloadLength(ev.payload_len));
            }
            Ok(if kind == event_kind::ROUTER_ADVERT {
                KernelEvent::RouterAdvert(Box::new(ev))
            } else {
                KernelEvent::Dhcpv6(Box::new(ev))
            })
        }
        event_kind::SWITCH_PDU => {
            let ev = read_struct::<SwitchEvent>(kind, bytes)?;
            if ev.payload_len as usize > SWITCH_PAYLOAD_MAX {
                return Err(DecodeError::SwitchPayloadLength(ev.payload_len));
            }
            if SwitchProto::from_code(ev.proto).is_none() {
                return Err(DecodeError::SwitchProto(ev.proto));
            }
            Ok(KernelEvent::Switch(Box::new(ev)))
        }
        other => Err(DecodeError::UnknownKind(other)),
    }
}

fn read_struct<T: aya::Pod>(kind: u8, bytes: &[u8]) -> Result<T, DecodeError> {
    let expected = std::mem::size_of::<T>();
    if bytes.len() < expected {
        return Err(DecodeError::Length {
            kind,
            len: bytes.len(),
            expected,
        });
    }
    // SAFETY: length checked; T is Pod (repr(C), valid for any bit pattern), read unaligned.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const T) })
}

/// A MAC address that prints as `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address (expected six hex pairs like 02:00:5e:10:00:01)")]
pub struct MacParseError(pub String);

impl std::str::FromStr for Mac {
    type Err = MacParseError;

    /// Accepts `aa:bb:cc:dd:ee:ff` and `aa-bb-cc-dd-ee-ff`, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in &mut out {
            let p = parts.next().filter(|p| p.len() == 2).ok_or_else(err)?;
            *b = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Mac(out))
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where an event was seen, in userspace terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Place {
    pub interface: crate::model::Iface,
    /// Outermost VLAN ID, if tagged.
    pub outer_vlan: Option<u16>,
    /// Innermost VLAN ID, if two or more tags.
    pub inner_vlan: Option<u16>,
    pub tag_depth: u8,
}

impl Place {
    pub fn from_header(h: &EventHeader, iface: crate::model::Iface) -> Place {
        let seg = crate::model::Segment::from_vids(iface, h.outer_vid, h.inner_vid);
        Place {
            interface: iface,
            outer_vlan: seg.outer_vlan,
            inner_vlan: seg.inner_vlan,
            tag_depth: h.depth,
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.interface.name())?;
        match (self.outer_vlan, self.inner_vlan) {
            (None, _) => Ok(()),
            (Some(o), None) => write!(f, " vlan {o}"),
            (Some(o), Some(i)) => write!(f, " vlan {o}.{i}"),
        }
    }
}

/// JSON/log view of a kernel event.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventRecord {
    Arp {
        kind: &'static str,
        #[serde(flatten)]
        place: Place,
        ip: Ipv4Addr,
        mac: Mac,
        #[serde(skip_serializing_if = "Option::is_none")]
        old_mac: Option<Mac>,
        op: u16,
        gratuitous: bool,
        probe: bool,
        announcement: bool,
    },
    Dhcp {
        #[serde(flatten)]
        place: Place,
        msg_type: u8,
        src_mac: Mac,
        src_ip: Ipv4Addr,
        dst_ip: Ipv4Addr,
        src_port: u16,
        dst_port: u16,
        bootp_len: u16,
        captured: u16,
    },
    Loop {
        #[serde(flatten)]
        place: Place,
        src_mac: Mac,
        dst_mac: Mac,
        ether_type: u16,
        count: u32,
        window_ms: u32,
        frame_len: u16,
    },
    Scan {
        #[serde(flatten)]
        place: Place,
        mac: Mac,
        sender_ip: Ipv4Addr,
        targets: u32,
        requests: u32,
        window_ms: u32,
    },
    Nd {
        kind: &'static str,
        #[serde(flatten)]
        place: Place,
        ip: Ipv6Addr,
        mac: Mac,
        #[serde(skip_serializing_if = "Option::is_none")]
        old_mac: Option<Mac>,
        #[serde(skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
        message: &'static str,
    },
    RouterAdvert {
        #[serde(flatten)]
        place: Place,
        src_mac: Mac,
        src_ip: Ipv6Addr,
        length: u16,
        captured: u16,
    },
    Dhcpv6 {
        #[serde(flatten)]
        place: Place,
        msg_type: u8,
        src_mac: Mac,
        src_ip: Ipv6Addr,
        dst_ip: Ipv6Addr,
        src_port: u16,
        dst_port: u16,
        length: u16,
        captured: u16,
    },
    Switch {
        #[serde(flatten)]
        place: Place,
        protocol: &'static str,
        src_mac: Mac,
        dst_mac: Mac,
        length: u16,
        captured: u16,
    },
}

impl EventRecord {
    /// The record of `ev`, seen on `iface`.
    pub fn new(ev: &KernelEvent, iface: crate::model::Iface) -> Self {
        match ev {
            KernelEvent::Arp(a) => EventRecord::Arp {
                kind: event_kind::name(a.header.kind),
                place: Place::from_header(&a.header, iface),
                ip: Ipv4Addr::from(a.ip),
                mac: Mac(a.mac),
                old_mac: (a.header.kind == event_kind::ARP_CHANGED).then_some(Mac(a.old_mac)),
                op: a.op,
                gratuitous: a.flags & arp_flags::GRATUITOUS != 0,
                probe: a.flags & arp_flags::PROBE != 0,
                announcement: a.flags & arp_flags::ANNOUNCEMENT != 0,
            },
            KernelEvent::Dhcp(d) => EventRecord::Dhcp {
                place: Place::from_header(&d.header, iface),
                msg_type: d.msg_type,
                src_mac: Mac(d.eth_src),
                src_ip: Ipv4Addr::from(d.src_ip),
                dst_ip: Ipv4Addr::from(d.dst_ip),
                src_port: d.src_port,
                dst_port: d.dst_port,
                bootp_len: d.bootp_len,
                captured: d.payload_len,
            },
            KernelEvent::Loop(l) => EventRecord::Loop {
                place: Place::from_header(&l.header, iface),
                src_mac: Mac(l.eth_src),
                dst_mac: Mac(l.eth_dst),
                ether_type: l.ether_type,
                count: l.count,
                window_ms: l.window_ms,
                frame_len: l.frame_len,
            },
            KernelEvent::Scan(sc) => EventRecord::Scan {
                place: Place::from_header(&sc.header, iface),
                mac: Mac(sc.mac),
                sender_ip: Ipv4Addr::from(sc.sender_ip),
                targets: sc.targets,
                requests: sc.requests,
                window_ms: sc.window_ms,
            },
            KernelEvent::Nd(n) => EventRecord::Nd {
                kind: event_kind::name(n.header.kind),
                place: Place::from_header(&n.header, iface),
                ip: Ipv6Addr::from(n.ip),
                mac: Mac(n.mac),
                old_mac: (n.header.kind == event_kind::ND_CHANGED).then_some(Mac(n.old_mac)),
                nonce: (n.flags & nd_flags::NONCE != 0).then(|| hex(&n.nonce)),
                message: if n.icmp_type == monitor_common::proto::ND_NA {
                    "na"
                } else {
                    "ns"
                },
            },
            KernelEvent::RouterAdvert(r) => EventRecord::RouterAdvert {
                place: Place::from_header(&r.header, iface),
                src_mac: Mac(r.eth_src),
                src_ip: Ipv6Addr::from(r.src_ip),
                length: r.wire_len,
                captured: r.payload_len,
            },
            KernelEvent::Dhcpv6(d) => EventRecord::Dhcpv6 {
                place: Place::from_header(&d.header, iface),
                msg_type: d.msg_type,
                src_mac: Mac(d.eth_src),
                src_ip: Ipv6Addr::from(d.src_ip),
                dst_ip: Ipv6Addr::from(d.dst_ip),
                src_port: d.src_port,
                dst_port: d.dst_port,
                length: d.wire_len,
                captured: d.payload_len,
            },
            KernelEvent::Switch(w) => EventRecord::Switch {
                place: Place::from_header(&w.header, iface),
                protocol: SwitchProto::from_code(w.proto).map_or("unknown", |p| p.name()),
                src_mac: Mac(w.eth_src),
                dst_mac: Mac(w.eth_dst),
                length: w.wire_len,
                captured: w.payload_len,
            },
        }
    }
}

impl KernelEvent {
    pub fn header(&self) -> &EventHeader {
        match self {
            KernelEvent::Arp(a) => &a.header,
            KernelEvent::Dhcp(d) => &d.header,
            KernelEvent::Loop(l) => &l.header,
            KernelEvent::Scan(s) => &s.header,
            KernelEvent::Nd(n) => &n.header,
            KernelEvent::RouterAdvert(e) | KernelEvent::Dhcpv6(e) => &e.header,
            KernelEvent::Switch(w) => &w.header,
        }
    }

    /// The event's kind code ([`event_kind`]).
    pub fn kind(&self) -> u8 {
        self.header().kind
    }

    /// The valid BOOTP bytes of a DHCP event.
    pub fn dhcp_payload(&self) -> Option<&[u8]> {
        match self {
            KernelEvent::Dhcp(d) => Some(&d.payload[..d.payload_len as usize]),
            _ => None,
        }
    }
}

/// Bytes as lower-case hex, the way DUIDs and nonces are shown.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_short_unknown_and_oversized_records() {
        assert_eq!(decode(&[]).err(), Some(DecodeError::Empty));
        assert_eq!(
            decode(&[99, 0, 0]).err(),
            Some(DecodeError::UnknownKind(99))
        );
        assert!(matches!(
            decode(&[event_kind::ARP_NEW; 10]),
            Err(DecodeError::Length { len: 10, .. })
        ));
        let mut buf = vec![0u8; std::mem::size_of::<DhcpEvent>()];
        buf[0] = event_kind::DHCP;
        let off = std::mem::offset_of!(DhcpEvent, payload_len);
        buf[off..off + 2].copy_from_slice(&2000u16.to_ne_bytes());
        assert_eq!(decode(&buf).err(), Some(DecodeError::PayloadLength(2000)));
    }

    #[test]
    fn mac_parses_what_it_prints_and_rejects_the_rest() {
        let m: Mac = "02:00:5E:10:00:0a".parse().unwrap();
        assert_eq!(m.to_string(), "02:00:5e:10:00:0a");
        assert_eq!("02-00-5e-10-00-0a".parse::<Mac>(), Ok(m));
        for bad in [
            "",
            "02:00:5e:10:00",
            "02:00:5e:10:00:0a:01",
            "02:00:5e:10:00:zz",
            "2:0:5e:10:0:a",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

    #[test]
    fn place_prints_vlans() {
        let mut h = EventHeader {
            kind: 1,
            depth: 2,
            _pad: 0,
            ifindex: 3,
            outer_vid: 200,
            inner_vid: 2001,
            _pad2: 0,
            ktime_ns: 0,
        };
        let eth = crate::model::Iface::named("eth3");
        assert_eq!(
            Place::from_header(&h, eth).to_string(),
            "eth3 vlan 200.2001"
        );
        h.outer_vid = monitor_common::NO_VLAN;
        h.inner_vid = monitor_common::NO_VLAN;
        assert_eq!(Place::from_header(&h, eth).to_string(), "eth3");
    }
}
