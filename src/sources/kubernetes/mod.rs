//! The Kubernetes source: one kube client per member cluster, watching LoadBalancer
//! Services, Ingresses and EndpointSlices, cut down at the boundary to `store::Endpoint`.
//!
//! - `access`: a cluster's API access (kubeconfig or in-cluster), loaded and checked
//!   before anything is served.
//! - this file: the cluster task that supervises one cluster's watches and sends the
//!   store what changed.
//! - `watch`: one watch per kind and namespace; after any error it starts again from a
//!   fresh list, with backoff.
//! - `objects`: the per-cluster object state machine (relists swapped in whole,
//!   readiness from EndpointSlices, what changed since the last store update).
//! - `convert`: Kubernetes objects cut down to what DNS needs, and the annotations.
//!
//! Architecture invariant: Kubernetes types never leave this module. A cluster's records
//! reach the store only once every watched kind has listed once (no half-empty world); a
//! relist swaps a kind's objects at once on `InitDone`; a failing API keeps the last-known
//! records and flags them stale, and the watch starts again from a fresh list, so recovery
//! always shows. Each cluster has its own tasks, so one cluster's trouble never slows
//! another or the query path.

use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Client;
use kube::runtime::watcher;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::KubernetesConfig;
use crate::store::{KubeState, Store};

mod access;
mod convert;
pub mod fleet;
mod objects;
mod watch;

pub use access::{ClusterAccess, KubeError};
pub use convert::ANNOTATION_PREFIX;

use convert::{ConvertCtx, slim_ingress, slim_service, slim_slice};
use objects::ClusterObjects;
use watch::{Msg, api, watch};

/// Starts watching one cluster. The returned task runs until aborted.
pub fn spawn(
    access: ClusterAccess,
    k: KubernetesConfig,
    zone: String,
    store: Arc<Store>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let cluster = access.cluster.clone();
        let client = match access.client(&k).await {
            Ok(c) => c,
            Err(e) => {
                warn!("{e}");
                store.update(&cluster, |c| {
                    c.kube = Some(KubeState {
                        stale: true,
                        last_error: Some(e.to_string()),
                        ..KubeState::default()
                    })
                });
                return;
            }
        };
        run_cluster(access, client, k, zone, store).await;
    })
}

async fn run_cluster(
    access: ClusterAccess,
    client: Client,
    k: KubernetesConfig,
    zone: String,
    store: Arc<Store>,
) {
    let cluster = access.cluster.clone();
    let (tx, mut rx) = mpsc::channel::<Msg>(4096);
    let namespaces: Vec<Option<String>> = if access.namespaces.is_empty() {
        vec![None]
    } else {
        access.namespaces.iter().cloned().map(Some).collect()
    };
    let mut wc =
        watcher::Config::default().timeout(k.watch_timeout.as_secs().clamp(1, 3600) as u32);
    if let Some(sel) = &access.label_selector {
        wc = wc.labels(sel);
    }
    let mut tasks = Vec::new();
    let mut id = 0;
    for ns in &namespaces {
        let ctx = Arc::new(ConvertCtx {
            cluster: cluster.clone(),
            zone: zone.clone(),
        });
        tasks.push(watch(
            api::<Service>(&client, ns),
            wc.clone(),
            id,
            tx.clone(),
            ctx.clone(),
            slim_service,
        ));
        tasks.push(watch(
            api::<Ingress>(&client, ns),
            wc.clone(),
            id + 1,
            tx.clone(),
            ctx.clone(),
            slim_ingress,
        ));
        tasks.push(watch(
            api::<EndpointSlice>(&client, ns),
            wc.clone(),
            id + 2,
            tx.clone(),
            ctx,
            slim_slice,
        ));
        id += 3;
    }
    drop(tx);
    // Abort the watch tasks when this task is aborted.
    let _guard = AbortOnDrop(tasks);
    let mut objects = ClusterObjects::new(id);
    let mut was_synced = false;
    let mut was_stale = false;
    while let Some(msg) = rx.recv().await {
        objects.apply(msg);
        // Coalesce a burst of events into one store update.
        while let Ok(msg) = rx.try_recv() {
            objects.apply(msg);
        }
        let synced = objects.synced();
        let last_error = objects.first_error().map(str::to_owned);
        let stale = last_error.is_some();
        if stale != was_stale {
            if stale {
                warn!(
                    cluster,
                    error = last_error.as_deref().unwrap_or(""),
                    "cluster API failing; keeping last-known records (stale)"
                );
            } else {
                info!(cluster, "cluster API back; records fresh");
            }
            was_stale = stale;
        }
        // Nothing reaches the store before the first full sync; then everything once, and
        // afterwards only the objects that changed.
        let first = synced && !was_synced;
        let changes = if !synced {
            Vec::new()
        } else {
            let changes = objects.changes(first);
            if first {
                info!(cluster, endpoints = changes.len(), "cluster synced");
                was_synced = true;
            }
            changes
        };
        // The first full sync replaces whatever the store held (records restored from the
        // state file, or left by a watch restarted by a reload).
        store.update_kube(&cluster, changes, first, |state| {
            // Restored records stay flagged stale until the first sync.
            state.stale = stale || (!synced && state.stale);
            if last_error.is_some() {
                state.last_error = last_error;
            }
            if synced && state.synced_at.is_none() {
                state.synced_at = Some(SystemTime::now());
            }
            state.last_event_at = Some(SystemTime::now());
        });
    }
}

struct AbortOnDrop(Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}
