//! DHCPv6 messages, relay chains included.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = l2watch::decode::dhcpv6::decode(data, true);
    let _ = l2watch::decode::dhcpv6::decode(data, false);
});
