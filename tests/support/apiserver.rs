//! An in-process imitation of a kube-apiserver, faithful at the HTTP level.
//!
//! Each [`FakeCluster`] is one simulated member cluster: its own test CA, bearer
//! token, TLS listener on `127.0.0.1:0` and etcd-like store. The real `kube`
//! client (and `kube::runtime::watcher`) talks to it exactly as it would to a
//! real API server, so tests exercise the product's real Kubernetes code path:
//! discovery, paged LISTs, WATCH streams with bookmarks, `410 Expired`
//! re-lists, auth failures and injected network faults.
//!
//! Fidelity notes (what the real server does and we copy):
//! * One `resourceVersion` counter per cluster shared by every resource type
//!   (etcd's revision), so bookmarks may carry an RV higher than any object of
//!   the watched type.
//! * LIST items carry no `kind`/`apiVersion` (the real server strips them);
//!   GET and watch event objects do.
//! * A watch from an RV older than the compaction point answers `200` and
//!   then a single `ERROR` event with a `410 Expired` Status.
//! * Selector-filtered watches turn "stopped matching" into `DELETED` (with the
//!   previous content) and "started matching" into `ADDED`, like the cacher.
//! * Continue tokens pin the snapshot RV of the first page; pages after a
//!   change still show that snapshot (the store keeps its full history).
//!
//! Known deviations: read-only over HTTP (objects change only through the
//! control API; other methods get 405); JSON and HTTP/1.1 only (no protobuf,
//! no HTTP/2, no aggregated discovery); `--anonymous-auth=false` behaviour
//! (no token is 401, even for `/version`); only `metadata.name` /
//! `metadata.namespace` field selectors; a too-large RV answers 504 at once
//! instead of after ~3 s; `limit` is honoured even with `resourceVersion=0`;
//! bookmarks come every [`DEFAULT_BOOKMARK_INTERVAL`] instead of ~1 min;
//! `generation` is kept for all three types; no managedFields.
//!
//! Background tasks live on the runtime that called [`FakeCluster::start`]
//! and end with it (one runtime per `#[tokio::test]`).
#![allow(dead_code)] // every test binary uses a different subset

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

type Body = BoxBody<Bytes, Infallible>;

/// Default interval between BOOKMARK events; the real server sends one about
/// every minute, tests want them fast.
pub const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);
/// Watch length when the client sends no `timeoutSeconds` (the real server
/// picks 30-60 min; tests should never rely on it).
const DEFAULT_WATCH_TIMEOUT_SECS: u64 = 30;
/// Upper bound for `timeoutSeconds` (kube sends 290 by default).
const MAX_WATCH_TIMEOUT_SECS: u64 = 3600;

/// The resource types the fake serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    Services,
    Ingresses,
    EndpointSlices,
}

impl Resource {
    const ALL: [Resource; 3] = [Self::Services, Self::Ingresses, Self::EndpointSlices];

    fn index(self) -> usize {
        self as usize
    }
    pub fn plural(self) -> &'static str {
        ["services", "ingresses", "endpointslices"][self.index()]
    }
    pub fn kind(self) -> &'static str {
        ["Service", "Ingress", "EndpointSlice"][self.index()]
    }
    /// API group ("" is the legacy core group).
    pub fn group(self) -> &'static str {
        ["", "networking.k8s.io", "discovery.k8s.io"][self.index()]
    }
    pub fn api_version(self) -> &'static str {
        ["v1", "networking.k8s.io/v1", "discovery.k8s.io/v1"][self.index()]
    }
    fn from_path(group: &str, plural: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.group() == group && r.plural() == plural)
    }
    /// The APIResource entry for discovery documents.
    fn discovery_entry(self) -> Value {
        let mut entry = json!({
            "name": self.plural(), "singularName": self.kind().to_lowercase(), "namespaced": true,
            "kind": self.kind(),
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        });
        if self == Self::Services {
            entry["shortNames"] = json!(["svc"]);
        } else if self == Self::Ingresses {
            entry["shortNames"] = json!(["ing"]);
        }
        entry
    }
}

/// Injected failure modes, see [`FakeCluster::set_fault`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fault {
    /// Serve normally.
    #[default]
    None,
    /// Close the listener and every open connection: new connections are
    /// refused. Leaving this mode rebinds the same port.
    Refuse,
    /// Accept and read requests but never answer them (requests already hung
    /// stay hung after the fault is cleared, until the client gives up).
    Hang,
    /// Answer every new request, before authentication, with this HTTP status
    /// and a matching Status body. Open watch streams keep flowing.
    Status(u16),
    /// One-shot action: end every open watch stream cleanly now. Does not
    /// change the current persistent fault.
    CutWatches,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One etcd revision: the change of one object.
struct Event {
    rv: u64,
    resource: Resource,
    kind: EventType,
    /// `namespace/name`, the store key.
    key: String,
    /// The object after the change (for DELETED: its last state, with the
    /// deletion's resourceVersion).
    object: Value,
    /// The object before a MODIFIED, needed to filter watches by selector.
    prev: Option<Value>,
}

