//! The switch-facing lab: a monitor namespace whose interfaces each face a "switch"
//! namespace over a point-to-point veth, as a rack controller's NICs face switch ports.
//!
//! | port  | the switch side                                                              |
//! |-------|------------------------------------------------------------------------------|
//! | stp   | a Linux bridge with STP on (real BPDUs); a second port to flap for topology changes, its priority to change the root |
//! | lldp  | real lldpd sending LLDP and CDP, renamed with lldpcli, a port VLAN id TLV      |
//! | lacpa, lacpb | two bond members: crafted LACPDUs (this kernel has no bonding driver), the real 802.1AX encoding |
//!
//! Every namespace has a unique name and is deleted on drop, with the daemons stopped by the
//! PID the lab started them with.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    netns::{send_frames, unique_tag, veth_pair, Netns},
    proc::Daemon,
};

/// The slow-protocols multicast address LACPDUs go to.
pub const SLOW_PROTOCOLS: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x02];

/// LACP state bits (IEEE 802.1AX).
pub mod state {
    pub const ACTIVITY: u8 = 0x01;
    pub const TIMEOUT: u8 = 0x02;
    pub const AGGREGATION: u8 = 0x04;
    pub const SYNC: u8 = 0x08;
    pub const COLLECTING: u8 = 0x10;
    pub const DISTRIBUTING: u8 = 0x20;
    pub const DEFAULTED: u8 = 0x40;
    pub const EXPIRED: u8 = 0x80;
    /// An active port in sync, collecting and distributing.
    pub const UP: u8 = ACTIVITY | AGGREGATION | SYNC | COLLECTING | DISTRIBUTING;
}

/// One side of a LACPDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LacpSide {
    pub system_priority: u16,
    pub system: [u8; 6],
    pub key: u16,
    pub port_priority: u16,
    pub port: u16,
    pub state: u8,
}

/// A LACPDU from the slow-protocols subtype on (110 bytes): actor, partner, collector and
/// terminator TLVs and the reserved tail, as 802.1AX-2008 clause 5.4.2 lays them out.
pub fn lacpdu(actor: &LacpSide, partner: &LacpSide, max_delay: u16) -> Vec<u8> {
    let mut b = vec![0x01, 0x01];
    for (kind, s) in [(1u8, actor), (2, partner)] {
        b.extend([kind, 20]);
        b.extend(s.system_priority.to_be_bytes());
        b.extend(s.system);
        b.extend(s.key.to_be_bytes());
        b.extend(s.port_priority.to_be_bytes());
        b.extend(s.port.to_be_bytes());
        b.extend([s.state, 0, 0, 0]);
    }
    b.extend([3, 16]);
    b.extend(max_delay.to_be_bytes());
    b.extend([0; 12]);
    b.extend([0, 0]);
    b.extend([0; 50]);
    b
}

/// A whole LACP frame from `src`.
pub fn lacp_frame(src: [u8; 6], actor: &LacpSide, partner: &LacpSide) -> Vec<u8> {
    let mut f = SLOW_PROTOCOLS.to_vec();
    f.extend(src);
    f.extend(0x8809u16.to_be_bytes());
    f.extend(lacpdu(actor, partner, 0));
    f
}

/// An LLDPDU from `src` (chassis id = that MAC) naming `system` and `port`, TTL 120 s.
pub fn lldp_frame(src: [u8; 6], system: &str, port: &str) -> Vec<u8> {
    let tlv = |t: u16, v: &[u8]| {
        let mut o = ((t << 9) | v.len() as u16).to_be_bytes().to_vec();
        o.extend_from_slice(v);
        o
    };
    let mut f = vec![0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e];
    f.extend(src);
    f.extend(0x88ccu16.to_be_bytes());
    f.extend(tlv(1, &[&[4u8][..], &src[..]].concat()));
    f.extend(tlv(2, &[&[5u8][..], port.as_bytes()].concat()));
    f.extend(tlv(3, &[0, 120]));
    f.extend(tlv(5, system.as_bytes()));
    f.extend(tlv(0, &[]));
    f
}

