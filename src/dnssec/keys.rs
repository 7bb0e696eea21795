//! The zone's DNSSEC keys, in the files that BIND's `dnssec-keygen` and Knot's `keymgr`
//! export: `K<zone>.+<alg>+<tag>.key` (the DNSKEY record, `;` comments) beside
//! `K<zone>.+<alg>+<tag>.private` (`Private-key-format: v1.3`, the algorithm, the private
//! key in base64, and the timing fields `Created`, `Publish`, `Activate`, `Inactive`,
//! `Delete` as `YYYYMMDDHHMMSS` UTC). Algorithms 13 (ECDSA P-256 with SHA-256) and 15
//! (Ed25519). A key is read whole and checked: its private key must give its public key.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};

/// The signing algorithms fedns reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// 13: ECDSA P-256 with SHA-256, the default.
    EcdsaP256Sha256,
    /// 15: Ed25519.
    Ed25519,
}

impl Algorithm {
    pub fn number(self) -> u8 {
        match self {
            Algorithm::EcdsaP256Sha256 => 13,
            Algorithm::Ed25519 => 15,
        }
    }

    /// The mnemonic of the key files and of DNS tools.
    pub fn mnemonic(self) -> &'static str {
        match self {
            Algorithm::EcdsaP256Sha256 => "ECDSAP256SHA256",
            Algorithm::Ed25519 => "ED25519",
        }
    }

    fn from_number(n: u8) -> Option<Algorithm> {
        match n {
            13 => Some(Algorithm::EcdsaP256Sha256),
            15 => Some(Algorithm::Ed25519),
            _ => None,
        }
    }

    /// `13`, `15`, or a mnemonic (`ecdsap256sha256`, `ed25519`), as on a command line.
    pub fn parse(s: &str) -> Option<Algorithm> {
        match s.to_ascii_uppercase().as_str() {
            "13" | "ECDSAP256SHA256" => Some(Algorithm::EcdsaP256Sha256),
            "15" | "ED25519" => Some(Algorithm::Ed25519),
            _ => None,
        }
    }
}

/// DNSKEY flags: a zone key (256), with the secure entry point bit for a key-signing or
/// combined key (257).
pub const ZSK_FLAGS: u16 = 256;
pub const KSK_FLAGS: u16 = 257;

/// The timing fields of a `.private` file, as Unix seconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    pub created: Option<i64>,
    pub publish: Option<i64>,
    pub activate: Option<i64>,
    pub inactive: Option<i64>,
    pub delete: Option<i64>,
}

/// One key of the zone: its DNSKEY's fields and its private key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    /// The zone, lowercase, with no final dot.
    pub zone: String,
    pub flags: u16,
    pub algorithm: Algorithm,
    /// The DNSKEY's public key field: P-256's X and Y (64 bytes), or Ed25519's 32.
    pub public: Vec<u8>,
    /// P-256's private scalar, or Ed25519's seed (32 bytes each).
    private: Vec<u8>,
    pub timing: Timing,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Key({} {} {} tag {})",
            self.zone,
            self.flags,
            self.algorithm.mnemonic(),
            self.tag()
        )
    }
}

