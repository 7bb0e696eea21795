//! Kubernetes propagation and scale: how long one object change takes to reach DNS, and
//! what fedns costs with 100,000 names watched in 10 member clusters.
//!
//! Run: `cargo bench --bench kube_scale` (see benches/README.md, "Kubernetes: propagation
//! and scale"). Everything stays on loopback: each member cluster is the fake
//! kube-apiserver of the tests (crates/testkit/src/apiserver/: HTTPS, bearer tokens, paged
//! LISTs, WATCH streams with bookmarks), watched by the real kube client inside fedns.
//!
//! 1. Propagation, fedns in-process: one fake cluster with some LoadBalancer Services,
//!    then one change at a time (a Service's load-balancer IP replaced in the fake API),
//!    timed from just before the change until the new address is served, two ways at
//!    once: in the published snapshot (`running.app.published`, no DNS round trip) and
//!    over UDP DNS (a query every ~0.5 ms).
//! 2. Scale, fedns as a child process (`fedns serve`), so that its memory and CPU are its
//!    own and not mixed with the fake API servers, which stay in this process: 10 clusters
//!    x 10,000 Services, each with an EndpointSlice holding one ready endpoint, all created
//!    before fedns starts. Time to ready, memory, then the cost of single changes once
//!    synced (latency to DNS, snapshot build time from /metrics, process CPU time).
//! 3. Gateway API, fedns as a child process: 10 clusters x 20 Gateways x 100 HTTPRoutes,
//!    each route with its own name and a backend whose EndpointSlice has a ready endpoint,
//!    the CRDs installed and everything created before fedns starts (found by API
//!    discovery). Time to ready, memory, then single route changes (a route's hostname
//!    replaced) timed until the new name answers in DNS.
//!
//! It runs only under `cargo bench` (which passes `--bench`); `cargo test --all-targets`
//! runs bench binaries without it, and this one prints a line and exits then.
//!
//! Environment (defaults in parentheses; `FEDNS_KBENCH_QUICK=1` shrinks the sizes for a
//! run of a few seconds):
//! `FEDNS_KBENCH_PARTS` (`propagation,scale,gateway`), `FEDNS_KBENCH_PROP_SERVICES` (100),
//! `FEDNS_KBENCH_CHANGES` (1000), `FEDNS_KBENCH_POLL_US` (500, the DNS poll interval),
//! `FEDNS_KBENCH_CLUSTERS` (10), `FEDNS_KBENCH_SERVICES` (10000 per cluster),
//! `FEDNS_KBENCH_SCALE_CHANGES` (100), `FEDNS_KBENCH_SYNC_LIMIT_S` (1200, the longest wait
//! for the initial sync), `FEDNS_KBENCH_CHANGE_LIMIT_S` (60, the longest wait for one
//! change), `FEDNS_KBENCH_GATEWAYS` (20 per cluster), `FEDNS_KBENCH_ROUTES` (100 per
//! Gateway), `FEDNS_KBENCH_KEEP=1` (keep the work dir with configs and the fedns log).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fedns_testkit::apiserver::{
    FakeCluster, Listener, ParentRef, Resource, endpoint_slice, gateway, http_route, lb_service,
    set_route_parent_status,
};
use fedns_testkit::dns::{UdpClient, a_records};
use fedns_testkit::process::{Process, serve_command};
use fedns_testkit::sys::{cpu_secs, env_usize, hwm_kib, rss_kib, work_dir};
use hickory_proto::rr::Name;

use fedns::app::{self, LoadedConfig};
use fedns::snapshot::Published;

const ZONE: &str = "fed.example.com";
const FEDERATION: &str = "myfed";
const NAMESPACE: &str = "default";
/// A change slower than this is counted apart (the ~40 ms delayed-ACK stalls).
const SLOW: Duration = Duration::from_millis(10);

/// What to run and how big, from the environment.
struct Settings {
    propagation: bool,
    scale: bool,
    gateway: bool,
    gateways: usize,
    routes: usize,
    prop_services: usize,
    changes: usize,
    poll: Duration,
    clusters: usize,
    services: usize,
    scale_changes: usize,
    sync_limit: Duration,
    change_limit: Duration,
}

