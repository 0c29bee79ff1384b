//! DHCPv4 message decoding (RFC 2131/2132 and friends) from the BOOTP bytes a kernel event
//! carries. Pure and allocation-light; bad input is a typed error, never a panic.
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::capture::Mac;

const FIXED_LEN: usize = 236;
use monitor_common::{proto::DHCP_MAGIC as COOKIE, DhcpMsgType};
const SNAME: std::ops::Range<usize> = 44..108;
const FILE: std::ops::Range<usize> = 108..236;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DhcpError {
    #[error("BOOTP message of {0} bytes is shorter than the 236-byte fixed header")]
    TooShort(usize),
    #[error("option {code} at offset {offset} claims {len} bytes past the end of the message")]
    OptionOverrun { code: u8, offset: usize, len: usize },
    #[error("option {code} has length {len}, which is invalid for it")]
    BadOptionLength { code: u8, len: usize },
    #[error("option 52 (overload) has invalid value {0}")]
    BadOverload(u8),
}

impl DhcpError {
    /// Stable name for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            DhcpError::TooShort(_) => "too_short",
            DhcpError::OptionOverrun { .. } => "option_overrun",
            DhcpError::BadOptionLength { .. } => "bad_option_length",
            DhcpError::BadOverload(_) => "bad_overload",
        }
    }
}

/// Option 82 sub-options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RelayAgent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
}

/// A decoded DHCPv4 (or plain BOOTP) message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DhcpMessage {
    pub op: u8,
    pub xid: u32,
    pub secs: u16,
    pub broadcast: bool,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    /// Client hardware address when it is a 6-byte Ethernet address.
    pub chaddr: Option<Mac>,
    /// Option 53; None for plain BOOTP.
    pub msg_type: Option<u8>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 51, seconds.
    pub lease_time: Option<u32>,
    /// Option 1.
    pub subnet_mask: Option<Ipv4Addr>,
    /// Option 3.
    pub routers: Vec<Ipv4Addr>,
    /// Option 6.
    pub dns: Vec<Ipv4Addr>,
    /// Option 12.
    pub hostname: Option<String>,
    /// Option 81, the name part.
    pub client_fqdn: Option<String>,
    /// Option 61, hex.
    pub client_id: Option<String>,
    /// Option 82.
    pub relay_agent: Option<RelayAgent>,
    /// Option 55.
    pub param_request_list: Vec<u8>,
    /// Option 52: whether `file` / `sname` carried options.
    pub overload: u8,
    /// The fixed header's `sname` and `file` (empty when overloaded with options).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Option 60, e.g. `PXEClient:Arch:00007:UNDI:003016`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_class: Option<String>,
    /// Option 66 (TFTP server name) and 67 (boot file name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tftp_server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootfile: Option<String>,
    /// Option 93: client system architectures (RFC 4578).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub client_arch: Vec<u16>,
    /// Option 94: network interface identifier (type, major, minor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ndi: Option<[u8; 3]>,
    /// Option 97: client machine identifier (UUID/GUID), hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uuid: Option<String>,
}

impl DhcpMessage {
    /// The best host name: option 12, else the FQDN of option 81.
    pub fn host_name(&self) -> Option<&str> {
        self.hostname.as_deref().or(self.client_fqdn.as_deref())
    }

    /// The message type, when option 53 holds one l2watch knows.
    pub fn kind(&self) -> Option<DhcpMsgType> {
        self.msg_type.and_then(DhcpMsgType::from_code)
    }

    /// A server's reply (OFFER, ACK, NAK).
    pub fn is_server_reply(&self) -> bool {
        self.kind().is_some_and(DhcpMsgType::is_server_reply)
    }

    /// A PXE client: vendor class `PXEClient...`, or a client architecture (option 93).
    pub fn is_pxe(&self) -> bool {
        self.vendor_class
            .as_deref()
            .is_some_and(|v| v.starts_with("PXEClient"))
            || !self.client_arch.is_empty()
    }

    /// The boot server a reply names: option 66, else siaddr (next server) when set.
    pub fn boot_server(&self) -> Option<String> {
        self.tftp_server
            .clone()
            .or_else(|| (!self.siaddr.is_unspecified()).then(|| self.siaddr.to_string()))
    }

