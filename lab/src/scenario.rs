//! The standard lab and its scenario steps. Hosts have fixed, readable MACs (02:77:...) and
//! addresses in 10.77.0.0/24, so a demo or a test can name what it expects:
//!
//! | host    | MAC               | address      | role                                   |
//! |---------|-------------------|--------------|----------------------------------------|
//! | srv     | 02:77:00:00:00:01 | 10.77.0.1    | the authorised DHCP server (dnsmasq)   |
//! | rogue   | 02:77:00:00:00:02 | 10.77.0.2    | a competing DHCP server (dnsmasq)      |
//! | c1, c2  | 02:77:00:00:01:0x | from DHCP    | dhclient clients                       |
//! | dupa    | 02:77:00:00:02:01 | 10.77.0.50   | holds the address dupb also claims     |
//! | dupb    | 02:77:00:00:02:02 | (10.77.0.50) |                                        |
//! | mover   | 02:77:00:00:03:01 | 10.77.0.60   | its NIC is swapped, then swapped back  |
//! | crafter | 02:77:00:00:04:01 | none         | sends crafted frames (storm, VLANs)    |
//!
//! Every step runs real software (dnsmasq, dhclient, arping) except where the kernel has no
//! way to produce the traffic: VLAN and QinQ tags (no CONFIG_VLAN_8021Q here) and a storm of
//! hundreds of distinct clients, which are crafted and sent with AF_PACKET.
use std::time::Duration;

use crate::{
    frames::{self, Bootp, Ip, BROADCAST, L2, TPID_8021AD, TPID_8021Q},
    lab::Lab,
};

/// The lab's IPv4 subnet.
pub const SUBNET: &str = "10.77.0.0/24";
/// The authorised DHCP server's address.
pub const SERVER: &str = "10.77.0.1";
/// The competing server's address.
pub const ROGUE: &str = "10.77.0.2";
/// The address two hosts claim in [`Step::DuplicateIp`].
pub const DUPLICATE: &str = "10.77.0.50";
/// The address whose MAC changes in [`Step::MacChange`].
pub const MOVER: &str = "10.77.0.60";
/// The NIC `mover` is swapped to, and back from.
pub const MOVER_OTHER_MAC: &str = "02:77:00:00:03:99";
/// DHCP lease time the lab's servers hand out.
pub const LEASE_SECS: u32 = 600;
/// Renewal time (DHCP option 58) the servers send, so a client renews within seconds.
pub const RENEW_SECS: u32 = 3;
/// Distinct clients in one [`Step::DhcpStorm`].
pub const STORM_CLIENTS: usize = 600;
/// VLANs of [`Step::VlanFrames`]: an 802.1Q VLAN and a QinQ pair (outer 802.1ad, inner 802.1Q).
pub const VLAN: u16 = 100;
pub const QINQ: (u16, u16) = (200, 300);

const WAIT: Duration = Duration::from_secs(30);

/// (name, MAC, static address) of the standard lab's hosts.
pub const HOSTS: &[(&str, &str, Option<&str>)] = &[
    ("srv", "02:77:00:00:00:01", Some("10.77.0.1/24")),
    ("rogue", "02:77:00:00:00:02", Some("10.77.0.2/24")),
    ("c1", "02:77:00:00:01:01", None),
    ("c2", "02:77:00:00:01:02", None),
    ("dupa", "02:77:00:00:02:01", Some("10.77.0.50/24")),
    ("dupb", "02:77:00:00:02:02", None),
    ("mover", "02:77:00:00:03:01", Some("10.77.0.60/24")),
    ("crafter", "02:77:00:00:04:01", None),
];

/// The MAC of standard host `name`.
pub fn mac_of(name: &str) -> &'static str {
    HOSTS
        .iter()
        .find(|h| h.0 == name)
        .unwrap_or_else(|| panic!("no standard host {name}"))
        .1
}

/// Adds the standard hosts to `lab`.
pub fn populate(lab: &mut Lab) {
    for (name, mac, addr) in HOSTS {
        let i = lab.add_host(name);
        let host = &lab.hosts[i];
        host.set_mac(mac);
        if let Some(a) = addr {
            host.add_addr(a);
        }
    }
}

