//! LACPDUs (IEEE 802.1AX), from the slow-protocols subtype on: the actor's and partner's
//! system, key, port and state. The sender is the actor; its partner fields say what it
//! knows of us.
use serde::Serialize;

use crate::model::Mac;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LacpError {
    #[error("LACPDU cut short: {0} bytes, the actor and partner TLVs need 42")]
    Short(usize),
    #[error("the {which} TLV has type {kind} and length {len}, expected {want} and 20")]
    Tlv {
        which: &'static str,
        kind: u8,
        len: u8,
        want: u8,
    },
}

/// The state octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct State {
    pub activity: bool,
    /// Short timeout (1 s periodic) rather than long (30 s).
    pub short_timeout: bool,
    pub aggregation: bool,
    pub synchronization: bool,
    pub collecting: bool,
    pub distributing: bool,
    pub defaulted: bool,
    pub expired: bool,
}

impl State {
    fn of(b: u8) -> State {
        State {
            activity: b & 0x01 != 0,
            short_timeout: b & 0x02 != 0,
            aggregation: b & 0x04 != 0,
            synchronization: b & 0x08 != 0,
            collecting: b & 0x10 != 0,
            distributing: b & 0x20 != 0,
            defaulted: b & 0x40 != 0,
            expired: b & 0x80 != 0,
        }
    }

    /// The flags that are set, by name: `sync,collecting,distributing`.
    pub fn names(&self) -> String {
        let all = [
            (self.activity, "active"),
            (self.short_timeout, "short_timeout"),
            (self.aggregation, "aggregation"),
            (self.synchronization, "sync"),
            (self.collecting, "collecting"),
            (self.distributing, "distributing"),
            (self.defaulted, "defaulted"),
            (self.expired, "expired"),
        ];
        let set: Vec<&str> = all.iter().filter(|f| f.0).map(|f| f.1).collect();
        set.join(",")
    }
}

/// One side of the aggregation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Side {
    pub system_priority: u16,
    pub system: Mac,
    pub key: u16,
    pub port_priority: u16,
    pub port: u16,
    pub state: State,
}

impl Side {
    fn read(b: &[u8]) -> Side {
        Side {
            system_priority: u16::from_be_bytes([b[0], b[1]]),
            system: Mac([b[2], b[3], b[4], b[5], b[6], b[7]]),
            key: u16::from_be_bytes([b[8], b[9]]),
            port_priority: u16::from_be_bytes([b[10], b[11]]),
            port: u16::from_be_bytes([b[12], b[13]]),
            state: State::of(b[14]),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Lacpdu {
    pub version: u8,
    pub actor: Side,
    pub partner: Side,
}

impl Lacpdu {
    /// The sender has lost its partner: no partner system, or its partner information
    /// expired or defaulted.
    pub fn partner_lost(&self) -> bool {
        self.partner.system == Mac([0; 6]) || self.actor.state.expired || self.actor.state.defaulted
    }
}

/// Decodes a LACPDU from its subtype byte.
pub fn decode(b: &[u8]) -> Result<Lacpdu, LacpError> {
    if b.len() < 42 {
        return Err(LacpError::Short(b.len()));
    }
    for (which, at, want) in [("actor", 2, 1u8), ("partner", 22, 2)] {
        if b[at] != want || b[at + 1] != 20 {
            return Err(LacpError::Tlv {
                which,
                kind: b[at],
                len: b[at + 1],
                want,
            });
        }
    }
    Ok(Lacpdu {
        version: b[1],
        actor: Side::read(&b[4..20]),
        partner: Side::read(&b[24..40]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn pdu(actor: [u8; 6], key: u16, state: u8, partner: [u8; 6]) -> Vec<u8> {
        let mut b = vec![1, 1, 1, 20, 0x80, 0];
        b.extend(actor);
        b.extend(key.to_be_bytes());
        b.extend([0x80, 0, 0, 7, state, 0, 0, 0]);
        b.extend([2, 20, 0x80, 0]);
        b.extend(partner);
        b.extend([0, 13, 0x80, 0, 0, 1, 0x3d, 0, 0, 0]);
        b.extend([3, 16, 0, 0]);
        b.extend([0; 12]);
        b.extend([0, 0]);
        b.extend([0; 50]);
        b
    }

    #[test]
    fn reads_both_sides_and_the_lost_partner() {
        let ok = decode(&pdu(
            [0, 0x13, 0xc4, 0x12, 0x0f, 0],
            13,
            0x3d,
            [2, 0, 0, 0, 0, 1],
        ))
        .unwrap();
        assert_eq!(ok.actor.system.to_string(), "00:13:c4:12:0f:00");
        assert_eq!((ok.actor.key, ok.actor.port, ok.partner.key), (13, 7, 13));
        assert!(ok.actor.state.synchronization && ok.actor.state.distributing);
        assert_eq!(
            ok.actor.state.names(),
            "active,aggregation,sync,collecting,distributing"
        );
        assert!(!ok.partner_lost());
        let lost = decode(&pdu([0, 0x13, 0xc4, 0x12, 0x0f, 0], 13, 0x45, [0; 6])).unwrap();
        assert!(lost.partner_lost());
        assert_eq!(decode(&[1, 1]), Err(LacpError::Short(2)));
    }
}
