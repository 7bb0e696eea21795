//! Everything one cluster's watches have seen: each stream's objects (a relist swapped in
//! whole on `InitDone`), readiness from EndpointSlices, what routes get from Gateways, and
//! what changed since the last store update, so that one event costs the objects it
//! touches and not the whole cluster.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::convert::Key;
use super::gateway::{self, RouteKind};
use super::istio;
use super::slim::Slim;
use super::watch::Msg;
use crate::store::{Endpoint, ObjectKey, ObjectKind};

/// The addresses an Istio Gateway is reached at, and the ready endpoints behind them;
/// with the port and TLS of the servers an endpoint is probed at.
#[derive(Clone, Debug, Default)]
struct Targets {
    addresses: Vec<std::net::IpAddr>,
    hostname: Option<String>,
    ready_endpoints: usize,
    port: Option<u16>,
    tls: bool,
}

/// One watch stream's objects: the current set and, during a relist, the next one.
pub(super) struct StreamState {
    kind: StreamKind,
    objects: HashMap<Key, Slim>,
    /// Objects of a relist in progress; swapped in whole on InitDone.
    pending: Option<HashMap<Key, Slim>>,
    synced: bool,
    error: Option<String>,
}

/// The kind a stream watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum StreamKind {
    Services,
    Ingresses,
    Slices,
    Gateways,
    Routes(RouteKind),
    DnsEndpoints,
    IstioGateways,
    VirtualServices,
    /// ListenerSets and XListenerSets alike.
    ListenerSets,
    /// Namespaces, for their labels: watched only once a Gateway selects namespaces by
    /// them. Their watch failing (say, the namespaced RBAC cannot list them) does not
    /// make the cluster stale or unsynced: such selectors then admit nothing.
    Namespaces,
}

/// The objects whose store endpoints may have changed, by kind.
#[derive(Default)]
struct Touched {
    services: HashSet<Key>,
    ingresses: HashSet<Key>,
    routes: HashSet<(RouteKind, Key)>,
    dns: HashSet<Key>,
    gateways: HashSet<Key>,
    istio: HashSet<Key>,
    virtual_services: HashSet<Key>,
}

/// Everything one cluster's watches have seen, with what changed since the last store
/// update, so that one event costs the objects it touches and not the whole cluster.
pub(super) struct ClusterObjects {
    zone: String,
    streams: BTreeMap<usize, StreamState>,
    /// Ready endpoints per Service, per EndpointSlice: readiness without a scan of slices.
    ready: HashMap<Key, HashMap<Key, usize>>,
    /// The objects to look at again at the next store update.
    touched: Touched,
    /// The routes that name each Service as a backend: a slice's change touches them.
    route_backends: HashMap<Key, HashSet<(RouteKind, Key)>>,
    /// The names each DNSEndpoint gave the store, so that a name it drops is removed.
    dns_names: HashMap<Key, Vec<String>>,
}

impl ClusterObjects {
    /// Every stream has listed once.
    pub(super) fn synced(&self) -> bool {
        self.streams
            .values()
            .all(|s| s.synced || s.kind == StreamKind::Namespaces)
    }

    /// The error of the first failing stream: while one fails, the cluster is stale.
    pub(super) fn first_error(&self) -> Option<&str> {
        self.streams
            .values()
            .filter(|s| s.kind != StreamKind::Namespaces)
            .find_map(|s| s.error.as_deref())
    }

    /// The Namespaces watch's error, if it fails.
    pub(super) fn namespaces_error(&self) -> Option<&str> {
        self.of_kind(StreamKind::Namespaces)
            .find_map(|s| s.error.as_deref())
    }

    /// A Gateway or ListenerSet selects namespaces by their labels: the Namespaces must
    /// be watched (and are not yet).
    pub(super) fn wants_namespaces(&self) -> bool {
        self.of_kind(StreamKind::Namespaces).next().is_none()
            && self
                .streams
                .values()
                .filter(|s| matches!(s.kind, StreamKind::Gateways | StreamKind::ListenerSets))
                .flat_map(|s| s.objects.values())
                .any(|o| match o {
                    Slim::Gateway(g) => g.selects_namespaces(),
                    Slim::ListenerSet(l) => l.selects_namespaces(),
                    _ => false,
                })
    }

    /// Each namespace's labels, when Namespaces are watched.
    fn namespace_labels(&self) -> gateway::NamespaceLabels {
        self.of_kind(StreamKind::Namespaces)
            .flat_map(|s| s.objects.iter())
            .filter_map(|((_, name), o)| match o {
                Slim::Namespace { labels } => Some((name.clone(), labels.clone())),
                _ => None,
            })
            .collect()
    }

    pub(super) fn new(zone: &str) -> ClusterObjects {
        ClusterObjects {
            zone: zone.to_owned(),
            streams: BTreeMap::new(),
            ready: HashMap::new(),
            touched: Touched::default(),
            route_backends: HashMap::new(),
            dns_names: HashMap::new(),
        }
    }

    /// A new stream, `id`, watching `kind`: not synced until it has listed once.
    pub(super) fn add_stream(&mut self, id: usize, kind: StreamKind) {
        self.streams.insert(
            id,
            StreamState {
                kind,
                objects: HashMap::new(),
                pending: None,
                synced: false,
                error: None,
            },
        );
    }

    /// A stream that stops (its kind is no longer served): its objects are gone.
    pub(super) fn remove_stream(&mut self, id: usize) {
        let Some(s) = self.streams.remove(&id) else {
            return;
        };
        for (k, o) in &s.objects {
            self.forget(s.kind, k, Some(o));
        }
    }

