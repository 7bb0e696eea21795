//! Incremental snapshot updates: after any sequence of object changes, the snapshot built by
//! `update` (only changed names rebuilt) equals a full `build` from the same store.

use std::collections::BTreeMap;

use fedns::health::Health;
use fedns::snapshot::Snapshot;
use fedns::store::{Endpoint, ObjectKind, Settings, Store};

fn endpoint(
    kind: ObjectKind,
    ns: &str,
    name: &str,
    ip: &str,
    hosts: &[&str],
    ready: bool,
) -> Endpoint {
    Endpoint {
        kind,
        namespace: ns.into(),
        name: name.into(),
        federated_name: kind == ObjectKind::Service,
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        addresses: vec![ip.parse().unwrap()],
        hostname: None,
        port: Some(443),
        ready,
        ready_endpoints: None,
        settings: Settings::default(),
    }
}

/// Everything name-related in a snapshot, in a comparable form.
fn shape(s: &Snapshot) -> String {
    let services: BTreeMap<_, _> = s
        .services
        .iter()
        .map(|(k, v)| (k.clone(), format!("{v:?}")))
        .collect();
    let hosts: BTreeMap<_, _> = s
        .hosts
        .iter()
        .map(|(k, v)| (k.to_string(), format!("{v:?}")))
        .collect();
    let ns: BTreeMap<_, _> = s.namespaces.iter().map(|(k, v)| (k.clone(), *v)).collect();
    let anc: BTreeMap<_, _> = s
        .host_ancestors
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    let stale: Vec<bool> = s.clusters.iter().map(|c| c.stale).collect();
    format!("{services:#?}\n{hosts:#?}\n{ns:?}\n{anc:?}\n{stale:?}")
}

#[test]
fn incremental_updates_equal_full_builds() {
    let loaded = fedns_testkit::server::load(fedns_testkit::server::CONFIG);
    let store = Store::with_static(fedns::sources::static_services::endpoints(&loaded.config));
    let health = |_: &fedns::store::Endpoint, _: std::net::IpAddr| Health::Healthy;
    let build = |store: &Store| loaded.snapshot_with(store, &health).unwrap();
    let mut snap = build(&store);
    store.take_dirty();
    // A deterministic pseudo-random sequence of changes across two clusters.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for step in 0..400 {
        let cluster = ["us-east", "eu-west"][next(2) as usize];
        let ns = ["default", "shop", "team-a"][next(3) as usize];
        let name = format!("s{}", next(8));
        let kind = if next(4) == 0 {
            ObjectKind::Ingress
        } else {
            ObjectKind::Service
        };
        let key = (kind, ns.to_owned(), name.clone());
        let change = match next(3) {
            0 => None,
            _ => {
                let host = format!("h{}.x.fed.example.com", next(3));
                let hosts: Vec<&str> = if next(2) == 0 {
                    vec![host.as_str()]
                } else {
                    vec![]
                };
                let ip = format!("192.0.2.{}", next(250));
                Some(endpoint(kind, ns, &name, &ip, &hosts, next(5) != 0))
            }
        };
        let stale = next(10) == 0;
        store.update_kube(cluster, vec![(key, change)], false, |k| k.stale = stale);
        let dirty = store.take_dirty();
        assert!(
            !dirty.full,
            "object changes must not ask for a full rebuild"
        );
        snap = snap.update(&dirty.names, &store.contents(), &health);
        let full = build(&store);
        assert_eq!(shape(&snap), shape(&full), "after step {step}");
        // Empty non-terminals agree too.
        for n in [
            "x.fed.example.com.",
            "team-a.myfed.svc.fed.example.com.",
            "shop.myfed.svc.us-east-1.fed.example.com.",
        ] {
            let lower =
                hickory_proto::rr::LowerName::new(&hickory_proto::rr::Name::from_ascii(n).unwrap());
            assert_eq!(
                snap.is_empty_non_terminal(&lower),
                full.is_empty_non_terminal(&lower),
                "{n} after step {step}"
            );
        }
    }
}
