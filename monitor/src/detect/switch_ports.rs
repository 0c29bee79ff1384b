//! What each monitored port should see from its switch (`[engine.switch]`), shared by the
//! switch-port detectors (`lldp_neighbour`, `vlan_mismatch`, `stp`, `lacp`): the native VLAN
//! it should be in, whether it is an edge (host) port, the bond it belongs to, and the
//! thresholds. Bond membership comes from this config and, where the kernel has bonding,
//! from sysfs (`<sysfs_net>/<member>/bonding_slave` and its `master` link).
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

/// One interface's expectations.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortExpect {
    /// The untagged VLAN the switch port should be in: `vlan_mismatch` when LLDP's port VLAN
    /// id or CDP's native VLAN says another.
    pub native_vlan: Option<u16>,
    /// A host-facing port: any BPDU here is `stp_bpdu_on_edge`.
    pub edge: bool,
    /// The bond this interface is a member of: `lacp_partner_mismatch` when members see
    /// different partners.
    pub bond: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SwitchConfig {
    /// Per interface name.
    pub ports: BTreeMap<String, PortExpect>,
    /// VLAN id -> the IPv4 subnet its hosts use (CIDR): untagged ARP from a subnet on an
    /// interface whose switch advertises another VLAN is `vlan_mismatch`.
    pub vlan_subnets: BTreeMap<String, String>,
    /// Also learn bond membership from sysfs.
    pub bonds_from_sysfs: bool,
    pub sysfs_net: PathBuf,
    /// A new LLDP/CDP neighbour on an interface whose known neighbour is at least this old
    /// is a change (the cable moved); younger ones are neighbours appearing together.
    pub neighbour_settle_secs: u64,
    /// Topology changes (a run of TC-flagged BPDUs, or of TCNs) on one spanning tree within
    /// `churn_window_secs` that make it churn.
    pub churn_changes: u32,
    pub churn_window_secs: u64,
    /// A LACP port out of sync for longer than this is `lacp_not_in_sync`.
    pub lacp_sync_secs: u64,
    /// Findings close after this long without a new signal. The kernel re-reports an
    /// unchanged PDU once per `kernel.refresh_secs`, so this must be longer than that.
    pub quiet_secs: u64,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        SwitchConfig {
            ports: BTreeMap::new(),
            vlan_subnets: BTreeMap::new(),
            bonds_from_sysfs: true,
            sysfs_net: PathBuf::from("/sys/class/net"),
            neighbour_settle_secs: 10,
            churn_changes: 5,
            churn_window_secs: 600,
            lacp_sync_secs: 30,
            quiet_secs: 300,
        }
    }
}

impl SwitchConfig {
    pub fn port(&self, iface: &str) -> Option<&PortExpect> {
        self.ports.get(iface)
    }

    /// The subnets by VLAN, parsed. Errors name the entry (checked at config load).
    pub fn subnets(&self) -> Result<Vec<(u16, ipnet_lite::Net4)>, String> {
        let mut out = Vec::new();
        for (vlan, cidr) in &self.vlan_subnets {
            let v = vlan
                .parse::<u16>()
                .ok()
                .filter(|v| (1..4095).contains(v))
                .ok_or_else(|| format!("{vlan:?} is not a VLAN id (1 to 4094)"))?;
            let net = cidr.parse::<ipnet_lite::Net4>().map_err(|e| {
                format!("{cidr:?} (VLAN {vlan}) is not an IPv4 subnet like 10.77.0.0/24: {e}")
            })?;
            out.push((v, net));
        }
        Ok(out)
    }

    /// Bond name -> member interfaces: the config's, and sysfs's when `bonds_from_sysfs`.
    pub fn bonds(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (iface, p) in &self.ports {
            if let Some(b) = &p.bond {
                out.entry(b.clone()).or_default().push(iface.clone());
            }
        }
        if self.bonds_from_sysfs {
            for (iface, bond) in sysfs_bonds(&self.sysfs_net) {
                let m = out.entry(bond).or_default();
                if !m.contains(&iface) {
                    m.push(iface);
                }
            }
        }
        for m in out.values_mut() {
            m.sort();
        }
        out
    }
}