    /// The streams watching `kind`.
    fn of_kind(&self, kind: StreamKind) -> impl Iterator<Item = &StreamState> {
        self.streams.values().filter(move |s| s.kind == kind)
    }

    /// Every route, of every kind.
    fn all_routes(&self) -> Vec<(RouteKind, Key)> {
        self.streams
            .values()
            .filter_map(|s| match s.kind {
                StreamKind::Routes(rk) => Some((rk, s)),
                _ => None,
            })
            .flat_map(|(rk, s)| s.objects.keys().map(move |k| (rk, k.clone())))
            .collect()
    }

    /// Marks what an object (now `object`) changes in the store.
    fn touch(&mut self, kind: StreamKind, key: &Key, object: Option<&Slim>) {
        match (kind, object) {
            (StreamKind::Services, _) => {
                self.touched.services.insert(key.clone());
            }
            (StreamKind::Ingresses, _) => {
                self.touched.ingresses.insert(key.clone());
            }
            (StreamKind::Slices, Some(Slim::Slice { service, ready })) => {
                let svc = (key.0.clone(), service.clone());
                self.ready
                    .entry(svc.clone())
                    .or_default()
                    .insert(key.clone(), *ready);
                self.touch_service(svc);
            }
            (StreamKind::Slices, _) => {}
            // Gateways, ListenerSets and Namespaces change rarely: every route is looked
            // at again (and a Gateway's own annotated names).
            (StreamKind::Gateways | StreamKind::ListenerSets | StreamKind::Namespaces, _) => {
                if kind == StreamKind::Gateways {
                    self.touched.gateways.insert(key.clone());
                }
                let all = self.all_routes();
                self.touched.routes.extend(all);
            }
            (StreamKind::Routes(rk), o) => {
                if let Some(Slim::Route(r)) = o {
                    for b in &r.backends {
                        self.route_backends
                            .entry(b.clone())
                            .or_default()
                            .insert((rk, key.clone()));
                    }
                }
                self.touched.routes.insert((rk, key.clone()));
            }
            (StreamKind::DnsEndpoints, _) => {
                self.touched.dns.insert(key.clone());
            }
            // A Gateway's addresses are its VirtualServices' too.
            (StreamKind::IstioGateways, _) => {
                self.touched.istio.insert(key.clone());
                let all = self.keys_of(StreamKind::VirtualServices);
                self.touched.virtual_services.extend(all);
            }
            (StreamKind::VirtualServices, _) => {
                self.touched.virtual_services.insert(key.clone());
            }
        }
        if kind == StreamKind::Services {
            self.touch_istio_for(key);
        }
    }

    fn keys_of(&self, kind: StreamKind) -> Vec<Key> {
        self.of_kind(kind)
            .flat_map(|s| s.objects.keys().cloned())
            .collect()
    }

    /// A Service changed (or its readiness): when it fronts an Istio Gateway (or is gone,
    /// and might have), every Istio object is looked at again. Few clusters have many
    /// Istio Gateways; none is the common case, and costs one lookup.
    fn touch_istio_for(&mut self, svc: &Key) {
        if !self
            .streams
            .values()
            .any(|s| s.kind == StreamKind::IstioGateways)
        {
            return;
        }
        let fronts = match self.object(StreamKind::Services, svc) {
            Some(Slim::Service { selector, .. }) => self
                .of_kind(StreamKind::IstioGateways)
                .flat_map(|s| s.objects.values())
                .any(
                    |g| matches!(g, Slim::IstioGateway(g) if istio::selects(&g.selector, selector)),
                ),
            _ => true,
        };
        if fronts {
            let gateways = self.keys_of(StreamKind::IstioGateways);
            let services = self.keys_of(StreamKind::VirtualServices);
            self.touched.istio.extend(gateways);
            self.touched.virtual_services.extend(services);
        }
    }

    /// Marks an object gone: what it brought (a slice's readiness, a route's backends) is
    /// taken back, and what that changes is looked at again.
    fn forget(&mut self, kind: StreamKind, key: &Key, old: Option<&Slim>) {
        self.unlink(kind, key, old);
        self.touch(kind, key, None);
    }

