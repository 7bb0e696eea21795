//! An in-process imitation of a kube-apiserver, faithful at the HTTP level.
//!
//! Each [`FakeCluster`] is one simulated member cluster: its own test CA, bearer
//! token, TLS listener on `127.0.0.1:0` and etcd-like store. The real `kube`
//! client (and `kube::runtime::watcher`) talks to it exactly as it would to a
//! real API server, so tests exercise the product's real Kubernetes code path:
//! discovery, paged LISTs, WATCH streams with bookmarks, `410 Expired`
//! re-lists, auth failures and injected network faults; and the write verbs
//! (create, replace, JSON merge patch, delete) with optimistic concurrency.
//!
//! Every kind is namespaced (`/api/v1/namespaces/{ns}/{plural}[/{name}]`, the
//! all-namespaces collection `/api/v1/{plural}`, and the same under
//! `/apis/{group}/{version}`) except the built-in core Namespaces
//! ([`Resource::Namespaces`]), cluster-scoped as in the real server:
//! `/api/v1/namespaces` is their collection (list, watch, create) and
//! `/api/v1/namespaces/{name}` one of them (get, update, patch, delete),
//! while `/api/v1/namespaces/{ns}/{plural}...` stays the namespaced paths.
//! They are stored by name alone (no `metadata.namespace`; a namespace sent
//! in an object is dropped, as by the real `BeforeCreate`/`BeforeUpdate`).
//!
//! Custom resources (Gateway API, including ListenerSets and the experimental
//! XListenerSets, external-dns DNSEndpoints, Istio; see
//! [`Resource::CRDS`]) are served only while their CRD is installed
//! ([`FakeCluster::install_crd`], [`FakeCluster::install_crd_version`],
//! [`FakeCluster::uninstall_crd`]). Until then their group is absent from
//! discovery and their paths answer the real server's 404 for an unknown
//! resource; a group serves the versions of its installed kinds, the
//! preferred one first (GA, then beta, then alpha).
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
//! * Writes follow the generic registry and each kind's strategy: a PUT with
//!   a stale `metadata.resourceVersion` is 409 Conflict; a PUT without one
//!   overwrites, except for Leases (`AllowUnconditionalUpdate` is false:
//!   422 Invalid); a PUT of an absent Lease or Service creates it (201,
//!   `AllowCreateOnUpdate`), of other kinds is 404; a POST carrying a
//!   resourceVersion is the real 500; DELETE answers a `Success` Status
//!   (the object itself for Services and Namespaces) and honours DeleteOptions
//!   preconditions; Service/Ingress status cannot be written through the
//!   main resource; object names, Lease durations and ConfigMap keys, size
//!   and immutability are validated (422). A Namespace is created `Active`
//!   with the `kubernetes` finalizer, keeps its status and finalizers on
//!   update and always carries the label `kubernetes.io/metadata.name`.
//! * RBAC is checked before routing: a request for a CRD's resource that is
//!   not served (not installed, or at another version) is 403 when
//!   [`FakeCluster::set_forbidden`] denies it, else 404. A denied list,
//!   watch or create of Namespaces is "at the cluster scope"; for one
//!   Namespace the real `RequestInfo` takes its name as the namespace, so
//!   the message says `in the namespace "<name>"`.
//!
//! Known deviations: JSON and HTTP/1.1 only (no protobuf, no HTTP/2, no
//! aggregated discovery); `--anonymous-auth=false` behaviour (no token is
//! 401, even for `/version`); only `metadata.name` / `metadata.namespace`
//! field selectors; a too-large RV answers 504 at once instead of after
//! ~3 s; `limit` is honoured even with `resourceVersion=0`; bookmarks come
//! every [`DEFAULT_BOOKMARK_INTERVAL`] instead of ~1 min; `generation` is kept
//! for Services (not for Leases and ConfigMaps, like the real server); no
//! managedFields; custom resources keep `generation`, have a status
//! subresource (a create drops `status`) and are served at one version at
//! a time (no conversion, schema validation, defaulting or pruning);
//! uninstalling a CRD deletes its objects without open watches seeing those
//! deletions (they just end), where the real CRD finalizer's deletes may be
//! seen first. Writes: PATCH takes JSON merge patch only (JSON patch,
//! strategic merge and server-side apply answer 415); no `generateName`, no
//! `dryRun` (400), no deletecollection or `/status` subresource, no
//! finalizers or graceful deletion (a delete is immediate), no defaulting,
//! no pruning of unknown fields, no admission; only the validation listed
//! above. Namespaces: no `/status` or `/finalize` subresource, a delete
//! removes the Namespace at once (no `Terminating` phase) and leaves the
//! objects in it, objects may be written in a namespace that does not exist
//! (no `NamespaceLifecycle` admission), and the `status.phase` field
//! selector is not supported.
//!
//! Background tasks live on the runtime that called [`FakeCluster::start`]
//! and end with it (one runtime per `#[tokio::test]`).

