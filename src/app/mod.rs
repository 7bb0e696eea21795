//! Wiring: load the config and everything it names (before any port is bound), fill the
//! store from the sources, build and publish the first snapshot, start the listeners.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::rr::Name;

use crate::config::zonefile::{ZoneData, ZoneError};
use crate::config::{Config, ConfigError};
use crate::demo;
use crate::dns::Handler;
use crate::geo::{GeoDb, GeoError};
use crate::health::{self, HealthTable};
use crate::listen::tcp::TcpLimits;
use crate::listen::{DnsServer, ServeSettings};
use crate::snapshot::{BuildError, Published, Snapshot};
use crate::sources::kubernetes::{self, ClusterAccess, KubeError};
use crate::store::{Endpoint, Store};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::config::HealthConfig;
use crate::dns::rrl::Limiter;
use crate::metrics::Metrics;
use crate::ops::admin::{self, AdminState, Readiness};
use crate::sources::state_file;
use crate::sources::static_services;

/// Anything that stops a config from loading. Each names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Zone(#[from] ZoneError),
    #[error(transparent)]
    Geo(#[from] GeoError),
    #[error("{0}")]
    Build(#[from] BuildError),
    #[error(transparent)]
    Kube(#[from] KubeError),
}

/// A config and what it names, loaded and checked.
pub struct LoadedConfig {
    pub config: Config,
    /// None for the embedded demo.
    pub path: Option<PathBuf>,
    pub zone: ZoneData,
    pub geoip: Option<Arc<GeoDb>>,
    /// API access of every watched member cluster, kubeconfigs read and checked.
    pub clusters: Vec<ClusterAccess>,
}

impl LoadedConfig {
    /// Loads a config file, its zone file and its GeoIP database.
    pub fn from_file(path: &Path) -> Result<LoadedConfig, LoadError> {
        let config = Config::load(path)?;
        let apex = apex(&config)?;
        let zone = match &config.zone_file {
            Some(z) => ZoneData::load(z, &apex)?,
            None => ZoneData::synthesized(&apex, config.ttl),
        };
        let geoip = match &config.geoip {
            Some(g) => Some(Arc::new(GeoDb::open(&g.database)?)),
            None => None,
        };
        let mut clusters = Vec::new();
        for c in &config.clusters {
            clusters.extend(ClusterAccess::load(&c.value)?);
        }
        Ok(LoadedConfig {
            config,
            path: Some(path.to_owned()),
            zone,
            geoip,
            clusters,
        })
    }

    /// The embedded demo federation.
    pub fn demo() -> Result<LoadedConfig, LoadError> {
        let name = Path::new("<embedded demo config>");
        let config = Config::parse(demo::CONFIG, name)?;
        let apex = apex(&config)?;
        let zone = ZoneData::parse(demo::ZONE, Path::new("<embedded demo zone>"), &apex)?;
        let geoip = GeoDb::from_bytes(
            demo::GEOIP.to_vec(),
            Path::new("<embedded geoip/demo.mmdb>"),
        )?;
        Ok(LoadedConfig {
            config,
            path: None,
            zone,
            geoip: Some(Arc::new(geoip)),
            clusters: Vec::new(),
        })
    }

    /// Builds a snapshot from this config, the store's contents and the probes' health.
    pub fn snapshot(&self, store: &Store, health: &HealthTable) -> Result<Snapshot, BuildError> {
        Snapshot::build(
            &self.config,
            &self.zone,
            self.geoip.clone(),
            &store.contents(),
            &|ep, ip| health.endpoint_health(ep, ip, &self.config.health),
        )
    }
}

fn apex(config: &Config) -> Result<Name, BuildError> {
    let mut n =
        Name::from_ascii(&config.zone).map_err(|_| BuildError::Zone(config.zone.clone()))?;
    n.set_fqdn(true);
    Ok(n)
}

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
}

/// The running app: the loaded config, the store, the health table, the published snapshot
/// and the metrics, with the sources' lifecycle, publishing, reload and readiness.
pub struct App {
    /// The config file, for reloads (None: the embedded demo, which never reloads).
    pub path: Option<PathBuf>,
    /// The current config and what it names; replaced whole by a successful reload.
    pub loaded: ArcSwap<LoadedConfig>,
    pub store: Arc<Store>,
    pub health: Arc<HealthTable>,
    pub published: Published,
    pub metrics: Arc<Metrics>,
    pub started: Instant,
    /// Set on SIGTERM: /readyz answers 503 while in-flight work drains.
    pub draining: AtomicBool,
    /// The sources' tasks, restarted by reloads when their settings change.
    sources: Mutex<Sources>,
}

#[derive(Default)]
struct Sources {
    /// Per watched cluster: the fingerprint of its access settings, and its task.
    watchers: HashMap<String, (u64, JoinHandle<()>)>,
    prober: Option<(HealthConfig, JoinHandle<()>)>,
}

impl App {
    /// Makes the sources match a (new) config: static services into the store, watchers
    /// started, restarted or stopped per cluster, the prober restarted if its settings
    /// changed. Clusters whose settings did not change keep their watches and records.
    fn sync_sources(&self, loaded: &LoadedConfig) {
        self.store
            .set_static(static_services::endpoints(&loaded.config));
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let zone = loaded
            .config
            .zone
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let wanted: HashMap<&str, &ClusterAccess> = loaded
            .clusters
            .iter()
            .map(|a| (a.cluster.as_str(), a))
            .collect();
        sources.watchers.retain(|name, (_, task)| {
            let keep = wanted.contains_key(name.as_str());
            if !keep {
                task.abort();
            }
            keep
        });
        for (name, access) in wanted {
            let fingerprint = access.fingerprint(&loaded.config.kubernetes, &zone);
            if sources
                .watchers
                .get(name)
                .is_some_and(|(f, _)| *f == fingerprint)
            {
                continue;
            }
            if let Some((_, old)) = sources.watchers.remove(name) {
                info!(
                    cluster = name,
                    "cluster access changed; restarting its watches"
                );
                old.abort();
            }
            let task = kubernetes::spawn(
                access.clone(),
                loaded.config.kubernetes.clone(),
                zone.clone(),
                self.store.clone(),
            );
            sources
                .watchers
                .insert(name.to_owned(), (fingerprint, task));
        }
        let health = &loaded.config.health;
        if sources.prober.as_ref().is_none_or(|(h, _)| h != health) {
            if let Some((_, old)) = sources.prober.take() {
                old.abort();
            }
            let task = tokio::spawn(health::prober::run(
                self.store.clone(),
                self.health.clone(),
                health.clone(),
            ));
            sources.prober = Some((health.clone(), task));
        }
    }

    /// Reloads the config file and everything it names. A failure keeps the old state
    /// serving and returns why.
    pub fn reload(&self) -> Result<(), LoadError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let result = LoadedConfig::from_file(path).and_then(|new| {
            // Check that a snapshot builds before anything is switched.
            new.snapshot(&self.store, &self.health)?;
            Ok(new)
        });
        match result {
            Ok(new) => {
                let old = self.loaded.load();
                if old.config.listen.dns != new.config.listen.dns
                    || old.config.listen.admin != new.config.listen.admin
                    || old.config.rrl != new.config.rrl
                    || old.config.state_file != new.config.state_file
                {
                    warn!(
                        "listen addresses, rrl or state_file changed; they take effect at the next restart"
                    );
                }
                self.sync_sources(&new);
                self.loaded.store(Arc::new(new));
                self.store.rebuild_all();
                self.metrics.reload(true);
                info!(path = %path.display(), "reloaded");
                Ok(())
            }
            Err(e) => {
                self.metrics.reload(false);
                error!("reload failed, still serving the previous config: {e}");
                Err(e)
            }
        }
    }

    /// Builds and publishes a snapshot; the old one keeps serving if this fails.
    /// Publishes what changed: a full rebuild after a reload or a health change, else a
    /// snapshot that shares everything with the current one but the changed names. The
    /// old snapshot keeps serving if a full build fails.
    fn publish(&self) {
        let dirty = self.store.take_dirty();
        if !dirty.full && !dirty.clusters && dirty.names.is_empty() {
            self.cluster_metrics();
            return;
        }
        let start = Instant::now();
        let contents = self.store.contents();
        let loaded = self.loaded.load();
        let health = |ep: &Endpoint, ip| self.health.endpoint_health(ep, ip, &loaded.config.health);
        let next = if dirty.full {
            match Snapshot::build(
                &loaded.config,
                &loaded.zone,
                loaded.geoip.clone(),
                &contents,
                &health,
            ) {
                Ok(s) => {
                    let names: Vec<&str> = s.clusters.iter().map(|c| c.name.as_str()).collect();
                    self.metrics.set_clusters(&names);
                    s
                }
                Err(e) => {
                    error!("cannot build a snapshot, still serving the previous one: {e}");
                    return;
                }
            }
        } else {
            self.published
                .load()
                .update(&dirty.names, &contents, &health)
        };
        self.published.store(Arc::new(next));
        self.metrics.snapshot_builds.inc();
        self.metrics
            .snapshot_build_duration
            .observe(start.elapsed().as_secs_f64());
        self.cluster_metrics();
    }

    fn cluster_metrics(&self) {
        let m = &self.metrics;
        for (name, c) in self.store.contents() {
            let n = c.len() as i64;
            m.cluster_endpoints.with_label_values(&[&name]).set(n);
            if let Some(k) = &c.kube {
                m.cluster_stale
                    .with_label_values(&[&name])
                    .set(i64::from(k.stale));
                m.cluster_synced
                    .with_label_values(&[&name])
                    .set(i64::from(k.synced_at.is_some()));
                if let Some(t) = k
                    .last_event_at
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                {
                    m.cluster_last_sync
                        .with_label_values(&[&name])
                        .set(t.as_secs() as i64);
                }
            }
        }
        m.ready.set(i64::from(self.readiness().is_ok()));
    }

    /// Files whose change triggers a reload: the config, the zone file, the GeoIP
    /// database and the kubeconfigs.
    fn watched_files(&self) -> Vec<PathBuf> {
        let loaded = self.loaded.load();
        let mut files: Vec<PathBuf> = self.path.iter().cloned().collect();
        files.extend(loaded.config.zone_file.clone());
        files.extend(loaded.config.geoip.as_ref().map(|g| g.database.clone()));
        files.extend(loaded.clusters.iter().filter_map(|a| a.kubeconfig_path()));
        files
    }
}

