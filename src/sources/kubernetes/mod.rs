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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::DynamicObject;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::KubernetesConfig;
use crate::store::{KindState, KubeState, Store};

mod access;
mod convert;
mod discovery;
mod dns_endpoint;
pub mod fleet;
mod gateway;
mod istio;
mod objects;
mod slim;
mod watch;

pub use access::{ClusterAccess, KubeError};
pub use convert::ANNOTATION_PREFIX;

use convert::ConvertCtx;
use discovery::Optional;
use objects::{ClusterObjects, StreamKind};
use slim::{Slim, slim_ingress, slim_service, slim_slice};
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

/// How a watch cuts its objects down.
type Convert<K> = fn(&K, &ConvertCtx) -> Option<Slim>;

/// The watches of one optional kind: the version watched and its streams, which end
/// when it is dropped (the kind is no longer served, or the cluster task ends).
struct OptionalWatch {
    version: String,
    streams: Vec<(usize, JoinHandle<()>)>,
}

impl Drop for OptionalWatch {
    fn drop(&mut self) {
        for (_, task) in &self.streams {
            task.abort();
        }
    }
}

/// Everything the cluster task needs to start watches.
struct Watches {
    client: Client,
    namespaces: Vec<Option<String>>,
    wc: watcher::Config,
    tx: mpsc::Sender<Msg>,
    ctx: Arc<ConvertCtx>,
    next_id: usize,
}

impl Watches {
    fn id(&mut self) -> usize {
        self.next_id += 1;
        self.next_id - 1
    }

    /// A new stream of `kind`: its id is registered in `objects`, and its watch started.
    fn stream<K>(
        &mut self,
        objects: &mut ClusterObjects,
        kind: StreamKind,
        api: Api<K>,
        wc: watcher::Config,
        convert: Convert<K>,
    ) -> (usize, JoinHandle<()>)
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        K: Send + Sync + 'static,
    {
        let id = self.id();
        objects.add_stream(id, kind);
        let task = watch(api, wc, id, self.tx.clone(), self.ctx.clone(), convert);
        (id, task)
    }

    /// Services, Ingresses and EndpointSlices, in every watched namespace.
    fn core(&mut self, objects: &mut ClusterObjects) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        for ns in self.namespaces.clone() {
            let (c, wc) = (self.client.clone(), self.wc.clone());
            let services = api::<Service>(&c, &ns);
            tasks.push(
                self.stream(
                    objects,
                    StreamKind::Services,
                    services,
                    wc.clone(),
                    slim_service,
                )
                .1,
            );
            let ingresses = api::<Ingress>(&c, &ns);
            tasks.push(
                self.stream(
                    objects,
                    StreamKind::Ingresses,
                    ingresses,
                    wc.clone(),
                    slim_ingress,
                )
                .1,
            );
            let slices = api::<EndpointSlice>(&c, &ns);
            tasks.push(
                self.stream(objects, StreamKind::Slices, slices, wc, slim_slice)
                    .1,
            );
        }
        tasks
    }

    /// The cluster's Namespaces (cluster-scoped: one stream), for their labels.
    fn namespaces(&mut self, objects: &mut ClusterObjects) -> JoinHandle<()> {
        // Every namespace: a selector may admit any, whatever the label selector of the
        // objects fedns watches.
        let wc = watcher::Config::default().timeout(self.wc.timeout.unwrap_or(290));
        let api = Api::<Namespace>::all(self.client.clone());
        self.stream(
            objects,
            StreamKind::Namespaces,
            api,
            wc,
            slim::slim_namespace,
        )
        .1
    }

    /// One optional kind at `version`, in every watched namespace.
    fn optional(
        &mut self,
        kind: Optional,
        version: &str,
        objects: &mut ClusterObjects,
    ) -> OptionalWatch {
        let ar = kind.api_resource(version);
        let (stream, convert): (StreamKind, Convert<DynamicObject>) = match kind {
            Optional::Gateway => (StreamKind::Gateways, slim::slim_gateway),
            Optional::HttpRoute => (
                StreamKind::Routes(gateway::RouteKind::Http),
                slim::slim_http_route,
            ),
            Optional::GrpcRoute => (
                StreamKind::Routes(gateway::RouteKind::Grpc),
                slim::slim_grpc_route,
            ),
            Optional::TlsRoute => (
                StreamKind::Routes(gateway::RouteKind::Tls),
                slim::slim_tls_route,
            ),
            Optional::DnsEndpoint => (StreamKind::DnsEndpoints, slim::slim_dns_endpoint),
            Optional::IstioGateway => (StreamKind::IstioGateways, slim::slim_istio_gateway),
            Optional::VirtualService => (StreamKind::VirtualServices, slim::slim_virtual_service),
            Optional::ListenerSet | Optional::XListenerSet => {
                (StreamKind::ListenerSets, slim::slim_listener_set)
            }
        };
        let mut streams = Vec::new();
        for ns in self.namespaces.clone() {
            let api = match &ns {
                Some(ns) => Api::<DynamicObject>::namespaced_with(self.client.clone(), ns, &ar),
                None => Api::<DynamicObject>::all_with(self.client.clone(), &ar),
            };
            let wc = self.wc.clone();
            streams.push(self.stream(objects, stream, api, wc, convert));
        }
        OptionalWatch {
            version: version.to_owned(),
            streams,
        }
    }
}

