//! Proves that the fake API server in `fedns_testkit::apiserver` is faithful
//! enough for the real `kube` client and `kube::runtime::watcher`.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use fedns_testkit::apiserver::{
    FakeCluster, Fault, Resource, config_map, endpoint_slice, ingress, lb_service, lease,
};
use futures::{Stream, StreamExt as _};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, ResourceExt as _,
    WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Client, Discovery};

/// Upper bound for any single step, so a broken server fails instead of hanging.
const STEP: Duration = Duration::from_secs(5);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A fresh directory for one test's kubeconfigs.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("apiserver-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A client built the way the product builds one: from a kubeconfig file.
async fn client_from_kubeconfig(path: &std::path::Path, context: &str) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
    let options = KubeConfigOptions {
        context: Some(context.to_owned()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("config from kubeconfig");
    Client::try_from(config).expect("client")
}

async fn client_for(cluster: &FakeCluster, test: &str) -> Client {
    let path = cluster.write_kubeconfig(&scratch_dir(test));
    client_from_kubeconfig(&path, cluster.name()).await
}

fn api_status(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(status) => (status.code, status.reason),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn names<K: kube::Resource>(objects: &[K]) -> Vec<String> {
    objects
        .iter()
        .map(|o| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()))
        .collect()
}

async fn next_event<S, K>(stream: &mut S) -> Event<K>
where
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Unpin,
{
    loop {
        match within("watcher event", stream.next()).await {
            Some(Ok(event)) => return event,
            Some(Err(_)) => continue, // errors are retried by the watcher itself
            None => panic!("watcher stream ended"),
        }
    }
}

/// Reads Init, InitApply..., InitDone and returns the listed objects' names.
async fn read_init<S, K>(stream: &mut S) -> Vec<String>
where
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Unpin,
    K: kube::Resource,
{
    assert!(
        matches!(next_event(stream).await, Event::Init),
        "expected Init"
    );
    let mut listed = Vec::new();
    loop {
        match next_event(stream).await {
            Event::InitApply(obj) => listed.push(format!(
                "{}/{}",
                obj.namespace().unwrap_or_default(),
                obj.name_any()
            )),
            Event::InitDone => return listed,
            _ => panic!("unexpected event during init"),
        }
    }
}

fn seed(cluster: &FakeCluster) {
    cluster.apply(
        Resource::Services,
        lb_service("prod", "web", &["192.0.2.10"], None, &[80, 443]),
    );
    cluster.apply(
        Resource::Services,
        lb_service(
            "prod",
            "api",
            &["192.0.2.11"],
            Some("api.lb.example"),
            &[443],
        ),
    );
    cluster.apply(
        Resource::Services,
        lb_service("dev", "web", &["198.51.100.7"], None, &[80]),
    );
    cluster.apply(
        Resource::Ingresses,
        ingress("prod", "shop", &["shop.example"], &["192.0.2.20"]),
    );
    cluster.apply(
        Resource::EndpointSlices,
        endpoint_slice("prod", "web", "web-abc12", &[true, false]),
    );
    cluster.apply(
        Resource::EndpointSlices,
        endpoint_slice("prod", "api", "api-xyz34", &[true]),
    );
}

#[tokio::test]
async fn version_and_discovery() {
    let cluster = FakeCluster::start("disco").await;
    let client = client_for(&cluster, "disco").await;
    let info = within("version", client.apiserver_version())
        .await
        .expect("version");
    assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", "33"));
    let discovery = within("discovery", Discovery::new(client).run())
        .await
        .expect("discovery");
    for (group, kind) in [
        ("", "Service"),
        ("networking.k8s.io", "Ingress"),
        ("discovery.k8s.io", "EndpointSlice"),
        ("coordination.k8s.io", "Lease"),
        ("", "ConfigMap"),
    ] {
        let gvk = kube::api::GroupVersionKind::gvk(group, "v1", kind);
        let (resource, caps) = discovery
            .resolve_gvk(&gvk)
            .unwrap_or_else(|| panic!("{kind} not discovered"));
        assert_eq!(resource.kind, kind);
        assert!(matches!(caps.scope, kube::discovery::Scope::Namespaced));
    }
    let gvk = kube::api::GroupVersionKind::gvk("coordination.k8s.io", "v1", "Lease");
    let (leases, caps) = discovery.resolve_gvk(&gvk).expect("Lease discovered");
    assert_eq!(leases.plural, "leases");
    for verb in ["create", "update", "patch", "delete", "watch"] {
        assert!(caps.supports_operation(verb), "leases: {verb}");
    }
}

#[tokio::test]
async fn typed_lists_gets_and_object_shape() {
    let cluster = FakeCluster::start("lists").await;
    seed(&cluster);
    let client = client_for(&cluster, "lists").await;

    let services = within(
        "list",
        Api::<Service>::all(client.clone()).list(&ListParams::default()),
    )
    .await
    .expect("list services");
    assert_eq!(names(&services.items), ["dev/web", "prod/api", "prod/web"]);
    assert_eq!(
        services.metadata.resource_version,
        Some(cluster.resource_version())
    );
    let api = &services.items[1];
    let lb = api
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.clone());
    let lb = lb.expect("load balancer ingress");
    assert_eq!(lb[0].ip.as_deref(), Some("192.0.2.11"));
    assert_eq!(lb[1].hostname.as_deref(), Some("api.lb.example"));
    assert_eq!(
        api.spec.as_ref().and_then(|s| s.type_.as_deref()),
        Some("LoadBalancer")
    );
    assert!(api.metadata.uid.is_some() && api.metadata.creation_timestamp.is_some());
    assert_eq!(api.metadata.generation, Some(1));

    let prod = within(
        "ns list",
        Api::<Service>::namespaced(client.clone(), "prod").list(&ListParams::default()),
    )
    .await
    .expect("namespaced list");
    assert_eq!(names(&prod.items), ["prod/api", "prod/web"]);

    let ingresses = within(
        "ingresses",
        Api::<Ingress>::all(client.clone()).list(&ListParams::default()),
    )
    .await
    .expect("list ingresses");
    assert_eq!(names(&ingresses.items), ["prod/shop"]);
    let rules = ingresses.items[0]
        .spec
        .as_ref()
        .and_then(|s| s.rules.clone())
        .unwrap_or_default();
    assert_eq!(rules[0].host.as_deref(), Some("shop.example"));

    let slices = within(
        "slices",
        Api::<EndpointSlice>::all(client.clone()).list(&ListParams::default()),
    )
    .await
    .expect("list slices");
    assert_eq!(names(&slices.items), ["prod/api-xyz34", "prod/web-abc12"]);
    let web = &slices.items[1];
    assert_eq!(
        web.labels()
            .get("kubernetes.io/service-name")
            .map(String::as_str),
        Some("web")
    );
    let ready: Vec<_> = web
        .endpoints
        .iter()
        .map(|e| e.conditions.as_ref().and_then(|c| c.ready))
        .collect();
    assert_eq!(ready, [Some(true), Some(false)]);

    // GET by name carries kind/apiVersion; a missing object is a 404 Status.
    let got = within(
        "get",
        Api::<Service>::namespaced(client.clone(), "prod").get("web"),
    )
    .await
    .expect("get");
    assert_eq!(
        got.metadata.resource_version,
        services.items[2].metadata.resource_version
    );
    let err = within(
        "get missing",
        Api::<Service>::namespaced(client.clone(), "prod").get("nope"),
    )
    .await;
    assert_eq!(
        api_status(err.expect_err("missing")),
        (404, "NotFound".to_owned())
    );

    // Updates bump the RV; spec changes bump generation; no-op updates change nothing.
    let before = cluster.resource_version();
    let mut changed = lb_service("prod", "web", &["192.0.2.10"], None, &[8080]);
    assert_eq!(
        cluster.apply(Resource::Services, changed.clone()),
        (before.parse::<u64>().unwrap() + 1).to_string()
    );
    assert_eq!(
        cluster.apply(Resource::Services, changed.clone()),
        cluster.resource_version()
    );
    changed["status"]["loadBalancer"]["ingress"][0]["ip"] = "192.0.2.99".into();
    cluster.apply(Resource::Services, changed);
    let got = within("get", Api::<Service>::namespaced(client, "prod").get("web"))
        .await
        .expect("get");
    assert_eq!(got.metadata.generation, Some(2));
    assert_eq!(got.metadata.uid, services.items[2].metadata.uid);
}

