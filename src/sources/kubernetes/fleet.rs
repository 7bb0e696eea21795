//! The fleet's Leases in one member cluster: this replica's Lease written (created, then
//! replaced with the resourceVersion of its own last write, one request each time; a 409
//! re-reads and tries again), renewed on a steady period, rewritten on every change of its
//! view (at once, then at most every 200 ms) and deleted when the replica stops; and every
//! replica's Lease watched, cut down to a `fleet::ReplicaView`.
//!
//! Nothing here blocks probing or answering: each cluster has its own task, every request
//! has a timeout, and a failing API only delays this cluster's copy of the Lease (the
//! other clusters' copies keep the replica fresh for the readers).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::access::ClusterAccess;
use crate::config::KubernetesConfig;
use crate::fleet::overrides::{CONFIG_MAP, Override, Overrides};
use crate::fleet::{Fleet, MAX_LISTED, Moved, OwnView, ReplicaView, digest_lines};
use crate::health::quorum::rebuild_moved;
use crate::store::Store;

/// The prefix of every fedns Lease's name: `fedns-<replica>`.
pub const LEASE_PREFIX: &str = "fedns-";
const ANNOTATION: &str = "fleet.fedns.io/";

/// Each request to the API gives up after this: a hung API delays only this cluster's copy.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Deleting the Lease when the replica stops gives up after this.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// Writes of a changing view are this far apart at least: changes within it are written
/// as one.
const COALESCE: Duration = Duration::from_millis(200);

/// What this replica publishes, the same for every cluster.
pub struct Publishing {
    pub me: String,
    pub region: Option<String>,
    pub namespace: String,
    pub lease_duration: Duration,
    pub renew: Duration,
    pub config_digest: String,
    pub geoip_digest: String,
    /// This replica's current view of the probe targets.
    pub own_view: Arc<dyn Fn() -> OwnView + Send + Sync>,
    /// Wakes when the view changes.
    pub changed: watch::Receiver<u64>,
    /// Turns true when the replica stops: its Lease is deleted and the task ends.
    pub stopping: watch::Receiver<bool>,
}

/// Starts one cluster's fleet task: watch every replica's Lease there and, when
/// `publish`, keep this replica's own Lease written. Runs until aborted.
pub fn spawn(
    access: ClusterAccess,
    k: KubernetesConfig,
    publishing: Arc<Publishing>,
    publish: bool,
    fleet: Arc<Fleet>,
    overrides: Arc<Overrides>,
    store: Arc<Store>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let cluster = access.cluster.clone();
        let Ok(client) = access.client(&k).await.inspect_err(|e| warn!("fleet: {e}")) else {
            return;
        };
        let api: Api<Lease> = Api::namespaced(client.clone(), &publishing.namespace);
        let maps: Api<ConfigMap> = Api::namespaced(client, &publishing.namespace);
        let watching = tokio::spawn(watch_leases(
            api.clone(),
            cluster.clone(),
            fleet,
            store.clone(),
        ));
        let overriding = tokio::spawn(watch_overrides(maps, cluster.clone(), overrides, store));
        let _guard = super::AbortOnDrop(vec![watching, overriding]);
        if publish {
            keep_written(&api, &cluster, &publishing).await;
            remove(&api, &cluster, &publishing).await;
        } else {
            let mut stopping = publishing.stopping.clone();
            let _ = stopping.wait_for(|stop| *stop).await;
        }
    })
}

