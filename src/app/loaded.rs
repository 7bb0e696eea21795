//! A config and everything it names (zone file, GeoIP database, kubeconfigs), read and
//! checked before anything is bound or swapped in.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::rr::Name;

use crate::config::zonefile::{ZoneData, ZoneError};
use crate::config::{Config, ConfigError};
use crate::demo;
use crate::fleet::{self, Fleet};
use crate::geo::{GeoDb, GeoError};
use crate::health::HealthTable;
use crate::health::quorum::Judge;
use crate::snapshot::{BuildError, Snapshot, Verdicts};
use crate::sources::kubernetes::{ClusterAccess, KubeError};
use crate::store::{Endpoint, Store};

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
    /// Digests that replicas of a fleet compare: of the config file's text, and of the
    /// GeoIP database's identity (type, build time, tree size); empty without one.
    pub config_digest: String,
    pub geoip_digest: String,
}

impl LoadedConfig {
    /// Loads a config file, its zone file and its GeoIP database.
    pub fn from_file(path: &Path) -> Result<LoadedConfig, LoadError> {
        let (config, text) = Config::load_with_text(path)?;
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
            geoip_digest: geoip_digest(geoip.as_deref()),
            geoip,
            clusters,
            config_digest: fleet::digest_bytes(text.as_bytes()),
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
            geoip_digest: geoip_digest(Some(&geoip)),
            geoip: Some(Arc::new(geoip)),
            clusters: Vec::new(),
            config_digest: fleet::digest_bytes(demo::CONFIG.as_bytes()),
        })
    }

    /// Builds a snapshot from this config, the store's contents and the probes' health
    /// (this replica's alone, or the fleet's quorum over every replica's).
    pub fn snapshot(
        &self,
        store: &Store,
        health: &HealthTable,
        fleet: Option<&Fleet>,
    ) -> Result<Snapshot, BuildError> {
        let judge = Judge::new(health, &self.config.health, fleet);
        self.snapshot_with(store, &|ep: &Endpoint, ip| judge.endpoint(ep, ip))
    }

    /// Builds a snapshot from this config and the store's contents, with health (and
    /// overrides) as `verdicts` say: what tests and benches use to set health directly.
    pub fn snapshot_with(
        &self,
        store: &Store,
        verdicts: &dyn Verdicts,
    ) -> Result<Snapshot, BuildError> {
        Snapshot::build(
            &self.config,
            &self.zone,
            self.geoip.clone(),
            &store.contents(),
            verdicts,
        )
    }
}

fn apex(config: &Config) -> Result<Name, BuildError> {
    let mut n =
        Name::from_ascii(&config.zone).map_err(|_| BuildError::Zone(config.zone.clone()))?;
    n.set_fqdn(true);
    Ok(n)
}

fn geoip_digest(db: Option<&GeoDb>) -> String {
    db.map(|d| fleet::digest_bytes(d.identity().as_bytes()))
        .unwrap_or_default()
}
