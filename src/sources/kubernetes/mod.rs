//! The Kubernetes source: one kube client per member cluster, watching LoadBalancer
//! Services, Ingresses and EndpointSlices, cut down at the boundary to `store::Endpoint`.
//!
//! Architecture invariant: Kubernetes types never leave this module. A cluster's records
//! reach the store only once every watched kind has listed once (no half-empty world); a
//! relist swaps a kind's objects at once on `InitDone`; a failing API keeps the last-known
//! records and flags them stale, while kube's watcher reconnects with backoff. Each cluster
//! has its own tasks, so one cluster's trouble never slows another or the query path.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{LoadBalancerIngress, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::{ClusterConfig, KubeSource, KubernetesConfig, PolicyKind, ProbeKind, in_zone};
use crate::store::{Endpoint, KubeState, ObjectKey, ObjectKind, Settings, Store};

/// Annotations that tune a Service or Ingress: `fedns.io/policy`, `fedns.io/count`,
/// `fedns.io/failover-order`, `fedns.io/weight`, `fedns.io/hosts`, `fedns.io/exclude`,
/// `fedns.io/probe` (tcp, http, https, none), `fedns.io/probe-path`, `fedns.io/probe-port`,
/// `fedns.io/probe-status`.
pub const ANNOTATION_PREFIX: &str = "fedns.io/";

/// The label EndpointSlices carry to name their Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cluster `{cluster}`: kubeconfig {path}: {message}")]
    Kubeconfig {
        cluster: String,
        path: PathBuf,
        message: String,
    },
    #[error("cluster `{cluster}`: in-cluster service account: {message}")]
    InCluster { cluster: String, message: String },
    #[error("cluster `{cluster}`: cannot create a client: {message}")]
    Client { cluster: String, message: String },
}

/// A cluster's API access, loaded and checked before anything is served.
#[derive(Clone)]
pub struct ClusterAccess {
    pub cluster: String,
    pub source: KubeSource,
    /// The parsed kubeconfig (None for in-cluster).
    kubeconfig: Option<Kubeconfig>,
    pub namespaces: Vec<String>,
    pub label_selector: Option<String>,
    /// The kubeconfig file's bytes, hashed: a reload restarts a cluster's watches only
    /// when this or another of its settings changed.
    file_hash: u64,
}

impl std::fmt::Debug for ClusterAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The kubeconfig holds credentials: never print it.
        f.debug_struct("ClusterAccess")
            .field("cluster", &self.cluster)
            .field("source", &self.source)
            .finish()
    }
}

impl ClusterAccess {
    /// Reads and checks a cluster's kubeconfig (file, context); no network.
    pub fn load(c: &ClusterConfig) -> Result<Option<ClusterAccess>, KubeError> {
        let Some(source) = c.kube_source() else {
            return Ok(None);
        };
        let kubeconfig = match &source {
            KubeSource::Kubeconfig { path, context } => {
                let bad = |message: String| KubeError::Kubeconfig {
                    cluster: c.name.clone(),
                    path: path.clone(),
                    message,
                };
                let kc = Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
                let wanted = context.clone().or_else(|| kc.current_context.clone());
                match wanted {
                    None => return Err(bad("no context given and no current-context".into())),
                    Some(ctx) if !kc.contexts.iter().any(|n| n.name == ctx) => {
                        let known: Vec<&str> =
                            kc.contexts.iter().map(|n| n.name.as_str()).collect();
                        return Err(bad(format!(
                            "no context `{ctx}` (it has: {})",
                            known.join(", ")
                        )));
                    }
                    Some(_) => {}
                }
                Some(kc)
            }
            KubeSource::InCluster => None,
        };
        let file_hash = match &source {
            KubeSource::Kubeconfig { path, .. } => {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::fs::read(path).unwrap_or_default().hash(&mut h);
                h.finish()
            }
            KubeSource::InCluster => 0,
        };
        Ok(Some(ClusterAccess {
            cluster: c.name.clone(),
            source,
            kubeconfig,
            namespaces: c.namespaces.clone(),
            label_selector: c.label_selector.clone(),
            file_hash,
        }))
    }

