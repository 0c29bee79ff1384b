//! `l2watch check`: a preflight that changes nothing. Kernel version, BTF and capabilities;
//! per interface: that it exists and is up, which XDP modes its driver supports (the netdev
//! generic-netlink family's xdp-features), and whether hardware VLAN stripping (rxvlan) is on
//! (ethtool's netlink family, through the `ethtool` crate), each with the fix when something
//! is missing.
use std::{ffi::c_void, fmt, mem::size_of, path::Path};

use serde::Serialize;

/// How bad a finding of the preflight is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Error,
}

impl Level {
    /// Nagios-style exit code: 0 ok, 1 warnings, 2 errors.
    pub fn exit_code(self) -> u8 {
        match self {
            Level::Ok => 0,
            Level::Warn => 1,
            Level::Error => 2,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub level: Level,
    pub subject: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.level {
            Level::Ok => "ok   ",
            Level::Warn => "WARN ",
            Level::Error => "ERROR",
        };
        write!(f, "{tag} {}: {}", self.subject, self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n      fix: {fix}")?;
        }
        Ok(())
    }
}

fn item(level: Level, subject: &str, message: String, fix: Option<String>) -> Item {
    Item {
        level,
        subject: subject.to_string(),
        message,
        fix,
    }
}

/// The kernel release, e.g. "6.18.0-1-amd64".
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// (major, minor) of a release string.
pub fn version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Effective capability bits of this process.
fn cap_eff() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

pub fn system() -> Vec<Item> {
    let mut out = Vec::new();
    let rel = kernel_release();
    match version(&rel) {
        Some(v) if v >= (5, 18) => out.push(item(
            Level::Ok,
            "kernel",
            format!("{rel} (5.18 or newer needed)"),
            None,
        )),
        _ => out.push(item(
            Level::Error,
            "kernel",
            format!("{rel:?} is older than 5.18 (ring buffer, bpf_loop, BTF-based loading)"),
            Some("run a kernel 5.18 or newer".into()),
        )),
    }
    if Path::new("/sys/kernel/btf/vmlinux").exists() {
        out.push(item(
            Level::Ok,
            "BTF",
            "/sys/kernel/btf/vmlinux present".into(),
            None,
        ));
    } else {
        out.push(item(
            Level::Error,
            "BTF",
            "/sys/kernel/btf/vmlinux missing".into(),
            Some(
                "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (every major distribution's is)"
                    .into(),
            ),
        ));
    }
    let caps = cap_eff();
    let has = |c: u32| caps & (1u64 << c) != 0;
    let mut missing = Vec::new();
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !has(CAP_PERFMON) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_PERFMON");
    }
    if missing.is_empty() {
        out.push(item(
            Level::Ok,
            "capabilities",
            "CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON".into(),
            None,
        ));
    } else {
        out.push(item(
            Level::Error,
            "capabilities",
            format!("missing {}", missing.join(", ")),
            Some(
                "run as root, or grant them: AmbientCapabilities=CAP_BPF CAP_NET_ADMIN CAP_PERFMON \
                 in the systemd unit (deploy/l2watch.service), or setcap cap_bpf,cap_net_admin,\
                 cap_perfmon+ep on the binary"
                    .into(),
            ),
        ));
    }
    out
}

pub fn interface(name: &str) -> Vec<Item> {
    let mut out = Vec::new();
    let Some(ifindex) = crate::links::ifindex(name) else {
        out.push(item(
            Level::Error,
            name,
            "no such interface".into(),
            Some("check the name with `ip link` (l2watch run without --iface picks every up Ethernet interface)".into()),
        ));
        return out;
    };
    let driver = ethtool_driver(name).unwrap_or_else(|| "unknown".into());
    if crate::links::is_up(name) {
        out.push(item(
            Level::Ok,
            name,
            format!("exists (ifindex {ifindex}, driver {driver}), up"),
            None,
        ));
    } else {
        out.push(item(
            Level::Warn,
            name,
            format!("exists (ifindex {ifindex}, driver {driver}) but is down: nothing to see yet"),
            Some(format!("ip link set {name} up")),
        ));
    }
    match xdp_features(ifindex) {
        Ok(f) if f & XDP_ACT_BASIC != 0 => out.push(item(
            Level::Ok,
            name,
            format!("native XDP supported by the driver (xdp-features {})", xdp_feature_names(f)),
            None,
        )),
        Ok(_) => out.push(item(
            Level::Warn,
            name,
            "the driver has no native XDP: l2watch falls back to generic (SKB) mode, which works but costs more per packet".into(),
            None,
        )),
        Err(e) => out.push(item(
            Level::Warn,
            name,
            format!("cannot read XDP features ({e}); l2watch tries native, then generic"),
            None,
        )),
    }
    match rxvlan(name) {
        Ok(true) => out.push(item(
            Level::Warn,
            name,
            "hardware VLAN stripping (rxvlan) is on: tags may be removed before XDP sees them, and tagged frames then count as untagged".into(),
            Some(format!("ethtool -K {name} rxvlan off")),
        )),
        Ok(false) => out.push(item(Level::Ok, name, "rxvlan off: XDP sees VLAN tags".into(), None)),
        Err(e) => out.push(item(
            Level::Warn,
            name,
            format!("cannot read rxvlan ({e})"),
            Some(format!("check with `ethtool -k {name} | grep rx-vlan-hw-parse`")),
        )),
    }
    out
}

