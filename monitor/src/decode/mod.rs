//! Decode stage: turns kernel events into typed observations for the engine.
pub mod cdp;
pub mod dhcp;
pub mod dhcpv6;
pub mod lacp;
pub mod lldp;
pub mod ra;
pub mod stp;
mod switch_text;

pub use dhcp::{decode as decode_dhcp, DhcpError, DhcpMessage};
pub use dhcpv6::{Dhcpv6Error, Dhcpv6Message, Duid};
pub use ra::{RaError, RouterAdvert};

use std::net::{Ipv4Addr, Ipv6Addr};

use monitor_common::{arp_flags, event_kind, nd_flags, SwitchProto};

use crate::{
    capture::{KernelEvent, Mac},
    model::{ArpChange, Iface, Observation, Segment},
};

/// Why an event did not become an observation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObserveError {
    #[error("DHCP: {0}")]
    Dhcp(#[from] DhcpError),
    #[error("router advertisement: {0}")]
    Ra(#[from] RaError),
    #[error("DHCPv6: {0}")]
    Dhcpv6(#[from] Dhcpv6Error),
    #[error("LLDP: {0}")]
    Lldp(#[from] lldp::LldpError),
    #[error("CDP: {0}")]
    Cdp(#[from] cdp::CdpError),
    #[error("BPDU: {0}")]
    Stp(#[from] stp::StpError),
    #[error("LACP: {0}")]
    Lacp(#[from] lacp::LacpError),
    #[error("unexpected event kind {0}")]
    Kind(u8),
}

/// A switch-protocol PDU, decoded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "protocol", rename_all = "lowercase")]
pub enum SwitchPdu {
    Lldp(lldp::Lldp),
    Cdp(cdp::Cdp),
    Stp(stp::Bpdu),
    Lacp(lacp::Lacpdu),
}

impl SwitchPdu {
    /// Decodes the payload of a [`monitor_common::SwitchEvent`] of protocol `proto`.
    pub fn decode(proto: SwitchProto, b: &[u8]) -> Result<SwitchPdu, ObserveError> {
        Ok(match proto {
            SwitchProto::Lldp => SwitchPdu::Lldp(lldp::decode(b)?),
            SwitchProto::Cdp => SwitchPdu::Cdp(cdp::decode(b)?),
            SwitchProto::Stp => SwitchPdu::Stp(stp::decode(b, false)?),
            SwitchProto::Pvst => SwitchPdu::Stp(stp::decode(b, true)?),
            SwitchProto::Lacp => SwitchPdu::Lacp(lacp::decode(b)?),
        })
    }
}

/// The segment an event was seen on: `iface` is the name behind the header's ifindex.
pub fn segment(h: &monitor_common::EventHeader, iface: Iface) -> Segment {
    Segment::from_vids(iface, h.outer_vid, h.inner_vid)
}

/// Turns a kernel event seen on `iface` into an observation.
pub fn observe(ev: &KernelEvent, iface: Iface) -> Result<Observation, ObserveError> {
    match ev {
        KernelEvent::Arp(a) => Ok(Observation::Arp {
            seg: segment(&a.header, iface),
            change: match a.header.kind {
                event_kind::ARP_NEW => ArpChange::New,
                event_kind::ARP_CHANGED => ArpChange::Changed,
                event_kind::ARP_REFRESH => ArpChange::Refresh,
                k => return Err(ObserveError::Kind(k)),
            },
            ip: Ipv4Addr::from(a.ip),
            mac: Mac(a.mac),
            target_ip: Ipv4Addr::from(a.target_ip),
            op: a.op,
            gratuitous: a.flags & arp_flags::GRATUITOUS != 0,
            probe: a.flags & arp_flags::PROBE != 0,
            announcement: a.flags & arp_flags::ANNOUNCEMENT != 0,
        }),
        KernelEvent::Dhcp(d) => {
            let payload = &d.payload[..d.payload_len as usize];
            let complete = d.payload_len == d.bootp_len;
            Ok(Observation::Dhcp {
                seg: segment(&d.header, iface),
                src_mac: Mac(d.eth_src),
                src_ip: Ipv4Addr::from(d.src_ip),
                msg: Box::new(decode_dhcp(payload, complete)?),
            })
        }
        KernelEvent::Loop(l) => Ok(Observation::Loop {
            seg: segment(&l.header, iface),
            src_mac: Mac(l.eth_src),
            dst_mac: Mac(l.eth_dst),
            ether_type: l.ether_type,
            count: l.count,
            window_ms: l.window_ms,
        }),
        KernelEvent::Scan(s) => Ok(Observation::Scan {
            seg: segment(&s.header, iface),
            mac: Mac(s.mac),
            ip: Ipv4Addr::from(s.sender_ip),
            targets: s.targets,
            requests: s.requests,
            window_ms: s.window_ms,
        }),
        KernelEvent::Nd(n) => {
            let seg = segment(&n.header, iface);
            let ip = Ipv6Addr::from(n.ip);
            let mac = Mac(n.mac);
            let change = match n.header.kind {
                event_kind::DAD_PROBE => {
                    return Ok(Observation::DadProbe {
                        seg,
                        target: ip,
                        mac,
                        nonce: (n.flags & nd_flags::NONCE != 0).then_some(n.nonce),
                    })
                }
                event_kind::ND_NEW => ArpChange::New,
                event_kind::ND_CHANGED => ArpChange::Changed,
                event_kind::ND_REFRESH => ArpChange::Refresh,
                k => return Err(ObserveError::Kind(k)),
            };
            Ok(Observation::Neighbour {
                seg,
                change,
                ip,
                mac,
                old_mac: (change == ArpChange::Changed).then_some(Mac(n.old_mac)),
                advert: n.icmp_type == monitor_common::proto::ND_NA,
                router: n.flags & nd_flags::ROUTER != 0,
                solicited: n.flags & nd_flags::SOLICITED != 0,
                override_flag: n.flags & nd_flags::OVERRIDE != 0,
            })
        }
        KernelEvent::RouterAdvert(r) => {
            let payload = &r.payload[..r.payload_len as usize];
            Ok(Observation::RouterAdvert {
                seg: segment(&r.header, iface),
                src_mac: Mac(r.eth_src),
                src_ip: Ipv6Addr::from(r.src_ip),
                ra: Box::new(ra::decode(payload, r.payload_len == r.wire_len)?),
            })
        }
        KernelEvent::Dhcpv6(d) => {
            let payload = &d.payload[..d.payload_len as usize];
            Ok(Observation::Dhcpv6 {
                seg: segment(&d.header, iface),
                src_mac: Mac(d.eth_src),
                src_ip: Ipv6Addr::from(d.src_ip),
                dst_mac: Mac(d.eth_dst),
                msg: Box::new(dhcpv6::decode(payload, d.payload_len == d.wire_len)?),
            })
        }
        KernelEvent::Switch(w) => {
            let proto = SwitchProto::from_code(w.proto).ok_or(ObserveError::Kind(w.proto))?;
            let payload = &w.payload[..w.payload_len as usize];
            Ok(Observation::Switch {
                seg: segment(&w.header, iface),
                src_mac: Mac(w.eth_src),
                pdu: Box::new(SwitchPdu::decode(proto, payload)?),
            })
        }
    }
}
