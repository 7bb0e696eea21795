//! Istio (`networking.istio.io`): Gateways and the VirtualServices bound to them, cut down
//! to what DNS needs, as ExternalDNS's istio-gateway and istio-virtualservice sources read
//! them:
//!
//! - a Gateway's names are its `servers[].hosts` (a `namespace/` prefix dropped;
//!   wildcards are not served);
//! - its addresses are the load-balancer status of the Services whose selector holds every
//!   label of the Gateway's `selector` (the ingress gateway Service), and it is ready when
//!   one of them has a ready endpoint;
//! - a VirtualService's `hosts` are served with the addresses of the Gateways it names in
//!   `gateways` (`name` in its own namespace, or `namespace/name`; `mesh` is not a
//!   Gateway), for each host that one of the Gateway's server hosts admits: `*` or the host
//!   itself, a `*.` wildcard above it, under a namespace part that is `*`, `.` (the
//!   Gateway's namespace) or the VirtualService's.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::api::DynamicObject;
use serde::Deserialize;

use super::convert::{ConvertCtx, Key, annotations, fields, host_name, what};
use crate::store::Settings;

/// An Istio Gateway cut down to what DNS needs.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct IstioGateway {
    pub(super) selector: BTreeMap<String, String>,
    /// Each server host as (namespace part, host): `("*", "shop.example.com")`.
    pub(super) hosts: Vec<(String, String)>,
    /// The first server's port, and whether any server terminates TLS.
    pub(super) port: Option<u16>,
    pub(super) tls: bool,
    /// Names from ExternalDNS's `hostname` annotation or `fedns.io/hosts`.
    pub(super) extra_hosts: Vec<String>,
    pub(super) settings: Settings,
}

