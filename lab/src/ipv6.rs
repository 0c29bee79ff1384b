//! The lab's IPv6 steps, on the standard hosts: real radvd, dnsmasq (DHCPv6), dhclient -6,
//! ping and the Linux kernel's own SLAAC and DAD; THC's `kill_router6` (Debian thc-ipv6) for
//! the lifetime-0 spoof. Only the tagged copies are crafted (no CONFIG_VLAN_8021Q here).
//!
//! | host    | IPv6 role                                                        |
//! |---------|------------------------------------------------------------------|
//! | srv     | the legitimate router (radvd, [`PREFIX`]) and DHCPv6 server       |
//! | rogue   | a rogue router (radvd, [`ROGUE_PREFIX`])                          |
//! | c1      | a DHCPv6 client (dhclient -6)                                    |
//! | c1, c2, dupa | SLAAC hosts that ping the router                            |
//! | dupa, dupb | both take [`DUPLICATE`]: dupb's DAD fails                      |
//! | crafter | kill_router6 against srv; crafted VLAN 100 and 200 frames          |
use std::time::{Duration, Instant};

use crate::{
    frames::{BROADCAST, L2, TPID_8021Q},
    lab::Lab,
    scenario::mac_of,
};

/// The legitimate router's prefix.
pub const PREFIX: &str = "2001:db8:77::";
/// The rogue router's prefix.
pub const ROGUE_PREFIX: &str = "2001:db8:bad::";
/// srv's global address (router and DHCPv6 server).
pub const SERVER6: &str = "2001:db8:77::1";
/// The address dupa and dupb both take.
pub const DUPLICATE: &str = "2001:db8:77::50";
/// The VLAN where crafted problems are planted, and the clean one beside it.
pub const VLAN: u16 = 100;
pub const CLEAN_VLAN: u16 = 200;

const WAIT: Duration = Duration::from_secs(30);

/// The modified EUI-64 link-local address of a MAC (`02:77:00:00:00:01` -> `fe80::77:ff:fe00:1`).
pub fn link_local(mac: &str) -> String {
    let m = parse_mac(mac);
    let a = std::net::Ipv6Addr::from(link_local_bytes(m));
    a.to_string()
}

fn link_local_bytes(m: [u8; 6]) -> [u8; 16] {
    [
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 2,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ]
}

fn parse_mac(mac: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(mac.split(':')) {
        *b = u8::from_str_radix(p, 16).expect("hex MAC");
    }
    m
}

/// The hosts the IPv6 steps use.
const IPV6_HOSTS: &[&str] = &["srv", "rogue", "c1", "c2", "dupa", "dupb", "crafter"];

/// Turns IPv6 on for the IPv6 steps' hosts (lab namespaces start with it off, so the IPv4
/// steps' counts stay quiet), and waits for their link-local addresses to pass DAD.
/// Idempotent: every IPv6 step starts with it.
pub fn enable(lab: &Lab) -> Result<(), String> {
    for h in IPV6_HOSTS {
        let host = lab.host(h);
        for key in ["all", "default", host.iface.as_str()] {
            host.ns.exec(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{key}.disable_ipv6=0"),
            ]);
        }
    }
    for h in IPV6_HOSTS {
        wait_until(&format!("{h}'s link-local address"), WAIT, || {
            let a = addrs6(lab, h);
            a.contains("fe80::") && !a.contains("tentative")
        })?;
    }
    Ok(())
}

