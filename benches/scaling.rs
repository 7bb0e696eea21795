//! Scaling of the query path with threads: 1, 2, … UDP workers' worth of `Handler::respond`
//! running at the same time in one process, each thread with its own `Worker` (answer
//! cache, location memo, counters) as `src/udp.rs` gives each socket, and flushing its
//! counters into its metrics shard every 32 queries, as a worker does after each
//! `recvmmsg` batch. No sockets: the kernel's UDP work (about 90 % of a query's CPU under
//! dnsperf) scales by itself across sockets with SO_REUSEPORT; what this measures is
//! whether fedns's own part does, i.e. whether the workers slow each other down through
//! shared writes (the metrics, the snapshot's reference count, the allocator).
//!
//! Per thread count it reports the queries answered per second in all, the speed-up over
//! one thread, and the CPU time per query (each thread's own CPU clock, so a thread that
//! waits for a CPU is not charged for it): if that stays flat as threads are added, the
//! threads do not contend, and throughput grows with the cores given to them.
//!
//! Run: `cargo bench --bench scaling`. Environment: `FEDNS_SCALING_THREADS` (thread
//! counts, default "1 2 … CPUs"), `FEDNS_SCALING_SECONDS` (per run, default 3),
//! `FEDNS_SCALING_REPS` (runs per count, medians, default 3), `FEDNS_SCALING_BATCH`
//! (queries between two flushes, default 32). Only under `cargo bench`.

use std::net::SocketAddr;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use fedns::dns::{Handler, Worker};
use fedns::metrics::Transport;
use fedns_testkit::dns::raw_query;
use fedns_testkit::sys::env_usize;

/// The workloads: many clients of one geo name, and the realistic mix of benches/peers.sh
/// (geo, failover, CNAME, region, static, SOA, NXDOMAIN) from as many subnets.
fn workloads() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let geo = "app.default.myfed.svc.fed.example.com.";
    let subnets: Vec<String> = (0..=255u8).map(|i| format!("198.18.{i}.0/24")).collect();
    let geo_ecs = subnets
        .iter()
        .map(|s| raw_query(geo, RecordType::A, Some(s)))
        .collect();
    let names = [
        (geo, RecordType::A),
        (geo, RecordType::AAAA),
        ("web.default.myfed.svc.fed.example.com.", RecordType::A),
        ("checkout.shop.myfed.svc.fed.example.com.", RecordType::A),
        ("api.default.myfed.svc.fed.example.com.", RecordType::A),
        (
            "app.default.myfed.svc.us-east-1.fed.example.com.",
            RecordType::A,
        ),
        ("www.fed.example.com.", RecordType::A),
        ("status.fed.example.com.", RecordType::TXT),
        ("fed.example.com.", RecordType::SOA),
        ("nothing.fed.example.com.", RecordType::A),
    ];
    let mix = subnets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (name, qtype) = names[i % names.len()];
            raw_query(name, qtype, Some(s))
        })
        .collect();
    vec![("geo_ecs_256_subnets", geo_ecs), ("mix_256_subnets", mix)]
}

/// This thread's CPU time so far.
fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime writes one timespec, which lives on this stack.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

struct Run {
    queries: u64,
    wall: Duration,
    cpu: Duration,
}

/// `threads` workers answering `queries` in turn (each from its own offset) for `secs`.
fn run(handler: &Handler, queries: &[Vec<u8>], threads: usize, batch: usize, secs: f64) -> Run {
    let stop = AtomicBool::new(false);
    let start = Barrier::new(threads + 1);
    let src: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (stop, start) = (&stop, &start);
                scope.spawn(move || {
                    let mut w = Worker::default();
                    let mut out = Vec::with_capacity(1232);
                    let mut i = t * queries.len() / threads;
                    // Warm the cache once over every query, as a running server's is.
                    for q in queries {
                        assert!(handler.respond(&mut w, q, src, Transport::Udp, &mut out));
                    }
                    start.wait();
                    let (cpu0, mut n) = (thread_cpu(), 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        for _ in 0..batch {
                            i = (i + 1) % queries.len();
                            handler.respond(&mut w, &queries[i], src, Transport::Udp, &mut out);
                        }
                        handler.flush(&mut w, started);
                        n += batch as u64;
                    }
                    (n, thread_cpu() - cpu0)
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
        let mut total = Run {
            queries: 0,
            wall: Duration::ZERO,
            cpu: Duration::ZERO,
        };
        for w in workers {
            let (n, cpu) = w.join().unwrap();
            total.queries += n;
            total.cpu += cpu;
        }
        total.wall = t0.elapsed();
        total
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("scaling: run with `cargo bench --bench scaling`");
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let counts: Vec<usize> = match std::env::var("FEDNS_SCALING_THREADS") {
        Ok(v) => v
            .split_whitespace()
            .map(|c| match c.parse() {
                Ok(n) if n > 0 => n,
                _ => panic!("FEDNS_SCALING_THREADS={v}: not a list of thread counts"),
            })
            .collect(),
        Err(_) => (1..=cpus.max(2)).collect(),
    };
    let secs = env_usize("FEDNS_SCALING_SECONDS", 3) as f64;
    let reps = env_usize("FEDNS_SCALING_REPS", 3).max(1);
    // A UDP worker flushes after each recvmmsg: up to 32 queries, about 5 under dnsperf.
    let batch = env_usize("FEDNS_SCALING_BATCH", 32).max(1);

    let handler = fedns_testkit::handler::demo_handler();

    println!(
        "scaling: {cpus} CPUs, {reps} runs of {secs} s per thread count (medians), counters flushed every {batch} queries"
    );
    println!();
    println!(
        "| workload | threads | queries/s | speed-up | CPU ns/query | CPU ns/query vs 1 thread |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, queries) in workloads() {
        let mut base: Option<(f64, f64)> = None;
        for &threads in &counts {
            let runs: Vec<Run> = (0..reps)
                .map(|_| run(&handler, &queries, threads, batch, secs))
                .collect();
            let qps = median(
                runs.iter()
                    .map(|r| r.queries as f64 / r.wall.as_secs_f64())
                    .collect(),
            );
            let ns = median(
                runs.iter()
                    .map(|r| r.cpu.as_nanos() as f64 / r.queries as f64)
                    .collect(),
            );
            let (q1, ns1) = *base.get_or_insert((qps, ns));
            println!(
                "| {name} | {threads} | {qps:.0} | {:.2}× | {ns:.0} | {:.2} |",
                qps / q1,
                ns / ns1
            );
        }
    }
    if counts.iter().any(|&t| t > cpus) {
        println!();
        println!("(thread counts above {cpus} CPUs share them: speed-up there is not scaling)");
    }
}
