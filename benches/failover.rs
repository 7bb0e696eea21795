//! The health-check subsystem, measured with the default health settings (interval 1 s,
//! timeout 1 s, rise 2, fall 2):
//!
//! 1. failover time end to end (load balancer dies -> the DNS answer moves), for a load
//!    balancer that refuses connections (TCP probe) and one that accepts and never answers
//!    (HTTP probe, the "blackhole"); the return time once it is back; and a check that one
//!    lost probe never moves the answer;
//! 2. the cost of probing 10,000 addresses: CPU, probes/s, resident memory, against the same
//!    config with `probe: none`.
//!
//! Run: `cargo bench --bench failover` (see benches/README.md, "Health: failover time and
//! probe cost"). Filter a part by name: `cargo bench --bench failover -- failover` or
//! `-- probe-cost`. Every address probed or queried is on loopback (127.0.0.0/8).
//!
//! Part 1 runs fedns in-process (`app::start`), with real TCP listeners on 127.0.0.11/12/13
//! as the load balancers and real UDP queries. Part 2 runs the release `fedns serve` binary
//! (`CARGO_BIN_EXE_fedns`, built by `cargo bench`) and the 10,000 listeners in a second child
//! process (this bench binary re-executed), so that /proc/PID/stat of fedns counts fedns only.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use fedns_testkit::dns::query;
use fedns_testkit::process::Process;
use fedns_testkit::random::uniform;
use fedns_testkit::stats::{Stats, row, stats};
use fedns_testkit::sys::{
    bench_filters, cpu_times, env_usize as env_num, load_average as load, scratch_root,
    status_field, wanted,
};

use fedns::app::{self, LoadedConfig, Running};
use fedns::health::Health;
use fedns::health::TargetState;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

/// The first argument that turns this binary into the listener process of part 2.
const LISTENERS_ROLE: &str = "--fedns-bench-listeners";
const FEDNS: &str = env!("CARGO_BIN_EXE_fedns");

const APP: &str = "app.default.myfed.svc.fed.example.com.";
/// The demo GeoIP database places this ECS subnet in New York: us-east is nearest, then
/// eu-west.
const NEW_YORK: &str = "198.18.0.0/24";
const US: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
const EU: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 12);
const AP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 13);
/// How often the DNS answer is polled.
const POLL: Duration = Duration::from_millis(10);
/// How long any one phase may take before the run counts as failed.
const PATIENCE: Duration = Duration::from_secs(20);
/// The default probe interval plus its +10 % jitter: a uniform delay in [0, this) puts an
/// event at a random phase of the probe cycle.
const CYCLE: Duration = Duration::from_millis(1100);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(LISTENERS_ROLE) {
        listeners_child(&args[2..]);
        return;
    }
    // `cargo test --all-targets` runs bench binaries without --bench; this one takes
    // minutes of real time and thousands of sockets, so it only runs under `cargo bench`.
    let Some(filters) = bench_filters() else {
        println!("failover: skipped (run it with `cargo bench --bench failover`)");
        return;
    };
    let wanted = |part: &str| wanted(&filters, part);

    let runs = env_num("FEDNS_FAILOVER_RUNS", 20);
    let parallel = env_num("FEDNS_FAILOVER_PARALLEL", 10).max(1);
    let targets = env_num("FEDNS_PROBE_TARGETS", 10_000).max(1);
    let warmup = Duration::from_secs(env_num("FEDNS_PROBE_WARMUP", 5) as u64);
    let window = Duration::from_secs(env_num("FEDNS_PROBE_WINDOW", 30).max(1) as u64);

    let started = Instant::now();
    let _ = std::fs::remove_dir_all(base_dir());
    println!(
        "fedns health bench: default health settings (interval 1s, timeout 1s, rise 2, fall 2); \
         {} CPUs, load average {} at start",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load()
    );
    if wanted("failover") {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(failover_part(runs, parallel));
    }
    if wanted("probe-cost") {
        match probe_cost(targets, warmup, window) {
            Ok(c) => print_cost(&c),
            Err(e) => println!("\nprobe cost: FAILED: {e}"),
        }
    }
    let _ = std::fs::remove_dir_all(base_dir());
    println!(
        "\ntotal time {:.0} s, load average {} at the end",
        started.elapsed().as_secs_f64(),
        load()
    );
}

fn base_dir() -> PathBuf {
    scratch_root().join(format!("fedns-failover-{}", std::process::id()))
}

