//! Wiring: load the config and everything it names (before any port is bound), fill the
//! store from the sources, build and publish the first snapshot, start the listeners;
//! and stop them again, draining first.
//!
//! - `loaded`: the config and what it names, read and checked;
//! - `sources`: the sources' lifecycle across reloads;
//! - `publish`: the snapshot builder and the per-cluster gauges;
//! - `reload`: SIGHUP and watched files;
//! - `readiness`: what /readyz says.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{DnstapConfig, HealthConfig};
use crate::dns::Handler;
use crate::dns::rrl::Limiter;
use crate::dnstap::{self, Tap};
use crate::fleet::overrides::Overrides;
use crate::fleet::{self, Fleet};
use crate::health::HealthTable;
use crate::listen::tcp::TcpLimits;
use crate::listen::{DnsServer, ServeSettings};
use crate::metrics::Metrics;
use crate::ops::admin::{self, AdminState};
use crate::ops::status;
use crate::snapshot::{BuildError, Published};
use crate::sources::state_file;
use crate::sources::static_services;
use crate::store::Store;

mod loaded;
mod publish;
mod readiness;
mod reload;
mod sources;
mod verdicts;

pub use loaded::{LoadError, LoadedConfig};

/// What `serve` adds to the config.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// DNS addresses instead of the config's `listen.dns` (port 0 picks one).
    pub listen: Vec<SocketAddr>,
    /// Admin address instead of the config's `listen.admin`.
    pub admin: Option<SocketAddr>,
    /// Log every query.
    pub query_log: bool,
    /// UDP workers per address instead of the config's `listen.udp_workers`.
    pub udp_workers: Option<NonZeroUsize>,
    /// dnstap instead of the config's `dnstap`, through reloads too.
    pub dnstap: Option<DnstapConfig>,
}

/// How long stopping waits for the fleet tasks to delete this replica's Leases.
const FLEET_STOP: Duration = Duration::from_secs(3);
/// How long stopping waits for the dnstap writer to send what it holds.
const DNSTAP_STOP: Duration = Duration::from_secs(2);

/// The running app: the loaded config, the store, the health table, the published snapshot
/// and the metrics, with the sources' lifecycle, publishing, reload and readiness.
pub struct App {
    /// The config file, for reloads (None: the embedded demo, which never reloads).
    pub path: Option<PathBuf>,
    /// The current config and what it names; replaced whole by a successful reload.
    pub loaded: ArcSwap<LoadedConfig>,
    pub store: Arc<Store>,
    pub health: Arc<HealthTable>,
    /// The other replicas' views, with a `fleet:` section (fixed at start: the replica's
    /// name does not change with a reload).
    pub fleet: Option<Arc<Fleet>>,
    /// The operators' overrides (`fedns drain`), read from every member cluster.
    pub overrides: Arc<Overrides>,
    pub published: Published,
    pub metrics: Arc<Metrics>,
    pub started: Instant,
    /// Set on SIGTERM: /readyz answers 503 while in-flight work drains.
    pub draining: AtomicBool,
    /// Set once the DNS listeners are closed: the fleet tasks delete this replica's
    /// Leases and end.
    stopping: tokio::sync::watch::Sender<bool>,
    /// The sources' tasks, restarted by reloads when their settings change.
    sources: Mutex<Sources>,
    /// The tap of the current config's `dnstap` (None: off), replaced by a reload that
    /// changes its settings; the query workers follow it.
    dnstap: Arc<dnstap::Current>,
    /// `serve --dnstap`: wins over every config's `dnstap`.
    dnstap_flag: Option<DnstapConfig>,
    /// Held through a reload: SIGHUP, a changed file and a caller of `reload` take turns.
    reloading: Mutex<()>,
}

#[derive(Default)]
struct Sources {
    /// Per watched cluster: the fingerprint of its access settings, and its task.
    watchers: HashMap<String, (u64, JoinHandle<()>)>,
    prober: Option<(HealthConfig, JoinHandle<()>)>,
    /// Per watched cluster: the fingerprint of its access and fleet settings, and the task
    /// that writes this replica's Lease there and watches the others'.
    fleet: HashMap<String, (u64, JoinHandle<()>)>,
}

/// A running fedns.
pub struct Running {
    pub dns: DnsServer,
    /// Where the admin server listens, if it does.
    pub admin_addr: Option<SocketAddr>,
    pub app: Arc<App>,
    /// The snapshot builder, the reloader and the admin server; aborted on shutdown.
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Where DNS is served.
    pub fn dns_addrs(&self) -> &[SocketAddr] {
        &self.dns.addrs
    }

