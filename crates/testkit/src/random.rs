//! Random numbers: seeded from the clock where each run should differ (tokens, uids,
//! phases), and a reproducible xorshift stream where a test wants the same bytes every run.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

/// A random 64-bit number (the std hasher's random keys, over the current time).
pub fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.finish()
}

/// A uniform random fraction in [0, 1).
pub fn uniform() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Marsaglia's xorshift64: the same stream for the same seed, cheap enough for floods.
#[derive(Clone, Debug)]
pub struct Xorshift(u64);

impl Xorshift {
    /// A stream from `seed`, which must not be 0.
    pub fn new(seed: u64) -> Xorshift {
        assert_ne!(seed, 0, "xorshift from seed 0 stays 0");
        Xorshift(seed)
    }

    /// The next number of the stream.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// `len` bytes: the low byte of each of the next `len` numbers.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}
