//! A config and everything it names (zone file, GeoIP database, kubeconfigs), read and
//! checked before anything is bound or swapped in.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hickory_proto::rr::Name;
use tracing::info;

use crate::answer::scope;
use crate::config::zonefile::{ZoneData, ZoneError};
use crate::config::{Config, ConfigError, DnstapMessage, KeyStateConfig, field_line};
use crate::demo;
use crate::dnssec::{Key, KeyError, KeySpec, KeyState, Policy, Zone};
use crate::dnstap;
use crate::fleet::{self, Fleet};
use crate::geo::{GeoDb, GeoError};
use crate::health::HealthTable;
use crate::health::quorum::Judge;
use crate::snapshot::scope::PlaceMap;
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
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot start the dnstap writer thread: {0}")]
    Dnstap(std::io::Error),
}

/// The hint on a file a config names that cannot be read.
const RELATIVE: &str = " (a relative path is from the config file's directory)";

/// A config and what it names, loaded and checked.
pub struct LoadedConfig {
    pub config: Config,
    /// None for the embedded demo.
    pub path: Option<PathBuf>,
    pub zone: ZoneData,
    pub geoip: Option<Arc<GeoDb>>,
    /// The zone's keys at the moment the config loaded, when `dnssec:` is set.
    pub dnssec: Option<Arc<Zone>>,
    /// API access of every watched member cluster, kubeconfigs read and checked.
    pub clusters: Vec<ClusterAccess>,
    /// Digests that replicas of a fleet compare: of what makes the answers in the config,
    /// zone file and DNSSEC keys ([`answers_digest`]), and of the GeoIP database's identity (type,
    /// build time, tree size); empty without one.
    pub config_digest: String,
    pub geoip_digest: String,
    /// The place map of the ECS scopes (`snapshot::scope`), built by the first snapshot of
    /// this config and shared by the ones after it.
    places: Mutex<Option<Arc<PlaceMap>>>,
}

impl LoadedConfig {
    /// Loads a config file, its zone file and its GeoIP database.
    pub fn from_file(path: &Path) -> Result<LoadedConfig, LoadError> {
        let (config, text) = Config::load_with_text(path)?;
        let apex = apex(&config)?;
        let zone = match &config.zone_file {
            Some(z) => ZoneData::load(z, &apex, &config.federation).map_err(|e| match e {
                ZoneError::Read { path: file, source } => {
                    let what = format!("cannot read the zone file: {source}{RELATIVE}");
                    Config::named_file_error(&text, path, "zone_file", &file, &what).into()
                }
                other => LoadError::from(other),
            })?,
            None => ZoneData::synthesized(&apex, config.ttl),
        };
        let geoip = match &config.geoip {
            Some(g) => Some(Arc::new(GeoDb::open(&g.database).map_err(|e| {
                let what = match e {
                    GeoError::Read { source, .. } => {
                        format!("cannot read the GeoIP database: {source}{RELATIVE}")
                    }
                    GeoError::Invalid { message, .. } => {
                        format!("not a GeoIP database (MMDB): {message}")
                    }
                };
                let field = "geoip.database";
                Config::named_file_error(&text, path, field, &g.database, &what)
            })?)),
            None => None,
        };
        if let Some(state) = &config.state_file {
            let dir = state.parent().filter(|d| !d.as_os_str().is_empty());
            if dir.is_some_and(|d| !d.is_dir()) {
                let what = "its directory does not exist: create it, or name another file";
                return Err(
                    Config::named_file_error(&text, path, "state_file", state, what).into(),
                );
            }
        }
        let mut clusters = Vec::new();
        for (i, c) in config.clusters.iter().enumerate() {
            let access = ClusterAccess::load(&c.value).map_err(|e| ConfigError::Invalid {
                path: path.to_owned(),
                line: c.referenced.line(),
                field: format!("clusters[{i}]"),
                message: e.to_string(),
            })?;
            clusters.extend(access);
        }
        let dnssec = zone_keys(&config, &text, path, &apex)?;
        // The keys' DNSKEYs and states count too: replicas that sign with other keys
        // (the same paths, other files) do not answer alike.
        let mut answers_from = zone_text(&config).unwrap_or_default();
        if let Some(z) = &dnssec {
            for (k, state) in z.keys() {
                answers_from.push_str(&format!("\n; {} {}", k.key.dnskey(), state.as_str()));
            }
        }
        let config_digest = answers_digest(&text, Some(&answers_from));
        Ok(LoadedConfig {
            config,
            path: Some(path.to_owned()),
            zone,
            dnssec,
            geoip_digest: geoip_digest(geoip.as_deref()),
            geoip,
            clusters,
            config_digest,
            places: Mutex::default(),
        })
    }