#[tokio::test]
async fn auth_failures_and_forbidden() {
    let (a, b) = tokio::join!(FakeCluster::start("auth-a"), FakeCluster::start("auth-b"));
    seed(&a);
    let dir = scratch_dir("auth");

    // A's kubeconfig with B's token: TLS works, authentication does not.
    let path = a.write_kubeconfig(&dir);
    let text = std::fs::read_to_string(&path).expect("read kubeconfig");
    std::fs::write(&path, text.replace(&a.token(), &b.token())).expect("write kubeconfig");
    let client = client_from_kubeconfig(&path, "auth-a").await;
    let err = within(
        "list",
        Api::<Service>::all(client).list(&ListParams::default()),
    )
    .await;
    assert_eq!(
        api_status(err.expect_err("wrong token")),
        (401, "Unauthorized".to_owned())
    );

    // No credentials at all.
    let kubeconfig = Kubeconfig::read_from(a.write_kubeconfig(&dir)).expect("kubeconfig");
    let options = KubeConfigOptions {
        context: Some("auth-a".into()),
        ..Default::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("config");
    config.auth_info = Default::default();
    let anonymous = Client::try_from(config).expect("client");
    let err = within("anonymous", anonymous.apiserver_version()).await;
    assert_eq!(
        api_status(err.expect_err("no token")),
        (401, "Unauthorized".to_owned())
    );

    // A client trusting B's CA must reject A's certificate.
    let text = std::fs::read_to_string(a.write_kubeconfig(&dir)).expect("read");
    let b64 = |pem: String| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(pem)
    };
    std::fs::write(&path, text.replace(&b64(a.ca_pem()), &b64(b.ca_pem()))).expect("write");
    let client = client_from_kubeconfig(&path, "auth-a").await;
    let err = within(
        "wrong CA",
        Api::<Service>::all(client).list(&ListParams::default()),
    )
    .await;
    assert!(
        !matches!(err, Ok(_) | Err(kube::Error::Api(_))),
        "TLS must fail: {err:?}"
    );

    // RBAC-style 403 for one resource only.
    let client = client_for(&a, "auth").await;
    a.set_forbidden(Resource::Ingresses, true);
    let err = within(
        "forbidden",
        Api::<Ingress>::all(client.clone()).list(&ListParams::default()),
    )
    .await;
    assert_eq!(
        api_status(err.expect_err("forbidden")),
        (403, "Forbidden".to_owned())
    );
    within(
        "services still ok",
        Api::<Service>::all(client.clone()).list(&ListParams::default()),
    )
    .await
    .expect("services allowed");
    a.set_forbidden(Resource::Ingresses, false);
    within(
        "allowed again",
        Api::<Ingress>::all(client).list(&ListParams::default()),
    )
    .await
    .expect("allowed");
}

#[tokio::test]
async fn label_and_field_selectors() {
    let cluster = FakeCluster::start("selectors").await;
    for (ns, name, tier) in [
        ("a", "one", Some("web")),
        ("a", "two", Some("db")),
        ("b", "three", Some("cache")),
        ("b", "four", None),
    ] {
        let mut svc = lb_service(ns, name, &["192.0.2.1"], None, &[80]);
        if let Some(tier) = tier {
            svc["metadata"]["labels"]["tier"] = tier.into();
        }
        cluster.apply(Resource::Services, svc);
    }
    let api = Api::<Service>::all(client_for(&cluster, "selectors").await);
    let cases = [
        ("tier=web", ""),
        ("tier==db", ""),
        ("tier!=web", ""),
        ("tier", ""),
        ("!tier", ""),
        ("tier in (web, cache)", ""),
        ("tier notin (web)", ""),
        ("tier,app=one", ""),
        ("", "metadata.name=two"),
        ("", "metadata.namespace=b,metadata.name!=four"),
    ];
    let expected: [&[&str]; 10] = [
        &["a/one"],
        &["a/two"],
        &["a/two", "b/four", "b/three"],
        &["a/one", "a/two", "b/three"],
        &["b/four"],
        &["a/one", "b/three"],
        &["a/two", "b/four", "b/three"],
        &["a/one"],
        &["a/two"],
        &["b/three"],
    ];
    for ((labels, fields), want) in cases.into_iter().zip(expected) {
        let lp = ListParams::default().labels(labels).fields(fields);
        let list = within("selector list", api.list(&lp)).await.expect("list");
        assert_eq!(
            names(&list.items),
            want,
            "labels {labels:?} fields {fields:?}"
        );
    }
    for (labels, fields) in [
        ("tier in web", ""),
        ("ti er=x", ""),
        ("", "spec.type=LoadBalancer"),
    ] {
        let lp = ListParams::default().labels(labels).fields(fields);
        let err = within("bad selector", api.list(&lp))
            .await
            .expect_err("bad selector");
        assert_eq!(
            api_status(err),
            (400, "BadRequest".to_owned()),
            "{labels:?} {fields:?}"
        );
    }
}

#[tokio::test]
async fn paging_with_limit_and_continue() {
    let cluster = FakeCluster::start("paging").await;
    for name in ["e", "d", "c", "b", "a"] {
        cluster.apply(
            Resource::Services,
            lb_service("ns", name, &["192.0.2.1"], None, &[80]),
        );
    }
    let api = Api::<Service>::all(client_for(&cluster, "paging").await);
    let snapshot = cluster.resource_version();

    let first = within("page 1", api.list(&ListParams::default().limit(2)))
        .await
        .expect("page 1");
    assert_eq!(names(&first.items), ["ns/a", "ns/b"]);
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let token = first.metadata.continue_.clone().expect("continue token");

    // Changes after the first page are not visible in later pages.
    cluster.delete(Resource::Services, "ns", "d");
    cluster.apply(
        Resource::Services,
        lb_service("ns", "cc", &["192.0.2.1"], None, &[80]),
    );
    let second = within(
        "page 2",
        api.list(&ListParams::default().limit(2).continue_token(&token)),
    )
    .await
    .expect("page 2");
    assert_eq!(names(&second.items), ["ns/c", "ns/d"]);
    assert_eq!(
        second.metadata.resource_version.as_deref(),
        Some(snapshot.as_str())
    );
    let last_token = second.metadata.continue_.clone().expect("continue token");
    let third = within(
        "page 3",
        api.list(&ListParams::default().limit(2).continue_token(&last_token)),
    )
    .await
    .expect("page 3");
    assert_eq!(names(&third.items), ["ns/e"]);
    assert_eq!(third.metadata.continue_, None);

    // Once compacted, the old snapshot is gone: 410, like etcd.
    cluster.compact();
    let err = within(
        "expired",
        api.list(&ListParams::default().limit(2).continue_token(&last_token)),
    )
    .await;
    assert_eq!(
        api_status(err.expect_err("expired token")),
        (410, "Expired".to_owned())
    );
    let err = within(
        "garbage",
        api.list(&ListParams::default().continue_token("!!")),
    )
    .await;
    assert_eq!(
        api_status(err.expect_err("bad token")),
        (400, "BadRequest".to_owned())
    );
    let any = within("rv=0", api.list(&ListParams::default().match_any()))
        .await
        .expect("list");
    assert_eq!(
        any.metadata.resource_version,
        Some(cluster.resource_version())
    );
    let fresh = within("fresh", api.list(&ListParams::default()))
        .await
        .expect("fresh list");
    assert_eq!(
        names(&fresh.items),
        ["ns/a", "ns/b", "ns/c", "ns/cc", "ns/e"]
    );
}

