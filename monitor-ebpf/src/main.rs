//! l2watch XDP classifier: parses Ethernet and stacked VLAN tags, counts ARP, DHCPv4, IPv6
//! neighbour discovery and DHCPv6 per segment in per-CPU maps, and pushes only state changes
//! (bindings, DHCP and DHCPv6 messages, DAD probes, changed router advertisements) through a
//! ring buffer. What the
//! token bucket or a full ring buffer holds back waits in the pending maps for the agent to
//! drain, so a storm delays state changes but does not lose them. It also spots frames going
//! round a switching loop and ARP scanners. It always returns XDP_PASS: a monitor never drops
//! or alters traffic.
//!
//! One module per concern: `maps` (every map), `cursor` (the one bounds-checked reader),
//! `segment` (slots, counters, the clock, event headers), `vlan`, `arp`, `scan`, `ipv4`,
//! `dhcp`, `ipv6`, `nd`, `dhcpv6`, `switch` (LLDP, CDP, BPDUs, LACP), `l2_loop` and `rate`
//! (token buckets). Events that need more than a few header reads are built in tail-called
//! programs, each verified once on its own: `ip6_events` and `switch_events`.
#![no_std]
#![no_main]

mod arp;
mod cursor;
mod dhcp;
mod dhcpv6;
mod ip6_events;
mod ipv4;
mod ipv6;
mod l2_loop;
mod maps;
mod nd;
mod rate;
mod scan;
mod segment;
mod switch;
mod switch_events;
mod vlan;

use aya_ebpf::{bindings::xdp_action::XDP_PASS, macros::xdp, programs::XdpContext};
use monitor_common::{
    jump,
    proto::{ETH_P_802_3_MIN, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, ETH_P_LLDP, ETH_P_SLOW},
    Counter,
};

use crate::{cursor::Cursor, segment::Segment, vlan::Walk};

#[xdp]
pub fn l2watch(ctx: XdpContext) -> u32 {
    if let Some(slot) = classify(&ctx) {
        // SAFETY: the slot holds an XDP program of this object (the loader puts it there);
        // on success this does not return, on failure (an empty slot) the frame just passes.
        unsafe { maps::JUMPS.tail_call(&ctx, slot) };
    }
    XDP_PASS
}

/// Turns the IPv6 job the classifier queued into events (see `ip6_events`).
#[xdp]
pub fn l2watch_ip6(ctx: XdpContext) -> u32 {
    ip6_events::run(&ctx);
    XDP_PASS
}

/// Turns the switch PDU the classifier queued into an event if it changed (see
/// `switch_events`).
#[xdp]
pub fn l2watch_switch(ctx: XdpContext) -> u32 {
    switch_events::run(&ctx);
    XDP_PASS
}

/// Counts the frame in its segment and classifies it. A header cut short anywhere is one
/// outcome, [`cursor::Short`], counted here as malformed and nowhere else. Returns the
/// `JUMPS` slot to tail-call when an event job was queued.
#[inline(always)]
fn classify(ctx: &XdpContext) -> Option<u32> {
    let mut seg = Segment::new(ctx.ingress_ifindex() as u32);
    let mut cur = Cursor::new(ctx);
    let walked = vlan::walk(&mut cur, &mut seg);
    let mut counts = segment::counters(&seg)?;
    let mut queued = None;
    counts.add(Counter::Frames);
    counts.add(Counter::for_depth(seg.depth));
    if walked.group_destination() {
        counts.add(Counter::Broadcast);
        if let (Some(eth), Walk::EtherType(t)) = (walked.eth, walked.end) {
            l2_loop::check(ctx, &seg, eth, t, &mut counts);
        }
    }
    let parsed = match (walked.eth, walked.end) {
        (_, Walk::Truncated) | (None, _) => Err(cursor::Short),
        (Some(_), Walk::TooDeep) => {
            counts.add(Counter::Other);
            Ok(())
        }
        (Some(eth), Walk::EtherType(ETH_P_ARP)) => {
            counts.add(Counter::Arp);
            arp::classify(ctx, &mut cur, &seg, eth, &mut counts)
        }
        (Some(eth), Walk::EtherType(ETH_P_IP)) => {
            counts.add(Counter::Ipv4);
            let mut dhcp = false;
            let r = ipv4::classify(ctx, &mut cur, &seg, eth, &mut counts, &mut dhcp);
            if !dhcp {
                counts.add(Counter::Other);
            }
            r
        }
        (Some(_), Walk::EtherType(ETH_P_IPV6)) => {
            // Neither ARP nor DHCPv4: "other", and counted on its own.
            counts.add(Counter::Other);
            let link = ipv6::Link {
                seg: &seg,
                ip_off: cur.offset(),
                queued: core::cell::Cell::new(false),
            };
            let r = ipv6::classify(ctx, &mut cur, &mut counts, Some(&link));
            if link.queued.get() {
                queued = Some(jump::IP6_EVENTS);
            }
            r
        }
        (Some(_), Walk::EtherType(ETH_P_LLDP)) => {
            counts.add(Counter::Other);
            switch::lldp(&mut cur, &seg, &mut counts).map(|q| {
                if q {
                    queued = Some(jump::SWITCH_EVENTS);
                }
            })
        }
        (Some(_), Walk::EtherType(ETH_P_SLOW)) => {
            counts.add(Counter::Other);
            switch::slow(&mut cur, &seg, &mut counts).map(|q| {
                if q {
                    queued = Some(jump::SWITCH_EVENTS);
                }
            })
        }
        (Some(_), Walk::EtherType(t)) if t < ETH_P_802_3_MIN => {
            counts.add(Counter::Other);
            switch::llc(&mut cur, &seg, t, &mut counts).map(|q| {
                if q {
                    queued = Some(jump::SWITCH_EVENTS);
                }
            })
        }
        (Some(_), Walk::EtherType(_)) => {
            counts.add(Counter::Other);
            Ok(())
        }
    };
    if parsed.is_err() {
        counts.add(Counter::Malformed);
    }
    queued
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