struct State {
    /// Current revision (the last RV handed out).
    rv: u64,
    /// Watches / exact lists from an RV below this get 410.
    compacted: u64,
    /// Current objects per resource, keyed `namespace/name` (etcd key order).
    objects: [BTreeMap<String, Value>; 3],
    /// Every event since start; compaction only moves `compacted`.
    history: Vec<Arc<Event>>,
    /// Live watch streams; dropping a sender ends that stream cleanly.
    watchers: Vec<mpsc::UnboundedSender<Arc<Event>>>,
    fault: Fault,
    forbidden: [bool; 3],
    requests: Vec<String>,
    bookmark_interval: Duration,
}

impl State {
    /// Appends an event to the history and fans it out to live watches.
    fn emit(&mut self, event: Event) {
        let event = Arc::new(event);
        self.history.push(event.clone());
        self.watchers.retain(|w| w.send(event.clone()).is_ok());
    }

    /// Objects of `resource` as of revision `rv`, rebuilt from the history.
    fn objects_at(&self, resource: Resource, rv: u64) -> BTreeMap<String, Value> {
        let mut map = BTreeMap::new();
        for ev in self.history.iter().take_while(|e| e.rv <= rv) {
            if ev.resource != resource {
                continue;
            }
            if ev.kind == EventType::Deleted {
                map.remove(&ev.key);
            } else {
                map.insert(ev.key.clone(), ev.object.clone());
            }
        }
        map
    }
}

struct Shared {
    name: String,
    token: String,
    ca_pem: String,
    addr: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    runtime: tokio::runtime::Handle,
    state: Mutex<State>,
    /// The listening socket; `None` while [`Fault::Refuse`] is active. Kept
    /// here (not inside the accept task) so it can be closed synchronously.
    listener: Mutex<Option<TcpListener>>,
    accept_task: Mutex<Option<JoinHandle<()>>>,
    /// Bumped to drop every open connection.
    kill: watch::Sender<u64>,
}

/// Handle to one fake API server; cheap to clone.
#[derive(Clone)]
pub struct FakeCluster {
    inner: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not take the other tests' server down.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeCluster {
    /// Starts a server with a fresh CA, token and random port.
    pub async fn start(name: &str) -> FakeCluster {
        let (ca_pem, acceptor) = make_tls(name);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake apiserver");
        let addr = listener.local_addr().expect("listener address");
        let inner = Arc::new(Shared {
            name: name.to_owned(),
            token: format!("{:016x}{:016x}", random_u64(), random_u64()),
            ca_pem,
            addr,
            acceptor,
            runtime: tokio::runtime::Handle::current(),
            state: Mutex::new(State {
                // Real clusters never report small RVs; starting high also
                // keeps "0" (= any version) distinct from real revisions.
                rv: 1000,
                compacted: 0,
                objects: Default::default(),
                history: Vec::new(),
                watchers: Vec::new(),
                fault: Fault::None,
                forbidden: [false; 3],
                requests: Vec::new(),
                bookmark_interval: DEFAULT_BOOKMARK_INTERVAL,
            }),
            listener: Mutex::new(Some(listener)),
            accept_task: Mutex::new(None),
            kill: watch::Sender::new(0),
        });
        let cluster = FakeCluster { inner };
        cluster.spawn_accept_loop();
        cluster
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }
    pub fn url(&self) -> String {
        format!("https://{}", self.inner.addr)
    }
    pub fn ca_pem(&self) -> String {
        self.inner.ca_pem.clone()
    }
    pub fn token(&self) -> String {
        self.inner.token.clone()
    }

