//! The YAML config parser and validator: any text must give a Config or an error.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = fedns::config::Config::parse(text, Path::new("fuzz.yaml"));
    }
});
