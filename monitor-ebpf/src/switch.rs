//! Frames from the switch side, counted per segment: LLDP (0x88cc), slow protocols (0x8809:
//! LACP is subtype 1), and behind an 802.3 length field an LLC header: spanning-tree BPDUs
//! (SAP 0x42; the topology-change flag and TCN BPDUs apart), and under SNAP with Cisco's OUI
//! CDP (0x2000) and PVST+ BPDUs (0x010b). Counted the way tshark counts (`lldp`, `lacp`,
//! `stp`, `cdp`, `stp.flags.tc == 1`, `stp.type == 0x80`).
//!
//! LLDP, CDP, BPDUs and LACPDUs are also queued as a [`SwitchJob`] for `l2watch_switch`
//! (`switch_events`), which reports only those that changed.
use monitor_common::{
    proto::{
        BPDU_FLAG_TC, BPDU_TCN, LLC_SNAP, LLC_STP, OUI_CISCO, SLOW_SUBTYPE_LACP, SNAP_PID_CDP,
        SNAP_PID_PVST,
    },
    Counter, SwitchProto,
};

use crate::{
    cursor::{Cursor, Short},
    maps::{per_cpu, SWITCH_JOB},
    segment::{Counts, Segment},
};

/// The per-CPU hand-over from the classifier to `l2watch_switch` (`SWITCH_JOB`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SwitchJob {
    /// [`SwitchProto`] code; 0: no job.
    pub proto: u8,
    pub depth: u8,
    /// The BPDU announces a topology change (TC flag or TCN): reported even if unchanged.
    pub topology_change: u8,
    pub _pad: u8,
    pub ifindex: u32,
    pub outer_vid: u16,
    pub inner_vid: u16,
    /// Offset of the PDU's first byte.
    pub start: u32,
    /// Its bytes as an 802.3 frame's length field says; 0: to the end of the frame.
    /// `l2watch_switch` bounds it by the frame's length.
    pub len: u32,
}

/// Queues a job for the tail call; true when one was queued.
#[inline(always)]
fn queue(seg: &Segment, proto: SwitchProto, start: u32, len: u32, tc: bool) -> bool {
    let Some(j) = per_cpu(&SWITCH_JOB) else {
        return false;
    };
    j.proto = proto as u8;
    j.depth = seg.depth as u8;
    j.topology_change = tc as u8;
    j._pad = 0;
    j.ifindex = seg.key.ifindex;
    j.outer_vid = seg.key.outer_vid;
    j.inner_vid = seg.key.inner_vid;
    j.start = start;
    j.len = len;
    true
}

/// An LLDPDU: from the first TLV (whose header it must have) to the end of the frame.
#[inline(always)]
pub fn lldp(cur: &mut Cursor, seg: &Segment, counts: &mut Counts) -> Result<bool, Short> {
    counts.add(Counter::Lldp);
    let start = cur.offset();
    cur.take::<[u8; 2]>()?;
    Ok(queue(seg, SwitchProto::Lldp, start, 0, false))
}

/// A slow-protocols frame: its subtype decides. True when a LACPDU was queued.
#[inline(always)]
pub fn slow(cur: &mut Cursor, seg: &Segment, counts: &mut Counts) -> Result<bool, Short> {
    let start = cur.offset();
    let subtype = cur.take::<[u8; 1]>()?[0];
    if subtype == SLOW_SUBTYPE_LACP {
        counts.add(Counter::Lacp);
        return Ok(queue(seg, SwitchProto::Lacp, start, 0, false));
    }
    counts.add(Counter::SlowOther);
    Ok(false)
}

/// An 802.3 frame of `length` bytes (its length field): the LLC header, then a BPDU or SNAP.
/// True when a PDU was queued.
#[inline(always)]
pub fn llc(
    cur: &mut Cursor,
    seg: &Segment,
    length: u16,
    counts: &mut Counts,
) -> Result<bool, Short> {
    // The LLC data ends where the length field says (the tail-called program bounds it
    // by the frame).
    let end = cur.offset() + length as u32;
    let h = cur.take::<[u8; 3]>()?;
    if *h == LLC_STP {
        return bpdu(cur, seg, SwitchProto::Stp, end, counts);
    }
    if *h != LLC_SNAP {
        return Ok(false);
    }
    let snap = cur.take::<[u8; 5]>()?;
    if [snap[0], snap[1], snap[2]] != OUI_CISCO {
        return Ok(false);
    }
    match u16::from_be_bytes([snap[3], snap[4]]) {
        SNAP_PID_CDP => {
            counts.add(Counter::Cdp);
            let start = cur.offset();
            // Version, TTL, checksum.
            cur.take::<[u8; 4]>()?;
            Ok(queue(
                seg,
                SwitchProto::Cdp,
                start,
                end.saturating_sub(start),
                false,
            ))
        }
        SNAP_PID_PVST => bpdu(cur, seg, SwitchProto::Pvst, end, counts),
        _ => Ok(false),
    }
}

/// A BPDU: protocol id, version, type; configuration and RST/MST BPDUs carry flags next.
#[inline(always)]
fn bpdu(
    cur: &mut Cursor,
    seg: &Segment,
    proto: SwitchProto,
    end: u32,
    counts: &mut Counts,
) -> Result<bool, Short> {
    counts.add(Counter::Stp);
    let start = cur.offset();
    let len = end.saturating_sub(start);
    let head = cur.take::<[u8; 4]>()?;
    if head[3] == BPDU_TCN {
        counts.add(Counter::StpTcn);
        return Ok(queue(seg, proto, start, len, true));
    }
    let flags = cur.take::<[u8; 1]>()?[0];
    let tc = flags & BPDU_FLAG_TC != 0;
    if tc {
        counts.add(Counter::StpTopologyChange);
    }
    Ok(queue(seg, proto, start, len, tc))
}