/// A key file that cannot be used: which file, which line (0: the file as a whole), and
/// what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", path.display(), if *line > 0 { format!(":{line}") } else { String::new() })]
pub struct KeyError {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

fn err(path: &Path, line: usize, message: impl Into<String>) -> KeyError {
    KeyError {
        path: path.to_owned(),
        line,
        message: message.into(),
    }
}

impl Key {
    /// A new key for `zone`: a key-signing (or combined) key with `ksk`, else a
    /// zone-signing key; created, published and active now.
    pub fn generate(zone: &str, algorithm: Algorithm, ksk: bool, now: i64) -> Key {
        let rng = SystemRandom::new();
        // ring makes keys only as PKCS#8 documents; the raw private key is at a fixed
        // place in the ones it makes, and is checked against the public key below.
        let (public, private) = match algorithm {
            Algorithm::EcdsaP256Sha256 => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .expect("the system's random generator");
                let pair =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng)
                        .expect("a key ring just made");
                let der = doc.as_ref();
                assert_eq!(&der[34..36], [0x04, 0x20], "ring's P-256 PKCS#8 layout");
                // The public key is 0x04 then X and Y.
                (
                    pair.public_key().as_ref()[1..].to_vec(),
                    der[36..68].to_vec(),
                )
            }
            Algorithm::Ed25519 => {
                let doc =
                    Ed25519KeyPair::generate_pkcs8(&rng).expect("the system's random generator");
                let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).expect("a key ring just made");
                let der = doc.as_ref();
                assert_eq!(&der[14..16], [0x04, 0x20], "ring's Ed25519 PKCS#8 layout");
                (pair.public_key().as_ref().to_vec(), der[16..48].to_vec())
            }
        };
        let key = Key {
            zone: zone.trim_end_matches('.').to_ascii_lowercase(),
            flags: if ksk { KSK_FLAGS } else { ZSK_FLAGS },
            algorithm,
            public,
            private,
            timing: Timing {
                created: Some(now),
                publish: Some(now),
                activate: Some(now),
                ..Timing::default()
            },
        };
        key.check().expect("a generated key's halves match");
        key
    }

    /// Whether the private key gives the public key.
    fn check(&self) -> Result<(), String> {
        match self.algorithm {
            Algorithm::EcdsaP256Sha256 => {
                let mut public = vec![0x04];
                public.extend_from_slice(&self.public);
                EcdsaKeyPair::from_private_key_and_public_key(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &self.private,
                    &public,
                    &SystemRandom::new(),
                )
                .map(|_| ())
                .map_err(|e| format!("the private key does not match the DNSKEY ({e})"))
            }
            Algorithm::Ed25519 => {
                Ed25519KeyPair::from_seed_and_public_key(&self.private, &self.public)
                    .map(|_| ())
                    .map_err(|e| format!("the private key does not match the DNSKEY ({e})"))
            }
        }
    }

    /// Whether this key signs the DNSKEY set (the secure entry point flag): the one whose
    /// DS the parent holds.
    pub fn is_ksk(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The DNSKEY's RDATA: flags, protocol 3, algorithm, public key.
    pub fn dnskey_rdata(&self) -> Vec<u8> {
        let mut r = Vec::with_capacity(4 + self.public.len());
        r.extend_from_slice(&self.flags.to_be_bytes());
        r.push(3);
        r.push(self.algorithm.number());
        r.extend_from_slice(&self.public);
        r
    }

    /// The key tag (RFC 4034, appendix B).
    pub fn tag(&self) -> u16 {
        let mut ac: u32 = 0;
        for (i, b) in self.dnskey_rdata().iter().enumerate() {
            ac += if i & 1 == 1 {
                u32::from(*b)
            } else {
                u32::from(*b) << 8
            };
        }
        ac += (ac >> 16) & 0xFFFF;
        (ac & 0xFFFF) as u16
    }

    /// The zone's name in canonical wire form (lowercase labels, the root last).
    pub fn owner_wire(&self) -> Vec<u8> {
        name_wire(&self.zone)
    }

    /// The private key: P-256's scalar or Ed25519's seed.
    pub(super) fn private(&self) -> &[u8] {
        &self.private
    }

    /// The DS record for the parent, with a SHA-256 digest (digest type 2), as zone-file
    /// text: `fed.example.com. IN DS 12345 13 2 ABCD...`.
    pub fn ds(&self) -> String {
        let hex: String = self.ds_rdata()[4..]
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        format!(
            "{}. IN DS {} {} 2 {hex}",
            self.zone,
            self.tag(),
            self.algorithm.number()
        )
    }

    /// The DS (or CDS) RDATA: key tag, algorithm, digest type 2 and the SHA-256 digest of
    /// owner and DNSKEY RDATA (RFC 4509).
    pub fn ds_rdata(&self) -> Vec<u8> {
        let mut data = self.owner_wire();
        data.extend_from_slice(&self.dnskey_rdata());
        let digest = ring::digest::digest(&ring::digest::SHA256, &data);
        let mut r = Vec::with_capacity(36);
        r.extend_from_slice(&self.tag().to_be_bytes());
        r.push(self.algorithm.number());
        r.push(2);
        r.extend_from_slice(digest.as_ref());
        r
    }

    /// The DNSKEY record as zone-file text.
    pub fn dnskey(&self) -> String {
        format!(
            "{}. IN DNSKEY {} 3 {} {}",
            self.zone,
            self.flags,
            self.algorithm.number(),
            BASE64.encode(&self.public)
        )
    }

    /// The files' base name: `K<zone>.+<alg>+<tag>`.
    pub fn base_name(&self) -> String {
        format!(
            "K{}.+{:03}+{:05}",
            self.zone,
            self.algorithm.number(),
            self.tag()
        )
    }

    /// Writes `<base>.key` and `<base>.private` into `dir`; the private file is readable
    /// by its owner only. Returns the path of the `.key` file.
    pub fn write(&self, dir: &Path) -> std::io::Result<PathBuf> {
        // Not `with_extension`: the base name has dots of its own.
        let key = dir.join(format!("{}.key", self.base_name()));
        let private = dir.join(format!("{}.private", self.base_name()));
        let kind = if self.is_ksk() {
            "key-signing"
        } else {
            "zone-signing"
        };
        let mut text = format!(
            "; This is a {kind} key, keyid {}, for {}.\n",
            self.tag(),
            self.zone
        );
        let mut fields = String::new();
        for (name, value) in [
            ("Created", self.timing.created),
            ("Publish", self.timing.publish),
            ("Activate", self.timing.activate),
            ("Inactive", self.timing.inactive),
            ("Delete", self.timing.delete),
        ] {
            if let Some(t) = value {
                text.push_str(&format!("; {name}: {}\n", stamp(t)));
                fields.push_str(&format!("{name}: {}\n", stamp(t)));
            }
        }
        text.push_str(&self.dnskey());
        text.push('\n');
        std::fs::write(&key, text)?;
        let secret = format!(
            "Private-key-format: v1.3\nAlgorithm: {} ({})\nPrivateKey: {}\n{fields}",
            self.algorithm.number(),
            self.algorithm.mnemonic(),
            BASE64.encode(&self.private)
        );
        write_private(&private, secret.as_bytes())?;
        Ok(key)
    }

    /// Reads a key from its `.key` or `.private` file (the other is beside it, with the
    /// same base name).
    pub fn read(path: &Path) -> Result<Key, KeyError> {
        let s = path.to_string_lossy();
        let base = s
            .strip_suffix(".key")
            .or_else(|| s.strip_suffix(".private"))
            .ok_or_else(|| {
                err(
                    path,
                    0,
                    "a key file is named K<zone>.+<alg>+<tag>.key or .private",
                )
            })?;
        let key_path = PathBuf::from(format!("{base}.key"));
        let private_path = PathBuf::from(format!("{base}.private"));
        let (zone, flags, algorithm, public) = read_dnskey(&key_path)?;
        let (private_algorithm, private, timing) = read_private(&private_path)?;
        if private_algorithm != algorithm {
            return Err(err(
                &private_path,
                0,
                format!(
                    "algorithm {} here, {} in {}",
                    private_algorithm.number(),
                    algorithm.number(),
                    key_path.display()
                ),
            ));
        }
        let key = Key {
            zone,
            flags,
            algorithm,
            public,
            private,
            timing,
        };
        key.check().map_err(|m| err(&private_path, 0, m))?;
        Ok(key)
    }
}

