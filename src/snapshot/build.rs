//! Building a snapshot: in full from the config, the zone data, the GeoIP database and the
//! store (a reload, a health change, a cluster's first sync), or as an update that clones
//! the current snapshot (O(1): shared and persistent parts) and rebuilds only the names an
//! object change touched.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::{LowerName, Name};

use super::locate::{ClusterId, Locator, Override, OverrideTarget};
use super::types::{BuildError, Cluster, FedName, Member, Policies, Policy, Snapshot, Weight};
use crate::config::zonefile::ZoneData;
use crate::config::{Config, GeoKey, Weights};
use crate::dnssec::Zone;
use crate::fleet::overrides::Action;
use crate::geo::{GeoDb, LatLon, places};
use crate::health::Health;
use crate::store::{ClusterEndpoints, Endpoint, NameKey, Settings};

impl Snapshot {
    /// Builds a snapshot. `health` gives the probe state of one load-balancer address of an
    /// endpoint (`health::quorum::Judge`: read under the target the prober probes).
    pub fn build(
        config: &Config,
        zone: &ZoneData,
        geoip: Option<Arc<GeoDb>>,
        dnssec: Option<Arc<Zone>>,
        endpoints: &BTreeMap<String, ClusterEndpoints>,
        health: &dyn Verdicts,
    ) -> Result<Snapshot, BuildError> {
        let apex = Name::from_ascii(&config.zone)
            .map_err(|_| BuildError::Zone(config.zone.clone()))?
            .to_lowercase();
        let mut apex = apex;
        apex.set_fqdn(true);
        let apex_lower = LowerName::new(&apex);
        if config.clusters.len() > ClusterId::MAX as usize {
            return Err(BuildError::TooManyClusters(config.clusters.len()));
        }

        let clusters: Vec<Cluster> = config
            .clusters
            .iter()
            .map(|c| {
                let c = &c.value;
                let location = c
                    .location
                    .map(|l| l.0)
                    .or_else(|| c.region.as_deref().and_then(places::cloud_region))
                    // Config validation guarantees one of the two.
                    .unwrap_or(LatLon { lat: 0.0, lon: 0.0 });
                Cluster {
                    name: c.name.clone(),
                    region: c.region.as_ref().map(|r| r.to_ascii_lowercase()),
                    zone: c.zone.as_ref().map(|z| z.to_ascii_lowercase()),
                    location,
                    bias: c.bias,
                    stale: endpoints.get(&c.name).is_some_and(|e| e.stale()),
                    watched: c.kube_source().is_some(),
                    synced: synced(endpoints, &c.name, c.kube_source().is_some()),
                }
            })
            .collect();
        let id_of = |name: &str| {
            clusters
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(name))
                .map(|i| i as ClusterId)
        };

        let mut regions: HashMap<Vec<u8>, Vec<ClusterId>> = HashMap::new();
        let mut zones: HashMap<(Vec<u8>, Vec<u8>), Vec<ClusterId>> = HashMap::new();
        for (i, c) in clusters.iter().enumerate() {
            if let Some(r) = &c.region {
                regions
                    .entry(r.as_bytes().to_vec())
                    .or_default()
                    .push(i as ClusterId);
                if let Some(z) = &c.zone {
                    zones
                        .entry((r.as_bytes().to_vec(), z.as_bytes().to_vec()))
                        .or_default()
                        .push(i as ClusterId);
                }
            }
        }

