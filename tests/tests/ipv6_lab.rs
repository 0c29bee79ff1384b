//! The lab's IPv6 steps against the real `l2watch run` on the monitor port: radvd on srv
//! (hosts autoconfigure with the kernel's SLAAC and DAD and ping it), dnsmasq serving DHCPv6
//! to dhclient -6, a rogue radvd, THC's kill_router6, two hosts taking one address (the
//! kernel's DAD fails), and crafted tagged copies in VLAN 100 beside a clean VLAN 200. Every
//! planted problem is found, with its evidence, and the clean part raises nothing.
use std::time::Duration;

use l2watch_lab::ipv6;
use l2watch_tests::{
    agent::Agent,
    http,
    lab::Lab,
    privileged,
    scenario::{self, mac_of, Step},
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
const PORT: u16 = 9741;

fn step(lab: &mut Lab, s: Step) -> String {
    s.run(lab)
        .unwrap_or_else(|e| panic!("lab step {}: {e}", s.name()))
}

fn api(lab: &Lab, path: &str) -> Value {
    http::json(&lab.mon, PORT, path)
}

fn wait_api(lab: &Lab, path: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    http::wait_json(&lab.mon, PORT, path, what, WAIT, pred)
}

/// The open findings of `kind`.
fn open(lab: &Lab, kind: &str) -> Vec<Value> {
    api(lab, "/api/v1/findings")["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["kind"] == kind)
        .cloned()
        .collect()
}

fn wait_finding(lab: &Lab, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let v = wait_api(lab, "/api/v1/findings", kind, |v| {
        v["findings"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["kind"] == kind && pred(f)))
    });
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == kind && pred(f))
        .cloned()
        .unwrap()
}

