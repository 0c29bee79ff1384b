//! CDP (Cisco Discovery Protocol), from the version byte on: device id, addresses, port id,
//! platform, native VLAN, management addresses. Other TLVs are skipped by their length; a
//! TLV shorter than its header or running past the PDU is an error.
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

use super::switch_text::text;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CdpError {
    #[error("CDP header cut short ({0} bytes)")]
    Short(usize),
    #[error("TLV of type {kind:#06x} at byte {at} claims {len} bytes, {why}")]
    BadTlv {
        kind: u16,
        at: usize,
        len: usize,
        why: &'static str,
    },
}

/// One CDP announcement.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Cdp {
    pub version: u8,
    pub ttl_secs: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub native_vlan: Option<u16>,
    /// Addresses and management addresses (IPv4; CDP's other address kinds are skipped).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<IpAddr>,
}

/// Decodes a CDP PDU (`b` ends where the 802.3 length field said).
pub fn decode(b: &[u8]) -> Result<Cdp, CdpError> {
    if b.len() < 4 {
        return Err(CdpError::Short(b.len()));
    }
    let mut out = Cdp {
        version: b[0],
        ttl_secs: b[1],
        ..Cdp::default()
    };
    let mut at = 4;
    while at + 4 <= b.len() {
        let kind = u16::from_be_bytes([b[at], b[at + 1]]);
        let len = u16::from_be_bytes([b[at + 2], b[at + 3]]) as usize;
        let bad = |why| CdpError::BadTlv { kind, at, len, why };
        if len < 4 {
            return Err(bad("shorter than its header"));
        }
        let v = b
            .get(at + 4..at + len)
            .ok_or(bad("past the end of the PDU"))?;
        match kind {
            0x0001 => out.device_id = Some(text(v)),
            0x0002 | 0x0016 => {
                for ip in addresses(v) {
                    if !out.addresses.contains(&ip) {
                        out.addresses.push(ip);
                    }
                }
            }
            0x0003 => out.port_id = Some(text(v)),
            0x0005 => out.software = Some(text(v).lines().next().unwrap_or("").to_string()),
            0x0006 => out.platform = Some(text(v)),
            0x000a if v.len() >= 2 => out.native_vlan = Some(u16::from_be_bytes([v[0], v[1]])),
            _ => {}
        }
        at += len;
    }
    Ok(out)
}

/// An address list: a count, then (protocol type, protocol length, protocol, address
/// length, address) entries. IPv4 is NLPID 0xcc.
fn addresses(v: &[u8]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let Some(n) = v
        .get(..4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    else {
        return out;
    };
    let mut at = 4;
    for _ in 0..n.min(16) {
        let Some(&plen) = v.get(at + 1) else { break };
        let proto = v.get(at + 2..at + 2 + plen as usize);
        let a = at + 2 + plen as usize;
        let Some(alen) = v
            .get(a..a + 2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]) as usize)
        else {
            break;
        };
        let Some(addr) = v.get(a + 2..a + 2 + alen) else {
            break;
        };
        if v[at] == 1 && proto == Some(&[0xcc][..]) {
            // 0.0.0.0 is a switch saying it has no address.
            if let Ok(o) = <[u8; 4]>::try_from(addr).map(Ipv4Addr::from) {
                if !o.is_unspecified() {
                    out.push(IpAddr::V4(o));
                }
            }
        }
        at = a + 2 + alen;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(kind: u16, v: &[u8]) -> Vec<u8> {
        let mut out = kind.to_be_bytes().to_vec();
        out.extend_from_slice(&(v.len() as u16 + 4).to_be_bytes());
        out.extend_from_slice(v);
        out
    }

    #[test]
    fn reads_device_port_platform_vlan_and_addresses() {
        let mut pdu = vec![2, 180, 0, 0];
        pdu.extend(tlv(1, b"sw3.rack12"));
        pdu.extend(tlv(2, &[0, 0, 0, 1, 1, 1, 0xcc, 0, 4, 10, 0, 0, 3]));
        pdu.extend(tlv(3, b"GigabitEthernet1/0/17"));
        pdu.extend(tlv(6, b"cisco WS-C3750"));
        pdu.extend(tlv(0x0a, &[0, 100]));
        let c = decode(&pdu).unwrap();
        assert_eq!(c.version, 2);
        assert_eq!(c.device_id.as_deref(), Some("sw3.rack12"));
        assert_eq!(c.port_id.as_deref(), Some("GigabitEthernet1/0/17"));
        assert_eq!(c.platform.as_deref(), Some("cisco WS-C3750"));
        assert_eq!(c.native_vlan, Some(100));
        assert_eq!(c.addresses, vec!["10.0.0.3".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn a_bad_tlv_length_is_an_error() {
        let mut pdu = vec![2, 180, 0, 0, 0, 1, 0, 2];
        assert!(matches!(decode(&pdu), Err(CdpError::BadTlv { .. })));
        pdu[7] = 40;
        assert!(matches!(decode(&pdu), Err(CdpError::BadTlv { .. })));
        assert_eq!(decode(&[2]), Err(CdpError::Short(1)));
    }
}
