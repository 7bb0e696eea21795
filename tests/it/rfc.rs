//! RFC conformance: one test per rule an authoritative server must keep, each named after
//! the RFC section it checks. Queries are built byte by byte and replies are read byte by
//! byte (hickory only decodes record contents where two replies are compared), so these
//! tests hold the query path to its wire behaviour, not to hickory's types.
//!
//! Most rules are about the bytes of one reply to one message: those tests hand each query
//! to fedns's query path in process (`Handler::respond_once`, over UDP or TCP rules, from
//! 127.0.0.1), exactly as the listeners do, with no socket and no wait for a reply that does
//! not come. The rules about the sockets themselves run against a server on real sockets:
//! TCP framing, pipelining and idle connections (RFC 7766), truncation then the retry over
//! TCP (RFC 1035 §4.2.1), and a response followed by a query on one connection.
//!
//! Rules, by RFC (test names say the section):
//!
//! - RFC 1035 §4.1.1 header: ID copied and QR set; RD copied and RA clear (also RFC 8906
//!   §3.1.3.1); AA on authoritative answers and on negative answers; REFUSED, not AA, for names
//!   outside the zone; OPCODE copied (see the RFC 8906 opcode tests).
//! - RFC 1035 §4.1.2 / §7.3: the question section is echoed byte for byte. RFC 4343 §4.1: its
//!   case is preserved, in the question and in the answer's owner names.
//! - RFC 1035 §3.2.4: classes other than IN (CH, HS) are REFUSED.
//! - RFC 1035 §4.1.1: a response (QR=1) is never answered, well-formed or not.
//! - RFC 1035 §4.2.1, RFC 7766 §5: over UDP without EDNS a reply is at most 512 bytes, TC set
//!   when the answer does not fit; the same query over TCP gets the whole answer. RFC 1035
//!   §4.1: a truncated reply ends with its last whole record (fedns sends TC replies with no
//!   records at all).
//! - RFC 1034 §4.3.2: a name at or below a zone cut gets a referral (NS in authority, glue,
//!   AA clear).
//! - RFC 2308 §2.1, §2.2, §3: NXDOMAIN and NODATA carry the zone's SOA in the authority
//!   section, with TTL min(SOA TTL, SOA MINIMUM) (checked both ways round).
//! - RFC 8020 §2: empty non-terminals (of the federation and of the zone file) are NODATA.
//! - RFC 6604 §3: in a CNAME chain, the RCODE is the last name's (a CNAME to a missing name
//!   is NXDOMAIN, with the CNAME in the answer).
//! - RFC 9619 §4: QDCOUNT 2 is FORMERR, and a reply never holds more than one question.
//!   RFC 7873 §5.4: QDCOUNT 0 without a COOKIE is FORMERR.
//! - RFC 6891: OPT in a reply exactly when the query had one (§6.1.1, §7); two OPTs are
//!   FORMERR (§6.1.1); an OPT owner other than the root is FORMERR (§6.1.2); unknown
//!   options ignored and not echoed (§6.1.2); BADVERS as extended RCODE 16 with version 0 for
//!   EDNS versions above 0 (§6.1.3); unknown EDNS flag bits ignored and cleared (§6.1.4); a
//!   UDP reply never exceeds the advertised payload (§6.2.3), below 512 counts as 512
//!   (§6.2.5), the payload limits UDP only (§6.2.3); a truncated reply keeps its OPT (§7); a
//!   FORMERR for a malformed option is a minimal response, with question and OPT (§7).
//! - RFC 3225 §3: the DO bit is copied into the reply.
//! - RFC 7766: pipelined queries on one connection are all answered (§6.2.1.1); 2-byte length
//!   framing whatever the segmentation (§8); a connection stays open after a reply (§6.2.3)
//!   and an idle one is closed by the server (§6.2.3; the default `listen.tcp_idle_timeout`,
//!   10 s; tests/it/server.rs checks shorter ones and the slow-client and connection limits).
//! - RFC 7871: a malformed ECS is FORMERR: SCOPE set in a query (§6), source prefix longer
//!   than the address (§6), address bits beyond the source prefix (§6), address octets not
//!   matching the source prefix (§6), unknown FAMILY (§7.2.1); FAMILY, SOURCE PREFIX-LENGTH and
//!   ADDRESS echoed with a SCOPE (§7.2.1); an ECS in every reply to an ECS query, none
//!   otherwise (§7.2.1) and none when ECS is disabled (§7.2.1); SCOPE 0 when the answer does
//!   not depend on the client (§7.2.1) and for referrals (§7.4); SOURCE PREFIX-LENGTH 0 gets
//!   SCOPE 0 and an answer for the packet's source address (§7.1.2).
//! - RFC 8482 §4.1: ANY gets one RRset, over UDP and over TCP (fedns's choice for TCP; §4.4
//!   would allow more there).
//! - RFC 8906 (§3.1.x, tests of §8.1.x and §8.2.x): unknown and obsolete QTYPEs get NODATA or
//!   NXDOMAIN; the reserved header bit Z is ignored and cleared; AD/CD queries are answered,
//!   AD clear; unknown opcodes (with and without a question) and NOTIFY, UPDATE and STATUS
//!   are NOTIMP with the opcode echoed.
//! - RFC 5936 §2.2.1, RFC 1995: AXFR and IXFR are REFUSED (SPEC §8: no zone transfers).
//! - RFC 4892: CHAOS identity queries (version.bind, hostname.bind, id.server,
//!   version.server) disclose nothing: REFUSED, no records.
//!
//! Covered elsewhere, not repeated here: the ECS scope of each geo answer and the table of
//! names (tests/it/dns.rs); malformed packets never killing the server, the payload fedns
//! advertises (1232 at most) and RRL (tests/it/protocol.rs).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use fedns::app::LoadedConfig;
use fedns::dns::Handler;
use fedns_testkit::dns::{Transport, framed, read_frame};
use fedns_testkit::handler::handler_for;
use fedns_testkit::server::{CONFIG, TestServer, load};
use hickory_proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use Transport::{Tcp, Udp};

const APEX: &str = "fed.example.com";
const APP: &str = "app.default.myfed.svc.fed.example.com";
const BIG: &str = "big.default.myfed.svc.fed.example.com";
const STATUS: &str = "status.fed.example.com";
const NS1: &str = "ns1.fed.example.com";
const NOTHING: &str = "nothing.fed.example.com";

/// How long fedns keeps an idle TCP connection by default (`listen.tcp_idle_timeout` in
/// src/config.rs).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

// RR types and classes, as on the wire.
const A: u16 = 1;
const NS: u16 = 2;
const MD: u16 = 3;
const MF: u16 = 4;
const CNAME: u16 = 5;
const SOA: u16 = 6;
const MX: u16 = 15;
const TXT: u16 = 16;
const AAAA: u16 = 28;
const A6: u16 = 38;
const OPT: u16 = 41;
const SPF: u16 = 99;
const IXFR: u16 = 251;
const AXFR: u16 = 252;
const ANY: u16 = 255;
const IN: u16 = 1;
const CH: u16 = 3;
const HS: u16 = 4;

// Header flag bits.
const QR: u16 = 0x8000;
const AA: u16 = 0x0400;
const TC: u16 = 0x0200;
const RD: u16 = 0x0100;
const RA: u16 = 0x0080;
const Z: u16 = 0x0040;
const AD: u16 = 0x0020;
const CD: u16 = 0x0010;

// RCODEs.
const NOERROR: u8 = 0;
const FORMERR: u8 = 1;
const NXDOMAIN: u8 = 3;
const NOTIMP: u8 = 4;
const REFUSED: u8 = 5;

/// EDNS flag DO (RFC 3225) and option code ECS (RFC 7871).
const DO: u16 = 0x8000;
const OPTION_ECS: u16 = 8;

// ---------------------------------------------------------------------------------------------
// Building queries.

/// The OPCODE field of the header's flags word.
fn opcode(op: u8) -> u16 {
    u16::from(op & 0x0f) << 11
}

/// A domain name in wire form, uncompressed, case as given.
fn name(n: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for label in n.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        v.push(label.len() as u8);
        v.extend_from_slice(label.as_bytes());
    }
    v.push(0);
    v
}

fn question(n: &str, qtype: u16, qclass: u16) -> Vec<u8> {
    let mut v = name(n);
    v.extend_from_slice(&qtype.to_be_bytes());
    v.extend_from_slice(&qclass.to_be_bytes());
    v
}

/// An OPT record with the given owner (RFC 6891 §6.1.2); extended RCODE 0.
fn opt_rr_owned(owner: &[u8], payload: u16, version: u8, flags: u16, options: &[u8]) -> Vec<u8> {
    let mut v = owner.to_vec();
    v.extend_from_slice(&OPT.to_be_bytes());
    v.extend_from_slice(&payload.to_be_bytes());
    v.push(0);
    v.push(version);
    v.extend_from_slice(&flags.to_be_bytes());
    v.extend_from_slice(&(options.len() as u16).to_be_bytes());
    v.extend_from_slice(options);
    v
}

fn opt_rr(payload: u16, version: u8, flags: u16, options: &[u8]) -> Vec<u8> {
    opt_rr_owned(&[0], payload, version, flags, options)
}

/// One EDNS option: code, length, value.
fn option(code: u16, value: &[u8]) -> Vec<u8> {
    let mut v = code.to_be_bytes().to_vec();
    v.extend_from_slice(&(value.len() as u16).to_be_bytes());
    v.extend_from_slice(value);
    v
}

fn ecs_option(value: &[u8]) -> Vec<u8> {
    option(OPTION_ECS, value)
}

/// A message from a header and whole records; the counts follow the slices.
fn message(
    id: u16,
    flags: u16,
    qd: &[Vec<u8>],
    an: &[Vec<u8>],
    ns: &[Vec<u8>],
    ar: &[Vec<u8>],
) -> Vec<u8> {
    let mut v = Vec::new();
    for word in [
        id,
        flags,
        qd.len() as u16,
        an.len() as u16,
        ns.len() as u16,
        ar.len() as u16,
    ] {
        v.extend_from_slice(&word.to_be_bytes());
    }
    for part in qd.iter().chain(an).chain(ns).chain(ar) {
        v.extend_from_slice(part);
    }
    v
}

/// A plain query: ID 0x1234, RD clear, class IN, no EDNS.
fn plain_query(n: &str, qtype: u16) -> Vec<u8> {
    message(0x1234, 0, &[question(n, qtype, IN)], &[], &[], &[])
}