    /// Everything that, changed, needs the cluster's watches restarted.
    pub fn fingerprint(&self, k: &KubernetesConfig, zone: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (
            &self.source,
            &self.namespaces,
            &self.label_selector,
            self.file_hash,
            k.watch_timeout,
            k.connect_timeout,
            zone,
        )
            .hash(&mut h);
        h.finish()
    }

    pub fn kubeconfig_path(&self) -> Option<PathBuf> {
        match &self.source {
            KubeSource::Kubeconfig { path, .. } => Some(path.clone()),
            KubeSource::InCluster => None,
        }
    }

    /// Builds the kube client: TLS and token or client-certificate auth as the kubeconfig
    /// carries them, with our timeouts.
    pub async fn client(&self, k: &KubernetesConfig) -> Result<Client, KubeError> {
        let mut config = match (&self.source, &self.kubeconfig) {
            (KubeSource::Kubeconfig { path, context }, Some(kc)) => {
                let options = KubeConfigOptions {
                    context: context.clone(),
                    ..KubeConfigOptions::default()
                };
                kube::Config::from_custom_kubeconfig(kc.clone(), &options)
                    .await
                    .map_err(|e| KubeError::Kubeconfig {
                        cluster: self.cluster.clone(),
                        path: path.clone(),
                        message: e.to_string(),
                    })?
            }
            _ => kube::Config::incluster().map_err(|e| KubeError::InCluster {
                cluster: self.cluster.clone(),
                message: e.to_string(),
            })?,
        };
        config.connect_timeout = Some(k.connect_timeout);
        // A LIST that hangs must fail, not wait forever; watches end server-side after
        // watch_timeout, so a healthy stream never goes quiet for longer than that plus a
        // margin (a quarter of it, 1 to 15 s).
        let margin = (k.watch_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(15));
        config.read_timeout = Some(k.watch_timeout + margin);
        config.reset_reader_on_write = true;
        Client::try_from(config).map_err(|e| KubeError::Client {
            cluster: self.cluster.clone(),
            message: e.to_string(),
        })
    }
}

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

/// What a watch stream tells the cluster task.
#[derive(Debug)]
enum Msg {
    Init(usize),
    InitApply(usize, Key, Option<Slim>),
    InitDone(usize),
    Apply(usize, Key, Option<Slim>),
    Delete(usize, Key),
    Error(usize, String),
}

/// namespace/name
type Key = (String, String);

/// A Kubernetes object cut down to what DNS needs.
#[derive(Clone, Debug, PartialEq)]
enum Slim {
    Service {
        addresses: Vec<IpAddr>,
        hostname: Option<String>,
        port: Option<u16>,
        hosts: Vec<String>,
        settings: Settings,
    },
    Ingress {
        hosts: Vec<String>,
        addresses: Vec<IpAddr>,
        hostname: Option<String>,
        port: u16,
        settings: Settings,
    },
    Slice {
        service: String,
        ready: usize,
    },
}

