//! The fleet: what the other fedns replicas see. Every replica publishes its view of the
//! probe targets (which it probes, which it finds down) with its config and GeoIP digests
//! in a Lease per member cluster (`sources::kubernetes::fleet` reads and writes them);
//! this module keeps the freshest copy of every other replica's view, and counts the
//! votes on one target. `health::quorum` turns the votes into a health.
//!
//! A view votes while its Lease is fresh: renewed less than its duration ago. A replica
//! whose every API server is out of reach keeps the last-known views until they expire,
//! then decides alone.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::config::Quorum;

pub mod overrides;

/// One replica's view, as its Lease carries it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicaView {
    pub name: String,
    pub region: Option<String>,
    /// The member cluster whose API this copy was read from.
    pub via: String,
    /// When the Lease was last renewed, and for how long that keeps it fresh.
    pub renewed: SystemTime,
    pub duration: Duration,
    /// How many targets it probes, a digest of their keys, and the keys themselves when
    /// the Lease could carry them (up to `MAX_LISTED` bytes).
    pub probed: usize,
    pub targets_digest: String,
    pub probed_keys: Option<BTreeSet<String>>,
    /// The keys (`health::Target::key`) of the targets it finds down.
    pub down: BTreeSet<String>,
    pub config_digest: String,
    pub geoip_digest: String,
    pub version: String,
}

impl ReplicaView {
    pub fn fresh(&self, now: SystemTime) -> bool {
        self.renewed + self.duration > now
    }

    /// Whether this view probes the target `key`: it names it down or among its probed
    /// targets; or, when its Lease could not list them (too many), it probes the same target
    /// set as `own_digest`.
    fn probes(&self, key: &str, own_digest: &str) -> bool {
        self.down.contains(key)
            || match &self.probed_keys {
                Some(keys) => keys.contains(key),
                None => self.targets_digest == own_digest,
            }
    }
}

/// A Lease lists its probed targets when their keys take at most this many bytes (an
/// object's annotations may take 256 KiB in all); past it, only their digest.
pub const MAX_LISTED: usize = 128 * 1024;

/// This replica's own view, as it publishes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OwnView {
    /// Keys of the targets probed, sorted.
    pub probed: Vec<String>,
    /// Keys of the targets found down, sorted.
    pub down: Vec<String>,
}

impl OwnView {
    pub fn digest(&self) -> String {
        digest_lines(self.probed.iter().map(String::as_str))
    }
}

/// The votes on one target: replicas (this one included) that find it up, and down.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Votes {
    pub up: Vec<String>,
    pub down: Vec<String>,
}

/// The targets (by key) whose votes a change of the fleet's views may have moved: the
/// names behind them are rebuilt, not the whole snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Moved {
    #[default]
    Nothing,
    Targets(BTreeSet<String>),
    /// A view that could not list its targets (only their digest): any may have moved.
    All,
}

impl Moved {
    fn add<'a>(&mut self, keys: impl IntoIterator<Item = &'a String>) {
        match self {
            Moved::All => {}
            Moved::Nothing => {
                let keys: BTreeSet<String> = keys.into_iter().cloned().collect();
                if !keys.is_empty() {
                    *self = Moved::Targets(keys);
                }
            }
            Moved::Targets(set) => set.extend(keys.into_iter().cloned()),
        }
    }

    /// Every target `v` votes on.
    fn add_view(&mut self, v: &ReplicaView) {
        match &v.probed_keys {
            Some(keys) => {
                self.add(keys);
                self.add(&v.down);
            }
            None => *self = Moved::All,
        }
    }
}

#[derive(Debug)]
struct Own {
    config_digest: String,
    geoip_digest: String,
    quorum: Quorum,
}

