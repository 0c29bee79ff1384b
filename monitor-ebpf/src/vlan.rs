//! The Ethernet header and the VLAN stack: up to `VLAN_MAX_DEPTH` tags of 802.1Q, 802.1ad or
//! the legacy QinQ TPID, recording the outer and innermost VID in the segment.
use monitor_common::{
    proto::{ETH_P_8021AD, ETH_P_8021Q, ETH_P_QINQ_LEGACY},
    VLAN_MAX_DEPTH,
};
use network_types::{eth::EthHdr, vlan::VlanHdr};

use crate::{cursor::Cursor, segment::Segment};

/// Where the Ethernet/VLAN walk ended.
#[derive(Clone, Copy)]
pub enum Walk {
    /// The frame ends inside the Ethernet header or a tag.
    Truncated,
    /// More than VLAN_MAX_DEPTH tags: counted by depth, not classified.
    TooDeep,
    /// The EtherType after the tags.
    EtherType(u16),
}

/// The frame's Ethernet header (None when even that is cut short) and where the walk ended.
pub struct Walked<'p> {
    pub eth: Option<&'p EthHdr>,
    pub end: Walk,
}

impl Walked<'_> {
    /// True when the destination MAC has the group (I/G) bit: broadcast or multicast.
    #[inline(always)]
    pub fn group_destination(&self) -> bool {
        self.eth.is_some_and(|e| e.dst_addr[0] & 1 != 0)
    }
}

#[inline(always)]
pub fn walk<'p>(cur: &mut Cursor<'p>, seg: &mut Segment) -> Walked<'p> {
    let Ok(eth) = cur.take::<EthHdr>() else {
        return Walked {
            eth: None,
            end: Walk::Truncated,
        };
    };
    let mut ether_type = u16::from_be(eth.ether_type);
    let mut end = None;
    for i in 0..VLAN_MAX_DEPTH {
        if !is_vlan_tpid(ether_type) {
            break;
        }
        let Ok(tag) = cur.take::<VlanHdr>() else {
            end = Some(Walk::Truncated);
            break;
        };
        let vid = u16::from_be_bytes(tag.tci) & 0x0fff;
        if i == 0 {
            seg.key.outer_vid = vid;
        } else {
            seg.key.inner_vid = vid;
        }
        seg.depth = i + 1;
        ether_type = u16::from_be(tag.ether_type);
    }
    let end = match end {
        Some(e) => e,
        None if is_vlan_tpid(ether_type) => {
            seg.depth = VLAN_MAX_DEPTH + 1;
            Walk::TooDeep
        }
        None => Walk::EtherType(ether_type),
    };
    Walked {
        eth: Some(eth),
        end,
    }
}

#[inline(always)]
fn is_vlan_tpid(t: u16) -> bool {
    t == ETH_P_8021Q || t == ETH_P_8021AD || t == ETH_P_QINQ_LEGACY
}
