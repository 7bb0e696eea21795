//! GeoIP database loading (maxminddb reader + verify) and lookups in whatever loaded.
#![no_main]

use std::net::IpAddr;
use std::path::Path;

use libfuzzer_sys::fuzz_target;

const ADDRS: &[&str] = &[
    "127.0.0.1",
    "198.18.2.53",
    "8.8.8.8",
    "0.0.0.0",
    "255.255.255.255",
    "::1",
    "2001:db8::1",
    "::ffff:198.18.2.53",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
];

fuzz_target!(|data: &[u8]| {
    if let Ok(db) = fedns::geo::GeoDb::from_bytes(data.to_vec(), Path::new("fuzz.mmdb")) {
        let _ = db.database_type();
        for a in ADDRS {
            let ip: IpAddr = a.parse().unwrap();
            let _ = db.lookup(ip);
        }
    }
});
