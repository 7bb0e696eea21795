//! The static source: the `services:` each cluster declares in the config, for clusters or
//! endpoints outside Kubernetes.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::store::{Endpoint, ObjectKind, Settings};

/// The static source: services declared in the config, per cluster.
pub fn endpoints(config: &Config) -> BTreeMap<String, Vec<Endpoint>> {
    config
        .clusters
        .iter()
        .map(|c| {
            let c = &c.value;
            let endpoints = c
                .services
                .iter()
                .map(|s| {
                    let s = &s.value;
                    Endpoint {
                        kind: ObjectKind::Static,
                        namespace: s.namespace.to_ascii_lowercase(),
                        name: s.name.to_ascii_lowercase(),
                        federated_name: true,
                        hosts: s
                            .hosts
                            .iter()
                            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
                            .collect(),
                        addresses: s.addresses.clone(),
                        hostname: s.hostname.clone(),
                        port: s.port,
                        ready: true,
                        ready_endpoints: None,
                        settings: Settings {
                            probe: s.probe,
                            probe_path: s.probe_path.clone(),
                            probe_port: s.probe_port,
                            probe_expect: s.probe_status,
                            ..Settings::default()
                        },
                    }
                })
                .collect();
            (c.name.clone(), endpoints)
        })
        .collect()
}
