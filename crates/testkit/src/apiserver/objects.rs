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
