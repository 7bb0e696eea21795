//! The endpoint store: what every source (static config now, Kubernetes watchers next) has
//! learned, per member cluster, in a slim form that holds only what DNS needs.
//!
//! Architecture invariant: sources write here and know nothing of snapshots or DNS; the
//! snapshot builder reads here and knows nothing of where an endpoint came from.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::config::{GeoKey, PolicyKind, ProbeKind};

/// What kind of object an endpoint came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ObjectKind {
    /// Declared in the config file.
    Static,
    /// A Service of type LoadBalancer.
    Service,
    /// An Ingress.
    Ingress,
    /// A Gateway API Gateway's own annotated names.
    Gateway,
    /// Gateway API routes: the names they get from the Gateways they attach to.
    HttpRoute,
    GrpcRoute,
    TlsRoute,
    /// One name of an ExternalDNS DNSEndpoint.
    DnsEndpoint,
    /// Istio: a Gateway's server hosts, and a VirtualService's hosts on its Gateways.
    IstioGateway,
    VirtualService,
}

/// One load-balanced object in one cluster, cut down to what DNS needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// How many ready endpoints the Service's EndpointSlices count; None where nothing
    /// counts them (static services, Ingresses).
    #[serde(default)]
    pub ready_endpoints: Option<u32>,
    /// Per-service settings from annotations (Kubernetes) or none (static).
    pub settings: Settings,
}

/// Per-service settings carried by an object (Kubernetes annotations `fedns.io/...`). The
/// config's `services:` entries take precedence over these.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub policy: Option<PolicyKind>,
    pub count: Option<u32>,
    /// Cluster names, for `failover`.
    pub order: Vec<String>,
    /// Failover orders per geography (`continent:EU=...; country:DE=...`).
    #[serde(default)]
    pub orders: Vec<(GeoKey, Vec<String>)>,
    /// This cluster's weight, for `weighted`.
    pub weight: Option<u32>,
    /// This cluster's weight is its ready endpoints (`fedns.io/weight: ready-endpoints`).
    #[serde(default)]
    pub weight_ready: bool,
    /// This Service's bias in this cluster (`fedns.io/bias`).
    #[serde(default)]
    pub bias: Option<i8>,
    /// Capacity spillover threshold (`fedns.io/spill-below`).
    #[serde(default)]
    pub spill_below: Option<u32>,
    /// The TTL of the name's records (ExternalDNS's `ttl` annotation), in seconds.
    #[serde(default)]
    pub ttl: Option<u32>,
    /// Probe overrides: kind, HTTP path, port and expected status.
    pub probe: Option<ProbeKind>,
    /// The address serves TLS (a Gateway's HTTPS listener): with no probe override, an
    /// `https` probe where the config probes at all.
    #[serde(default)]
    pub probe_tls: bool,
    pub probe_path: Option<String>,
    pub probe_port: Option<u16>,
    pub probe_expect: Option<u16>,
    /// This service's `health.min_ready` and `health.min_healthy_addresses` in this
    /// cluster.
    pub min_ready: Option<u32>,
    pub min_healthy_addresses: Option<u32>,
}

/// A Kubernetes object in one cluster: kind, namespace, name.
pub type ObjectKey = (ObjectKind, String, String);

/// A name that federated records answer for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NameKey {
    /// `namespace/name`, lowercase: `<name>.<namespace>.<F>.svc.<Z>` and its region and
    /// zone names.
    Service(String),
    /// A host inside the zone, lowercase, without the trailing dot.
    Host(String),
}