mod objects;
mod responses;
mod selectors;
mod store;
#[cfg(test)]
mod tests;
mod tls;
mod watch;
mod writes;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use objects::{
    GATEWAY_CONTROLLER, Listener, ParentRef, allow_listeners, config_map, dns_endpoint,
    endpoint_slice, gateway, grpc_route, http_route, ingress, istio_gateway, lb_service, lease,
    listener_set, micro_time, namespace, remove_route_parent_status, set_route_parent_status,
    tls_route, virtual_service, x_listener_set,
};
use responses::*;
use selectors::*;
use store::*;

type Body = BoxBody<Bytes, Infallible>;

/// Default interval between BOOKMARK events; the real server sends one about
/// every minute, tests want them fast.
pub const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);
/// Watch length when the client sends no `timeoutSeconds` (the real server
/// picks 30-60 min; tests should never rely on it).
const DEFAULT_WATCH_TIMEOUT_SECS: u64 = 30;
/// Upper bound for `timeoutSeconds` (kube sends 290 by default).
const MAX_WATCH_TIMEOUT_SECS: u64 = 3600;

/// The resource types the fake serves: six built-in kinds, always served, then custom
/// resources, served only once their CRD is installed ([`FakeCluster::install_crd`]).
/// All are namespaced except [`Resource::Namespaces`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    Services,
    Ingresses,
    EndpointSlices,
    /// `coordination.k8s.io/v1` Leases.
    Leases,
    ConfigMaps,
    /// Core `v1` Namespaces, the one cluster-scoped kind: served at
    /// `/api/v1/namespaces[/{name}]`, stored without `metadata.namespace`.
    Namespaces,
    /// Gateway API `gateway.networking.k8s.io/v1` Gateways (a CRD).
    Gateways,
    /// Gateway API `gateway.networking.k8s.io/v1` HTTPRoutes (a CRD).
    HttpRoutes,
    /// Gateway API `gateway.networking.k8s.io/v1` GRPCRoutes (a CRD).
    GrpcRoutes,
    /// Gateway API `gateway.networking.k8s.io/v1alpha2` TLSRoutes (a CRD).
    TlsRoutes,
    /// external-dns `externaldns.k8s.io/v1alpha1` DNSEndpoints (a CRD).
    DnsEndpoints,
    /// Istio `networking.istio.io/v1` Gateways (a CRD).
    IstioGateways,
    /// Istio `networking.istio.io/v1` VirtualServices (a CRD).
    VirtualServices,
    /// Gateway API `gateway.networking.k8s.io/v1` ListenerSets (a CRD; GA
    /// since Gateway API v1.5).
    ListenerSets,
    /// Gateway API experimental `gateway.networking.x-k8s.io/v1alpha1`
    /// XListenerSets (a CRD; the name of ListenerSets before v1.5).
    XListenerSets,
}