/// An 802.1D configuration BPDU from `src`, which is its own root at `priority`, with the
/// topology-change flag when `tc`.
pub fn bpdu_frame(src: [u8; 6], priority: u16, tc: bool) -> Vec<u8> {
    let mut f = vec![0x01, 0x80, 0xc2, 0x00, 0x00, 0x00];
    f.extend(src);
    f.extend(38u16.to_be_bytes());
    f.extend([0x42, 0x42, 0x03, 0, 0, 0, 0, tc as u8]);
    f.extend(priority.to_be_bytes());
    f.extend(src);
    f.extend([0, 0, 0, 0]);
    f.extend(priority.to_be_bytes());
    f.extend(src);
    f.extend([0x80, 0x01, 0, 0, 0x14, 0, 0x02, 0, 0x0f, 0]);
    f.resize(60, 0);
    f
}

/// One point-to-point link: the monitor's interface and the switch namespace's.
pub struct Port {
    pub ns: Netns,
    /// In the monitor namespace.
    pub mon_if: String,
    /// In the switch namespace.
    pub far_if: String,
}

pub struct SwitchLab {
    pub mon: Netns,
    pub stp: Port,
    pub lldp: Port,
    pub lacpa: Port,
    pub lacpb: Port,
    dir: PathBuf,
    lldpd: Option<Daemon>,
}

/// STP timers of the lab's bridge, short so a test sees changes within seconds: hello 1 s,
/// forward delay 4 s, max age 6 s (the bridge keeps the topology-change flag for max age +
/// forward delay, 10 s).
const HELLO_CS: &str = "100";
const FORWARD_DELAY_CS: &str = "400";
const MAX_AGE_CS: &str = "600";

impl SwitchLab {
    pub fn new() -> SwitchLab {
        let dir = std::env::temp_dir().join(format!("l2watch-swlab-{}", unique_tag()));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let mon = Netns::new("swmon");
        let port = |name: &str| {
            let ns = Netns::new(name);
            let (mon_if, far_if) = veth_pair(&mon, &ns);
            Port { ns, mon_if, far_if }
        };
        let (stp, lldp, lacpa, lacpb) = (port("sw1"), port("sw2"), port("swa"), port("swb"));
        let b = &stp.ns;
        b.exec(&[
            "ip",
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "1",
            "hello_time",
            HELLO_CS,
            "forward_delay",
            FORWARD_DELAY_CS,
            "max_age",
            MAX_AGE_CS,
        ]);
        b.exec(&["ip", "link", "set", &stp.far_if, "master", "br0"]);
        // A second port to flap: a veth pair inside the switch, one end in the bridge.
        b.exec(&[
            "ip", "link", "add", "flap0", "type", "veth", "peer", "name", "flap1",
        ]);
        b.exec(&["ip", "link", "set", "flap0", "master", "br0"]);
        for i in ["flap0", "flap1", "br0"] {
            b.exec(&["ip", "link", "set", i, "up"]);
        }
        SwitchLab {
            mon,
            stp,
            lldp,
            lacpa,
            lacpb,
            dir,
            lldpd: None,
        }
    }