impl Endpoint {
    /// The names this endpoint answers for.
    pub fn name_keys(&self) -> impl Iterator<Item = NameKey> + '_ {
        let service = self
            .federated_name
            .then(|| NameKey::Service(format!("{}/{}", self.namespace, self.name)));
        service
            .into_iter()
            .chain(self.hosts.iter().map(|h| NameKey::Host(h.clone())))
    }

    pub fn key(&self) -> ObjectKey {
        (self.kind, self.namespace.clone(), self.name.clone())
    }
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
        let kube = self
            .kube
            .iter()
            .flat_map(|k| k.objects.values().map(|e| &**e));
        self.static_endpoints.iter().chain(kube)
    }

    /// The endpoints that answer for one name.
    pub fn endpoints_for<'a>(
        &'a self,
        key: &'a NameKey,
    ) -> impl Iterator<Item = &'a Endpoint> + 'a {
        let statics = self
            .static_endpoints
            .iter()
            .filter(move |e| e.name_keys().any(|k| k == *key));
        let kube = self.kube.iter().flat_map(move |k| {
            k.by_name
                .get(key)
                .into_iter()
                .flatten()
                .filter_map(|o| k.objects.get(o).map(|e| &**e))
        });
        statics.chain(kube)
    }

    /// How many endpoints the cluster has.
    pub fn len(&self) -> usize {
        self.static_endpoints.len() + self.kube.as_ref().map_or(0, |k| k.objects.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cluster's API cannot be reached: its Kubernetes records are last-known.
    pub fn stale(&self) -> bool {
        self.kube.as_ref().is_some_and(|k| k.stale)
    }
}

/// The Kubernetes side of a cluster. The maps are persistent (structural sharing), so that
/// copying the store for a snapshot build is cheap and one change touches one entry.
#[derive(Clone, Debug, Default)]
pub struct KubeState {
    /// Published only once every watched kind has listed once, so that a half-synced
    /// cluster never shows as a world without its services.
    pub objects: imbl::HashMap<ObjectKey, Arc<Endpoint>>,
    /// Which objects answer for each name.
    /// A plain `Vec`: almost every name has one object per cluster, and an `imbl::Vector`
    /// would cost kilobytes per name.
    pub by_name: imbl::HashMap<NameKey, Vec<ObjectKey>>,
    /// The API is failing: records are last-known.
    pub stale: bool,
    /// The last error from the API, for /debug and logs.
    pub last_error: Option<String>,
    /// When every watched kind first completed its initial list.
    pub synced_at: Option<SystemTime>,
    /// When the last event or successful list arrived.
    pub last_event_at: Option<SystemTime>,
    /// What discovery found for each optional kind (Gateway API, DNSEndpoint): `watched
    /// at v1`, `missing (CRD not installed)`, or the versions it is served at that fedns
    /// does not read. Empty until the first discovery.
    pub kinds: std::collections::BTreeMap<&'static str, KindState>,
}

/// What discovery found for one optional kind in one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KindState {
    Watched(String),
    Missing,
    UnknownVersions(Vec<String>),
}

impl KindState {
    /// One word for the metric's `state` label.
    pub fn word(&self) -> &'static str {
        match self {
            KindState::Watched(_) => "watched",
            KindState::Missing => "missing",
            KindState::UnknownVersions(_) => "unknown_version",
        }
    }
}

impl std::fmt::Display for KindState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KindState::Watched(v) => write!(f, "watched at {v}"),
            KindState::Missing => f.write_str("missing (CRD not installed)"),
            KindState::UnknownVersions(v) => write!(
                f,
                "served only at versions fedns does not read: {}",
                v.join(", ")
            ),
        }
    }
}

impl KubeState {
    /// Sets or removes one object, keeping `by_name` in step; returns the names touched.
    fn put(&mut self, key: ObjectKey, endpoint: Option<Endpoint>, touched: &mut HashSet<NameKey>) {
        if let Some(old) = self.objects.remove(&key) {
            for name in old.name_keys() {
                if let Some(list) = self.by_name.get_mut(&name) {
                    list.retain(|k| *k != key);
                    if list.is_empty() {
                        self.by_name.remove(&name);
                    }
                }
                touched.insert(name);
            }
        }
        if let Some(e) = endpoint {
            for name in e.name_keys() {
                self.by_name
                    .entry(name.clone())
                    .or_default()
                    .push(key.clone());
                touched.insert(name);
            }
            self.objects.insert(key, Arc::new(e));
        }
    }
}

