//! Builders of the objects fedns watches and writes, shaped like a real cluster's.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

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

/// A core `v1` Namespace (cluster-scoped: no `metadata.namespace`) with the
/// given labels plus the one the real server adds to every Namespace,
/// `kubernetes.io/metadata.name: <name>`; `Active`, with the `kubernetes`
/// finalizer, as the server creates it.
pub fn namespace(name: &str, labels: &[(&str, &str)]) -> Value {
    let mut labels = string_map(labels);
    labels["kubernetes.io/metadata.name"] = json!(name);
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": labels},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

/// `time` as a `metav1.MicroTime` (`2025-04-23T13:00:00.123456Z`), the
/// format of a Lease's `renewTime` and `acquireTime`.
pub fn micro_time(time: SystemTime) -> String {
    super::store::rfc3339(time, true)
}

fn string_map(pairs: &[(&str, &str)]) -> Value {
    let map: Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    Value::Object(map)
}

/// A `coordination.k8s.io/v1` Lease held by `holder` for `duration_secs`,
/// last renewed at `renew_time` (a MicroTime, see [`micro_time`]), with the
/// given annotations (none: no `annotations` field, as the server omits
/// empty maps).
pub fn lease(
    ns: &str,
    name: &str,
    holder: &str,
    duration_secs: i32,
    renew_time: &str,
    annotations: &[(&str, &str)],
) -> Value {
    let mut metadata = json!({"name": name, "namespace": ns});
    if !annotations.is_empty() {
        metadata["annotations"] = string_map(annotations);
    }
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": holder, "leaseDurationSeconds": duration_secs,
            "renewTime": renew_time,
        },
    })
}

/// A ConfigMap with the given `data` (none: no `data` field).
pub fn config_map(ns: &str, name: &str, data: &[(&str, &str)]) -> Value {
    let mut object = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
    });
    if !data.is_empty() {
        object["data"] = string_map(data);
    }
    object
}

/// `lastTransitionTime` of the conditions the builders write: fixed, so that
/// applying a rebuilt object is a no-op.
const TRANSITION_TIME: &str = "2025-04-23T13:00:00Z";
/// The Gateway API group, the default `group` of parentRefs and route kinds.
const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
/// The Gateway API's experimental group (XListenerSets).
const GATEWAY_X_GROUP: &str = "gateway.networking.x-k8s.io";
/// `controllerName` of the route statuses the builders write.
pub const GATEWAY_CONTROLLER: &str = "example.net/gateway-controller";

/// A `metav1.Condition`.
fn condition(kind: &str, status: bool, reason: &str, message: &str, generation: i64) -> Value {
    json!({
        "type": kind, "status": if status { "True" } else { "False" },
        "observedGeneration": generation, "lastTransitionTime": TRANSITION_TIME,
        "reason": reason, "message": message,
    })
}

/// One listener of a [`gateway`] or [`listener_set`]. Build with
/// [`Listener::new`] and the chained setters; fields are public for anything
/// else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    /// `hostname`; `None`: the field is absent (any host).
    pub hostname: Option<String>,
    pub port: u16,
    /// `HTTP`, `HTTPS`, `TLS`, `TCP`, `UDP`... (`GRPC` is not a Gateway API
    /// protocol, but is written as given).
    pub protocol: String,
    /// `allowedRoutes.namespaces.from`: `Same` (the default), `All` or `Selector`.
    pub from: String,
    /// `allowedRoutes.namespaces.selector.matchLabels`, written when not empty.
    pub namespace_labels: Vec<(String, String)>,
    /// `allowedRoutes.kinds` (kinds of the Gateway API group); empty: the
    /// field is absent and `status.listeners[].supportedKinds` are the
    /// protocol's defaults.
    pub kinds: Vec<String>,
}