impl Settings {
    fn from_env() -> Settings {
        let quick = std::env::var("FEDNS_KBENCH_QUICK").is_ok_and(|v| v != "0" && !v.is_empty());
        let parts = std::env::var("FEDNS_KBENCH_PARTS")
            .unwrap_or_else(|_| "propagation,scale,gateway".into())
            .to_ascii_lowercase();
        let sized = |full: usize, small: usize| if quick { small } else { full };
        Settings {
            propagation: parts.contains("prop"),
            scale: parts.contains("scale"),
            gateway: parts.contains("gateway"),
            gateways: env_usize("FEDNS_KBENCH_GATEWAYS", sized(20, 5)).clamp(1, 250),
            routes: env_usize("FEDNS_KBENCH_ROUTES", sized(100, 20)).clamp(1, 1000),
            prop_services: env_usize("FEDNS_KBENCH_PROP_SERVICES", 100).max(1),
            changes: env_usize("FEDNS_KBENCH_CHANGES", sized(1000, 100)),
            poll: Duration::from_micros(env_usize("FEDNS_KBENCH_POLL_US", 500) as u64),
            clusters: env_usize("FEDNS_KBENCH_CLUSTERS", sized(10, 3)).clamp(1, 100),
            services: env_usize("FEDNS_KBENCH_SERVICES", sized(10_000, 1000)).clamp(1, 65_536),
            scale_changes: env_usize("FEDNS_KBENCH_SCALE_CHANGES", sized(100, 20)),
            sync_limit: Duration::from_secs(env_usize("FEDNS_KBENCH_SYNC_LIMIT_S", 1200) as u64),
            change_limit: Duration::from_secs(env_usize("FEDNS_KBENCH_CHANGE_LIMIT_S", 60) as u64),
        }
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // Minutes of real time and ~3 GiB for the fake API servers: not for `cargo test`.
        println!("kube_scale: skipped (run it with `cargo bench --bench kube_scale`)");
        return;
    }
    let settings = Settings::from_env();
    let dir = work_dir("kube-scale");
    // The fake API servers (and, for the propagation part, fedns itself) run here; two
    // workers, as `fedns serve` would get on this kind of machine.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "kube_scale: {} CPUs, work dir {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        dir.display()
    );
    if settings.propagation {
        propagation(&rt, &settings, &dir.join("propagation"));
    }
    if settings.scale {
        scale(&rt, &settings, &dir.join("scale"));
    }
    if settings.gateway {
        gateway_api(&rt, &settings, &dir.join("gateway"));
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    if std::env::var("FEDNS_KBENCH_KEEP").is_ok_and(|v| v == "1") {
        println!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

// ---------------------------------------------------------------------------------------
// Part 1: propagation of single changes, fedns in-process.

fn propagation(rt: &tokio::runtime::Runtime, s: &Settings, dir: &Path) {
    println!(
        "\n== Propagation: 1 cluster, {} Services, {} changes, fedns in-process ==",
        s.prop_services, s.changes
    );
    std::fs::create_dir_all(dir).expect("create dir");
    let cluster = rt.block_on(FakeCluster::start("prop"));
    let name = |j: usize| format!("p-{j:05}");
    for j in 0..s.prop_services {
        add_service(&cluster, &name(j), &initial_ip(0, j));
    }
    let config = write_config(dir, &[&cluster], "");
    let rss_before = rss_kib("self");
    let running = rt.block_on(async {
        let loaded = LoadedConfig::from_file(&config).unwrap_or_else(|e| panic!("{e}"));
        let options = app::Options {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            admin: None,
            query_log: false,
            ..Default::default()
        };
        app::start(loaded, &options)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    });
    let published: Published = running.app.published.clone();
    let dns_addr = running.dns_addrs()[0];
    let start = Instant::now();
    while published.load().services.len() < s.prop_services {
        assert!(start.elapsed() < s.sync_limit, "the cluster never synced");
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "synced: {} names in the snapshot after {:.1} ms",
        s.prop_services,
        ms(start.elapsed())
    );

    let mut dns = dns_client(dns_addr);
    let metrics = &running.app.metrics;
    let (builds0, sum0) = (
        metrics.snapshot_builds.get(),
        metrics.snapshot_build_duration.get_sample_sum(),
    );
    let mut at_snapshot = Vec::with_capacity(s.changes);
    let mut at_dns = Vec::with_capacity(s.changes);
    let t_all = Instant::now();
    for i in 0..s.changes {
        let j = i % s.prop_services;
        let svc = name(j);
        let ip = change_ip(i);
        let key = format!("{NAMESPACE}/{svc}");
        let check = || snapshot_has(&published, &key, ip);
        let t0 = Instant::now();
        set_lb_ip(&cluster, &svc, ip);
        match wait_change(t0, Some(&check), &mut dns, &fqdn(&svc), ip, s) {
            Ok((snap, dns_time)) => {
                at_snapshot.push(snap.expect("snapshot time"));
                at_dns.push(dns_time);
            }
            Err(e) => {
                println!("change {i} ({svc} -> {ip}): {e}; stopping this part");
                break;
            }
        }
        if (i + 1) % 200 == 0 {
            eprintln!("  {} changes", i + 1);
        }
    }
    let wall = t_all.elapsed();
    let builds = metrics.snapshot_builds.get() - builds0;
    let build_sum = metrics.snapshot_build_duration.get_sample_sum() - sum0;
    let rss_after = rss_kib("self");
    rt.block_on(running.shutdown(Duration::ZERO));

    let n = at_dns.len();
    let slow = at_dns.iter().filter(|d| **d > SLOW).count();
    println!();
    println!("| Service LB IP change -> served ({n} changes) | p50 | p90 | p99 | max | mean |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| in the published snapshot (in-process poll) | {} |",
        Stats::of(&mut at_snapshot).row()
    );
    println!(
        "| in DNS over UDP (poll every {} µs) | {} |",
        s.poll.as_micros(),
        Stats::of(&mut at_dns).row()
    );
    println!();
    println!(
        "changes served in DNS after more than {} ms: {slow}; snapshot builds: {builds} for \
         {n} changes ({:.2} per change), mean build {:.3} ms; DNS polls timed out: {}; wall \
         time {:.1} s; RSS of this process (fake API + fedns) {} -> {} MiB",
        SLOW.as_millis(),
        builds as f64 / n.max(1) as f64,
        build_sum * 1e3 / builds.max(1) as f64,
        dns.timeouts,
        wall.as_secs_f64(),
        rss_before / 1024,
        rss_after / 1024
    );
}

/// Whether the published snapshot serves exactly `ip` for the service `key`.
fn snapshot_has(published: &Published, key: &str, ip: Ipv4Addr) -> bool {
    published
        .load()
        .services
        .get(key)
        .is_some_and(|f| f.members.iter().any(|m| m.v4.len() == 1 && m.v4[0].0 == ip))
}

// ---------------------------------------------------------------------------------------
// Part 2: scale, fedns as a child process.

fn scale(rt: &tokio::runtime::Runtime, s: &Settings, dir: &Path) {
    let total = s.clusters * s.services;
    println!(
        "\n== Scale: {} clusters x {} Services = {} names ({} objects in the fake APIs), \
         fedns as a child process ==",
        s.clusters,
        s.services,
        total,
        2 * total
    );
    std::fs::create_dir_all(dir).expect("create dir");
    let name = |k: usize, j: usize| format!("s{k:02}-{j:05}");
    let rss_empty = rss_kib("self");
    let t_load = Instant::now();
    let clusters: Vec<FakeCluster> = rt.block_on(async {
        let mut v = Vec::new();
        for k in 0..s.clusters {
            v.push(FakeCluster::start(&format!("c{k:02}")).await);
        }
        v
    });
    for (k, c) in clusters.iter().enumerate() {
        for j in 0..s.services {
            add_service(c, &name(k, j), &initial_ip(k, j));
        }
    }
    let load_time = t_load.elapsed();
    let rss_loaded = rss_kib("self");
    println!(
        "fake APIs loaded in {:.1} s; this process's RSS {} -> {} MiB",
        load_time.as_secs_f64(),
        rss_empty / 1024,
        rss_loaded / 1024
    );

    let refs: Vec<&FakeCluster> = clusters.iter().collect();
    // sync_timeout long: /readyz then turns 200 only when every cluster has synced.
    let config = write_config(dir, &refs, "sync_timeout: 1h, ");
    let bench_cpu0 = cpu_secs("self");
    let t_spawn = Instant::now();
    let mut server = Server::spawn(&config, &dir.join("fedns.log"));
    let pid = server.pid();
    let rss_started = rss_kib(&pid);
    let cpu_started = cpu_secs(&pid);
    println!(
        "fedns pid {pid}: listening after {:.1} ms, RSS {} MiB",
        ms(t_spawn.elapsed()),
        rss_started / 1024
    );

    // One probe name per cluster: a cluster's records reach the store all at once when
    // its three lists have completed, so one name resolving means all of its names are in
    // the published snapshot. The count is checked at the end from /debug/records.
    let mut dns = dns_client(server.dns);
    let probes: Vec<Name> = (0..s.clusters)
        .map(|k| fqdn(&name(k, s.services - 1)))
        .collect();
    let mut seen: Vec<Option<Duration>> = vec![None; s.clusters];
    let (mut ready_at, mut names_at) = (None, None);
    // How many clusters' names answered when /readyz first said 200.
    let mut answering_at_ready = 0;
    // Round trips of the probe queries while fedns lists and builds (the query path's
    // health under sync load); a query unanswered within 250 ms counts as a timeout.
    let mut sync_rtts = Vec::new();
    while ready_at.is_none() || names_at.is_none() {
        if t_spawn.elapsed() > s.sync_limit {
            println!(
                "not synced after {:?}: ready {ready_at:?}, clusters resolving {}/{}",
                s.sync_limit,
                seen.iter().filter(|x| x.is_some()).count(),
                s.clusters
            );
            return;
        }
        let became_ready = ready_at.is_none() && http_get(server.admin, "/readyz").0 == 200;
        if became_ready {
            ready_at = Some(t_spawn.elapsed());
        }
        for (k, probe) in probes.iter().enumerate() {
            if seen[k].is_none() {
                let t = Instant::now();
                let answer = ask_a(&mut dns, probe);
                if answer.is_some() {
                    sync_rtts.push(t.elapsed());
                }
                if answer.is_some_and(|a| !a.is_empty()) {
                    seen[k] = Some(t_spawn.elapsed());
                }
            }
        }
        if became_ready {
            answering_at_ready = seen.iter().filter(|x| x.is_some()).count();
        }
        if names_at.is_none() && seen.iter().all(|x| x.is_some()) {
            names_at = Some(t_spawn.elapsed());
        }
        server.check_alive();
        std::thread::sleep(Duration::from_millis(50));
    }
    let cpu_synced = cpu_secs(&pid);
    let sync_timeouts = std::mem::take(&mut dns.timeouts);
    let bench_cpu_synced = cpu_secs("self");
    let first_cluster = seen.iter().flatten().min().copied().unwrap_or_default();
    let sync_metrics = Metrics::scrape(server.admin);
    // Let the builds triggered by the last sync batches finish before reading memory.
    std::thread::sleep(Duration::from_secs(2));
    let rss_synced = rss_kib(&pid);
    let hwm_synced = hwm_kib(&pid);
    let rss_bench = rss_kib("self");
    println!(
        "ready after {:.2} s, all names answering after {:.2} s",
        ready_at.unwrap_or_default().as_secs_f64(),
        names_at.unwrap_or_default().as_secs_f64()
    );

    // Single changes once synced.
    let before = Metrics::scrape(server.admin);
    let cpu0 = cpu_secs(&pid);
    let t_changes = Instant::now();
    let mut at_dns = Vec::with_capacity(s.scale_changes);
    for i in 0..s.scale_changes {
        let k = i % s.clusters;
        let j = (i * 7919 + 13) % s.services;
        let svc = name(k, j);
        let ip = change_ip(i);
        let t0 = Instant::now();
        set_lb_ip(&clusters[k], &svc, ip);
        match wait_change(t0, None, &mut dns, &fqdn(&svc), ip, s) {
            Ok((_, d)) => at_dns.push(d),
            Err(e) => {
                println!("change {i} ({svc} -> {ip}): {e}; stopping this part");
                break;
            }
        }
        if (i + 1) % 20 == 0 {
            eprintln!(
                "  {} changes, fedns RSS {} MiB",
                i + 1,
                rss_kib(&pid) / 1024
            );
        }
    }
    let changes_wall = t_changes.elapsed();
    let cpu1 = cpu_secs(&pid);
    let after = Metrics::scrape(server.admin);
    let rss_end = rss_kib(&pid);
    let names = count_names(server.admin);
    drop(server);

    let n = at_dns.len().max(1) as f64;
    let builds = after.builds - before.builds;
    let build_sum = after.build_sum - before.build_sum;
    println!();
    println!(
        "| Scale: {} clusters x {} Services | value |",
        s.clusters, s.services
    );
    println!("|---|---|");
    println!(
        "| objects in the fake APIs (Services + EndpointSlices) | {} |",
        2 * total
    );
    println!(
        "| names in the published snapshot at the end (/debug/records) | {} |",
        names.map_or("?".into(), |n| n.to_string())
    );
    println!(
        "| start -> /readyz 200 (every cluster synced) | {:.2} s |",
        ready_at.unwrap_or_default().as_secs_f64()
    );
    println!(
        "| start -> a name of every cluster answers in DNS | {:.2} s |",
        names_at.unwrap_or_default().as_secs_f64()
    );
    println!(
        "| start -> the first cluster's names answer in DNS | {:.2} s |",
        first_cluster.as_secs_f64()
    );
    println!(
        "| clusters whose names answered when /readyz first said 200 | {answering_at_ready} of {} |",
        s.clusters
    );
    println!(
        "| CPU time start -> synced: fedns / this process (fake APIs, polling) | {:.2} s / {:.2} s |",
        cpu_synced - cpu_started,
        bench_cpu_synced - bench_cpu0
    );
    let rtt = Stats::of(&mut sync_rtts);
    println!(
        "| DNS queries during sync: answered (p50 / p99 / max round trip), unanswered in 250 ms | {} ({:.2} / {:.2} / {:.2} ms), {sync_timeouts} |",
        sync_rtts.len(),
        ms(rtt.p50),
        ms(rtt.p99),
        ms(rtt.max)
    );
    println!(
        "| snapshot builds during sync: count, total, mean | {}, {:.2} s, {:.1} ms |",
        sync_metrics.builds,
        sync_metrics.build_sum,
        sync_metrics.build_sum * 1e3 / sync_metrics.builds.max(1) as f64
    );
    println!(
        "| fedns RSS after start (before any list) | {} |",
        mib(rss_started)
    );
    println!("| fedns RSS 2 s after sync | {} |", mib(rss_synced));
    println!(
        "| fedns peak RSS (VmHWM) during sync | {} |",
        mib(hwm_synced)
    );
    println!("| fedns RSS after the changes | {} |", mib(rss_end));
    println!(
        "| bench process RSS (fake APIs): empty / loaded / after sync | {} / {} / {} |",
        mib(rss_empty),
        mib(rss_loaded),
        mib(rss_bench)
    );
    change_table("One Service LB IP change", s.poll, &mut at_dns);
    println!();
    println!(
        "per change: {:.2} snapshot builds, mean build {:.3} ms \
         (fedns_snapshot_build_duration_seconds sum/count), fedns CPU {:.1} ms \
         (utime+stime); wall {:.1} s; DNS polls timed out: {}",
        builds as f64 / n,
        build_sum * 1e3 / builds.max(1) as f64,
        (cpu1 - cpu0) * 1e3 / n,
        changes_wall.as_secs_f64(),
        dns.timeouts
    );
}

// ---------------------------------------------------------------------------------------
// Part 3: Gateway API routes.

fn gateway_api(rt: &tokio::runtime::Runtime, s: &Settings, dir: &Path) {
    let per_cluster = s.gateways * s.routes;
    println!(
        "\n== Gateway API: {} clusters x {} Gateways x {} HTTPRoutes = {} routes, fedns as a child process ==",
        s.clusters,
        s.gateways,
        s.routes,
        s.clusters * per_cluster
    );
    std::fs::create_dir_all(dir).expect("create dir");
    let host = |k: usize, g: usize, j: usize| format!("r{j:03}.g{g:03}.c{k:02}.{ZONE}");
    let gw_ip = |k: usize, g: usize| format!("10.{k}.{g}.1");
    let clusters: Vec<FakeCluster> = rt.block_on(async {
        let mut v = Vec::new();
        for k in 0..s.clusters {
            v.push(FakeCluster::start(&format!("g{k:02}")).await);
        }
        v
    });
    let t_load = Instant::now();
    for (k, c) in clusters.iter().enumerate() {
        c.install_crd(Resource::Gateways);
        c.install_crd(Resource::HttpRoutes);
        for g in 0..s.gateways {
            let listener = Listener::http("web", 80).hostname(&format!("*.{ZONE}"));
            let gw = format!("gw{g:03}");
            c.apply(
                Resource::Gateways,
                gateway(NAMESPACE, &gw, &[listener], &[&gw_ip(k, g)], true),
            );
            for j in 0..s.routes {
                let backend = format!("b{g:03}-{j:03}");
                c.apply(
                    Resource::HttpRoutes,
                    http_route(
                        NAMESPACE,
                        &format!("r{g:03}-{j:03}"),
                        &[&host(k, g, j)],
                        &[ParentRef::new(&gw)],
                        &[&backend],
                    ),
                );
                c.apply(
                    Resource::EndpointSlices,
                    endpoint_slice(NAMESPACE, &backend, &format!("{backend}-1"), &[true]),
                );
            }
        }
    }
    println!(
        "fake APIs loaded in {:.1} s",
        t_load.elapsed().as_secs_f64()
    );
    let refs: Vec<&FakeCluster> = clusters.iter().collect();
    let config = write_config(dir, &refs, "sync_timeout: 1h, ");
    let t_spawn = Instant::now();
    let mut server = Server::spawn(&config, &dir.join("fedns.log"));
    let pid = server.pid();
    let rss_started = rss_kib(&pid);
    let cpu_started = cpu_secs(&pid);
    // The last route of each cluster: a cluster's routes reach the store together.
    let mut dns = dns_client(server.dns);
    let probes: Vec<Name> = (0..s.clusters)
        .map(|k| Name::from_ascii(format!("{}.", host(k, s.gateways - 1, s.routes - 1))).unwrap())
        .collect();
    let mut seen = vec![false; s.clusters];
    let (mut ready_at, mut names_at) = (None, None);
    while ready_at.is_none() || names_at.is_none() {
        if t_spawn.elapsed() > s.sync_limit {
            println!("not synced after {:?}", s.sync_limit);
            return;
        }
        if ready_at.is_none() && http_get(server.admin, "/readyz").0 == 200 {
            ready_at = Some(t_spawn.elapsed());
        }
        for (k, probe) in probes.iter().enumerate() {
            seen[k] = seen[k] || ask_a(&mut dns, probe).is_some_and(|a| !a.is_empty());
        }
        if names_at.is_none() && seen.iter().all(|x| *x) {
            names_at = Some(t_spawn.elapsed());
        }
        server.check_alive();
        std::thread::sleep(Duration::from_millis(50));
    }
    let cpu_synced = cpu_secs(&pid);
    std::thread::sleep(Duration::from_secs(2));
    let rss_synced = rss_kib(&pid);
    let hwm_synced = hwm_kib(&pid);

    // Single route changes: a route's hostname replaced by a new name, until it answers
    // with its Gateway's address.
    let cpu0 = cpu_secs(&pid);
    let mut at_dns = Vec::with_capacity(s.scale_changes);
    let mut changed = std::collections::HashMap::new();
    for i in 0..s.scale_changes {
        let k = i % s.clusters;
        let g = (i * 31 + 7) % s.gateways;
        let j = (i * 7919 + 13) % s.routes;
        let new = format!("change{i}.{ZONE}");
        // As the Gateway's controller would: the route's status accepts it at its new
        // generation (the spec changed, so the generation is one more).
        let generation = changed.entry((k, g, j)).or_insert(1);
        *generation += 1;
        let parent = ParentRef::new(&format!("gw{g:03}"));
        let mut route = http_route(
            NAMESPACE,
            &format!("r{g:03}-{j:03}"),
            &[&new],
            std::slice::from_ref(&parent),
            &[&format!("b{g:03}-{j:03}")],
        );
        set_route_parent_status(&mut route, &parent, true, *generation);
        let t0 = Instant::now();
        clusters[k].apply(Resource::HttpRoutes, route);
        let ip: Ipv4Addr = gw_ip(k, g).parse().unwrap();
        let name = Name::from_ascii(format!("{new}.")).unwrap();
        match wait_change(t0, None, &mut dns, &name, ip, s) {
            Ok((_, d)) => at_dns.push(d),
            Err(e) => {
                println!("route change {i} ({new}): {e}; stopping this part");
                break;
            }
        }
    }
    let cpu1 = cpu_secs(&pid);
    let rss_end = rss_kib(&pid);
    let names = count_names(server.admin);
    drop(server);
    println!();
    println!(
        "| Gateway API: {} clusters x {} Gateways x {} HTTPRoutes | value |",
        s.clusters, s.gateways, s.routes
    );
    println!("|---|---|");
    println!(
        "| objects in the fake APIs (Gateways + HTTPRoutes + EndpointSlices) | {} |",
        s.clusters * (s.gateways + 2 * per_cluster)
    );
    println!(
        "| names in the published snapshot at the end (/debug/records) | {} |",
        names.map_or("?".into(), |n| n.to_string())
    );
    println!(
        "| start -> /readyz 200 | {:.2} s |",
        ready_at.unwrap_or_default().as_secs_f64()
    );
    println!(
        "| start -> a route of every cluster answers in DNS | {:.2} s |",
        names_at.unwrap_or_default().as_secs_f64()
    );
    println!(
        "| fedns CPU time start -> synced | {:.2} s |",
        cpu_synced - cpu_started
    );
    println!(
        "| fedns RSS after start / 2 s after sync / peak (VmHWM) / after the changes | {} / {} / {} / {} |",
        mib(rss_started),
        mib(rss_synced),
        mib(hwm_synced),
        mib(rss_end)
    );
    change_table("One HTTPRoute hostname change", s.poll, &mut at_dns);
    println!(
        "fedns CPU per change {:.1} ms",
        (cpu1 - cpu0) * 1e3 / at_dns.len().max(1) as f64
    );
}

/// `fedns serve` as a child process, killed when dropped.
struct Server {
    proc: Process,
    dns: SocketAddr,
    admin: SocketAddr,
}

impl Server {
    fn spawn(config: &Path, log: &Path) -> Server {
        let log = std::fs::File::create(log).expect("create log file");
        let mut cmd = serve_command(env!("CARGO_BIN_EXE_fedns"));
        cmd.arg("--config")
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .args(["--drain", "0s", "--log-level", "info,hickory_server=warn"])
            .stdin(Stdio::null())
            .stderr(log);
        let proc = Process::spawn(&mut cmd).expect("start fedns serve");
        // The reader thread keeps draining stdout after the `listening` lines.
        let listening = match proc.wait_listening(Duration::from_secs(60)) {
            Ok(l) if !l.dns.is_empty() && l.admin.is_some() => l,
            _ => panic!("fedns serve did not print its addresses (see its log)"),
        };
        Server {
            proc,
            dns: listening.dns[0],
            admin: listening.admin.unwrap(),
        }
    }

    fn pid(&self) -> String {
        self.proc.pid().to_string()
    }

    fn check_alive(&mut self) {
        if let Some(status) = self.proc.exited() {
            panic!("fedns serve exited: {status}");
        }
    }
}

/// The snapshot-build figures of fedns's /metrics.
#[derive(Default)]
struct Metrics {
    builds: u64,
    build_sum: f64,
}

impl Metrics {
    fn scrape(admin: SocketAddr) -> Metrics {
        let (status, body) = http_get(admin, "/metrics");
        assert_eq!(status, 200, "/metrics: {body}");
        let value = |name: &str| {
            body.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or_else(|| panic!("{name} missing from /metrics"))
        };
        Metrics {
            builds: value("fedns_snapshot_builds_total") as u64,
            build_sum: value("fedns_snapshot_build_duration_seconds_sum"),
        }
    }
}

/// Names in the published snapshot, from /debug/records (a large document at this scale:
/// fetched once, at the end).
fn count_names(admin: SocketAddr) -> Option<usize> {
    let (status, body) = http_get(admin, "/debug/records");
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    Some(v["names"].as_array()?.len())
}

/// One HTTP/1.1 GET of fedns's admin endpoints: (status, body).
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    fedns_testkit::http::get_blocking(addr, path, Duration::from_secs(120))
}

// ---------------------------------------------------------------------------------------
// Shared pieces.

/// A LoadBalancer Service with one address and an EndpointSlice with one ready endpoint.
fn add_service(c: &FakeCluster, name: &str, ip: &str) {
    c.apply(
        Resource::Services,
        lb_service(NAMESPACE, name, &[ip], None, &[443]),
    );
    c.apply(
        Resource::EndpointSlices,
        endpoint_slice(NAMESPACE, name, &format!("{name}-1"), &[true]),
    );
}

/// Replaces a Service's load-balancer address (a MODIFIED event on the watch).
fn set_lb_ip(c: &FakeCluster, name: &str, ip: Ipv4Addr) {
    c.apply(
        Resource::Services,
        lb_service(NAMESPACE, name, &[&ip.to_string()], None, &[443]),
    );
}

fn initial_ip(cluster: usize, service: usize) -> String {
    format!("10.{}.{}.{}", cluster, service >> 8, service & 255)
}

/// A fresh address per change (never one that a Service already has).
fn change_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        100,
        64 + ((i >> 16) & 63) as u8,
        ((i >> 8) & 255) as u8,
        (i & 255) as u8,
    )
}