/// A standard lab in a fresh temp directory.
pub fn standard() -> Lab {
    let mut lab = Lab::new();
    populate(&mut lab);
    lab
}

/// One step of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    DhcpServer,
    RogueDhcp,
    RogueDhcpStop,
    DhcpClients,
    DuplicateIp,
    MacChange,
    DhcpStorm,
    VlanFrames,
    Ipv6Router,
    Dhcpv6,
    RogueRouter,
    RouterSpoof,
    Ipv6Duplicate,
    Ipv6VlanFrames,
    SlowDhcp,
    PxeClient,
    PxeConflict,
    DeadVlan,
    HealthyVlan,
}

impl Step {
    pub const ALL: &[Step] = &[
        Step::DhcpServer,
        Step::RogueDhcp,
        Step::RogueDhcpStop,
        Step::DhcpClients,
        Step::DuplicateIp,
        Step::MacChange,
        Step::DhcpStorm,
        Step::VlanFrames,
        Step::Ipv6Router,
        Step::Dhcpv6,
        Step::RogueRouter,
        Step::RouterSpoof,
        Step::Ipv6Duplicate,
        Step::Ipv6VlanFrames,
        Step::SlowDhcp,
        Step::PxeClient,
        Step::PxeConflict,
        Step::DeadVlan,
        Step::HealthyVlan,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::DhcpServer => "dhcp-server",
            Step::RogueDhcp => "rogue-dhcp",
            Step::RogueDhcpStop => "rogue-dhcp-stop",
            Step::DhcpClients => "dhcp-clients",
            Step::DuplicateIp => "duplicate-ip",
            Step::MacChange => "mac-change",
            Step::Ipv6Router => "ipv6-router",
            Step::Dhcpv6 => "dhcpv6",
            Step::RogueRouter => "rogue-router",
            Step::RouterSpoof => "router-spoof",
            Step::Ipv6Duplicate => "ipv6-duplicate",
            Step::Ipv6VlanFrames => "ipv6-vlan-frames",
            Step::SlowDhcp => "slow-dhcp",
            Step::PxeClient => "pxe-client",
            Step::PxeConflict => "pxe-conflict",
            Step::DeadVlan => "dead-vlan",
            Step::HealthyVlan => "healthy-vlan",
            Step::DhcpStorm => "dhcp-storm",
            Step::VlanFrames => "vlan-frames",
        }
    }

    /// One line on what the step does.
    pub fn about(self) -> &'static str {
        match self {
            Step::DhcpServer => "start the authorised dnsmasq on srv (10.77.0.1)",
            Step::RogueDhcp => "start a competing dnsmasq on rogue (10.77.0.2)",
            Step::RogueDhcpStop => "stop the competing dnsmasq",
            Step::DhcpClients => {
                "dhclient on c1 and c2: obtain a lease, renew it (unicast REQUEST), release it"
            }
            Step::DuplicateIp => {
                "dupb takes 10.77.0.50 while dupa holds it; both answer srv's arping"
            }
            Step::MacChange => {
                "mover's NIC is swapped (new MAC on 10.77.0.60), then swapped back; arping each time"
            }
            Step::DhcpStorm => "600 crafted clients send DHCPDISCOVER within 3 s",
            Step::VlanFrames => "crafted ARP and DHCP in VLAN 100 and QinQ 200/300",
            Step::Ipv6Router => {
                "radvd on srv advertises 2001:db8:77::/64; c1, c2, dupa autoconfigure and ping it"
            }
            Step::Dhcpv6 => "dnsmasq on srv serves DHCPv6; dhclient -6 on c1 takes a lease",
            Step::RogueRouter => "radvd on rogue advertises 2001:db8:bad::/64 for 6 s",
            Step::RouterSpoof => "THC kill_router6 on crafter: lifetime 0 in srv's name",
            Step::Ipv6Duplicate => "dupb takes 2001:db8:77::50 while dupa holds it (DAD fails)",
            Step::Ipv6VlanFrames => {
                "crafted IPv6 in VLAN 100 (router spoof, duplicate probes) and a clean VLAN 200"
            }
            Step::SlowDhcp => "srv's dnsmasq restarted with --dhcp-reply-delay=2; c2 bound 3 times",
            Step::PxeClient => "dhclient on c1 as a PXE client (vendor class, x64 UEFI)",
            Step::PxeConflict => {
                "srv and rogue offer different boot files; c1 asks as a PXE client (x64 UEFI)"
            }
            Step::DeadVlan => "crafted DISCOVERs from 3 clients in VLAN 300, where no server is",
            Step::HealthyVlan => "crafted DORA of 3 clients in VLAN 200, answered in ms",
        }
    }

    pub fn parse(name: &str) -> Option<Step> {
        Step::ALL.iter().copied().find(|s| s.name() == name)
    }

    /// Runs the step on a standard lab; returns what happened, in one line.
    pub fn run(self, lab: &mut Lab) -> Result<String, String> {
        match self {
            Step::DhcpServer => {
                start_dnsmasq(lab, "srv", "10.77.0.100,10.77.0.149")?;
                Ok(format!(
                    "authorised dnsmasq serves 10.77.0.100-149 from {SERVER}"
                ))
            }
            Step::RogueDhcp => {
                start_dnsmasq(lab, "rogue", "10.77.0.150,10.77.0.199")?;
                Ok(format!(
                    "competing dnsmasq serves 10.77.0.150-199 from {ROGUE}"
                ))
            }
            Step::RogueDhcpStop => Ok(if lab.stop_daemon("dnsmasq-rogue") {
                "competing dnsmasq stopped".to_string()
            } else {
                "no competing dnsmasq was running".to_string()
            }),
            Step::DhcpClients => {
                let lab = &*lab;
                let (a, b) = std::thread::scope(|s| {
                    let a = s.spawn(|| dhcp_client_cycle(lab, "c1", "node-1"));
                    let b = dhcp_client_cycle(lab, "c2", "node-2");
                    (a.join().expect("client thread"), b)
                });
                Ok(format!("{}; {}", a?, b?))
            }
            Step::DuplicateIp => duplicate_ip(lab),
            Step::MacChange => mac_change(lab),
            Step::DhcpStorm => {
                dhcp_storm(lab, STORM_CLIENTS, Duration::from_secs(3));
                Ok(format!("{STORM_CLIENTS} crafted clients sent DHCPDISCOVER"))
            }
            Step::VlanFrames => {
                vlan_frames(lab);
                Ok(format!(
                    "crafted ARP + DHCPDISCOVER in VLAN {VLAN} and ARP in QinQ {}.{}",
                    QINQ.0, QINQ.1
                ))
            }
            Step::Ipv6Router => crate::ipv6::router(lab),
            Step::Dhcpv6 => crate::ipv6::dhcpv6(lab),
            Step::RogueRouter => crate::ipv6::rogue_router(lab),
            Step::RouterSpoof => crate::ipv6::router_spoof(lab),
            Step::Ipv6Duplicate => crate::ipv6::duplicate(lab),
            Step::Ipv6VlanFrames => crate::ipv6::vlan_frames(lab),
            Step::SlowDhcp => crate::dhcp_health::slow_server(lab),
            Step::PxeClient => crate::dhcp_health::pxe_client(lab),
            Step::PxeConflict => crate::dhcp_health::pxe_conflict(lab),
            Step::DeadVlan => crate::dhcp_health::dead_vlan(lab),
            Step::HealthyVlan => crate::dhcp_health::healthy_vlan(lab),
        }
    }
}

