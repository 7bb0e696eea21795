//! The annotations that tune an object (`fedns.io/...` and ExternalDNS's), read the same
//! for every kind, and what conversions need to know. Bad values are logged with the
//! cluster and object, and ignored.

use std::collections::BTreeMap;
use std::net::IpAddr;

use kube::ResourceExt;
use kube::api::DynamicObject;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use crate::config::{GeoKey, PolicyKind, ProbeKind, in_zone};
use crate::store::Settings;

/// Annotations that tune a Service or Ingress: `fedns.io/policy`, `fedns.io/count`,
/// `fedns.io/failover-order` (with orders per geography: `us-east, eu-west;
/// continent:EU=eu-west, us-east`), `fedns.io/weight` (a number or `ready-endpoints`),
/// `fedns.io/bias`, `fedns.io/spill-below`, `fedns.io/hosts`, `fedns.io/exclude`,
/// `fedns.io/probe` (tcp, http, https, none), `fedns.io/probe-path`, `fedns.io/probe-port`,
/// `fedns.io/probe-status`, `fedns.io/min-ready`, `fedns.io/min-healthy-addresses`.
pub const ANNOTATION_PREFIX: &str = "fedns.io/";

/// An object as logs name it: `gateway infra/gw`.
pub(super) fn what(kind: &str, o: &impl ResourceExt) -> String {
    format!(
        "{kind} {}/{}",
        o.namespace().unwrap_or_default(),
        o.name_any()
    )
}

/// A host name as fedns keeps it: lowercase, no final dot.
pub(super) fn host_name(h: &str) -> String {
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// The fields of a dynamic object (a CRD's) that fedns reads, or None when they cannot be
/// read as `T`: logged with the cluster and object, which is then not served.
pub(super) fn fields<T: DeserializeOwned>(
    o: &DynamicObject,
    what: &str,
    ctx: &ConvertCtx,
) -> Option<T> {
    match T::deserialize(&o.data) {
        Ok(d) => Some(d),
        Err(e) => {
            warn!(cluster = ctx.cluster, object = what, error = %e, "object not readable; ignored");
            None
        }
    }
}

/// namespace/name
pub(super) type Key = (String, String);

/// What conversions need to know.
pub(super) struct ConvertCtx {
    pub(super) cluster: String,
    pub(super) zone: String,
}

/// ExternalDNS's annotation prefixes, the current one and the old one: `hostname`,
/// `target` and `ttl` are read under both, so that objects already annotated for
/// ExternalDNS get their fedns names unchanged. fedns's own annotations win.
pub const EXTERNAL_DNS_PREFIXES: [&str; 2] = [
    "external-dns.kubernetes.io/",
    "external-dns.alpha.kubernetes.io/",
];

/// What ExternalDNS's annotations of an object say.
#[derive(Debug, Default, PartialEq)]
pub(super) struct ExternalDns {
    /// Extra names (`hostname`), inside the zone.
    pub(super) hosts: Vec<String>,
    /// Addresses to publish instead of the load balancer's (`target`).
    pub(super) targets: Vec<IpAddr>,
    /// A host name to publish instead (a `target` that is not an address): a CNAME.
    pub(super) target_host: Option<String>,
}

impl ExternalDns {
    /// The load-balancer addresses and host name to publish: the targets when set, else
    /// the object's status.
    pub(super) fn targets(
        &self,
        status: (Vec<IpAddr>, Option<String>),
    ) -> (Vec<IpAddr>, Option<String>) {
        if self.targets.is_empty() && self.target_host.is_none() {
            status
        } else {
            (self.targets.clone(), self.target_host.clone())
        }
    }
}

/// Reads ExternalDNS's annotations (both prefixes; the current one wins).
fn external_dns(
    a: &BTreeMap<String, String>,
    what: &str,
    ctx: &ConvertCtx,
    settings: &mut Settings,
) -> ExternalDns {
    let mut ext = ExternalDns::default();
    let get = |key: &str| {
        EXTERNAL_DNS_PREFIXES.iter().find_map(|p| {
            a.get(&format!("{p}{key}"))
                .map(|v| (format!("{p}{key}"), v.trim()))
        })
    };
    let bad = |k: &str, v: &str, why: &str| {
        warn!(
            cluster = ctx.cluster,
            object = what,
            annotation = k,
            value = v,
            "{why}; annotation ignored"
        )
    };
    if let Some((k, v)) = get("hostname") {
        for h in v
            .split(',')
            .map(|h| host_name(h.trim()))
            .filter(|h| !h.is_empty())
        {
            if in_zone(&h, &ctx.zone) {
                ext.hosts.push(h);
            } else {
                debug!(
                    cluster = ctx.cluster,
                    object = what,
                    annotation = k,
                    host = h,
                    "ExternalDNS host outside the zone: not fedns's"
                );
            }
        }
    }
    if let Some((k, v)) = get("target") {
        for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match t.parse::<IpAddr>() {
                Ok(ip) => ext.targets.push(ip),
                Err(_) if hickory_proto::rr::Name::from_ascii(t).is_ok() => {
                    if ext.target_host.is_none() {
                        ext.target_host = Some(host_name(t));
                    }
                }
                Err(_) => bad(&k, t, "not an address or a host name"),
            }
        }
    }
    if let Some((k, v)) = get("ttl") {
        match crate::config::parse_duration(v).map(|d| d.as_secs()) {
            Some(s) if (1..=i32::MAX as u64).contains(&s) => settings.ttl = Some(s as u32),
            _ => bad(&k, v, "expected a TTL in seconds (60) or a duration (1m)"),
        }
    }
    ext
}

