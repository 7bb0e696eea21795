//! The immutable snapshot: everything an answer needs, built off the query path from the
//! config, the zone data, the GeoIP database and the endpoint store, then published whole
//! through `ArcSwap` (see `Published`). A snapshot never changes once built.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::rr::{LowerName, Name, Record};
use ipnet::IpNet;

use crate::config::zonefile::ZoneData;
use crate::config::{AllUnhealthy, Config, PolicyKind};
use crate::geo::{self, GeoDb, GeoHit, LatLon, Precision, places};
use crate::health::Health;
use crate::store::{ClusterEndpoints, Endpoint, NameKey, Settings};

/// Index of a cluster in `Snapshot::clusters`.
pub type ClusterId = u16;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("zone `{0}` is not a valid domain name")]
    Zone(String),
    #[error("too many clusters ({0}); at most 65535")]
    TooManyClusters(usize),
}

#[derive(Clone, Debug)]
pub struct Cluster {
    pub name: String,
    pub region: Option<String>,
    pub zone: Option<String>,
    pub location: LatLon,
    /// Its API is unreachable: records are last-known.
    pub stale: bool,
    /// Its records come from a Kubernetes API (as opposed to static services only).
    pub watched: bool,
    /// Its Kubernetes records are in this snapshot (it has listed every kind once), or it
    /// is not watched. `/readyz` reads this, so that ready means "served", not "stored".
    pub synced: bool,
}

/// One cluster's part of a federated name.
#[derive(Clone, Debug)]
pub struct Member {
    pub cluster: ClusterId,
    pub v4: Vec<(Ipv4Addr, Health)>,
    pub v6: Vec<(Ipv6Addr, Health)>,
    /// A load-balancer host name, answered as CNAME when no address of the asked type exists.
    pub hostname: Option<Name>,
    /// Kubernetes readiness (ready endpoints behind the Service).
    pub ready: bool,
}

impl Member {
    /// Healthy: Kubernetes says it can serve and at least one address passes its probe (or,
    /// for a hostname-only load balancer, Kubernetes readiness alone).
    pub fn healthy(&self) -> bool {
        if !self.ready {
            return false;
        }
        let any_addr = !self.v4.is_empty() || !self.v6.is_empty();
        !any_addr
            || self.v4.iter().any(|(_, h)| *h == Health::Healthy)
            || self.v6.iter().any(|(_, h)| *h == Health::Healthy)
    }
}

/// How one federated name picks clusters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    pub kind: PolicyKind,
    /// Clusters in a `nearest` answer.
    pub count: usize,
    /// `failover` order.
    pub order: Vec<ClusterId>,
    /// `weighted` weights, by cluster id; missing clusters weigh 0.
    pub weights: Vec<(ClusterId, u32)>,
}

/// The config's policies: the default, and per service or host.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    pub default: Policy,
    pub services: HashMap<String, Policy>,
    pub hosts: HashMap<String, Policy>,
}

/// A federated name: a Service (`ns/name`) or an Ingress host, with every cluster that has it.
#[derive(Clone, Debug)]
pub struct FedName {
    /// `namespace/name` or the host, for logs and explain.
    pub display: String,
    /// Sorted by cluster id.
    pub members: Vec<Member>,
    pub policy: Policy,
}

/// A source override: clients in `net` are placed by the config, not by GeoIP.
#[derive(Clone, Debug)]
pub struct Override {
    pub net: IpNet,
    pub target: OverrideTarget,
}

#[derive(Clone, Debug)]
pub enum OverrideTarget {
    Cluster(ClusterId),
    Location(LatLon, String),
}

/// Where a client was placed, and what decided it.
#[derive(Clone, Debug, PartialEq)]
pub struct Located {
    pub location: Option<LatLon>,
    /// A `networks` override that names a cluster: that cluster comes first.
    pub pinned: Option<ClusterId>,
    /// The network whose prefix decided the location (the ECS scope of a geo answer).
    pub network: IpNet,
    pub source: LocationSource,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LocationSource {
    Override(IpNet),
    GeoIp(Precision),
    /// Neither an override nor the database knows the address.
    Unknown,
}

impl fmt::Display for LocationSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocationSource::Override(net) => write!(f, "networks override {net}"),
            LocationSource::GeoIp(p) => write!(f, "GeoIP ({p})"),
            LocationSource::Unknown => f.write_str("unknown (fallback order)"),
        }
    }
}

/// What placed a client, as `Locator::key` gives it: an override (by its index), a GeoIP
/// record (by its offset in the database), or nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LocationKey {
    Override(u32),
    GeoIp(u32),
    Unknown,
}

/// Source overrides and the GeoIP database together.
#[derive(Debug, Default, Clone)]
pub struct Locator {
    /// Sorted by prefix length, longest first, so the first match wins.
    overrides: Vec<Override>,
    geoip: Option<Arc<GeoDb>>,
}

impl Locator {
    pub fn new(mut overrides: Vec<Override>, geoip: Option<Arc<GeoDb>>) -> Locator {
        overrides.sort_by_key(|o| std::cmp::Reverse(o.net.prefix_len()));
        Locator { overrides, geoip }
    }

