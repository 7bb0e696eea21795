//! Prometheus metrics, all named `fedns_...`. The per-query ones are counted per worker
//! and summed at scrape time (`counters`); the rest are plain prometheus handles resolved
//! once. Every label has a bounded set of values: no per-client or per-name labels.

use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use self::probes::ProbeCollector;
use self::shards::{GEO, QTYPE_NAMES, QUERY_SLOTS, QueryCollector, RCODES, STEERING, Shard};
use crate::fleet::Fleet;
use crate::fleet::overrides::Overrides;
use crate::geo::Precision;
use crate::health::HealthTable;

mod families;
pub mod fleet;
pub mod probes;
pub mod shards;
use crate::snapshot::LocationSource;

/// Query types counted by name (`shards::QTYPE_NAMES`, in the same order); everything
/// else is `other`, the last name.
const QTYPES: [RecordType; 9] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::CNAME,
    RecordType::NS,
    RecordType::SOA,
    RecordType::TXT,
    RecordType::MX,
    RecordType::SRV,
    RecordType::ANY,
];
const _: () = assert!(QTYPES.len() + 1 == QTYPE_NAMES.len());

/// Transport of a query.
/// What happened to a TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpEvent {
    Accepted = 0,
    /// Closed at once: the connection limit was reached.
    Refused = 1,
    /// Closed after the idle timeout.
    IdleTimeout = 2,
    /// Closed because a message or a reply did not move within the I/O timeout.
    IoTimeout = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp = 0,
    Tcp = 1,
}

/// What one query worker counted since its last flush: plain integers that only its
/// thread touches, so counting a query costs no atomic. A flush adds them to the worker's
/// own shard, which no other worker writes.
#[derive(Debug)]
pub struct LocalStats {
    /// Query counts by (proto, qtype, rcode), flattened; `touched` lists the non-zero
    /// ones, so that a flush after a batch of one query does not walk them all.
    queries: [u32; QUERY_SLOTS],
    touched: Vec<u16>,
    answered: [u32; 2],
    /// This worker's counters in the shared metrics, made at its first flush.
    shard: Option<Arc<Shard>>,
    ecs: [u32; 2],
    geo: [u32; GEO.len()],
    fail_open: u32,
    signatures: u32,
    steering: [u32; STEERING.len()],
    answers: Vec<u32>,
    pending: bool,
}

impl Default for LocalStats {
    fn default() -> Self {
        LocalStats {
            queries: [0; QUERY_SLOTS],
            touched: Vec::with_capacity(16),
            answered: [0; 2],
            shard: None,
            ecs: [0; 2],
            geo: [0; GEO.len()],
            fail_open: 0,
            signatures: 0,
            steering: [0; STEERING.len()],
            answers: Vec::new(),
            pending: false,
        }
    }
}

impl LocalStats {
    /// Counts one answered query.
    pub fn query(&mut self, proto: Transport, qtype: RecordType, rcode: ResponseCode) {
        let t = QTYPES
            .iter()
            .position(|q| *q == qtype)
            .unwrap_or(QTYPES.len());
        let rc = match rcode {
            ResponseCode::NoError => 0,
            ResponseCode::FormErr => 1,
            ResponseCode::ServFail => 2,
            ResponseCode::NXDomain => 3,
            ResponseCode::NotImp => 4,
            ResponseCode::Refused => 5,
            ResponseCode::BADVERS => 6,
            _ => 7,
        };
        let i = (proto as usize * (QTYPES.len() + 1) + t) * RCODES.len() + rc;
        if self.queries[i] == 0 {
            self.touched.push(i as u16);
        }
        self.queries[i] += 1;
        self.answered[proto as usize] += 1;
        self.pending = true;
    }

    /// RRSIGs made (`fedns_dnssec_signatures_total`).
    pub fn signed(&mut self, n: u32) {
        self.signatures = self.signatures.saturating_add(n);
        self.pending = true;
    }

    /// Counts the steering rules that decided an answer: a per-geography failover order,
    /// a client sent on by spillover, an ECS scope wider than the locating network.
    #[inline]
    pub fn steered(&mut self, geo_order: bool, spilled: bool, widened: bool) {
        if geo_order | spilled | widened {
            self.steering[0] += u32::from(geo_order);
            self.steering[1] += u32::from(spilled);
            self.steering[2] += u32::from(widened);
            self.pending = true;
        }
    }

    /// Counts what a geo answer did.
    pub fn geo_answer(
        &mut self,
        ecs: bool,
        located: Option<&LocationSource>,
        fail_open: bool,
        first_cluster: Option<u16>,
    ) {
        self.ecs[usize::from(!ecs)] += 1;
        if let Some(l) = located {
            let i = match l {
                LocationSource::Override(_) => 0,
                LocationSource::GeoIp(Precision::City) => 1,
                LocationSource::GeoIp(Precision::Country(_)) => 2,
                LocationSource::GeoIp(Precision::Continent(_)) => 3,
                LocationSource::Unknown => 4,
            };
            self.geo[i] += 1;
        }
        if fail_open {
            self.fail_open += 1;
        }
        if let Some(c) = first_cluster {
            let c = usize::from(c);
            if self.answers.len() <= c {
                self.answers.resize(c + 1, 0);
            }
            self.answers[c] += 1;
        }
        self.pending = true;
    }
}