    /// The boot file a reply names: option 67, else the `file` field.
    pub fn boot_file(&self) -> Option<&str> {
        self.bootfile.as_deref().or(self.file.as_deref())
    }
}

/// The name of an RFC 4578 / IANA client architecture (option 93).
pub fn arch_name(a: u16) -> &'static str {
    match a {
        0 => "x86_bios",
        6 => "x86_uefi",
        7 => "x64_uefi",
        9 => "ebc",
        10 => "arm32_uefi",
        11 => "arm64_uefi",
        15 => "x86_uefi_http",
        16 => "x64_uefi_http",
        19 => "arm32_uefi_http",
        20 => "arm64_uefi_http",
        _ => "other",
    }
}

/// Name of a DHCP message type: [`DhcpMsgType::name`], "bootp" without option 53, "other"
/// for a type l2watch does not know.
pub fn msg_type_name(t: Option<u8>) -> &'static str {
    match t {
        None => "bootp",
        Some(code) => DhcpMsgType::from_code(code).map_or("other", DhcpMsgType::name),
    }
}

fn ip(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn text(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    s.trim_end_matches('\0').to_string()
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Decodes `bytes`. `complete` is false when the kernel copied only the first part of a longer
/// message: an option cut at the end of the buffer then ends parsing instead of being an error.
pub fn decode(bytes: &[u8], complete: bool) -> Result<DhcpMessage, DhcpError> {
    if bytes.len() < FIXED_LEN {
        return Err(DhcpError::TooShort(bytes.len()));
    }
    let mut m = DhcpMessage {
        op: bytes[0],
        xid: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        secs: u16::from_be_bytes([bytes[8], bytes[9]]),
        broadcast: bytes[10] & 0x80 != 0,
        ciaddr: ip(&bytes[12..16]),
        yiaddr: ip(&bytes[16..20]),
        siaddr: ip(&bytes[20..24]),
        giaddr: ip(&bytes[24..28]),
        chaddr: None,
        msg_type: None,
        server_id: None,
        requested_ip: None,
        lease_time: None,
        subnet_mask: None,
        routers: Vec::new(),
        dns: Vec::new(),
        hostname: None,
        client_fqdn: None,
        client_id: None,
        relay_agent: None,
        param_request_list: Vec::new(),
        overload: 0,
        sname: None,
        file: None,
        vendor_class: None,
        tftp_server: None,
        bootfile: None,
        client_arch: Vec::new(),
        client_ndi: None,
        client_uuid: None,
    };
    if bytes[1] == 1 && bytes[2] == 6 {
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&bytes[28..34]);
        m.chaddr = Some(Mac(mac));
    }
    if bytes.len() < FIXED_LEN + 4 || bytes[FIXED_LEN..FIXED_LEN + 4] != COOKIE {
        return Ok(m);
    }
    parse_options(&bytes[FIXED_LEN + 4..], FIXED_LEN + 4, complete, &mut m)?;
    match m.overload {
        0 => {}
        1..=3 => {
            if m.overload & 1 != 0 {
                parse_options(&bytes[FILE], FILE.start, true, &mut m)?;
            }
            if m.overload & 2 != 0 {
                parse_options(&bytes[SNAME], SNAME.start, true, &mut m)?;
            }
        }
        other => return Err(DhcpError::BadOverload(other)),
    }
    // The fields themselves, unless they carried options.
    let field = |r: std::ops::Range<usize>| Some(text(&bytes[r])).filter(|s| !s.is_empty());
    if m.overload & 1 == 0 {
        m.file = field(FILE);
    }
    if m.overload & 2 == 0 {
        m.sname = field(SNAME);
    }
    Ok(m)
}

fn parse_options(
    area: &[u8],
    base: usize,
    complete: bool,
    m: &mut DhcpMessage,
) -> Result<(), DhcpError> {
    let mut i = 0;
    while i < area.len() {
        let code = area[i];
        match code {
            0 => {
                i += 1;
                continue;
            }
            255 => return Ok(()),
            _ => {}
        }
        let Some(&len) = area.get(i + 1) else {
            return if complete {
                Err(DhcpError::OptionOverrun {
                    code,
                    offset: base + i,
                    len: 0,
                })
            } else {
                Ok(())
            };
        };
        let len = len as usize;
        let Some(v) = area.get(i + 2..i + 2 + len) else {
            return if complete {
                Err(DhcpError::OptionOverrun {
                    code,
                    offset: base + i,
                    len,
                })
            } else {
                Ok(())
            };
        };
        apply_option(code, v, m)?;
        i += 2 + len;
    }
    Ok(())
}

fn fixed(code: u8, v: &[u8], want: usize) -> Result<(), DhcpError> {
    if v.len() == want {
        Ok(())
    } else {
        Err(DhcpError::BadOptionLength { code, len: v.len() })
    }
}

fn ip_list(code: u8, v: &[u8]) -> Result<Vec<Ipv4Addr>, DhcpError> {
    if v.is_empty() || !v.len().is_multiple_of(4) {
        return Err(DhcpError::BadOptionLength { code, len: v.len() });
    }
    Ok(v.chunks_exact(4).map(ip).collect())
}

fn apply_option(code: u8, v: &[u8], m: &mut DhcpMessage) -> Result<(), DhcpError> {
    match code {
        53 => {
            fixed(code, v, 1)?;
            m.msg_type = Some(v[0]);
        }
        54 => {
            fixed(code, v, 4)?;
            m.server_id = Some(ip(v));
        }
        50 => {
            fixed(code, v, 4)?;
            m.requested_ip = Some(ip(v));
        }
        51 => {
            fixed(code, v, 4)?;
            m.lease_time = Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
        }
        1 => {
            fixed(code, v, 4)?;
            m.subnet_mask = Some(ip(v));
        }
        3 => m.routers = ip_list(code, v)?,
        6 => m.dns = ip_list(code, v)?,
        12 => {
            if v.is_empty() {
                return Err(DhcpError::BadOptionLength { code, len: 0 });
            }
            m.hostname = Some(text(v));
        }
        81 => {
            if v.len() < 3 {
                return Err(DhcpError::BadOptionLength { code, len: v.len() });
            }
            // Flag E (0x04): the name is in DNS wire format.
            let name = &v[3..];
            m.client_fqdn = Some(if v[0] & 0x04 != 0 {
                wire_name(name)
            } else {
                text(name)
            })
            .filter(|s| !s.is_empty());
        }
        61 => {
            if v.is_empty() {
                return Err(DhcpError::BadOptionLength { code, len: 0 });
            }
            m.client_id = Some(hex(v));
        }
        82 => m.relay_agent = Some(relay_agent(v)?),
        55 => m.param_request_list = v.to_vec(),
        52 => {
            fixed(code, v, 1)?;
            m.overload = v[0];
        }
        60 | 66 | 67 => {
            if v.is_empty() {
                return Err(DhcpError::BadOptionLength { code, len: 0 });
            }
            let t = Some(text(v));
            match code {
                60 => m.vendor_class = t,
                66 => m.tftp_server = t,
                _ => m.bootfile = t,
            }
        }
        93 => {
            if v.is_empty() || !v.len().is_multiple_of(2) {
                return Err(DhcpError::BadOptionLength { code, len: v.len() });
            }
            m.client_arch = v
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
        }
        94 => {
            fixed(code, v, 3)?;
            m.client_ndi = Some([v[0], v[1], v[2]]);
        }
        97 => {
            if v.is_empty() {
                return Err(DhcpError::BadOptionLength { code, len: 0 });
            }
            m.client_uuid = Some(hex(v));
        }
        _ => {}
    }
    Ok(())
}

/// DNS wire-format name (labels) to dotted text; stops at the root or at a bad label.
fn wire_name(mut b: &[u8]) -> String {
    let mut labels = Vec::new();
    while let Some((&n, rest)) = b.split_first() {
        let n = n as usize;
        if n == 0 || n > 63 || rest.len() < n {
            break;
        }
        labels.push(String::from_utf8_lossy(&rest[..n]).into_owned());
        b = &rest[n..];
    }
    labels.join(".")
}

fn relay_agent(v: &[u8]) -> Result<RelayAgent, DhcpError> {
    let mut r = RelayAgent::default();
    let mut i = 0;
    while i < v.len() {
        let sub = v[i];
        let Some(&len) = v.get(i + 1) else {
            return Err(DhcpError::BadOptionLength {
                code: 82,
                len: v.len(),
            });
        };
        let Some(val) = v.get(i + 2..i + 2 + len as usize) else {
            return Err(DhcpError::BadOptionLength {
                code: 82,
                len: v.len(),
            });
        };
        let shown = if val.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
            text(val)
        } else {
            hex(val)
        };
        match sub {
            1 => r.circuit_id = Some(shown),
            2 => r.remote_id = Some(shown),
            _ => {}
        }
        i += 2 + len as usize;
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(options: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; FIXED_LEN];
        v[0] = 2;
        v[1] = 1;
        v[2] = 6;
        v[4..8].copy_from_slice(&0xdeadbeefu32.to_be_bytes());
        v[16..20].copy_from_slice(&[10, 0, 0, 50]);
        v[28..34].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        v.extend_from_slice(&COOKIE);
        v.extend_from_slice(options);
        v
    }

    #[test]
    fn decodes_an_ack_with_every_covered_option() {
        let mut o = vec![53, 1, 5, 54, 4, 10, 0, 0, 1, 51, 4, 0, 0, 0x0e, 0x10];
        o.extend_from_slice(&[1, 4, 255, 255, 255, 0, 3, 4, 10, 0, 0, 1]);
        o.extend_from_slice(&[6, 8, 10, 0, 0, 1, 8, 8, 8, 8]);
        o.extend_from_slice(&[12, 5, b'n', b'o', b'd', b'e', b'1']);
        o.extend_from_slice(&[50, 4, 10, 0, 0, 50]);
        o.extend_from_slice(&[61, 7, 1, 2, 0, 0, 0, 0, 1]);
        o.extend_from_slice(&[55, 3, 1, 3, 6]);
        o.extend_from_slice(&[82, 12, 1, 4, b'e', b't', b'h', b'0', 2, 4, 0xde, 0xad, 0, 1]);
        o.push(255);
        let m = decode(&message(&o), true).unwrap();
        assert_eq!(m.msg_type, Some(5));
        assert_eq!(m.server_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(m.lease_time, Some(3600));
        assert_eq!(m.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(m.routers, vec![Ipv4Addr::new(10, 0, 0, 1)]);
        assert_eq!(m.dns.len(), 2);
        assert_eq!(m.hostname.as_deref(), Some("node1"));
        assert_eq!(m.requested_ip, Some(Ipv4Addr::new(10, 0, 0, 50)));
        assert_eq!(m.client_id.as_deref(), Some("01:02:00:00:00:00:01"));
        assert_eq!(m.param_request_list, vec![1, 3, 6]);
        let ra = m.relay_agent.unwrap();
        assert_eq!(ra.circuit_id.as_deref(), Some("eth0"));
        assert_eq!(ra.remote_id.as_deref(), Some("de:ad:00:01"));
        assert_eq!(m.yiaddr, Ipv4Addr::new(10, 0, 0, 50));
        assert_eq!(m.chaddr.unwrap().to_string(), "02:00:00:00:00:01");
        assert_eq!(m.xid, 0xdeadbeef);
    }

    #[test]
    fn fqdn_in_wire_and_ascii_form() {
        let wire = [
            81, 13, 0x05, 0, 0, 4, b'h', b'o', b's', b't', 3, b'l', b'a', b'b', 0,
        ];
        let m = decode(&message(&[&wire[..], &[255]].concat()), true).unwrap();
        assert_eq!(m.client_fqdn.as_deref(), Some("host.lab"));
        let ascii = [81, 7, 0x01, 0, 0, b'a', b'.', b'b', b'c'];
        let m = decode(&message(&[&ascii[..], &[255]].concat()), true).unwrap();
        assert_eq!(m.client_fqdn.as_deref(), Some("a.bc"));
        assert_eq!(m.host_name(), Some("a.bc"));
    }

    #[test]
    fn overload_reads_file_then_sname() {
        let mut v = message(&[53, 1, 2, 52, 1, 3, 255]);
        v[FILE.start..FILE.start + 6].copy_from_slice(&[54, 4, 192, 168, 0, 1]);
        v[FILE.start + 6] = 255;
        v[SNAME.start..SNAME.start + 7].copy_from_slice(&[12, 4, b'o', b'v', b'e', b'r', 255]);
        let m = decode(&v, true).unwrap();
        assert_eq!(m.overload, 3);
        assert_eq!(m.server_id, Some(Ipv4Addr::new(192, 168, 0, 1)));
        assert_eq!(m.hostname.as_deref(), Some("over"));
        let bad = message(&[52, 1, 7, 255]);
        assert_eq!(decode(&bad, true), Err(DhcpError::BadOverload(7)));
    }

    #[test]
    fn pxe_options_and_the_boot_offer() {
        let mut o = vec![53, 1, 1];
        let class = b"PXEClient:Arch:00007:UNDI:003016";
        o.extend_from_slice(&[60, class.len() as u8]);
        o.extend_from_slice(class);
        o.extend_from_slice(&[93, 2, 0, 7, 94, 3, 1, 3, 16, 97, 3, 0, 0xab, 0xcd, 255]);
        let m = decode(&message(&o), true).unwrap();
        assert!(m.is_pxe());
        assert_eq!(m.client_arch, [7]);
        assert_eq!(arch_name(m.client_arch[0]), "x64_uefi");
        assert_eq!(m.client_ndi, Some([1, 3, 16]));
        assert_eq!(m.client_uuid.as_deref(), Some("00:ab:cd"));
        // An OFFER naming its boot server by siaddr and its file in the fixed header...
        let mut v = message(&[53, 1, 2, 255]);
        v[20..24].copy_from_slice(&[10, 0, 0, 5]);
        v[FILE.start..FILE.start + 12].copy_from_slice(b"pxelinux.0\0\0");
        let m = decode(&v, true).unwrap();
        assert_eq!(m.boot_server().as_deref(), Some("10.0.0.5"));
        assert_eq!(m.boot_file(), Some("pxelinux.0"));
        // ...and options 66 and 67 win over them.
        let mut v = message(&[
            53, 1, 2, 66, 4, b't', b'f', b't', b'p', 67, 3, b'a', b'.', b'e', 255,
        ]);
        v[20..24].copy_from_slice(&[10, 0, 0, 5]);
        let m = decode(&v, true).unwrap();
        assert_eq!(m.boot_server().as_deref(), Some("tftp"));
        assert_eq!(m.boot_file(), Some("a.e"));
        // A file field overloaded with options is not a file name.
        let mut v = message(&[53, 1, 2, 52, 1, 1, 255]);
        v[FILE.start..FILE.start + 6].copy_from_slice(&[67, 3, b'b', b'.', b'e', 255]);
        let m = decode(&v, true).unwrap();
        assert_eq!((m.file.as_deref(), m.boot_file()), (None, Some("b.e")));
        assert!(!decode(&message(&[53, 1, 1, 255]), true).unwrap().is_pxe());
    }

    #[test]
    fn malformed_lengths_are_typed_errors() {
        assert_eq!(decode(&[0u8; 100], true), Err(DhcpError::TooShort(100)));
        assert_eq!(
            decode(&message(&[54, 3, 1, 2, 3, 255]), true),
            Err(DhcpError::BadOptionLength { code: 54, len: 3 })
        );
        assert_eq!(
            decode(&message(&[12, 50, b'x']), true),
            Err(DhcpError::OptionOverrun {
                code: 12,
                offset: 240,
                len: 50
            })
        );
        assert!(matches!(
            decode(&message(&[3, 5, 1, 2, 3, 4, 5, 255]), true),
            Err(DhcpError::BadOptionLength { code: 3, .. })
        ));
        // Cut by the kernel's copy limit: not the sender's fault, parse what is there.
        let m = decode(&message(&[53, 1, 1, 12, 50, b'x']), false).unwrap();
        assert_eq!(m.msg_type, Some(1));
    }

    #[test]
    fn plain_bootp_and_missing_end() {
        let mut v = vec![0u8; 300];
        v[0] = 1;
        let m = decode(&v, true).unwrap();
        assert_eq!(m.msg_type, None);
        // Options without End are accepted (many clients pad instead).
        let m = decode(&message(&[53, 1, 3, 0, 0]), true).unwrap();
        assert_eq!(m.msg_type, Some(3));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: every prefix and many byte patterns.
        let mut seed = 0x2545f4914f6cdd1du64;
        for len in [0usize, 100, 236, 240, 241, 242, 300, 600] {
            for _ in 0..300 {
                let mut v = message(&[]);
                v.resize(len.max(v.len()), 0);
                for b in v.iter_mut().skip(236) {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    *b = seed as u8;
                }
                v.truncate(len);
                let _ = decode(&v, true);
                let _ = decode(&v, false);
            }
        }
    }
}
