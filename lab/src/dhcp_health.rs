//! The lab's DHCP service-health steps, with real dnsmasq and dhclient where Debian has them:
//! a slow server (`--dhcp-reply-delay`), two servers offering PXE clients different boot
//! files, a dhclient that sends the PXE vendor class and architecture; and, crafted (no VLAN
//! interfaces here), a VLAN whose clients nobody answers beside a healthy one.
use std::time::Duration;

use crate::{
    frames::{self, Bootp, Ip, BROADCAST, L2, TPID_8021Q},
    lab::Lab,
    scenario::{self, start_dnsmasq_with},
};

/// The slow server's reply delay, in seconds.
pub const REPLY_DELAY_SECS: u64 = 2;
/// The VLAN nobody answers, and the healthy one beside it.
pub const DEAD_VLAN: u16 = 300;
pub const HEALTHY_VLAN: u16 = 200;
/// The boot files the two PXE servers offer.
pub const BOOT_FILE: &str = "grubx64.efi";
pub const OTHER_BOOT_FILE: &str = "pxelinux.0";
/// The PXE client's vendor class and architecture (x64 UEFI).
pub const PXE_CLASS: &str = "PXEClient:Arch:00007:UNDI:003016";

const WAIT: Duration = Duration::from_secs(30);

/// Restarts srv's dnsmasq with `extra` options.
fn restart_srv(lab: &mut Lab, extra: &[&str]) -> Result<(), String> {
    lab.stop_daemon("dnsmasq-srv");
    start_dnsmasq_with(lab, "srv", "10.77.0.100,10.77.0.149", extra)
}

/// Runs dhclient once on `host` until it is bound (then kills it, releasing nothing), with a
/// fresh lease file so that it starts from DISCOVER; `conf` is its dhclient.conf.
fn bind_once(lab: &Lab, host: &str, conf: &str, round: usize) -> Result<String, String> {
    let h = lab.host(host);
    let path = |n: &str| lab.path(&format!("health-{host}-{round}.{n}"));
    let (cf, lf, pf) = (path("conf"), path("leases"), path("pid"));
    std::fs::write(&cf, conf).map_err(|e| e.to_string())?;
    let script = lab.path("health-dhclient-script");
    if !script.exists() {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").map_err(|e| e.to_string())?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
    }
    let s = |p: std::path::PathBuf| p.to_str().expect("utf-8 path").to_string();
    let (cf, lf, pf, sf) = (s(cf), s(lf), s(pf), s(script));
    let mut c = h.spawn(
        "dhclient",
        &[
            "-d", "-1", "-v", "-cf", &cf, "-lf", &lf, "-pf", &pf, "-sf", &sf, &h.iface,
        ],
    );
    let line = c.wait_for_line("bound to", WAIT)?;
    drop(c);
    Ok(line.trim().to_string())
}

/// srv's dnsmasq answers after [`REPLY_DELAY_SECS`]; c2 gets a lease three times.
pub fn slow_server(lab: &mut Lab) -> Result<String, String> {
    let delay = format!("--dhcp-reply-delay={REPLY_DELAY_SECS}");
    restart_srv(lab, &[&delay])?;
    for round in 0..3 {
        bind_once(lab, "c2", "timeout 20;\n", round)?;
    }
    Ok(format!(
        "srv's dnsmasq answers after {REPLY_DELAY_SECS} s; c2 was bound three times"
    ))
}

/// srv offers [`BOOT_FILE`], rogue [`OTHER_BOOT_FILE`]; c1 sends the PXE vendor class and
/// architecture and takes a lease.
pub fn pxe_conflict(lab: &mut Lab) -> Result<String, String> {
    restart_srv(
        lab,
        &[&format!("--dhcp-boot={BOOT_FILE},,{}", scenario::SERVER)],
    )?;
    if !lab.daemon("dnsmasq-rogue").is_some_and(|d| d.alive()) {
        start_dnsmasq_with(
            lab,
            "rogue",
            "10.77.0.150,10.77.0.199",
            &[&format!(
                "--dhcp-boot={OTHER_BOOT_FILE},,{}",
                scenario::ROGUE
            )],
        )?;
    }
    let line = pxe_bind(lab, 0)?;
    lab.stop_daemon("dnsmasq-rogue");
    Ok(format!(
        "srv offers {BOOT_FILE}, rogue {OTHER_BOOT_FILE}; c1 (PXE, x64 UEFI): {line}"
    ))
}

