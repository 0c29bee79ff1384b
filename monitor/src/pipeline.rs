//! The one path from a kernel event to findings and the store. Live capture (the ring buffer
//! and the pending maps) and replay (a capture through BPF_PROG_TEST_RUN) are two sources of
//! it: each hands over events with the interface they came in on and when they were seen, and
//! moves the clock. The pipeline decodes, updates the engine, closes quiet findings once per
//! second of that clock, logs each finding once, and hands changes to the store writer once
//! per flush interval of that clock. Nothing here reads the time.
use std::{collections::BTreeMap, net::Ipv4Addr, time::Duration};

use monitor_common::event_kind;
use tracing::{debug, warn};

use crate::{
    capture::{KernelEvent, Mac},
    decode::{observe, segment, ObserveError},
    detect::FindingEvent,
    engine::Engine,
    model::{Iface, Nanos, SECOND},
    store::Writer,
};

/// History events that may wait for the writer between two flushes (one second by default):
/// a 65,535-station burst fits; past it events are dropped and counted.
pub const JOURNAL_EVENTS: usize = 100_000;

/// How often quiet findings are closed, on the source's clock.
pub const TICK: Nanos = SECOND;

pub struct Pipeline {
    next_tick: Option<Nanos>,
    flush_every: Nanos,
    next_flush: Option<Nanos>,
    writer: Option<Writer>,
    /// Events that did not become observations, by reason.
    undecodable: BTreeMap<&'static str, u64>,
}

impl Pipeline {
    /// A pipeline writing to `writer` (if any) every `flush_every` of its clock.
    pub fn new(writer: Option<Writer>, flush_every: Duration) -> Pipeline {
        Pipeline {
            next_tick: None,
            flush_every: (flush_every.as_nanos() as Nanos).max(1),
            next_flush: None,
            writer,
            undecodable: BTreeMap::new(),
        }
    }

    /// One kernel event, seen on `iface` at `at`. `held_back` marks events drained from the
    /// kernel's pending maps: late, and not allowed to undo something newer. Returns false
    /// for an event that did not decode (it is counted under its reason and logged).
    pub fn feed(
        &mut self,
        engine: &mut Engine,
        ev: &KernelEvent,
        iface: Iface,
        at: Nanos,
        held_back: bool,
    ) -> bool {
        if tracing::enabled!(target: "l2watch::event", tracing::Level::DEBUG) {
            log_event(ev, iface);
        }
        let obs = match observe(ev, iface) {
            Ok(obs) => obs,
            Err(e) => {
                let reason = match &e {
                    ObserveError::Dhcp(d) => d.kind(),
                    ObserveError::Ra(e) => e.kind(),
                    ObserveError::Dhcpv6(e) => e.kind(),
                    ObserveError::Lldp(_) => "lldp",
                    ObserveError::Cdp(_) => "cdp",
                    ObserveError::Stp(_) => "bpdu",
                    ObserveError::Lacp(_) => "lacp",
                    ObserveError::Kind(_) => "unknown_kind",
                };
                *self.undecodable.entry(reason).or_default() += 1;
                warn!(error = %e, "event not understood");
                return false;
            }
        };
        let found = if held_back {
            engine.observe_held_back(&obs, at)
        } else {
            engine.observe(&obs, at)
        };
        found.iter().for_each(log_finding);
        true
    }

    /// Whether [`Pipeline::advance`] has anything to do at `now` (so a live source can skip
    /// taking the engine lock).
    pub fn due(&self, now: Nanos) -> bool {
        self.next_tick.is_none_or(|t| now >= t)
            || (self.writer.is_some() && self.next_flush.is_none_or(|t| now >= t))
    }

    /// The source's clock is at `now`: closes quiet findings once per [`TICK`] and hands the
    /// engine's changes to the store once per flush interval.
    pub fn advance(&mut self, engine: &mut Engine, now: Nanos) {
        match self.next_tick {
            None => self.next_tick = Some(now + TICK),
            Some(t) if now >= t => {
                engine.tick(now).iter().for_each(log_finding);
                self.next_tick = Some(now + TICK);
            }
            Some(_) => {}
        }
        if let Some(w) = &self.writer {
            match self.next_flush {
                None => self.next_flush = Some(now + self.flush_every),
                Some(t) if now >= t => {
                    w.flush(|| engine.take_changes());
                    self.next_flush = Some(now + self.flush_every);
                }
                Some(_) => {}
            }
        }
    }