/// Writes the Lease now and on every change of the view (coalesced) or renew period,
/// until the replica stops.
async fn keep_written(api: &Api<Lease>, cluster: &str, p: &Publishing) {
    let name = format!("{LEASE_PREFIX}{}", p.me);
    let mut changed = p.changed.clone();
    let mut stopping = p.stopping.clone();
    let mut failing = false;
    // The resourceVersion of this replica's last write here: the next one replaces it in
    // one request. None: unknown, read it first.
    let mut version = None;
    loop {
        if *stopping.borrow_and_update() {
            return;
        }
        let view = (p.own_view)();
        let started = tokio::time::Instant::now();
        let written = write(api, &name, p, &view, &mut version);
        match tokio::time::timeout(REQUEST_TIMEOUT, written).await {
            Ok(Ok(())) => {
                if failing {
                    info!(cluster, lease = name, "fleet: lease written again");
                }
                failing = false;
            }
            Ok(Err(e)) => {
                if !failing {
                    warn!(cluster, lease = name, error = %e, "fleet: cannot write the lease");
                }
                failing = true;
            }
            Err(_) => {
                if !failing {
                    warn!(cluster, lease = name, "fleet: writing the lease timed out");
                }
                failing = true;
            }
        }
        // A failed write is retried sooner than a renewal, but not in a tight loop.
        let wait = if failing {
            p.renew.min(Duration::from_secs(1))
        } else {
            p.renew
        };
        tokio::select! {
            r = changed.changed() => {
                if r.is_err() {
                    // The health table is gone: keep renewing what was last seen.
                    tokio::time::sleep(wait).await;
                } else {
                    // The first change after a quiet spell is written at once; the ones
                    // after it at most every COALESCE, each with the view as it is then.
                    tokio::time::sleep_until(started + COALESCE).await;
                }
            }
            _ = stopping.changed() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Deletes this replica's Lease when it stops, so that its vote ends now rather than when
/// the Lease expires (a replica killed without a word leaves it to expire).
async fn remove(api: &Api<Lease>, cluster: &str, p: &Publishing) {
    let name = format!("{LEASE_PREFIX}{}", p.me);
    let params = Default::default();
    let deleted = api.delete(&name, &params);
    match tokio::time::timeout(STOP_TIMEOUT, deleted).await {
        Ok(Ok(_)) => info!(cluster, lease = name, "fleet: lease deleted"),
        Ok(Err(kube::Error::Api(e))) if e.code == 404 => {}
        Ok(Err(e)) => warn!(cluster, lease = name, error = %e, "fleet: cannot delete the lease"),
        Err(_) => warn!(cluster, lease = name, "fleet: deleting the lease timed out"),
    }
}

/// Creates or replaces the Lease: with the resourceVersion of the last write when it is
/// known (one request), else after reading it. A conflict (someone else wrote) or a
/// Lease deleted meanwhile reads again and retries, three times at most.
async fn write(
    api: &Api<Lease>,
    name: &str,
    p: &Publishing,
    view: &OwnView,
    version: &mut Option<String>,
) -> kube::Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut lease = lease(name, p, view, SystemTime::now());
        let result = match version.take() {
            Some(v) => {
                lease.metadata.resource_version = Some(v);
                api.replace(name, &PostParams::default(), &lease).await
            }
            None => match api.get_opt(name).await? {
                None => api.create(&PostParams::default(), &lease).await,
                Some(old) => {
                    lease.metadata.resource_version = old.metadata.resource_version;
                    api.replace(name, &PostParams::default(), &lease).await
                }
            },
        };
        match result {
            Ok(written) => {
                *version = written.metadata.resource_version;
                return Ok(());
            }
            Err(kube::Error::Api(e)) if (e.code == 409 || e.code == 404) && attempt < 3 => {
                debug!(
                    lease = name,
                    code = e.code,
                    "fleet: lease changed meanwhile; reading again"
                );
            }
            Err(e) => return Err(e),
        }
    }
}

/// The Lease that carries a replica's view.
fn lease(name: &str, p: &Publishing, view: &OwnView, now: SystemTime) -> Lease {
    let mut a = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        a.insert(format!("{ANNOTATION}{k}"), v);
    };
    if let Some(r) = &p.region {
        put("region", r.clone());
    }
    put("probed", view.probed.len().to_string());
    put(
        "targets",
        digest_lines(view.probed.iter().map(String::as_str)),
    );
    let listed = view.probed.join(" ");
    if listed.len() <= MAX_LISTED {
        put("probed-targets", listed);
    }
    put("down", view.down.join(" "));
    put("config", p.config_digest.clone());
    put("geoip", p.geoip_digest.clone());
    put("version", env!("CARGO_PKG_VERSION").to_owned());
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(p.namespace.clone()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_owned(),
                "fedns".to_owned(),
            )])),
            annotations: Some(a),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(p.me.clone()),
            lease_duration_seconds: Some(p.lease_duration.as_secs().max(1) as i32),
            renew_time: Timestamp::try_from(now).ok().map(MicroTime),
            ..LeaseSpec::default()
        }),
    }
}

