//! The Debian package as an operator installs it: `cargo xtask deb` builds it with cargo-deb
//! and lintian finds no error; `dpkg -i` on this machine installs the binary, the hardened
//! unit (which `systemd-analyze verify` accepts), the sysusers file, the annotated config as a
//! conffile, the rules, dashboard and MAAS shim; postinst creates the user and the state
//! directory and starts nothing; `dpkg --purge` leaves only what Debian policy keeps (the
//! system user). The package is purged on drop, also on failure.
use std::{path::Path, process::Command};

use l2watch_tests::{privileged, xtask_bin};

/// What the package owns on the system, and what purge must remove.
const OWNED: &[&str] = &[
    "/usr/bin/l2watch",
    "/etc/l2watch/l2watch.toml",
    "/etc/l2watch",
    "/usr/lib/sysusers.d/l2watch.conf",
    "/usr/share/l2watch/prometheus/l2watch.rules.yml",
    "/usr/share/l2watch/grafana/l2watch-dashboard.json",
    "/usr/share/l2watch/maas/maas-netmon",
    "/usr/share/l2watch",
    "/usr/share/doc/l2watch",
    "/usr/share/lintian/overrides/l2watch",
    "/var/lib/l2watch",
];

fn out(cmd: &mut Command) -> (bool, String) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn installed() -> bool {
    out(Command::new("dpkg-query").args(["-W", "-f=${Status}", "l2watch"]))
        .1
        .contains("install ok installed")
}

/// Purges the package on drop, if this test installed it.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        if installed() {
            let _ = Command::new("dpkg").args(["--purge", "l2watch"]).output();
        }
    }
}

/// The unit file as installed (cargo-deb puts it under /usr/lib or /lib).
fn unit_path() -> Option<&'static str> {
    [
        "/usr/lib/systemd/system/l2watch.service",
        "/lib/systemd/system/l2watch.service",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
}

/// Processes running the installed binary.
fn running_installed() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|p| p == Path::new("/usr/bin/l2watch"))
        })
        .collect()
}

#[test]
fn the_deb_passes_lintian_installs_verifies_and_purges_clean() {
    privileged!();
    assert!(
        !installed(),
        "an l2watch package is already installed on this machine; this test installs and \
         purges its own and will not touch an operator's"
    );
    // `cargo xtask test` builds the package and runs lintian on it (errors fail) before the
    // tests, and names it in L2WATCH_DEB; run alone, this test builds it the same way.
    let deb = match std::env::var("L2WATCH_DEB") {
        Ok(p) => p,
        Err(_) => {
            let (ok, log) = out(Command::new(xtask_bin()).arg("deb"));
            assert!(ok, "cargo xtask deb failed:\n{log}");
            assert!(!log.contains("\nE: "), "lintian errors:\n{log}");
            log.lines()
                .rev()
                .find(|l| l.trim().ends_with(".deb"))
                .unwrap_or_else(|| panic!("no package path in:\n{log}"))
                .trim()
                .to_string()
        }
    };
    // lintian again here, so the test stands on its own.
    let (ok, lint) = out(Command::new("lintian").args(["--fail-on", "error", &deb]));
    assert!(ok, "lintian:\n{lint}");
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        deb.ends_with(&format!("l2watch_{version}-1_amd64.deb"))
            || deb.ends_with(&format!("l2watch_{version}_amd64.deb")),
        "{deb}"
    );

    // The package's files and conffiles.
    let (_, contents) = out(Command::new("dpkg-deb").args(["-c", &deb]));
    for f in [
        "./usr/bin/l2watch",
        "./etc/l2watch/l2watch.toml",
        "./usr/lib/sysusers.d/l2watch.conf",
        "l2watch.service",
        "./usr/share/l2watch/prometheus/l2watch.rules.yml",
        "./usr/share/l2watch/grafana/l2watch-dashboard.json",
        "./usr/share/l2watch/maas/maas-netmon",
    ] {
        assert!(contents.contains(f), "{f} not in the package:\n{contents}");
    }
    let (_, conffiles) = out(Command::new("dpkg-deb").args(["-f", &deb, "Package"]));
    assert_eq!(conffiles.trim(), "l2watch");
    let (_, info) = out(Command::new("dpkg-deb").args(["-I", &deb, "conffiles"]));
    assert!(info.contains("/etc/l2watch/l2watch.toml"), "{info}");

    // Install.
    let guard = Installed;
    let (ok, log) = out(Command::new("dpkg").args(["-i", &deb]));
    assert!(ok, "dpkg -i failed:\n{log}");
    let (ok, v) = out(Command::new("/usr/bin/l2watch").arg("--version"));
    assert!(ok && v.contains(version), "{v}");
    let (ok, user) = out(Command::new("getent").args(["passwd", "l2watch"]));
    assert!(ok, "postinst did not create the l2watch user");
    assert!(user.contains("/var/lib/l2watch"), "{user}");
    let meta = std::fs::metadata("/var/lib/l2watch").expect("the state directory");
    assert!(meta.is_dir());
    let unit = unit_path().expect("the unit file is installed");
    let (ok, log) = out(Command::new("systemd-analyze").args(["verify", unit]));
    assert!(ok, "systemd-analyze verify {unit}:\n{log}");
    // No service is started by the package here (this machine runs no systemd).
    assert!(
        running_installed().is_empty(),
        "the package started /usr/bin/l2watch"
    );

    // Purge: nothing of the package is left; the system user stays, as policy asks.
    let (ok, log) = out(Command::new("dpkg").args(["--purge", "l2watch"]));
    assert!(ok, "dpkg --purge failed:\n{log}");
    assert!(!installed());
    let left: Vec<&str> = OWNED
        .iter()
        .copied()
        .chain(unit_path())
        .filter(|p| Path::new(p).exists())
        .collect();
    assert!(left.is_empty(), "left after purge: {left:?}");
    let dpkg_left: Vec<String> = std::fs::read_dir("/var/lib/dpkg/info")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("l2watch."))
        .collect();
    assert!(dpkg_left.is_empty(), "{dpkg_left:?}");
    drop(guard);
}