#[tokio::test]
async fn watcher_lists_then_watches() {
    let cluster = FakeCluster::start("watcher").await;
    seed(&cluster);
    let client = client_for(&cluster, "watcher").await;
    let mut stream = watcher(Api::<Service>::all(client), watcher::Config::default()).boxed();

    let listed = read_init(&mut stream).await;
    assert_eq!(listed, ["dev/web", "prod/api", "prod/web"]);
    let list_rv = cluster.resource_version();

    cluster.apply(
        Resource::Services,
        lb_service("prod", "new", &["192.0.2.50"], None, &[53]),
    );
    match next_event(&mut stream).await {
        Event::Apply(svc) => assert_eq!(svc.name_any(), "new"),
        _ => panic!("expected Apply"),
    }
    // Changes of other resources do not show up on a Service watch.
    cluster.apply(
        Resource::Ingresses,
        ingress("prod", "other", &["x.example"], &[]),
    );
    assert!(cluster.delete(Resource::Services, "dev", "web"));
    match next_event(&mut stream).await {
        Event::Delete(svc) => {
            assert_eq!(names(std::slice::from_ref(&svc)), ["dev/web"]);
            assert_eq!(
                svc.metadata.resource_version,
                Some(cluster.resource_version())
            );
        }
        _ => panic!("expected Delete"),
    }
    assert_eq!(cluster.active_watches(), 1);

    let requests = cluster.requests();
    for request in &requests {
        eprintln!("observed: {request}");
    }
    // kube 5's default: consistent LIST (no RV) paged by 500, then WATCH from its RV.
    assert_eq!(
        &requests[..2],
        [
            "GET /api/v1/services?&limit=500".to_owned(),
            format!(
                "GET /api/v1/services?&watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion={list_rv}"
            ),
        ]
    );

    drop(stream);
    within("watch closed", async {
        while cluster.active_watches() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn watcher_relists_after_compaction_and_cut() {
    let cluster = FakeCluster::start("relist").await;
    seed(&cluster);
    let client = client_for(&cluster, "relist").await;
    let mut stream = watcher(Api::<Service>::all(client), watcher::Config::default()).boxed();
    assert_eq!(read_init(&mut stream).await.len(), 3);
    cluster.apply(
        Resource::Services,
        lb_service("prod", "web", &["192.0.2.77"], None, &[80]),
    );
    assert!(matches!(next_event(&mut stream).await, Event::Apply(_)));

    // The watcher's last RV is now behind the compaction point (an Ingress
    // changed after it); no await in between, so no bookmark can sneak in.
    cluster.apply(
        Resource::Ingresses,
        ingress("prod", "late", &["late.example"], &[]),
    );
    cluster.compact();
    cluster.set_fault(Fault::CutWatches);
    cluster.apply(
        Resource::Services,
        lb_service("prod", "while-cut", &["192.0.2.78"], None, &[80]),
    );
    cluster.delete(Resource::Services, "dev", "web");

    let relisted = read_init(&mut stream).await;
    assert_eq!(relisted, ["prod/api", "prod/web", "prod/while-cut"]);
    let watches = cluster
        .requests()
        .iter()
        .filter(|r| r.contains("watch=true"))
        .count();
    let lists = cluster
        .requests()
        .iter()
        .filter(|r| r.contains("/services?") && !r.contains("watch="))
        .count();
    assert_eq!((lists, watches), (2, 2), "list, watch, (410) ... re-list");

    cluster.apply(
        Resource::Services,
        lb_service("prod", "after", &["192.0.2.79"], None, &[80]),
    );
    match next_event(&mut stream).await {
        Event::Apply(svc) => assert_eq!(svc.name_any(), "after"),
        _ => panic!("expected Apply after relist"),
    }
}

#[tokio::test]
async fn watcher_keeps_going_across_bookmarks() {
    let cluster = FakeCluster::start("bookmarks").await;
    cluster.set_bookmark_interval(Duration::from_millis(100));
    seed(&cluster);
    let client = client_for(&cluster, "bookmarks").await;

    // Raw watch: bookmarks follow the cluster-wide RV, even for other resources.
    let api = Api::<Service>::all(client.clone());
    let rv = cluster.resource_version();
    let mut raw = within("raw watch", api.watch(&WatchParams::default(), &rv))
        .await
        .expect("watch")
        .boxed();
    let ingress_rv = cluster.apply(
        Resource::Ingresses,
        ingress("prod", "bump", &["b.example"], &[]),
    );
    loop {
        match within("bookmark", raw.next())
            .await
            .expect("stream open")
            .expect("event")
        {
            WatchEvent::Bookmark(bm) if bm.metadata.resource_version == ingress_rv => break,
            WatchEvent::Bookmark(_) => continue,
            _ => panic!("only bookmarks expected"),
        }
    }
    drop(raw);

    let mut stream = watcher(api, watcher::Config::default()).boxed();
    read_init(&mut stream).await;
    // Several bookmark intervals pass with nothing but bookmarks on the wire.
    let idle = tokio::time::timeout(Duration::from_millis(600), stream.next()).await;
    assert!(idle.is_err(), "bookmarks must not surface as events");
    cluster.apply(
        Resource::Services,
        lb_service("prod", "late", &["192.0.2.90"], None, &[80]),
    );
    assert!(matches!(next_event(&mut stream).await, Event::Apply(_)));
    let watches = cluster
        .requests()
        .iter()
        .filter(|r| r.contains("watch=true"))
        .count();
    assert_eq!(
        watches, 2,
        "one raw watch + one watcher watch, never restarted"
    );
}

#[tokio::test]
async fn raw_watch_semantics() {
    let cluster = FakeCluster::start("raw").await;
    seed(&cluster);
    let api = Api::<Service>::all(client_for(&cluster, "raw").await);

    // RV "0": synthetic ADDED for current state; timeoutSeconds ends the stream.
    let started = tokio::time::Instant::now();
    let events: Vec<_> = within(
        "timed watch",
        api.watch(&WatchParams::default().timeout(1).disable_bookmarks(), "0"),
    )
    .await
    .expect("watch")
    .collect()
    .await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| matches!(e, Ok(WatchEvent::Added(_)))));

    // From an explicit RV: replay of later events only.
    let rv = cluster.resource_version();
    cluster.apply(
        Resource::Services,
        lb_service("prod", "web", &["192.0.2.12"], None, &[80]),
    );
    let mut stream = within("watch", api.watch(&WatchParams::default(), &rv))
        .await
        .expect("watch")
        .boxed();
    match within("replay", stream.next()).await {
        Some(Ok(WatchEvent::Modified(svc))) => assert_eq!(svc.name_any(), "web"),
        other => panic!("expected MODIFIED, got {other:?}"),
    }

    // Label-filtered watch: leaving the selector is DELETED, entering is ADDED.
    let lp = WatchParams::default().labels("tier=front");
    let mut filtered = within("watch", api.watch(&lp, &cluster.resource_version()))
        .await
        .expect("watch")
        .boxed();
    let mut svc = lb_service(
        "prod",
        "api",
        &["192.0.2.11"],
        Some("api.lb.example"),
        &[443],
    );
    svc["metadata"]["labels"]["tier"] = "front".into();
    cluster.apply(Resource::Services, svc.clone());
    svc["metadata"]["labels"]["tier"] = "back".into();
    let left_rv = cluster.apply(Resource::Services, svc);
    assert!(matches!(
        within("added", filtered.next()).await,
        Some(Ok(WatchEvent::Added(_)))
    ));
    match within("deleted", filtered.next()).await {
        Some(Ok(WatchEvent::Deleted(old))) => {
            assert_eq!(old.labels().get("tier").map(String::as_str), Some("front"));
            assert_eq!(old.metadata.resource_version, Some(left_rv));
        }
        other => panic!("expected DELETED, got {other:?}"),
    }

    // Too old RV after compaction: one ERROR 410 event, then the stream ends.
    cluster.compact();
    let events: Vec<_> = within("expired watch", async {
        api.watch(&WatchParams::default(), &rv)
            .await
            .expect("watch")
            .collect::<Vec<_>>()
            .await
    })
    .await;
    match events.as_slice() {
        [Ok(WatchEvent::Error(status))] => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert!(
                status
                    .message
                    .starts_with(&format!("too old resource version: {rv} ("))
            );
        }
        other => panic!("expected one 410 ERROR event, got {other:?}"),
    }
    // ...while an Exact list at that RV fails with HTTP 410.
    let lp = ListParams::default()
        .at(&rv)
        .matching(kube::api::VersionMatch::Exact);
    let err = within("exact list", api.list(&lp))
        .await
        .expect_err("expired");
    assert_eq!(api_status(err), (410, "Expired".to_owned()));
}

