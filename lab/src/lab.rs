//! A lab segment made of namespaces: a hub namespace holding a bridge that forgets every MAC
//! at once (ageing 0), so it floods every frame to every port like a hub or a SPAN port; a
//! monitor namespace whose interface is one port of it (where l2watch attaches, as on a rack
//! controller's trunk); and host namespaces, each another port, where real software runs.
//!
//! Dropping a [`Lab`] stops its daemons, deletes its namespaces and its directory, also when a
//! test panics. [`Lab::persist`] hands all of it to a state file instead, which
//! [`Lab::load`] takes back (`cargo xtask lab up`, then `lab step` or `lab down`).
use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{atomic::AtomicBool, Arc},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::{
    netns::{send_frames, unique_tag, veth_pair, Netns},
    proc::{Daemon, Finished, Proc},
};

/// A host on the lab segment.
pub struct Host {
    /// Its role in the lab ("srv", "c1", ...).
    pub name: String,
    pub ns: Netns,
    /// Its interface on the segment.
    pub iface: String,
    abort: Arc<AtomicBool>,
}

impl Host {
    /// The interface's MAC address.
    pub fn mac(&self) -> String {
        let out = self
            .ns
            .exec(&["cat", &format!("/sys/class/net/{}/address", self.iface)]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Sets the interface's MAC address (down, set, up).
    pub fn set_mac(&self, mac: &str) {
        self.ns.exec(&["ip", "link", "set", &self.iface, "down"]);
        self.ns
            .exec(&["ip", "link", "set", &self.iface, "address", mac]);
        self.ns.exec(&["ip", "link", "set", &self.iface, "up"]);
    }

    /// Adds an IPv4 address (CIDR) to the host's interface.
    pub fn add_addr(&self, cidr: &str) {
        self.ns
            .exec(&["ip", "addr", "add", cidr, "dev", &self.iface]);
    }

    /// Removes an IPv4 address (CIDR) from the host's interface.
    pub fn del_addr(&self, cidr: &str) {
        self.ns
            .exec(&["ip", "addr", "del", cidr, "dev", &self.iface]);
    }

    /// `program args...` inside the host's namespace.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = self.ns.command(program);
        cmd.args(args);
        cmd
    }

    /// Starts `program args...` in the host's namespace; killed when the guard drops.
    pub fn spawn(&self, program: &str, args: &[&str]) -> Proc {
        Proc::spawn(self.command(program, args), self.abort.clone())
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
    }

    /// Runs `program args...` to the end; an error (with its output) unless it exits 0.
    pub fn run(&self, program: &str, args: &[&str], timeout: Duration) -> Result<Finished, String> {
        let done = self.spawn(program, args).wait(timeout)?;
        if !done.status.success() {
            return Err(format!(
                "{program} {} on {} failed ({}):\n{}",
                args.join(" "),
                self.name,
                done.status,
                done.output
            ));
        }
        Ok(done)
    }

    /// Sends raw frames from the host's interface (AF_PACKET).
    pub fn send(&self, frames: &[Vec<u8>]) {
        send_frames(&self.ns, &self.iface, frames);
    }
}

/// The lab: hub, monitor port, hosts, daemons, and a directory for their files.
pub struct Lab {
    pub hub: Netns,
    pub mon: Netns,
    /// The monitor's interface (attach l2watch here, inside `mon`).
    pub mon_if: String,
    pub hosts: Vec<Host>,
    dir: PathBuf,
    daemons: Vec<Daemon>,
    abort: Arc<AtomicBool>,
}

/// What [`Lab::persist`] writes and [`Lab::load`] reads.
#[derive(Serialize, Deserialize)]
struct State {
    dir: PathBuf,
    hub: String,
    mon: String,
    mon_if: String,
    hosts: Vec<HostState>,
    daemons: Vec<DaemonState>,
}

impl State {
    fn read(path: &Path) -> Result<State, String> {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&text)
            .map_err(|e| format!("{} is not a lab state file: {e}", path.display()))
    }
}

#[derive(Serialize, Deserialize)]
struct HostState {
    name: String,
    ns: String,
    iface: String,
}

#[derive(Serialize, Deserialize)]
struct DaemonState {
    name: String,
    pid: u32,
    start: u64,
    log: PathBuf,
}

impl Lab {
    /// A lab with a fresh directory under the system's temp dir.
    pub fn new() -> Lab {
        Lab::in_dir(std::env::temp_dir().join(format!("l2watch-lab-{}", unique_tag())))
    }

