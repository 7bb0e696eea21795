//! The query path: from a raw query to a raw reply.
//!
//! Two paths. The fast one (`wire` reads the query, `cache` holds encoded reply templates
//! per question and client location) covers well-formed queries: one question, class IN,
//! at most an OPT. Everything else, and what the fast path cannot template, takes the
//! general path: hickory parses the message and encodes the reply (errors, truncation).
//! Both call the same pure answer function on the same snapshot, loaded once per query.
//!
//! Sockets are not here: `listen` binds them and runs this path for every query it
//! receives, so the query path can be driven without a socket (`Handler::respond_once`).
//!
//! Architecture invariant: hickory types stay in this module and `answer`; nothing here
//! knows of Kubernetes, the store or how snapshots are built.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RecordType;
use tracing::info;

pub mod cache;
pub mod ecs;
mod fast;
mod general;
pub mod rrl;
mod signed;
pub mod wire;

use self::cache::{AnswerCache, LocationMemo};
use self::rrl::{Limiter, Verdict};
use self::wire::{MAX_NAME, QuestionKey};
use crate::answer::{Answer, Steered};
use crate::config::PolicyKind;
use crate::dnssec::SigCache;
use crate::dnstap::{self, Decided, Decision, Event, Stamp, Tap};
use crate::geo::Precision;
use crate::metrics::{LocalStats, Metrics, Transport};
use crate::snapshot::{ClusterId, LocationSource, Published, Snapshot};

/// The largest UDP reply we send, whatever the client offers: 1232 bytes avoids IP
/// fragmentation on every common path (DNS Flag Day 2020).
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// The request handler: the published snapshot, metrics, RRL and the query log switch.
/// Cheap to clone; every UDP worker and TCP connection has one.
#[derive(Clone)]
pub struct Handler {
    published: Published,
    metrics: Arc<Metrics>,
    /// Response rate limiting of UDP replies; None when off.
    rrl: Option<Arc<Limiter>>,
    /// Log every query at info (target `fedns::query`); off by default.
    query_log: bool,
    /// dnstap of queries and replies: the tap of the current config (None: off), which a
    /// reload may replace. Each worker follows it as a batch begins and as it idles.
    dnstap: Arc<dnstap::Current>,
}

/// The private state of one query worker (a UDP worker thread or a TCP connection): its
/// answer cache, its counters and scratch space. Never shared, so the query path takes no
/// lock and touches no shared cache line until the worker flushes its counters.
#[derive(Debug)]
pub struct Worker {
    cache: AnswerCache,
    memo: LocationMemo,
    stats: LocalStats,
    /// The question key of the query at hand (`wire::parse_query` writes it).
    key: QuestionKey,
    /// What was decided for the query at hand, when dnstap is on and anything was.
    tap: Decision,
    /// The tap it records to (None: dnstap is off), and its frames not yet handed to
    /// that tap's writer (and the address queries arrive at, dnstap's response address).
    tap_to: Option<Arc<Tap>>,
    /// The count of taps set (`dnstap::Current::generation`) when it took `tap_to`.
    tap_generation: u64,
    tap_buf: dnstap::Buffer,
    /// The signatures it made, by RRset (a signed zone).
    sigs: SigCache,
    /// Unix seconds at its last flush: when a cached signed reply is due for renewal.
    now: u32,
    /// When its batch of queries arrived, with dnstap on (`Handler::arrival`).
    arrived: Stamp,
}

impl Default for Worker {
    fn default() -> Self {
        Worker {
            cache: AnswerCache::default(),
            memo: LocationMemo::default(),
            stats: LocalStats::default(),
            key: [0; MAX_NAME + 3],
            tap: Decision::NONE,
            tap_to: None,
            tap_generation: u64::MAX,
            tap_buf: dnstap::Buffer::default(),
            sigs: SigCache::default(),
            now: signed::unix_now(),
            arrived: Stamp::default(),
        }
    }
}

impl Worker {
    /// The worker of a socket bound to `local`.
    pub fn serving(local: SocketAddr) -> Worker {
        Worker {
            tap_buf: dnstap::Buffer::serving(local),
            ..Worker::default()
        }
    }

    /// Reply templates in this worker's cache.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// Trades this worker's signatures for `other` (TCP connections of one thread share
    /// theirs this way).
    pub fn swap_signatures(&mut self, other: &mut SigCache) {
        std::mem::swap(&mut self.sigs, other);
    }
}

/// When a batch of queries arrived, by the clock its time to reply is measured with: the
/// monotonic clock; with dnstap on, the wall clock, which dnstap's message times need,
/// so that one read as a batch arrives and one as it ends serve both. (A step of the
/// wall clock then skews the time to reply of the one batch it falls in.)
#[derive(Clone, Copy, Debug)]
pub enum Arrival {
    Monotonic(Instant),
    Wall(Stamp),
}

impl From<Instant> for Arrival {
    fn from(t: Instant) -> Arrival {
        Arrival::Monotonic(t)
    }
}

