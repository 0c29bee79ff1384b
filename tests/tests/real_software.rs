//! Every step of the standard lab (`l2watch_lab::scenario`) against the real `l2watch run` on
//! the monitor port: real dnsmasq servers and dhclient clients (obtain, renew, release), two
//! hosts claiming one IP with arping, a NIC swapped and swapped back, a storm of crafted
//! clients, and crafted VLAN/QinQ frames. Findings and events come from the agent's JSON log,
//! the device table from its database after a clean stop.
use std::time::Duration;

use l2watch_tests::{
    agent::Agent,
    lab::Lab,
    privileged,
    scenario::{self, mac_of, Step},
};
use rusqlite::Connection;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// mac, ip, hostname, source, lease server, lease seconds.
type LeaseRow = (String, String, String, String, Option<String>, Option<u32>);

fn start_agent(lab: &Lab) -> Agent {
    let db = lab.path("l2watch.db");
    let mut agent = Agent::start(
        &lab.mon,
        &[
            "run",
            "--iface",
            &lab.mon_if,
            "--db",
            db.to_str().expect("utf-8"),
            "--flush-interval",
            "200ms",
        ],
    );
    agent.wait_for("attach", WAIT, |v| v["message"] == "attached XDP program");
    agent
}

/// The first finding of `kind` opened whose evidence mentions `about`.
fn finding(agent: &mut Agent, kind: &str, about: &str) -> Value {
    agent.wait_for(kind, WAIT, |v| {
        v["target"] == "l2watch::finding"
            && v["kind"] == kind
            && v["state"] == "opened"
            && v["evidence"].as_str().is_some_and(|e| e.contains(about))
    })
}

fn step(lab: &mut Lab, s: Step) -> String {
    s.run(lab)
        .unwrap_or_else(|e| panic!("lab step {}: {e}", s.name()))
}

fn dhcp_event(v: &Value, msg_type: u8, mac: &str) -> bool {
    v["target"] == "l2watch::event"
        && v["kind"] == "dhcp"
        && v["msg_type"] == msg_type
        && v["src_mac"] == mac
}

#[test]
fn competing_dnsmasq_servers_and_a_dhclient_lease_life() {
    privileged!();
    let mut lab = scenario::standard();
    let mut agent = start_agent(&lab);
    step(&mut lab, Step::DhcpServer);
    step(&mut lab, Step::RogueDhcp);
    let summary = step(&mut lab, Step::DhcpClients);

    let competing = finding(&mut agent, "dhcp_competing_servers", "");
    let evidence = competing["evidence"].as_str().expect("evidence text");
    for server in [scenario::SERVER, scenario::ROGUE] {
        assert!(evidence.contains(server), "{evidence}");
    }
    for client in ["c1", "c2"] {
        let mac = mac_of(client);
        // DORA, then a renewal: a unicast REQUEST from the leased address to the server it
        // came from, then the release.
        agent.wait_for("DHCPDISCOVER", WAIT, |v| dhcp_event(v, 1, mac));
        let renew = agent.wait_for("renewal", WAIT, |v| {
            dhcp_event(v, 3, mac) && v["src_ip"] != "0.0.0.0"
        });
        assert_ne!(
            renew["dst_ip"], "255.255.255.255",
            "renewal is unicast: {renew}"
        );
        agent.wait_for("DHCPRELEASE", WAIT, |v| dhcp_event(v, 7, mac));
    }
    // A clean stop writes the last batch; then read the database.
    assert_eq!(agent.stop(WAIT), Some(0), "log:\n{}", agent.log());

    let conn = Connection::open(lab.path("l2watch.db")).expect("open the agent's database");
    let mut st = conn
        .prepare(
            "SELECT mac, ip, hostname, source, lease_server, lease_secs FROM devices
             WHERE hostname IS NOT NULL ORDER BY hostname",
        )
        .unwrap();
    let rows: Vec<LeaseRow> = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}\n{summary}\nlog:\n{}", agent.log());
    for ((mac, ip, host, source, server, secs), (client, want_host)) in
        rows.iter().zip([("c1", "node-1"), ("c2", "node-2")])
    {
        assert_eq!(
            (mac.as_str(), host.as_str(), source.as_str()),
            (mac_of(client), want_host, "dhcp")
        );
        let last: u8 = ip.rsplit('.').next().unwrap().parse().unwrap();
        assert!((100..200).contains(&last), "{ip} is outside both ranges");
        assert!(summary.contains(ip.as_str()), "{ip} not in {summary}");
        let server = server.as_deref().expect("lease server");
        assert!(
            [scenario::SERVER, scenario::ROGUE].contains(&server),
            "{server}"
        );
        assert_eq!(*secs, Some(scenario::LEASE_SECS));
    }
    let servers: i64 = conn
        .query_row("SELECT count(*) FROM dhcp_servers", [], |r| r.get(0))
        .unwrap();
    assert_eq!(servers, 2);
    let stored: i64 = conn
        .query_row(
            "SELECT count(*) FROM findings WHERE kind = 'dhcp_competing_servers'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, 1);
}