/// Member interface -> its bond, from [`SwitchConfig::bonds`]: resolved once when a detector
/// or the engine is built (or reloaded), never per event or per scrape.
pub fn bond_of(cfg: &SwitchConfig) -> BTreeMap<String, String> {
    cfg.bonds()
        .into_iter()
        .flat_map(|(b, m)| m.into_iter().map(move |i| (i, b.clone())))
        .collect()
}

/// (member, bond) for every interface under `root` with a `bonding_slave` directory: its
/// `master` link names the bond. Unreadable entries are skipped (no bonding driver, no
/// bonds).
pub fn sysfs_bonds(root: &Path) -> Vec<(String, String)> {
    let Ok(dir) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in dir.flatten() {
        let path = e.path();
        if !path.join("bonding_slave").is_dir() {
            continue;
        }
        let Ok(master) = std::fs::read_link(path.join("master")) else {
            continue;
        };
        if let (Some(m), Some(i)) = (master.file_name(), path.file_name()) {
            out.push((
                i.to_string_lossy().into_owned(),
                m.to_string_lossy().into_owned(),
            ));
        }
    }
    out.sort();
    out
}

/// A tiny IPv4 CIDR, enough for `vlan_subnets` (no crate offline covers this better than
/// three lines).
pub mod ipnet_lite {
    use std::net::Ipv4Addr;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Net4 {
        pub addr: Ipv4Addr,
        pub len: u8,
    }

    impl Net4 {
        pub fn contains(&self, ip: Ipv4Addr) -> bool {
            let mask = if self.len == 0 {
                0
            } else {
                u32::MAX << (32 - self.len as u32)
            };
            u32::from(ip) & mask == u32::from(self.addr) & mask
        }
    }

    impl std::fmt::Display for Net4 {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }

    impl std::str::FromStr for Net4 {
        type Err = String;
        fn from_str(s: &str) -> Result<Self, String> {
            let (a, l) = s.split_once('/').ok_or("no /length")?;
            let addr = a.parse::<Ipv4Addr>().map_err(|e| e.to_string())?;
            let len = l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= 32)
                .ok_or("the length must be 0 to 32")?;
            Ok(Net4 { addr, len })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bonds_come_from_config_and_from_a_sysfs_tree() {
        let root = std::env::temp_dir().join(format!("l2watch-sysfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (iface, bond) in [
            ("eth2", Some("bond0")),
            ("eth3", Some("bond0")),
            ("eth4", None),
        ] {
            let d = root.join(iface);
            std::fs::create_dir_all(&d).unwrap();
            if let Some(b) = bond {
                std::fs::create_dir_all(d.join("bonding_slave")).unwrap();
                std::fs::create_dir_all(root.join(b)).unwrap();
                std::os::unix::fs::symlink(format!("../{b}"), d.join("master")).unwrap();
            }
        }
        let mut cfg = SwitchConfig {
            sysfs_net: root.clone(),
            ..Default::default()
        };
        cfg.ports.insert(
            "eth9".into(),
            PortExpect {
                bond: Some("bond1".into()),
                ..Default::default()
            },
        );
        let bonds = cfg.bonds();
        assert_eq!(bonds["bond0"], ["eth2", "eth3"]);
        assert_eq!(bonds["bond1"], ["eth9"]);
        assert_eq!(bonds.len(), 2);
        cfg.bonds_from_sysfs = false;
        assert_eq!(cfg.bonds().len(), 1);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn subnets_are_checked_with_the_entry_named() {
        let mut cfg = SwitchConfig::default();
        cfg.vlan_subnets.insert("100".into(), "10.77.0.0/24".into());
        let s = cfg.subnets().unwrap();
        assert!(s[0].1.contains("10.77.0.9".parse().unwrap()));
        assert!(!s[0].1.contains("10.78.0.9".parse().unwrap()));
        cfg.vlan_subnets.insert("5000".into(), "10.0.0.0/8".into());
        assert!(cfg.subnets().unwrap_err().contains("\"5000\""));
        cfg.vlan_subnets.remove("5000");
        cfg.vlan_subnets.insert("200".into(), "10.0.0.0".into());
        assert!(cfg.subnets().unwrap_err().contains("VLAN 200"));
    }
}