/// Ready once every reachable member cluster's records are served (or `sync_timeout` has
/// passed), and not while draining.
impl Readiness for App {
    fn readiness(&self) -> Result<(), String> {
        if self.draining.load(Ordering::Relaxed) {
            return Err("shutting down".into());
        }
        let loaded = self.loaded.load();
        let timeout = loaded.config.kubernetes.sync_timeout;
        if self.started.elapsed() >= timeout {
            return Ok(());
        }
        // From the published snapshot, not the store: ready means the records are served.
        let snap = self.published.load();
        let waiting: Vec<&str> = loaded
            .clusters
            .iter()
            .filter(|a| {
                snap.clusters
                    .iter()
                    .find(|c| c.name == a.cluster)
                    // An unreachable cluster does not hold readiness back.
                    .is_some_and(|c| !c.synced && !c.stale)
            })
            .map(|a| a.cluster.as_str())
            .collect();
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "waiting for clusters to sync: {} (at most {:?} after start)",
                waiting.join(", "),
                timeout
            ))
        }
    }
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
        let mut sources = self.app.sources.lock().unwrap_or_else(|p| p.into_inner());
        for (_, t) in sources.watchers.values() {
            t.abort();
        }
        if let Some((_, t)) = sources.prober.take() {
            t.abort();
        }
    }
}

