//! What a snapshot holds: clusters, federated names with their members and policies, the
//! zone's static records, and the locator.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hickory_proto::rr::{LowerName, Name, Record};

use super::locate::{ClusterId, Located, Locator};
use super::scope::{PlaceMap, ScopeMap};
use crate::config::{AllUnhealthy, GeoKey, PolicyKind};
use crate::dnssec::Zone;
use crate::geo::{self, LatLon};
use crate::health::Health;

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
    /// Distances to it count as `distance × (1 − bias/100)` (config `bias`).
    pub bias: i8,
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
    /// Drained by an operator (`fedns drain`): out of the answers while another cluster
    /// of the name is healthy.
    pub drained: bool,
    /// Forced up by an operator (`fedns force-up`): ready and healthy whatever the
    /// probes, Kubernetes and the minimums say.
    pub forced: bool,
    /// Ready endpoints behind it, where Kubernetes counts them (summed over its objects
    /// for the name); None otherwise.
    pub ready_endpoints: Option<u32>,
    /// Healthy addresses it needs (`health.min_healthy_addresses`, at most its count).
    pub min_healthy: u32,
    /// The bias its distance ranks by for this name: the Service's own
    /// (`fedns.io/bias`), else its cluster's.
    pub bias: i8,
}

impl Member {
    /// Healthy: Kubernetes says it can serve and at least one address passes its probe (or,
    /// for a hostname-only load balancer, Kubernetes readiness alone).
    pub fn healthy(&self) -> bool {
        if !self.ready {
            return false;
        }
        let addresses = self.v4.len() + self.v6.len();
        if addresses == 0 {
            return true;
        }
        let healthy = self
            .v4
            .iter()
            .filter(|(_, h)| *h == Health::Healthy)
            .count()
            + self
                .v6
                .iter()
                .filter(|(_, h)| *h == Health::Healthy)
                .count();
        healthy >= 1 && healthy >= (self.min_healthy as usize).min(addresses)
    }

    /// Healthy and not drained.
    pub fn serving(&self) -> bool {
        self.healthy() && !self.drained
    }
}

/// How one federated name picks clusters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Policy {
    pub kind: PolicyKind,
    /// Clusters in a `nearest` answer.
    pub count: usize,
    /// `failover` order, for clients that no entry of `orders` matches.
    pub order: Vec<ClusterId>,
    /// `failover` orders per geography, most specific first (`GeoKey::specificity`).
    pub orders: Vec<(GeoKey, Vec<ClusterId>)>,
    /// `weighted` weights, by cluster id; missing clusters weigh 0.
    pub weights: Vec<(ClusterId, Weight)>,
    /// `nearest`: a cluster with fewer ready endpoints than this keeps only that share of
    /// its clients (capacity spillover).
    pub spill_below: Option<u32>,
}

/// What one geo decision's answer depends on, besides where the client is: the eligible
/// clusters, the policy, and which of them are below their spillover threshold. Equal
/// keys share one scope map.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DecisionKey {
    pub eligible: Vec<ClusterId>,
    pub policy: Policy,
    pub below: Vec<ClusterId>,
}

/// One cluster's weight under `weighted`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Weight {
    Fixed(u32),
    /// Its ready endpoints (0 where Kubernetes does not count them).
    ReadyEndpoints,
}

impl Policy {
    /// The failover order for a client: the most specific entry of `orders` that matches
    /// where it is (`address` is the locating address), else `order`.
    pub fn order_for(
        &self,
        located: Option<&Located>,
        address: IpAddr,
    ) -> (&[ClusterId], Option<&GeoKey>) {
        if let Some(l) = located {
            let address = address.to_canonical();
            for (key, order) in &self.orders {
                let matches = match key {
                    GeoKey::Network(n) => n.contains(&address),
                    GeoKey::Country(c) => l.country == Some(*c),
                    GeoKey::Continent(c) => l.continent == Some(*c),
                };
                if matches {
                    return (order, Some(key));
                }
            }
        }
        (&self.order, None)
    }
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
    /// The TTL of its records, when an object sets one (ExternalDNS's `ttl` annotation);
    /// else the config's `ttl`.
    pub ttl: Option<u32>,
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
    /// `health.min_ready` and `health.min_healthy_addresses`.
    pub min_ready: u32,
    pub min_healthy: u32,
    /// Where clients are, in blocks (`scope::PlaceMap`), once `answer::scope` has built
    /// it; shared by every snapshot of one config and GeoIP database.
    pub places: Option<Arc<PlaceMap>>,
    /// The widest blocks with one answer, per decision (`scope::ScopeMap`). A decision
    /// with none here answers with the locating network's prefix as its ECS scope.
    pub scopes: imbl::HashMap<DecisionKey, Arc<ScopeMap>>,
    /// The zone's keys, when it is signed: answers to queries with DO carry RRSIGs and
    /// compact denial. Its DNSKEY, CDS and CDNSKEY records are among `statics`.
    pub dnssec: Option<Arc<Zone>>,
}

impl Snapshot {
    pub fn cluster_id(&self, name: &str) -> Option<ClusterId> {
        self.clusters
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
            .map(|i| i as ClusterId)
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

    /// The distance that ranks: `distance_km` scaled by a bias (the cluster's, or a
    /// Service's own).
    pub fn biased_km(&self, from: LatLon, cluster: ClusterId, bias: i8) -> f64 {
        let d = self.distance_km(from, cluster);
        if bias == 0 {
            d
        } else {
            d * (1.0 - f64::from(bias) / 100.0)
        }
    }
}