/// A query with an OPT record (payload 1232, version 0, no flags) carrying `options`.
fn edns_query(n: &str, qtype: u16, options: &[u8]) -> Vec<u8> {
    query_with_payload(n, qtype, 1232, options)
}

/// A query with an OPT record advertising `payload`.
fn query_with_payload(n: &str, qtype: u16, payload: u16, options: &[u8]) -> Vec<u8> {
    message(
        0x1234,
        0,
        &[question(n, qtype, IN)],
        &[],
        &[],
        &[opt_rr(payload, 0, 0, options)],
    )
}

/// A resource record in wire form.
fn record(owner: &str, rtype: u16, class: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut v = name(owner);
    v.extend_from_slice(&rtype.to_be_bytes());
    v.extend_from_slice(&class.to_be_bytes());
    v.extend_from_slice(&ttl.to_be_bytes());
    v.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    v.extend_from_slice(rdata);
    v
}

// ---------------------------------------------------------------------------------------------
// Reading replies.

/// A resource record as read from a reply; names decompressed, case kept.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rr {
    name: String,
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata: Vec<u8>,
}

/// A reply, read field by field.
#[derive(Debug)]
struct Reply {
    bytes: Vec<u8>,
    id: u16,
    flags: u16,
    /// (name, type, class) of each question.
    qd: Vec<(String, u16, u16)>,
    /// The question section as sent.
    question_bytes: Vec<u8>,
    an: Vec<Rr>,
    ns: Vec<Rr>,
    ar: Vec<Rr>,
    /// Bytes after the last record the header counts (a well-formed message has none).
    trailing: Vec<u8>,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let s = self.buf.get(self.pos..self.pos + n).unwrap_or_else(|| {
            panic!(
                "reply ends inside a field at {} (+{n}): {:02x?}",
                self.pos, self.buf
            )
        });
        self.pos += n;
        s
    }

    fn u16(&mut self) -> u16 {
        let b = self.take(2);
        u16::from_be_bytes([b[0], b[1]])
    }

    fn u32(&mut self) -> u32 {
        let b = self.take(4);
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// A name, following compression pointers; "." for the root.
    fn name(&mut self) -> String {
        let mut labels: Vec<String> = Vec::new();
        let mut pos = self.pos;
        let mut end = None;
        for _ in 0..256 {
            let len = *self.buf.get(pos).expect("reply ends inside a name") as usize;
            match len & 0xC0 {
                0x00 if len == 0 => {
                    self.pos = end.unwrap_or(pos + 1);
                    return if labels.is_empty() {
                        ".".into()
                    } else {
                        format!("{}.", labels.join("."))
                    };
                }
                0x00 => {
                    let label = self
                        .buf
                        .get(pos + 1..pos + 1 + len)
                        .expect("reply ends inside a label");
                    labels.push(String::from_utf8_lossy(label).into_owned());
                    pos += 1 + len;
                }
                0xC0 => {
                    let low = *self.buf.get(pos + 1).expect("reply ends inside a pointer");
                    end.get_or_insert(pos + 2);
                    pos = ((len & 0x3F) << 8) | low as usize;
                }
                _ => panic!("label type {len:#x} in reply"),
            }
        }
        panic!("compression loop in reply")
    }

    fn rr(&mut self) -> Rr {
        let name = self.name();
        let rtype = self.u16();
        let class = self.u16();
        let ttl = self.u32();
        let len = self.u16() as usize;
        let rdata = self.take(len).to_vec();
        Rr {
            name,
            rtype,
            class,
            ttl,
            rdata,
        }
    }
}

fn parse(bytes: Vec<u8>) -> Reply {
    assert!(
        bytes.len() >= 12,
        "reply shorter than a header: {bytes:02x?}"
    );
    let mut c = Cursor {
        buf: &bytes,
        pos: 0,
    };
    let id = c.u16();
    let flags = c.u16();
    let (qdc, anc, nsc, arc) = (c.u16(), c.u16(), c.u16(), c.u16());
    let mut qd = Vec::new();
    for _ in 0..qdc {
        let n = c.name();
        qd.push((n, c.u16(), c.u16()));
    }
    let question_bytes = bytes[12..c.pos].to_vec();
    let an = (0..anc).map(|_| c.rr()).collect();
    let ns = (0..nsc).map(|_| c.rr()).collect();
    let ar = (0..arc).map(|_| c.rr()).collect();
    let trailing = bytes[c.pos..].to_vec();
    Reply {
        id,
        flags,
        qd,
        question_bytes,
        an,
        ns,
        ar,
        trailing,
        bytes,
    }
}

/// `parse`, failing the test when bytes follow the last record.
fn parse_whole(bytes: Vec<u8>) -> Reply {
    let r = parse(bytes);
    assert!(
        r.trailing.is_empty(),
        "bytes after the last record: {:02x?}",
        r.bytes
    );
    r
}

impl Reply {
    fn rcode(&self) -> u8 {
        (self.flags & 0x000F) as u8
    }

    fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0x0F) as u8
    }

    fn has(&self, bit: u16) -> bool {
        self.flags & bit != 0
    }

    fn opts(&self) -> Vec<&Rr> {
        self.ar.iter().filter(|r| r.rtype == OPT).collect()
    }

    fn opt(&self) -> &Rr {
        let opts = self.opts();
        assert_eq!(opts.len(), 1, "want one OPT in the reply: {self:?}");
        opts[0]
    }

    /// The full RCODE: the OPT's extended bits above the header's four.
    fn ext_rcode(&self) -> u16 {
        let high = self.opts().first().map_or(0, |o| (o.ttl >> 24) as u16);
        (high << 4) | u16::from(self.rcode())
    }

    fn edns_version(&self) -> u8 {
        (self.opt().ttl >> 16) as u8
    }

    fn edns_flags(&self) -> u16 {
        self.opt().ttl as u16
    }

    /// The EDNS options of the OPT, in order.
    fn options(&self) -> Vec<(u16, Vec<u8>)> {
        let rdata = &self.opt().rdata;
        let mut c = Cursor { buf: rdata, pos: 0 };
        let mut v = Vec::new();
        while c.pos < rdata.len() {
            let code = c.u16();
            let len = c.u16() as usize;
            v.push((code, c.take(len).to_vec()));
        }
        v
    }

    /// The value of the ECS option, if any.
    fn ecs(&self) -> Option<Vec<u8>> {
        let found: Vec<Vec<u8>> = self
            .options()
            .into_iter()
            .filter(|(code, _)| *code == OPTION_ECS)
            .map(|(_, v)| v)
            .collect();
        assert!(found.len() <= 1, "several ECS options: {self:?}");
        found.into_iter().next()
    }

    /// The reply decoded by hickory, to compare record contents across replies.
    fn decoded(&self) -> Message {
        Message::from_vec(&self.bytes).expect("hickory decodes the reply")
    }

    /// The answer records as zone-file lines, sorted (decoded by hickory).
    fn answer_lines(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .decoded()
            .answers
            .iter()
            .map(|r| r.to_string())
            .collect();
        v.sort();
        v
    }
}

// ---------------------------------------------------------------------------------------------
// Talking to a server.

/// The source address of the queries answered in process: 127.0.0.1, which `CONFIG` places
/// in Frankfurt (as it does the real sockets' clients).
const SRC: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5353);

/// fedns's query path on `CONFIG`, in process: what the UDP and TCP listeners call for each
/// message, without the sockets (`Handler::respond_once`).
fn server() -> Handler {
    handler_for(&load(CONFIG))
}

/// The query path on `CONFIG` with `zone` as its zone file.
fn server_with_zone(zone: &str) -> Handler {
    let path = fedns_testkit::server::write_config("rfc-zone", CONFIG);
    std::fs::write(path.with_file_name("fed.zone"), zone).unwrap();
    handler_for(&LoadedConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}")))
}

/// A server on real sockets, for the rules about the sockets themselves (TCP framing,
/// pipelining and idle connections, truncation then retry over TCP).
async fn socket_server() -> TestServer {
    TestServer::start(CONFIG).await
}

/// The reply the server would send to `query` over `t`; None when it would send none.
fn respond(server: &Handler, query: &[u8], t: Transport) -> Option<Vec<u8>> {
    server.respond_once(query, SRC, t)
}

/// Sends `query` and parses the reply; fails the test when none comes or when bytes follow
/// the last record.
fn ask(server: &Handler, query: &[u8], t: Transport) -> Reply {
    whole(ask_tc(server, query, t), t)
}

/// As `ask`, but a truncated reply (TC) may end in bytes after its last record: the tests of
/// truncation use this, so that `rfc1035_s4_1_truncated_reply_ends_at_its_last_record`
/// alone checks that rule.
fn ask_tc(server: &Handler, query: &[u8], t: Transport) -> Reply {
    reply_to(respond(server, query, t), query, t)
}

/// `ask` over real sockets.
async fn ask_socket(server: &TestServer, query: &[u8], t: Transport) -> Reply {
    whole(ask_tc_socket(server, query, t).await, t)
}

/// `ask_tc` over real sockets.
async fn ask_tc_socket(server: &TestServer, query: &[u8], t: Transport) -> Reply {
    reply_to(server.client().raw(query, t).await, query, t)
}

/// Parses the reply to `query`; fails the test when there is none, or when bytes follow
/// the last record of a reply without TC.
fn reply_to(bytes: Option<Vec<u8>>, query: &[u8], t: Transport) -> Reply {
    let bytes = bytes.unwrap_or_else(|| panic!("no reply over {t:?} to {query:02x?}"));
    let r = parse(bytes);
    assert!(
        r.trailing.is_empty() || r.has(TC),
        "bytes after the last record over {t:?}: {:02x?}",
        r.bytes
    );
    r
}

/// Fails the test when bytes follow the last record of `r`.
fn whole(r: Reply, t: Transport) -> Reply {
    assert!(
        r.trailing.is_empty(),
        "bytes after the last record over {t:?}: {:02x?}",
        r.bytes
    );
    r
}

/// The reply's SOA for the apex, to compare with the SOA of negative answers.
fn apex_soa(server: &Handler) -> hickory_proto::rr::Record {
    let r = ask(server, &plain_query(APEX, SOA), Udp);
    let m = r.decoded();
    assert_eq!(m.answers.len(), 1, "{:?}", m.answers);
    m.answers[0].clone()
}

