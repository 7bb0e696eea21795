//! The Kubernetes source: one kube client per member cluster, watching LoadBalancer
//! Services, Ingresses and EndpointSlices, cut down at the boundary to `store::Endpoint`.
//!
//! Architecture invariant: Kubernetes types never leave this module. A cluster's records
//! reach the store only once every watched kind has listed once (no half-empty world); a
//! relist swaps a kind's objects at once on `InitDone`; a failing API keeps the last-known
//! records and flags them stale, while kube's watcher reconnects with backoff. Each cluster
//! has its own tasks, so one cluster's trouble never slows another or the query path.

use std::collections::{BTreeMap, HashMap};
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
use crate::store::{Endpoint, KubeState, ObjectKind, Settings, Store};

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
        let ctx = Arc::new(Ctx {
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
    let mut streams: Vec<StreamState> = (0..id).map(|_| StreamState::default()).collect();
    let mut was_synced = false;
    let mut was_stale = false;
    while let Some(msg) = rx.recv().await {
        apply(&mut streams, msg);
        // Coalesce a burst of events into one store update.
        while let Ok(msg) = rx.try_recv() {
            apply(&mut streams, msg);
        }
        let synced = streams.iter().all(|s| s.synced);
        let errors: Vec<&str> = streams.iter().filter_map(|s| s.error.as_deref()).collect();
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
        let endpoints = synced.then(|| Arc::new(endpoints(&streams)));
        if synced && !was_synced {
            info!(
                cluster,
                endpoints = endpoints.as_ref().map_or(0, |e| e.len()),
                "cluster synced"
            );
            was_synced = true;
        }
        store.update(&cluster, |c| {
            let state = c.kube.get_or_insert_with(KubeState::default);
            if let Some(e) = endpoints {
                state.endpoints = e;
            }
            state.stale = stale;
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
struct Ctx {
    cluster: String,
    zone: String,
}

/// Runs one kube watcher and forwards its events, converted, to the cluster task.
fn watch<K>(
    api: Api<K>,
    wc: watcher::Config,
    id: usize,
    tx: mpsc::Sender<Msg>,
    ctx: Arc<Ctx>,
    convert: fn(&K, &Ctx) -> Option<Slim>,
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

fn apply(streams: &mut [StreamState], msg: Msg) {
    let id = match &msg {
        Msg::Init(i)
        | Msg::InitApply(i, ..)
        | Msg::InitDone(i)
        | Msg::Apply(i, ..)
        | Msg::Delete(i, _)
        | Msg::Error(i, _) => *i,
    };
    let Some(s) = streams.get_mut(id) else {
        return;
    };
    if !matches!(msg, Msg::Error(..)) {
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
            s.objects = s.pending.take().unwrap_or_default();
            s.synced = true;
        }
        Msg::Apply(_, k, Some(o)) => {
            s.objects.insert(k, o);
        }
        Msg::Apply(_, k, None) | Msg::Delete(_, k) => {
            s.objects.remove(&k);
        }
        Msg::Error(_, e) => s.error = Some(e),
    }
}

/// The cluster's endpoints from its current objects: Services with their readiness from
/// EndpointSlices, and Ingresses.
fn endpoints(streams: &[StreamState]) -> Vec<Endpoint> {
    let mut ready: HashMap<(&str, &str), usize> = HashMap::new();
    for s in streams {
        for ((ns, _), o) in &s.objects {
            if let Slim::Slice { service, ready: n } = o {
                *ready.entry((ns.as_str(), service.as_str())).or_default() += n;
            }
        }
    }
    let mut out = Vec::new();
    for s in streams {
        for ((ns, name), o) in &s.objects {
            match o {
                Slim::Service {
                    addresses,
                    hostname,
                    port,
                    hosts,
                    settings,
                } => out.push(Endpoint {
                    kind: ObjectKind::Service,
                    namespace: ns.clone(),
                    name: name.clone(),
                    federated_name: true,
                    hosts: hosts.clone(),
                    addresses: addresses.clone(),
                    hostname: hostname.clone(),
                    port: *port,
                    ready: ready
                        .get(&(ns.as_str(), name.as_str()))
                        .is_some_and(|n| *n > 0),
                    settings: settings.clone(),
                }),
                Slim::Ingress {
                    hosts,
                    addresses,
                    hostname,
                    port,
                    settings,
                } => out.push(Endpoint {
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
                Slim::Slice { .. } => {}
            }
        }
    }
    out.sort_by(|a, b| (a.kind, &a.namespace, &a.name).cmp(&(b.kind, &b.namespace, &b.name)));
    out
}

/// Load-balancer addresses and the first hostname from `status.loadBalancer.ingress`.
fn lb_targets(
    ingress: Option<&Vec<LoadBalancerIngress>>,
    what: &str,
    ctx: &Ctx,
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

fn slim_service(svc: &Service, ctx: &Ctx) -> Option<Slim> {
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

fn slim_ingress(ing: &Ingress, ctx: &Ctx) -> Option<Slim> {
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

fn slim_slice(slice: &EndpointSlice, _ctx: &Ctx) -> Option<Slim> {
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
    ctx: &Ctx,
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

    #[test]
    fn relist_swaps_whole_and_keeps_old_until_done() {
        let mut streams = vec![StreamState::default(), StreamState::default()];
        let (k, o) = svc("a");
        apply(&mut streams, Msg::Init(0));
        apply(&mut streams, Msg::InitApply(0, k.clone(), Some(o.clone())));
        assert!(
            streams[0].objects.is_empty(),
            "nothing visible before InitDone"
        );
        apply(&mut streams, Msg::InitDone(0));
        assert_eq!(streams[0].objects.len(), 1);
        // A relist that no longer has `a` keeps it visible until InitDone, then drops it.
        apply(&mut streams, Msg::Init(0));
        let (k2, o2) = svc("b");
        apply(&mut streams, Msg::InitApply(0, k2.clone(), Some(o2)));
        assert!(streams[0].objects.contains_key(&k));
        apply(&mut streams, Msg::InitDone(0));
        assert!(!streams[0].objects.contains_key(&k) && streams[0].objects.contains_key(&k2));
    }

    #[test]
    fn readiness_comes_from_endpoint_slices() {
        let mut streams = vec![StreamState::default(), StreamState::default()];
        let (k, o) = svc("a");
        streams[0].objects.insert(k, o);
        assert!(!endpoints(&streams)[0].ready, "no slices: not ready");
        streams[1].objects.insert(
            ("default".into(), "a-1".into()),
            Slim::Slice {
                service: "a".into(),
                ready: 0,
            },
        );
        assert!(!endpoints(&streams)[0].ready);
        streams[1].objects.insert(
            ("default".into(), "a-2".into()),
            Slim::Slice {
                service: "a".into(),
                ready: 2,
            },
        );
        assert!(endpoints(&streams)[0].ready);
    }

    #[test]
    fn errors_clear_on_the_next_event() {
        let mut streams = vec![StreamState::default()];
        apply(&mut streams, Msg::Error(0, "boom".into()));
        assert!(streams[0].error.is_some());
        apply(&mut streams, Msg::Init(0));
        assert!(streams[0].error.is_none());
    }

    #[test]
    fn bad_annotations_are_ignored() {
        let ctx = Ctx {
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
