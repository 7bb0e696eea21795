//! Records from Kubernetes, end to end: fake API servers (HTTPS, tokens, list/watch,
//! bookmarks, 410) stand in for member clusters; the real kube client in fedns watches them;
//! the tests change objects and inject faults and assert the DNS answers over real sockets.

use std::time::Duration;

use fedns_testkit::apiserver::{
    FakeCluster, Fault, Listener, ParentRef, Resource, allow_listeners, dns_endpoint,
    endpoint_slice, gateway, http_route, ingress, istio_gateway, lb_service, listener_set,
    namespace, virtual_service,
};
use fedns_testkit::dns::{DnsClient, answer_data};
use fedns_testkit::server::TestServer;
use fedns_testkit::wait::until_eq;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const APP: &str = "app.default.myfed.svc.fed.example.com";
const NEW_YORK: &str = "198.18.0.0/24";
const TOKYO: &str = "198.18.2.0/24";
const PATIENCE: Duration = Duration::from_secs(20);

/// A federation of the given fake clusters (us-east, eu-west, ap-northeast regions in that
/// order), each reached through its own kubeconfig; probes off, so that readiness and
/// Kubernetes alone decide.
async fn federation(clusters: &[&FakeCluster]) -> TestServer {
    federation_with(clusters, |_, kubeconfig| kubeconfig).await
}

/// As `federation`, with each kubeconfig's text passed through `tamper(cluster, text)`.
async fn federation_with(
    clusters: &[&FakeCluster],
    tamper: impl Fn(&str, String) -> String,
) -> TestServer {
    federation_configured(clusters, tamper, SYNC_TIMEOUT).await
}

/// As `federation`, with API discovery asked again every second: CRDs installed while
/// fedns runs are followed within it.
async fn federation_discovering(clusters: &[&FakeCluster]) -> TestServer {
    federation_built(clusters, |_, k| k, SYNC_TIMEOUT, ", discovery_interval: 1s").await
}

/// Readiness waits this long at most for the clusters to sync, in these tests' config.
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// As `federation_with`, with readiness waiting `sync_timeout` at most.
async fn federation_configured(
    clusters: &[&FakeCluster],
    tamper: impl Fn(&str, String) -> String,
    sync_timeout: Duration,
) -> TestServer {
    federation_built(clusters, tamper, sync_timeout, "").await
}

/// The config of the functions above; `kube_extra` goes inside `kubernetes: { ... }`.
async fn federation_built(
    clusters: &[&FakeCluster],
    tamper: impl Fn(&str, String) -> String,
    sync_timeout: Duration,
    kube_extra: &str,
) -> TestServer {
    let regions = ["us-east-1", "eu-west-1", "ap-northeast-1"];
    let dir = fedns_testkit::sys::temp_dir("kube");
    let mut yaml = String::from(
        "zone: fed.example.com\nfederation: myfed\nzone_file: fed.zone\ngeoip: { database: city.mmdb }\n\
         health: { probe: none }\nkubernetes: { watch_timeout: 2s, connect_timeout: 1s, sync_timeout: SYNCsEXTRA }\n\
         state_file: state.json\nclusters:\n",
    )
    .replace("SYNC", &sync_timeout.as_secs().to_string())
    .replace("EXTRA", kube_extra);
    for (c, region) in clusters.iter().zip(regions) {
        let kc = c.write_kubeconfig(&dir);
        let text = std::fs::read_to_string(&kc).unwrap();
        std::fs::write(&kc, tamper(c.name(), text)).unwrap();
        yaml.push_str(&format!(
            "  - {{ name: {}, region: {region}, kubeconfig: {}, context: {} }}\n",
            c.name(),
            kc.display(),
            c.name()
        ));
    }
    let path = fedns_testkit::server::write_config("kube-cfg", &yaml);
    std::fs::copy(&path, dir.join("fedns.yaml")).unwrap();
    for f in ["fed.zone", "city.mmdb"] {
        std::fs::copy(path.parent().unwrap().join(f), dir.join(f)).unwrap();
    }
    TestServer::start_at(dir.join("fedns.yaml")).await
}

/// Polls `/readyz` until it answers 200.
async fn until_ready(server: &TestServer) {
    until_eq(
        PATIENCE,
        "/readyz",
        || async { fedns_testkit::http::get(server.admin, "/readyz").await.0 },
        200,
    )
    .await;
}

/// us-east and eu-west, each with `app` (192.0.2.10 and 198.51.100.10), and fedns
/// watching both, once both are synced and New York is answered from us-east.
async fn two_clusters_with_app() -> (FakeCluster, FakeCluster, TestServer, DnsClient) {
    let us = FakeCluster::start("us-east").await;
    let eu = FakeCluster::start("eu-west").await;
    service(&us, "app", &["192.0.2.10"]);
    service(&eu, "app", &["198.51.100.10"]);
    let server = federation(&[&us, &eu]).await;
    server.until_synced(PATIENCE).await;
    let client = server.client();
    until(&client, APP, NEW_YORK, &["192.0.2.10"]).await;
    (us, eu, server, client)
}