        // Policies by name, from the config.
        let mut policies = Policies {
            default: Policy {
                kind: config.policy,
                count: config.count as usize,
                ..Policy::default()
            },
            ..Policies::default()
        };
        for sp in &config.services {
            let sp = &sp.value;
            let ids = |order: &[String]| order.iter().filter_map(|c| id_of(c)).collect();
            let weights = match &sp.weights {
                Weights::ReadyEndpoints => (0..clusters.len() as ClusterId)
                    .map(|c| (c, Weight::ReadyEndpoints))
                    .collect(),
                w => w
                    .fixed()
                    .filter_map(|(c, w)| Some((id_of(c)?, Weight::Fixed(*w))))
                    .collect(),
            };
            let policy = Policy {
                kind: sp.policy.unwrap_or(config.policy),
                count: sp.count.unwrap_or(config.count) as usize,
                order: ids(&sp.order),
                // Validated: every key parses.
                orders: by_specificity(
                    sp.orders
                        .iter()
                        .filter_map(|(k, o)| Some((k.parse().ok()?, ids(o))))
                        .collect(),
                ),
                weights,
                spill_below: sp.spill_below,
            };
            match (&sp.namespace, &sp.name, &sp.host) {
                (Some(ns), Some(n), _) => {
                    policies.services.insert(service_key(ns, n), policy);
                }
                (_, _, Some(h)) => {
                    policies
                        .hosts
                        .insert(h.trim_end_matches('.').to_ascii_lowercase(), policy);
                }
                _ => {}
            }
        }

        // Ancestors of static names (below the apex) that own nothing.
        let mut static_ents = HashSet::new();
        for name in zone.records.keys() {
            let mut n = Name::from(name).base_name();
            while n.num_labels() > apex.num_labels() {
                let lower = LowerName::new(&n);
                if !zone.records.contains_key(&lower) {
                    static_ents.insert(lower);
                }
                n = n.base_name();
            }
        }
        let fed = config.federation.to_ascii_lowercase();

        let overrides = config
            .networks
            .iter()
            .filter_map(|n| {
                let n = &n.value;
                let target = if let Some(c) = &n.cluster {
                    let id = id_of(c)?;
                    OverrideTarget::Cluster(id, clusters[usize::from(id)].location)
                } else if let Some(l) = n.location {
                    OverrideTarget::Location(l.0, format!("{}", l.0))
                } else {
                    let r = n.region.as_deref()?;
                    let loc = clusters
                        .iter()
                        .find(|c| c.region.as_deref() == Some(&r.to_ascii_lowercase()))
                        .map(|c| c.location)
                        .or_else(|| places::cloud_region(r))?;
                    OverrideTarget::Location(loc, format!("region {r}"))
                };
                Some(Override {
                    net: n.cidr.0,
                    target,
                })
            })
            .collect();

        let mut fallback: Vec<ClusterId> = config
            .fallback
            .iter()
            .filter_map(|f| id_of(&f.value))
            .collect();
        for i in 0..clusters.len() as ClusterId {
            if !fallback.contains(&i) {
                fallback.push(i);
            }
        }