/// The other replicas' views: the freshest copy of each, whichever cluster it came from.
#[derive(Debug)]
pub struct Fleet {
    /// This replica's name; its own Leases are not views of others.
    pub me: String,
    views: Mutex<HashMap<String, ReplicaView>>,
    /// This replica's config and GeoIP digests, to compare with the others', and the
    /// quorum in force.
    own: Mutex<Own>,
}

impl Fleet {
    pub fn new(me: &str) -> Fleet {
        Fleet {
            me: me.to_owned(),
            views: Mutex::default(),
            own: Mutex::new(Own {
                config_digest: String::new(),
                geoip_digest: String::new(),
                quorum: Quorum::Majority,
            }),
        }
    }

    /// Sets this replica's digests and quorum (at start and after every reload).
    pub fn set_own(&self, config_digest: &str, geoip_digest: &str, quorum: Quorum) {
        *self.own.lock().unwrap_or_else(|p| p.into_inner()) = Own {
            config_digest: config_digest.to_owned(),
            geoip_digest: geoip_digest.to_owned(),
            quorum,
        };
    }

    /// This replica's config and GeoIP digests.
    pub fn digests(&self) -> (String, String) {
        let own = self.own.lock().unwrap_or_else(|p| p.into_inner());
        (own.config_digest.clone(), own.geoip_digest.clone())
    }

    /// The quorum in force.
    pub fn quorum(&self) -> Quorum {
        self.own.lock().unwrap_or_else(|p| p.into_inner()).quorum
    }

    /// Takes a copy of a replica's view; keeps it if it is the freshest. Returns the
    /// targets whose votes it may have moved: those whose down vote changed; every target
    /// the view votes on when it starts or stops voting or probes other targets now.
    pub fn observe(&self, view: ReplicaView) -> Moved {
        if view.name == self.me {
            return Moved::Nothing;
        }
        let now = SystemTime::now();
        let mut views = self.lock();
        let mut moved = Moved::Nothing;
        match views.get(&view.name) {
            Some(old) if old.renewed > view.renewed => return Moved::Nothing,
            Some(old) => match (old.fresh(now), view.fresh(now)) {
                (false, false) => {}
                (true, true)
                    if old.targets_digest == view.targets_digest
                        && old.probed_keys == view.probed_keys =>
                {
                    moved.add(old.down.symmetric_difference(&view.down));
                }
                _ => {
                    moved.add_view(old);
                    moved.add_view(&view);
                }
            },
            None if view.fresh(now) => moved.add_view(&view),
            None => {}
        }
        views.insert(view.name.clone(), view);
        moved
    }

    /// Drops the copy read from `via` of a replica whose Lease was deleted there (a copy
    /// from another cluster stays). Returns the targets whose votes that moved.
    pub fn forget(&self, name: &str, via: &str) -> Moved {
        let mut views = self.lock();
        let mut moved = Moved::Nothing;
        if views.get(name).is_some_and(|v| v.via == via) {
            let gone = views.remove(name).expect("checked above");
            if gone.fresh(SystemTime::now()) {
                moved.add_view(&gone);
            }
        }
        moved
    }

    /// The targets whose votes moved because views expired after `since` and by `now`.
    pub fn expired(&self, since: SystemTime, now: SystemTime) -> Moved {
        let mut moved = Moved::Nothing;
        for v in self.lock().values() {
            let end = v.renewed + v.duration;
            if end > since && end <= now {
                moved.add_view(v);
            }
        }
        moved
    }