/// Whether the server has closed `s` (EOF or reset) within `wait`.
async fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 512];
    match tokio::time::timeout(wait, s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(n)) => panic!("unexpected {n} bytes on an idle connection"),
        Err(_) => false,
    }
}

/// A zone file with names the demo zone lacks: SOA TTL (600) below its MINIMUM (900), an
/// empty non-terminal chain (`c`, `b.c`) above `a.b.c`, and a CNAME to a missing name.
const ZONE_TWEAKED: &str = r#"$ORIGIN fed.example.com.
$TTL 3600
@        600 IN SOA ns1 hostmaster ( 7 3600 600 86400 900 )
             IN NS  ns1
ns1          IN A   127.0.0.1
a.b.c        IN TXT "deep"
dangling     IN CNAME nothing
"#;

// =============================================================================================
// RFC 1034 / 1035 / 2181: the header, the question, the zone.

/// RFC 1035 §4.1.1: "ID ... This identifier is copied the corresponding reply"; QR is 1 in
/// every reply. Also for error replies.
#[test]
fn rfc1035_s4_1_1_id_copied_and_qr_set() {
    let server = server();
    for t in [Udp, Tcp] {
        for id in [0x0000, 0x0001, 0x7fff, 0x8000, 0xffff] {
            for (what, qd) in [
                ("answer", vec![question(APP, A, IN)]),
                ("refused", vec![question("example.org", A, IN)]),
                ("formerr", vec![]),
            ] {
                let r = ask(&server, &message(id, 0, &qd, &[], &[], &[]), t);
                assert_eq!(r.id, id, "{what} over {t:?}");
                assert!(r.has(QR), "{what} over {t:?}: QR clear");
            }
        }
    }
}

/// RFC 1035 §4.1.1: RD "is copied into the response"; RA is clear because fedns does not
/// recurse. RFC 8906 §3.1.3.1: a recursive query to a non-recursive server is answered as if
/// RD were clear (authoritatively).
#[test]
fn rfc1035_s4_1_1_rd_copied_ra_clear() {
    let server = server();
    for t in [Udp, Tcp] {
        for rd in [0, RD] {
            for (n, rcode) in [
                (APP, NOERROR),
                (NOTHING, NXDOMAIN),
                ("example.org", REFUSED),
            ] {
                let r = ask(
                    &server,
                    &message(7, rd, &[question(n, A, IN)], &[], &[], &[]),
                    t,
                );
                assert_eq!(r.rcode(), rcode, "{n} over {t:?}");
                assert_eq!(r.flags & RD, rd, "{n} over {t:?}: RD not copied");
                assert!(!r.has(RA), "{n} over {t:?}: RA set");
                assert_eq!(r.has(AA), rcode != REFUSED, "{n} over {t:?}: AA");
            }
        }
    }
}

/// RFC 1035 §4.1.1: AA is set in replies from the authority for the name: static records,
/// federated names, CNAMEs inside the zone and to a load balancer outside it.
#[test]
fn rfc1035_s4_1_1_aa_on_authoritative_answers() {
    let server = server();
    let cases = [
        (APEX, SOA, vec![]),
        (APEX, NS, vec![]),
        (NS1, A, vec![]),
        (STATUS, TXT, vec![]),
        (APP, A, vec![]),
        (APP, AAAA, vec![]),
        ("shop.fed.example.com", A, vec![]),
        (
            "api.default.myfed.svc.fed.example.com",
            A,
            ecs_option(&[0, 1, 24, 0, 198, 18, 2]),
        ),
    ];
    for t in [Udp, Tcp] {
        for (n, qtype, opts) in &cases {
            let r = ask(&server, &edns_query(n, *qtype, opts), t);
            assert_eq!(r.rcode(), NOERROR, "{n} {qtype} over {t:?}");
            assert!(!r.an.is_empty(), "{n} {qtype} over {t:?}: no answer");
            assert!(r.has(AA), "{n} {qtype} over {t:?}: AA clear");
        }
    }
}

/// RFC 1035 §4.1.1 and RFC 2308 §2: negative answers from the authority (NXDOMAIN, NODATA,
/// empty non-terminals) are authoritative too.
#[test]
fn rfc1035_s4_1_1_aa_on_negative_answers() {
    let server = server();
    for t in [Udp, Tcp] {
        for (n, qtype, rcode) in [
            (NOTHING, A, NXDOMAIN),
            ("nope.default.myfed.svc.fed.example.com", A, NXDOMAIN),
            (STATUS, A, NOERROR),
            (APP, MX, NOERROR),
            ("svc.fed.example.com", A, NOERROR),
        ] {
            let r = ask(&server, &plain_query(n, qtype), t);
            assert_eq!(r.rcode(), rcode, "{n} over {t:?}");
            assert!(r.an.is_empty(), "{n} over {t:?}: {:?}", r.an);
            assert!(r.has(AA), "{n} over {t:?}: AA clear");
        }
    }
}

/// RFC 1035 §4.1.1 (REFUSED: "for policy reasons"): fedns is authoritative only, so a name
/// outside its zone is REFUSED, not authoritative, with no records (no upward referral) --
/// also names that share the zone's string suffix but not its labels.
#[test]
fn rfc1035_s4_1_1_names_outside_the_zone_are_refused() {
    let server = server();
    for t in [Udp, Tcp] {
        for n in [
            "example.org",
            "example.com",
            "com",
            ".",
            "xfed.example.com",
            "fed.example.co",
            "app.default.myfed.svc.fed.example.org",
        ] {
            let r = ask(&server, &plain_query(n, A), t);
            assert_eq!(r.rcode(), REFUSED, "{n} over {t:?}");
            assert!(!r.has(AA), "{n} over {t:?}: AA set");
            assert_eq!(
                (r.an.len(), r.ns.len(), r.ar.len()),
                (0, 0, 0),
                "{n} over {t:?}: {r:?}"
            );
        }
    }
}

/// RFC 1035 §4.1.2 and §7.3 (a resolver matches the reply's question to its query): the
/// question section comes back byte for byte, whatever the answer.
#[test]
fn rfc1035_s4_1_2_question_section_echoed() {
    let server = server();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("answer", plain_query(APP, A)),
        ("answer with EDNS", edns_query(APP, AAAA, &[])),
        ("nxdomain", plain_query(NOTHING, TXT)),
        ("nodata", plain_query(STATUS, A)),
        ("unknown type", plain_query(APP, 65000)),
        ("any", plain_query(APEX, ANY)),
        ("refused", plain_query("example.org", A)),
        (
            "class CH",
            message(1, 0, &[question("version.bind", TXT, CH)], &[], &[], &[]),
        ),
        (
            "badvers",
            message(
                1,
                0,
                &[question(APP, A, IN)],
                &[],
                &[],
                &[opt_rr(1232, 1, 0, &[])],
            ),
        ),
        (
            "malformed ECS",
            edns_query(APP, A, &ecs_option(&[0, 1, 24, 8, 198, 18, 2])),
        ),
    ];
    for t in [Udp, Tcp] {
        for (what, query) in &cases {
            let r = ask(&server, query, t);
            let sent = parse(query.clone());
            assert_eq!(r.qd.len(), 1, "{what} over {t:?}");
            assert_eq!(
                r.question_bytes, sent.question_bytes,
                "{what} over {t:?}: question changed"
            );
        }
    }
}

/// RFC 4343 §4.1 (and RFC 1035 §2.3.3): names compare case-insensitively but their case is
/// preserved: the question comes back as sent, and answers are owned by the name as asked.
#[test]
fn rfc4343_s4_1_question_case_preserved() {
    let server = server();
    for t in [Udp, Tcp] {
        for (n, qtype, answered) in [
            ("ApP.DeFault.MyFed.SVC.fed.EXAMPLE.com", A, true),
            ("StAtUs.FED.example.COM", TXT, true),
            ("Ns1.Fed.Example.Com", A, true),
            ("NoThInG.fed.example.com", A, false),
        ] {
            let query = plain_query(n, qtype);
            let r = ask(&server, &query, t);
            assert_eq!(r.question_bytes, query[12..], "{n} over {t:?}");
            assert_eq!(r.qd[0].0, format!("{n}."), "{n} over {t:?}");
            assert_eq!(!r.an.is_empty(), answered, "{n} over {t:?}");
            for rr in &r.an {
                assert_eq!(rr.name, format!("{n}."), "{n} over {t:?}: answer owner");
            }
        }
    }
}

/// RFC 1035 §3.2.4 defines the classes; fedns serves IN only, so CH and HS questions, even
/// for names in its zone, are REFUSED and not authoritative (and still answered: RFC 8906).
#[test]
fn rfc1035_s3_2_4_other_classes_are_refused() {
    let server = server();
    for t in [Udp, Tcp] {
        for (n, qtype, class) in [(APEX, SOA, CH), (APP, A, CH), (APEX, SOA, HS), (APP, A, HS)] {
            let query = message(3, 0, &[question(n, qtype, class)], &[], &[], &[]);
            let r = ask(&server, &query, t);
            assert_eq!(r.rcode(), REFUSED, "{n} class {class} over {t:?}");
            assert!(!r.has(AA), "{n} class {class} over {t:?}: AA");
            assert_eq!((r.an.len(), r.ns.len()), (0, 0), "{r:?}");
            assert_eq!(r.qd[0].2, class, "class echoed");
        }
    }
}

/// RFC 4892 describes the CHAOS identity queries; fedns discloses neither version nor
/// hostname by default: REFUSED, and no record anywhere in the reply.
#[test]
fn rfc4892_chaos_identity_queries_disclose_nothing() {
    let server = server();
    for t in [Udp, Tcp] {
        for n in [
            "version.bind",
            "hostname.bind",
            "id.server",
            "version.server",
        ] {
            for query in [
                message(9, 0, &[question(n, TXT, CH)], &[], &[], &[]),
                message(
                    9,
                    0,
                    &[question(n, TXT, CH)],
                    &[],
                    &[],
                    &[opt_rr(1232, 0, 0, &[])],
                ),
            ] {
                let r = ask(&server, &query, t);
                assert_eq!(r.rcode(), REFUSED, "{n} over {t:?}");
                assert_eq!((r.an.len(), r.ns.len()), (0, 0), "{n} over {t:?}: {r:?}");
                assert!(
                    r.ar.iter().all(|rr| rr.rtype == OPT),
                    "{n} over {t:?}: {r:?}"
                );
                assert!(
                    !String::from_utf8_lossy(&r.bytes).contains("fedns"),
                    "{n} over {t:?}: the reply names the software"
                );
            }
        }
    }
}

