//! Which of the optional kinds (the Gateway API's, Istio's, ExternalDNS's DNSEndpoint) a
//! member cluster serves, found by API discovery, as `kubectl api-resources` does. A
//! cluster without a CRD is normal: its kind is reported missing and never blocks the
//! cluster's sync. Discovery runs again periodically, so a CRD installed (or removed)
//! later is picked up without a restart.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIGroupList;
use kube::Client;
use kube::core::ApiResource;

use crate::store::KindState;

/// A kind fedns watches only where the cluster serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Optional {
    Gateway,
    HttpRoute,
    GrpcRoute,
    TlsRoute,
    DnsEndpoint,
    IstioGateway,
    VirtualService,
    ListenerSet,
    XListenerSet,
}

impl Optional {
    pub const ALL: [Optional; 9] = [
        Optional::Gateway,
        Optional::HttpRoute,
        Optional::GrpcRoute,
        Optional::TlsRoute,
        Optional::DnsEndpoint,
        Optional::IstioGateway,
        Optional::VirtualService,
        Optional::ListenerSet,
        Optional::XListenerSet,
    ];

    pub fn kind(self) -> &'static str {
        match self {
            Optional::Gateway => "Gateway",
            Optional::HttpRoute => "HTTPRoute",
            Optional::GrpcRoute => "GRPCRoute",
            Optional::TlsRoute => "TLSRoute",
            Optional::DnsEndpoint => "DNSEndpoint",
            Optional::IstioGateway => "Gateway",
            Optional::VirtualService => "VirtualService",
            Optional::ListenerSet => "ListenerSet",
            Optional::XListenerSet => "XListenerSet",
        }
    }

    /// The kind as reports name it: Istio's Gateway is `Gateway.networking.istio.io`.
    pub fn report_name(self) -> &'static str {
        match self {
            Optional::IstioGateway => "Gateway.networking.istio.io",
            _ => self.kind(),
        }
    }

    pub fn group(self) -> &'static str {
        match self {
            Optional::DnsEndpoint => "externaldns.k8s.io",
            Optional::IstioGateway | Optional::VirtualService => "networking.istio.io",
            Optional::XListenerSet => X_GATEWAY_GROUP,
            _ => GATEWAY_GROUP,
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Optional::Gateway => "gateways",
            Optional::HttpRoute => "httproutes",
            Optional::GrpcRoute => "grpcroutes",
            Optional::TlsRoute => "tlsroutes",
            Optional::DnsEndpoint => "dnsendpoints",
            Optional::IstioGateway => "gateways",
            Optional::VirtualService => "virtualservices",
            Optional::ListenerSet => "listenersets",
            Optional::XListenerSet => "xlistenersets",
        }
    }

    /// The versions fedns reads, best first: the fields it reads are the same in each.
    pub fn versions(self) -> &'static [&'static str] {
        match self {
            Optional::Gateway | Optional::HttpRoute => &["v1", "v1beta1"],
            Optional::GrpcRoute => &["v1"],
            Optional::TlsRoute => &["v1", "v1alpha3", "v1alpha2"],
            Optional::DnsEndpoint => &["v1alpha1"],
            Optional::IstioGateway | Optional::VirtualService => &["v1", "v1beta1", "v1alpha3"],
            Optional::ListenerSet => &["v1"],
            Optional::XListenerSet => &["v1alpha1"],
        }
    }

    /// The kind at a version, for a dynamic API.
    pub fn api_resource(self, version: &str) -> ApiResource {
        ApiResource {
            group: self.group().to_owned(),
            version: version.to_owned(),
            api_version: format!("{}/{version}", self.group()),
            kind: self.kind().to_owned(),
            plural: self.plural().to_owned(),
        }
    }
}

pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
/// The Gateway API's experimental group, where ListenerSet was `XListenerSet`.
pub const X_GATEWAY_GROUP: &str = "gateway.networking.x-k8s.io";

/// Asks the cluster which optional kinds it serves, and at which version. An error (the
/// API is down, or discovery is forbidden) is returned as it is: the caller keeps what
/// it knew.
pub async fn discover(client: &Client) -> Result<BTreeMap<Optional, KindState>, kube::Error> {
    let groups = client.list_api_groups().await?;
    let mut out = BTreeMap::new();
    // Each group version's resources, asked once.
    let mut resources: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for kind in Optional::ALL {
        let versions = served_versions(&groups, kind.group());
        let mut found = Vec::new();
        for v in &versions {
            let gv = format!("{}/{v}", kind.group());
            if !resources.contains_key(&gv) {
                let names = match client.list_api_group_resources(&gv).await {
                    Ok(list) => list.resources.into_iter().map(|r| r.name).collect(),
                    // A version listed in the group but gone by now (a CRD being changed).
                    Err(kube::Error::Api(s)) if s.code == 404 => Vec::new(),
                    Err(e) => return Err(e),
                };
                resources.insert(gv.clone(), names);
            }
            if resources[&gv].iter().any(|r| r == kind.plural()) {
                found.push(v.clone());
            }
        }
        out.insert(kind, choose(kind, &found));
    }
    Ok(out)
}

/// The versions a group serves, per the group list (none when the group is absent).
fn served_versions(groups: &APIGroupList, group: &str) -> Vec<String> {
    groups
        .groups
        .iter()
        .find(|g| g.name == group)
        .map(|g| g.versions.iter().map(|v| v.version.clone()).collect())
        .unwrap_or_default()
}

/// The best version fedns reads among those the kind is served at.
fn choose(kind: Optional, served: &[String]) -> KindState {
    if served.is_empty() {
        return KindState::Missing;
    }
    kind.versions()
        .iter()
        .find(|v| served.iter().any(|s| s == *v))
        .map_or_else(
            || KindState::UnknownVersions(served.to_vec()),
            |v| KindState::Watched((*v).to_owned()),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn the_best_known_version_is_chosen() {
        assert_eq!(choose(Optional::TlsRoute, &[]), KindState::Missing);
        assert_eq!(
            choose(Optional::TlsRoute, &s(&["v1alpha2", "v1alpha3"])),
            KindState::Watched("v1alpha3".into())
        );
        assert_eq!(
            choose(Optional::HttpRoute, &s(&["v1beta1", "v1"])),
            KindState::Watched("v1".into())
        );
        assert_eq!(
            choose(Optional::Gateway, &s(&["v2alpha1"])),
            KindState::UnknownVersions(s(&["v2alpha1"]))
        );
    }
}