    /// Events that did not decode, by reason.
    pub fn undecodable(&self) -> &BTreeMap<&'static str, u64> {
        &self.undecodable
    }

    /// Writes what is left and waits for the store to finish.
    pub fn finish(self, engine: &mut Engine) {
        if let Some(w) = self.writer {
            w.finish_blocking(engine.take_changes());
        }
    }
}

/// One structured line per finding opened or closed: easy to grep and to ship to syslog.
fn log_finding(ev: &FindingEvent) {
    let (state, f) = match ev {
        FindingEvent::Opened(f) => ("opened", f),
        FindingEvent::Closed(f) => ("closed", f),
    };
    warn!(
        target: "l2watch::finding",
        state,
        kind = f.kind.name(),
        iface = %f.seg.iface,
        vlan = %f.vlan,
        subject = %f.subject,
        packets = f.packets,
        evidence = %f.evidence,
        "finding {state}"
    );
}

fn log_event(ev: &KernelEvent, iface: Iface) {
    match ev {
        KernelEvent::Arp(a) => {
            let old = (a.header.kind == event_kind::ARP_CHANGED).then_some(Mac(a.old_mac));
            debug!(
                target: "l2watch::event",
                kind = event_kind::name(a.header.kind),
                iface = %iface,
                vlan = %segment(&a.header, iface).vlan_label(),
                tags = a.header.depth,
                ip = %Ipv4Addr::from(a.ip),
                mac = %Mac(a.mac),
                old_mac = old.map(|m| m.to_string()),
                op = a.op,
                "arp binding"
            );
        }
        KernelEvent::Dhcp(d) => {
            debug!(
                target: "l2watch::event",
                kind = "dhcp",
                iface = %iface,
                vlan = %segment(&d.header, iface).vlan_label(),
                tags = d.header.depth,
                msg_type = d.msg_type,
                src_mac = %Mac(d.eth_src),
                src_ip = %Ipv4Addr::from(d.src_ip),
                dst_ip = %Ipv4Addr::from(d.dst_ip),
                bootp_len = d.bootp_len,
                "dhcp message"
            );
        }
        KernelEvent::Loop(l) => debug!(
            target: "l2watch::event",
            kind = "loop",
            iface = %iface,
            vlan = %segment(&l.header, iface).vlan_label(),
            src_mac = %Mac(l.eth_src),
            dst_mac = %Mac(l.eth_dst),
            count = l.count,
            "frame repeating"
        ),
        KernelEvent::Nd(n) => debug!(
            target: "l2watch::event",
            kind = event_kind::name(n.header.kind),
            iface = %iface,
            vlan = %segment(&n.header, iface).vlan_label(),
            ip = %std::net::Ipv6Addr::from(n.ip),
            mac = %Mac(n.mac),
            "ipv6 neighbour"
        ),
        KernelEvent::RouterAdvert(r) => debug!(
            target: "l2watch::event",
            kind = "router_advert",
            iface = %iface,
            vlan = %segment(&r.header, iface).vlan_label(),
            src_mac = %Mac(r.eth_src),
            src_ip = %std::net::Ipv6Addr::from(r.src_ip),
            "router advertisement"
        ),
        KernelEvent::Dhcpv6(d) => debug!(
            target: "l2watch::event",
            kind = "dhcpv6",
            iface = %iface,
            vlan = %segment(&d.header, iface).vlan_label(),
            msg_type = d.msg_type,
            src_mac = %Mac(d.eth_src),
            src_ip = %std::net::Ipv6Addr::from(d.src_ip),
            "dhcpv6 message"
        ),
        KernelEvent::Switch(w) => debug!(
            target: "l2watch::event",
            kind = "switch",
            iface = %iface,
            vlan = %segment(&w.header, iface).vlan_label(),
            protocol = monitor_common::SwitchProto::from_code(w.proto).map_or("unknown", |p| p.name()),
            src_mac = %Mac(w.eth_src),
            length = w.wire_len,
            "switch pdu"
        ),
        KernelEvent::Scan(sc) => debug!(
            target: "l2watch::event",
            kind = "scan",
            iface = %iface,
            vlan = %segment(&sc.header, iface).vlan_label(),
            mac = %Mac(sc.mac),
            targets = sc.targets,
            "arp scan"
        ),
    }
}
