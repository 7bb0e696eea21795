//! Active health over real sockets: load-balancer listeners on 127.0.0.x that the tests
//! stop and start, and the DNS answers that follow. Real time is needed (real sockets), so
//! the tests assert order and outcome within generous bounds, never durations.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fedns::config::ProbeKind;
use fedns::health::Health;
use fedns::health::{Target, TargetState};
use fedns_testkit::apiserver::{FakeCluster, Resource, endpoint_slice, lb_service};
use fedns_testkit::dns::{DnsClient, answer_data};
use fedns_testkit::server::TestServer;
use fedns_testkit::wait::until_eq;
use hickory_proto::rr::RecordType;
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

/// A load balancer: a TCP listener that answers HTTP with `status` (0: accept and hang),
/// or with the status set for the request's path in `paths`.
struct Lb {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    paths: Arc<Mutex<HashMap<String, u16>>>,
    task: Option<JoinHandle<()>>,
}

impl Lb {
    async fn start(addr: SocketAddr, status: u16) -> Lb {
        let mut lb = Lb {
            addr,
            status: Arc::new(AtomicU16::new(status)),
            paths: Arc::default(),
            task: None,
        };
        lb.up().await;
        lb
    }

    /// From now on, requests for `path` are answered with `status`.
    fn set_path(&self, path: &str, status: u16) {
        self.paths.lock().unwrap().insert(path.to_owned(), status);
    }

    async fn up(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        let status = self.status.clone();
        let paths = self.paths.clone();
        self.task = Some(tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let status = status.clone();
                let paths = paths.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buf[..n]);
                    let path = request.split(' ').nth(1).unwrap_or("");
                    let by_path = paths.lock().unwrap().get(path).copied();
                    match by_path.unwrap_or_else(|| status.load(Ordering::Relaxed)) {
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
    free_port_but(0).await
}

/// A free port on all three test addresses, other than `not`.
async fn free_port_but(not: u16) -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.11:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let ok = port != not
            && TcpListener::bind(("127.0.0.12", port)).await.is_ok()
            && TcpListener::bind(("127.0.0.13", port)).await.is_ok();
        if ok {
            return port;
        }
    }
}

async fn answer(client: &DnsClient) -> Vec<String> {
    answer_for(client, APP).await
}

async fn answer_for(client: &DnsClient, name: &str) -> Vec<String> {
    answer_data(&client.ask(name, RecordType::A, Some(NEW_YORK)).await)
}

/// Polls until the answer is `want`; panics with the last answer after PATIENCE.
async fn until(client: &DnsClient, want: &[&str]) {
    until_for(client, APP, want).await;
}

async fn until_for(client: &DnsClient, name: &str, want: &[&str]) {
    until_eq(PATIENCE, name, || answer_for(client, name), want).await;
}