#[tokio::test]
async fn status_fault_fails_requests_and_recovers() {
    let cluster = FakeCluster::start("status").await;
    seed(&cluster);
    let client = client_for(&cluster, "status").await;
    let api = Api::<Service>::all(client.clone());

    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    read_init(&mut stream).await;
    cluster.set_fault(Fault::Status(500));
    let err = within("500 list", api.list(&ListParams::default()))
        .await
        .expect_err("500");
    assert_eq!(api_status(err), (500, "InternalError".to_owned()));

    // The cut watcher cannot re-watch while the server errors...
    cluster.set_fault(Fault::CutWatches);
    let failure = within("watch error", stream.next())
        .await
        .expect("stream open");
    assert!(
        matches!(failure, Err(watcher::Error::WatchStartFailed(_))),
        "{failure:?}"
    );
    // ...and picks up again, without a relist, once the server recovers.
    cluster.set_fault(Fault::None);
    cluster.apply(
        Resource::Services,
        lb_service("prod", "back", &["192.0.2.5"], None, &[80]),
    );
    match next_event(&mut stream).await {
        Event::Apply(svc) => assert_eq!(svc.name_any(), "back"),
        _ => panic!("expected Apply after recovery"),
    }
    within("list", api.list(&ListParams::default()))
        .await
        .expect("recovered");
}

#[tokio::test]
async fn refuse_and_hang_faults() {
    let cluster = FakeCluster::start("faults").await;
    seed(&cluster);
    let url = cluster.url();
    let api = Api::<Service>::all(client_for(&cluster, "faults").await);
    within("warm up", api.list(&ListParams::default()))
        .await
        .expect("list");

    cluster.set_fault(Fault::Refuse);
    let err = within("refused", api.list(&ListParams::default()))
        .await
        .expect_err("refused");
    assert!(
        !matches!(err, kube::Error::Api(_)),
        "connection-level error expected: {err:?}"
    );
    cluster.set_fault(Fault::None);
    assert_eq!(cluster.url(), url, "same port after restore");
    within("after refuse", api.list(&ListParams::default()))
        .await
        .expect("list after restore");

    cluster.set_fault(Fault::Hang);
    let hung =
        tokio::time::timeout(Duration::from_millis(300), api.list(&ListParams::default())).await;
    assert!(hung.is_err(), "request must hang");
    cluster.set_fault(Fault::None);
    within("after hang", api.list(&ListParams::default()))
        .await
        .expect("list after hang");
}

#[tokio::test]
async fn several_clusters_run_side_by_side() {
    let (a, b, c) = tokio::join!(
        FakeCluster::start("east"),
        FakeCluster::start("west"),
        FakeCluster::start("north")
    );
    let dir = scratch_dir("several");
    for (i, cluster) in [&a, &b, &c].into_iter().enumerate() {
        for n in 0..=i {
            cluster.apply(
                Resource::Services,
                lb_service("dns", &format!("svc{n}"), &["192.0.2.1"], None, &[53]),
            );
        }
    }
    assert_ne!(a.url(), b.url());
    assert_ne!(a.token(), b.token());
    for (i, cluster) in [&a, &b, &c].into_iter().enumerate() {
        let client = client_from_kubeconfig(&cluster.write_kubeconfig(&dir), cluster.name()).await;
        let list = within(
            "list",
            Api::<Service>::all(client).list(&ListParams::default()),
        )
        .await
        .expect("list");
        assert_eq!(list.items.len(), i + 1, "{}", cluster.name());
    }

    // A watcher with "any" semantics and tiny pages: RV=0 lists, paged by continue.
    let client = client_from_kubeconfig(&c.write_kubeconfig(&dir), "north").await;
    let config = watcher::Config::default().any_semantic().page_size(1);
    let mut stream = watcher(Api::<Service>::all(client), config).boxed();
    assert_eq!(
        read_init(&mut stream).await,
        ["dns/svc0", "dns/svc1", "dns/svc2"]
    );
    let lists: Vec<String> = c
        .requests()
        .into_iter()
        .filter(|r| r.contains("limit=1"))
        .collect();
    assert_eq!(lists.len(), 3, "{lists:?}");
    // kube omits resourceVersion=0 when paging (old servers ignored limit then).
    assert_eq!(lists[0], "GET /api/v1/services?&limit=1");
    assert!(lists[1].contains("&continue="), "{lists:?}");
}

/// Sends a raw request through the kube client's stack (TLS, auth header).
async fn raw(client: &Client, method: &str, uri: &str) -> (u16, http::HeaderMap, Vec<u8>) {
    raw_body(client, method, uri, None, "").await
}

/// [`raw`] with a body and its Content-Type.
async fn raw_body(
    client: &Client,
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: &str,
) -> (u16, http::HeaderMap, Vec<u8>) {
    use http_body_util::BodyExt as _;
    let mut request = http::Request::builder().method(method).uri(uri);
    if let Some(content_type) = content_type {
        request = request.header(http::header::CONTENT_TYPE, content_type);
    }
    let request = request
        .body(kube::client::Body::from(body.as_bytes().to_vec()))
        .expect("request");
    let response = within(uri, client.send(request)).await.expect("response");
    let (parts, body) = response.into_parts();
    let body = within(uri, body.collect()).await.expect("body").to_bytes();
    (parts.status.as_u16(), parts.headers, body.to_vec())
}

#[tokio::test]
async fn odd_requests_get_status_errors() {
    let cluster = FakeCluster::start("odd").await;
    seed(&cluster);
    // No client-side retries: kube would otherwise retry the 504 with backoff.
    let kubeconfig =
        Kubeconfig::read_from(cluster.write_kubeconfig(&scratch_dir("odd"))).expect("kubeconfig");
    let options = KubeConfigOptions {
        context: Some("odd".into()),
        ..Default::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("config");
    config.default_retry = false;
    let client = Client::try_from(config).expect("client");
    let too_large = format!(
        "/api/v1/services?resourceVersion={}9",
        cluster.resource_version()
    );
    let cases = [
        ("GET", "/api/v1/services?watch=maybe", 400),
        ("GET", "/api/v1/services?limit=abc", 400),
        ("GET", "/api/v1/services?labelSelector=a%20in%20(b", 400),
        ("GET", "/api/v1/services?labelSelector=%FF%FE", 400),
        ("GET", "/api/v1/services?fieldSelector=metadata.name", 400),
        ("GET", "/api/v1/services?resourceVersion=abc", 400),
        ("GET", &too_large, 504),
        ("GET", "/api/v1/services?resourceVersionMatch=Exact", 400),
        (
            "GET",
            "/api/v1/services?resourceVersion=5&resourceVersionMatch=Newest",
            400,
        ),
        ("GET", "/api/v1/services?continue=eyJ2IjoxfQ", 400),
        ("GET", "/api/v1/services?watch=1&resourceVersion=-1", 400),
        ("GET", "/api/v1/services?limit=-3&pretty=true&&=&x", 200),
        ("GET", "/api/v1/pods", 404),
        ("GET", "/apis/example.com/v1/widgets", 404),
        ("GET", "/api/v1/namespaces/prod/services/web/status", 404),
        ("GET", "/api/v1/namespaces/prod/services/web", 200),
        ("GET", "/%ff/%00/..", 404),
        ("GET", "/", 404),
        // Writes: namespaced objects only, no deletecollection, JSON bodies only.
        ("POST", "/api/v1/services", 405),
        ("POST", "/api/v1/namespaces/prod/services/web", 405),
        ("PUT", "/api/v1/namespaces/prod/services", 405),
        ("DELETE", "/api/v1/namespaces/prod/services", 405),
        ("POST", "/api/v1", 405),
        ("POST", "/version", 405),
        ("OPTIONS", "/api/v1/namespaces/prod/services/web", 405),
        ("POST", "/api/v1/namespaces/prod/pods", 404),
        ("POST", "/api/v1/namespaces/prod/services", 415),
        ("PUT", "/api/v1/namespaces/prod/services/web", 415),
        ("PATCH", "/api/v1/namespaces/prod/services/web", 415),
        ("DELETE", "/api/v1/namespaces/prod/services/nope", 404),
        (
            "DELETE",
            "/apis/coordination.k8s.io/v1/namespaces/prod/leases/nope",
            404,
        ),
    ];
    for (method, uri, want) in cases {
        let (code, headers, body) = raw(&client, method, uri).await;
        assert_eq!(code, want, "{method} {uri}");
        assert_eq!(headers[http::header::CONTENT_TYPE], "application/json");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON body");
        if want != 200 {
            assert_eq!(
                (&body["kind"], &body["code"]),
                (&"Status".into(), &want.into())
            );
        }
    }

    // A watch is a chunked 200 of newline-delimited events, closed at timeoutSeconds.
    let uri = "/api/v1/namespaces/prod/services?watch=1&timeoutSeconds=1";
    let (code, headers, body) = raw(&client, "GET", uri).await;
    assert_eq!(code, 200);
    assert_eq!(headers[http::header::TRANSFER_ENCODING], "chunked");
    let lines: Vec<serde_json::Value> = body
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).expect("event line"))
        .collect();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert_eq!(line["type"], "ADDED");
        assert_eq!(
            (&line["object"]["kind"], &line["object"]["apiVersion"]),
            (&"Service".into(), &"v1".into())
        );
    }
    within("still serving", client.apiserver_version())
        .await
        .expect("server survived");
}