/// Starts, stops or moves the optional kinds' watches to what discovery found, and logs
/// each kind's state when it changes (once, not per discovery).
fn follow_discovery(
    cluster: &str,
    found: BTreeMap<Optional, KindState>,
    w: &mut Watches,
    optional: &mut BTreeMap<Optional, OptionalWatch>,
    kinds: &mut BTreeMap<&'static str, KindState>,
    objects: &mut ClusterObjects,
) {
    for (kind, state) in found {
        let want = match &state {
            KindState::Watched(v) => Some(v.as_str()),
            _ => None,
        };
        if optional.get(&kind).map(|o| o.version.as_str()) != want {
            if let Some(old) = optional.remove(&kind) {
                for (id, _) in &old.streams {
                    objects.remove_stream(*id);
                }
            }
            if let Some(v) = want {
                optional.insert(kind, w.optional(kind, v, objects));
            }
        }
        let name = kind.report_name();
        if kinds.get(name) != Some(&state) {
            match &state {
                KindState::UnknownVersions(_) => {
                    warn!(cluster, kind = name, state = %state, "kind not watched")
                }
                _ => info!(cluster, kind = name, state = %state, "kind"),
            }
            kinds.insert(name, state);
        }
    }
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
    let mut w = Watches {
        client: client.clone(),
        namespaces,
        wc,
        tx,
        ctx: Arc::new(ConvertCtx {
            cluster: cluster.clone(),
            zone: zone.clone(),
        }),
        next_id: 0,
    };
    let mut objects = ClusterObjects::new(&zone);
    let mut optional: BTreeMap<Optional, OptionalWatch> = BTreeMap::new();
    let mut kinds: BTreeMap<&'static str, KindState> = BTreeMap::new();
    // The optional kinds are found before the first sync, so that a cluster that has
    // them publishes them with the rest; an API that does not answer in time is asked
    // again at the next discovery.
    let first = tokio::time::timeout(k.connect_timeout * 2, discovery::discover(&client)).await;
    match first {
        Ok(Ok(found)) => follow_discovery(
            &cluster,
            found,
            &mut w,
            &mut optional,
            &mut kinds,
            &mut objects,
        ),
        Ok(Err(e)) => {
            warn!(cluster, error = %e, "API discovery failed; optional kinds are looked for again later")
        }
        Err(_) => warn!(
            cluster,
            "API discovery timed out; optional kinds are looked for again later"
        ),
    }
    let core = w.core(&mut objects);
    // Abort the watch tasks when this task is aborted.
    let mut guard = AbortOnDrop(core);
    let mut namespaces_error: Option<String> = None;
    let mut rediscover = tokio::time::interval(k.discovery_interval);
    rediscover.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    rediscover.tick().await;
    let mut was_synced = false;
    let mut was_stale = false;
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { return };
                objects.apply(msg);
                // Coalesce a burst of events into one store update.
                while let Ok(msg) = rx.try_recv() {
                    objects.apply(msg);
                }
            }
            _ = rediscover.tick() => match discovery::discover(&client).await {
                Ok(found) => follow_discovery(&cluster, found, &mut w, &mut optional, &mut kinds, &mut objects),
                Err(e) => debug!(cluster, error = %e, "API discovery failed; keeping the kinds found before"),
            },
        }
        if objects.wants_namespaces() {
            info!(
                cluster,
                "a Gateway selects namespaces by their labels: watching Namespaces"
            );
            guard.0.push(w.namespaces(&mut objects));
        }
        let ns_error = objects.namespaces_error().map(str::to_owned);
        if ns_error != namespaces_error {
            if let Some(e) = &ns_error {
                warn!(
                    cluster,
                    error = e,
                    "cannot watch Namespaces: namespace selectors admit nothing"
                );
            }
            namespaces_error = ns_error;
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
        // afterwards only the objects that changed (a kind found later, still listing,
        // holds nothing back).
        let first = synced && !was_synced;
        let changes = if !synced && !was_synced {
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
            state.kinds = kinds.clone();
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