impl Handler {
    pub fn new(published: Published, metrics: Arc<Metrics>, query_log: bool) -> Handler {
        Handler {
            published,
            metrics,
            rrl: None,
            query_log,
            dnstap: Arc::default(),
        }
    }

    /// dnstap to the tap `current` holds, and to whichever one it holds later.
    pub fn with_dnstap(mut self, current: Arc<dnstap::Current>) -> Handler {
        self.dnstap = current;
        self
    }

    /// Turns on response rate limiting.
    pub fn with_rrl(mut self, rrl: Option<Arc<Limiter>>) -> Handler {
        self.rrl = rrl;
        self
    }

    /// Reads the clock as a batch of queries arrives, for `flush`: dnstap gives the
    /// batch's queries this time.
    pub fn arrival(&self, w: &mut Worker) -> Arrival {
        if self.dnstap.generation() != w.tap_generation {
            self.follow_tap(w);
        }
        if w.tap_to.is_some() {
            w.arrived = Stamp::now();
            Arrival::Wall(w.arrived)
        } else {
            Arrival::Monotonic(Instant::now())
        }
    }

    /// Answers one DNS message received over `proto` from `src`: the reply goes in `out`
    /// and the result says whether to send it (false: drop the packet, e.g. a response or
    /// an RRL drop). Never panics and never waits on anything. Counts go to the worker;
    /// `flush` hands them to the shared metrics. The message arrived in the batch the
    /// worker's last `arrival` began.
    pub fn respond(
        &self,
        w: &mut Worker,
        packet: &[u8],
        src: SocketAddr,
        proto: Transport,
        out: &mut Vec<u8>,
    ) -> bool {
        // Shorter than a header: not DNS. A response: never answered (RFC 8906 section
        // 3.1.1), which also keeps two servers from answering each other forever.
        if packet.len() < 12 || wire::is_response(packet) {
            return false;
        }
        let snap = self.published.load();
        if w.cache.sync(&snap) {
            w.memo.clear();
            w.tap_buf.renamed();
        }
        if w.tap_to.is_none() {
            return self.answer(w, &snap, packet, src, proto, out);
        }
        w.tap = Decision::NONE;
        let sent = self.answer(w, &snap, packet, src, proto, out);
        let event = Event {
            client: src,
            transport: match proto {
                Transport::Udp => dnstap::Transport::Udp,
                Transport::Tcp => dnstap::Transport::Tcp,
            },
            query_time: w.arrived,
            query: packet,
            reply: sent.then_some(out.as_slice()),
        };
        let words = |d: Decided| dnstap::Words {
            cluster: d
                .cluster
                .and_then(|i| snap.clusters.get(usize::from(i)))
                .map(|c| c.name.as_str()),
            policy: d
                .policy
                .and_then(|p| PolicyKind::ALL.get(usize::from(p)))
                .map(|p| p.as_str()),
            located: d.located.and_then(|l| LOCATED.get(usize::from(l))).copied(),
        };
        if let Some(tap) = &w.tap_to {
            tap.record(&mut w.tap_buf, &event, w.tap, words);
        }
        sent
    }

    /// Takes the tap of the current config, set since the worker last looked (a reload
    /// turned dnstap on or off, or to another collector or other settings). Called
    /// between batches: the frames held, all stamped, go to the tap they were made for,
    /// whose writer ends once no worker holds it.
    #[cold]
    fn follow_tap(&self, w: &mut Worker) {
        let (current, generation) = self.dnstap.load();
        w.tap_generation = generation;
        let same = match (&current, &w.tap_to) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        if let Some(old) = &w.tap_to {
            old.hand_over(&mut w.tap_buf);
        }
        w.tap_to = current;
    }

    /// The fast path, else the general one.
    fn answer(
        &self,
        w: &mut Worker,
        snap: &Arc<Snapshot>,
        packet: &[u8],
        src: SocketAddr,
        proto: Transport,
        out: &mut Vec<u8>,
    ) -> bool {
        if let Some((q, n)) = wire::parse_query(packet, &mut w.key)
            && let Some(sent) = self.fast(w, snap, q, n, src, proto, out)
        {
            return sent;
        }
        self.general(
            &mut w.stats,
            w.tap_to.as_ref().map(|_| &mut w.tap),
            &mut w.sigs,
            snap,
            packet,
            src,
            proto,
            out,
        )
    }

    /// Ends a batch of queries, before its replies are sent: adds the worker's counts to
    /// the shared metrics, with the batch's time to reply from `arrival`, gives its
    /// replies' dnstap frames this time, and hands them over when they are due.
    pub fn flush(&self, w: &mut Worker, arrival: impl Into<Arrival>) {
        let made = w.sigs.take_made();
        if made > 0 {
            w.stats.signed(made);
        }
        let elapsed = match arrival.into() {
            Arrival::Wall(then) => {
                let now = Stamp::now();
                if let Some(tap) = &w.tap_to {
                    tap.stamp(&mut w.tap_buf, now);
                }
                // Zero when the clock was set back in between.
                now.nanos().saturating_sub(then.nanos())
            }
            Arrival::Monotonic(then) => {
                let elapsed = u64::try_from(then.elapsed().as_nanos()).unwrap_or(u64::MAX);
                if let Some(tap) = &w.tap_to {
                    tap.stamp(&mut w.tap_buf, Stamp::now());
                }
                elapsed
            }
        };
        self.metrics.flush(&mut w.stats, elapsed);
        if !w.sigs.is_empty() {
            // A worker that signs checks its cached replies' renewal against this clock.
            w.now = signed::unix_now();
        }
    }

