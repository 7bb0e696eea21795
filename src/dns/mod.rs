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
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, Query as HickoryQuery};
use hickory_proto::rr::{DNSClass, Name};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable};
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::ProtoError;
use hickory_server::proto::op::{Edns, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_server::proto::rr::{Record, RecordType};
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::Request;
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};
use ipnet::IpNet;
use tracing::{debug, info};

pub mod cache;
pub mod ecs;
pub mod rrl;
pub mod wire;

use self::cache::{AnswerCache, Cached, Keep, LocationMemo, Lookup};
use crate::answer::{self, Answer, Client, Question};

use self::rrl::{Limiter, Verdict};
use self::wire::{Ecs, MAX_NAME, QuestionKey, Template};
use crate::metrics::{LocalStats, Metrics, Transport};
use crate::snapshot::{LocationKey, Published, Snapshot};

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
}

impl Default for Worker {
    fn default() -> Self {
        Worker {
            cache: AnswerCache::default(),
            memo: LocationMemo::default(),
            stats: LocalStats::default(),
            key: [0; MAX_NAME + 2],
        }
    }
}

impl Worker {
    /// Reply templates in this worker's cache.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

impl Handler {
    pub fn new(published: Published, metrics: Arc<Metrics>, query_log: bool) -> Handler {
        Handler {
            published,
            metrics,
            rrl: None,
            query_log,
        }
    }

    /// Turns on response rate limiting.
    pub fn with_rrl(mut self, rrl: Option<Arc<Limiter>>) -> Handler {
        self.rrl = rrl;
        self
    }