    /// Writes a kubeconfig (cluster with certificate-authority-data, user with
    /// token, context named like the cluster, current-context) to
    /// `dir/<name>.kubeconfig` and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        // JSON strings are valid YAML double-quoted scalars: safe quoting.
        let q = |s: &str| Value::from(s).to_string();
        let name = q(self.name());
        let user = q(&format!("{}-admin", self.name()));
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.inner.ca_pem);
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\n    \
             certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    token: {token}\n\
             contexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {user}\n    \
             namespace: default\ncurrent-context: {name}\npreferences: {{}}\n",
            server = q(&self.url()),
            ca = q(&ca),
            token = q(&self.inner.token),
        );
        std::fs::create_dir_all(dir).expect("create kubeconfig dir");
        let path = dir.join(format!("{}.kubeconfig", self.name()));
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Creates or replaces (PUT semantics) the object by namespace/name (namespace defaults to
    /// `default`), like a controller would. Assigns uid/creationTimestamp on
    /// create, a new resourceVersion on every real change, bumps generation
    /// when anything outside metadata/status changes. A no-op update keeps
    /// the RV and emits nothing, like the real server. Returns the object's RV.
    pub fn apply(&self, resource: Resource, mut object: Value) -> String {
        let obj = object
            .as_object_mut()
            .expect("apply(): object must be a JSON object");
        for (field, want) in [
            ("kind", resource.kind()),
            ("apiVersion", resource.api_version()),
        ] {
            if let Some(got) = obj.remove(field) {
                assert_eq!(got, want, "apply(): {field} does not match {resource:?}");
            }
        }
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("apply(): metadata must be an object");
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .expect("apply(): metadata.name is required")
            .to_owned();
        let ns = meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_owned();
        meta.insert("namespace".into(), ns.clone().into());
        let key = format!("{ns}/{name}");

        let mut st = lock(&self.inner.state);
        let prev = st.objects[resource.index()].get(&key).cloned();
        let kind = match &prev {
            Some(prev) => {
                for field in ["uid", "creationTimestamp", "generation", "resourceVersion"] {
                    object["metadata"][field] = prev["metadata"][field].clone();
                }
                if &object == prev {
                    return prev["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                }
                if spec_part(&object) != spec_part(prev) {
                    let generation = prev["metadata"]["generation"].as_u64().unwrap_or(0);
                    object["metadata"]["generation"] = json!(generation + 1);
                }
                EventType::Modified
            }
            None => {
                object["metadata"]["uid"] = json!(new_uid());
                object["metadata"]["creationTimestamp"] = json!(rfc3339_now());
                object["metadata"]["generation"] = json!(1);
                EventType::Added
            }
        };
        st.rv += 1;
        let rv = st.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        st.objects[resource.index()].insert(key.clone(), object.clone());
        st.emit(Event {
            rv,
            resource,
            kind,
            key,
            object,
            prev,
        });
        rv.to_string()
    }

    /// Deletes the object (emitting DELETED); false if it did not exist.
    pub fn delete(&self, resource: Resource, namespace: &str, name: &str) -> bool {
        let key = format!("{namespace}/{name}");
        let mut st = lock(&self.inner.state);
        let Some(mut object) = st.objects[resource.index()].remove(&key) else {
            return false;
        };
        st.rv += 1;
        let rv = st.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        st.emit(Event {
            rv,
            resource,
            kind: EventType::Deleted,
            key,
            object,
            prev: None,
        });
        true
    }

    /// Moves the compaction point to the current RV: watches (and exact
    /// lists / continue tokens) from any older RV now get 410 Expired. A
    /// client that already saw the current RV can still resume, as with etcd.
    pub fn compact(&self) {
        let mut st = lock(&self.inner.state);
        st.compacted = st.rv;
    }

    /// The current revision of this cluster.
    pub fn resource_version(&self) -> String {
        lock(&self.inner.state).rv.to_string()
    }

    /// Makes every get/list/watch of `resource` answer 403 Forbidden, as
    /// with missing RBAC.
    pub fn set_forbidden(&self, resource: Resource, forbidden: bool) {
        lock(&self.inner.state).forbidden[resource.index()] = forbidden;
    }

    /// Interval between BOOKMARK events on watches that asked for them
    /// (applies to watches started afterwards).
    pub fn set_bookmark_interval(&self, interval: Duration) {
        lock(&self.inner.state).bookmark_interval = interval.max(Duration::from_millis(10));
    }

    /// Switches the failure mode (see [`Fault`]).
    pub fn set_fault(&self, fault: Fault) {
        if fault == Fault::CutWatches {
            lock(&self.inner.state).watchers.clear();
            return;
        }
        let previous = std::mem::replace(&mut lock(&self.inner.state).fault, fault);
        if fault == Fault::Refuse && previous != Fault::Refuse {
            // Close the socket synchronously so the very next connect fails.
            drop(lock(&self.inner.listener).take());
            if let Some(task) = lock(&self.inner.accept_task).take() {
                task.abort();
            }
            self.inner.kill.send_modify(|generation| *generation += 1);
        } else if previous == Fault::Refuse && fault != Fault::Refuse {
            self.rebind();
        }
    }

    /// Log of `METHOD path?query` for every HTTP request received.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.inner.state).requests.clone()
    }

    /// Number of watch streams currently open.
    pub fn active_watches(&self) -> usize {
        let mut st = lock(&self.inner.state);
        st.watchers.retain(|w| !w.is_closed());
        st.watchers.len()
    }

    /// Binds the original port again after [`Fault::Refuse`].
    fn rebind(&self) {
        // std sets SO_REUSEADDR on Unix, so TIME_WAIT sockets do not block us;
        // retry briefly in case the old socket is still being torn down.
        let mut bound = std::net::TcpListener::bind(self.inner.addr);
        for _ in 0..50 {
            if bound.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            bound = std::net::TcpListener::bind(self.inner.addr);
        }
        let std_listener = bound.unwrap_or_else(|e| panic!("rebind {}: {e}", self.inner.addr));
        std_listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let _guard = self.inner.runtime.enter();
        let listener = TcpListener::from_std(std_listener).expect("register listener");
        *lock(&self.inner.listener) = Some(listener);
        self.spawn_accept_loop();
    }

    fn spawn_accept_loop(&self) {
        let shared = self.inner.clone();
        let task = self.inner.runtime.spawn(async move {
            loop {
                let accepted = std::future::poll_fn(|cx| match lock(&shared.listener).as_ref() {
                    Some(listener) => listener.poll_accept(cx).map(Some),
                    None => Poll::Ready(None),
                })
                .await;
                match accepted {
                    None => return,
                    Some(Ok((tcp, _))) => {
                        tokio::spawn(serve_connection(shared.clone(), tcp));
                    }
                    // E.g. EMFILE: keep serving, like a real server would.
                    Some(Err(_)) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        });
        *lock(&self.inner.accept_task) = Some(task);
    }
}

/// Generates the CA and a server certificate for 127.0.0.1 / localhost.
fn make_tls(name: &str) -> (String, tokio_rustls::TlsAcceptor) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    use rcgen::{ExtendedKeyUsagePurpose, KeyUsagePurpose};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("fake-apiserver-ca-{name}"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("self-sign CA");

    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca).expect("sign server cert");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .expect("server TLS config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (ca.pem(), tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves one TCP connection until it closes or the server kills it.
async fn serve_connection(shared: Arc<Shared>, tcp: TcpStream) {
    // Go's net package (so the real kube-apiserver) sets TCP_NODELAY; without it a watch
    // event can wait 40 ms for the client's delayed ACK.
    let _ = tcp.set_nodelay(true);
    let mut kill = shared.kill.subscribe();
    let serve = async {
        let Ok(tls) = shared.acceptor.accept(tcp).await else {
            return;
        };
        let handler = shared.clone();
        let service = hyper::service::service_fn(move |req| {
            let shared = handler.clone();
            async move { Ok::<_, Infallible>(shared.handle(req).await) }
        });
        let io = hyper_util::rt::TokioIo::new(tls);
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .await;
    };
    tokio::select! {
        () = serve => {}
        _ = kill.changed() => {}
    }
}

impl Shared {
    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let uri = req.uri();
        let target = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
        let fault = {
            let mut st = lock(&self.state);
            st.requests.push(format!("{} {target}", req.method()));
            st.fault
        };
        match fault {
            Fault::Hang => std::future::pending::<()>().await,
            Fault::Status(code) => {
                let message = format!("fake apiserver: injected HTTP {code}");
                return status_response(code, reason_for(code), &message, None);
            }
            _ => {}
        }
        // Like a server running with --anonymous-auth=false.
        if !self.authorized(req.headers()) {
            return status_response(401, "Unauthorized", "Unauthorized", None);
        }
        if req.method() != Method::GET {
            let msg = "the server does not allow this method on the requested resource";
            return status_response(405, "MethodNotAllowed", msg, None);
        }
        self.route(req.uri().path(), req.uri().query().unwrap_or(""))
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        match value.trim().split_once(' ') {
            Some((scheme, token)) => {
                scheme.eq_ignore_ascii_case("bearer") && token.trim() == self.token
            }
            None => false,
        }
    }

    fn route(self: &Arc<Self>, path: &str, query: &str) -> Response<Body> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, rest) = match segs.as_slice() {
            ["version"] => return json_response(200, &version_info()),
            ["api"] => {
                let address =
                    json!({"clientCIDR": "0.0.0.0/0", "serverAddress": self.addr.to_string()});
                let doc = json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [address]});
                return json_response(200, &doc);
            }
            ["apis"] => {
                let groups =
                    [Resource::Ingresses, Resource::EndpointSlices].map(|r| api_group(r.group()));
                return json_response(
                    200,
                    &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
                );
            }
            ["apis", group] if is_served_group(group) => {
                let mut doc = api_group(group);
                doc["kind"] = json!("APIGroup");
                doc["apiVersion"] = json!("v1");
                return json_response(200, &doc);
            }
            ["api", "v1", rest @ ..] => ("", rest),
            ["apis", group, "v1", rest @ ..] if is_served_group(group) => (*group, rest),
            _ => return not_found(),
        };
        match rest {
            [] => {
                let resources: Vec<Value> = Resource::ALL
                    .into_iter()
                    .filter(|r| r.group() == group)
                    .map(Resource::discovery_entry)
                    .collect();
                let group_version = if group.is_empty() {
                    "v1".to_owned()
                } else {
                    format!("{group}/v1")
                };
                let mut doc = json!({"kind": "APIResourceList", "groupVersion": group_version, "resources": resources});
                if !group.is_empty() {
                    doc["apiVersion"] = json!("v1"); // the real core list has none
                }
                json_response(200, &doc)
            }
            [plural] => self.resource_request(group, plural, None, None, query),
            ["namespaces", ns, plural] => {
                self.resource_request(group, plural, Some(ns), None, query)
            }
            ["namespaces", ns, plural, name] => {
                self.resource_request(group, plural, Some(ns), Some(name), query)
            }
            _ => not_found(),
        }
    }

    fn resource_request(
        self: &Arc<Self>,
        group: &str,
        plural: &str,
        ns: Option<&str>,
        name: Option<&str>,
        query: &str,
    ) -> Response<Body> {
        let Some(resource) = Resource::from_path(group, plural) else {
            return not_found();
        };
        let params = match Params::parse(query) {
            Ok(p) => p,
            Err(msg) => return bad_request(&msg),
        };
        let verb = match (name, params.watch) {
            (Some(_), _) => "get",
            (None, true) => "watch",
            (None, false) => "list",
        };
        if lock(&self.state).forbidden[resource.index()] {
            let scope = ns.map_or("at the cluster scope".to_owned(), |ns| {
                format!("in the namespace \"{ns}\"")
            });
            let msg = format!(
                "{plural} is forbidden: User \"system:serviceaccount:fedns:fedns\" cannot {verb} resource \"{plural}\" in API group \"{group}\" {scope}"
            );
            let details = json!({"group": group, "kind": plural});
            return status_response(403, "Forbidden", &msg, Some(details));
        }
        let selector = Selector {
            namespace: ns.map(str::to_owned),
            labels: params.labels.clone(),
            fields: params.fields.clone(),
        };
        match (ns, name) {
            (Some(ns), Some(name)) => self.get(resource, ns, name),
            _ if params.watch => self.watch(resource, selector, &params),
            _ => self.list(resource, &selector, &params),
        }
    }

    fn get(&self, resource: Resource, ns: &str, name: &str) -> Response<Body> {
        let st = lock(&self.state);
        match st.objects[resource.index()].get(&format!("{ns}/{name}")) {
            Some(obj) => json_response(200, &with_type_meta(resource, obj.clone())),
            None => {
                let msg = format!("{} \"{name}\" not found", resource.plural());
                let details =
                    json!({"name": name, "group": resource.group(), "kind": resource.plural()});
                status_response(404, "NotFound", &msg, Some(details))
            }
        }
    }

    fn list(&self, resource: Resource, selector: &Selector, p: &Params) -> Response<Body> {
        let st = lock(&self.state);
        // Which snapshot to serve, and where a continued list resumes.
        let (snapshot, start) = if let Some(token) = &p.continue_token {
            if p.rv.as_deref().is_some_and(|rv| rv != "0") {
                return bad_request(
                    "specifying resource version is not allowed when using continue",
                );
            }
            let Some((rv, start)) = decode_continue(token) else {
                return bad_request("continue key is not valid: invalid continue token");
            };
            if rv < st.compacted {
                let msg = "The provided continue parameter is too old to display a consistent list result. \
                           You can start a new list without the continue parameter.";
                return status_response(410, "Expired", msg, None);
            }
            (rv.min(st.rv), Some(start))
        } else {
            match (p.rv.as_deref(), p.rv_match.as_deref()) {
                (None, Some(_)) => {
                    return bad_request(
                        "resourceVersionMatch is forbidden unless resourceVersion is provided",
                    );
                }
                (_, Some(m)) if m != "Exact" && m != "NotOlderThan" => {
                    return bad_request(&format!(
                        "resourceVersionMatch: Unsupported value: \"{m}\""
                    ));
                }
                (Some("0"), Some("Exact")) => {
                    return bad_request(
                        "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                    );
                }
                (None | Some("0"), _) => (st.rv, None),
                (Some(rv), rv_match) => {
                    let Ok(rv) = rv.parse::<u64>() else {
                        return bad_request(&format!("invalid resource version: {rv}"));
                    };
                    if rv > st.rv {
                        let msg = format!("Too large resource version: {rv}, current: {}", st.rv);
                        return status_response(504, "Timeout", &msg, None);
                    }
                    if rv_match != Some("Exact") {
                        (st.rv, None)
                    } else if rv < st.compacted {
                        let msg = "The resourceVersion for the provided list is too old.";
                        return status_response(410, "Expired", msg, None);
                    } else {
                        (rv, None)
                    }
                }
            }
        };
        let rebuilt;
        let objects = if snapshot == st.rv {
            &st.objects[resource.index()]
        } else {
            rebuilt = st.objects_at(resource, snapshot);
            &rebuilt
        };
        let mut matching = objects
            .iter()
            .filter(|(key, _)| start.as_deref().is_none_or(|s| key.as_str() >= s))
            .filter(|(_, obj)| selector.matches(obj));
        let page: Vec<(&String, &Value)> = matching
            .by_ref()
            .take(p.limit.unwrap_or(usize::MAX))
            .collect();
        let mut meta = json!({"resourceVersion": snapshot.to_string()});
        let remaining = matching.count();
        if let Some((last_key, _)) = page.last().filter(|_| remaining > 0) {
            meta["continue"] = json!(encode_continue(snapshot, last_key));
            // The real server counts only when no selector filters the list.
            if selector.labels.is_empty() && selector.fields.is_empty() {
                meta["remainingItemCount"] = json!(remaining);
            }
        }
        let items: Vec<Value> = page.into_iter().map(|(_, obj)| obj.clone()).collect();
        json_response(
            200,
            &json!({
                "kind": format!("{}List", resource.kind()), "apiVersion": resource.api_version(),
                "metadata": meta, "items": items,
            }),
        )
    }

    fn watch(
        self: &Arc<Self>,
        resource: Resource,
        selector: Selector,
        p: &Params,
    ) -> Response<Body> {
        let from_rv = match p.rv.as_deref() {
            None | Some("0") => None,
            Some(rv) => match rv.parse::<u64>() {
                Ok(rv) => Some(rv),
                Err(_) => return bad_request(&format!("invalid resource version: {rv}")),
            },
        };
        let timeout_secs = p
            .timeout_secs
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_WATCH_TIMEOUT_SECS)
            .min(MAX_WATCH_TIMEOUT_SECS);
        let (out_tx, out_rx) = mpsc::channel::<Bytes>(64);
        let (events_tx, events) = mpsc::unbounded_channel();
        let mut stream = WatchStream {
            shared: self.clone(),
            resource,
            selector,
            floor: 0,
            bookmarks: p.bookmarks,
            bookmark_interval: DEFAULT_BOOKMARK_INTERVAL,
            timeout: Duration::from_secs(timeout_secs),
            initial: Vec::new(),
            initial_events_end: None,
            events,
            out: out_tx,
        };
        {
            // Replay and subscribe under one lock: no gap, no duplicate.
            let mut st = lock(&self.state);
            stream.bookmark_interval = st.bookmark_interval;
            match from_rv {
                Some(rv) if rv < st.compacted => {
                    let msg = format!("too old resource version: {rv} ({})", st.compacted);
                    let status = status_json(410, "Expired", &msg, None);
                    let _ = stream.out.try_send(event_line("ERROR", status));
                    return stream_response(out_rx);
                }
                Some(rv) if p.send_initial_events != Some(true) => {
                    stream.floor = rv;
                    stream.initial = st.history.iter().filter_map(|e| stream.render(e)).collect();
                }
                _ => {
                    stream.floor = from_rv.unwrap_or(st.rv).max(st.rv);
                    if p.send_initial_events != Some(false) {
                        stream.initial = st.objects[resource.index()]
                            .values()
                            .filter(|o| stream.selector.matches(o))
                            .map(|o| event_line("ADDED", with_type_meta(resource, o.clone())))
                            .collect();
                    }
                    if p.send_initial_events == Some(true) && p.bookmarks {
                        stream.initial_events_end = Some(stream.floor);
                    }
                }
            }
            st.watchers.push(events_tx);
        }
        tokio::spawn(stream.run());
        stream_response(out_rx)
    }
}

