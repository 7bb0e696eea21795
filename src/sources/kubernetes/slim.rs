//! Kubernetes objects cut down to what DNS needs (`Slim`): Services, Ingresses and
//! EndpointSlices here, the Gateway API's and DNSEndpoints through their own modules.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{LoadBalancerIngress, Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::ResourceExt;
use kube::api::DynamicObject;
use tracing::{debug, warn};

use super::convert::{ConvertCtx, annotations, host_name, what};
use super::dns_endpoint::{self, DnsName};
use super::gateway::{self, Gateway, ListenerSet, Route, RouteKind};
use super::istio::{self, IstioGateway, VirtualService};
use crate::config::in_zone;
use crate::store::Settings;

/// The label EndpointSlices carry to name their Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Kubernetes object cut down to what DNS needs.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Slim {
    Service {
        addresses: Vec<IpAddr>,
        hostname: Option<String>,
        port: Option<u16>,
        hosts: Vec<String>,
        settings: Settings,
        /// `spec.selector`: which Istio Gateways' pods it fronts.
        selector: BTreeMap<String, String>,
    },
    Ingress {
        hosts: Vec<String>,
        addresses: Vec<IpAddr>,
        hostname: Option<String>,
        port: u16,
        settings: Settings,
    },
    Slice {
        service: String,
        ready: usize,
    },
    Gateway(Gateway),
    Route(Route),
    DnsEndpoint {
        names: Vec<DnsName>,
        settings: Settings,
    },
    IstioGateway(IstioGateway),
    VirtualService(VirtualService),
    ListenerSet(ListenerSet),
    /// A namespace's labels (for Gateways that select namespaces by them).
    Namespace {
        labels: BTreeMap<String, String>,
    },
}

/// Load-balancer addresses and the first hostname from `status.loadBalancer.ingress`.
pub(super) fn lb_targets(
    ingress: Option<&Vec<LoadBalancerIngress>>,
    what: &str,
    ctx: &ConvertCtx,
) -> (Vec<IpAddr>, Option<String>) {
    let mut addrs = Vec::new();
    let mut hostname = None;
    for i in ingress.into_iter().flatten() {
        if let Some(ip) = &i.ip {
            match ip.parse::<IpAddr>() {
                Ok(a) => addrs.push(a),
                Err(_) => warn!(
                    cluster = ctx.cluster,
                    object = what,
                    ip,
                    "load-balancer ip is not an address; ignored"
                ),
            }
        }
        if hostname.is_none()
            && let Some(h) = &i.hostname
        {
            hostname = Some(host_name(h));
        }
    }
    (addrs, hostname)
}

pub(super) fn slim_service(svc: &Service, ctx: &ConvertCtx) -> Option<Slim> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return None;
    }
    let what = what("service", svc);
    let (settings, hosts, exclude, ext) = annotations(svc.annotations(), &what, ctx);
    if exclude {
        return None;
    }
    let status = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref());
    let (addresses, hostname) = ext.targets(lb_targets(
        status.and_then(|l| l.ingress.as_ref()),
        &what,
        ctx,
    ));
    if addresses.is_empty() && hostname.is_none() {
        // Pending: no load balancer yet, nothing to answer with.
        return None;
    }
    let port = spec
        .ports
        .as_ref()
        .and_then(|p| p.first())
        .and_then(|p| u16::try_from(p.port).ok());
    Some(Slim::Service {
        addresses,
        hostname,
        port,
        hosts,
        settings,
        selector: spec.selector.clone().unwrap_or_default(),
    })
}

pub(super) fn slim_ingress(ing: &Ingress, ctx: &ConvertCtx) -> Option<Slim> {
    let what = what("ingress", ing);
    let (settings, mut hosts, exclude, ext) = annotations(ing.annotations(), &what, ctx);
    if exclude {
        return None;
    }
    let spec = ing.spec.as_ref()?;
    for rule in spec.rules.iter().flatten() {
        if let Some(h) = &rule.host {
            let h = host_name(h);
            if h.starts_with("*.") {
                debug!(
                    cluster = ctx.cluster,
                    object = what,
                    host = h,
                    "wildcard Ingress host not served"
                );
            } else if in_zone(&h, &ctx.zone) {
                hosts.push(h);
            }
        }
    }
    hosts.sort();
    hosts.dedup();
    if hosts.is_empty() {
        return None;
    }
    let status = ing.status.as_ref().and_then(|s| s.load_balancer.as_ref());
    let ingress_list: Option<Vec<LoadBalancerIngress>> =
        status.and_then(|l| l.ingress.as_ref()).map(|v| {
            v.iter()
                .map(|i| LoadBalancerIngress {
                    ip: i.ip.clone(),
                    hostname: i.hostname.clone(),
                    ..LoadBalancerIngress::default()
                })
                .collect()
        });
    let (addresses, hostname) = ext.targets(lb_targets(ingress_list.as_ref(), &what, ctx));
    let tls = spec.tls.as_ref().is_some_and(|t| !t.is_empty());
    Some(Slim::Ingress {
        hosts,
        addresses,
        hostname,
        port: if tls { 443 } else { 80 },
        settings,
    })
}

pub(super) fn slim_slice(slice: &EndpointSlice, _ctx: &ConvertCtx) -> Option<Slim> {
    let service = slice.labels().get(SERVICE_NAME_LABEL)?.clone();
    // A nil `ready` means ready (discovery.k8s.io/v1 EndpointConditions).
    let ready = slice
        .endpoints
        .iter()
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .count();
    Some(Slim::Slice { service, ready })
}

pub(super) fn slim_gateway(o: &DynamicObject, ctx: &ConvertCtx) -> Option<Slim> {
    gateway::gateway(o, ctx).map(Slim::Gateway)
}

pub(super) fn slim_http_route(o: &DynamicObject, ctx: &ConvertCtx) -> Option<Slim> {
    gateway::route(RouteKind::Http, o, ctx).map(Slim::Route)
}

pub(super) fn slim_grpc_route(o: &DynamicObject, ctx: &ConvertCtx) -> Option<Slim> {
    gateway::route(RouteKind::Grpc, o, ctx).map(Slim::Route)
}

pub(super) fn slim_tls_route(o: &DynamicObject, ctx: &ConvertCtx) -> Option<Slim> {
    gateway::route(RouteKind::Tls, o, ctx).map(Slim::Route)
}

pub(super) fn slim_dns_endpoint(o: &DynamicObject, ctx: &ConvertCtx) -> Option<Slim> {
    dns_endpoint::names(o, ctx).map(|(names, settings)| Slim::DnsEndpoint { names, settings })
}

pub(super) fn slim_istio_gateway(o: &DynamicObject, ctx: &ConvertCtx) -> Option<Slim> {
    istio::gateway(o, ctx).map(Slim::IstioGateway)
}

pub(super) fn slim_virtual_service(o: &DynamicObject, ctx: &ConvertCtx) -> Option<Slim> {
    istio::virtual_service(o, ctx).map(Slim::VirtualService)
}

pub(super) fn slim_listener_set(o: &DynamicObject, ctx: &ConvertCtx) -> Option<Slim> {
    gateway::listener_set(o, ctx).map(Slim::ListenerSet)
}

pub(super) fn slim_namespace(ns: &Namespace, _ctx: &ConvertCtx) -> Option<Slim> {
    Some(Slim::Namespace {
        labels: ns.labels().clone(),
    })
}