/// What changed since the snapshot builder last looked.
#[derive(Debug, Default)]
pub struct Dirty {
    /// Something that needs a full rebuild (config, static services, fleet votes,
    /// overrides).
    pub full: bool,
    /// Cluster flags (stale) changed; records did not.
    pub clusters: bool,
    /// Names whose records changed.
    pub names: HashSet<NameKey>,
}

/// The shared store. A mutex is fine: sources write rarely and the query path never reads
/// it (it reads the published snapshot). Every write records what it changed and bumps
/// `changed` so the snapshot builder knows to update.
#[derive(Debug)]
pub struct Store {
    clusters: Mutex<BTreeMap<String, ClusterEndpoints>>,
    dirty: Mutex<Dirty>,
    /// A generation counter; each consumer (snapshot builder, prober) holds a receiver and
    /// sees every change, coalesced.
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            clusters: Mutex::default(),
            dirty: Mutex::new(Dirty {
                full: true,
                ..Dirty::default()
            }),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Store {
    /// A store of these clusters, each with its static endpoints
    /// (`sources::static_services::endpoints` makes them from a config).
    pub fn with_static(statics: BTreeMap<String, Vec<Endpoint>>) -> Store {
        let store = Store::default();
        store.set_static(statics);
        store
    }

    /// Makes the store's clusters those of `statics`, each with its static endpoints. A
    /// cluster not in it is removed, Kubernetes records and all.
    pub fn set_static(&self, statics: BTreeMap<String, Vec<Endpoint>>) {
        for name in self.cluster_names() {
            if !statics.contains_key(&name) {
                self.remove(&name);
            }
        }
        for (cluster, endpoints) in statics {
            self.update(&cluster, |c| c.static_endpoints = Arc::new(endpoints));
        }
    }

    /// Changes one cluster's entry in any way; the next snapshot is a full rebuild.
    pub fn update(&self, cluster: &str, f: impl FnOnce(&mut ClusterEndpoints)) {
        let mut clusters = self.lock();
        f(clusters.entry(cluster.to_owned()).or_default());
        self.rebuild_all();
    }

    /// Applies Kubernetes object changes to a cluster (`None`: the object is gone) and its
    /// watch state; only the names these objects answer for are rebuilt. With
    /// `replace_all`, objects not among `changes` are removed: a full sync replaces what
    /// was there before (restored from a state file, or left by a restarted watch).
    pub fn update_kube(
        &self,
        cluster: &str,
        changes: Vec<(ObjectKey, Option<Endpoint>)>,
        replace_all: bool,
        meta: impl FnOnce(&mut KubeState),
    ) {
        let mut touched = HashSet::new();
        {
            let mut clusters = self.lock();
            let state = clusters
                .entry(cluster.to_owned())
                .or_default()
                .kube
                .get_or_insert_with(KubeState::default);
            if replace_all {
                let keep: HashSet<&ObjectKey> = changes.iter().map(|(k, _)| k).collect();
                let gone: Vec<ObjectKey> = state
                    .objects
                    .keys()
                    .filter(|k| !keep.contains(k))
                    .cloned()
                    .collect();
                for key in gone {
                    state.put(key, None, &mut touched);
                }
            }
            for (key, endpoint) in changes {
                state.put(key, endpoint, &mut touched);
            }
            let before = (state.stale, state.synced_at.is_some());
            meta(state);
            let flags_changed = before != (state.stale, state.synced_at.is_some());
            // Still under the clusters' lock: what changed and the change itself are taken
            // together by `take_changes`, never one without the other.
            let mut d = self.dirty();
            d.names.extend(touched);
            d.clusters |= flags_changed;
        }
        self.changed.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Forgets a cluster (it left the config).
    pub fn remove(&self, cluster: &str) {
        let mut clusters = self.lock();
        clusters.remove(cluster);
        self.rebuild_all();
    }

    pub fn cluster_names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Asks for a rebuild of the names whose endpoints have one of the load-balancer
    /// addresses `ips` (their probe targets' health changed, by this replica's probe or by
    /// the fleet's votes) and wakes the consumers. A scan of the endpoints: O(objects),
    /// against O(records) for a full rebuild.
    pub fn rebuild_names_using(&self, ips: impl IntoIterator<Item = IpAddr>) {
        let mut ips: Vec<IpAddr> = ips.into_iter().map(|ip| ip.to_canonical()).collect();
        ips.sort_unstable();
        ips.dedup();
        if ips.is_empty() {
            return;
        }
        // One flip at a time is the rule: a sorted list beats hashing every address.
        let names: Vec<NameKey> = {
            let clusters = self.lock();
            clusters
                .values()
                .flat_map(|c| c.endpoints())
                .filter(|ep| {
                    ep.addresses
                        .iter()
                        .any(|a| ips.binary_search(&a.to_canonical()).is_ok())
                })
                .flat_map(|ep| ep.name_keys())
                .collect()
        };
        self.dirty().names.extend(names);
        self.changed.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Asks for a full rebuild (config reloaded, overrides changed) and
    /// wakes the consumers.
    pub fn rebuild_all(&self) {
        self.dirty().full = true;
        self.changed.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// What changed since the last call (for the snapshot builder).
    pub fn take_dirty(&self) -> Dirty {
        std::mem::take(&mut *self.dirty())
    }

    /// What changed since the last call and the contents those changes are in, taken
    /// together: a writer records its changes under the same lock, so a snapshot never
    /// holds a change (a cluster's synced flag, say) without the names it touched being
    /// rebuilt.
    pub fn take_changes(&self) -> (Dirty, BTreeMap<String, ClusterEndpoints>) {
        let clusters = self.lock();
        let dirty = std::mem::take(&mut *self.dirty());
        (dirty, clusters.clone())
    }

    /// A receiver that wakes on every change after this call.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// A copy of the current contents (cheap: endpoint maps are shared, not copied).
    pub fn contents(&self) -> BTreeMap<String, ClusterEndpoints> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ClusterEndpoints>> {
        // A panic while holding the lock cannot leave the map half-written (every write is
        // one closure on one entry), so a poisoned lock is still safe to use.
        self.clusters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dirty(&self) -> std::sync::MutexGuard<'_, Dirty> {
        self.dirty.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(name: &str, ip: &str, hosts: &[&str]) -> Endpoint {
        Endpoint {
            kind: ObjectKind::Static,
            namespace: "default".into(),
            name: name.into(),
            federated_name: true,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            addresses: vec![ip.parse().unwrap()],
            hostname: None,
            port: Some(443),
            ready: true,
            ready_endpoints: None,
            settings: Settings::default(),
        }
    }

    #[test]
    fn a_flip_asks_only_for_the_names_behind_its_address() {
        let store = Store::with_static(BTreeMap::from([
            (
                "us-east".to_owned(),
                vec![
                    endpoint("app", "192.0.2.1", &["www.fed.example.com"]),
                    endpoint("web", "192.0.2.2", &[]),
                ],
            ),
            (
                "eu-west".to_owned(),
                vec![endpoint("api", "192.0.2.1", &[])],
            ),
        ]));
        store.take_dirty();
        // An IPv4-mapped IPv6 address is the same load balancer.
        store.rebuild_names_using(["::ffff:192.0.2.1".parse().unwrap()]);
        let dirty = store.take_dirty();
        assert!(!dirty.full);
        let want: HashSet<NameKey> = [
            NameKey::Service("default/app".into()),
            NameKey::Host("www.fed.example.com".into()),
            NameKey::Service("default/api".into()),
        ]
        .into();
        assert_eq!(dirty.names, want);
    }
}
