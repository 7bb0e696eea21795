//! Everything one cluster's watches have seen: each stream's objects (a relist swapped in
//! whole on `InitDone`), readiness from EndpointSlices, and what changed since the last
//! store update, so that one event costs one object and not the whole cluster.

use std::collections::{HashMap, HashSet};

use super::convert::{Key, Slim};
use super::watch::Msg;
use crate::store::{Endpoint, ObjectKey, ObjectKind};

/// One watch stream's objects: the current set and, during a relist, the next one.
#[derive(Default)]
pub(super) struct StreamState {
    objects: HashMap<Key, Slim>,
    /// Objects of a relist in progress; swapped in whole on InitDone.
    pending: Option<HashMap<Key, Slim>>,
    synced: bool,
    error: Option<String>,
}

/// The kind a stream watches: streams come in threes per namespace.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum StreamKind {
    Services,
    Ingresses,
    Slices,
}

pub(super) fn stream_kind(id: usize) -> StreamKind {
    match id % 3 {
        0 => StreamKind::Services,
        1 => StreamKind::Ingresses,
        _ => StreamKind::Slices,
    }
}

/// Everything one cluster's watches have seen, with what changed since the last store
/// update, so that one event costs one object and not the whole cluster.
pub(super) struct ClusterObjects {
    streams: Vec<StreamState>,
    /// Ready endpoints per Service, per EndpointSlice: readiness without a scan of slices.
    ready: HashMap<Key, HashMap<Key, usize>>,
    touched_services: HashSet<Key>,
    touched_ingresses: HashSet<Key>,
}

impl ClusterObjects {
    /// Every stream has listed once.
    pub(super) fn synced(&self) -> bool {
        self.streams.iter().all(|s| s.synced)
    }

    /// The error of the first failing stream: while one fails, the cluster is stale.
    pub(super) fn first_error(&self) -> Option<&str> {
        self.streams.iter().find_map(|s| s.error.as_deref())
    }

    pub(super) fn new(streams: usize) -> ClusterObjects {
        ClusterObjects {
            streams: (0..streams).map(|_| StreamState::default()).collect(),
            ready: HashMap::new(),
            touched_services: HashSet::new(),
            touched_ingresses: HashSet::new(),
        }
    }

    fn touch(&mut self, kind: StreamKind, key: &Key, object: Option<&Slim>) {
        match (kind, object) {
            (StreamKind::Services, _) => {
                self.touched_services.insert(key.clone());
            }
            (StreamKind::Ingresses, _) => {
                self.touched_ingresses.insert(key.clone());
            }
            (StreamKind::Slices, Some(Slim::Slice { service, ready })) => {
                let svc = (key.0.clone(), service.clone());
                self.ready
                    .entry(svc.clone())
                    .or_default()
                    .insert(key.clone(), *ready);
                self.touched_services.insert(svc);
            }
            (StreamKind::Slices, _) => {}
        }
    }

    /// Forgets a slice's readiness contribution.
    fn untouch_slice(&mut self, key: &Key, old: Option<&Slim>) {
        if let Some(Slim::Slice { service, .. }) = old {
            let svc = (key.0.clone(), service.clone());
            if let Some(m) = self.ready.get_mut(&svc) {
                m.remove(key);
                if m.is_empty() {
                    self.ready.remove(&svc);
                }
            }
            self.touched_services.insert(svc);
        }
    }

