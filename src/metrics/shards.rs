//! The per-query metrics (queries, their duration, ECS use, how clients were located,
//! fail-open answers, answers by cluster), kept per worker and summed when Prometheus
//! gathers them. A worker adds into its own `Shard`: atomics that only its thread writes,
//! so their cache lines stay in its core and workers never contend on a counter. The
//! `QueryCollector` registered with the Prometheus registry sums every shard at scrape
//! time (a lock held only by scrapes and by workers starting up), and a shard whose worker
//! is gone is folded into the retired totals, so that nothing counted is lost and the
//! list does not grow with the TCP connections that come and go.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Bucket, Histogram, Metric, MetricFamily, MetricType};

use super::families::{counter, desc, family, labels};

/// Upper bounds (seconds) of the query duration histogram's buckets; +Inf follows.
const DURATION_BUCKETS: [f64; 11] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05,
];
const BUCKETS: usize = DURATION_BUCKETS.len() + 1;

/// The label values, in counting order: `proto` × `qtype` × `rcode` for queries.
const PROTOS: [&str; 2] = ["udp", "tcp"];
pub const QTYPE_NAMES: [&str; 10] = [
    "A", "AAAA", "CNAME", "NS", "SOA", "TXT", "MX", "SRV", "ANY", "other",
];
pub const RCODES: [&str; 8] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "other",
];
pub const GEO: [&str; 5] = ["override", "city", "country", "continent", "unknown"];
/// `rule` labels of `fedns_steered_answers_total`, in `LocalStats::steered` order.
pub const STEERING: [&str; 3] = ["geo-order", "spillover", "widened-scope"];
pub const QUERY_SLOTS: usize = PROTOS.len() * QTYPE_NAMES.len() * RCODES.len();

/// What one worker counted, ever. Written by that worker only (relaxed adds), read by
/// scrapes. Aligned, like its answer slots, to 128 bytes (two cache lines, for the
/// adjacent-line prefetcher), so that no other shard shares a line with it.
#[derive(Debug)]
#[repr(align(128))]
pub struct Shard {
    queries: [AtomicU64; QUERY_SLOTS],
    /// By proto: queries per duration bucket (not cumulative), and their summed time.
    buckets: [[AtomicU64; BUCKETS]; 2],
    duration_ns: [AtomicU64; 2],
    ecs: [AtomicU64; 2],
    geo: [AtomicU64; GEO.len()],
    fail_open: AtomicU64,
    signatures: AtomicU64,
    steering: [AtomicU64; STEERING.len()],
    /// Geo answers by the first cluster's stable index (see `Shards::names`). A worker
    /// that meets an index past the end takes a new, longer shard.
    answers: Box<[Slots]>,
}

/// Sixteen answer counters on a pair of cache lines of their own.
#[derive(Debug)]
#[repr(align(128))]
struct Slots([AtomicU64; 16]);

fn zeros<const N: usize>() -> [AtomicU64; N] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

impl Shard {
    fn new(clusters: usize) -> Shard {
        Shard {
            queries: zeros(),
            buckets: [zeros(), zeros()],
            duration_ns: zeros(),
            ecs: zeros(),
            geo: zeros(),
            fail_open: AtomicU64::new(0),
            signatures: AtomicU64::new(0),
            steering: zeros(),
            answers: (0..clusters.div_ceil(16)).map(|_| Slots(zeros())).collect(),
        }
    }

    pub fn add_queries(&self, slot: usize, n: u64) {
        self.queries[slot].fetch_add(n, Ordering::Relaxed);
    }

    /// `n` queries over `proto`, each of which took `elapsed_ns` from arrival to reply.
    pub fn add_durations(&self, proto: usize, n: u64, elapsed_ns: u64) {
        let secs = elapsed_ns as f64 / 1e9;
        let b = DURATION_BUCKETS
            .iter()
            .position(|&upper| secs <= upper)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[proto][b].fetch_add(n, Ordering::Relaxed);
        self.duration_ns[proto].fetch_add(n.saturating_mul(elapsed_ns), Ordering::Relaxed);
    }

