//! A fleet of three replicas measured at fedns's defaults (probes every 1 s with 10 %
//! jitter, timeout 1 s, rise 2, fall 2; Leases of 15 s renewed every 5 s; quorum
//! `majority`), each replica the release `fedns serve` in its own network namespace
//! (`fedns_testkit::fleet_lab`):
//!
//! 1. `failover`: us-east's load balancer dies at a random phase of the probe cycle: the
//!    time until every replica answers eu-west, until the first does, and the
//!    disagreement window between them; then the same for its return;
//! 2. `drain`: `fedns drain` of us-east from the hub: the time from the command's start
//!    until every replica answers eu-west; `fedns undrain`, until all are back;
//! 3. `writes`: Lease writes (and all Lease requests) per replica per minute at rest, and
//!    with us-east's load balancer flapping (down 2 s, up 2 s).
//!
//! Run as root (namespaces, nftables): `cargo bench --bench fleet` (see benches/README.md,
//! "Fleet"). Filter a part by name: `cargo bench --bench fleet -- drain`. Settings:
//! `FLEET_RUNS` (default 20), `FLEET_DRAIN_RUNS` (10), `FLEET_WRITES_S` (60).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use fedns_testkit::apiserver::Resource;
use fedns_testkit::fleet_lab::{EU_LB, FleetLab, Options, US_LB};
use fedns_testkit::random::uniform;
use fedns_testkit::stats::{row, stats};
use fedns_testkit::sys::{bench_filters, env_usize, load_average, wanted};

const FEDNS: &str = env!("CARGO_BIN_EXE_fedns");
/// How often each replica's answer is polled.
const POLL: Duration = Duration::from_millis(10);
/// How long any one phase may take before the run fails.
const PATIENCE: Duration = Duration::from_secs(60);
/// A replica has moved once it gave the new answer this long without a relapse.
const STEADY: Duration = Duration::from_secs(1);
/// The default probe interval plus its +10 % jitter.
const CYCLE: Duration = Duration::from_millis(1100);

fn main() {
    let Some(filters) = bench_filters() else {
        println!("fleet: skipped (run it with `cargo bench --bench fleet`, as root)");
        return;
    };
    let wanted = |part: &str| wanted(&filters, part);
    let mut lab =
        FleetLab::start(FEDNS.as_ref(), &Options::defaults()).unwrap_or_else(|e| panic!("{e}"));
    settle(&lab);
    println!(
        "fleet bench: 3 replicas of {FEDNS} at the default health and fleet settings, \
         quorum majority; load average {}",
        load_average()
    );
    if wanted("failover") {
        failover(&mut lab, env_usize("FLEET_RUNS", 20));
    }
    if wanted("drain") {
        drain(&lab, env_usize("FLEET_DRAIN_RUNS", 10));
    }
    if wanted("writes") {
        writes(
            &mut lab,
            Duration::from_secs(env_usize("FLEET_WRITES_S", 60) as u64),
        );
    }
}

fn settle(lab: &FleetLab) {
    lab.until_settled(US_LB, PATIENCE)
        .unwrap_or_else(|e| panic!("the fleet did not settle: {e}"));
}

/// Polls every replica until each has answered `to` for [`STEADY`] without a relapse;
/// returns, per replica, when it moved for good, measured from `start`.
fn moves(lab: &FleetLab, start: Instant, to: Ipv4Addr) -> Vec<Duration> {
    let n = lab.replicas.len();
    let mut since: Vec<Option<Duration>> = vec![None; n];
    loop {
        for (i, s) in since.iter_mut().enumerate() {
            let answered = lab.answer(i, Duration::from_secs(1));
            let at = start.elapsed();
            match answered {
                Ok(a) if a == [to] => {
                    s.get_or_insert(at);
                }
                _ => *s = None,
            }
        }
        let now = start.elapsed();
        if since.iter().all(|s| s.is_some_and(|t| now - t >= STEADY)) {
            return since.into_iter().map(Option::unwrap).collect();
        }
        assert!(
            now < PATIENCE,
            "replicas did not all answer {to} within {PATIENCE:?}: {since:?}"
        );
        std::thread::sleep(POLL);
    }
}

struct Run {
    all: Duration,
    first: Duration,
    window: Duration,
}

fn run_of(moved: &[Duration]) -> Run {
    let all = moved.iter().copied().max().unwrap_or_default();
    let first = moved.iter().copied().min().unwrap_or_default();
    Run {
        all,
        first,
        window: all - first,
    }
}