/// A fresh directory for one fedns.
fn fresh_dir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = base_dir().join(format!("{tag}-{}", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sleeps a uniform random time within one probe cycle, so that the event that follows
/// falls at a random phase of the probe schedule (as a real outage does).
async fn random_phase() {
    tokio::time::sleep(CYCLE.mul_f64(uniform())).await;
}

// ---------------------------------------------------------------------------------------
// Part 1: failover time, end to end, in-process.
// ---------------------------------------------------------------------------------------

/// Accept and answer HTTP 200 (a TCP probe only connects).
const OK: u8 = 0;
/// Accept and hold the connection without reading or answering: an HTTP probe times out.
const HANG: u8 = 1;
/// Answer the next request with HTTP 500, then back to OK.
const FAIL_ONCE: u8 = 2;
/// Accept the next connection, then close the listener: connections are refused until
/// `up` binds it again.
const REFUSE_ONCE: u8 = 3;

#[derive(Default)]
struct LbState {
    mode: AtomicU8,
    /// When FAIL_ONCE or REFUSE_ONCE was used up.
    event: Mutex<Option<Instant>>,
    /// Connections held by HANG.
    held: Mutex<Vec<TcpStream>>,
}

/// A load balancer: a TCP listener on 127.0.0.x.
struct Lb {
    addr: SocketAddr,
    st: Arc<LbState>,
    task: Option<JoinHandle<()>>,
}

impl Lb {
    fn new(listener: TcpListener) -> Lb {
        let addr = listener.local_addr().expect("bound listener");
        let st = Arc::new(LbState::default());
        let task = Some(tokio::spawn(accept_loop(listener, st.clone())));
        Lb { addr, st, task }
    }

    async fn up(&mut self) -> Result<(), String> {
        let listener = TcpListener::bind(self.addr)
            .await
            .map_err(|e| format!("re-bind {}: {e}", self.addr))?;
        self.task = Some(tokio::spawn(accept_loop(listener, self.st.clone())));
        Ok(())
    }

    /// Closes the listener; returns once it is closed (connections are refused).
    async fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    fn set(&self, mode: u8) {
        self.st.mode.store(mode, Ordering::SeqCst);
    }

    fn event(&self) -> Option<Instant> {
        *lock(&self.st.event)
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, st: Arc<LbState>) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let code = match st.mode.load(Ordering::SeqCst) {
            HANG => {
                lock(&st.held).push(s);
                continue;
            }
            REFUSE_ONCE => {
                st.mode.store(OK, Ordering::SeqCst);
                *lock(&st.event) = Some(Instant::now());
                return; // drops the listener
            }
            FAIL_ONCE => {
                st.mode.store(OK, Ordering::SeqCst);
                *lock(&st.event) = Some(Instant::now());
                500
            }
            _ => 200,
        };
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let reply =
                format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = s.write_all(reply.as_bytes()).await;
        });
    }
}

/// The three load balancers, on one free port of 127.0.0.11/12/13.
async fn three_lbs() -> Vec<Lb> {
    loop {
        let a = TcpListener::bind((US, 0)).await.expect("bind 127.0.0.11");
        let port = a.local_addr().expect("bound").port();
        let (Ok(b), Ok(c)) = (
            TcpListener::bind((EU, port)).await,
            TcpListener::bind((AP, port)).await,
        ) else {
            continue;
        };
        return vec![Lb::new(a), Lb::new(b), Lb::new(c)];
    }
}

/// Three clusters whose `app` load balancers are 127.0.0.11/12/13:`port`; default health
/// settings except the probe kind (and path, which is the default `/` anyway).
fn failover_config(port: u16, health: &str) -> String {
    format!(
        r#"zone: fed.example.com
federation: myfed
zone_file: fed.zone
geoip: {{ database: city.mmdb }}
listen: {{ dns: ["127.0.0.1:0"] }}
health: {health}
clusters:
  - name: us-east
    region: us-east-1
    services: [{{ namespace: default, name: app, addresses: [{US}], port: {port} }}]
  - name: eu-west
    region: eu-west-1
    services: [{{ namespace: default, name: app, addresses: [{EU}], port: {port} }}]
  - name: ap-northeast
    region: ap-northeast-1
    services: [{{ namespace: default, name: app, addresses: [{AP}], port: {port} }}]
"#
    )
}

/// A UDP DNS client asking `APP A` with ECS New York.
struct Dns {
    sock: UdpSocket,
    id: u16,
}

impl Dns {
    async fn new(server: SocketAddr) -> Dns {
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
        sock.connect(server).await.expect("connect UDP");
        Dns { sock, id: 0 }
    }

