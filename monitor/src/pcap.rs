//! Reads pcap and pcapng captures (pcap-parser) into Ethernet frames with nanosecond
//! timestamps. Errors carry the byte offset of the block that failed, and every frame read
//! before an error has already been handed to the caller.
use std::{fs::File, io::Read, path::Path};

use pcap_parser::{create_reader, pcapng::Block, Linktype, PcapBlockOwned, PcapError};

/// One captured frame.
#[derive(Debug, Clone)]
pub struct Frame<'a> {
    /// Capture timestamp, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The captured bytes (may be shorter than `orig_len` in snap-truncated captures).
    pub data: &'a [u8],
    pub orig_len: u32,
    /// Byte offset of the frame's record in the file.
    pub offset: u64,
    /// The capturing interface's name, from its pcapng block (`if_name`), when it has one.
    pub interface: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a pcap or pcapng file (header not recognised at byte 0)")]
    NotACapture { path: String },
    #[error("{path}: file is empty")]
    Empty { path: String },
    #[error(
        "{path}: link type {linktype} at byte {offset} is not Ethernet (1); l2watch replays \
         Ethernet captures only (re-capture on an Ethernet interface, or convert with editcap)"
    )]
    NotEthernet {
        path: String,
        linktype: i32,
        offset: u64,
    },
    #[error("{path}: truncated at byte {offset}: the last record is incomplete")]
    Truncated { path: String, offset: u64 },
    #[error("{path}: corrupt record at byte {offset}: {reason}")]
    Corrupt {
        path: String,
        offset: u64,
        reason: String,
    },
    #[error("{path}: read error at byte {offset}")]
    Read { path: String, offset: u64 },
}

impl CaptureError {
    /// True for errors found after some frames may have been read (the report is partial).
    pub fn is_partial(&self) -> bool {
        matches!(
            self,
            CaptureError::Truncated { .. }
                | CaptureError::Corrupt { .. }
                | CaptureError::Read { .. }
        )
    }
}

/// Largest record the reader accepts; pcapng blocks can be big, frames here are small.
const READ_BUFFER: usize = 1 << 20;

/// The total length of the pcapng block at the start of `data`, in the byte order that makes
/// it smaller (a length read in the wrong order is at least 16 MiB for any block this reader
/// accepts, so the smaller one is the real one); None with fewer than 8 bytes.
fn ng_block_len(data: &[u8]) -> Option<u32> {
    let b: [u8; 4] = data.get(4..8)?.try_into().ok()?;
    Some(u32::from_le_bytes(b).min(u32::from_be_bytes(b)))
}

/// Reads every frame of `path`, calling `on_frame` for each, in file order.
pub fn read_capture(path: &Path, on_frame: impl FnMut(Frame<'_>)) -> Result<u64, CaptureError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| CaptureError::Open {
        path: name.clone(),
        source,
    })?;
    read_from(&name, file, on_frame)
}

