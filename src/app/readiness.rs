//! Readiness: what /readyz and `fedns_ready` say.

use std::sync::atomic::Ordering;

use super::App;
use crate::ops::admin::Readiness;

/// Ready once every reachable member cluster's records are served (or `sync_timeout` has
/// passed), and not while draining.
impl Readiness for App {
    fn readiness(&self) -> Result<(), String> {
        if self.draining.load(Ordering::Relaxed) {
            return Err("shutting down".into());
        }
        let loaded = self.loaded.load();
        let timeout = loaded.config.kubernetes.sync_timeout;
        if self.started.elapsed() >= timeout {
            return Ok(());
        }
        // From the published snapshot, not the store: ready means the records are served.
        let snap = self.published.load();
        let waiting: Vec<&str> = loaded
            .clusters
            .iter()
            .filter(|a| {
                snap.clusters
                    .iter()
                    .find(|c| c.name == a.cluster)
                    // An unreachable cluster does not hold readiness back.
                    .is_some_and(|c| !c.synced && !c.stale)
            })
            .map(|a| a.cluster.as_str())
            .collect();
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "waiting for clusters to sync: {} (at most {:?} after start)",
                waiting.join(", "),
                timeout
            ))
        }
    }
}
