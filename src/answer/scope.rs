//! Building the ECS scope maps (`snapshot::scope`): where clients are, in blocks, once
//! per config and GeoIP database; then, per decision, the widest blocks whose answer is
//! the same. Both are computed with the functions the answer itself runs (`rank`,
//! `policy::pick`, `plan`), for one representative of each group of places, so a map
//! cannot say an answer holds where the answer function would give another.
//!
//! Runs off the query path: where snapshots are built (`app`).

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ipnet::IpNet;

use super::{Plan, plan, policy, rank};
use crate::config::GeoKey;
use crate::geo::Place;
use crate::snapshot::scope::{Bits, Merger, OPAQUE, PlaceClass, PlaceMap, ScopeMap};
use crate::snapshot::{ClusterId, DecisionKey, FedName, Located, Member, Policy, Snapshot};

/// The memory the scope maps of one snapshot may take. A decision's map over a real City
/// database takes 2 to 7 MiB (benches/README.md), over the demo's some KiB.
const SCOPE_BUDGET: usize = 256 << 20;

/// What a place map is built from, as text: equal text, equal map.
fn inputs(snap: &Snapshot, cuts: &[IpNet]) -> String {
    let mut s = String::new();
    if let Some(db) = snap.locator.geoip() {
        let _ = write!(s, "geoip {} {};", db.path().display(), db.identity());
    }
    for c in &snap.clusters {
        let _ = write!(s, "cluster {} {} {};", c.name, c.location, c.bias);
    }
    for o in snap.locator.overrides() {
        let _ = write!(s, "override {} {:?};", o.net, o.target);
    }
    let _ = write!(s, "fallback {:?};", snap.fallback);
    for n in cuts {
        let _ = write!(s, "order network {n};");
    }
    s
}

/// The networks of every per-geography order of the snapshot's policies: blocks are cut
/// along them.
fn order_networks<'a>(policies: impl Iterator<Item = &'a Policy>) -> BTreeSet<IpNet> {
    policies
        .flat_map(|p| p.orders.iter())
        .filter_map(|(k, _)| match k {
            GeoKey::Network(n) => Some(*n),
            _ => None,
        })
        .collect()
}

/// Gives `snap` its place map (`reuse` when it was built from the same inputs) and a scope
/// map for every decision of `names` (every name when None), taking those of `old` that
/// fit before building any.
pub fn prepare(
    snap: &mut Snapshot,
    reuse: Option<&Arc<PlaceMap>>,
    old: Option<&Snapshot>,
    names: Option<&[Arc<FedName>]>,
) {
    let every = |snap: &Snapshot| -> Vec<Arc<FedName>> {
        snap.services
            .values()
            .chain(snap.hosts.values())
            .cloned()
            .collect()
    };
    let mut all: Vec<Arc<FedName>> = match names {
        Some(_) => Vec::new(),
        None => every(snap),
    };
    let names_given = names.unwrap_or(&all);
    let mut cuts = order_networks(
        std::iter::once(&snap.policies.default)
            .chain(snap.policies.services.values())
            .chain(snap.policies.hosts.values())
            .chain(names_given.iter().map(|f| &f.policy)),
    );
    if let Some(p) = &snap.places {
        // Keep the cuts the current map has, so that an update does not rebuild it.
        cuts.extend(p.cuts.iter().copied());
    }
    let cuts: Vec<IpNet> = cuts.into_iter().collect();
    let wanted = inputs(snap, &cuts);
    let places = [
        snap.places.as_ref(),
        reuse,
        old.and_then(|o| o.places.as_ref()),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.inputs == wanted)
    .cloned()
    .unwrap_or_else(|| Arc::new(place_map(snap, &cuts, wanted)));
    let names = if snap
        .places
        .as_ref()
        .is_some_and(|p| Arc::ptr_eq(p, &places))
    {
        names_given
    } else {
        // A new place map: every decision's map is made again from it, not only those of
        // the names given.
        snap.scopes = imbl::HashMap::new();
        if names.is_some() {
            all = every(snap);
        }
        &all
    };
    snap.places = Some(places.clone());
    let old_scopes = old
        .filter(|o| o.places.as_ref().is_some_and(|p| Arc::ptr_eq(p, &places)))
        .map(|o| &o.scopes);
    let mut bytes: usize = snap.scopes.values().map(|m| m.bytes()).sum();
    for fed in names {
        for members in levels(snap, fed) {
            let Some(key) = key_for(snap, fed, &members) else {
                continue;
            };
            if snap.scopes.contains_key(&key) {
                continue;
            }
            let map = match old_scopes.and_then(|s| s.get(&key)) {
                Some(m) => m.clone(),
                None => Arc::new(scope_map(&places, &key)),
            };
            // Past the budget a decision keeps the locating network's prefix as its
            // scope: narrower, still correct.
            if bytes + map.bytes() > SCOPE_BUDGET {
                if !places.over_budget.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        maps = snap.scopes.len(),
                        "ECS scope maps reached their memory budget ({} MiB): further decisions answer with the locating network's scope until the next full rebuild",
                        SCOPE_BUDGET >> 20
                    );
                }
                continue;
            }
            bytes += map.bytes();
            snap.scopes.insert(key, map);
        }
    }
}

