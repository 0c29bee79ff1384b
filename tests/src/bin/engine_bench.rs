//! `cargo xtask bench` (userspace half): the engine's ingest rate on one core, its memory per
//! device, and SQLite write throughput. Each figure comes with a baseline measured in the same
//! run: ingest against decoding plus a bare HashMap insert (the least any device table could
//! do), batched writes against one transaction per row. A report, not a test: targets are
//! printed, not asserted.
use std::{
    alloc::{GlobalAlloc, Layout, System},
    collections::HashMap,
    hint::black_box,
    sync::atomic::{AtomicIsize, Ordering::Relaxed},
    time::Instant,
};

use l2watch::{
    capture::decode,
    decode::observe,
    engine::{Engine, EngineConfig},
    model::SECOND,
    store::Store,
};
use monitor_common::{
    event_kind, nd_binding, ArpEvent, DhcpEvent, EventHeader, NdEvent, DHCP_PAYLOAD_MAX, NO_VLAN,
};

/// Counts live heap bytes, so memory per device is measured rather than estimated.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ROUNDS: usize = 5;

/// Builds `n` units of ring-buffer records.
type Records = fn(u32) -> Vec<Vec<u8>>;

fn header(kind: u8, vlan: u16) -> EventHeader {
    EventHeader {
        kind,
        depth: 1,
        _pad: 0,
        ifindex: 2,
        outer_vid: vlan,
        inner_vid: NO_VLAN,
        _pad2: 0,
        ktime_ns: 0,
    }
}

fn bytes_of<T: Copy>(v: &T) -> Vec<u8> {
    // SAFETY: T is a repr(C) plain-data event struct; we copy its bytes out.
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()) }.to_vec()
}

/// Ring-buffer records of ARP bindings for `n` hosts (spread over 16 VLANs).
fn arp_records(n: u32, kind: u8) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let b = i.to_be_bytes();
            let ev = ArpEvent {
                header: header(kind, 100 + (i % 16) as u16),
                op: 2,
                flags: 0,
                ip: (0x0a00_0000 + i).to_be_bytes(),
                mac: [0x02, 0x42, b[0], b[1], b[2], b[3]],
                old_mac: [0; 6],
                sender_ip: (0x0a00_0000 + i).to_be_bytes(),
                target_ip: [10, 255, 255, 254],
                target_mac: [0; 6],
                eth_src: [0x02, 0x42, b[0], b[1], b[2], b[3]],
                binding: 0,
                _pad: [0; 7],
            };
            bytes_of(&ev)
        })
        .collect()
}

/// Ring-buffer records of `n` IPv6 neighbour events: NA bindings of 2001:db8::`i` held by
/// station `i % 65536` (16 addresses per station at 1M: the neighbour table's capacity), or
/// DAD probes for as many distinct targets.
fn nd_records(n: u32, kind: u8) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let s = (i % 65_536).to_be_bytes();
            let mut ip = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            ip[12..].copy_from_slice(&i.to_be_bytes());
            let mac = [0x02, 0x44, 0, 0, s[2], s[3]];
            let dad = kind == event_kind::DAD_PROBE;
            let ev = NdEvent {
                header: header(kind, 100 + (i % 16) as u16),
                icmp_type: if dad { 135 } else { 136 },
                binding: if dad {
                    nd_binding::DAD
                } else {
                    nd_binding::HOLDER
                },
                flags: if dad {
                    monitor_common::nd_flags::NONCE
                } else {
                    0
                },
                _pad: 0,
                ip,
                mac,
                old_mac: [0; 6],
                eth_src: mac,
                nonce: [s[0], s[1], s[2], s[3], 1, 2],
                src_ip: if dad { [0; 16] } else { ip },
                dst_ip: [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                _pad2: [0; 4],
            };
            bytes_of(&ev)
        })
        .collect()
}

fn bootp(op: u8, msg_type: u8, xid: u32, chaddr: [u8; 6], yiaddr: [u8; 4], opts: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 236];
    p[0] = op;
    p[1] = 1;
    p[2] = 6;
    p[4..8].copy_from_slice(&xid.to_be_bytes());
    p[16..20].copy_from_slice(&yiaddr);
    p[28..34].copy_from_slice(&chaddr);
    p.extend_from_slice(&monitor_common::proto::DHCP_MAGIC);
    p.extend_from_slice(&[53, 1, msg_type]);
    p.extend_from_slice(opts);
    p.push(255);
    p
}

