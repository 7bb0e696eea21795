//! The etcd-like object store: one revision counter per cluster, the full history of
//! changes (so lists can be served at an older revision and continue tokens pin a
//! snapshot), and the compaction point below which history answers 410.

use std::time::SystemTime;

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One etcd revision: the change of one object.
pub(super) struct Event {
    pub(super) rv: u64,
    pub(super) resource: Resource,
    pub(super) kind: EventType,
    /// The store key ([`Resource::key`]: `namespace/name`, `/name` when
    /// cluster-scoped).
    pub(super) key: String,
    /// The object after the change (for DELETED: its last state, with the
    /// deletion's resourceVersion).
    pub(super) object: Value,
    /// The object before a MODIFIED, needed to filter watches by selector.
    pub(super) prev: Option<Value>,
}

/// One live watch stream; dropping it ends that stream cleanly.
pub(super) struct Watcher {
    pub(super) resource: Resource,
    pub(super) tx: mpsc::UnboundedSender<Arc<Event>>,
}

pub(super) struct State {
    /// Current revision (the last RV handed out).
    pub(super) rv: u64,
    /// Watches / exact lists from an RV below this get 410.
    pub(super) compacted: u64,
    /// Current objects per resource, keyed `namespace/name` (`/name` for a
    /// cluster-scoped kind; see [`Resource::key`]), in etcd key order.
    pub(super) objects: [BTreeMap<String, Value>; Resource::COUNT],
    /// Every event since start; compaction only moves `compacted`.
    pub(super) history: Vec<Arc<Event>>,
    /// Live watch streams; dropping one ends that stream cleanly.
    pub(super) watchers: Vec<Watcher>,
    /// Which resources are served, at which version (CRD installation).
    pub(super) served: Served,
    pub(super) fault: Fault,
    /// Every verb answers 403.
    pub(super) forbidden: [bool; Resource::COUNT],
    /// create/update/patch/delete answer 403, reads are allowed.
    pub(super) forbidden_writes: [bool; Resource::COUNT],
    /// Write requests received over HTTP, per resource, whatever their outcome.
    pub(super) writes: [usize; Resource::COUNT],
    /// The next this many updates/patches/deletes answer 409 Conflict.
    pub(super) write_conflicts: usize,
    pub(super) requests: Vec<String>,
    pub(super) bookmark_interval: Duration,
}

impl State {
    /// Appends an event to the history and fans it out to live watches.
    pub(super) fn emit(&mut self, event: Event) {
        let event = Arc::new(event);
        self.history.push(event.clone());
        self.watchers.retain(|w| {
            if w.resource == event.resource {
                w.tx.send(event.clone()).is_ok()
            } else {
                !w.tx.is_closed()
            }
        });
    }

    /// The `apiVersion` of `resource` as served now.
    pub(super) fn api_version(&self, resource: Resource) -> String {
        self.served.api_version(resource)
    }

    /// The stored object at `key` ([`Resource::key`]).
    pub(super) fn current(&self, resource: Resource, key: &str) -> Option<&Value> {
        self.objects[resource.index()].get(key)
    }

