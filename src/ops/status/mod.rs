//! The status page, served by the admin server at `/`: where the world is sent right now
//! and why. One self-contained page (`index.html`: HTML, CSS and JavaScript, no external
//! request) that polls three endpoints of this module:
//! - `status/world.json`: the countries' shapes (`world/countries.json`, from Natural
//!   Earth; `world/LICENSE.md` says how it is made);
//! - `status/state.json?name=&type=`: the names, where each country's clients are sent
//!   for the chosen one, the clusters (health, watch state, answers per second over 15
//!   minutes), overrides and probes;
//! - `status/explain?name=&type=&country=`: the explain of one country.
//!
//! It reads what `/debug/records` and `/debug/explain` read, and decides nothing itself:
//! a country's cluster is the answer function's, for a client at the country's centroid
//! (`explain::country_client`).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use hickory_proto::rr::{DNSClass, Name, RecordType};
use serde_json::{Value, json};

use super::explain;
use super::time::rfc3339;
use crate::answer;
use crate::health::{Health, HealthTable};
use crate::snapshot::{ClusterId, FedName, OverrideTarget, Published, Snapshot};
use crate::store::Store;

/// The page.
pub const PAGE: &str = include_str!("index.html");
/// The countries' shapes.
pub const WORLD: &str = include_str!("world/countries.json");

/// How often answers per cluster are sampled, and how many samples are kept (15 minutes).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const SAMPLES: usize = 90;
/// At most this many names in the picker, and probes in the table.
const MAX_NAMES: usize = 500;
const MAX_PROBES: usize = 200;