        let has_delegations = zone.records.iter().any(|(name, rs)| {
            *name != apex_lower
                && rs
                    .iter()
                    .any(|r| r.record_type() == hickory_proto::rr::RecordType::NS)
        });
        let mut statics = zone.records.clone();
        if let Some(z) = &dnssec {
            statics
                .entry(apex_lower.clone())
                .or_default()
                .extend(z.records().iter().cloned());
        }
        let mut snap = Snapshot {
            apex,
            apex_lower,
            federation: fed.into_bytes(),
            ttl: config.ttl,
            negative_ttl: zone.negative_ttl(),
            soa: zone.soa.clone(),
            has_delegations,
            statics: Arc::new(statics),
            static_ents: Arc::new(static_ents),
            host_ancestors: imbl::HashMap::new(),
            namespaces: imbl::HashMap::new(),
            policies: Arc::new(policies),
            clusters,
            regions,
            zones,
            services: imbl::HashMap::new(),
            hosts: imbl::HashMap::new(),
            locator: Locator::new(overrides, geoip),
            use_ecs: config.geoip.as_ref().is_none_or(|g| g.use_ecs),
            fallback,
            on_all_unhealthy: config.health.on_all_unhealthy,
            min_ready: config.health.min_ready,
            min_healthy: config.health.min_healthy_addresses,
            places: None,
            scopes: imbl::HashMap::new(),
            dnssec,
        };
        let names: BTreeSet<NameKey> = endpoints
            .values()
            .flat_map(|ce| ce.endpoints().flat_map(|e| e.name_keys()))
            .collect();
        snap.rebuild_names(names.iter(), endpoints, health);
        Ok(snap)
    }

    /// A new snapshot in which only `names` are rebuilt from the store (and the clusters'
    /// stale flags refreshed); everything else is shared with `self`. This is how one
    /// object change is published without rebuilding or copying every record.
    pub fn update(
        &self,
        names: &HashSet<NameKey>,
        endpoints: &BTreeMap<String, ClusterEndpoints>,
        health: &dyn Verdicts,
    ) -> Snapshot {
        let mut next = self.clone();
        for c in &mut next.clusters {
            c.stale = endpoints.get(&c.name).is_some_and(|e| e.stale());
            c.synced = synced(endpoints, &c.name, c.watched);
        }
        next.rebuild_names(names.iter(), endpoints, health);
        next
    }

    /// The federated name a store name key stands for, if it has any cluster.
    pub fn fed_name(&self, key: &NameKey) -> Option<Arc<FedName>> {
        match key {
            NameKey::Service(k) => self.services.get(k).cloned(),
            NameKey::Host(h) => {
                let mut name = Name::from_ascii(h).ok()?;
                name.set_fqdn(true);
                self.hosts.get(&LowerName::new(&name)).cloned()
            }
        }
    }

    /// Recomputes each name from the endpoints that answer for it in every cluster:
    /// inserted, replaced, or removed when no cluster has it any more.
    fn rebuild_names<'a>(
        &mut self,
        names: impl Iterator<Item = &'a NameKey>,
        endpoints: &BTreeMap<String, ClusterEndpoints>,
        health: &dyn Verdicts,
    ) {
        let ids: Vec<(Option<ClusterId>, &str, &ClusterEndpoints)> = endpoints
            .iter()
            .map(|(name, ce)| (self.cluster_id(name), name.as_str(), ce))
            .collect();
        for key in names {
            let mut members: Vec<Member> = Vec::new();
            let mut settings: Vec<(ClusterId, &Settings)> = Vec::new();
            for (cid, cluster, ce) in &ids {
                let Some(cid) = *cid else {
                    continue;
                };
                for ep in ce.endpoints_for(key) {
                    merge(&mut members, &member(cid, cluster, ep, health));
                    settings.push((cid, &ep.settings));
                }
            }
            // Held to the minimums once a cluster's objects for the name are merged: the
            // service's own (annotations) in that cluster, else the config's.
            for m in members.iter_mut().filter(|m| !m.forced) {
                let own = |f: fn(&Settings) -> Option<u32>| {
                    settings
                        .iter()
                        .filter(|(c, _)| *c == m.cluster)
                        .find_map(|(_, s)| f(s))
                };
                if let Some(n) = m.ready_endpoints {
                    m.ready &= n >= own(|s| s.min_ready).unwrap_or(self.min_ready);
                }
                m.min_healthy = own(|s| s.min_healthy_addresses).unwrap_or(self.min_healthy);
            }
            for m in &mut members {
                let own = settings
                    .iter()
                    .filter(|(c, _)| *c == m.cluster)
                    .find_map(|(_, s)| s.bias);
                m.bias = own.unwrap_or(self.clusters[usize::from(m.cluster)].bias);
            }
            let fed = (!members.is_empty()).then(|| {
                members.sort_by_key(|m| m.cluster);
                for m in &mut members {
                    m.v4.sort();
                    m.v4.dedup_by_key(|(a, _)| *a);
                    m.v6.sort();
                    m.v6.dedup_by_key(|(a, _)| *a);
                }
                let (display, configured) = match key {
                    NameKey::Service(k) => (k.clone(), self.policies.services.get(k)),
                    NameKey::Host(h) => (h.clone(), self.policies.hosts.get(h)),
                };
                // The TTL an object sets (the first cluster in config order that sets one).
                let ttl = settings
                    .iter()
                    .filter_map(|(c, s)| Some((*c, s.ttl?)))
                    .min_by_key(|(c, _)| *c)
                    .map(|(_, t)| t);
                let policy = configured.cloned().unwrap_or_else(|| {
                    from_settings(&self.policies.default, settings, &|c| self.cluster_id(c))
                });
                Arc::new(FedName {
                    display,
                    members,
                    policy,
                    ttl,
                })
            });
            match key {
                NameKey::Service(k) => {
                    let before = self.services.contains_key(k);
                    match fed {
                        Some(f) => {
                            self.services.insert(k.clone(), f);
                        }
                        None => {
                            self.services.remove(k);
                        }
                    }
                    let after = self.services.contains_key(k);
                    if let Some((ns, _)) = k.split_once('/') {
                        refcount(&mut self.namespaces, ns.to_owned(), before, after);
                    }
                }
                NameKey::Host(h) => {
                    let Ok(mut name) = Name::from_ascii(h) else {
                        continue;
                    };
                    name.set_fqdn(true);
                    let lower = LowerName::new(&name);
                    let before = self.hosts.contains_key(&lower);
                    match fed {
                        Some(f) => {
                            self.hosts.insert(lower, f);
                        }
                        None => {
                            self.hosts.remove(&lower);
                        }
                    }
                    let after = self.hosts.contains_key(&LowerName::new(&name));
                    let mut n = name.base_name();
                    while n.num_labels() > self.apex.num_labels() {
                        refcount(&mut self.host_ancestors, LowerName::new(&n), before, after);
                        n = n.base_name();
                    }
                }
            }
        }
    }
}

