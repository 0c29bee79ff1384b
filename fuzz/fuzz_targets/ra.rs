//! IPv6 router advertisements (the ICMPv6 message and its options).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = l2watch::decode::ra::decode(data, true);
    let _ = l2watch::decode::ra::decode(data, false);
});