/// Fills the store, publishes the first snapshot, starts the sources, binds the DNS and
/// admin listeners, and starts the reloader.
pub async fn start(loaded: LoadedConfig, options: &Options) -> Result<Running, StartError> {
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
    let snapshot = loaded.snapshot(&store, &health)?;
    let names: Vec<&str> = snapshot.clusters.iter().map(|c| c.name.as_str()).collect();
    metrics.set_clusters(&names);
    let dns_addrs = if options.listen.is_empty() {
        loaded.config.listen.dns.clone()
    } else {
        options.listen.clone()
    };
    let admin_addr = options.admin.or(loaded.config.listen.admin);
    let app = Arc::new(App {
        path: loaded.path.clone(),
        published: Arc::new(ArcSwap::from_pointee(snapshot)),
        loaded: ArcSwap::from_pointee(loaded),
        store,
        health,
        metrics,
        started: Instant::now(),
        draining: AtomicBool::new(false),
        sources: Mutex::default(),
    });
    app.sync_sources(&app.loaded.load());
    // Gauges exist from the start, not from the first rebuild.
    app.cluster_metrics();
    let mut tasks = vec![tokio::spawn(publish_loop(app.clone(), changed))];
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
    .with_rrl(rrl);
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
                addrs: dns_addrs.clone(),
                source,
            }
        })?;
    let admin_addr = match admin_addr {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind {
                    addrs: vec![addr],
                    source,
                })?;
            let bound = listener.local_addr().ok();
            let state = AdminState {
                published: app.published.clone(),
                store: app.store.clone(),
                health: app.health.clone(),
                metrics: app.metrics.clone(),
                readiness: app.clone(),
            };
            tasks.push(tokio::spawn(admin::serve(listener, Arc::new(state))));
            bound
        }
        None => None,
    };
    if app.path.is_some() {
        // Stamped now, not when the task first runs, so that no change is missed.
        let seen = file_stamps(&app.watched_files());
        tasks.push(tokio::spawn(reload_loop(app.clone(), seen)));
    }
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
    #[error("cannot listen on {addrs:?}: {source}")]
    Bind {
        addrs: Vec<SocketAddr>,
        source: std::io::Error,
    },
}