    /// Turns /readyz to 503 at once, keeps answering for `drain` so that load balancers
    /// and forwarders move away, then stops the listeners and the sources.
    pub async fn shutdown(self, drain: Duration) {
        self.app.draining.store(true, Ordering::Relaxed);
        self.app.metrics.ready.set(0);
        tokio::time::sleep(drain).await;
        self.dns.shutdown().await;
        for t in &self.tasks {
            t.abort();
        }
        // The workers are gone: the dnstap writer sends what it holds and a STOP.
        let dnstap = self.app.dnstap.clone();
        let ended = tokio::task::spawn_blocking(move || dnstap.stop(DNSTAP_STOP)).await;
        if !matches!(ended, Ok(true)) {
            warn!(
                "dnstap: the writer had not sent everything in {DNSTAP_STOP:?}; the rest is lost"
            );
        }
        // The fleet tasks delete this replica's Leases (each within its own timeout), so
        // that its vote ends now; then they end.
        self.app.stopping.send_replace(true);
        let fleet: Vec<JoinHandle<()>> = {
            let mut sources = self.app.sources.lock().unwrap_or_else(|p| p.into_inner());
            sources.fleet.drain().map(|(_, (_, t))| t).collect()
        };
        let ended = futures::future::join_all(fleet);
        if tokio::time::timeout(FLEET_STOP, ended).await.is_err() {
            warn!("fleet: the Leases were not all deleted in {FLEET_STOP:?}; they will expire");
        }
        let mut sources = self.app.sources.lock().unwrap_or_else(|p| p.into_inner());
        for (_, t) in sources.watchers.values() {
            t.abort();
        }
        if let Some((_, t)) = sources.prober.take() {
            t.abort();
        }
    }
}

/// Starts the writer of a tap with these settings (None: dnstap off), counting its
/// frames in the shared metrics.
fn start_tap(
    metrics: &Metrics,
    settings: Option<dnstap::Settings>,
) -> std::io::Result<Option<Arc<Tap>>> {
    let Some(settings) = settings else {
        return Ok(None);
    };
    let m = &metrics.dnstap_frames;
    let counters = dnstap::Counters {
        sent: m.with_label_values(&["sent"]),
        dropped: m.with_label_values(&["dropped"]),
        lost: m.with_label_values(&["lost"]),
    };
    Tap::start(settings, counters).map(|t| Some(Arc::new(t)))
}