/// The members of a name at each level a query can ask: the name itself, and each region
/// and zone where it has more than one cluster (with one, nothing depends on location).
fn levels<'f>(snap: &Snapshot, fed: &'f FedName) -> Vec<Vec<&'f Member>> {
    let mut out = vec![fed.members.iter().collect::<Vec<_>>()];
    for ids in snap.regions.values().chain(snap.zones.values()) {
        let m: Vec<&Member> = fed
            .members
            .iter()
            .filter(|m| ids.contains(&m.cluster))
            .collect();
        if m.len() > 1 && m.len() < fed.members.len() {
            out.push(m);
        }
    }
    out
}

/// The decision key of a name at one level, if its answer can depend on where the client
/// is and a map can say how: not when a Service's own bias ranks it differently from
/// its cluster (the place map ranks by the clusters' biases).
fn key_for(snap: &Snapshot, fed: &FedName, members: &[&Member]) -> Option<DecisionKey> {
    let global = members.len() == fed.members.len();
    let Plan::Decide { eligible, .. } = plan(members, global, snap.on_all_unhealthy) else {
        return None;
    };
    if !policy::needs_location(&fed.policy, &eligible) {
        return None;
    }
    decision_key(snap, &fed.policy, &eligible, members)
}

/// The key a decision's scope map is kept under (None: it has none).
pub(super) fn decision_key(
    snap: &Snapshot,
    policy: &Policy,
    eligible: &[ClusterId],
    members: &[&Member],
) -> Option<DecisionKey> {
    let member = |c: ClusterId| members.iter().find(|m| m.cluster == c);
    let own_bias = eligible
        .iter()
        .any(|&c| member(c).is_some_and(|m| m.bias != snap.clusters[usize::from(c)].bias));
    if own_bias {
        return None;
    }
    let below = match policy.spill_below {
        Some(t) => eligible
            .iter()
            .copied()
            .filter(|&c| {
                member(c)
                    .and_then(|m| m.ready_endpoints)
                    .is_some_and(|r| r < t)
            })
            .collect(),
        None => Vec::new(),
    };
    Some(DecisionKey {
        eligible: eligible.to_vec(),
        policy: policy.clone(),
        below,
    })
}

/// The scope map of one decision: each place class's answer, blocks merged by answer.
/// Classes whose answer depends on more than the place (spillover weighed) are opaque.
pub fn scope_map(places: &PlaceMap, key: &DecisionKey) -> ScopeMap {
    let ready = |c: ClusterId| key.below.contains(&c).then_some(0);
    let mut answers: HashMap<Vec<ClusterId>, u32> = HashMap::new();
    let class_answer: Vec<u32> = places
        .classes
        .iter()
        .map(|pc| {
            let ranked: Vec<ClusterId> = pc
                .ranking
                .iter()
                .copied()
                .filter(|c| key.eligible.contains(c))
                .collect();
            let pick = policy::pick(&policy::Ask {
                policy: &key.policy,
                eligible: &key.eligible,
                ranked: &ranked,
                located: Some(&pc.located),
                address: pc.address,
                ready: &ready,
            });
            if pick.spill.is_some() || pick.varies {
                return OPAQUE;
            }
            let n = answers.len() as u32;
            *answers.entry(pick.chosen).or_insert(n)
        })
        .collect();
    let f = |c: u32| class_answer[c as usize];
    ScopeMap {
        v4: places.v4.remap(&f),
        v6: places.v6.remap(&f),
    }
}

/// Builds the place map: every address of both families in blocks placed alike.
fn place_map(snap: &Snapshot, cuts: &[IpNet], inputs: String) -> PlaceMap {
    let mut b = PlaceBuilder {
        snap,
        all: (0..snap.clusters.len() as ClusterId).collect(),
        classes: Vec::new(),
        index: HashMap::new(),
        by_offset: HashMap::new(),
        cuts: cuts
            .iter()
            .copied()
            .chain(snap.locator.overrides().iter().map(|o| o.net))
            .collect(),
    };
    b.cuts
        .sort_by_key(|n| (n.addr().is_ipv6(), n.network(), n.prefix_len()));
    b.cuts.dedup();
    let v4 = b.family::<u32>(false);
    let v6 = b.family::<u128>(true);
    PlaceMap {
        v4,
        v6,
        classes: b.classes,
        inputs,
        cuts: cuts.to_vec(),
        over_budget: Default::default(),
    }
}

/// What tells two groups of places apart: the ranking, the pin, the country and
/// continent, and the longest per-geography-order network that holds them.
type ClassKey = (
    Box<[ClusterId]>,
    Option<ClusterId>,
    Option<[u8; 2]>,
    Option<[u8; 2]>,
    Option<IpNet>,
);