/// Polls until the probes' states satisfy `pred` (and every target has been probed).
async fn until_states(
    server: &TestServer,
    what: &str,
    pred: impl Fn(&fedns::health::TargetState) -> bool,
) {
    let pred = &pred;
    fedns_testkit::wait::eventually(PATIENCE, || async move {
        let states = server.running.app.health.states();
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
    server.stop().await;
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
    let states = server.running.app.health.states();
    let us = &states[&http_target("127.0.0.11", port, "/healthz")];
    assert!(us.failures >= 2 && us.probes > us.failures, "{us:?}");
    drop(lbs);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_none_trusts_readiness() {
    let port = free_port().await;
    // No listener at all, but probes are off: the nearest is answered.
    let server = TestServer::start(&config(port, "none")).await;
    let client = server.client();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(answer(&client).await, ["127.0.0.11"]);
    assert!(server.running.app.health.states().is_empty());
    server.stop().await;
}

fn http_target(ip: &str, port: u16, path: &str) -> Target {
    Target {
        addr: SocketAddr::new(ip.parse().unwrap(), port),
        kind: ProbeKind::Http,
        path: path.to_owned(),
        expect: 200,
    }
}

/// The state of one target, once it has been probed at least `probes` times.
async fn probed(server: &TestServer, t: &Target, probes: u64) -> TargetState {
    let mut seen = None;
    fedns_testkit::wait::eventually(PATIENCE, || {
        let states = server.running.app.health.states();
        let s = states.get(t).cloned();
        let done = s.as_ref().is_some_and(|s| s.probes >= probes);
        seen = s;
        async move {
            if done {
                Ok(())
            } else {
                Err(format!("{t} never reached {probes} probes: {states:?}"))
            }
        }
    })
    .await;
    seen.unwrap()
}

/// The static form of a probe port: the service is on one port, its health on another.
/// Only the probe port's listener decides; the service port has no listener at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_service_probe_port() {
    let health_port = free_port().await;
    let service_port = free_port_but(health_port).await;
    let mut lbs = lbs(health_port, 200).await;
    let config = config(service_port, "tcp").replace(
        &format!("port: {service_port} }}"),
        &format!("port: {service_port}, probe_port: {health_port} }}"),
    );
    let server = TestServer::start(&config).await;
    let client = server.client();
    until_states(&server, "healthy", |s| s.health == Health::Healthy).await;
    until(&client, &["127.0.0.11"]).await;
    // The health listener dies: New York leaves us-east.
    lbs[0].down();
    until(&client, &["127.0.0.12"]).await;
    lbs[0].up().await;
    until(&client, &["127.0.0.11"]).await;
    server.stop().await;
}

/// A federation of fake member clusters (us-east-1, eu-west-1, ap-northeast-1 regions in
/// that order) with TCP probes at the test's fast interval, once every cluster is synced.
async fn kube_federation(clusters: &[&FakeCluster]) -> TestServer {
    kube_federation_with(clusters, "").await
}

/// As `kube_federation`, with more `health:` items (`, min_ready: 2`).
async fn kube_federation_with(clusters: &[&FakeCluster], health: &str) -> TestServer {
    let regions = ["us-east-1", "eu-west-1", "ap-northeast-1"];
    let dir = fedns_testkit::sys::temp_dir("kube-health");
    let mut yaml = format!(
        "zone: fed.example.com\nfederation: myfed\nzone_file: fed.zone\ngeoip: {{ database: city.mmdb }}\n\
         health: {{ probe: tcp, interval: 100ms, timeout: 200ms, rise: 2, fall: 2{health} }}\n\
         kubernetes: {{ watch_timeout: 2s, connect_timeout: 1s, sync_timeout: 10s }}\nclusters:\n",
    );
    for (c, region) in clusters.iter().zip(regions) {
        let kc = c.write_kubeconfig(&dir);
        yaml.push_str(&format!(
            "  - {{ name: {}, region: {region}, kubeconfig: {} }}\n",
            c.name(),
            kc.display()
        ));
    }
    let path = fedns_testkit::server::write_config("kube-health-cfg", &yaml);
    std::fs::copy(&path, dir.join("fedns.yaml")).unwrap();
    for f in ["fed.zone", "city.mmdb"] {
        std::fs::copy(path.parent().unwrap().join(f), dir.join(f)).unwrap();
    }
    let server = TestServer::start_at(dir.join("fedns.yaml")).await;
    server.until_synced(PATIENCE).await;
    server
}

/// A LoadBalancer Service on `ip`, serving `port`, with one ready endpoint and the given
/// `fedns.io/` annotations.
fn annotated_service(
    c: &FakeCluster,
    name: &str,
    ip: &str,
    port: u16,
    annotations: &[(&str, String)],
) {
    let mut svc = lb_service("default", name, &[ip], None, &[port]);
    for (k, v) in annotations {
        svc["metadata"]["annotations"][format!("fedns.io/{k}")] = v.clone().into();
    }
    c.apply(Resource::Services, svc);
    c.apply(
        Resource::EndpointSlices,
        endpoint_slice("default", name, &format!("{name}-abc"), &[true]),
    );
}

/// A Service whose health is on another port (`fedns.io/probe-port`): when the listener on
/// that port dies, its cluster leaves the answers, though the service port never had one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotated_probe_port_fails_over() {
    let health_port = free_port().await;
    let service_port = free_port_but(health_port).await;
    let mut lbs = lbs(health_port, 200).await;
    let us = FakeCluster::start("us-east").await;
    let eu = FakeCluster::start("eu-west").await;
    let probe_port = [("probe-port", health_port.to_string())];
    annotated_service(&us, "app", "127.0.0.11", service_port, &probe_port);
    annotated_service(&eu, "app", "127.0.0.12", service_port, &probe_port);
    let server = kube_federation(&[&us, &eu]).await;
    let client = server.client();
    until(&client, &["127.0.0.11"]).await;
    let us_target = Target {
        addr: SocketAddr::new("127.0.0.11".parse().unwrap(), health_port),
        kind: ProbeKind::Tcp,
        path: String::new(),
        expect: 0,
    };
    assert_eq!(probed(&server, &us_target, 1).await.health, Health::Healthy);

    lbs[0].down();
    until(&client, &["127.0.0.12"]).await;
    lbs[0].up().await;
    until(&client, &["127.0.0.11"]).await;
    // Nothing probes the service port, which has no listener.
    let states = server.running.app.health.states();
    assert!(
        states.keys().all(|t| t.addr.port() == health_port),
        "{states:?}"
    );
    server.stop().await;
}

/// Two Services on one load-balancer address, probed on different paths, keep separate
/// states: one failing does not take the other out, and deleting one leaves the other's
/// state as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_on_one_address_keep_their_own_health() {
    const WEB: &str = "web.default.myfed.svc.fed.example.com";
    let port = free_port().await;
    let lbs = lbs(port, 200).await;
    let us = FakeCluster::start("us-east").await;
    let eu = FakeCluster::start("eu-west").await;
    for (c, ip) in [(&us, "127.0.0.11"), (&eu, "127.0.0.12")] {
        for name in ["app", "web"] {
            let probe = [
                ("probe", "http".to_owned()),
                ("probe-path", format!("/{name}")),
            ];
            annotated_service(c, name, ip, port, &probe);
        }
    }
    let server = kube_federation(&[&us, &eu]).await;
    let client = server.client();
    until_for(&client, APP, &["127.0.0.11"]).await;
    until_for(&client, WEB, &["127.0.0.11"]).await;

    // us-east's `/web` fails: web leaves us-east, app stays.
    lbs[0].set_path("/web", 503);
    until_for(&client, WEB, &["127.0.0.12"]).await;
    let app_target = http_target("127.0.0.11", port, "/app");
    let web_target = http_target("127.0.0.11", port, "/web");
    let app_before = probed(&server, &app_target, 1).await;
    assert_eq!(app_before.health, Health::Healthy);
    assert_eq!(answer_for(&client, APP).await, ["127.0.0.11"]);

    // `/app` fails and comes back, so its state has a history of its own.
    lbs[0].set_path("/app", 503);
    until_for(&client, APP, &["127.0.0.12"]).await;
    lbs[0].set_path("/app", 200);
    until_for(&client, APP, &["127.0.0.11"]).await;
    let app_before = probed(&server, &app_target, 1).await;
    assert!(app_before.failures > 0, "{app_before:?}");

    // Deleting web stops its probe and keeps app's state: its counts go on from where
    // they were, not from a fresh start.
    assert!(us.delete(Resource::Services, "default", "web"));
    fedns_testkit::wait::eventually(PATIENCE, || {
        let gone = !server.running.app.health.states().contains_key(&web_target);
        async move {
            if gone {
                Ok(())
            } else {
                Err("web's probe target was never removed".to_owned())
            }
        }
    })
    .await;
    let app_after = probed(&server, &app_target, app_before.probes + 2).await;
    assert_eq!(app_after.health, Health::Healthy, "{app_after:?}");
    assert!(
        app_after.failures >= app_before.failures,
        "app's state was reset: before {app_before:?}, after {app_after:?}"
    );
    assert_eq!(answer_for(&client, APP).await, ["127.0.0.11"]);
    until_for(&client, WEB, &["127.0.0.12"]).await;
    drop(lbs);
    server.stop().await;
}