#[test]
fn arping_duplicate_a_swapped_nic_a_storm_and_tagged_frames() {
    privileged!();
    let mut lab = scenario::standard();
    let mut agent = start_agent(&lab);

    step(&mut lab, Step::DuplicateIp);
    let dup = finding(&mut agent, "duplicate_ip", scenario::DUPLICATE);
    let evidence = dup["evidence"].as_str().expect("evidence text");
    for mac in [mac_of("dupa"), mac_of("dupb")] {
        assert!(evidence.contains(mac), "{mac} not in {evidence}");
    }
    assert!(evidence.contains(scenario::DUPLICATE), "{evidence}");

    step(&mut lab, Step::MacChange);
    let changed = finding(&mut agent, "mac_changed", scenario::MOVER);
    let back = finding(&mut agent, "mac_flip_flop", scenario::MOVER);
    for f in [&changed, &back] {
        let e = f["evidence"].as_str().expect("evidence text");
        assert!(e.contains(scenario::MOVER), "{e}");
        assert!(e.contains(scenario::MOVER_OTHER_MAC), "{e}");
    }

    step(&mut lab, Step::DhcpStorm);
    finding(&mut agent, "dhcp_storm", "");
    finding(&mut agent, "dhcp_starvation", "");

    step(&mut lab, Step::VlanFrames);
    let (vid, (outer, inner)) = (scenario::VLAN.to_string(), scenario::QINQ);
    let qinq = format!("{outer}.{inner}");
    agent.wait_for("ARP in the VLAN", WAIT, |v| {
        v["target"] == "l2watch::event" && v["vlan"] == vid.as_str() && v["tags"] == 1
    });
    agent.wait_for("DHCP in the VLAN", WAIT, |v| {
        v["kind"] == "dhcp" && v["vlan"] == vid.as_str() && v["msg_type"] == 1
    });
    agent.wait_for("ARP in QinQ", WAIT, |v| {
        v["target"] == "l2watch::event" && v["vlan"] == qinq.as_str() && v["tags"] == 2
    });
    assert_eq!(agent.stop(WAIT), Some(0), "log:\n{}", agent.log());

    // One problem, one finding: what was open at the stop, and every kind ever opened, per
    // address, from the database.
    let db = Connection::open(lab.path("l2watch.db")).expect("open db");
    let about = |ip: &str, open_only: bool| -> Vec<(String, String)> {
        let sql = format!(
            "SELECT kind, interface FROM findings WHERE subject = ?1 || ' ' || ?2 {} ORDER BY kind",
            if open_only { "AND closed IS NULL" } else { "" }
        );
        let mut st = db.prepare(&sql).expect("query");
        st.query_map([lab.mon_if.as_str(), ip], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect()
    };
    let iface = lab.mon_if.clone();
    assert_eq!(
        about(scenario::DUPLICATE, true),
        [("duplicate_ip".to_string(), iface.clone())],
        "the duplicate is exactly one open finding, on the interface by name"
    );
    let mover: Vec<String> = about(scenario::MOVER, false)
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(
        mover,
        ["mac_changed", "mac_flip_flop"],
        "a swapped NIC is a change and a flip back, never a duplicate"
    );
}