    /// Takes back what an object that was `old` brought to others: a slice's ready count
    /// (its Service is looked at again), a route's backends.
    fn unlink(&mut self, kind: StreamKind, key: &Key, old: Option<&Slim>) {
        match (kind, old) {
            (StreamKind::Slices, Some(Slim::Slice { service, .. })) => {
                let svc = (key.0.clone(), service.clone());
                if let Some(m) = self.ready.get_mut(&svc) {
                    m.remove(key);
                    if m.is_empty() {
                        self.ready.remove(&svc);
                    }
                }
                self.touch_service(svc);
            }
            (StreamKind::Routes(rk), Some(Slim::Route(r))) => {
                for b in &r.backends {
                    if let Some(set) = self.route_backends.get_mut(b) {
                        set.remove(&(rk, key.clone()));
                        if set.is_empty() {
                            self.route_backends.remove(b);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// A Service's readiness changed: it, and the routes it backs, are looked at again.
    fn touch_service(&mut self, svc: Key) {
        if let Some(routes) = self.route_backends.get(&svc) {
            self.touched.routes.extend(routes.iter().cloned());
        }
        self.touch_istio_for(&svc);
        self.touched.services.insert(svc);
    }

    pub(super) fn apply(&mut self, msg: Msg) {
        let id = match &msg {
            Msg::Init(i)
            | Msg::InitApply(i, ..)
            | Msg::InitDone(i)
            | Msg::Apply(i, ..)
            | Msg::Delete(i, _)
            | Msg::Error(i, _) => *i,
        };
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let kind = s.kind;
        // Only data from the API clears an error: kube's watcher says Init before it tries
        // the LIST, so a retry against a dead API would otherwise look like a recovery for
        // the moment between its Init and its error.
        if !matches!(msg, Msg::Error(..) | Msg::Init(_)) {
            s.error = None;
        }
        match msg {
            Msg::Init(_) => s.pending = Some(HashMap::new()),
            Msg::InitApply(_, k, o) => {
                if let Some(o) = o {
                    s.pending.get_or_insert_with(HashMap::new).insert(k, o);
                }
            }
            Msg::InitDone(_) => {
                // The relist replaces this stream's objects at once.
                let new = s.pending.take().unwrap_or_default();
                let old = std::mem::replace(&mut s.objects, new);
                s.synced = true;
                let new: Vec<(Key, Slim)> = s
                    .objects
                    .iter()
                    .map(|(k, o)| (k.clone(), o.clone()))
                    .collect();
                for (k, o) in &old {
                    self.forget(kind, k, Some(o));
                }
                for (k, o) in &new {
                    self.touch(kind, k, Some(o));
                }
            }
            Msg::Apply(_, k, Some(o)) => {
                let old = s.objects.insert(k.clone(), o.clone());
                self.unlink(kind, &k, old.as_ref());
                self.touch(kind, &k, Some(&o));
            }
            Msg::Apply(_, k, None) | Msg::Delete(_, k) => {
                let old = s.objects.remove(&k);
                self.forget(kind, &k, old.as_ref());
            }
            Msg::Error(_, e) => s.error = Some(e),
        }
    }

    /// The current object of `kind` at `key`, from whichever namespace's stream has it.
    fn object(&self, kind: StreamKind, key: &Key) -> Option<&Slim> {
        self.of_kind(kind).find_map(|s| s.objects.get(key))
    }

    /// The store changes since the last call: every object when `all`, else those touched.
    pub(super) fn changes(&mut self, all: bool) -> Vec<(ObjectKey, Option<Endpoint>)> {
        let touched = std::mem::take(&mut self.touched);
        let Touched {
            services,
            ingresses,
            routes,
            dns,
            gateways,
            istio: istio_gateways,
            virtual_services,
        } = if all { self.everything() } else { touched };
        let mut out = Vec::with_capacity(services.len() + ingresses.len() + routes.len());
        for key in services {
            let endpoint = self
                .object(StreamKind::Services, &key)
                .and_then(|o| self.endpoint(&key, o));
            out.push(((ObjectKind::Service, key.0, key.1), endpoint));
        }
        for key in ingresses {
            let endpoint = self
                .object(StreamKind::Ingresses, &key)
                .and_then(|o| self.endpoint(&key, o));
            out.push(((ObjectKind::Ingress, key.0, key.1), endpoint));
        }
        let namespaces = if routes.is_empty() {
            gateway::NamespaceLabels::new()
        } else {
            self.namespace_labels()
        };
        for (rk, key) in routes {
            let endpoint = match self.object(StreamKind::Routes(rk), &key) {
                Some(Slim::Route(r)) => self.route_endpoint(&key, r, &namespaces),
                _ => None,
            };
            out.push(((rk.object_kind(), key.0, key.1), endpoint));
        }
        for key in dns {
            self.dns_changes(&key, &mut out);
        }
        for key in gateways {
            let endpoint = match self.object(StreamKind::Gateways, &key) {
                Some(Slim::Gateway(g)) => self.gateway_endpoint(&key, g),
                _ => None,
            };
            out.push(((ObjectKind::Gateway, key.0, key.1), endpoint));
        }
        // Each Istio Gateway's targets, found once for this update.
        let mut targets: HashMap<Key, Option<Targets>> = HashMap::new();
        for key in istio_gateways {
            let endpoint = match self.object(StreamKind::IstioGateways, &key) {
                Some(Slim::IstioGateway(g)) => {
                    let t = self.istio_targets(&key, &mut targets);
                    self.istio_gateway_endpoint(&key, g, t)
                }
                _ => None,
            };
            out.push(((ObjectKind::IstioGateway, key.0, key.1), endpoint));
        }
        for key in virtual_services {
            let endpoint = match self.object(StreamKind::VirtualServices, &key) {
                Some(Slim::VirtualService(vs)) => {
                    self.virtual_service_endpoint(&key, vs, &mut targets)
                }
                _ => None,
            };
            out.push(((ObjectKind::VirtualService, key.0, key.1), endpoint));
        }
        out
    }

    /// A Gateway's own names (from its annotations), with its addresses; ready when it is
    /// Programmed; probed at its first listener's port.
    fn gateway_endpoint(&self, (ns, name): &Key, g: &gateway::Gateway) -> Option<Endpoint> {
        let mut hosts = gateway::in_zone_only(g.extra_hosts.clone(), &self.zone);
        hosts.sort();
        hosts.dedup();
        if hosts.is_empty() || (g.addresses.is_empty() && g.hostname.is_none()) {
            return None;
        }
        let first = g.listeners.first();
        let mut settings = g.settings.clone();
        settings.probe_tls = first.is_some_and(|l| l.protocol == "HTTPS");
        Some(Endpoint {
            kind: ObjectKind::Gateway,
            namespace: ns.clone(),
            name: name.clone(),
            federated_name: false,
            hosts,
            addresses: g.addresses.clone(),
            hostname: g.hostname.clone(),
            port: first.map(|l| l.port),
            ready: g.programmed,
            ready_endpoints: None,
            settings,
        })
    }

    /// The addresses of an Istio Gateway: those of the Services that select its pods.
    fn istio_targets(
        &self,
        key: &Key,
        cache: &mut HashMap<Key, Option<Targets>>,
    ) -> Option<Targets> {
        if let Some(t) = cache.get(key) {
            return t.clone();
        }
        let found = match self.object(StreamKind::IstioGateways, key) {
            Some(Slim::IstioGateway(g)) => {
                let mut t = Targets::default();
                let mut any = false;
                for s in self.of_kind(StreamKind::Services) {
                    for (svc, o) in &s.objects {
                        if let Slim::Service {
                            addresses,
                            hostname,
                            selector,
                            ..
                        } = o
                            && istio::selects(&g.selector, selector)
                        {
                            any = true;
                            t.addresses.extend(addresses.iter().copied());
                            t.hostname = t.hostname.take().or_else(|| hostname.clone());
                            t.ready_endpoints += self.ready_of(svc);
                        }
                    }
                }
                t.addresses.sort();
                t.addresses.dedup();
                any.then_some(t)
            }
            _ => None,
        };
        cache.insert(key.clone(), found.clone());
        found
    }

    fn istio_endpoint(
        &self,
        kind: ObjectKind,
        (ns, name): &Key,
        hosts: Vec<String>,
        t: Targets,
        settings: &crate::store::Settings,
    ) -> Option<Endpoint> {
        let mut hosts = gateway::in_zone_only(hosts, &self.zone);
        hosts.sort();
        hosts.dedup();
        if hosts.is_empty() || (t.addresses.is_empty() && t.hostname.is_none()) {
            return None;
        }
        let mut settings = settings.clone();
        settings.probe_tls = t.tls;
        Some(Endpoint {
            kind,
            namespace: ns.clone(),
            name: name.clone(),
            federated_name: false,
            hosts,
            addresses: t.addresses,
            hostname: t.hostname,
            port: t.port,
            ready: t.ready_endpoints > 0,
            ready_endpoints: Some(u32::try_from(t.ready_endpoints).unwrap_or(u32::MAX)),
            settings,
        })
    }

    fn istio_gateway_endpoint(
        &self,
        key: &Key,
        g: &istio::IstioGateway,
        t: Option<Targets>,
    ) -> Option<Endpoint> {
        let t = Targets {
            port: g.port,
            tls: g.tls,
            ..t?
        };
        self.istio_endpoint(
            ObjectKind::IstioGateway,
            key,
            istio::gateway_names(g),
            t,
            &g.settings,
        )
    }

    /// A VirtualService's endpoint: its hosts that a Gateway it binds to admits, with
    /// those Gateways' addresses.
    fn virtual_service_endpoint(
        &self,
        key: &Key,
        vs: &istio::VirtualService,
        cache: &mut HashMap<Key, Option<Targets>>,
    ) -> Option<Endpoint> {
        let mut hosts = Vec::new();
        let mut all = Targets::default();
        for gw_key in &vs.gateways {
            let Some(Slim::IstioGateway(g)) = self.object(StreamKind::IstioGateways, gw_key) else {
                continue;
            };
            let admitted: Vec<String> = vs
                .hosts
                .iter()
                .filter(|h| !h.contains('*') && istio::admits(g, &gw_key.0, &key.0, h))
                .cloned()
                .collect();
            let Some(t) = self.istio_targets(gw_key, cache) else {
                continue;
            };
            if admitted.is_empty() {
                continue;
            }
            hosts.extend(admitted);
            all.addresses.extend(t.addresses);
            all.hostname = all.hostname.take().or(t.hostname);
            all.ready_endpoints += t.ready_endpoints;
            all.port = all.port.or(g.port);
            all.tls |= g.tls;
        }
        if hosts.is_empty() {
            return None;
        }
        hosts.extend(vs.extra_hosts.iter().cloned());
        all.addresses.sort();
        all.addresses.dedup();
        self.istio_endpoint(ObjectKind::VirtualService, key, hosts, all, &vs.settings)
    }

    /// Every object, as touched: the first full sync.
    fn everything(&self) -> Touched {
        Touched {
            services: self.keys_of(StreamKind::Services).into_iter().collect(),
            ingresses: self.keys_of(StreamKind::Ingresses).into_iter().collect(),
            routes: self.all_routes().into_iter().collect(),
            // And the names given before whose object is gone.
            dns: self
                .keys_of(StreamKind::DnsEndpoints)
                .into_iter()
                .chain(self.dns_names.keys().cloned())
                .collect(),
            gateways: self.keys_of(StreamKind::Gateways).into_iter().collect(),
            istio: self
                .keys_of(StreamKind::IstioGateways)
                .into_iter()
                .collect(),
            virtual_services: self
                .keys_of(StreamKind::VirtualServices)
                .into_iter()
                .collect(),
        }
    }

    /// The store's endpoints of one DNSEndpoint (one per name), and the removal of the
    /// names it no longer has.
    fn dns_changes(&mut self, key: &Key, out: &mut Vec<(ObjectKey, Option<Endpoint>)>) {
        let object_key = |name: &str| {
            (
                ObjectKind::DnsEndpoint,
                key.0.clone(),
                format!("{}/{name}", key.1),
            )
        };
        let old = self.dns_names.remove(key).unwrap_or_default();
        let mut now = Vec::new();
        if let Some(Slim::DnsEndpoint { names, settings }) =
            self.object(StreamKind::DnsEndpoints, key)
        {
            for n in names {
                let mut settings = settings.clone();
                settings.ttl = settings.ttl.or(n.ttl);
                out.push((
                    object_key(&n.name),
                    Some(Endpoint {
                        kind: ObjectKind::DnsEndpoint,
                        namespace: key.0.clone(),
                        name: format!("{}/{}", key.1, n.name),
                        federated_name: false,
                        hosts: vec![n.name.clone()],
                        addresses: n.addresses.clone(),
                        hostname: n.hostname.clone(),
                        // No port: not probed unless annotated (`fedns.io/probe-port`).
                        port: None,
                        // Nothing in the cluster says otherwise.
                        ready: true,
                        ready_endpoints: None,
                        settings,
                    }),
                ));
                now.push(n.name.clone());
            }
        }
        for gone in old.iter().filter(|o| !now.contains(o)) {
            out.push((object_key(gone), None));
        }
        if !now.is_empty() {
            self.dns_names.insert(key.clone(), now);
        }
    }

    /// Ready endpoints of a Service, from its EndpointSlices.
    fn ready_of(&self, svc: &Key) -> usize {
        self.ready.get(svc).map_or(0, |m| m.values().sum::<usize>())
    }

    /// A route's endpoint: the names it gets from the Gateways it is attached to (inside
    /// the zone), their addresses, the first admitting listener's port (an HTTPS probe
    /// for an HTTPS listener, unless annotated otherwise); ready when a Gateway it is
    /// attached to is Programmed and a backend Service has a ready endpoint.
    fn route_endpoint(
        &self,
        (ns, name): &Key,
        r: &gateway::Route,
        namespaces: &gateway::NamespaceLabels,
    ) -> Option<Endpoint> {
        let mut hosts = Vec::new();
        let mut addresses = Vec::new();
        let mut hostname = None;
        let mut listener = None;
        let mut programmed = false;
        let mut seen = HashSet::new();
        for parent in &r.accepted {
            let parent_key = (parent.namespace.clone(), parent.name.clone());
            if !seen.insert((parent.kind.clone(), parent_key.clone())) {
                continue;
            }
            // A Gateway, or a ListenerSet of one: the names, and the Gateway that has the
            // addresses.
            let attached = if parent.is_any_listener_set() {
                let Some(Slim::ListenerSet(set)) =
                    self.object(StreamKind::ListenerSets, &parent_key)
                else {
                    continue;
                };
                let Some(Slim::Gateway(gw)) = self.object(StreamKind::Gateways, &set.parent) else {
                    continue;
                };
                let (names, first) =
                    gateway::attach_to_set(ns, r, &parent_key, set, &set.parent, gw, namespaces);
                (names, first, gw, set.programmed)
            } else {
                let Some(Slim::Gateway(gw)) = self.object(StreamKind::Gateways, &parent_key) else {
                    continue;
                };
                let (names, first) = gateway::attach(ns, r, &parent_key, gw, namespaces);
                (names, first, gw, true)
            };
            let (names, first, gw, set_programmed) = attached;
            if names.is_empty() {
                continue;
            }
            hosts.extend(names);
            addresses.extend(gw.addresses.iter().copied());
            hostname = hostname.or_else(|| gw.hostname.clone());
            listener = listener.or(first);
            programmed |= gw.programmed && set_programmed;
        }
        if hosts.is_empty() {
            return None;
        }
        hosts.extend(r.extra_hosts.iter().cloned());
        let mut hosts = gateway::in_zone_only(hosts, &self.zone);
        hosts.sort();
        hosts.dedup();
        addresses.sort();
        addresses.dedup();
        if hosts.is_empty() || (addresses.is_empty() && hostname.is_none()) {
            return None;
        }
        let ready_endpoints: usize = r.backends.iter().map(|b| self.ready_of(b)).sum();
        let mut settings = r.settings.clone();
        settings.probe_tls = listener.is_some_and(|l| l.protocol == "HTTPS");
        Some(Endpoint {
            kind: r.kind.object_kind(),
            namespace: ns.clone(),
            name: name.clone(),
            federated_name: false,
            hosts,
            addresses,
            hostname,
            port: listener.map(|l| l.port),
            ready: programmed && ready_endpoints > 0,
            ready_endpoints: Some(u32::try_from(ready_endpoints).unwrap_or(u32::MAX)),
            settings,
        })
    }

    /// The store's endpoint for a Service (readiness from its EndpointSlices) or Ingress.
    fn endpoint(&self, (ns, name): &Key, o: &Slim) -> Option<Endpoint> {
        match o {
            Slim::Service {
                addresses,
                hostname,
                port,
                hosts,
                settings,
                ..
            } => {
                let ready = self.ready_of(&(ns.clone(), name.clone()));
                Some(Endpoint {
                    kind: ObjectKind::Service,
                    namespace: ns.clone(),
                    name: name.clone(),
                    federated_name: true,
                    hosts: hosts.clone(),
                    addresses: addresses.clone(),
                    hostname: hostname.clone(),
                    port: *port,
                    ready: ready > 0,
                    ready_endpoints: Some(ready.try_into().unwrap_or(u32::MAX)),
                    settings: settings.clone(),
                })
            }
            Slim::Ingress {
                hosts,
                addresses,
                hostname,
                port,
                settings,
            } => Some(Endpoint {
                kind: ObjectKind::Ingress,
                namespace: ns.clone(),
                name: name.clone(),
                federated_name: false,
                hosts: hosts.clone(),
                addresses: addresses.clone(),
                hostname: hostname.clone(),
                port: Some(*port),
                // SPEC section 4: an Ingress can serve when its load balancer has an address.
                ready: !addresses.is_empty() || hostname.is_some(),
                ready_endpoints: None,
                settings: settings.clone(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::store::Settings;

    fn svc(n: &str) -> (Key, Slim) {
        (
            ("default".into(), n.into()),
            Slim::Service {
                addresses: vec!["192.0.2.1".parse().unwrap()],
                hostname: None,
                port: Some(80),
                hosts: vec![],
                settings: Settings::default(),
                selector: Default::default(),
            },
        )
    }

    fn slice(service: &str, ready: usize) -> Slim {
        Slim::Slice {
            service: service.into(),
            ready,
        }
    }

    /// A cluster's objects with the three core streams: 0 Services, 1 Ingresses, 2
    /// EndpointSlices.
    fn core() -> ClusterObjects {
        let mut w = ClusterObjects::new("fed.example.com");
        w.add_stream(0, StreamKind::Services);
        w.add_stream(1, StreamKind::Ingresses);
        w.add_stream(2, StreamKind::Slices);
        w
    }

    fn key(n: &str) -> Key {
        ("default".into(), n.into())
    }

    #[test]
    fn a_retry_is_not_a_recovery_until_data_comes() {
        let mut w = core();
        w.apply(Msg::Error(0, "connection refused".into()));
        // kube's watcher says Init before it tries the LIST: still failing.
        w.apply(Msg::Init(0));
        assert!(w.streams[&0].error.is_some());
        w.apply(Msg::Error(0, "connection refused".into()));
        w.apply(Msg::Init(0));
        let (k, o) = svc("a");
        w.apply(Msg::InitApply(0, k, Some(o)));
        assert!(w.streams[&0].error.is_none(), "data from the API clears it");
    }

    #[test]
    fn relist_swaps_whole_and_keeps_old_until_done() {
        let mut w = core();
        let (k, o) = svc("a");
        w.apply(Msg::Init(0));
        w.apply(Msg::InitApply(0, k.clone(), Some(o.clone())));
        assert!(
            w.streams[&0].objects.is_empty(),
            "nothing visible before InitDone"
        );
        w.apply(Msg::InitDone(0));
        assert_eq!(w.streams[&0].objects.len(), 1);
        // A relist that no longer has `a` keeps it visible until InitDone, then drops it.
        w.apply(Msg::Init(0));
        let (k2, o2) = svc("b");
        w.apply(Msg::InitApply(0, k2.clone(), Some(o2)));
        assert!(w.streams[&0].objects.contains_key(&k));
        w.apply(Msg::InitDone(0));
        assert!(!w.streams[&0].objects.contains_key(&k) && w.streams[&0].objects.contains_key(&k2));
        // The store learns both: `a` removed, `b` added.
        let mut changes = w.changes(false);
        changes.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(changes.len(), 2);
        assert!(changes[0].1.is_none() && changes[1].1.is_some());
    }

    #[test]
    fn one_event_changes_one_object() {
        let mut w = core();
        for i in 0..100 {
            let (k, o) = svc(&format!("s{i}"));
            w.apply(Msg::InitApply(0, k, Some(o)));
        }
        w.apply(Msg::InitDone(0));
        assert_eq!(w.changes(true).len(), 100);
        let (k, o) = svc("s7");
        w.apply(Msg::Apply(0, k.clone(), Some(o)));
        let changes = w.changes(false);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].0, (ObjectKind::Service, k.0, k.1));
        assert!(w.changes(false).is_empty(), "changes are taken once");
    }

    #[test]
    fn readiness_comes_from_endpoint_slices() {
        let mut w = core();
        let (k, o) = svc("a");
        w.apply(Msg::Apply(0, k.clone(), Some(o)));
        let ready = |w: &mut ClusterObjects| w.changes(false)[0].1.as_ref().unwrap().ready;
        assert!(!ready(&mut w), "no slices: not ready");
        w.apply(Msg::Apply(2, key("a-1"), Some(slice("a", 0))));
        assert!(!ready(&mut w));
        w.apply(Msg::Apply(2, key("a-2"), Some(slice("a", 2))));
        assert!(ready(&mut w));
        w.apply(Msg::Apply(2, key("a-2"), Some(slice("a", 0))));
        assert!(!ready(&mut w), "an updated slice replaces its old count");
        w.apply(Msg::Apply(2, key("a-1"), Some(slice("a", 1))));
        assert!(ready(&mut w));
        w.apply(Msg::Delete(2, key("a-1")));
        assert!(!ready(&mut w), "a deleted slice takes its count with it");
    }

    fn gateway_stream(w: &mut ClusterObjects) {
        w.add_stream(3, StreamKind::Gateways);
        w.add_stream(4, StreamKind::Routes(RouteKind::Http));
        w.add_stream(5, StreamKind::DnsEndpoints);
    }

    fn gw(programmed: bool, ip: &str) -> Slim {
        Slim::Gateway(gateway::Gateway {
            listeners: vec![gateway::Listener {
                name: "https".into(),
                hostname: Some("*.fed.example.com".into()),
                port: 443,
                protocol: "HTTPS".into(),
                from: gateway::From::All,
                kinds: None,
            }],
            addresses: vec![ip.parse().unwrap()],
            hostname: None,
            programmed,
            allowed_listeners: gateway::From::Nothing,
            extra_hosts: vec![],
            settings: Settings::default(),
        })
    }

    fn http_route(hostnames: &[&str], backend: &str) -> Slim {
        Slim::Route(gateway::Route {
            kind: RouteKind::Http,
            hostnames: hostnames.iter().map(|h| (*h).to_owned()).collect(),
            accepted: vec![gateway::ParentRef {
                group: super::super::discovery::GATEWAY_GROUP.into(),
                kind: "Gateway".into(),
                namespace: "infra".into(),
                name: "gw".into(),
                section: None,
                port: None,
            }],
            backends: vec![key(backend)],
            extra_hosts: vec![],
            settings: Settings::default(),
        })
    }

    /// The one route change among `changes`.
    fn route_change(changes: &[(ObjectKey, Option<Endpoint>)]) -> Option<&Endpoint> {
        let c: Vec<_> = changes
            .iter()
            .filter(|(k, _)| k.0 == ObjectKind::HttpRoute)
            .collect();
        assert_eq!(c.len(), 1, "{changes:?}");
        c[0].1.as_ref()
    }

    #[test]
    fn a_route_gets_its_gateways_addresses_and_its_backends_readiness() {
        let mut w = core();
        gateway_stream(&mut w);
        for id in 0..6 {
            w.apply(Msg::InitDone(id));
        }
        assert!(w.synced());
        w.changes(true);
        let gw_key = ("infra".to_owned(), "gw".to_owned());
        w.apply(Msg::Apply(3, gw_key.clone(), Some(gw(true, "192.0.2.10"))));
        w.apply(Msg::Apply(
            4,
            key("shop"),
            Some(http_route(
                &["shop.fed.example.com", "shop.example.org"],
                "shop",
            )),
        ));
        let changes = w.changes(false);
        let ep = route_change(&changes).expect("attached");
        assert_eq!(ep.hosts, ["shop.fed.example.com"], "only names in the zone");
        assert_eq!(ep.addresses, ["192.0.2.10".parse::<IpAddr>().unwrap()]);
        assert_eq!(ep.port, Some(443));
        assert!(ep.settings.probe_tls);
        assert!(!ep.ready, "no backend endpoint is ready");
        // The backend's slice touches the route.
        w.apply(Msg::Apply(2, key("shop-1"), Some(slice("shop", 2))));
        let ep = route_change(&w.changes(false)).cloned().unwrap();
        assert!(ep.ready);
        assert_eq!(ep.ready_endpoints, Some(2));
        // A Gateway no longer Programmed: not ready; a new address: the route has it.
        w.apply(Msg::Apply(3, gw_key.clone(), Some(gw(false, "192.0.2.11"))));
        let ep = route_change(&w.changes(false)).cloned().unwrap();
        assert!(!ep.ready);
        assert_eq!(ep.addresses, ["192.0.2.11".parse::<IpAddr>().unwrap()]);
        // The Gateway gone: the route has no names, and leaves the store.
        w.apply(Msg::Delete(3, gw_key));
        assert!(route_change(&w.changes(false)).is_none());
    }

    #[test]
    fn a_stream_that_stops_takes_its_objects() {
        let mut w = core();
        gateway_stream(&mut w);
        for id in 0..6 {
            w.apply(Msg::InitDone(id));
        }
        w.changes(true);
        w.apply(Msg::Apply(
            3,
            ("infra".into(), "gw".into()),
            Some(gw(true, "192.0.2.10")),
        ));
        w.apply(Msg::Apply(
            4,
            key("shop"),
            Some(http_route(&["shop.fed.example.com"], "shop")),
        ));
        assert!(route_change(&w.changes(false)).is_some());
        // The HTTPRoute CRD is removed: its stream stops.
        w.remove_stream(4);
        assert!(route_change(&w.changes(false)).is_none());
        // A kind found later, still listing, does not make the cluster unsynced for the
        // kinds that have listed... but it is not synced itself until it lists.
        w.add_stream(6, StreamKind::Routes(RouteKind::Grpc));
        assert!(!w.synced());
        w.apply(Msg::InitDone(6));
        assert!(w.synced());
    }

    #[test]
    fn a_dns_endpoint_gives_a_name_each_and_takes_back_the_ones_it_drops() {
        use super::super::dns_endpoint::DnsName;
        let mut w = core();
        gateway_stream(&mut w);
        let name = |n: &str, ip: &str| DnsName {
            name: n.into(),
            addresses: vec![ip.parse().unwrap()],
            hostname: None,
            ttl: Some(45),
        };
        let obj = |names: Vec<DnsName>| Slim::DnsEndpoint {
            names,
            settings: Settings::default(),
        };
        w.apply(Msg::Apply(
            5,
            key("e"),
            Some(obj(vec![
                name("a.fed.example.com", "192.0.2.1"),
                name("b.fed.example.com", "192.0.2.2"),
            ])),
        ));
        let mut c = w.changes(false);
        c.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].0.2, "e/a.fed.example.com");
        let a = c[0].1.as_ref().unwrap();
        assert_eq!(a.hosts, ["a.fed.example.com"]);
        assert_eq!(a.settings.ttl, Some(45));
        assert!(a.ready);
        w.apply(Msg::Apply(
            5,
            key("e"),
            Some(obj(vec![name("b.fed.example.com", "192.0.2.3")])),
        ));
        let mut c = w.changes(false);
        c.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(c.len(), 2);
        assert!(c[0].1.is_none(), "a is taken back");
        assert_eq!(
            c[1].1.as_ref().unwrap().addresses[0].to_string(),
            "192.0.2.3"
        );
        w.apply(Msg::Delete(5, key("e")));
        let c = w.changes(false);
        assert_eq!(c.len(), 1);
        assert!(c[0].1.is_none());
    }

    #[test]
    fn istio_gateways_and_virtual_services_take_the_ingress_services_addresses() {
        let mut w = core();
        w.add_stream(6, StreamKind::IstioGateways);
        w.add_stream(7, StreamKind::VirtualServices);
        for id in [0, 1, 2, 6, 7] {
            w.apply(Msg::InitDone(id));
        }
        w.changes(true);
        let sys = |n: &str| ("istio-system".to_owned(), n.to_owned());
        let labels =
            |v: &str| std::collections::BTreeMap::from([("istio".to_owned(), v.to_owned())]);
        let ingress = Slim::Service {
            addresses: vec!["192.0.2.50".parse().unwrap()],
            hostname: None,
            port: Some(443),
            hosts: vec![],
            settings: Settings::default(),
            selector: labels("ingressgateway"),
        };
        w.apply(Msg::Apply(0, sys("istio-ingressgateway"), Some(ingress)));
        let gw = istio::IstioGateway {
            selector: labels("ingressgateway"),
            hosts: vec![
                ("*".into(), "www.fed.example.com".into()),
                ("*".into(), "*.fed.example.com".into()),
            ],
            port: Some(443),
            tls: true,
            extra_hosts: vec![],
            settings: Settings::default(),
        };
        w.apply(Msg::Apply(6, sys("gw"), Some(Slim::IstioGateway(gw))));
        let vs = istio::VirtualService {
            hosts: vec!["cart.fed.example.com".into(), "cart.example.org".into()],
            gateways: vec![sys("gw")],
            extra_hosts: vec![],
            settings: Settings::default(),
        };
        w.apply(Msg::Apply(7, key("cart"), Some(Slim::VirtualService(vs))));
        let find = |c: &[(ObjectKey, Option<Endpoint>)], kind| {
            c.iter()
                .find(|(k, _)| k.0 == kind)
                .and_then(|(_, e)| e.clone())
        };
        let c = w.changes(false);
        let g = find(&c, ObjectKind::IstioGateway).expect("the Gateway's own name");
        assert_eq!(g.hosts, ["www.fed.example.com"]);
        assert_eq!(g.addresses[0].to_string(), "192.0.2.50");
        assert!(!g.ready, "no ready endpoint behind the ingress gateway yet");
        let v = find(&c, ObjectKind::VirtualService).expect("bound");
        assert_eq!(
            v.hosts,
            ["cart.fed.example.com"],
            "in the zone and admitted"
        );
        assert!(v.settings.probe_tls);
        // The ingress gateway's pods become ready: both are looked at again.
        w.apply(Msg::Apply(
            2,
            sys("ingress-1"),
            Some(slice("istio-ingressgateway", 1)),
        ));
        let c = w.changes(false);
        assert!(find(&c, ObjectKind::IstioGateway).unwrap().ready);
        assert!(find(&c, ObjectKind::VirtualService).unwrap().ready);
        // The Gateway gone: the VirtualService has nothing to be reached at.
        w.apply(Msg::Delete(6, sys("gw")));
        let c = w.changes(false);
        assert!(c.iter().all(|(_, e)| e.is_none()), "{c:?}");
    }

    #[test]
    fn a_gateway_with_names_of_its_own_is_an_endpoint() {
        let mut w = core();
        gateway_stream(&mut w);
        for id in 0..6 {
            w.apply(Msg::InitDone(id));
        }
        w.changes(true);
        let key = ("infra".to_owned(), "gw".to_owned());
        let named = |programmed: bool, hosts: &[&str]| {
            let Slim::Gateway(mut g) = gw(programmed, "192.0.2.10") else {
                unreachable!()
            };
            g.extra_hosts = hosts.iter().map(|h| (*h).to_owned()).collect();
            Slim::Gateway(g)
        };
        let gateway_change = |c: Vec<(ObjectKey, Option<Endpoint>)>| {
            c.into_iter()
                .find(|(k, _)| k.0 == ObjectKind::Gateway)
                .expect("the Gateway looked at")
                .1
        };
        w.apply(Msg::Apply(
            3,
            key.clone(),
            Some(named(true, &["edge.fed.example.com", "x.example.org"])),
        ));
        let ep = gateway_change(w.changes(false)).expect("named");
        assert_eq!(ep.hosts, ["edge.fed.example.com"]);
        assert!(ep.ready && ep.settings.probe_tls);
        w.apply(Msg::Apply(
            3,
            key.clone(),
            Some(named(false, &["edge.fed.example.com"])),
        ));
        assert!(!gateway_change(w.changes(false)).unwrap().ready);
        // No name of its own: no endpoint.
        w.apply(Msg::Apply(3, key, Some(named(true, &[]))));
        assert!(gateway_change(w.changes(false)).is_none());
    }
}