/// Fills the store, publishes the first snapshot, starts the sources, binds the DNS and
/// admin listeners, and starts the reloader.
pub async fn start(mut loaded: LoadedConfig, options: &Options) -> Result<Running, StartError> {
    if let Some(d) = &options.dnstap {
        loaded.config.dnstap = Some(d.clone());
    }
    let store = Arc::new(Store::with_static(static_services::endpoints(
        &loaded.config,
    )));
    if let Some(path) = &loaded.config.state_file {
        let watched: Vec<String> = loaded.clusters.iter().map(|a| a.cluster.clone()).collect();
        state_file::restore(&store, path, &watched);
    }
    // Subscribe before the first build so that no change can fall between the two.
    let changed = store.subscribe();
    let health = Arc::new(HealthTable::default());
    let metrics = Arc::new(Metrics::new());
    metrics.watch_health(health.clone());
    let fleet = loaded.config.fleet.as_ref().map(|f| {
        let me = fleet::replica_name(f.name.as_deref());
        info!(replica = me, namespace = f.namespace, "fleet: this replica");
        let fleet = Fleet::new(&me);
        fleet.set_own(
            &loaded.config_digest,
            &loaded.geoip_digest,
            loaded.config.health.quorum(true),
        );
        Arc::new(fleet)
    });
    let overrides = Arc::new(Overrides::default());
    if let Some(f) = &fleet {
        metrics.watch_fleet(f.clone(), health.clone(), overrides.clone());
    }
    let snapshot = loaded.snapshot(&store, &health, fleet.as_deref())?;
    let names: Vec<&str> = snapshot.clusters.iter().map(|c| c.name.as_str()).collect();
    metrics.set_clusters(&names);
    metrics.set_dnssec_keys(&loaded.dnssec_key_labels());
    let dns_addrs = if options.listen.is_empty() {
        loaded.config.listen.dns.clone()
    } else {
        options.listen.clone()
    };
    let admin_addr = options.admin.or(loaded.config.listen.admin);
    let dnstap = start_tap(&metrics, loaded.dnstap_settings()).map_err(StartError::Dnstap)?;
    let app = Arc::new(App {
        path: loaded.path.clone(),
        published: Arc::new(ArcSwap::from_pointee(snapshot)),
        loaded: ArcSwap::from_pointee(loaded),
        store,
        health,
        fleet,
        overrides,
        metrics,
        started: Instant::now(),
        draining: AtomicBool::new(false),
        stopping: tokio::sync::watch::Sender::new(false),
        sources: Mutex::default(),
        dnstap: Arc::new(dnstap::Current::new(dnstap)),
        dnstap_flag: options.dnstap.clone(),
        reloading: Mutex::default(),
    });
    app.sync_sources(&app.loaded.load());
    // Gauges exist from the start, not from the first rebuild.
    app.cluster_metrics();
    let mut tasks = vec![app.spawn_publisher(changed)];
    tasks.extend(app.spawn_fleet_expiry());
    if let Some(path) = app.loaded.load().config.state_file.clone() {
        tasks.push(tokio::spawn(state_file::run(app.store.clone(), path)));
    }
    let rrl = app
        .loaded
        .load()
        .config
        .rrl
        .as_ref()
        .map(|r| Arc::new(Limiter::new(r)));
    let handler = Handler::new(
        app.published.clone(),
        app.metrics.clone(),
        options.query_log,
    )
    .with_rrl(rrl)
    .with_dnstap(app.dnstap.clone());
    let settings = {
        let loaded = app.loaded.load();
        let listen = &loaded.config.listen;
        ServeSettings {
            udp_workers: options
                .udp_workers
                .or(listen.udp_workers)
                .or_else(|| std::thread::available_parallelism().ok())
                .map_or(1, NonZeroUsize::get),
            tcp: TcpLimits {
                max_connections: listen.tcp_max_connections.get(),
                idle_timeout: listen.tcp_idle_timeout,
                io_timeout: listen.tcp_io_timeout,
            },
            linger: listen.tcp_io_timeout,
        }
    };
    let dns =
        DnsServer::bind(&dns_addrs, handler, app.metrics.clone(), settings).map_err(|source| {
            StartError::Bind {
                what: "DNS",
                addrs: dns_addrs.clone(),
                source,
            }
        })?;
    let admin_addr = match admin_addr {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind {
                    what: "admin HTTP",
                    addrs: vec![addr],
                    source,
                })?;
            let bound = listener.local_addr().ok();
            let rates = Arc::new(status::Rates::default());
            let state = AdminState {
                published: app.published.clone(),
                store: app.store.clone(),
                health: app.health.clone(),
                metrics: app.metrics.clone(),
                readiness: app.clone(),
                fleet: app.fleet.clone(),
                overrides: app.overrides.clone(),
                rates: rates.clone(),
            };
            tasks.push(tokio::spawn(admin::serve(listener, Arc::new(state))));
            // The status page's answers per second: the counters, sampled.
            let metrics = app.metrics.clone();
            tasks.push(tokio::spawn(async move {
                let mut every = tokio::time::interval(status::SAMPLE_EVERY);
                loop {
                    every.tick().await;
                    rates.sample(&metrics.answers_by_cluster(), std::time::SystemTime::now());
                }
            }));
            bound
        }
        None => None,
    };
    tasks.extend(app.spawn_reloader());
    Ok(Running {
        dns,
        admin_addr,
        app,
        tasks,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Build(#[from] BuildError),
    #[error(
        "cannot listen for {what} on {}: {source}{}",
        list(addrs),
        bind_hint(what, addrs, source)
    )]
    Bind {
        /// "DNS" or "admin HTTP".
        what: &'static str,
        addrs: Vec<SocketAddr>,
        source: std::io::Error,
    },
    #[error("cannot start the dnstap writer thread: {0}")]
    Dnstap(std::io::Error),
}

fn list(addrs: &[SocketAddr]) -> String {
    let all: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    all.join(", ")
}

/// What to do about a port that cannot be bound.
fn bind_hint(what: &str, addrs: &[SocketAddr], e: &std::io::Error) -> String {
    let (flag, field) = if what == "DNS" {
        ("--listen ADDR:PORT", "listen.dns")
    } else {
        ("--admin ADDR:PORT", "listen.admin")
    };
    let mut hint = match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "; another program has that port: stop it, or choose another port with `{flag}` \
             (or `{field}` in the config)"
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "; ports below 1024 need root or CAP_NET_BIND_SERVICE \
             (`setcap cap_net_bind_service=+ep fedns`), or choose another with `{flag}`"
        ),
        std::io::ErrorKind::AddrNotAvailable => {
            format!("; no interface of this machine has that address: choose another with `{flag}`")
        }
        _ => String::new(),
    };
    if e.kind() == std::io::ErrorKind::AddrInUse && addrs.iter().any(|a| a.port() == 5353) {
        hint.push_str("; 5353 is also mDNS's port (avahi-daemon, systemd-resolved may hold it)");
    }
    hint
}
