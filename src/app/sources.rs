//! The sources' lifecycle: static services into the store, one watcher task per member
//! cluster, and the prober, each started, restarted or stopped as a (re)loaded config
//! asks.

use std::collections::HashMap;

use tokio::task::JoinHandle;
use tracing::info;

use std::sync::Arc;

use super::loaded::LoadedConfig;
use super::{App, Sources};
use crate::health;
use crate::sources::kubernetes::fleet::Publishing;
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
        let wanted = watched(loaded);
        keep_only(&mut sources.watchers, &wanted);
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
        self.sync_fleet(loaded, &mut sources, &zone);
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

    /// One fleet task per watched cluster: this replica's Lease written there (to every
    /// cluster, or those of `publish_to`) and every replica's Lease watched. Restarted
    /// when the cluster's access, the fleet settings or this replica's digests change.
    fn sync_fleet(&self, loaded: &LoadedConfig, sources: &mut Sources, zone: &str) {
        let (Some(fleet), Some(cfg)) = (&self.fleet, &loaded.config.fleet) else {
            for (_, (_, t)) in sources.fleet.drain() {
                t.abort();
            }
            return;
        };
        let own = self.health.clone();
        let publishing = Arc::new(Publishing {
            me: fleet.me.clone(),
            region: crate::fleet::replica_region(cfg.region.as_deref()),
            namespace: cfg.namespace.clone(),
            lease_duration: cfg.lease_duration,
            renew: cfg.renew,
            config_digest: loaded.config_digest.clone(),
            geoip_digest: loaded.geoip_digest.clone(),
            own_view: Arc::new(move || own.view()),
            changed: self.health.subscribe(),
            stopping: self.stopping.subscribe(),
        });
        let wanted = watched(loaded);
        keep_only(&mut sources.fleet, &wanted);
        for (name, access) in wanted {
            let publish = cfg.publish_to.is_empty()
                || cfg.publish_to.iter().any(|c| c.eq_ignore_ascii_case(name));
            let fingerprint = {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                access
                    .fingerprint(&loaded.config.kubernetes, zone)
                    .hash(&mut h);
                format!("{cfg:?}").hash(&mut h);
                (&loaded.config_digest, &loaded.geoip_digest, publish).hash(&mut h);
                h.finish()
            };
            if sources
                .fleet
                .get(name)
                .is_some_and(|(f, _)| *f == fingerprint)
            {
                continue;
            }
            if let Some((_, old)) = sources.fleet.remove(name) {
                old.abort();
            }
            let task = kubernetes::fleet::spawn(
                access.clone(),
                loaded.config.kubernetes.clone(),
                publishing.clone(),
                publish,
                fleet.clone(),
                self.overrides.clone(),
                self.store.clone(),
            );
            sources.fleet.insert(name.to_owned(), (fingerprint, task));
        }
    }
}

/// The watched clusters' access, by cluster name.
fn watched(loaded: &LoadedConfig) -> HashMap<&str, &ClusterAccess> {
    loaded
        .clusters
        .iter()
        .map(|a| (a.cluster.as_str(), a))
        .collect()
}

/// Stops the per-cluster tasks of clusters no longer wanted.
fn keep_only(
    tasks: &mut HashMap<String, (u64, JoinHandle<()>)>,
    wanted: &HashMap<&str, &ClusterAccess>,
) {
    tasks.retain(|name, (_, task)| {
        let keep = wanted.contains_key(name.as_str());
        if !keep {
            task.abort();
        }
        keep
    });
}