    /// Answers one DNS message received over `proto` from `src`: the reply goes in `out`
    /// and the result says whether to send it (false: drop the packet, e.g. a response or
    /// an RRL drop). Never panics and never waits on anything. Counts go to the worker;
    /// `flush` hands them to the shared metrics.
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
        }
        if let Some((q, n)) = wire::parse_query(packet, &mut w.key)
            && let Some(sent) = self.fast(w, &snap, q, n, src, proto, out)
        {
            return sent;
        }
        self.general(&mut w.stats, packet, src, proto, out)
    }

    /// Adds the worker's counts to the shared metrics; `elapsed` is how long the queries
    /// since the last flush took, from their arrival to their replies being sent.
    pub fn flush(&self, w: &mut Worker, elapsed: Duration) {
        self.metrics.flush(&mut w.stats, elapsed);
    }

    /// A convenience for tests, benches and fuzzing: `respond` with a fresh worker, the
    /// reply as a vector (None: nothing would be sent).
    pub fn respond_once(
        &self,
        packet: &[u8],
        src: SocketAddr,
        proto: Transport,
    ) -> Option<Vec<u8>> {
        let start = Instant::now();
        let mut out = Vec::new();
        let mut w = Worker::default();
        let sent = self.respond(&mut w, packet, src, proto, &mut out);
        self.flush(&mut w, start.elapsed());
        sent.then_some(out)
    }

    /// The fast path, for a query `wire` accepted: the cached template, or the answer
    /// function and a new template on a miss. None: leave it to the general path (the
    /// answer cannot be templated).
    #[allow(clippy::too_many_arguments)]
    fn fast(
        &self,
        w: &mut Worker,
        snap: &Arc<Snapshot>,
        mut q: wire::Query<'_>,
        n: usize,
        src: SocketAddr,
        proto: Transport,
        out: &mut Vec<u8>,
    ) -> Option<bool> {
        if let Some(e) = q.edns.as_mut() {
            if !snap.use_ecs {
                // ECS off: neither used nor echoed, and not even checked.
                e.ecs = Ecs::None;
            } else if let Ecs::Malformed = e.ecs {
                let payload = e.payload.clamp(512, MAX_UDP_PAYLOAD);
                wire::error_reply(&q, ResponseCode::FormErr.low(), payload, out);
                let qtype = RecordType::from(q.qtype);
                match self.rrl(src, Some(&w.key[..n]), qtype, ResponseCode::FormErr, proto) {
                    Verdict::Send => {}
                    // No records to strip: the slip is the same reply with TC.
                    Verdict::Slip => out[2] |= 0x02,
                    Verdict::Drop => return Some(false),
                }
                w.stats
                    .query(proto, RecordType::from(q.qtype), ResponseCode::FormErr);
                return Some(true);
            }
        }
        let ecs = q.edns.and_then(|e| e.ecs.valid());
        // A /0 source prefix asks not to be located by subnet (RFC 7871 section 7.1.2).
        let ecs_net = ecs
            .filter(|e| e.source_prefix > 0)
            .and_then(|e| IpNet::new(e.addr, e.source_prefix).ok());
        let locating = ecs_net.map_or(src.ip(), |n| n.addr());
        let key = &w.key[..n + 2];
        let name = &w.key[..n];
        let mut location = None;
        // `never`: known to vary, so answered afresh each time and not remembered.
        let mut never = false;
        let hit = match w.cache.get(key) {
            Lookup::Hit(c) => Some((c, 0)),
            Lookup::ByLocation(m) => {
                let l = w.memo.locate(&snap.locator, locating);
                location = Some(l);
                m.get(&l.0).map(|c| {
                    // The ECS scope: the deciding network's prefix, within the source's.
                    let scope = match (c.client_dependent, ecs_net) {
                        (true, Some(net)) => l.1.min(net.prefix_len()),
                        _ => 0,
                    };
                    (c, scope)
                })
            }
            Lookup::Miss => None,
            Lookup::Uncacheable => {
                never = true;
                None
            }
        };
        if let Some((c, scope)) = hit {
            return Some(self.emit(&mut w.stats, c, &q, name, scope, src, proto, out));
        }
        let (cached, scope, store) = template_for(snap, name, q.qtype, src, ecs_net)?;
        let sent = self.emit(&mut w.stats, &cached, &q, name, scope, src, proto, out);
        if !never {
            let store = match store {
                Keep::ByLocation(_) => {
                    let l = location.unwrap_or_else(|| w.memo.locate(&snap.locator, locating));
                    Keep::ByLocation(l.0)
                }
                s => s,
            };
            w.cache.insert(key, store, cached);
        }
        Some(sent)
    }

    /// Writes the reply to `q` from `c` (truncated when it does not fit the client's UDP
    /// buffer; subject to RRL), then counts and logs it. False: drop it.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        stats: &mut LocalStats,
        c: &Cached,
        q: &wire::Query<'_>,
        lower: &[u8],
        scope: u8,
        src: SocketAddr,
        proto: Transport,
        out: &mut Vec<u8>,
    ) -> bool {
        let limit = match proto {
            Transport::Udp => wire::udp_limit(q.edns.as_ref(), MAX_UDP_PAYLOAD),
            Transport::Tcp => usize::from(u16::MAX),
        };
        let payload = q
            .edns
            .map_or(512, |e| e.payload.clamp(512, MAX_UDP_PAYLOAD));
        if !c.template.reply(q, payload, scope, false, limit, out) {
            // Too big for the client's buffer: header, question and OPT with TC, so that
            // it retries over TCP (RFC 7766 section 5). These always fit in 512 bytes.
            c.template
                .reply(q, payload, scope, true, usize::from(u16::MAX), out);
        }
        let qtype = RecordType::from(q.qtype);
        match self.rrl(src, Some(lower), qtype, c.rcode, proto) {
            Verdict::Send => {}
            Verdict::Slip => {
                c.template
                    .reply(q, payload, scope, true, usize::from(u16::MAX), out);
            }
            Verdict::Drop => return false,
        }
        stats.query(proto, qtype, c.rcode);
        let ecs = q
            .edns
            .and_then(|e| e.ecs.valid())
            .is_some_and(|e| e.source_prefix > 0);
        if c.first_cluster.is_some() || c.located_by.is_some() {
            stats.geo_answer(ecs, c.located_by.as_ref(), c.fail_open, c.first_cluster);
        }
        if self.query_log {
            let snap = self.published.load();
            let cluster = c
                .first_cluster
                .and_then(|id| snap.clusters.get(id as usize))
                .map(|c| c.name.as_str());
            info!(
                target: "fedns::query",
                client = %src,
                proto = ?proto,
                name = %wire::NameText(q.qname),
                qtype = %qtype,
                rcode = %c.rcode,
                answers = c.answers,
                cluster = cluster.unwrap_or("-"),
                ecs,
                scope,
                "query"
            );
        }
        true
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

    /// The general path, for everything the fast path leaves: hickory parses the message
    /// and encodes the reply (errors, odd flags and classes).
    fn general(
        &self,
        stats: &mut LocalStats,
        packet: &[u8],
        src: SocketAddr,
        proto: Transport,
        out: &mut Vec<u8>,
    ) -> bool {
        let protocol = match proto {
            Transport::Udp => Protocol::Udp,
            Transport::Tcp => Protocol::Tcp,
        };
        let request = match Request::from_bytes(packet.to_vec(), src, protocol) {
            Ok(r) => r,
            Err(e) => {
                // The header is there but the rest does not parse: FORMERR with the header
                // alone (RFC 1035 section 4.1.1).
                debug!(%src, error = %e, "unparseable query");
                bare_header(packet, out);
                stats.query(proto, RecordType::Unknown(0), ResponseCode::FormErr);
                return true;
            }
        };
        let mut reply = self.reply(&request);
        if self.rrl.is_some() && proto == Transport::Udp {
            let name = request
                .queries
                .queries()
                .first()
                .map(|q| q.name().to_bytes().unwrap_or_default());
            match self.rrl(src, name.as_deref(), reply.qtype, reply.answer.rcode, proto) {
                Verdict::Send => {}
                Verdict::Slip => reply.truncate(),
                Verdict::Drop => return false,
            }
        }
        let limit = match (proto, &reply.edns) {
            (Transport::Udp, Some(e)) => usize::from(e.max_payload()),
            (Transport::Udp, None) => 512,
            (Transport::Tcp, _) => usize::from(u16::MAX),
        };
        let mut encoded = reply.encode(&request, out);
        if encoded.is_ok() && out.len() > limit {
            // Too big for the client's buffer: no records, TC set (RFC 1035 section
            // 4.2.1), so that it retries over TCP.
            reply.truncate();
            encoded = reply.encode(&request, out);
        }
        if let Err(e) = encoded {
            // What cannot be encoded is a server failure, said in a bare header.
            debug!(%src, error = %e, "failed to encode a reply");
            bare_header(packet, out);
            out[3] = (out[3] & 0xF0) | ResponseCode::ServFail.low();
        }
        let a = &reply.answer;
        stats.query(proto, reply.qtype, a.rcode);
        if a.first_cluster.is_some() || a.located_by.is_some() {
            stats.geo_answer(
                reply.ecs,
                a.located_by.as_ref(),
                a.fail_open,
                a.first_cluster,
            );
        }
        if self.query_log {
            info!(
                target: "fedns::query",
                client = %src,
                proto = ?proto,
                name = reply.qname.as_deref().unwrap_or("-"),
                qtype = %reply.qtype,
                rcode = %a.rcode,
                answers = a.answers.len(),
                cluster = reply.cluster.as_deref().unwrap_or("-"),
                ecs = reply.ecs,
                scope = a.scope,
                "query"
            );
        }
        true
    }
}