/// A LoadBalancer Service with one ready endpoint.
fn service(c: &FakeCluster, name: &str, ips: &[&str]) {
    c.apply(
        Resource::Services,
        lb_service("default", name, ips, None, &[443]),
    );
    c.apply(
        Resource::EndpointSlices,
        endpoint_slice("default", name, &format!("{name}-abc"), &[true]),
    );
}

async fn ask(client: &DnsClient, name: &str, subnet: &str) -> (ResponseCode, Vec<String>) {
    let r = client.ask(name, RecordType::A, Some(subnet)).await;
    (r.metadata.response_code, answer_data(&r))
}

/// Polls until `name` answers `want` for `subnet`.
async fn until(client: &DnsClient, name: &str, subnet: &str, want: &[&str]) {
    let what = format!("{name} from {subnet}");
    until_eq(
        PATIENCE,
        &what,
        || async { ask(client, name, subnet).await.1 },
        want,
    )
    .await;
}

async fn until_rcode(client: &DnsClient, name: &str, want: ResponseCode) {
    until_eq(
        PATIENCE,
        name,
        || async { ask(client, name, NEW_YORK).await.0 },
        want,
    )
    .await;
}

fn stale(server: &TestServer, cluster: &str) -> bool {
    server.running.app.store.contents()[cluster].stale()
}

