//! Wiring: load the config and everything it names (before any port is bound), fill the
//! store from the sources, build and publish the first snapshot, start the listeners.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::rr::Name;

use crate::config::{Config, ConfigError};
use crate::demo;
use crate::dns::{DnsServer, Handler};
use crate::geo::{GeoDb, GeoError};
use crate::health::{self, HealthTable};
use crate::kubernetes::{self, ClusterAccess, KubeError};
use crate::snapshot::{BuildError, Published, Snapshot};
use crate::store::Store;
use crate::zonefile::{ZoneData, ZoneError};
use tokio::task::JoinHandle;
use tracing::error;

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
pub struct Loaded {
    pub config: Config,
    /// None for the embedded demo.
    pub path: Option<PathBuf>,
    pub zone: ZoneData,
    pub geoip: Option<Arc<GeoDb>>,
    /// API access of every watched member cluster, kubeconfigs read and checked.
    pub clusters: Vec<ClusterAccess>,
}

impl Loaded {
    /// Loads a config file, its zone file and its GeoIP database.
    pub fn from_file(path: &Path) -> Result<Loaded, LoadError> {
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
        Ok(Loaded {
            config,
            path: Some(path.to_owned()),
            zone,
            geoip,
            clusters,
        })
    }

    /// The embedded demo federation.
    pub fn demo() -> Result<Loaded, LoadError> {
        let name = Path::new("<embedded demo config>");
        let config = Config::parse(demo::CONFIG, name)?;
        let apex = apex(&config)?;
        let zone = ZoneData::parse(demo::ZONE, Path::new("<embedded demo zone>"), &apex)?;
        let geoip = GeoDb::from_bytes(
            demo::GEOIP.to_vec(),
            Path::new("<embedded geoip/demo.mmdb>"),
        )?;
        Ok(Loaded {
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
            &|ip, port| health.health(ip, port),
        )
    }
}

fn apex(config: &Config) -> Result<Name, BuildError> {
    let mut n =
        Name::from_ascii(&config.zone).map_err(|_| BuildError::Zone(config.zone.clone()))?;
    n.set_fqdn(true);
    Ok(n)
}

/// A running fedns.
pub struct Running {
    pub dns: DnsServer,
    pub published: Published,
    pub store: Arc<Store>,
    pub health: Arc<HealthTable>,
    /// The snapshot builder and the cluster watchers; aborted on shutdown.
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Where DNS is served.
    pub fn dns_addrs(&self) -> &[SocketAddr] {
        &self.dns.addrs
    }

    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        self.dns.shutdown().await;
    }
}

/// Fills the store, publishes the first snapshot and binds the DNS listeners. `listen`
/// overrides the config's DNS addresses when not empty.
pub async fn start(loaded: Loaded, listen: &[SocketAddr]) -> Result<Running, StartError> {
    let loaded = Arc::new(loaded);
    let store = Arc::new(Store::from_config(&loaded.config));
    // Subscribe before the first build so that no change can fall between the two.
    let changed = store.subscribe();
    let health = Arc::new(HealthTable::default());
    let snapshot = loaded.snapshot(&store, &health)?;
    let published: Published = Arc::new(ArcSwap::from_pointee(snapshot));
    let mut tasks = vec![
        tokio::spawn(publish(
            loaded.clone(),
            store.clone(),
            health.clone(),
            published.clone(),
            changed,
        )),
        tokio::spawn(health::run(
            store.clone(),
            health.clone(),
            loaded.config.health.clone(),
        )),
    ];
    let zone = loaded
        .config
        .zone
        .trim_end_matches('.')
        .to_ascii_lowercase();
    for access in &loaded.clusters {
        tasks.push(kubernetes::spawn(
            access.clone(),
            loaded.config.kubernetes.clone(),
            zone.clone(),
            store.clone(),
        ));
    }
    let addrs = if listen.is_empty() {
        &loaded.config.listen.dns[..]
    } else {
        listen
    };
    let dns = DnsServer::bind(addrs, Handler::new(published.clone()))
        .await
        .map_err(|source| StartError::Bind {
            addrs: addrs.to_vec(),
            source,
        })?;
    Ok(Running {
        dns,
        published,
        store,
        health,
        tasks,
    })
}

/// The snapshot builder: rebuilds and publishes whenever the store changes. Bursts of
/// changes coalesce: a change during a build triggers one more build, not one per change.
async fn publish(
    loaded: Arc<Loaded>,
    store: Arc<Store>,
    health: Arc<HealthTable>,
    published: Published,
    mut changed: tokio::sync::watch::Receiver<u64>,
) {
    while changed.changed().await.is_ok() {
        match loaded.snapshot(&store, &health) {
            Ok(s) => published.store(Arc::new(s)),
            // The old snapshot keeps serving.
            Err(e) => error!("cannot build a snapshot: {e}"),
        }
    }
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
