//! The endpoint store: what every source (static config now, Kubernetes watchers next) has
//! learned, per member cluster, in a slim form that holds only what DNS needs.
//!
//! Architecture invariant: sources write here and know nothing of snapshots or DNS; the
//! snapshot builder reads here and knows nothing of where an endpoint came from.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::config::Config;

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
}

/// Everything known about one member cluster.
#[derive(Clone, Debug, Default)]
pub struct ClusterEndpoints {
    pub endpoints: Vec<Endpoint>,
    /// The cluster's API cannot be reached: these are last-known records.
    pub stale: bool,
    /// When the source last synced this cluster completely.
    pub synced_at: Option<SystemTime>,
}

/// The shared store. A mutex is fine: sources write rarely and the query path never reads
/// it (it reads the published snapshot).
#[derive(Debug, Default)]
pub struct Store {
    clusters: Mutex<BTreeMap<String, ClusterEndpoints>>,
}

impl Store {
    /// Replaces everything known about one cluster at once, so that a relist never shows a
    /// half-empty world.
    pub fn replace_cluster(&self, cluster: &str, endpoints: ClusterEndpoints) {
        self.lock().insert(cluster.to_owned(), endpoints);
    }

    /// Marks a cluster stale or fresh, keeping its records.
    pub fn set_stale(&self, cluster: &str, stale: bool) {
        if let Some(c) = self.lock().get_mut(cluster) {
            c.stale = stale;
        }
    }

    /// A copy of the current contents, for the snapshot builder.
    pub fn contents(&self) -> BTreeMap<String, ClusterEndpoints> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ClusterEndpoints>> {
        // A panic while holding the lock cannot leave the map half-written (every write is
        // one insert), so a poisoned lock is still safe to use.
        self.clusters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The static source: services declared in the config, one set per cluster.
pub fn static_endpoints(config: &Config) -> BTreeMap<String, ClusterEndpoints> {
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
                    }
                })
                .collect();
            (
                c.name.clone(),
                ClusterEndpoints {
                    endpoints,
                    stale: false,
                    synced_at: Some(SystemTime::now()),
                },
            )
        })
        .collect()
}