/// The country codes of the map, in its order.
static COUNTRIES: LazyLock<Vec<String>> = LazyLock::new(|| {
    serde_json::from_str::<Value>(WORLD)
        .ok()
        .and_then(|v| {
            v["countries"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
        })
        .unwrap_or_default()
});

/// Answers per second of each cluster, one value per `SAMPLE_EVERY`, the last 15 minutes:
/// in-process ring buffers filled from the answer counters, no time-series store.
#[derive(Debug, Default)]
pub struct Rates {
    inner: Mutex<RatesInner>,
}

#[derive(Debug, Default)]
struct RatesInner {
    last: HashMap<String, (u64, SystemTime)>,
    series: HashMap<String, VecDeque<f64>>,
}

impl Rates {
    /// Records the answer totals by cluster read at `now`.
    pub fn sample(&self, totals: &[(String, u64)], now: SystemTime) {
        let mut r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (cluster, total) in totals {
            if let Some((before, at)) = r.last.get(cluster).copied() {
                let secs = now.duration_since(at).unwrap_or_default().as_secs_f64();
                let rate = if secs > 0.0 {
                    total.saturating_sub(before) as f64 / secs
                } else {
                    0.0
                };
                let s = r.series.entry(cluster.clone()).or_default();
                if s.len() == SAMPLES {
                    s.pop_front();
                }
                s.push_back(rate);
            }
            r.last.insert(cluster.clone(), (*total, now));
        }
    }

    /// The series of a cluster, oldest first.
    pub fn series(&self, cluster: &str) -> Vec<f64> {
        let r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        r.series
            .get(cluster)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// What the status page reads: the published snapshot, the store, the health table, the
/// answer rates, and the probe lines explain prints under each address.
pub struct View<'a> {
    pub published: &'a Published,
    pub store: &'a Store,
    pub health: &'a HealthTable,
    pub rates: &'a Rates,
    pub why: &'a dyn Fn(IpAddr) -> Vec<String>,
}

/// A response of this module: status, content type, body.
pub type Reply = (u16, &'static str, String);

/// The status page's routes; None for a path that is not one of them.
pub fn route(shared: &View<'_>, path: &str, query: &str) -> Option<Reply> {
    let params = super::query::params(query);
    let get = |k: &str| params.iter().find(|(p, _)| p == k).map(|(_, v)| v.as_str());
    Some(match path {
        "/" | "/status" | "/status/" => (200, "text/html; charset=utf-8", PAGE.to_owned()),
        "/status/world.json" => (200, "application/json", WORLD.to_owned()),
        "/status/state.json" => match state(shared, get("name"), get("type"), get("filter")) {
            Ok(v) => (200, "application/json", v.to_string()),
            Err(e) => (404, "text/plain; charset=utf-8", format!("{e}\n")),
        },
        "/status/explain" => {
            let snap = shared.published.load_full();
            let result = chosen(&snap, get("name")).and_then(|(fqdn, _)| {
                let name = Name::from_ascii(&fqdn).map_err(|e| e.to_string())?;
                let country = get("country").ok_or("give country=XX")?;
                explain::explain_country(&snap, country, &name, qtype(get("type")), shared.why)
            });
            match result {
                Ok(text) => (200, "text/plain; charset=utf-8", text),
                Err(e) => (400, "text/plain; charset=utf-8", format!("{e}\n")),
            }
        }
        _ => return None,
    })
}

fn qtype(t: Option<&str>) -> RecordType {
    match t {
        Some(t) if t.eq_ignore_ascii_case("AAAA") => RecordType::AAAA,
        _ => RecordType::A,
    }
}

/// Every federated name of a snapshot as a domain name (no trailing dot), sorted.
fn names(snap: &Snapshot) -> Vec<(String, &FedName)> {
    let fed = String::from_utf8_lossy(&snap.federation).into_owned();
    let apex = snap.apex.to_string();
    let apex = apex.trim_end_matches('.');
    let mut out: Vec<(String, &FedName)> = snap
        .services
        .iter()
        .map(|(key, f)| {
            let (ns, svc) = key.split_once('/').unwrap_or((key, ""));
            (format!("{svc}.{ns}.{fed}.svc.{apex}"), &**f)
        })
        .chain(
            snap.hosts
                .iter()
                .map(|(h, f)| (h.to_string().trim_end_matches('.').to_owned(), &**f)),
        )
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The name asked for (its domain name and its federated name), else the first in order.
fn chosen(snap: &Snapshot, name: Option<&str>) -> Result<(String, FedName), String> {
    chosen_of(&names(snap), name)
}

/// The name asked for among `names`, else the first of them.
fn chosen_of(
    names: &[(String, &FedName)],
    name: Option<&str>,
) -> Result<(String, FedName), String> {
    let pick = match name.map(|n| n.trim_end_matches('.').to_ascii_lowercase()) {
        Some(n) => names
            .iter()
            .find(|(d, _)| *d == n)
            .ok_or_else(|| format!("no federated name {n}"))?,
        None => names.first().ok_or("no federated name yet")?,
    };
    Ok((pick.0.clone(), pick.1.clone()))
}

/// The names that contain `filter` (ignoring case; every name without one), in order.
fn matching<'a, 'n>(
    names: &'a [(String, &'n FedName)],
    filter: Option<&str>,
) -> Vec<&'a (String, &'n FedName)> {
    let filter = filter.map(|f| f.trim().trim_end_matches('.').to_ascii_lowercase());
    names
        .iter()
        .filter(|(n, _)| filter.as_deref().is_none_or(|f| n.contains(f)))
        .collect()
}

/// `state.json`: the state of `name` (else the first name that contains `filter`, else
/// the first name) for `t`, with the names that contain `filter` for the picker (at most
/// `MAX_NAMES` of them, and how many there are).
fn state(
    shared: &View<'_>,
    name: Option<&str>,
    t: Option<&str>,
    filter: Option<&str>,
) -> Result<Value, String> {
    let snap = shared.published.load_full();
    let all = names(&snap);
    let matched = matching(&all, filter);
    let (fqdn, fed) = match (name, matched.first()) {
        (None, Some((n, f))) => (n.clone(), (*f).clone()),
        _ => chosen_of(&all, name)?,
    };
    let qtype = qtype(t);
    let qname = Name::from_ascii(&fqdn).map_err(|e| e.to_string())?;
    let q = answer::Question {
        name: &qname,
        qtype,
        qclass: DNSClass::IN,
    };
    let mut countries = serde_json::Map::new();
    for cc in COUNTRIES.iter() {
        let Ok(located) = explain::country_client(cc) else {
            continue;
        };
        let a = answer::answer_placed(&snap, &q, &located, false);
        let cluster = a
            .first_cluster
            .and_then(|c| snap.clusters.get(usize::from(c)))
            .map(|c| c.name.clone());
        countries.insert(cc.clone(), json!({ "cluster": cluster }));
    }
    // Probe targets by cluster, from the snapshot's members (address -> cluster).
    let mut owner: HashMap<IpAddr, ClusterId> = HashMap::new();
    for (_, f) in &all {
        for m in &f.members {
            for (a, _) in &m.v4 {
                owner.insert(IpAddr::V4(*a), m.cluster);
            }
            for (a, _) in &m.v6 {
                owner.insert(IpAddr::V6(*a), m.cluster);
            }
        }
    }
    let states = shared.health.states();
    let mut up = vec![0u32; snap.clusters.len()];
    let mut down = vec![0u32; snap.clusters.len()];
    for (t, s) in &states {
        if let Some(&c) = owner.get(&t.addr.ip()) {
            let slot = if s.health == Health::Healthy {
                &mut up
            } else {
                &mut down
            };
            slot[usize::from(c)] += 1;
        }
    }
    let contents = shared.store.contents();
    let clusters: Vec<Value> = snap
        .clusters
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let member = fed.members.iter().find(|m| usize::from(m.cluster) == i);
            let kube = contents.get(&c.name).and_then(|e| e.kube.as_ref());
            let watch = if !c.watched {
                "static"
            } else if c.stale {
                "stale"
            } else if c.synced {
                "synced"
            } else {
                "syncing"
            };
            json!({
                "name": c.name,
                "region": c.region,
                "lat": c.location.lat,
                "lon": c.location.lon,
                "healthy": member.map(|m| m.serving()),
                "watch": watch,
                "last_error": kube.and_then(|k| k.last_error.clone()),
                "targets_healthy": up[i],
                "targets_unhealthy": down[i],
                "answers_per_second": shared.rates.series(&c.name),
            })
        })
        .collect();
    let overrides: Vec<Value> = snap
        .locator
        .overrides()
        .iter()
        .map(|o| {
            let target = match &o.target {
                OverrideTarget::Cluster(id, _) => format!(
                    "cluster {}",
                    snap.clusters
                        .get(usize::from(*id))
                        .map_or("?", |c| c.name.as_str())
                ),
                OverrideTarget::Location(_, what) => format!("location {what}"),
            };
            json!({ "cidr": o.net.to_string(), "target": target })
        })
        .collect();
    let mut probes: Vec<_> = states.into_iter().collect();
    // The unhealthy first, then by target.
    probes.sort_by(|a, b| {
        (a.1.health == Health::Healthy, &a.0).cmp(&(b.1.health == Health::Healthy, &b.0))
    });
    let probes_total = probes.len();
    let probes: Vec<Value> = probes
        .into_iter()
        .take(MAX_PROBES)
        .map(|(t, s)| {
            let cluster = owner
                .get(&t.addr.ip())
                .and_then(|c| snap.clusters.get(usize::from(*c)))
                .map(|c| c.name.clone());
            json!({
                "target": t.to_string(),
                "cluster": cluster,
                "state": if s.health == Health::Healthy { "healthy" } else { "unhealthy" },
                "last": match &s.last_result {
                    None => "not probed yet".to_owned(),
                    Some(Ok(())) => "ok".to_owned(),
                    Some(Err(e)) => e.clone(),
                },
                "since": s.last_change.map(|t| rfc3339(t, false)),
            })
        })
        .collect();
    Ok(json!({
        "generated": rfc3339(SystemTime::now(), false),
        "names": matched.iter().take(MAX_NAMES).map(|(n, _)| n).collect::<Vec<_>>(),
        "names_matched": matched.len(),
        "names_total": all.len(),
        "name": fqdn,
        "type": qtype.to_string(),
        "fqdn": format!("{fqdn}."),
        "policy": fed.policy.kind.as_str(),
        "clusters": clusters,
        "countries": countries,
        "overrides": overrides,
        "probes": probes,
        "probes_total": probes_total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_has_its_countries_and_every_one_places_a_client() {
        assert!(COUNTRIES.len() > 200, "{}", COUNTRIES.len());
        for cc in ["DE", "US", "JP", "BR", "AU"] {
            assert!(COUNTRIES.iter().any(|c| c == cc), "{cc}");
        }
        let unplaced: Vec<&String> = COUNTRIES
            .iter()
            .filter(|c| explain::country_client(c).is_err())
            .collect();
        assert!(unplaced.is_empty(), "no centroid for {unplaced:?}");
    }

    #[test]
    fn rates_are_per_second_and_keep_fifteen_minutes() {
        let r = Rates::default();
        let t0 = std::time::UNIX_EPOCH + Duration::from_secs(1000);
        r.sample(&[("a".into(), 100)], t0);
        assert!(r.series("a").is_empty());
        for i in 1..=100u64 {
            r.sample(&[("a".into(), 100 + i * 50)], t0 + SAMPLE_EVERY * i as u32);
        }
        let s = r.series("a");
        assert_eq!(s.len(), SAMPLES);
        assert!(s.iter().all(|v| (*v - 5.0).abs() < 1e-9), "{s:?}");
    }
}
