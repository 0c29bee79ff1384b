//! The systemd unit and the Kubernetes DaemonSet in deploy/: the unit passes
//! `systemd-analyze verify` and scores OK in `systemd-analyze security`; the agent really
//! works with nothing but the unit's user-level privileges (an unprivileged UID, exactly the
//! unit's ambient capabilities, no new privileges) and really fails without CAP_BPF; the
//! DaemonSet asks for the same capabilities and ships a config the agent accepts. There is no
//! systemd (PID 1) or Kubernetes here, so the unit's sandbox itself is checked statically.
use std::{
    collections::BTreeSet,
    process::Command,
    time::{Duration, Instant},
};

use l2watch_tests::{
    http::get,
    l2watch_bin, privileged,
    scenario::{self, Step},
    workspace_root,
};

fn unit() -> String {
    std::fs::read_to_string(workspace_root().join("deploy/systemd/l2watch.service")).unwrap()
}

/// Values of `key=` lines in the unit.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(String::from)
        .collect()
}

/// The capabilities the unit grants, as lower-case names without CAP_ (setpriv's spelling).
fn unit_caps() -> BTreeSet<String> {
    let caps = unit_values(&unit(), "AmbientCapabilities");
    assert_eq!(caps.len(), 1, "{caps:?}");
    caps[0]
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_ascii_lowercase())
        .collect()
}