fn fqdn(service: &str) -> Name {
    Name::from_ascii(format!("{service}.{NAMESPACE}.{FEDERATION}.svc.{ZONE}.")).unwrap()
}

/// Writes a kubeconfig per cluster and a fedns config watching them; returns its path.
/// No zone file (fedns synthesizes SOA and NS), no GeoIP (one answer per name anyway: every
/// name exists in one cluster), no probes.
fn write_config(dir: &Path, clusters: &[&FakeCluster], kube_extra: &str) -> PathBuf {
    let mut yaml = format!(
        "zone: {ZONE}\nfederation: {FEDERATION}\nhealth: {{ probe: none }}\n\
         kubernetes: {{ {kube_extra}watch_timeout: 30s }}\nclusters:\n"
    );
    for (k, c) in clusters.iter().enumerate() {
        let kubeconfig = c.write_kubeconfig(dir);
        yaml.push_str(&format!(
            "  - {{ name: {name}, location: {{ lat: {lat}, lon: {lon} }}, kubeconfig: \"{path}\", context: {name} }}\n",
            name = c.name(),
            lat = -45 + (k % 10) as i32 * 10,
            lon = -170 + (k % 34) as i32 * 10,
            path = kubeconfig.display(),
        ));
    }
    let path = dir.join("fedns.yaml");
    std::fs::write(&path, yaml).expect("write config");
    path
}