fn ipv6_kinds(lab: &Lab) -> Vec<(String, String)> {
    api(lab, "/api/v1/findings")["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| {
            let k = f["kind"].as_str().unwrap_or("");
            k.starts_with("ipv6_") || k.starts_with("dhcpv6_") || k == "dad_dos"
        })
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["vlan"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn real_ipv6_software_and_every_planted_problem() {
    privileged!();
    let mut lab = scenario::standard();
    let config = lab.path("l2watch.toml");
    // Routers count as established 3 s after they are first seen (10 s by default), so
    // the rogue can come soon after.
    std::fs::write(&config, "[engine.ipv6_routers]\nestablished_secs = 3\n").unwrap();
    let mut agent = Agent::serving(&lab.mon, &lab.mon_if, PORT, Some(&config), WAIT);

    // A legitimate router; hosts autoconfigure and talk to it.
    step(&mut lab, Step::Ipv6Router);
    let srv_ll = ipv6::link_local(mac_of("srv"));
    let routers = wait_api(&lab, "/api/v1/ipv6/routers", "srv as a router", |v| {
        v["routers"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["mac"] == mac_of("srv")))
    });
    let srv = routers["routers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["mac"] == mac_of("srv"))
        .unwrap();
    assert_eq!(srv["ip"], srv_ll.as_str(), "{srv}");
    assert_eq!(srv["prefixes"][0], "2001:db8:77::/64", "{srv}");
    assert_eq!(srv["last"]["rdnss"][0], "2001:db8:77::53", "{srv}");
    // c1's SLAAC address, from the MAC (EUI-64), learnt from its neighbour discovery.
    let c1_slaac = format!(
        "2001:db8:77::{}",
        &ipv6::link_local(mac_of("c1"))["fe80::".len()..]
    )
    .parse::<std::net::Ipv6Addr>()
    .unwrap()
    .to_string();
    let devices = wait_api(
        &lab,
        "/api/v1/devices?family=6",
        "c1's SLAAC address",
        |v| {
            v["devices"]
                .as_array()
                .is_some_and(|d| d.iter().any(|d| d["ip"] == c1_slaac.as_str()))
        },
    );
    let row = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["ip"] == c1_slaac.as_str())
        .unwrap();
    assert_eq!(
        (row["mac"].as_str(), row["kind"].as_str()),
        (Some(mac_of("c1")), Some("eui64"))
    );
    assert_eq!(row["family"], 6);
    assert!(
        devices["devices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["family"] == 6),
        "family=6 returns IPv6 rows only"
    );
    // Everything so far is legitimate.
    assert_eq!(ipv6_kinds(&lab), Vec::<(String, String)>::new());

    // DHCPv6: the server appears by DUID, c1's leased address is bound to it.
    step(&mut lab, Step::Dhcpv6);
    // The row appears with the ADVERTISE; the REPLY follows a moment later.
    let servers = wait_api(
        &lab,
        "/api/v1/dhcpv6/servers",
        "the DHCPv6 server's reply",
        |v| v["servers"][0]["replies"].as_u64().is_some_and(|n| n >= 1),
    );
    let s = &servers["servers"][0];
    assert!(s["replies"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["macs"][0], mac_of("srv"), "{s}");
    wait_api(
        &lab,
        "/api/v1/devices?family=6",
        "c1's DHCPv6 address",
        |v| {
            v["devices"].as_array().is_some_and(|d| {
                d.iter()
                    .any(|d| d["kind"] == "dhcpv6" && d["mac"] == mac_of("c1"))
            })
        },
    );
    assert!(open(&lab, "dhcpv6_competing_servers").is_empty());

    // A rogue router with another prefix, after srv is established.
    std::thread::sleep(Duration::from_secs(3));
    step(&mut lab, Step::RogueRouter);
    let rogue = wait_finding(&lab, "ipv6_rogue_router", |f| {
        f["evidence"]["router"]["mac"] == mac_of("rogue")
    });
    assert_eq!(rogue["evidence"]["reason"], "new_prefix", "{rogue}");
    assert_eq!(
        rogue["evidence"]["new_prefixes"][0], "2001:db8:bad::/64",
        "{rogue}"
    );
    assert_eq!(
        rogue["evidence"]["established"][0]["mac"],
        mac_of("srv"),
        "{rogue}"
    );

    // kill_router6 in srv's name.
    step(&mut lab, Step::RouterSpoof);
    let spoof = wait_finding(&lab, "ipv6_router_lifetime_spoof", |_| true);
    assert_eq!(
        spoof["evidence"]["spoofing_mac"],
        mac_of("crafter"),
        "{spoof}"
    );
    assert_eq!(spoof["evidence"]["owner_mac"], mac_of("srv"), "{spoof}");
    assert_eq!(
        spoof["evidence"]["claimed_address"],
        srv_ll.as_str(),
        "{spoof}"
    );

    // Two hosts, one address: dupb's DAD probe meets dupa's.
    step(&mut lab, Step::Ipv6Duplicate);
    let dup = wait_finding(&lab, "ipv6_duplicate_address", |f| {
        f["subject"]
            .as_str()
            .is_some_and(|s| s.ends_with(ipv6::DUPLICATE))
    });
    let e = &dup["evidence"];
    assert_eq!(e["prober"], mac_of("dupb"), "{dup}");
    assert_eq!(e["other"], mac_of("dupa"), "{dup}");
    assert!(
        e["prober_nonce"].is_string(),
        "Linux sends a DAD nonce: {dup}"
    );

    // Tagged copies: the spoof and the duplicate in VLAN 100, nothing in VLAN 200.
    step(&mut lab, Step::Ipv6VlanFrames);
    let vlan = ipv6::VLAN.to_string();
    wait_finding(&lab, "ipv6_router_lifetime_spoof", |f| {
        f["vlan"] == vlan.as_str()
    });
    wait_finding(&lab, "ipv6_duplicate_address", |f| {
        f["vlan"] == vlan.as_str()
    });
    std::thread::sleep(Duration::from_secs(1));
    let clean = ipv6::CLEAN_VLAN.to_string();
    let mut got = ipv6_kinds(&lab);
    got.sort();
    let want: Vec<(String, String)> = [
        ("ipv6_duplicate_address", "100"),
        ("ipv6_duplicate_address", "untagged"),
        ("ipv6_rogue_router", "untagged"),
        ("ipv6_router_lifetime_spoof", "100"),
        ("ipv6_router_lifetime_spoof", "untagged"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(
        got, want,
        "exactly the planted problems, none in VLAN {clean}"
    );
    // The clean VLAN's router and probe are there, as inventory.
    let routers = api(&lab, "/api/v1/ipv6/routers");
    assert!(
        routers["routers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["vlan"] == clean.as_str()),
        "{routers:#}"
    );
    let metrics = http::get(&lab.mon, PORT, "/metrics").1;
    assert!(
        l2watch_tests::prom::sum(&metrics, "l2watch_ipv6_routers", &[]) >= 4.0,
        "srv, rogue, crafter's spoof and the two crafted routers"
    );
    assert_eq!(agent.stop(WAIT), Some(0), "log:\n{}", agent.log());
}
