//! Operators' overrides for the whole fleet: drain a cluster (or one service of it) out of
//! the answers, or force it up whatever the probes say. `fedns drain|undrain|force-up`
//! writes them into the ConfigMap `fedns-overrides` of the fleet namespace in every member
//! cluster; every replica watches those ConfigMaps and keeps, for each override, the copy
//! written last. Every override has an expiry and a reason.
//!
//! In the ConfigMap, one entry per override: the key is the cluster (`eu-west`) or the
//! cluster and service (`eu-west.shop.checkout`); the value is JSON:
//! `{"action":"drain","until":1796390000,"reason":"upgrade","by":"alice@laptop","at":1796380000}`
//! (times in seconds since the epoch).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The ConfigMap every replica watches, in the fleet namespace.
pub const CONFIG_MAP: &str = "fedns-overrides";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Out of the answers, unless it is the last healthy cluster of a name.
    Drain,
    /// Healthy whatever its probes and readiness say.
    ForceUp,
}

/// One override, as the ConfigMap entry holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Override {
    pub action: Action,
    /// Until when, and since when (seconds since the epoch).
    pub until: u64,
    pub at: u64,
    pub reason: String,
    /// Who wrote it (user and host of the CLI).
    pub by: String,
}

impl Override {
    pub fn active(&self, now: SystemTime) -> bool {
        secs(now) < self.until
    }

    pub fn until_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.until)
    }
}

/// Seconds since the epoch.
pub fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The entry key of an override: the cluster, or `cluster.namespace.name` (lowercase).
pub fn key(cluster: &str, service: Option<(&str, &str)>) -> String {
    match service {
        None => cluster.to_ascii_lowercase(),
        Some((ns, name)) => format!("{cluster}.{ns}.{name}").to_ascii_lowercase(),
    }
}

/// The overrides read from every member cluster's ConfigMap.
#[derive(Debug, Default)]
pub struct Overrides {
    /// Per cluster read from: its ConfigMap's entries, by key.
    by_source: Mutex<HashMap<String, HashMap<String, Override>>>,
}

impl Overrides {
    /// Takes the entries of one cluster's ConfigMap (empty when it is gone); returns
    /// whether anything changed. Entries that do not parse are returned as errors, named
    /// by key, and ignored.
    pub fn set_from(&self, via: &str, data: &[(String, String)]) -> (bool, Vec<String>) {
        let mut errors = Vec::new();
        let mut entries = HashMap::new();
        for (k, v) in data {
            match serde_json::from_str::<Override>(v) {
                Ok(o) => {
                    entries.insert(k.to_ascii_lowercase(), o);
                }
                Err(e) => errors.push(format!("{CONFIG_MAP} in {via}: entry `{k}`: {e}")),
            }
        }
        let mut by = self.lock();
        let changed = by.get(via) != Some(&entries);
        by.insert(via.to_owned(), entries);
        (changed, errors)
    }

    /// The active overrides by key: for a key written in several clusters, the copy
    /// written last.
    pub fn active(&self, now: SystemTime) -> HashMap<String, Override> {
        let mut out: HashMap<String, Override> = HashMap::new();
        for entries in self.lock().values() {
            for (k, o) in entries {
                if out.get(k).is_none_or(|old| old.at < o.at) {
                    out.insert(k.clone(), o.clone());
                }
            }
        }
        out.retain(|_, o| o.active(now));
        out
    }

    /// The override of one cluster's service: its own, else its cluster's.
    pub fn lookup(
        active: &HashMap<String, Override>,
        cluster: &str,
        ns: &str,
        name: &str,
    ) -> Option<Override> {
        active
            .get(&key(cluster, Some((ns, name))))
            .or_else(|| active.get(&key(cluster, None)))
            .cloned()
    }

    /// When the next active override expires: the answers change then.
    pub fn next_expiry(&self, now: SystemTime) -> Option<SystemTime> {
        self.active(now).values().map(Override::until_time).min()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Override>>> {
        self.by_source.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str, until: u64, at: u64) -> String {
        format!(r#"{{"action":"{action}","until":{until},"at":{at},"reason":"r","by":"b"}}"#)
    }

    #[test]
    fn the_last_written_copy_wins_and_expired_ones_are_gone() {
        let o = Overrides::default();
        let now = secs(SystemTime::now());
        let (changed, errors) = o.set_from(
            "us-east",
            &[
                ("eu-west".into(), entry("drain", now + 60, now - 10)),
                ("ap-southeast".into(), entry("drain", now - 1, now - 100)),
                ("bad".into(), "{".into()),
            ],
        );
        assert!(changed);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("entry `bad`"), "{errors:?}");
        // eu-west's copy, written later: force-up wins over the older drain.
        o.set_from(
            "eu-west",
            &[("eu-west".into(), entry("force-up", now + 60, now - 5))],
        );
        let active = o.active(SystemTime::now());
        assert_eq!(active.len(), 1, "the expired drain is gone: {active:?}");
        assert_eq!(active["eu-west"].action, Action::ForceUp);
        // A service's own override beats its cluster's.
        let mut a = active.clone();
        a.insert(
            key("eu-west", Some(("shop", "checkout"))),
            serde_json::from_str(&entry("drain", now + 9, now)).unwrap(),
        );
        assert_eq!(
            Overrides::lookup(&a, "eu-west", "shop", "checkout")
                .unwrap()
                .action,
            Action::Drain
        );
        assert_eq!(
            Overrides::lookup(&a, "eu-west", "default", "app")
                .unwrap()
                .action,
            Action::ForceUp
        );
        assert_eq!(Overrides::lookup(&a, "us-east", "default", "app"), None);
        // The same entries again change nothing.
        assert!(
            !o.set_from(
                "eu-west",
                &[("eu-west".into(), entry("force-up", now + 60, now - 5))]
            )
            .0
        );
    }
}