/// A VirtualService cut down to what DNS needs.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct VirtualService {
    pub(super) hosts: Vec<String>,
    /// The Gateways it binds to (namespace, name).
    pub(super) gateways: Vec<Key>,
    pub(super) extra_hosts: Vec<String>,
    pub(super) settings: Settings,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GatewayDoc {
    spec: GatewaySpec,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GatewaySpec {
    selector: BTreeMap<String, String>,
    servers: Vec<ServerDoc>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ServerDoc {
    hosts: Vec<String>,
    port: Option<PortDoc>,
    tls: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PortDoc {
    number: i64,
    protocol: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct VirtualServiceDoc {
    spec: VirtualServiceSpec,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct VirtualServiceSpec {
    hosts: Vec<String>,
    gateways: Vec<String>,
}

pub(super) fn gateway(o: &DynamicObject, ctx: &ConvertCtx) -> Option<IstioGateway> {
    let what = what("istio gateway", o);
    let doc: GatewayDoc = fields(o, &what, ctx)?;
    let (settings, extra_hosts, exclude, _) = annotations(o.annotations(), &what, ctx);
    if exclude {
        return None;
    }
    let hosts = doc
        .spec
        .servers
        .iter()
        .flat_map(|s| &s.hosts)
        .map(|h| match h.split_once('/') {
            Some((ns, host)) => (ns.to_owned(), host_name(host)),
            None => ("*".to_owned(), host_name(h)),
        })
        .collect();
    let port = doc
        .spec
        .servers
        .first()
        .and_then(|s| s.port.as_ref())
        .and_then(|p| u16::try_from(p.number).ok());
    let tls = doc.spec.servers.iter().any(|s| {
        s.tls.is_some()
            || s.port
                .as_ref()
                .is_some_and(|p| p.protocol.eq_ignore_ascii_case("HTTPS"))
    });
    Some(IstioGateway {
        selector: doc.spec.selector,
        hosts,
        port,
        tls,
        extra_hosts,
        settings,
    })
}

pub(super) fn virtual_service(o: &DynamicObject, ctx: &ConvertCtx) -> Option<VirtualService> {
    let what = what("virtualservice", o);
    let doc: VirtualServiceDoc = fields(o, &what, ctx)?;
    let (settings, extra_hosts, exclude, _) = annotations(o.annotations(), &what, ctx);
    if exclude {
        return None;
    }
    let ns = o.namespace().unwrap_or_default();
    let gateways = doc
        .spec
        .gateways
        .iter()
        .filter(|g| g.as_str() != "mesh")
        .map(|g| match g.split_once('/') {
            Some((gns, name)) => (gns.to_owned(), name.to_owned()),
            None => (ns.clone(), g.clone()),
        })
        .collect();
    Some(VirtualService {
        hosts: doc.spec.hosts.iter().map(|h| host_name(h)).collect(),
        gateways,
        extra_hosts,
        settings,
    })
}

/// Whether a Service with `service_selector` is one of the Gateway's pods' Services:
/// it selects every label the Gateway selects (and the Gateway selects something).
pub(super) fn selects(
    gateway: &BTreeMap<String, String>,
    service_selector: &BTreeMap<String, String>,
) -> bool {
    !gateway.is_empty()
        && gateway
            .iter()
            .all(|(k, v)| service_selector.get(k) == Some(v))
}

/// Whether one of the Gateway's server hosts admits `host` of a VirtualService in
/// `vs_ns`, for a Gateway in `gateway_ns`.
pub(super) fn admits(gw: &IstioGateway, gateway_ns: &str, vs_ns: &str, host: &str) -> bool {
    gw.hosts.iter().any(|(ns, h)| {
        let ns_ok = ns == "*" || (ns == "." && vs_ns == gateway_ns) || ns == vs_ns;
        let host_ok = h == "*" || h == host || super::gateway::under(host, h);
        ns_ok && host_ok
    })
}

/// The Gateway's own names: its server hosts that are not wildcards.
pub(super) fn gateway_names(gw: &IstioGateway) -> Vec<String> {
    let mut names: Vec<String> = gw
        .hosts
        .iter()
        .map(|(_, h)| h.clone())
        .filter(|h| !h.contains('*'))
        .chain(gw.extra_hosts.iter().cloned())
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw(hosts: &[(&str, &str)]) -> IstioGateway {
        IstioGateway {
            selector: BTreeMap::from([("istio".to_owned(), "ingressgateway".to_owned())]),
            hosts: hosts
                .iter()
                .map(|(n, h)| ((*n).to_owned(), (*h).to_owned()))
                .collect(),
            port: Some(443),
            tls: true,
            extra_hosts: vec![],
            settings: Settings::default(),
        }
    }

    #[test]
    fn server_hosts_admit_virtual_service_hosts() {
        let g = gw(&[
            ("*", "*.fed.example.com"),
            (".", "own.example.org"),
            ("shop", "shop.example.org"),
        ]);
        assert!(admits(&g, "istio-system", "any", "a.fed.example.com"));
        assert!(!admits(&g, "istio-system", "any", "fed.example.com"));
        // `.`: only a VirtualService in the Gateway's namespace.
        assert!(admits(
            &g,
            "istio-system",
            "istio-system",
            "own.example.org"
        ));
        assert!(!admits(&g, "istio-system", "web", "own.example.org"));
        // A named namespace.
        assert!(admits(&g, "istio-system", "shop", "shop.example.org"));
        assert!(!admits(&g, "istio-system", "web", "shop.example.org"));
        assert!(admits(&gw(&[("*", "*")]), "a", "b", "x.fed.example.com"));
        assert_eq!(gateway_names(&g), ["own.example.org", "shop.example.org"]);
    }

    #[test]
    fn a_service_selecting_the_gateways_labels_is_its() {
        let g = gw(&[]).selector;
        let s = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(selects(
            &g,
            &s(&[("istio", "ingressgateway"), ("app", "x")])
        ));
        assert!(!selects(&g, &s(&[("istio", "egressgateway")])));
        assert!(!selects(
            &BTreeMap::new(),
            &s(&[("istio", "ingressgateway")])
        ));
    }

    #[test]
    fn objects_are_read_with_their_defaults() {
        let ctx = ConvertCtx {
            cluster: "c".into(),
            zone: "fed.example.com".into(),
        };
        let g: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "istio-system"},
            "spec": {"selector": {"istio": "ingressgateway"}, "servers": [
                {"port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                 "hosts": ["shop/Shop.Fed.Example.com.", "*.fed.example.com"],
                 "tls": {"mode": "SIMPLE", "credentialName": "c"}}]},
        }))
        .unwrap();
        let g = gateway(&g, &ctx).unwrap();
        assert_eq!(
            g.hosts,
            [
                ("shop".to_owned(), "shop.fed.example.com".to_owned()),
                ("*".to_owned(), "*.fed.example.com".to_owned())
            ]
        );
        assert_eq!((g.port, g.tls), (Some(443), true));
        let vs: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "vs", "namespace": "shop"},
            "spec": {"hosts": ["cart.fed.example.com"], "gateways": ["mesh", "gw", "istio-system/gw"]},
        }))
        .unwrap();
        let vs = virtual_service(&vs, &ctx).unwrap();
        assert_eq!(
            vs.gateways,
            [
                ("shop".to_owned(), "gw".to_owned()),
                ("istio-system".to_owned(), "gw".to_owned())
            ]
        );
    }
}