/// A bare reply header for `packet`: its ID, opcode, RD and CD, and RCODE FORMERR (the
/// caller sets another RCODE where FORMERR is not the reason).
fn bare_header(packet: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&packet[..2]);
    out.push(0x80 | (packet[2] & 0x79));
    out.push((packet[3] & 0x10) | ResponseCode::FormErr.low());
    out.extend_from_slice(&[0; 8]);
}

/// The answer to a question the fast path read, as a template for its cache, the ECS
/// scope of this answer, and where the cache may keep it. None when the answer needs
/// what a template cannot carry (an extended RCODE).
fn template_for(
    snap: &Snapshot,
    lower: &[u8],
    qtype: u16,
    src: SocketAddr,
    ecs: Option<IpNet>,
) -> Option<(Cached, u8, Keep)> {
    let name = Name::read(&mut BinDecoder::new(lower)).ok()?;
    let rtype = RecordType::from(qtype);
    let question = Question {
        name: &name,
        qtype: rtype,
        qclass: DNSClass::IN,
    };
    let client = Client {
        source: src.ip(),
        ecs,
    };
    let a = answer::answer(snap, &question, &client, false);
    if a.rcode.high() != 0 {
        return None;
    }
    let mut m = Message::new(0, MessageType::Response, OpCode::Query);
    m.metadata.authoritative = a.authoritative;
    m.metadata.response_code = a.rcode;
    m.add_query(HickoryQuery::query(name, rtype));
    m.answers = a.answers;
    m.authorities = a.authority;
    m.additionals = a.additionals;
    let bytes = m.to_vec().ok()?;
    let template = Template::new(bytes, lower)?;
    let store = if a.varies {
        Keep::Uncacheable
    } else if a.located_by.is_some() {
        // The key is filled in by the caller, who knows the client.
        Keep::ByLocation(LocationKey::Unknown)
    } else {
        Keep::ForAll
    };
    let cached = Cached {
        template,
        rcode: a.rcode,
        client_dependent: a.client_dependent,
        first_cluster: a.first_cluster,
        located_by: a.located_by,
        fail_open: a.fail_open,
        answers: m.answers.len() as u16,
    };
    Some((cached, a.scope, store))
}