/// One open watch: turns store events into JSON lines for one client.
struct WatchStream {
    shared: Arc<Shared>,
    resource: Resource,
    selector: Selector,
    /// Only events after this RV are sent.
    floor: u64,
    bookmarks: bool,
    bookmark_interval: Duration,
    timeout: Duration,
    /// Lines to send before live events (replay or initial state).
    initial: Vec<Bytes>,
    /// For `sendInitialEvents=true`: RV of the initial-events-end bookmark.
    initial_events_end: Option<u64>,
    events: mpsc::UnboundedReceiver<Arc<Event>>,
    out: mpsc::Sender<Bytes>,
}

impl WatchStream {
    async fn run(mut self) {
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        for line in std::mem::take(&mut self.initial) {
            if self.out.send(line).await.is_err() {
                return;
            }
        }
        if let Some(rv) = self.initial_events_end
            && self.out.send(self.bookmark(rv, true)).await.is_err()
        {
            return;
        }
        let start = tokio::time::Instant::now() + self.bookmark_interval;
        let mut ticker = tokio::time::interval_at(start, self.bookmark_interval);
        loop {
            let line = tokio::select! {
                () = &mut deadline => return,
                () = self.out.closed() => return,
                event = self.events.recv() => match event {
                    Some(event) => self.render(&event),
                    None => return, // cut by the server
                },
                _ = ticker.tick(), if self.bookmarks => {
                    // Drain under the lock, so the bookmark RV covers exactly
                    // the events already sent on this stream.
                    let (pending, rv, cut) = {
                        let st = lock(&self.shared.state);
                        let mut pending = Vec::new();
                        let cut = loop {
                            match self.events.try_recv() {
                                Ok(event) => pending.push(event),
                                Err(mpsc::error::TryRecvError::Empty) => break false,
                                Err(mpsc::error::TryRecvError::Disconnected) => break true,
                            }
                        };
                        (pending, st.rv.max(self.floor), cut)
                    };
                    for line in pending.iter().filter_map(|e| self.render(e)) {
                        if self.out.send(line).await.is_err() {
                            return;
                        }
                    }
                    if cut {
                        return;
                    }
                    Some(self.bookmark(rv, false))
                }
            };
            if let Some(line) = line
                && self.out.send(line).await.is_err()
            {
                return;
            }
        }
    }

