//! Interfaces as the kernel sees them (from /sys/class/net): which ones auto mode monitors,
//! and whether a monitored one is up, down or gone.
use std::{ffi::CString, fs, path::Path};

use crate::model::Iface;

/// ARPHRD_ETHER.
const ETHER: u32 = 1;
const IFF_UP: u32 = 0x1;
const IFF_LOOPBACK: u32 = 0x8;

fn read_u32(path: &Path) -> Option<u32> {
    let s = fs::read_to_string(path).ok()?;
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// What auto mode found: the interfaces to watch, and the ones left out with the reason.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Discovery {
    pub chosen: Vec<String>,
    pub skipped: Vec<(String, &'static str)>,
}

/// Every up, non-loopback Ethernet interface under `sys` (normally /sys/class/net). Bridges
/// are left out: XDP on a bridge sees only traffic to the host, and its ports are watched
/// instead.
pub fn discover(sys: &Path) -> Discovery {
    let mut d = Discovery::default();
    let Ok(entries) = fs::read_dir(sys) else {
        return d;
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        let dir = sys.join(&name);
        let flags = read_u32(&dir.join("flags")).unwrap_or(0);
        let why = if flags & IFF_LOOPBACK != 0 {
            Some("loopback")
        } else if read_u32(&dir.join("type")) != Some(ETHER) {
            Some("not Ethernet")
        } else if flags & IFF_UP == 0 {
            Some("down")
        } else if dir.join("bridge").exists() {
            Some("bridge (its ports are watched instead)")
        } else {
            None
        };
        match why {
            Some(w) => d.skipped.push((name, w)),
            None => d.chosen.push(name),
        }
    }
    d
}

/// The interface's index, if it exists.
pub fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// The interface's name for `ifindex`, if one exists now.
pub fn name_of(ifindex: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer holds IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let c = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    c.to_str().ok().map(str::to_owned)
}

/// Names for the ifindexes kernel records carry. Every index an interface was attached under
/// is kept (a re-created device keeps its name under a new index), so a late event or a
/// counter from before a reattach still gets the right name; bounded by [`MAX_INDEXES`].
#[derive(Default)]
pub struct IfaceNames {
    by_index: std::sync::RwLock<crate::model::FastMap<u32, Iface>>,
}

/// Ifindexes remembered; past it an unknown index is looked up each time.
pub const MAX_INDEXES: usize = 4096;

impl IfaceNames {
    /// Records that `name` is attached under `ifindex`.
    pub fn insert(&self, ifindex: u32, name: &str) -> Iface {
        let iface = Iface::named(name);
        let mut m = self.by_index.write().expect("iface names");
        if m.len() < MAX_INDEXES || m.contains_key(&ifindex) {
            m.insert(ifindex, iface);
        }
        iface
    }

    /// A resolver for one batch of events, which come in runs per interface: a run's name is
    /// looked up once.
    pub fn batch(&self) -> BatchNames<'_> {
        BatchNames {
            names: self,
            last: None,
        }
    }

    /// The name behind `ifindex`: one it was attached under, else the kernel's current name,
    /// else `ifindex-N` (an index that no longer exists and was never attached here).
    pub fn resolve(&self, ifindex: u32) -> Iface {
        if let Some(i) = self.by_index.read().expect("iface names").get(&ifindex) {
            return *i;
        }
        match name_of(ifindex) {
            Some(n) => self.insert(ifindex, &n),
            None => Iface::named(&format!("ifindex-{ifindex}")),
        }
    }
}

/// [`IfaceNames::resolve`] with the last answer kept.
pub struct BatchNames<'a> {
    names: &'a IfaceNames,
    last: Option<(u32, Iface)>,
}

impl BatchNames<'_> {
    pub fn resolve(&mut self, ifindex: u32) -> Iface {
        match self.last {
            Some((i, name)) if i == ifindex => name,
            _ => {
                let name = self.names.resolve(ifindex);
                self.last = Some((ifindex, name));
                name
            }
        }
    }
}

/// Whether the interface is administratively up.
pub fn is_up(name: &str) -> bool {
    read_u32(&Path::new("/sys/class/net").join(name).join("flags")).is_some_and(|f| f & IFF_UP != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(root: &Path, name: &str, ty: u32, flags: u32, bridge: bool) {
        let d = root.join(name);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("type"), format!("{ty}\n")).unwrap();
        fs::write(d.join("flags"), format!("{flags:#x}\n")).unwrap();
        if bridge {
            fs::create_dir(d.join("bridge")).unwrap();
        }
    }

    #[test]
    fn auto_mode_takes_up_ethernet_and_says_why_it_skips_the_rest() {
        let t = tempfile::tempdir().unwrap();
        iface(t.path(), "lo", 772, 0x9, false);
        iface(t.path(), "eth0", 1, 0x1003, false);
        iface(t.path(), "eth1", 1, 0x1002, false);
        iface(t.path(), "br0", 1, 0x1003, true);
        iface(t.path(), "wg0", 65534, 0x91, false);
        let d = discover(t.path());
        assert_eq!(d.chosen, ["eth0"]);
        let skipped: Vec<_> = d.skipped.iter().map(|(n, w)| format!("{n}: {w}")).collect();
        assert_eq!(
            skipped,
            [
                "br0: bridge (its ports are watched instead)",
                "eth1: down",
                "lo: loopback",
                "wg0: not Ethernet"
            ]
        );
    }
}
