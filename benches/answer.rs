//! Micro-benchmarks of the query path on the embedded demo federation.
//!
//! Run: `cargo bench --bench answer` (see benches/README.md). Group and bench names are
//! kept stable so that figures stay comparable over time.

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use criterion::{Criterion, criterion_group, criterion_main};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};

use fedns::answer::{Client, Question};
use fedns::app::LoadedConfig;
use fedns::dns::Worker;
use fedns::metrics::Transport;
use fedns::snapshot::{Published, Snapshot};
use fedns::store::Store;
use fedns_testkit::dns::raw_query;

/// A geo-routed name of the demo (`app` in namespace `default`, policy nearest).
const GEO_NAME: &str = "app.default.myfed.svc.fed.example.com.";
/// An ECS subnet the demo GeoIP database places in Tokyo.
const ECS_NET: &str = "198.18.2.0/24";

/// The demo config and the store filled from its static endpoints.
fn demo() -> (LoadedConfig, Store) {
    let loaded = LoadedConfig::demo().unwrap();
    let store = Store::with_static(fedns::sources::static_services::endpoints(&loaded.config));
    (loaded, store)
}

/// Raw bytes to raw reply, as a UDP worker does: `query_path` with the worker's answer
/// cache warm (the steady state: a hash lookup and a copy), `query_path_cold` with a fresh
/// worker every time (parse, locate, decide, encode the template, write the reply), and
/// `query_path_general` for the hickory path that errors and odd queries take.
fn query_path(c: &mut Criterion, published: &Published) {
    let handler = fedns_testkit::handler::handler(published.clone());
    let src: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let cases = [
        ("geo_ecs", raw_query(GEO_NAME, RecordType::A, Some(ECS_NET))),
        // No ECS: 127.0.0.1 is placed by the demo's `networks` override.
        ("geo_no_ecs", raw_query(GEO_NAME, RecordType::A, None)),
        (
            "static",
            raw_query("status.fed.example.com.", RecordType::TXT, None),
        ),
        (
            "nxdomain",
            raw_query("nothing.fed.example.com.", RecordType::A, None),
        ),
    ];
    let mut warm = c.benchmark_group("query_path");
    for (name, bytes) in &cases {
        // A reply must come out, or the bench measures an error path.
        assert!(handler.respond_once(bytes, src, Transport::Udp).is_some());
        let mut worker = Worker::default();
        let mut out = Vec::with_capacity(1232);
        warm.bench_function(*name, |b| {
            b.iter(|| handler.respond(&mut worker, black_box(bytes), src, Transport::Udp, &mut out))
        });
    }
    // Many clients: each query a different ECS /24 of the demo database, so the cache
    // is hit per GeoIP record, not per client.
    let spread: Vec<Vec<u8>> = (0..=255u8)
        .map(|i| raw_query(GEO_NAME, RecordType::A, Some(&format!("198.18.{i}.0/24"))))
        .collect();
    let mut worker = Worker::default();
    let mut out = Vec::with_capacity(1232);
    let mut i = 0;
    warm.bench_function("geo_ecs_256_subnets", |b| {
        b.iter(|| {
            i = (i + 1) % spread.len();
            handler.respond(&mut worker, &spread[i], src, Transport::Udp, &mut out)
        })
    });
    warm.finish();
    let mut cold = c.benchmark_group("query_path_cold");
    for (name, bytes) in &cases {
        let mut out = Vec::with_capacity(1232);
        cold.bench_function(*name, |b| {
            b.iter(|| {
                handler.respond(
                    &mut Worker::default(),
                    black_box(bytes),
                    src,
                    Transport::Udp,
                    &mut out,
                )
            })
        });
    }
    cold.finish();
    // The general path: hickory parses and encodes. A CHAOS-class query goes there.
    let mut general = c.benchmark_group("query_path_general");
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
    let mut q = Query::query(Name::from_ascii("version.bind.").unwrap(), RecordType::TXT);
    q.set_query_class(DNSClass::CH);
    m.add_query(q);
    let chaos = m.to_vec().unwrap();
    assert!(handler.respond_once(&chaos, src, Transport::Udp).is_some());
    let mut worker = Worker::default();
    let mut out = Vec::with_capacity(1232);
    general.bench_function("chaos", |b| {
        b.iter(|| {
            handler.respond(
                &mut worker,
                black_box(&chaos),
                src,
                Transport::Udp,
                &mut out,
            )
        })
    });
    general.finish();
}

/// The pure answer function alone, on a pre-parsed name.
fn answer_fn(c: &mut Criterion, snap: &Snapshot) {
    let name = Name::from_ascii(GEO_NAME).unwrap();
    let question = Question {
        name: &name,
        qtype: RecordType::A,
        qclass: DNSClass::IN,
    };
    let client = Client {
        source: "127.0.0.1".parse().unwrap(),
        ecs: Some(ECS_NET.parse().unwrap()),
    };
    let mut group = c.benchmark_group("answer_fn");
    group.bench_function("geo_ecs", |b| {
        b.iter(|| black_box(fedns::answer::answer(snap, &question, &client, false)))
    });
    group.finish();
}