/// A well-formed response packet (QR=1), to check that it is ignored.
fn response_packet(id: u16) -> Vec<u8> {
    message(
        id,
        QR | AA,
        &[question(APP, A, IN)],
        &[record(APP, A, IN, 30, &[192, 0, 2, 1])],
        &[],
        &[],
    )
}

/// RFC 1035 §4.1.1 (QR: query or response; a server answers queries) and SPEC §5: a packet
/// that is itself a response gets no reply, over UDP or TCP (else two servers could be made
/// to bounce packets between them).
#[tokio::test]
async fn rfc1035_s4_1_1_responses_are_not_answered() {
    let server = socket_server().await;
    let client = server.client();
    assert_eq!(client.raw(&response_packet(0x0707), Udp).await, None);
    // TCP: the response, then a query on the same connection; the first frame back must be
    // the reply to the query.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut out = framed(&response_packet(0x0707));
    out.extend(framed(&message(
        0x0808,
        0,
        &[question(APP, A, IN)],
        &[],
        &[],
        &[],
    )));
    s.write_all(&out).await.unwrap();
    let reply = read_frame(&mut s, fedns_testkit::dns::REPLY_TIMEOUT)
        .await
        .expect("a reply to the query after the response");
    assert_eq!(parse_whole(reply).id, 0x0808, "the response was answered");
    server.stop().await;
}

/// RFC 1035 §4.1.1 and SPEC §5, as above, for a response that does not parse: no FORMERR
/// back either.
#[test]
fn rfc1035_s4_1_1_malformed_responses_are_not_answered() {
    let server = server();
    let mut garbage = message(0x0909, QR | AA, &[], &[], &[], &[]);
    garbage[5] = 1; // QDCOUNT 1, but what follows is no question
    garbage.extend_from_slice(&[0xff; 40]);
    let reply = respond(&server, &garbage, Udp);
    assert_eq!(reply, None, "reply to a malformed response");
}

/// RFC 9619 §4: a QUERY with QDCOUNT > 1 "MUST be treated as an incorrectly formatted
/// message": FORMERR. And "a DNS message with OPCODE = 0 MUST NOT include a QDCOUNT
/// parameter whose value is greater than 1" -- the FORMERR reply included.
#[test]
fn rfc9619_s4_qdcount_2_is_formerr() {
    let server = server();
    let two = message(
        0x0606,
        0,
        &[question(APP, A, IN), question(STATUS, TXT, IN)],
        &[],
        &[],
        &[],
    );
    for t in [Udp, Tcp] {
        let r = ask(&server, &two, t);
        assert_eq!((r.id, r.rcode()), (0x0606, FORMERR), "over {t:?}");
        assert!(r.an.is_empty(), "over {t:?}");
        assert!(r.qd.len() <= 1, "over {t:?}: QDCOUNT {}", r.qd.len());
    }
}

/// RFC 7873 §5.4: a QUERY with no question is meaningful only with a COOKIE option (which
/// fedns does not implement); without one it is FORMERR.
#[test]
fn rfc7873_s5_4_qdcount_0_without_cookie_is_formerr() {
    let server = server();
    for t in [Udp, Tcp] {
        for ar in [vec![], vec![opt_rr(1232, 0, 0, &[])]] {
            let r = ask(&server, &message(0x0505, 0, &[], &[], &[], &ar), t);
            assert_eq!((r.id, r.rcode()), (0x0505, FORMERR), "over {t:?}");
            assert!(r.an.is_empty());
        }
    }
}

/// RFC 1034 §4.3.2 (step 3b): a name at or below a zone cut gets a referral: no answer, the
/// cut's NS in authority, glue in additional, AA clear (the data is not ours).
#[test]
fn rfc1034_s4_3_2_delegations_get_referrals() {
    let server = server();
    for t in [Udp, Tcp] {
        for n in ["sub.fed.example.com", "deep.name.sub.fed.example.com"] {
            let r = ask(&server, &plain_query(n, A), t);
            assert_eq!(r.rcode(), NOERROR, "{n} over {t:?}");
            assert!(!r.has(AA), "{n} over {t:?}: AA set on a referral");
            assert!(r.an.is_empty(), "{n} over {t:?}");
            let m = r.decoded();
            let ns: Vec<String> = m.authorities.iter().map(|r| r.to_string()).collect();
            assert_eq!(
                ns,
                ["sub.fed.example.com. 3600 IN NS ns.sub.fed.example.com."],
                "{n} over {t:?}"
            );
            let glue: Vec<String> = m.additionals.iter().map(|r| r.to_string()).collect();
            assert_eq!(
                glue,
                ["ns.sub.fed.example.com. 3600 IN A 192.0.2.53"],
                "{n} over {t:?}"
            );
        }
    }
}

/// RFC 1035 §4.2.1 ("Messages carried by UDP are restricted to 512 bytes ... Longer messages
/// are truncated and the TC bit is set") and RFC 7766 §5 (TCP then carries the whole answer).
#[tokio::test]
async fn rfc1035_s4_2_1_udp_truncated_tcp_complete() {
    let server = socket_server().await;
    let query = plain_query(BIG, AAAA);
    let udp = ask_tc_socket(&server, &query, Udp).await;
    assert!(udp.bytes.len() <= 512, "{} bytes over UDP", udp.bytes.len());
    assert!(udp.has(TC), "TC clear on a truncated UDP reply");
    assert!(udp.an.len() < 30);
    let tcp = ask_socket(&server, &query, Tcp).await;
    assert!(!tcp.has(TC), "TC set over TCP");
    assert_eq!(tcp.an.len(), 30);
    assert!(tcp.bytes.len() > 512);
    // An answer that fits is not truncated.
    let small = ask_socket(&server, &plain_query(APP, A), Udp).await;
    assert!(!small.has(TC));
    assert_eq!(small.an.len(), 1);
    server.stop().await;
}