    /// A lab keeping its files in `dir` (created; deleted with the lab).
    pub fn in_dir(dir: PathBuf) -> Lab {
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
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
        // The bridge's receive path moves each frame's outer VLAN tag into metadata; with tx
        // VLAN offload on, veth would deliver it to the monitor that way and XDP, which reads
        // only the frame's bytes, would see it untagged. A switch's SPAN port sends the tags
        // on the wire: so does this port, with the offload off.
        hub.exec(&[
            "ethtool",
            "-K",
            &port,
            "txvlan",
            "off",
            "tx-vlan-stag-hw-insert",
            "off",
        ]);
        Lab {
            hub,
            mon,
            mon_if,
            hosts: Vec::new(),
            dir,
            daemons: Vec::new(),
            abort: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Adds a host port named `name`; returns its index in `hosts`.
    pub fn add_host(&mut self, name: &str) -> usize {
        let ns = Netns::new(name);
        let (iface, port) = veth_pair(&ns, &self.hub);
        self.hub
            .exec(&["ip", "link", "set", &port, "master", "br0"]);
        self.hosts.push(Host {
            name: name.to_string(),
            ns,
            iface,
            abort: self.abort.clone(),
        });
        self.hosts.len() - 1
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("the lab has no host {name}"))
    }

    /// The lab's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A path in the lab's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Set to cut every wait of the lab's processes short (Ctrl-C in the demo).
    pub fn abort_flag(&self) -> Arc<AtomicBool> {
        self.abort.clone()
    }

    /// Starts a background process named `name` (its log is `<dir>/<name>.log`) in host
    /// `host`'s namespace, or the monitor's when `host` is None.
    pub fn start_daemon(
        &mut self,
        name: &str,
        host: Option<&str>,
        program: &str,
        args: &[&str],
    ) -> Result<&mut Daemon, String> {
        if self.daemons.iter_mut().any(|d| d.name == name && d.alive()) {
            return Err(format!("{name} is already running"));
        }
        self.daemons.retain(|d| d.name != name);
        let ns = match host {
            Some(h) => &self.host(h).ns,
            None => &self.mon,
        };
        let mut cmd = ns.command(program);
        cmd.args(args);
        let log = self.path(&format!("{name}.log"));
        let d = Daemon::spawn(name, cmd, &log).map_err(|e| format!("cannot start {name}: {e}"))?;
        self.daemons.push(d);
        Ok(self.daemons.last_mut().expect("just pushed"))
    }

    /// The daemon named `name`, if the lab started it.
    pub fn daemon(&mut self, name: &str) -> Option<&mut Daemon> {
        self.daemons.iter_mut().find(|d| d.name == name)
    }

    /// Stops the daemon named `name`; false when there was none.
    pub fn stop_daemon(&mut self, name: &str) -> bool {
        let Some(i) = self.daemons.iter().position(|d| d.name == name) else {
            return false;
        };
        let mut d = self.daemons.remove(i);
        d.stop(Duration::from_secs(3));
        true
    }

    /// Names of the daemons still running.
    pub fn running_daemons(&mut self) -> Vec<String> {
        self.daemons
            .iter_mut()
            .filter_map(|d| d.alive().then(|| d.name.clone()))
            .collect()
    }

    /// Writes the lab's state to `state` and lets everything outlive this process.
    pub fn persist(self, state: &Path) -> std::io::Result<()> {
        let s = State {
            dir: self.dir.clone(),
            hub: self.hub.name.clone(),
            mon: self.mon.name.clone(),
            mon_if: self.mon_if.clone(),
            hosts: self
                .hosts
                .iter()
                .map(|h| HostState {
                    name: h.name.clone(),
                    ns: h.ns.name.clone(),
                    iface: h.iface.clone(),
                })
                .collect(),
            daemons: self
                .daemons
                .iter()
                .map(|d| DaemonState {
                    name: d.name.clone(),
                    pid: d.pid,
                    start: d.start,
                    log: d.log.clone(),
                })
                .collect(),
        };
        let tmp = state.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&s).expect("state is JSON"))?;
        std::fs::rename(&tmp, state)?;
        // Nothing of it may be torn down now: the state file owns it.
        std::mem::forget(self);
        Ok(())
    }

    /// Takes back a lab written by [`Lab::persist`]. Dropping the result tears it down.
    pub fn load(state: &Path) -> Result<Lab, String> {
        let s = State::read(state)?;
        let abort = Arc::new(AtomicBool::new(false));
        let mut hosts = Vec::new();
        for h in s.hosts {
            hosts.push(Host {
                ns: Netns::adopt(&h.ns)?,
                name: h.name,
                iface: h.iface,
                abort: abort.clone(),
            });
        }
        Ok(Lab {
            hub: Netns::adopt(&s.hub)?,
            mon: Netns::adopt(&s.mon)?,
            mon_if: s.mon_if,
            hosts,
            dir: s.dir,
            daemons: s
                .daemons
                .into_iter()
                .map(|d| Daemon::adopt(d.name, d.pid, d.start, d.log))
                .collect(),
            abort,
        })
    }

    /// Tears down whatever a state file lists, also when parts are already gone: daemons (by
    /// PID, if still theirs), namespaces, the directory, then the state file. Returns what it
    /// removed.
    pub fn teardown(state: &Path) -> Result<Vec<String>, String> {
        let s = State::read(state)?;
        let mut done = Vec::new();
        for d in s.daemons.into_iter().rev() {
            let mut daemon = Daemon::adopt(d.name.clone(), d.pid, d.start, d.log);
            if daemon.alive() {
                done.push(format!("stopped {} (pid {})", d.name, d.pid));
            }
            drop(daemon);
        }
        let names = s.hosts.into_iter().map(|h| h.ns).chain([s.mon, s.hub]);
        for ns in names {
            if let Ok(n) = Netns::adopt(&ns) {
                drop(n);
                done.push(format!("deleted namespace {ns}"));
            }
        }
        if s.dir.exists() {
            let _ = std::fs::remove_dir_all(&s.dir);
            done.push(format!("removed {}", s.dir.display()));
        }
        match std::fs::remove_file(state) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("{}: {e}", state.display()))
            }
            _ => Ok(done),
        }
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Daemons first (newest first), while their namespaces still exist; the namespaces
        // go when the fields drop.
        while let Some(d) = self.daemons.pop() {
            drop(d);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