pub struct Metrics {
    pub registry: Registry,
    /// The per-query counters, per worker.
    counters: Arc<shards::ShardSet>,
    pub cluster_stale: IntGaugeVec,
    pub cluster_synced: IntGaugeVec,
    /// Optional kinds per cluster by what discovery found: watched, missing,
    /// unknown_version.
    pub cluster_kind: IntGaugeVec,
    pub cluster_last_sync: IntGaugeVec,
    pub cluster_endpoints: IntGaugeVec,
    /// The zone's DNSSEC keys: 1 per key, by tag, role, algorithm and state.
    dnssec_keys: IntGaugeVec,
    pub snapshot_builds: IntCounter,
    pub snapshot_build_duration: Histogram,
    reloads_ok: IntCounter,
    reloads_failed: IntCounter,
    rrl_slipped: IntCounter,
    rrl_dropped: IntCounter,
    tcp: [IntCounter; 4],
    pub ready: IntGauge,
    /// dnstap frames by outcome: sent, dropped (queue full or no collector), lost (with a
    /// connection that broke).
    pub dnstap_frames: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let v = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(v.clone())).expect("unique metric");
    v
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let v = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(v.clone())).expect("unique metric");
    v
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let counters = Arc::new(shards::ShardSet::default());
        r.register(Box::new(QueryCollector::new(counters.clone())))
            .expect("unique metric");
        let reloads = counter_vec(
            &r,
            "fedns_reloads_total",
            "Reloads of config, zone file and GeoIP database, by outcome.",
            &["outcome"],
        );
        let snapshot_builds = IntCounter::new(
            "fedns_snapshot_builds_total",
            "Snapshots built and published.",
        )
        .expect("valid metric");
        r.register(Box::new(snapshot_builds.clone()))
            .expect("unique metric");
        let snapshot_build_duration = Histogram::with_opts(
            HistogramOpts::new(
                "fedns_snapshot_build_duration_seconds",
                "Time to build one snapshot.",
            )
            .buckets(vec![0.000_1, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
        )
        .expect("valid metric");
        r.register(Box::new(snapshot_build_duration.clone()))
            .expect("unique metric");
        let rrl = counter_vec(
            &r,
            "fedns_rrl_responses_total",
            "UDP responses limited by RRL, by action (slip: sent truncated; drop: not sent).",
            &["action"],
        );
        let tcp = counter_vec(
            &r,
            "fedns_tcp_connections_total",
            "TCP connections by what happened: accepted, refused at the connection limit, \
             closed idle, closed for a slow client.",
            &["event"],
        );
        let dnstap_frames = counter_vec(
            &r,
            "fedns_dnstap_frames_total",
            "dnstap frames by outcome: sent to the collector, dropped (the queue was full or no collector was connected), lost (written to a connection that broke).",
            &["outcome"],
        );
        let ready =
            IntGauge::new("fedns_ready", "1 when /readyz answers 200.").expect("valid metric");
        r.register(Box::new(ready.clone())).expect("unique metric");
        Metrics {
            counters,
            cluster_stale: gauge_vec(
                &r,
                "fedns_cluster_stale",
                "1 when the cluster's API is failing and its records are last-known.",
                &["cluster"],
            ),
            cluster_synced: gauge_vec(
                &r,
                "fedns_cluster_synced",
                "1 once every watched kind of the cluster has listed.",
                &["cluster"],
            ),
            cluster_kind: gauge_vec(
                &r,
                "fedns_cluster_kind",
                "1 for each optional kind (Gateway, HTTPRoute, GRPCRoute, TLSRoute, ListenerSet, XListenerSet, DNSEndpoint, Gateway.networking.istio.io, VirtualService) of each cluster, labelled with what discovery found: watched, missing (no CRD), unknown_version (served only at versions fedns does not read).",
                &["cluster", "kind", "state"],
            ),
            cluster_last_sync: gauge_vec(
                &r,
                "fedns_cluster_last_sync_timestamp_seconds",
                "When the cluster's watch last delivered an event or list (Unix time).",
                &["cluster"],
            ),
            cluster_endpoints: gauge_vec(
                &r,
                "fedns_cluster_endpoints",
                "Load-balanced objects known in the cluster.",
                &["cluster"],
            ),
            dnssec_keys: gauge_vec(
                &r,
                "fedns_dnssec_keys",
                "The zone's DNSSEC keys (1 each) by key tag, role (ksk, zsk), algorithm and state (published, active, retired).",
                &["tag", "role", "algorithm", "state"],
            ),
            snapshot_builds,
            snapshot_build_duration,
            reloads_ok: reloads.with_label_values(&["ok"]),
            reloads_failed: reloads.with_label_values(&["error"]),
            rrl_slipped: rrl.with_label_values(&["slip"]),
            rrl_dropped: rrl.with_label_values(&["drop"]),
            tcp: ["accepted", "refused", "idle_timeout", "io_timeout"]
                .map(|e| tcp.with_label_values(&[e])),
            ready,
            dnstap_frames,
            registry: r,
        }
    }

    /// Adds what one worker counted since its last flush to its shard, with `nanos` as
    /// the time each of those queries spent in fedns, from its arrival to its reply being
    /// ready to send (a worker handles a batch of queries at once). Called once per batch.
    pub fn flush(&self, s: &mut LocalStats, nanos: u64) {
        if !s.pending {
            return;
        }
        s.pending = false;
        let shard = s.shard.get_or_insert_with(|| self.counters.shard());
        for i in s.touched.drain(..) {
            let i = usize::from(i);
            shard.add_queries(i, u64::from(std::mem::take(&mut s.queries[i])));
        }
        for (proto, n) in s.answered.iter_mut().enumerate() {
            if *n > 0 {
                shard.add_durations(proto, u64::from(std::mem::take(n)), nanos);
            }
        }
        for (i, n) in s.ecs.iter_mut().enumerate() {
            if *n > 0 {
                shard.add_ecs(i, u64::from(std::mem::take(n)));
            }
        }
        for (i, n) in s.geo.iter_mut().enumerate() {
            if *n > 0 {
                shard.add_geo(i, u64::from(std::mem::take(n)));
            }
        }
        if s.fail_open > 0 {
            shard.add_fail_open(u64::from(std::mem::take(&mut s.fail_open)));
        }
        if s.signatures > 0 {
            shard.add_signatures(u64::from(std::mem::take(&mut s.signatures)));
        }
        if s.steering != [0; STEERING.len()] {
            for (i, n) in s.steering.iter_mut().enumerate() {
                if *n > 0 {
                    shard.add_steering(i, u64::from(std::mem::take(n)));
                }
            }
        }
        // The cluster-index map, loaded once per flush and only if a geo answer was counted.
        let mut indices = None;
        for (id, n) in s.answers.iter_mut().enumerate() {
            let n = u64::from(std::mem::take(n));
            if n == 0 {
                continue;
            }
            let indices = indices.get_or_insert_with(|| self.counters.cluster_indices());
            let Some(&index) = indices.get(id) else {
                continue;
            };
            let index = index as usize;
            if !shard.add_answers(index, n) {
                // A cluster name this shard has no slot for (it came with a reload): a
                // new shard has one; the old one's counts stay in the sums.
                *shard = self.counters.shard();
                shard.add_answers(index, n);
            }
        }
    }

    /// Maps the per-cluster answer counts to a new snapshot's cluster list.
    pub fn set_clusters(&self, names: &[&str]) {
        self.counters.set_clusters(names);
    }

    /// Exposes the fleet's agreement, read from the views at every scrape.
    pub fn watch_fleet(
        &self,
        fleet: Arc<Fleet>,
        table: Arc<HealthTable>,
        overrides: Arc<Overrides>,
    ) {
        self.registry
            .register(Box::new(fleet::FleetCollector::new(
                fleet, table, overrides,
            )))
            .expect("unique metric");
    }

    /// Exposes the probes' health and counts, read from the table at every scrape.
    pub fn watch_health(&self, table: Arc<HealthTable>) {
        self.registry
            .register(Box::new(ProbeCollector::new(table)))
            .expect("unique metric");
    }

    /// Counts one rate-limited response: slipped (sent truncated) or dropped.
    pub fn rrl(&self, slipped: bool) {
        if slipped {
            self.rrl_slipped.inc();
        } else {
            self.rrl_dropped.inc();
        }
    }

    pub fn tcp(&self, event: TcpEvent) {
        self.tcp[event as usize].inc();
    }

    /// The zone's keys as loaded: (tag, role, algorithm, state) each; none when unsigned.
    pub fn set_dnssec_keys(&self, keys: &[(String, &str, &str, &str)]) {
        self.dnssec_keys.reset();
        for (tag, role, algorithm, state) in keys {
            self.dnssec_keys
                .with_label_values(&[tag.as_str(), role, algorithm, state])
                .set(1);
        }
    }

    pub fn reload(&self, ok: bool) {
        if ok {
            self.reloads_ok.inc();
        } else {
            self.reloads_failed.inc();
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# encoding failed: {e}\n"))
    }

    /// Geo answers so far by the first cluster chosen (`fedns_answers_total`).
    pub fn answers_by_cluster(&self) -> Vec<(String, u64)> {
        self.counters.answers_by_cluster()
    }
}