/// Reads `fedns.io/...` annotations, then ExternalDNS's (`hostname`, `target`, `ttl`,
/// where fedns's own do not say otherwise). A bad value is logged with the object it is
/// on and ignored; the object is still served.
pub(super) fn annotations(
    a: &BTreeMap<String, String>,
    what: &str,
    ctx: &ConvertCtx,
) -> (Settings, Vec<String>, bool, ExternalDns) {
    let (mut settings, hosts, exclude) = fedns_annotations(a, what, ctx);
    let mut ext = external_dns(a, what, ctx, &mut settings);
    let fedns_hosts = a.contains_key(&format!("{ANNOTATION_PREFIX}hosts"));
    let hosts = if fedns_hosts {
        ext.hosts.clear();
        hosts
    } else {
        std::mem::take(&mut ext.hosts)
    };
    (settings, hosts, exclude, ext)
}

fn fedns_annotations(
    a: &BTreeMap<String, String>,
    what: &str,
    ctx: &ConvertCtx,
) -> (Settings, Vec<String>, bool) {
    let mut settings = Settings::default();
    let mut hosts = Vec::new();
    let mut exclude = false;
    for (k, v) in a {
        let Some(name) = k.strip_prefix(ANNOTATION_PREFIX) else {
            continue;
        };
        let v = v.trim();
        let bad = |why: &str| {
            warn!(
                cluster = ctx.cluster,
                object = what,
                annotation = k.as_str(),
                value = v,
                "{why}; annotation ignored"
            )
        };
        match name {
            "policy" => match v {
                "nearest" => settings.policy = Some(PolicyKind::Nearest),
                "failover" => settings.policy = Some(PolicyKind::Failover),
                "weighted" => settings.policy = Some(PolicyKind::Weighted),
                "all" => settings.policy = Some(PolicyKind::All),
                _ => bad("expected nearest, failover, weighted or all"),
            },
            "count" => match v.parse::<u32>() {
                Ok(n) if n > 0 => settings.count = Some(n),
                _ => bad("expected a whole number above 0"),
            },
            "weight" if v == "ready-endpoints" => settings.weight_ready = true,
            "weight" => match v.parse::<u32>() {
                Ok(n) => settings.weight = Some(n),
                _ => bad("expected a whole number or ready-endpoints"),
            },
            "failover-order" => {
                // `us-east, eu-west; continent:EU=eu-west, us-east; country:DE=...`
                let list = |l: &str| -> Vec<String> {
                    l.split(',')
                        .map(|c| c.trim().to_owned())
                        .filter(|c| !c.is_empty())
                        .collect()
                };
                for part in v.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                    match part.split_once('=') {
                        None => settings.order = list(part),
                        Some((key, order)) => match key.trim().parse::<GeoKey>() {
                            Ok(k) => settings.orders.push((k, list(order))),
                            Err(e) => bad(&e),
                        },
                    }
                }
            }
            "bias" => match v.parse::<i8>() {
                Ok(b) if (-99..=99).contains(&b) => settings.bias = Some(b),
                _ => bad("expected a whole number from -99 to 99"),
            },
            "spill-below" => match v.parse::<u32>() {
                Ok(n) if n > 0 => settings.spill_below = Some(n),
                _ => bad("expected a whole number above 0"),
            },
            "hosts" => {
                for h in v.split(',').map(|h| host_name(h.trim())) {
                    if h.is_empty() {
                        continue;
                    }
                    if in_zone(&h, &ctx.zone) {
                        hosts.push(h);
                    } else {
                        bad("host outside the zone");
                    }
                }
            }
            "exclude" => exclude = v == "true",
            "probe" => match v {
                "tcp" => settings.probe = Some(ProbeKind::Tcp),
                "http" => settings.probe = Some(ProbeKind::Http),
                "https" => settings.probe = Some(ProbeKind::Https),
                "none" => settings.probe = Some(ProbeKind::None),
                _ => bad("expected tcp, http, https or none"),
            },
            "probe-path" if v.starts_with('/') => settings.probe_path = Some(v.to_owned()),
            "probe-path" => bad("expected a path starting with /"),
            "probe-port" => match v.parse::<u16>() {
                Ok(p) if p > 0 => settings.probe_port = Some(p),
                _ => bad("expected a port number"),
            },
            "probe-status" => match v.parse::<u16>() {
                Ok(c) if (100..600).contains(&c) => settings.probe_expect = Some(c),
                _ => bad("expected an HTTP status code"),
            },
            "min-ready" => match v.parse::<u32>() {
                Ok(n) if n > 0 => settings.min_ready = Some(n),
                _ => bad("expected a whole number above 0"),
            },
            "min-healthy-addresses" => match v.parse::<u32>() {
                Ok(n) if n > 0 => settings.min_healthy_addresses = Some(n),
                _ => bad("expected a whole number above 0"),
            },
            _ => bad("unknown fedns.io annotation"),
        }
    }
    (settings, hosts, exclude)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_annotations_are_ignored() {
        let ctx = ConvertCtx {
            cluster: "c".into(),
            zone: "fed.example.com".into(),
        };
        let a: BTreeMap<String, String> = [
            ("fedns.io/policy", "closest"),
            ("fedns.io/weight", "3"),
            ("fedns.io/hosts", "www.fed.example.com, evil.example.org"),
            ("fedns.io/failover-order", "us-east, eu-west"),
            ("other.io/x", "y"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let (s, hosts, exclude, _) = annotations(&a, "service default/a", &ctx);
        assert_eq!(s.policy, None);
        assert_eq!(s.weight, Some(3));
        assert_eq!(s.order, ["us-east", "eu-west"]);
        assert_eq!(hosts, ["www.fed.example.com"]);
        assert!(!exclude);
    }

    #[test]
    fn steering_annotations() {
        let ctx = ConvertCtx {
            cluster: "c".into(),
            zone: "fed.example.com".into(),
        };
        let a: BTreeMap<String, String> = [
            (
                "fedns.io/failover-order",
                "us-east, eu-west; continent:EU = eu-west, eu-central, us-east; country:XX=eu-west; 10.8.0.0/14=eu-central",
            ),
            ("fedns.io/bias", "-30"),
            ("fedns.io/spill-below", "10"),
            ("fedns.io/weight", "ready-endpoints"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let (s, _, _, _) = annotations(&a, "service default/a", &ctx);
        assert_eq!(s.order, ["us-east", "eu-west"]);
        // The unknown country is dropped (and logged); the rest stands.
        let keys: Vec<String> = s.orders.iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(keys, ["continent:EU", "10.8.0.0/14"]);
        assert_eq!(s.orders[0].1, ["eu-west", "eu-central", "us-east"]);
        assert_eq!(s.bias, Some(-30));
        assert_eq!(s.spill_below, Some(10));
        assert!(s.weight_ready);
        for (k, v) in [("fedns.io/bias", "100"), ("fedns.io/spill-below", "0")] {
            let a = BTreeMap::from([(k.to_owned(), v.to_owned())]);
            let (s, _, _, _) = annotations(&a, "service default/a", &ctx);
            assert_eq!((s.bias, s.spill_below), (None, None), "{k}: {v}");
        }
    }

    fn anns(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn external_dns_annotations_under_both_prefixes() {
        let ctx = ConvertCtx {
            cluster: "c".into(),
            zone: "fed.example.com".into(),
        };
        // The old prefix alone.
        let a = anns(&[
            (
                "external-dns.alpha.kubernetes.io/hostname",
                "shop.fed.example.com, shop.example.org",
            ),
            (
                "external-dns.alpha.kubernetes.io/target",
                "192.0.2.7, 2001:db8::7",
            ),
            ("external-dns.alpha.kubernetes.io/ttl", "45"),
        ]);
        let (s, hosts, _, ext) = annotations(&a, "service default/a", &ctx);
        assert_eq!(hosts, ["shop.fed.example.com"]);
        assert_eq!(s.ttl, Some(45));
        let ips: Vec<IpAddr> = vec!["192.0.2.7".parse().unwrap(), "2001:db8::7".parse().unwrap()];
        assert_eq!(ext.targets, ips);
        // The status is replaced by the targets.
        let status = (vec!["198.51.100.1".parse().unwrap()], None);
        assert_eq!(ext.targets(status), (ips, None));
        // The current prefix wins over the old; a host-name target is a CNAME; a
        // duration TTL.
        let a = anns(&[
            ("external-dns.alpha.kubernetes.io/target", "192.0.2.7"),
            ("external-dns.kubernetes.io/target", "lb.example.net."),
            ("external-dns.kubernetes.io/ttl", "2m"),
        ]);
        let (s, _, _, ext) = annotations(&a, "service default/a", &ctx);
        assert_eq!(ext.target_host.as_deref(), Some("lb.example.net"));
        assert!(ext.targets.is_empty());
        assert_eq!(s.ttl, Some(120));
        // fedns's own hosts win over ExternalDNS's hostname; a bad TTL is ignored.
        let a = anns(&[
            ("external-dns.kubernetes.io/hostname", "a.fed.example.com"),
            ("fedns.io/hosts", "b.fed.example.com"),
            ("external-dns.kubernetes.io/ttl", "soon"),
        ]);
        let (s, hosts, _, ext) = annotations(&a, "service default/a", &ctx);
        assert_eq!(hosts, ["b.fed.example.com"]);
        assert_eq!(s.ttl, None);
        assert_eq!(
            ext.targets(status_of("198.51.100.1")),
            status_of("198.51.100.1")
        );
    }

    fn status_of(ip: &str) -> (Vec<IpAddr>, Option<String>) {
        (vec![ip.parse().unwrap()], None)
    }
}