impl Listener {
    /// A listener with no hostname, routes from the same namespace, any kind.
    pub fn new(name: &str, port: u16, protocol: &str) -> Self {
        Self {
            name: name.to_owned(),
            hostname: None,
            port,
            protocol: protocol.to_owned(),
            from: "Same".to_owned(),
            namespace_labels: Vec::new(),
            kinds: Vec::new(),
        }
    }
    /// An `HTTP` listener.
    pub fn http(name: &str, port: u16) -> Self {
        Self::new(name, port, "HTTP")
    }
    pub fn hostname(mut self, hostname: &str) -> Self {
        self.hostname = Some(hostname.to_owned());
        self
    }
    /// `allowedRoutes.namespaces.from`.
    pub fn namespaces_from(mut self, from: &str) -> Self {
        self.from = from.to_owned();
        self
    }
    /// `allowedRoutes.namespaces.from: Selector` with these `matchLabels`.
    pub fn from_selector(mut self, labels: &[(&str, &str)]) -> Self {
        self.from = "Selector".to_owned();
        self.namespace_labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self
    }
    /// `allowedRoutes.kinds`.
    pub fn kinds(mut self, kinds: &[&str]) -> Self {
        self.kinds = kinds.iter().map(|k| (*k).to_owned()).collect();
        self
    }

    fn spec(&self) -> Value {
        let mut namespaces = json!({"from": self.from});
        if !self.namespace_labels.is_empty() {
            let labels: Map<String, Value> = self
                .namespace_labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect();
            namespaces["selector"] = json!({"matchLabels": labels});
        }
        let mut allowed = json!({"namespaces": namespaces});
        if !self.kinds.is_empty() {
            allowed["kinds"] = json!(self.route_kinds());
        }
        let mut listener = json!({
            "name": self.name, "port": self.port, "protocol": self.protocol,
            "allowedRoutes": allowed,
        });
        if let Some(hostname) = &self.hostname {
            listener["hostname"] = json!(hostname);
        }
        let certificate =
            json!([{"group": "", "kind": "Secret", "name": format!("{}-cert", self.name)}]);
        match self.protocol.as_str() {
            "HTTPS" => {
                listener["tls"] = json!({"mode": "Terminate", "certificateRefs": certificate})
            }
            "TLS" => listener["tls"] = json!({"mode": "Passthrough"}),
            _ => {}
        }
        listener
    }

    /// The `status.listeners` entry of a [`gateway`] or [`listener_set`]:
    /// `attachedRoutes` 0, `supportedKinds`, conditions `Accepted` and
    /// `ResolvedRefs` True, `Programmed` as given.
    fn status(&self, programmed: bool) -> Value {
        json!({
            "name": self.name, "attachedRoutes": 0, "supportedKinds": self.route_kinds(),
            "conditions": [
                condition("Accepted", true, "Accepted", "Listener accepted", 1),
                condition("ResolvedRefs", true, "ResolvedRefs", "References resolved", 1),
                if programmed {
                    condition("Programmed", true, "Programmed", "Programmed", 1)
                } else {
                    condition("Programmed", false, "Pending", "Pending", 1)
                },
            ],
        })
    }

    /// `{group, kind}` of the allowed kinds, or of the protocol's defaults.
    fn route_kinds(&self) -> Vec<Value> {
        let defaults: &[&str] = match self.protocol.as_str() {
            "HTTP" | "HTTPS" => &["HTTPRoute", "GRPCRoute"],
            "GRPC" => &["GRPCRoute"],
            "TLS" => &["TLSRoute"],
            "TCP" => &["TCPRoute"],
            "UDP" => &["UDPRoute"],
            _ => &[],
        };
        let kinds: Vec<&str> = if self.kinds.is_empty() {
            defaults.to_vec()
        } else {
            self.kinds.iter().map(String::as_str).collect()
        };
        kinds
            .into_iter()
            .map(|kind| json!({"group": GATEWAY_GROUP, "kind": kind}))
            .collect()
    }
}

