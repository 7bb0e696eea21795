//! ExternalDNS's `DNSEndpoint` (`externaldns.k8s.io/v1alpha1`): each cluster's
//! `spec.endpoints[]` (`dnsName`, `recordType` A, AAAA or CNAME, `targets`, `recordTTL`)
//! contribute that cluster's targets to one federated name per `dnsName`, answered by geo
//! and health like any other. This is how KubeFed published federated DNS, and it lets a
//! team federate names that are not Kubernetes load balancers. Other record types, names
//! outside the zone and wildcards are skipped, logged.

use std::net::IpAddr;

use kube::ResourceExt;
use kube::api::DynamicObject;
use serde::Deserialize;
use tracing::{debug, warn};

use super::convert::{ConvertCtx, annotations, fields, host_name, what};
use crate::config::in_zone;
use crate::store::Settings;

/// One name of a DNSEndpoint: its A and AAAA targets, or the first CNAME target.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct DnsName {
    pub(super) name: String,
    pub(super) addresses: Vec<IpAddr>,
    pub(super) hostname: Option<String>,
    /// The lowest `recordTTL` of its entries.
    pub(super) ttl: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Doc {
    spec: Spec,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Spec {
    endpoints: Vec<EntryDoc>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct EntryDoc {
    dns_name: String,
    record_type: String,
    targets: Vec<String>,
    #[serde(rename = "recordTTL")]
    record_ttl: Option<i64>,
}

/// The names of a DNSEndpoint, and the settings its annotations give; None when it has
/// no name fedns serves.
pub(super) fn names(o: &DynamicObject, ctx: &ConvertCtx) -> Option<(Vec<DnsName>, Settings)> {
    let what = what("dnsendpoint", o);
    let doc: Doc = fields(o, &what, ctx)?;
    let (settings, _, exclude, _) = annotations(o.annotations(), &what, ctx);
    if exclude {
        return None;
    }
    let mut names: Vec<DnsName> = Vec::new();
    for (i, e) in doc.spec.endpoints.iter().enumerate() {
        let name = host_name(&e.dns_name);
        let skip = |why: &str| {
            debug!(
                cluster = ctx.cluster,
                object = what,
                entry = i,
                dns_name = name,
                record_type = e.record_type,
                "{why}: entry skipped"
            )
        };
        if name.starts_with("*.") {
            skip("wildcard names are not served");
            continue;
        }
        if !in_zone(&name, &ctx.zone) {
            skip("outside the zone");
            continue;
        }
        let at = match names.iter().position(|n| n.name == name) {
            Some(at) => at,
            None => {
                names.push(DnsName {
                    name: name.clone(),
                    addresses: Vec::new(),
                    hostname: None,
                    ttl: None,
                });
                names.len() - 1
            }
        };
        let entry = &mut names[at];
        match e.record_type.as_str() {
            "A" | "AAAA" => {
                for t in &e.targets {
                    match t.parse::<IpAddr>() {
                        Ok(ip) if ip.is_ipv4() == (e.record_type == "A") => {
                            entry.addresses.push(ip)
                        }
                        _ => warn!(
                            cluster = ctx.cluster,
                            object = what,
                            entry = i,
                            target = t,
                            "not an {} address; target ignored",
                            if e.record_type == "A" { "IPv4" } else { "IPv6" }
                        ),
                    }
                }
            }
            "CNAME" => {
                if entry.hostname.is_none() {
                    entry.hostname = e.targets.first().map(|t| host_name(t));
                }
            }
            _ => {
                skip("only A, AAAA and CNAME are served");
                continue;
            }
        }
        if let Some(ttl) = e
            .record_ttl
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
        {
            entry.ttl = Some(entry.ttl.map_or(ttl, |old| old.min(ttl)));
        }
    }
    names.retain(|n| !n.addresses.is_empty() || n.hostname.is_some());
    if names.is_empty() {
        return None;
    }
    Some((names, settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_become_names() {
        let o: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "externaldns.k8s.io/v1alpha1", "kind": "DNSEndpoint",
            "metadata": {"name": "e", "namespace": "default"},
            "spec": {"endpoints": [
                {"dnsName": "App.fed.example.com.", "recordType": "A", "targets": ["192.0.2.1", "2001:db8::1"], "recordTTL": 60},
                {"dnsName": "app.fed.example.com", "recordType": "AAAA", "targets": ["2001:db8::1"], "recordTTL": 30},
                {"dnsName": "alias.fed.example.com", "recordType": "CNAME", "targets": ["lb.example.net."]},
                {"dnsName": "txt.fed.example.com", "recordType": "TXT", "targets": ["hello"]},
                {"dnsName": "app.example.org", "recordType": "A", "targets": ["192.0.2.2"]},
                {"dnsName": "*.fed.example.com", "recordType": "A", "targets": ["192.0.2.3"]},
            ]},
        }))
        .unwrap();
        let ctx = ConvertCtx {
            cluster: "c".into(),
            zone: "fed.example.com".into(),
        };
        let (names, _) = names(&o, &ctx).expect("names");
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(names[0].name, "app.fed.example.com");
        // The IPv6 address under A is not an A target; the AAAA entry brings it.
        assert_eq!(names[0].addresses.len(), 2);
        assert_eq!(names[0].ttl, Some(30));
        assert_eq!(names[1].hostname.as_deref(), Some("lb.example.net"));
    }
}