    /// Writes `object` (no type meta; `metadata.name` and, for a namespaced
    /// kind, `.namespace` set) as
    /// the new state of its key, as the generic registry and etcd would: on
    /// create it assigns uid, creationTimestamp and (for kinds that keep one)
    /// generation 1; on update it carries them over from the stored object and
    /// bumps generation when anything outside metadata/status changed. Every
    /// real change takes the next resourceVersion and emits ADDED/MODIFIED; a
    /// no-op update keeps the RV and emits nothing. Returns the stored object
    /// and whether it was created.
    pub(super) fn put(&mut self, resource: Resource, mut object: Value) -> (Value, bool) {
        let key = resource.key(
            object["metadata"]["namespace"].as_str().unwrap_or_default(),
            object["metadata"]["name"].as_str().unwrap_or_default(),
        );
        let prev = self.current(resource, &key).cloned();
        let kind = match &prev {
            Some(prev) => {
                for field in ["uid", "creationTimestamp", "generation", "resourceVersion"] {
                    copy_meta_field(&mut object, prev, field);
                }
                if &object == prev {
                    return (object, false);
                }
                if resource.has_generation() && spec_part(&object) != spec_part(prev) {
                    let generation = prev["metadata"]["generation"].as_u64().unwrap_or(0);
                    object["metadata"]["generation"] = json!(generation + 1);
                }
                EventType::Modified
            }
            None => {
                let meta = &mut object["metadata"];
                meta["uid"] = json!(new_uid());
                meta["creationTimestamp"] = json!(rfc3339_now());
                if resource.has_generation() {
                    meta["generation"] = json!(1);
                } else if let Some(meta) = meta.as_object_mut() {
                    meta.remove("generation");
                }
                EventType::Added
            }
        };
        self.rv += 1;
        let rv = self.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.objects[resource.index()].insert(key.clone(), object.clone());
        self.emit(Event {
            rv,
            resource,
            kind,
            key,
            object: object.clone(),
            prev,
        });
        (object, kind == EventType::Added)
    }

    /// Deletes the object at `key` ([`Resource::key`]), emitting DELETED (whose object
    /// carries the deletion's resourceVersion). Returns the object as it was
    /// stored, with its last resourceVersion, as etcd's delete does.
    pub(super) fn remove(&mut self, resource: Resource, key: &str) -> Option<Value> {
        let last = self.objects[resource.index()].remove(key)?;
        self.rv += 1;
        let rv = self.rv;
        let mut object = last.clone();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.emit(Event {
            rv,
            resource,
            kind: EventType::Deleted,
            key: key.to_owned(),
            object,
            prev: None,
        });
        Some(last)
    }

    /// Objects of `resource` as of revision `rv`, rebuilt from the history.
    pub(super) fn objects_at(&self, resource: Resource, rv: u64) -> BTreeMap<String, Value> {
        let mut map = BTreeMap::new();
        for ev in self.history.iter().take_while(|e| e.rv <= rv) {
            if ev.resource != resource {
                continue;
            }
            if ev.kind == EventType::Deleted {
                map.remove(&ev.key);
            } else {
                map.insert(ev.key.clone(), ev.object.clone());
            }
        }
        map
    }
}

/// Sets `metadata.<field>` of `object` to the one of `from`, or removes it
/// when `from` has none.
fn copy_meta_field(object: &mut Value, from: &Value, field: &str) {
    let Some(meta) = object["metadata"].as_object_mut() else {
        return;
    };
    match from["metadata"].get(field) {
        Some(value) => meta.insert(field.to_owned(), value.clone()),
        None => meta.remove(field),
    };
}

/// Same shape as the real token: base64 of `{"v","rv","start"}`, where
/// `start` is the last returned store key plus a NUL byte (the smallest key
/// after it).
pub(super) fn encode_continue(rv: u64, last_key: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{last_key}\u{0}")});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

pub(super) fn decode_continue(token: &str) -> Option<(u64, String)> {
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .ok()?;
    let token: Value = serde_json::from_slice(&raw).ok()?;
    if token["v"] != "meta.k8s.io/v1" {
        return None;
    }
    let start = token["start"].as_str()?.to_owned();
    Some((token["rv"].as_u64()?, start))
}

/// Everything of an object that is neither metadata nor status (what bumps
/// `metadata.generation`).
pub(super) fn spec_part(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(map) = obj.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    obj
}

/// A random version-4 UUID, the format the real server uses for `uid`.
pub(super) fn new_uid() -> String {
    let (a, b) = (crate::random::random_u64(), crate::random::random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// Current UTC time as RFC 3339 seconds (`creationTimestamp` format).
pub(super) fn rfc3339_now() -> String {
    rfc3339(SystemTime::now(), false)
}

/// `time` in UTC as RFC 3339, with seconds (`metav1.Time`) or microseconds
/// (`metav1.MicroTime`).
pub(super) fn rfc3339(time: SystemTime, micros: bool) -> String {
    fedns::ops::time::rfc3339(time, micros)
}