/// Like [`read_capture`] over any reader; `name` is used in errors. Returns the frame count.
pub fn read_from(
    name: &str,
    input: impl Read,
    mut on_frame: impl FnMut(Frame<'_>),
) -> Result<u64, CaptureError> {
    let path = || name.to_string();
    let mut reader = match create_reader(READ_BUFFER, input) {
        Ok(r) => r,
        Err(PcapError::Eof) => return Err(CaptureError::Empty { path: path() }),
        Err(PcapError::Incomplete(_)) => {
            return Err(CaptureError::Truncated {
                path: path(),
                offset: 0,
            })
        }
        Err(_) => return Err(CaptureError::NotACapture { path: path() }),
    };
    // pcap: one link type and resolution; pcapng: per interface, in IDB order.
    let mut legacy_nanos = false;
    let mut interfaces: Vec<(i32, u64, i64, Option<String>)> = Vec::new();
    let mut frames = 0u64;
    let mut pcapng = false;
    loop {
        let offset = reader.consumed() as u64;
        // Every pcapng block is at least 12 bytes (type, length, length). pcap-parser 0.16
        // and 0.17 accept a shorter length for a Process Information Block and then subtract
        // 12 from it (a panic in a debug build, a wrapped length in release; found by the
        // `pcap` fuzz target): such a block is refused here, with its offset.
        if pcapng {
            if let Some(len) = ng_block_len(reader.data()) {
                if len < 12 {
                    return Err(CaptureError::Corrupt {
                        path: path(),
                        offset,
                        reason: format!("pcapng block length {len}, below the minimum of 12"),
                    });
                }
            }
        }
        match reader.next() {
            Ok((len, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        check_ethernet(name, h.network, offset)?;
                        legacy_nanos = h.is_nanosecond_precision();
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let sub = if legacy_nanos { 1 } else { 1_000 };
                        let ts_ns = b.ts_sec as u64 * 1_000_000_000 + b.ts_usec as u64 * sub;
                        let caplen = (b.caplen as usize).min(b.data.len());
                        frames += 1;
                        on_frame(Frame {
                            ts_ns,
                            data: &b.data[..caplen],
                            orig_len: b.origlen,
                            offset,
                            interface: None,
                        });
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                        pcapng = true;
                        interfaces.clear();
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        check_ethernet(name, idb.linktype, offset)?;
                        let res = idb.ts_resolution().ok_or_else(|| CaptureError::Corrupt {
                            path: path(),
                            offset,
                            reason: format!("invalid if_tsresol {}", idb.if_tsresol),
                        })?;
                        interfaces.push((idb.linktype.0, res, idb.ts_offset(), if_name(&idb)));
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let Some((_, res, ts_off, ifname)) = interfaces.get(epb.if_id as usize)
                        else {
                            return Err(CaptureError::Corrupt {
                                path: path(),
                                offset,
                                reason: format!(
                                    "packet refers to interface {} which was never described",
                                    epb.if_id
                                ),
                            });
                        };
                        let ticks = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                        let ts_ns = ticks_to_ns(ticks, *res)
                            .saturating_add_signed(ts_off.saturating_mul(1_000_000_000));
                        let caplen = (epb.caplen as usize).min(epb.data.len());
                        frames += 1;
                        on_frame(Frame {
                            ts_ns,
                            data: &epb.data[..caplen],
                            orig_len: epb.origlen,
                            offset,
                            interface: ifname.as_deref(),
                        });
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        if interfaces.is_empty() {
                            return Err(CaptureError::Corrupt {
                                path: path(),
                                offset,
                                reason: "simple packet block before any interface".into(),
                            });
                        }
                        let caplen = (spb.origlen as usize).min(spb.data.len());
                        frames += 1;
                        on_frame(Frame {
                            ts_ns: 0,
                            data: &spb.data[..caplen],
                            orig_len: spb.origlen,
                            offset,
                            interface: interfaces[0].3.as_deref(),
                        });
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(len);
            }
            Err(PcapError::Eof) => return Ok(frames),
            Err(PcapError::Incomplete(_)) => {
                if reader.refill().is_err() {
                    return Err(CaptureError::Read {
                        path: path(),
                        offset,
                    });
                }
            }
            Err(PcapError::UnexpectedEof) => {
                return Err(CaptureError::Truncated {
                    path: path(),
                    offset,
                })
            }
            Err(PcapError::BufferTooSmall) => {
                return Err(CaptureError::Corrupt {
                    path: path(),
                    offset,
                    reason: format!("record larger than {READ_BUFFER} bytes"),
                })
            }
            Err(PcapError::ReadError) => {
                return Err(CaptureError::Read {
                    path: path(),
                    offset,
                })
            }
            Err(e) => {
                return Err(CaptureError::Corrupt {
                    path: path(),
                    offset,
                    reason: describe(&e),
                })
            }
        }
    }
}

fn describe<I>(e: &PcapError<I>) -> String {
    match e {
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
            format!("unparseable block ({kind:?})")
        }
        PcapError::HeaderNotRecognized => "unrecognised block header".into(),
        _ => "unparseable block".into(),
    }
}

fn check_ethernet(name: &str, lt: Linktype, offset: u64) -> Result<(), CaptureError> {
    if lt == Linktype::ETHERNET {
        Ok(())
    } else {
        Err(CaptureError::NotEthernet {
            path: name.to_string(),
            linktype: lt.0,
            offset,
        })
    }
}

fn ticks_to_ns(ticks: u64, per_sec: u64) -> u64 {
    if per_sec == 0 {
        return 0;
    }
    let secs = ticks / per_sec;
    let frac = ticks % per_sec;
    secs.saturating_mul(1_000_000_000)
        .saturating_add((frac as u128 * 1_000_000_000 / per_sec as u128) as u64)
}

/// The interface block's `if_name` option (code 2), if it has a usable one.
fn if_name(idb: &pcap_parser::pcapng::InterfaceDescriptionBlock<'_>) -> Option<String> {
    const IF_NAME: u16 = 2;
    let o = idb.options.iter().find(|o| o.code.0 == IF_NAME)?;
    let bytes = o.as_bytes()?;
    let name = std::str::from_utf8(bytes)
        .ok()?
        .trim_end_matches('\0')
        .trim();
    (!name.is_empty() && name.len() <= 64 && !name.contains(char::is_control))
        .then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian microsecond pcap with the given link type and frames.
    fn pcap(linktype: u32, frames: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&0i32.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&linktype.to_le_bytes());
        for (i, f) in frames.iter().enumerate() {
            v.extend_from_slice(&(i as u32 + 1).to_le_bytes());
            v.extend_from_slice(&500u32.to_le_bytes());
            v.extend_from_slice(&(f.len() as u32).to_le_bytes());
            v.extend_from_slice(&(f.len() as u32).to_le_bytes());
            v.extend_from_slice(f);
        }
        v
    }

    /// (timestamp ns, bytes, offset) of each frame read.
    type Got = Vec<(u64, Vec<u8>, u64)>;

    fn read_all(bytes: &[u8]) -> (Result<u64, CaptureError>, Got) {
        let mut got = Vec::new();
        let r = read_from("mem", bytes, |f| {
            got.push((f.ts_ns, f.data.to_vec(), f.offset))
        });
        (r, got)
    }

    #[test]
    fn reads_frames_with_timestamps_and_offsets() {
        let bytes = pcap(1, &[&[1u8; 60], &[2u8; 42]]);
        let (r, got) = read_all(&bytes);
        assert_eq!(r.unwrap(), 2);
        assert_eq!(got[0].0, 1_000_500_000);
        assert_eq!(got[0].1, vec![1u8; 60]);
        assert_eq!(got[0].2, 24);
        assert_eq!(got[1].2, 24 + 16 + 60);
    }

    #[test]
    fn non_ethernet_is_refused() {
        let bytes = pcap(113, &[&[0u8; 20]]);
        let (r, got) = read_all(&bytes);
        match r {
            Err(CaptureError::NotEthernet { linktype: 113, .. }) => {}
            other => panic!("expected NotEthernet, got {other:?}"),
        }
        assert!(got.is_empty());
    }

    /// Found by the `pcap` fuzz target: a section header, then a Process Information Block
    /// whose length (7) is below pcapng's minimum; pcap-parser would subtract 12 from it.
    const SHORT_PIB: [u8; 50] = [
        10, 13, 13, 10, 28, 0, 0, 0, 77, 60, 43, 26, 1, 0, 0, 0, 80, 0, 0, 0, 255, 255, 255, 255,
        28, 0, 0, 0, 1, 0, 0, 128, 7, 0, 0, 0, 0, 0, 0, 128, 0, 41, 50, 46, 92, 0, 92, 0, 0, 0,
    ];

    #[test]
    fn a_pcapng_block_shorter_than_its_header_is_corrupt_at_its_offset() {
        let (r, got) = read_all(&SHORT_PIB);
        match r {
            Err(CaptureError::Corrupt { offset, reason, .. }) => {
                assert_eq!(offset, 28);
                assert!(reason.contains("block length 7"), "{reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(got.is_empty());
    }

    #[test]
    fn truncation_reports_offset_and_keeps_earlier_frames() {
        let bytes = pcap(1, &[&[1u8; 60], &[2u8; 60]]);
        // Cut inside the second record's data.
        let cut = &bytes[..24 + 16 + 60 + 16 + 10];
        let (r, got) = read_all(cut);
        match r {
            Err(CaptureError::Truncated { offset, .. }) => assert_eq!(offset, 24 + 16 + 60),
            other => panic!("expected Truncated, got {other:?}"),
        }
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn garbage_is_not_a_capture() {
        let (r, _) = read_all(b"this is not a capture file at all, honest");
        assert!(matches!(r, Err(CaptureError::NotACapture { .. })), "{r:?}");
        let (r, _) = read_all(b"");
        assert!(matches!(r, Err(CaptureError::Empty { .. })), "{r:?}");
    }

    #[test]
    fn pcapng_tick_conversion() {
        assert_eq!(ticks_to_ns(1_500_000, 1_000_000), 1_500_000_000);
        assert_eq!(ticks_to_ns(3, 1_000_000_000), 3);
        assert_eq!(ticks_to_ns(7, 0), 0);
    }
}
