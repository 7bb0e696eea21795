//! DNSSEC keys against BIND's own tools (Debian's bind9-utils): keys that `fedns dnssec
//! keygen` writes give the same DS with `dnssec-dsfromkey` as with `fedns dnssec ds`, and
//! keys that `dnssec-keygen` writes are read by fedns with that same DS. Both algorithms.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_fedns");
const ZONE: &str = "fed.example.com";

/// A tool the test needs, or a failure that says how to get it.
fn tool(name: &str) -> String {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{name} is missing: install Debian's bind9-utils (.ci/run does: apt-get install bind9-utils)"
    );
    name.to_owned()
}

fn run(cmd: &mut Command) -> String {
    let o: Output = cmd.output().expect("run");
    assert!(
        o.status.success(),
        "{cmd:?}: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A DS line with its spacing and the digest's case made plain.
fn ds(text: &str) -> String {
    let line = text.lines().find(|l| l.contains(" DS ")).unwrap_or("");
    line.split_whitespace()
        .map(str::to_ascii_uppercase)
        .collect::<Vec<_>>()
        .join(" ")
}

fn bind_ds(key: &Path) -> String {
    ds(&run(Command::new(tool("dnssec-dsfromkey"))
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
        let name = run(Command::new(tool("dnssec-keygen"))
            .args(["-q", "-K"])
            .arg(&dir)
            .args(["-a", algorithm, "-f", "KSK", ZONE]));
        let key = dir.join(format!("{}.key", name.trim()));
        assert_eq!(fedns_ds(&key), bind_ds(&key), "{algorithm}");
    }
    // A zone-signing key has no DS; a key file that is not one says which.
    let zsk = run(Command::new(tool("dnssec-keygen"))
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