impl Resource {
    /// The kinds every cluster serves.
    pub const BUILTIN: [Resource; 6] = [
        Self::Services,
        Self::Ingresses,
        Self::EndpointSlices,
        Self::Leases,
        Self::ConfigMaps,
        Self::Namespaces,
    ];
    /// The custom resources, served only while their CRD is installed.
    pub const CRDS: [Resource; 9] = [
        Self::Gateways,
        Self::HttpRoutes,
        Self::GrpcRoutes,
        Self::TlsRoutes,
        Self::DnsEndpoints,
        Self::IstioGateways,
        Self::VirtualServices,
        Self::ListenerSets,
        Self::XListenerSets,
    ];
    /// [`Self::BUILTIN`] then [`Self::CRDS`], in declaration order.
    pub const ALL: [Resource; Self::BUILTIN.len() + Self::CRDS.len()] = {
        let mut all = [Self::Services; Self::BUILTIN.len() + Self::CRDS.len()];
        let mut i = 0;
        while i < all.len() {
            all[i] = if i < Self::BUILTIN.len() {
                Self::BUILTIN[i]
            } else {
                Self::CRDS[i - Self::BUILTIN.len()]
            };
            i += 1;
        }
        all
    };
    /// Size of the per-resource arrays of the store.
    const COUNT: usize = Self::ALL.len();

