//! The endpoint store: what every source (static config now, Kubernetes watchers next) has
//! learned, per member cluster, in a slim form that holds only what DNS needs.
//!
//! Architecture invariant: sources write here and know nothing of snapshots or DNS; the
//! snapshot builder reads here and knows nothing of where an endpoint came from.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::config::{Config, PolicyKind, ProbeKind};

/// What kind of object an endpoint came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ObjectKind {
    /// Declared in the config file.
    Static,
    /// A Service of type LoadBalancer.
    Service,
    /// An Ingress.
    Ingress,
}

/// One load-balanced object in one cluster, cut down to what DNS needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub kind: ObjectKind,
    pub namespace: String,
    pub name: String,
    /// Whether the object answers for `<name>.<namespace>.<F>.svc.<Z>`; an Ingress only
    /// answers for its hosts.
    pub federated_name: bool,
    /// Host names inside the zone (Ingress rules, or `hosts` of a static service), lowercase.
    pub hosts: Vec<String>,
    /// Load-balancer addresses.
    pub addresses: Vec<IpAddr>,
    /// Load-balancer host name (cloud LBs such as an AWS ELB).
    pub hostname: Option<String>,
    /// Port that active probes use.
    pub port: Option<u16>,
    /// Kubernetes readiness: at least one ready endpoint (always true for static ones).
    pub ready: bool,
    /// Per-service settings from annotations (Kubernetes) or none (static).
    pub settings: Settings,
}

/// Per-service settings carried by an object (Kubernetes annotations `fedns.io/...`). The
/// config's `services:` entries take precedence over these.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    pub policy: Option<PolicyKind>,
    pub count: Option<u32>,
    /// Cluster names, for `failover`.
    pub order: Vec<String>,
    /// This cluster's weight, for `weighted`.
    pub weight: Option<u32>,
    /// Probe overrides: kind, HTTP path, port and expected status.
    pub probe: Option<ProbeKind>,
    pub probe_path: Option<String>,
    pub probe_port: Option<u16>,
    pub probe_expect: Option<u16>,
}

/// Everything known about one member cluster, from each source.
#[derive(Clone, Debug, Default)]
pub struct ClusterEndpoints {
    /// Services declared in the config.
    pub static_endpoints: Arc<Vec<Endpoint>>,
    /// What the cluster's API says; `None` when the cluster is not watched.
    pub kube: Option<KubeState>,
}

impl ClusterEndpoints {
    /// Every endpoint of the cluster, static ones first.
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        let kube = self.kube.iter().flat_map(|k| k.endpoints.iter());
        self.static_endpoints.iter().chain(kube)
    }

    /// The cluster's API cannot be reached: its Kubernetes records are last-known.
    pub fn stale(&self) -> bool {
        self.kube.as_ref().is_some_and(|k| k.stale)
    }
}

/// The Kubernetes side of a cluster.
#[derive(Clone, Debug, Default)]
pub struct KubeState {
    /// Published only once every watched kind has listed once, so that a half-synced
    /// cluster never shows as a world without its services.
    pub endpoints: Arc<Vec<Endpoint>>,
    /// The API is failing: records are last-known.
    pub stale: bool,
    /// The last error from the API, for /debug and logs.
    pub last_error: Option<String>,
    /// When every watched kind first completed its initial list.
    pub synced_at: Option<SystemTime>,
    /// When the last event or successful list arrived.
    pub last_event_at: Option<SystemTime>,
}

/// The shared store. A mutex is fine: sources write rarely and the query path never reads
/// it (it reads the published snapshot). Every write bumps `changed` so the snapshot
/// builder knows to rebuild.
#[derive(Debug)]
pub struct Store {
    clusters: Mutex<BTreeMap<String, ClusterEndpoints>>,
    /// A generation counter; each consumer (snapshot builder, prober) holds a receiver and
    /// sees every change, coalesced.
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            clusters: Mutex::default(),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Store {
    /// A store holding the config's static services.
    pub fn from_config(config: &Config) -> Store {
        let store = Store::default();
        for (cluster, endpoints) in static_endpoints(config) {
            store.update(&cluster, |c| c.static_endpoints = Arc::new(endpoints));
        }
        store
    }

    /// Changes one cluster's entry and wakes the consumers.
    pub fn update(&self, cluster: &str, f: impl FnOnce(&mut ClusterEndpoints)) {
        f(self.lock().entry(cluster.to_owned()).or_default());
        self.touch();
    }

    /// Forgets a cluster (it left the config).
    pub fn remove(&self, cluster: &str) {
        self.lock().remove(cluster);
        self.touch();
    }

    pub fn cluster_names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Wakes the consumers without changing anything (health changed, for example).
    pub fn touch(&self) {
        self.changed.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// A receiver that wakes on every change after this call.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// A copy of the current contents, for the snapshot builder (cheap: endpoint lists
    /// are shared, not copied).
    pub fn contents(&self) -> BTreeMap<String, ClusterEndpoints> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ClusterEndpoints>> {
        // A panic while holding the lock cannot leave the map half-written (every write is
        // one closure on one entry), so a poisoned lock is still safe to use.
        self.clusters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The static source: services declared in the config, per cluster.
pub fn static_endpoints(config: &Config) -> BTreeMap<String, Vec<Endpoint>> {
    config
        .clusters
        .iter()
        .map(|c| {
            let c = &c.value;
            let endpoints = c
                .services
                .iter()
                .map(|s| {
                    let s = &s.value;
                    Endpoint {
                        kind: ObjectKind::Static,
                        namespace: s.namespace.to_ascii_lowercase(),
                        name: s.name.to_ascii_lowercase(),
                        federated_name: true,
                        hosts: s
                            .hosts
                            .iter()
                            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
                            .collect(),
                        addresses: s.addresses.clone(),
                        hostname: s.hostname.clone(),
                        port: s.port,
                        ready: true,
                        settings: Settings::default(),
                    }
                })
                .collect();
            (c.name.clone(), endpoints)
        })
        .collect()
}
