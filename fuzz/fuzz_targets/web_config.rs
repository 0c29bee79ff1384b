//! The web config (node_exporter's web-config.yml): YAML, bcrypt hashes, PEM.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = l2watch::export::web::Web::parse(text, std::path::Path::new("/nonexistent"));
    }
});