    /// The addresses of the answer, sorted; None when no reply came within 500 ms.
    async fn ask(&mut self) -> Option<Vec<String>> {
        self.id = self.id.wrapping_add(1);
        let mut m = query(APP, RecordType::A, Some(NEW_YORK));
        m.metadata.id = self.id;
        self.sock.send(&m.to_vec().ok()?).await.ok()?;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        let mut buf = [0u8; 4096];
        loop {
            let n = tokio::time::timeout_at(deadline, self.sock.recv(&mut buf))
                .await
                .ok()?
                .ok()?;
            // Skip a late reply to an earlier query.
            if n < 2 || buf[..2] != self.id.to_be_bytes() {
                continue;
            }
            let reply = Message::from_vec(&buf[..n]).ok()?;
            let mut v: Vec<String> = reply
                .answers
                .iter()
                .filter_map(|r| r.to_string().rsplit(' ').next().map(str::to_owned))
                .collect();
            v.sort();
            return Some(v);
        }
    }

    fn is(got: &Option<Vec<String>>, want: Ipv4Addr) -> bool {
        got.as_ref()
            .is_some_and(|v| v.len() == 1 && v[0] == want.to_string())
    }
}

/// One in-process fedns.
struct Fed {
    running: Running,
    dns: Dns,
    us: SocketAddr,
}

impl Fed {
    async fn start(config: &str, us: SocketAddr) -> Result<Fed, String> {
        let dir = fresh_dir("failover");
        std::fs::write(dir.join("fed.zone"), fedns::demo::ZONE).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("city.mmdb"), fedns::demo::demo_geoip())
            .map_err(|e| e.to_string())?;
        let path = dir.join("fedns.yaml");
        std::fs::write(&path, config).map_err(|e| e.to_string())?;
        let loaded = LoadedConfig::from_file(&path).map_err(|e| e.to_string())?;
        let options = app::Options {
            listen: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
            admin: None,
            query_log: false,
            ..Default::default()
        };
        let running = app::start(loaded, &options)
            .await
            .map_err(|e| e.to_string())?;
        let dns = Dns::new(running.dns_addrs()[0]).await;
        Ok(Fed { running, dns, us })
    }

    fn us_state(&self) -> TargetState {
        self.running
            .app
            .health
            .states()
            .into_iter()
            .find(|(t, _)| t.addr == self.us)
            .map(|(_, s)| s)
            .unwrap_or_default()
    }

    /// Until every target has been probed and is healthy, and the answer is us-east.
    async fn ready(&mut self) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let states = self.running.app.health.states();
            let healthy = states.len() == 3
                && states
                    .values()
                    .all(|s| s.probes > 0 && s.health == Health::Healthy);
            if healthy && Dns::is(&self.dns.ask().await, US) {
                return Ok(());
            }
            if start.elapsed() > PATIENCE {
                return Err(format!("never ready: {states:?}"));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls every 10 ms until the answer is `want`; the time from `since` to that reply.
    async fn until(&mut self, want: Ipv4Addr, since: Instant) -> Result<Duration, String> {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let got = self.dns.ask().await;
            if Dns::is(&got, want) {
                return Ok(since.elapsed());
            }
            if since.elapsed() > PATIENCE {
                return Err(format!(
                    "answer still {got:?} after {PATIENCE:?}, want {want}"
                ));
            }
        }
    }

    async fn stop(self) {
        self.running.shutdown(Duration::ZERO).await;
    }
}