    pub fn add_ecs(&self, i: usize, n: u64) {
        self.ecs[i].fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_geo(&self, i: usize, n: u64) {
        self.geo[i].fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_fail_open(&self, n: u64) {
        self.fail_open.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_signatures(&self, n: u64) {
        self.signatures.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_steering(&self, i: usize, n: u64) {
        self.steering[i].fetch_add(n, Ordering::Relaxed);
    }

    /// Adds `n` answers to the cluster of stable index `index`; false if this shard has
    /// no slot for it (the worker then asks for a new shard).
    pub fn add_answers(&self, index: usize, n: u64) -> bool {
        match self.answers.get(index / 16) {
            Some(Slots(a)) => {
                let a = &a[index % 16];
                a.fetch_add(n, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }
}

/// Plain sums of shards.
#[derive(Clone, Debug)]
struct Totals {
    queries: [u64; QUERY_SLOTS],
    buckets: [[u64; BUCKETS]; 2],
    duration_ns: [u64; 2],
    ecs: [u64; 2],
    geo: [u64; GEO.len()],
    fail_open: u64,
    signatures: u64,
    steering: [u64; STEERING.len()],
    answers: Vec<u64>,
}

impl Default for Totals {
    fn default() -> Self {
        Totals {
            queries: [0; QUERY_SLOTS],
            buckets: [[0; BUCKETS]; 2],
            duration_ns: [0; 2],
            ecs: [0; 2],
            geo: [0; GEO.len()],
            fail_open: 0,
            signatures: 0,
            steering: [0; STEERING.len()],
            answers: Vec::new(),
        }
    }
}

fn add_all(into: &mut [u64], from: &[AtomicU64]) {
    for (t, a) in into.iter_mut().zip(from) {
        *t = t.wrapping_add(a.load(Ordering::Relaxed));
    }
}

impl Totals {
    fn add(&mut self, s: &Shard) {
        add_all(&mut self.queries, &s.queries);
        for (t, a) in self.buckets.iter_mut().zip(&s.buckets) {
            add_all(t, a);
        }
        add_all(&mut self.duration_ns, &s.duration_ns);
        add_all(&mut self.ecs, &s.ecs);
        add_all(&mut self.geo, &s.geo);
        self.fail_open = self
            .fail_open
            .wrapping_add(s.fail_open.load(Ordering::Relaxed));
        self.signatures = self
            .signatures
            .wrapping_add(s.signatures.load(Ordering::Relaxed));
        add_all(&mut self.steering, &s.steering);
        add_answers(&mut self.answers, s);
    }
}

/// Adds a shard's answer counts by cluster index to `into`, growing it to the shard's
/// slots.
fn add_answers(into: &mut Vec<u64>, s: &Shard) {
    if into.len() < s.answers.len() * 16 {
        into.resize(s.answers.len() * 16, 0);
    }
    for (t, Slots(a)) in into.chunks_mut(16).zip(&s.answers) {
        add_all(t, a);
    }
}

#[derive(Debug)]
struct Shards {
    live: Vec<Arc<Shard>>,
    /// What the shards of finished workers counted.
    retired: Totals,
    /// Cluster names by stable index: every name any snapshot had, in order of first
    /// appearance (a cluster that leaves keeps its counter, as Prometheus expects).
    names: Vec<String>,
    /// `names` by name (set_clusters runs on every snapshot publish).
    index: HashMap<String, u32>,
    /// `live` is pruned when it reaches this length.
    prune_at: usize,
}

impl Shards {
    /// Folds the shards no worker holds any more into `retired`.
    fn prune(&mut self) {
        let retired = &mut self.retired;
        self.live.retain(|s| {
            if Arc::strong_count(s) > 1 {
                return true;
            }
            // The worker's last adds happened before it dropped its reference (a release
            // decrement); this fence makes them visible here.
            fence(Ordering::Acquire);
            retired.add(s);
            false
        });
    }
}

/// Every worker's shard, and the cluster names answers are counted under.
#[derive(Debug)]
pub struct ShardSet {
    shards: Mutex<Shards>,
    /// The current snapshot's cluster ids to stable indices into `names`.
    ids: ArcSwap<Vec<u32>>,
}

impl Default for ShardSet {
    fn default() -> Self {
        ShardSet {
            shards: Mutex::new(Shards {
                live: Vec::new(),
                retired: Totals::default(),
                names: Vec::new(),
                index: HashMap::new(),
                prune_at: 64,
            }),
            ids: ArcSwap::from_pointee(Vec::new()),
        }
    }
}

impl ShardSet {
    fn lock(&self) -> MutexGuard<'_, Shards> {
        // The lock guards plain sums; a panic elsewhere leaves them usable.
        self.shards.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new shard for a worker, with a slot for every cluster name known so far.
    pub fn shard(&self) -> Arc<Shard> {
        let mut s = self.lock();
        if s.live.len() >= s.prune_at {
            s.prune();
            s.prune_at = (s.live.len() * 2).max(64);
        }
        let shard = Arc::new(Shard::new(s.names.len()));
        s.live.push(shard.clone());
        shard
    }

    /// Maps a new snapshot's cluster ids (its cluster list, in order) to stable indices.
    pub fn set_clusters(&self, names: &[&str]) {
        let mut guard = self.lock();
        let s = &mut *guard;
        let ids = names
            .iter()
            .map(|n| match s.index.get(*n) {
                Some(&i) => i,
                None => {
                    let i = s.names.len() as u32;
                    s.names.push((*n).to_owned());
                    s.index.insert((*n).to_owned(), i);
                    i
                }
            })
            .collect();
        self.ids.store(Arc::new(ids));
    }

    /// The stable index of each cluster id of the current snapshot.
    pub fn cluster_indices(&self) -> arc_swap::Guard<Arc<Vec<u32>>> {
        self.ids.load()
    }

    /// Geo answers so far by the first cluster chosen, every cluster name ever known in
    /// order (`fedns_answers_total`), summed without building the other families.
    pub fn answers_by_cluster(&self) -> Vec<(String, u64)> {
        let mut s = self.lock();
        s.prune();
        let mut answers = s.retired.answers.clone();
        for shard in &s.live {
            add_answers(&mut answers, shard);
        }
        s.names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), answers.get(i).copied().unwrap_or(0)))
            .collect()
    }
}

/// The Prometheus side: the per-query metric families, summed over every shard.
pub struct QueryCollector {
    registry: Arc<ShardSet>,
    descs: Vec<Desc>,
}

const QUERIES: (&str, &str) = (
    "fedns_dns_queries_total",
    "DNS queries answered, by transport, query type and response code.",
);
const DURATION: (&str, &str) = (
    "fedns_dns_query_duration_seconds",
    "Time from a query read off the socket to its reply ready to send (per batch of queries read together).",
);
const ECS: (&str, &str) = (
    "fedns_ecs_queries_total",
    "Queries by whether an EDNS Client Subnet located the client.",
);
const GEOIP: (&str, &str) = (
    "fedns_geoip_lookups_total",
    "Client locations by what decided them.",
);
const FAIL_OPEN: (&str, &str) = (
    "fedns_fail_open_total",
    "Answers given as if all clusters were healthy because none was.",
);
const SIGNATURES: (&str, &str) = (
    "fedns_dnssec_signatures_total",
    "RRSIGs made for signed replies (a cached reply or a worker's signature cache makes none).",
);
const STEERED: (&str, &str) = (
    "fedns_steered_answers_total",
    "Geo answers decided by a steering rule: a per-geography failover order (geo-order), capacity spillover sending the client on (spillover), an ECS scope wider than the locating network (widened-scope).",
);
const ANSWERS: (&str, &str) = (
    "fedns_answers_total",
    "Geo answers by the first cluster chosen.",
);

impl QueryCollector {
    pub fn new(registry: Arc<ShardSet>) -> QueryCollector {
        QueryCollector {
            registry,
            descs: vec![
                desc(QUERIES, &["proto", "qtype", "rcode"]),
                desc(DURATION, &["proto"]),
                desc(ECS, &["ecs"]),
                desc(GEOIP, &["outcome"]),
                desc(FAIL_OPEN, &[]),
                desc(SIGNATURES, &[]),
                desc(STEERED, &["rule"]),
                desc(ANSWERS, &["cluster"]),
            ],
        }
    }
}

impl Collector for QueryCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let (t, names) = {
            let mut s = self.registry.lock();
            s.prune();
            let mut t = s.retired.clone();
            for shard in &s.live {
                t.add(shard);
            }
            (t, s.names.clone())
        };
        let mut queries = Vec::with_capacity(QUERY_SLOTS);
        for (p, proto) in PROTOS.iter().enumerate() {
            for (q, qtype) in QTYPE_NAMES.iter().enumerate() {
                for (r, rcode) in RCODES.iter().enumerate() {
                    let slot = (p * QTYPE_NAMES.len() + q) * RCODES.len() + r;
                    queries.push(counter(
                        &[("proto", proto), ("qtype", qtype), ("rcode", rcode)],
                        t.queries[slot],
                    ));
                }
            }
        }
        let durations = PROTOS
            .iter()
            .enumerate()
            .map(|(p, proto)| {
                let mut cumulative = 0;
                let mut buckets = Vec::with_capacity(DURATION_BUCKETS.len());
                for (upper, n) in DURATION_BUCKETS.iter().zip(&t.buckets[p]) {
                    cumulative += n;
                    let mut b = Bucket::default();
                    b.set_upper_bound(*upper);
                    b.set_cumulative_count(cumulative);
                    buckets.push(b);
                }
                let mut h = Histogram::default();
                h.set_bucket(buckets);
                h.set_sample_count(t.buckets[p].iter().sum());
                h.set_sample_sum(t.duration_ns[p] as f64 / 1e9);
                let mut m = Metric::from_label(labels(&[("proto", proto)]));
                m.set_histogram(h);
                m
            })
            .collect();
        let ecs = ["yes", "no"]
            .iter()
            .zip(t.ecs)
            .map(|(v, n)| counter(&[("ecs", v)], n))
            .collect();
        let geo = GEO
            .iter()
            .zip(t.geo)
            .map(|(v, n)| counter(&[("outcome", v)], n))
            .collect();
        let answers = names
            .iter()
            .enumerate()
            .map(|(i, name)| counter(&[("cluster", name)], t.answers.get(i).copied().unwrap_or(0)))
            .collect();
        vec![
            family(QUERIES, MetricType::COUNTER, queries),
            family(DURATION, MetricType::HISTOGRAM, durations),
            family(ECS, MetricType::COUNTER, ecs),
            family(GEOIP, MetricType::COUNTER, geo),
            family(
                FAIL_OPEN,
                MetricType::COUNTER,
                vec![counter(&[], t.fail_open)],
            ),
            family(
                SIGNATURES,
                MetricType::COUNTER,
                vec![counter(&[], t.signatures)],
            ),
            family(
                STEERED,
                MetricType::COUNTER,
                STEERING
                    .iter()
                    .zip(t.steering)
                    .map(|(r, n)| counter(&[("rule", r)], n))
                    .collect(),
            ),
            family(ANSWERS, MetricType::COUNTER, answers),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_workers_counts_stay_and_its_shard_goes() {
        let r = Arc::new(ShardSet::default());
        r.set_clusters(&["a", "b"]);
        let c = QueryCollector::new(r.clone());
        let value = |name: &str| -> f64 {
            let fams = c.collect();
            let f = fams.iter().find(|f| f.name() == name).unwrap();
            f.get_metric()
                .iter()
                .map(|m| m.get_counter().get_value())
                .sum()
        };
        for _ in 0..200 {
            let shard = r.shard();
            shard.add_queries(0, 2);
            assert!(shard.add_answers(r.cluster_indices()[1] as usize, 1));
        }
        // Dropped shards are folded in as new ones come, not kept until a scrape.
        assert!(r.lock().live.len() <= 64, "{}", r.lock().live.len());
        assert_eq!(value("fedns_dns_queries_total"), 400.0);
        assert_eq!(value("fedns_answers_total"), 200.0);
        assert!(r.lock().live.is_empty());
    }

    #[test]
    fn a_new_cluster_name_may_need_a_new_shard_and_keeps_the_old_counts() {
        let r = ShardSet::default();
        let names: Vec<String> = (0..16).map(|i| format!("c{i}")).collect();
        let mut list: Vec<&str> = names.iter().map(String::as_str).collect();
        r.set_clusters(&list);
        let old = r.shard();
        assert!(old.add_answers(r.cluster_indices()[15] as usize, 3));
        // A reload brings a 17th cluster in front: ids move, stable indices do not, and
        // the old shard has no slot for the new one.
        list.insert(0, "new");
        r.set_clusters(&list);
        assert_eq!(r.cluster_indices()[16], 15);
        let fresh = r.cluster_indices()[0] as usize;
        assert_eq!(fresh, 16);
        assert!(!old.add_answers(fresh, 1));
        let new = r.shard();
        assert!(new.add_answers(fresh, 1));
        // The old worker is gone: its counts are retired, the new one's live.
        drop(old);
        let r = Arc::new(r);
        let c = QueryCollector::new(r.clone());
        let fams = c.collect();
        let answers = fams
            .iter()
            .find(|f| f.name() == "fedns_answers_total")
            .unwrap();
        let all: Vec<(String, u64)> = answers
            .get_metric()
            .iter()
            .map(|m| {
                (
                    m.get_label()[0].value().to_owned(),
                    m.get_counter().get_value() as u64,
                )
            })
            .collect();
        let by: Vec<&(String, u64)> = all.iter().filter(|(_, v)| *v > 0).collect();
        assert_eq!(by, [&("c15".to_owned(), 3), &("new".to_owned(), 1)]);
        assert_eq!(all.len(), 17);
        // The status page's rates read the same sums without the other families.
        assert_eq!(r.answers_by_cluster(), all);
    }

    #[test]
    fn durations_land_in_the_bucket_at_or_above_them() {
        let r = Arc::new(ShardSet::default());
        let shard = r.shard();
        shard.add_durations(0, 3, 10_000); // 10 µs: the first bucket (le 1e-5)
        shard.add_durations(0, 1, 60_000); // 60 µs: le 1e-4
        shard.add_durations(1, 1, 1_000_000_000); // 1 s: only +Inf
        let fams = QueryCollector::new(r).collect();
        let d = fams
            .iter()
            .find(|f| f.name() == "fedns_dns_query_duration_seconds")
            .unwrap();
        let udp = d.get_metric()[0].get_histogram();
        assert_eq!(udp.get_sample_count(), 4);
        assert!((udp.get_sample_sum() - 0.00009).abs() < 1e-12);
        let counts: Vec<u64> = udp
            .get_bucket()
            .iter()
            .map(|b| b.cumulative_count())
            .collect();
        assert_eq!(counts, [3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4]);
        let tcp = d.get_metric()[1].get_histogram();
        assert_eq!(tcp.get_sample_count(), 1);
        assert!(tcp.get_bucket().iter().all(|b| b.cumulative_count() == 0));
    }
}
