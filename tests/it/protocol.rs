//! Protocol behaviour over real sockets that no RFC rule pins down: malformed packets never
//! kill the server, the payload size fedns advertises, which RRset ANY gets, response rate
//! limiting. Each malformed
//! kind is followed by a good query, so a server that died would fail the test.
//!
//! The RFC rules (header bits, EDNS, ECS validation, truncation, TCP framing and pipelining,
//! opcodes, transfers, ANY, CHAOS, QDCOUNT, responses never answered) live in tests/it/rfc.rs,
//! one test per rule.

use fedns_testkit::dns::{DnsClient, SILENCE, Transport, query};
use fedns_testkit::random::Xorshift;
use fedns_testkit::server::{CONFIG, TestServer};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::net::UdpSocket;

const APP: &str = "app.default.myfed.svc.fed.example.com";

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
async fn reply_advertises_at_most_1232_bytes() {
    let server = TestServer::start(CONFIG).await;
    let client = server.client();
    // fedns's own UDP limit (src/dns.rs MAX_UDP_PAYLOAD, DNS Flag Day 2020) whatever the
    // client offers, and never below 512 (RFC 6891 section 6.2.5).
    for offered in [65535, 4096, 1232, 1000, 512, 100] {
        let mut m = query(APP, RecordType::A, None);
        m.edns.as_mut().unwrap().set_max_payload(offered);
        let r = client.exchange(&m, Transport::Udp).await;
        let advertised = r.edns.expect("OPT in reply").max_payload();
        assert!(
            (512..=1232).contains(&advertised),
            "offered {offered}, advertised {advertised}"
        );
    }
    server.stop().await;
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

    // Random bytes of every length up to 600: whatever the replies, the server lives. All
    // sent from one socket, then the replies taken until a silence: waiting out, one by
    // one, the packets that get no reply (half of them are responses, by their QR bit)
    // took most of a minute.
    let mut random = Xorshift::new(0x9e37_79b9_7f4a_7c15);
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for len in (0..600).step_by(7) {
        sock.send_to(&random.bytes(len), server.addr).await.unwrap();
    }
    let mut buf = vec![0u8; 65_535];
    while let Ok(Ok(_)) = tokio::time::timeout(SILENCE, sock.recv_from(&mut buf)).await {}
    still_answers(&client).await;
    server.stop().await;
}

#[tokio::test]
async fn any_on_a_federated_name_is_its_a_records() {
    // RFC 8482 allows any one RRset (tests/it/rfc.rs checks that); fedns picks the A records of
    // a federated name, though it has AAAA too.
    let server = TestServer::start(CONFIG).await;
    let r = server
        .client()
        .exchange(
            &query(APP, RecordType::ANY, Some("198.18.2.0/24")),
            Transport::Udp,
        )
        .await;
    let types: Vec<RecordType> = r.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types, [RecordType::A]);
    server.stop().await;
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
    let (_, metrics) = fedns_testkit::http::get(server.admin, "/metrics").await;
    assert!(
        metrics.contains("fedns_rrl_responses_total{action=\"drop\"}"),
        "{metrics}"
    );
    server.stop().await;
}
