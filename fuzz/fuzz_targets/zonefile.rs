//! The static zone file parser, for the apex of the demo zone.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use hickory_proto::rr::Name;
use libfuzzer_sys::fuzz_target;

fn apex() -> &'static Name {
    static APEX: OnceLock<Name> = OnceLock::new();
    APEX.get_or_init(|| Name::from_ascii("fed.example.com.").unwrap())
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = fedns::config::zonefile::ZoneData::parse(text, Path::new("fuzz.zone"), apex(), "myfed");
    }
});
