//! A ring-buffer record as the kernel writes it: length- and kind-checked, then decoded into
//! an observation (DHCP, RA, DHCPv6 and switch PDUs inside it too).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(ev) = l2watch::capture::event::decode(data) {
        let _ = l2watch::decode::observe(&ev, l2watch::model::Iface::named("fuzz0"));
    }
});
