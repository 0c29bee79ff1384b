//! ARP: counts by opcode and kind (gratuitous, RFC 5227 probe and announcement), feeds the
//! scan detector, and reports IP -> MAC bindings that are new, changed or due for a refresh;
//! exact repeats are suppressed here, so an ARP storm of one binding costs the agent nothing.
use aya_ebpf::programs::XdpContext;
use aya_log_ebpf::debug;
use monitor_common::{
    arp_flags, binding_kind, config_flags,
    proto::{ARP_REPLY, ARP_REQUEST, ETH_P_IP},
    ArpEvent, BindingKey, BindingRun, BindingValue, Bucket, Config, Counter, EventKind, Stat,
};
use network_types::{arp::ArpHdr, eth::EthHdr};

use crate::{
    cursor::{Cursor, Header, Short},
    maps::{bump_stat, config, per_cpu, BINDINGS, BINDING_RUN, EVENTS, PENDING_ARP},
    rate::take_token,
    scan,
    segment::{Counts, Segment},
};

/// Fixed part of an ARP header (htype, ptype, hlen, plen, oper).
#[repr(C)]
struct ArpFixed {
    htype: [u8; 2],
    ptype: [u8; 2],
    hlen: u8,
    plen: u8,
    oper: [u8; 2],
}

// SAFETY: repr(C) byte arrays, alignment 1.
unsafe impl Header for ArpFixed {}

/// Malformed rule for ARP: the 8-byte fixed header decides the opcode; without it the frame
/// is ARP and malformed. An Ethernet/IPv4 ARP must then carry its 20 address bytes.
#[inline(always)]
pub fn classify(
    ctx: &XdpContext,
    cur: &mut Cursor,
    seg: &Segment,
    eth: &EthHdr,
    counts: &mut Counts,
) -> Result<(), Short> {
    let start = cur.mark();
    let fixed = cur.take::<ArpFixed>()?;
    let op = u16::from_be_bytes(fixed.oper);
    match op {
        ARP_REQUEST => counts.add(Counter::ArpRequest),
        ARP_REPLY => counts.add(Counter::ArpReply),
        _ => counts.add(Counter::ArpOtherOpcode),
    }
    if u16::from_be_bytes(fixed.htype) != 1
        || u16::from_be_bytes(fixed.ptype) != ETH_P_IP
        || fixed.hlen != 6
        || fixed.plen != 4
    {
        bump_stat(Stat::ArpNotEthernetIpv4);
        return Ok(());
    }
    cur.reset(start);
    let arp = cur.take::<ArpHdr>()?;
    let spa = arp.spa;
    let tpa = arp.tpa;
    let tha_zero = arp.tha == [0u8; 6];
    let mut flags = 0u16;
    if spa == tpa {
        counts.add(Counter::ArpGratuitous);
        flags |= arp_flags::GRATUITOUS;
        if op == ARP_REQUEST && tha_zero {
            counts.add(Counter::ArpAnnouncement);
            flags |= arp_flags::ANNOUNCEMENT;
        }
    }
    let spa_zero = spa == [0u8; 4];
    if op == ARP_REQUEST && spa_zero && tha_zero {
        counts.add(Counter::ArpProbe);
        flags |= arp_flags::PROBE;
    }

    let Some(cfg) = config() else { return Ok(()) };
    if op == ARP_REQUEST && spa != tpa {
        scan::check(seg, arp, cfg, counts);
    }
    if cfg.flags & config_flags::ARP_EVENTS == 0 {
        return Ok(());
    }
    let b = ArpFrame {
        eth,
        arp,
        op,
        flags,
    };
    if !spa_zero {
        binding(ctx, seg, &b, binding_kind::SENDER, spa, cfg, counts);
    } else if flags & arp_flags::PROBE != 0 {
        binding(ctx, seg, &b, binding_kind::PROBE, tpa, cfg, counts);
    }
    Ok(())
}

/// The parts of an ARP frame an event is built from.
struct ArpFrame<'a> {
    eth: &'a EthHdr,
    arp: &'a ArpHdr,
    op: u16,
    flags: u16,
}