    /// Every other replica's view, fresh or not, by name.
    pub fn views(&self) -> Vec<ReplicaView> {
        let mut v: Vec<ReplicaView> = self.lock().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The votes on target `key` of the fresh views that probe it, with this replica's.
    pub fn votes(&self, key: &str, own_down: bool, own_digest: &str, now: SystemTime) -> Votes {
        let mut votes = Votes::default();
        let me = self.me.clone();
        if own_down {
            votes.down.push(me);
        } else {
            votes.up.push(me);
        }
        for v in self.lock().values() {
            if !v.fresh(now) || !v.probes(key, own_digest) {
                continue;
            }
            if v.down.contains(key) {
                votes.down.push(v.name.clone());
            } else {
                votes.up.push(v.name.clone());
            }
        }
        votes
    }

    /// The votes on every target of this replica's view, in its order.
    pub fn tally(&self, own: &OwnView, now: SystemTime) -> Vec<(String, Votes)> {
        let digest = own.digest();
        own.probed
            .iter()
            .map(|k| {
                let down = own.down.binary_search(k).is_ok();
                (k.clone(), self.votes(k, down, &digest, now))
            })
            .collect()
    }

    /// How many other replicas' views are fresh now.
    pub fn fresh(&self, now: SystemTime) -> usize {
        self.lock().values().filter(|v| v.fresh(now)).count()
    }

    /// When the next fresh view expires: the votes change then.
    pub fn next_expiry(&self, now: SystemTime) -> Option<SystemTime> {
        self.lock()
            .values()
            .filter(|v| v.fresh(now))
            .map(|v| v.renewed + v.duration)
            .min()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ReplicaView>> {
        // Every write is one entry update: a poisoned lock holds consistent data.
        self.views.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A digest of lines, the same on every replica and every version: FNV-1a 64 over the
/// lines joined by newlines, in hex.
pub fn digest_lines<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    let mut h = Fnv::default();
    for (i, l) in lines.enumerate() {
        if i > 0 {
            h.write(b"\n");
        }
        h.write(l.as_bytes());
    }
    format!("{:016x}", h.0)
}

/// A digest of bytes (a config file, a GeoIP database): FNV-1a 64 in hex.
pub fn digest_bytes(bytes: &[u8]) -> String {
    let mut h = Fnv::default();
    h.write(bytes);
    format!("{:016x}", h.0)
}

struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// This replica's region: the configured one, else `FEDNS_REGION` from the environment
/// (one shared config, each Deployment its own region), else none.
pub fn replica_region(configured: Option<&str>) -> Option<String> {
    configured
        .map(str::to_owned)
        .or_else(|| std::env::var("FEDNS_REGION").ok())
        .filter(|s| !s.trim().is_empty())
}

/// This replica's name: the configured one, else `POD_NAME`, else the host name, made a
/// valid label (lowercase; other characters become `-`).
pub fn replica_name(configured: Option<&str>) -> String {
    let raw = configured
        .map(str::to_owned)
        .or_else(|| std::env::var("POD_NAME").ok().filter(|s| !s.is_empty()))
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "fedns".to_owned());
    let mut name: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(57)
        .collect();
    name = name.trim_matches('-').to_owned();
    if name.is_empty() {
        "fedns".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, down: &[&str], renewed_ago: u64, digest: &str) -> ReplicaView {
        ReplicaView {
            name: name.into(),
            region: None,
            via: "us-east".into(),
            renewed: SystemTime::now() - Duration::from_secs(renewed_ago),
            duration: Duration::from_secs(15),
            probed: 3,
            targets_digest: digest.into(),
            probed_keys: None,
            down: down.iter().map(|s| s.to_string()).collect(),
            config_digest: String::new(),
            geoip_digest: String::new(),
            version: String::new(),
        }
    }

    #[test]
    fn only_fresh_views_that_probe_a_target_vote() {
        let f = Fleet::new("a");
        let now = SystemTime::now();
        // Unlisted target sets: any target's votes may move.
        assert_eq!(
            f.observe(view("b", &["tcp:192.0.2.1:80"], 1, "d1")),
            Moved::All
        );
        assert_eq!(f.observe(view("c", &[], 1, "d1")), Moved::All);
        // Expired: no vote, nothing moved.
        assert_eq!(
            f.observe(view("d", &["tcp:192.0.2.1:80"], 60, "d1")),
            Moved::Nothing
        );
        // Another target set, and the target not down: unknown whether it probes it.
        assert_eq!(f.observe(view("e", &[], 1, "other")), Moved::All);
        // Its own Lease read back is not a view of another replica.
        assert_eq!(
            f.observe(view("a", &["tcp:192.0.2.1:80"], 1, "d1")),
            Moved::Nothing
        );
        let v = f.votes("tcp:192.0.2.1:80", false, "d1", now);
        assert_eq!(v.up, ["a", "c"]);
        assert_eq!(v.down, ["b"]);
        assert_eq!(f.fresh(now), 3);
    }

    #[test]
    fn a_listed_target_set_says_exactly_what_a_view_probes() {
        let f = Fleet::new("a");
        let now = SystemTime::now();
        let mut b = view("b", &[], 1, "another digest");
        b.probed_keys = Some(["tcp:192.0.2.1:80".to_owned()].into());
        f.observe(b);
        // Listed: votes, whatever the digests say.
        assert_eq!(f.votes("tcp:192.0.2.1:80", true, "d1", now).up, ["b"]);
        // Not listed: no vote, even with the same digest.
        assert_eq!(
            f.votes("tcp:192.0.2.9:80", true, "another digest", now)
                .up
                .len(),
            0
        );
    }

    #[test]
    fn the_freshest_copy_wins_and_a_delete_drops_only_its_own_copy() {
        let f = Fleet::new("a");
        assert_eq!(f.observe(view("b", &["x"], 5, "d")), Moved::All);
        // An older copy from another cluster changes nothing.
        let mut old = view("b", &[], 10, "d");
        old.via = "eu-west".into();
        assert_eq!(f.observe(old), Moved::Nothing);
        assert_eq!(f.views()[0].down.len(), 1);
        assert_eq!(f.forget("b", "eu-west"), Moved::Nothing);
        assert_eq!(f.forget("b", "us-east"), Moved::All);
        assert!(f.views().is_empty());
    }

    #[test]
    fn a_change_of_view_moves_only_the_targets_whose_votes_it_changes() {
        let keys = |k: &[&str]| Moved::Targets(k.iter().map(|s| s.to_string()).collect());
        let listed = |down: &[&str], ago: u64| {
            let mut v = view("b", down, ago, "d");
            v.probed_keys = Some(["t1", "t2", "t3"].iter().map(|s| s.to_string()).collect());
            v
        };
        let f = Fleet::new("a");
        // A new fresh view votes on all it probes.
        assert_eq!(f.observe(listed(&[], 3)), keys(&["t1", "t2", "t3"]));
        // Renewed with the same view: nothing moved.
        assert_eq!(f.observe(listed(&[], 2)), Moved::Nothing);
        // t2 goes down, then t2 comes back while t3 goes down.
        assert_eq!(f.observe(listed(&["t2"], 1)), keys(&["t2"]));
        assert_eq!(f.observe(listed(&["t3"], 0)), keys(&["t2", "t3"]));
        // Its Lease expires: every target it voted on, once.
        let now = SystemTime::now();
        let end = now + Duration::from_secs(15);
        assert_eq!(f.expired(now, end), keys(&["t1", "t2", "t3"]));
        assert_eq!(f.expired(end, end + Duration::from_secs(1)), Moved::Nothing);
        // Deleted while fresh: the same.
        assert_eq!(f.forget("b", "us-east"), keys(&["t1", "t2", "t3"]));
    }

    #[test]
    fn digests_are_stable_and_names_are_labels() {
        assert_eq!(digest_bytes(b""), "cbf29ce484222325");
        assert_eq!(digest_bytes(b"a"), "af63dc4c8601ec8c");
        assert_eq!(digest_lines(["a", "b"].into_iter()), digest_bytes(b"a\nb"));
        assert_eq!(replica_name(Some("Fedns_EU.1")), "fedns-eu-1");
        assert_eq!(replica_name(Some("--")), "fedns");
    }
}
