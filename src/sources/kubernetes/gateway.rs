//! The Gateway API (`gateway.networking.k8s.io`): Gateways and the routes that attach to
//! them (HTTPRoute, GRPCRoute, TLSRoute), cut down to what DNS needs, and the rules that
//! decide which names a route gets from which Gateway, the way ExternalDNS's gateway
//! sources decide them:
//!
//! - a `status.parents` entry counts only if it is also in `spec.parentRefs` and is
//!   `Accepted` for the route's current generation;
//! - a listener of that Gateway admits the route when it matches the parent's
//!   `sectionName` and `port`, its `allowedRoutes.namespaces` admits the route's
//!   namespace (`Same`, the default, or `All`; `Selector` is not read and admits none,
//!   logged), and its `allowedRoutes.kinds` (or, unset, its protocol: HTTP and HTTPS take
//!   HTTPRoute and GRPCRoute, TLS takes TLSRoute) admit the route's kind;
//! - the route's names are the most specific intersection of each of its `hostnames`
//!   with the listener's `hostname` (`*.` matches one or more labels), or the listener's
//!   hostname when the route has none. A name still wildcard is not served.
//!
//! The objects are read as dynamic objects: fedns reads only the fields below, the same
//! in every version it knows.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use kube::ResourceExt;
use kube::api::DynamicObject;
use serde::Deserialize;

use super::convert::{ConvertCtx, Key, annotations, fields, host_name, what};
use super::discovery::{GATEWAY_GROUP, X_GATEWAY_GROUP};
use crate::config::in_zone;
use crate::store::{ObjectKind, Settings};

/// The route kinds read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum RouteKind {
    Http,
    Grpc,
    Tls,
}

impl RouteKind {
    pub(super) fn kind(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
            RouteKind::Tls => "TLSRoute",
        }
    }

    pub(super) fn object_kind(self) -> ObjectKind {
        match self {
            RouteKind::Http => ObjectKind::HttpRoute,
            RouteKind::Grpc => ObjectKind::GrpcRoute,
            RouteKind::Tls => ObjectKind::TlsRoute,
        }
    }
}

/// Where a listener takes routes from (or a Gateway, ListenerSets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum From {
    Same,
    All,
    /// The namespaces whose labels a selector matches (read from the cluster's
    /// Namespaces, which fedns watches once a Gateway has such a selector).
    Selector(LabelSelector),
    /// No namespace: `None` (a Gateway's default for ListenerSets), or a `from` that
    /// cannot be read.
    Nothing,
}

/// The labels of each namespace, by name.
pub(super) type NamespaceLabels = HashMap<String, BTreeMap<String, String>>;

/// A Kubernetes label selector: `matchLabels` and `matchExpressions` (`In`, `NotIn`,
/// `Exists`, `DoesNotExist`), all of which must hold. An unknown operator matches nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct LabelSelector {
    labels: BTreeMap<String, String>,
    expressions: Vec<(String, String, Vec<String>)>,
}

