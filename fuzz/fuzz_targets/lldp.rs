//! LLDP PDUs as the kernel copies them.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = l2watch::decode::lldp::decode(data);
});
