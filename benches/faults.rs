//! Faults under load: dnsperf runs against a real `fedns serve` on loopback while the bench
//! cuts a member cluster's API, reloads the config, kills and restores load-balancer
//! listeners and restarts fedns with its state file; a checker meanwhile asks every ~20 ms
//! and compares each answer with what the current phase allows.
//!
//! Run: `cargo bench --bench faults` (see benches/README.md, "Faults under load"). Only
//! under `cargo bench` (which passes `--bench`); `cargo test --all-targets` runs bench
//! binaries without it, and this one prints a line and exits then. It exits 1 when a check
//! failed (a wrong answer, an unanswered query outside a restart, a missing stale flag or a
//! state file without a cluster's records).
//!
//! Everything is on loopback: the two member clusters are the fake kube-apiserver of the
//! tests (crates/testkit/src/apiserver/, in this process), their load balancers are TCP
//! listeners of this process on 127.77.1.x (cluster a) and 127.77.2.x (cluster b), fedns is
//! the release binary (`CARGO_BIN_EXE_fedns`) as a child process on 127.0.0.1, dnsperf is a
//! child process too (`benches/install-tools.sh` installs it).
//!
//! Environment: `FEDNS_FAULTS_QPS` (10000, dnsperf -Q), `FEDNS_FAULTS_CLIENTS` (2, dnsperf
//! -c), `FEDNS_FAULTS_PHASE_MS` (4000, the length of most phases), `FEDNS_FAULTS_KEEP=1`
//! (keep the work dir: configs, state file, fedns logs, dnsperf outputs).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fedns_testkit::apiserver::{FakeCluster, Fault, Resource, endpoint_slice, lb_service};
use fedns_testkit::dns::{UdpClient, a_query};
use fedns_testkit::process::{Listening, Process, serve_command, signal};
use fedns_testkit::sys::{
    cpu_pressure, env_usize, load_average as load, rcvbuf_errors, run_delay, socket_drops, work_dir,
};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

const FEDNS: &str = env!("CARGO_BIN_EXE_fedns");
const ZONE: &str = "fed.example.com";
const FEDERATION: &str = "myfed";
const NAMESPACE: &str = "default";

/// The names asked, by the checker in turn and by dnsperf from its query file; `World::sets`
/// gives their answers in this order.
const NAMES: [&str; 3] = ["app", "web", "only-b"];
const ONLY_B: usize = 2;

/// Cluster a's load balancers: `app` has two addresses, `web` one.
const A_APP: [Ipv4Addr; 2] = [Ipv4Addr::new(127, 77, 1, 1), Ipv4Addr::new(127, 77, 1, 2)];
const A_WEB: Ipv4Addr = Ipv4Addr::new(127, 77, 1, 3);
/// Cluster b's: `app`, `web`, and `only-b` (a name only b has), which moves to `B_ONLY_NEW`
/// in b's API while fedns cannot see it.
const B_APP: Ipv4Addr = Ipv4Addr::new(127, 77, 2, 1);
const B_WEB: Ipv4Addr = Ipv4Addr::new(127, 77, 2, 2);
const B_ONLY: Ipv4Addr = Ipv4Addr::new(127, 77, 2, 3);
const B_ONLY_NEW: Ipv4Addr = Ipv4Addr::new(127, 77, 2, 4);

/// TTLs before and after the reload.
const TTL_BEFORE: u32 = 30;
const TTL_AFTER: u32 = 20;
/// Health settings of the config: tcp probes every 250 ms (±10 %), 250 ms timeout.
const INTERVAL: Duration = Duration::from_millis(250);
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
const RISE: u32 = 2;
const FALL: u32 = 2;
/// Slack added to every transition window for scheduling on a busy machine.
const SLACK: Duration = Duration::from_millis(250);

/// The checker asks every this often, and gives up on a reply after `CHECK_TIMEOUT`.
const CHECK_EVERY: Duration = Duration::from_millis(20);
const CHECK_TIMEOUT: Duration = Duration::from_millis(500);
/// dnsperf -t: a query not answered within this counts as lost.
const DNSPERF_TIMEOUT_S: u64 = 1;

struct Settings {
    qps: usize,
    clients: usize,
    phase: Duration,
    keep: bool,
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("faults: skipped (run it with `cargo bench --bench faults`)");
        return;
    }
    let s = Settings {
        qps: env_usize("FEDNS_FAULTS_QPS", 10_000).max(1),
        clients: env_usize("FEDNS_FAULTS_CLIENTS", 2).max(1),
        phase: Duration::from_millis(env_usize("FEDNS_FAULTS_PHASE_MS", 4000).max(1000) as u64),
        keep: std::env::var("FEDNS_FAULTS_KEEP").is_ok_and(|v| v == "1"),
    };
    ensure_dnsperf();
    let dir = work_dir("faults");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "faults: {} CPUs, load average {} at start, dnsperf -Q {} -c {}, phases of {:.1} s, \
         work dir {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load(),
        s.qps,
        s.clients,
        s.phase.as_secs_f64(),
        dir.display()
    );
    let started = Instant::now();
    let passed = run(&rt, &s, &dir);
    rt.shutdown_timeout(Duration::from_secs(1));
    println!(
        "\ntotal time {:.1} s, load average {} at the end",
        started.elapsed().as_secs_f64(),
        load()
    );
    if s.keep || !passed {
        println!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if !passed {
        std::process::exit(1);
    }
}