    /// Hands over everything the worker holds back (its dnstap frames): called when it
    /// has no query to answer, and before it ends.
    pub fn idle(&self, w: &mut Worker) {
        if self.dnstap.generation() != w.tap_generation {
            self.follow_tap(w);
        }
        if let Some(tap) = &w.tap_to {
            tap.hand_over(&mut w.tap_buf);
        }
    }

    /// A convenience for tests, benches and fuzzing: `respond` with a fresh worker, the
    /// reply as a vector (None: nothing would be sent).
    pub fn respond_once(
        &self,
        packet: &[u8],
        src: SocketAddr,
        proto: Transport,
    ) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut w = Worker::default();
        let arrival = self.arrival(&mut w);
        let sent = self.respond(&mut w, packet, src, proto, &mut out);
        self.flush(&mut w, arrival);
        self.idle(&mut w);
        sent.then_some(out)
    }

    /// Response rate limiting of one UDP reply (`name` in lowercase wire form); counts
    /// slips and drops. TCP, and everything when RRL is off, is sent.
    fn rrl(
        &self,
        src: SocketAddr,
        name: Option<&[u8]>,
        qtype: RecordType,
        rcode: ResponseCode,
        proto: Transport,
    ) -> Verdict {
        let (Some(rrl), Transport::Udp) = (&self.rrl, proto) else {
            return Verdict::Send;
        };
        let verdict = rrl.check(src.ip(), name, qtype, rcode);
        if verdict != Verdict::Send {
            self.metrics.rrl(verdict == Verdict::Slip);
        }
        verdict
    }

    /// Counts one reply and writes its query-log line: the one place both paths account.
    /// Inlined: on the fast path the outcome is then never built as a value.
    #[inline(always)]
    fn account(
        &self,
        stats: &mut LocalStats,
        tap: Option<&mut Decision>,
        snap: &Snapshot,
        o: &Outcome<'_>,
        name: &dyn std::fmt::Display,
    ) {
        stats.query(o.transport, o.qtype, o.rcode);
        if o.first_cluster.is_some() || o.located_by.is_some() {
            stats.geo_answer(o.ecs, o.located_by, o.fail_open, o.first_cluster);
            stats.steered(o.steered.geo_order, o.steered.spilled, o.widened);
        }
        // A static answer without ECS decides nothing: no decision.
        if let Some(tap) = tap
            && (o.decided != Decision::NONE || o.ecs)
        {
            *tap = o.decided.with_reply(o.scope, o.ecs);
        }
        if self.query_log {
            let cluster = o
                .first_cluster
                .and_then(|id| snap.clusters.get(usize::from(id)))
                .map_or("-", |c| c.name.as_str());
            info!(
                target: "fedns::query",
                client = %o.src,
                proto = ?o.transport,
                name = %name,
                qtype = %o.qtype,
                rcode = %o.rcode,
                answers = o.answers,
                cluster,
                ecs = o.ecs,
                scope = o.scope,
                "query"
            );
        }
    }
}

/// What one reply was, for the counters and the query log.
struct Outcome<'a> {
    src: SocketAddr,
    transport: Transport,
    qtype: RecordType,
    rcode: ResponseCode,
    answers: usize,
    first_cluster: Option<ClusterId>,
    located_by: Option<&'a LocationSource>,
    fail_open: bool,
    /// An ECS option located the client.
    ecs: bool,
    scope: u8,
    steered: Steered,
    /// The ECS scope is wider than the network that placed the client.
    widened: bool,
    /// The answer's dnstap decision but for the reply's scope and ECS (`decided`).
    decided: Decision,
}

/// An answer's dnstap decision, but for the scope and ECS of its reply
/// (`Decision::with_reply`): what it was sent to and why.
fn decided(a: &Answer) -> Decision {
    Decision::from(Decided {
        cluster: a.first_cluster,
        policy: a.first_policy.map(|p| p as u8),
        scope: 0,
        ecs: false,
        located: a.located_by.as_ref().map(located_code),
        fail_open: a.fail_open,
    })
}

/// What placed a client, as one word (dnstap's `located=`), by `located_code`.
const LOCATED: [&str; 5] = ["override", "city", "country", "continent", "unknown"];

/// What placed a client, as its word's index in `LOCATED`.
fn located_code(l: &LocationSource) -> u8 {
    match l {
        LocationSource::Override(_) => 0,
        LocationSource::GeoIp(Precision::City) => 1,
        LocationSource::GeoIp(Precision::Country(_)) => 2,
        LocationSource::GeoIp(Precision::Continent(_)) => 3,
        LocationSource::Unknown => 4,
    }
}