/// A replica's view from its Lease; None for a Lease that is not a fedns replica's.
fn view_of(lease: &Lease, via: &str) -> Option<ReplicaView> {
    let name = lease.name_any();
    name.strip_prefix(LEASE_PREFIX)?;
    let spec = lease.spec.as_ref()?;
    let holder = spec.holder_identity.clone()?;
    let renewed = SystemTime::from(spec.renew_time.as_ref()?.0);
    let duration = Duration::from_secs(u64::try_from(spec.lease_duration_seconds?).ok()?);
    let a = lease.annotations();
    let get = |k: &str| a.get(&format!("{ANNOTATION}{k}")).cloned();
    Some(ReplicaView {
        name: holder,
        region: get("region"),
        via: via.to_owned(),
        renewed,
        duration,
        probed: get("probed").and_then(|s| s.parse().ok()).unwrap_or(0),
        targets_digest: get("targets").unwrap_or_default(),
        probed_keys: get("probed-targets")
            .map(|s| s.split_whitespace().map(str::to_owned).collect()),
        down: get("down")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        config_digest: get("config").unwrap_or_default(),
        geoip_digest: get("geoip").unwrap_or_default(),
        version: get("version").unwrap_or_default(),
    })
}

/// Watches every Lease of the fleet namespace and keeps the fleet's views; a change of
/// votes asks for a rebuild of the names behind the targets it moved. After an error the
/// watch starts again from a fresh list.
async fn watch_leases(api: Api<Lease>, cluster: String, fleet: Arc<Fleet>, store: Arc<Store>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let mut stream = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
        while let Some(item) = stream.next().await {
            let moved = match item {
                Ok(Event::Apply(l) | Event::InitApply(l)) => view_of(&l, &cluster)
                    .map(|v| fleet.observe(v))
                    .unwrap_or_default(),
                Ok(Event::Delete(l)) => view_of(&l, &cluster)
                    .map(|v| fleet.forget(&v.name, &cluster))
                    .unwrap_or_default(),
                Ok(Event::Init) => Moved::Nothing,
                Ok(Event::InitDone) => {
                    backoff = Duration::from_millis(500);
                    Moved::Nothing
                }
                Err(e) => {
                    debug!(cluster, error = %e, "fleet: lease watch error");
                    break;
                }
            };
            rebuild_moved(&store, moved);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Watches this cluster's `fedns-overrides` ConfigMap; a change asks for a rebuild. A
/// deleted ConfigMap takes this cluster's copies of the overrides with it.
async fn watch_overrides(
    api: Api<ConfigMap>,
    cluster: String,
    overrides: Arc<Overrides>,
    store: Arc<Store>,
) {
    let wc = watcher::Config::default().fields(&format!("metadata.name={CONFIG_MAP}"));
    let mut backoff = Duration::from_millis(500);
    loop {
        let mut stream = watcher::watcher(api.clone(), wc.clone()).boxed();
        while let Some(item) = stream.next().await {
            let data = match item {
                Ok(Event::Apply(m) | Event::InitApply(m)) => entries(&m),
                Ok(Event::Delete(_)) => Vec::new(),
                Ok(Event::Init) => continue,
                Ok(Event::InitDone) => {
                    backoff = Duration::from_millis(500);
                    continue;
                }
                Err(e) => {
                    debug!(cluster, error = %e, "fleet: overrides watch error");
                    break;
                }
            };
            let (changed, errors) = overrides.set_from(&cluster, &data);
            for e in errors {
                warn!(cluster, "fleet: {e}; ignored");
            }
            if changed {
                info!(cluster, entries = data.len(), "fleet: overrides changed");
                store.rebuild_all();
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

fn entries(m: &ConfigMap) -> Vec<(String, String)> {
    m.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Writes (`Some`) or removes (`None`) one override in a cluster's `fedns-overrides`,
/// creating the ConfigMap if needed; a 409 re-reads and tries again.
pub async fn write_override(
    access: &ClusterAccess,
    k: &KubernetesConfig,
    namespace: &str,
    key: &str,
    value: Option<&Override>,
) -> Result<(), String> {
    let client = access.client(k).await.map_err(|e| e.to_string())?;
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let json = value
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| e.to_string())?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let current = tokio::time::timeout(REQUEST_TIMEOUT, api.get_opt(CONFIG_MAP))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let result = match (current, &json) {
            (None, None) => return Ok(()),
            (None, Some(v)) => {
                let m = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(CONFIG_MAP.to_owned()),
                        namespace: Some(namespace.to_owned()),
                        ..ObjectMeta::default()
                    },
                    data: Some(BTreeMap::from([(key.to_owned(), v.clone())])),
                    ..ConfigMap::default()
                };
                tokio::time::timeout(REQUEST_TIMEOUT, api.create(&PostParams::default(), &m))
                    .await
                    .map_err(|_| "timed out".to_owned())?
                    .map(drop)
            }
            (Some(mut m), v) => {
                let data = m.data.get_or_insert_with(BTreeMap::new);
                match v {
                    Some(v) => data.insert(key.to_owned(), v.clone()),
                    None => data.remove(key),
                };
                tokio::time::timeout(
                    REQUEST_TIMEOUT,
                    api.replace(CONFIG_MAP, &PostParams::default(), &m),
                )
                .await
                .map_err(|_| "timed out".to_owned())?
                .map(drop)
            }
        };
        match result {
            Ok(()) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 && attempt < 3 => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_goes_through_a_lease_and_back() {
        let view = OwnView {
            probed: vec!["tcp:192.0.2.1:443".into(), "tcp:192.0.2.2:443".into()],
            down: vec!["tcp:192.0.2.2:443".into()],
        };
        let (_tx, rx) = watch::channel(0);
        let p = Publishing {
            me: "eu-1".into(),
            region: Some("eu-west-1".into()),
            namespace: "fedns".into(),
            lease_duration: Duration::from_secs(15),
            renew: Duration::from_secs(5),
            config_digest: "c".into(),
            geoip_digest: "g".into(),
            own_view: Arc::new(OwnView::default),
            changed: rx,
            stopping: watch::channel(false).1,
        };
        let now = SystemTime::now();
        let l = lease("fedns-eu-1", &p, &view, now);
        let v = view_of(&l, "us-east").unwrap();
        assert_eq!(v.name, "eu-1");
        assert_eq!(v.region.as_deref(), Some("eu-west-1"));
        assert_eq!(v.via, "us-east");
        assert_eq!(v.probed, 2);
        assert_eq!(v.targets_digest, view.digest());
        assert_eq!(v.down.iter().collect::<Vec<_>>(), ["tcp:192.0.2.2:443"]);
        assert_eq!(v.probed_keys, Some(view.probed.iter().cloned().collect()));
        assert_eq!(v.duration, Duration::from_secs(15));
        let skew = now.duration_since(v.renewed).unwrap_or_default();
        assert!(skew < Duration::from_millis(1), "{skew:?}");
        // Somebody else's Lease in the namespace is not a view.
        let mut other = l.clone();
        other.metadata.name = Some("kube-scheduler".into());
        assert_eq!(view_of(&other, "us-east"), None);
    }
}