/// A Gateway API Gateway (`gatewayClassName: example`) with these listeners,
/// as its controller reports it: `status.addresses` (an IP is of type
/// `IPAddress`, anything else `Hostname`), conditions `Accepted` True and
/// `Programmed` True or False (`observedGeneration` 1), and per listener
/// `attachedRoutes` 0, `supportedKinds` and conditions.
pub fn gateway(
    ns: &str,
    name: &str,
    listeners: &[Listener],
    addresses: &[&str],
    programmed: bool,
) -> Value {
    let addresses: Vec<Value> = addresses
        .iter()
        .map(|address| {
            let kind = if address.parse::<std::net::IpAddr>().is_ok() {
                "IPAddress"
            } else {
                "Hostname"
            };
            json!({"type": kind, "value": address})
        })
        .collect();
    let programmed_condition = if programmed {
        condition("Programmed", true, "Programmed", "Programmed", 1)
    } else {
        let message = "Waiting for the load balancer";
        condition("Programmed", false, "Pending", message, 1)
    };
    let listener_status: Vec<Value> = listeners.iter().map(|l| l.status(programmed)).collect();
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "gatewayClassName": "example",
            "listeners": listeners.iter().map(Listener::spec).collect::<Vec<_>>(),
        },
        "status": {
            "addresses": addresses,
            "conditions": [
                condition("Accepted", true, "Accepted", "Gateway accepted", 1),
                programmed_condition,
            ],
            "listeners": listener_status,
        },
    })
}

/// Sets `spec.allowedListeners.namespaces.from` of a [`gateway`]: which
/// namespaces' ListenerSets may attach (`Same`, `All`, `Selector` or `None`,
/// the default when the field is absent).
pub fn allow_listeners(gateway: &mut Value, from: &str) {
    gateway["spec"]["allowedListeners"]["namespaces"]["from"] = json!(from);
}

/// A route's reference to its parent, by default a Gateway of the route's
/// namespace. Build with [`ParentRef::new`] and the chained setters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentRef {
    /// `group` (default `gateway.networking.k8s.io`).
    pub group: String,
    /// `kind` (default `Gateway`).
    pub kind: String,
    pub name: String,
    /// `namespace`; `None`: absent (the route's namespace).
    pub namespace: Option<String>,
    /// `sectionName`: a listener name.
    pub section_name: Option<String>,
    pub port: Option<u16>,
}

impl ParentRef {
    /// A Gateway of the route's namespace.
    pub fn new(name: &str) -> Self {
        Self {
            group: GATEWAY_GROUP.to_owned(),
            kind: "Gateway".to_owned(),
            name: name.to_owned(),
            namespace: None,
            section_name: None,
            port: None,
        }
    }
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_owned());
        self
    }
    pub fn section_name(mut self, section_name: &str) -> Self {
        self.section_name = Some(section_name.to_owned());
        self
    }
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
    /// Another kind of parent (such as a Service: `""`, `Service`; or a
    /// ListenerSet: `gateway.networking.k8s.io`, `ListenerSet`).
    pub fn kind(mut self, group: &str, kind: &str) -> Self {
        self.group = group.to_owned();
        self.kind = kind.to_owned();
        self
    }

    /// The `parentRef` as stored (the CRD defaults `group` and `kind`).
    pub fn to_json(&self) -> Value {
        let mut parent = json!({"group": self.group, "kind": self.kind, "name": self.name});
        if let Some(namespace) = &self.namespace {
            parent["namespace"] = json!(namespace);
        }
        if let Some(section_name) = &self.section_name {
            parent["sectionName"] = json!(section_name);
        }
        if let Some(port) = self.port {
            parent["port"] = json!(port);
        }
        parent
    }
}

/// A Gateway API ListenerSet (`gateway.networking.k8s.io/v1`) attaching these
/// listeners (written as [`gateway`] writes them) to the Gateway `parent`
/// (`spec.parentRef`: its `group`, `kind`, `name` and `namespace` when
/// set; a ParentGatewayReference has no `sectionName` or `port`), as its
/// controller reports it: conditions `Accepted` True and `Programmed` True
/// or False (`observedGeneration` 1), and `status.listeners` as a Gateway's.
pub fn listener_set(
    ns: &str,
    name: &str,
    parent: &ParentRef,
    listeners: &[Listener],
    programmed: bool,
) -> Value {
    let api_version = format!("{GATEWAY_GROUP}/v1");
    listener_set_of(
        &api_version,
        "ListenerSet",
        ns,
        name,
        parent,
        listeners,
        programmed,
    )
}

/// The experimental channel's XListenerSet
/// (`gateway.networking.x-k8s.io/v1alpha1`, before Gateway API v1.5),
/// shaped like [`listener_set`].
pub fn x_listener_set(
    ns: &str,
    name: &str,
    parent: &ParentRef,
    listeners: &[Listener],
    programmed: bool,
) -> Value {
    let api_version = format!("{GATEWAY_X_GROUP}/v1alpha1");
    listener_set_of(
        &api_version,
        "XListenerSet",
        ns,
        name,
        parent,
        listeners,
        programmed,
    )
}