/// c1 takes a lease as a PXE client: dhclient sends the PXE vendor class (option 60) and
/// the x64 UEFI architecture (option 93).
pub fn pxe_client(lab: &mut Lab) -> Result<String, String> {
    let line = pxe_bind(lab, 1)?;
    Ok(format!("c1 (PXE, x64 UEFI): {line}"))
}

fn pxe_bind(lab: &Lab, round: usize) -> Result<String, String> {
    let conf = format!(
        "send vendor-class-identifier \"{PXE_CLASS}\";\n\
         option pxe-client-arch code 93 = unsigned integer 16;\n\
         send pxe-client-arch 7;\n\
         timeout 20;\n"
    );
    bind_once(lab, "c1", &conf, 100 + round)
}

/// Three crafted clients in VLAN [`DEAD_VLAN`] send DISCOVERs twice, a second apart, and
/// nobody answers.
pub fn dead_vlan(lab: &Lab) -> Result<String, String> {
    let crafter = lab.host("crafter");
    for round in 0..2u32 {
        let frames: Vec<Vec<u8>> = (1..=3u8)
            .map(|i| {
                let mac = [0x02, 0x77, 0x00, 0x00, 0x07, i];
                let l2 = L2::new(mac, BROADCAST).tag(TPID_8021Q, DEAD_VLAN);
                let b = Bootp::dhcp(1, 0x5703_0000 | (i as u32) << 8 | round, mac, 1, &[]);
                frames::dhcp(&l2, &Ip::udp([0; 4], [255; 4]), &b).bytes
            })
            .collect();
        crafter.send(&frames);
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(format!(
        "3 crafted clients sent DISCOVERs twice in VLAN {DEAD_VLAN}; no server there"
    ))
}

/// A crafted healthy VLAN [`HEALTHY_VLAN`]: three clients' DORA answered in milliseconds.
pub fn healthy_vlan(lab: &Lab) -> Result<String, String> {
    let crafter = lab.host("crafter");
    let server_mac = [0x02, 0x77, 0x00, 0x00, 0x08, 0x01];
    let server = [10, 200, 0, 1];
    let sid = [
        54, 4, server[0], server[1], server[2], server[3], 51, 4, 0, 0, 0x0e, 0x10,
    ];
    for i in 1..=3u8 {
        let mac = [0x02, 0x77, 0x00, 0x00, 0x08, 0x10 + i];
        let xid = 0x5704_0000 | i as u32;
        let c = |t: u8, extra: &[u8]| {
            let l2 = L2::new(mac, BROADCAST).tag(TPID_8021Q, HEALTHY_VLAN);
            frames::dhcp(
                &l2,
                &Ip::udp([0; 4], [255; 4]),
                &Bootp::dhcp(1, xid, mac, t, extra),
            )
            .bytes
        };
        let s = |t: u8| {
            let l2 = L2::new(server_mac, BROADCAST).tag(TPID_8021Q, HEALTHY_VLAN);
            let mut b = Bootp::dhcp(2, xid, mac, t, &sid);
            b.yiaddr = [10, 200, 0, 100 + i];
            frames::dhcp(&l2, &Ip::udp(server, [255; 4]), &b).bytes
        };
        crafter.send(&[c(1, &[])]);
        std::thread::sleep(Duration::from_millis(5));
        crafter.send(&[s(2)]);
        std::thread::sleep(Duration::from_millis(5));
        crafter.send(&[c(3, &sid[..6])]);
        std::thread::sleep(Duration::from_millis(5));
        crafter.send(&[s(5)]);
    }
    Ok(format!(
        "3 crafted clients in VLAN {HEALTHY_VLAN} bound within milliseconds"
    ))
}