/// Polls until the change is served. Returns (time until the snapshot showed it, when
/// `snapshot` is given; time until DNS answered it), both from `t0`. The snapshot is
/// checked every ~0.1 ms (a short sleep, not a spin: this machine has few CPUs), DNS every
/// `s.poll`.
fn wait_change(
    t0: Instant,
    snapshot: Option<&dyn Fn() -> bool>,
    dns: &mut UdpClient,
    name: &Name,
    ip: Ipv4Addr,
    s: &Settings,
) -> Result<(Option<Duration>, Duration), String> {
    let mut snap_at = None;
    let mut dns_at = None;
    let mut next_dns = t0;
    loop {
        if let Some(check) = snapshot
            && snap_at.is_none()
            && check()
        {
            snap_at = Some(t0.elapsed());
        }
        if dns_at.is_none() && Instant::now() >= next_dns {
            next_dns = Instant::now() + s.poll;
            if ask_a(dns, name).is_some_and(|a| a == [ip]) {
                dns_at = Some(t0.elapsed());
            }
        }
        if let Some(d) = dns_at
            && (snapshot.is_none() || snap_at.is_some())
        {
            // DNS answers from the published snapshot: it cannot have been later.
            return Ok((snap_at.map(|t| t.min(d)), d));
        }
        if t0.elapsed() > s.change_limit {
            return Err(format!("not served after {:?}", s.change_limit));
        }
        std::thread::sleep(Duration::from_micros(20));
    }
}