fn listener_set_of(
    api_version: &str,
    kind: &str,
    ns: &str,
    name: &str,
    parent: &ParentRef,
    listeners: &[Listener],
    programmed: bool,
) -> Value {
    let mut parent_ref = json!({"name": parent.name});
    if !parent.group.is_empty() {
        parent_ref["group"] = json!(parent.group);
    }
    if !parent.kind.is_empty() {
        parent_ref["kind"] = json!(parent.kind);
    }
    if let Some(namespace) = &parent.namespace {
        parent_ref["namespace"] = json!(namespace);
    }
    let programmed_condition = if programmed {
        condition("Programmed", true, "Programmed", "Programmed", 1)
    } else {
        let message = "Waiting for the parent Gateway";
        condition("Programmed", false, "Pending", message, 1)
    };
    json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "parentRef": parent_ref,
            "listeners": listeners.iter().map(Listener::spec).collect::<Vec<_>>(),
        },
        "status": {
            "conditions": [
                condition("Accepted", true, "Accepted", "ListenerSet accepted", 1),
                programmed_condition,
            ],
            "listeners": listeners.iter().map(|l| l.status(programmed)).collect::<Vec<_>>(),
        },
    })
}

/// A `status.parents` entry of [`GATEWAY_CONTROLLER`] for `parent`.
fn parent_status(parent: &ParentRef, accepted: bool, generation: i64) -> Value {
    let accepted = if accepted {
        condition("Accepted", true, "Accepted", "Route accepted", generation)
    } else {
        let message = "No listener of the parent allows this route";
        condition(
            "Accepted",
            false,
            "NotAllowedByListeners",
            message,
            generation,
        )
    };
    let resolved = condition(
        "ResolvedRefs",
        true,
        "ResolvedRefs",
        "References resolved",
        generation,
    );
    json!({
        "parentRef": parent.to_json(), "controllerName": GATEWAY_CONTROLLER,
        "conditions": [accepted, resolved],
    })
}

/// A route of `kind` (`apiVersion` gateway.networking.k8s.io/`version`)
/// with these rules, accepted by every parent at generation 1.
fn route(
    version: &str,
    kind: &str,
    ns: &str,
    name: &str,
    hostnames: &[&str],
    parents: &[ParentRef],
    rules: Value,
) -> Value {
    json!({
        "apiVersion": format!("{GATEWAY_GROUP}/{version}"), "kind": kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "parentRefs": parents.iter().map(ParentRef::to_json).collect::<Vec<_>>(),
            "hostnames": hostnames,
            "rules": rules,
        },
        "status": {
            "parents": parents.iter().map(|p| parent_status(p, true, 1)).collect::<Vec<_>>(),
        },
    })
}

/// `backendRefs` to Services of the route's namespace on `port`.
fn backend_refs(backends: &[&str], port: u16) -> Vec<Value> {
    backends
        .iter()
        .map(|b| json!({"group": "", "kind": "Service", "name": b, "port": port, "weight": 1}))
        .collect()
}

/// A Gateway API HTTPRoute with one rule (path prefix `/`) to the given
/// Services of its namespace (port 80 each); `status.parents` has one entry
/// per parent, `Accepted` and `ResolvedRefs` True at `observedGeneration` 1
/// (see [`set_route_parent_status`] to change that).
pub fn http_route(
    ns: &str,
    name: &str,
    hostnames: &[&str],
    parents: &[ParentRef],
    backends: &[&str],
) -> Value {
    let rules = json!([{
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "backendRefs": backend_refs(backends, 80),
    }]);
    route("v1", "HTTPRoute", ns, name, hostnames, parents, rules)
}

/// A Gateway API GRPCRoute, shaped like [`http_route`] (one rule, no
/// matches, Services on port 80).
pub fn grpc_route(
    ns: &str,
    name: &str,
    hostnames: &[&str],
    parents: &[ParentRef],
    backends: &[&str],
) -> Value {
    let rules = json!([{"backendRefs": backend_refs(backends, 80)}]);
    route("v1", "GRPCRoute", ns, name, hostnames, parents, rules)
}

