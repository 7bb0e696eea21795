//! The fake over HTTPS with a minimal HTTP/1.1 client: CRD installation, discovery,
//! list, watch and the object builders.

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::client::TlsStream;

use super::*;

const GATEWAY_API: &str = "/apis/gateway.networking.k8s.io";
const GATEWAYS: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/default/gateways";
const LISTENER_SETS: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/default/listenersets";
const X_GATEWAY_API: &str = "/apis/gateway.networking.x-k8s.io";
const X_LISTENER_SETS: &str =
    "/apis/gateway.networking.x-k8s.io/v1alpha1/namespaces/default/xlistenersets";
/// How long a test waits for any answer or event.
const PATIENCE: Duration = Duration::from_secs(10);

/// One request on its own connection; the response body is read as it comes.
struct Exchange {
    tls: TlsStream<TcpStream>,
    /// Bytes received and not consumed yet.
    raw: Vec<u8>,
    chunked: bool,
    /// Body bytes decoded and not consumed yet.
    body: Vec<u8>,
    done: bool,
}

impl Exchange {
    async fn start(
        cluster: &FakeCluster,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Exchange) {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(cluster.ca_pem().as_bytes()) {
            roots.add(cert.expect("CA PEM")).expect("add CA");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(cluster.inner.addr)
            .await
            .expect("connect");
        let name = ServerName::try_from("127.0.0.1").expect("server name");
        let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
        let body = body.map(Value::to_string).unwrap_or_default();
        let content_type = if method == "PATCH" {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            cluster.inner.addr,
            cluster.token(),
            body.len()
        );
        tls.write_all(request.as_bytes())
            .await
            .expect("send request");
        let mut exchange = Exchange {
            tls,
            raw: Vec::new(),
            chunked: false,
            body: Vec::new(),
            done: false,
        };
        let head_end = loop {
            if let Some(end) = exchange.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            assert!(
                exchange.read_more().await,
                "connection closed before the headers"
            );
        };
        let head = String::from_utf8_lossy(&exchange.raw[..head_end]).to_ascii_lowercase();
        exchange.raw.drain(..head_end + 4);
        exchange.chunked = head.contains("transfer-encoding: chunked");
        let status = head[9..12].parse().expect("status code");
        (status, exchange)
    }

    /// Reads more bytes off the connection; false at its end.
    async fn read_more(&mut self) -> bool {
        let mut buf = [0u8; 16 * 1024];
        let n = tokio::time::timeout(PATIENCE, self.tls.read(&mut buf))
            .await
            .expect("the fake answers in time")
            .unwrap_or(0);
        self.raw.extend_from_slice(&buf[..n]);
        n > 0
    }

    /// Decodes what `raw` holds into `body`; true when the body is complete.
    fn decode(&mut self) -> bool {
        if !self.chunked {
            self.body.append(&mut self.raw);
            return false;
        }
        loop {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return false;
            };
            let size_text = String::from_utf8_lossy(&self.raw[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.trim(), 16).expect("chunk size");
            if size == 0 {
                return true;
            }
            if self.raw.len() < line_end + 2 + size + 2 {
                return false;
            }
            self.body
                .extend_from_slice(&self.raw[line_end + 2..line_end + 2 + size]);
            self.raw.drain(..line_end + 2 + size + 2);
        }
    }

    /// The next body line (a watch event), or `None` when the body ends.
    async fn next_line(&mut self) -> Option<Value> {
        loop {
            self.done |= self.decode();
            if let Some(end) = self.body.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.body.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).expect("a JSON line"));
            }
            if self.done {
                return None;
            }
            self.done = !self.read_more().await;
        }
    }

    /// The whole body as JSON.
    async fn json(mut self) -> Value {
        loop {
            self.done |= self.decode();
            if self.done {
                break;
            }
            self.done = !self.read_more().await;
        }
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

async fn call(
    cluster: &FakeCluster,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let (status, exchange) = Exchange::start(cluster, method, path, body).await;
    (status, exchange.json().await)
}

async fn get(cluster: &FakeCluster, path: &str) -> (u16, Value) {
    call(cluster, "GET", path, None).await
}

fn group_names(apis: &Value) -> Vec<&str> {
    apis["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["name"].as_str().unwrap_or_default())
        .collect()
}

fn resource_names(list: &Value) -> Vec<&str> {
    list["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default())
        .collect()
}

fn item_names(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap_or_default())
        .collect()
}

fn not_found_status() -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "the server could not find the requested resource", "reason": "NotFound",
        "details": {}, "code": 404,
    })
}

fn web_gateway(name: &str) -> Value {
    gateway(
        "default",
        name,
        &[Listener::http("web", 80)],
        &["192.0.2.10"],
        true,
    )
}

