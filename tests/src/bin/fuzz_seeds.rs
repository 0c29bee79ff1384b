//! Seeds the fuzz targets from the shared captures: each frame's protocol payload goes to the
//! corpus of the decoder that reads it (DHCPv4, RA, DHCPv6, LLDP, CDP, BPDUs, LACP), each
//! capture file whole to the pcap target, and the shipped configs to the config targets.
//!
//! Usage: l2watch-fuzz-seeds CORPUS_DIR FUZZ_CORPUS_DIR
use std::{collections::BTreeMap, path::Path};

/// The payload a decoder reads, by target, if the frame carries one.
fn classify(frame: &[u8]) -> Option<(&'static str, &[u8])> {
    let mut off = 12;
    let mut ty = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    // Up to four VLAN tags.
    for _ in 0..4 {
        if !matches!(ty, 0x8100 | 0x88a8 | 0x9100) {
            break;
        }
        off += 4;
        ty = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    }
    let p = frame.get(off + 2..)?;
    match ty {
        0x88cc => Some(("lldp", p)),
        0x8809 if p.first() == Some(&1) => Some(("lacp", p)),
        0x0800 => {
            let ihl = ((*p.first()? & 0x0f) as usize) * 4;
            if *p.get(9)? != 17 {
                return None;
            }
            let udp = p.get(ihl..)?;
            let dport = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
            matches!(dport, 67 | 68).then(|| ("dhcp", udp.get(8..).unwrap_or_default()))
        }
        0x86dd => {
            let next = *p.get(6)?;
            let l4 = p.get(40..)?;
            match next {
                58 if l4.first() == Some(&134) => Some(("ra", l4)),
                17 => {
                    let dport = u16::from_be_bytes([*l4.get(2)?, *l4.get(3)?]);
                    matches!(dport, 546 | 547).then(|| ("dhcpv6", l4.get(8..).unwrap_or_default()))
                }
                _ => None,
            }
        }
        // 802.3 length field: LLC. STP (DSAP 0x42) or SNAP (CDP, PVST+).
        len if len <= 1500 => {
            if p.starts_with(&[0x42, 0x42, 0x03]) {
                return Some(("stp", &p[3..]));
            }
            if p.starts_with(&[0xaa, 0xaa, 0x03]) && p.len() > 8 {
                let (oui_pid, rest) = p[3..].split_at(5);
                return match oui_pid {
                    [0x00, 0x00, 0x0c, 0x20, 0x00] => Some(("cdp", rest)),
                    [0x00, 0x00, 0x0c, 0x01, 0x0b] => Some(("stp", rest)),
                    _ => None,
                };
            }
            None
        }
        _ => None,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(corpus), Some(out)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: l2watch-fuzz-seeds CORPUS_DIR FUZZ_CORPUS_DIR");
        std::process::exit(2);
    };
    let out = Path::new(out);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut write = |target: &'static str, name: String, bytes: &[u8]| {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        std::fs::write(dir.join(name), bytes).expect("write seed");
        *counts.entry(target).or_default() += 1;
    };
    let mut files: Vec<_> = std::fs::read_dir(corpus)
        .unwrap_or_else(|e| panic!("{corpus}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    files.sort();
    for f in &files {
        let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(f).unwrap();
        // Whole captures seed the reader; the biggest are cut so runs stay fast.
        write("pcap", stem.clone(), &bytes[..bytes.len().min(64 * 1024)]);
        let mut seeds = Vec::new();
        let _ = l2watch::pcap::read_capture(f, |fr| {
            if let Some((t, p)) = classify(fr.data) {
                seeds.push((t, p.to_vec()));
            }
        });
        // A few per protocol per file: the variety is in the files, not in repeats.
        let mut per: BTreeMap<&str, usize> = BTreeMap::new();
        for (t, p) in seeds {
            let n = per.entry(t).or_default();
            if *n < 16 {
                write(t, format!("{stem}-{n}"), &p);
                *n += 1;
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let toml = std::fs::read(root.join("deploy/l2watch.toml")).expect("deploy/l2watch.toml");
    write("config", "deploy-l2watch.toml".into(), &toml);
    write(
        "web_config",
        "web-config.yml".into(),
        b"tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  min_version: TLS12\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  prometheus: $2y$10$X0lQ3v8t1gD7m5w0F3Y6uO1C2h1qQ9v2m4tZ6Z7t0q8W8p5k5Lx1a\n",
    );
    for (t, n) in &counts {
        println!("{t}: {n} seeds");
    }
}