/// A reply ready to encode, and what metrics and the query log need of the request.
struct Reply {
    answer: Answer,
    edns: Option<Edns>,
    qtype: RecordType,
    /// The question name and the first cluster chosen, only when the query log is on
    /// (taken from the same snapshot as the answer).
    qname: Option<String>,
    cluster: Option<String>,
    /// An ECS option located the client.
    ecs: bool,
    /// Sent as TC with no records (rate limited, or too big for UDP: the client should
    /// retry over TCP).
    truncated: bool,
    /// The question as the reply carries it: the query's one question re-encoded (hickory
    /// would echo the raw bytes, compression pointers into the query and all), or none
    /// when the query had not exactly one (RFC 9619 section 4).
    question: Option<Queries>,
}

/// The question section of a reply that has none.
static NO_QUESTION: LazyLock<Queries> = LazyLock::new(|| {
    Queries::read(&mut BinDecoder::new(&[]), 0).expect("zero questions read from nothing")
});

impl Reply {
    /// Turns this reply into an empty, truncated one (an RRL slip, or too big for UDP).
    fn truncate(&mut self) {
        self.answer.answers.clear();
        self.answer.authority.clear();
        self.answer.additionals.clear();
        self.truncated = true;
    }

    /// The hickory response for this reply, ready to encode.
    fn response<'a>(
        &'a self,
        request: &Request,
    ) -> MessageResponse<
        'a,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    > {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = self.answer.rcode;
        metadata.authoritative = self.answer.authoritative;
        metadata.truncation = self.truncated;
        let queries = self.question.as_ref().unwrap_or(&NO_QUESTION);
        MessageResponseBuilder::new(queries, self.edns.as_ref()).build(
            metadata,
            self.answer.answers.iter(),
            self.answer.authority.iter(),
            std::iter::empty(),
            self.answer.additionals.iter(),
        )
    }
}