#[tokio::test]
async fn watcher_streaming_list_mode() {
    let cluster = FakeCluster::start("streaming").await;
    seed(&cluster);
    let api = Api::<Service>::all(client_for(&cluster, "streaming").await);
    let config = watcher::Config::default().streaming_lists();
    let mut stream = watcher(api, config).boxed();
    // Initial state arrives as ADDED events closed by an initial-events-end bookmark.
    let mut listed = read_init(&mut stream).await;
    listed.sort();
    assert_eq!(listed, ["dev/web", "prod/api", "prod/web"]);
    let watch = &cluster.requests()[0];
    assert!(
        watch.contains("sendInitialEvents=true&resourceVersionMatch=NotOlderThan"),
        "{watch}"
    );
    cluster.apply(
        Resource::Services,
        lb_service("prod", "next", &["192.0.2.3"], None, &[80]),
    );
    match next_event(&mut stream).await {
        Event::Apply(svc) => assert_eq!(svc.name_any(), "next"),
        _ => panic!("expected Apply"),
    }
}

// ---- Writes over HTTP: the Leases and ConfigMaps of the fleet feature ----

const FLEET: &str = "fedns";
const RENEWED: &str = "2025-04-23T13:00:00.123456Z";

fn typed<K: serde::de::DeserializeOwned>(object: serde_json::Value) -> K {
    serde_json::from_value(object).expect("typed object")
}

fn api_message(err: kube::Error) -> (u16, String, String) {
    match err {
        kube::Error::Api(status) => (status.code, status.reason.clone(), status.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn holder(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref()
}

fn stale_lease_message(name: &str) -> String {
    format!(
        "Operation cannot be fulfilled on leases.coordination.k8s.io \"{name}\": the object has been \
         modified; please apply your changes to the latest version and try again"
    )
}

#[tokio::test]
async fn lease_create_get_replace_patch_delete() {
    let cluster = FakeCluster::start("leases").await;
    let leases = Api::<Lease>::namespaced(client_for(&cluster, "leases").await, FLEET);
    let pp = PostParams::default();

    // Create: 201 with the store's system fields; the Lease kind keeps no generation.
    let mine: Lease = typed(lease(
        FLEET,
        "fedns-a",
        "a",
        15,
        RENEWED,
        &[("fedns.io/zone", "eu")],
    ));
    let created = within("create", leases.create(&pp, &mine))
        .await
        .expect("create");
    let rv1 = created.resource_version().expect("resourceVersion");
    assert_eq!(rv1, cluster.resource_version());
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.generation, None);
    assert_eq!(holder(&created), Some("a"));
    assert_eq!(
        created.spec.as_ref().and_then(|s| s.renew_time.clone()),
        mine.spec.as_ref().and_then(|s| s.renew_time.clone()),
        "MicroTime round trip"
    );
    let stored = cluster
        .get(Resource::Leases, FLEET, "fedns-a")
        .expect("stored");
    assert_eq!(stored["kind"], "Lease");
    assert_eq!(stored["metadata"]["annotations"]["fedns.io/zone"], "eu");
    assert_eq!(
        cluster.requests()[0],
        "POST /apis/coordination.k8s.io/v1/namespaces/fedns/leases?"
    );

    let err = within("create twice", leases.create(&pp, &mine)).await;
    assert_eq!(
        api_message(err.expect_err("exists")),
        (
            409,
            "AlreadyExists".into(),
            "leases.coordination.k8s.io \"fedns-a\" already exists".into()
        )
    );
    // A create must not carry a resourceVersion: the real server's 500.
    let err = within("create with rv", leases.create(&pp, &created)).await;
    assert_eq!(
        api_status(err.expect_err("rv set")),
        (500, "InternalError".into())
    );

    // Replace with the current RV: a new RV; with a stale one: 409 and no change.
    let got = within("get", leases.get("fedns-a")).await.expect("get");
    assert_eq!(got, created);
    let mut renewed = got.clone();
    renewed.spec.as_mut().expect("spec").holder_identity = Some("a2".into());
    let replaced = within("replace", leases.replace("fedns-a", &pp, &renewed))
        .await
        .expect("replace");
    let rv2 = replaced.resource_version().expect("rv");
    assert_ne!(rv2, rv1);
    assert_eq!(replaced.metadata.uid, created.metadata.uid);
    assert_eq!(holder(&replaced), Some("a2"));
    let mut stale = got.clone();
    stale.spec.as_mut().expect("spec").holder_identity = Some("b".into());
    let err = within("stale replace", leases.replace("fedns-a", &pp, &stale)).await;
    assert_eq!(
        api_message(err.expect_err("stale")),
        (409, "Conflict".into(), stale_lease_message("fedns-a"))
    );
    // Leases allow no unconditional update: no resourceVersion is 422, as on a real server.
    stale.metadata.resource_version = None;
    let err = within("no rv", leases.replace("fedns-a", &pp, &stale)).await;
    let (code, reason, message) = api_message(err.expect_err("no rv"));
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(message.contains("metadata.resourceVersion"), "{message}");
    // The body must name the object of the URL.
    let err = within("wrong name", leases.replace("fedns-b", &pp, &replaced)).await;
    assert_eq!(
        api_status(err.expect_err("name")),
        (400, "BadRequest".into())
    );
    assert_eq!(
        cluster
            .get(Resource::Leases, FLEET, "fedns-a")
            .expect("stored")["metadata"]["resourceVersion"],
        rv2.as_str()
    );

    // JSON merge patch; a resourceVersion in it is a precondition.
    let patch = serde_json::json!({"metadata": {"annotations": {"fedns.io/zone": null, "x": "y"}}});
    let patched = within(
        "patch",
        leases.patch("fedns-a", &PatchParams::default(), &Patch::Merge(&patch)),
    )
    .await
    .expect("patch");
    assert_eq!(
        patched.annotations().keys().collect::<Vec<_>>(),
        ["x"],
        "null removes a key"
    );
    assert_eq!(holder(&patched), Some("a2"));
    let rv3 = patched.resource_version().expect("rv");
    let guarded = |rv: &str| serde_json::json!({"metadata": {"resourceVersion": rv}, "spec": {"holderIdentity": "c"}});
    let err = within(
        "stale patch",
        leases.patch(
            "fedns-a",
            &PatchParams::default(),
            &Patch::Merge(guarded(&rv2)),
        ),
    )
    .await;
    assert_eq!(
        api_status(err.expect_err("stale")),
        (409, "Conflict".into())
    );
    let patched = within(
        "guarded patch",
        leases.patch(
            "fedns-a",
            &PatchParams::default(),
            &Patch::Merge(guarded(&rv3)),
        ),
    )
    .await
    .expect("guarded patch");
    assert_eq!(holder(&patched), Some("c"));
    // Only merge patch is imitated.
    let err = within(
        "strategic",
        leases.patch(
            "fedns-a",
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        ),
    )
    .await;
    assert_eq!(
        api_status(err.expect_err("415")),
        (415, "UnsupportedMediaType".into())
    );
    let err = within(
        "patch missing",
        leases.patch("nope", &PatchParams::default(), &Patch::Merge(&patch)),
    )
    .await;
    assert_eq!(api_status(err.expect_err("404")), (404, "NotFound".into()));

    // Delete: a Success Status; then every verb is 404, except a PUT, which re-creates a
    // Lease (AllowCreateOnUpdate).
    let wrong = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: Some(rv1.clone()),
            uid: None,
        }),
        ..DeleteParams::default()
    };
    let err = within("guarded delete", leases.delete("fedns-a", &wrong)).await;
    assert_eq!(
        api_status(err.expect_err("precondition")),
        (409, "Conflict".into())
    );
    let gone = within("delete", leases.delete("fedns-a", &DeleteParams::default()))
        .await
        .expect("delete");
    let status = gone.right().expect("a Status, not the object");
    let details = status.details.expect("details");
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("fedns-a", "leases")
    );
    assert_eq!(Some(details.uid), created.metadata.uid);
    assert!(cluster.get(Resource::Leases, FLEET, "fedns-a").is_none());
    let err = within("get gone", leases.get("fedns-a")).await;
    assert_eq!(
        api_message(err.expect_err("gone")),
        (
            404,
            "NotFound".into(),
            "leases.coordination.k8s.io \"fedns-a\" not found".into()
        )
    );
    let err = within(
        "delete gone",
        leases.delete("fedns-a", &DeleteParams::default()),
    )
    .await;
    assert_eq!(api_status(err.expect_err("gone")), (404, "NotFound".into()));
    // The old object's uid is a precondition the absent object fails, as on a real server.
    let err = within("put old uid", leases.replace("fedns-a", &pp, &replaced)).await;
    let (code, _, message) = api_message(err.expect_err("uid precondition"));
    assert_eq!(code, 409);
    assert!(
        message.contains("Precondition failed: UID in precondition"),
        "{message}"
    );
    let mut fresh = replaced.clone();
    fresh.metadata.uid = None;
    let back = within("put creates", leases.replace("fedns-a", &pp, &fresh))
        .await
        .expect("create on update");
    assert_ne!(back.metadata.uid, created.metadata.uid, "a new object");
    assert_eq!(holder(&back), Some("a2"));

    // Every HTTP write was counted, failed or not; reads and apply() are not.
    cluster.apply(
        Resource::Leases,
        lease(FLEET, "other", "o", 15, RENEWED, &[]),
    );
    assert_eq!(cluster.write_count(Resource::Leases), 17);
    assert_eq!(cluster.write_count(Resource::ConfigMaps), 0);
}