impl LabelSelector {
    pub(super) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.expressions.iter().all(|(key, op, values)| {
                let value = labels.get(key);
                match op.as_str() {
                    "In" => value.is_some_and(|v| values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}

impl From {
    /// Whether an object in `ns` may attach to one in `owner_ns` that says this.
    fn admits(&self, ns: &str, owner_ns: &str, namespaces: &NamespaceLabels) -> bool {
        match self {
            From::Same => ns == owner_ns,
            From::All => true,
            From::Selector(s) => namespaces.get(ns).is_some_and(|l| s.matches(l)),
            From::Nothing => false,
        }
    }

    fn is_selector(&self) -> bool {
        matches!(self, From::Selector(_))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Listener {
    pub(super) name: String,
    pub(super) hostname: Option<String>,
    pub(super) port: u16,
    pub(super) protocol: String,
    pub(super) from: From,
    /// `allowedRoutes.kinds` as (group, kind); None: by protocol.
    pub(super) kinds: Option<Vec<(String, String)>>,
}

impl Listener {
    /// Whether this listener admits a route of `kind`.
    fn admits_kind(&self, kind: RouteKind) -> bool {
        match &self.kinds {
            Some(kinds) => kinds
                .iter()
                .any(|(g, k)| g == GATEWAY_GROUP && k == kind.kind()),
            None => match self.protocol.as_str() {
                "HTTP" | "HTTPS" => matches!(kind, RouteKind::Http | RouteKind::Grpc),
                "TLS" => kind == RouteKind::Tls,
                _ => false,
            },
        }
    }

    fn admits_namespace(&self, route_ns: &str, owner_ns: &str, ns: &NamespaceLabels) -> bool {
        self.from.admits(route_ns, owner_ns, ns)
    }
}

impl Gateway {
    /// Whether it selects namespaces by their labels (so they must be watched).
    pub(super) fn selects_namespaces(&self) -> bool {
        self.listeners.iter().any(|l| l.from.is_selector()) || self.allowed_listeners.is_selector()
    }
}

impl ListenerSet {
    pub(super) fn selects_namespaces(&self) -> bool {
        self.listeners.iter().any(|l| l.from.is_selector())
    }
}

/// A Gateway cut down to what DNS needs.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Gateway {
    pub(super) listeners: Vec<Listener>,
    /// `status.addresses` of type IPAddress (or ExternalDNS's `target` annotation).
    pub(super) addresses: Vec<IpAddr>,
    /// The first of type Hostname: answered as a CNAME.
    pub(super) hostname: Option<String>,
    /// `status.conditions` has `Programmed` True.
    pub(super) programmed: bool,
    /// Where ListenerSets may attach from (`spec.allowedListeners.namespaces.from`;
    /// by default, none).
    pub(super) allowed_listeners: From,
    /// Names of its own, from ExternalDNS's `hostname` annotation or `fedns.io/hosts`,
    /// answered with its addresses, and the settings of its annotations.
    pub(super) extra_hosts: Vec<String>,
    pub(super) settings: Settings,
}

/// A parent reference, with its defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ParentRef {
    pub(super) group: String,
    pub(super) kind: String,
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) section: Option<String>,
    pub(super) port: Option<u16>,
}

impl ParentRef {
    fn is_gateway(&self, (ns, name): &Key) -> bool {
        self.group == GATEWAY_GROUP
            && self.kind == "Gateway"
            && self.namespace == *ns
            && self.name == *name
    }

    /// A ListenerSet, GA (`gateway.networking.k8s.io` `ListenerSet`) or experimental
    /// (`gateway.networking.x-k8s.io` `XListenerSet`).
    pub(super) fn is_any_listener_set(&self) -> bool {
        (self.group == GATEWAY_GROUP && self.kind == "ListenerSet")
            || (self.group == X_GATEWAY_GROUP && self.kind == "XListenerSet")
    }

    fn is_listener_set(&self, (ns, name): &Key) -> bool {
        self.is_any_listener_set() && self.namespace == *ns && self.name == *name
    }
}

/// A ListenerSet: more listeners for a Gateway, which must allow them.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct ListenerSet {
    /// Its Gateway (namespace, name).
    pub(super) parent: Key,
    pub(super) listeners: Vec<Listener>,
    /// `status.conditions` has `Programmed` True.
    pub(super) programmed: bool,
}

/// A route cut down to what DNS needs.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Route {
    pub(super) kind: RouteKind,
    pub(super) hostnames: Vec<String>,
    /// `status.parents` entries that count: in `spec.parentRefs` and `Accepted` for the
    /// current generation.
    pub(super) accepted: Vec<ParentRef>,
    /// Backend Services (namespace, name).
    pub(super) backends: Vec<Key>,
    /// Names from ExternalDNS's `hostname` annotation or `fedns.io/hosts`.
    pub(super) extra_hosts: Vec<String>,
    pub(super) settings: Settings,
}

// The fields read, as the API has them.

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct GatewayDoc {
    spec: GatewaySpec,
    status: GatewayStatus,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct GatewaySpec {
    listeners: Vec<ListenerDoc>,
    allowed_listeners: Option<AllowedListeners>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AllowedListeners {
    namespaces: Option<RouteNamespaces>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListenerSetDoc {
    spec: ListenerSetSpec,
    status: GatewayStatus,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ListenerSetSpec {
    parent_ref: ParentRefDoc,
    listeners: Vec<ListenerDoc>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ListenerDoc {
    name: String,
    hostname: Option<String>,
    port: i64,
    protocol: String,
    allowed_routes: Option<AllowedRoutes>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AllowedRoutes {
    namespaces: Option<RouteNamespaces>,
    kinds: Option<Vec<RouteGroupKind>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RouteNamespaces {
    from: Option<String>,
    selector: Option<LabelSelectorDoc>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct LabelSelectorDoc {
    match_labels: BTreeMap<String, String>,
    match_expressions: Vec<ExpressionDoc>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ExpressionDoc {
    key: String,
    operator: String,
    values: Vec<String>,
}

impl RouteNamespaces {
    /// What `from` says; a missing `from` is `default`. An unknown `from` admits nothing.
    fn read(self, default: From, what: &str, ctx: &ConvertCtx) -> From {
        match self.from.as_deref() {
            None => default,
            Some("Same") => From::Same,
            Some("All") => From::All,
            Some("Selector") => {
                let s = self.selector.unwrap_or_default();
                From::Selector(LabelSelector {
                    labels: s.match_labels,
                    expressions: s
                        .match_expressions
                        .into_iter()
                        .map(|e| (e.key, e.operator, e.values))
                        .collect(),
                })
            }
            Some("None") => From::Nothing,
            Some(other) => {
                tracing::warn!(
                    cluster = ctx.cluster,
                    object = what,
                    from = other,
                    "unknown namespaces.from; nothing admitted"
                );
                From::Nothing
            }
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RouteGroupKind {
    group: Option<String>,
    kind: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GatewayStatus {
    addresses: Vec<AddressDoc>,
    conditions: Vec<Condition>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AddressDoc {
    #[serde(rename = "type")]
    type_: Option<String>,
    value: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Condition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    observed_generation: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RouteDoc {
    spec: RouteSpec,
    status: RouteStatus,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RouteSpec {
    hostnames: Vec<String>,
    parent_refs: Vec<ParentRefDoc>,
    rules: Vec<RuleDoc>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default, rename_all = "camelCase")]
struct ParentRefDoc {
    group: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: String,
    section_name: Option<String>,
    port: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RuleDoc {
    backend_refs: Vec<BackendRefDoc>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BackendRefDoc {
    group: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RouteStatus {
    parents: Vec<ParentStatusDoc>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ParentStatusDoc {
    parent_ref: ParentRefDoc,
    conditions: Vec<Condition>,
}

impl ParentRefDoc {
    fn resolve(&self, route_ns: &str) -> ParentRef {
        ParentRef {
            group: self
                .group
                .clone()
                .unwrap_or_else(|| GATEWAY_GROUP.to_owned()),
            kind: self.kind.clone().unwrap_or_else(|| "Gateway".to_owned()),
            namespace: self
                .namespace
                .clone()
                .unwrap_or_else(|| route_ns.to_owned()),
            name: self.name.clone(),
            section: self.section_name.clone(),
            port: self.port.and_then(|p| u16::try_from(p).ok()),
        }
    }
}

/// Listeners as the API has them, cut down (a port out of range drops the listener).
fn listeners(docs: Vec<ListenerDoc>, what: &str, ctx: &ConvertCtx) -> Vec<Listener> {
    docs.into_iter()
        .filter_map(|l| {
            let port = u16::try_from(l.port).ok()?;
            let allowed = l.allowed_routes.unwrap_or_default();
            let from = allowed
                .namespaces
                .unwrap_or_default()
                .read(From::Same, what, ctx);
            Some(Listener {
                name: l.name,
                hostname: l.hostname.as_deref().map(host_name),
                port,
                protocol: l.protocol,
                from,
                kinds: allowed.kinds.map(|ks| {
                    ks.into_iter()
                        .map(|k| (k.group.unwrap_or_else(|| GATEWAY_GROUP.to_owned()), k.kind))
                        .collect()
                }),
            })
        })
        .collect()
}

pub(super) fn gateway(o: &DynamicObject, ctx: &ConvertCtx) -> Option<Gateway> {
    let what = what("gateway", o);
    let doc: GatewayDoc = fields(o, &what, ctx)?;
    let (settings, extra_hosts, exclude, ext) = annotations(o.annotations(), &what, ctx);
    if exclude {
        return None;
    }
    let allowed_listeners = doc
        .spec
        .allowed_listeners
        .and_then(|a| a.namespaces)
        .map_or(From::Nothing, |n| n.read(From::Nothing, &what, ctx));
    let listeners = listeners(doc.spec.listeners, &what, ctx);
    let mut addresses = Vec::new();
    let mut hostname = None;
    for a in &doc.status.addresses {
        match a.type_.as_deref() {
            None | Some("IPAddress") => match a.value.parse::<IpAddr>() {
                Ok(ip) => addresses.push(ip),
                Err(_) => tracing::warn!(
                    cluster = ctx.cluster,
                    object = what,
                    address = a.value,
                    "Gateway address is not an IP address; ignored"
                ),
            },
            Some("Hostname") => {
                hostname = hostname.or_else(|| Some(host_name(&a.value)));
            }
            Some(_) => {}
        }
    }
    let (addresses, hostname) = ext.targets((addresses, hostname));
    let programmed = doc
        .status
        .conditions
        .iter()
        .any(|c| c.type_ == "Programmed" && c.status == "True");
    Some(Gateway {
        listeners,
        addresses,
        hostname,
        programmed,
        allowed_listeners,
        extra_hosts,
        settings,
    })
}

pub(super) fn listener_set(o: &DynamicObject, ctx: &ConvertCtx) -> Option<ListenerSet> {
    let what = what("listenerset", o);
    let doc: ListenerSetDoc = fields(o, &what, ctx)?;
    let ns = o.namespace().unwrap_or_default();
    let parent = doc.spec.parent_ref.resolve(&ns);
    if !parent.is_gateway(&(parent.namespace.clone(), parent.name.clone())) {
        return None;
    }
    Some(ListenerSet {
        parent: (parent.namespace, parent.name),
        listeners: listeners(doc.spec.listeners, &what, ctx),
        programmed: doc
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == "Programmed" && c.status == "True"),
    })
}

pub(super) fn route(kind: RouteKind, o: &DynamicObject, ctx: &ConvertCtx) -> Option<Route> {
    let what = what(kind.kind(), o);
    let doc: RouteDoc = fields(o, &what, ctx)?;
    let (settings, extra_hosts, exclude, _) = annotations(o.annotations(), &what, ctx);
    if exclude {
        return None;
    }
    let ns = o.namespace().unwrap_or_default();
    let generation = o.metadata.generation;
    let refs: Vec<ParentRef> = doc
        .spec
        .parent_refs
        .iter()
        .map(|r| r.resolve(&ns))
        .collect();
    let accepted = doc
        .status
        .parents
        .iter()
        .filter(|p| {
            p.conditions.iter().any(|c| {
                c.type_ == "Accepted"
                    && c.status == "True"
                    && (c.observed_generation.is_none() || c.observed_generation == generation)
            })
        })
        .map(|p| p.parent_ref.resolve(&ns))
        .filter(|p| refs.contains(p))
        .collect();
    let mut backends: Vec<Key> = doc
        .spec
        .rules
        .iter()
        .flat_map(|r| &r.backend_refs)
        .filter(|b| {
            b.group.as_deref().unwrap_or("").is_empty()
                && b.kind.as_deref().unwrap_or("Service") == "Service"
        })
        .map(|b| {
            (
                b.namespace.clone().unwrap_or_else(|| ns.clone()),
                b.name.clone(),
            )
        })
        .collect();
    backends.sort();
    backends.dedup();
    Some(Route {
        kind,
        hostnames: doc.spec.hostnames.iter().map(|h| host_name(h)).collect(),
        accepted,
        backends,
        extra_hosts,
        settings,
    })
}

/// Whether `name` is under `wildcard` (`*.example.com`: one or more labels above
/// `example.com`).
pub(super) fn under(name: &str, wildcard: &str) -> bool {
    wildcard.strip_prefix('*').is_some_and(|suffix| {
        suffix.starts_with('.') && name.ends_with(suffix) && name.len() > suffix.len()
    })
}

/// The more specific of two hostnames when one matches the other (`*.` matching one or
/// more labels), else None. No hostname matches any.
pub(super) fn intersect(route: &str, listener: Option<&str>) -> Option<String> {
    let Some(listener) = listener else {
        return Some(route.to_owned());
    };
    if route == listener {
        return Some(route.to_owned());
    }
    if under(route, listener) {
        Some(route.to_owned())
    } else if under(listener, route) {
        Some(listener.to_owned())
    } else {
        None
    }
}

/// What a route gets from one Gateway: its names and the first listener that admitted
/// it (for the probe's port and protocol).
pub(super) fn attach<'g>(
    route_ns: &str,
    route: &Route,
    gateway_key: &Key,
    gateway: &'g Gateway,
    namespaces: &NamespaceLabels,
) -> (Vec<String>, Option<&'g Listener>) {
    let parents = route.accepted.iter().filter(|p| p.is_gateway(gateway_key));
    names_from(
        route_ns,
        route,
        parents,
        &gateway_key.0,
        &gateway.listeners,
        namespaces,
    )
}

/// What a route gets from one ListenerSet of `gateway` (its names and the first listener
/// that admitted it): nothing unless the ListenerSet's parent is that Gateway and the
/// Gateway's `allowedListeners` admits the ListenerSet's namespace (`Same` or `All`; by
/// default, none).
pub(super) fn attach_to_set<'g>(
    route_ns: &str,
    route: &Route,
    set_key: &Key,
    set: &'g ListenerSet,
    gateway_key: &Key,
    gateway: &Gateway,
    namespaces: &NamespaceLabels,
) -> (Vec<String>, Option<&'g Listener>) {
    let allowed = gateway
        .allowed_listeners
        .admits(&set_key.0, &gateway_key.0, namespaces);
    if !allowed || set.parent != *gateway_key {
        return (Vec::new(), None);
    }
    let parents = route.accepted.iter().filter(|p| p.is_listener_set(set_key));
    names_from(
        route_ns,
        route,
        parents,
        &set_key.0,
        &set.listeners,
        namespaces,
    )
}

/// The names `listeners` (of an object in `owner_ns`) give a route through `parents`.
fn names_from<'a, 'l>(
    route_ns: &str,
    route: &Route,
    parents: impl Iterator<Item = &'a ParentRef>,
    owner_ns: &str,
    listeners: &'l [Listener],
    namespaces: &NamespaceLabels,
) -> (Vec<String>, Option<&'l Listener>) {
    let mut names = Vec::new();
    let mut first = None;
    for parent in parents {
        for l in listeners {
            if parent.section.as_ref().is_some_and(|s| *s != l.name)
                || parent.port.is_some_and(|p| p != l.port)
                || !l.admits_namespace(route_ns, owner_ns, namespaces)
                || !l.admits_kind(route.kind)
            {
                continue;
            }
            let before = names.len();
            if route.hostnames.is_empty() {
                names.extend(l.hostname.clone());
            } else {
                names.extend(
                    route
                        .hostnames
                        .iter()
                        .filter_map(|h| intersect(h, l.hostname.as_deref())),
                );
            }
            if names.len() > before {
                first = first.or(Some(l));
            }
        }
    }
    names.retain(|n| !n.starts_with("*."));
    names.sort();
    names.dedup();
    (names, first)
}

/// The names of `names` inside the zone.
pub(super) fn in_zone_only(names: Vec<String>, zone: &str) -> Vec<String> {
    names.into_iter().filter(|n| in_zone(n, zone)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No namespace labels known.
    static NONE: std::sync::LazyLock<NamespaceLabels> = std::sync::LazyLock::new(HashMap::new);

    #[test]
    fn label_selectors() {
        let l = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let sel = |expressions: &[(&str, &str, &[&str])]| LabelSelector {
            labels: l(&[("a", "1")]),
            expressions: expressions
                .iter()
                .map(|(k, op, v)| {
                    (
                        (*k).to_owned(),
                        (*op).to_owned(),
                        v.iter().map(|x| (*x).to_owned()).collect(),
                    )
                })
                .collect(),
        };
        assert!(sel(&[]).matches(&l(&[("a", "1"), ("b", "2")])));
        assert!(!sel(&[]).matches(&l(&[("a", "2")])));
        assert!(sel(&[("b", "In", &["2", "3"])]).matches(&l(&[("a", "1"), ("b", "3")])));
        assert!(!sel(&[("b", "In", &["2"])]).matches(&l(&[("a", "1")])));
        assert!(sel(&[("b", "NotIn", &["2"])]).matches(&l(&[("a", "1")])));
        assert!(sel(&[("b", "Exists", &[])]).matches(&l(&[("a", "1"), ("b", "")])));
        assert!(!sel(&[("b", "DoesNotExist", &[])]).matches(&l(&[("a", "1"), ("b", "")])));
        assert!(!sel(&[("b", "Gt", &["1"])]).matches(&l(&[("a", "1"), ("b", "2")])));
    }

    fn listener(name: &str, hostname: Option<&str>, port: u16, protocol: &str) -> Listener {
        Listener {
            name: name.into(),
            hostname: hostname.map(str::to_owned),
            port,
            protocol: protocol.into(),
            from: From::Same,
            kinds: None,
        }
    }

    fn gw(listeners: Vec<Listener>) -> Gateway {
        Gateway {
            listeners,
            addresses: vec!["192.0.2.1".parse().unwrap()],
            hostname: None,
            programmed: true,
            allowed_listeners: From::Nothing,
            extra_hosts: vec![],
            settings: Settings::default(),
        }
    }

    fn parent(name: &str) -> ParentRef {
        ParentRef {
            group: GATEWAY_GROUP.into(),
            kind: "Gateway".into(),
            namespace: "infra".into(),
            name: name.into(),
            section: None,
            port: None,
        }
    }

    fn route(kind: RouteKind, hostnames: &[&str], accepted: Vec<ParentRef>) -> Route {
        Route {
            kind,
            hostnames: hostnames.iter().map(|h| (*h).to_owned()).collect(),
            accepted,
            backends: vec![],
            extra_hosts: vec![],
            settings: Settings::default(),
        }
    }

    fn key(name: &str) -> Key {
        ("infra".into(), name.into())
    }

    #[test]
    fn hostname_intersection() {
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            ("a.fed.example.com", None, Some("a.fed.example.com")),
            (
                "a.fed.example.com",
                Some("a.fed.example.com"),
                Some("a.fed.example.com"),
            ),
            ("a.fed.example.com", Some("b.fed.example.com"), None),
            // A wildcard listener: one or more labels under it.
            (
                "a.fed.example.com",
                Some("*.fed.example.com"),
                Some("a.fed.example.com"),
            ),
            (
                "x.a.fed.example.com",
                Some("*.fed.example.com"),
                Some("x.a.fed.example.com"),
            ),
            ("fed.example.com", Some("*.fed.example.com"), None),
            ("afed.example.com", Some("*.fed.example.com"), None),
            // A wildcard route under an exact listener: the listener's name.
            (
                "*.fed.example.com",
                Some("shop.fed.example.com"),
                Some("shop.fed.example.com"),
            ),
            // Two wildcards: the narrower.
            (
                "*.eu.fed.example.com",
                Some("*.fed.example.com"),
                Some("*.eu.fed.example.com"),
            ),
            ("*.fed.example.com", Some("*.example.org"), None),
        ];
        for (route, listener, want) in cases {
            assert_eq!(
                intersect(route, *listener).as_deref(),
                *want,
                "{route} with {listener:?}"
            );
        }
    }

    #[test]
    fn listeners_admit_by_section_port_namespace_and_kind() {
        let g = gw(vec![
            listener("web", Some("*.fed.example.com"), 80, "HTTP"),
            listener("tls", Some("*.fed.example.com"), 443, "TLS"),
            listener("other", Some("x.example.org"), 8080, "HTTP"),
        ]);
        let names = |r: &Route, ns: &str| attach(ns, r, &key("gw"), &g, &NONE).0;
        // Any listener that admits it.
        let r = route(
            RouteKind::Http,
            &["shop.fed.example.com"],
            vec![parent("gw")],
        );
        assert_eq!(names(&r, "infra"), ["shop.fed.example.com"]);
        assert_eq!(
            attach("infra", &r, &key("gw"), &g, &NONE).1.unwrap().name,
            "web"
        );
        // sectionName picks the listener; a TLS listener does not take an HTTPRoute.
        let mut p = parent("gw");
        p.section = Some("tls".into());
        let r = route(RouteKind::Http, &["shop.fed.example.com"], vec![p.clone()]);
        assert!(names(&r, "infra").is_empty());
        let r = route(RouteKind::Tls, &["shop.fed.example.com"], vec![p]);
        assert_eq!(names(&r, "infra"), ["shop.fed.example.com"]);
        // A port that no listener has.
        let mut p = parent("gw");
        p.port = Some(8443);
        let r = route(RouteKind::Http, &["shop.fed.example.com"], vec![p]);
        assert!(names(&r, "infra").is_empty());
        // Another namespace: `Same` refuses, `All` admits, `Selector` is not read.
        let r = route(
            RouteKind::Http,
            &["shop.fed.example.com"],
            vec![parent("gw")],
        );
        assert!(names(&r, "shop").is_empty());
        let mut all = g.clone();
        all.listeners[0].from = From::All;
        assert_eq!(
            attach("shop", &r, &key("gw"), &all, &NONE).0,
            ["shop.fed.example.com"]
        );
        // A selector: the namespace's labels decide.
        all.listeners[0].from = From::Selector(LabelSelector {
            labels: BTreeMap::from([("team".into(), "shop".into())]),
            expressions: vec![("env".into(), "NotIn".into(), vec!["dev".into()])],
        });
        assert!(attach("shop", &r, &key("gw"), &all, &NONE).0.is_empty());
        let labelled = |pairs: &[(&str, &str)]| -> NamespaceLabels {
            HashMap::from([(
                "shop".to_owned(),
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            )])
        };
        assert_eq!(
            attach("shop", &r, &key("gw"), &all, &labelled(&[("team", "shop")])).0,
            ["shop.fed.example.com"]
        );
        let dev = labelled(&[("team", "shop"), ("env", "dev")]);
        assert!(attach("shop", &r, &key("gw"), &all, &dev).0.is_empty());
        let web = labelled(&[("team", "web")]);
        assert!(attach("shop", &r, &key("gw"), &all, &web).0.is_empty());
        // allowedRoutes.kinds: only GRPCRoute.
        let mut grpc = g.clone();
        grpc.listeners[0].kinds = Some(vec![(GATEWAY_GROUP.into(), "GRPCRoute".into())]);
        assert!(attach("infra", &r, &key("gw"), &grpc, &NONE).0.is_empty());
        let g2 = route(
            RouteKind::Grpc,
            &["shop.fed.example.com"],
            vec![parent("gw")],
        );
        assert_eq!(
            attach("infra", &g2, &key("gw"), &grpc, &NONE).0,
            ["shop.fed.example.com"]
        );
        // A route with no hostnames takes each admitting listener's, unless it is a
        // wildcard (names outside the zone are dropped later, with the zone).
        let mut exact = g.clone();
        exact.listeners[0].hostname = Some("www.fed.example.com".into());
        let r = route(RouteKind::Http, &[], vec![parent("gw")]);
        assert_eq!(
            attach("infra", &r, &key("gw"), &exact, &NONE).0,
            ["www.fed.example.com", "x.example.org"]
        );
        assert_eq!(names(&r, "infra"), ["x.example.org"]);
        // A parent that is another Gateway, or none accepted: nothing.
        let r = route(
            RouteKind::Http,
            &["shop.fed.example.com"],
            vec![parent("other")],
        );
        assert!(names(&r, "infra").is_empty());
        let r = route(RouteKind::Http, &["shop.fed.example.com"], vec![]);
        assert!(names(&r, "infra").is_empty());
    }

    #[test]
    fn a_listener_set_gives_names_only_where_its_gateway_allows_it() {
        let mut g = gw(vec![listener(
            "web",
            Some("www.fed.example.com"),
            80,
            "HTTP",
        )]);
        let set_key: Key = ("team".into(), "team-listeners".into());
        let set = ListenerSet {
            parent: key("gw"),
            listeners: vec![listener(
                "team",
                Some("*.team.fed.example.com"),
                443,
                "HTTPS",
            )],
            programmed: true,
        };
        let mut to_set = parent("team-listeners");
        to_set.kind = "ListenerSet".into();
        to_set.namespace = "team".into();
        let r = route(
            RouteKind::Http,
            &["api.team.fed.example.com"],
            vec![to_set.clone()],
        );
        let names = |g: &Gateway, set: &ListenerSet| {
            attach_to_set("team", &r, &set_key, set, &key("gw"), g, &NONE).0
        };
        // By default a Gateway takes no ListenerSet; `Same` not from another namespace.
        assert!(names(&g, &set).is_empty());
        g.allowed_listeners = From::Same;
        assert!(names(&g, &set).is_empty());
        g.allowed_listeners = From::All;
        assert_eq!(names(&g, &set), ["api.team.fed.example.com"]);
        // A ListenerSet of another Gateway.
        let mut other = set.clone();
        other.parent = key("gw2");
        assert!(names(&g, &other).is_empty());
        // The route's parent is the ListenerSet, not the Gateway: the Gateway's own
        // listeners give it nothing.
        assert!(attach("team", &r, &key("gw"), &g, &NONE).0.is_empty());
        // The experimental kind, in its own group.
        let mut x = to_set;
        x.kind = "XListenerSet".into();
        x.group = X_GATEWAY_GROUP.into();
        let rx = route(RouteKind::Http, &["api.team.fed.example.com"], vec![x]);
        assert_eq!(
            attach_to_set("team", &rx, &set_key, &set, &key("gw"), &g, &NONE).0,
            ["api.team.fed.example.com"]
        );
    }

    fn object(json: serde_json::Value) -> DynamicObject {
        serde_json::from_value(json).unwrap()
    }

    fn ctx() -> ConvertCtx {
        ConvertCtx {
            cluster: "c".into(),
            zone: "fed.example.com".into(),
        }
    }

    #[test]
    fn parents_count_only_if_referenced_and_accepted_for_this_generation() {
        let http = |o: &DynamicObject| super::route(RouteKind::Http, o, &ctx()).expect("a route");
        let doc = |status: serde_json::Value| {
            object(serde_json::json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": {"name": "r", "namespace": "shop", "generation": 3},
                "spec": {
                    "hostnames": ["Shop.Fed.Example.com."],
                    "parentRefs": [{"name": "gw", "namespace": "infra"}],
                    "rules": [{"backendRefs": [{"name": "shop", "port": 80},
                                               {"name": "ext", "kind": "ServiceImport", "group": "multicluster.x-k8s.io"}]}],
                },
                "status": {"parents": status},
            }))
        };
        let accepted = |generation: i64| {
            serde_json::json!([{"parentRef": {"name": "gw", "namespace": "infra"},
            "controllerName": "x", "conditions": [{"type": "Accepted", "status": "True", "observedGeneration": generation}]}])
        };
        let r = http(&doc(accepted(3)));
        assert_eq!(r.hostnames, ["shop.fed.example.com"]);
        assert_eq!(r.accepted.len(), 1);
        assert_eq!(r.accepted[0].name, "gw");
        assert_eq!(r.backends, [("shop".to_owned(), "shop".to_owned())]);
        // Accepted for an older generation: does not count.
        let r = http(&doc(accepted(2)));
        assert!(r.accepted.is_empty());
        // Accepted, but by a parent the spec does not reference.
        let other = serde_json::json!([{"parentRef": {"name": "gw2", "namespace": "infra"},
            "conditions": [{"type": "Accepted", "status": "True", "observedGeneration": 3}]}]);
        let r = http(&doc(other));
        assert!(r.accepted.is_empty());
        // Not accepted.
        let refused = serde_json::json!([{"parentRef": {"name": "gw", "namespace": "infra"},
            "conditions": [{"type": "Accepted", "status": "False", "observedGeneration": 3}]}]);
        let r = http(&doc(refused));
        assert!(r.accepted.is_empty());
    }

    #[test]
    fn a_gateway_reads_addresses_listeners_and_programmed() {
        let g = object(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "infra"},
            "spec": {"gatewayClassName": "x", "listeners": [
                {"name": "https", "hostname": "*.fed.example.com", "port": 443, "protocol": "HTTPS",
                 "allowedRoutes": {"namespaces": {"from": "All"}}},
            ]},
            "status": {
                "addresses": [{"type": "IPAddress", "value": "192.0.2.9"},
                              {"type": "Hostname", "value": "GW.elb.example.net."},
                              {"value": "2001:db8::9"}],
                "conditions": [{"type": "Accepted", "status": "True"},
                               {"type": "Programmed", "status": "False"}],
            },
        }));
        let g = gateway(&g, &ctx()).expect("a gateway");
        assert_eq!(g.addresses.len(), 2);
        assert_eq!(g.hostname.as_deref(), Some("gw.elb.example.net"));
        assert!(!g.programmed);
        assert_eq!(g.listeners[0].from, From::All);
        assert_eq!(g.listeners[0].port, 443);
    }
}