/// Polls `cond` every 100 ms until it holds or `timeout` passes.
fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// `ip -6 addr show dev IF` on `host`.
fn addrs6(lab: &Lab, host: &str) -> String {
    let h = lab.host(host);
    let out = h.ns.exec(&["ip", "-6", "addr", "show", "dev", &h.iface]);
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Starts radvd on `host` advertising `prefix`/64 every 3 to 4 s, as daemon `name`.
pub fn start_radvd(lab: &mut Lab, host: &str, prefix: &str, name: &str) -> Result<(), String> {
    let iface = lab.host(host).iface.clone();
    // A router forwards; radvd warns otherwise (and the host stops taking RAs itself).
    lab.host(host)
        .ns
        .exec(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    let conf = lab.path(&format!("{name}.conf"));
    std::fs::write(
        &conf,
        format!(
            "interface {iface} {{\n  AdvSendAdvert on;\n  MinRtrAdvInterval 3;\n  \
             MaxRtrAdvInterval 4;\n  AdvDefaultLifetime 1800;\n  prefix {prefix}/64 {{\n    \
             AdvOnLink on;\n    AdvAutonomous on;\n  }};\n  RDNSS {prefix}53 {{ }};\n}};\n"
        ),
    )
    .map_err(|e| format!("write {}: {e}", conf.display()))?;
    let pid = lab.path(&format!("{name}.pid"));
    let args = [
        "--nodaemon".to_string(),
        "--logmethod=stderr".to_string(),
        "--debug=1".to_string(),
        format!("--config={}", conf.display()),
        format!("--pidfile={}", pid.display()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.start_daemon(name, Some(host), "radvd", &args)?;
    std::thread::sleep(Duration::from_millis(500));
    let d = lab.daemon(name).expect("just started");
    if !d.alive() {
        return Err(format!("{name} exited:\n{}", d.log_tail()));
    }
    Ok(())
}

/// srv starts advertising [`PREFIX`]; c1, c2 and dupa autoconfigure addresses in it (the
/// kernel's SLAAC, with DAD) and ping srv, so neighbour discovery binds them.
pub fn router(lab: &mut Lab) -> Result<String, String> {
    enable(lab)?;
    let iface = lab.host("srv").iface.clone();
    lab.host("srv").ns.exec(&[
        "ip",
        "-6",
        "addr",
        "replace",
        &format!("{SERVER6}/64"),
        "dev",
        &iface,
        "nodad",
    ]);
    // Idempotent: a second run (the demo's next round) keeps the router it has.
    if !lab.daemon("radvd-srv").is_some_and(|d| d.alive()) {
        start_radvd(lab, "srv", PREFIX, "radvd-srv")?;
    }
    let mut got = Vec::new();
    for h in ["c1", "c2", "dupa"] {
        wait_until(&format!("{h}'s SLAAC address"), WAIT, || {
            let a = addrs6(lab, h);
            a.contains("2001:db8:77:") && !a.contains("tentative")
        })?;
        let host = lab.host(h);
        host.run(
            "ping",
            &["-6", "-c", "1", "-W", "2", "-I", &host.iface, SERVER6],
            WAIT,
        )?;
        got.push(h);
    }
    Ok(format!(
        "srv advertises {PREFIX}/64; {} autoconfigured and pinged {SERVER6}",
        got.join(", ")
    ))
}

/// srv serves DHCPv6 (dnsmasq) and c1 takes a lease with dhclient -6.
pub fn dhcpv6(lab: &mut Lab) -> Result<String, String> {
    enable(lab)?;
    let iface = lab.host("srv").iface.clone();
    let leases = lab.path("dnsmasq6-srv.leases");
    let pid = lab.path("dnsmasq6-srv.pid");
    let args = [
        "--no-daemon".to_string(),
        "--log-facility=-".to_string(),
        "--conf-file=/dev/null".to_string(),
        "--port=0".to_string(),
        "--bind-interfaces".to_string(),
        "--except-interface=lo".to_string(),
        format!("--interface={iface}"),
        format!("--dhcp-range={PREFIX}100,{PREFIX}1ff,64,600"),
        format!("--dhcp-leasefile={}", leases.display()),
        format!("--pid-file={}", pid.display()),
        "--user=root".to_string(),
        "--log-dhcp".to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if !lab.daemon("dnsmasq6-srv").is_some_and(|d| d.alive()) {
        lab.start_daemon("dnsmasq6-srv", Some("srv"), "dnsmasq", &args)?;
    }
    wait_until("dnsmasq's DHCPv6 range", Duration::from_secs(10), || {
        let d = lab.daemon("dnsmasq6-srv").expect("just started");
        std::fs::read_to_string(&d.log)
            .unwrap_or_default()
            .contains("DHCPv6, IP range")
    })?;
    let h = lab.host("c1");
    let lf = lab.path("dhclient6-c1.leases");
    let _ = std::fs::remove_file(&lf);
    let pf = lab.path("dhclient6-c1.pid");
    let script = lab.path("dhclient6-script");
    {
        use std::os::unix::fs::PermissionsExt as _;
        // Applies nothing: the agent learns the address from the REPLY itself.
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").map_err(|e| e.to_string())?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
    }
    let s = |p: &std::path::Path| p.to_str().expect("utf-8 path").to_string();
    let (lf, pf, script) = (s(&lf), s(&pf), s(&script));
    let mut client = h.spawn(
        "dhclient",
        &[
            "-6", "-d", "-1", "-v", "-lf", &lf, "-pf", &pf, "-sf", &script, &h.iface,
        ],
    );
    let line = client.wait_for_line("Bound to lease", WAIT)?;
    drop(client);
    Ok(format!("dnsmasq on srv serves DHCPv6; c1: {}", line.trim()))
}

/// rogue advertises [`ROGUE_PREFIX`] (after srv is established) for 6 s, then stops (radvd
/// retires itself with a lifetime-0 RA from its own MAC: history, not a finding).
pub fn rogue_router(lab: &mut Lab) -> Result<String, String> {
    enable(lab)?;
    start_radvd(lab, "rogue", ROGUE_PREFIX, "radvd-rogue")?;
    std::thread::sleep(Duration::from_secs(6));
    lab.stop_daemon("radvd-rogue");
    Ok(format!(
        "rogue advertised {ROGUE_PREFIX}/64 for 6 s, then retired"
    ))
}

/// crafter runs THC's kill_router6 against srv's link-local address: an RA with router
/// lifetime 0 claiming to be srv, from crafter's MAC.
pub fn router_spoof(lab: &mut Lab) -> Result<String, String> {
    enable(lab)?;
    let target = link_local(mac_of("srv"));
    let h = lab.host("crafter");
    let run = h.spawn("atk6-kill_router6", &[&h.iface, &target]);
    // It sends its spoof and exits; kill it if it lingers.
    let done = run.wait(Duration::from_secs(10));
    let out = match done {
        Ok(d) => d.output,
        Err(e) => e,
    };
    Ok(format!(
        "kill_router6 on crafter ({}) claimed {target} with lifetime 0: {}",
        mac_of("crafter"),
        out.lines().last().unwrap_or("").trim()
    ))
}

/// dupa takes [`DUPLICATE`]; then dupb takes it too: dupb's kernel probes (DAD), dupa
/// defends it, and dupb marks it dadfailed. Both addresses are removed afterwards.
pub fn duplicate(lab: &mut Lab) -> Result<String, String> {
    enable(lab)?;
    let cidr = format!("{DUPLICATE}/64");
    let add = |h: &str| {
        let host = lab.host(h);
        host.ns
            .exec(&["ip", "-6", "addr", "add", &cidr, "dev", &host.iface]);
    };
    add("dupa");
    wait_until("dupa's DAD", WAIT, || {
        let a = addrs6(lab, "dupa");
        a.contains(DUPLICATE) && !a.contains("tentative")
    })?;
    add("dupb");
    let r = wait_until("dupb's DAD to fail", WAIT, || {
        addrs6(lab, "dupb").contains("dadfailed")
    });
    for h in ["dupa", "dupb"] {
        let host = lab.host(h);
        host.ns
            .exec(&["ip", "-6", "addr", "del", &cidr, "dev", &host.iface]);
    }
    r?;
    Ok(format!(
        "dupa holds {DUPLICATE}; dupb's DAD for it failed (dupa defended it)"
    ))
}

/// ICMPv6 in IPv6 from `src` to `dst`, with hop limit 255 and a correct checksum.
fn icmp6(l2: &L2, src: [u8; 16], dst: [u8; 16], msg: &[u8]) -> Vec<u8> {
    let mut m = msg.to_vec();
    m[2] = 0;
    m[3] = 0;
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
        }
    };
    add(&src);
    add(&dst);
    add(&(m.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(&m);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    let mut v = l2.bytes(0x86dd);
    v.extend_from_slice(&[0x60, 0, 0, 0]);
    v.extend_from_slice(&(m.len() as u16).to_be_bytes());
    v.extend_from_slice(&[58, 255]);
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(&m);
    v
}

const ALL_NODES: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// An RA with router lifetime `lifetime` and one prefix, from `mac` at `src`.
fn ra(l2: &L2, src: [u8; 16], lifetime: u16, prefix: [u8; 8]) -> Vec<u8> {
    let mut m = vec![134, 0, 0, 0, 64, 0];
    m.extend_from_slice(&lifetime.to_be_bytes());
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(&[
        3, 4, 64, 0xc0, 0, 0, 0x0e, 0x10, 0, 0, 0x07, 0x08, 0, 0, 0, 0,
    ]);
    m.extend_from_slice(&prefix);
    m.extend_from_slice(&[0; 8]);
    icmp6(l2, src, ALL_NODES, &m)
}

/// A DAD probe for `target` with `nonce`.
fn dad(l2: &L2, target: [u8; 16], nonce: [u8; 6]) -> Vec<u8> {
    let mut m = vec![135, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&target);
    m.extend_from_slice(&[14, 1]);
    m.extend_from_slice(&nonce);
    let mut solicited = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
    solicited[13..].copy_from_slice(&target[13..]);
    icmp6(l2, [0; 16], solicited, &m)
}

/// Crafted tagged copies. VLAN [`VLAN`]: a router advertises, then another MAC sends a
/// lifetime-0 RA in its name; and two stations probe one address with different nonces.
/// VLAN [`CLEAN_VLAN`]: a router advertises and a host probes its own address, and nothing
/// else (the clean segment).
pub fn vlan_frames(lab: &Lab) -> Result<String, String> {
    let router = [0x02, 0x77, 0x00, 0x00, 0x06, 0x01];
    let spoofer = [0x02, 0x77, 0x00, 0x00, 0x06, 0x02];
    let (p1, p2) = (
        [0x02, 0x77, 0x00, 0x00, 0x06, 0x03],
        [0x02, 0x77, 0x00, 0x00, 0x06, 0x04],
    );
    let tagged = |mac: [u8; 6], vid| L2::new(mac, BROADCAST).tag(TPID_8021Q, vid);
    let prefix = |n: u8| [0x20, 0x01, 0x0d, 0xb8, 0, n, 0, 0];
    let mut target = [
        0x20, 0x01, 0x0d, 0xb8, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99,
    ];
    let crafter = lab.host("crafter");
    crafter.send(&[
        ra(
            &tagged(router, VLAN),
            link_local_bytes(router),
            1800,
            prefix(100),
        ),
        ra(
            &tagged(router, CLEAN_VLAN),
            link_local_bytes(router),
            1800,
            prefix(200),
        ),
    ]);
    std::thread::sleep(Duration::from_millis(300));
    crafter.send(&[
        ra(
            &tagged(spoofer, VLAN),
            link_local_bytes(router),
            0,
            prefix(100),
        ),
        dad(&tagged(p1, VLAN), target, [1; 6]),
        dad(&tagged(p2, VLAN), target, [2; 6]),
    ]);
    target[5] = 200;
    crafter.send(&[dad(&tagged(p1, CLEAN_VLAN), target, [3; 6])]);
    Ok(format!(
        "crafted in VLAN {VLAN}: a router, a lifetime-0 spoof of it and two probes for one \
         address; in VLAN {CLEAN_VLAN}: a router and one clean probe"
    ))
}
