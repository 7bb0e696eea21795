//! What one RRset's signature costs: an A RRset of two addresses signed with ECDSA P-256
//! and with Ed25519 (`dnssec::Signer`), the work a cache miss of a signed geo answer adds.
//!
//! Run: `cargo bench --bench dnssec`. Figures in benches/README.md, "DNSSEC signing".

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use fedns::dnssec::{Algorithm, Key, Signer, Validity, name_wire};

fn sign(c: &mut Criterion) {
    let mut group = c.benchmark_group("sign_rrset");
    let owner = name_wire("app.default.myfed.svc.fed.example.com");
    let rdatas: [&[u8]; 2] = [&[192, 0, 2, 10], &[192, 0, 2, 11]];
    let validity = Validity {
        inception: 1_796_000_000,
        expiration: 1_798_000_000,
    };
    for (name, algorithm) in [
        ("ecdsa_p256", Algorithm::EcdsaP256Sha256),
        ("ed25519", Algorithm::Ed25519),
    ] {
        let key = Key::generate("fed.example.com", algorithm, false, 0);
        let signer = Signer::new(&key);
        group.bench_function(name, |b| {
            b.iter(|| black_box(signer.sign(black_box(&owner), 1, 30, &rdatas, validity)))
        });
    }
    group.finish();
}

criterion_group!(benches, sign);
criterion_main!(benches);
