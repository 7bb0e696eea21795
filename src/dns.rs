//! The DNS side: hickory-server's `RequestHandler` seam. It loads the published snapshot
//! once per query, checks what the protocol requires of the request, calls the pure answer
//! function and encodes the reply (EDNS, ECS echo, truncation by hickory's encoder).
//!
//! Architecture invariant: hickory types stay in this module and `answer`; nothing here
//! knows of Kubernetes, the store or how snapshots are built.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::ProtoError;
use hickory_server::proto::op::{Edns, Header, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_server::proto::rr::{Record, RecordType};
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder};
use tokio::net::{TcpListener, UdpSocket};
use tracing::{debug, info, warn};

use crate::metrics::{Metrics, Proto};
use crate::rrl::{Limiter, Verdict};

use crate::answer::{self, Answer, Client, Question};
use crate::ecs;
use crate::snapshot::Published;

/// The largest UDP reply we send, whatever the client offers: 1232 bytes avoids IP
/// fragmentation on every common path (DNS Flag Day 2020).
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// How long an idle TCP connection is kept (RFC 7766 recommends seconds, not minutes).
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The request handler: the published snapshot, and metrics.
#[derive(Clone)]
pub struct Handler {
    published: Published,
    metrics: Arc<Metrics>,
    /// Response rate limiting of UDP replies; None when off.
    rrl: Option<Arc<Limiter>>,
    /// Log every query at info (target `fedns::query`); off by default.
    query_log: bool,
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
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let start = Instant::now();
        let mut reply = self.reply(request);
        if let (Some(rrl), Protocol::Udp) = (&self.rrl, request.protocol()) {
            let name = request.queries.queries().first().map(|q| q.name());
            match rrl.check(request.src().ip(), name, reply.qtype, reply.answer.rcode) {
                Verdict::Send => {}
                Verdict::Slip => {
                    self.metrics.rrl(true);
                    reply.slip();
                }
                Verdict::Drop => {
                    self.metrics.rrl(false);
                    let mut m = Metadata::response_from_request(&request.metadata);
                    m.response_code = reply.answer.rcode;
                    return ResponseInfo::from(Header {
                        metadata: m,
                        counts: Default::default(),
                    });
                }
            }
        }
        let response = reply.response(request);
        let sent = response_handle.send_response(response).await;
        let proto = match request.protocol() {
            Protocol::Udp => Proto::Udp,
            _ => Proto::Tcp,
        };
        let a = &reply.answer;
        self.metrics
            .query(proto, reply.qtype, a.rcode, start.elapsed());
        if a.first_cluster.is_some() || a.located_by.is_some() {
            self.metrics.geo_answer(
                reply.ecs,
                a.located_by.as_ref(),
                a.fail_open,
                a.first_cluster,
            );
        }
        if self.query_log {
            info!(
                target: "fedns::query",
                client = %request.src(),
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
        match sent {
            Ok(info) => info,
            Err(e) => {
                debug!(error = %e, "failed to send reply");
                let mut m = Metadata::response_from_request(&request.metadata);
                m.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata: m,
                    counts: Default::default(),
                })
            }
        }
    }
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
    /// Sent as TC with no records (rate limited: the client should retry over TCP).
    truncated: bool,
}

impl Reply {
    /// Turns this reply into an empty, truncated one (an RRL slip).
    fn slip(&mut self) {
        self.answer.answers.clear();
        self.answer.authority.clear();
        self.answer.additionals.clear();
        self.truncated = true;
    }

    /// The hickory response for this reply, ready to encode.
    fn response<'a>(
        &'a self,
        request: &'a Request,
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
        MessageResponseBuilder::new(&request.queries, self.edns.as_ref()).build(
            metadata,
            self.answer.answers.iter(),
            self.answer.authority.iter(),
            std::iter::empty(),
            self.answer.additionals.iter(),
        )
    }
}

impl Handler {
    /// The whole query path without a socket: the reply to a parsed request, encoded as the
    /// server would send it over `protocol` (UDP replies are truncated to the client's
    /// buffer). Benches and socket-free tests aim here.
    pub fn reply_bytes(&self, request: &Request) -> Result<Vec<u8>, ProtoError> {
        let reply = self.reply(request);
        let response = reply.response(request);
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(match (request.protocol(), &reply.edns) {
            (Protocol::Udp, Some(e)) => e.max_payload(),
            (Protocol::Udp, None) => 512,
            _ => u16::MAX,
        });
        response.destructive_emit(&mut encoder)?;
        Ok(bytes)
    }

    fn reply(&self, request: &Request) -> Reply {
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
        };
        // OPT in the reply whenever the query had one (RFC 6891 section 7).
        let mut edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            e.set_version(0);
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
        let ecs = match ecs::extract(request.as_slice()) {
            Ok(ecs) => ecs,
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
        let snap = self.published.load_full();
        let use_ecs = snap.use_ecs;
        let client = Client {
            source: request.src().ip(),
            ecs: ecs
                .filter(|e| use_ecs && e.net.prefix_len() > 0)
                .map(|e| e.net),
        };
        let question = Question {
            name: query.original().name(),
            qtype: query.query_type(),
            qclass: query.query_class(),
        };
        let answer = answer::answer(&snap, &question, &client, false);
        // Echo ECS with the scope the answer depends on (RFC 7871 section 7.2.1).
        if let (Some(e), Some(ecs)) = (edns.as_mut(), ecs.filter(|_| use_ecs)) {
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
        }
    }
}

/// The DNS listeners of a running server.
pub struct DnsServer {
    server: Server<Handler>,
    /// Where it listens (the real ports when the config asked for port 0).
    pub addrs: Vec<SocketAddr>,
}

impl DnsServer {
    /// Binds UDP and TCP on every address and starts serving.
    pub async fn bind(addrs: &[SocketAddr], handler: Handler) -> std::io::Result<DnsServer> {
        let mut server = Server::new(handler);
        let mut bound = Vec::new();
        for addr in addrs {
            let (udp, tcp) = bind_pair(*addr).await?;
            let local = udp.local_addr()?;
            server.register_socket(udp);
            server.register_listener(tcp, TCP_IDLE_TIMEOUT, 65_535);
            bound.push(local);
        }
        Ok(DnsServer {
            server,
            addrs: bound,
        })
    }

    /// Stops accepting and waits for in-flight work.
    pub async fn shutdown(mut self) {
        if let Err(e) = self.server.shutdown_gracefully().await {
            warn!(error = %e, "DNS server shut down with an error");
        }
    }
}

/// UDP and TCP on the same address; with port 0, the same ephemeral port for both.
async fn bind_pair(addr: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    if addr.port() != 0 {
        return Ok((bind_udp(addr)?, bind_tcp(addr)?));
    }
    let mut last = None;
    for _ in 0..16 {
        let udp = bind_udp(addr)?;
        match bind_tcp(udp.local_addr()?) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port")))
}

/// A socket for `addr`; an IPv6 one is IPv6-only, so that `0.0.0.0:53` and `[::]:53` can
/// both be listed (Linux would otherwise let `[::]` take IPv4 too and the second bind fail).
fn socket(addr: SocketAddr, ty: socket2::Type) -> std::io::Result<socket2::Socket> {
    let s = socket2::Socket::new(socket2::Domain::for_address(addr), ty, None)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = socket(addr, socket2::Type::DGRAM)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = socket(addr, socket2::Type::STREAM)?;
    // Restart without waiting for TIME_WAIT connections of the previous process to expire.
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}