    /// The embedded demo federation.
    pub fn demo() -> Result<LoadedConfig, LoadError> {
        let name = Path::new("<embedded demo config>");
        let config = Config::parse(demo::CONFIG, name)?;
        let apex = apex(&config)?;
        let zone = ZoneData::parse(
            demo::ZONE,
            Path::new("<embedded demo zone>"),
            &apex,
            &config.federation,
        )?;
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
            dnssec: None,
            clusters: Vec::new(),
            config_digest: answers_digest(demo::CONFIG, Some(demo::ZONE)),
            places: Mutex::default(),
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
        let mut snap = Snapshot::build(
            &self.config,
            &self.zone,
            self.geoip.clone(),
            self.dnssec.clone(),
            &store.contents(),
            verdicts,
        )?;
        self.prepare_scopes(&mut snap, None);
        Ok(snap)
    }

    /// The zone's keys for the `fedns_dnssec_keys` metric.
    pub fn dnssec_key_labels(&self) -> Vec<(String, &'static str, &'static str, &'static str)> {
        self.dnssec.as_ref().map_or_else(Vec::new, |z| {
            z.keys()
                .map(|(k, state)| {
                    let role = if k.key.is_ksk() { "ksk" } else { "zsk" };
                    (
                        k.key.tag().to_string(),
                        role,
                        k.key.algorithm.mnemonic(),
                        state.as_str(),
                    )
                })
                .collect()
        })
    }

    /// The dnstap settings of this config (None: off). A relative socket path is taken
    /// from the config file's folder.
    pub fn dnstap_settings(&self) -> Option<dnstap::Settings> {
        let d = self.config.dnstap.as_ref()?;
        let endpoint = match (&d.socket, &d.tcp) {
            (Some(p), _) => dnstap::Endpoint::Unix(match (&self.path, p.is_relative()) {
                (Some(cfg), true) => cfg.parent().unwrap_or(Path::new(".")).join(p),
                _ => p.clone(),
            }),
            // Validated: an address and port.
            (None, Some(a)) => dnstap::Endpoint::Tcp(a.parse().ok()?),
            (None, None) => return None,
        };
        let identity = d.identity.clone().unwrap_or_else(host_name);
        Some(dnstap::Settings {
            endpoint,
            identity: identity.into_bytes(),
            version: format!("fedns {}", env!("CARGO_PKG_VERSION")).into_bytes(),
            queries: d.messages.contains(&DnstapMessage::AuthQuery),
            responses: d.messages.contains(&DnstapMessage::AuthResponse),
            queue: d.queue,
        })
    }

    /// Gives a snapshot of this config its ECS scope maps (`answer::scope::prepare`),
    /// sharing the place map of this config's earlier snapshots and the scope maps of
    /// `old`.
    pub fn prepare_scopes(&self, snap: &mut Snapshot, old: Option<&Snapshot>) {
        let mut places = self.places.lock().unwrap_or_else(|e| e.into_inner());
        scope::prepare(snap, places.as_ref(), old, None);
        places.clone_from(&snap.places);
    }
}

/// The keys `dnssec.keys` names, read and checked, in their states of now. Every error
/// names the config file, the line of the key's entry and the key file.
fn zone_keys(
    config: &Config,
    text: &str,
    path: &Path,
    apex: &Name,
) -> Result<Option<Arc<Zone>>, LoadError> {
    let Some(d) = &config.dnssec else {
        return Ok(None);
    };
    let invalid = |line: u64, field: String, message: String| ConfigError::Invalid {
        path: path.to_owned(),
        line,
        field,
        message,
    };
    let mut specs = Vec::new();
    for (i, k) in d.keys.iter().enumerate() {
        let file = k.value.file();
        let key = Key::read(file).map_err(|e| {
            invalid(
                k.referenced.line(),
                format!("dnssec.keys[{i}]"),
                format!("{e}{}", if e.line == 0 { RELATIVE } else { "" }),
            )
        })?;
        specs.push(KeySpec {
            key,
            path: file.to_owned(),
            forced: k.value.state().map(|s| match s {
                KeyStateConfig::Published => KeyState::Published,
                KeyStateConfig::Active => KeyState::Active,
                KeyStateConfig::Retired => KeyState::Retired,
            }),
        });
    }
    let policy = Policy {
        validity: d.signature_validity.as_secs() as u32,
        dnskey_ttl: d.dnskey_ttl,
        cds: d.cds,
    };
    let zone = Zone::new(apex, specs, policy, crate::civil::unix_now()).map_err(|e| {
        invalid(
            field_line(text, "dnssec.keys"),
            "dnssec.keys".into(),
            e.to_string(),
        )
    })?;
    for (spec, state) in zone.keys() {
        info!(
            key = %spec.path.display(),
            tag = spec.key.tag(),
            ksk = spec.key.is_ksk(),
            state = state.as_str(),
            "dnssec key"
        );
    }
    Ok(Some(Arc::new(zone)))
}