struct PlaceBuilder<'s> {
    snap: &'s Snapshot,
    all: Vec<ClusterId>,
    classes: Vec<PlaceClass>,
    index: HashMap<ClassKey, u32>,
    /// The class of a GeoIP record (by offset) outside every cut.
    by_offset: HashMap<u32, u32>,
    /// Overrides and per-geography-order networks, by family and address.
    cuts: Vec<IpNet>,
}

impl PlaceBuilder<'_> {
    fn family<A: Bits>(&mut self, v6: bool) -> crate::snapshot::scope::Cover<A> {
        let mut m = Merger::<A>::default();
        let mut next: u128 = 0;
        let mut done = false;
        let max = if v6 { u128::MAX } else { u128::from(u32::MAX) };
        let snap = self.snap;
        let geoip = snap.locator.geoip();
        let mut visit =
            |this: &mut Self, m: &mut Merger<A>, leaf: IpNet, offset, place: &dyn Fn() -> Place| {
                let (start, end) = bounds(leaf);
                if done || start < next {
                    return;
                }
                if start > next {
                    // A range the walk skipped (aliased): nothing can be said of it.
                    m.push_range(next, start - 1, OPAQUE);
                }
                this.leaf(m, leaf, leaf, offset, place);
                if end == max {
                    done = true;
                } else {
                    next = end + 1;
                }
            };
        match geoip.filter(|db| !v6 || db.has_ipv6()) {
            Some(db) => {
                let walked = db.for_each_network(v6, |net, offset, place| {
                    visit(self, &mut m, net, offset, place);
                });
                if let Err(e) = walked {
                    tracing::warn!("cannot walk the GeoIP database for ECS scopes: {e}");
                }
            }
            // No database for this family: nobody is placed but by overrides.
            None => {
                let root = if v6 {
                    IpNet::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
                } else {
                    IpNet::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
                };
                if let Ok(root) = root {
                    visit(self, &mut m, root, None, &Place::default);
                }
            }
        }
        if !done {
            m.push_range(next, max, OPAQUE);
        }
        m.finish()
    }

    /// One database network (`db_net`), or a part of it (`leaf`) cut along an override or
    /// an order's network that lies inside it.
    fn leaf<A: Bits>(
        &mut self,
        m: &mut Merger<A>,
        leaf: IpNet,
        db_net: IpNet,
        offset: Option<u32>,
        place: &dyn Fn() -> Place,
    ) {
        let inside = self
            .cuts
            .iter()
            .any(|c| c.prefix_len() > leaf.prefix_len() && leaf.contains(c));
        if inside {
            if let Ok(halves) = leaf.subnets(leaf.prefix_len() + 1) {
                for half in halves {
                    self.leaf(m, half, db_net, offset, place);
                }
            }
            return;
        }
        let class = self.class_of(leaf, db_net, offset, place);
        let (start, _) = bounds(leaf);
        m.push(A::from_u128(start), leaf.prefix_len(), class);
    }

    fn class_of(
        &mut self,
        leaf: IpNet,
        db_net: IpNet,
        offset: Option<u32>,
        place: &dyn Fn() -> Place,
    ) -> u32 {
        // Every cut that overlaps the leaf holds it (none lies inside).
        let order_net = self
            .cuts
            .iter()
            .filter(|c| c.contains(&leaf))
            .max_by_key(|c| c.prefix_len())
            .copied();
        let address = leaf.network();
        let over = self
            .snap
            .locator
            .overrides()
            .iter()
            .find(|o| o.net.contains(&leaf));
        if over.is_none()
            && order_net.is_none()
            && let Some(o) = offset
            && let Some(&c) = self.by_offset.get(&o)
        {
            return c;
        }
        let located = match over {
            Some(o) => Located::by_override(o),
            None => Located::at_place(
                if offset.is_some() {
                    place()
                } else {
                    Place::default()
                },
                db_net,
            ),
        };
        let all = self.all.clone();
        let bias = |c: ClusterId| self.snap.clusters[usize::from(c)].bias;
        let ranking: Box<[ClusterId]> = rank::rank(self.snap, &all, Some(&located), &bias).into();
        let key: ClassKey = (
            ranking.clone(),
            located.pinned,
            located.country,
            located.continent,
            order_net,
        );
        let n = self.classes.len() as u32;
        let class = *self.index.entry(key).or_insert(n);
        if class == n {
            self.classes.push(PlaceClass {
                ranking,
                located,
                address,
            });
        }
        if over.is_none()
            && order_net.is_none()
            && let Some(o) = offset
        {
            self.by_offset.insert(o, class);
        }
        class
    }
}

/// First and last address of a network, as numbers.
fn bounds(net: IpNet) -> (u128, u128) {
    match net {
        IpNet::V4(n) => (
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        ),
        IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
    }
}