fn service_key(namespace: &str, name: &str) -> String {
    format!(
        "{}/{}",
        namespace.to_ascii_lowercase(),
        name.to_ascii_lowercase()
    )
}

/// The policy of a name from the settings its objects carry: policy, count and order from
/// the first cluster (in config order) that sets them; weights from each cluster's own.
fn from_settings(
    default: &Policy,
    mut settings: Vec<(ClusterId, &Settings)>,
    id_of: &dyn Fn(&str) -> Option<ClusterId>,
) -> Policy {
    settings.sort_by_key(|(c, _)| *c);
    let first =
        |f: &dyn Fn(&Settings) -> bool| settings.iter().find(|(_, s)| f(s)).map(|(_, s)| *s);
    Policy {
        kind: first(&|s| s.policy.is_some())
            .and_then(|s| s.policy)
            .unwrap_or(default.kind),
        count: first(&|s| s.count.is_some())
            .and_then(|s| s.count)
            .map_or(default.count, |c| c.max(1) as usize),
        order: first(&|s| !s.order.is_empty())
            .map(|s| s.order.iter().filter_map(|c| id_of(c)).collect())
            .unwrap_or_default(),
        orders: first(&|s| !s.orders.is_empty())
            .map(|s| {
                by_specificity(
                    s.orders
                        .iter()
                        .map(|(k, o)| (*k, o.iter().filter_map(|c| id_of(c)).collect()))
                        .collect(),
                )
            })
            .unwrap_or_default(),
        weights: settings
            .iter()
            .filter_map(|(c, s)| {
                let w = if s.weight_ready {
                    Weight::ReadyEndpoints
                } else {
                    Weight::Fixed(s.weight?)
                };
                Some((*c, w))
            })
            .collect(),
        spill_below: first(&|s| s.spill_below.is_some()).and_then(|s| s.spill_below),
    }
}

/// Per-geography orders, most specific first (a stable sort: equal ones keep their order).
fn by_specificity(mut orders: Vec<(GeoKey, Vec<ClusterId>)>) -> Vec<(GeoKey, Vec<ClusterId>)> {
    orders.sort_by_key(|(k, _)| std::cmp::Reverse(k.specificity()));
    orders
}

