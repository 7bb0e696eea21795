//! A member cluster's API access: a kubeconfig (file and context) or the in-cluster
//! service account, read and checked before anything is served, and the kube client made
//! from it.

use std::path::PathBuf;
use std::time::Duration;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::config::{ClusterConfig, KubeSource, KubernetesConfig};

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cluster `{cluster}`: kubeconfig {path}: {message}")]
    Kubeconfig {
        cluster: String,
        path: PathBuf,
        message: String,
    },
    #[error("cluster `{cluster}`: in-cluster service account: {message}")]
    InCluster { cluster: String, message: String },
    #[error("cluster `{cluster}`: cannot create a client: {message}")]
    Client { cluster: String, message: String },
}

/// A cluster's API access, loaded and checked before anything is served.
#[derive(Clone)]
pub struct ClusterAccess {
    pub cluster: String,
    pub source: KubeSource,
    /// The parsed kubeconfig (None for in-cluster).
    kubeconfig: Option<Kubeconfig>,
    pub namespaces: Vec<String>,
    pub label_selector: Option<String>,
    /// The kubeconfig file's bytes, hashed: a reload restarts a cluster's watches only
    /// when this or another of its settings changed.
    file_hash: u64,
}

impl std::fmt::Debug for ClusterAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The kubeconfig holds credentials: never print it.
        f.debug_struct("ClusterAccess")
            .field("cluster", &self.cluster)
            .field("source", &self.source)
            .finish()
    }
}

impl ClusterAccess {
    /// Reads and checks a cluster's kubeconfig (file, context); no network.
    pub fn load(c: &ClusterConfig) -> Result<Option<ClusterAccess>, KubeError> {
        let Some(source) = c.kube_source() else {
            return Ok(None);
        };
        let kubeconfig = match &source {
            KubeSource::Kubeconfig { path, context } => {
                let bad = |message: String| KubeError::Kubeconfig {
                    cluster: c.name.clone(),
                    path: path.clone(),
                    message,
                };
                // Read it here: kube's own message quotes the path twice.
                let text = std::fs::read_to_string(path).map_err(|e| {
                    bad(format!(
                        "cannot read it: {e} (relative paths are from the config file's directory)"
                    ))
                })?;
                let kc = Kubeconfig::from_yaml(&text).map_err(|e| bad(e.to_string()))?;
                let wanted = context.clone().or_else(|| kc.current_context.clone());
                match wanted {
                    None => return Err(bad("no context given and no current-context".into())),
                    Some(ctx) if !kc.contexts.iter().any(|n| n.name == ctx) => {
                        let known: Vec<&str> =
                            kc.contexts.iter().map(|n| n.name.as_str()).collect();
                        return Err(bad(format!(
                            "no context `{ctx}` (it has: {})",
                            known.join(", ")
                        )));
                    }
                    Some(_) => {}
                }
                Some(kc)
            }
            KubeSource::InCluster => None,
        };
        let file_hash = match &source {
            KubeSource::Kubeconfig { path, .. } => {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::fs::read(path).unwrap_or_default().hash(&mut h);
                h.finish()
            }
            KubeSource::InCluster => 0,
        };
        Ok(Some(ClusterAccess {
            cluster: c.name.clone(),
            source,
            kubeconfig,
            namespaces: c.namespaces.clone(),
            label_selector: c.label_selector.clone(),
            file_hash,
        }))
    }

    /// Everything that, changed, needs the cluster's watches restarted.
    pub fn fingerprint(&self, k: &KubernetesConfig, zone: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (
            &self.source,
            &self.namespaces,
            &self.label_selector,
            self.file_hash,
            k.watch_timeout,
            k.connect_timeout,
            zone,
        )
            .hash(&mut h);
        h.finish()
    }

    pub fn kubeconfig_path(&self) -> Option<PathBuf> {
        match &self.source {
            KubeSource::Kubeconfig { path, .. } => Some(path.clone()),
            KubeSource::InCluster => None,
        }
    }

    /// Builds the kube client: TLS and token or client-certificate auth as the kubeconfig
    /// carries them, with our timeouts.
    pub async fn client(&self, k: &KubernetesConfig) -> Result<Client, KubeError> {
        let mut config = match (&self.source, &self.kubeconfig) {
            (KubeSource::Kubeconfig { path, context }, Some(kc)) => {
                let options = KubeConfigOptions {
                    context: context.clone(),
                    ..KubeConfigOptions::default()
                };
                kube::Config::from_custom_kubeconfig(kc.clone(), &options)
                    .await
                    .map_err(|e| KubeError::Kubeconfig {
                        cluster: self.cluster.clone(),
                        path: path.clone(),
                        message: e.to_string(),
                    })?
            }
            _ => kube::Config::incluster().map_err(|e| KubeError::InCluster {
                cluster: self.cluster.clone(),
                message: e.to_string(),
            })?,
        };
        config.connect_timeout = Some(k.connect_timeout);
        // A LIST that hangs must fail, not wait forever; watches end server-side after
        // watch_timeout, so a healthy stream never goes quiet for longer than that plus a
        // margin (a quarter of it, 1 to 15 s).
        let margin = (k.watch_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(15));
        config.read_timeout = Some(k.watch_timeout + margin);
        config.reset_reader_on_write = true;
        Client::try_from(config).map_err(|e| KubeError::Client {
            cluster: self.cluster.clone(),
            message: e.to_string(),
        })
    }
}