/// The worst level of a report.
pub fn worst(items: &[Item]) -> Level {
    items.iter().map(|i| i.level).max().unwrap_or(Level::Ok)
}

// --- ethtool ioctl: the driver's name (ETHTOOL_GDRVINFO has no netlink equivalent) ---

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x3;

#[repr(C)]
struct IfReq {
    name: [u8; 16],
    data: *mut c_void,
    _pad: [u8; 16],
}

fn ethtool(name: &str, data: *mut c_void) -> std::io::Result<()> {
    let mut req = IfReq {
        name: [0; 16],
        data,
        _pad: [0; 16],
    };
    let n = name.len().min(15);
    req.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    // SAFETY: plain socket and ioctl calls; `data` points to a live, properly sized struct.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let r = libc::ioctl(fd, SIOCETHTOOL as _, &mut req as *mut IfReq);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if r < 0 {
            return Err(err);
        }
    }
    Ok(())
}

/// Whether hardware VLAN stripping is on: the `rx-vlan-hw-parse` feature (the kernel's
/// NETIF_F_HW_VLAN_CTAG_RX), asked over ethtool's netlink family with the rust-netlink
/// `ethtool` crate.
pub fn rxvlan(name: &str) -> std::io::Result<bool> {
    use futures_util::TryStreamExt as _;
    use std::io::{Error, ErrorKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async {
        let (conn, mut handle, _) = ethtool::new_connection()?;
        let conn = tokio::spawn(conn);
        let result = async {
            let mut msgs = handle
                .feature()
                .get(Some(name))
                .execute()
                .await
                .map_err(|e| Error::other(e.to_string()))?;
            // The active set lists the features that are on; one the driver lacks or has off
            // is absent (both leave the tags for XDP to see).
            let mut on = false;
            let mut answered = false;
            while let Some(m) = msgs
                .try_next()
                .await
                .map_err(|e| Error::other(e.to_string()))?
            {
                for nla in &m.payload.nlas {
                    if let ethtool::EthtoolAttr::Feature(ethtool::EthtoolFeatureAttr::Active(
                        bits,
                    )) = nla
                    {
                        answered = true;
                        on |= bits.iter().any(|b| b.name == "rx-vlan-hw-parse" && b.value);
                    }
                }
            }
            if answered {
                Ok(on)
            } else {
                Err(Error::new(
                    ErrorKind::NotFound,
                    "ethtool's netlink family answered without the active features",
                ))
            }
        }
        .await;
        conn.abort();
        result
    })
}

fn ethtool_driver(name: &str) -> Option<String> {
    #[repr(C)]
    struct DrvInfo {
        cmd: u32,
        driver: [u8; 32],
        version: [u8; 32],
        fw_version: [u8; 32],
        bus_info: [u8; 32],
        erom_version: [u8; 32],
        reserved2: [u8; 12],
        n_priv_flags: u32,
        n_stats: u32,
        testinfo_len: u32,
        eedump_len: u32,
        regdump_len: u32,
    }
    // SAFETY: all-zero is a valid DrvInfo.
    let mut d: DrvInfo = unsafe { std::mem::zeroed() };
    d.cmd = ETHTOOL_GDRVINFO;
    ethtool(name, &mut d as *mut DrvInfo as *mut c_void).ok()?;
    let end = d.driver.iter().position(|b| *b == 0).unwrap_or(32);
    Some(String::from_utf8_lossy(&d.driver[..end]).into_owned())
}