/// Whether a cluster's Kubernetes records have synced (true for clusters not watched).
fn synced(endpoints: &BTreeMap<String, ClusterEndpoints>, cluster: &str, watched: bool) -> bool {
    !watched
        || endpoints
            .get(cluster)
            .and_then(|e| e.kube.as_ref())
            .is_some_and(|k| k.synced_at.is_some())
}

/// Keeps a reference count in step with whether a name exists before and after a change.
fn refcount<K: std::hash::Hash + Eq + Clone>(
    map: &mut imbl::HashMap<K, u32>,
    key: K,
    before: bool,
    after: bool,
) {
    match (before, after) {
        (false, true) => *map.entry(key).or_insert(0) += 1,
        (true, false) => {
            let gone = map.get_mut(&key).is_some_and(|n| {
                *n = n.saturating_sub(1);
                *n == 0
            });
            if gone {
                map.remove(&key);
            }
        }
        _ => {}
    }
}

/// What a build asks of each endpoint of a cluster: the health of each of its
/// load-balancer addresses, and an operator's override (`fleet::overrides`).
pub trait Verdicts {
    fn health(&self, ep: &Endpoint, ip: IpAddr) -> Health;

    fn action(&self, _cluster: &str, _ep: &Endpoint) -> Option<Action> {
        None
    }
}

/// Health alone, with no overrides: what tests and single-replica callers pass.
impl<F: Fn(&Endpoint, IpAddr) -> Health> Verdicts for F {
    fn health(&self, ep: &Endpoint, ip: IpAddr) -> Health {
        self(ep, ip)
    }
}

/// One cluster's member of a name, from one endpoint, with each address's health: a
/// drained one says so (the answer keeps it out unless nothing else is healthy), a forced
/// one is ready and healthy whatever its probes say.
fn member(cluster: ClusterId, name: &str, ep: &Endpoint, verdicts: &dyn Verdicts) -> Member {
    let action = verdicts.action(name, ep);
    let forced = action == Some(Action::ForceUp);
    let health = |ip| {
        if forced {
            Health::Healthy
        } else {
            verdicts.health(ep, ip)
        }
    };
    let mut m = Member {
        cluster,
        v4: Vec::new(),
        v6: Vec::new(),
        hostname: ep
            .hostname
            .as_deref()
            .and_then(|h| Name::from_ascii(h).ok())
            .map(|mut n| {
                n.set_fqdn(true);
                n
            }),
        ready: ep.ready || forced,
        drained: action == Some(Action::Drain),
        forced,
        ready_endpoints: ep.ready_endpoints,
        // The configured minimum and the bias are set once the cluster's objects are merged.
        min_healthy: 1,
        bias: 0,
    };
    for a in &ep.addresses {
        match a.to_canonical() {
            IpAddr::V4(v4) => m.v4.push((v4, health(IpAddr::V4(v4)))),
            IpAddr::V6(v6) => m.v6.push((v6, health(IpAddr::V6(v6)))),
        }
    }
    m
}

/// Adds a cluster's object to a name; two objects of one cluster for one name merge.
fn merge(members: &mut Vec<Member>, m: &Member) {
    if let Some(existing) = members.iter_mut().find(|e| e.cluster == m.cluster) {
        existing.v4.extend_from_slice(&m.v4);
        existing.v6.extend_from_slice(&m.v6);
        existing.hostname = existing.hostname.take().or_else(|| m.hostname.clone());
        existing.ready |= m.ready;
        existing.drained |= m.drained;
        existing.forced |= m.forced;
        existing.ready_endpoints = match (existing.ready_endpoints, m.ready_endpoints) {
            (Some(a), Some(b)) => Some(a.saturating_add(b)),
            (a, b) => a.or(b),
        };
    } else {
        members.push(m.clone());
    }
}
