//! Replicas that vote: fedns writes its view into a Lease in every member cluster (the
//! imitation API server, over HTTPS, through the real kube client), reads the other
//! replicas' Leases, and decides each target's health by the quorum. The other replicas
//! here are Leases the test writes as a replica would.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use fedns::fleet::digest_lines;
use fedns_testkit::apiserver::{
    FakeCluster, Resource, endpoint_slice, lb_service, lease, micro_time,
};
use fedns_testkit::server::TestServer;
use fedns_testkit::wait::eventually;
use hickory_proto::rr::RecordType;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const APP: &str = "app.default.myfed.svc.fed.example.com";
const NEW_YORK: &str = "198.18.0.0/24";
const PATIENCE: Duration = Duration::from_secs(20);
const NS: &str = "fedns";

/// A load balancer: a TCP listener on `addr` that accepts and closes; `down` closes it.
struct Lb {
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Lb {
    async fn start(addr: SocketAddr) -> Lb {
        let mut lb = Lb { addr, task: None };
        lb.up().await;
        lb
    }

    async fn up(&mut self) {
        let l = TcpListener::bind(self.addr).await.unwrap();
        self.task = Some(tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                drop(s);
            }
        }));
    }

    fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A port free on 127.0.0.11 and 127.0.0.12.
async fn free_port() -> u16 {
    loop {
        let a = TcpListener::bind("127.0.0.11:0").await.unwrap();
        let port = a.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.12", port)).await.is_ok() {
            return port;
        }
    }
}

/// us-east (app on 127.0.0.11) and eu-west (app on 127.0.0.12), TCP probes at the tests'
/// fast interval, and this replica `r1` of a fleet with `quorum`.
async fn replica(us: &FakeCluster, eu: &FakeCluster, port: u16, quorum: &str) -> TestServer {
    for (c, ip) in [(us, "127.0.0.11"), (eu, "127.0.0.12")] {
        c.apply(
            Resource::Services,
            lb_service("default", "app", &[ip], None, &[port]),
        );
        c.apply(
            Resource::EndpointSlices,
            endpoint_slice("default", "app", "app-abc", &[true]),
        );
    }
    let dir = fedns_testkit::sys::temp_dir("fleet");
    let mut yaml = format!(
        "zone: fed.example.com\nfederation: myfed\nzone_file: fed.zone\ngeoip: {{ database: city.mmdb }}\n\
         health: {{ probe: tcp, interval: 100ms, timeout: 200ms, rise: 2, fall: 2, quorum: {quorum} }}\n\
         kubernetes: {{ watch_timeout: 2s, connect_timeout: 1s, sync_timeout: 10s }}\n\
         fleet: {{ name: r1, region: us-east-1, lease_duration: 4s, renew: 1s }}\nclusters:\n"
    );
    for (c, region) in [(us, "us-east-1"), (eu, "eu-west-1")] {
        let kc = c.write_kubeconfig(&dir);
        yaml.push_str(&format!(
            "  - {{ name: {}, region: {region}, kubeconfig: {} }}\n",
            c.name(),
            kc.display()
        ));
    }
    TestServer::start_at(fedns_testkit::server::write_config("fleet-cfg", &yaml)).await
}

/// Two member clusters, us-east and eu-west, and their load balancers on 127.0.0.11 and
/// 127.0.0.12 at one free port.
struct World {
    port: u16,
    lbs: [Lb; 2],
    us: FakeCluster,
    eu: FakeCluster,
}

impl World {
    async fn start() -> World {
        let port = free_port().await;
        World {
            port,
            lbs: [
                Lb::start(SocketAddr::new("127.0.0.11".parse().unwrap(), port)).await,
                Lb::start(SocketAddr::new("127.0.0.12".parse().unwrap(), port)).await,
            ],
            us: FakeCluster::start("us-east").await,
            eu: FakeCluster::start("eu-west").await,
        }
    }

    /// Two other replicas, r2 (its Lease in us-east) and r3 (in eu-west), renewed now,
    /// that find `down` down.
    fn others(&self, down: &[String]) {
        self.us
            .apply(Resource::Leases, other_replica("r2", self.port, down, 0));
        self.eu
            .apply(Resource::Leases, other_replica("r3", self.port, down, 0));
    }

