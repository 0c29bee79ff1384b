//! Spanning-tree BPDUs (IEEE 802.1D/802.1Q: STP, RSTP, MSTP, SPB; Cisco PVST+), from the
//! protocol id on: the root and sender bridge ids, root path cost, port, flags and timers,
//! and for PVST+ the originating VLAN from the TLV after the BPDU. MST instances are not
//! read: the CIST fields are the ones a rack controller's port cares about.
use serde::Serialize;

use crate::model::Mac;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StpError {
    #[error("BPDU cut short: {got} bytes, a {kind} BPDU needs {need}")]
    Short {
        kind: &'static str,
        got: usize,
        need: usize,
    },
    #[error("BPDU protocol id {0:#06x} is not 0 (IEEE 802.1D)")]
    ProtocolId(u16),
    #[error("unknown BPDU type {0:#04x}")]
    Type(u8),
}

/// A bridge identifier: a 4-bit priority, a 12-bit system id extension (the VLAN, on
/// switches that use it), and a MAC. Printed as tshark prints it: `32768/00:1f:6d:96:ec:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct BridgeId {
    pub priority: u16,
    pub ext: u16,
    pub mac: Mac,
}

impl BridgeId {
    fn read(b: &[u8]) -> BridgeId {
        let p = u16::from_be_bytes([b[0], b[1]]);
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&b[2..8]);
        BridgeId {
            priority: p & 0xf000,
            ext: p & 0x0fff,
            mac: Mac(mac),
        }
    }
}

impl std::fmt::Display for BridgeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.priority, self.mac)
    }
}

/// The spanning-tree flavour, from the version byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    Stp,
    Rstp,
    Mstp,
    Spb,
    Other,
}

impl Version {
    fn of(v: u8) -> Version {
        match v {
            0 => Version::Stp,
            2 => Version::Rstp,
            3 => Version::Mstp,
            4 => Version::Spb,
            _ => Version::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Version::Stp => "stp",
            Version::Rstp => "rstp",
            Version::Mstp => "mstp",
            Version::Spb => "spb",
            Version::Other => "other",
        }
    }
}

/// The root, cost and sender of a configuration or RST/MST BPDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Config {
    pub root: BridgeId,
    pub root_cost: u32,
    pub bridge: BridgeId,
    pub port: u16,
    pub topology_change: bool,
    pub topology_change_ack: bool,
    /// RST/MST: the sender's port role (`root`, `designated`, `alternate_backup`, `unknown`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// RST/MST: learning and forwarding flags.
    pub learning: bool,
    pub forwarding: bool,
    /// Timers in milliseconds (the wire has 1/256 s).
    pub message_age_ms: u32,
    pub max_age_ms: u32,
    pub hello_ms: u32,
    pub forward_delay_ms: u32,
}

/// One BPDU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bpdu {
    pub version: Version,
    /// Configuration or RST/MST contents; `None` for a topology change notification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Config>,
    /// PVST+: the VLAN the BPDU was sent for (its originating-VLAN TLV).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pvst_vlan: Option<u16>,
}

impl Bpdu {
    /// A topology change notification BPDU.
    pub fn is_tcn(&self) -> bool {
        self.config.is_none()
    }

    /// TCN, or the topology-change flag set.
    pub fn announces_change(&self) -> bool {
        self.config.is_none_or(|c| c.topology_change)
    }
}