/// Stops the bench when dnsperf is missing, saying how to install it.
fn ensure_dnsperf() {
    let present = Command::new("dnsperf")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !present {
        eprintln!(
            "faults: dnsperf is missing: install the Debian package dnsperf \
             (benches/install-tools.sh installs every tool the benches use)"
        );
        std::process::exit(2);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn fqdn(service: &str) -> Name {
    Name::from_ascii(format!("{service}.{NAMESPACE}.{FEDERATION}.svc.{ZONE}.")).unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn set(addrs: &[Ipv4Addr]) -> BTreeSet<Ipv4Addr> {
    addrs.iter().copied().collect()
}

fn show(addrs: &BTreeSet<Ipv4Addr>) -> String {
    let v: Vec<String> = addrs.iter().map(Ipv4Addr::to_string).collect();
    format!("{{{}}}", v.join(", "))
}

// ---------------------------------------------------------------------------------------
// What the answers must be.

/// The state of the world that decides the right answers.
#[derive(Clone, Debug, PartialEq)]
struct World {
    /// Cluster a's load balancers accept connections.
    a_up: bool,
    /// The address of `only-b` that fedns should serve.
    only_b: Ipv4Addr,
    ttl: u32,
}

impl World {
    fn sets(&self) -> [BTreeSet<Ipv4Addr>; 3] {
        let mut app = set(&[B_APP]);
        if self.a_up {
            app.extend(A_APP);
        }
        let web = if self.a_up { A_WEB } else { B_WEB };
        [app, set(&[web]), set(&[self.only_b])]
    }

    /// Exactly these answers.
    fn want(&self) -> Want {
        Want {
            rules: self.sets().map(Rule::Exact),
            ttls: vec![self.ttl],
        }
    }

    /// Between two worlds (a transition window): any non-empty subset of the addresses
    /// either allows, with either TTL.
    fn between(&self, next: &World) -> Want {
        let (a, b) = (self.sets(), next.sets());
        let mut ttls = vec![self.ttl, next.ttl];
        ttls.dedup();
        Want {
            rules: [0, 1, 2].map(|i| Rule::Subset(a[i].union(&b[i]).copied().collect())),
            ttls,
        }
    }
}

#[derive(Clone, Debug)]
enum Rule {
    Exact(BTreeSet<Ipv4Addr>),
    /// Non-empty and inside this set.
    Subset(BTreeSet<Ipv4Addr>),
}

#[derive(Clone, Debug)]
struct Want {
    rules: [Rule; 3],
    ttls: Vec<u32>,
}

impl Want {
    fn accepts(&self, name: usize, r: &Reply) -> bool {
        if r.rcode != ResponseCode::NoError || r.addrs.is_empty() {
            return false;
        }
        if !r.ttls.iter().all(|t| self.ttls.contains(t)) {
            return false;
        }
        match &self.rules[name] {
            Rule::Exact(s) => r.addrs == *s,
            Rule::Subset(s) => r.addrs.is_subset(s),
        }
    }

    fn describe(&self, name: usize) -> String {
        let ttls: Vec<String> = self.ttls.iter().map(u32::to_string).collect();
        match &self.rules[name] {
            Rule::Exact(s) => format!("exactly {} ttl {}", show(s), ttls.join("|")),
            Rule::Subset(s) => format!("part of {} ttl {}", show(s), ttls.join("|")),
        }
    }
}

/// What is right when: each entry holds from its instant until the next one's. Entries may
/// start in the future (the end of a transition window).
#[derive(Default)]
struct Timeline {
    entries: Mutex<Vec<(Instant, Arc<Want>)>>,
}

impl Timeline {
    fn push(&self, from: Instant, want: Want) {
        let mut e = lock(&self.entries);
        assert!(
            e.last().is_none_or(|(t, _)| *t <= from),
            "timeline out of order"
        );
        e.push((from, Arc::new(want)));
    }

    /// An answer asked at `send` and received at `end` is right if some state that held at
    /// some moment in between allows it.
    fn judge(&self, name: usize, send: Instant, end: Instant, r: &Reply) -> Result<(), String> {
        let e = lock(&self.entries);
        let mut wanted = Vec::new();
        for (i, (from, want)) in e.iter().enumerate() {
            let until = e.get(i + 1).map(|(t, _)| *t);
            if *from <= end && until.is_none_or(|u| u > send) {
                if want.accepts(name, r) {
                    return Ok(());
                }
                wanted.push(want.describe(name));
            }
        }
        Err(format!("wanted {}", wanted.join(" or ")))
    }
}

// ---------------------------------------------------------------------------------------
// A small DNS client.

#[derive(Clone, Debug)]
struct Reply {
    rcode: ResponseCode,
    addrs: BTreeSet<Ipv4Addr>,
    ttls: BTreeSet<u32>,
}

impl Reply {
    fn show(&self) -> String {
        let ttls: Vec<String> = self.ttls.iter().map(u32::to_string).collect();
        format!(
            "{} {} ttl {}",
            self.rcode,
            show(&self.addrs),
            ttls.join("|")
        )
    }
}

/// One A query; None when no reply came in time (or the port was closed).
fn ask_a(dns: &mut UdpClient, name: &Name) -> Option<Reply> {
    let reply = dns.exchange(a_query(name))?;
    let mut addrs = BTreeSet::new();
    let mut ttls = BTreeSet::new();
    for r in &reply.answers {
        if let RData::A(a) = &r.data {
            addrs.insert(a.0);
            ttls.insert(r.ttl);
        }
    }
    Some(Reply {
        rcode: reply.metadata.response_code,
        addrs,
        ttls,
    })
}

// ---------------------------------------------------------------------------------------
// The checker: one query every CHECK_EVERY, names in turn, judged at the end against the
// complete timeline.

struct Check {
    send: Instant,
    end: Instant,
    name: usize,
    reply: Option<Reply>,
}

fn checker(server: SocketAddr, stop: Arc<AtomicBool>, log: Arc<Mutex<Vec<Check>>>) {
    let names = NAMES.map(fqdn);
    let mut dns = UdpClient::new(server, CHECK_TIMEOUT);
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let name = i % names.len();
        let send = Instant::now();
        let reply = ask_a(&mut dns, &names[name]);
        let end = Instant::now();
        lock(&log).push(Check {
            send,
            end,
            name,
            reply,
        });
        i += 1;
        std::thread::sleep((send + CHECK_EVERY).saturating_duration_since(Instant::now()));
    }
}

// ---------------------------------------------------------------------------------------
// dnsperf, one run per segment, stopped with SIGINT at the segment's end.

struct Dnsperf {
    child: Child,
    out: PathBuf,
}

#[derive(Clone, Debug, Default)]
struct PerfStats {
    sent: u64,
    completed: u64,
    lost: u64,
    rcodes: Vec<(String, u64)>,
    avg_latency_ms: f64,
    max_latency_ms: f64,
}

impl PerfStats {
    fn rcode(&self, code: &str) -> u64 {
        self.rcodes
            .iter()
            .filter(|(c, _)| c == code)
            .map(|(_, n)| n)
            .sum()
    }

    fn other_rcodes(&self) -> u64 {
        self.rcodes
            .iter()
            .filter(|(c, _)| c != "NOERROR" && c != "SERVFAIL")
            .map(|(_, n)| n)
            .sum()
    }

    /// Neither answered nor timed out when dnsperf was stopped.
    fn in_flight(&self) -> u64 {
        self.sent.saturating_sub(self.completed + self.lost)
    }

    fn parse(text: &str) -> PerfStats {
        let field = |label: &str| -> Option<&str> {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(label))
                .map(str::trim)
        };
        let num = |label: &str| {
            field(label)
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let rcodes = field("Response codes:")
            .unwrap_or("")
            .split(',')
            .filter_map(|part| {
                let mut w = part.split_whitespace();
                Some((w.next()?.to_owned(), w.next()?.parse().ok()?))
            })
            .collect();
        // "Average Latency (s):  0.000268 (min 0.000035, max 0.004123)"
        let latency = field("Average Latency (s):").unwrap_or("");
        let avg = latency
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        let max = latency
            .split("max ")
            .nth(1)
            .and_then(|v| v.trim_end_matches(')').trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        PerfStats {
            sent: num("Queries sent:"),
            completed: num("Queries completed:"),
            lost: num("Queries lost:"),
            rcodes,
            avg_latency_ms: avg * 1e3,
            max_latency_ms: max * 1e3,
        }
    }
}

impl Dnsperf {
    fn start(port: u16, queries: &Path, s: &Settings, out: PathBuf) -> Dnsperf {
        let file = std::fs::File::create(&out).expect("create dnsperf output");
        let child = Command::new("dnsperf")
            .args(["-s", "127.0.0.1", "-p", &port.to_string()])
            .arg("-d")
            .arg(queries)
            // A bound in case this process dies without stopping it; segments are shorter.
            .args(["-l", "120"])
            .args(["-Q", &s.qps.to_string(), "-c", &s.clients.to_string()])
            .args(["-q", "2000", "-t", &DNSPERF_TIMEOUT_S.to_string()])
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup output"))
            .stderr(file)
            .spawn()
            .expect("start dnsperf");
        Dnsperf { child, out }
    }

    /// SIGINT: dnsperf stops sending and prints its statistics. Queries still outstanding
    /// are then neither completed nor lost (`in_flight`).
    fn stop(mut self) -> PerfStats {
        signal(self.child.id(), "INT");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        PerfStats::parse(&text)
    }
}

impl Drop for Dnsperf {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Load balancers: TCP listeners that accept and drop, killed and bound again.

struct Lbs {
    port: u16,
    tasks: HashMap<Ipv4Addr, JoinHandle<()>>,
}

async fn accept_loop(l: tokio::net::TcpListener) {
    loop {
        match l.accept().await {
            Ok((s, _)) => drop(s),
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

impl Lbs {
    /// Binds every address on one port (the Services' port, which the probes use).
    fn start(rt: &Runtime, ips: &[Ipv4Addr]) -> Lbs {
        for _ in 0..20 {
            let bound: Vec<std::io::Result<tokio::net::TcpListener>> = rt.block_on(async {
                let first = tokio::net::TcpListener::bind((ips[0], 0)).await;
                let port = match &first {
                    Ok(l) => l.local_addr().map_or(0, |a| a.port()),
                    Err(_) => 0,
                };
                let mut all = vec![first];
                for ip in &ips[1..] {
                    all.push(tokio::net::TcpListener::bind((*ip, port)).await);
                }
                all
            });
            if bound.iter().all(Result::is_ok) {
                let listeners: Vec<_> = bound.into_iter().map(Result::unwrap).collect();
                let port = listeners[0].local_addr().unwrap().port();
                let tasks = ips
                    .iter()
                    .copied()
                    .zip(listeners)
                    .map(|(ip, l)| (ip, rt.spawn(accept_loop(l))))
                    .collect();
                return Lbs { port, tasks };
            }
        }
        panic!("cannot bind the load-balancer listeners on one port");
    }

    /// Closes the listener: connections are refused from the moment this returns.
    fn down(&mut self, rt: &Runtime, ip: Ipv4Addr) {
        if let Some(t) = self.tasks.remove(&ip) {
            t.abort();
            let _ = rt.block_on(t);
        }
    }

    fn up(&mut self, rt: &Runtime, ip: Ipv4Addr) {
        let port = self.port;
        let l = rt.block_on(async {
            for _ in 0..50 {
                if let Ok(l) = tokio::net::TcpListener::bind((ip, port)).await {
                    return l;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("cannot bind {ip}:{port} again");
        });
        self.tasks.insert(ip, rt.spawn(accept_loop(l)));
    }
}

// ---------------------------------------------------------------------------------------
// fedns as a child process.

struct Server {
    proc: Process,
    /// What its stdout said so far.
    seen: Listening,
    dns: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    listening_at: Option<Instant>,
}

impl Server {
    /// Starts `fedns serve`; does not wait for it.
    fn spawn(config: &Path, log: &Path, dns_port: u16) -> Server {
        let log = std::fs::File::create(log).expect("create log file");
        let mut cmd = serve_command(FEDNS);
        cmd.arg("--config")
            .arg(config)
            .args(["--listen", &format!("127.0.0.1:{dns_port}")])
            .args(["--drain", "0s"])
            .args(["--log-level", "info,hickory_server=warn"])
            .stdin(Stdio::null())
            .stderr(log);
        Server {
            proc: Process::spawn(&mut cmd).expect("start fedns serve"),
            seen: Listening::default(),
            dns: None,
            admin: None,
            listening_at: None,
        }
    }

    /// Reads the `listening` lines that have arrived.
    fn pump(&mut self) {
        while let Some((t, line)) = self.proc.try_line() {
            self.seen.read(t, &line);
        }
        self.dns = self.seen.dns.last().copied();
        self.admin = self.seen.admin;
        self.listening_at = self.seen.dns_at;
    }

    fn wait_addrs(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.pump();
            if self.dns.is_some() && self.admin.is_some() {
                return;
            }
            self.check_alive();
            assert!(
                Instant::now() < deadline,
                "fedns did not print its addresses"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn pid(&self) -> u32 {
        self.proc.pid()
    }

    fn check_alive(&mut self) {
        if let Some(status) = self.proc.exited() {
            panic!("fedns serve exited: {status}");
        }
    }

    /// SIGTERM (with --drain 0s) or SIGKILL, then waits for the process to be gone.
    fn stop(&mut self, graceful: bool) {
        if graceful {
            self.proc.signal("TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.proc.exited().is_none() {
                if Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.proc.kill();
    }
}

/// One HTTP/1.1 GET of fedns's admin endpoints: (status, body).
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    fedns_testkit::http::get_blocking(addr, path, Duration::from_secs(5))
}

/// The flags of /metrics this bench follows.
#[derive(Clone, Debug, Default, PartialEq)]
struct Flags {
    stale_a: Option<bool>,
    stale_b: Option<bool>,
    synced_b: Option<bool>,
    reloads_ok: u64,
    reloads_failed: u64,
}

fn scrape(admin: SocketAddr) -> Option<Flags> {
    let (status, body) = http_get(admin, "/metrics");
    if status != 200 {
        return None;
    }
    let value = |prefix: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Some(Flags {
        stale_a: value("fedns_cluster_stale{cluster=\"a\"}").map(|v| v != 0.0),
        stale_b: value("fedns_cluster_stale{cluster=\"b\"}").map(|v| v != 0.0),
        synced_b: value("fedns_cluster_synced{cluster=\"b\"}").map(|v| v != 0.0),
        reloads_ok: value("fedns_reloads_total{outcome=\"ok\"}").unwrap_or(0.0) as u64,
        reloads_failed: value("fedns_reloads_total{outcome=\"failed\"}").unwrap_or(0.0) as u64,
    })
}

// ---------------------------------------------------------------------------------------
// The fake clusters and the config.

/// A LoadBalancer Service with these addresses and an EndpointSlice with one ready endpoint.
fn add_service(c: &FakeCluster, name: &str, ips: &[Ipv4Addr], port: u16) {
    let ips: Vec<String> = ips.iter().map(Ipv4Addr::to_string).collect();
    let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
    c.apply(
        Resource::Services,
        lb_service(NAMESPACE, name, &ips, None, &[port]),
    );
    c.apply(
        Resource::EndpointSlices,
        endpoint_slice(NAMESPACE, name, &format!("{name}-1"), &[true]),
    );
}

/// Writes the config atomically (temporary file, rename), as a config management tool
/// would, so that fedns's file poll never reads half a file.
fn write_config(dir: &Path, ttl: u32, watch_timeout_s: u32) -> PathBuf {
    let yaml = format!(
        "zone: {ZONE}\nfederation: {FEDERATION}\nttl: {ttl}\nstate_file: state.json\n\
         health: {{ probe: tcp, interval: {}ms, timeout: {}ms, rise: {RISE}, fall: {FALL} }}\n\
         kubernetes: {{ watch_timeout: {watch_timeout_s}s, connect_timeout: 1s, sync_timeout: 5s }}\n\
         services:\n\
         \x20 - {{ namespace: {NAMESPACE}, name: app, policy: all }}\n\
         \x20 - {{ namespace: {NAMESPACE}, name: web, policy: failover, order: [a, b] }}\n\
         clusters:\n\
         \x20 - {{ name: a, location: {{ lat: 40.7, lon: -74.0 }}, kubeconfig: a.kubeconfig, context: a }}\n\
         \x20 - {{ name: b, location: {{ lat: 50.1, lon: 8.7 }}, kubeconfig: b.kubeconfig, context: b }}\n",
        INTERVAL.as_millis(),
        PROBE_TIMEOUT.as_millis(),
    );
    let path = dir.join("fedns.yaml");
    let tmp = dir.join("fedns.yaml.tmp");
    std::fs::write(&tmp, yaml).expect("write config");
    std::fs::rename(&tmp, &path).expect("rename config");
    path
}

/// A UDP and TCP port free on 127.0.0.1 now, for fedns to take again at each restart.
fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

/// Counters read at the start and end of a segment.
#[derive(Clone, Copy)]
struct Counters {
    socket_drops: u64,
    rcvbuf: u64,
    fedns_wait: Duration,
    pressure: Option<Duration>,
}

impl Counters {
    fn read(port: u16, pid: u32) -> Counters {
        Counters {
            socket_drops: socket_drops(port),
            rcvbuf: rcvbuf_errors(),
            fedns_wait: run_delay(pid),
            pressure: cpu_pressure(),
        }
    }
}

/// What the state file holds: cluster -> service -> addresses.
type SavedState = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn read_state(path: &Path) -> Result<SavedState, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let clusters = v["clusters"]
        .as_object()
        .ok_or_else(|| "no clusters object".to_owned())?;
    Ok(clusters
        .iter()
        .map(|(name, c)| {
            let services = c["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    let addrs = e["addresses"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| a.as_str().map(str::to_owned))
                        .collect();
                    (e["name"].as_str().unwrap_or("?").to_owned(), addrs)
                })
                .collect();
            (name.clone(), services)
        })
        .collect())
}

// ---------------------------------------------------------------------------------------
// The run.

struct Segment {
    name: String,
    start: Instant,
    end: Instant,
    perf: PerfStats,
    /// A restart segment: its losses are the restart's downtime.
    restart: bool,
    /// Receive-buffer drops during the segment: at fedns's socket, and machine-wide.
    socket_drops: u64,
    rcvbuf_drops: u64,
    /// How long fedns's threads waited for a CPU while runnable.
    fedns_wait: Duration,
    /// The share of the segment during which some task of the machine waited for a CPU.
    pressure: Option<f64>,
}

impl Segment {
    fn new(name: String, start: Instant, perf: PerfStats, c0: Counters, c1: Counters) -> Segment {
        let end = Instant::now();
        Segment {
            name,
            start,
            end,
            perf,
            restart: false,
            socket_drops: c1.socket_drops.saturating_sub(c0.socket_drops),
            rcvbuf_drops: c1.rcvbuf.saturating_sub(c0.rcvbuf),
            fedns_wait: c1.fedns_wait.saturating_sub(c0.fedns_wait),
            pressure: c0.pressure.zip(c1.pressure).map(|(a, b)| {
                b.saturating_sub(a).as_secs_f64() / (end - start).as_secs_f64().max(1e-3)
            }),
        }
    }
}

struct Gap {
    label: String,
    signal: Instant,
    exited: Instant,
    listening: Option<Instant>,
    first_reply_at: Instant,
    /// What the first reply said for `only-b` (b's record from the state file, if right).
    first_reply: Reply,
    lost: u64,
    in_flight: u64,
}

/// A change of the right answers: from `old` to `new` at `at`, either allowed during
/// `window` (None: until the bench saw the change happen).
struct Change {
    label: String,
    at: Instant,
    old: Want,
    new: Want,
    window: Option<Duration>,
}

struct Bench<'a> {
    rt: &'a Runtime,
    s: &'a Settings,
    dir: PathBuf,
    config: PathBuf,
    queries: PathBuf,
    /// Cluster a's API is never cut; kept for the length of the run.
    _a: FakeCluster,
    b: FakeCluster,
    lbs: Lbs,
    server: Server,
    lifetimes: usize,
    dns_port: u16,
    timeline: Arc<Timeline>,
    world: World,
    segments: Vec<Segment>,
    gaps: Vec<Gap>,
    /// The changes of the right answers, to time when the answers followed.
    changes: Vec<Change>,
    /// Kernel drops at fedns's socket, read every 100 ms: (pid, count) at the last reading,
    /// and (when, how many) for the readings that found new ones.
    drops: (u32, u64),
    drop_bursts: Vec<(f64, u64)>,
    /// What the bench saw happen (flags, reloads, state file), with times.
    notes: Vec<String>,
    /// Checks other than the answers that failed.
    failures: Vec<String>,
    flags: Flags,
    t0: Instant,
}

fn run(rt: &Runtime, s: &Settings, dir: &Path) -> bool {
    let t0 = Instant::now();
    let (a, b) =
        rt.block_on(async { (FakeCluster::start("a").await, FakeCluster::start("b").await) });
    let mut all_ips = vec![A_APP[0], A_APP[1], A_WEB];
    all_ips.extend([B_APP, B_WEB, B_ONLY, B_ONLY_NEW]);
    let lbs = Lbs::start(rt, &all_ips);
    add_service(&a, "app", &A_APP, lbs.port);
    add_service(&a, "web", &[A_WEB], lbs.port);
    add_service(&b, "app", &[B_APP], lbs.port);
    add_service(&b, "web", &[B_WEB], lbs.port);
    add_service(&b, "only-b", &[B_ONLY], lbs.port);
    a.write_kubeconfig(dir);
    b.write_kubeconfig(dir);
    let config = write_config(dir, TTL_BEFORE, 10);
    let queries = dir.join("queries.txt");
    let text: String = NAMES.iter().map(|n| format!("{} A\n", fqdn(n))).collect();
    std::fs::write(&queries, text).expect("write query file");

    let dns_port = free_port();
    let mut server = Server::spawn(&config, &dir.join("fedns-1.log"), dns_port);
    server.wait_addrs();
    let dns_addr = server.dns.unwrap();
    let world = World {
        a_up: true,
        only_b: B_ONLY,
        ttl: TTL_BEFORE,
    };
    // Both clusters synced and every answer right before anything is measured.
    let mut dns = UdpClient::new(dns_addr, CHECK_TIMEOUT);
    let names = NAMES.map(fqdn);
    let deadline = Instant::now() + Duration::from_secs(30);
    let want = world.want();
    while !(0..3).all(|i| ask_a(&mut dns, &names[i]).is_some_and(|r| want.accepts(i, &r))) {
        server.check_alive();
        assert!(
            Instant::now() < deadline,
            "fedns never served both clusters"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "fedns up and both clusters served {:.0} ms after the bench started; LB port {}, DNS {}",
        ms(t0.elapsed()),
        lbs.port,
        dns_addr
    );

    let timeline = Arc::new(Timeline::default());
    timeline.push(Instant::now(), world.want());
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let checker_thread = {
        let (stop, log) = (stop.clone(), log.clone());
        std::thread::spawn(move || checker(dns_addr, stop, log))
    };
    let mut bench = Bench {
        rt,
        s,
        dir: dir.to_owned(),
        config,
        queries,
        _a: a,
        b,
        lbs,
        server,
        lifetimes: 1,
        dns_port,
        timeline,
        world,
        segments: Vec::new(),
        gaps: Vec::new(),
        changes: Vec::new(),
        drops: (0, 0),
        drop_bursts: Vec::new(),
        notes: Vec::new(),
        failures: Vec::new(),
        flags: Flags::default(),
        t0: Instant::now(),
    };
    bench.phases();
    stop.store(true, Ordering::Relaxed);
    let _ = checker_thread.join();
    bench.server.stop(true);
    let checks = std::mem::take(&mut *lock(&log));
    bench.report(&checks)
}

impl Bench<'_> {
    fn at(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.t0).as_secs_f64()
    }

    fn note(&mut self, text: String) {
        println!("  [{:6.2} s] {text}", self.at(Instant::now()));
        self.notes
            .push(format!("{:.2} s: {text}", self.at(Instant::now())));
    }

    fn fail(&mut self, text: String) {
        self.note(format!("FAILED: {text}"));
        self.failures.push(text);
    }

    /// Reads /metrics and notes every change of the flags followed.
    fn poll_flags(&mut self) -> Flags {
        let Some(f) = self.server.admin.and_then(scrape) else {
            return self.flags.clone();
        };
        let show = |v: Option<bool>| match v {
            Some(true) => "1",
            Some(false) => "0",
            None => "-",
        };
        if f.stale_a != self.flags.stale_a {
            self.note(format!("fedns_cluster_stale{{a}} = {}", show(f.stale_a)));
        }
        if f.stale_b != self.flags.stale_b {
            self.note(format!("fedns_cluster_stale{{b}} = {}", show(f.stale_b)));
        }
        if f.synced_b != self.flags.synced_b {
            self.note(format!("fedns_cluster_synced{{b}} = {}", show(f.synced_b)));
        }
        self.flags = f.clone();
        f
    }

    /// Waits, following the flags every 100 ms.
    fn idle(&mut self, d: Duration) {
        let end = Instant::now() + d;
        loop {
            self.server.check_alive();
            self.poll_flags();
            let drops = (self.server.pid(), socket_drops(self.dns_port));
            if drops.0 == self.drops.0 && drops.1 > self.drops.1 {
                let t = self.at(Instant::now());
                self.drop_bursts.push((t, drops.1 - self.drops.1));
            }
            self.drops = drops;
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }

    fn dnsperf(&self) -> Dnsperf {
        let out = self
            .dir
            .join(format!("dnsperf-{:02}.out", self.segments.len() + 1));
        let d = Dnsperf::start(self.dns_port, &self.queries, self.s, out);
        // Let it get going before the segment's fault.
        std::thread::sleep(Duration::from_millis(150));
        d
    }

    /// Runs `body` as one segment with its own dnsperf run.
    fn segment(&mut self, name: &str, body: impl FnOnce(&mut Self)) {
        println!("{name}");
        let perf = self.dnsperf();
        let c0 = Counters::read(self.dns_port, self.server.pid());
        let start = Instant::now();
        body(self);
        let perf = perf.stop();
        let c1 = Counters::read(self.dns_port, self.server.pid());
        self.segments
            .push(Segment::new(name.to_owned(), start, perf, c0, c1));
    }

    /// The world changes now; answers may be either until `window` has passed.
    fn transition(&mut self, label: &str, next: World, window: Option<Duration>) {
        let now = Instant::now();
        self.timeline.push(now, self.world.between(&next));
        if let Some(w) = window {
            self.timeline.push(now + w, next.want());
        }
        self.changes.push(Change {
            label: label.to_owned(),
            at: now,
            old: self.world.want(),
            new: next.want(),
            window,
        });
        self.world = next;
    }

    /// Lines of every fedns log so far saying that cluster b's API is back.
    fn fresh_b_lines(&self) -> usize {
        (1..=self.lifetimes)
            .map(|n| {
                std::fs::read_to_string(self.dir.join(format!("fedns-{n}.log")))
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| {
                        l.contains("cluster API back; records fresh") && l.contains("\"b\"")
                    })
                    .count()
            })
            .sum()
    }

    fn check_state_file(&mut self, when: &str) {
        let path = self.dir.join("state.json");
        let age = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .map_or("?".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()));
        match read_state(&path) {
            Err(e) => self.fail(format!("state file {when}: {e}")),
            Ok(state) => {
                let summary: Vec<String> = state
                    .iter()
                    .map(|(c, services)| {
                        let s: Vec<String> = services
                            .iter()
                            .map(|(n, a)| format!("{n} {}", a.join(",")))
                            .collect();
                        format!("{c}: {}", s.join("; "))
                    })
                    .collect();
                self.note(format!(
                    "state file {when} (written {age} ago): {}",
                    if summary.is_empty() {
                        "no clusters".to_owned()
                    } else {
                        summary.join(" | ")
                    }
                ));
                let want_b = B_ONLY.to_string();
                let has_b = state
                    .get("b")
                    .and_then(|s| s.get("only-b"))
                    .is_some_and(|a| a == &[want_b]);
                if !state.contains_key("a") {
                    self.fail(format!("state file {when}: no records of cluster a"));
                }
                if !has_b {
                    self.fail(format!(
                        "state file {when}: no last-known records of cluster b (only-b {B_ONLY})"
                    ));
                }
            }
        }
    }

    fn phases(&mut self) {
        let p = self.s.phase;
        let rt = self.rt;
        self.segment("steady", |b| {
            b.idle(p);
            b.check_state_file("after steady");
        });
        self.segment("b's API stalls (requests hang, watches cut)", |b| {
            b.b.set_fault(Fault::Hang);
            b.b.set_fault(Fault::CutWatches);
            // A change fedns cannot see: it must keep serving the last-known address.
            add_service(&b.b, "only-b", &[B_ONLY_NEW], b.lbs.port);
            b.note(format!(
                "b's API hangs; only-b moved to {B_ONLY_NEW} in b's API"
            ));
            b.idle(p * 3 / 4);
        });
        self.segment("b's API refuses connections", |b| {
            let t = Instant::now();
            b.b.set_fault(Fault::Refuse);
            b.note("b's API refuses connections".into());
            let mut seen = None;
            let end = t + p;
            while Instant::now() < end {
                b.idle(Duration::from_millis(100));
                if seen.is_none() && b.flags.stale_b == Some(true) {
                    seen = Some(t.elapsed());
                }
            }
            match seen {
                Some(d) => b.note(format!("b flagged stale {:.0} ms after the cut", ms(d))),
                None => b.fail(format!(
                    "b not flagged stale {:.1} s after its API refused",
                    p.as_secs_f64()
                )),
            }
        });
        self.segment(
            "reload (SIGHUP; ttl 30 -> 20, watch_timeout 10s -> 12s)",
            |b| {
                let before = b.poll_flags();
                let next = World {
                    ttl: TTL_AFTER,
                    ..b.world.clone()
                };
                b.transition(
                    "reload: ttl 30 -> 20",
                    next,
                    Some(Duration::from_millis(1500)),
                );
                write_config(&b.dir, TTL_AFTER, 12);
                signal(b.server.pid(), "HUP");
                b.note("config rewritten, SIGHUP sent".into());
                b.idle(p);
                let after = b.poll_flags();
                let (ok, failed) = (
                    after.reloads_ok - before.reloads_ok,
                    after.reloads_failed - before.reloads_failed,
                );
                b.note(format!("reloads: {ok} ok, {failed} failed"));
                if ok == 0 || failed > 0 {
                    b.fail(format!("reload: {ok} ok, {failed} failed"));
                }
            },
        );
        // Refused connects fail at once: `fall` probes 0.9-1.1 intervals apart.
        let fall_window = INTERVAL.mul_f64(1.1 * f64::from(FALL)) + PROBE_TIMEOUT + SLACK;
        let rise_window = INTERVAL.mul_f64(1.1 * f64::from(RISE)) + PROBE_TIMEOUT + SLACK;
        self.segment("a's load balancers killed", |b| {
            let next = World {
                a_up: false,
                ..b.world.clone()
            };
            b.transition("a's load balancers killed", next, Some(fall_window));
            for ip in [A_APP[0], A_APP[1], A_WEB] {
                b.lbs.down(rt, ip);
            }
            b.note(format!(
                "a's listeners closed; answers must leave a within {:.0} ms",
                ms(fall_window)
            ));
            b.idle(p);
        });
        self.segment("a's load balancers restored", |b| {
            let next = World {
                a_up: true,
                ..b.world.clone()
            };
            b.transition("a's load balancers restored", next, Some(rise_window));
            for ip in [A_APP[0], A_APP[1], A_WEB] {
                b.lbs.up(rt, ip);
            }
            b.note(format!(
                "a's listeners back; answers must include a within {:.0} ms",
                ms(rise_window)
            ));
            b.idle(p);
            b.check_state_file("before restart 1");
        });
        self.restart("restart 1 (SIGKILL)", false);
        self.segment("restart 1: up again, b's API still refused", |b| {
            b.idle(p);
            b.check_state_file("before restart 2");
        });
        self.restart("restart 2 (SIGTERM)", true);
        self.segment("restart 2: up again, b's API still refused", |b| b.idle(p));
        self.segment("b's API back (only-b now at 127.77.2.4)", |b| {
            let t = Instant::now();
            let next = World {
                only_b: B_ONLY_NEW,
                ..b.world.clone()
            };
            // The stale flag between the cut and now: fedns logs each flip, while /metrics
            // (polled every 100 ms) can miss a short one.
            let flips = b.fresh_b_lines();
            if flips == 0 {
                b.note(
                    "b stayed flagged stale while its API was down (no `records fresh` line \
                     for b in the logs)"
                        .into(),
                );
            } else {
                b.fail(format!(
                    "b was flagged fresh {flips} times while its API refused connections \
                     (`cluster API back; records fresh` for b in the fedns logs, each followed by \
                     `cluster API failing`)"
                ));
            }
            // Until b has synced again, either address; after, only the new one.
            b.transition("b's API back: only-b 127.77.2.3 -> .4", next.clone(), None);
            b.b.set_fault(Fault::None);
            b.note("b's API serves again".into());
            let limit = Duration::from_secs(40);
            loop {
                b.idle(Duration::from_millis(100));
                if b.flags.stale_b == Some(false) && b.flags.synced_b == Some(true) {
                    let seen = Instant::now();
                    b.timeline
                        .push(seen + Duration::from_millis(100), next.want());
                    b.note(format!(
                        "b synced and fresh {:.0} ms after its API came back (kube's retry \
                         backoff)",
                        ms(t.elapsed())
                    ));
                    break;
                }
                if t.elapsed() > limit {
                    b.fail(format!(
                        "b not synced {} s after its API came back",
                        limit.as_secs()
                    ));
                    break;
                }
            }
            b.idle(p / 2);
        });
    }

    /// Stops fedns and starts it again on the same port with the same config and state
    /// file, while b's API refuses connections. The segment runs from just before the
    /// signal until the dnsperf timeout after the first answer, so that every query sent
    /// while fedns was down has been answered or counted lost.
    fn restart(&mut self, label: &str, graceful: bool) {
        println!("{label}");
        let perf = self.dnsperf();
        let c0 = Counters::read(self.dns_port, self.server.pid());
        let start = Instant::now();
        // The old socket and threads go with the old process; the new ones count from zero.
        let old = Counters::read(self.dns_port, self.server.pid());
        let signal = Instant::now();
        self.server.stop(graceful);
        let exited = Instant::now();
        self.lifetimes += 1;
        let log = self.dir.join(format!("fedns-{}.log", self.lifetimes));
        let mut server = Server::spawn(&self.config, &log, self.dns_port);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.dns_port));
        let mut dns = UdpClient::new(addr, Duration::from_millis(20));
        let only_b = fqdn(NAMES[ONLY_B]);
        let deadline = Instant::now() + Duration::from_secs(30);
        let (first_at, first) = loop {
            if let Some(r) = ask_a(&mut dns, &only_b) {
                break (Instant::now(), r);
            }
            server.pump();
            server.check_alive();
            assert!(
                Instant::now() < deadline,
                "fedns did not answer after {label}"
            );
            std::thread::sleep(Duration::from_millis(1));
        };
        server.wait_addrs();
        self.server = server;
        self.flags = Flags::default();
        let f = self.poll_flags();
        if f.stale_b != Some(true) {
            self.fail(format!(
                "{label}: b not flagged stale right after the restart ({:?})",
                f.stale_b
            ));
        }
        let gap = first_at - signal;
        self.note(format!(
            "{label}: old process gone after {:.1} ms, `listening dns` after {:.1} ms, first \
             answer after {:.1} ms: only-b -> {}",
            ms(exited - signal),
            self.server
                .listening_at
                .map_or(f64::NAN, |t| ms(t - signal)),
            ms(gap),
            first.show()
        ));
        self.idle(
            (first_at + Duration::from_secs(DNSPERF_TIMEOUT_S) + Duration::from_millis(300))
                .saturating_duration_since(Instant::now()),
        );
        let perf = perf.stop();
        let new = Counters::read(self.dns_port, self.server.pid());
        let c1 = Counters {
            socket_drops: old.socket_drops + new.socket_drops,
            fedns_wait: old.fedns_wait + new.fedns_wait,
            ..new
        };
        self.gaps.push(Gap {
            label: label.to_owned(),
            signal,
            exited,
            listening: self.server.listening_at,
            first_reply_at: first_at,
            first_reply: first,
            lost: perf.lost,
            in_flight: perf.in_flight(),
        });
        let name = format!("{label}: down, then {DNSPERF_TIMEOUT_S} s after the first answer");
        let mut segment = Segment::new(name, start, perf, c0, c1);
        segment.restart = true;
        self.segments.push(segment);
    }

    /// Prints the tables; true when every check passed.
    fn report(&self, checks: &[Check]) -> bool {
        let in_gap = |c: &Check| {
            self.gaps
                .iter()
                .any(|g| c.send <= g.first_reply_at && c.end >= g.signal)
        };
        // Judge every answer against the timeline.
        let mut wrong: Vec<(&Check, String)> = Vec::new();
        for c in checks {
            if let Some(r) = &c.reply
                && let Err(why) = self.timeline.judge(c.name, c.send, c.end, r)
            {
                wrong.push((c, why));
            }
        }
        let segment_of = |t: Instant| self.segments.iter().position(|s| s.start <= t && t < s.end);
        let in_segment = |i: usize| move |c: &&Check| segment_of(c.send) == Some(i);

        println!(
            "\ndnsperf, one run per phase (-Q {} -c {} -t {DNSPERF_TIMEOUT_S}; stopped with SIGINT):",
            self.s.qps, self.s.clients
        );
        println!(
            "\n| # | phase | s | sent | answered | lost | in flight at stop | NOERROR | SERVFAIL | \
             other rcodes | latency avg / max ms | UDP receive-buffer drops: fedns / machine | \
             fedns waited for a CPU | CPU pressure |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        let mut total = PerfStats::default();
        let (mut drops, mut rcvbuf) = (0, 0);
        for (i, s) in self.segments.iter().enumerate() {
            let p = &s.perf;
            println!(
                "| {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {:.2} / {:.0} | {} / {} | {:.0} ms | {} |",
                i + 1,
                s.name,
                (s.end - s.start).as_secs_f64(),
                p.sent,
                p.completed,
                p.lost,
                p.in_flight(),
                p.rcode("NOERROR"),
                p.rcode("SERVFAIL"),
                p.other_rcodes(),
                p.avg_latency_ms,
                p.max_latency_ms,
                s.socket_drops,
                s.rcvbuf_drops,
                ms(s.fedns_wait),
                s.pressure
                    .map_or("?".into(), |p| format!("{:.0} %", p * 100.0)),
            );
            total.sent += p.sent;
            total.completed += p.completed;
            total.lost += p.lost;
            total.rcodes.extend(p.rcodes.iter().cloned());
            drops += s.socket_drops;
            rcvbuf += s.rcvbuf_drops;
        }
        let secs: f64 = self
            .segments
            .iter()
            .map(|s| (s.end - s.start).as_secs_f64())
            .sum();
        let restart_lost: u64 = self
            .segments
            .iter()
            .filter(|s| s.restart)
            .map(|s| s.perf.lost)
            .sum();
        println!(
            "| | **total** | {secs:.1} | {} | {} | {} ({restart_lost} in restarts) | {} | {} | {} | {} | | {drops} / {rcvbuf} | {:.0} ms | |",
            total.sent,
            total.completed,
            total.lost,
            total.in_flight(),
            total.rcode("NOERROR"),
            total.rcode("SERVFAIL"),
            total.other_rcodes(),
            ms(self.segments.iter().map(|s| s.fedns_wait).sum()),
        );

        println!(
            "\nChecker: one A query every {} ms over its own socket, names in turn, each answer \
             compared with what the phase allows (reply timeout {} ms):",
            CHECK_EVERY.as_millis(),
            CHECK_TIMEOUT.as_millis()
        );
        println!(
            "\n| # | phase | asked | right | wrong | unanswered | round trip p50 / p99 / max ms |"
        );
        println!("|---|---|---|---|---|---|---|");
        for (i, s) in self.segments.iter().enumerate() {
            let mine: Vec<&Check> = checks.iter().filter(in_segment(i)).collect();
            let n_wrong = wrong.iter().map(|(c, _)| *c).filter(in_segment(i)).count();
            let unanswered = mine.iter().filter(|c| c.reply.is_none()).count();
            let mut rtts: Vec<Duration> = mine
                .iter()
                .filter(|c| c.reply.is_some())
                .map(|c| c.end - c.send)
                .collect();
            rtts.sort();
            let rank = |q: f64| {
                rtts.get(((rtts.len() as f64 * q).ceil() as usize).saturating_sub(1))
                    .copied()
                    .unwrap_or_default()
            };
            println!(
                "| {} | {} | {} | {} | {} | {} | {:.2} / {:.2} / {:.2} |",
                i + 1,
                s.name,
                mine.len(),
                mine.len() - unanswered - n_wrong,
                n_wrong,
                unanswered,
                ms(rank(0.5)),
                ms(rank(0.99)),
                ms(rtts.last().copied().unwrap_or_default()),
            );
        }
        let unanswered_all = checks.iter().filter(|c| c.reply.is_none()).count();
        println!(
            "| | **total** | {} | {} | {} | {unanswered_all} | |",
            checks.len(),
            checks.len() - unanswered_all - wrong.len(),
            wrong.len()
        );

        println!(
            "\n| restart | old process gone | `listening dns` | first answer (gap) | first answer \
             | dnsperf lost in the restart phase | ≈ q/s × gap | checker unanswered in the gap |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for g in &self.gaps {
            let gap = g.first_reply_at - g.signal;
            let unanswered = checks
                .iter()
                .filter(|c| c.reply.is_none() && c.send <= g.first_reply_at && c.end >= g.signal)
                .count();
            println!(
                "| {} | {:.1} ms | {} | **{:.1} ms** | only-b {} | {} (+{} in flight at stop) | {:.0} | {} |",
                g.label,
                ms(g.exited - g.signal),
                g.listening
                    .map_or("?".into(), |t| format!("{:.1} ms", ms(t - g.signal))),
                ms(gap),
                g.first_reply.show(),
                g.lost,
                g.in_flight,
                self.s.qps as f64 * gap.as_secs_f64(),
                unanswered
            );
        }

        println!(
            "\nWhen the answers followed a change (checker, each name asked every {} ms):",
            CHECK_EVERY.as_millis() * NAMES.len() as u128
        );
        println!("\n| change | allowed window | first new answer | last old answer |");
        println!("|---|---|---|---|");
        for (i, ch) in self.changes.iter().enumerate() {
            let until = self.changes.get(i + 1).map(|n| n.at);
            let after: Vec<(&Check, &Reply)> = checks
                .iter()
                .filter(|c| c.send >= ch.at && until.is_none_or(|u| c.send < u))
                .filter_map(|c| Some((c, c.reply.as_ref()?)))
                .collect();
            let first_new = after
                .iter()
                .filter(|(c, r)| ch.new.accepts(c.name, r) && !ch.old.accepts(c.name, r))
                .map(|(c, _)| c.end - ch.at)
                .min();
            let last_old = after
                .iter()
                .filter(|(c, r)| ch.old.accepts(c.name, r) && !ch.new.accepts(c.name, r))
                .map(|(c, _)| c.end - ch.at)
                .max();
            let show =
                |d: Option<Duration>| d.map_or("none".into(), |d| format!("{:.0} ms", ms(d)));
            println!(
                "| {} | {} | {} | {} |",
                ch.label,
                ch.window
                    .map_or("until the bench saw b synced".into(), |w| format!(
                        "{:.0} ms",
                        ms(w)
                    )),
                show(first_new),
                show(last_old)
            );
        }

        println!("\nWhat happened:");
        for n in &self.notes {
            println!("- {n}");
        }
        if !self.drop_bursts.is_empty() {
            let bursts: Vec<String> = self
                .drop_bursts
                .iter()
                .map(|(t, n)| format!("{t:.1} s: {n}"))
                .collect();
            println!(
                "- kernel drops at fedns's socket, per 100 ms reading that found any: {}",
                bursts.join(", ")
            );
        }

        // The verdict: wrong answers and failed checks, then losses outside the restarts.
        let mut problems: Vec<String> = self.failures.clone();
        for (c, why) in wrong.iter().take(20) {
            let phase = segment_of(c.send).map_or("between phases", |i| &self.segments[i].name);
            problems.push(format!(
                "{:.3} s ({phase}): {} -> {}; {why}",
                self.at(c.send),
                NAMES[c.name],
                c.reply.as_ref().map_or("-".into(), Reply::show)
            ));
        }
        if wrong.len() > 20 {
            problems.push(format!("... {} wrong answers in all", wrong.len()));
        }
        for s in &self.segments {
            let bad = s.perf.rcode("SERVFAIL") + s.perf.other_rcodes();
            if bad > 0 {
                problems.push(format!(
                    "{}: dnsperf got {bad} answers other than NOERROR ({:?})",
                    s.name, s.perf.rcodes
                ));
            }
            if s.perf.sent == 0 {
                problems.push(format!("{}: dnsperf sent nothing", s.name));
            }
        }
        // Losses outside the restarts. A query that reached fedns's socket and got no answer
        // is a fault; one the kernel dropped because a receive buffer was full (fedns, or
        // dnsperf, not scheduled in time on a busy machine) is counted as overload, and fails
        // the run only with FEDNS_FAULTS_STRICT=1.
        let strict = std::env::var("FEDNS_FAULTS_STRICT").is_ok_and(|v| v == "1");
        let mut overload = Vec::new();
        for (i, s) in self.segments.iter().enumerate() {
            let unanswered: Vec<&Check> = checks
                .iter()
                .filter(in_segment(i))
                .filter(|c| c.reply.is_none() && !in_gap(c))
                .collect();
            let lost = if s.restart { 0 } else { s.perf.lost };
            let missing = lost + unanswered.len() as u64;
            if missing == 0 {
                continue;
            }
            let at: Vec<String> = unanswered
                .iter()
                .map(|c| format!("{:.2} s", self.at(c.send)))
                .collect();
            let line = format!(
                "{}: dnsperf lost {lost}, checker unanswered {}{}; UDP receive-buffer drops {} at \
                 fedns's socket, {} machine-wide; fedns waited {:.0} ms for a CPU",
                s.name,
                unanswered.len(),
                if at.is_empty() {
                    String::new()
                } else {
                    format!(" (asked at {})", at.join(", "))
                },
                s.socket_drops,
                s.rcvbuf_drops,
                ms(s.fedns_wait)
            );
            if missing > s.rcvbuf_drops {
                problems.push(format!(
                    "{line}: {} not explained by a full receive buffer",
                    missing - s.rcvbuf_drops
                ));
            } else if strict {
                problems.push(line);
            } else {
                overload.push(line);
            }
        }
        if !overload.is_empty() {
            println!(
                "\nLost outside the restarts, every one dropped by the kernel at a full receive \
                 buffer (overload of this machine, not counted as a failure; \
                 FEDNS_FAULTS_STRICT=1 counts it):"
            );
            for l in &overload {
                println!("- {l}");
            }
        }
        if problems.is_empty() {
            println!(
                "\nPASS: every answer was right, every flag and state file as expected, and no \
                 query was lost outside the restarts except to full receive buffers"
            );
            return true;
        }
        println!("\nFAIL:");
        for p in &problems {
            println!("- {p}");
        }
        false
    }
}
