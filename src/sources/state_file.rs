//! The optional state file: the last-known Kubernetes endpoints of every cluster, so that
//! a restart while some member APIs are unreachable still answers with their last-known
//! records (flagged stale) instead of dropping them.
//!
//! Written atomically (temporary file, fsync, rename, fsync of the directory) after
//! changes, at most once per `WRITE_EVERY`; read once at start. A missing file is normal;
//! an unreadable or corrupt one is logged, named, and ignored.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::store::{ClusterEndpoints, Endpoint, Store};

/// At most one write per this interval, however often endpoints change.
const WRITE_EVERY: Duration = Duration::from_secs(2);
/// Bumped when the format changes incompatibly; other versions are ignored.
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    /// Unix seconds.
    written_at: u64,
    clusters: BTreeMap<String, ClusterRecord>,
}

#[derive(Serialize, Deserialize)]
struct ClusterRecord {
    /// Unix seconds of the cluster's first full sync in the run that wrote this.
    synced_at: Option<u64>,
    endpoints: Vec<Endpoint>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: cannot read the state file: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a fedns state file: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// What a state file holds: when it was written, and the endpoints per cluster.
pub type Saved = (SystemTime, BTreeMap<String, Vec<Endpoint>>);

/// Reads the state file. `Ok(None)` when there is no file yet.
pub fn load(path: &Path) -> Result<Option<Saved>, StateError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let file: File = serde_json::from_slice(&text).map_err(|e| StateError::Invalid {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    if file.version != VERSION {
        return Err(StateError::Invalid {
            path: path.to_owned(),
            message: format!(
                "version {}, this fedns reads version {VERSION}",
                file.version
            ),
        });
    }
    let written = UNIX_EPOCH + Duration::from_secs(file.written_at);
    let clusters = file
        .clusters
        .into_iter()
        .map(|(name, c)| (name, c.endpoints))
        .collect();
    Ok(Some((written, clusters)))
}

/// Writes the Kubernetes endpoints of every cluster that has some, atomically: the synced
/// ones, and the ones still serving what the last state file restored (a cluster whose
/// API stayed down across two restarts must not lose its records at the second).
pub fn save(path: &Path, clusters: &BTreeMap<String, ClusterEndpoints>) -> std::io::Result<()> {
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let file = File {
        version: VERSION,
        written_at: secs(SystemTime::now()),
        clusters: clusters
            .iter()
            .filter_map(|(name, c)| {
                let k = c.kube.as_ref()?;
                // Records reach the store only with a full sync or a restore, so an
                // unsynced cluster's records are restored ones: keep them.
                if k.synced_at.is_none() && k.objects.is_empty() {
                    return None;
                }
                let mut endpoints: Vec<Endpoint> =
                    k.objects.values().map(|e| (**e).clone()).collect();
                endpoints.sort_by_key(Endpoint::key);
                Some((
                    name.clone(),
                    ClusterRecord {
                        synced_at: k.synced_at.map(secs),
                        endpoints,
                    },
                ))
            })
            .collect(),
    };
    let bytes = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        // The rename is durable only once the directory entry is.
        let _ = d.sync_all();
    }
    Ok(())
}

/// Puts restored endpoints into the store for the watched clusters, flagged stale until
/// each cluster's first sync replaces them.
pub fn restore(store: &Store, path: &Path, watched: &[String]) {
    match load(path) {
        Ok(None) => debug!(path = %path.display(), "no state file yet"),
        Ok(Some((written, clusters))) => {
            for (name, endpoints) in clusters {
                if !watched.contains(&name) {
                    continue;
                }
                let changes = endpoints.into_iter().map(|e| (e.key(), Some(e))).collect();
                store.update_kube(&name, changes, true, |k| {
                    k.stale = true;
                    k.last_error = Some(format!(
                        "last-known records from the state file (written {}s ago); API not synced yet",
                        written.elapsed().map_or(0, |d| d.as_secs())
                    ));
                });
            }
        }
        Err(e) => warn!("{e}; starting without last-known records"),
    }
}

/// Keeps the state file current: after each change, at most once per `WRITE_EVERY`.
pub async fn run(store: Arc<Store>, path: PathBuf) {
    let mut changed = store.subscribe();
    while changed.changed().await.is_ok() {
        tokio::time::sleep(WRITE_EVERY).await;
        // Mark everything up to now as seen: the write below includes it.
        changed.borrow_and_update();
        let contents = store.contents();
        let path = path.clone();
        let result = tokio::task::spawn_blocking(move || save(&path, &contents)).await;
        match result {
            Ok(Ok(())) => debug!("state file written"),
            Ok(Err(e)) => warn!(error = %e, "cannot write the state file"),
            Err(e) => warn!(error = %e, "state file writer failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ObjectKind, Settings};

    #[test]
    fn round_trip_and_corrupt_files() {
        let dir = std::env::temp_dir().join(format!("fedns-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        assert!(load(&path).unwrap().is_none());
        let store = Store::default();
        let e = Endpoint {
            kind: ObjectKind::Service,
            namespace: "default".into(),
            name: "app".into(),
            federated_name: true,
            hosts: vec![],
            addresses: vec!["192.0.2.1".parse().unwrap()],
            hostname: None,
            port: Some(443),
            ready: true,
            ready_endpoints: None,
            settings: Settings::default(),
        };
        store.update_kube("us-east", vec![(e.key(), Some(e.clone()))], true, |k| {
            k.synced_at = Some(SystemTime::now())
        });
        // Restored from an earlier file, not synced since: kept for the next restart.
        store.update_kube("eu-west", vec![(e.key(), Some(e.clone()))], true, |_| {});
        // Known, never synced, nothing restored: nothing to write.
        store.update_kube("ap-south", vec![], true, |_| {});
        save(&path, &store.contents()).unwrap();
        let (_, clusters) = load(&path).unwrap().unwrap();
        assert_eq!(clusters.len(), 2, "{:?}", clusters.keys());
        assert_eq!(clusters["us-east"], vec![e.clone()]);
        assert_eq!(clusters["eu-west"], vec![e]);
        std::fs::write(&path, b"{not json").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains("state.json") && err.contains("not a fedns state file"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
