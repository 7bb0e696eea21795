//! The listeners and the answer cache, over real sockets: several UDP workers on one
//! address, the cache following snapshot changes and never freezing a rotated answer, and
//! the TCP limits (connection cap, idle and slow-client timeouts; RFC 7766 section 6.2).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use fedns_testkit::dns::{Transport, answer_lines, query};
use fedns_testkit::server::{CONFIG, TestServer};
use fedns_testkit::wait::eventually;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::serialize::binary::BinDecodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const APP: &str = "app.default.myfed.svc.fed.example.com.";
/// How long any one wait in these tests may take before it counts as a failure.
const PATIENCE: Duration = Duration::from_secs(10);

fn with_listen(extra: &str) -> String {
    CONFIG.replace(
        r#"listen: { dns: ["127.0.0.1:0"] }"#,
        &format!(r#"listen: {{ dns: ["127.0.0.1:0"], {extra} }}"#),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_udp_workers_answer_every_client() {
    let config = with_listen("udp_workers: 3");
    assert!(config.contains("udp_workers: 3"));
    let server = TestServer::start(&config).await;
    // Many source ports, so that SO_REUSEPORT spreads them over the three sockets; each
    // client asks from a different place and must get its own nearest cluster.
    let cases = [
        ("198.18.0.0/24", "192.0.2.10"),
        ("198.18.1.0/24", "198.51.100.10"),
        ("198.18.2.0/24", "203.0.113.10"),
    ];
    let mut tasks = Vec::new();
    for i in 0..48 {
        let (ecs, want) = cases[i % cases.len()];
        let client = server.client();
        tasks.push(tokio::spawn(async move {
            let reply = client
                .exchange(&query(APP, RecordType::A, Some(ecs)), Transport::Udp)
                .await;
            assert_eq!(
                answer_lines(&reply),
                [format!("{APP} 30 IN A {want}")],
                "client {i} at {ecs}"
            );
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_answers_follow_a_reload() {
    let server = TestServer::start(CONFIG).await;
    let client = server.client();
    let tokyo = Some("198.18.2.0/24");
    for _ in 0..3 {
        let r = client.ask(APP, RecordType::A, tokyo).await;
        assert_eq!(answer_lines(&r), [format!("{APP} 30 IN A 203.0.113.10")]);
    }
    let config = std::fs::read_to_string(&server.path)
        .unwrap()
        .replace("ttl: 30\n", "ttl: 45\n");
    std::fs::write(&server.path, config).unwrap();
    eventually(PATIENCE, || async {
        let got = answer_lines(&client.ask(APP, RecordType::A, tokyo).await);
        if got == [format!("{APP} 45 IN A 203.0.113.10")] {
            Ok(())
        } else {
            Err(format!("still {got:?} after the reload"))
        }
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn rotated_answers_are_not_cached() {
    let server = TestServer::start(CONFIG).await;
    let client = server.client();
    let mut first = HashSet::new();
    for _ in 0..9 {
        let r = client
            .ask("rr.default.myfed.svc.fed.example.com", RecordType::A, None)
            .await;
        assert_eq!(r.answers.len(), 3);
        first.insert(r.answers[0].data.to_string());
    }
    assert!(first.len() > 1, "policy all always led with {first:?}");
    server.stop().await;
}

/// A length-prefixed query for `APP`.
fn framed_query(id: u16) -> Vec<u8> {
    let mut m = query(APP, RecordType::A, None);
    m.metadata.id = id;
    let bytes = m.to_vec().unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend(bytes);
    framed
}

/// Reads one framed reply, or None when the server closed the connection first.
async fn read_reply(s: &mut TcpStream) -> Option<Message> {
    let mut len = [0u8; 2];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut len))
        .await
        .expect("no reply and no close in time")
        .ok()?;
    let mut body = vec![0; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut body).await.ok()?;
    Some(Message::from_bytes(&body).unwrap())
}

/// Waits until the server closes `s`; returns how long that took.
async fn closed_after(s: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(PATIENCE, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the server kept the connection open"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_past_the_limit_are_closed() {
    let server = TestServer::start(&with_listen("tcp_max_connections: 2")).await;
    let mut held = Vec::new();
    for id in 0..2 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(&framed_query(id)).await.unwrap();
        assert!(read_reply(&mut s).await.is_some());
        held.push(s);
    }
    // A third connection is accepted by the kernel and closed by fedns, unanswered.
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    let _ = third.write_all(&framed_query(3)).await;
    assert!(read_reply(&mut third).await.is_none());
    // The two held connections still work, and once one closes a new one is served.
    held[0].write_all(&framed_query(4)).await.unwrap();
    assert_eq!(read_reply(&mut held[0]).await.unwrap().metadata.id, 4);
    drop(held.remove(1));
    eventually(PATIENCE, || async {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        let _ = s.write_all(&framed_query(5)).await;
        match read_reply(&mut s).await {
            Some(_) => Ok(()),
            None => Err("a freed connection slot was not reused".to_string()),
        }
    })
    .await;
    let metrics = fedns_testkit::http::get(server.admin, "/metrics").await.1;
    assert!(
        metrics.contains("fedns_tcp_connections_total{event=\"refused\"}"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_tcp_clients_are_closed() {
    let server = TestServer::start(&with_listen(
        "tcp_idle_timeout: 400ms, tcp_io_timeout: 300ms",
    ))
    .await;
    // Idle: answered, then closed once nothing more comes.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(&framed_query(1)).await.unwrap();
    let reply = read_reply(&mut idle).await.unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    let waited = closed_after(&mut idle).await;
    assert!(
        waited >= Duration::from_millis(300),
        "closed after {waited:?}"
    );
    // Slow: half a message, then nothing. Closed after the I/O timeout, before the idle one
    // would have (the idle timer does not restart on a partial message).
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    let q = framed_query(2);
    slow.write_all(&q[..q.len() / 2]).await.unwrap();
    closed_after(&mut slow).await;
    // A client that keeps asking is never cut off by the idle timeout.
    let mut busy = TcpStream::connect(server.addr).await.unwrap();
    for id in 0..6 {
        busy.write_all(&framed_query(id)).await.unwrap();
        assert_eq!(read_reply(&mut busy).await.unwrap().metadata.id, id);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let metrics = fedns_testkit::http::get(server.admin, "/metrics").await.1;
    for event in ["idle_timeout", "io_timeout"] {
        assert!(
            metrics.contains(&format!(
                "fedns_tcp_connections_total{{event=\"{event}\"}} 1"
            )),
            "{event}: {metrics}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn responses_are_never_answered_even_malformed() {
    // RFC 8906 section 3.1.1 (hickory-server used to answer FORMERR to a response whose
    // body did not parse).
    let server = TestServer::start(CONFIG).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut bytes = query(APP, RecordType::A, None).to_vec().unwrap();
    bytes[2] |= 0x80;
    bytes.truncate(bytes.len() - 3);
    sock.send_to(&bytes, server.addr).await.unwrap();
    let mut buf = [0u8; 512];
    let got = tokio::time::timeout(fedns_testkit::dns::SILENCE, sock.recv_from(&mut buf)).await;
    assert!(got.is_err(), "a malformed response was answered");
    server.stop().await;
}

#[tokio::test]
async fn the_general_path_truncates_to_no_records_with_opt() {
    // Class ANY is not the fast path's (it takes class IN only), so hickory encodes this
    // reply; a 30-record answer does not fit 512 bytes.
    let server = TestServer::start(CONFIG).await;
    let mut m = query(
        "big.default.myfed.svc.fed.example.com.",
        RecordType::AAAA,
        None,
    );
    m.queries[0].set_query_class(hickory_proto::rr::DNSClass::ANY);
    if let Some(e) = m.edns.as_mut() {
        e.set_max_payload(512);
    }
    let bytes = server
        .client()
        .raw(&m.to_vec().unwrap(), Transport::Udp)
        .await
        .expect("a reply");
    assert!(bytes.len() <= 512, "{} bytes", bytes.len());
    let reply = Message::from_bytes(&bytes).unwrap();
    assert!(reply.metadata.truncation);
    assert!(reply.answers.is_empty() && reply.authorities.is_empty());
    assert!(reply.edns.is_some(), "the OPT was dropped");
    let whole = server
        .client()
        .raw(&m.to_vec().unwrap(), Transport::Tcp)
        .await
        .expect("a reply");
    assert_eq!(Message::from_bytes(&whole).unwrap().answers.len(), 30);
    server.stop().await;
}

#[test]
fn a_rotated_name_takes_one_cache_slot_however_often_asked() {
    use fedns::dns::Worker;
    let handler = fedns_testkit::handler::handler_for(&fedns_testkit::server::load(CONFIG));
    let q = query("rr.default.myfed.svc.fed.example.com.", RecordType::A, None)
        .to_vec()
        .unwrap();
    let src = "127.0.0.1:5000".parse().unwrap();
    let mut w = Worker::default();
    let mut out = Vec::new();
    for _ in 0..100 {
        assert!(handler.respond(&mut w, &q, src, Transport::Udp, &mut out));
    }
    assert_eq!(w.cached(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bias_set_by_reload_draws_clients_from_farther_away() {
    let server = TestServer::start(CONFIG).await;
    let client = server.client();
    let new_york = Some("198.18.0.0/24");
    // us-east is 354 km away, eu-west 5,115 km.
    let r = client.ask(APP, RecordType::A, new_york).await;
    assert_eq!(answer_lines(&r), [format!("{APP} 30 IN A 192.0.2.10")]);
    // eu-west's bias 99 makes it count 1 % of its distance: 51 km.
    let config = std::fs::read_to_string(&server.path).unwrap().replacen(
        "    region: eu-west-1\n",
        "    region: eu-west-1\n    bias: 99\n",
        1,
    );
    std::fs::write(&server.path, config).unwrap();
    eventually(PATIENCE, || async {
        let got = answer_lines(&client.ask(APP, RecordType::A, new_york).await);
        if got == [format!("{APP} 30 IN A 198.51.100.10")] {
            Ok(())
        } else {
            Err(format!(
                "New York still gets {got:?} with eu-west's bias 99"
            ))
        }
    })
    .await;
    server.stop().await;
}