/// A cluster down to its last pod, or to one of its two load-balancer addresses, stops
/// taking clients with `min_ready: 2` and `min_healthy_addresses: 2`, and takes them back
/// when it recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_below_its_minimums_gives_way() {
    let port = free_port().await;
    let mut lbs = lbs(port, 200).await;
    let us = FakeCluster::start("us-east").await;
    let eu = FakeCluster::start("eu-west").await;
    // us-east: two load balancers (127.0.0.11 and .13), one ready pod of three.
    us.apply(
        Resource::Services,
        lb_service(
            "default",
            "app",
            &["127.0.0.11", "127.0.0.13"],
            None,
            &[port],
        ),
    );
    let slice = |ready: &[bool]| endpoint_slice("default", "app", "app-abc", ready);
    us.apply(Resource::EndpointSlices, slice(&[true, false, false]));
    annotated_service(&eu, "app", "127.0.0.12", port, &[]);
    eu.apply(Resource::EndpointSlices, slice(&[true, true]));
    let health = ", min_ready: 2, min_healthy_addresses: 2";
    let server = kube_federation_with(&[&us, &eu], health).await;
    let client = server.client();
    // One ready pod: New York goes to eu-west.
    until(&client, &["127.0.0.12"]).await;
    // Two: us-east again, with both addresses.
    us.apply(Resource::EndpointSlices, slice(&[true, true, false]));
    until(&client, &["127.0.0.11", "127.0.0.13"]).await;
    // One of its two load balancers dies: below min_healthy_addresses, eu-west again.
    lbs[2].down();
    until(&client, &["127.0.0.12"]).await;
    lbs[2].up().await;
    until(&client, &["127.0.0.11", "127.0.0.13"]).await;
    // The Service's own minimum wins over the config's: three ready pods wanted, two
    // there, eu-west again.
    let mut svc = lb_service(
        "default",
        "app",
        &["127.0.0.11", "127.0.0.13"],
        None,
        &[port],
    );
    svc["metadata"]["annotations"]["fedns.io/min-ready"] = "3".into();
    us.apply(Resource::Services, svc);
    until(&client, &["127.0.0.12"]).await;
    server.stop().await;
}