/// Ring-buffer records of full DORA exchanges for `clients` clients with one server.
fn dhcp_records(clients: u32) -> Vec<Vec<u8>> {
    let server = [10, 0, 0, 1];
    let mut out = Vec::new();
    for i in 0..clients {
        let b = i.to_be_bytes();
        let mac = [0x02, 0x43, b[0], b[1], b[2], b[3]];
        let yi = (0x0a01_0000 + i).to_be_bytes();
        let name = [12, 6, b'n', b'o', b'd', b'e', b'0' + (i % 10) as u8, b'x'];
        let srv = [
            54, 4, 10, 0, 0, 1, 51, 4, 0, 0, 0x0e, 0x10, 1, 4, 255, 255, 0, 0,
        ];
        let msgs = [
            (1, bootp(1, 1, i, mac, [0; 4], &name), mac, [0; 4]),
            (
                2,
                bootp(2, 2, i, mac, yi, &srv),
                [0x02, 0, 0, 0, 0, 1],
                server,
            ),
            (3, bootp(1, 3, i, mac, [0; 4], &name), mac, [0; 4]),
            (
                5,
                bootp(2, 5, i, mac, yi, &srv),
                [0x02, 0, 0, 0, 0, 1],
                server,
            ),
        ];
        for (t, payload, src, src_ip) in msgs {
            let mut ev = DhcpEvent {
                header: header(event_kind::DHCP, 100),
                eth_src: src,
                eth_dst: [0xff; 6],
                src_ip,
                dst_ip: [255; 4],
                src_port: if t % 2 == 0 { 67 } else { 68 },
                dst_port: if t % 2 == 0 { 68 } else { 67 },
                msg_type: t,
                _pad: 0,
                bootp_len: payload.len() as u16,
                payload_len: payload.len() as u16,
                _pad2: [0; 10],
                payload: [0; DHCP_PAYLOAD_MAX],
            };
            ev.payload[..payload.len()].copy_from_slice(&payload);
            out.push(bytes_of(&ev));
        }
    }
    out
}

fn engine(capacity: usize) -> Engine {
    let mut cfg = EngineConfig::default();
    cfg.devices.capacity = capacity;
    Engine::new(cfg)
}

/// Events/s through decode, observe and the engine; the clock advances 1 µs per event.
fn ingest(e: &mut Engine, records: &[Vec<u8>]) -> f64 {
    let t = Instant::now();
    for (i, r) in records.iter().enumerate() {
        let ev = decode(r).expect("decodes");
        let obs = observe(&ev, iface()).expect("observes");
        black_box(e.observe(&obs, SECOND + i as u64 * 1_000));
    }
    records.len() as f64 / t.elapsed().as_secs_f64()
}

