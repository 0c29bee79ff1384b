//! A lab segment made of namespaces: a hub namespace holding a bridge that forgets every MAC
//! at once (ageing 0), so it floods every frame to every port like a hub or a SPAN port; a
//! monitor namespace whose interface is one port of it (where l2watch attaches, as on a rack
//! controller's trunk); and host namespaces, each another port, where real software runs.
//! Everything is deleted on drop, and processes started here are killed by their own PID.
use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Output, Stdio},
    time::{Duration, Instant},
};

use crate::netns::{veth_pair, Netns};

/// A host on the lab segment.
pub struct Host {
    pub ns: Netns,
    /// Its interface on the segment.
    pub iface: String,
}

impl Host {
    /// The interface's MAC address.
    pub fn mac(&self) -> String {
        let out = self
            .ns
            .exec(&["cat", &format!("/sys/class/net/{}/address", self.iface)]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Adds an IPv4 address (CIDR) to the host's interface.
    pub fn add_addr(&self, cidr: &str) {
        self.ns
            .exec(&["ip", "addr", "add", cidr, "dev", &self.iface]);
    }

    /// Starts `program args...` in the host's namespace; killed when the guard drops.
    pub fn spawn(&self, program: &str, args: &[&str]) -> Proc {
        let mut cmd = self.ns.command(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        Proc {
            child,
            what: format!("{program} {}", args.join(" ")),
        }
    }
}

/// A process started in a lab namespace; killed (by its PID) on drop.
pub struct Proc {
    pub child: Child,
    pub what: String,
}

impl Proc {
    /// Waits for the process to exit; panics with its output after `timeout`.
    pub fn wait(mut self, timeout: Duration) -> Output {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break Some(s);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stdout = read_all(self.child.stdout.take());
        let stderr = read_all(self.child.stderr.take());
        let Some(status) = status else {
            panic!(
                "{} did not finish within {timeout:?}:\n{}{}",
                self.what,
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        };
        Output {
            status,
            stdout,
            stderr,
        }
    }
}

fn read_all(pipe: Option<impl Read>) -> Vec<u8> {
    let mut v = Vec::new();
    if let Some(mut p) = pipe {
        let _ = p.read_to_end(&mut v);
    }
    v
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The lab: hub, monitor port, hosts, and a scratch directory for their files.
pub struct Lab {
    pub hub: Netns,
    pub mon: Netns,
    /// The monitor's interface (attach l2watch here, inside `mon`).
    pub mon_if: String,
    pub hosts: Vec<Host>,
    pub dir: tempfile::TempDir,
}

impl Lab {
    pub fn new() -> Lab {
        let hub = Netns::new("hub");
        hub.exec(&[
            "ip",
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "ageing_time",
            "0",
            "stp_state",
            "0",
            "mcast_snooping",
            "0",
        ]);
        hub.exec(&["ip", "link", "set", "br0", "up"]);
        let mon = Netns::new("mon");
        let (mon_if, port) = veth_pair(&mon, &hub);
        hub.exec(&["ip", "link", "set", &port, "master", "br0"]);
        Lab {
            hub,
            mon,
            mon_if,
            hosts: Vec::new(),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Adds a host port; returns its index in `hosts`.
    pub fn add_host(&mut self, prefix: &str) -> usize {
        let ns = Netns::new(prefix);
        let (iface, port) = veth_pair(&ns, &self.hub);
        self.hub
            .exec(&["ip", "link", "set", &port, "master", "br0"]);
        self.hosts.push(Host { ns, iface });
        self.hosts.len() - 1
    }

    /// A path in the lab's scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

/// Starts dnsmasq as a DHCP server only (no DNS) on `host`, which must already have an
/// address in the range's subnet. `range` is "first,last,mask,lease".
pub fn dnsmasq(host: &Host, range: &str, dir: &Path) -> Proc {
    let leases = dir.join(format!("dnsmasq-{}.leases", host.iface));
    let pid = dir.join(format!("dnsmasq-{}.pid", host.iface));
    host.spawn(
        "dnsmasq",
        &[
            "--no-daemon",
            "--conf-file=/dev/null",
            "--port=0",
            "--bind-interfaces",
            "--except-interface=lo",
            &format!("--interface={}", host.iface),
            &format!("--dhcp-range={range}"),
            &format!("--dhcp-leasefile={}", leases.display()),
            &format!("--pid-file={}", pid.display()),
            "--user=root",
            "--dhcp-authoritative",
            "--log-dhcp",
        ],
    )
}

/// Runs dhclient once in the foreground on `host`, sending `hostname`; with `-sf /bin/true`
/// it configures nothing and touches no file outside `dir`.
pub fn dhclient(host: &Host, hostname: &str, dir: &Path) -> Proc {
    let conf = dir.join(format!("dhclient-{}.conf", host.iface));
    std::fs::write(
        &conf,
        format!(
            "send host-name \"{hostname}\";\n\
             request subnet-mask, broadcast-address, routers, domain-name-servers;\n\
             timeout 20;\n"
        ),
    )
    .expect("write dhclient.conf");
    let lease = dir.join(format!("dhclient-{}.leases", host.iface));
    let pid = dir.join(format!("dhclient-{}.pid", host.iface));
    host.spawn(
        "dhclient",
        &[
            "-d",
            "-1",
            "-v",
            "-cf",
            conf.to_str().expect("utf-8"),
            "-lf",
            lease.to_str().expect("utf-8"),
            "-pf",
            pid.to_str().expect("utf-8"),
            "-sf",
            "/bin/true",
            &host.iface,
        ],
    )
}
