//! The publisher: builds a snapshot when the store changes and swaps it in, off the
//! runtime's worker threads; and the per-cluster gauges that follow each publish.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;
use tracing::error;

use super::App;
use super::verdicts::Build;
use crate::answer::scope;
use crate::health::quorum::{Judge, rebuild_moved};
use crate::ops::admin::Readiness;
use crate::snapshot::Snapshot;

impl App {
    /// Builds and publishes a snapshot; the old one keeps serving if this fails.
    /// Publishes what changed: a full rebuild after a reload or an override, else (object
    /// changes, health flips of this replica's probes or of the fleet's votes) a snapshot
    /// that shares everything with the current one but the changed names. The
    /// old snapshot keeps serving if a full build fails.
    pub(super) fn publish(&self) {
        let start = Instant::now();
        let (dirty, contents) = self.store.take_changes();
        if !dirty.full && !dirty.clusters && dirty.names.is_empty() {
            self.cluster_metrics();
            return;
        }
        let loaded = self.loaded.load();
        let health = Build {
            judge: Judge::new(&self.health, &loaded.config.health, self.fleet.as_deref()),
            overrides: self.overrides.active(SystemTime::now()),
        };
        let next = if dirty.full {
            match Snapshot::build(
                &loaded.config,
                &loaded.zone,
                loaded.geoip.clone(),
                loaded.dnssec.clone(),
                &contents,
                &health,
            ) {
                Ok(mut s) => {
                    loaded.prepare_scopes(&mut s, Some(&self.published.load()));
                    let names: Vec<&str> = s.clusters.iter().map(|c| c.name.as_str()).collect();
                    self.metrics.set_clusters(&names);
                    s
                }
                Err(e) => {
                    error!("cannot build a snapshot, still serving the previous one: {e}");
                    return;
                }
            }
        } else {
            let mut next = self
                .published
                .load()
                .update(&dirty.names, &contents, &health);
            let changed: Vec<_> = dirty
                .names
                .iter()
                .filter_map(|k| next.fed_name(k))
                .collect();
            scope::prepare(&mut next, None, None, Some(&changed));
            next
        };
        self.published.store(Arc::new(next));
        self.metrics.snapshot_builds.inc();
        self.metrics
            .snapshot_build_duration
            .observe(start.elapsed().as_secs_f64());
        self.cluster_metrics();
    }

    pub(super) fn cluster_metrics(&self) {
        let m = &self.metrics;
        // A kind's state replaces its last: one series per cluster and kind.
        m.cluster_kind.reset();
        for (name, c) in self.store.contents() {
            let n = c.len() as i64;
            m.cluster_endpoints.with_label_values(&[&name]).set(n);
            if let Some(k) = &c.kube {
                for (kind, state) in &k.kinds {
                    m.cluster_kind
                        .with_label_values(&[name.as_str(), kind, state.word()])
                        .set(1);
                }
                m.cluster_stale
                    .with_label_values(&[&name])
                    .set(i64::from(k.stale));
                m.cluster_synced
                    .with_label_values(&[&name])
                    .set(i64::from(k.synced_at.is_some()));
                if let Some(t) = k
                    .last_event_at
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                {
                    m.cluster_last_sync
                        .with_label_values(&[&name])
                        .set(t.as_secs() as i64);
                }
            }
        }
        m.ready.set(i64::from(self.readiness().is_ok()));
    }

    /// Starts the task that rebuilds when a fleet view or an override expires (a vote or
    /// a drain ends then).
    pub(super) fn spawn_fleet_expiry(self: &Arc<Self>) -> Option<JoinHandle<()>> {
        let fleet = self.fleet.clone()?;
        let app = self.clone();
        Some(tokio::spawn(async move {
            let (mut fresh, mut active) = (0, 0);
            let mut checked = SystemTime::now();
            loop {
                let now = SystemTime::now();
                let next = [fleet.next_expiry(now), app.overrides.next_expiry(now)]
                    .into_iter()
                    .flatten()
                    .min();
                let wait = next
                    .and_then(|t| t.duration_since(now).ok())
                    .unwrap_or(Duration::from_secs(1))
                    .clamp(Duration::from_millis(50), Duration::from_secs(1));
                tokio::time::sleep(wait).await;
                let now = SystemTime::now();
                // An expired view's votes end: the names behind the targets it voted on.
                rebuild_moved(&app.store, fleet.expired(checked, now));
                checked = now;
                let (now_fresh, now_active) = (fleet.fresh(now), app.overrides.active(now).len());
                if now_fresh == 0 && fresh > 0 {
                    tracing::warn!("fleet: no other replica's view is fresh; deciding alone");
                }
                // An override's end may move any name of its cluster.
                if now_active < active {
                    app.store.rebuild_all();
                }
                (fresh, active) = (now_fresh, now_active);
            }
        }))
    }

    /// Starts the snapshot builder; `changed` was subscribed before the first build, so
    /// that no change falls between the two.
    pub(super) fn spawn_publisher(
        self: &Arc<Self>,
        changed: tokio::sync::watch::Receiver<u64>,
    ) -> JoinHandle<()> {
        tokio::spawn(publish_loop(self.clone(), changed))
    }
}

/// The snapshot builder: rebuilds and publishes whenever the store changes (endpoints,
/// health, reloads). Bursts coalesce: a change during a build causes one more build.
async fn publish_loop(app: Arc<App>, mut changed: tokio::sync::watch::Receiver<u64>) {
    while changed.changed().await.is_ok() {
        // A build can take a while (a cluster's first sync, a full rebuild of a large
        // federation): keep it off the runtime's worker threads, which serve queries.
        let s = app.clone();
        let _ = tokio::task::spawn_blocking(move || s.publish()).await;
    }
}
