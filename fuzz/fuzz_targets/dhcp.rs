//! The DHCPv4 decoder, on a whole message and on a kernel-truncated one.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = l2watch::decode::dhcp::decode(data, true);
    let _ = l2watch::decode::dhcp::decode(data, false);
});