/// Time from `at` to the target's last health change.
fn change_after(s: &TargetState, at: SystemTime) -> Result<Duration, String> {
    s.last_change
        .and_then(|c| c.duration_since(at).ok())
        .ok_or_else(|| format!("no health change recorded after the event: {s:?}"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    /// TCP probe; the listener is closed (connect refused).
    Refused,
    /// HTTP probe; the listener accepts and never answers (probe timeout).
    Blackhole,
    /// TCP probe on a probe port other than the service's port (`probe_port`, as
    /// `fedns.io/probe-port` gives it); the listener on the probe port is closed.
    ProbePort,
}

struct FailoverRun {
    /// Event -> the probed state turns Unhealthy (TargetState::last_change).
    detect: Duration,
    /// Event -> the first DNS reply with the new answer.
    answer: Duration,
    /// Back -> the state turns Healthy.
    back_detect: Duration,
    /// Back -> the first DNS reply with us-east again.
    back: Duration,
}

async fn failover_run(case: Case) -> Result<FailoverRun, String> {
    let mut lbs = three_lbs().await;
    let port = lbs[0].addr.port();
    let health = match case {
        Case::Refused | Case::ProbePort => "{ probe: tcp }",
        Case::Blackhole => "{ probe: http, path: / }",
    };
    let mut config = failover_config(port, health);
    if case == Case::ProbePort {
        // The service says port 9, where nothing listens; its health is on `port`.
        config = config.replace(
            &format!("port: {port} }}"),
            &format!("port: 9, probe_port: {port} }}"),
        );
    }
    let mut fed = Fed::start(&config, lbs[0].addr).await?;
    fed.ready().await?;

    random_phase().await;
    match case {
        Case::Refused | Case::ProbePort => lbs[0].down().await,
        Case::Blackhole => lbs[0].set(HANG),
    }
    let (t0, s0) = (Instant::now(), SystemTime::now());
    let answer = fed.until(EU, t0).await?;
    let detect = change_after(&fed.us_state(), s0)?;

    random_phase().await;
    match case {
        Case::Refused | Case::ProbePort => lbs[0].up().await?,
        Case::Blackhole => lbs[0].set(OK),
    }
    let (t1, s1) = (Instant::now(), SystemTime::now());
    let back = fed.until(US, t1).await?;
    let back_detect = change_after(&fed.us_state(), s1)?;
    fed.stop().await;
    drop(lbs);
    Ok(FailoverRun {
        detect,
        answer,
        back_detect,
        back,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loss {
    /// HTTP probe: one 500 between 200s.
    Http500,
    /// TCP probe: the listener closes after one probe and is bound again 1.45 s later, so
    /// that exactly the next probe (0.9-1.1 s later) is refused.
    TcpRefused,
}

struct LossRun {
    /// DNS polls during the window.
    polls: usize,
    /// Polls whose answer was not us-east (or no reply).
    changed: usize,
    /// Failed probes of us-east during the window (1 for a conclusive run).
    lost: u64,
    /// Whether the probed state ever left Healthy.
    flipped: bool,
    window: Duration,
}

async fn lost_probe_run(kind: Loss) -> Result<LossRun, String> {
    let mut lbs = three_lbs().await;
    let port = lbs[0].addr.port();
    let health = match kind {
        Loss::Http500 => "{ probe: http, path: / }",
        Loss::TcpRefused => "{ probe: tcp }",
    };
    let mut fed = Fed::start(&failover_config(port, health), lbs[0].addr).await?;
    // After the first probe: the first result decides at once by design.
    fed.ready().await?;
    random_phase().await;
    let before = fed.us_state();
    lbs[0].set(match kind {
        Loss::Http500 => FAIL_ONCE,
        Loss::TcpRefused => REFUSE_ONCE,
    });
    let armed = Instant::now();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut polls, mut changed, mut flipped, mut rebound) = (0, 0, false, false);
    let mut settled: Option<Instant> = None;
    loop {
        tick.tick().await;
        if kind == Loss::TcpRefused
            && !rebound
            && lbs[0]
                .event()
                .is_some_and(|t| t.elapsed() >= Duration::from_millis(1450))
        {
            lbs[0].up().await?;
            rebound = true;
        }
        let got = fed.dns.ask().await;
        polls += 1;
        if !Dns::is(&got, US) {
            changed += 1;
        }
        let s = fed.us_state();
        flipped |= s.health != Health::Healthy || s.last_change != before.last_change;
        // The window closes 500 ms after a good probe has followed the lost one (the
        // snapshot is rebuilt only on a change, so 500 ms is ample).
        if settled.is_none() && s.failures > before.failures && s.ok_streak >= 1 {
            settled = Some(Instant::now());
        }
        if settled.is_some_and(|t| t.elapsed() >= Duration::from_millis(500)) {
            break;
        }
        if armed.elapsed() > PATIENCE {
            return Err(format!("the lost probe never settled: {s:?}"));
        }
    }
    let after = fed.us_state();
    fed.stop().await;
    drop(lbs);
    Ok(LossRun {
        polls,
        changed,
        lost: after.failures - before.failures,
        flipped,
        window: armed.elapsed(),
    })
}

/// Runs `n` runs, `parallel` at a time (each its own fedns, listeners and port).
async fn many<T, F, Fut>(n: usize, parallel: usize, f: F) -> (Vec<T>, Vec<String>)
where
    T: Send + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>> + Send + 'static,
{
    let limit = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut set = JoinSet::new();
    for _ in 0..n {
        let permit = limit.clone().acquire_owned().await.expect("semaphore");
        let fut = f();
        set.spawn(async move {
            let r = fut.await;
            drop(permit);
            r
        });
    }
    let (mut ok, mut errors) = (Vec::new(), Vec::new());
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(v)) => ok.push(v),
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(format!("run panicked: {e}")),
        }
    }
    (ok, errors)
}

async fn failover_part(runs: usize, parallel: usize) {
    println!(
        "\n== Failover, end to end: {runs} runs per case, {parallel} at a time (each its own \
         in-process fedns and listeners); DNS polled every {} ms ==",
        POLL.as_millis()
    );
    println!("client: ECS {NEW_YORK} (New York); us-east {US} nearest, then eu-west {EU}");
    let mut all_values: Vec<(String, Stats)> = Vec::new();
    let mut surprises: Vec<String> = Vec::new();
    for case in [Case::Refused, Case::Blackhole, Case::ProbePort] {
        let t = Instant::now();
        let (ok, errors) = many(runs, parallel, move || failover_run(case)).await;
        let label = match case {
            Case::Refused => "refused (tcp probe, listener closed)",
            Case::Blackhole => "blackhole (http probe, accepts, never answers)",
            Case::ProbePort => "probe port (tcp probe on probe_port, listener closed)",
        };
        println!(
            "\n{label}: {} ok, {} failed, {:.0} s",
            ok.len(),
            errors.len(),
            t.elapsed().as_secs_f64()
        );
        for e in &errors {
            println!("  FAILED RUN: {e}");
            surprises.push(format!("{label}: failed run: {e}"));
        }
        println!(
            "  {:<44} {:>4} {:>10} {:>10} {:>10} {:>10}",
            "", "n", "median", "p90", "max", "min"
        );
        let rows = [
            (
                "LB dies -> state Unhealthy",
                stats(ok.iter().map(|r| r.detect)),
            ),
            (
                "LB dies -> DNS answer 127.0.0.12",
                stats(ok.iter().map(|r| r.answer)),
            ),
            (
                "LB back -> state Healthy",
                stats(ok.iter().map(|r| r.back_detect)),
            ),
            (
                "LB back -> DNS answer 127.0.0.11",
                stats(ok.iter().map(|r| r.back)),
            ),
        ];
        for (what, s) in rows {
            row(what, &s);
            if s.max > 5.0 {
                surprises.push(format!("{label}: {what} max {:.2} s > 5 s", s.max));
            }
            all_values.push((format!("{label} / {what}"), s));
        }
        // The answer follows the state change: the DNS-side lag is the snapshot rebuild
        // plus at most one poll interval.
        let lag = stats(ok.iter().map(|r| r.answer.saturating_sub(r.detect)));
        println!(
            "  state change -> answer (poll + rebuild): median {:.0} ms, max {:.0} ms",
            lag.median * 1e3,
            lag.max * 1e3
        );
    }

    println!("\n== One lost probe must never move the answer ({runs} runs per kind) ==");
    for kind in [Loss::Http500, Loss::TcpRefused] {
        let t = Instant::now();
        let (ok, errors) = many(runs, parallel, move || lost_probe_run(kind)).await;
        let label = match kind {
            Loss::Http500 => "http probe, one 500 between 200s",
            Loss::TcpRefused => "tcp probe, one refused connect",
        };
        let conclusive: Vec<&LossRun> = ok.iter().filter(|r| r.lost == 1).collect();
        let polls: usize = conclusive.iter().map(|r| r.polls).sum();
        let changed: usize = conclusive.iter().map(|r| r.changed).sum();
        let flipped = conclusive.iter().filter(|r| r.flipped).count();
        let window = stats(conclusive.iter().map(|r| r.window));
        println!(
            "{label}: {} runs with exactly one lost probe ({} other, {} failed), {polls} DNS \
             polls in the windows (median window {:.2} s), answer changed in {changed} polls, \
             health flipped in {flipped} runs ({:.0} s)",
            conclusive.len(),
            ok.len() - conclusive.len(),
            errors.len(),
            window.median,
            t.elapsed().as_secs_f64()
        );
        for r in ok.iter().filter(|r| r.lost != 1) {
            println!(
                "  inconclusive run: {} probes lost (want 1), answer changed in {} of {} polls",
                r.lost, r.changed, r.polls
            );
        }
        for e in &errors {
            println!("  FAILED RUN: {e}");
            surprises.push(format!("{label}: failed run: {e}"));
        }
        if changed > 0 || flipped > 0 {
            surprises.push(format!(
                "BUG? {label}: one lost probe moved the answer ({changed} polls) or the \
                 health ({flipped} runs)"
            ));
        }
    }

    println!("\nper-run values, sorted (s):");
    for (what, s) in &all_values {
        let v: Vec<String> = s.sorted.iter().map(|x| format!("{x:.2}")).collect();
        println!("  {what}: {}", v.join(" "));
    }
    if surprises.is_empty() {
        println!("\nno surprise: every failover under 5 s, no single lost probe moved an answer");
    } else {
        println!("\nSURPRISES:");
        for s in &surprises {
            println!("  {s}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Part 2: the cost of probing many addresses, with the real binary.
// ---------------------------------------------------------------------------------------

const CLUSTERS: usize = 10;

/// The address of target `i`: cluster `i % 10`'s load balancers are on 127.(10+c).x.y.
fn target_ip(i: usize, n: usize) -> Ipv4Addr {
    let per = n.div_ceil(CLUSTERS);
    let (c, j) = (i / per, i % per);
    Ipv4Addr::new(127, 10 + c as u8, (j / 250) as u8, (j % 250 + 1) as u8)
}

/// The listener process: binds `n` listeners (port 0 each) on the planned addresses,
/// prints their addresses then `ready`, accepts and drops every connection, and exits when
/// its stdin closes (that is, when the bench exits, however it exits).
fn listeners_child(args: &[String]) {
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let mut out = String::new();
        for i in 0..n {
            let ip = target_ip(i, n);
            let bound = std::net::TcpListener::bind((ip, 0)).and_then(|l| {
                l.set_nonblocking(true)?;
                TcpListener::from_std(l)
            });
            match bound {
                Ok(l) => {
                    out.push_str(&format!("{}\n", l.local_addr().expect("bound")));
                    tokio::spawn(async move {
                        loop {
                            match l.accept().await {
                                Ok((s, _)) => drop(s),
                                // EMFILE and the like: back off instead of spinning.
                                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                            }
                        }
                    });
                }
                Err(e) => {
                    println!("error binding listener {i} on {ip}: {e} (raise `ulimit -n`?)");
                    std::process::exit(1);
                }
            }
        }
        out.push_str("ready\n");
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
        drop(stdout);
        let _ = tokio::task::spawn_blocking(|| {
            let mut buf = [0u8; 64];
            while std::io::stdin().read(&mut buf).is_ok_and(|n| n > 0) {}
        })
        .await;
    });
}

/// A child process, killed when dropped.
struct Proc(Process);

impl Proc {
    /// Starts `program args` with the soft open-file limit raised to the hard limit.
    fn spawn(program: &Path, args: &[&str], stderr: Stdio) -> Result<Proc, String> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null; exec "$0" "$@""#)
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stderr(stderr);
        Process::spawn(&mut cmd)
            .map(Proc)
            .map_err(|e| format!("cannot start {}: {e}", program.display()))
    }

    fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// The next stdout line, within `wait`.
    fn line(&self, wait: Duration) -> Result<String, String> {
        self.0
            .line(wait)
            .map(|(_, line)| line)
            .map_err(|_| "no output from the child process".to_owned())
    }
}

/// utime + stime of a process (every thread, live or gone), in seconds.
fn cpu(pid: u32) -> Result<(f64, f64), String> {
    cpu_times(&pid.to_string())
}

/// A `Name:  value kB` line of /proc/PID/status, as a number.
fn status(pid: u32, key: &str) -> u64 {
    status_field(&pid.to_string(), key)
}

/// `fedns_probes_total` {ok, fail} from the admin server's /metrics.
fn probes_total(admin: SocketAddr) -> Result<(u64, u64), String> {
    let (status, body) =
        fedns_testkit::http::get_blocking(admin, "/metrics", Duration::from_secs(10));
    if status == 0 {
        return Err(format!("admin {admin}: {body}"));
    }
    let value = |label: &str| {
        let key = format!("fedns_probes_total{{result=\"{label}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    };
    Ok((value("ok"), value("fail")))
}

/// A config with `n` static services (10 clusters of n/10), each one address:port.
fn cost_config(addrs: &[SocketAddr], probe: &str) -> String {
    let mut y = format!(
        "zone: fed.example.com\nfederation: myfed\nlisten: {{ dns: [\"127.0.0.1:0\"] }}\n\
         health: {{ probe: {probe} }}\nclusters:\n"
    );
    let per = addrs.len().div_ceil(CLUSTERS);
    for (c, chunk) in addrs.chunks(per).enumerate() {
        // Spread over the globe; coordinates only matter for answers, not probes.
        let lat = -60.0 + 12.0 * c as f64;
        let lon = -170.0 + 34.0 * c as f64;
        y.push_str(&format!(
            "  - name: c{c:02}\n    location: {{ lat: {lat}, lon: {lon} }}\n    services:\n"
        ));
        for (j, a) in chunk.iter().enumerate() {
            y.push_str(&format!(
                "      - {{ namespace: default, name: s{j:05}, addresses: [{}], port: {} }}\n",
                a.ip(),
                a.port()
            ));
        }
    }
    y
}

/// The size of the state machine of one probe (TCP connect, or HTTP(S) with its TLS
/// handshake: an async fn's future is as large as its largest branch).
fn probe_future_size(addr: SocketAddr) -> usize {
    let t = fedns::health::Target {
        addr,
        kind: fedns::config::ProbeKind::Tcp,
        path: "/".into(),
        expect: 200,
    };
    let fut = fedns::health::probe::probe(&t, Duration::from_secs(1));
    std::mem::size_of_val(&fut)
}

struct Started {
    proc: Proc,
    admin: SocketAddr,
    startup: Duration,
}

fn start_fedns(config: &Path, log: &Path) -> Result<Started, String> {
    let t = Instant::now();
    let log = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let config = config.to_str().ok_or("non-UTF-8 path")?;
    let proc = Proc::spawn(
        Path::new(FEDNS),
        &[
            "serve",
            "--config",
            config,
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--drain",
            "0s",
            "--log-level",
            "warn",
        ],
        Stdio::from(log),
    )?;
    loop {
        let line = proc.line(Duration::from_secs(60))?;
        if let Some(a) = line.strip_prefix("listening admin ") {
            let admin = a.trim().parse().map_err(|e| format!("{a}: {e}"))?;
            return Ok(Started {
                proc,
                admin,
                startup: t.elapsed(),
            });
        }
    }
}

struct Cost {
    targets: usize,
    tick: f64,
    base_startup: Duration,
    base_rss_kib: u64,
    base_cpu: f64,
    base_window: f64,
    startup: Duration,
    first_round: Duration,
    window: f64,
    user: f64,
    sys: f64,
    ok: u64,
    fail: u64,
    rss_kib: u64,
    hwm_kib: u64,
    threads: u64,
    listener_cpu: f64,
    /// Size of one `health::probe` future, which every probe loop task embeds.
    probe_future: usize,
}

fn probe_cost(n: usize, warmup: Duration, window: Duration) -> Result<Cost, String> {
    println!(
        "\n== Probe cost: {n} targets, release binary {FEDNS}, warm-up {} s, window {} s; \
         load average {} ==",
        warmup.as_secs(),
        window.as_secs(),
        load()
    );
    let dir = fresh_dir("probe-cost");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let listeners = Proc::spawn(&exe, &[LISTENERS_ROLE, &n.to_string()], Stdio::inherit())?;
    let mut addrs: Vec<SocketAddr> = Vec::with_capacity(n);
    loop {
        let line = listeners.line(Duration::from_secs(60))?;
        if line == "ready" {
            break;
        }
        addrs.push(
            line.parse()
                .map_err(|_| format!("listener process: {line}"))?,
        );
    }
    if addrs.len() != n {
        return Err(format!("{} listeners, want {n}", addrs.len()));
    }
    println!("listener process {}: {n} listeners up", listeners.pid());

    // Baseline: the same 10,000 services with `probe: none`.
    let base_path = dir.join("none.yaml");
    std::fs::write(&base_path, cost_config(&addrs, "none")).map_err(|e| e.to_string())?;
    let base = start_fedns(&base_path, &dir.join("none.log"))?;
    std::thread::sleep(warmup);
    let base_window = window.min(Duration::from_secs(10));
    let c0 = cpu(base.proc.pid())?;
    let t0 = Instant::now();
    std::thread::sleep(base_window);
    let c1 = cpu(base.proc.pid())?;
    let base_window = t0.elapsed().as_secs_f64();
    let base_cpu = (c1.0 + c1.1) - (c0.0 + c0.1);
    let base_rss_kib = status(base.proc.pid(), "VmRSS");
    let base_startup = base.startup;
    drop(base);
    println!("baseline (probe: none) done");

    let path = dir.join("tcp.yaml");
    std::fs::write(&path, cost_config(&addrs, "tcp")).map_err(|e| e.to_string())?;
    let fed = start_fedns(&path, &dir.join("tcp.log"))?;
    let pid = fed.proc.pid();
    let t = Instant::now();
    loop {
        let (ok, fail) = probes_total(fed.admin)?;
        if ok + fail >= n as u64 {
            break;
        }
        if t.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "first round incomplete after 60 s: {ok} ok, {fail} fail"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let first_round = fed.startup + t.elapsed();
    std::thread::sleep(warmup);
    let (ok0, fail0) = probes_total(fed.admin)?;
    let c0 = cpu(pid)?;
    let l0 = cpu(listeners.pid())?;
    let t0 = Instant::now();
    std::thread::sleep(window);
    let c1 = cpu(pid)?;
    let l1 = cpu(listeners.pid())?;
    let elapsed = t0.elapsed().as_secs_f64();
    let (ok1, fail1) = probes_total(fed.admin)?;
    let cost = Cost {
        targets: n,
        tick: fedns_testkit::sys::clock_ticks(),
        base_startup,
        base_rss_kib,
        base_cpu,
        base_window,
        startup: fed.startup,
        first_round,
        window: elapsed,
        user: c1.0 - c0.0,
        sys: c1.1 - c0.1,
        ok: ok1 - ok0,
        fail: fail1 - fail0,
        rss_kib: status(pid, "VmRSS"),
        hwm_kib: status(pid, "VmHWM"),
        threads: status(pid, "Threads"),
        listener_cpu: (l1.0 + l1.1) - (l0.0 + l0.1),
        probe_future: probe_future_size(addrs[0]),
    };
    drop(fed);
    drop(listeners);
    Ok(cost)
}

fn print_cost(c: &Cost) {
    let probes = (c.ok + c.fail) as f64;
    let cpu = c.user + c.sys;
    let idle = c.base_cpu / c.base_window * c.window;
    let mib = |k: u64| k as f64 / 1024.0;
    println!("  {:<52} {}", "probed addresses (10 clusters)", c.targets);
    println!(
        "  {:<52} {:.2} s / {:.2} s",
        "startup to `listening admin` (probe none / tcp)",
        c.base_startup.as_secs_f64(),
        c.startup.as_secs_f64()
    );
    println!(
        "  {:<52} {:.2} s",
        "start to first probe round complete",
        c.first_round.as_secs_f64()
    );
    println!(
        "  {:<52} {:.0} /s ({} ok, {} fail in {:.1} s)",
        "probes/s",
        probes / c.window,
        c.ok,
        c.fail,
        c.window
    );
    println!(
        "  {:<52} {:.1} % (user {:.1} %, sys {:.1} %)",
        "fedns CPU, % of one core",
        cpu / c.window * 100.0,
        c.user / c.window * 100.0,
        c.sys / c.window * 100.0
    );
    println!(
        "  {:<52} {:.1} µs (user {:.1}, sys {:.1})",
        "fedns CPU per probe",
        cpu / probes * 1e6,
        c.user / probes * 1e6,
        c.sys / probes * 1e6
    );
    println!(
        "  {:<52} {:.2} % of one core ({:.3} s in {:.1} s)",
        "idle CPU, probe: none",
        c.base_cpu / c.base_window * 100.0,
        c.base_cpu,
        c.base_window
    );
    println!(
        "  {:<52} {:.1} µs",
        "fedns CPU per probe, minus the idle CPU",
        (cpu - idle).max(0.0) / probes * 1e6
    );
    println!(
        "  {:<52} {:.1} MiB / {:.1} MiB (peak {:.1} MiB)",
        "RSS, probe: none / tcp",
        mib(c.base_rss_kib),
        mib(c.rss_kib),
        mib(c.hwm_kib)
    );
    println!(
        "  {:<52} {:.1} MiB, {:.0} bytes per target",
        "RSS added by probing",
        mib(c.rss_kib.saturating_sub(c.base_rss_kib)),
        c.rss_kib.saturating_sub(c.base_rss_kib) as f64 * 1024.0 / c.targets as f64
    );
    println!(
        "  {:<52} {} bytes",
        "size of one health::probe future (in every probe task)", c.probe_future
    );
    println!("  {:<52} {}", "fedns threads", c.threads);
    println!(
        "  {:<52} {:.1} % of one core",
        "listener process CPU (the other side, not fedns)",
        c.listener_cpu / c.window * 100.0
    );
    println!(
        "  (CPU from /proc/PID/stat utime+stime at {} ticks/s; RSS from /proc/PID/status)",
        c.tick
    );
}
