//! Protocol behaviour over real sockets: truncation, EDNS, malformed packets, opcodes and
//! transfers, TCP pipelining. Each malformed kind is followed by a good query, so a server
//! that died would fail the test.

mod support;

use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use support::{CONFIG, DnsClient, TestServer, Transport, query, read_frame};
use tokio::io::AsyncWriteExt;

const APP: &str = "app.default.myfed.svc.fed.example.com";
const BIG: &str = "big.default.myfed.svc.fed.example.com";

async fn still_answers(client: &DnsClient) {
    for t in [Transport::Udp, Transport::Tcp] {
        let r = client.exchange(&query(APP, RecordType::A, None), t).await;
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert_eq!(r.answers.len(), 1);
    }
}

fn header(id: u16, flags: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    [id, flags, qd, an, ns, ar]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

fn question(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for label in name.split('.') {
        v.push(label.len() as u8);
        v.extend_from_slice(label.as_bytes());
    }
    v.push(0);
    v.extend_from_slice(&1u16.to_be_bytes()); // A
    v.extend_from_slice(&1u16.to_be_bytes()); // IN
    v
}

fn rcode_of(reply: &[u8]) -> u8 {
    reply[3] & 0x0f
}

#[tokio::test]
async fn truncates_over_udp_and_answers_whole_over_tcp() {
    let server = TestServer::start(CONFIG).await;
    let client = server.client();
    // No EDNS: 512 bytes; 30 AAAA records do not fit.
    let mut m = query(BIG, RecordType::AAAA, None);
    m.edns = None;
    let udp = client.exchange(&m, Transport::Udp).await;
    assert!(udp.metadata.truncation, "TC must be set");
    assert!(udp.answers.len() < 30);
    let tcp = client.exchange(&m, Transport::Tcp).await;
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 30);
    // EDNS with 1232 bytes: it fits.
    let edns = client
        .exchange(&query(BIG, RecordType::AAAA, None), Transport::Udp)
        .await;
    assert!(!edns.metadata.truncation);
    assert_eq!(edns.answers.len(), 30);
    // A client that offers less than 512 still gets 512 (RFC 6891 section 6.2.5).
    let mut small = query(APP, RecordType::A, None);
    small.edns.as_mut().unwrap().set_max_payload(100);
    let r = client.exchange(&small, Transport::Udp).await;
    assert_eq!(r.answers.len(), 1);
    server.running.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn edns_rules() {
    let server = TestServer::start(CONFIG).await;
    let client = server.client();
    // OPT in the reply only when the query had one.
    let mut plain = query(APP, RecordType::A, None);
    plain.edns = None;
    assert!(client.exchange(&plain, Transport::Udp).await.edns.is_none());
    let r = client
        .exchange(&query(APP, RecordType::A, None), Transport::Udp)
        .await;
    let edns = r.edns.expect("OPT in reply");
    assert_eq!(edns.max_payload(), 1232);
    // EDNS version 1: BADVERS (RFC 6891 section 6.1.3).
    let mut v1 = query(APP, RecordType::A, None);
    v1.edns.as_mut().unwrap().set_version(1);
    let r = client.exchange(&v1, Transport::Udp).await;
    // BADVERS and BADSIG share the value 16; hickory decodes it as BADSIG.
    assert_eq!(
        u16::from(r.metadata.response_code),
        u16::from(ResponseCode::BADVERS)
    );
    assert!(r.answers.is_empty());
    still_answers(&client).await;
    server.running.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn malformed_ecs_is_formerr() {
    let server = TestServer::start(CONFIG).await;
    let client = server.client();
    let base = {
        let mut m = query(APP, RecordType::A, None);
        m.edns = Some(Edns::new());
        let mut bytes = m.to_vec().unwrap();
        // The OPT RR is last with RDLENGTH 0: patch in an option by hand.
        bytes.truncate(bytes.len() - 2);
        bytes
    };
    let with_option = |value: &[u8]| {
        let mut b = base.clone();
        let mut opt = 8u16.to_be_bytes().to_vec();
        opt.extend_from_slice(&(value.len() as u16).to_be_bytes());
        opt.extend_from_slice(value);
        b.extend_from_slice(&(opt.len() as u16).to_be_bytes());
        b.extend_from_slice(&opt);
        b
    };
    let cases: &[(&str, &[u8])] = &[
        ("scope set in a query", &[0, 1, 24, 8, 198, 18, 2]),
        ("host bits past the prefix", &[0, 1, 20, 0, 198, 18, 255]),
        (
            "address longer than the prefix",
            &[0, 1, 24, 0, 198, 18, 2, 1],
        ),
        ("address shorter than the prefix", &[0, 1, 24, 0, 198, 18]),
        ("unknown family", &[0, 3, 24, 0, 198, 18, 2]),
        ("IPv4 prefix over 32", &[0, 1, 33, 0, 1, 2, 3, 4, 5]),
        ("option too short", &[0, 1]),
    ];
    for (what, value) in cases {
        for t in [Transport::Udp, Transport::Tcp] {
            let reply = client
                .raw(&with_option(value), t)
                .await
                .unwrap_or_else(|| panic!("{what}: no reply over {t:?}"));
            assert_eq!(rcode_of(&reply), 1, "{what} over {t:?}: want FORMERR");
        }
    }
    // A well-formed one patched in the same way is answered with the geo answer for Tokyo.
    let reply = client
        .raw(&with_option(&[0, 1, 24, 0, 198, 18, 2]), Transport::Udp)
        .await
        .unwrap();
    let m = Message::from_vec(&reply).unwrap();
    assert_eq!(
        m.answers[0].to_string(),
        format!("{APP}. 30 IN A 203.0.113.10")
    );
    still_answers(&client).await;
    server.running.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn malformed_packets_never_kill_the_server() {
    let server = TestServer::start(CONFIG).await;
    let client = server.client();
    let good_q = question(APP);

    // Shorter than a header: nothing to answer, no reply.
    assert_eq!(client.raw(&[0x12, 0x34, 0x01], Transport::Udp).await, None);
    assert_eq!(client.raw(&[], Transport::Udp).await, None);
    still_answers(&client).await;

    // Garbage after a query header: FORMERR with the same ID.
    let mut garbage = header(0x0101, 0x0100, 1, 0, 0, 0);
    garbage.extend_from_slice(&[0xff; 40]);
    let r = client
        .raw(&garbage, Transport::Udp)
        .await
        .expect("FORMERR for garbage");
    assert_eq!((&r[..2], rcode_of(&r)), (&[0x01, 0x01][..], 1));

    // Truncated: the header promises a question that is cut off.
    let mut truncated = header(0x0202, 0x0100, 1, 0, 0, 0);
    truncated.extend_from_slice(&good_q[..good_q.len() - 6]);
    for t in [Transport::Udp, Transport::Tcp] {
        let r = client
            .raw(&truncated, t)
            .await
            .expect("FORMERR for truncated");
        assert_eq!(rcode_of(&r), 1, "{t:?}");
    }

    // A compression pointer that points at itself.
    let mut looped = header(0x0303, 0x0100, 1, 0, 0, 0);
    looped.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
    let r = client
        .raw(&looped, Transport::Udp)
        .await
        .expect("FORMERR for a pointer loop");
    assert_eq!(rcode_of(&r), 1);

    // A pointer forward, past the end of the packet.
    let mut forward = header(0x0404, 0x0100, 1, 0, 0, 0);
    forward.extend_from_slice(&[0xC0, 200, 0, 1, 0, 1]);
    let r = client
        .raw(&forward, Transport::Udp)
        .await
        .expect("FORMERR for a bad pointer");
    assert_eq!(rcode_of(&r), 1);

    // QDCOUNT 0 and 2: FORMERR.
    let r = client
        .raw(&header(0x0505, 0x0100, 0, 0, 0, 0), Transport::Udp)
        .await
        .expect("QDCOUNT 0");
    assert_eq!(rcode_of(&r), 1);
    let mut two = header(0x0606, 0x0100, 2, 0, 0, 0);
    two.extend_from_slice(&good_q);
    two.extend_from_slice(&good_q);
    let r = client.raw(&two, Transport::Udp).await.expect("QDCOUNT 2");
    assert_eq!(rcode_of(&r), 1);

    // A response (QR=1) is never answered (RFC 8906 section 3.1.5; no reflection).
    let mut response = header(0x0707, 0x8400, 1, 0, 0, 0);
    response.extend_from_slice(&good_q);
    assert_eq!(client.raw(&response, Transport::Udp).await, None);

    // Random bytes of every length up to 600: whatever the reply, the server lives.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for len in (0..600).step_by(7) {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = client.raw(&bytes, Transport::Udp).await;
    }
    still_answers(&client).await;
    server.running.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn opcodes_and_transfers() {
    let server = TestServer::start(CONFIG).await;
    let client = server.client();
    let mut notify = Message::new(9, MessageType::Query, OpCode::Status);
    notify.add_query(Query::query(Name::from_ascii(APP).unwrap(), RecordType::A));
    let r = client.exchange(&notify, Transport::Udp).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NotImp);
    for t in [RecordType::AXFR, RecordType::IXFR] {
        let r = client
            .exchange(&query("fed.example.com", t, None), Transport::Tcp)
            .await;
        assert_eq!(r.metadata.response_code, ResponseCode::Refused, "{t}");
    }
    // RD is copied, RA stays clear.
    let mut rd = query(APP, RecordType::A, None);
    rd.metadata.recursion_desired = true;
    let r = client.exchange(&rd, Transport::Udp).await;
    assert!(r.metadata.recursion_desired && !r.metadata.recursion_available);
    server.running.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn tcp_pipelining() {
    let server = TestServer::start(CONFIG).await;
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let names = [APP, "status.fed.example.com", "nothing.fed.example.com"];
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let mut m = query(n, RecordType::A, None);
        m.metadata.id = 100 + i as u16;
        let b = m.to_vec().unwrap();
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        out.extend_from_slice(&b);
    }
    // All three queries in one write, before reading any reply.
    s.write_all(&out).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..names.len() {
        let reply = read_frame(&mut s, support::REPLY_TIMEOUT)
            .await
            .expect("pipelined reply");
        ids.push(Message::from_vec(&reply).unwrap().metadata.id);
    }
    ids.sort();
    assert_eq!(ids, vec![100, 101, 102]);
    server.running.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn delegations_get_referrals() {
    let server = TestServer::start(CONFIG).await;
    let client = server.client();
    for name in ["sub.fed.example.com", "deep.name.sub.fed.example.com"] {
        let r = client
            .exchange(&query(name, RecordType::A, None), Transport::Udp)
            .await;
        assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{name}");
        // A referral: not authoritative, NS in authority, glue in additional.
        assert!(!r.metadata.authoritative, "{name}");
        assert!(r.answers.is_empty(), "{name}");
        let ns: Vec<String> = r.authorities.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            ns,
            ["sub.fed.example.com. 3600 IN NS ns.sub.fed.example.com."],
            "{name}"
        );
        let glue: Vec<String> = r.additionals.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            glue,
            ["ns.sub.fed.example.com. 3600 IN A 192.0.2.53"],
            "{name}"
        );
    }
    server.running.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn any_is_minimal_rfc8482() {
    let server = TestServer::start(CONFIG).await;
    let client = server.client();
    // RFC 8482 section 4.2: one RRset, not every record at the name.
    let r = client
        .exchange(
            &query("fed.example.com", RecordType::ANY, None),
            Transport::Udp,
        )
        .await;
    let types: std::collections::BTreeSet<RecordType> =
        r.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types.len(), 1, "{:?}", r.answers);
    // A federated name: its A records only, though it has AAAA too.
    let r = client
        .exchange(
            &query(APP, RecordType::ANY, Some("198.18.2.0/24")),
            Transport::Udp,
        )
        .await;
    let types: Vec<RecordType> = r.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types, [RecordType::A]);
    server.running.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn unknown_edns_options_are_ignored_rfc6891() {
    let server = TestServer::start(CONFIG).await;
    let client = server.client();
    // RFC 6891 section 6.1.2: options the server does not know are ignored.
    let mut m = query(APP, RecordType::A, None);
    m.edns.as_mut().unwrap().options_mut().insert(
        hickory_proto::rr::rdata::opt::EdnsOption::Unknown(65001, vec![1, 2, 3]),
    );
    let r = client.exchange(&m, Transport::Udp).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(r.answers.len(), 1);
    server.running.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn chaos_queries_disclose_no_version() {
    let server = TestServer::start(CONFIG).await;
    let client = server.client();
    // version.bind/hostname.bind CH TXT: refused, nothing about the software is disclosed.
    for name in ["version.bind", "hostname.bind", "version.server"] {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        let mut q = Query::query(Name::from_ascii(name).unwrap(), RecordType::TXT);
        q.set_query_class(hickory_proto::rr::DNSClass::CH);
        m.add_query(q);
        let r = client.exchange(&m, Transport::Udp).await;
        assert_eq!(r.metadata.response_code, ResponseCode::Refused, "{name}");
        assert!(r.answers.is_empty(), "{name}");
    }
    server.running.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn rrl_limits_udp_with_slips_and_spares_tcp() {
    let config = CONFIG.replace(
        "ttl: 30\n",
        "ttl: 30\nrrl: { responses_per_second: 5, slip: 2 }\n",
    );
    let server = TestServer::start(&config).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sent = 40;
    for id in 0..sent {
        let mut m = query(APP, RecordType::A, None);
        m.metadata.id = id;
        sock.send_to(&m.to_vec().unwrap(), server.addr)
            .await
            .unwrap();
    }
    let (mut full, mut truncated) = (0, 0);
    let mut buf = vec![0u8; 4096];
    while let Ok(Ok((n, _))) = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        sock.recv_from(&mut buf),
    )
    .await
    {
        let r = Message::from_vec(&buf[..n]).unwrap();
        if r.metadata.truncation {
            assert!(r.answers.is_empty());
            truncated += 1;
        } else {
            assert_eq!(r.answers.len(), 1);
            full += 1;
        }
    }
    // At most 5 a second in full (10 if the burst straddles a second), some slipped as TC
    // so real clients retry over TCP, the rest dropped.
    assert!((5..=10).contains(&full), "full {full}");
    assert!(truncated >= 10, "truncated {truncated}");
    assert!(full + truncated < sent as usize, "nothing dropped");
    // TCP is never limited.
    let client = server.client();
    for _ in 0..20 {
        let r = client
            .exchange(&query(APP, RecordType::A, None), Transport::Tcp)
            .await;
        assert_eq!(r.answers.len(), 1);
    }
    let (_, metrics) = support::http::get(server.admin, "/metrics").await;
    assert!(
        metrics.contains("fedns_rrl_responses_total{action=\"drop\"}"),
        "{metrics}"
    );
    server.running.shutdown(Duration::ZERO).await;
}