/// One watch stream's objects: the current set and, during a relist, the next one.
#[derive(Default)]
struct StreamState {
    objects: HashMap<Key, Slim>,
    /// Objects of a relist in progress; swapped in whole on InitDone.
    pending: Option<HashMap<Key, Slim>>,
    synced: bool,
    error: Option<String>,
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
        let synced = objects.streams.iter().all(|s| s.synced);
        let errors: Vec<&str> = objects
            .streams
            .iter()
            .filter_map(|s| s.error.as_deref())
            .collect();
        let stale = !errors.is_empty();
        let last_error = errors.first().map(|e| e.to_string());
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

fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// What conversions need to know.
struct ConvertCtx {
    cluster: String,
    zone: String,
}

/// Runs one kube watcher and forwards its events, converted, to the cluster task.
fn watch<K>(
    api: Api<K>,
    wc: watcher::Config,
    id: usize,
    tx: mpsc::Sender<Msg>,
    ctx: Arc<ConvertCtx>,
    convert: fn(&K, &ConvertCtx) -> Option<Slim>,
) -> JoinHandle<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    tokio::spawn(async move {
        // On an error the watcher is dropped and started afresh after a backoff, so that
        // recovery always shows as a relist (Init..InitDone): a quiet watch that merely
        // reconnected would otherwise say nothing, and the cluster would stay stale.
        let mut backoff = MIN_BACKOFF;
        loop {
            let mut stream = watcher::watcher(api.clone(), wc.clone()).boxed();
            while let Some(item) = stream.next().await {
                let msg = match item {
                    Ok(Event::Init) => Msg::Init(id),
                    Ok(Event::InitApply(o)) => Msg::InitApply(id, key(&o), convert(&o, &ctx)),
                    Ok(Event::InitDone) => {
                        backoff = MIN_BACKOFF;
                        Msg::InitDone(id)
                    }
                    Ok(Event::Apply(o)) => Msg::Apply(id, key(&o), convert(&o, &ctx)),
                    Ok(Event::Delete(o)) => Msg::Delete(id, key(&o)),
                    Err(e) => {
                        debug!(cluster = ctx.cluster, error = %e, "watch error");
                        Msg::Error(id, e.to_string())
                    }
                };
                let failed = matches!(msg, Msg::Error(..));
                if tx.send(msg).await.is_err() {
                    return;
                }
                if failed {
                    break;
                }
            }
            // Exponential backoff with jitter, as client-go's reflector does.
            let jitter = 0.8
                + 0.4
                    * (SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| d.subsec_nanos()) as f64
                        / 1e9);
            tokio::time::sleep(backoff.mul_f64(jitter)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

/// Backoff between a failed watch and the next attempt.
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

fn key<K: Resource>(o: &K) -> Key {
    (o.namespace().unwrap_or_default(), o.name_any())
}

/// The kind a stream watches: streams come in threes per namespace.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StreamKind {
    Services,
    Ingresses,
    Slices,
}

fn stream_kind(id: usize) -> StreamKind {
    match id % 3 {
        0 => StreamKind::Services,
        1 => StreamKind::Ingresses,
        _ => StreamKind::Slices,
    }
}

/// Everything one cluster's watches have seen, with what changed since the last store
/// update, so that one event costs one object and not the whole cluster.
struct ClusterObjects {
    streams: Vec<StreamState>,
    /// Ready endpoints per Service, per EndpointSlice: readiness without a scan of slices.
    ready: HashMap<Key, HashMap<Key, usize>>,
    touched_services: HashSet<Key>,
    touched_ingresses: HashSet<Key>,
}

impl ClusterObjects {
    fn new(streams: usize) -> ClusterObjects {
        ClusterObjects {
            streams: (0..streams).map(|_| StreamState::default()).collect(),
            ready: HashMap::new(),
            touched_services: HashSet::new(),
            touched_ingresses: HashSet::new(),
        }
    }

    fn touch(&mut self, kind: StreamKind, key: &Key, object: Option<&Slim>) {
        match (kind, object) {
            (StreamKind::Services, _) => {
                self.touched_services.insert(key.clone());
            }
            (StreamKind::Ingresses, _) => {
                self.touched_ingresses.insert(key.clone());
            }
            (StreamKind::Slices, Some(Slim::Slice { service, ready })) => {
                let svc = (key.0.clone(), service.clone());
                self.ready
                    .entry(svc.clone())
                    .or_default()
                    .insert(key.clone(), *ready);
                self.touched_services.insert(svc);
            }
            (StreamKind::Slices, _) => {}
        }
    }

    /// Forgets a slice's readiness contribution.
    fn untouch_slice(&mut self, key: &Key, old: Option<&Slim>) {
        if let Some(Slim::Slice { service, .. }) = old {
            let svc = (key.0.clone(), service.clone());
            if let Some(m) = self.ready.get_mut(&svc) {
                m.remove(key);
                if m.is_empty() {
                    self.ready.remove(&svc);
                }
            }
            self.touched_services.insert(svc);
        }
    }

    fn apply(&mut self, msg: Msg) {
        let id = match &msg {
            Msg::Init(i)
            | Msg::InitApply(i, ..)
            | Msg::InitDone(i)
            | Msg::Apply(i, ..)
            | Msg::Delete(i, _)
            | Msg::Error(i, _) => *i,
        };
        let kind = stream_kind(id);
        let Some(s) = self.streams.get_mut(id) else {
            return;
        };
        // Only data from the API clears an error: kube's watcher says Init before it tries
        // the LIST, so a retry against a dead API would otherwise look like a recovery for
        // the moment between its Init and its error.
        if !matches!(msg, Msg::Error(..) | Msg::Init(_)) {
            s.error = None;
        }
        match msg {
            Msg::Init(_) => s.pending = Some(HashMap::new()),
            Msg::InitApply(_, k, o) => {
                if let Some(o) = o {
                    s.pending.get_or_insert_with(HashMap::new).insert(k, o);
                }
            }
            Msg::InitDone(_) => {
                // The relist replaces this stream's objects at once.
                let new = s.pending.take().unwrap_or_default();
                let old = std::mem::replace(&mut s.objects, new);
                s.synced = true;
                let new: Vec<(Key, Slim)> = self.streams[id]
                    .objects
                    .iter()
                    .map(|(k, o)| (k.clone(), o.clone()))
                    .collect();
                for (k, o) in &old {
                    if kind == StreamKind::Slices {
                        self.untouch_slice(k, Some(o));
                    } else {
                        self.touch(kind, k, Some(o));
                    }
                }
                for (k, o) in &new {
                    self.touch(kind, k, Some(o));
                }
            }
            Msg::Apply(_, k, Some(o)) => {
                let old = s.objects.insert(k.clone(), o.clone());
                if kind == StreamKind::Slices {
                    self.untouch_slice(&k, old.as_ref());
                }
                self.touch(kind, &k, Some(&o));
            }
            Msg::Apply(_, k, None) | Msg::Delete(_, k) => {
                let old = s.objects.remove(&k);
                if kind == StreamKind::Slices {
                    self.untouch_slice(&k, old.as_ref());
                } else {
                    self.touch(kind, &k, None);
                }
            }
            Msg::Error(_, e) => s.error = Some(e),
        }
    }

    /// The current object of `kind` at `key`, from whichever namespace's stream has it.
    fn object(&self, kind: StreamKind, key: &Key) -> Option<&Slim> {
        self.streams
            .iter()
            .enumerate()
            .filter(|(i, _)| stream_kind(*i) == kind)
            .find_map(|(_, s)| s.objects.get(key))
    }

    /// The store changes since the last call: every object when `all`, else those touched.
    fn changes(&mut self, all: bool) -> Vec<(ObjectKey, Option<Endpoint>)> {
        let services = std::mem::take(&mut self.touched_services);
        let ingresses = std::mem::take(&mut self.touched_ingresses);
        let (services, ingresses): (Vec<Key>, Vec<Key>) = if all {
            let keys = |kind| -> Vec<Key> {
                self.streams
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| stream_kind(*i) == kind)
                    .flat_map(|(_, s)| s.objects.keys().cloned())
                    .collect()
            };
            (keys(StreamKind::Services), keys(StreamKind::Ingresses))
        } else {
            (
                services.into_iter().collect(),
                ingresses.into_iter().collect(),
            )
        };
        let mut out = Vec::with_capacity(services.len() + ingresses.len());
        for key in services {
            let endpoint = self
                .object(StreamKind::Services, &key)
                .and_then(|o| self.endpoint(&key, o));
            out.push(((ObjectKind::Service, key.0, key.1), endpoint));
        }
        for key in ingresses {
            let endpoint = self
                .object(StreamKind::Ingresses, &key)
                .and_then(|o| self.endpoint(&key, o));
            out.push(((ObjectKind::Ingress, key.0, key.1), endpoint));
        }
        out
    }

    /// The store's endpoint for a Service (readiness from its EndpointSlices) or Ingress.
    fn endpoint(&self, (ns, name): &Key, o: &Slim) -> Option<Endpoint> {
        match o {
            Slim::Service {
                addresses,
                hostname,
                port,
                hosts,
                settings,
            } => Some(Endpoint {
                kind: ObjectKind::Service,
                namespace: ns.clone(),
                name: name.clone(),
                federated_name: true,
                hosts: hosts.clone(),
                addresses: addresses.clone(),
                hostname: hostname.clone(),
                port: *port,
                ready: self
                    .ready
                    .get(&(ns.clone(), name.clone()))
                    .is_some_and(|m| m.values().sum::<usize>() > 0),
                settings: settings.clone(),
            }),
            Slim::Ingress {
                hosts,
                addresses,
                hostname,
                port,
                settings,
            } => Some(Endpoint {
                kind: ObjectKind::Ingress,
                namespace: ns.clone(),
                name: name.clone(),
                federated_name: false,
                hosts: hosts.clone(),
                addresses: addresses.clone(),
                hostname: hostname.clone(),
                port: Some(*port),
                // SPEC section 4: an Ingress can serve when its load balancer has an address.
                ready: !addresses.is_empty() || hostname.is_some(),
                settings: settings.clone(),
            }),
            Slim::Slice { .. } => None,
        }
    }
}

/// Load-balancer addresses and the first hostname from `status.loadBalancer.ingress`.
fn lb_targets(
    ingress: Option<&Vec<LoadBalancerIngress>>,
    what: &str,
    ctx: &ConvertCtx,
) -> (Vec<IpAddr>, Option<String>) {
    let mut addrs = Vec::new();
    let mut hostname = None;
    for i in ingress.into_iter().flatten() {
        if let Some(ip) = &i.ip {
            match ip.parse::<IpAddr>() {
                Ok(a) => addrs.push(a),
                Err(_) => warn!(
                    cluster = ctx.cluster,
                    object = what,
                    ip,
                    "load-balancer ip is not an address; ignored"
                ),
            }
        }
        if hostname.is_none()
            && let Some(h) = &i.hostname
        {
            hostname = Some(h.trim_end_matches('.').to_ascii_lowercase());
        }
    }
    (addrs, hostname)
}

fn slim_service(svc: &Service, ctx: &ConvertCtx) -> Option<Slim> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return None;
    }
    let what = format!(
        "service {}/{}",
        svc.namespace().unwrap_or_default(),
        svc.name_any()
    );
    let (settings, hosts, exclude) = annotations(svc.annotations(), &what, ctx);
    if exclude {
        return None;
    }
    let status = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref());
    let (addresses, hostname) = lb_targets(status.and_then(|l| l.ingress.as_ref()), &what, ctx);
    if addresses.is_empty() && hostname.is_none() {
        // Pending: no load balancer yet, nothing to answer with.
        return None;
    }
    let port = spec
        .ports
        .as_ref()
        .and_then(|p| p.first())
        .and_then(|p| u16::try_from(p.port).ok());
    Some(Slim::Service {
        addresses,
        hostname,
        port,
        hosts,
        settings,
    })
}