    /// This replica r1 with r2 and r3 fresh and seeing everything up; then its own path to
    /// us-east's load balancer breaks, and its own view says so.
    async fn outvoted(&mut self) -> TestServer {
        self.others(&[]);
        let server = replica(&self.us, &self.eu, self.port, "majority").await;
        until_answer(&server, "127.0.0.11").await;
        until_fresh(&server, &["r2", "r3"]).await;
        self.lbs[0].down();
        until_own_view_down(&self.us, &key("127.0.0.11", self.port), || self.others(&[])).await;
        server
    }
}

fn key(ip: &str, port: u16) -> String {
    format!("tcp:{ip}:{port}")
}

/// The digest of the target set this replica probes: the two apps' load balancers.
fn targets_digest(port: u16) -> String {
    let keys = [key("127.0.0.11", port), key("127.0.0.12", port)];
    digest_lines(keys.iter().map(String::as_str))
}

/// Another replica's Lease, renewed `ago` seconds ago, that finds `down` down.
fn other_replica(name: &str, port: u16, down: &[String], ago: u64) -> Value {
    let renewed = SystemTime::now() - Duration::from_secs(ago);
    let digest = targets_digest(port);
    let down = down.join(" ");
    let probed = format!("{} {}", key("127.0.0.11", port), key("127.0.0.12", port));
    lease(
        NS,
        &format!("fedns-{name}"),
        name,
        4,
        &micro_time(renewed),
        &[
            ("fleet.fedns.io/probed", "2"),
            ("fleet.fedns.io/targets", &digest),
            ("fleet.fedns.io/down", &down),
            ("fleet.fedns.io/probed-targets", &probed),
        ],
    )
}

async fn answer(server: &TestServer) -> Vec<String> {
    let r = server
        .client()
        .ask(APP, RecordType::A, Some(NEW_YORK))
        .await;
    fedns_testkit::dns::answer_lines(&r)
        .into_iter()
        .map(|l| l.rsplit(' ').next().unwrap_or_default().to_owned())
        .collect()
}

async fn until_answer(server: &TestServer, want: &str) {
    eventually(PATIENCE, || async move {
        let got = answer(server).await;
        if got == [want] {
            Ok(())
        } else {
            Err(format!("answer stayed {got:?}, want [{want}]"))
        }
    })
    .await;
}

/// Waits until /debug/fleet shows `names` as fresh replicas.
async fn until_fresh(server: &TestServer, names: &[&str]) {
    let admin = server.admin;
    eventually(PATIENCE, || async move {
        let (code, body) = fedns_testkit::http::get(admin, "/debug/fleet").await;
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        let fresh: Vec<&str> = v["replicas"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["fresh"] == true)
            .filter_map(|r| r["name"].as_str())
            .collect();
        if code == 200 && names.iter().all(|n| fresh.contains(n)) {
            Ok(())
        } else {
            Err(format!("fresh replicas {fresh:?}, want {names:?}: {body}"))
        }
    })
    .await;
}

/// Waits until this replica's own Lease in `c` names `dead` down.
async fn until_own_view_down(c: &FakeCluster, dead: &str, renew: impl Fn()) {
    let renew = &renew;
    eventually(PATIENCE, || {
        renew();
        async move {
            match own_lease(c) {
                Some(l) if annotation(&l, "down") == dead => Ok(()),
                l => Err(format!("own view never said {dead} down: {l:?}")),
            }
        }
    })
    .await;
}

/// Waits until this replica's Lease in `c` has another renewTime than `before`.
async fn until_renewed(c: &FakeCluster, before: &Value) {
    eventually(PATIENCE, || async move {
        let now = own_lease(c).unwrap()["spec"]["renewTime"].clone();
        if now != *before {
            Ok(())
        } else {
            Err(format!("renewTime stayed {now}"))
        }
    })
    .await;
}

/// The annotations of this replica's Lease in a cluster, once it has one.
fn own_lease(c: &FakeCluster) -> Option<Value> {
    c.get(Resource::Leases, NS, "fedns-r1")
}

