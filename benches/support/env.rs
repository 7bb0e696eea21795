//! Settings and scratch space for the benches that run fedns and its fakes.

use std::path::PathBuf;

/// A whole-number setting from the environment, else `default`; a value that is not a
/// whole number stops the bench with its name.
pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a whole number")),
        Err(_) => default,
    }
}

/// A fresh, empty directory `fedns-<tag>-<pid>` under cargo's bench scratch directory.
pub fn work_dir(tag: &str) -> PathBuf {
    let base = option_env!("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("fedns-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create work dir");
    dir
}