/// RFC 1035 §4.1 (a message is the header and the records its counts announce) and §4.2.1:
/// a truncated UDP reply ends with its last whole record -- no part of a record that did
/// not fit follows it.
#[test]
fn rfc1035_s4_1_truncated_reply_ends_at_its_last_record() {
    let server = server();
    let mut queries = vec![("no EDNS".to_string(), plain_query(BIG, AAAA))];
    let subnet = ecs_option(&[0, 1, 24, 0, 198, 18, 2]);
    for payload in 512..=560 {
        queries.push((
            format!("payload {payload}"),
            query_with_payload(BIG, AAAA, payload, &[]),
        ));
        queries.push((
            format!("payload {payload} with ECS"),
            query_with_payload(BIG, AAAA, payload, &subnet),
        ));
    }
    let mut bad = Vec::new();
    for (what, query) in queries {
        let r = ask_tc(&server, &query, Udp);
        assert!(r.has(TC), "{what}");
        if !r.trailing.is_empty() {
            bad.push(format!(
                "{what}: {} bytes, {} answers, {} additional, then {:02x?}",
                r.bytes.len(),
                r.an.len(),
                r.ar.len(),
                r.trailing
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

// =============================================================================================
// RFC 2308, RFC 8020, RFC 6604: negative answers.

/// RFC 2308 §2.1 and §3: NXDOMAIN has no answer and the zone's SOA, alone, in the authority
/// section. RFC 8020 §2: below a name that does not exist, nothing does.
#[test]
fn rfc2308_s2_1_nxdomain_carries_the_soa() {
    let server = server();
    let soa = apex_soa(&server);
    for t in [Udp, Tcp] {
        for n in [
            NOTHING,
            "x.nothing.fed.example.com",
            "x.ns1.fed.example.com",
            "nope.default.myfed.svc.fed.example.com",
            "app.default.myfed.svc.mars-1.fed.example.com",
            "x.app.default.myfed.svc.fed.example.com",
        ] {
            let r = ask(&server, &plain_query(n, A), t);
            assert_eq!(r.rcode(), NXDOMAIN, "{n} over {t:?}");
            assert!(r.an.is_empty(), "{n} over {t:?}");
            let m = r.decoded();
            assert_eq!(
                m.authorities.len(),
                1,
                "{n} over {t:?}: {:?}",
                m.authorities
            );
            let got = &m.authorities[0];
            assert_eq!(
                (&got.name, &got.data),
                (&soa.name, &soa.data),
                "{n} over {t:?}"
            );
        }
    }
}

/// RFC 2308 §2.2 and §3: NODATA (the name exists, the type does not) is NOERROR with no
/// answer and the zone's SOA in the authority section.
#[test]
fn rfc2308_s2_2_nodata_carries_the_soa() {
    let server = server();
    let soa = apex_soa(&server);
    for t in [Udp, Tcp] {
        for (n, qtype) in [
            (STATUS, A),
            (NS1, AAAA),
            (APEX, TXT),
            (APP, MX),
            ("shop.fed.example.com", MX),
        ] {
            let r = ask(&server, &plain_query(n, qtype), t);
            // A CNAME owner answers every type with its CNAME; `shop` MX follows it to a
            // federated name without MX.
            assert_eq!(r.rcode(), NOERROR, "{n} {qtype} over {t:?}");
            assert!(
                r.an.iter().all(|rr| rr.rtype == CNAME),
                "{n} {qtype} over {t:?}: {:?}",
                r.an
            );
            let m = r.decoded();
            assert_eq!(m.authorities.len(), 1, "{n} over {t:?}");
            let got = &m.authorities[0];
            assert_eq!(
                (&got.name, &got.data),
                (&soa.name, &soa.data),
                "{n} {qtype} over {t:?}"
            );
        }
    }
}

/// RFC 2308 §3: "the TTL of this record is set from the minimum of the MINIMUM field of the
/// SOA record and the TTL of the SOA itself". The demo zone has SOA TTL 3600, MINIMUM 30;
/// the tweaked zone has SOA TTL 600, MINIMUM 900.
#[test]
fn rfc2308_s3_negative_ttl_is_min_of_soa_ttl_and_minimum() {
    for (server, want) in [(server(), 30), (server_with_zone(ZONE_TWEAKED), 600)] {
        for (n, qtype) in [(NOTHING, A), (NS1, TXT)] {
            let r = ask(&server, &plain_query(n, qtype), Udp);
            let soa: Vec<&Rr> = r.ns.iter().filter(|rr| rr.rtype == SOA).collect();
            assert_eq!(soa.len(), 1, "{n}: {r:?}");
            assert_eq!(soa[0].ttl, want, "{n} {qtype}");
        }
    }
}

/// RFC 8020 §2 (and RFC 4592 §2.2.2): an empty non-terminal exists; it is NODATA (NOERROR,
/// SOA in authority), never NXDOMAIN, which would tell resolvers that nothing below exists.
/// Federation ENTs (svc, F.svc, ns.F.svc, region and zone levels) and zone-file ENTs.
#[test]
fn rfc8020_s2_empty_non_terminals_are_nodata() {
    let server = server_with_zone(ZONE_TWEAKED);
    for t in [Udp, Tcp] {
        for n in [
            "svc.fed.example.com",
            "myfed.svc.fed.example.com",
            "default.myfed.svc.fed.example.com",
            "myfed.svc.eu-west-1.fed.example.com",
            "default.myfed.svc.us-east-1a.us-east-1.fed.example.com",
            "eu-west-1.fed.example.com",
            "c.fed.example.com",
            "b.c.fed.example.com",
        ] {
            let r = ask(&server, &plain_query(n, A), t);
            assert_eq!(r.rcode(), NOERROR, "{n} over {t:?}: ENT is not NXDOMAIN");
            assert!(r.an.is_empty(), "{n} over {t:?}");
            assert!(r.has(AA), "{n} over {t:?}");
            assert_eq!(
                r.ns.iter().map(|rr| rr.rtype).collect::<Vec<_>>(),
                [SOA],
                "{n} over {t:?}"
            );
        }
    }
    // And below them there is data.
    let r = ask(&server, &plain_query("a.b.c.fed.example.com", TXT), Udp);
    assert_eq!((r.rcode(), r.an.len()), (NOERROR, 1));
}

/// RFC 6604 §3: in a CNAME chain the RCODE is the last name's: a CNAME to a name that does
/// not exist is NXDOMAIN, with the CNAME in the answer and the SOA in authority.
#[test]
fn rfc6604_s3_cname_to_missing_name_is_nxdomain() {
    let server = server_with_zone(ZONE_TWEAKED);
    for t in [Udp, Tcp] {
        let r = ask(&server, &plain_query("dangling.fed.example.com", A), t);
        assert_eq!(r.rcode(), NXDOMAIN, "over {t:?}");
        assert!(r.has(AA));
        assert_eq!(
            r.answer_lines(),
            ["dangling.fed.example.com. 3600 IN CNAME nothing.fed.example.com."]
        );
        assert_eq!(r.ns.iter().map(|rr| rr.rtype).collect::<Vec<_>>(), [SOA]);
    }
}

// =============================================================================================
// RFC 6891 (EDNS) and RFC 3225 (DO).

/// RFC 6891 §6.1.1 ("If an OPT record is present in a received request, compliant
/// responders MUST include an OPT record") and §7 (without one, the responder "MUST NOT
/// include an OPT record"): for answers, negative answers and errors alike.
#[test]
fn rfc6891_s6_1_1_opt_in_reply_iff_in_query() {
    let server = server();
    let queries = |ar: &[Vec<u8>]| {
        vec![
            message(1, 0, &[question(APP, A, IN)], &[], &[], ar),
            message(2, 0, &[question(NOTHING, A, IN)], &[], &[], ar),
            message(3, 0, &[question(STATUS, A, IN)], &[], &[], ar),
            message(4, 0, &[question("example.org", A, IN)], &[], &[], ar),
            message(5, opcode(15), &[question(APP, A, IN)], &[], &[], ar),
            message(
                6,
                0,
                &[question(APP, A, IN), question(APP, A, IN)],
                &[],
                &[],
                ar,
            ),
        ]
    };
    for t in [Udp, Tcp] {
        for query in queries(&[]) {
            let r = ask(&server, &query, t);
            assert!(r.opts().is_empty(), "id {} over {t:?}: OPT in reply", r.id);
        }
        for query in queries(&[opt_rr(1232, 0, 0, &[])]) {
            let r = ask(&server, &query, t);
            let opt = r.opt();
            assert_eq!(opt.name, ".", "id {} over {t:?}", r.id);
            assert_eq!(r.edns_version(), 0, "id {} over {t:?}", r.id);
            assert!(
                opt.class >= 512,
                "id {} over {t:?}: payload {}",
                r.id,
                opt.class
            );
        }
    }
}

/// RFC 6891 §6.1.1: "If a query message with more than one OPT RR is received, a FORMERR
/// (RCODE=1) MUST be returned."
#[test]
fn rfc6891_s6_1_1_two_opt_records_are_formerr() {
    let server = server();
    let query = message(
        0x0202,
        0,
        &[question(APP, A, IN)],
        &[],
        &[],
        &[opt_rr(1232, 0, 0, &[]), opt_rr(1232, 0, 0, &[])],
    );
    for t in [Udp, Tcp] {
        let r = ask(&server, &query, t);
        assert_eq!((r.id, r.rcode()), (0x0202, FORMERR), "over {t:?}");
        assert!(r.an.is_empty(), "over {t:?}");
    }
}

/// RFC 6891 §6.1.2: the OPT's NAME "MUST be 0 (root domain)"; §7: a problem with the OPT
/// record itself is FORMERR.
#[test]
fn rfc6891_s6_1_2_opt_owner_must_be_root() {
    let server = server();
    let query = message(
        0x0303,
        0,
        &[question(APP, A, IN)],
        &[],
        &[],
        &[opt_rr_owned(&name(APEX), 1232, 0, 0, &[])],
    );
    for t in [Udp, Tcp] {
        let r = ask(&server, &query, t);
        assert_eq!((r.id, r.rcode()), (0x0303, FORMERR), "over {t:?}");
    }
}

/// RFC 6891 §6.1.2: "Any OPTION-CODE values not understood by a responder or requestor MUST
/// be ignored", and RFC 8906 §8.2.3: they are not echoed.
#[test]
fn rfc6891_s6_1_2_unknown_options_ignored_not_echoed() {
    let server = server();
    let mut options = option(65001, &[1, 2, 3]);
    options.extend(option(100, &[]));
    options.extend(option(65535, &[0; 16]));
    for t in [Udp, Tcp] {
        let plain = ask(&server, &edns_query(APP, A, &[]), t);
        let r = ask(&server, &edns_query(APP, A, &options), t);
        assert_eq!(r.rcode(), NOERROR, "over {t:?}");
        assert_eq!(r.answer_lines(), plain.answer_lines(), "over {t:?}");
        assert!(r.options().is_empty(), "over {t:?}: options echoed");
        // With ECS beside them: only the ECS comes back.
        let mut with_ecs = options.clone();
        with_ecs.extend(ecs_option(&[0, 1, 24, 0, 198, 18, 2]));
        let r = ask(&server, &edns_query(APP, A, &with_ecs), t);
        let codes: Vec<u16> = r.options().iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, [OPTION_ECS], "over {t:?}");
    }
}

/// RFC 6891 §6.1.3: a VERSION above the responder's gets "RCODE=BADVERS" (extended RCODE
/// 16: 1 in the OPT's EXTENDED-RCODE, 0 in the header) and an OPT with the responder's
/// version, 0. RFC 8906 §8.2.2/§8.2.6: no answer, not authoritative, no options echoed.
#[test]
fn rfc6891_s6_1_3_badvers_for_version_1() {
    let server = server();
    for t in [Udp, Tcp] {
        for (version, options) in [
            (1, vec![]),
            (2, vec![]),
            (255, vec![]),
            (1, option(100, &[])),
            (1, ecs_option(&[0, 1, 24, 0, 198, 18, 2])),
        ] {
            let query = message(
                0x0b0b,
                0,
                &[question(APP, A, IN)],
                &[],
                &[],
                &[opt_rr(1232, version, 0, &options)],
            );
            let r = ask(&server, &query, t);
            let what = format!("version {version} {options:02x?} over {t:?}");
            assert_eq!(r.rcode(), 0, "{what}: header RCODE");
            assert_eq!(r.opt().ttl >> 24, 1, "{what}: EXTENDED-RCODE");
            assert_eq!(r.ext_rcode(), 16, "{what}");
            assert_eq!(r.edns_version(), 0, "{what}");
            assert!(r.options().is_empty(), "{what}");
            assert!(!r.has(AA), "{what}: AA");
            assert_eq!((r.an.len(), r.ns.len()), (0, 0), "{what}");
        }
    }
}

/// RFC 6891 §6.1.4: the EDNS Z flags "MUST be set to zero by senders and ... ignored by
/// receivers"; RFC 8906 §8.2.4/§8.2.5: answered as usual, cleared in the reply.
#[test]
fn rfc6891_s6_1_4_unknown_edns_flags_ignored_and_cleared() {
    let server = server();
    for t in [Udp, Tcp] {
        for flags in [0x0040, 0x4000, 0x7fff] {
            let query = message(
                0x0c0c,
                0,
                &[question(APP, A, IN)],
                &[],
                &[],
                &[opt_rr(1232, 0, flags, &[])],
            );
            let r = ask(&server, &query, t);
            assert_eq!(
                (r.rcode(), r.an.len()),
                (NOERROR, 1),
                "{flags:#x} over {t:?}"
            );
            assert!(r.has(AA));
            assert_eq!(r.edns_flags(), 0, "{flags:#x} over {t:?}: flags in reply");
            // With BADVERS too (RFC 8906 §8.2.5).
            let query = message(
                0x0c0c,
                0,
                &[question(APP, A, IN)],
                &[],
                &[],
                &[opt_rr(1232, 1, flags, &[])],
            );
            let r = ask(&server, &query, t);
            assert_eq!(r.ext_rcode(), 16, "{flags:#x} over {t:?}");
            assert_eq!(r.edns_flags(), 0, "{flags:#x} over {t:?}: flags in BADVERS");
        }
    }
}

/// RFC 3225 §3: "The DO bit of the query MUST be copied in the response" (RFC 8906 §8.2.8,
/// and §8.2.9 for BADVERS). fedns signs nothing, so DO=1 changes no records.
#[test]
fn rfc3225_s3_do_bit_copied() {
    let server = server();
    for t in [Udp, Tcp] {
        for (n, version) in [(APP, 0), (NOTHING, 0), (APP, 1)] {
            let query = message(
                0x0d0d,
                0,
                &[question(n, A, IN)],
                &[],
                &[],
                &[opt_rr(1232, version, DO, &[])],
            );
            let r = ask(&server, &query, t);
            assert_eq!(
                r.edns_flags(),
                DO,
                "{n} version {version} over {t:?}: DO not copied"
            );
        }
    }
}

/// RFC 6891 §6.2.3: the requestor's payload size is the most it can take; a UDP reply never
/// exceeds it, and TC is set exactly when the answer had to be cut (RFC 2181 §9). fedns
/// cuts the whole answer (a client ignores the records of a TC reply and retries over TCP,
/// RFC 2181 §9), so a reply is either complete or carries no records.
#[test]
fn rfc6891_s6_2_3_udp_reply_fits_the_advertised_payload() {
    let server = server();
    // The whole reply, as TCP gets it (with the same OPT).
    let full = ask(&server, &query_with_payload(BIG, AAAA, 1232, &[]), Tcp)
        .bytes
        .len();
    for payload in [512, 513, 600, 777, 900, 1000, 1232, 1400, 4096, 65535] {
        let r = ask_tc(&server, &query_with_payload(BIG, AAAA, payload, &[]), Udp);
        assert!(
            r.bytes.len() <= payload as usize,
            "payload {payload}: {} bytes",
            r.bytes.len()
        );
        let whole = r.an.len() == 30;
        assert_eq!(
            r.has(TC),
            !whole,
            "payload {payload}: TC with {} answers",
            r.an.len()
        );
        if r.has(TC) {
            assert!(r.an.is_empty(), "payload {payload}: part of an answer");
        }
        // Whole exactly when the whole reply fits: the client's size or 1232, whichever is
        // less (fedns's own limit).
        let fits = full <= usize::from(payload.min(1232));
        assert_eq!(whole, fits, "payload {payload}, whole reply {full} bytes");
    }
}

/// RFC 6891 §6.2.5: "Values lower than 512 MUST be treated as equal to 512."
#[test]
fn rfc6891_s6_2_5_payload_below_512_counts_as_512() {
    let server = server();
    for payload in [0, 1, 100, 511] {
        let r = ask(&server, &query_with_payload(APP, A, payload, &[]), Udp);
        assert_eq!((r.rcode(), r.an.len()), (NOERROR, 1), "payload {payload}");
        assert!(!r.has(TC), "payload {payload}");
        let big = ask_tc(&server, &query_with_payload(BIG, AAAA, payload, &[]), Udp);
        let len = big.bytes.len();
        assert!(len <= 512, "payload {payload}: {len} bytes");
        assert!(big.has(TC), "payload {payload}");
        assert!(big.an.is_empty(), "payload {payload}: part of an answer");
    }
}

/// RFC 6891 §6.2.3/§6.2.4: the payload size is about UDP; over TCP the whole answer comes
/// whatever the OPT says.
#[test]
fn rfc6891_s6_2_3_payload_limits_udp_only() {
    let server = server();
    for payload in [512, 600] {
        let r = ask(&server, &query_with_payload(BIG, AAAA, payload, &[]), Tcp);
        assert!(!r.has(TC), "payload {payload} over TCP: TC");
        assert_eq!(r.an.len(), 30, "payload {payload} over TCP");
        assert_eq!(r.opts().len(), 1);
    }
}

/// RFC 6891 §7: "The minimal response MUST be the DNS header, question section, and an OPT
/// record. This MUST also occur when a truncated response (using the DNS header's TC bit) is
/// returned." (RFC 8906 §8.2.7.)
#[test]
fn rfc6891_s7_truncated_reply_keeps_the_opt() {
    let server = server();
    let mut bad = Vec::new();
    let subnet = ecs_option(&[0, 1, 24, 0, 198, 18, 2]);
    for payload in 512..=560 {
        for (what, options) in [("", &[][..]), (" with ECS", &subnet[..])] {
            let r = ask_tc(
                &server,
                &query_with_payload(BIG, AAAA, payload, options),
                Udp,
            );
            assert!(r.has(TC), "payload {payload}{what}");
            assert!(r.bytes.len() <= payload as usize);
            if r.opts().len() != 1 {
                bad.push(format!(
                    "payload {payload}{what}: {} bytes, {} answers, no OPT",
                    r.bytes.len(),
                    r.an.len(),
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// RFC 6891 §7: for "an option value that is badly formatted ... a FORMERR MUST be returned.
/// If this occurs, the response MUST include an OPT record", and "The minimal response MUST
/// be the DNS header, question section, and an OPT record" (RFC 7871 §7.2.1 for ECS).
#[test]
fn rfc6891_s7_formerr_for_a_bad_option_has_question_and_opt() {
    let server = server();
    let mut bad = Vec::new();
    for t in [Udp, Tcp] {
        for value in ECS_MALFORMED {
            let query = edns_query(APP, A, &ecs_option(value));
            let r = ask(&server, &query, t);
            assert_eq!(r.rcode(), FORMERR, "{value:?} over {t:?}");
            assert!(r.an.is_empty(), "{value:?} over {t:?}");
            let minimal = r.question_bytes == parse(query).question_bytes
                && r.opts().len() == 1
                && r.edns_version() == 0;
            if !minimal {
                bad.push(format!("{value:?} over {t:?}: {:02x?}", r.bytes));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Malformed ECS values, one of each kind the RFC 7871 tests below reject.
const ECS_MALFORMED: &[&[u8]] = &[
    &[0, 1, 24, 8, 198, 18, 2],
    &[0, 1, 33, 0, 1, 2, 3, 4, 5],
    &[
        0, 2, 129, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ],
    &[0, 1, 20, 0, 198, 18, 255],
    &[0, 1, 24, 0, 198, 18, 2, 0],
    &[0, 1, 24, 0, 198, 18],
    &[0, 1, 0, 0, 0],
    &[0, 1],
    &[],
    &[0, 3, 24, 0, 198, 18, 2],
    &[0, 0, 24, 0, 198, 18, 2],
    &[0xff, 0xff, 0, 0],
];

// =============================================================================================
// RFC 7766: DNS over TCP.

/// RFC 7766 §6.2.1.1: a server MUST process pipelined queries on one connection; replies
/// may come in any order, each with its query's ID and question.
#[tokio::test]
async fn rfc7766_s6_2_1_1_pipelined_queries_all_answered() {
    let server = socket_server().await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let queries = [
        (APP, A),
        (STATUS, TXT),
        (NOTHING, A),
        ("example.org", A),
        (BIG, AAAA),
        (APEX, SOA),
    ];
    let mut out = Vec::new();
    for (i, (n, qtype)) in queries.iter().enumerate() {
        out.extend(framed(&message(
            100 + i as u16,
            0,
            &[question(n, *qtype, IN)],
            &[],
            &[],
            &[],
        )));
    }
    // All of them in one write, before reading any reply.
    s.write_all(&out).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..queries.len() {
        let r = parse_whole(
            read_frame(&mut s, fedns_testkit::dns::REPLY_TIMEOUT)
                .await
                .expect("a pipelined reply"),
        );
        let (n, qtype) = queries[usize::from(r.id - 100)];
        assert_eq!(r.qd[0].0, format!("{n}."), "id {}", r.id);
        assert_eq!(r.qd[0].1, qtype, "id {}", r.id);
        seen.push(r.id);
    }
    seen.sort();
    assert_eq!(seen, [100, 101, 102, 103, 104, 105]);
    server.stop().await;
}

/// RFC 7766 §8 (and RFC 1035 §4.2.2): each message is prefixed by a 2-byte length, however
/// the stream is cut into segments; replies are framed the same way.
#[tokio::test]
async fn rfc7766_s8_two_byte_length_framing() {
    let server = socket_server().await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let first = framed(&message(201, 0, &[question(APP, A, IN)], &[], &[], &[]));
    let second = framed(&message(
        202,
        0,
        &[question(STATUS, TXT, IN)],
        &[],
        &[],
        &[],
    ));
    // The first length byte alone, then the rest of the first message with half of the
    // second, then the rest of the second.
    let mut stream = first.clone();
    stream.extend_from_slice(&second);
    let cuts = [1, first.len() + second.len() / 2, stream.len()];
    let mut from = 0;
    for to in cuts {
        s.write_all(&stream[from..to]).await.unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        from = to;
    }
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut len = [0u8; 2];
        tokio::time::timeout(fedns_testkit::dns::REPLY_TIMEOUT, s.read_exact(&mut len))
            .await
            .expect("a reply")
            .unwrap();
        let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
        tokio::time::timeout(fedns_testkit::dns::REPLY_TIMEOUT, s.read_exact(&mut body))
            .await
            .expect("the whole reply")
            .unwrap();
        // `parse_whole` rejects bytes past the last record, so the length is exact.
        let r = parse_whole(body);
        assert_eq!((r.rcode(), r.an.len()), (NOERROR, 1), "id {}", r.id);
        ids.push(r.id);
    }
    ids.sort();
    assert_eq!(ids, [201, 202]);
    server.stop().await;
}

/// RFC 7766 §6.2.3: the server keeps a connection open after a reply (an idle timeout "of at
/// least a few seconds" is advised), also after an error reply, and serves more queries on it.
#[tokio::test]
async fn rfc7766_s6_2_3_connection_stays_open_after_a_reply() {
    let server = socket_server().await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let queries = [
        message(301, 0, &[question(APP, A, IN)], &[], &[], &[]),
        edns_query(APP, A, &ecs_option(&[0, 1, 24, 8, 198, 18, 2])), // FORMERR
        message(302, 0, &[], &[], &[], &[]),                         // FORMERR
        message(303, 0, &[question(NOTHING, A, IN)], &[], &[], &[]),
        message(304, 0, &[question(STATUS, TXT, IN)], &[], &[], &[]),
    ];
    for query in &queries {
        s.write_all(&framed(query)).await.unwrap();
        let r = parse_whole(
            read_frame(&mut s, fedns_testkit::dns::REPLY_TIMEOUT)
                .await
                .expect("a reply on the kept connection"),
        );
        assert_eq!(r.id, u16::from_be_bytes([query[0], query[1]]));
        assert!(
            !closed_within(&mut s, Duration::from_millis(500)).await,
            "closed after the reply to id {}",
            r.id
        );
    }
    // Still open after two seconds of silence.
    assert!(!closed_within(&mut s, Duration::from_secs(2)).await);
    s.write_all(&framed(&queries[0])).await.unwrap();
    assert!(
        read_frame(&mut s, fedns_testkit::dns::REPLY_TIMEOUT)
            .await
            .is_some()
    );
    server.stop().await;
}

/// RFC 7766 §6.2.3: servers close idle connections (fedns after `TCP_IDLE_TIMEOUT` by
/// default), both after a reply and when nothing was ever sent.
#[tokio::test]
async fn rfc7766_s6_2_3_idle_connections_are_closed() {
    let server = socket_server().await;
    let mut used = TcpStream::connect(server.addr).await.unwrap();
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    used.write_all(&framed(&plain_query(APP, A))).await.unwrap();
    assert!(
        read_frame(&mut used, fedns_testkit::dns::REPLY_TIMEOUT)
            .await
            .is_some()
    );
    let start = Instant::now();
    let patience = TCP_IDLE_TIMEOUT + Duration::from_secs(3);
    let (a, b) = tokio::join!(
        closed_within(&mut used, patience),
        closed_within(&mut silent, patience)
    );
    assert!(
        a,
        "idle connection after a reply still open after {patience:?}"
    );
    assert!(
        b,
        "connection that sent nothing still open after {patience:?}"
    );
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "closed after {:?}",
        start.elapsed()
    );
    server.stop().await;
}

// =============================================================================================
// RFC 7871: EDNS Client Subnet.

/// Every malformed ECS value in `cases` is FORMERR over UDP and TCP.
fn assert_ecs_formerr(cases: &[(&str, Vec<u8>)]) {
    let server = server();
    for t in [Udp, Tcp] {
        for (what, value) in cases {
            let r = ask(&server, &edns_query(APP, A, &ecs_option(value)), t);
            assert_eq!(r.rcode(), FORMERR, "{what} over {t:?}");
            assert!(r.an.is_empty(), "{what} over {t:?}");
        }
    }
    // The same server answers a well-formed one.
    let r = ask(
        &server,
        &edns_query(APP, A, &ecs_option(&[0, 1, 24, 0, 198, 18, 2])),
        Udp,
    );
    assert_eq!((r.rcode(), r.an.len()), (NOERROR, 1));
}

/// RFC 7871 §6: SCOPE PREFIX-LENGTH "In queries, it MUST be set to 0"; §7.2.1: a wrongly
/// formatted option is FORMERR.
#[test]
fn rfc7871_s6_scope_in_a_query_is_formerr() {
    assert_ecs_formerr(&[
        ("scope 8", vec![0, 1, 24, 8, 198, 18, 2]),
        ("scope 32", vec![0, 1, 24, 32, 198, 18, 2]),
        (
            "IPv6 scope 48",
            vec![0, 2, 48, 48, 0x20, 0x01, 0x0d, 0xb8, 0, 3],
        ),
    ]);
}

/// RFC 7871 §6: SOURCE PREFIX-LENGTH is a number of bits of the address: over 32 for IPv4
/// or 128 for IPv6 is malformed, FORMERR.
#[test]
fn rfc7871_s6_source_prefix_longer_than_the_address_is_formerr() {
    let mut v6 = vec![0, 2, 129, 0];
    v6.extend([0u8; 17]);
    assert_ecs_formerr(&[
        ("IPv4 /33", vec![0, 1, 33, 0, 1, 2, 3, 4, 5]),
        ("IPv4 /255", vec![0, 1, 255, 0, 1, 2, 3, 4]),
        ("IPv6 /129", v6),
    ]);
}

/// RFC 7871 §6: a server receiving an option "that has non-zero ADDRESS bits set beyond
/// SOURCE PREFIX-LENGTH, SHOULD return FORMERR".
#[test]
fn rfc7871_s6_address_bits_beyond_the_source_prefix_are_formerr() {
    assert_ecs_formerr(&[
        ("IPv4 /20 with host bits", vec![0, 1, 20, 0, 198, 18, 255]),
        ("IPv4 /23 with bit 24", vec![0, 1, 23, 0, 198, 18, 3]),
        (
            "IPv6 /47 with bit 48",
            vec![0, 2, 47, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 3],
        ),
    ]);
}

/// RFC 7871 §6: ADDRESS is truncated to the source prefix; "either too few or too many
/// ADDRESS octets" SHOULD be FORMERR.
#[test]
fn rfc7871_s6_address_octets_must_match_the_source_prefix() {
    assert_ecs_formerr(&[
        ("one octet too many", vec![0, 1, 24, 0, 198, 18, 2, 0]),
        ("one octet too few", vec![0, 1, 24, 0, 198, 18]),
        ("a /0 with an octet", vec![0, 1, 0, 0, 0]),
        ("a full IPv6 address for /48", {
            let mut v = vec![0, 2, 48, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 3];
            v.extend([0u8; 10]);
            v
        }),
        ("no prefix fields", vec![0, 1]),
        ("empty", vec![]),
    ]);
}

/// RFC 7871 §7.2.1: "A query with a wrongly formatted option (e.g., an unknown FAMILY) MUST
/// be rejected and a FORMERR response MUST be returned".
#[test]
fn rfc7871_s7_2_1_unknown_family_is_formerr() {
    assert_ecs_formerr(&[
        ("family 3", vec![0, 3, 24, 0, 198, 18, 2]),
        ("family 0", vec![0, 0, 24, 0, 198, 18, 2]),
        ("family 65535", vec![0xff, 0xff, 0, 0]),
    ]);
}

/// RFC 7871 §7.2.1: "The FAMILY, SOURCE PREFIX-LENGTH, and ADDRESS in the response MUST
/// match those in the query", with the SCOPE the answer depends on (24 and 48: the demo
/// database's networks; 20: capped at the source prefix).
#[test]
fn rfc7871_s7_2_1_echoes_family_source_and_address() {
    let server = server();
    let cases: [(u16, &[u8], &[u8]); 4] = [
        (A, &[0, 1, 24, 0, 198, 18, 2], &[0, 1, 24, 24, 198, 18, 2]),
        (A, &[0, 1, 20, 0, 198, 18, 0], &[0, 1, 20, 20, 198, 18, 0]),
        (
            AAAA,
            &[0, 2, 48, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 3],
            &[0, 2, 48, 48, 0x20, 0x01, 0x0d, 0xb8, 0, 3],
        ),
        (
            AAAA,
            &[0, 2, 56, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 2, 0x80],
            &[0, 2, 56, 48, 0x20, 0x01, 0x0d, 0xb8, 0, 2, 0x80],
        ),
    ];
    for t in [Udp, Tcp] {
        for (qtype, sent, want) in cases {
            let r = ask(&server, &edns_query(APP, qtype, &ecs_option(sent)), t);
            assert_eq!((r.rcode(), r.an.len()), (NOERROR, 1), "{sent:?} over {t:?}");
            assert_eq!(r.ecs().as_deref(), Some(want), "{sent:?} over {t:?}");
        }
    }
}

/// RFC 7871 §7.2.1: a server that implements ECS "MUST include an ECS option in its
/// response ... regardless of whether the client information was needed", and "If an ECS
/// option was not included in a query, one MUST NOT be included in the response".
#[test]
fn rfc7871_s7_2_1_ecs_in_a_reply_iff_in_the_query() {
    let server = server();
    let subnet = ecs_option(&[0, 1, 24, 0, 198, 18, 2]);
    for t in [Udp, Tcp] {
        for (n, qtype) in [
            (APP, A),
            (STATUS, TXT),
            (NOTHING, A),
            (STATUS, A),
            ("svc.fed.example.com", A),
            ("sub.fed.example.com", A),
            ("example.org", A),
            (APEX, ANY),
        ] {
            let r = ask(&server, &edns_query(n, qtype, &subnet), t);
            assert!(r.ecs().is_some(), "{n} {qtype} over {t:?}: no ECS in reply");
            let r = ask(&server, &edns_query(n, qtype, &[]), t);
            assert_eq!(r.ecs(), None, "{n} {qtype} over {t:?}: ECS in reply");
        }
    }
}

/// RFC 7871 §7.2.1: servers that have "not implemented or enabled support for the ECS
/// option ... MUST NOT include an ECS option within replies" (`geoip.use_ecs: false`), and
/// then answer for the packet's source.
#[test]
fn rfc7871_s7_2_1_no_ecs_echo_when_disabled() {
    let config = CONFIG.replace(
        "geoip: { database: city.mmdb }",
        "geoip: { database: city.mmdb, use_ecs: false }",
    );
    assert_ne!(config, CONFIG);
    let server = handler_for(&load(&config));
    for t in [Udp, Tcp] {
        let r = ask(
            &server,
            &edns_query(APP, A, &ecs_option(&[0, 1, 24, 0, 198, 18, 2])),
            t,
        );
        assert_eq!(r.rcode(), NOERROR, "over {t:?}");
        assert_eq!(r.ecs(), None, "over {t:?}: ECS echoed while disabled");
        // 127.0.0.1 is overridden to Frankfurt: eu-west, not Tokyo's ap-northeast.
        assert_eq!(r.an[0].rdata, [198, 51, 100, 10], "over {t:?}");
    }
}

/// RFC 7871 §7.2.1: SCOPE 0 says the answer "is suitable for all addresses": static records,
/// NXDOMAIN, NODATA, empty non-terminals and refusals do not depend on the client.
#[test]
fn rfc7871_s7_2_1_scope_zero_when_the_answer_does_not_depend_on_the_client() {
    let server = server();
    let sent = [0, 1, 24, 0, 198, 18, 2];
    for t in [Udp, Tcp] {
        for (n, qtype) in [
            (STATUS, TXT),
            (APEX, SOA),
            (NS1, A),
            (NOTHING, A),
            (STATUS, A),
            ("svc.fed.example.com", A),
            ("checkout.shop.myfed.svc.fed.example.com", A),
            ("example.org", A),
        ] {
            let r = ask(&server, &edns_query(n, qtype, &ecs_option(&sent)), t);
            assert_eq!(
                r.ecs().as_deref(),
                Some(&[0, 1, 24, 0, 198, 18, 2][..]),
                "{n} {qtype} over {t:?}"
            );
        }
    }
}

/// RFC 7871 §7.4: "the authority SHOULD return a zero SCOPE PREFIX-LENGTH on delegations".
#[test]
fn rfc7871_s7_4_referrals_have_scope_zero() {
    let server = server();
    for t in [Udp, Tcp] {
        for n in ["sub.fed.example.com", "deep.name.sub.fed.example.com"] {
            let r = ask(
                &server,
                &edns_query(n, A, &ecs_option(&[0, 1, 24, 0, 198, 18, 2])),
                t,
            );
            assert!(
                !r.has(AA) && !r.ns.is_empty(),
                "{n} over {t:?}: not a referral"
            );
            assert_eq!(
                r.ecs().as_deref(),
                Some(&[0, 1, 24, 0, 198, 18, 2][..]),
                "{n} over {t:?}"
            );
        }
    }
}

/// RFC 7871 §7.1.2: SOURCE PREFIX-LENGTH 0 asks that no client address be used; the
/// authoritative server then answers as for the packet's source (127.0.0.1: Frankfurt, so
/// eu-west) and echoes the option with SCOPE 0.
#[test]
fn rfc7871_s7_1_2_source_prefix_zero() {
    let server = server();
    for t in [Udp, Tcp] {
        for (qtype, sent, addr) in [
            (A, &[0u8, 1, 0, 0][..], &[198u8, 51, 100, 10][..]),
            (
                AAAA,
                &[0, 2, 0, 0],
                &[
                    0x20, 0x01, 0x0d, 0xb8, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
                ],
            ),
        ] {
            let r = ask(&server, &edns_query(APP, qtype, &ecs_option(sent)), t);
            assert_eq!(r.ecs().as_deref(), Some(sent), "{sent:?} over {t:?}");
            assert_eq!(r.an.len(), 1, "{sent:?} over {t:?}");
            assert_eq!(r.an[0].rdata, addr, "{sent:?} over {t:?}");
        }
    }
}

// =============================================================================================
// RFC 8482: ANY.

/// RFC 8482 §4.1: an ANY query gets "a single RRset" (or a synthesized HINFO, §4.2), not
/// every RRset at the name; fedns does the same over TCP. The RRset is complete: the same as
/// a query for its type.
#[test]
fn rfc8482_s4_1_any_gets_one_rrset() {
    let server = server();
    for t in [Udp, Tcp] {
        for n in [APEX, APP, STATUS, NS1, "shop.fed.example.com"] {
            let r = ask(&server, &plain_query(n, ANY), t);
            assert_eq!(r.rcode(), NOERROR, "{n} over {t:?}");
            assert!(r.has(AA), "{n} over {t:?}");
            assert!(!r.an.is_empty(), "{n} over {t:?}: empty");
            let first = &r.an[0];
            assert!(
                r.an.iter()
                    .all(|rr| (rr.name.to_lowercase(), rr.rtype, rr.class)
                        == (first.name.to_lowercase(), first.rtype, first.class)),
                "{n} over {t:?}: more than one RRset: {:?}",
                r.an
            );
            let direct = ask(&server, &plain_query(n, first.rtype), t);
            assert_eq!(
                r.answer_lines(),
                direct.answer_lines(),
                "{n} over {t:?}: not the whole RRset"
            );
        }
    }
}

// =============================================================================================
// RFC 8906: answer every well-formed query.

/// RFC 8906 §3.1.2 (test §8.1.2): a type the server does not know gets the answer it would
/// get for a known type without data: NODATA, or NXDOMAIN where the name does not exist.
#[test]
fn rfc8906_s3_1_2_unknown_types_get_nodata() {
    let server = server();
    for t in [Udp, Tcp] {
        for qtype in [1000, 65000, 65535] {
            for n in [APEX, APP, STATUS, NS1] {
                let r = ask(&server, &plain_query(n, qtype), t);
                assert_eq!(r.rcode(), NOERROR, "{n} TYPE{qtype} over {t:?}");
                assert!(r.has(AA) && r.an.is_empty(), "{n} TYPE{qtype}: {r:?}");
                assert_eq!(r.ns.iter().map(|rr| rr.rtype).collect::<Vec<_>>(), [SOA]);
            }
            let r = ask(&server, &plain_query(NOTHING, qtype), t);
            assert_eq!(r.rcode(), NXDOMAIN, "TYPE{qtype} over {t:?}");
        }
    }
}

/// RFC 8906 §3.1.2: obsolete types (MD, MF: RFC 1035 §3.3.4-5; A6: RFC 6563; SPF: RFC 7208)
/// are answered like any type without data.
#[test]
fn rfc8906_s3_1_2_obsolete_types_get_nodata() {
    let server = server();
    for t in [Udp, Tcp] {
        for qtype in [MD, MF, A6, SPF] {
            for n in [APEX, APP, STATUS] {
                let r = ask(&server, &plain_query(n, qtype), t);
                assert_eq!(r.rcode(), NOERROR, "{n} type {qtype} over {t:?}");
                assert!(r.has(AA) && r.an.is_empty(), "{n} type {qtype}: {r:?}");
                assert_eq!(r.ns.iter().map(|rr| rr.rtype).collect::<Vec<_>>(), [SOA]);
            }
        }
    }
}

/// RFC 8906 §3.1.3 (test §8.1.3.3): a query with the reserved header bit Z set is answered;
/// a flag the server does not know is not copied, so Z is clear in the reply (RFC 1035
/// §4.1.1: "Must be zero in all queries and responses").
#[test]
fn rfc8906_s3_1_3_reserved_z_bit_ignored_and_cleared() {
    let server = server();
    for t in [Udp, Tcp] {
        for ar in [vec![], vec![opt_rr(1232, 0, 0, &[])]] {
            let query = message(0x0e0e, Z, &[question(APEX, SOA, IN)], &[], &[], &ar);
            let r = ask(&server, &query, t);
            assert_eq!((r.rcode(), r.an.len()), (NOERROR, 1), "over {t:?}");
            assert!(r.has(AA), "over {t:?}");
            assert!(!r.has(Z), "over {t:?}: Z copied");
        }
    }
}

/// RFC 8906 §3.1.3 (tests §8.1.3.1, §8.1.3.2): queries with CD or AD set are answered
/// normally; AD stays clear, since fedns authenticates nothing (RFC 4035 §3.1.6).
#[test]
fn rfc8906_s3_1_3_ad_and_cd_queries_answered_ad_clear() {
    let server = server();
    for t in [Udp, Tcp] {
        for flags in [AD, CD, AD | CD] {
            let query = message(0x0f0f, flags, &[question(APEX, SOA, IN)], &[], &[], &[]);
            let r = ask(&server, &query, t);
            assert_eq!(
                (r.rcode(), r.an.len()),
                (NOERROR, 1),
                "{flags:#x} over {t:?}"
            );
            assert!(r.has(AA), "{flags:#x} over {t:?}");
            assert!(!r.has(AD), "{flags:#x} over {t:?}: AD set");
        }
    }
}

/// RFC 8906 §3.1.4 (test §8.1.4): "NOTIMP is the expected rcode to an unknown or unimplemented
/// opcode", with the opcode copied (RFC 1035 §4.1.1), no records, AA clear -- with a question
/// and header-only alike.
#[test]
fn rfc8906_s3_1_4_unknown_opcodes_are_notimp() {
    let server = server();
    for t in [Udp, Tcp] {
        for op in [3u8, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] {
            for (what, query) in [
                (
                    "with a question",
                    message(
                        0x1010,
                        opcode(op),
                        &[question(APEX, SOA, IN)],
                        &[],
                        &[],
                        &[],
                    ),
                ),
                (
                    "header only",
                    message(0x1010, opcode(op), &[], &[], &[], &[]),
                ),
            ] {
                let r = ask(&server, &query, t);
                assert_eq!(r.rcode(), NOTIMP, "opcode {op} {what} over {t:?}");
                assert_eq!(r.opcode(), op, "opcode {op} {what} over {t:?}");
                assert!(!r.has(AA), "opcode {op} {what} over {t:?}");
                assert_eq!((r.an.len(), r.ns.len(), r.ar.len()), (0, 0, 0));
            }
        }
    }
}

/// RFC 8906 §3.1.4 for the opcodes fedns does not implement: STATUS (RFC 1035), NOTIFY
/// (RFC 1996: fedns is no secondary) and UPDATE (RFC 2136 §2.2: NOTIMP "The name server does
/// not support the specified Opcode") are NOTIMP with the opcode copied.
#[test]
fn rfc8906_s3_1_4_status_notify_update_are_notimp() {
    let server = server();
    let notify = message(
        0x1111,
        opcode(4) | AA,
        &[question(APEX, SOA, IN)],
        &[],
        &[],
        &[],
    );
    // UPDATE: zone section (the apex, SOA), no prerequisites, one RR to add.
    let update = message(
        0x1111,
        opcode(5),
        &[question(APEX, SOA, IN)],
        &[],
        &[record("x.fed.example.com", A, IN, 60, &[192, 0, 2, 99])],
        &[],
    );
    let status = message(0x1111, opcode(2), &[question(APEX, SOA, IN)], &[], &[], &[]);
    for t in [Udp, Tcp] {
        for (op, query) in [(2, &status), (4, &notify), (5, &update)] {
            let r = ask(&server, query, t);
            assert_eq!(r.rcode(), NOTIMP, "opcode {op} over {t:?}");
            assert_eq!(r.opcode(), op, "opcode {op} over {t:?}");
            assert_eq!((r.an.len(), r.ns.len()), (0, 0), "opcode {op} over {t:?}");
        }
    }
}

/// RFC 5936 §2.2.1 / RFC 1995: a server that will not transfer the zone answers AXFR and
/// IXFR with REFUSED (SPEC §8: no transfers of geo answers), over TCP and UDP.
#[test]
fn rfc5936_s2_2_1_zone_transfers_are_refused() {
    let server = server();
    let mut soa = name("");
    soa.extend(name(""));
    for v in [1u32, 0, 0, 0, 0] {
        soa.extend(v.to_be_bytes());
    }
    let axfr = plain_query(APEX, AXFR);
    // IXFR carries the client's SOA in the authority section (RFC 1995 §3).
    let ixfr = message(
        0x1212,
        0,
        &[question(APEX, IXFR, IN)],
        &[],
        &[record(APEX, SOA, IN, 0, &soa)],
        &[],
    );
    for t in [Tcp, Udp] {
        for (what, query) in [("AXFR", &axfr), ("IXFR", &ixfr)] {
            let r = ask(&server, query, t);
            assert_eq!(r.rcode(), REFUSED, "{what} over {t:?}");
            assert!(r.an.is_empty(), "{what} over {t:?}");
        }
    }
}