/// Each steering annotation, end to end: the imitation API servers publish annotated
/// Services and their EndpointSlices, and answers over UDP follow them. A per-geography
/// order sends North America to eu-west and the rest to us-east; a Service's own bias
/// draws New York across the Atlantic; a cluster short of ready endpoints spills the
/// networks the documented hash picks (each answer's scope is its own network); weights
/// from ready endpoints share in proportion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steering_annotations_end_to_end() {
    let port = free_port().await;
    let _lbs = lbs(port, 200).await;
    let us = FakeCluster::start("us-east").await;
    let eu = FakeCluster::start("eu-west").await;
    let order = "us-east, eu-west; continent:NA=eu-west, us-east".to_owned();
    let both = |name: &str, us_ann: &[(&str, String)], eu_ann: &[(&str, String)]| {
        annotated_service(&us, name, "127.0.0.11", port, us_ann);
        annotated_service(&eu, name, "127.0.0.12", port, eu_ann);
    };
    let failover = [("policy", "failover".to_owned()), ("failover-order", order)];
    both("fo", &failover, &[]);
    both("bi", &[], &[("bias", "99".to_owned())]);
    both("sp", &[("spill-below", "10".to_owned())], &[]);
    let weighted = [
        ("policy", "weighted".to_owned()),
        ("weight", "ready-endpoints".to_owned()),
    ];
    both("wt", &weighted, &weighted);
    // Ready endpoints: us-east's sp has 4 (of the 10 it needs to keep all its clients);
    // wt has 1 in us-east and 3 in eu-west.
    let slice = |name: &str, n: usize| {
        endpoint_slice("default", name, &format!("{name}-abc"), &vec![true; n])
    };
    us.apply(Resource::EndpointSlices, slice("sp", 4));
    us.apply(Resource::EndpointSlices, slice("wt", 1));
    eu.apply(Resource::EndpointSlices, slice("wt", 3));
    let server = kube_federation_with(&[&us, &eu], "").await;
    let client = server.client();
    let name = |svc: &str| format!("{svc}.default.myfed.svc.fed.example.com");
    let ask = |svc: &str, ecs: &'static str| {
        let (client, name) = (&client, name(svc));
        async move { answer_data(&client.ask(&name, RecordType::A, Some(ecs)).await) }
    };
    const LONDON: &str = "198.18.1.0/24";
    const US_V6: &str = "2001:db8:1::/48";

    // The order for North America: New York to eu-west; London keeps the default.
    // London first: only once us-east's annotated Service is known does London get
    // us-east, whereas New York gets eu-west before that too (the only cluster), and
    // without consulting any order.
    until_eq(
        PATIENCE,
        "fo from London",
        || ask("fo", LONDON),
        &["127.0.0.11"],
    )
    .await;
    until_for(&client, &name("fo"), &["127.0.0.12"]).await;
    // eu-west's own bias of 99 for bi: its distances count 1 %.
    until_for(&client, &name("bi"), &["127.0.0.12"]).await;
    // Spillover: us-east keeps 40 % of its clients, by the hash of the network that
    // placed them: New York's 198.18.0.0/24 (0.42: sent on) and 2001:db8:1::/48 in the
    // United States (0.15: kept).
    let share = |net: &str| fedns::answer::network_share(net.parse().unwrap());
    let expect = |net: &str| {
        if share(net) >= 0.4 {
            "127.0.0.12"
        } else {
            "127.0.0.11"
        }
    };
    let want_ny = expect("198.18.0.0/24");
    let want_v6 = expect(US_V6);
    assert_ne!(want_ny, want_v6, "one network of each side");
    until_eq(
        PATIENCE,
        "sp from New York",
        || ask("sp", NEW_YORK),
        &[want_ny],
    )
    .await;
    until_eq(
        PATIENCE,
        "sp from the US over IPv6",
        || ask("sp", US_V6),
        &[want_v6],
    )
    .await;
    // Asked again (a cache hit), the same, with each network's own prefix as scope.
    for (ecs, want, scope) in [(NEW_YORK, want_ny, 24), (US_V6, want_v6, 48)] {
        let m = client.ask(&name("sp"), RecordType::A, Some(ecs)).await;
        assert_eq!(answer_data(&m), [want], "{ecs}");
        assert_eq!(
            fedns_testkit::dns::ecs_of(&m).map(|e| e.1),
            Some(scope),
            "{ecs}"
        );
    }
    // Weights from ready endpoints: about 1 in 4 to us-east.
    let mut to_us = 0;
    for _ in 0..400 {
        let a = ask("wt", NEW_YORK).await;
        assert!(a == ["127.0.0.11"] || a == ["127.0.0.12"], "{a:?}");
        to_us += usize::from(a == ["127.0.0.11"]);
    }
    assert!((50..150).contains(&to_us), "{to_us} of 400 to us-east");
    // Each rule counted its answers.
    let (status, metrics) = fedns_testkit::http::get(server.admin, "/metrics").await;
    assert_eq!(status, 200);
    for rule in ["geo-order", "spillover"] {
        let line = format!("fedns_steered_answers_total{{rule=\"{rule}\"}} ");
        let n: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {line} in /metrics"));
        assert!(n > 0.0, "{line}{n}");
    }
    server.stop().await;
}
