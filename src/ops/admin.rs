//! The admin HTTP server: the status page (`/`, `status/...`), `/metrics`, `/healthz`,
//! `/readyz`, `/debug/records`, `/debug/explain?name=&client=&type=`. HTTP/1.1 only; it serves operators and
//! Prometheus, never DNS clients.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tracing::debug;

use crate::fleet::Fleet;
use crate::fleet::overrides::{Override, Overrides};
use crate::health::Health;
use crate::health::HealthTable;
use crate::health::quorum::{self, decide};
use crate::metrics::Metrics;
use crate::snapshot::Published;
use crate::snapshot::{FedName, Snapshot};
use crate::store::Store;

/// What the admin server reads: the published snapshot, the store, the health table and
/// the metrics, and whether the server is ready. Nothing of the app's wiring.
#[derive(Clone)]
pub struct AdminState {
    pub published: Published,
    pub store: Arc<Store>,
    pub health: Arc<HealthTable>,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<dyn Readiness>,
    /// The other replicas' views, with a `fleet:` section.
    pub fleet: Option<Arc<Fleet>>,
    /// The operators' overrides in force.
    pub overrides: Arc<Overrides>,
    /// Answers per second by cluster over the last 15 minutes, for the status page.
    pub rates: Arc<super::status::Rates>,
}

/// Whether /readyz answers 200, and if not, why.
pub trait Readiness: Send + Sync {
    fn readiness(&self) -> Result<(), String>;
}

/// Accepts admin connections until aborted.
pub async fn serve(listener: TcpListener, shared: Arc<AdminState>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(route(&shared, &req)) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%peer, error = %e, "admin connection");
            }
        });
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

const TEXT: &str = "text/plain; charset=utf-8";

fn route(shared: &AdminState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "GET only\n".into());
    }
    let why = |ip: IpAddr| probe_lines(shared, ip);
    let view = super::status::View {
        published: &shared.published,
        store: &shared.store,
        health: &shared.health,
        rates: &shared.rates,
        why: &why,
    };
    if let Some((status, kind, body)) =
        super::status::route(&view, req.uri().path(), req.uri().query().unwrap_or(""))
    {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return reply(status, kind, body);
    }
    match req.uri().path() {
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            shared.metrics.render(),
        ),
        "/healthz" | "/live" => reply(StatusCode::OK, TEXT, "ok\n".into()),
        "/readyz" | "/ready" => match shared.readiness.readiness() {
            Ok(()) => reply(StatusCode::OK, TEXT, "ready\n".into()),
            Err(why) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                format!("not ready: {why}\n"),
            ),
        },
        "/debug/records" => reply(
            StatusCode::OK,
            "application/json",
            serde_json::to_string_pretty(&records(shared)).unwrap_or_default(),
        ),
        "/debug/explain" => explain(shared, req.uri().query().unwrap_or("")),
        "/debug/fleet" => match &shared.fleet {
            Some(f) => reply(
                StatusCode::OK,
                "application/json",
                serde_json::to_string_pretty(&fleet_json(f, &shared.health)).unwrap_or_default(),
            ),
            None => reply(
                StatusCode::NOT_FOUND,
                TEXT,
                "no fleet: this replica has no `fleet:` section and decides alone\n".into(),
            ),
        },
        _ => reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: try / (the status page) /metrics /healthz /readyz /debug/records /debug/explain /debug/fleet\n"
                .into(),
        ),
    }
}

/// `/debug/explain?name=<name>&client=<ip or cidr>&type=<A|AAAA|...>`: the decision
/// `fedns explain` prints, against the live snapshot (with live health).
fn explain(shared: &AdminState, query: &str) -> Response<Full<Bytes>> {
    let mut name = None;
    let mut client = None;
    let mut qtype = "A".to_owned();
    for (k, v) in super::query::params(query) {
        match k.as_str() {
            "name" => name = Some(v),
            "client" => client = Some(v),
            "type" => qtype = v.to_ascii_uppercase(),
            _ => {}
        }
    }
    let (Some(name), Some(client)) = (name, client) else {
        return reply(
            StatusCode::BAD_REQUEST,
            TEXT,
            "need ?name=<name>&client=<ip or cidr>[&type=A]\n".into(),
        );
    };
    let (Ok(name), Ok(qtype)) = (
        hickory_proto::rr::Name::from_ascii(&name),
        qtype.parse::<hickory_proto::rr::RecordType>(),
    ) else {
        return reply(StatusCode::BAD_REQUEST, TEXT, "bad name or type\n".into());
    };
    let snap = shared.published.load_full();
    let why = |ip: IpAddr| probe_lines(shared, ip);
    match crate::ops::explain::explain(&snap, &client, &name, qtype, &why) {
        Ok(text) => reply(StatusCode::OK, TEXT, text),
        Err(e) => reply(StatusCode::BAD_REQUEST, TEXT, format!("{e}\n")),
    }
}