    /// The watch line for `event` as this client sees it, if any.
    fn render(&self, event: &Event) -> Option<Bytes> {
        if event.resource != self.resource || event.rv <= self.floor {
            return None;
        }
        let now = self.selector.matches(&event.object);
        let before = event
            .prev
            .as_ref()
            .is_some_and(|p| self.selector.matches(p));
        let (kind, object) = match (event.kind, before, now) {
            (EventType::Added, _, true) => ("ADDED", event.object.clone()),
            (EventType::Deleted, _, true) => ("DELETED", event.object.clone()),
            (EventType::Modified, true, true) => ("MODIFIED", event.object.clone()),
            (EventType::Modified, false, true) => ("ADDED", event.object.clone()),
            (EventType::Modified, true, false) => {
                // The cacher sends the old content with the event's RV.
                let mut old = event.prev.clone().unwrap_or_default();
                old["metadata"]["resourceVersion"] = json!(event.rv.to_string());
                ("DELETED", old)
            }
            _ => return None,
        };
        Some(event_line(kind, with_type_meta(self.resource, object)))
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({"kind": self.resource.kind(), "apiVersion": self.resource.api_version(), "metadata": meta});
        event_line("BOOKMARK", object)
    }
}

/// Query parameters of a resource request.
#[derive(Default)]
struct Params {
    watch: bool,
    labels: Vec<LabelRequirement>,
    fields: Vec<FieldRequirement>,
    limit: Option<usize>,
    continue_token: Option<String>,
    rv: Option<String>,
    rv_match: Option<String>,
    bookmarks: bool,
    timeout_secs: Option<u64>,
    send_initial_events: Option<bool>,
}

