//! DNSSEC keys and signatures against BIND's own tools (Debian's bind9-utils): keys that
//! `fedns dnssec keygen` writes give the same DS with `dnssec-dsfromkey` as with `fedns
//! dnssec ds`, keys that `dnssec-keygen` writes are read by fedns with that same DS, and a
//! small zone signed by fedns's signer passes `dnssec-verify`. Both algorithms.

use std::path::{Path, PathBuf};
use std::process::Command;

use fedns_testkit::sys::{run, tool};

const BIN: &str = env!("CARGO_BIN_EXE_fedns");
const ZONE: &str = "fed.example.com";

/// A DS line with its spacing and the digest's case made plain.
fn ds(text: &str) -> String {
    let line = text.lines().find(|l| l.contains(" DS ")).unwrap_or("");
    line.split_whitespace()
        .map(str::to_ascii_uppercase)
        .collect::<Vec<_>>()
        .join(" ")
}

fn bind_ds(key: &Path) -> String {
    ds(&run(Command::new(tool("dnssec-dsfromkey", "bind9-utils"))
        .args(["-2"])
        .arg(key)))
}

fn fedns_ds(key: &Path) -> String {
    ds(&run(Command::new(BIN).args(["dnssec", "ds"]).arg(key)))
}

fn work() -> PathBuf {
    fedns_testkit::sys::temp_dir("dnssec")
}

#[test]
fn fedns_keys_give_bind_the_same_ds() {
    let dir = work();
    for algorithm in ["13", "ed25519"] {
        let key = run(Command::new(BIN)
            .args([
                "dnssec",
                "keygen",
                "--zone",
                ZONE,
                "--algorithm",
                algorithm,
                "--dir",
            ])
            .arg(&dir));
        let key = PathBuf::from(key.trim());
        let bind = bind_ds(&key);
        assert!(bind.starts_with("FED.EXAMPLE.COM. IN DS "), "{bind}");
        assert_eq!(fedns_ds(&key), bind, "{algorithm}");
        // The private half is the owner's alone.
        let private = PathBuf::from(key.to_string_lossy().replace(".key", ".private"));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&private).unwrap().permissions(),
        );
        assert_eq!(mode & 0o077, 0, "{}", private.display());
    }
}

#[test]
fn bind_keys_are_read_by_fedns() {
    let dir = work();
    for algorithm in ["ECDSAP256SHA256", "ED25519"] {
        let name = run(Command::new(tool("dnssec-keygen", "bind9-utils"))
            .args(["-q", "-K"])
            .arg(&dir)
            .args(["-a", algorithm, "-f", "KSK", ZONE]));
        let key = dir.join(format!("{}.key", name.trim()));
        assert_eq!(fedns_ds(&key), bind_ds(&key), "{algorithm}");
    }
    // A zone-signing key has no DS; a key file that is not one says which.
    let zsk = run(Command::new(tool("dnssec-keygen", "bind9-utils"))
        .args(["-q", "-K"])
        .arg(&dir)
        .args(["-a", "ECDSAP256SHA256", ZONE]));
    let o = Command::new(BIN)
        .args(["dnssec", "ds"])
        .arg(dir.join(format!("{}.key", zsk.trim())))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("zone-signing key"));
    let bogus = dir.join("Kfed.example.com.+013+00001.key");
    std::fs::write(&bogus, "fed.example.com. IN DNSKEY 257 3 13 AAAA\n").unwrap();
    let o = Command::new(BIN)
        .args(["dnssec", "ds"])
        .arg(&bogus)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("Kfed.example.com.+013+00001.key:1: public key"),
        "{e}"
    );
}

/// The apex of a zone (SOA, NS, DNSKEY and its NSEC), every RRset signed by fedns's
/// signer, as a zone file: `dnssec-verify` checks every signature and the NSEC chain.
#[test]
fn a_zone_signed_by_fedns_passes_bind_s_dnssec_verify() {
    use base64::Engine as _;
    use fedns::dnssec::{Algorithm, Key, Signer, Validity, name_wire};
    let dir = work();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for algorithm in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
        let key = Key::generate(ZONE, algorithm, true, now);
        let signer = Signer::new(&key);
        let validity = Validity {
            inception: (now - 3600) as u32,
            expiration: (now + 30 * 86_400) as u32,
        };
        let owner = name_wire(ZONE);
        let mut soa = name_wire("ns1.example.net");
        soa.extend(name_wire("hostmaster.example.net"));
        for v in [1u32, 3600, 600, 86_400, 30] {
            soa.extend(v.to_be_bytes());
        }
        let ns = name_wire("ns1.example.net");
        let dnskey = key.dnskey_rdata();
        let mut nsec = name_wire(ZONE);
        // Window 0: NS (2), SOA (6), RRSIG (46), NSEC (47), DNSKEY (48).
        nsec.extend([0, 7, 0x22, 0, 0, 0, 0, 0x03, 0x80]);
        let mut text = format!(
            "$TTL 3600\n{ZONE}. 3600 IN SOA ns1.example.net. hostmaster.example.net. 1 3600 600 86400 30\n\
             {ZONE}. 3600 IN NS ns1.example.net.\n{}\n\
             {ZONE}. 3600 IN NSEC {ZONE}. NS SOA RRSIG NSEC DNSKEY\n",
            key.dnskey()
        );
        for (mnemonic, rtype, rdata) in [
            ("SOA", 6u16, &soa),
            ("NS", 2, &ns),
            ("DNSKEY", 48, &dnskey),
            ("NSEC", 47, &nsec),
        ] {
            let rrsig = signer.sign(&owner, rtype, 3600, &[rdata.as_slice()], validity);
            let signature = &rrsig[18 + owner.len()..];
            text.push_str(&format!(
                "{ZONE}. 3600 IN RRSIG {mnemonic} {} 3 3600 {} {} {} {ZONE}. {}\n",
                algorithm.number(),
                fedns::dnssec::keys::stamp(i64::from(validity.expiration)),
                fedns::dnssec::keys::stamp(i64::from(validity.inception)),
                key.tag(),
                base64::engine::general_purpose::STANDARD.encode(signature)
            ));
        }
        let zone = dir.join(format!("zone-{}.db", algorithm.number()));
        std::fs::write(&zone, &text).unwrap();
        // -z: the key is a combined one (flags 257) that signs everything.
        let o = Command::new(tool("dnssec-verify", "bind9-utils"))
            .args(["-z", "-o", ZONE])
            .arg(&zone)
            .output()
            .unwrap();
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "{algorithm:?}: {out}\n{text}");
        assert!(out.contains("Zone fully signed"), "{algorithm:?}: {out}");
        // A record changed after signing: its signature no longer verifies.
        let broken = text.replace(
            &format!("{ZONE}. 3600 IN SOA ns1.example.net. hostmaster.example.net. 1 "),
            &format!("{ZONE}. 3600 IN SOA ns1.example.net. hostmaster.example.net. 2 "),
        );
        std::fs::write(&zone, &broken).unwrap();
        let o = Command::new(tool("dnssec-verify", "bind9-utils"))
            .args(["-z", "-o", ZONE])
            .arg(&zone)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stderr);
        assert!(out.contains("No correct") && out.contains("SOA"), "{out}");
        assert!(!o.status.success(), "a changed SOA still verified");
    }
}
