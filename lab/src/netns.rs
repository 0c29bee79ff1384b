//! Network namespaces and veth pairs for live tests. Names are unique per process and call;
//! every namespace is deleted when its guard drops, including when a test panics. Nothing here
//! touches interfaces of the root namespace.
use std::{
    ffi::CString,
    fs::File,
    os::fd::AsRawFd,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A short unique tag: interface names are limited to 15 bytes.
pub fn unique_tag() -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{:x}{n}", std::process::id() % 0xfffff)
}

/// Runs a command and panics with its output when it fails.
pub fn sh(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A network namespace deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        let name = format!("l2w-{prefix}-{}", unique_tag());
        sh(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        // Quiet namespaces: no IPv6 autoconfiguration chatter in the counts.
        ns.exec(&["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"]);
        ns.exec(&["sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// A namespace created earlier by a lab (`cargo xtask lab up`); deleted when dropped.
    pub fn adopt(name: &str) -> Result<Netns, String> {
        if !std::path::Path::new("/var/run/netns").join(name).exists() {
            return Err(format!("network namespace {name} is gone"));
        }
        Ok(Netns {
            name: name.to_string(),
        })
    }

    /// `ip netns exec NAME args...`, panicking on failure.
    pub fn exec(&self, args: &[&str]) -> Output {
        sh(Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args))
    }

    /// A command prefixed with `ip netns exec NAME`.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// The interface's ifindex inside this namespace.
    pub fn ifindex(&self, iface: &str) -> u32 {
        let out = self.exec(&["cat", &format!("/sys/class/net/{iface}/ifindex")]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("ifindex")
    }

    /// `ip -d link show IF` inside the namespace.
    pub fn link_details(&self, iface: &str) -> String {
        let out = self.exec(&["ip", "-d", "link", "show", iface]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Creates a veth pair with one end in each namespace, both up, MTU 1600 (room for stacked
/// tags). Returns the two interface names.
pub fn veth_pair(a: &Netns, b: &Netns) -> (String, String) {
    let tag = unique_tag();
    let (ia, ib) = (format!("l2wa{tag}"), format!("l2wb{tag}"));
    sh(Command::new("ip").args([
        "link", "add", &ia, "netns", &a.name, "mtu", "1600", "type", "veth", "peer", "name", &ib,
        "netns", &b.name, "mtu", "1600",
    ]));
    a.exec(&["ip", "link", "set", &ia, "up"]);
    b.exec(&["ip", "link", "set", &ib, "up"]);
    (ia, ib)
}

/// Sends raw frames on `iface` inside namespace `ns` through an AF_PACKET socket. Runs on a
/// fresh thread so only that thread enters the namespace.
pub fn send_frames(ns: &Netns, iface: &str, frames: &[Vec<u8>]) {
    let path = format!("/var/run/netns/{}", ns.name);
    let iface = iface.to_string();
    let frames = frames.to_vec();
    std::thread::spawn(move || {
        let f = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: plain syscalls with valid arguments; the thread is ours alone.
        unsafe {
            assert_eq!(
                libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET),
                0,
                "setns {path}: {}",
                std::io::Error::last_os_error()
            );
            let cname = CString::new(iface.clone()).unwrap();
            let ifindex = libc::if_nametoindex(cname.as_ptr());
            assert_ne!(ifindex, 0, "{iface} not found in namespace");
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = ifindex as i32;
            addr.sll_halen = 6;
            for frame in &frames {
                addr.sll_addr[..6].copy_from_slice(&frame[..6]);
                let n = libc::sendto(
                    fd,
                    frame.as_ptr() as *const _,
                    frame.len(),
                    0,
                    &addr as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                assert_eq!(
                    n as usize,
                    frame.len(),
                    "sendto: {}",
                    std::io::Error::last_os_error()
                );
            }
            libc::close(fd);
        }
    })
    .join()
    .expect("sender thread panicked");
}