fn annotation(lease: &Value, k: &str) -> String {
    lease["metadata"]["annotations"][format!("fleet.fedns.io/{k}")]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_publishes_its_view_to_every_cluster() {
    let World {
        port,
        mut lbs,
        us,
        eu,
    } = World::start().await;
    let server = replica(&us, &eu, port, "majority").await;
    until_answer(&server, "127.0.0.11").await;
    for c in [&us, &eu] {
        eventually(PATIENCE, || async move {
            match own_lease(c) {
                Some(l) if annotation(&l, "probed") == "2" => Ok(()),
                l => Err(format!("{}: lease {l:?}", c.name())),
            }
        })
        .await;
        let l = own_lease(c).unwrap();
        assert_eq!(l["spec"]["holderIdentity"], "r1");
        assert_eq!(l["spec"]["leaseDurationSeconds"], 4);
        assert_eq!(annotation(&l, "targets"), targets_digest(port));
        assert_eq!(annotation(&l, "down"), "");
        assert_eq!(annotation(&l, "region"), "us-east-1");
    }
    // us-east's load balancer dies: the view says so in both clusters' copies. Alone,
    // this replica's own view decides (no other replica votes), and New York moves.
    lbs[0].down();
    let dead = key("127.0.0.11", port);
    for c in [&us, &eu] {
        let dead = &dead;
        eventually(PATIENCE, || async move {
            match own_lease(c) {
                Some(l) if annotation(&l, "down") == *dead => Ok(()),
                l => Err(format!("{}: lease {l:?}", c.name())),
            }
        })
        .await;
    }
    until_answer(&server, "127.0.0.12").await;
    // Renewed on a steady period even when nothing changes.
    let before = own_lease(&us).unwrap()["spec"]["renewTime"].clone();
    until_renewed(&us, &before).await;
    lbs[0].up().await;
    until_answer(&server, "127.0.0.11").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_majority_outvotes_one_vantage_point_and_follows_a_real_outage() {
    let mut world = World::start().await;
    // This replica's path to us-east breaks (its probes fail), the others still see it up:
    // outvoted, it keeps answering us-east.
    let server = world.outvoted().await;
    let dead = key("127.0.0.11", world.port);
    for _ in 0..10 {
        world.others(&[]);
        let got = answer(&server).await;
        if got != ["127.0.0.11"] {
            let (_, fleet) = fedns_testkit::http::get(server.admin, "/debug/fleet").await;
            let (_, records) = fedns_testkit::http::get(server.admin, "/debug/records").await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let later = answer(&server).await;
            panic!(
                "one vantage point moved clients to {got:?} (1 s later: {later:?}); /debug/fleet: {fleet}\n/debug/records: {records}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let debug = fedns_testkit::http::get(server.admin, "/debug/fleet").await;
    assert_eq!(debug.0, 200, "{}", debug.1);
    let fleet: Value = serde_json::from_str(&debug.1).unwrap();
    let t = fleet["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == dead.as_str())
        .unwrap_or_else(|| panic!("{dead} not in {fleet}"));
    assert_eq!(t["down"], serde_json::json!(["r1"]), "{t}");
    assert_eq!(t["decided"], "healthy", "{t}");

    // The outage is real: the others see it too, and the answer moves.
    world.others(std::slice::from_ref(&dead));
    until_answer(&server, "127.0.0.12").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_view_stops_voting() {
    let mut world = World::start().await;
    // Two replicas that see us-east up, renewed until this replica's own view says it is
    // down; then they stop renewing (killed).
    let server = world.outvoted().await;
    world.others(&[]);
    let renewed = std::time::Instant::now();
    // Outvoted while their Leases are fresh (4 s from the last renewal)...
    while renewed.elapsed() < Duration::from_secs(2) {
        assert_eq!(answer(&server).await, ["127.0.0.11"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...then their Leases expire, their votes end, and this replica decides alone.
    until_answer(&server, "127.0.0.12").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_conflicts_and_a_forbidden_cluster_do_not_stop_publishing() {
    let World {
        port,
        lbs: _lbs,
        us,
        eu,
    } = World::start().await;
    eu.set_forbidden_writes(Resource::Leases, true);
    let server = replica(&us, &eu, port, "majority").await;
    until_answer(&server, "127.0.0.11").await;
    eventually(PATIENCE, || {
        let us = &us;
        async move {
            own_lease(us)
                .map(drop)
                .ok_or_else(|| "no lease in us-east".to_owned())
        }
    })
    .await;
    // Two conflicts in a row on the next renewal, then the write goes through.
    let before = own_lease(&us).unwrap()["spec"]["renewTime"].clone();
    let writes = us.write_count(Resource::Leases);
    us.set_write_conflicts(2);
    until_renewed(&us, &before).await;
    assert!(
        us.write_count(Resource::Leases) >= writes + 3,
        "{} writes after {writes}: the conflicts were not retried",
        us.write_count(Resource::Leases)
    );
    // eu-west refuses every write; fedns keeps answering and keeps trying.
    assert!(own_lease(&eu).is_none());
    let tried = eu.write_count(Resource::Leases);
    assert!(tried >= 1, "fedns never tried to write to eu-west");
    assert_eq!(answer(&server).await, ["127.0.0.11"]);
    server.stop().await;
}

/// Runs `fedns <args> --config <the server's config>`; panics unless it exits 0.
fn fedns_cli(server: &TestServer, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fedns"))
        .args(args)
        .arg("--config")
        .arg(&server.path)
        .output()
        .expect("run fedns");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "fedns {args:?}: {text}");
    text
}

async fn records(server: &TestServer) -> Value {
    let (code, body) = fedns_testkit::http::get(server.admin, "/debug/records").await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_moves_clients_never_takes_the_last_healthy_cluster_and_expires() {
    let World {
        port,
        mut lbs,
        us,
        eu,
    } = World::start().await;
    let server = replica(&us, &eu, port, "majority").await;
    until_answer(&server, "127.0.0.11").await;

    // Drained for the whole fleet: written to both clusters, New York moves.
    let out = fedns_cli(
        &server,
        &[
            "drain",
            "us-east",
            // Long enough to outlast the steps below on a slow machine (it ends on a
            // whole second: 9 to 10 s from now), short enough to wait for its end.
            "--for",
            "10s",
            "--reason",
            "kernel upgrade",
        ],
    );
    assert!(
        out.contains("us-east: written") && out.contains("eu-west: written"),
        "{out}"
    );
    for c in [&us, &eu] {
        let m = c
            .get(Resource::ConfigMaps, NS, "fedns-overrides")
            .expect("ConfigMap");
        assert!(
            m["data"]["us-east"]
                .as_str()
                .unwrap()
                .contains("kernel upgrade"),
            "{m}"
        );
    }
    until_answer(&server, "127.0.0.12").await;
    let (_, explain) = fedns_testkit::http::get(
        server.admin,
        &format!("/debug/explain?name={APP}&client={NEW_YORK}"),
    )
    .await;
    assert!(
        explain
            .lines()
            .any(|l| l.contains("us-east") && l.contains("(drained)")),
        "{explain}"
    );
    let (_, metrics) = fedns_testkit::http::get(server.admin, "/metrics").await;
    assert!(
        metrics.contains("fedns_fleet_overrides{action=\"drain\"} 1"),
        "{metrics}"
    );
    let r = records(&server).await;
    assert_eq!(r["overrides"][0]["key"], "us-east", "{r}");
    assert_eq!(r["overrides"][0]["action"], "drain", "{r}");
    assert_eq!(r["overrides"][0]["reason"], "kernel upgrade", "{r}");

    // eu-west dies: the drained us-east is the last healthy cluster, and keeps answering.
    lbs[1].down();
    until_answer(&server, "127.0.0.11").await;
    let r = records(&server).await;
    let app = r["names"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["object"] == "default/app")
        .unwrap();
    assert_eq!(app["drains_held"], true, "{app}");
    let (_, explain) = fedns_testkit::http::get(
        server.admin,
        &format!("/debug/explain?name={APP}&client={NEW_YORK}"),
    )
    .await;
    assert!(explain.contains("the drains are held"), "{explain}");
    lbs[1].up().await;
    until_answer(&server, "127.0.0.12").await;

    // The drain expires by itself: us-east is back.
    until_answer(&server, "127.0.0.11").await;
    assert_eq!(records(&server).await["overrides"], serde_json::json!([]));

    // A drain of one service, then undrain: removed in every cluster at once.
    fedns_cli(
        &server,
        &[
            "drain",
            "us-east",
            "--service",
            "default/app",
            "--for",
            "1h",
            "--reason",
            "canary",
        ],
    );
    until_answer(&server, "127.0.0.12").await;
    let out = fedns_cli(&server, &["undrain", "us-east", "--service", "default/app"]);
    assert!(
        out.contains("removed `us-east.default.app`: 2 of 2"),
        "{out}"
    );
    until_answer(&server, "127.0.0.11").await;
    server.stop().await;
}
