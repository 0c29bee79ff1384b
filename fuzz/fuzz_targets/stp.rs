//! Spanning-tree BPDUs (STP, RSTP, MSTP, and PVST+ with its VLAN TLV).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = l2watch::decode::stp::decode(data, false);
    let _ = l2watch::decode::stp::decode(data, true);
});
