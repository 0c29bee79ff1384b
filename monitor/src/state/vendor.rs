//! MAC vendor names from the IEEE OUI registry, read from Debian's ieee-data package
//! (`/usr/share/ieee-data/oui.txt`) once, on first use. Without the file, vendors are unknown
//! (and the log says how to fix it); locally administered MACs are named as such either way.
use std::{collections::HashMap, path::Path, sync::OnceLock};

use crate::model::Mac;

/// Where Debian's ieee-data puts the registry.
pub const DEFAULT_OUI_PATH: &str = "/usr/share/ieee-data/oui.txt";

pub struct Vendors {
    by_oui: HashMap<[u8; 3], Box<str>>,
}

impl Vendors {
    /// Parses the `XX-XX-XX   (hex)\t\tName` lines of an IEEE `oui.txt`.
    pub fn parse(text: &str) -> Vendors {
        let mut by_oui = HashMap::new();
        for line in text.lines() {
            let Some((prefix, rest)) = line.split_once("(hex)") else {
                continue;
            };
            let hex: Vec<u8> = prefix
                .trim()
                .split('-')
                .filter_map(|h| u8::from_str_radix(h, 16).ok())
                .collect();
            let name = rest.trim();
            if let ([a, b, c], false) = (hex.as_slice(), name.is_empty()) {
                by_oui.insert([*a, *b, *c], name.into());
            }
        }
        Vendors { by_oui }
    }

    pub fn load(path: &Path) -> std::io::Result<Vendors> {
        Ok(Self::parse(&std::fs::read_to_string(path)?))
    }

    pub fn len(&self) -> usize {
        self.by_oui.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_oui.is_empty()
    }

    pub fn lookup(&self, mac: &Mac) -> Option<String> {
        if mac.0[0] & 0x02 != 0 {
            return Some("(locally administered)".into());
        }
        self.by_oui
            .get(&[mac.0[0], mac.0[1], mac.0[2]])
            .map(|s| s.to_string())
    }
}

/// The process-wide registry from [`DEFAULT_OUI_PATH`].
pub fn vendors() -> &'static Vendors {
    static V: OnceLock<Vendors> = OnceLock::new();
    V.get_or_init(|| match Vendors::load(Path::new(DEFAULT_OUI_PATH)) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(
                path = DEFAULT_OUI_PATH,
                error = %e,
                "MAC vendor names unavailable: install Debian's ieee-data package"
            );
            Vendors {
                by_oui: HashMap::new(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_registry_format() {
        let v = Vendors::parse(
            "00-22-72   (hex)\t\tAmerican Micro-Fuel Device Corp.\n002272     (base 16)\t\tx\n\
             00-D0-EF   (hex)\t\tIGT\n",
        );
        assert_eq!(v.len(), 2);
        assert_eq!(
            v.lookup(&Mac([0, 0xd0, 0xef, 1, 2, 3])).as_deref(),
            Some("IGT")
        );
        assert_eq!(v.lookup(&Mac([0, 1, 2, 3, 4, 5])), None);
        assert_eq!(
            v.lookup(&Mac([2, 0, 0, 0, 0, 1])).as_deref(),
            Some("(locally administered)")
        );
    }

    #[test]
    fn debian_registry_when_installed() {
        if !Path::new(DEFAULT_OUI_PATH).exists() {
            let why = "needs Debian's ieee-data (cargo xtask setup installs it)";
            assert!(
                std::env::var("L2WATCH_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
                "{why}"
            );
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED debian_registry_when_installed: {why}"
            );
            return;
        }
        let v = Vendors::load(Path::new(DEFAULT_OUI_PATH)).unwrap();
        assert!(v.len() > 20_000, "{} entries", v.len());
        // 00:00:0c is Cisco's first OUI.
        assert!(v
            .lookup(&Mac([0, 0, 0x0c, 1, 2, 3]))
            .unwrap()
            .contains("Cisco"));
    }
}