/// The snapshot builder: rebuilds and publishes whenever the store changes (endpoints,
/// health, reloads). Bursts coalesce: a change during a build causes one more build.
async fn publish_loop(app: Arc<App>, mut changed: tokio::sync::watch::Receiver<u64>) {
    while changed.changed().await.is_ok() {
        // A build can take a while (a cluster's first sync, a full rebuild of a large
        // federation): keep it off the runtime's worker threads, which serve queries.
        let s = app.clone();
        let _ = tokio::task::spawn_blocking(move || s.publish()).await;
    }
}

/// How often the watched files are checked for changes.
const RELOAD_POLL: Duration = Duration::from_secs(1);

/// Reloads on SIGHUP and when a watched file changes. Files are polled (size, mtime,
/// inode), which also catches a GeoIP database replaced by rename as geoipupdate does.
async fn reload_loop(app: Arc<App>, mut seen: Vec<Stamp>) {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let by_signal = tokio::select! {
            _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending::<()>().await } } => true,
            _ = tokio::time::sleep(RELOAD_POLL) => false,
        };
        let now = file_stamps(&app.watched_files());
        if by_signal || now != seen {
            info!(signal = by_signal, "reloading");
            // Reading tens of MB of GeoIP data is blocking work: keep it off the runtime's
            // worker threads (the query path runs there).
            let s = app.clone();
            let _ = tokio::task::spawn_blocking(move || s.reload()).await;
            // Re-stat after the reload, so a failed reload is not retried until the
            // files change again.
            seen = file_stamps(&app.watched_files());
        }
    }
}

type Stamp = Option<(u64, SystemTime, u64)>;

fn file_stamps(files: &[PathBuf]) -> Vec<Stamp> {
    use std::os::unix::fs::MetadataExt;
    files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(f).ok()?;
            Some((m.len(), m.modified().ok()?, m.ino()))
        })
        .collect()
}
