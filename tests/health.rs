//! Active health over real sockets: load-balancer listeners on 127.0.0.x that the tests
//! stop and start, and the DNS answers that follow. Real time is needed (real sockets), so
//! the tests assert order and outcome within generous bounds, never durations.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use fedns::snapshot::Health;
use hickory_proto::rr::RecordType;
use support::{DnsClient, TestServer, answer_lines};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const APP: &str = "app.default.myfed.svc.fed.example.com";
const NEW_YORK: &str = "198.18.0.0/24";
/// Long enough for any number of probe rounds at the test's 100 ms interval.
const PATIENCE: Duration = Duration::from_secs(15);

/// Three clusters whose `app` load balancers are listeners on 127.0.0.11/12/13:`port`.
fn config(port: u16, probe: &str) -> String {
    format!(
        r#"
zone: fed.example.com
federation: myfed
zone_file: fed.zone
geoip: {{ database: city.mmdb }}
health: {{ probe: {probe}, path: /healthz, interval: 100ms, timeout: 200ms, rise: 2, fall: 2 }}
clusters:
  - name: us-east
    region: us-east-1
    services: [{{ namespace: default, name: app, addresses: [127.0.0.11], port: {port} }}]
  - name: eu-west
    region: eu-west-1
    services: [{{ namespace: default, name: app, addresses: [127.0.0.12], port: {port} }}]
  - name: ap-northeast
    region: ap-northeast-1
    services: [{{ namespace: default, name: app, addresses: [127.0.0.13], port: {port} }}]
"#
    )
}

/// A load balancer: a TCP listener that answers HTTP with `status` (0: accept and hang).
struct Lb {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    task: Option<JoinHandle<()>>,
}

impl Lb {
    async fn start(addr: SocketAddr, status: u16) -> Lb {
        let mut lb = Lb {
            addr,
            status: Arc::new(AtomicU16::new(status)),
            task: None,
        };
        lb.up().await;
        lb
    }

    async fn up(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        let status = self.status.clone();
        self.task = Some(tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let status = status.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    match status.load(Ordering::Relaxed) {
                        0 => tokio::time::sleep(Duration::from_secs(30)).await,
                        code => {
                            let reply = format!(
                                "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            );
                            let _ = s.write_all(reply.as_bytes()).await;
                        }
                    }
                });
            }
        }));
    }

    /// Closes the listener: connections are refused from now on.
    fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A free port on all three test addresses.
async fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.11:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let ok = TcpListener::bind(("127.0.0.12", port)).await.is_ok()
            && TcpListener::bind(("127.0.0.13", port)).await.is_ok();
        if ok {
            return port;
        }
    }
}

async fn answer(client: &DnsClient) -> Vec<String> {
    let r = client.ask(APP, RecordType::A, Some(NEW_YORK)).await;
    answer_lines(&r)
        .into_iter()
        .map(|l| l.rsplit(' ').next().unwrap().to_owned())
        .collect()
}

/// Polls until the answer is `want`; panics with the last answer after PATIENCE.
async fn until(client: &DnsClient, want: &[&str]) {
    support::eventually(PATIENCE, || async move {
        let got = answer(client).await;
        if got == want {
            Ok(())
        } else {
            Err(format!("answer stayed {got:?}, want {want:?}"))
        }
    })
    .await;
}

/// Polls until the probes' states satisfy `pred` (and every target has been probed).
async fn until_states(
    server: &TestServer,
    what: &str,
    pred: impl Fn(&fedns::health::TargetState) -> bool,
) {
    let pred = &pred;
    support::eventually(PATIENCE, || async move {
        let states = server.running.shared.health.states();
        if states.len() == 3 && states.values().all(|s| s.probes > 0 && pred(s)) {
            Ok(())
        } else {
            Err(format!("probes never got {what}: {states:?}"))
        }
    })
    .await;
}

async fn lbs(port: u16, status: u16) -> Vec<Lb> {
    let mut v = Vec::new();
    for ip in ["127.0.0.11", "127.0.0.12", "127.0.0.13"] {
        v.push(Lb::start(SocketAddr::new(ip.parse().unwrap(), port), status).await);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_failover_and_return() {
    let port = free_port().await;
    let mut lbs = lbs(port, 200).await;
    let server = TestServer::start(&config(port, "tcp")).await;
    let client = server.client();
    until_states(&server, "healthy", |s| s.health == Health::Healthy).await;
    until(&client, &["127.0.0.11"]).await;

    // The nearest cluster's load balancer dies: New York moves to the next nearest.
    lbs[0].down();
    until(&client, &["127.0.0.12"]).await;
    // It comes back: the answer returns (after `rise` good probes).
    lbs[0].up().await;
    until(&client, &["127.0.0.11"]).await;

    // Every load balancer dies: fail-open answers the nearest as if healthy.
    for lb in &mut lbs {
        lb.down();
    }
    until_states(&server, "unhealthy", |s| s.health == Health::Unhealthy).await;
    // The snapshot follows the last health change; poll, then the answer must be stable.
    until(&client, &["127.0.0.11"]).await;
    for _ in 0..5 {
        assert_eq!(answer(&client).await, ["127.0.0.11"]);
    }
    server.running.shutdown(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_status_and_hanging_listener() {
    let port = free_port().await;
    let lbs = lbs(port, 200).await;
    let server = TestServer::start(&config(port, "http")).await;
    let client = server.client();
    until_states(&server, "healthy", |s| s.health == Health::Healthy).await;
    until(&client, &["127.0.0.11"]).await;
    // HTTP 500 counts as a failure.
    lbs[0].status.store(500, Ordering::Relaxed);
    until(&client, &["127.0.0.12"]).await;
    // A listener that accepts but never answers: the timeout counts as a failure.
    lbs[1].status.store(0, Ordering::Relaxed);
    until(&client, &["127.0.0.13"]).await;
    // Both recover.
    lbs[0].status.store(200, Ordering::Relaxed);
    lbs[1].status.store(200, Ordering::Relaxed);
    until(&client, &["127.0.0.11"]).await;
    let states = server.running.shared.health.states();
    let us = &states[&SocketAddr::new("127.0.0.11".parse().unwrap(), port)];
    assert!(us.failures >= 2 && us.probes > us.failures, "{us:?}");
    drop(lbs);
    server.running.shutdown(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_none_trusts_readiness() {
    let port = free_port().await;
    // No listener at all, but probes are off: the nearest is answered.
    let server = TestServer::start(&config(port, "none")).await;
    let client = server.client();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(answer(&client).await, ["127.0.0.11"]);
    assert!(server.running.shared.health.states().is_empty());
    server.running.shutdown(Duration::ZERO).await;
}