    pub(super) fn apply(&mut self, msg: Msg) {
        let id = match &msg {
            Msg::Init(i)
            | Msg::InitApply(i, ..)
            | Msg::InitDone(i)
            | Msg::Apply(i, ..)
            | Msg::Delete(i, _)
            | Msg::Error(i, _) => *i,
        };
        let kind = stream_kind(id);
        let Some(s) = self.streams.get_mut(id) else {
            return;
        };
        // Only data from the API clears an error: kube's watcher says Init before it tries
        // the LIST, so a retry against a dead API would otherwise look like a recovery for
        // the moment between its Init and its error.
        if !matches!(msg, Msg::Error(..) | Msg::Init(_)) {
            s.error = None;
        }
        match msg {
            Msg::Init(_) => s.pending = Some(HashMap::new()),
            Msg::InitApply(_, k, o) => {
                if let Some(o) = o {
                    s.pending.get_or_insert_with(HashMap::new).insert(k, o);
                }
            }
            Msg::InitDone(_) => {
                // The relist replaces this stream's objects at once.
                let new = s.pending.take().unwrap_or_default();
                let old = std::mem::replace(&mut s.objects, new);
                s.synced = true;
                let new: Vec<(Key, Slim)> = self.streams[id]
                    .objects
                    .iter()
                    .map(|(k, o)| (k.clone(), o.clone()))
                    .collect();
                for (k, o) in &old {
                    if kind == StreamKind::Slices {
                        self.untouch_slice(k, Some(o));
                    } else {
                        self.touch(kind, k, Some(o));
                    }
                }
                for (k, o) in &new {
                    self.touch(kind, k, Some(o));
                }
            }
            Msg::Apply(_, k, Some(o)) => {
                let old = s.objects.insert(k.clone(), o.clone());
                if kind == StreamKind::Slices {
                    self.untouch_slice(&k, old.as_ref());
                }
                self.touch(kind, &k, Some(&o));
            }
            Msg::Apply(_, k, None) | Msg::Delete(_, k) => {
                let old = s.objects.remove(&k);
                if kind == StreamKind::Slices {
                    self.untouch_slice(&k, old.as_ref());
                } else {
                    self.touch(kind, &k, None);
                }
            }
            Msg::Error(_, e) => s.error = Some(e),
        }
    }

    /// The current object of `kind` at `key`, from whichever namespace's stream has it.
    fn object(&self, kind: StreamKind, key: &Key) -> Option<&Slim> {
        self.streams
            .iter()
            .enumerate()
            .filter(|(i, _)| stream_kind(*i) == kind)
            .find_map(|(_, s)| s.objects.get(key))
    }