impl Params {
    fn parse(query: &str) -> Result<Params, String> {
        let mut p = Params::default();
        let nonempty = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "watch" => p.watch = parse_bool(&value)?,
                "labelSelector" => p.labels = parse_label_selector(&value)?,
                "fieldSelector" => p.fields = parse_field_selector(&value)?,
                // The real server treats limit <= 0 as "no limit".
                "limit" => p.limit = parse_int(&value)?.filter(|l| *l > 0).map(|l| l as usize),
                "continue" => p.continue_token = nonempty(&value),
                "resourceVersion" => p.rv = nonempty(&value),
                "resourceVersionMatch" => p.rv_match = nonempty(&value),
                "allowWatchBookmarks" => p.bookmarks = parse_bool(&value)?,
                "timeoutSeconds" => p.timeout_secs = parse_int(&value)?.map(|t| t.max(0) as u64),
                "sendInitialEvents" => p.send_initial_events = Some(parse_bool(&value)?),
                _ => {} // pretty, timeout, ... are accepted and ignored
            }
        }
        Ok(p)
    }
}

/// Go's `strconv.ParseBool`, which the apiserver uses for query booleans.
fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "" => Ok(false),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!(
            "strconv.ParseBool: parsing \"{v}\": invalid syntax"
        )),
    }
}