/// A blocking UDP DNS client for A queries, waiting 250 ms for each reply.
fn dns_client(server: SocketAddr) -> UdpClient {
    UdpClient::new(server, Duration::from_millis(250))
}

/// The A records of `name`; None when no reply came in time.
fn ask_a(dns: &mut UdpClient, name: &Name) -> Option<Vec<Ipv4Addr>> {
    dns.exchange(fedns_testkit::dns::a_query(name))
        .map(|r| a_records(&r))
}

/// Percentiles (nearest rank) of a set of durations.
struct Stats {
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
    mean: Duration,
}

impl Stats {
    fn of(v: &mut [Duration]) -> Stats {
        if v.is_empty() {
            let z = Duration::ZERO;
            return Stats {
                p50: z,
                p90: z,
                p99: z,
                max: z,
                mean: z,
            };
        }
        v.sort();
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Stats {
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: v[v.len() - 1],
            mean: v.iter().sum::<Duration>() / v.len() as u32,
        }
    }

    fn row(&self) -> String {
        [self.p50, self.p90, self.p99, self.max, self.mean]
            .map(|d| format!("{:.2} ms", ms(d)))
            .join(" | ")
    }
}

/// The table of one kind of change once synced: from the change to the name served in DNS.
fn change_table(what: &str, poll: Duration, at_dns: &mut [Duration]) {
    println!();
    println!(
        "| {what} once synced ({} changes) | p50 | p90 | p99 | max | mean |",
        at_dns.len()
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| change -> served in DNS (poll every {} µs) | {} |",
        poll.as_micros(),
        Stats::of(at_dns).row()
    );
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