/// For `/debug/explain`: each probe target at `ip`, this replica's own health of it and,
/// in a fleet that votes, every fresh view's vote and what the quorum made of them.
fn probe_lines(shared: &AdminState, ip: IpAddr) -> Vec<String> {
    let now = SystemTime::now();
    let own = shared.health.view();
    let digest = own.digest();
    let fleet = shared
        .fleet
        .as_deref()
        .filter(|f| f.quorum() != crate::config::Quorum::Own);
    let mut lines: Vec<String> = shared
        .health
        .healths()
        .into_iter()
        .filter(|(t, _)| t.addr.ip() == ip)
        .map(|(t, h)| {
            let key = t.key();
            match fleet {
                None => format!("probe {key}: {h:?} (this replica's own probe)"),
                Some(f) => {
                    let mut votes = f.votes(&key, h == Health::Unhealthy, &digest, now);
                    votes.up.sort();
                    votes.down.sort();
                    let decided = decide(f.quorum(), &votes);
                    let names = |v: &[String]| match v {
                        [] => "-".to_owned(),
                        v => v.join(" "),
                    };
                    format!(
                        "probe {key}: up {}; down {} -> {decided:?} by quorum {}",
                        names(&votes.up),
                        names(&votes.down),
                        f.quorum()
                    )
                }
            }
        })
        .collect();
    lines.sort();
    lines
}

/// Every name with its clusters, addresses, health and staleness; every cluster with its
/// watch state; every probe.
fn records(shared: &AdminState) -> Value {
    let snap = shared.published.load_full();
    let contents = shared.store.contents();
    let mut names: Vec<Value> = Vec::new();
    let fed = String::from_utf8_lossy(&snap.federation).into_owned();
    let mut services: Vec<(&String, &Arc<FedName>)> = snap.services.iter().collect();
    services.sort_by_key(|(k, _)| *k);
    for (key, f) in services {
        let (ns, svc) = key.split_once('/').unwrap_or((key, ""));
        names.push(name_json(
            &snap,
            &format!("{svc}.{ns}.{fed}.svc.{}", snap.apex),
            "service",
            f,
        ));
    }
    let mut hosts: Vec<_> = snap.hosts.iter().collect();
    hosts.sort_by_key(|(k, _)| k.to_string());
    for (host, f) in hosts {
        names.push(name_json(&snap, &host.to_string(), "host", f));
    }
    let clusters: Vec<Value> = snap
        .clusters
        .iter()
        .map(|c| {
            let ce = contents.get(&c.name);
            let kube = ce.and_then(|e| e.kube.as_ref());
            let secs = |t: Option<std::time::SystemTime>| {
                t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs())
            };
            json!({
                "name": c.name,
                "region": c.region,
                "zone": c.zone,
                "location": { "lat": c.location.lat, "lon": c.location.lon },
                "watched": kube.is_some(),
                "synced_at": secs(kube.and_then(|k| k.synced_at)),
                "last_event_at": secs(kube.and_then(|k| k.last_event_at)),
                "stale": kube.is_some_and(|k| k.stale),
                "last_error": kube.and_then(|k| k.last_error.clone()),
                "kinds": kube.map(|k| {
                    k.kinds
                        .iter()
                        .map(|(kind, state)| (kind.to_string(), json!(state.to_string())))
                        .collect::<serde_json::Map<_, _>>()
                }),
                "endpoints": ce.map_or(0, |e| e.len()),
            })
        })
        .collect();
    let mut states: Vec<_> = shared.health.states().into_iter().collect();
    states.sort_by(|a, b| a.0.cmp(&b.0));
    let probes: Vec<Value> = states
        .into_iter()
        .map(|(t, s)| {
            json!({
                "address": t.addr.to_string(),
                "probe": t.probe(),
                "health": health_str(s.health),
                "probes": s.probes,
                "failures": s.failures,
                "last_result": s.last_result.map(|r| r.err().unwrap_or_else(|| "ok".into())),
            })
        })
        .collect();
    let mut overrides: Vec<(String, Override)> = shared
        .overrides
        .active(SystemTime::now())
        .into_iter()
        .collect();
    overrides.sort_by(|a, b| a.0.cmp(&b.0));
    let overrides: Vec<Value> = overrides
        .into_iter()
        .map(|(k, o)| {
            json!({ "key": k, "action": o.action, "until": o.until, "since": o.at, "reason": o.reason, "by": o.by })
        })
        .collect();
    json!({ "zone": snap.apex.to_string(), "names": names, "clusters": clusters, "probes": probes, "overrides": overrides })
}

