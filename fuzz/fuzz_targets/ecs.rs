//! The ECS scanner of raw queries and the ECS option value parser (RFC 7871).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fedns::dns::ecs::extract(data);
    let _ = fedns::dns::ecs::parse_option(data);
});
