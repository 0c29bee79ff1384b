//! LLDP (IEEE 802.1AB), from the first TLV on: chassis and port ids, TTL, port and system
//! descriptions, system name, management addresses, and the organisational TLVs a rack
//! operator needs: port VLAN id (802.1), link aggregation (802.1 and the older 802.3 one)
//! and maximum frame size (802.3). Other TLVs are skipped by their length. A TLV that runs
//! past the PDU, or a PDU missing one of the three mandatory TLVs, is an error.
use std::net::IpAddr;

use serde::Serialize;

use super::switch_text::{id_text, text};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LldpError {
    #[error("TLV of type {kind} at byte {at} claims {len} bytes, past the end of the PDU")]
    TlvOverrun { kind: u8, at: usize, len: usize },
    #[error("missing the mandatory {0} TLV")]
    Missing(&'static str),
}

/// Link aggregation as the neighbour announces it for this port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Aggregation {
    pub capable: bool,
    pub enabled: bool,
    /// The aggregated port id (the bond's ifindex on Linux).
    pub port_id: u32,
}

/// One LLDPDU.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Lldp {
    /// Chassis id: a MAC when its subtype says so, else the text (or hex) it carries.
    pub chassis_id: String,
    pub port_id: String,
    pub ttl_secs: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub management: Vec<IpAddr>,
    /// 802.1 port VLAN id (the port's untagged VLAN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_vlan: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<Aggregation>,
    /// 802.3 maximum frame size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_frame: Option<u16>,
}

const OUI_8021: [u8; 3] = [0x00, 0x80, 0xc2];
const OUI_8023: [u8; 3] = [0x00, 0x12, 0x0f];

/// Decodes an LLDPDU; `b` may carry Ethernet padding after the End TLV.
pub fn decode(b: &[u8]) -> Result<Lldp, LldpError> {
    let mut out = Lldp::default();
    let (mut chassis, mut port, mut ttl) = (false, false, false);
    let mut at = 0;
    while at + 2 <= b.len() {
        let head = u16::from_be_bytes([b[at], b[at + 1]]);
        let (kind, len) = ((head >> 9) as u8, (head & 0x1ff) as usize);
        let start = at + 2;
        if kind == 0 {
            break;
        }
        let Some(v) = b.get(start..start + len) else {
            return Err(LldpError::TlvOverrun { kind, at, len });
        };
        match kind {
            1 if !v.is_empty() => {
                out.chassis_id = id_text(v[0], 4, &v[1..]);
                chassis = true;
            }
            2 if !v.is_empty() => {
                out.port_id = id_text(v[0], 3, &v[1..]);
                port = true;
            }
            3 if v.len() >= 2 => {
                out.ttl_secs = u16::from_be_bytes([v[0], v[1]]);
                ttl = true;
            }
            4 => out.port_description = Some(text(v)),
            5 => out.system_name = Some(text(v)),
            6 => out.system_description = Some(text(v)),
            8 => {
                if let Some(ip) = management(v) {
                    out.management.push(ip);
                }
            }
            127 if v.len() >= 4 => organisational(&mut out, [v[0], v[1], v[2]], v[3], &v[4..]),
            _ => {}
        }
        at = start + len;
    }
    for (seen, name) in [(chassis, "chassis id"), (port, "port id"), (ttl, "TTL")] {
        if !seen {
            return Err(LldpError::Missing(name));
        }
    }
    Ok(out)
}

/// A management address TLV: length (with the subtype), subtype, address, ...
fn management(v: &[u8]) -> Option<IpAddr> {
    let len = *v.first()? as usize;
    let subtype = *v.get(1)?;
    let addr = v.get(2..1 + len)?;
    match (subtype, addr.len()) {
        (1, 4) => Some(IpAddr::from(<[u8; 4]>::try_from(addr).ok()?)),
        (2, 16) => Some(IpAddr::from(<[u8; 16]>::try_from(addr).ok()?)),
        _ => None,
    }
}

fn organisational(out: &mut Lldp, oui: [u8; 3], subtype: u8, v: &[u8]) {
    let agg = |v: &[u8]| {
        (v.len() >= 5).then(|| Aggregation {
            capable: v[0] & 1 != 0,
            enabled: v[0] & 2 != 0,
            port_id: u32::from_be_bytes([v[1], v[2], v[3], v[4]]),
        })
    };
    match (oui, subtype) {
        (OUI_8021, 1) if v.len() >= 2 => out.port_vlan = Some(u16::from_be_bytes([v[0], v[1]])),
        (OUI_8021, 7) | (OUI_8023, 3) => out.aggregation = agg(v).or(out.aggregation),
        (OUI_8023, 4) if v.len() >= 2 => out.max_frame = Some(u16::from_be_bytes([v[0], v[1]])),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(kind: u8, v: &[u8]) -> Vec<u8> {
        let head = (kind as u16) << 9 | v.len() as u16;
        let mut out = head.to_be_bytes().to_vec();
        out.extend_from_slice(v);
        out
    }

    #[test]
    fn reads_the_tlvs_an_operator_needs() {
        let mut pdu = Vec::new();
        pdu.extend(tlv(1, &[4, 0, 0x1b, 0x2b, 1, 2, 3]));
        pdu.extend(tlv(2, b"\x05Gi1/0/17"));
        pdu.extend(tlv(3, &[0, 120]));
        pdu.extend(tlv(4, b"uplink to rack12"));
        pdu.extend(tlv(5, b"sw3.rack12"));
        pdu.extend(tlv(8, &[5, 1, 10, 0, 0, 3, 2, 0, 0, 0, 1, 0]));
        pdu.extend(tlv(127, &[0x00, 0x80, 0xc2, 1, 0, 100]));
        pdu.extend(tlv(127, &[0x00, 0x80, 0xc2, 7, 3, 0, 0, 0, 13]));
        pdu.extend(tlv(127, &[0x00, 0x12, 0x0f, 4, 0x05, 0xee]));
        pdu.extend(tlv(0, &[]));
        pdu.extend([0; 8]);
        let l = decode(&pdu).unwrap();
        assert_eq!(l.chassis_id, "00:1b:2b:01:02:03");
        assert_eq!(l.port_id, "Gi1/0/17");
        assert_eq!(l.ttl_secs, 120);
        assert_eq!(l.system_name.as_deref(), Some("sw3.rack12"));
        assert_eq!(l.port_description.as_deref(), Some("uplink to rack12"));
        assert_eq!(l.management, vec!["10.0.0.3".parse::<IpAddr>().unwrap()]);
        assert_eq!(l.port_vlan, Some(100));
        assert_eq!(
            l.aggregation,
            Some(Aggregation {
                capable: true,
                enabled: true,
                port_id: 13
            })
        );
        assert_eq!(l.max_frame, Some(1518));
    }

    #[test]
    fn an_overrun_or_a_missing_mandatory_tlv_is_an_error() {
        let mut pdu = tlv(1, &[7, b'a']);
        pdu.extend([0x04, 0x10, b'x']);
        assert!(matches!(
            decode(&pdu),
            Err(LldpError::TlvOverrun { kind: 2, .. })
        ));
        assert_eq!(
            decode(&tlv(1, &[7, b'a'])),
            Err(LldpError::Missing("port id"))
        );
        assert_eq!(decode(&[]), Err(LldpError::Missing("chassis id")));
    }
}
