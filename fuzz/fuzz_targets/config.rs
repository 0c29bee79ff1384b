//! The TOML configuration loader with its validation.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = l2watch::config::Config::parse(text, std::path::Path::new("fuzz.toml"));
    }
});