/// A name in canonical wire form: lowercase labels, the root last.
pub fn name_wire(name: &str) -> Vec<u8> {
    let mut w = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        w.push(label.len() as u8);
        w.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    w.push(0);
    w
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(bytes)
}

/// `YYYYMMDDHHMMSS` of Unix seconds, UTC: the times of key files and of RRSIG text.
pub fn stamp(t: i64) -> String {
    let (days, rem) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let (y, m, d) = crate::civil::from_days(days);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Unix seconds of `YYYYMMDDHHMMSS`, UTC.
fn parse_stamp(s: &str) -> Option<i64> {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().ok();
    let (y, m, d, hh, mm, ss) = (
        n(0..4)?,
        n(4..6)?,
        n(6..8)?,
        n(8..10)?,
        n(10..12)?,
        n(12..14)?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    Some(crate::civil::to_days(y, m as u32, d as u32) * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// The DNSKEY record of a `.key` file: zone, flags, algorithm, public key.
fn read_dnskey(path: &Path) -> Result<(String, u16, Algorithm, Vec<u8>), KeyError> {
    let text = std::fs::read_to_string(path).map_err(|e| err(path, 0, e.to_string()))?;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.split(';').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let zone = fields.next().unwrap_or("");
        // An optional TTL and class before the type.
        let mut rest: Vec<&str> = fields.collect();
        while rest
            .first()
            .is_some_and(|f| f.eq_ignore_ascii_case("IN") || f.bytes().all(|b| b.is_ascii_digit()))
        {
            rest.remove(0);
        }
        if !rest
            .first()
            .is_some_and(|t| t.eq_ignore_ascii_case("DNSKEY"))
            || rest.len() < 5
        {
            return Err(err(
                path,
                line_no,
                "expected `<zone>. IN DNSKEY <flags> 3 <algorithm> <public key>`",
            ));
        }
        let flags: u16 = rest[1].parse().map_err(|_| {
            err(
                path,
                line_no,
                format!("flags: `{}` is not a number", rest[1]),
            )
        })?;
        if flags != ZSK_FLAGS && flags != KSK_FLAGS {
            return Err(err(
                path,
                line_no,
                format!("flags: {flags}, expected 256 or 257"),
            ));
        }
        if rest[2] != "3" {
            return Err(err(
                path,
                line_no,
                format!("protocol: {}, expected 3", rest[2]),
            ));
        }
        let algorithm = rest[3]
            .parse::<u8>()
            .ok()
            .and_then(Algorithm::from_number)
            .ok_or_else(|| {
                err(
                    path,
                    line_no,
                    format!(
                        "algorithm: {}; fedns signs with 13 (ECDSAP256SHA256) or 15 (ED25519)",
                        rest[3]
                    ),
                )
            })?;
        let public = BASE64
            .decode(rest[4..].concat())
            .map_err(|e| err(path, line_no, format!("public key: not base64 ({e})")))?;
        let want = match algorithm {
            Algorithm::EcdsaP256Sha256 => 64,
            Algorithm::Ed25519 => 32,
        };
        if public.len() != want {
            return Err(err(
                path,
                line_no,
                format!("public key: {} bytes, expected {want}", public.len()),
            ));
        }
        let zone = zone.trim_end_matches('.').to_ascii_lowercase();
        return Ok((zone, flags, algorithm, public));
    }
    Err(err(path, 0, "no DNSKEY record"))
}

/// The algorithm, private key and timing of a `.private` file.
fn read_private(path: &Path) -> Result<(Algorithm, Vec<u8>, Timing), KeyError> {
    let text = std::fs::read_to_string(path).map_err(|e| err(path, 0, e.to_string()))?;
    let (mut algorithm, mut private, mut timing) = (None, None, Timing::default());
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let Some((field, value)) = line.split_once(':') else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(err(path, line_no, "expected `Field: value`"));
        };
        let value = value.trim();
        let when = |v: &str| {
            parse_stamp(v).ok_or_else(|| {
                err(
                    path,
                    line_no,
                    format!("{field}: `{v}` is not a time (YYYYMMDDHHMMSS)"),
                )
            })
        };
        match field.trim() {
            "Private-key-format" if !value.starts_with("v1.") => {
                return Err(err(
                    path,
                    line_no,
                    format!("Private-key-format: {value}, expected v1.x"),
                ));
            }
            "Algorithm" => {
                let n = value.split_whitespace().next().unwrap_or("");
                algorithm = Some(
                    n.parse::<u8>()
                        .ok()
                        .and_then(Algorithm::from_number)
                        .ok_or_else(|| {
                            err(
                                path,
                                line_no,
                                format!("Algorithm: {value}; fedns signs with 13 or 15"),
                            )
                        })?,
                );
            }
            "PrivateKey" => {
                let key = BASE64
                    .decode(value)
                    .map_err(|e| err(path, line_no, format!("PrivateKey: not base64 ({e})")))?;
                if key.len() != 32 {
                    return Err(err(
                        path,
                        line_no,
                        format!("PrivateKey: {} bytes, expected 32", key.len()),
                    ));
                }
                private = Some(key);
            }
            "Created" => timing.created = Some(when(value)?),
            "Publish" => timing.publish = Some(when(value)?),
            "Activate" => timing.activate = Some(when(value)?),
            "Inactive" => timing.inactive = Some(when(value)?),
            "Delete" => timing.delete = Some(when(value)?),
            // Other fields (Revoke, SyncPublish, ...) are not used.
            _ => {}
        }
    }
    let algorithm = algorithm.ok_or_else(|| err(path, 0, "no Algorithm field"))?;
    let private = private.ok_or_else(|| err(path, 0, "no PrivateKey field"))?;
    Ok((algorithm, private, timing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        assert_eq!(stamp(0), "19700101000000");
        assert_eq!(parse_stamp("20261204213122"), Some(1_796_419_882));
        assert_eq!(stamp(1_796_419_882), "20261204213122");
        assert_eq!(parse_stamp("2026120421312"), None);
        assert_eq!(parse_stamp("20261304213122"), None);
    }

    /// RFC 4034 appendix B's example is RSA; this is the DNSKEY of RFC 6605 section 6.1
    /// (P-256), whose DS (SHA-256) the RFC gives.
    #[test]
    fn the_rfc_6605_example_key_gives_its_ds() {
        let public = BASE64
            .decode("GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==")
            .unwrap();
        let key = Key {
            zone: "example.net".into(),
            flags: KSK_FLAGS,
            algorithm: Algorithm::EcdsaP256Sha256,
            public,
            private: vec![0; 32],
            timing: Timing::default(),
        };
        assert_eq!(key.tag(), 55648);
        assert_eq!(
            key.ds(),
            "example.net. IN DS 55648 13 2 B4C8C1FE2E7477127B27115656AD6256F424625BF5C1E2770CE6D6E37DF61D17"
        );
    }

    #[test]
    fn generated_keys_are_written_and_read_back() {
        let dir = std::env::temp_dir().join(format!("fedns-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (alg, ksk) in [
            (Algorithm::EcdsaP256Sha256, true),
            (Algorithm::Ed25519, false),
        ] {
            let key = Key::generate("Fed.Example.com.", alg, ksk, 1_796_419_882);
            let path = key.write(&dir).unwrap();
            assert!(path.ends_with(format!("{}.key", key.base_name())));
            let back = Key::read(&path).unwrap();
            assert_eq!(back, key);
            assert_eq!(back.zone, "fed.example.com");
            assert_eq!(back.is_ksk(), ksk);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_files_say_where() {
        let dir = std::env::temp_dir().join(format!("fedns-badkeys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = Key::generate("fed.example.com", Algorithm::EcdsaP256Sha256, true, 0);
        let path = good.write(&dir).unwrap();
        let private = dir.join(format!("{}.private", good.base_name()));
        let text = std::fs::read_to_string(&private).unwrap();
        // Another key's private half.
        let other = Key::generate("fed.example.com", Algorithm::EcdsaP256Sha256, true, 0);
        let swapped = text.replace(
            &BASE64.encode(&good.private),
            &BASE64.encode(&other.private),
        );
        std::fs::write(&private, swapped).unwrap();
        let e = Key::read(&path).unwrap_err().to_string();
        assert!(
            e.contains(".private") && e.contains("does not match"),
            "{e}"
        );
        std::fs::write(&private, text.replace("Activate: ", "Activate: 2026")).unwrap();
        let e = Key::read(&path).unwrap_err().to_string();
        assert!(e.contains(".private:6: Activate:"), "{e}");
        std::fs::write(&path, "fed.example.com. IN DNSKEY 257 3 8 AwEAAQ==\n").unwrap();
        let e = Key::read(&path).unwrap_err().to_string();
        assert!(e.contains(".key:1: algorithm: 8"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