fn apex(config: &Config) -> Result<Name, BuildError> {
    let mut n =
        Name::from_ascii(&config.zone).map_err(|_| BuildError::Zone(config.zone.clone()))?;
    n.set_fqdn(true);
    Ok(n)
}

/// The zone file's text, for the digest (it was read a moment ago; unreadable now counts
/// as none).
fn zone_text(config: &Config) -> Option<String> {
    std::fs::read_to_string(config.zone_file.as_ref()?).ok()
}

/// The config digest that replicas compare: the same on replicas that answer alike. It
/// covers the config's content, parsed, so comments, layout and key order do not count,
/// without what differs from replica to replica by design (`fleet.name`, `fleet.region`,
/// `fleet.publish_to`, `listen`), and the zone file's text.
pub fn answers_digest(config_text: &str, zone_text: Option<&str>) -> String {
    let mut lines = Vec::new();
    match serde_saphyr::from_str::<serde_json::Value>(config_text) {
        Ok(mut v) => {
            if let Some(fleet) = v.get_mut("fleet").and_then(|f| f.as_object_mut()) {
                for own in ["name", "region", "publish_to"] {
                    fleet.remove(own);
                }
            }
            if let Some(top) = v.as_object_mut() {
                top.remove("listen");
            }
            canonical_lines(&v, String::new(), &mut lines);
        }
        // Config text that loaded is YAML; should this parser disagree, the text stands in.
        Err(_) => lines.push(config_text.to_owned()),
    }
    lines.sort();
    lines.push(zone_text.unwrap_or_default().to_owned());
    fleet::digest_lines(lines.iter().map(String::as_str))
}

/// One `path = value` line per leaf of `v`, so that the order of mapping keys does not
/// count (the order of list items does).
fn canonical_lines(v: &serde_json::Value, path: String, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                canonical_lines(v, format!("{path}.{k}"), out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                canonical_lines(v, format!("{path}[{i}]"), out);
            }
        }
        leaf => out.push(format!("{path} = {leaf}")),
    }
}

fn geoip_digest(db: Option<&GeoDb>) -> String {
    db.map(|d| fleet::digest_bytes(d.identity().as_bytes()))
        .unwrap_or_default()
}

/// This machine's host name (dnstap's default identity); empty when unknown.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::answers_digest;

    const A: &str = "zone: fed.example.com\nttl: 30\nfleet: { name: r1, region: us-east-1 }\n\
                     listen: { dns: [\"10.0.0.1:53\"] }\nclusters:\n  - { name: a, region: x }\n";

    #[test]
    fn replicas_that_answer_alike_have_one_digest() {
        let zone = Some("@ IN SOA ns1 h 1 2 3 4 5\n");
        let d = answers_digest(A, zone);
        // Another replica: its own name, region and listen address, comments, another
        // key order.
        let b = "# replica two\nttl: 30\nzone: fed.example.com\n\
                 fleet: { region: eu-west-1, name: r2 }\nclusters:\n  - { region: x, name: a }\n";
        assert_eq!(answers_digest(b, zone), d);
        // What changes answers changes the digest: a value, a list's order, the zone file.
        assert_ne!(answers_digest(&A.replace("ttl: 30", "ttl: 60"), zone), d);
        let two = A.replace("  - { name: a, region: x }\n", "  - b\n  - a\n");
        let swapped = A.replace("  - { name: a, region: x }\n", "  - a\n  - b\n");
        assert_ne!(answers_digest(&two, zone), answers_digest(&swapped, zone));
        assert_ne!(answers_digest(A, Some("@ IN SOA ns1 h 2 2 3 4 5\n")), d);
    }
}