/// Decodes a BPDU; `pvst` says it came under Cisco's SNAP header (PVST+).
pub fn decode(b: &[u8], pvst: bool) -> Result<Bpdu, StpError> {
    let short = |kind, need| StpError::Short {
        kind,
        got: b.len(),
        need,
    };
    if b.len() < 4 {
        return Err(short("any", 4));
    }
    let proto = u16::from_be_bytes([b[0], b[1]]);
    if proto != 0 {
        return Err(StpError::ProtocolId(proto));
    }
    let version = Version::of(b[2]);
    let len = match b[3] {
        0x80 => {
            return Ok(Bpdu {
                version,
                config: None,
                pvst_vlan: None,
            })
        }
        0x00 => 35,
        0x02 => 36,
        t => return Err(StpError::Type(t)),
    };
    if b.len() < 35 {
        return Err(short(if len == 35 { "configuration" } else { "RST" }, 35));
    }
    let ms = |o: usize| u16::from_be_bytes([b[o], b[o + 1]]) as u32 * 1000 / 256;
    let flags = b[4];
    let rst = b[3] == 0x02;
    let config = Config {
        root: BridgeId::read(&b[5..13]),
        root_cost: u32::from_be_bytes([b[13], b[14], b[15], b[16]]),
        bridge: BridgeId::read(&b[17..25]),
        port: u16::from_be_bytes([b[25], b[26]]),
        topology_change: flags & 0x01 != 0,
        topology_change_ack: flags & 0x80 != 0,
        role: rst.then_some(match (flags >> 2) & 0b11 {
            1 => "alternate_backup",
            2 => "root",
            3 => "designated",
            _ => "unknown",
        }),
        learning: rst && flags & 0x10 != 0,
        forwarding: rst && flags & 0x20 != 0,
        message_age_ms: ms(27),
        max_age_ms: ms(29),
        hello_ms: ms(31),
        forward_delay_ms: ms(33),
    };
    // PVST+ puts an originating-VLAN TLV (type 0, length 2) after the BPDU; MSTP's own
    // fields come first there, so it is only looked for under the SNAP header.
    let pvst_vlan = pvst
        .then(|| b.get(len..len + 6))
        .flatten()
        .filter(|t| t[..4] == [0, 0, 0, 2])
        .map(|t| u16::from_be_bytes([t[4], t[5]]));
    Ok(Bpdu {
        version,
        config: Some(config),
        pvst_vlan,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RSTP BPDU from 32768/00:19:06:ea:b8:80, topology change set.
    fn rstp() -> Vec<u8> {
        let mut b = vec![0, 0, 2, 2, 0x3d];
        b.extend([0x80, 0x00, 0x00, 0x19, 0x06, 0xea, 0xb8, 0x80]);
        b.extend([0, 0, 0, 4]);
        b.extend([0x80, 0x01, 0x00, 0x19, 0x06, 0xea, 0xb8, 0x80]);
        b.extend([0x80, 0x05]);
        b.extend([0, 0, 0x14, 0, 2, 0, 0x0f, 0]);
        b.push(0);
        b
    }

    #[test]
    fn reads_root_sender_flags_and_timers() {
        let b = decode(&rstp(), false).unwrap();
        assert_eq!(b.version, Version::Rstp);
        let c = b.config.unwrap();
        assert_eq!(c.root.to_string(), "32768/00:19:06:ea:b8:80");
        assert_eq!((c.bridge.priority, c.bridge.ext), (32768, 1));
        assert_eq!(c.root_cost, 4);
        assert!(c.topology_change && c.forwarding && c.learning);
        assert_eq!(c.role, Some("designated"));
        assert_eq!((c.max_age_ms, c.hello_ms), (20_000, 2_000));
        assert!(b.announces_change() && !b.is_tcn());
    }

    #[test]
    fn pvst_reads_its_vlan_tlv_and_a_tcn_has_no_config() {
        let mut b = rstp();
        b.extend([0, 0, 0, 2, 0, 5]);
        assert_eq!(decode(&b, true).unwrap().pvst_vlan, Some(5));
        assert_eq!(decode(&b, false).unwrap().pvst_vlan, None);
        let tcn = decode(&[0, 0, 0, 0x80], false).unwrap();
        assert!(tcn.is_tcn() && tcn.announces_change());
        assert!(matches!(
            decode(&[0, 0, 0, 0], false),
            Err(StpError::Short { .. })
        ));
        assert_eq!(decode(&[0, 1, 0, 0], false), Err(StpError::ProtocolId(1)));
        assert_eq!(decode(&[0, 0, 0, 7], false), Err(StpError::Type(7)));
    }
}
