//! The answer cache of one query worker: encoded reply templates by question and, for
//! answers that depend on where the client is, by the client's location key (the GeoIP
//! record or override that places it). A hit costs a hash lookup and a copy; the answer
//! function and the encoder run only on a miss.
//!
//! Correctness rests on three facts. The answer function is a pure function of the
//! snapshot, the lowercase question and the client's location (`Locator::key` names the
//! location); answers that are not (policies `weighted` and `all` draw or rotate) are never
//! cached. Every entry belongs to one snapshot: the cache holds that snapshot and empties
//! itself when another is published. And the cache is bounded: past `MAX_TEMPLATES` it
//! starts over, so a flood of random names or subnets costs misses, not memory.
//!
//! One cache per worker thread (and per TCP connection), never shared: no lock, no atomic.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;

use foldhash::fast::RandomState;
use hickory_proto::op::ResponseCode;

use crate::answer::Steered;
use crate::dns::wire::Template;
use crate::dnstap::Decision;
use crate::snapshot::scope::ScopeMap;
use crate::snapshot::{ClusterId, LocationKey, LocationSource, Locator, NetworkKey, Snapshot};

/// How many reply templates (and questions never cached) one cache holds before it starts
/// over. At a few hundred bytes each, a few MiB per worker at most.
pub const MAX_TEMPLATES: usize = 16_384;

/// Slots of the memo of recent client addresses' location keys (a power of two). A slot
/// holds one address; a new address takes the slot over, so the memo never grows.
const LOCATION_SLOTS: usize = 4096;

/// A reply template and what metrics and the query log need to know of its answer.
#[derive(Debug, Clone)]
pub struct Cached {
    pub template: Template,
    pub rcode: ResponseCode,
    /// The answer depends on the client's location: the ECS scope is the deciding
    /// network's prefix (else 0).
    pub client_dependent: bool,
    pub first_cluster: Option<ClusterId>,
    pub located_by: Option<LocationSource>,
    pub fail_open: bool,
    pub answers: u16,
    /// The answer depends on the client's network, not only on its place (capacity
    /// spillover): kept under the network's key, with a mark under the place's.
    pub per_network: bool,
    pub steered: Steered,
    /// Its dnstap decision but for the scope and ECS of each reply (`with_reply`): made
    /// once, rather than for every reply.
    pub decided: Decision,
    /// The scope map of each decision that depended on the client's location (None: the
    /// locating network's prefix), so that a hit gives each client its own scope.
    pub scope_maps: Box<[Option<Arc<ScopeMap>>]>,
    /// When its signatures should be made again (Unix seconds; `u32::MAX`: unsigned).
    pub renew_at: u32,
}

impl Cached {
    /// The prefix of the widest block around `ip` with this answer, where `network` is
    /// the prefix of the network that places `ip`: across a chain of decisions, the
    /// narrowest of theirs.
    pub fn widest(&self, ip: IpAddr, network: u8) -> u8 {
        self.scope_maps
            .iter()
            .map(|m| crate::answer::scope_prefix(m.as_deref(), ip, network))
            .max()
            .unwrap_or(network)
    }
}

/// What the cache knows of one question.
#[derive(Debug)]
enum Entry {
    /// The same reply for every client.
    ForAll(Cached),
    /// A reply per client location.
    ByLocation(ByPlace),
    /// Computed afresh every time (a drawn or rotated answer).
    Uncacheable,
}

/// The replies of a question by client place, and, for places whose answer depends on
/// the client's own network (marked `per_network` under the place), by network.
#[derive(Debug, Default)]
pub struct ByPlace {
    places: HashMap<LocationKey, Cached, RandomState>,
    networks: HashMap<NetworkKey, Cached, RandomState>,
}

impl ByPlace {
    /// The reply for a client of place `place` in network `network` (made only when the
    /// place's answer depends on the network).
    #[inline]
    pub fn get(
        &self,
        place: &LocationKey,
        network: impl FnOnce() -> NetworkKey,
    ) -> Option<&Cached> {
        match self.places.get(place) {
            Some(c) if c.per_network => self.networks.get(&network()),
            c => c,
        }
    }
}

/// How the cache may keep an answer once made: the same variants as `Entry`, without the
/// reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The same for every client.
    ForAll,
    /// Depends on the client's location (the key of this client).
    ByLocation(LocationKey),
    /// Depends on the client's network (the keys of its place and of its network).
    ByNetwork(LocationKey, NetworkKey),
    /// Drawn or rotated: made afresh every time.
    Uncacheable,
}