#[tokio::test]
async fn a_crd_not_installed_is_not_served() {
    let cluster = FakeCluster::start("crd-absent").await;
    assert!(!cluster.is_installed(Resource::Gateways));
    assert!(cluster.is_installed(Resource::Services));

    let (status, apis) = get(&cluster, "/apis").await;
    assert_eq!(status, 200);
    let builtin = [
        "networking.k8s.io",
        "discovery.k8s.io",
        "coordination.k8s.io",
    ];
    assert_eq!(group_names(&apis), builtin);
    for path in [
        GATEWAY_API.to_owned(),
        format!("{GATEWAY_API}/v1"),
        GATEWAYS.to_owned(),
        format!("{GATEWAYS}?watch=true"),
        format!("{GATEWAYS}/web"),
        format!("{GATEWAY_API}/v1/gateways"),
        "/apis/networking.istio.io/v1/namespaces/default/gateways".to_owned(),
    ] {
        assert_eq!(
            get(&cluster, &path).await,
            (404, not_found_status()),
            "GET {path}"
        );
    }
    let (status, body) = call(&cluster, "POST", GATEWAYS, Some(&web_gateway("web"))).await;
    assert_eq!((status, body), (404, not_found_status()));
    assert_eq!(cluster.write_count(Resource::Gateways), 1);

    // RBAC is checked before routing, as by the real server.
    cluster.set_forbidden(Resource::Gateways, true);
    let (status, body) = get(&cluster, GATEWAYS).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["reason"], "Forbidden");
}

#[tokio::test]
#[should_panic(expected = "is not installed")]
async fn apply_of_a_crd_not_installed_panics() {
    let cluster = FakeCluster::start("crd-apply").await;
    cluster.apply(Resource::Gateways, web_gateway("web"));
}

#[tokio::test]
async fn an_installed_crd_is_discovered_listed_and_watched() {
    let cluster = FakeCluster::start("crd-installed").await;
    cluster.install_crd(Resource::Gateways);
    cluster.install_crd(Resource::Services); // no effect
    assert!(cluster.is_installed(Resource::Gateways));

    let (_, apis) = get(&cluster, "/apis").await;
    let groups = group_names(&apis);
    assert_eq!(groups.last(), Some(&"gateway.networking.k8s.io"), "{apis}");
    let (status, group) = get(&cluster, GATEWAY_API).await;
    assert_eq!(status, 200);
    let v1 = json!({"groupVersion": "gateway.networking.k8s.io/v1", "version": "v1"});
    assert_eq!(group["versions"], json!([v1]));
    assert_eq!(group["preferredVersion"], v1);
    let (status, resources) = get(&cluster, &format!("{GATEWAY_API}/v1")).await;
    assert_eq!(status, 200);
    assert_eq!(resource_names(&resources), ["gateways", "gateways/status"]);
    assert_eq!(resources["groupVersion"], "gateway.networking.k8s.io/v1");
    // Other kinds of the group are still absent.
    let routes = format!("{GATEWAY_API}/v1/httproutes");
    assert_eq!(get(&cluster, &routes).await.0, 404);

    cluster.apply(Resource::Gateways, web_gateway("a"));
    let (status, list) = get(&cluster, GATEWAYS).await;
    assert_eq!(status, 200);
    assert_eq!(list["kind"], "GatewayList");
    assert_eq!(list["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(item_names(&list), ["a"]);
    let (status, object) = get(&cluster, &format!("{GATEWAYS}/a")).await;
    assert_eq!(status, 200);
    assert_eq!(object["kind"], "Gateway");
    assert_eq!(object["metadata"]["generation"], 1);
    assert_eq!(object["status"]["addresses"][0]["type"], "IPAddress");

    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, mut watch) = Exchange::start(
        &cluster,
        "GET",
        &format!("{GATEWAYS}?watch=true&resourceVersion={rv}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    cluster.apply(Resource::Gateways, web_gateway("b"));
    let event = watch.next_line().await.expect("an event");
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["metadata"]["name"], "b");
    assert_eq!(
        event["object"]["apiVersion"],
        "gateway.networking.k8s.io/v1"
    );

    // A spec change bumps the generation; a status change does not.
    let mut changed = web_gateway("b");
    changed["spec"]["listeners"][0]["port"] = json!(8080);
    cluster.apply(Resource::Gateways, changed.clone());
    changed["status"]["conditions"][1]["status"] = json!("False");
    cluster.apply(Resource::Gateways, changed);
    let b = cluster.get(Resource::Gateways, "default", "b").unwrap();
    assert_eq!(b["metadata"]["generation"], 2);

    // Over HTTP: a create drops the status (status subresource).
    let (status, created) = call(&cluster, "POST", GATEWAYS, Some(&web_gateway("c"))).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], Value::Null);
    assert_eq!(created["metadata"]["generation"], 1);
}

