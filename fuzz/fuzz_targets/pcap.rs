//! The pcap/pcapng reader: any bytes give frames or an error with the offset, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = l2watch::pcap::read_from("fuzz.pcap", data, |f| {
        std::hint::black_box(f);
    });
});
