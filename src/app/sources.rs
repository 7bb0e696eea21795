//! The sources' lifecycle: static services into the store, one watcher task per member
//! cluster, and the prober, each started, restarted or stopped as a (re)loaded config
//! asks.

use std::collections::HashMap;

use tracing::info;

use super::App;
use super::loaded::LoadedConfig;
use crate::health;
use crate::sources::kubernetes::{self, ClusterAccess};
use crate::sources::static_services;

impl App {
    /// Makes the sources match a (new) config: static services into the store, watchers
    /// started, restarted or stopped per cluster, the prober restarted if its settings
    /// changed. Clusters whose settings did not change keep their watches and records.
    pub(super) fn sync_sources(&self, loaded: &LoadedConfig) {
        self.store
            .set_static(static_services::endpoints(&loaded.config));
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let zone = loaded
            .config
            .zone
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let wanted: HashMap<&str, &ClusterAccess> = loaded
            .clusters
            .iter()
            .map(|a| (a.cluster.as_str(), a))
            .collect();
        sources.watchers.retain(|name, (_, task)| {
            let keep = wanted.contains_key(name.as_str());
            if !keep {
                task.abort();
            }
            keep
        });
        for (name, access) in wanted {
            let fingerprint = access.fingerprint(&loaded.config.kubernetes, &zone);
            if sources
                .watchers
                .get(name)
                .is_some_and(|(f, _)| *f == fingerprint)
            {
                continue;
            }
            if let Some((_, old)) = sources.watchers.remove(name) {
                info!(
                    cluster = name,
                    "cluster access changed; restarting its watches"
                );
                old.abort();
            }
            let task = kubernetes::spawn(
                access.clone(),
                loaded.config.kubernetes.clone(),
                zone.clone(),
                self.store.clone(),
            );
            sources
                .watchers
                .insert(name.to_owned(), (fingerprint, task));
        }
        let health = &loaded.config.health;
        if sources.prober.as_ref().is_none_or(|(h, _)| h != health) {
            if let Some((_, old)) = sources.prober.take() {
                old.abort();
            }
            let task = tokio::spawn(health::prober::run(
                self.store.clone(),
                self.health.clone(),
                health.clone(),
            ));
            sources.prober = Some((health.clone(), task));
        }
    }
}