/// The baseline: the same decoding, then one HashMap insert per event.
fn ingest_baseline(records: &[Vec<u8>]) -> f64 {
    use l2watch::model::Observation;
    let mut m: HashMap<(l2watch::model::Iface, u16, std::net::IpAddr), [u8; 6]> = HashMap::new();
    let t = Instant::now();
    for r in records {
        let ev = decode(r).expect("decodes");
        match observe(&ev, iface()) {
            Ok(Observation::Arp { seg, ip, mac, .. }) => {
                m.insert((seg.iface, seg.outer_vlan.unwrap_or(0), ip.into()), mac.0);
            }
            Ok(
                Observation::Neighbour { seg, ip, mac, .. }
                | Observation::DadProbe {
                    seg,
                    target: ip,
                    mac,
                    ..
                },
            ) => {
                m.insert((seg.iface, seg.outer_vlan.unwrap_or(0), ip.into()), mac.0);
            }
            _ => {
                black_box(&ev);
            }
        }
    }
    black_box(&m);
    records.len() as f64 / t.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    println!("## Memory per device (whole engine: table, per-MAC index, detector state)\n");
    println!(
        "Live heap bytes requested (a counting allocator), malloc's own overhead not included; \
         the table's capacity equals the device count, so its index is fully reserved.\n"
    );
    println!("| devices, learnt | heap bytes/device | target |");
    println!("|---:|---:|---|");
    let cases: [(&str, u32, Records); 3] = [
        ("100000, by ARP", 100_000, |n| {
            arp_records(n, event_kind::ARP_NEW)
        }),
        ("1000000, by ARP", 1_000_000, |n| {
            arp_records(n, event_kind::ARP_NEW)
        }),
        ("100000, by DHCP (host name, lease)", 100_000, dhcp_records),
    ];
    for (label, n, records) in cases {
        // Observations are built first so only the engine's growth is measured.
        let obs: Vec<_> = records(n)
            .iter()
            .map(|r| observe(&decode(r).expect("decodes"), iface()).expect("observes"))
            .collect();
        let heap0 = LIVE.load(Relaxed);
        let mut e = engine(n as usize);
        for (i, o) in obs.iter().enumerate() {
            e.observe(o, SECOND + i as u64);
        }
        let heap = (LIVE.load(Relaxed) - heap0) as f64 / n as f64;
        assert_eq!(e.table().len(), n as usize);
        let verdict = if heap <= 300.0 { "met" } else { "**missed**" };
        println!("| {label} | {heap:.0} | <= 300: {verdict} |");
        drop(e);
    }
    println!();
    println!("## Engine (one core, release build)\n");
    println!("| workload | events/s: engine | events/s: baseline | time ratio | target |");
    println!("|---|---:|---:|---:|---|");

    let n = 1_000_000;
    let new = arp_records(n, event_kind::ARP_NEW);
    let refresh = arp_records(100_000, event_kind::ARP_REFRESH);
    let dhcp = dhcp_records(50_000);
    let nd = nd_records(n, event_kind::ND_NEW);
    let dad = nd_records(n, event_kind::DAD_PROBE);
    let mut rows: Vec<(&str, Vec<f64>, Vec<f64>, &str)> = vec![
        (
            "ARP: 1M new bindings, table of 1M",
            vec![],
            vec![],
            ">= 1,000,000/s",
        ),
        (
            "ARP: refreshes of 100k known bindings",
            vec![],
            vec![],
            ">= 1,000,000/s",
        ),
        (
            "DHCP: DORA of 50k clients (200k messages), transactions on",
            vec![],
            vec![],
            ">= 500,000/s",
        ),
        (
            "ND: 1M new IPv6 bindings (NA), 65,536 stations x 16 addresses",
            vec![],
            vec![],
            ">= 1,000,000/s",
        ),
        (
            "ND: 1M DAD probes, distinct targets",
            vec![],
            vec![],
            ">= 1,000,000/s",
        ),
    ];
    for _ in 0..ROUNDS {
        let mut e = engine(n as usize);
        rows[0].1.push(ingest(&mut e, &new));
        rows[0].2.push(ingest_baseline(&new));
        let mut e = engine(200_000);
        ingest(&mut e, &refresh);
        rows[1].1.push(ingest(&mut e, &refresh));
        rows[1].2.push(ingest_baseline(&refresh));
        let mut e = engine(200_000);
        rows[2].1.push(ingest(&mut e, &dhcp));
        rows[2].2.push(ingest_baseline(&dhcp));
        let mut e = engine(1_000);
        rows[3].1.push(ingest(&mut e, &nd));
        rows[3].2.push(ingest_baseline(&nd));
        let mut e = engine(1_000);
        rows[4].1.push(ingest(&mut e, &dad));
        rows[4].2.push(ingest_baseline(&dad));
    }
    for (name, eng, base, target) in rows {
        let (eng, base) = (median(eng), median(base));
        // The figure after ">= ", commas left out.
        let want: Option<f64> = target
            .strip_prefix(">= ")
            .and_then(|t| t.split('/').next())
            .and_then(|n| n.replace(',', "").parse().ok());
        let verdict = match want {
            None => String::from("-"),
            Some(w) if eng >= w => format!("{target}: met"),
            Some(_) => format!("{target}: **missed**"),
        };
        println!(
            "| {name} | {eng:.0} | {base:.0} | {:.2}x | {verdict} |",
            base / eng
        );
    }
    drop(new);
    drop(refresh);
    drop(dhcp);
    drop(nd);
    drop(dad);

    println!("\n## SQLite writes (WAL, synchronous=NORMAL, one file in a temp dir)\n");
    println!("| rows | batched rows/s (1 transaction per 10k) | baseline rows/s (1 per row) | speed-up |");
    println!("|---:|---:|---:|---:|");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut e = engine(100_000).with_journal(200_000);
    for (i, r) in arp_records(100_000, event_kind::ARP_NEW).iter().enumerate() {
        e.observe(
            &observe(&decode(r).unwrap(), iface()).unwrap(),
            SECOND + i as u64,
        );
    }
    let all = e.take_changes();
    let rows = all.devices.len() + all.events.len();
    let (mut store, _) = Store::open(&dir.path().join("batched.db")).expect("open");
    let t = Instant::now();
    for (d, ev) in all.devices.chunks(5_000).zip(all.events.chunks(5_000)) {
        let batch = l2watch::engine::Changes {
            devices: d.to_vec(),
            events: ev.to_vec(),
            ..Default::default()
        };
        store.write(&batch).expect("write");
    }
    let batched = rows as f64 / t.elapsed().as_secs_f64();
    let (mut store, _) = Store::open(&dir.path().join("per-row.db")).expect("open");
    let sample = 5_000;
    let t = Instant::now();
    for (d, ev) in all.devices.iter().zip(&all.events).take(sample / 2) {
        for batch in [
            l2watch::engine::Changes {
                devices: vec![d.clone()],
                ..Default::default()
            },
            l2watch::engine::Changes {
                events: vec![ev.clone()],
                ..Default::default()
            },
        ] {
            store.write(&batch).expect("write");
        }
    }
    let per_row = sample as f64 / t.elapsed().as_secs_f64().max(1e-9);
    println!(
        "| {rows} (devices + events) | {batched:.0} | {per_row:.0} | {:.0}x |",
        batched / per_row
    );
}

/// The interface every benchmark event is seen on.
fn iface() -> l2watch::model::Iface {
    l2watch::model::Iface::named("bench0")
}