fn parse_int(v: &str) -> Result<Option<i64>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|_| format!("strconv.ParseInt: parsing \"{v}\": invalid syntax"))
}

#[derive(Clone, Debug)]
enum LabelOp {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

#[derive(Clone, Debug)]
struct LabelRequirement {
    key: String,
    op: LabelOp,
}

#[derive(Clone, Debug)]
struct FieldRequirement {
    /// JSON pointer of the field (`/metadata/name`).
    pointer: &'static str,
    equal: bool,
    value: String,
}

/// What one request selects: namespace scope plus label/field selectors.
struct Selector {
    namespace: Option<String>,
    labels: Vec<LabelRequirement>,
    fields: Vec<FieldRequirement>,
}

impl Selector {
    fn matches(&self, obj: &Value) -> bool {
        let field = |ptr: &str| obj.pointer(ptr).and_then(Value::as_str).unwrap_or("");
        if self
            .namespace
            .as_deref()
            .is_some_and(|ns| field("/metadata/namespace") != ns)
        {
            return false;
        }
        if !self
            .fields
            .iter()
            .all(|f| (field(f.pointer) == f.value) == f.equal)
        {
            return false;
        }
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        self.labels.iter().all(|req| {
            let value = labels.and_then(|l| l.get(&req.key)).and_then(Value::as_str);
            match &req.op {
                LabelOp::In(values) => value.is_some_and(|v| values.iter().any(|x| x == v)),
                LabelOp::NotIn(values) => value.is_none_or(|v| values.iter().all(|x| x != v)),
                LabelOp::Exists => value.is_some(),
                LabelOp::DoesNotExist => value.is_none(),
            }
        })
    }
}

/// Parses `k=v,k==v,k!=v,k,!k,k in (a,b),k notin (a)`.
fn parse_label_selector(selector: &str) -> Result<Vec<LabelRequirement>, String> {
    let mut terms = Vec::new();
    let (mut depth, mut begin) = (0i32, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&selector[begin..i]);
                begin = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[begin..]);
    if terms.iter().all(|t| t.trim().is_empty()) {
        return Ok(Vec::new());
    }
    terms
        .into_iter()
        .map(|t| parse_label_term(t.trim()))
        .collect()
}

fn parse_label_term(term: &str) -> Result<LabelRequirement, String> {
    let err = || {
        format!("unable to parse requirement: found '{term}', expected: valid label requirement")
    };
    let key_ok = |k: &str| {
        !k.is_empty()
            && k.len() <= 316
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    };
    let value_ok = |v: &str| {
        v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    let requirement = |key: &str, op: LabelOp| {
        let values_ok = match &op {
            LabelOp::In(vs) | LabelOp::NotIn(vs) => {
                !vs.is_empty() && vs.iter().all(|v| value_ok(v))
            }
            _ => true,
        };
        if key_ok(key) && values_ok {
            Ok(LabelRequirement {
                key: key.to_owned(),
                op,
            })
        } else {
            Err(err())
        }
    };
    if let Some(key) = term.strip_prefix('!') {
        return requirement(key.trim(), LabelOp::DoesNotExist);
    }
    if let Some(open) = term.find('(') {
        let inner = term[open + 1..].strip_suffix(')').ok_or_else(err)?;
        let values: Vec<String> = inner.split(',').map(|v| v.trim().to_owned()).collect();
        let mut words = term[..open].split_whitespace();
        let (key, op) = (words.next().unwrap_or(""), words.next());
        if words.next().is_some() {
            return Err(err());
        }
        return match op {
            Some("in") => requirement(key, LabelOp::In(values)),
            Some("notin") => requirement(key, LabelOp::NotIn(values)),
            _ => Err(err()),
        };
    }
    for (symbol, negate) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = term.split_once(symbol) {
            let values = vec![value.trim().to_owned()];
            let op = if negate {
                LabelOp::NotIn(values)
            } else {
                LabelOp::In(values)
            };
            return requirement(key.trim(), op);
        }
    }
    requirement(term, LabelOp::Exists)
}

/// Parses `metadata.name=x,metadata.namespace!=y` (the fields every type supports).
fn parse_field_selector(selector: &str) -> Result<Vec<FieldRequirement>, String> {
    let mut out = Vec::new();
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
            (f, false, v)
        } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            (f, true, v)
        } else {
            return Err(format!(
                "invalid selector: '{selector}'; can't understand '{term}'"
            ));
        };
        let pointer = match field.trim() {
            "metadata.name" => "/metadata/name",
            "metadata.namespace" => "/metadata/namespace",
            other => return Err(format!("field label not supported: {other}")),
        };
        out.push(FieldRequirement {
            pointer,
            equal,
            value: value.trim().to_owned(),
        });
    }
    Ok(out)
}

