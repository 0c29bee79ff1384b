//! `cargo xtask lab` and `cargo xtask demo` as an operator runs them: the lab outlives the
//! command that built it, steps run on it from later commands, `lab down` leaves nothing; the
//! demo shows the agent catching the scenario and, on Ctrl-C, stops and deletes every
//! namespace it made.
use std::{path::Path, process::Command, time::Duration};

use l2watch_tests::{
    l2watch_bin, privileged,
    proc::{start_time, Proc},
    xtask_bin,
};
use serde_json::Value;

fn xtask(args: &[&str]) -> (bool, String) {
    let out = Command::new(xtask_bin())
        .args(args)
        .output()
        .expect("run xtask");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn netns_exists(name: &str) -> bool {
    Path::new("/var/run/netns").join(name).exists()
}

/// Takes the lab in `dir` down when dropped, so a failing assertion leaves no namespace or
/// daemon behind (`lab down` on a lab already down only says so).
struct LabDown(String);

impl Drop for LabDown {
    fn drop(&mut self) {
        let _ = xtask(&["lab", "down", "--dir", &self.0]);
    }
}

#[test]
fn lab_up_outlives_the_command_runs_steps_and_lab_down_leaves_nothing() {
    privileged!();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    let dir_s = dir.to_str().unwrap();
    let _down = LabDown(dir_s.to_string());
    let (ok, out) = xtask(&["lab", "up", "--dir", dir_s]);
    assert!(ok, "{out}");
    assert!(out.contains("authorised dnsmasq serves"), "{out}");

    let state: Value =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    let namespaces: Vec<String> = state["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["ns"].as_str().unwrap().to_string())
        .chain([
            state["hub"].as_str().unwrap().into(),
            state["mon"].as_str().unwrap().into(),
        ])
        .collect();
    assert_eq!(namespaces.len(), 10);
    let dnsmasq = &state["daemons"][0];
    let (pid, start) = (
        dnsmasq["pid"].as_u64().unwrap() as u32,
        dnsmasq["start"].as_u64().unwrap(),
    );
    // The command has exited; the lab and its DHCP server have not.
    assert!(namespaces.iter().all(|n| netns_exists(n)), "{namespaces:?}");
    assert_eq!(start_time(pid), Some(start), "dnsmasq is not running");

    let (ok, out) = xtask(&["lab", "up", "--dir", dir_s]);
    assert!(!ok && out.contains("a lab is already up"), "{out}");
    let (ok, out) = xtask(&["lab", "step", "--dir", dir_s, "no-such-step"]);
    assert!(!ok && out.contains("dhcp-storm"), "lists the steps: {out}");
    let (ok, out) = xtask(&["lab", "step", "--dir", dir_s, "rogue-dhcp", "duplicate-ip"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("both answered srv's arping for 10.77.0.50"),
        "{out}"
    );
    let (ok, out) = xtask(&["lab", "status", "--dir", dir_s]);
    assert!(
        ok && out.contains("running: dnsmasq-srv, dnsmasq-rogue"),
        "{out}"
    );

    let (ok, out) = xtask(&["lab", "down", "--dir", dir_s]);
    assert!(ok, "{out}");
    let left: Vec<_> = namespaces.iter().filter(|n| netns_exists(n)).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_ne!(start_time(pid), Some(start), "dnsmasq still runs");
    assert!(!dir.exists(), "{} still exists", dir.display());
    let (ok, out) = xtask(&["lab", "down", "--dir", dir_s]);
    assert!(ok && out.contains("no lab is up"), "{out}");
}

#[test]
fn demo_shows_findings_and_ctrl_c_removes_every_namespace() {
    privileged!();
    let mut demo = Command::new(xtask_bin());
    demo.args(["demo", "--plain", "--refresh", "1", "--agent"])
        .arg(l2watch_bin());
    let mut demo = Proc::spawn(demo, Default::default()).expect("start the demo");
    // The demo names its namespaces, then the view shows the rogue server the scenario starts.
    let line = demo
        .wait_for_line("demo: namespaces ", Duration::from_secs(60))
        .unwrap();
    let during: Vec<String> = line
        .trim_start_matches("demo: namespaces ")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(during.len(), 10, "{during:?}");
    assert!(during.iter().all(|n| netns_exists(n)), "{during:?}");
    demo.wait_for_line("dhcp_rogue_server", Duration::from_secs(90))
        .unwrap();
    demo.wait_for_line("duplicate_ip", Duration::from_secs(30))
        .unwrap();

    // Ctrl-C: SIGINT to the demo (the terminal sends it to the foreground process group; the
    // lab's processes run in their own groups and are stopped by the demo).
    // SAFETY: kill on our own child's PID.
    unsafe { libc::kill(demo.pid() as i32, libc::SIGINT) };
    let done = demo
        .wait(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("the demo did not stop within 30 s after Ctrl-C: {e}"));
    let out = done.output;
    assert!(done.status.success(), "{}:\n{out}", done.status);
    assert!(out.contains("no namespace left"), "{out}");
    let left: Vec<_> = during.iter().filter(|n| netns_exists(n)).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