/// Reports `ip` -> sender MAC if it is new, changed, or due for a refresh; else suppresses it.
/// An event the token bucket or the ring buffer holds back goes to `PENDING_ARP`.
#[inline(always)]
fn binding(
    ctx: &XdpContext,
    seg: &Segment,
    b: &ArpFrame,
    binding: u8,
    ip: [u8; 4],
    cfg: &Config,
    counts: &mut Counts,
) {
    let key = BindingKey {
        ifindex: seg.key.ifindex,
        outer_vid: seg.key.outer_vid,
        inner_vid: seg.key.inner_vid,
        ip,
        kind: binding,
        _pad: 0,
        _pad2: 0,
    };
    let mac = b.arp.sha;
    let now = seg.now();
    // The same binding again on this CPU within the same clock tick gets the same answer
    // without the shared map: a storm of one frame costs no hash lookup, and a change another
    // CPU saw is still seen, at most one tick late. (Refresh 0 reports every frame: no run.)
    let mut run = per_cpu(&BINDING_RUN);
    if let Some(run) = run.as_deref() {
        if run.at_ns == now && cfg.refresh_ns != 0 && run.key == key && run.mac == mac {
            bump_stat(Stat::ArpSuppressed);
            return;
        }
    }
    let mut changed_from = None;
    // SAFETY: the value is plain data; a concurrent update can at worst give a stale MAC,
    // which only causes one extra or one missed refresh.
    let kind = match unsafe { BINDINGS.get(key) } {
        None => EventKind::ArpNew,
        Some(prev) if prev.mac != mac => {
            changed_from = Some(prev.mac);
            EventKind::ArpChanged
        }
        Some(prev) => {
            if now.wrapping_sub(prev.reported_ns) < cfg.refresh_ns {
                bump_stat(Stat::ArpSuppressed);
                note_run(run.as_deref_mut(), &key, mac, now);
                return;
            }
            EventKind::ArpRefresh
        }
    };
    if kind != EventKind::ArpRefresh {
        counts.add(Counter::ArpBindingsNew);
    }
    let ev = ArpEvent {
        header: seg.header(kind, now),
        op: b.op,
        flags: b.flags,
        ip,
        mac,
        old_mac: changed_from.unwrap_or([0; 6]),
        sender_ip: b.arp.spa,
        target_ip: b.arp.tpa,
        target_mac: b.arp.tha,
        eth_src: b.eth.src_addr,
        binding,
        _pad: [0; 7],
    };
    if !take_token(Bucket::Arp, cfg, now) {
        bump_stat(Stat::ArpRateLimited);
        if defer(&key, &ev, now) {
            note_run(run.as_deref_mut(), &key, mac, now);
        }
        return;
    }
    if EVENTS.output::<ArpEvent>(&ev, 0).is_err() {
        bump_stat(Stat::ArpRingbufFull);
        if defer(&key, &ev, now) {
            note_run(run.as_deref_mut(), &key, mac, now);
        }
        return;
    }
    note_run(run, &key, mac, now);
    bump_stat(Stat::ArpEventsSent);
    if kind == EventKind::ArpChanged {
        debug!(
            ctx,
            "binding changed on ifindex {}: {:i} now at {:mac}",
            seg.key.ifindex,
            u32::from_be_bytes(ip),
            mac
        );
    }
    remember(&key, mac, now);
}

/// Parks a held-back ARP event for the agent's next drain (the newest per binding wins);
/// false when the pending map is full (then the binding is not remembered: it is retried).
#[inline(always)]
fn defer(key: &BindingKey, ev: &ArpEvent, now: u64) -> bool {
    if PENDING_ARP.insert(key, ev, 0).is_ok() {
        bump_stat(Stat::ArpDeferred);
        remember(key, ev.mac, now);
        true
    } else {
        bump_stat(Stat::ArpPendingFull);
        false
    }
}

/// Records the binding this CPU just decided on, reported or suppressed.
#[inline(always)]
fn note_run(run: Option<&mut BindingRun>, key: &BindingKey, mac: [u8; 6], now: u64) {
    if let Some(run) = run {
        run.key = *key;
        run.mac = mac;
        run.at_ns = now;
    }
}

/// Only a reported (sent or parked) binding is remembered, so a lost event is retried on the
/// next frame.
#[inline(always)]
fn remember(key: &BindingKey, mac: [u8; 6], now: u64) {
    let value = BindingValue {
        mac,
        _pad: [0; 2],
        reported_ns: now,
    };
    if BINDINGS.insert(key, value, 0).is_err() {
        bump_stat(Stat::BindingMapFull);
    }
}