    pub fn geoip(&self) -> Option<&GeoDb> {
        self.geoip.as_deref()
    }

    /// Which location `locate` would give `ip`, as a key that is equal for two addresses
    /// only when `locate` places them alike, and the prefix length of the deciding
    /// network (`locate`'s `network`). No record is decoded: this is the query path's
    /// cheap question, asked before the answer cache.
    pub fn key(&self, ip: IpAddr) -> (LocationKey, u8) {
        let ip = ip.to_canonical();
        if let Some(i) = self.overrides.iter().position(|o| o.net.contains(&ip)) {
            return (
                LocationKey::Override(i as u32),
                self.overrides[i].net.prefix_len(),
            );
        }
        let host = if ip.is_ipv4() { 32 } else { 128 };
        match &self.geoip {
            Some(db) => match db.record_of(ip) {
                (Some(offset), prefix) => (LocationKey::GeoIp(offset), prefix),
                (None, prefix) => (LocationKey::Unknown, prefix),
            },
            None => (LocationKey::Unknown, host),
        }
    }

    pub fn locate(&self, ip: IpAddr, clusters: &[Cluster]) -> Located {
        // An IPv4 client seen on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        for o in &self.overrides {
            if o.net.contains(&ip) {
                let (location, pinned) = match &o.target {
                    OverrideTarget::Cluster(id) => {
                        (Some(clusters[*id as usize].location), Some(*id))
                    }
                    OverrideTarget::Location(l, _) => (Some(*l), None),
                };
                return Located {
                    location,
                    pinned,
                    network: o.net,
                    source: LocationSource::Override(o.net),
                };
            }
        }
        if let Some(db) = &self.geoip {
            let GeoHit { location, network } = db.lookup(ip);
            return match location {
                Some((l, precision)) => Located {
                    location: Some(l),
                    pinned: None,
                    network,
                    source: LocationSource::GeoIp(precision),
                },
                None => Located {
                    location: None,
                    pinned: None,
                    network,
                    source: LocationSource::Unknown,
                },
            };
        }
        Located {
            location: None,
            pinned: None,
            network: IpNet::from(ip),
            source: LocationSource::Unknown,
        }
    }
}

/// Everything the answer function reads. Cloning one is cheap (shared or persistent
/// parts), which is how an update after one object change avoids copying every record.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The apex, lowercase and fully qualified.
    pub apex: Name,
    pub apex_lower: LowerName,
    /// The federation label, lowercase.
    pub federation: Vec<u8>,
    pub ttl: u32,
    pub negative_ttl: u32,
    pub soa: Record,
    /// Static records from the zone file, by owner.
    pub statics: Arc<HashMap<LowerName, Vec<Record>>>,
    /// Whether the zone file delegates any name below the apex (NS records); when not, the
    /// answer function skips the walk up the name looking for a zone cut.
    pub has_delegations: bool,
    /// Ancestors of static names that own nothing themselves: empty non-terminals, which
    /// get NODATA, not NXDOMAIN (RFC 8020). The federation's own ENTs are recognised by
    /// shape (see `is_empty_non_terminal`), and hosts' ancestors are counted below.
    pub static_ents: Arc<HashSet<LowerName>>,
    /// Ancestors of host names below the apex, with how many hosts are under each.
    pub host_ancestors: imbl::HashMap<LowerName, u32>,
    /// Namespaces with at least one federated service, with how many.
    pub namespaces: imbl::HashMap<String, u32>,
    /// Config policies, resolved to cluster ids.
    pub policies: Arc<Policies>,
    pub clusters: Vec<Cluster>,
    /// Region label -> clusters in it; zone label -> (region label, clusters in it).
    pub regions: HashMap<Vec<u8>, Vec<ClusterId>>,
    pub zones: HashMap<(Vec<u8>, Vec<u8>), Vec<ClusterId>>,
    /// `namespace/name` (lowercase) -> federated service.
    pub services: imbl::HashMap<String, Arc<FedName>>,
    /// Ingress or static host names inside the zone.
    pub hosts: imbl::HashMap<LowerName, Arc<FedName>>,
    pub locator: Locator,
    pub use_ecs: bool,
    /// Cluster order for clients that cannot be located.
    pub fallback: Vec<ClusterId>,
    pub on_all_unhealthy: AllUnhealthy,
}

impl Snapshot {
    pub fn cluster_id(&self, name: &str) -> Option<ClusterId> {
        self.clusters
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
            .map(|i| i as ClusterId)
    }