impl Reply {
    /// Encodes the reply to `request` into `out`, whole (the caller truncates: hickory's
    /// own truncation can leave part of a record behind and drop the OPT).
    fn encode(&self, request: &Request, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        out.clear();
        let response = self.response(request);
        let mut encoder = BinEncoder::new(out);
        response.destructive_emit(&mut encoder)?;
        Ok(())
    }
}

/// The one question of `request`, encoded afresh (uncompressed, its case kept).
fn clean_question(request: &Request) -> Option<Queries> {
    let [q] = request.queries.queries() else {
        return None;
    };
    let mut bytes = Vec::new();
    q.original().emit(&mut BinEncoder::new(&mut bytes)).ok()?;
    Queries::read(&mut BinDecoder::new(&bytes), 1).ok()
}

impl Handler {
    fn reply(&self, request: &Request) -> Reply {
        let mut reply = self.decide(request);
        reply.question = clean_question(request);
        reply
    }

    fn decide(&self, request: &Request) -> Reply {
        let qtype = request
            .queries
            .queries()
            .first()
            .map_or(RecordType::Unknown(0), |q| q.query_type());
        let error = |rcode: ResponseCode, edns: Option<Edns>| Reply {
            answer: Answer {
                rcode,
                ..Answer::default()
            },
            edns,
            qtype,
            qname: None,
            cluster: None,
            ecs: false,
            truncated: false,
            question: None,
        };
        // OPT in the reply whenever the query had one (RFC 6891 section 7), with DO copied
        // (RFC 3225 section 3).
        let mut edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            e.set_version(0);
            e.set_dnssec_ok(req.flags().dnssec_ok);
            e
        });
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return error(ResponseCode::BADVERS, edns);
        }
        if request.metadata.op_code != OpCode::Query {
            return error(ResponseCode::NotImp, edns);
        }
        let info = match request.request_info() {
            Ok(info) => info,
            // QDCOUNT is not 1.
            Err(_) => return error(ResponseCode::FormErr, edns),
        };
        let snap = self.published.load_full();
        let use_ecs = snap.use_ecs;
        // With ECS off, the option is ignored, malformed or not (RFC 7871 section 7.2.1).
        let ecs = match ecs::extract(request.as_slice()) {
            Ok(ecs) => ecs.filter(|_| use_ecs),
            Err(_) if !use_ecs => None,
            Err(e) => {
                debug!(src = %request.src(), error = %e, "malformed ECS");
                return error(ResponseCode::FormErr, edns);
            }
        };
        let query = info.query;
        if matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR) {
            // Zone transfers of geo answers make no sense (SPEC section 8).
            return error(ResponseCode::Refused, edns);
        }
        let client = Client {
            source: request.src().ip(),
            ecs: ecs.filter(|e| e.net.prefix_len() > 0).map(|e| e.net),
        };
        let question = Question {
            name: query.original().name(),
            qtype: query.query_type(),
            qclass: query.query_class(),
        };
        let answer = answer::answer(&snap, &question, &client, false);
        // Echo ECS with the scope the answer depends on (RFC 7871 section 7.2.1).
        if let (Some(e), Some(ecs)) = (edns.as_mut(), ecs) {
            let scope = if ecs.net.prefix_len() == 0 {
                0
            } else {
                answer.scope.min(ecs.net.prefix_len())
            };
            e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
                ecs.net.addr(),
                ecs.net.prefix_len(),
                scope,
            )));
        }
        let cluster = answer
            .first_cluster
            .filter(|_| self.query_log)
            .and_then(|c| snap.clusters.get(c as usize))
            .map(|c| c.name.clone());
        Reply {
            answer,
            edns,
            qtype,
            qname: self.query_log.then(|| question.name.to_string()),
            cluster,
            ecs: client.ecs.is_some(),
            truncated: false,
            question: None,
        }
    }
}