/// Same shape as the real token: base64 of `{"v","rv","start"}`, where
/// `start` is the last returned store key plus a NUL byte (the smallest key
/// after it).
fn encode_continue(rv: u64, last_key: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{last_key}\u{0}")});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

fn decode_continue(token: &str) -> Option<(u64, String)> {
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .ok()?;
    let token: Value = serde_json::from_slice(&raw).ok()?;
    if token["v"] != "meta.k8s.io/v1" {
        return None;
    }
    let start = token["start"].as_str()?.to_owned();
    Some((token["rv"].as_u64()?, start))
}

fn is_served_group(group: &str) -> bool {
    Resource::ALL
        .iter()
        .any(|r| !r.group().is_empty() && r.group() == group)
}

fn api_group(group: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

fn version_info() -> Value {
    json!({
        "major": "1", "minor": "33", "emulationMajor": "1", "emulationMinor": "33",
        "minCompatibilityMajor": "1", "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.0", "gitCommit": "60a317eadfcb839692a5813d9f61cee54a5aeb97",
        "gitTreeState": "clean", "buildDate": "2025-04-23T13:00:00Z", "goVersion": "go1.24.2",
        "compiler": "gc", "platform": "linux/amd64",
    })
}

/// Everything of an object that is neither metadata nor status (what bumps
/// `metadata.generation`).
fn spec_part(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(map) = obj.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    obj
}

fn with_type_meta(resource: Resource, mut obj: Value) -> Value {
    if let Some(map) = obj.as_object_mut() {
        map.insert("kind".into(), resource.kind().into());
        map.insert("apiVersion".into(), resource.api_version().into());
    }
    obj
}

fn event_line(kind: &str, object: Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    }
}

fn status_json(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    if let Some(details) = details {
        status["details"] = details;
    }
    status
}

fn status_response(
    code: u16,
    reason: &str,
    message: &str,
    details: Option<Value>,
) -> Response<Body> {
    json_response(code, &status_json(code, reason, message, details))
}

fn bad_request(message: &str) -> Response<Body> {
    status_response(400, "BadRequest", message, None)
}

fn not_found() -> Response<Body> {
    status_response(
        404,
        "NotFound",
        "the server could not find the requested resource",
        None,
    )
}

fn json_response(code: u16, body: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A `200` whose body is the lines sent on `rx`, chunked (no length), ending
/// when the sender is dropped.
fn stream_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let mut response = Response::new(ChannelBody(rx).boxed());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|line| line.map(|b| Ok(Frame::data(b))))
    }
}

fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.finish()
}

/// A random version-4 UUID, the format the real server uses for `uid`.
fn new_uid() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// Current UTC time as RFC 3339 seconds (`creationTimestamp` format).
fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn object_meta(ns: &str, name: &str, labels: Value) -> Value {
    json!({"name": name, "namespace": ns, "labels": labels, "annotations": {}})
}

/// A `type: LoadBalancer` Service whose status lists the given ingress
/// points (`{ip}` per address, then `{hostname}`).
pub fn lb_service(
    ns: &str,
    name: &str,
    ips: &[&str],
    hostname: Option<&str>,
    ports: &[u16],
) -> Value {
    let mut ingress: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"ip": ip, "ipMode": "VIP"}))
        .collect();
    ingress.extend(hostname.map(|h| json!({"hostname": h})));
    let ports: Vec<Value> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            json!({"name": format!("port-{port}"), "protocol": "TCP", "port": port,
                   "targetPort": port, "nodePort": 30_000 + i})
        })
        .collect();
    let hash = name
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let cluster_ip = format!("10.96.{}.{}", (hash >> 8) % 256, hash % 254 + 1);
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": object_meta(ns, name, json!({"app": name})),
        "spec": {
            "type": "LoadBalancer", "selector": {"app": name}, "ports": ports,
            "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
            "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster",
            "allocateLoadBalancerNodePorts": true,
        },
        "status": {"loadBalancer": {"ingress": ingress}},
    })
}

/// An Ingress with one rule per host (all routed to a Service of the same
/// name) and the given load-balancer IPs in its status.
pub fn ingress(ns: &str, name: &str, hosts: &[&str], ips: &[&str]) -> Value {
    let rules: Vec<Value> = hosts
        .iter()
        .map(|host| {
            json!({"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": name, "port": {"number": 80}}}}]}})
        })
        .collect();
    let ingress: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": object_meta(ns, name, json!({"app": name})),
        "spec": {"ingressClassName": "nginx", "rules": rules},
        "status": {"loadBalancer": {"ingress": ingress}},
    })
}

/// An IPv4 EndpointSlice of `service` with one endpoint per entry of
/// `ready` (its `conditions.ready`/`serving`).
pub fn endpoint_slice(ns: &str, service: &str, slice_name: &str, ready: &[bool]) -> Value {
    let endpoints: Vec<Value> = ready
        .iter()
        .enumerate()
        .map(|(i, ready)| {
            json!({"addresses": [format!("10.244.{}.{}", i / 250, i % 250 + 2)],
                   "conditions": {"ready": ready, "serving": ready, "terminating": false},
                   "nodeName": format!("node-{i}"),
                   "targetRef": {"kind": "Pod", "namespace": ns, "name": format!("{service}-{i}")}})
        })
        .collect();
    let labels = json!({
        "kubernetes.io/service-name": service,
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
    });
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": object_meta(ns, slice_name, labels),
        "addressType": "IPv4", "endpoints": endpoints,
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
    })
}