/// Starts dnsmasq on `host` as a DHCP server only (no DNS), for `range` ("first,last") of the
/// lab subnet, with a [`LEASE_SECS`] lease and a [`RENEW_SECS`] renewal time. Waits until it
/// serves.
pub fn start_dnsmasq(lab: &mut Lab, host: &str, range: &str) -> Result<(), String> {
    start_dnsmasq_with(lab, host, range, &[])
}

/// [`start_dnsmasq`] with `extra` options (a reply delay, a boot file).
pub fn start_dnsmasq_with(
    lab: &mut Lab,
    host: &str,
    range: &str,
    extra: &[&str],
) -> Result<(), String> {
    let iface = lab.host(host).iface.clone();
    let leases = lab.path(&format!("dnsmasq-{host}.leases"));
    let pid = lab.path(&format!("dnsmasq-{host}.pid"));
    let args = [
        "--no-daemon".to_string(),
        "--log-facility=-".to_string(),
        "--conf-file=/dev/null".to_string(),
        "--port=0".to_string(),
        "--bind-interfaces".to_string(),
        "--except-interface=lo".to_string(),
        format!("--interface={iface}"),
        format!("--dhcp-range={range},255.255.255.0,{LEASE_SECS}"),
        format!("--dhcp-option=option:T1,{RENEW_SECS}"),
        format!("--dhcp-option=option:T2,{}", LEASE_SECS / 2),
        format!("--dhcp-leasefile={}", leases.display()),
        format!("--pid-file={}", pid.display()),
        "--user=root".to_string(),
        "--dhcp-authoritative".to_string(),
        "--log-dhcp".to_string(),
        // dnsmasq pings an address before offering it to a new client and waits for the
        // echo to time out: first offers then take seconds, which l2watch reports as
        // dhcp_slow (threshold 1 s). The lab's servers answer at once; the slow-dhcp step
        // delays its server on purpose.
        "--no-ping".to_string(),
    ];
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    let name = format!("dnsmasq-{host}");
    lab.start_daemon(&name, Some(host), "dnsmasq", &args)?;
    // Serving once it has logged its range; it exits at once on a bad option or address.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let d = lab.daemon(&name).expect("just started");
        let log = std::fs::read_to_string(&d.log).unwrap_or_default();
        if log.contains("DHCP, IP range") {
            return Ok(());
        }
        if !d.alive() || std::time::Instant::now() >= deadline {
            return Err(format!("{name} did not start serving:\n{}", d.log_tail()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The dhclient script the lab uses: configures the leased address on the interface and
/// removes it on release, like the system one, and nothing else (no routes, no resolv.conf).
const DHCLIENT_SCRIPT: &str = r#"#!/bin/sh
case "$reason" in
  BOUND|RENEW|REBIND|REBOOT)
    [ -n "$old_ip_address" ] && [ "$old_ip_address" != "$new_ip_address" ] &&
      ip addr del "$old_ip_address/$old_subnet_mask" dev "$interface" 2>/dev/null
    ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
  RELEASE|EXPIRE|FAIL|STOP)
    [ -n "$old_ip_address" ] && ip addr del "$old_ip_address/$old_subnet_mask" dev "$interface" 2>/dev/null ;;
esac
exit 0
"#;

/// The files one dhclient client uses, all in the lab directory.
struct ClientFiles {
    conf: String,
    leases: String,
    script: String,
}

impl ClientFiles {
    /// dhclient's arguments: `flags`, then these files, pid file `pid`, and `iface`.
    fn args<'a>(&'a self, flags: &[&'a str], pid: &'a str, iface: &'a str) -> Vec<&'a str> {
        let mut a = flags.to_vec();
        a.extend([
            "-cf",
            &self.conf,
            "-lf",
            &self.leases,
            "-pf",
            pid,
            "-sf",
            &self.script,
            iface,
        ]);
        a
    }
}

fn client_files(lab: &Lab, host: &str, hostname: &str) -> ClientFiles {
    let conf = lab.path(&format!("dhclient-{host}.conf"));
    std::fs::write(
        &conf,
        format!(
            "send host-name \"{hostname}\";\n\
             request subnet-mask, broadcast-address, routers, domain-name-servers,\n\
             dhcp-renewal-time, dhcp-rebinding-time;\n\
             timeout 20;\n"
        ),
    )
    .expect("write dhclient.conf");
    // One copy per host: clients run in parallel, and one must not exec a script another is
    // still writing.
    let script = lab.path(&format!("dhclient-script-{host}"));
    if !script.exists() {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(&script, DHCLIENT_SCRIPT).expect("write dhclient script");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .expect("chmod dhclient script");
    }
    let s = |p: std::path::PathBuf| p.to_str().expect("utf-8 path").to_string();
    ClientFiles {
        conf: s(conf),
        leases: s(lab.path(&format!("dhclient-{host}.leases"))),
        script: s(script),
    }
}

/// Starts dhclient in the foreground on `host`, sending `hostname`: it gets a lease, applies it
/// with the lab's script, and keeps renewing until dropped (killed, so it releases nothing).
pub fn dhclient(lab: &Lab, host: &str, hostname: &str) -> crate::proc::Proc {
    start_dhclient(lab, host, &client_files(lab, host, hostname))
}

fn start_dhclient(lab: &Lab, host: &str, f: &ClientFiles) -> crate::proc::Proc {
    let h = lab.host(host);
    let pid = lab.path(&format!("dhclient-{host}.pid"));
    let pid = pid.to_str().expect("utf-8 path");
    h.spawn("dhclient", &f.args(&["-d", "-1", "-v"], pid, &h.iface))
}

/// The address in a dhclient "bound to A -- renewal in N seconds." line.
fn bound_address(line: &str) -> Option<String> {
    let rest = &line[line.find("bound to ")? + "bound to ".len()..];
    Some(rest.split_whitespace().next()?.to_string())
}

/// One client's lease life: DISCOVER/OFFER/REQUEST/ACK, a renewal (unicast REQUEST to the
/// server at T1), then a RELEASE. Returns a summary.
pub fn dhcp_client_cycle(lab: &Lab, host: &str, hostname: &str) -> Result<String, String> {
    let f = client_files(lab, host, hostname);
    // A fresh lease file: the client starts from DISCOVER, not INIT-REBOOT.
    let _ = std::fs::remove_file(&f.leases);
    let mut client = start_dhclient(lab, host, &f);
    let first = client.wait_for_line("bound to", WAIT)?;
    let addr = bound_address(&first).ok_or_else(|| format!("odd dhclient line {first:?}"))?;
    client.wait_for_line("DHCPACK", WAIT)?;
    let renewed = client.wait_for_line("bound to", WAIT)?;
    drop(client);
    // A different pid file: `dhclient -r` signals the PID in its pid file, and the one in ours
    // is dead (and could have been recycled).
    let h = lab.host(host);
    let pid = lab.path(&format!("dhclient-{host}-release.pid"));
    let _ = std::fs::remove_file(&pid);
    let pid = pid.to_str().expect("utf-8 path");
    let released = h.run("dhclient", &f.args(&["-r", "-v"], pid, &h.iface), WAIT)?;
    if !released.output.contains("DHCPRELEASE") {
        return Err(format!(
            "dhclient -r sent no DHCPRELEASE:\n{}",
            released.output
        ));
    }
    let again = bound_address(&renewed).unwrap_or_default();
    Ok(format!(
        "{host} ({hostname}) got {addr}, renewed {again}, released it"
    ))
}

/// Runs arping on `host` announcing `ip` (gratuitous ARP request).
pub fn announce(lab: &Lab, host: &str, ip: &str) -> Result<(), String> {
    let h = lab.host(host);
    h.run("arping", &["-U", "-c", "1", "-I", &h.iface, ip], WAIT)
        .map(drop)
}

/// dupb takes dupa's address while dupa still has it, and srv asks for it with arping: both
/// hosts answer every request (both alive at once, the proof a duplicate needs); dupb lets go.
pub fn duplicate_ip(lab: &Lab) -> Result<String, String> {
    let cidr = format!("{DUPLICATE}/24");
    lab.host("dupb").add_addr(&cidr);
    let srv = lab.host("srv");
    // -b: every request broadcast (arping goes unicast to the first answer otherwise), so
    // both hosts hear and answer each one. arping exits 1 when it counts more answers than
    // requests, which is exactly this case: the answers are checked instead.
    let r = srv
        .spawn("arping", &["-b", "-c", "3", "-I", &srv.iface, DUPLICATE])
        .wait(WAIT);
    lab.host("dupb").del_addr(&cidr);
    let out = r?.output;
    let from = |mac: &str| out.lines().filter(|l| l.contains(mac)).count();
    let (a, b) = (from(mac_of("dupa")), from(mac_of("dupb")));
    if a == 0 || b == 0 {
        return Err(format!(
            "expected both hosts to answer srv's arping for {DUPLICATE}:\n{out}"
        ));
    }
    let replies = a + b;
    Ok(format!(
        "{} and {} both answered srv's arping for {DUPLICATE} ({replies} replies)",
        mac_of("dupa"),
        mac_of("dupb")
    ))
}

/// mover announces its address, its NIC is swapped (another MAC), it announces again, and
/// the original NIC comes back and announces: a MAC change, then a flip back.
pub fn mac_change(lab: &Lab) -> Result<String, String> {
    let h = lab.host("mover");
    let original = mac_of("mover");
    announce(lab, "mover", MOVER)?;
    h.set_mac(MOVER_OTHER_MAC);
    let r = announce(lab, "mover", MOVER);
    h.set_mac(original);
    r?;
    announce(lab, "mover", MOVER)?;
    Ok(format!(
        "{MOVER} moved {original} -> {MOVER_OTHER_MAC} -> {original}"
    ))
}

/// A locally administered MAC for crafted client `i`.
pub fn crafted_mac(i: usize) -> [u8; 6] {
    let b = (i as u32).to_be_bytes();
    [0x02, 0x77, 0xcc, b[1], b[2], b[3]]
}

/// `clients` distinct crafted clients each send one DHCPDISCOVER, spread over `over`.
pub fn dhcp_storm(lab: &Lab, clients: usize, over: Duration) {
    const BATCHES: usize = 10;
    let crafter = lab.host("crafter");
    let per = clients.div_ceil(BATCHES);
    for batch in 0..BATCHES {
        let frames: Vec<Vec<u8>> = (batch * per..((batch + 1) * per).min(clients))
            .map(|i| {
                let mac = crafted_mac(i);
                let bootp = Bootp::dhcp(1, 0x5700_0000 | i as u32, mac, 1, &[]);
                frames::dhcp(&L2::new(mac, BROADCAST), &Ip::udp([0; 4], [255; 4]), &bootp).bytes
            })
            .collect();
        crafter.send(&frames);
        std::thread::sleep(over / BATCHES as u32);
    }
}

/// Crafted tagged traffic: an ARP announcement and a DHCPDISCOVER in 802.1Q VLAN [`VLAN`],
/// and an ARP announcement in QinQ [`QINQ`] (802.1ad outer tag, 802.1Q inner).
pub fn vlan_frames(lab: &Lab) {
    let a = [0x02, 0x77, 0x00, 0x00, 0x05, 0x01];
    let b = [0x02, 0x77, 0x00, 0x00, 0x05, 0x02];
    let c = [0x02, 0x77, 0x00, 0x00, 0x05, 0x03];
    let in_vlan = |src| L2::new(src, BROADCAST).tag(TPID_8021Q, VLAN);
    let in_qinq = |src| {
        L2::new(src, BROADCAST)
            .tag(TPID_8021AD, QINQ.0)
            .tag(TPID_8021Q, QINQ.1)
    };
    let garp = |l2: &L2, mac, ip| frames::arp(l2, 1, mac, ip, [0; 6], ip).bytes;
    let discover = Bootp::dhcp(
        1,
        0x5701_0001,
        c,
        1,
        &[12, 6, b'v', b'm', b'-', b'1', b'0', b'0'],
    );
    lab.host("crafter").send(&[
        garp(&in_vlan(a), a, [10, 100, 0, 10]),
        frames::dhcp(&in_vlan(c), &Ip::udp([0; 4], [255; 4]), &discover).bytes,
        garp(&in_qinq(b), b, [10, 200, 0, 10]),
    ]);
}