/// `/debug/fleet`: this replica and its view; every other replica known from its Leases
/// (fresh or not, from which cluster, its digests and its view); and for every target
/// this replica probes, the votes and what the quorum decides.
fn fleet_json(fleet: &Fleet, table: &HealthTable) -> Value {
    let now = SystemTime::now();
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (config, geoip) = fleet.digests();
    let quorum = fleet.quorum();
    let own = table.view();
    let digest = own.digest();
    let replicas: Vec<Value> = fleet
        .views()
        .into_iter()
        .map(|v| {
            json!({
                "name": v.name,
                "region": v.region,
                "via": v.via,
                "renewed": secs(v.renewed),
                "fresh": v.fresh(now),
                "lease_duration_s": v.duration.as_secs(),
                "probed": v.probed,
                "same_targets": v.targets_digest == digest,
                "down": v.down,
                "same_config": v.config_digest == config,
                "same_geoip": v.geoip_digest == geoip,
                "config_digest": v.config_digest,
                "geoip_digest": v.geoip_digest,
                "version": v.version,
            })
        })
        .collect();
    let targets: Vec<Value> = fleet
        .tally(&own, now)
        .into_iter()
        .map(|(k, votes)| {
            let decided = quorum::decide(quorum, &votes);
            json!({ "target": k, "up": votes.up, "down": votes.down, "decided": health_str(decided) })
        })
        .collect();
    json!({
        "me": fleet.me,
        "quorum": quorum.to_string(),
        "config_digest": config,
        "geoip_digest": geoip,
        "targets_digest": digest,
        "replicas": replicas,
        "targets": targets,
    })
}

fn health_str(h: Health) -> &'static str {
    match h {
        Health::Healthy => "healthy",
        Health::Unhealthy => "unhealthy",
    }
}

fn name_json(snap: &Snapshot, name: &str, kind: &str, f: &FedName) -> Value {
    let members: Vec<Value> = f
        .members
        .iter()
        .map(|m| {
            let c = &snap.clusters[m.cluster as usize];
            let addrs: Vec<Value> =
                m.v4.iter()
                    .map(|(a, h)| json!({ "address": a.to_string(), "health": health_str(*h) }))
                    .chain(m.v6.iter().map(
                        |(a, h)| json!({ "address": a.to_string(), "health": health_str(*h) }),
                    ))
                    .collect();
            json!({
                "cluster": c.name,
                "ready": m.ready,
                "ready_endpoints": m.ready_endpoints,
                "forced": m.forced,
                "healthy": m.healthy(),
                "drained": m.drained,
                "stale": c.stale,
                "addresses": addrs,
                "hostname": m.hostname.as_ref().map(|h| h.to_string()),
            })
        })
        .collect();
    // Only drained clusters are healthy: the answer sets the drains aside.
    let drains_held =
        !f.members.iter().any(|m| m.serving()) && f.members.iter().any(|m| m.healthy());
    json!({
        "name": name,
        "kind": kind,
        "object": f.display,
        "policy": f.policy.kind.to_string(),
        "count": f.policy.count,
        "clusters": members,
        "drains_held": drains_held,
    })
}