fn slim_ingress(ing: &Ingress, ctx: &ConvertCtx) -> Option<Slim> {
    let what = format!(
        "ingress {}/{}",
        ing.namespace().unwrap_or_default(),
        ing.name_any()
    );
    let (settings, mut hosts, exclude) = annotations(ing.annotations(), &what, ctx);
    if exclude {
        return None;
    }
    let spec = ing.spec.as_ref()?;
    for rule in spec.rules.iter().flatten() {
        if let Some(h) = &rule.host {
            let h = h.trim_end_matches('.').to_ascii_lowercase();
            if h.starts_with("*.") {
                debug!(
                    cluster = ctx.cluster,
                    object = what,
                    host = h,
                    "wildcard Ingress host not served"
                );
            } else if in_zone(&h, &ctx.zone) {
                hosts.push(h);
            }
        }
    }
    hosts.sort();
    hosts.dedup();
    if hosts.is_empty() {
        return None;
    }
    let status = ing.status.as_ref().and_then(|s| s.load_balancer.as_ref());
    let ingress_list: Option<Vec<LoadBalancerIngress>> =
        status.and_then(|l| l.ingress.as_ref()).map(|v| {
            v.iter()
                .map(|i| LoadBalancerIngress {
                    ip: i.ip.clone(),
                    hostname: i.hostname.clone(),
                    ..LoadBalancerIngress::default()
                })
                .collect()
        });
    let (addresses, hostname) = lb_targets(ingress_list.as_ref(), &what, ctx);
    let tls = spec.tls.as_ref().is_some_and(|t| !t.is_empty());
    Some(Slim::Ingress {
        hosts,
        addresses,
        hostname,
        port: if tls { 443 } else { 80 },
        settings,
    })
}

