//! Micro-benchmarks of the query path on the embedded demo federation.
//!
//! Run: `cargo bench --bench answer` (see benches/README.md). Group and bench names are
//! kept stable so that figures stay comparable over time.

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use criterion::{Criterion, criterion_group, criterion_main};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;
use ipnet::IpNet;

use fedns::answer::{Client, Question};
use fedns::app::Loaded;
use fedns::dns::Handler;
use fedns::snapshot::{Published, Snapshot};
use fedns::store::Store;

/// A geo-routed name of the demo (`app` in namespace `default`, policy nearest).
const GEO_NAME: &str = "app.default.myfed.svc.fed.example.com.";
/// An ECS subnet the demo GeoIP database places in Tokyo.
const ECS_NET: &str = "198.18.2.0/24";

/// The demo config and the store filled from its static endpoints.
fn demo() -> (Loaded, Store) {
    let loaded = Loaded::demo().unwrap();
    let store = Store::from_config(&loaded.config);
    (loaded, store)
}

/// A raw query as a client sends it: EDNS with a 1232-byte buffer, ECS when given.
fn raw_query(name: &str, qtype: RecordType, ecs: Option<&str>) -> Vec<u8> {
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    if let Some(net) = ecs {
        let net: IpNet = net.parse().unwrap();
        edns.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::from(net)));
    }
    m.set_edns(edns);
    m.to_vec().unwrap()
}

/// Parse, decide and encode, from raw bytes to raw bytes, as the UDP listener does.
fn query_path(c: &mut Criterion, published: &Published) {
    let handler = Handler::new(published.clone(), Default::default(), false);
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
    let mut group = c.benchmark_group("query_path");
    for (name, bytes) in cases {
        // A reply must come out, or the bench measures an error path.
        let request = Request::from_bytes(bytes.clone(), src, Protocol::Udp).unwrap();
        assert!(!handler.reply_bytes(&request).unwrap().is_empty());
        group.bench_function(name, |b| {
            b.iter(|| {
                let request = Request::from_bytes(bytes.clone(), src, Protocol::Udp).unwrap();
                black_box(handler.reply_bytes(&request))
            })
        });
    }
    group.finish();
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
        b.iter(|| black_box(snap.locator.locate(black_box(ip), &snap.clusters)))
    });
    group.finish();
}

/// Building a snapshot of the demo from config and store (done on every store change).
fn snapshot(c: &mut Criterion, loaded: &Loaded, store: &Store) {
    let mut group = c.benchmark_group("snapshot");
    group.bench_function("build_demo", |b| {
        b.iter(|| black_box(loaded.snapshot(store, &Default::default()).unwrap()))
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let (loaded, store) = demo();
    let snap = loaded.snapshot(&store, &Default::default()).unwrap();
    let published: Published = Arc::new(ArcSwap::from_pointee(snap));
    query_path(c, &published);
    // The same snapshot the handler reads, for the benches below the handler.
    let snap = published.load_full();
    answer_fn(c, &snap);
    geoip(c, &snap);
    snapshot(c, &loaded, &store);
}

criterion_group!(benches_group, benches);
criterion_main!(benches_group);