/// GeoIP database lookup, and the locator (overrides, then GeoIP) on top of it.
fn geoip(c: &mut Criterion, snap: &Snapshot) {
    let ip: IpAddr = "198.18.2.53".parse().unwrap();
    let db = snap.locator.geoip().expect("the demo has a GeoIP database");
    let mut group = c.benchmark_group("geoip");
    group.bench_function("lookup", |b| b.iter(|| black_box(db.lookup(black_box(ip)))));
    group.bench_function("locate", |b| {
        b.iter(|| black_box(snap.locator.locate(black_box(ip))))
    });
    group.finish();
}

/// Building a snapshot of the demo from config and store (done on every store change).
fn snapshot(c: &mut Criterion, loaded: &LoadedConfig, store: &Store) {
    let mut group = c.benchmark_group("snapshot");
    group.bench_function("build_demo", |b| {
        b.iter(|| black_box(loaded.snapshot(store, &Default::default(), None).unwrap()))
    });
    group.finish();
}

/// A health flip at 100,000 names (the demo's 5 clusters × 20,000 Services, one address
/// each): `full` is what every flip cost before (a full rebuild, as a reload still does),
/// `names_behind_it` what a flip of this replica's own probe costs now (find the names
/// whose endpoints have the address, rebuild those).
fn health_flip(c: &mut Criterion) {
    let loaded = LoadedConfig::demo().unwrap();
    let clusters: Vec<String> = loaded
        .config
        .clusters
        .iter()
        .map(|c| c.value.name.clone())
        .collect();
    let per_cluster = 100_000 / clusters.len();
    // Kubernetes objects, as in a large federation: the store indexes them by name.
    let store = Store::default();
    fedns_testkit::server::kube_services(&store, &clusters, per_cluster as u32, |ci, i| {
        format!("svc{ci}-{i}")
    });
    let healthy = |_: &fedns::store::Endpoint, _: IpAddr| fedns::health::Health::Healthy;
    let build = |store: &Store| loaded.snapshot_with(store, &healthy).unwrap();
    let snap = build(&store);
    assert!(snap.services.len() >= 100_000, "{}", snap.services.len());
    store.take_dirty();
    let flipped: IpAddr = [10, 0, 0, 7].into();
    let mut group = c.benchmark_group("health_flip_100k");
    group.sample_size(10);
    group.bench_function("full", |b| b.iter(|| black_box(build(&store))));
    group.bench_function("names_behind_it", |b| {
        b.iter(|| {
            store.rebuild_names_using([flipped]);
            let dirty = store.take_dirty();
            assert_eq!(dirty.names.len(), 1);
            let health = |_: &fedns::store::Endpoint, _: IpAddr| fedns::health::Health::Unhealthy;
            black_box(snap.update(&dirty.names, &store.contents(), &health))
        })
    });
    // Another replica's Lease says the target is down, then up again: the fleet works out
    // which targets' votes moved, and only the names behind them are rebuilt.
    let fleet = fedns::fleet::Fleet::new("r1");
    let key = format!("tcp:{flipped}:443");
    let mut renewed = std::time::SystemTime::now();
    let mut down = false;
    let view = |renewed, down: bool| fedns::fleet::ReplicaView {
        name: "r2".into(),
        region: None,
        via: "us-east".into(),
        renewed,
        duration: std::time::Duration::from_secs(3600),
        probed: 100_000,
        targets_digest: "too many to list".into(),
        probed_keys: None,
        down: if down {
            [key.clone()].into()
        } else {
            Default::default()
        },
        config_digest: String::new(),
        geoip_digest: String::new(),
        version: String::new(),
    };
    fleet.observe(view(renewed, down));
    group.bench_function("vote_moves_one_target", |b| {
        b.iter(|| {
            renewed += std::time::Duration::from_millis(1);
            down = !down;
            let moved = fleet.observe(view(renewed, down));
            fedns::health::quorum::rebuild_moved(&store, moved);
            let dirty = store.take_dirty();
            assert_eq!((dirty.full, dirty.names.len()), (false, 1));
            let health = |_: &fedns::store::Endpoint, _: IpAddr| fedns::health::Health::Unhealthy;
            black_box(snap.update(&dirty.names, &store.contents(), &health))
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let (loaded, store) = demo();
    let snap = loaded.snapshot(&store, &Default::default(), None).unwrap();
    let published: Published = Arc::new(ArcSwap::from_pointee(snap));
    query_path(c, &published);
    // The same snapshot the handler reads, for the benches below the handler.
    let snap = published.load_full();
    answer_fn(c, &snap);
    geoip(c, &snap);
    snapshot(c, &loaded, &store);
    health_flip(c);
}

criterion_group!(benches_group, benches);
criterion_main!(benches_group);