    fn index(self) -> usize {
        self as usize
    }
    /// Whether this is a custom resource (served only while installed).
    pub fn is_crd(self) -> bool {
        self.index() >= Self::BUILTIN.len()
    }
    pub fn plural(self) -> &'static str {
        [
            "services",
            "ingresses",
            "endpointslices",
            "leases",
            "configmaps",
            "namespaces",
            "gateways",
            "httproutes",
            "grpcroutes",
            "tlsroutes",
            "dnsendpoints",
            "gateways",
            "virtualservices",
            "listenersets",
            "xlistenersets",
        ][self.index()]
    }
    pub fn kind(self) -> &'static str {
        [
            "Service",
            "Ingress",
            "EndpointSlice",
            "Lease",
            "ConfigMap",
            "Namespace",
            "Gateway",
            "HTTPRoute",
            "GRPCRoute",
            "TLSRoute",
            "DNSEndpoint",
            "Gateway",
            "VirtualService",
            "ListenerSet",
            "XListenerSet",
        ][self.index()]
    }
    /// API group ("" is the legacy core group).
    pub fn group(self) -> &'static str {
        [
            "",
            "networking.k8s.io",
            "discovery.k8s.io",
            "coordination.k8s.io",
            "",
            "",
            "gateway.networking.k8s.io",
            "gateway.networking.k8s.io",
            "gateway.networking.k8s.io",
            "gateway.networking.k8s.io",
            "externaldns.k8s.io",
            "networking.istio.io",
            "networking.istio.io",
            "gateway.networking.k8s.io",
            "gateway.networking.x-k8s.io",
        ][self.index()]
    }
    /// The version served by default: always for the built-in kinds, after
    /// [`FakeCluster::install_crd`] for the custom resources.
    pub fn default_version(self) -> &'static str {
        [
            "v1", "v1", "v1", "v1", "v1", "v1", "v1", "v1", "v1", "v1alpha2", "v1alpha1", "v1",
            "v1", "v1", "v1alpha1",
        ][self.index()]
    }
    /// `apiVersion` at [`Self::default_version`] (what the object builders
    /// write); a CRD installed at another version emits that one instead.
    pub fn api_version(self) -> &'static str {
        [
            "v1",
            "networking.k8s.io/v1",
            "discovery.k8s.io/v1",
            "coordination.k8s.io/v1",
            "v1",
            "v1",
            "gateway.networking.k8s.io/v1",
            "gateway.networking.k8s.io/v1",
            "gateway.networking.k8s.io/v1",
            "gateway.networking.k8s.io/v1alpha2",
            "externaldns.k8s.io/v1alpha1",
            "networking.istio.io/v1",
            "networking.istio.io/v1",
            "gateway.networking.k8s.io/v1",
            "gateway.networking.x-k8s.io/v1alpha1",
        ][self.index()]
    }
    /// The group-qualified resource the real server names in its messages
    /// (`leases.coordination.k8s.io`, or just `configmaps` in the core group).
    pub fn qualified(self) -> String {
        if self.group().is_empty() {
            self.plural().to_owned()
        } else {
            format!("{}.{}", self.plural(), self.group())
        }
    }
    /// The group-qualified kind of validation errors (`Lease.coordination.k8s.io`).
    fn qualified_kind(self) -> String {
        if self.group().is_empty() {
            self.kind().to_owned()
        } else {
            format!("{}.{}", self.kind(), self.group())
        }
    }
    fn short_names(self) -> &'static [&'static str] {
        match self {
            Self::Services => &["svc"],
            Self::Ingresses => &["ing"],
            Self::ConfigMaps => &["cm"],
            Self::Namespaces => &["ns"],
            _ => &[],
        }
    }
    /// Whether objects live in a namespace (every kind but
    /// [`Resource::Namespaces`]).
    pub fn is_namespaced(self) -> bool {
        self != Self::Namespaces
    }
    /// The store key of an object: `namespace/name`, or `/name` for a
    /// cluster-scoped kind (whose `namespace` is ignored), so keys keep etcd's
    /// order by name.
    pub(super) fn key(self, namespace: &str, name: &str) -> String {
        let namespace = if self.is_namespaced() { namespace } else { "" };
        format!("{namespace}/{name}")
    }
    /// Whether a path's namespace and name fit the scope: a namespaced kind
    /// is addressed as a collection in a namespace or across all of them, or
    /// as an object in a namespace; a cluster-scoped kind never in a namespace.
    pub(super) fn scope_fits(self, namespace: Option<&str>, name: Option<&str>) -> bool {
        if self.is_namespaced() {
            namespace.is_some() || name.is_none()
        } else {
            namespace.is_none()
        }
    }
    /// The namespace RBAC sees for a request: the path's; for a Namespace
    /// object its own name (the real `RequestInfo` special case, so a denied
    /// GET of namespace `x` says `in the namespace "x"`).
    pub(super) fn rbac_namespace<'a>(
        self,
        namespace: Option<&'a str>,
        name: Option<&'a str>,
    ) -> Option<&'a str> {
        if self == Self::Namespaces {
            name
        } else {
            namespace
        }
    }
    /// Whether the store keeps `metadata.generation` (set to 1 on create,
    /// bumped when anything outside metadata/status changes). The real
    /// Lease and ConfigMap strategies never set it.
    fn has_generation(self) -> bool {
        !matches!(self, Self::Leases | Self::ConfigMaps | Self::Namespaces)
    }
    /// Kinds with a `/status` subresource: a create over HTTP drops the
    /// status, an update or patch keeps the stored one.
    fn has_status_subresource(self) -> bool {
        matches!(self, Self::Services | Self::Ingresses | Self::Namespaces) || self.is_crd()
    }
    /// The strategy's `AllowCreateOnUpdate`: a PUT of an absent object
    /// creates it (201) instead of answering 404.
    fn allow_create_on_update(self) -> bool {
        matches!(self, Self::Services | Self::Leases)
    }
    /// The strategy's `AllowUnconditionalUpdate`: a PUT without
    /// `metadata.resourceVersion` overwrites; for Leases it is 422 Invalid.
    fn allow_unconditional_update(self) -> bool {
        self != Self::Leases
    }
    /// The store's `ReturnDeletedObject`: DELETE answers with the object
    /// instead of a `Success` Status (a Namespace's DELETE answers the
    /// object too, as the real one does while it finalizes).
    fn returns_deleted_object(self) -> bool {
        matches!(self, Self::Services | Self::Namespaces)
    }
    /// The custom resource of `group` named `plural`, whatever is installed.
    fn crd_named(group: &str, plural: &str) -> Option<Self> {
        Self::CRDS
            .into_iter()
            .find(|r| r.group() == group && r.plural() == plural)
    }
    /// The APIResource entries for discovery documents: the resource, and
    /// for a CRD its `/status` subresource, as the real server lists them.
    fn discovery_entries(self) -> Vec<Value> {
        if self.is_crd() {
            let verbs = [
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "create",
                "update",
                "watch",
            ];
            return vec![
                json!({
                    "name": self.plural(), "singularName": self.kind().to_lowercase(), "namespaced": true,
                    "kind": self.kind(), "verbs": verbs,
                }),
                json!({
                    "name": format!("{}/status", self.plural()), "singularName": "", "namespaced": true,
                    "kind": self.kind(), "verbs": ["get", "patch", "update"],
                }),
            ];
        }
        // Namespaces have no deletecollection, as in the real server.
        let verbs: &[&str] = if self.is_namespaced() {
            &[
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        } else {
            &[
                "create", "delete", "get", "list", "patch", "update", "watch",
            ]
        };
        let mut entry = json!({
            "name": self.plural(), "singularName": self.kind().to_lowercase(),
            "namespaced": self.is_namespaced(), "kind": self.kind(), "verbs": verbs,
        });
        if !self.short_names().is_empty() {
            entry["shortNames"] = json!(self.short_names());
        }
        vec![entry]
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
    kill: tokio::sync::watch::Sender<u64>,
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

/// The label every Namespace gets from the real server (its defaulting and
/// strategy): `kubernetes.io/metadata.name: <name>`, overwriting any other value.
fn set_namespace_name_label(meta: &mut serde_json::Map<String, Value>) {
    let name = meta.get("name").cloned().unwrap_or_default();
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    labels["kubernetes.io/metadata.name"] = name;
}

impl FakeCluster {
    /// Starts a server with a fresh CA, token and random port on 127.0.0.1.
    pub async fn start(name: &str) -> FakeCluster {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fake apiserver");
        FakeCluster::start_on(name, listener).await
    }

    /// Starts a server with a fresh CA and token on a listener bound elsewhere, such as
    /// inside a network namespace ([`crate::netns`]); its certificate names the
    /// listener's address. [`Fault::Refuse`] rebinds in this process's own namespace, so
    /// it is for servers started with [`FakeCluster::start`].
    pub async fn start_on(name: &str, listener: std::net::TcpListener) -> FakeCluster {
        let addr = listener.local_addr().expect("listener address");
        let (ca_pem, acceptor) = tls::make_tls(name, addr.ip());
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let listener = TcpListener::from_std(listener).expect("register listener");
        let inner = Arc::new(Shared {
            name: name.to_owned(),
            token: tls::new_token(),
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
                served: Served::initial(),
                fault: Fault::None,
                forbidden: [false; Resource::COUNT],
                forbidden_writes: [false; Resource::COUNT],
                writes: [0; Resource::COUNT],
                write_conflicts: 0,
                requests: Vec::new(),
                bookmark_interval: DEFAULT_BOOKMARK_INTERVAL,
            }),
            listener: Mutex::new(Some(listener)),
            accept_task: Mutex::new(None),
            kill: tokio::sync::watch::Sender::new(0),
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
        let yaml_quote = |s: &str| Value::from(s).to_string();
        let name = yaml_quote(self.name());
        let user = yaml_quote(&format!("{}-admin", self.name()));
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.inner.ca_pem);
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\n    \
             certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    token: {token}\n\
             contexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {user}\n    \
             namespace: default\ncurrent-context: {name}\npreferences: {{}}\n",
            server = yaml_quote(&self.url()),
            ca = yaml_quote(&ca),
            token = yaml_quote(&self.inner.token),
        );
        std::fs::create_dir_all(dir).expect("create kubeconfig dir");
        let path = dir.join(format!("{}.kubeconfig", self.name()));
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Creates or replaces (PUT semantics) the object by namespace/name (namespace defaults to
    /// `default`; a cluster-scoped kind such as [`Resource::Namespaces`] is
    /// stored by name, without a namespace), like a controller would, with
    /// no check at all (no preconditions, validation, faults or write
    /// counting: see the HTTP verbs for those). Assigns uid/creationTimestamp on create, a new
    /// resourceVersion on every real change; for the kinds that keep one,
    /// generation 1 on create, bumped when anything outside metadata/status
    /// changes. A no-op update keeps the RV and emits nothing, like the real
    /// server. A Namespace gets the real server's automatic
    /// `kubernetes.io/metadata.name` label. Returns the object's RV.
    ///
    /// Panics (a test bug) when `resource` is a CRD that is not installed. The
    /// `apiVersion` may be the installed one or [`Resource::api_version`] (the
    /// builders'), as the object is stored without it.
    pub fn apply(&self, resource: Resource, mut object: Value) -> String {
        let mut st = lock(&self.inner.state);
        assert!(
            st.served.is_installed(resource),
            "apply(): the CRD of {resource:?} is not installed (see FakeCluster::install_crd)"
        );
        let obj = object
            .as_object_mut()
            .expect("apply(): object must be a JSON object");
        if let Some(got) = obj.remove("kind") {
            assert_eq!(
                got,
                resource.kind(),
                "apply(): kind does not match {resource:?}"
            );
        }
        if let Some(got) = obj.remove("apiVersion") {
            let served = st.served.api_version(resource);
            assert!(
                got == resource.api_version() || got == served.as_str(),
                "apply(): apiVersion {got} does not match {resource:?} (served as {served})"
            );
        }
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("apply(): metadata must be an object");
        assert!(
            meta.get("name").and_then(Value::as_str).is_some(),
            "apply(): metadata.name is required"
        );
        if resource.is_namespaced() {
            let ns = meta
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_owned();
            meta.insert("namespace".into(), ns.into());
        } else {
            // The real server clears it (`rest.BeforeCreate`).
            meta.remove("namespace");
        }
        if resource == Resource::Namespaces {
            set_namespace_name_label(meta);
        }
        let (stored, _) = st.put(resource, object);
        stored["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Deletes the object (emitting DELETED); false if it did not exist.
    /// `namespace` is ignored for a cluster-scoped kind (pass `""`).
    pub fn delete(&self, resource: Resource, namespace: &str, name: &str) -> bool {
        lock(&self.inner.state)
            .remove(resource, &resource.key(namespace, name))
            .is_some()
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

    /// Makes every request for `resource` (get/list/watch and the writes)
    /// answer 403 Forbidden, as with missing RBAC.
    pub fn set_forbidden(&self, resource: Resource, forbidden: bool) {
        lock(&self.inner.state).forbidden[resource.index()] = forbidden;
    }

    /// Makes create/update/patch/delete of `resource` answer 403 Forbidden
    /// while get/list/watch still work, as with a read-only Role.
    pub fn set_forbidden_writes(&self, resource: Resource, forbidden: bool) {
        lock(&self.inner.state).forbidden_writes[resource.index()] = forbidden;
    }

    /// The next `n` updates, patches and deletes over HTTP (of any resource)
    /// that reach the store answer 409 Conflict ("the object has been
    /// modified") even with a matching resourceVersion, and change nothing,
    /// as when another writer won the race. Creates are not affected (a
    /// create cannot conflict; it gets AlreadyExists). Replaces any count
    /// left; 0 clears.
    pub fn set_write_conflicts(&self, n: usize) {
        lock(&self.inner.state).write_conflicts = n;
    }

    /// The stored object, as a GET would return it (with kind/apiVersion).
    /// `namespace` is ignored for a cluster-scoped kind (pass `""`).
    pub fn get(&self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        let st = lock(&self.inner.state);
        st.current(resource, &resource.key(namespace, name))
            .map(|object| with_type_meta(resource, &st.api_version(resource), object.clone()))
    }

    /// Installs the CRD of `resource` at its [`Resource::default_version`]:
    /// from now on discovery lists it and its requests are served. No effect
    /// on the built-in kinds; see [`FakeCluster::install_crd_version`].
    pub fn install_crd(&self, resource: Resource) {
        self.install_crd_version(resource, resource.default_version());
    }

    /// Installs the CRD of `resource` served only at `version` (such as
    /// `v1beta1`): discovery shows that version, requests at any other are
    /// 404, and objects carry that `apiVersion`. On an installed CRD this
    /// changes the served version: objects are kept, its open watches end.
    /// No effect on the built-in kinds.
    pub fn install_crd_version(&self, resource: Resource, version: &str) {
        assert!(
            !version.is_empty() && !version.contains('/'),
            "install_crd_version(): bad version {version:?}"
        );
        if !resource.is_crd() {
            return;
        }
        let mut st = lock(&self.inner.state);
        let previous = st.served.install(resource, version);
        if previous.is_some_and(|v| v != version) {
            st.watchers.retain(|w| w.resource != resource);
        }
    }

    /// Uninstalls the CRD of `resource`, as deleting the CRD does: its
    /// objects are deleted, its open watches end without seeing those
    /// deletions, discovery stops listing it and its requests are 404. No
    /// effect on the built-in kinds or a CRD that is not installed.
    pub fn uninstall_crd(&self, resource: Resource) {
        if !resource.is_crd() {
            return;
        }
        let mut st = lock(&self.inner.state);
        if st.served.uninstall(resource).is_none() {
            return;
        }
        st.watchers.retain(|w| w.resource != resource);
        let keys: Vec<String> = st.objects[resource.index()].keys().cloned().collect();
        for key in keys {
            // Recorded in the history (so lists at later revisions and
            // resumed watches agree), seen by no open watch.
            st.remove(resource, &key);
        }
    }

    /// Whether `resource` is served: always for the built-in kinds, for a
    /// CRD between [`FakeCluster::install_crd`] and [`FakeCluster::uninstall_crd`].
    pub fn is_installed(&self, resource: Resource) -> bool {
        lock(&self.inner.state).served.is_installed(resource)
    }

    /// Write requests (POST/PUT/PATCH/DELETE) for `resource` received over
    /// HTTP since start, whatever their outcome (also those failed by a
    /// fault, authentication, RBAC, validation or a conflict).
    pub fn write_count(&self, resource: Resource) -> usize {
        lock(&self.inner.state).writes[resource.index()]
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
        st.watchers.retain(|w| !w.tx.is_closed());
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
        let write =
            [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(req.method());
        let fault = {
            let mut st = lock(&self.state);
            st.requests.push(format!("{} {target}", req.method()));
            if write && let Some(resource) = st.served.written_resource(uri.path()) {
                st.writes[resource.index()] += 1;
            }
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
        if write {
            return self.write(req).await;
        }
        if req.method() != Method::GET {
            return method_not_allowed();
        }
        self.route(req.uri().path(), req.uri().query().unwrap_or(""))
    }

    fn route(self: &Arc<Self>, path: &str, query: &str) -> Response<Body> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let served = lock(&self.state).served.clone();
        let (group, version, rest) = match segs.as_slice() {
            ["version"] => return json_response(200, &version_info()),
            ["api"] => {
                let address =
                    json!({"clientCIDR": "0.0.0.0/0", "serverAddress": self.addr.to_string()});
                let doc = json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [address]});
                return json_response(200, &doc);
            }
            ["apis"] => {
                let groups: Vec<Value> = served
                    .groups()
                    .into_iter()
                    .map(|group| served.api_group(group))
                    .collect();
                return json_response(
                    200,
                    &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
                );
            }
            ["apis", group] if served.is_served_group(group) => {
                let mut doc = served.api_group(group);
                doc["kind"] = json!("APIGroup");
                doc["apiVersion"] = json!("v1");
                return json_response(200, &doc);
            }
            _ => match served.split_group_path(&segs) {
                Some(split) => split,
                None => return self.unserved(&segs, |name| read_verb(name, query)),
            },
        };
        let (plural, ns, name) = match rest {
            [] => {
                let resources: Vec<Value> = Resource::ALL
                    .into_iter()
                    .filter(|r| r.group() == group && served.version(*r) == Some(version))
                    .flat_map(Resource::discovery_entries)
                    .collect();
                let group_version = if group.is_empty() {
                    "v1".to_owned()
                } else {
                    format!("{group}/{version}")
                };
                let mut doc = json!({"kind": "APIResourceList", "groupVersion": group_version, "resources": resources});
                if !group.is_empty() {
                    doc["apiVersion"] = json!("v1"); // the real core list has none
                }
                return json_response(200, &doc);
            }
            rest => match resource_segments(rest) {
                Some(segments) => segments,
                None => return not_found(),
            },
        };
        let Some(resource) = served.resource_at(group, version, plural) else {
            return self.unserved(&segs, |name| read_verb(name, query));
        };
        if !resource.scope_fits(ns, name) {
            return not_found();
        }
        self.resource_request(resource, ns, name, query)
    }

    fn resource_request(
        self: &Arc<Self>,
        resource: Resource,
        ns: Option<&str>,
        name: Option<&str>,
        query: &str,
    ) -> Response<Body> {
        let params = match Params::parse(query) {
            Ok(p) => p,
            Err(msg) => return bad_request(&msg),
        };
        let verb = match (name, params.watch) {
            (Some(_), _) => "get",
            (None, true) => "watch",
            (None, false) => "list",
        };
        let rbac_ns = resource.rbac_namespace(ns, name);
        if let Some(denied) = self.forbidden(resource, verb, rbac_ns, name) {
            return denied;
        }
        let selector = Selector {
            namespace: ns.map(str::to_owned),
            labels: params.labels.clone(),
            fields: params.fields.clone(),
        };
        match name {
            Some(name) => self.get(resource, ns.unwrap_or_default(), name),
            None if params.watch => self.watch(resource, selector, &params),
            _ => self.list(resource, &selector, &params),
        }
    }

    /// The answer to a path that names no served resource: 404, except that
    /// for a path naming a CRD's resource (installed at another version, or
    /// not at all) an RBAC denial of `verb(name)` comes first, as the real
    /// server authorizes before routing.
    pub(super) fn unserved(
        &self,
        segs: &[&str],
        verb: impl FnOnce(Option<&str>) -> &'static str,
    ) -> Response<Body> {
        if let Some((group, _, rest)) = parse_api_path(segs)
            && let Some((plural, ns, name)) = resource_segments(rest)
            && let Some(resource) = Resource::crd_named(group, plural)
            && resource.scope_fits(ns, name)
            && let Some(denied) = self.forbidden(resource, verb(name), ns, name)
        {
            return denied;
        }
        not_found()
    }

    /// The 403 of an RBAC denial, if [`FakeCluster::set_forbidden`] or (for
    /// writes) [`FakeCluster::set_forbidden_writes`] denies `verb`.
    fn forbidden(
        &self,
        resource: Resource,
        verb: &str,
        ns: Option<&str>,
        name: Option<&str>,
    ) -> Option<Response<Body>> {
        let write = !matches!(verb, "get" | "list" | "watch");
        let st = lock(&self.state);
        let i = resource.index();
        if !(st.forbidden[i] || write && st.forbidden_writes[i]) {
            return None;
        }
        let scope = ns.map_or("at the cluster scope".to_owned(), |ns| {
            format!("in the namespace \"{ns}\"")
        });
        let (qualified, plural, group) =
            (resource.qualified(), resource.plural(), resource.group());
        let subject = name.map_or(qualified.clone(), |name| format!("{qualified} \"{name}\""));
        let msg = format!(
            "{subject} is forbidden: User \"system:serviceaccount:fedns:fedns\" cannot {verb} resource \"{plural}\" in API group \"{group}\" {scope}"
        );
        let details = status_details(resource, name.unwrap_or_default());
        Some(status_response(403, "Forbidden", &msg, Some(details)))
    }

    fn get(&self, resource: Resource, ns: &str, name: &str) -> Response<Body> {
        let st = lock(&self.state);
        if !st.served.is_installed(resource) {
            return not_found(); // uninstalled since the request was routed
        }
        match st.current(resource, &resource.key(ns, name)) {
            Some(obj) => {
                let api_version = st.api_version(resource);
                json_response(200, &with_type_meta(resource, &api_version, obj.clone()))
            }
            None => object_not_found(resource, name),
        }
    }

    fn list(&self, resource: Resource, selector: &Selector, p: &Params) -> Response<Body> {
        let st = lock(&self.state);
        if !st.served.is_installed(resource) {
            return not_found(); // uninstalled since the request was routed
        }
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
                "kind": format!("{}List", resource.kind()), "apiVersion": st.api_version(resource),
                "metadata": meta, "items": items,
            }),
        )
    }
}