fn table(title: &str, runs: &[(Run, Run)], back: &str) {
    println!("\n{title}");
    println!(
        "  {:<44} {:>4} {:>10} {:>10} {:>10} {:>10}",
        "", "n", "median", "p90", "max", "min"
    );
    for (what, pick) in [
        (
            "every replica moved",
            (|r: &Run| r.all) as fn(&Run) -> Duration,
        ),
        ("first replica moved", |r: &Run| r.first),
        ("disagreement window (last - first)", |r: &Run| r.window),
    ] {
        row(what, &stats(runs.iter().map(|(out, _)| pick(out))));
    }
    for (what, pick) in [
        (
            "every replica back",
            (|r: &Run| r.all) as fn(&Run) -> Duration,
        ),
        ("disagreement window, back", |r: &Run| r.window),
    ] {
        row(
            &format!("{what} ({back})"),
            &stats(runs.iter().map(|(_, b)| pick(b))),
        );
    }
}

fn failover(lab: &mut FleetLab, runs: usize) {
    let mut results = Vec::new();
    for run in 0..runs {
        settle(lab);
        // A random phase of the probe cycle.
        std::thread::sleep(CYCLE.mul_f64(uniform()));
        let t0 = Instant::now();
        lab.lb_down(0);
        let out = run_of(&moves(lab, t0, EU_LB));
        std::thread::sleep(CYCLE.mul_f64(uniform()));
        let t1 = Instant::now();
        lab.lb_up(0).unwrap_or_else(|e| panic!("{e}"));
        let back = run_of(&moves(lab, t1, US_LB));
        println!(
            "  run {run:>2}: all moved {:.2} s (first {:.2} s), back {:.2} s",
            out.all.as_secs_f64(),
            out.first.as_secs_f64(),
            back.all.as_secs_f64()
        );
        results.push((out, back));
    }
    table(
        &format!(
            "== Failover with three replicas, quorum majority: us-east's load balancer dies \
             ({runs} runs; a replica has moved once it answers eu-west for {STEADY:?} \
             without relapse; polled every {POLL:?}) =="
        ),
        &results,
        "it is back",
    );
}

fn drain(lab: &FleetLab, runs: usize) {
    let cli = |args: &[&str]| {
        let out = lab
            .net
            .hub()
            .command(FEDNS)
            .args(args)
            .arg("--config")
            .arg(&lab.replicas[0].config)
            .arg("us-east")
            .output()
            .expect("run the fedns CLI");
        assert!(
            out.status.success(),
            "fedns {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let mut results = Vec::new();
    for run in 0..runs {
        settle(lab);
        let t0 = Instant::now();
        cli(&["drain", "--for", "1h", "--reason", "bench"]);
        let out = run_of(&moves(lab, t0, EU_LB));
        let t1 = Instant::now();
        cli(&["undrain"]);
        let back = run_of(&moves(lab, t1, US_LB));
        println!(
            "  run {run:>2}: all drained {:.3} s, all back {:.3} s",
            out.all.as_secs_f64(),
            back.all.as_secs_f64()
        );
        results.push((out, back));
    }
    table(
        &format!(
            "== Drain: `fedns drain us-east` from the hub, from the command's start ({runs} \
             runs; the CLI's own start-up and two API writes included) =="
        ),
        &results,
        "undrain",
    );
}

/// Lease writes (PUT/POST) and all Lease requests of the fleet so far, over both clusters.
fn lease_counts(lab: &FleetLab) -> (usize, usize) {
    let writes = lab
        .clusters
        .iter()
        .map(|c| c.api.write_count(Resource::Leases))
        .sum();
    let requests = lab
        .clusters
        .iter()
        .map(|c| {
            c.api
                .requests()
                .iter()
                .filter(|r| r.contains("/leases") && !r.contains("watch="))
                .count()
        })
        .sum();
    (writes, requests)
}

fn writes(lab: &mut FleetLab, window: Duration) {
    settle(lab);
    let replicas = lab.replicas.len() as f64;
    let per_minute = |n: usize, took: Duration| n as f64 / replicas / took.as_secs_f64() * 60.0;
    println!(
        "\n== API load of the fleet: Lease requests per replica per minute, both member \
         clusters together, over {window:?} =="
    );
    let (w0, r0) = lease_counts(lab);
    let t0 = Instant::now();
    std::thread::sleep(window);
    let (w1, r1) = lease_counts(lab);
    let took = t0.elapsed();
    println!(
        "  at rest:                   {:>6.1} writes, {:>6.1} requests (writes and the reads before them)",
        per_minute(w1 - w0, took),
        per_minute(r1 - r0, took)
    );
    let t0 = Instant::now();
    let mut flips = 0;
    while t0.elapsed() < window {
        lab.lb_down(0);
        std::thread::sleep(Duration::from_secs(2));
        lab.lb_up(0).unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(Duration::from_secs(2));
        flips += 2;
    }
    let (w2, r2) = lease_counts(lab);
    let took = t0.elapsed();
    println!(
        "  us-east's LB flapping 2 s: {:>6.1} writes, {:>6.1} requests ({flips} flips of the LB)",
        per_minute(w2 - w1, took),
        per_minute(r2 - r1, took)
    );
}
