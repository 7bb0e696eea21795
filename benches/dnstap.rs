//! What dnstap's encoding adds to one query on the query path (the clock reads aside):
//! `Tap::record` of a static answer's event (no decision, so no `extra`) and of a geo
//! answer's (with its decision), both messages on, into a worker's buffer, and
//! `Tap::stamp` as its batch ends. The writer has no collector, so the buffers it is
//! handed (once per quarter of the queue's budget, or 50 ms) are dropped and counted.
//!
//! Run: `cargo bench --bench dnstap`. Callgrind's instructions per query (benches/peers.sh)
//! stay the figure of record; this is the quick loop for the encoder.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use fedns::dnstap::{
    Buffer, Counters, Decided, Decision, Endpoint, Event, Settings, Stamp, Tap, Transport, Words,
};
use prometheus::IntCounter;

fn record(c: &mut Criterion) {
    let counter = |n: &str| IntCounter::new(n, n).unwrap();
    let tap = Tap::start(
        Settings {
            endpoint: Endpoint::Unix("/nonexistent/fedns-bench-dnstap.sock".into()),
            identity: b"bench-host".to_vec(),
            version: b"fedns 0.1.0".to_vec(),
            queries: true,
            responses: true,
            queue: 16_384,
        },
        Counters {
            sent: counter("sent"),
            dropped: counter("dropped"),
            lost: counter("lost"),
        },
    )
    .unwrap();
    let query = [0x5au8; 66];
    let reply = [0xa5u8; 110];
    let mut buf = Buffer::serving("127.0.0.1:53".parse().unwrap());
    let geo = Decision::from(Decided {
        cluster: Some(0),
        policy: Some(0),
        scope: 24,
        ecs: true,
        located: Some(1),
        fail_open: false,
    });
    let client = "198.51.100.7:40123".parse().unwrap();
    let now = Stamp::now();
    let mut group = c.benchmark_group("dnstap_record");
    for (name, decision) in [("static", Decision::NONE), ("geo_ecs", geo)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let e = Event {
                    client: black_box(client),
                    transport: Transport::Udp,
                    query_time: black_box(now),
                    query: black_box(&query),
                    reply: Some(black_box(&reply)),
                };
                record_one(&tap, &mut buf, &e, decision);
            })
        });
    }
    group.finish();
}

/// One event and the end of its batch (the server's case below 2,000 q/s), in a
/// function of its own (`Tap::record` is inlined into its callers), so that
/// `benches/instructions.sh dnstap record_one dnstap_record/static` counts it.
#[inline(never)]
fn record_one(tap: &Tap, buf: &mut Buffer, e: &Event<'_>, decision: Decision) {
    let words = |_: Decided| Words {
        cluster: Some("us-east"),
        policy: Some("nearest"),
        located: Some("city"),
    };
    tap.record(buf, e, decision, words);
    tap.stamp(buf, e.query_time);
}

criterion_group!(benches, record);
criterion_main!(benches);