    /// Builds a snapshot. `health` gives the probe state of one load-balancer address of an
    /// endpoint (`HealthTable::endpoint_health`: read under the target the prober probes).
    pub fn build(
        config: &Config,
        zone: &ZoneData,
        geoip: Option<Arc<GeoDb>>,
        endpoints: &BTreeMap<String, ClusterEndpoints>,
        health: &dyn Fn(&Endpoint, IpAddr) -> Health,
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
                order: Vec::new(),
                weights: Vec::new(),
            },
            ..Policies::default()
        };
        for sp in &config.services {
            let sp = &sp.value;
            let policy = Policy {
                kind: sp.policy.unwrap_or(config.policy),
                count: sp.count.unwrap_or(config.count) as usize,
                order: sp.order.iter().filter_map(|c| id_of(c)).collect(),
                weights: sp
                    .weights
                    .iter()
                    .filter_map(|(c, w)| Some((id_of(c)?, *w)))
                    .collect(),
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
                    OverrideTarget::Cluster(id_of(c)?)
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
        let mut snap = Snapshot {
            apex,
            apex_lower,
            federation: fed.into_bytes(),
            ttl: config.ttl,
            negative_ttl: zone.negative_ttl(),
            soa: zone.soa.clone(),
            has_delegations,
            statics: Arc::new(zone.records.clone()),
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
        health: &dyn Fn(&Endpoint, IpAddr) -> Health,
    ) -> Snapshot {
        let mut next = self.clone();
        for c in &mut next.clusters {
            c.stale = endpoints.get(&c.name).is_some_and(|e| e.stale());
            c.synced = synced(endpoints, &c.name, c.watched);
        }
        next.rebuild_names(names.iter(), endpoints, health);
        next
    }

    /// Recomputes each name from the endpoints that answer for it in every cluster:
    /// inserted, replaced, or removed when no cluster has it any more.
    fn rebuild_names<'a>(
        &mut self,
        names: impl Iterator<Item = &'a NameKey>,
        endpoints: &BTreeMap<String, ClusterEndpoints>,
        health: &dyn Fn(&Endpoint, IpAddr) -> Health,
    ) {
        let ids: Vec<(Option<ClusterId>, &ClusterEndpoints)> = endpoints
            .iter()
            .map(|(name, ce)| (self.cluster_id(name), ce))
            .collect();
        for key in names {
            let mut members: Vec<Member> = Vec::new();
            let mut settings: Vec<(ClusterId, &Settings)> = Vec::new();
            for (cid, ce) in &ids {
                let Some(cid) = *cid else {
                    continue;
                };
                for ep in ce.endpoints_for(key) {
                    merge(&mut members, &member(cid, ep, health));
                    settings.push((cid, &ep.settings));
                }
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
                let policy = configured.cloned().unwrap_or_else(|| {
                    from_settings(&self.policies.default, settings, &|c| self.cluster_id(c))
                });
                Arc::new(FedName {
                    display,
                    members,
                    policy,
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

    /// Whether a name owns nothing but has names below it (NODATA, not NXDOMAIN): an
    /// ancestor of a static name or a host, or a prefix of the federation's shape
    /// `svc.<F>.<ns>` under the apex, a region, or a zone of a region.
    pub fn is_empty_non_terminal(&self, lower: &LowerName) -> bool {
        if self.static_ents.contains(lower) || self.host_ancestors.contains_key(lower) {
            return true;
        }
        if self.namespaces.is_empty() {
            return false;
        }
        let Some(rel) = lower.num_labels().checked_sub(self.apex.num_labels()) else {
            return false;
        };
        let name = Name::from(lower);
        // Labels from the apex outwards.
        let r: Vec<&[u8]> = name
            .iter()
            .take(rel as usize)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        for location in 0..=2 {
            if r.len() < location {
                break;
            }
            let known = match location {
                0 => true,
                1 => self.regions.contains_key(r[0]),
                _ => self.zones.contains_key(&(r[0].to_vec(), r[1].to_vec())),
            };
            if !known {
                continue;
            }
            let rest = &r[location..];
            let ent = match rest.len() {
                0 => location > 0,
                1 => rest[0] == b"svc",
                2 => rest[0] == b"svc" && rest[1] == self.federation.as_slice(),
                3 => {
                    rest[0] == b"svc"
                        && rest[1] == self.federation.as_slice()
                        && std::str::from_utf8(rest[2])
                            .is_ok_and(|ns| self.namespaces.contains_key(ns))
                }
                _ => false,
            };
            if ent {
                return true;
            }
        }
        false
    }

    /// Great-circle distance from a location to a cluster, in km.
    pub fn distance_km(&self, from: LatLon, cluster: ClusterId) -> f64 {
        geo::distance_km(from, self.clusters[cluster as usize].location)
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
        weights: settings
            .iter()
            .filter_map(|(c, s)| Some((*c, s.weight?)))
            .collect(),
    }
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

/// One cluster's member of a name, from one endpoint, with each address's health.
fn member(
    cluster: ClusterId,
    ep: &Endpoint,
    health: &dyn Fn(&Endpoint, IpAddr) -> Health,
) -> Member {
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
        ready: ep.ready,
    };
    for a in &ep.addresses {
        match a.to_canonical() {
            IpAddr::V4(v4) => m.v4.push((v4, health(ep, IpAddr::V4(v4)))),
            IpAddr::V6(v6) => m.v6.push((v6, health(ep, IpAddr::V6(v6)))),
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
    } else {
        members.push(m.clone());
    }
}

/// The published snapshot. Readers `load_full` it once per query; writers build a new one
/// off the query path and swap it in.
pub type Published = Arc<ArcSwap<Snapshot>>;