#[tokio::test]
async fn config_map_writes_follow_their_strategy() {
    let cluster = FakeCluster::start("configmaps").await;
    let client = client_for(&cluster, "configmaps").await;
    let maps = Api::<ConfigMap>::namespaced(client.clone(), FLEET);
    let pp = PostParams::default();
    let overrides: ConfigMap = typed(config_map(FLEET, "fedns-overrides", &[("drain", "east")]));
    let created = within("create", maps.create(&pp, &overrides))
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, None);
    assert_eq!(
        created
            .data
            .as_ref()
            .and_then(|d| d.get("drain"))
            .map(String::as_str),
        Some("east")
    );

    // ConfigMaps allow unconditional updates: no resourceVersion overwrites.
    let mut blind = overrides.clone();
    blind.data = Some([("drain".to_owned(), "west".to_owned())].into());
    let replaced = within(
        "blind replace",
        maps.replace("fedns-overrides", &pp, &blind),
    )
    .await
    .expect("unconditional update");
    assert_ne!(replaced.resource_version(), created.resource_version());
    // ...but a stale one is still a conflict, and an absent ConfigMap is 404 (no create on PUT).
    let err = within("stale", maps.replace("fedns-overrides", &pp, &created)).await;
    let (code, _, message) = api_message(err.expect_err("stale"));
    assert_eq!(code, 409);
    assert!(
        message.starts_with("Operation cannot be fulfilled on configmaps \"fedns-overrides\": "),
        "{message}"
    );
    let mut absent = overrides.clone();
    absent.metadata.name = Some("absent".into());
    let err = within("put absent", maps.replace("absent", &pp, &absent)).await;
    assert_eq!(
        api_status(err.expect_err("absent")),
        (404, "NotFound".into())
    );

    // Validation: bad keys and names are 422 Invalid with causes.
    let bad: ConfigMap = typed(config_map(FLEET, "bad", &[("a/b", "x")]));
    let err = within("bad key", maps.create(&pp, &bad)).await;
    match err.expect_err("bad key") {
        kube::Error::Api(status) => {
            assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
            let causes = status.details.expect("details").causes;
            assert_eq!(causes[0].field, "data[a/b]");
        }
        other => panic!("{other:?}"),
    }
    let upper: ConfigMap = typed(config_map(FLEET, "Upper", &[]));
    let err = within("bad name", maps.create(&pp, &upper)).await;
    assert_eq!(
        api_status(err.expect_err("bad name")),
        (422, "Invalid".into())
    );
    // Immutable ConfigMaps keep their data.
    let mut frozen: ConfigMap = typed(config_map(FLEET, "frozen", &[("k", "v")]));
    frozen.immutable = Some(true);
    let frozen = within("create frozen", maps.create(&pp, &frozen))
        .await
        .expect("create");
    let mut thawed = frozen.clone();
    thawed.data = Some([("k".to_owned(), "w".to_owned())].into());
    let err = within("change frozen", maps.replace("frozen", &pp, &thawed)).await;
    assert_eq!(
        api_status(err.expect_err("immutable")),
        (422, "Invalid".into())
    );

    // The body must agree with the path: namespace, kind, apiVersion; JSON only.
    let uri = "/api/v1/namespaces/fedns/configmaps";
    let json = Some("application/json");
    for (body, want) in [
        (r#"{"metadata":{"name":"x","namespace":"other"}}"#, 400),
        (
            r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"x"}}"#,
            400,
        ),
        (
            r#"{"kind":"ConfigMap","apiVersion":"apps/v1","metadata":{"name":"x"}}"#,
            400,
        ),
        (r#"{"metadata":{"name":"x"}"#, 400),
        (r#"[]"#, 400),
        (r#"{"metadata":{}}"#, 422),
        (r#"{"metadata":{"name":"x"},"data":{"k":"v"}}"#, 201),
    ] {
        let (code, _, reply) = raw_body(&client, "POST", uri, json, body).await;
        assert_eq!(code, want, "{body}: {}", String::from_utf8_lossy(&reply));
        let reply: serde_json::Value = serde_json::from_slice(&reply).expect("JSON");
        if want == 201 {
            assert_eq!(
                (&reply["kind"], &reply["metadata"]["namespace"]),
                (&"ConfigMap".into(), &"fedns".into())
            );
        } else {
            assert_eq!(
                (&reply["kind"], &reply["status"]),
                (&"Status".into(), &"Failure".into())
            );
        }
    }
    // Names as the real validators check them: DNS-1035 labels for Services, subdomains else.
    let leases_uri = "/apis/coordination.k8s.io/v1/namespaces/fedns/leases";
    let long = "a".repeat(254);
    for (uri, body, want) in [
        (
            "/api/v1/namespaces/prod/services",
            r#"{"metadata":{"name":"0abc"}}"#.to_owned(),
            422,
        ),
        (
            "/api/v1/namespaces/prod/services",
            r#"{"metadata":{"name":"a.b"}}"#.to_owned(),
            422,
        ),
        (
            leases_uri,
            r#"{"metadata":{"name":"a..b"}}"#.to_owned(),
            422,
        ),
        (
            leases_uri,
            format!(r#"{{"metadata":{{"name":"{long}"}}}}"#),
            422,
        ),
        (
            leases_uri,
            r#"{"metadata":{"name":"l"},"spec":{"leaseDurationSeconds":0}}"#.to_owned(),
            422,
        ),
        (
            leases_uri,
            r#"{"metadata":{"name":"0.fedns-a"},"spec":{"leaseDurationSeconds":1}}"#.to_owned(),
            201,
        ),
    ] {
        let (code, _, reply) = raw_body(&client, "POST", uri, json, &body).await;
        assert_eq!(code, want, "{body}: {}", String::from_utf8_lossy(&reply));
    }
    let (code, _, _) = raw_body(
        &client,
        "POST",
        uri,
        Some("application/yaml"),
        "metadata: {}",
    )
    .await;
    assert_eq!(code, 415);
    let big = format!(
        r#"{{"metadata":{{"name":"big"}},"data":{{"k":"{}"}}}}"#,
        "x".repeat(3 << 20)
    );
    let (code, _, _) = raw_body(&client, "POST", uri, json, &big).await;
    assert_eq!(code, 413);

    // Services: the status cannot be written through the main resource.
    let services = Api::<Service>::namespaced(client, "prod");
    let svc: Service = typed(lb_service("prod", "web", &["192.0.2.10"], None, &[80]));
    let created = within("create svc", services.create(&pp, &svc))
        .await
        .expect("create");
    let lb = created
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|l| l.ingress);
    assert_eq!(lb, None, "status dropped on create");
    cluster.apply(
        Resource::Services,
        lb_service("prod", "web", &["192.0.2.10"], None, &[80]),
    );
    let mut current = within("get svc", services.get("web")).await.expect("get");
    current.status = None;
    current
        .spec
        .as_mut()
        .expect("spec")
        .ports
        .as_mut()
        .expect("ports")[0]
        .port = 8080;
    let replaced = within("replace svc", services.replace("web", &pp, &current))
        .await
        .expect("replace");
    let lb = replaced
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|l| l.ingress);
    assert_eq!(lb.expect("kept")[0].ip.as_deref(), Some("192.0.2.10"));
    // Services answer a delete with the object.
    let gone = within(
        "delete svc",
        services.delete("web", &DeleteParams::default()),
    )
    .await
    .expect("delete");
    assert_eq!(gone.left().expect("the Service").name_any(), "web");
}

#[tokio::test]
async fn watches_see_writes_made_over_http() {
    let cluster = FakeCluster::start("writewatch").await;
    cluster.apply(
        Resource::Leases,
        lease(FLEET, "fedns-b", "b", 15, RENEWED, &[]),
    );
    cluster.apply(
        Resource::Leases,
        lease("elsewhere", "fedns-x", "x", 15, RENEWED, &[]),
    );
    let client = client_for(&cluster, "writewatch").await;
    let leases = Api::<Lease>::namespaced(client.clone(), FLEET);
    let pp = PostParams::default();

    // The way fedns watches: kube::runtime::watcher on the fleet namespace.
    let mut stream = watcher(leases.clone(), watcher::Config::default()).boxed();
    assert_eq!(read_init(&mut stream).await, ["fedns/fedns-b"]);
    // And a raw watch, to see the event types themselves.
    let mut raw_events = within(
        "raw watch",
        leases.watch(&WatchParams::default(), &cluster.resource_version()),
    )
    .await
    .expect("watch")
    .boxed();

    let created = within(
        "create",
        leases.create(&pp, &typed(lease(FLEET, "fedns-a", "a", 15, RENEWED, &[]))),
    )
    .await
    .expect("create");
    match next_event(&mut stream).await {
        Event::Apply(lease) => assert_eq!(
            (lease.name_any(), lease.resource_version()),
            ("fedns-a".into(), created.resource_version())
        ),
        _ => panic!("expected Apply"),
    }
    let mut renewed = created.clone();
    renewed.spec.as_mut().expect("spec").holder_identity = Some("a2".into());
    let renewed = within("replace", leases.replace("fedns-a", &pp, &renewed))
        .await
        .expect("replace");
    match next_event(&mut stream).await {
        Event::Apply(lease) => assert_eq!(holder(&lease), Some("a2")),
        _ => panic!("expected Apply"),
    }
    // A no-op replace changes nothing and sends nothing.
    let same = within("no-op", leases.replace("fedns-a", &pp, &renewed))
        .await
        .expect("no-op replace");
    assert_eq!(same.resource_version(), renewed.resource_version());
    within("delete", leases.delete("fedns-a", &DeleteParams::default()))
        .await
        .expect("delete");
    match next_event(&mut stream).await {
        Event::Delete(lease) => assert_eq!(lease.name_any(), "fedns-a"),
        _ => panic!("expected Delete"),
    }

    let mut seen = Vec::new();
    while seen.len() < 3 {
        match within("raw event", raw_events.next()).await {
            Some(Ok(WatchEvent::Added(l))) => seen.push(("ADDED", l.resource_version())),
            Some(Ok(WatchEvent::Modified(l))) => seen.push(("MODIFIED", l.resource_version())),
            Some(Ok(WatchEvent::Deleted(l))) => seen.push(("DELETED", l.resource_version())),
            Some(Ok(WatchEvent::Bookmark(_))) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let kinds: Vec<&str> = seen.iter().map(|(kind, _)| *kind).collect();
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);
    assert_eq!(seen[1].1, renewed.resource_version());
    assert_eq!(
        seen[2].1,
        Some(cluster.resource_version()),
        "DELETED carries the deletion's RV"
    );

    // ConfigMaps the same way, with a label selector.
    let maps = Api::<ConfigMap>::namespaced(client, FLEET);
    let config = watcher::Config::default().labels("app=fedns");
    let mut overrides = watcher(maps.clone(), config).boxed();
    assert!(read_init(&mut overrides).await.is_empty());
    let mut labelled: ConfigMap = typed(config_map(FLEET, "fedns-overrides", &[("drain", "east")]));
    labelled.metadata.labels = Some([("app".to_owned(), "fedns".to_owned())].into());
    within("create cm", maps.create(&pp, &labelled))
        .await
        .expect("create");
    within(
        "create other",
        maps.create(&pp, &typed(config_map(FLEET, "unrelated", &[]))),
    )
    .await
    .expect("create");
    let patch = serde_json::json!({"data": {"drain": "west"}});
    within(
        "patch cm",
        maps.patch(
            "fedns-overrides",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        ),
    )
    .await
    .expect("patch");
    for want in ["east", "west"] {
        match next_event(&mut overrides).await {
            Event::Apply(cm) => assert_eq!(
                (
                    cm.name_any().as_str(),
                    cm.data
                        .as_ref()
                        .and_then(|d| d.get("drain"))
                        .map(String::as_str)
                ),
                ("fedns-overrides", Some(want))
            ),
            _ => panic!("expected Apply"),
        }
    }
}

#[tokio::test]
async fn forbidden_and_faulted_writes() {
    let cluster = FakeCluster::start("writefaults").await;
    let leases = Api::<Lease>::namespaced(client_for(&cluster, "writefaults").await, FLEET);
    let pp = PostParams::default();
    let mine: Lease = typed(lease(FLEET, "fedns-a", "a", 15, RENEWED, &[]));

    // RBAC: everything denied, then writes only.
    cluster.set_forbidden(Resource::Leases, true);
    let err = within("forbidden create", leases.create(&pp, &mine)).await;
    let (code, reason, message) = api_message(err.expect_err("403"));
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        message,
        "leases.coordination.k8s.io is forbidden: User \"system:serviceaccount:fedns:fedns\" cannot create \
         resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"fedns\""
    );
    let err = within("forbidden get", leases.get("fedns-a")).await;
    assert_eq!(api_status(err.expect_err("403")), (403, "Forbidden".into()));
    cluster.set_forbidden(Resource::Leases, false);
    cluster.set_forbidden_writes(Resource::Leases, true);
    cluster.apply(
        Resource::Leases,
        lease(FLEET, "fedns-a", "a", 15, RENEWED, &[]),
    );
    let current = within("get allowed", leases.get("fedns-a"))
        .await
        .expect("reads allowed");
    let err = within(
        "forbidden replace",
        leases.replace("fedns-a", &pp, &current),
    )
    .await;
    let (code, _, message) = api_message(err.expect_err("403"));
    assert_eq!(code, 403);
    assert!(
        message.starts_with("leases.coordination.k8s.io \"fedns-a\" is forbidden"),
        "{message}"
    );
    let err = within(
        "forbidden delete",
        leases.delete("fedns-a", &DeleteParams::default()),
    )
    .await;
    assert_eq!(api_status(err.expect_err("403")), (403, "Forbidden".into()));
    cluster.set_forbidden_writes(Resource::Leases, false);

    // A 500 fault fails writes before they reach the store.
    cluster.set_fault(Fault::Status(500));
    let err = within("500", leases.replace("fedns-a", &pp, &current)).await;
    assert_eq!(
        api_status(err.expect_err("500")),
        (500, "InternalError".into())
    );
    // A hung server hangs writes, which then never happen.
    cluster.set_fault(Fault::Hang);
    let hung = tokio::time::timeout(
        Duration::from_millis(300),
        leases.delete("fedns-a", &DeleteParams::default()),
    )
    .await;
    assert!(hung.is_err(), "write must hang");
    cluster.set_fault(Fault::None);
    assert_eq!(
        cluster
            .get(Resource::Leases, FLEET, "fedns-a")
            .expect("still there")["metadata"]["resourceVersion"],
        current.resource_version().expect("rv").as_str()
    );
    within("after faults", leases.replace("fedns-a", &pp, &current))
        .await
        .expect("replace after faults");
    assert_eq!(cluster.write_count(Resource::Leases), 6);
}

#[tokio::test]
async fn injected_conflicts_exercise_the_retry_path() {
    let cluster = FakeCluster::start("conflicts").await;
    let leases = Api::<Lease>::namespaced(client_for(&cluster, "conflicts").await, FLEET);
    let pp = PostParams::default();
    within(
        "create",
        leases.create(&pp, &typed(lease(FLEET, "fedns-a", "a", 15, RENEWED, &[]))),
    )
    .await
    .expect("create");

    cluster.set_write_conflicts(2);
    // Creates cannot conflict and do not use up the injected conflicts.
    within(
        "create b",
        leases.create(&pp, &typed(lease(FLEET, "fedns-b", "b", 15, RENEWED, &[]))),
    )
    .await
    .expect("create during conflicts");
    // The usual loop: GET, change, PUT with its resourceVersion, again on 409.
    let mut attempts = 0;
    let renewed = loop {
        attempts += 1;
        let mut current = within("get", leases.get("fedns-a")).await.expect("get");
        let rv_before = current.resource_version();
        current.spec.as_mut().expect("spec").holder_identity = Some(format!("a{attempts}"));
        match within("replace", leases.replace("fedns-a", &pp, &current)).await {
            Ok(renewed) => break renewed,
            Err(err) => {
                assert_eq!(
                    api_message(err),
                    (409, "Conflict".into(), stale_lease_message("fedns-a"))
                );
                let stored = cluster
                    .get(Resource::Leases, FLEET, "fedns-a")
                    .expect("stored");
                assert_eq!(
                    Some(
                        stored["metadata"]["resourceVersion"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned()
                    ),
                    rv_before,
                    "a conflict changes nothing"
                );
            }
        }
        assert!(attempts < 5, "conflicts never end");
    };
    assert_eq!(attempts, 3);
    assert_eq!(holder(&renewed), Some("a3"));
    // 1 + 1 creates, 3 replaces.
    assert_eq!(cluster.write_count(Resource::Leases), 5);
    // Patches and deletes are writes too.
    cluster.set_write_conflicts(1);
    let patch = serde_json::json!({"spec": {"holderIdentity": "p"}});
    let err = within(
        "patch",
        leases.patch("fedns-a", &PatchParams::default(), &Patch::Merge(&patch)),
    )
    .await;
    assert_eq!(api_status(err.expect_err("409")), (409, "Conflict".into()));
    within(
        "patch again",
        leases.patch("fedns-a", &PatchParams::default(), &Patch::Merge(&patch)),
    )
    .await
    .expect("patch");
    cluster.set_write_conflicts(1);
    let err = within("delete", leases.delete("fedns-b", &DeleteParams::default())).await;
    assert_eq!(api_status(err.expect_err("409")), (409, "Conflict".into()));
    cluster.set_write_conflicts(0);
    within(
        "delete again",
        leases.delete("fedns-b", &DeleteParams::default()),
    )
    .await
    .expect("delete");
}

#[tokio::test]
async fn merge_patch_follows_rfc_7386() {
    let cluster = FakeCluster::start("mergepatch").await;
    let client = client_for(&cluster, "mergepatch").await;
    let uri = "/api/v1/namespaces/fedns/configmaps/cases";
    let merge = Some("application/merge-patch+json");
    // RFC 7386 appendix A, each case under a field `x` (the imitation keeps fields it
    // does not know, and merging under a key is the case itself).
    let cases = [
        (r#"{"a":"b"}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
        (r#"{"a":"b"}"#, r#"{"b":"c"}"#, r#"{"a":"b","b":"c"}"#),
        (r#"{"a":"b"}"#, r#"{"a":null}"#, r#"{}"#),
        (r#"{"a":"b","b":"c"}"#, r#"{"a":null}"#, r#"{"b":"c"}"#),
        (r#"{"a":["b"]}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
        (r#"{"a":"c"}"#, r#"{"a":["b"]}"#, r#"{"a":["b"]}"#),
        (
            r#"{"a":{"b":"c"}}"#,
            r#"{"a":{"b":"d","c":null}}"#,
            r#"{"a":{"b":"d"}}"#,
        ),
        (r#"{"a":[{"b":"c"}]}"#, r#"{"a":[1]}"#, r#"{"a":[1]}"#),
        (r#"["a","b"]"#, r#"["c","d"]"#, r#"["c","d"]"#),
        (r#"{"a":"b"}"#, r#"["c"]"#, r#"["c"]"#),
        (r#"{"a":"foo"}"#, "null", "null"),
        (r#"{"a":"foo"}"#, r#""bar""#, r#""bar""#),
        (r#"{"e":null}"#, r#"{"a":1}"#, r#"{"e":null,"a":1}"#),
        ("[1,2]", r#"{"a":"b","c":null}"#, r#"{"a":"b"}"#),
        ("{}", r#"{"a":{"bb":{"ccc":null}}}"#, r#"{"a":{"bb":{}}}"#),
    ];
    let parse = |text: &str| -> serde_json::Value { serde_json::from_str(text).expect("case") };
    for (target, patch, want) in cases {
        let mut object = config_map(FLEET, "cases", &[]);
        object["x"] = parse(target);
        cluster.apply(Resource::ConfigMaps, object);
        let body = format!(r#"{{"x":{patch}}}"#);
        let (code, _, reply) = raw_body(&client, "PATCH", uri, merge, &body).await;
        assert_eq!(code, 200, "{patch}");
        let reply: serde_json::Value = serde_json::from_slice(&reply).expect("JSON");
        assert_eq!(reply["x"], parse(want), "{target} + {patch}");
    }
    // A patch that is no object replaces the whole object: not a ConfigMap any more.
    let (code, _, _) = raw_body(&client, "PATCH", uri, merge, "[1]").await;
    assert_eq!(code, 400);
    let (code, _, _) = raw_body(&client, "PATCH", uri, merge, "{").await;
    assert_eq!(code, 400);
}