#[test]
fn systemd_unit_verifies_scores_ok_and_grants_only_xdp_capabilities() {
    let unit = unit();
    let want: BTreeSet<String> = ["bpf", "net_admin", "perfmon"].map(String::from).into();
    assert_eq!(unit_caps(), want);
    assert_eq!(
        unit_values(&unit, "CapabilityBoundingSet"),
        unit_values(&unit, "AmbientCapabilities")
    );
    for (key, value) in [
        ("User", "l2watch"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("StateDirectory", "l2watch"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
    ] {
        assert_eq!(unit_values(&unit, key), [value], "{key}");
    }
    // verify checks that ExecStart exists: point it at the binary under test.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("l2watch.service");
    std::fs::write(
        &path,
        unit.replace("/usr/bin/l2watch", l2watch_bin().to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split_once("l2watch.service: ")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no exposure score in:\n{text}"));
    println!("systemd-analyze security exposure: {score}");
    assert!(score <= 3.0, "exposure {score} (10 = unprotected):\n{text}");
}

/// Runs the agent in the lab's monitor namespace as `nobody` with exactly `caps`, no new
/// privileges, through setpriv (util-linux) as systemd would with the unit's settings.
fn start_confined(lab: &mut l2watch_tests::lab::Lab, name: &str, caps: &BTreeSet<String>) {
    let list = |sign: &str| {
        std::iter::once("-all".to_string())
            .chain(caps.iter().map(|c| format!("{sign}{c}")))
            .collect::<Vec<_>>()
            .join(",")
    };
    let (inh, amb, bnd) = (list("+"), list("+"), list("+"));
    let bin = l2watch_bin();
    let mon_if = lab.mon_if.clone();
    lab.start_daemon(
        name,
        None,
        "setpriv",
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--no-new-privs",
            &format!("--inh-caps={inh}"),
            &format!("--ambient-caps={amb}"),
            &format!("--bounding-set={bnd}"),
            bin.to_str().unwrap(),
            "--log-format",
            "json",
            "run",
            "--iface",
            &mon_if,
            "--no-db",
            "--listen",
            "127.0.0.1:9731",
        ],
    )
    .unwrap();
}

fn wait_log(lab: &mut l2watch_tests::lab::Lab, name: &str, needle: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = lab.daemon(name).unwrap();
        let log = std::fs::read_to_string(&d.log).unwrap_or_default();
        if log.contains(needle) {
            return Ok(());
        }
        if !d.alive() || Instant::now() > deadline {
            return Err(log);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn agent_works_with_only_the_units_capabilities_and_not_without_cap_bpf() {
    privileged!();
    let caps = unit_caps();
    let mut lab = scenario::standard();
    start_confined(&mut lab, "agent", &caps);
    wait_log(&mut lab, "agent", "\"message\":\"ready\"")
        .unwrap_or_else(|log| panic!("not ready:\n{log}"));
    // It really runs unprivileged, with exactly those capabilities.
    let pid = lab.daemon("agent").unwrap().pid;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(field("Uid:"), ["65534"; 4]);
    // CAP_NET_ADMIN = 12, CAP_PERFMON = 38, CAP_BPF = 39.
    let want = format!("{:016x}", (1u64 << 12) | (1 << 38) | (1 << 39));
    assert_eq!(field("CapEff:"), [want.as_str()], "{status}");
    assert_eq!(field("NoNewPrivs:"), ["1"]);

    Step::DuplicateIp.run(&mut lab).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = get(&lab.mon, 9731, "/api/v1/findings");
        if code == 200 && body.contains("duplicate_ip") {
            break;
        }
        assert!(Instant::now() < deadline, "no duplicate_ip finding: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(lab.stop_daemon("agent"));

    // Without CAP_BPF it cannot load the program, and says so.
    let mut fewer = caps.clone();
    fewer.remove("bpf");
    start_confined(&mut lab, "agent-no-bpf", &fewer);
    let log = wait_log(&mut lab, "agent-no-bpf", "\"message\":\"ready\"")
        .expect_err("ready without CAP_BPF");
    assert!(
        log.contains("Operation not permitted") && log.contains("CAP_BPF"),
        "no clear error without CAP_BPF:\n{log}"
    );
}

#[test]
fn daemonset_uses_the_units_capabilities_and_a_config_the_agent_accepts() {
    use yaml_rust2::{Yaml, YamlLoader};
    let path = workspace_root().join("deploy/kubernetes/l2watch.yaml");
    let docs =
        YamlLoader::load_from_str(&std::fs::read_to_string(&path).unwrap()).expect("valid YAML");
    let by_kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(k))
            .unwrap_or_else(|| panic!("no {k} in {}", path.display()))
    };
    let ds = by_kind("DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(
        pod["hostNetwork"].as_bool(),
        Some(true),
        "XDP attaches to the node's NICs"
    );
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"].as_bool(), Some(false));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    let list = |y: &Yaml| -> BTreeSet<String> {
        y.as_vec()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_ascii_lowercase())
            .collect()
    };
    assert_eq!(
        list(&sc["capabilities"]["drop"]),
        ["all".to_string()].into()
    );
    assert_eq!(
        list(&sc["capabilities"]["add"]),
        unit_caps(),
        "same as the systemd unit"
    );

    // The shipped config parses and validates with the agent's own loader, and the port it
    // listens on is the one the pod, its annotations and the Service publish.
    let toml = by_kind("ConfigMap")["data"]["l2watch.toml"]
        .as_str()
        .unwrap();
    let cfg = l2watch::config::Config::parse(toml, std::path::Path::new("configmap"))
        .unwrap_or_else(|e| panic!("{e}"));
    cfg.validate(std::path::Path::new("configmap"))
        .unwrap_or_else(|e| panic!("{e}"));
    let port = cfg.listen.port() as i64;
    assert_eq!(c["ports"][0]["containerPort"].as_i64(), Some(port));
    let ann = &ds["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(
        ann["prometheus.io/port"].as_str(),
        Some(port.to_string().as_str())
    );
    assert_eq!(
        by_kind("Service")["spec"]["ports"][0]["port"].as_i64(),
        Some(port)
    );
    let args: Vec<&str> = c["args"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let mount = c["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|m| m["name"].as_str() == Some("config"))
        .unwrap()["mountPath"]
        .as_str()
        .unwrap();
    assert_eq!(args, ["run", "--config", &format!("{mount}/l2watch.toml")]);
    let sm = by_kind("ServiceMonitor");
    assert_eq!(sm["spec"]["endpoints"][0]["port"].as_str(), Some("metrics"));
    assert_eq!(
        sm["spec"]["endpoints"][0]["path"].as_str(),
        Some("/metrics")
    );
}
