//! Signing one RRset (RFC 4034 section 3.1.8.1): the RRSIG's RDATA up to its signature,
//! then each record of the set in canonical form (owner in lowercase wire form, type,
//! class IN, the original TTL, the RDATA's length and the RDATA, with any names in it in
//! lowercase), the records sorted by their RDATA. ECDSA P-256 signs as `r || s` (RFC
//! 6605), Ed25519 as its 64 bytes (RFC 8080).

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};

#[cfg(test)]
use super::keys::name_wire;
use super::keys::{Algorithm, Key};

/// A key ready to sign.
pub struct Signer {
    key: Key,
    pair: Pair,
    rng: SystemRandom,
}

enum Pair {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// What an RRSIG says besides its signature.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    /// Seconds since the epoch, as RRSIG has them (RFC 4034 section 3.1.5, serial number
    /// arithmetic beyond 2106).
    pub inception: u32,
    pub expiration: u32,
}

impl Signer {
    pub fn new(key: &Key) -> Signer {
        let rng = SystemRandom::new();
        let pair = match key.algorithm {
            Algorithm::EcdsaP256Sha256 => {
                let mut public = vec![0x04];
                public.extend_from_slice(&key.public);
                Pair::Ecdsa(
                    EcdsaKeyPair::from_private_key_and_public_key(
                        &ECDSA_P256_SHA256_FIXED_SIGNING,
                        key.private(),
                        &public,
                        &rng,
                    )
                    .expect("a key checked when it was read or made"),
                )
            }
            Algorithm::Ed25519 => Pair::Ed25519(
                Ed25519KeyPair::from_seed_and_public_key(key.private(), &key.public)
                    .expect("a key checked when it was read or made"),
            ),
        };
        Signer {
            key: key.clone(),
            pair,
            rng,
        }
    }

    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The RRSIG RDATA over one RRset: `owner` in canonical wire form (lowercase, not
    /// compressed), each record's RDATA already canonical (names in it in lowercase).
    pub fn sign(
        &self,
        owner: &[u8],
        rtype: u16,
        ttl: u32,
        rdatas: &[&[u8]],
        validity: Validity,
    ) -> Vec<u8> {
        let mut rrsig = Vec::with_capacity(18 + owner.len() + 64);
        rrsig.extend_from_slice(&rtype.to_be_bytes());
        rrsig.push(self.key.algorithm.number());
        rrsig.push(labels(owner));
        rrsig.extend_from_slice(&ttl.to_be_bytes());
        rrsig.extend_from_slice(&validity.expiration.to_be_bytes());
        rrsig.extend_from_slice(&validity.inception.to_be_bytes());
        rrsig.extend_from_slice(&self.key.tag().to_be_bytes());
        rrsig.extend_from_slice(&self.key.owner_wire());
        let mut data = rrsig.clone();
        let mut sorted: Vec<&[u8]> = rdatas.to_vec();
        sorted.sort();
        sorted.dedup();
        for rdata in sorted {
            data.extend_from_slice(owner);
            data.extend_from_slice(&rtype.to_be_bytes());
            data.extend_from_slice(&1u16.to_be_bytes());
            data.extend_from_slice(&ttl.to_be_bytes());
            data.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            data.extend_from_slice(rdata);
        }
        match &self.pair {
            Pair::Ecdsa(p) => rrsig.extend_from_slice(
                p.sign(&self.rng, &data)
                    .expect("signing with a valid key")
                    .as_ref(),
            ),
            Pair::Ed25519(p) => rrsig.extend_from_slice(p.sign(&data).as_ref()),
        }
        rrsig
    }
}

/// The labels of a wire-form name, not counting the root or a leading `*` (RFC 4034
/// section 3.1.3).
fn labels(wire: &[u8]) -> u8 {
    let (mut n, mut at) = (0u8, 0usize);
    while at < wire.len() && wire[at] != 0 {
        let len = usize::from(wire[at]);
        if !(n == 0 && len == 1 && wire.get(at + 1) == Some(&b'*')) {
            n += 1;
        }
        at += 1 + len;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_skip_the_root_and_a_wildcard() {
        assert_eq!(labels(&name_wire("Fed.Example.com.")), 3);
        assert_eq!(labels(&name_wire("*.fed.example.com")), 3);
        assert_eq!(labels(&name_wire(".")), 0);
        assert_eq!(
            name_wire("Fed.Example.COM"),
            b"\x03fed\x07example\x03com\x00"
        );
    }
}