    /// The store changes since the last call: every object when `all`, else those touched.
    pub(super) fn changes(&mut self, all: bool) -> Vec<(ObjectKey, Option<Endpoint>)> {
        let services = std::mem::take(&mut self.touched_services);
        let ingresses = std::mem::take(&mut self.touched_ingresses);
        let (services, ingresses): (Vec<Key>, Vec<Key>) = if all {
            let keys = |kind| -> Vec<Key> {
                self.streams
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| stream_kind(*i) == kind)
                    .flat_map(|(_, s)| s.objects.keys().cloned())
                    .collect()
            };
            (keys(StreamKind::Services), keys(StreamKind::Ingresses))
        } else {
            (
                services.into_iter().collect(),
                ingresses.into_iter().collect(),
            )
        };
        let mut out = Vec::with_capacity(services.len() + ingresses.len());
        for key in services {
            let endpoint = self
                .object(StreamKind::Services, &key)
                .and_then(|o| self.endpoint(&key, o));
            out.push(((ObjectKind::Service, key.0, key.1), endpoint));
        }
        for key in ingresses {
            let endpoint = self
                .object(StreamKind::Ingresses, &key)
                .and_then(|o| self.endpoint(&key, o));
            out.push(((ObjectKind::Ingress, key.0, key.1), endpoint));
        }
        out
    }

    /// The store's endpoint for a Service (readiness from its EndpointSlices) or Ingress.
    fn endpoint(&self, (ns, name): &Key, o: &Slim) -> Option<Endpoint> {
        match o {
            Slim::Service {
                addresses,
                hostname,
                port,
                hosts,
                settings,
            } => Some(Endpoint {
                kind: ObjectKind::Service,
                namespace: ns.clone(),
                name: name.clone(),
                federated_name: true,
                hosts: hosts.clone(),
                addresses: addresses.clone(),
                hostname: hostname.clone(),
                port: *port,
                ready: self
                    .ready
                    .get(&(ns.clone(), name.clone()))
                    .is_some_and(|m| m.values().sum::<usize>() > 0),
                ready_endpoints: Some(
                    self.ready
                        .get(&(ns.clone(), name.clone()))
                        .map_or(0, |m| m.values().sum::<usize>())
                        .try_into()
                        .unwrap_or(u32::MAX),
                ),
                settings: settings.clone(),
            }),
            Slim::Ingress {
                hosts,
                addresses,
                hostname,
                port,
                settings,
            } => Some(Endpoint {
                kind: ObjectKind::Ingress,
                namespace: ns.clone(),
                name: name.clone(),
                federated_name: false,
                hosts: hosts.clone(),
                addresses: addresses.clone(),
                hostname: hostname.clone(),
                port: Some(*port),
                // SPEC section 4: an Ingress can serve when its load balancer has an address.
                ready: !addresses.is_empty() || hostname.is_some(),
                ready_endpoints: None,
                settings: settings.clone(),
            }),
            Slim::Slice { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Settings;

    fn svc(n: &str) -> (Key, Slim) {
        (
            ("default".into(), n.into()),
            Slim::Service {
                addresses: vec!["192.0.2.1".parse().unwrap()],
                hostname: None,
                port: Some(80),
                hosts: vec![],
                settings: Settings::default(),
            },
        )
    }

    fn slice(service: &str, ready: usize) -> Slim {
        Slim::Slice {
            service: service.into(),
            ready,
        }
    }

    fn key(n: &str) -> Key {
        ("default".into(), n.into())
    }

    #[test]
    fn a_retry_is_not_a_recovery_until_data_comes() {
        let mut w = ClusterObjects::new(3);
        w.apply(Msg::Error(0, "connection refused".into()));
        // kube's watcher says Init before it tries the LIST: still failing.
        w.apply(Msg::Init(0));
        assert!(w.streams[0].error.is_some());
        w.apply(Msg::Error(0, "connection refused".into()));
        w.apply(Msg::Init(0));
        let (k, o) = svc("a");
        w.apply(Msg::InitApply(0, k, Some(o)));
        assert!(w.streams[0].error.is_none(), "data from the API clears it");
    }

    #[test]
    fn relist_swaps_whole_and_keeps_old_until_done() {
        let mut w = ClusterObjects::new(3);
        let (k, o) = svc("a");
        w.apply(Msg::Init(0));
        w.apply(Msg::InitApply(0, k.clone(), Some(o.clone())));
        assert!(
            w.streams[0].objects.is_empty(),
            "nothing visible before InitDone"
        );
        w.apply(Msg::InitDone(0));
        assert_eq!(w.streams[0].objects.len(), 1);
        // A relist that no longer has `a` keeps it visible until InitDone, then drops it.
        w.apply(Msg::Init(0));
        let (k2, o2) = svc("b");
        w.apply(Msg::InitApply(0, k2.clone(), Some(o2)));
        assert!(w.streams[0].objects.contains_key(&k));
        w.apply(Msg::InitDone(0));
        assert!(!w.streams[0].objects.contains_key(&k) && w.streams[0].objects.contains_key(&k2));
        // The store learns both: `a` removed, `b` added.
        let mut changes = w.changes(false);
        changes.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(changes.len(), 2);
        assert!(changes[0].1.is_none() && changes[1].1.is_some());
    }

    #[test]
    fn one_event_changes_one_object() {
        let mut w = ClusterObjects::new(3);
        for i in 0..100 {
            let (k, o) = svc(&format!("s{i}"));
            w.apply(Msg::InitApply(0, k, Some(o)));
        }
        w.apply(Msg::InitDone(0));
        assert_eq!(w.changes(true).len(), 100);
        let (k, o) = svc("s7");
        w.apply(Msg::Apply(0, k.clone(), Some(o)));
        let changes = w.changes(false);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].0, (ObjectKind::Service, k.0, k.1));
        assert!(w.changes(false).is_empty(), "changes are taken once");
    }

    #[test]
    fn readiness_comes_from_endpoint_slices() {
        let mut w = ClusterObjects::new(3);
        let (k, o) = svc("a");
        w.apply(Msg::Apply(0, k.clone(), Some(o)));
        let ready = |w: &mut ClusterObjects| w.changes(false)[0].1.as_ref().unwrap().ready;
        assert!(!ready(&mut w), "no slices: not ready");
        w.apply(Msg::Apply(2, key("a-1"), Some(slice("a", 0))));
        assert!(!ready(&mut w));
        w.apply(Msg::Apply(2, key("a-2"), Some(slice("a", 2))));
        assert!(ready(&mut w));
        w.apply(Msg::Apply(2, key("a-2"), Some(slice("a", 0))));
        assert!(!ready(&mut w), "an updated slice replaces its old count");
        w.apply(Msg::Apply(2, key("a-1"), Some(slice("a", 1))));
        assert!(ready(&mut w));
        w.apply(Msg::Delete(2, key("a-1")));
        assert!(!ready(&mut w), "a deleted slice takes its count with it");
    }
}