#[tokio::test]
async fn a_group_serves_the_versions_of_its_installed_kinds() {
    let cluster = FakeCluster::start("crd-versions").await;
    cluster.install_crd(Resource::TlsRoutes);
    let (_, group) = get(&cluster, GATEWAY_API).await;
    assert_eq!(group["preferredVersion"]["version"], "v1alpha2");
    assert_eq!(get(&cluster, &format!("{GATEWAY_API}/v1")).await.0, 404);

    cluster.install_crd(Resource::HttpRoutes);
    let (_, group) = get(&cluster, GATEWAY_API).await;
    let versions: Vec<&str> = group["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["v1", "v1alpha2"]);
    assert_eq!(group["preferredVersion"]["version"], "v1");
    let (_, v1) = get(&cluster, &format!("{GATEWAY_API}/v1")).await;
    assert_eq!(resource_names(&v1), ["httproutes", "httproutes/status"]);
    let (_, alpha) = get(&cluster, &format!("{GATEWAY_API}/v1alpha2")).await;
    assert_eq!(resource_names(&alpha), ["tlsroutes", "tlsroutes/status"]);
    // Each kind only at its own version.
    let wrong = format!("{GATEWAY_API}/v1/namespaces/default/tlsroutes");
    assert_eq!(get(&cluster, &wrong).await, (404, not_found_status()));
    let right = format!("{GATEWAY_API}/v1alpha2/namespaces/default/tlsroutes");
    let (status, list) = get(&cluster, &right).await;
    assert_eq!((status, &list["kind"]), (200, &json!("TLSRouteList")));
}

#[tokio::test]
async fn a_crd_installed_at_another_version_is_served_only_there() {
    let cluster = FakeCluster::start("crd-v1beta1").await;
    cluster.install_crd_version(Resource::HttpRoutes, "v1beta1");
    let (_, group) = get(&cluster, GATEWAY_API).await;
    let beta = json!({"groupVersion": "gateway.networking.k8s.io/v1beta1", "version": "v1beta1"});
    assert_eq!(group["versions"], json!([beta]));
    assert_eq!(group["preferredVersion"], beta);
    assert_eq!(get(&cluster, &format!("{GATEWAY_API}/v1")).await.0, 404);
    let at_v1 = format!("{GATEWAY_API}/v1/namespaces/default/httproutes");
    assert_eq!(get(&cluster, &at_v1).await, (404, not_found_status()));

    let parents = [ParentRef::new("gw")];
    cluster.apply(
        Resource::HttpRoutes,
        http_route("default", "r", &["a.example"], &parents, &["svc"]),
    );
    let at_beta = format!("{GATEWAY_API}/v1beta1/namespaces/default/httproutes");
    let (status, list) = get(&cluster, &at_beta).await;
    assert_eq!(status, 200);
    assert_eq!(list["apiVersion"], "gateway.networking.k8s.io/v1beta1");
    assert_eq!(item_names(&list), ["r"]);
    let (_, object) = get(&cluster, &format!("{at_beta}/r")).await;
    assert_eq!(object["apiVersion"], "gateway.networking.k8s.io/v1beta1");
    let route = cluster.get(Resource::HttpRoutes, "default", "r").unwrap();
    assert_eq!(route["apiVersion"], "gateway.networking.k8s.io/v1beta1");
}

#[tokio::test]
async fn uninstalling_a_crd_removes_it_and_its_objects() {
    let cluster = FakeCluster::start("crd-uninstall").await;
    cluster.install_crd(Resource::Gateways);
    cluster.install_crd(Resource::HttpRoutes);
    cluster.apply(Resource::Gateways, web_gateway("a"));
    cluster.apply(Resource::Gateways, web_gateway("b"));
    let (status, mut watch) =
        Exchange::start(&cluster, "GET", &format!("{GATEWAYS}?watch=true"), None).await;
    assert_eq!(status, 200);
    for name in ["a", "b"] {
        let event = watch.next_line().await.expect("initial event");
        assert_eq!(
            (&event["type"], &event["object"]["metadata"]["name"]),
            (&json!("ADDED"), &json!(name))
        );
    }
    assert_eq!(cluster.active_watches(), 1);

    cluster.uninstall_crd(Resource::Gateways);
    assert!(!cluster.is_installed(Resource::Gateways));
    assert_eq!(
        watch.next_line().await,
        None,
        "the watch ends with no event"
    );
    assert_eq!(get(&cluster, GATEWAYS).await, (404, not_found_status()));
    assert_eq!(cluster.get(Resource::Gateways, "default", "a"), None);
    let (_, resources) = get(&cluster, &format!("{GATEWAY_API}/v1")).await;
    assert_eq!(
        resource_names(&resources),
        ["httproutes", "httproutes/status"]
    );

    cluster.uninstall_crd(Resource::HttpRoutes);
    let (_, apis) = get(&cluster, "/apis").await;
    assert!(
        !group_names(&apis).contains(&"gateway.networking.k8s.io"),
        "{apis}"
    );
    assert_eq!(get(&cluster, GATEWAY_API).await.0, 404);

    // Installed again: empty.
    cluster.install_crd(Resource::Gateways);
    let (status, list) = get(&cluster, GATEWAYS).await;
    assert_eq!(status, 200);
    assert_eq!(item_names(&list), Vec::<&str>::new());
}

#[tokio::test]
async fn listener_sets_are_served_once_installed() {
    let cluster = FakeCluster::start("crd-listenersets").await;
    for path in [
        LISTENER_SETS.to_owned(),
        format!("{LISTENER_SETS}?watch=true"),
        format!("{GATEWAY_API}/v1"),
        X_GATEWAY_API.to_owned(),
        format!("{X_GATEWAY_API}/v1alpha1"),
        X_LISTENER_SETS.to_owned(),
    ] {
        assert_eq!(
            get(&cluster, &path).await,
            (404, not_found_status()),
            "GET {path}"
        );
    }

    cluster.install_crd(Resource::ListenerSets);
    assert!(cluster.is_installed(Resource::ListenerSets));
    assert!(!cluster.is_installed(Resource::XListenerSets));
    let (_, apis) = get(&cluster, "/apis").await;
    let groups = group_names(&apis);
    assert_eq!(groups.last(), Some(&"gateway.networking.k8s.io"), "{apis}");
    assert!(!groups.contains(&"gateway.networking.x-k8s.io"), "{apis}");
    let (status, resources) = get(&cluster, &format!("{GATEWAY_API}/v1")).await;
    assert_eq!(status, 200);
    assert_eq!(
        resource_names(&resources),
        ["listenersets", "listenersets/status"]
    );
    assert_eq!(resources["resources"][0]["kind"], "ListenerSet");
    assert_eq!(resources["resources"][0]["namespaced"], true);
    assert_eq!(get(&cluster, X_GATEWAY_API).await.0, 404);
    assert_eq!(get(&cluster, X_LISTENER_SETS).await.0, 404);

    cluster.install_crd(Resource::XListenerSets);
    let (_, apis) = get(&cluster, "/apis").await;
    assert_eq!(
        group_names(&apis).last(),
        Some(&"gateway.networking.x-k8s.io"),
        "{apis}"
    );
    let (status, group) = get(&cluster, X_GATEWAY_API).await;
    assert_eq!(status, 200);
    let alpha =
        json!({"groupVersion": "gateway.networking.x-k8s.io/v1alpha1", "version": "v1alpha1"});
    assert_eq!(group["versions"], json!([alpha]));
    assert_eq!(group["preferredVersion"], alpha);
    let (status, resources) = get(&cluster, &format!("{X_GATEWAY_API}/v1alpha1")).await;
    assert_eq!(status, 200);
    assert_eq!(
        resource_names(&resources),
        ["xlistenersets", "xlistenersets/status"]
    );
    assert_eq!(
        resources["groupVersion"],
        "gateway.networking.x-k8s.io/v1alpha1"
    );
    assert_eq!(resources["resources"][0]["kind"], "XListenerSet");

    let parent = ParentRef::new("gw").namespace("infra");
    let listeners = [Listener::http("extra", 8080).hostname("a.example.com")];
    cluster.apply(
        Resource::ListenerSets,
        listener_set("default", "ls", &parent, &listeners, true),
    );
    cluster.apply(
        Resource::XListenerSets,
        x_listener_set("default", "xls", &parent, &listeners, true),
    );
    for (path, kind, api_version, name) in [
        (
            LISTENER_SETS,
            "ListenerSet",
            "gateway.networking.k8s.io/v1",
            "ls",
        ),
        (
            X_LISTENER_SETS,
            "XListenerSet",
            "gateway.networking.x-k8s.io/v1alpha1",
            "xls",
        ),
    ] {
        let (status, list) = get(&cluster, path).await;
        assert_eq!(status, 200, "GET {path}");
        assert_eq!(list["kind"], format!("{kind}List"));
        assert_eq!(list["apiVersion"], api_version);
        assert_eq!(item_names(&list), [name]);
        let (status, object) = get(&cluster, &format!("{path}/{name}")).await;
        assert_eq!(status, 200);
        assert_eq!(object["kind"], kind);
        assert_eq!(object["apiVersion"], api_version);
        assert_eq!(object["metadata"]["generation"], 1);
        assert_eq!(object["spec"]["parentRef"]["name"], "gw");
        assert_eq!(object["spec"]["listeners"][0]["port"], 8080);
    }

    cluster.uninstall_crd(Resource::XListenerSets);
    let (_, apis) = get(&cluster, "/apis").await;
    assert!(
        !group_names(&apis).contains(&"gateway.networking.x-k8s.io"),
        "{apis}"
    );
    assert_eq!(
        get(&cluster, X_LISTENER_SETS).await,
        (404, not_found_status())
    );
    assert_eq!(get(&cluster, LISTENER_SETS).await.0, 200);
}

#[test]
fn builders_shape_listener_sets() {
    let listeners = [
        Listener::new("https", 443, "HTTPS").hostname("*.team.example"),
        Listener::http("web", 8080).namespaces_from("All"),
    ];
    let ls = listener_set(
        "team",
        "ls",
        &ParentRef::new("gw").namespace("infra"),
        &listeners,
        false,
    );
    assert_eq!(ls["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(ls["kind"], "ListenerSet");
    assert_eq!(
        ls["spec"]["parentRef"],
        json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw", "namespace": "infra"})
    );
    // The listeners exactly as the Gateway builder writes them.
    let gw = gateway("infra", "gw", &listeners, &[], false);
    assert_eq!(ls["spec"]["listeners"], gw["spec"]["listeners"]);
    assert_eq!(ls["status"]["listeners"], gw["status"]["listeners"]);
    assert_eq!(ls["spec"]["listeners"][0]["tls"]["mode"], "Terminate");
    let conditions = &ls["status"]["conditions"];
    assert_eq!(
        (&conditions[0]["type"], &conditions[0]["status"]),
        (&json!("Accepted"), &json!("True"))
    );
    assert_eq!(
        (&conditions[1]["type"], &conditions[1]["status"]),
        (&json!("Programmed"), &json!("False"))
    );
    assert_eq!(conditions[1]["observedGeneration"], 1);
    let ls = listener_set("infra", "ls", &ParentRef::new("gw"), &listeners, true);
    assert_eq!(ls["spec"]["parentRef"].get("namespace"), None);
    assert_eq!(ls["status"]["conditions"][1]["status"], "True");

    let xls = x_listener_set("infra", "xls", &ParentRef::new("gw"), &listeners, true);
    assert_eq!(xls["apiVersion"], "gateway.networking.x-k8s.io/v1alpha1");
    assert_eq!(xls["kind"], "XListenerSet");
    assert_eq!(xls["spec"], ls["spec"]);
    assert_eq!(xls["status"], ls["status"]);

    let mut gw = web_gateway("gw");
    assert_eq!(gw["spec"].get("allowedListeners"), None);
    allow_listeners(&mut gw, "Same");
    allow_listeners(&mut gw, "All");
    assert_eq!(
        gw["spec"]["allowedListeners"],
        json!({"namespaces": {"from": "All"}})
    );
    assert_eq!(gw["spec"]["gatewayClassName"], "example");

    for (group, kind) in [
        ("gateway.networking.k8s.io", "ListenerSet"),
        ("gateway.networking.x-k8s.io", "XListenerSet"),
    ] {
        let parent = ParentRef::new("ls").kind(group, kind).section_name("https");
        let route = http_route(
            "team",
            "r",
            &["a.team.example"],
            std::slice::from_ref(&parent),
            &["svc"],
        );
        let expected = json!({"group": group, "kind": kind, "name": "ls", "sectionName": "https"});
        assert_eq!(route["spec"]["parentRefs"], json!([expected]));
        assert_eq!(route["status"]["parents"][0]["parentRef"], expected);
        assert_eq!(
            route["status"]["parents"][0]["conditions"][0]["status"],
            "True"
        );
    }
}

#[test]
fn builders_shape_gateway_api_objects() {
    let listeners = [
        Listener::http("web", 80)
            .hostname("*.example.com")
            .namespaces_from("All"),
        Listener::new("tls", 443, "TLS").kinds(&["TLSRoute"]),
    ];
    let gw = gateway(
        "infra",
        "gw",
        &listeners,
        &["192.0.2.1", "2001:db8::1", "lb.example"],
        false,
    );
    let types: Vec<&Value> = (0..3)
        .map(|i| &gw["status"]["addresses"][i]["type"])
        .collect();
    assert_eq!(
        types,
        [&json!("IPAddress"), &json!("IPAddress"), &json!("Hostname")]
    );
    assert_eq!(gw["status"]["conditions"][1]["type"], "Programmed");
    assert_eq!(gw["status"]["conditions"][1]["status"], "False");
    assert_eq!(
        gw["spec"]["listeners"][0]["allowedRoutes"]["namespaces"]["from"],
        "All"
    );
    assert_eq!(gw["spec"]["listeners"][0]["hostname"], "*.example.com");
    assert_eq!(
        gw["spec"]["listeners"][1]["allowedRoutes"]["kinds"][0]["kind"],
        "TLSRoute"
    );
    assert_eq!(
        gw["status"]["listeners"][1]["supportedKinds"][0]["kind"],
        "TLSRoute"
    );

    let parent = ParentRef::new("gw").namespace("infra").section_name("web");
    let mut route = http_route(
        "app",
        "r",
        &["a.example.com"],
        std::slice::from_ref(&parent),
        &["svc"],
    );
    let status = &route["status"]["parents"][0];
    assert_eq!(status["parentRef"], route["spec"]["parentRefs"][0]);
    assert_eq!(status["controllerName"], GATEWAY_CONTROLLER);
    assert_eq!(status["conditions"][0]["observedGeneration"], 1);
    set_route_parent_status(&mut route, &parent, false, 0);
    assert_eq!(
        route["status"]["parents"][0]["conditions"][0]["status"],
        "False"
    );
    assert_eq!(
        route["status"]["parents"][0]["conditions"][0]["observedGeneration"],
        0
    );
    set_route_parent_status(&mut route, &ParentRef::new("old"), true, 1);
    assert_eq!(route["status"]["parents"].as_array().unwrap().len(), 2);
    remove_route_parent_status(&mut route, &parent);
    assert_eq!(route["status"]["parents"][0]["parentRef"]["name"], "old");
    assert_eq!(
        tls_route("app", "t", &[], &[], &[])["apiVersion"],
        "gateway.networking.k8s.io/v1alpha2"
    );

    let endpoint = dns_endpoint(
        "app",
        "e",
        &[("a.example.com", "A", &["192.0.2.1"], Some(60))],
    );
    assert_eq!(endpoint["spec"]["endpoints"][0]["recordTTL"], 60);
    let endpoint = dns_endpoint("app", "e", &[("a.example.com", "A", &["192.0.2.1"], None)]);
    assert_eq!(endpoint["spec"]["endpoints"][0].get("recordTTL"), None);
    let istio = istio_gateway(
        "istio-system",
        "gw",
        &[("istio", "ingressgateway")],
        &[(&["*.example.com"], 443, "HTTPS")],
    );
    assert_eq!(istio["spec"]["servers"][0]["port"]["number"], 443);
    let vs = virtual_service("app", "vs", &["a.example.com"], &["istio-system/gw"]);
    assert_eq!(vs["spec"]["gateways"][0], "istio-system/gw");
}

const NAMESPACES: &str = "/api/v1/namespaces";

/// The `metadata.name` of every Namespace in a list, and whether any item
/// carries a namespace.
fn namespace_items(list: &Value) -> (Vec<&str>, bool) {
    let items = list["items"].as_array().expect("items");
    let with_namespace = items
        .iter()
        .any(|o| o["metadata"].get("namespace").is_some());
    (item_names(list), with_namespace)
}

#[test]
fn the_resource_tables_agree() {
    for (i, resource) in Resource::ALL.into_iter().enumerate() {
        assert_eq!(resource.index(), i, "{resource:?}");
        assert_eq!(
            resource.is_crd(),
            i >= Resource::BUILTIN.len(),
            "{resource:?}"
        );
        assert!(!resource.plural().is_empty() && !resource.kind().is_empty());
        let version = resource.default_version();
        assert!(resource.api_version().ends_with(version), "{resource:?}");
        assert!(
            resource.api_version().starts_with(resource.group()),
            "{resource:?}"
        );
    }
    assert_eq!(Resource::ALL[..Resource::BUILTIN.len()], Resource::BUILTIN);
    assert_eq!(Resource::ALL[Resource::BUILTIN.len()..], Resource::CRDS);
    let cluster_scoped: Vec<Resource> = Resource::ALL
        .into_iter()
        .filter(|r| !r.is_namespaced())
        .collect();
    assert_eq!(cluster_scoped, [Resource::Namespaces]);
    assert_eq!(Resource::Namespaces.key("ignored", "prod"), "/prod");
    assert_eq!(Resource::Services.key("prod", "web"), "prod/web");
}

#[test]
fn builders_shape_namespaces() {
    let ns = namespace("prod", &[("team", "a")]);
    assert_eq!(ns["apiVersion"], "v1");
    assert_eq!(ns["kind"], "Namespace");
    assert_eq!(
        ns["metadata"],
        json!({"name": "prod", "labels": {"team": "a", "kubernetes.io/metadata.name": "prod"}})
    );
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
}

#[tokio::test]
async fn namespaces_are_cluster_scoped() {
    let cluster = FakeCluster::start("namespaces").await;
    assert!(cluster.is_installed(Resource::Namespaces));
    cluster.apply(Resource::Namespaces, namespace("prod", &[("team", "a")]));
    cluster.apply(Resource::Namespaces, namespace("dev", &[("team", "b")]));
    // A namespace in the object is dropped, the name label added.
    cluster.apply(
        Resource::Namespaces,
        json!({"metadata": {"name": "bare", "namespace": "default"}}),
    );
    cluster.apply(
        Resource::Services,
        lb_service("prod", "web", &[], None, &[80]),
    );

    let (status, list) = get(&cluster, NAMESPACES).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["kind"], "NamespaceList");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(namespace_items(&list), (vec!["bare", "dev", "prod"], false));
    assert_eq!(list["items"][0].get("kind"), None);
    assert_eq!(
        list["items"][0]["metadata"]["labels"],
        json!({"kubernetes.io/metadata.name": "bare"})
    );

    // Get by name.
    let (status, prod) = get(&cluster, &format!("{NAMESPACES}/prod")).await;
    assert_eq!(status, 200, "{prod}");
    assert_eq!(
        (&prod["kind"], &prod["apiVersion"]),
        (&json!("Namespace"), &json!("v1"))
    );
    assert_eq!(prod["metadata"].get("namespace"), None);
    assert_eq!(prod["metadata"].get("generation"), None);
    assert_eq!(prod["metadata"]["labels"]["team"], "a");
    assert_eq!(prod["status"]["phase"], "Active");
    let (status, missing) = get(&cluster, &format!("{NAMESPACES}/nope")).await;
    assert_eq!(status, 404);
    assert_eq!(missing["message"], "namespaces \"nope\" not found");
    assert_eq!(
        missing["details"],
        json!({"kind": "namespaces", "name": "nope"})
    );
    let stored = cluster
        .get(Resource::Namespaces, "", "prod")
        .expect("stored");
    assert_eq!(stored["metadata"].get("namespace"), None);

    // Label and field selectors, paging.
    for (query, names) in [
        ("labelSelector=team%3Da", vec!["prod"]),
        ("labelSelector=team", vec!["dev", "prod"]),
        (
            "labelSelector=kubernetes.io%2Fmetadata.name%3Ddev",
            vec!["dev"],
        ),
        ("labelSelector=team%20notin%20(a)", vec!["bare", "dev"]),
        ("fieldSelector=metadata.name%3Dprod", vec!["prod"]),
        ("fieldSelector=metadata.name!%3Dprod", vec!["bare", "dev"]),
    ] {
        let (status, list) = get(&cluster, &format!("{NAMESPACES}?{query}")).await;
        assert_eq!(status, 200, "{query}: {list}");
        assert_eq!(item_names(&list), names, "{query}");
    }
    let (_, page) = get(&cluster, &format!("{NAMESPACES}?limit=2")).await;
    assert_eq!(item_names(&page), ["bare", "dev"]);
    assert_eq!(page["metadata"]["remainingItemCount"], 1);
    let token = page["metadata"]["continue"].as_str().expect("continue");
    let (_, rest) = get(&cluster, &format!("{NAMESPACES}?limit=2&continue={token}")).await;
    assert_eq!(item_names(&rest), ["prod"]);

    // The namespaced paths are unchanged.
    let (status, services) = get(&cluster, "/api/v1/namespaces/prod/services").await;
    assert_eq!(status, 200, "{services}");
    assert_eq!(services["kind"], "ServiceList");
    assert_eq!(item_names(&services), ["web"]);
    let (status, web) = get(&cluster, "/api/v1/namespaces/prod/services/web").await;
    assert_eq!(
        (status, &web["metadata"]["namespace"]),
        (200, &json!("prod"))
    );
    assert_eq!(
        item_names(&get(&cluster, "/api/v1/services").await.1),
        ["web"]
    );
    assert_eq!(
        get(&cluster, "/api/v1/namespaces/dev/services").await.1["items"],
        json!([])
    );
    for path in [
        "/api/v1/namespaces/prod/namespaces",
        "/api/v1/namespaces/prod/namespaces/prod",
        "/api/v1/services/web",
        "/api/v1/namespaces/prod/status",
    ] {
        assert_eq!(
            get(&cluster, path).await,
            (404, not_found_status()),
            "GET {path}"
        );
    }

    // Deleted by name alone.
    assert!(cluster.delete(Resource::Namespaces, "", "dev"));
    assert!(!cluster.delete(Resource::Namespaces, "", "dev"));
    let (_, list) = get(&cluster, NAMESPACES).await;
    assert_eq!(item_names(&list), ["bare", "prod"]);
}

#[tokio::test]
async fn namespaces_are_watched() {
    let cluster = FakeCluster::start("namespaces-watch").await;
    cluster.apply(Resource::Namespaces, namespace("old", &[]));
    let (_, list) = get(&cluster, NAMESPACES).await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, mut all) = Exchange::start(
        &cluster,
        "GET",
        &format!("{NAMESPACES}?watch=true&resourceVersion={rv}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, mut selected) = Exchange::start(
        &cluster,
        "GET",
        &format!("{NAMESPACES}?watch=1&labelSelector=team%3Da"),
        None,
    )
    .await;
    assert_eq!(status, 200);

    cluster.apply(Resource::Namespaces, namespace("team", &[("team", "b")]));
    let event = all.next_line().await.expect("ADDED");
    assert_eq!(event["type"], "ADDED");
    let object = &event["object"];
    assert_eq!(
        (&object["kind"], &object["apiVersion"]),
        (&json!("Namespace"), &json!("v1"))
    );
    assert_eq!(object["metadata"]["name"], "team");
    assert_eq!(object["metadata"].get("namespace"), None);

    // A label change: MODIFIED for all, "started matching" for the selector.
    let rv = cluster.apply(Resource::Namespaces, namespace("team", &[("team", "a")]));
    let event = all.next_line().await.expect("MODIFIED");
    assert_eq!(event["type"], "MODIFIED");
    assert_eq!(event["object"]["metadata"]["labels"]["team"], "a");
    assert_eq!(event["object"]["metadata"]["resourceVersion"], rv.as_str());
    assert_eq!(event["object"]["metadata"].get("namespace"), None);
    let event = selected.next_line().await.expect("ADDED on the selector");
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["metadata"]["name"], "team");

    // Other kinds do not show up; deletion by name does.
    cluster.apply(Resource::ConfigMaps, config_map("team", "cm", &[]));
    assert!(cluster.delete(Resource::Namespaces, "", "team"));
    let event = all.next_line().await.expect("DELETED");
    assert_eq!(
        (&event["type"], &event["object"]["metadata"]["name"]),
        (&json!("DELETED"), &json!("team"))
    );

    // Compacted history: 410, as for the other kinds.
    cluster.compact();
    let (status, mut expired) = Exchange::start(
        &cluster,
        "GET",
        &format!("{NAMESPACES}?watch=true&resourceVersion=1001"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let event = expired.next_line().await.expect("ERROR");
    assert_eq!(
        (&event["type"], &event["object"]["code"]),
        (&json!("ERROR"), &json!(410))
    );
}

#[tokio::test]
async fn discovery_lists_namespaces_as_cluster_scoped() {
    let cluster = FakeCluster::start("namespaces-discovery").await;
    let (status, core) = get(&cluster, "/api/v1").await;
    assert_eq!(status, 200);
    assert_eq!(
        resource_names(&core),
        ["services", "configmaps", "namespaces"]
    );
    let resources = core["resources"].as_array().unwrap();
    let ns = resources
        .iter()
        .find(|r| r["name"] == "namespaces")
        .unwrap();
    assert_eq!(
        *ns,
        json!({
            "name": "namespaces", "singularName": "namespace", "namespaced": false,
            "kind": "Namespace", "shortNames": ["ns"],
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        })
    );
    let services = resources.iter().find(|r| r["name"] == "services").unwrap();
    assert_eq!(services["namespaced"], true);
}

#[tokio::test]
async fn namespaces_forbidden_at_the_cluster_scope() {
    let cluster = FakeCluster::start("namespaces-rbac").await;
    cluster.apply(Resource::Namespaces, namespace("prod", &[]));
    cluster.set_forbidden(Resource::Namespaces, true);
    let user = "User \"system:serviceaccount:fedns:fedns\"";
    for (path, message) in [
        (
            NAMESPACES.to_owned(),
            format!(
                "namespaces is forbidden: {user} cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
            ),
        ),
        (
            format!("{NAMESPACES}?watch=true"),
            format!(
                "namespaces is forbidden: {user} cannot watch resource \"namespaces\" in API group \"\" at the cluster scope"
            ),
        ),
        (
            format!("{NAMESPACES}/prod"),
            format!(
                "namespaces \"prod\" is forbidden: {user} cannot get resource \"namespaces\" in API group \"\" in the namespace \"prod\""
            ),
        ),
    ] {
        let (status, body) = get(&cluster, &path).await;
        assert_eq!(status, 403, "GET {path}: {body}");
        assert_eq!(body["reason"], "Forbidden");
        assert_eq!(body["message"], message, "GET {path}");
    }
    let (status, body) = call(&cluster, "POST", NAMESPACES, Some(&namespace("new", &[]))).await;
    assert_eq!(status, 403);
    assert_eq!(
        body["message"],
        format!(
            "namespaces is forbidden: {user} cannot create resource \"namespaces\" in API group \"\" at the cluster scope"
        )
    );
    // Other resources, in a namespace or across all, are not affected.
    assert_eq!(
        get(&cluster, "/api/v1/namespaces/prod/services").await.0,
        200
    );
    assert_eq!(get(&cluster, "/api/v1/services").await.0, 200);

    cluster.set_forbidden(Resource::Namespaces, false);
    assert_eq!(get(&cluster, NAMESPACES).await.0, 200);
    cluster.set_forbidden_writes(Resource::Namespaces, true);
    let (status, body) = call(&cluster, "DELETE", &format!("{NAMESPACES}/prod"), None).await;
    assert_eq!(status, 403);
    assert_eq!(
        body["message"],
        format!(
            "namespaces \"prod\" is forbidden: {user} cannot delete resource \"namespaces\" in API group \"\" in the namespace \"prod\""
        )
    );
}

#[tokio::test]
async fn namespaces_are_written_over_http() {
    let cluster = FakeCluster::start("namespaces-writes").await;
    let body = json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "team", "namespace": "elsewhere", "labels": {"team": "a"}},
        "status": {"phase": "Terminating"},
    });
    let (status, created) = call(&cluster, "POST", NAMESPACES, Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["kind"], "Namespace");
    assert_eq!(created["metadata"].get("namespace"), None);
    assert_eq!(
        created["metadata"]["labels"],
        json!({"team": "a", "kubernetes.io/metadata.name": "team"})
    );
    assert_eq!(created["status"], json!({"phase": "Active"}));
    assert_eq!(created["spec"]["finalizers"], json!(["kubernetes"]));
    let (status, again) = call(&cluster, "POST", NAMESPACES, Some(&body)).await;
    assert_eq!((status, &again["reason"]), (409, &json!("AlreadyExists")));
    let bad = json!({"metadata": {"name": "Team_1"}});
    let (status, invalid) = call(&cluster, "POST", NAMESPACES, Some(&bad)).await;
    assert_eq!(status, 422, "{invalid}");
    assert!(
        invalid["message"]
            .as_str()
            .unwrap()
            .contains("RFC 1123 label"),
        "{invalid}"
    );

    // A merge patch of the labels; status, finalizers and the name label stay.
    let patch = json!({"metadata": {"labels": {"team": "b", "kubernetes.io/metadata.name": null}},
                       "status": {"phase": "Terminating"}, "spec": {"finalizers": []}});
    let (status, patched) = call(
        &cluster,
        "PATCH",
        &format!("{NAMESPACES}/team"),
        Some(&patch),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        patched["metadata"]["labels"],
        json!({"team": "b", "kubernetes.io/metadata.name": "team"})
    );
    assert_eq!(patched["status"]["phase"], "Active");
    assert_eq!(patched["spec"]["finalizers"], json!(["kubernetes"]));
    // A PUT with a stale resourceVersion conflicts.
    let mut stale = created.clone();
    stale["metadata"]["labels"]["team"] = json!("c");
    let (status, _) = call(&cluster, "PUT", &format!("{NAMESPACES}/team"), Some(&stale)).await;
    assert_eq!(status, 409);
    let (status, _) = call(
        &cluster,
        "PUT",
        &format!("{NAMESPACES}/nope"),
        Some(&namespace("nope", &[])),
    )
    .await;
    assert_eq!(status, 404, "no create on update");

    for (method, path) in [
        ("POST", format!("{NAMESPACES}/team")),
        ("PUT", NAMESPACES.to_owned()),
        ("DELETE", NAMESPACES.to_owned()),
    ] {
        let (status, _) = call(&cluster, method, &path, Some(&body)).await;
        assert_eq!(status, 405, "{method} {path}");
    }
    // Namespaced writes are still routed to their kinds.
    let map = config_map("team", "cm", &[("k", "v")]);
    let (status, made) = call(
        &cluster,
        "POST",
        "/api/v1/namespaces/team/configmaps",
        Some(&map),
    )
    .await;
    assert_eq!(
        (status, &made["metadata"]["namespace"]),
        (201, &json!("team"))
    );

    let (status, deleted) = call(&cluster, "DELETE", &format!("{NAMESPACES}/team"), None).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        (&deleted["kind"], &deleted["metadata"]["name"]),
        (&json!("Namespace"), &json!("team"))
    );
    assert_eq!(cluster.get(Resource::Namespaces, "", "team"), None);
    let (status, _) = call(&cluster, "DELETE", &format!("{NAMESPACES}/team"), None).await;
    assert_eq!(status, 404);
    assert_eq!(cluster.write_count(Resource::Namespaces), 11);
}