/// What the cache knows of a question.
pub enum Lookup<'c> {
    Hit(&'c Cached),
    /// The replies of a question whose answer depends on the client's location.
    ByLocation(&'c ByPlace),
    Miss,
    Uncacheable,
}

/// The hash is foldhash's, seeded per cache: fast on short keys, and without the seed a
/// client cannot aim names at one bucket.
#[derive(Debug, Default)]
pub struct AnswerCache {
    snapshot: Option<Arc<Snapshot>>,
    /// Keyed by the lowercase question name (wire form) followed by the QTYPE.
    entries: HashMap<Box<[u8]>, Entry, RandomState>,
    templates: usize,
}

/// Recent locating addresses and what `Locator::key` said of them, by a hash of the
/// address: repeated clients (a resolver's ECS subnet) skip the GeoIP tree walk. A slot
/// holds one address, so the memo never grows; it also remembers the widest block the
/// last scope map asked about gave it. Emptied with the cache (a new snapshot may have a
/// new locator and new scope maps).
#[derive(Debug, Default)]
pub struct LocationMemo {
    slots: Vec<Option<Slot>>,
    hasher: RandomState,
    /// The slot `locate` last used.
    last: usize,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    ip: IpAddr,
    key: LocationKey,
    prefix: u8,
    /// The scope map last asked about for this address (its address: the maps belong to
    /// the snapshot the memo is emptied with) and the prefix it gave.
    widest: Option<(usize, u8)>,
}

impl LocationMemo {
    pub fn clear(&mut self) {
        self.slots.clear();
    }

    fn slot(&self, ip: IpAddr) -> usize {
        self.hasher.hash_one(ip) as usize & (LOCATION_SLOTS - 1)
    }

    /// `locator.key(ip)`, remembered per address.
    pub fn locate(&mut self, locator: &Locator, ip: IpAddr) -> (LocationKey, u8) {
        if self.slots.is_empty() {
            self.slots.resize(LOCATION_SLOTS, None);
        }
        let i = self.slot(ip);
        self.last = i;
        if let Some(s) = &self.slots[i]
            && s.ip == ip
        {
            return (s.key, s.prefix);
        }
        let (key, prefix) = locator.key(ip);
        self.slots[i] = Some(Slot {
            ip,
            key,
            prefix,
            widest: None,
        });
        (key, prefix)
    }

    /// `c.widest(ip, network)`, remembered per address for the last answer's scope map
    /// (an answer of one geo decision; a chain is computed each time). Call after
    /// `locate(ip)`.
    pub fn widest(&mut self, c: &Cached, ip: IpAddr, network: u8) -> u8 {
        let [Some(map)] = &*c.scope_maps else {
            return c.widest(ip, network);
        };
        let id = Arc::as_ptr(map) as usize;
        match self.slots.get_mut(self.last) {
            Some(Some(s)) if s.ip == ip => match s.widest {
                Some((seen, prefix)) if seen == id => prefix,
                _ => {
                    let prefix = c.widest(ip, network);
                    s.widest = Some((id, prefix));
                    prefix
                }
            },
            _ => c.widest(ip, network),
        }
    }
}

impl AnswerCache {
    /// Makes the cache belong to `snap`, emptying it if it belonged to another snapshot
    /// (and then saying so). The cache keeps the snapshot alive, so that a new one can
    /// never reuse its address.
    pub fn sync(&mut self, snap: &Arc<Snapshot>) -> bool {
        if self.snapshot.as_ref().is_some_and(|s| Arc::ptr_eq(s, snap)) {
            return false;
        }
        self.clear();
        self.snapshot = Some(Arc::clone(snap));
        true
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.templates = 0;
    }

    pub fn len(&self) -> usize {
        self.templates
    }

    pub fn is_empty(&self) -> bool {
        self.templates == 0
    }

    /// Looks a question key up. Inlined into the fast path: a call here costs more than
    /// the match around the map's lookup, and the compiler's own choice flips with small
    /// changes to its callers.
    #[inline]
    pub fn get<'c>(&'c self, key: &[u8]) -> Lookup<'c> {
        match self.entries.get(key) {
            None => Lookup::Miss,
            Some(Entry::ForAll(c)) => Lookup::Hit(c),
            Some(Entry::Uncacheable) => Lookup::Uncacheable,
            Some(Entry::ByLocation(m)) => Lookup::ByLocation(m),
        }
    }

    /// Keeps `cached` for `key` as `store` says. Starts over when full.
    pub fn insert(&mut self, key: &[u8], store: Keep, cached: Cached) {
        if self.templates >= MAX_TEMPLATES {
            self.clear();
        }
        match store {
            Keep::Uncacheable => {
                self.entries.insert(key.into(), Entry::Uncacheable);
                self.templates += 1;
            }
            Keep::ForAll => {
                self.entries.insert(key.into(), Entry::ForAll(cached));
                self.templates += 1;
            }
            Keep::ByLocation(l) | Keep::ByNetwork(l, _) => {
                let entry = self
                    .entries
                    .entry(key.into())
                    .or_insert_with(|| Entry::ByLocation(ByPlace::default()));
                match entry {
                    Entry::ByLocation(m) => {
                        if let Keep::ByNetwork(_, net) = store {
                            // The mark under the place: look again under the network.
                            if let std::collections::hash_map::Entry::Vacant(e) = m.places.entry(l)
                            {
                                e.insert(cached.clone());
                                self.templates += 1;
                            }
                            if m.networks.insert(net, cached).is_none() {
                                self.templates += 1;
                            }
                        } else if m.places.insert(l, cached).is_none() {
                            self.templates += 1;
                        }
                    }
                    // The same snapshot and question cannot be both; keep what is there.
                    Entry::ForAll(_) | Entry::Uncacheable => {}
                }
            }
        }
    }
}
