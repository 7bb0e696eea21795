//! Waiting until something holds, for tests of things that happen in the background
//! (reloads, watches, probes).

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

/// Polls `check` every 20 ms until it returns `Ok`; after `patience`, panics with the last
/// `Err` it returned (which should say what was seen and what was wanted).
pub async fn eventually<F, Fut>(patience: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match check().await {
            Ok(()) => return,
            Err(last) => {
                assert!(tokio::time::Instant::now() < deadline, "{last}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Polls `get` every 20 ms until it returns `want`; after `patience`, panics naming
/// `what`, the last value and the one wanted.
pub async fn until_eq<T, W, F, Fut>(patience: Duration, what: &str, mut get: F, want: W)
where
    T: PartialEq<W> + Debug,
    W: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let got = get().await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Blocking [`eventually`]: calls `check` every 50 ms until it returns `Ok`; after
/// `patience`, panics with the last `Err`.
pub fn until(patience: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = std::time::Instant::now() + patience;
    loop {
        match check() {
            Ok(()) => return,
            Err(last) => {
                assert!(std::time::Instant::now() < deadline, "{last}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
