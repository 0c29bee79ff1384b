//! Frames from the switch side, counted per segment: LLDP (0x88cc), slow protocols (0x8809:
//! LACP is subtype 1), and behind an 802.3 length field an LLC header: spanning-tree BPDUs
//! (SAP 0x42; the topology-change flag and TCN BPDUs apart), and under SNAP with Cisco's OUI
//! CDP (0x2000) and PVST+ BPDUs (0x010b). Counted the way tshark counts (`lldp`, `lacp`,
//! `stp`, `cdp`, `stp.flags.tc == 1`, `stp.type == 0x80`).
use monitor_common::{
    proto::{
        BPDU_FLAG_TC, BPDU_TCN, LLC_SNAP, LLC_STP, OUI_CISCO, SLOW_SUBTYPE_LACP, SNAP_PID_CDP,
        SNAP_PID_PVST,
    },
    Counter,
};

use crate::{
    cursor::{Cursor, Short},
    segment::Counts,
};

/// A slow-protocols frame: its subtype decides.
#[inline(always)]
pub fn slow(cur: &mut Cursor, counts: &mut Counts) -> Result<(), Short> {
    let subtype = cur.take::<[u8; 1]>()?[0];
    counts.add(if subtype == SLOW_SUBTYPE_LACP {
        Counter::Lacp
    } else {
        Counter::SlowOther
    });
    Ok(())
}

/// An 802.3 frame: the LLC header, then a BPDU or SNAP.
#[inline(always)]
pub fn llc(cur: &mut Cursor, counts: &mut Counts) -> Result<(), Short> {
    let h = cur.take::<[u8; 3]>()?;
    if *h == LLC_STP {
        return bpdu(cur, counts);
    }
    if *h != LLC_SNAP {
        return Ok(());
    }
    let snap = cur.take::<[u8; 5]>()?;
    if [snap[0], snap[1], snap[2]] != OUI_CISCO {
        return Ok(());
    }
    match u16::from_be_bytes([snap[3], snap[4]]) {
        SNAP_PID_CDP => {
            counts.add(Counter::Cdp);
            Ok(())
        }
        SNAP_PID_PVST => bpdu(cur, counts),
        _ => Ok(()),
    }
}

/// A BPDU: protocol id, version, type; configuration and RST/MST BPDUs carry flags next.
#[inline(always)]
fn bpdu(cur: &mut Cursor, counts: &mut Counts) -> Result<(), Short> {
    counts.add(Counter::Stp);
    let head = cur.take::<[u8; 4]>()?;
    if head[3] == BPDU_TCN {
        counts.add(Counter::StpTcn);
        return Ok(());
    }
    let flags = cur.take::<[u8; 1]>()?[0];
    if flags & BPDU_FLAG_TC != 0 {
        counts.add(Counter::StpTopologyChange);
    }
    Ok(())
}
