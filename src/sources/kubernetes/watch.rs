//! One watch per kind and namespace, forwarding converted events to the cluster task.
//! After any error the watch starts again from a fresh list, with backoff.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::debug;

use super::convert::{ConvertCtx, Key};
use super::slim::Slim;

/// What a watch stream tells the cluster task.
#[derive(Debug)]
pub(super) enum Msg {
    Init(usize),
    InitApply(usize, Key, Option<Slim>),
    InitDone(usize),
    Apply(usize, Key, Option<Slim>),
    Delete(usize, Key),
    Error(usize, String),
}

pub(super) fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs one kube watcher and forwards its events, converted, to the cluster task.
pub(super) fn watch<K>(
    api: Api<K>,
    wc: watcher::Config,
    id: usize,
    tx: mpsc::Sender<Msg>,
    ctx: Arc<ConvertCtx>,
    convert: fn(&K, &ConvertCtx) -> Option<Slim>,
) -> JoinHandle<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    tokio::spawn(async move {
        // On an error the watcher is dropped and started afresh after a backoff, so that
        // recovery always shows as a relist (Init..InitDone): a quiet watch that merely
        // reconnected would otherwise say nothing, and the cluster would stay stale.
        let mut backoff = MIN_BACKOFF;
        loop {
            let mut stream = watcher::watcher(api.clone(), wc.clone()).boxed();
            while let Some(item) = stream.next().await {
                let msg = match item {
                    Ok(Event::Init) => Msg::Init(id),
                    Ok(Event::InitApply(o)) => Msg::InitApply(id, key(&o), convert(&o, &ctx)),
                    Ok(Event::InitDone) => {
                        backoff = MIN_BACKOFF;
                        Msg::InitDone(id)
                    }
                    Ok(Event::Apply(o)) => Msg::Apply(id, key(&o), convert(&o, &ctx)),
                    Ok(Event::Delete(o)) => Msg::Delete(id, key(&o)),
                    Err(e) => {
                        debug!(cluster = ctx.cluster, error = %e, "watch error");
                        Msg::Error(id, e.to_string())
                    }
                };
                let failed = matches!(msg, Msg::Error(..));
                if tx.send(msg).await.is_err() {
                    return;
                }
                if failed {
                    break;
                }
            }
            // Exponential backoff with jitter, as client-go's reflector does.
            let jitter = 0.8
                + 0.4
                    * (SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| d.subsec_nanos()) as f64
                        / 1e9);
            tokio::time::sleep(backoff.mul_f64(jitter)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

/// Backoff between a failed watch and the next attempt.
pub(super) const MIN_BACKOFF: Duration = Duration::from_millis(500);
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub(super) fn key<K: Resource>(o: &K) -> Key {
    (o.namespace().unwrap_or_default(), o.name_any())
}