// --- netdev generic netlink: xdp-features ---

const XDP_ACT_BASIC: u64 = 1;
const XDP_FEATURES: [(u64, &str); 7] = [
    (1, "basic"),
    (2, "redirect"),
    (4, "ndo-xmit"),
    (8, "xsk-zerocopy"),
    (16, "hw-offload"),
    (32, "rx-sg"),
    (64, "ndo-xmit-sg"),
];

fn xdp_feature_names(f: u64) -> String {
    let v: Vec<&str> = XDP_FEATURES
        .iter()
        .filter(|(b, _)| f & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(",")
    }
}

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;

fn attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

/// One generic-netlink request and its reply's attributes.
fn genl(family: u16, cmd: u8, attrs: &[u8]) -> std::io::Result<Vec<(u16, Vec<u8>)>> {
    let mut msg = Vec::new();
    let len = 16 + 4 + attrs.len();
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&family.to_ne_bytes());
    msg.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&[cmd, 1, 0, 0]);
    msg.extend_from_slice(attrs);
    let mut reply = vec![0u8; 8192];
    // SAFETY: plain socket calls on buffers we own, with their true lengths.
    let n = unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_GENERIC,
        );
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let sent = libc::send(fd, msg.as_ptr() as *const c_void, msg.len(), 0);
        let n = if sent < 0 {
            -1
        } else {
            libc::recv(fd, reply.as_mut_ptr() as *mut c_void, reply.len(), 0)
        };
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if n < 0 {
            return Err(err);
        }
        n as usize
    };
    let reply = &reply[..n];
    if reply.len() < 20 {
        return Err(std::io::Error::other("short netlink reply"));
    }
    let ty = u16::from_ne_bytes([reply[4], reply[5]]);
    if ty == NLMSG_ERROR {
        let code = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
        return Err(std::io::Error::from_raw_os_error(-code));
    }
    let total =
        (u32::from_ne_bytes([reply[0], reply[1], reply[2], reply[3]]) as usize).min(reply.len());
    let mut out = Vec::new();
    let mut off = 20;
    while off + 4 <= total {
        let alen = u16::from_ne_bytes([reply[off], reply[off + 1]]) as usize;
        let aty = u16::from_ne_bytes([reply[off + 2], reply[off + 3]]) & 0x3fff;
        if alen < 4 || off + alen > total {
            break;
        }
        out.push((aty, reply[off + 4..off + alen].to_vec()));
        off += alen.next_multiple_of(4);
    }
    Ok(out)
}

/// The driver's XDP feature bits (netdev family, NETDEV_A_DEV_XDP_FEATURES; kernel 6.3+).
pub fn xdp_features(ifindex: u32) -> std::io::Result<u64> {
    let mut a = Vec::new();
    attr(&mut a, CTRL_ATTR_FAMILY_NAME, b"netdev\0");
    let fam = genl(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, &a)?
        .into_iter()
        .find(|(t, _)| *t == CTRL_ATTR_FAMILY_ID)
        .and_then(|(_, v)| v.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]])))
        .ok_or_else(|| std::io::Error::other("no netdev netlink family (kernel older than 6.3)"))?;
    let mut a = Vec::new();
    attr(&mut a, NETDEV_A_DEV_IFINDEX, &ifindex.to_ne_bytes());
    genl(fam, NETDEV_CMD_DEV_GET, &a)?
        .into_iter()
        .find(|(t, _)| *t == NETDEV_A_DEV_XDP_FEATURES)
        .and_then(|(_, v)| {
            v.get(..8)
                .map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes")))
        })
        .ok_or_else(|| std::io::Error::other("no xdp-features in the reply"))
}

const _: () = assert!(size_of::<IfReq>() == 40);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_compare() {
        assert_eq!(version("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(version("5.4.0"), Some((5, 4)));
        assert!(version("5.4.0").unwrap() < (5, 18));
        assert_eq!(version("garbage"), None);
    }

    #[test]
    fn loopback_has_features_and_a_driver_answer() {
        // Unprivileged reads: the netdev family and the ethtool ioctls need no capability.
        let f = xdp_features(1).expect("netdev family on this kernel");
        assert_eq!(f & XDP_ACT_BASIC, 0, "lo has no native XDP");
        assert!(rxvlan("lo").is_ok());
        assert_eq!(worst(&interface("no-such-if0")), Level::Error);
    }
}
