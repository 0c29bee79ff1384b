//! Real software on a lab segment (a flooding bridge in namespaces): two dnsmasq servers and
//! dhclient clients, and two hosts claiming one address with arping. The real `l2watch run`
//! watches the monitor port; its findings come from its log, its device table from its
//! database after a clean stop.
use std::time::Duration;

use l2watch_tests::{
    agent::Agent,
    lab::{dhclient, dnsmasq, Lab},
    require_privileged,
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

fn finding(agent: &mut Agent, kind: &str) -> Value {
    agent.wait_for(kind, WAIT, |v| {
        v["target"] == "l2watch::finding" && v["kind"] == kind && v["state"] == "opened"
    })
}

#[test]
fn two_dnsmasq_servers_compete_and_dhclient_clients_get_leases() {
    if !require_privileged("two_dnsmasq_servers_compete_and_dhclient_clients_get_leases") {
        return;
    }
    let mut lab = Lab::new();
    let (s1, s2) = (lab.add_host("srv"), lab.add_host("srv"));
    let (c1, c2) = (lab.add_host("cli"), lab.add_host("cli"));
    let mut agent = start_agent(&lab);

    lab.hosts[s1].add_addr("10.50.0.1/24");
    lab.hosts[s2].add_addr("10.50.0.2/24");
    let _d1 = dnsmasq(
        &lab.hosts[s1],
        "10.50.0.100,10.50.0.149,255.255.255.0,10m",
        lab.dir.path(),
    );
    let _d2 = dnsmasq(
        &lab.hosts[s2],
        "10.50.0.150,10.50.0.199,255.255.255.0,10m",
        lab.dir.path(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let macs = [lab.hosts[c1].mac(), lab.hosts[c2].mac()];
    let _a = dhclient(&lab.hosts[c1], "node-a", lab.dir.path());
    let _b = dhclient(&lab.hosts[c2], "node-b", lab.dir.path());

    let competing = finding(&mut agent, "dhcp_competing_servers");
    let evidence = competing["evidence"].as_str().expect("evidence text");
    for server in ["10.50.0.1", "10.50.0.2"] {
        assert!(evidence.contains(server), "{evidence}");
    }
    // Both clients finish DISCOVER/OFFER/REQUEST/ACK.
    agent.wait_for_n("two DHCPACKs", 2, WAIT, |v| {
        v["target"] == "l2watch::event" && v["kind"] == "dhcp" && v["msg_type"] == 5
    });
    // Give the last batch one flush interval, then stop cleanly and read the database.
    std::thread::sleep(Duration::from_millis(600));
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
    assert_eq!(rows.len(), 2, "{rows:?}\nlog:\n{}", agent.log());
    for ((mac, ip, host, source, server, secs), (want_mac, want_host)) in
        rows.iter().zip(macs.iter().zip(["node-a", "node-b"]))
    {
        assert_eq!(
            (mac, host.as_str(), source.as_str()),
            (want_mac, want_host, "dhcp")
        );
        let last: u8 = ip.rsplit('.').next().unwrap().parse().unwrap();
        assert!((100..200).contains(&last), "{ip} is outside both ranges");
        let server = server.as_deref().expect("lease server");
        assert!(["10.50.0.1", "10.50.0.2"].contains(&server), "{server}");
        assert_eq!(*secs, Some(600), "10-minute lease");
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
fn two_hosts_announcing_one_address_with_arping_raise_duplicate_ip() {
    if !require_privileged("two_hosts_announcing_one_address_with_arping_raise_duplicate_ip") {
        return;
    }
    let mut lab = Lab::new();
    let (a, b) = (lab.add_host("dupa"), lab.add_host("dupb"));
    let mut agent = start_agent(&lab);
    for h in [a, b] {
        lab.hosts[h].add_addr("10.50.0.77/24");
    }
    let announce = |h: usize| {
        let host = &lab.hosts[h];
        let out = host
            .spawn(
                "arping",
                &["-U", "-c", "1", "-I", &host.iface, "10.50.0.77"],
            )
            .wait(WAIT);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A, then B, then A again: both alive, unlike a MAC change where the old MAC goes quiet.
    announce(a);
    announce(b);
    announce(a);
    let dup = finding(&mut agent, "duplicate_ip");
    let evidence = dup["evidence"].as_str().expect("evidence text");
    for mac in [lab.hosts[a].mac(), lab.hosts[b].mac()] {
        assert!(evidence.contains(&mac), "{mac} not in {evidence}");
    }
    assert!(evidence.contains("10.50.0.77"), "{evidence}");
    assert_eq!(agent.stop(WAIT), Some(0), "log:\n{}", agent.log());
}