async fn until_stale(server: &TestServer, cluster: &str, want: bool) {
    let what = format!("{cluster} stale");
    until_eq(PATIENCE, &what, || async { stale(server, cluster) }, want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_appear_change_and_disappear() {
    let us = FakeCluster::start("us-east").await;
    let eu = FakeCluster::start("eu-west").await;
    service(&us, "app", &["192.0.2.10"]);
    service(&eu, "app", &["198.51.100.10"]);
    let server = federation(&[&us, &eu]).await;
    let client = server.client();
    // The same namespace/name in two clusters is one name: each client gets its nearest.
    until(&client, APP, NEW_YORK, &["192.0.2.10"]).await;
    until(&client, APP, TOKYO, &["198.51.100.10"]).await;
    // A new load-balancer address in us-east.
    us.apply(
        Resource::Services,
        lb_service(
            "default",
            "app",
            &["192.0.2.20", "2001:db8::20"],
            None,
            &[443],
        ),
    );
    until(&client, APP, NEW_YORK, &["192.0.2.20"]).await;
    // Deleted in us-east: New York falls to eu-west.
    us.delete(Resource::Services, "default", "app");
    until(&client, APP, NEW_YORK, &["198.51.100.10"]).await;
    // Deleted everywhere: NXDOMAIN.
    eu.delete(Resource::Services, "default", "app");
    until_rcode(&client, APP, ResponseCode::NXDomain).await;
    // A Service that is not of type LoadBalancer never shows.
    let mut cluster_ip = lb_service("default", "internal", &["10.0.0.1"], None, &[80]);
    cluster_ip["spec"]["type"] = "ClusterIP".into();
    us.apply(Resource::Services, cluster_ip);
    service(&us, "marker", &["192.0.2.99"]);
    until(
        &client,
        "marker.default.myfed.svc.fed.example.com",
        NEW_YORK,
        &["192.0.2.99"],
    )
    .await;
    assert_eq!(
        ask(
            &client,
            "internal.default.myfed.svc.fed.example.com",
            NEW_YORK
        )
        .await
        .0,
        ResponseCode::NXDomain
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_lb_ingress_and_readiness() {
    let us = FakeCluster::start("us-east").await;
    let eu = FakeCluster::start("eu-west").await;
    // A cloud load balancer with only a hostname: CNAME.
    us.apply(
        Resource::Services,
        lb_service(
            "default",
            "api",
            &[],
            Some("api-123.elb.amazonaws.com"),
            &[443],
        ),
    );
    us.apply(
        Resource::EndpointSlices,
        endpoint_slice("default", "api", "api-1", &[true]),
    );
    service(&eu, "api", &["198.51.100.30"]);
    // Ingress hosts inside the zone; one outside is ignored.
    us.apply(
        Resource::Ingresses,
        ingress(
            "web",
            "www",
            &["www.fed.example.com", "www.other.org"],
            &["192.0.2.80"],
        ),
    );
    eu.apply(
        Resource::Ingresses,
        ingress("web", "www", &["www.fed.example.com"], &["198.51.100.80"]),
    );
    let server = federation(&[&us, &eu]).await;
    let client = server.client();
    until(
        &client,
        "api.default.myfed.svc.fed.example.com",
        NEW_YORK,
        &["api-123.elb.amazonaws.com."],
    )
    .await;
    until(&client, "www.fed.example.com", NEW_YORK, &["192.0.2.80"]).await;
    until(&client, "www.fed.example.com", TOKYO, &["198.51.100.80"]).await;
    // Readiness to zero in us-east: New York goes to eu-west.
    us.apply(
        Resource::EndpointSlices,
        endpoint_slice("default", "api", "api-1", &[false, false]),
    );
    until(
        &client,
        "api.default.myfed.svc.fed.example.com",
        NEW_YORK,
        &["198.51.100.30"],
    )
    .await;
    // Ready again.
    us.apply(
        Resource::EndpointSlices,
        endpoint_slice("default", "api", "api-1", &[false, true]),
    );
    until(
        &client,
        "api.default.myfed.svc.fed.example.com",
        NEW_YORK,
        &["api-123.elb.amazonaws.com."],
    )
    .await;
    // /debug/records shows the Kubernetes-learned names.
    let (status, body) = fedns_testkit::http::get(server.admin, "/debug/records").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("api-123.elb.amazonaws.com") && body.contains("www.fed.example.com"),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_goes_down_keeps_its_records_and_catches_up() {
    let (us, eu, server, client) = two_clusters_with_app().await;

    for fault in [
        Fault::Refuse,
        Fault::Status(500),
        Fault::Status(403),
        Fault::Hang,
    ] {
        us.set_fault(fault);
        us.set_fault(Fault::CutWatches);
        until_stale(&server, "us-east", true).await;
        // Last-known records are kept: an API outage is not a load-balancer outage.
        assert_eq!(
            ask(&client, APP, NEW_YORK).await.1,
            ["192.0.2.10"],
            "{fault:?}"
        );
        // The other cluster is not slowed: its changes still arrive.
        service(&eu, "app", &["198.51.100.11"]);
        until(&client, APP, TOKYO, &["198.51.100.11"]).await;
        service(&eu, "app", &["198.51.100.10"]);
        until(&client, APP, TOKYO, &["198.51.100.10"]).await;
        // While down, us-east changes; when it is back, fedns catches up.
        service(&us, "app", &["192.0.2.11"]);
        us.set_fault(Fault::None);
        until(&client, APP, NEW_YORK, &["192.0.2.11"]).await;
        until_stale(&server, "us-east", false).await;
        service(&us, "app", &["192.0.2.10"]);
        until(&client, APP, NEW_YORK, &["192.0.2.10"]).await;
    }
    let (_, metrics) = fedns_testkit::http::get(server.admin, "/metrics").await;
    assert!(
        metrics.contains("fedns_cluster_stale{cluster=\"us-east\"} 0"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_410_relists_with_no_gap_in_answers() {
    let us = FakeCluster::start("us-east").await;
    for i in 0..20 {
        service(&us, &format!("svc{i}"), &[&format!("192.0.2.{}", 100 + i)]);
    }
    let server = federation(&[&us]).await;
    let client = server.client();
    until(
        &client,
        "svc19.default.myfed.svc.fed.example.com",
        NEW_YORK,
        &["192.0.2.119"],
    )
    .await;
    let lists_before = us
        .requests()
        .iter()
        .filter(|r| r.contains("limit=") && !r.contains("watch="))
        .count();
    // The watch's resourceVersion becomes too old: the next watch gets 410 and fedns
    // relists. Queries during the relist must all be answered from the old set.
    us.compact();
    service(&us, "svc0", &["192.0.2.200"]);
    us.compact();
    us.set_fault(Fault::CutWatches);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        for i in 1..20 {
            let name = format!("svc{i}.default.myfed.svc.fed.example.com");
            let (rcode, got) = ask(&client, &name, NEW_YORK).await;
            assert_eq!(
                (rcode, got),
                (ResponseCode::NoError, vec![format!("192.0.2.{}", 100 + i)]),
                "gap during relist"
            );
        }
        let (_, svc0) = ask(&client, "svc0.default.myfed.svc.fed.example.com", NEW_YORK).await;
        let lists = us
            .requests()
            .iter()
            .filter(|r| r.contains("limit=") && !r.contains("watch="))
            .count();
        if svc0 == ["192.0.2.200"] && lists > lists_before {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no relist seen");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_sync_and_bad_credentials_do_not_block_others() {
    let us = FakeCluster::start("us-east").await;
    let eu = FakeCluster::start("eu-west").await;
    service(&eu, "app", &["198.51.100.10"]);
    // us-east hangs from the start: /readyz names it.
    us.set_fault(Fault::Hang);
    let server = federation(&[&us, &eu]).await;
    let client = server.client();
    until(&client, APP, NEW_YORK, &["198.51.100.10"]).await;
    let (status, body) = fedns_testkit::http::get(server.admin, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("us-east") && !body.contains("eu-west"),
        "{body}"
    );
    us.set_fault(Fault::None);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, body) = fedns_testkit::http::get(server.admin, "/readyz").await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready: {body}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.stop().await;

    // A kubeconfig with a wrong token: 401, the cluster is flagged stale with the error,
    // it does not hold readiness back, and the other cluster serves.
    let bad = FakeCluster::start("us-east").await;
    service(&bad, "app", &["192.0.2.10"]);
    let token = bad.token();
    let server = federation_with(&[&bad, &eu], |name, text| {
        if name == "us-east" {
            text.replace(&token, "not-the-token")
        } else {
            text
        }
    })
    .await;
    let client = server.client();
    until(&client, APP, NEW_YORK, &["198.51.100.10"]).await;
    until_stale(&server, "us-east", true).await;
    let contents = server.running.app.store.contents();
    let err = contents["us-east"]
        .kube
        .as_ref()
        .unwrap()
        .last_error
        .clone()
        .unwrap_or_default();
    assert!(
        err.contains("401") || err.to_lowercase().contains("unauthorized"),
        "{err}"
    );
    // Ready once the snapshot that marks us-east stale is published (the store has it
    // first).
    until_ready(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_set_policy() {
    let us = FakeCluster::start("us-east").await;
    let eu = FakeCluster::start("eu-west").await;
    for (c, ip) in [(&us, "192.0.2.10"), (&eu, "198.51.100.10")] {
        let mut svc = lb_service("default", "pay", &[ip], None, &[443]);
        svc["metadata"]["annotations"] = serde_json::json!({
            "fedns.io/policy": "failover",
            "fedns.io/failover-order": "eu-west,us-east",
            "fedns.io/hosts": "pay.fed.example.com",
        });
        c.apply(Resource::Services, svc);
        c.apply(
            Resource::EndpointSlices,
            endpoint_slice("default", "pay", "pay-1", &[true]),
        );
    }
    let server = federation(&[&us, &eu]).await;
    // Both clusters known, or New York gets eu-west as the only one.
    server.until_synced(PATIENCE).await;
    let client = server.client();
    // Failover order from the annotation beats distance: New York gets eu-west.
    until(
        &client,
        "pay.default.myfed.svc.fed.example.com",
        NEW_YORK,
        &["198.51.100.10"],
    )
    .await;
    until(&client, "pay.fed.example.com", NEW_YORK, &["198.51.100.10"]).await;
    server.stop().await;
}

/// A Service annotated for ExternalDNS (the current prefix in one cluster, the old one in
/// the other) gets its host name, its target addresses instead of its load balancer's,
/// and its TTL, with no fedns annotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_dns_annotations_are_served() {
    let us = FakeCluster::start("us-east").await;
    let eu = FakeCluster::start("eu-west").await;
    for (c, prefix, lb, target) in [
        (
            &us,
            "external-dns.kubernetes.io",
            "192.0.2.10",
            "192.0.2.77",
        ),
        (
            &eu,
            "external-dns.alpha.kubernetes.io",
            "198.51.100.10",
            "198.51.100.77",
        ),
    ] {
        let mut svc = lb_service("default", "shop", &[lb], None, &[443]);
        svc["metadata"]["annotations"] = serde_json::json!({
            format!("{prefix}/hostname"): "store.fed.example.com,store.example.org",
            format!("{prefix}/target"): target,
            format!("{prefix}/ttl"): "45",
        });
        c.apply(Resource::Services, svc);
        c.apply(
            Resource::EndpointSlices,
            endpoint_slice("default", "shop", "shop-1", &[true]),
        );
    }
    let server = federation(&[&us, &eu]).await;
    let client = server.client();
    until(&client, "store.fed.example.com", NEW_YORK, &["192.0.2.77"]).await;
    until(
        &client,
        "store.fed.example.com",
        "198.18.1.0/24",
        &["198.51.100.77"],
    )
    .await;
    let federated = client
        .ask(
            "shop.default.myfed.svc.fed.example.com",
            RecordType::A,
            Some(NEW_YORK),
        )
        .await;
    assert_eq!(answer_data(&federated), ["192.0.2.77"]);
    assert_eq!(federated.answers[0].ttl, 45);
    // The name outside the zone is not fedns's.
    let (rcode, _) = ask(&client, "store.example.org", NEW_YORK).await;
    assert_eq!(rcode, ResponseCode::Refused);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_a_cluster_is_down_keeps_its_records_from_the_state_file() {
    let (us, _eu, server, _client) = two_clusters_with_app().await;
    let state = server.path.parent().unwrap().join("state.json");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !std::fs::read_to_string(&state).is_ok_and(|t| t.contains("192.0.2.10")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "state file never written"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let path = server.path.clone();
    server.stop().await;

    // us-east's API is down when fedns starts again: its last-known records still answer,
    // flagged stale.
    us.set_fault(Fault::Refuse);
    let server = TestServer::start_at(path.clone()).await;
    let client = server.client();
    assert_eq!(ask(&client, APP, NEW_YORK).await.1, ["192.0.2.10"]);
    assert!(stale(&server, "us-east"));
    until(&client, APP, TOKYO, &["198.51.100.10"]).await;
    // It comes back with a change made meanwhile: the sync replaces the restored records.
    us.delete(Resource::Services, "default", "app");
    service(&us, "web", &["192.0.2.20"]);
    us.set_fault(Fault::None);
    until(
        &client,
        "web.default.myfed.svc.fed.example.com",
        NEW_YORK,
        &["192.0.2.20"],
    )
    .await;
    until(&client, APP, NEW_YORK, &["198.51.100.10"]).await;
    until_stale(&server, "us-east", false).await;
    server.stop().await;

    // A corrupt state file is named in the log and ignored: fedns starts and syncs.
    std::fs::write(path.parent().unwrap().join("state.json"), b"{garbage").unwrap();
    let server = TestServer::start_at(path).await;
    until(&server.client(), APP, NEW_YORK, &["198.51.100.10"]).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_means_served() {
    let us = FakeCluster::start("us-east").await;
    let eu = FakeCluster::start("eu-west").await;
    for i in 0..300 {
        service(&us, &format!("u{i}"), &["192.0.2.10"]);
        service(&eu, &format!("e{i}"), &["198.51.100.10"]);
    }
    // Readiness gives up waiting after sync_timeout: make that longer than any sync here,
    // however busy the machine, so that 200 means synced.
    let server = federation_configured(&[&us, &eu], |_, k| k, PATIENCE * 2).await;
    let client = server.client();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while fedns_testkit::http::get(server.admin, "/readyz").await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The moment /readyz says 200, every cluster's records are in the published snapshot.
    assert_eq!(
        ask(&client, "u299.default.myfed.svc.fed.example.com", NEW_YORK)
            .await
            .1,
        ["192.0.2.10"]
    );
    assert_eq!(
        ask(&client, "e299.default.myfed.svc.fed.example.com", NEW_YORK)
            .await
            .1,
        ["198.51.100.10"]
    );
    server.stop().await;
}

/// A Gateway `infra/gw` with an HTTPS listener for `*.fed.example.com` taking routes from
/// every namespace, at `address` (an IP, or a host name), and the HTTPRoute `shop/shop`
/// for `tickets.fed.example.com` attached to it, backed by the Service `shop/shop` with one
/// ready endpoint. Installs the Gateway API's CRDs first.
fn gateway_and_route(c: &FakeCluster, address: &str) {
    for r in [Resource::Gateways, Resource::HttpRoutes] {
        c.install_crd(r);
    }
    let https = Listener::new("https", 443, "HTTPS")
        .hostname("*.fed.example.com")
        .namespaces_from("All");
    c.apply(
        Resource::Gateways,
        gateway("infra", "gw", &[https], &[address], true),
    );
    c.apply(
        Resource::HttpRoutes,
        http_route(
            "shop",
            "shop",
            &["tickets.fed.example.com"],
            &[ParentRef::new("gw").namespace("infra")],
            &["shop"],
        ),
    );
    c.apply(
        Resource::EndpointSlices,
        endpoint_slice("shop", "shop", "shop-1", &[true]),
    );
}

/// `/debug/records`' `kinds` of one cluster.
async fn kinds(server: &TestServer, cluster: &str) -> serde_json::Value {
    let (_, body) = fedns_testkit::http::get(server.admin, "/debug/records").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == cluster)
        .unwrap_or_else(|| panic!("no {cluster} in {body}"))["kinds"]
        .clone()
}

/// An HTTPRoute attached to Gateways in two clusters is one federated name answered by
/// geo; its backend losing every ready endpoint moves clients. A third cluster without
/// the Gateway API's CRDs, serving HTTPRoutes only at a version fedns does not read, is
/// normal: reported, and never in the way of the sync or readiness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_routes_are_answered_by_geo_and_backend_readiness() {
    let us = FakeCluster::start("us-east").await;
    let eu = FakeCluster::start("eu-west").await;
    let ap = FakeCluster::start("ap-northeast").await;
    gateway_and_route(&us, "192.0.2.20");
    gateway_and_route(&eu, "198.51.100.20");
    ap.install_crd_version(Resource::HttpRoutes, "v9");
    let server = federation_discovering(&[&us, &eu, &ap]).await;
    let client = server.client();
    until(
        &client,
        "tickets.fed.example.com",
        NEW_YORK,
        &["192.0.2.20"],
    )
    .await;
    until(
        &client,
        "tickets.fed.example.com",
        "198.18.1.0/24",
        &["198.51.100.20"],
    )
    .await;
    // Every cluster synced, the one without the CRDs too: ready.
    until_ready(&server).await;
    // us-east's backend has no ready endpoint any more: New York goes to eu-west.
    us.apply(
        Resource::EndpointSlices,
        endpoint_slice("shop", "shop", "shop-1", &[false]),
    );
    until(
        &client,
        "tickets.fed.example.com",
        NEW_YORK,
        &["198.51.100.20"],
    )
    .await;
    // Ready again; then its Gateway is no longer Programmed: New York moves again.
    us.apply(
        Resource::EndpointSlices,
        endpoint_slice("shop", "shop", "shop-1", &[true]),
    );
    until(
        &client,
        "tickets.fed.example.com",
        NEW_YORK,
        &["192.0.2.20"],
    )
    .await;
    let https = Listener::new("https", 443, "HTTPS")
        .hostname("*.fed.example.com")
        .namespaces_from("All");
    us.apply(
        Resource::Gateways,
        gateway("infra", "gw", &[https], &["192.0.2.20"], false),
    );
    until(
        &client,
        "tickets.fed.example.com",
        NEW_YORK,
        &["198.51.100.20"],
    )
    .await;
    // What each cluster serves, as discovery found it.
    let us_kinds = kinds(&server, "us-east").await;
    assert_eq!(us_kinds["HTTPRoute"], "watched at v1", "{us_kinds}");
    assert_eq!(us_kinds["Gateway"], "watched at v1", "{us_kinds}");
    assert_eq!(us_kinds["DNSEndpoint"], "missing (CRD not installed)");
    let ap_kinds = kinds(&server, "ap-northeast").await;
    assert_eq!(ap_kinds["Gateway"], "missing (CRD not installed)");
    assert_eq!(
        ap_kinds["HTTPRoute"],
        "served only at versions fedns does not read: v9"
    );
    let (_, metrics) = fedns_testkit::http::get(server.admin, "/metrics").await;
    for line in [
        "fedns_cluster_kind{cluster=\"ap-northeast\",kind=\"HTTPRoute\",state=\"unknown_version\"} 1",
        "fedns_cluster_kind{cluster=\"us-east\",kind=\"HTTPRoute\",state=\"watched\"} 1",
        "fedns_cluster_kind{cluster=\"us-east\",kind=\"TLSRoute\",state=\"missing\"} 1",
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
    server.stop().await;
}

/// A Gateway whose address is a host name (a cloud load balancer) answers its routes'
/// names with a CNAME, and a name of its own from ExternalDNS's annotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_hostname_address_answers_a_cname() {
    let us = FakeCluster::start("us-east").await;
    gateway_and_route(&us, "gw-1234.elb.us-east-1.amazonaws.com");
    let server = federation_discovering(&[&us]).await;
    let client = server.client();
    until(
        &client,
        "tickets.fed.example.com",
        NEW_YORK,
        &["gw-1234.elb.us-east-1.amazonaws.com."],
    )
    .await;
    let r = client
        .ask("tickets.fed.example.com", RecordType::A, Some(NEW_YORK))
        .await;
    assert_eq!(r.answers[0].record_type(), RecordType::CNAME);
    // ExternalDNS's hostname annotation on the Gateway: a name of its own.
    let mut gw = us
        .get(Resource::Gateways, "infra", "gw")
        .expect("the Gateway");
    gw["metadata"]["annotations"] =
        serde_json::json!({"external-dns.alpha.kubernetes.io/hostname": "edge.fed.example.com"});
    us.apply(Resource::Gateways, gw);
    until(
        &client,
        "edge.fed.example.com",
        NEW_YORK,
        &["gw-1234.elb.us-east-1.amazonaws.com."],
    )
    .await;
    server.stop().await;
}

/// DNSEndpoints in two clusters give one name their targets (answered by geo, with their
/// TTL); a CNAME entry is answered as a CNAME. The CRD is installed while fedns runs, and
/// its objects come in without a restart; removed, it takes its names with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_endpoints_from_two_clusters_and_a_crd_installed_while_running() {
    let us = FakeCluster::start("us-east").await;
    let eu = FakeCluster::start("eu-west").await;
    service(&us, "app", &["192.0.2.10"]);
    let server = federation_discovering(&[&us, &eu]).await;
    let client = server.client();
    until(&client, APP, NEW_YORK, &["192.0.2.10"]).await;
    until_rcode(&client, "api.fed.example.com", ResponseCode::NXDomain).await;
    for (c, ip) in [(&us, "192.0.2.30"), (&eu, "198.51.100.30")] {
        c.install_crd(Resource::DnsEndpoints);
        c.apply(
            Resource::DnsEndpoints,
            dns_endpoint(
                "default",
                "api",
                &[
                    ("api.fed.example.com", "A", &[ip], Some(42)),
                    ("docs.fed.example.com", "CNAME", &["docs.example.net"], None),
                ],
            ),
        );
    }
    until(&client, "api.fed.example.com", NEW_YORK, &["192.0.2.30"]).await;
    until(
        &client,
        "api.fed.example.com",
        "198.18.1.0/24",
        &["198.51.100.30"],
    )
    .await;
    let r = client
        .ask("api.fed.example.com", RecordType::A, Some(NEW_YORK))
        .await;
    assert_eq!(r.answers[0].ttl, 42);
    until(
        &client,
        "docs.fed.example.com",
        NEW_YORK,
        &["docs.example.net."],
    )
    .await;
    // The CRD removed in us-east: its names go there; eu-west still answers.
    us.uninstall_crd(Resource::DnsEndpoints);
    until(&client, "api.fed.example.com", NEW_YORK, &["198.51.100.30"]).await;
    eu.uninstall_crd(Resource::DnsEndpoints);
    until_rcode(&client, "api.fed.example.com", ResponseCode::NXDomain).await;
    // The Services were never held back.
    until(&client, APP, NEW_YORK, &["192.0.2.10"]).await;
    server.stop().await;
}

/// Istio: a Gateway's server hosts and a VirtualService bound to it answer with the
/// load-balancer address of the ingress gateway Service that selects the Gateway's pods,
/// by geo between two clusters, and follow that Service's readiness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_gateways_and_virtual_services_are_answered_by_geo() {
    let us = FakeCluster::start("us-east").await;
    let eu = FakeCluster::start("eu-west").await;
    for (c, ip) in [(&us, "192.0.2.60"), (&eu, "198.51.100.60")] {
        c.install_crd(Resource::IstioGateways);
        c.install_crd(Resource::VirtualServices);
        let mut svc = lb_service("istio-system", "istio-ingressgateway", &[ip], None, &[443]);
        svc["spec"]["selector"] = serde_json::json!({"istio": "ingressgateway"});
        c.apply(Resource::Services, svc);
        c.apply(
            Resource::EndpointSlices,
            endpoint_slice("istio-system", "istio-ingressgateway", "ig-1", &[true]),
        );
        c.apply(
            Resource::IstioGateways,
            istio_gateway(
                "istio-system",
                "public",
                &[("istio", "ingressgateway")],
                &[(
                    &["*/www.fed.example.com", "*/*.fed.example.com"],
                    443,
                    "HTTPS",
                )],
            ),
        );
        c.apply(
            Resource::VirtualServices,
            virtual_service(
                "shop",
                "cart",
                &["cart.fed.example.com"],
                &["istio-system/public"],
            ),
        );
    }
    let server = federation_discovering(&[&us, &eu]).await;
    let client = server.client();
    for name in ["www.fed.example.com", "cart.fed.example.com"] {
        until(&client, name, NEW_YORK, &["192.0.2.60"]).await;
        until(&client, name, "198.18.1.0/24", &["198.51.100.60"]).await;
    }
    // The ingress gateway's pods are not ready in us-east: New York goes to eu-west.
    us.apply(
        Resource::EndpointSlices,
        endpoint_slice("istio-system", "istio-ingressgateway", "ig-1", &[false]),
    );
    until(
        &client,
        "cart.fed.example.com",
        NEW_YORK,
        &["198.51.100.60"],
    )
    .await;
    let kinds = kinds(&server, "us-east").await;
    assert_eq!(kinds["VirtualService"], "watched at v1", "{kinds}");
    assert_eq!(
        kinds["Gateway.networking.istio.io"], "watched at v1",
        "{kinds}"
    );
    server.stop().await;
}

/// A route attached to a ListenerSet is answered with its Gateway's address once the
/// Gateway allows ListenerSets from the route's team namespace, and not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_on_a_listener_set_is_answered_once_its_gateway_allows_it() {
    let us = FakeCluster::start("us-east").await;
    for r in [
        Resource::Gateways,
        Resource::HttpRoutes,
        Resource::ListenerSets,
    ] {
        us.install_crd(r);
    }
    let web = Listener::http("web", 80).hostname("home.fed.example.com");
    let gw = |from: &str| {
        let mut g = gateway(
            "infra",
            "gw",
            std::slice::from_ref(&web),
            &["192.0.2.70"],
            true,
        );
        allow_listeners(&mut g, from);
        g
    };
    us.apply(Resource::Gateways, gw("None"));
    let team = Listener::new("team", 443, "HTTPS").hostname("*.team.fed.example.com");
    us.apply(
        Resource::ListenerSets,
        listener_set(
            "team",
            "team",
            &ParentRef::new("gw").namespace("infra"),
            &[team],
            true,
        ),
    );
    let to_set = ParentRef::new("team").kind("gateway.networking.k8s.io", "ListenerSet");
    us.apply(
        Resource::HttpRoutes,
        http_route(
            "team",
            "api",
            &["api.team.fed.example.com"],
            &[to_set],
            &["api"],
        ),
    );
    // A route on the Gateway's own listener, to see the cluster synced.
    us.apply(
        Resource::HttpRoutes,
        http_route("infra", "home", &[], &[ParentRef::new("gw")], &["home"]),
    );
    for (ns, service) in [("team", "api"), ("infra", "home")] {
        us.apply(
            Resource::EndpointSlices,
            endpoint_slice(ns, service, &format!("{service}-1"), &[true]),
        );
    }
    let server = federation_discovering(&[&us]).await;
    let client = server.client();
    until(&client, "home.fed.example.com", NEW_YORK, &["192.0.2.70"]).await;
    // The Gateway takes no ListenerSet: the route on it has no name.
    let (rcode, _) = ask(&client, "api.team.fed.example.com", NEW_YORK).await;
    assert_eq!(rcode, ResponseCode::NXDomain);
    us.apply(Resource::Gateways, gw("All"));
    until(
        &client,
        "api.team.fed.example.com",
        NEW_YORK,
        &["192.0.2.70"],
    )
    .await;
    let kinds = kinds(&server, "us-east").await;
    assert_eq!(kinds["ListenerSet"], "watched at v1", "{kinds}");
    assert_eq!(
        kinds["XListenerSet"], "missing (CRD not installed)",
        "{kinds}"
    );
    server.stop().await;
}

/// A listener that takes routes from namespaces selected by their labels: fedns watches
/// the Namespaces, and a route's name comes and goes with its namespace's label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_selecting_namespaces_by_label_follows_the_labels() {
    let us = FakeCluster::start("us-east").await;
    for r in [Resource::Gateways, Resource::HttpRoutes] {
        us.install_crd(r);
    }
    us.apply(Resource::Namespaces, namespace("shop", &[("team", "shop")]));
    let mut web = Listener::http("web", 80).hostname("*.fed.example.com");
    web = web.from_selector(&[("gateway-access", "granted")]);
    us.apply(
        Resource::Gateways,
        gateway("infra", "gw", &[web], &["192.0.2.80"], true),
    );
    us.apply(
        Resource::HttpRoutes,
        http_route(
            "shop",
            "cart",
            &["cart.fed.example.com"],
            &[ParentRef::new("gw").namespace("infra")],
            &["cart"],
        ),
    );
    us.apply(
        Resource::EndpointSlices,
        endpoint_slice("shop", "cart", "cart-1", &[true]),
    );
    service(&us, "app", &["192.0.2.10"]);
    let server = federation_discovering(&[&us]).await;
    let client = server.client();
    until(&client, APP, NEW_YORK, &["192.0.2.10"]).await;
    // The namespace lacks the label: no name.
    let (rcode, _) = ask(&client, "cart.fed.example.com", NEW_YORK).await;
    assert_eq!(rcode, ResponseCode::NXDomain);
    us.apply(
        Resource::Namespaces,
        namespace("shop", &[("team", "shop"), ("gateway-access", "granted")]),
    );
    until(&client, "cart.fed.example.com", NEW_YORK, &["192.0.2.80"]).await;
    us.apply(Resource::Namespaces, namespace("shop", &[("team", "shop")]));
    until_rcode(&client, "cart.fed.example.com", ResponseCode::NXDomain).await;
    server.stop().await;
}

/// Without the right to list Namespaces (the namespaced RBAC variant), a selector admits
/// nothing and the cluster is neither stale nor held back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_that_cannot_be_listed_do_not_make_the_cluster_stale() {
    let us = FakeCluster::start("us-east").await;
    for r in [Resource::Gateways, Resource::HttpRoutes] {
        us.install_crd(r);
    }
    us.set_forbidden(Resource::Namespaces, true);
    let web = Listener::http("web", 80)
        .hostname("*.fed.example.com")
        .from_selector(&[("team", "shop")]);
    us.apply(
        Resource::Gateways,
        gateway("infra", "gw", &[web], &["192.0.2.80"], true),
    );
    service(&us, "app", &["192.0.2.10"]);
    let server = federation_discovering(&[&us]).await;
    let client = server.client();
    until(&client, APP, NEW_YORK, &["192.0.2.10"]).await;
    // Long enough for the Namespaces watch to have failed a few times.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, body) = fedns_testkit::http::get(server.admin, "/debug/records").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let cluster = &v["clusters"][0];
    assert_eq!(cluster["stale"], false, "{cluster}");
    assert!(
        us.requests()
            .iter()
            .any(|r| r.contains("/api/v1/namespaces?")),
        "the Namespaces were never asked for"
    );
    until_ready(&server).await;
    server.stop().await;
}