fn slim_slice(slice: &EndpointSlice, _ctx: &ConvertCtx) -> Option<Slim> {
    let service = slice.labels().get(SERVICE_NAME_LABEL)?.clone();
    // A nil `ready` means ready (discovery.k8s.io/v1 EndpointConditions).
    let ready = slice
        .endpoints
        .iter()
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .count();
    Some(Slim::Slice { service, ready })
}

/// Reads `fedns.io/...` annotations. A bad value is logged with the object it is on and
/// ignored; the object is still served.
fn annotations(
    a: &BTreeMap<String, String>,
    what: &str,
    ctx: &ConvertCtx,
) -> (Settings, Vec<String>, bool) {
    let mut settings = Settings::default();
    let mut hosts = Vec::new();
    let mut exclude = false;
    for (k, v) in a {
        let Some(name) = k.strip_prefix(ANNOTATION_PREFIX) else {
            continue;
        };
        let v = v.trim();
        let bad = |why: &str| {
            warn!(
                cluster = ctx.cluster,
                object = what,
                annotation = k.as_str(),
                value = v,
                "{why}; annotation ignored"
            )
        };
        match name {
            "policy" => match v {
                "nearest" => settings.policy = Some(PolicyKind::Nearest),
                "failover" => settings.policy = Some(PolicyKind::Failover),
                "weighted" => settings.policy = Some(PolicyKind::Weighted),
                "all" => settings.policy = Some(PolicyKind::All),
                _ => bad("expected nearest, failover, weighted or all"),
            },
            "count" => match v.parse::<u32>() {
                Ok(n) if n > 0 => settings.count = Some(n),
                _ => bad("expected a whole number above 0"),
            },
            "weight" => match v.parse::<u32>() {
                Ok(n) => settings.weight = Some(n),
                _ => bad("expected a whole number"),
            },
            "failover-order" => {
                settings.order = v
                    .split(',')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty())
                    .collect();
            }
            "hosts" => {
                for h in v
                    .split(',')
                    .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
                {
                    if h.is_empty() {
                        continue;
                    }
                    if in_zone(&h, &ctx.zone) {
                        hosts.push(h);
                    } else {
                        bad("host outside the zone");
                    }
                }
            }
            "exclude" => exclude = v == "true",
            "probe" => match v {
                "tcp" => settings.probe = Some(ProbeKind::Tcp),
                "http" => settings.probe = Some(ProbeKind::Http),
                "https" => settings.probe = Some(ProbeKind::Https),
                "none" => settings.probe = Some(ProbeKind::None),
                _ => bad("expected tcp, http, https or none"),
            },
            "probe-path" if v.starts_with('/') => settings.probe_path = Some(v.to_owned()),
            "probe-path" => bad("expected a path starting with /"),
            "probe-port" => match v.parse::<u16>() {
                Ok(p) if p > 0 => settings.probe_port = Some(p),
                _ => bad("expected a port number"),
            },
            "probe-status" => match v.parse::<u16>() {
                Ok(c) if (100..600).contains(&c) => settings.probe_expect = Some(c),
                _ => bad("expected an HTTP status code"),
            },
            _ => bad("unknown fedns.io annotation"),
        }
    }
    (settings, hosts, exclude)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(n: &str) -> (Key, Slim) {
        (
            ("default".into(), n.into()),
            Slim::Service {
                addresses: vec!["192.0.2.1".parse().unwrap()],
                hostname: None,
                port: Some(80),
                hosts: vec![],
                settings: Settings::default(),
            },
        )
    }

    fn slice(service: &str, ready: usize) -> Slim {
        Slim::Slice {
            service: service.into(),
            ready,
        }
    }

    fn key(n: &str) -> Key {
        ("default".into(), n.into())
    }

    #[test]
    fn a_retry_is_not_a_recovery_until_data_comes() {
        let mut w = ClusterObjects::new(3);
        w.apply(Msg::Error(0, "connection refused".into()));
        // kube's watcher says Init before it tries the LIST: still failing.
        w.apply(Msg::Init(0));
        assert!(w.streams[0].error.is_some());
        w.apply(Msg::Error(0, "connection refused".into()));
        w.apply(Msg::Init(0));
        let (k, o) = svc("a");
        w.apply(Msg::InitApply(0, k, Some(o)));
        assert!(w.streams[0].error.is_none(), "data from the API clears it");
    }

    #[test]
    fn relist_swaps_whole_and_keeps_old_until_done() {
        let mut w = ClusterObjects::new(3);
        let (k, o) = svc("a");
        w.apply(Msg::Init(0));
        w.apply(Msg::InitApply(0, k.clone(), Some(o.clone())));
        assert!(
            w.streams[0].objects.is_empty(),
            "nothing visible before InitDone"
        );
        w.apply(Msg::InitDone(0));
        assert_eq!(w.streams[0].objects.len(), 1);
        // A relist that no longer has `a` keeps it visible until InitDone, then drops it.
        w.apply(Msg::Init(0));
        let (k2, o2) = svc("b");
        w.apply(Msg::InitApply(0, k2.clone(), Some(o2)));
        assert!(w.streams[0].objects.contains_key(&k));
        w.apply(Msg::InitDone(0));
        assert!(!w.streams[0].objects.contains_key(&k) && w.streams[0].objects.contains_key(&k2));
        // The store learns both: `a` removed, `b` added.
        let mut changes = w.changes(false);
        changes.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(changes.len(), 2);
        assert!(changes[0].1.is_none() && changes[1].1.is_some());
    }

    #[test]
    fn one_event_changes_one_object() {
        let mut w = ClusterObjects::new(3);
        for i in 0..100 {
            let (k, o) = svc(&format!("s{i}"));
            w.apply(Msg::InitApply(0, k, Some(o)));
        }
        w.apply(Msg::InitDone(0));
        assert_eq!(w.changes(true).len(), 100);
        let (k, o) = svc("s7");
        w.apply(Msg::Apply(0, k.clone(), Some(o)));
        let changes = w.changes(false);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].0, (ObjectKind::Service, k.0, k.1));
        assert!(w.changes(false).is_empty(), "changes are taken once");
    }

    #[test]
    fn readiness_comes_from_endpoint_slices() {
        let mut w = ClusterObjects::new(3);
        let (k, o) = svc("a");
        w.apply(Msg::Apply(0, k.clone(), Some(o)));
        let ready = |w: &mut ClusterObjects| w.changes(false)[0].1.as_ref().unwrap().ready;
        assert!(!ready(&mut w), "no slices: not ready");
        w.apply(Msg::Apply(2, key("a-1"), Some(slice("a", 0))));
        assert!(!ready(&mut w));
        w.apply(Msg::Apply(2, key("a-2"), Some(slice("a", 2))));
        assert!(ready(&mut w));
        w.apply(Msg::Apply(2, key("a-2"), Some(slice("a", 0))));
        assert!(!ready(&mut w), "an updated slice replaces its old count");
        w.apply(Msg::Apply(2, key("a-1"), Some(slice("a", 1))));
        assert!(ready(&mut w));
        w.apply(Msg::Delete(2, key("a-1")));
        assert!(!ready(&mut w), "a deleted slice takes its count with it");
    }

    #[test]
    fn bad_annotations_are_ignored() {
        let ctx = ConvertCtx {
            cluster: "c".into(),
            zone: "fed.example.com".into(),
        };
        let a: BTreeMap<String, String> = [
            ("fedns.io/policy", "closest"),
            ("fedns.io/weight", "3"),
            ("fedns.io/hosts", "www.fed.example.com, evil.example.org"),
            ("fedns.io/failover-order", "us-east, eu-west"),
            ("other.io/x", "y"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let (s, hosts, exclude) = annotations(&a, "service default/a", &ctx);
        assert_eq!(s.policy, None);
        assert_eq!(s.weight, Some(3));
        assert_eq!(s.order, ["us-east", "eu-west"]);
        assert_eq!(hosts, ["www.fed.example.com"]);
        assert!(!exclude);
    }
}
