//! The general path, for everything the fast path leaves (other opcodes, classes and EDNS
//! versions, QDCOUNT other than 1, undecodable packets, answers a template cannot carry):
//! hickory parses the message, the same answer function decides, hickory encodes.

use std::net::SocketAddr;
use std::sync::LazyLock;

use hickory_proto::serialize::binary::{BinDecoder, BinEncodable};
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::ProtoError;
use hickory_server::proto::op::{Edns, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_server::proto::rr::{Record, RecordType};
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::Request;
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};
use tracing::debug;

use super::rrl::Verdict;
use super::{Handler, MAX_UDP_PAYLOAD, Outcome, ecs, signed};
use crate::answer::{self, Answer, Client, Question};
use crate::dnssec::SigCache;
use crate::dnstap::Decision;
use crate::metrics::{LocalStats, Transport};
use crate::snapshot::Snapshot;

/// Compact Answers OK among the EDNS flags below DO (RFC 9824 section 4).
const EDNS_CO: u16 = 0x4000;

impl Handler {
    /// The general path, for everything the fast path leaves: hickory parses the message
    /// and encodes the reply (errors, odd flags and classes).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn general(
        &self,
        stats: &mut LocalStats,
        tap: Option<&mut Decision>,
        sigs: &mut SigCache,
        snap: &Snapshot,
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
        let mut reply = self.reply(snap, &request);
        if let Some(e) = &request.edns
            && e.flags().dnssec_ok
            && snap.dnssec.is_some()
        {
            let compact_ok = e.flags().z & EDNS_CO != 0;
            signed::sign(
                snap,
                &mut reply.answer,
                compact_ok,
                signed::unix_now(),
                sigs,
            );
            if let (true, Some(e)) = (compact_ok, reply.edns.as_mut()) {
                e.flags_mut().z |= EDNS_CO;
            }
        }
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
        let outcome = Outcome {
            src,
            transport: proto,
            qtype: reply.qtype,
            rcode: a.rcode,
            // The records answered, not the signatures over them.
            answers: a
                .answers
                .iter()
                .filter(|r| r.record_type() != RecordType::RRSIG)
                .count(),
            first_cluster: a.first_cluster,
            located_by: a.located_by.as_ref(),
            fail_open: a.fail_open,
            ecs: reply.ecs,
            scope: a.scope,
            steered: a.steered,
            decided: super::decided(a),
            widened: a.widened,
        };
        let name = request
            .queries
            .queries()
            .first()
            .map(|q| q.original().name());
        let name: &dyn std::fmt::Display = match &name {
            Some(n) => n,
            None => &"-",
        };
        self.account(stats, tap, snap, &outcome, name);
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

/// A reply ready to encode, and what metrics and the query log need of the request.
struct Reply {
    answer: Answer,
    edns: Option<Edns>,
    qtype: RecordType,
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
    fn reply(&self, snap: &Snapshot, request: &Request) -> Reply {
        let mut reply = self.decide(snap, request);
        reply.question = clean_question(request);
        reply
    }

    fn decide(&self, snap: &Snapshot, request: &Request) -> Reply {
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
        let answer = answer::answer(snap, &question, &client, false);
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
        Reply {
            answer,
            edns,
            qtype,
            ecs: client.ecs.is_some(),
            truncated: false,
            question: None,
        }
    }
}
