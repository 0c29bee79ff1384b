//! Runs frames through a freshly loaded XDP program and collects what changed.
use std::collections::BTreeMap;

use l2watch::{
    capture::{KernelEvent, Probe, ProbeConfig},
    counts,
};
use monitor_common::XDP_PASS;

use crate::fixtures::Expect;

/// What one or more frames did to a probe.
#[derive(Default)]
pub struct Outcome {
    pub verdicts: Vec<u32>,
    pub counts: BTreeMap<&'static str, u64>,
    pub stats: BTreeMap<&'static str, u64>,
    pub events: Vec<KernelEvent>,
}

impl Outcome {
    pub fn all_passed(&self) -> bool {
        self.verdicts.iter().all(|v| *v == XDP_PASS)
    }

    /// Events in the fixtures' comparable form.
    pub fn expects(&self) -> Vec<Expect> {
        self.events.iter().map(to_expect).collect()
    }

    pub fn count(&self, key: &str) -> u64 {
        self.counts.get(key).copied().unwrap_or(0)
    }

    pub fn stat(&self, key: &str) -> u64 {
        self.stats.get(key).copied().unwrap_or(0)
    }
}

pub fn to_expect(ev: &KernelEvent) -> Expect {
    let vid = |v: u16| (v != monitor_common::NO_VLAN).then_some(v);
    match ev {
        KernelEvent::Arp(a) => Expect::Arp {
            kind: a.header.kind,
            ip: a.ip,
            mac: a.mac,
            outer: vid(a.header.outer_vid),
            inner: vid(a.header.inner_vid),
        },
        KernelEvent::Dhcp(d) => Expect::Dhcp {
            msg_type: d.msg_type,
            outer: vid(d.header.outer_vid),
            inner: vid(d.header.inner_vid),
        },
        KernelEvent::Loop(l) => Expect::Loop {
            src: l.eth_src,
            outer: vid(l.header.outer_vid),
        },
        KernelEvent::Scan(s) => Expect::Scan {
            mac: s.mac,
            outer: vid(s.header.outer_vid),
        },
        KernelEvent::Nd(n) => Expect::Nd {
            kind: n.header.kind,
            ip: n.ip,
            mac: n.mac,
            nonce: (n.flags & monitor_common::nd_flags::NONCE != 0).then_some(n.nonce),
            outer: vid(n.header.outer_vid),
            inner: vid(n.header.inner_vid),
        },
        KernelEvent::RouterAdvert(r) => Expect::Ra {
            src_ip: r.src_ip,
            mac: r.eth_src,
        },
        KernelEvent::Dhcpv6(d) => Expect::Dhcpv6 {
            msg_type: d.msg_type,
        },
        KernelEvent::Switch(w) => Expect::Switch {
            proto: w.proto,
            outer: vid(w.header.outer_vid),
        },
    }
}

/// Loads a fresh program with `cfg`.
pub fn load(cfg: &ProbeConfig) -> Probe {
    Probe::load(cfg).unwrap_or_else(|e| panic!("loading the XDP program failed: {e}"))
}

/// Runs `frames` in order through `probe`; counters are totals since load.
pub fn run(probe: &mut Probe, frames: &[&[u8]]) -> Outcome {
    let mut out = Outcome::default();
    for f in frames {
        out.verdicts.push(
            probe
                .test_run(f)
                .unwrap_or_else(|e| panic!("test run failed: {e}")),
        );
        probe.drain_events(|ev| {
            out.events
                .push(ev.unwrap_or_else(|e| panic!("undecodable event: {e}")))
        });
    }
    let snap = probe.snapshot().expect("snapshot");
    out.counts = counts::totals(&snap);
    out.stats = counts::stats(&snap);
    out
}