    /// The monitor's interfaces, for `l2watch run --iface ...`.
    pub fn mon_ifaces(&self) -> [&str; 4] {
        [
            &self.stp.mon_if,
            &self.lldp.mon_if,
            &self.lacpa.mon_if,
            &self.lacpb.mon_if,
        ]
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Sets the bridge priority: the bridge is the root of its own tree, so this changes
    /// the root bridge id its BPDUs carry.
    pub fn set_bridge_priority(&self, priority: u16) {
        self.stp.ns.exec(&[
            "ip",
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "priority",
            &priority.to_string(),
        ]);
    }

    /// Takes the bridge's second port down and up again: each is a topology change.
    pub fn flap(&self) {
        self.stp.ns.exec(&["ip", "link", "set", "flap1", "down"]);
        std::thread::sleep(Duration::from_millis(300));
        self.stp.ns.exec(&["ip", "link", "set", "flap1", "up"]);
    }

    fn lldpcli(&self, args: &[&str]) -> Result<(), String> {
        let sock = self.path("lldpd.sock");
        let out = self
            .lldp
            .ns
            .command("lldpcli")
            .arg("-u")
            .arg(&sock)
            .args(args)
            .output()
            .map_err(|e| format!("lldpcli: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "lldpcli {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Starts lldpd on the lldp port (LLDP and CDPv1, sent every second, TTL 120 s) as
    /// `hostname`, announcing `pvid` as its port VLAN id (802.1 TLV). The settings are in
    /// the configuration lldpd reads before its first announcement (`-O`), so no
    /// announcement goes out under the machine's own name.
    pub fn start_lldpd(&mut self, hostname: &str, pvid: u16) -> Result<(), String> {
        let sock = self.path("lldpd.sock");
        let conf = self.path("lldpd.conf");
        let [hi, lo] = pvid.to_be_bytes();
        std::fs::write(
            &conf,
            format!(
                "configure system hostname {hostname}\n\
                 configure lldp portidsubtype ifname\n\
                 configure lldp tx-hold 120\n\
                 configure lldp tx-interval 1\n\
                 configure ports {port} lldp custom-tlv oui 00,80,c2 subtype 1 oui-info \
                 {hi:02x},{lo:02x}\n",
                port = self.lldp.far_if
            ),
        )
        .map_err(|e| format!("{}: {e}", conf.display()))?;
        let mut cmd = self.lldp.ns.command("lldpd");
        cmd.args(["-d", "-l", "-cc", "-u"])
            .arg(&sock)
            .arg("-O")
            .arg(&conf)
            .args(["-I", &self.lldp.far_if]);
        let log = self.path("lldpd.log");
        self.lldpd = Some(Daemon::spawn("lldpd", cmd, &log).map_err(|e| format!("lldpd: {e}"))?);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.lldpcli(&["show", "configuration"]).is_err() {
            if std::time::Instant::now() > deadline {
                return Err(format!("lldpd did not start: {}", log_tail(&log)));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// The system name lldpd announces.
    pub fn rename(&self, hostname: &str) -> Result<(), String> {
        self.lldpcli(&["configure", "system", "hostname", hostname])
    }

    /// The port VLAN id lldpd announces (802.1 OUI 00-80-c2, subtype 1).
    pub fn set_pvid(&self, pvid: u16) -> Result<(), String> {
        let [hi, lo] = pvid.to_be_bytes();
        let info = format!("{hi:02x},{lo:02x}");
        self.lldpcli(&[
            "configure",
            "ports",
            &self.lldp.far_if,
            "lldp",
            "custom-tlv",
            "replace",
            "oui",
            "00,80,c2",
            "subtype",
            "1",
            "oui-info",
            &info,
        ])
    }

    /// Sends `n` LACPDUs, one every 100 ms, from the switch side of `port`.
    pub fn send_lacp(
        &self,
        port: &Port,
        src: [u8; 6],
        actor: &LacpSide,
        partner: &LacpSide,
        n: usize,
    ) {
        for _ in 0..n {
            send_frames(&port.ns, &port.far_if, &[lacp_frame(src, actor, partner)]);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Default for SwitchLab {
    fn default() -> Self {
        SwitchLab::new()
    }
}

fn log_tail(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

impl Drop for SwitchLab {
    fn drop(&mut self) {
        if let Some(mut d) = self.lldpd.take() {
            d.stop(Duration::from_secs(2));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        // The namespaces drop after this, deleting their interfaces.
    }
}