/// A Gateway API TLSRoute (`v1alpha2`), shaped like [`http_route`] (one
/// rule, no matches, Services on port 443).
pub fn tls_route(
    ns: &str,
    name: &str,
    hostnames: &[&str],
    parents: &[ParentRef],
    backends: &[&str],
) -> Value {
    let rules = json!([{"backendRefs": backend_refs(backends, 443)}]);
    route("v1alpha2", "TLSRoute", ns, name, hostnames, parents, rules)
}

/// Sets the `status.parents` entry of a route for `parent` (the one whose
/// `parentRef` equals it): `Accepted` True or False (`NotAllowedByListeners`)
/// and both conditions at `observed_generation` (stale when lower than the
/// route's generation). When there is no such entry one is appended, so a
/// `parent` that is not in `spec.parentRefs` makes a stale entry of a parent
/// the route left.
pub fn set_route_parent_status(
    route: &mut Value,
    parent: &ParentRef,
    accepted: bool,
    observed_generation: i64,
) {
    let entry = parent_status(parent, accepted, observed_generation);
    let parents = route_status_parents(route);
    match parents
        .iter_mut()
        .find(|p| p["parentRef"] == parent.to_json())
    {
        Some(existing) => *existing = entry,
        None => parents.push(entry),
    }
}

/// Removes the `status.parents` entry of a route for `parent`, as before its
/// controller has seen the route.
pub fn remove_route_parent_status(route: &mut Value, parent: &ParentRef) {
    route_status_parents(route).retain(|p| p["parentRef"] != parent.to_json());
}

fn route_status_parents(route: &mut Value) -> &mut Vec<Value> {
    let status = &mut route["status"];
    if !status["parents"].is_array() {
        status["parents"] = json!([]);
    }
    match &mut status["parents"] {
        Value::Array(parents) => parents,
        _ => unreachable!("status.parents was just made an array"),
    }
}

/// An external-dns DNSEndpoint with one `spec.endpoints` entry per
/// `(dnsName, recordType, targets, recordTTL)` (`recordTTL` only when set)
/// and `status.observedGeneration` 1.
pub fn dns_endpoint(
    ns: &str,
    name: &str,
    endpoints: &[(&str, &str, &[&str], Option<i64>)],
) -> Value {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(dns_name, record_type, targets, ttl)| {
            let mut endpoint =
                json!({"dnsName": dns_name, "recordType": record_type, "targets": targets});
            if let Some(ttl) = ttl {
                endpoint["recordTTL"] = json!(ttl);
            }
            endpoint
        })
        .collect();
    json!({
        "apiVersion": "externaldns.k8s.io/v1alpha1", "kind": "DNSEndpoint",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"endpoints": endpoints},
        "status": {"observedGeneration": 1},
    })
}

/// An Istio Gateway selecting the gateway pods by `selector`, with one
/// server per `(hosts, port, protocol)` (`HTTPS` servers terminate TLS with
/// a credential named `<name>-cert`).
pub fn istio_gateway(
    ns: &str,
    name: &str,
    selector: &[(&str, &str)],
    servers: &[(&[&str], u16, &str)],
) -> Value {
    let servers: Vec<Value> = servers
        .iter()
        .map(|(hosts, port, protocol)| {
            let port_name = format!("{}-{port}", protocol.to_ascii_lowercase());
            let mut server = json!({
                "port": {"number": port, "name": port_name, "protocol": protocol},
                "hosts": hosts,
            });
            if protocol.eq_ignore_ascii_case("HTTPS") {
                server["tls"] = json!({"mode": "SIMPLE", "credentialName": format!("{name}-cert")});
            }
            server
        })
        .collect();
    json!({
        "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": string_map(selector), "servers": servers},
    })
}

/// An Istio VirtualService for `hosts` bound to `gateways` (`namespace/name`
/// or `name`), routing HTTP to the Service of the same name on port 80.
pub fn virtual_service(ns: &str, name: &str, hosts: &[&str], gateways: &[&str]) -> Value {
    let destination = format!("{name}.{ns}.svc.cluster.local");
    json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "hosts": hosts, "gateways": gateways,
            "http": [{"route": [{"destination": {"host": destination, "port": {"number": 80}}}]}],
        },
    })
}
