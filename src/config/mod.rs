//! The YAML configuration: its shape (SPEC section 6), parsing with errors that name the
//! file, line and field, and the semantic checks that serde cannot express.
//!
//! Field names here are an interface that users and outside tests rely on: add fields
//! freely, rename none. Every struct rejects unknown fields so that a typo is an error,
//! not a silently ignored setting.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, de};
use serde_saphyr::Spanned;

use crate::geo::{LatLon, places};

pub mod zonefile;

/// A configuration error: the file, the line (when one can be named) and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Syntax and type errors; serde-saphyr's message already names line, column and the
    /// offending field, with a snippet of the file.
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// Semantic errors found after parsing, located at the YAML node they concern.
    #[error("{path}:{line}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        line: u64,
        field: String,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The apex fedns is authoritative for, e.g. `fed.example.com`.
    pub zone: String,
    /// The federation name: names are `<svc>.<ns>.<federation>.svc.<zone>`.
    pub federation: String,
    /// Optional zone file with SOA, NS, glue and static records. Relative to the config file.
    #[serde(default)]
    pub zone_file: Option<PathBuf>,
    #[serde(default)]
    pub listen: Listen,
    /// TTL of geo answers, in seconds. Short, so that failover reaches clients quickly.
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    #[serde(default)]
    pub geoip: Option<GeoipConfig>,
    /// Source overrides, longest prefix wins; checked before the GeoIP database.
    #[serde(default)]
    pub networks: Vec<Spanned<NetworkOverride>>,
    /// The default policy of every federated name.
    #[serde(default)]
    pub policy: PolicyKind,
    /// How many clusters a `nearest` answer holds by default.
    #[serde(default = "default_count")]
    pub count: u32,
    /// Cluster order for clients that cannot be located. Default: the order of `clusters`.
    #[serde(default)]
    pub fallback: Vec<Spanned<String>>,
    /// Per-service policy settings (the Kubernetes source can also set them by annotation).
    #[serde(default)]
    pub services: Vec<Spanned<ServicePolicy>>,
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default)]
    pub kubernetes: KubernetesConfig,
    /// Where the last-known Kubernetes endpoints of every cluster are kept across restarts,
    /// so that a restart while some member APIs are unreachable still answers with their
    /// last-known records (flagged stale). Optional; relative to the config file.
    #[serde(default)]
    pub state_file: Option<PathBuf>,
    /// Response rate limiting of UDP replies per client network; off when absent.
    #[serde(default)]
    pub rrl: Option<RrlConfig>,
    /// After SIGTERM, how long fedns keeps answering while /readyz says 503, so that load
    /// balancers and forwarders move away before the listeners close.
    #[serde(default = "default_drain", deserialize_with = "duration")]
    pub drain: Duration,
    pub clusters: Vec<Spanned<ClusterConfig>>,
}

/// Response rate limiting (see `rrl.rs`). Changes take effect at the next restart.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RrlConfig {
    /// Identical-looking UDP responses per second to one client network.
    #[serde(default = "default_rrl_rate")]
    pub responses_per_second: u32,
    /// Over the limit, every `slip`-th response is sent truncated (TC) so real clients
    /// retry over TCP; 0 drops them all.
    #[serde(default = "default_rrl_slip")]
    pub slip: u32,
    #[serde(default = "default_rrl_v4")]
    pub ipv4_prefix: u8,
    #[serde(default = "default_rrl_v6")]
    pub ipv6_prefix: u8,
    /// Counters kept: memory is fixed at 8 bytes each, whatever the clients send.
    #[serde(default = "default_rrl_table")]
    pub table_size: usize,
}

impl Default for RrlConfig {
    fn default() -> Self {
        RrlConfig {
            responses_per_second: default_rrl_rate(),
            slip: default_rrl_slip(),
            ipv4_prefix: default_rrl_v4(),
            ipv6_prefix: default_rrl_v6(),
            table_size: default_rrl_table(),
        }
    }
}

fn default_rrl_rate() -> u32 {
    20
}
fn default_rrl_slip() -> u32 {
    2
}
fn default_rrl_v4() -> u8 {
    24
}
fn default_rrl_v6() -> u8 {
    56
}
fn default_rrl_table() -> usize {
    65_536
}

/// How fedns talks to member clusters' API servers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Server-side timeout of each watch request; the watch is then re-established. A
    /// cluster whose API stops answering is noticed after this plus a quarter (1 to 15 s).
    #[serde(default = "default_watch_timeout", deserialize_with = "duration")]
    pub watch_timeout: Duration,
    #[serde(default = "default_connect_timeout", deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// `/readyz` stops waiting for clusters that have not synced after this long.
    #[serde(default = "default_sync_timeout", deserialize_with = "duration")]
    pub sync_timeout: Duration,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            watch_timeout: default_watch_timeout(),
            connect_timeout: default_connect_timeout(),
            sync_timeout: default_sync_timeout(),
        }
    }
}

fn default_watch_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_sync_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_ttl() -> u32 {
    30
}

fn default_count() -> u32 {
    1
}

fn default_drain() -> Duration {
    Duration::from_secs(5)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// UDP and TCP are served on each of these.
    #[serde(default = "default_dns_listen")]
    pub dns: Vec<SocketAddr>,
    #[serde(default)]
    pub admin: Option<SocketAddr>,
    /// UDP worker threads, each with its own socket, per DNS address. Default: the CPUs
    /// fedns may run on (its affinity mask).
    #[serde(default)]
    pub udp_workers: Option<NonZeroUsize>,
    /// Open TCP connections at most; past that, new ones are closed at once.
    #[serde(default = "default_tcp_max_connections")]
    pub tcp_max_connections: NonZeroUsize,
    /// A TCP connection with no query for this long is closed (RFC 7766 section 6.2.3).
    #[serde(default = "default_tcp_idle_timeout", deserialize_with = "duration")]
    pub tcp_idle_timeout: Duration,
    /// A query that has started to arrive over TCP must be complete, and a reply must be
    /// taken by the client, within this; else the connection is closed.
    #[serde(default = "default_tcp_io_timeout", deserialize_with = "duration")]
    pub tcp_io_timeout: Duration,
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            dns: default_dns_listen(),
            admin: None,
            udp_workers: None,
            tcp_max_connections: default_tcp_max_connections(),
            tcp_idle_timeout: default_tcp_idle_timeout(),
            tcp_io_timeout: default_tcp_io_timeout(),
        }
    }
}

fn default_tcp_max_connections() -> NonZeroUsize {
    NonZeroUsize::new(1024).expect("non-zero literal")
}

fn default_tcp_idle_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_tcp_io_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_dns_listen() -> Vec<SocketAddr> {
    vec!["0.0.0.0:53".parse().expect("literal address")]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoipConfig {
    /// A GeoIP2/GeoLite2/DB-IP City or Country MMDB, or an ip-location-db one.
    /// Relative to the config file.
    pub database: PathBuf,
    /// Locate clients by EDNS Client Subnet when the query carries one.
    #[serde(default = "yes")]
    pub use_ecs: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkOverride {
    pub cidr: Cidr,
    /// Clients in `cidr` get this cluster first.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Clients in `cidr` are placed at this region's location.
    #[serde(default)]
    pub region: Option<String>,
    /// Clients in `cidr` are placed at these coordinates.
    #[serde(default)]
    pub location: Option<Coordinates>,
}

/// A CIDR whose host bits must be zero, so that `10.1.2.3/8` is caught as a likely typo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub IpNet);

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let net = IpNet::from_str(&s).map_err(|_| {
            de::Error::custom(format!("`{s}` is not a CIDR (expected e.g. 10.8.0.0/14)"))
        })?;
        if net.trunc() != net {
            return Err(de::Error::custom(format!(
                "`{s}` has host bits set; did you mean {}?",
                net.trunc()
            )));
        }
        Ok(Cidr(net))
    }
}

/// `{ lat: 50.11, lon: 8.68 }`, range-checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coordinates(pub LatLon);

impl<'de> Deserialize<'de> for Coordinates {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            lat: f64,
            lon: f64,
        }
        let raw = Raw::deserialize(d)?;
        if !(-90.0..=90.0).contains(&raw.lat) || !(-180.0..=180.0).contains(&raw.lon) {
            return Err(de::Error::custom(format!(
                "coordinates out of range: lat {} must be in [-90, 90], lon {} in [-180, 180]",
                raw.lat, raw.lon
            )));
        }
        Ok(Coordinates(LatLon {
            lat: raw.lat,
            lon: raw.lon,
        }))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyKind {
    /// The nearest healthy cluster(s) to the client.
    #[default]
    Nearest,
    /// The first healthy cluster of an ordered list.
    Failover,
    /// One healthy cluster drawn at random by weight.
    Weighted,
    /// Every healthy cluster, rotated round robin.
    All,
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyKind::Nearest => "nearest",
            PolicyKind::Failover => "failover",
            PolicyKind::Weighted => "weighted",
            PolicyKind::All => "all",
        })
    }
}

/// Policy settings for one federated service (`namespace/name`) or Ingress host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePolicy {
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// An Ingress host inside the zone, instead of namespace/name.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub policy: Option<PolicyKind>,
    #[serde(default)]
    pub count: Option<u32>,
    /// Cluster order for `failover`.
    #[serde(default)]
    pub order: Vec<String>,
    /// Cluster weights for `weighted`; clusters not named weigh 0.
    #[serde(default)]
    pub weights: BTreeMap<String, u32>,
}

/// Active probes of load-balancer addresses. The defaults fail an address over in at most
/// about 4 s (two probes that each time out after 1 s, 1 s apart) while one lost probe
/// never flips it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    #[serde(default)]
    pub probe: ProbeKind,
    /// Path of `http` and `https` probes.
    #[serde(default = "default_path")]
    pub path: String,
    /// Status an `http`/`https` probe expects.
    #[serde(default = "default_expect")]
    pub expect: u16,
    /// At most this many probes run at once.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    #[serde(default = "default_interval", deserialize_with = "duration")]
    pub interval: Duration,
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    #[serde(default = "default_rise")]
    pub rise: u32,
    #[serde(default = "default_fall")]
    pub fall: u32,
    #[serde(default)]
    pub on_all_unhealthy: AllUnhealthy,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            probe: ProbeKind::default(),
            path: default_path(),
            expect: default_expect(),
            max_concurrent: default_max_concurrent(),
            interval: default_interval(),
            timeout: default_timeout(),
            rise: default_rise(),
            fall: default_fall(),
            on_all_unhealthy: AllUnhealthy::default(),
        }
    }
}

fn default_path() -> String {
    "/".into()
}
fn default_expect() -> u16 {
    200
}
fn default_max_concurrent() -> usize {
    512
}
fn default_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    2
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeKind {
    /// TCP connect to the address on the service's first port.
    #[default]
    Tcp,
    /// HTTP GET `path`, expecting `expect`.
    Http,
    /// HTTPS GET `path`, expecting `expect`; certificates are not verified (the probe
    /// checks the load balancer answers, not who it is; Route 53 does the same).
    Https,
    /// No probe: Kubernetes readiness alone decides.
    None,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AllUnhealthy {
    /// Answer as if every candidate were healthy (Route 53's behaviour).
    #[default]
    FailOpen,
    /// Answer SERVFAIL, so that resolvers try elsewhere or report the outage.
    Servfail,
}

/// Parses `500ms`, `2s`, `1m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(n) => Ok(Duration::from_secs(n)),
        Raw::Text(s) => parse_duration(&s).ok_or_else(|| {
            de::Error::custom(format!(
                "`{s}` is not a duration (expected e.g. 500ms, 2s, 1m)"
            ))
        }),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub name: String,
    /// Cloud region name (e.g. `us-east-1`, `europe-west1`, `westeurope`); also the label of
    /// the region names `<svc>.<ns>.<F>.svc.<region>.<zone>`.
    #[serde(default)]
    pub region: Option<String>,
    /// Availability zone, the label of `<svc>.<ns>.<F>.svc.<zone>.<region>.<Z>`.
    #[serde(default)]
    pub zone: Option<String>,
    /// Explicit coordinates; optional when `region` is in the built-in table.
    #[serde(default)]
    pub location: Option<Coordinates>,
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    #[serde(default)]
    pub context: Option<String>,
    /// Watch only these namespaces (one watch per namespace and kind, so that a Role per
    /// namespace suffices). Empty: every namespace.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Watch only objects matching this label selector, e.g. `fedns.io/federate=true`.
    #[serde(default)]
    pub label_selector: Option<String>,
    /// Static services, for clusters or endpoints outside Kubernetes.
    #[serde(default)]
    pub services: Vec<Spanned<StaticService>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticService {
    pub namespace: String,
    pub name: String,
    /// Load-balancer addresses, IPv4 and IPv6.
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
    /// A load-balancer hostname (e.g. a cloud LB) answered as a CNAME when the cluster has no
    /// address of the asked type.
    #[serde(default)]
    pub hostname: Option<String>,
    /// The service's port: probes connect to it unless `probe_port` says otherwise.
    #[serde(default)]
    pub port: Option<u16>,
    /// Ingress-style host names inside the zone that this service also answers for.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Probe settings of this service, as the `fedns.io/probe*` annotations give them for a
    /// Kubernetes Service; unset ones come from the `health:` section.
    #[serde(default)]
    pub probe: Option<ProbeKind>,
    #[serde(default)]
    pub probe_path: Option<String>,
    #[serde(default)]
    pub probe_port: Option<u16>,
    #[serde(default)]
    pub probe_status: Option<u16>,
}

impl ClusterConfig {
    /// How this cluster's objects are learned: a kubeconfig, the in-cluster service account
    /// (no kubeconfig and no static services), or not at all (static services only).
    pub fn kube_source(&self) -> Option<KubeSource> {
        match (&self.kubeconfig, self.services.is_empty()) {
            (Some(path), _) => Some(KubeSource::Kubeconfig {
                path: path.clone(),
                context: self.context.clone(),
            }),
            (None, true) => Some(KubeSource::InCluster),
            (None, false) => None,
        }
    }
}

/// Where a member cluster's API is reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KubeSource {
    Kubeconfig {
        path: PathBuf,
        context: Option<String>,
    },
    InCluster,
}

impl Config {
    /// Reads, parses and checks a config file. Relative paths inside it are resolved against
    /// the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::parse(&text, path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        Ok(config)
    }

    /// Parses and checks config text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e
                .to_string()
                .replace("<input>", &path.display().to_string()),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let join = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(z) = &mut self.zone_file {
            join(z);
        }
        if let Some(g) = &mut self.geoip {
            join(&mut g.database);
        }
        if let Some(s) = &mut self.state_file {
            join(s);
        }
        for c in &mut self.clusters {
            if let Some(k) = &mut c.value.kubeconfig {
                join(k);
            }
        }
    }

    /// Checks what serde cannot: names are valid DNS labels, references point at clusters
    /// that exist, every cluster can be located.
    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let err = |line: u64, field: &str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            line,
            field: field.to_owned(),
            message,
        };
        if hickory_proto::rr::Name::from_ascii(&self.zone).is_err() || self.zone.is_empty() {
            return Err(err(
                1,
                "zone",
                format!("`{}` is not a domain name", self.zone),
            ));
        }
        if !is_label(&self.federation) {
            return Err(err(
                1,
                "federation",
                format!("`{}` is not a DNS label", self.federation),
            ));
        }
        if self.listen.dns.is_empty() {
            return Err(err(
                1,
                "listen.dns",
                "at least one address is needed".into(),
            ));
        }
        if self.listen.udp_workers.is_some_and(|w| w.get() > 1024) {
            return Err(err(
                1,
                "listen.udp_workers",
                "at most 1024 (one per CPU is the useful most)".into(),
            ));
        }
        if self.listen.tcp_idle_timeout.is_zero() || self.listen.tcp_io_timeout.is_zero() {
            return Err(err(
                1,
                "listen",
                "tcp_idle_timeout and tcp_io_timeout must be above 0".into(),
            ));
        }
        if self.clusters.is_empty() {
            return Err(err(1, "clusters", "at least one cluster is needed".into()));
        }
        if self.count == 0 {
            return Err(err(1, "count", "must be at least 1".into()));
        }
        if self.health.rise == 0 || self.health.fall == 0 {
            return Err(err(1, "health", "rise and fall must be at least 1".into()));
        }
        if self.health.timeout.is_zero() || self.health.interval.is_zero() {
            return Err(err(
                1,
                "health",
                "interval and timeout must be above 0".into(),
            ));
        }
        if let Some(r) = &self.rrl
            && (r.responses_per_second == 0
                || r.table_size == 0
                || r.ipv4_prefix > 32
                || r.ipv6_prefix > 128)
        {
            return Err(err(
                1,
                "rrl",
                "responses_per_second and table_size must be above 0, prefixes at most 32 and 128"
                    .into(),
            ));
        }
        if self.health.max_concurrent == 0 {
            return Err(err(1, "health.max_concurrent", "must be at least 1".into()));
        }
        if !self.health.path.starts_with('/') {
            return Err(err(
                1,
                "health.path",
                format!("`{}` must start with /", self.health.path),
            ));
        }
        let mut names = HashSet::new();
        for (i, c) in self.clusters.iter().enumerate() {
            let line = c.referenced.line();
            let field = |f: &str| format!("clusters[{i}].{f}");
            let c = &c.value;
            if !is_label(&c.name) {
                return Err(err(
                    line,
                    &field("name"),
                    format!("`{}` is not a DNS label", c.name),
                ));
            }
            if !names.insert(c.name.to_ascii_lowercase()) {
                return Err(err(
                    line,
                    &field("name"),
                    format!("cluster `{}` is declared twice", c.name),
                ));
            }
            for (label, what) in [(&c.region, "region"), (&c.zone, "zone")] {
                if let Some(l) = label
                    && !is_label(l)
                {
                    return Err(err(line, &field(what), format!("`{l}` is not a DNS label")));
                }
            }
            if c.zone.is_some() && c.region.is_none() {
                return Err(err(
                    line,
                    &field("zone"),
                    "a zone needs a region (names are <zone>.<region>.<Z>)".into(),
                ));
            }
            if c.location.is_none() {
                match &c.region {
                    None => {
                        return Err(err(
                            line,
                            &field("location"),
                            format!("cluster `{}` has neither location nor region", c.name),
                        ));
                    }
                    Some(r) if places::cloud_region(r).is_none() => {
                        return Err(err(
                            line,
                            &field("location"),
                            format!(
                                "region `{r}` is not in the built-in table of cloud regions; \
                                 give `location: {{ lat: .., lon: .. }}`"
                            ),
                        ));
                    }
                    Some(_) => {}
                }
            }
            for ns in &c.namespaces {
                if !is_label(ns) {
                    return Err(err(
                        line,
                        &field("namespaces"),
                        format!("`{ns}` is not a namespace name"),
                    ));
                }
            }
            if c.context.is_some() && c.kubeconfig.is_none() {
                return Err(err(
                    line,
                    &field("context"),
                    "a context needs a kubeconfig".into(),
                ));
            }
            for (j, s) in c.services.iter().enumerate() {
                let sline = s.referenced.line();
                let sfield = |f: &str| format!("clusters[{i}].services[{j}].{f}");
                let s = &s.value;
                for (v, f) in [(&s.namespace, "namespace"), (&s.name, "name")] {
                    if !is_label(v) {
                        return Err(err(sline, &sfield(f), format!("`{v}` is not a DNS label")));
                    }
                }
                if s.addresses.is_empty() && s.hostname.is_none() {
                    return Err(err(
                        sline,
                        &sfield("addresses"),
                        format!(
                            "service {}/{} has neither addresses nor hostname",
                            s.namespace, s.name
                        ),
                    ));
                }
                if let Some(h) = &s.hostname
                    && hickory_proto::rr::Name::from_ascii(h).is_err()
                {
                    return Err(err(
                        sline,
                        &sfield("hostname"),
                        format!("`{h}` is not a host name"),
                    ));
                }
                for h in &s.hosts {
                    if !in_zone(h, &self.zone) {
                        return Err(err(
                            sline,
                            &sfield("hosts"),
                            format!("host `{h}` is not inside zone `{}`", self.zone),
                        ));
                    }
                }
                if let Some(p) = s.probe_path.as_deref().filter(|p| !p.starts_with('/')) {
                    return Err(err(
                        sline,
                        &sfield("probe_path"),
                        format!("`{p}` is not a path: it must start with /"),
                    ));
                }
                let probed = s.probe.is_some_and(|k| k != ProbeKind::None)
                    || s.probe_path.is_some()
                    || s.probe_status.is_some();
                if probed && s.port.is_none() && s.probe_port.is_none() {
                    return Err(err(
                        sline,
                        &sfield("probe_port"),
                        "probe settings need a port to probe: set `port` or `probe_port`".into(),
                    ));
                }
                if s.probe_port == Some(0) {
                    return Err(err(
                        sline,
                        &sfield("probe_port"),
                        "port 0 cannot be probed".into(),
                    ));
                }
                if let Some(c) = s.probe_status.filter(|c| !(100..600).contains(c)) {
                    return Err(err(
                        sline,
                        &sfield("probe_status"),
                        format!("{c} is not an HTTP status code (100 to 599)"),
                    ));
                }
            }
        }
        for (i, n) in self.networks.iter().enumerate() {
            let line = n.referenced.line();
            let field = format!("networks[{i}]");
            let n = &n.value;
            let targets = [
                n.cluster.is_some(),
                n.region.is_some(),
                n.location.is_some(),
            ];
            if targets.iter().filter(|t| **t).count() != 1 {
                return Err(err(
                    line,
                    &field,
                    "give exactly one of cluster, region, location".into(),
                ));
            }
            if let Some(c) = &n.cluster
                && !names.contains(&c.to_ascii_lowercase())
            {
                return Err(err(
                    line,
                    &format!("{field}.cluster"),
                    format!("no cluster `{c}`"),
                ));
            }
            if let Some(r) = &n.region
                && places::cloud_region(r).is_none()
                && !self.clusters.iter().any(|c| {
                    c.value.region.as_deref().map(str::to_ascii_lowercase)
                        == Some(r.to_ascii_lowercase())
                        && c.value.location.is_some()
                })
            {
                return Err(err(
                    line,
                    &format!("{field}.region"),
                    format!(
                        "region `{r}` is neither a built-in cloud region nor a located cluster's region"
                    ),
                ));
            }
        }
        for (i, f) in self.fallback.iter().enumerate() {
            if !names.contains(&f.value.to_ascii_lowercase()) {
                return Err(err(
                    f.referenced.line(),
                    &format!("fallback[{i}]"),
                    format!("no cluster `{}`", f.value),
                ));
            }
        }
        for (i, s) in self.services.iter().enumerate() {
            let line = s.referenced.line();
            let field = format!("services[{i}]");
            let s = &s.value;
            match (&s.namespace, &s.name, &s.host) {
                (Some(_), Some(_), None) => {}
                (None, None, Some(h)) if in_zone(h, &self.zone) => {}
                (None, None, Some(h)) => {
                    return Err(err(
                        line,
                        &format!("{field}.host"),
                        format!("host `{h}` is not inside zone `{}`", self.zone),
                    ));
                }
                _ => {
                    return Err(err(
                        line,
                        &field,
                        "give either namespace and name, or host".into(),
                    ));
                }
            }
            if s.count == Some(0) {
                return Err(err(
                    line,
                    &format!("{field}.count"),
                    "must be at least 1".into(),
                ));
            }
            for c in s.order.iter().chain(s.weights.keys()) {
                if !names.contains(&c.to_ascii_lowercase()) {
                    return Err(err(line, &field, format!("no cluster `{c}`")));
                }
            }
            if s.policy == Some(PolicyKind::Weighted) && s.weights.values().all(|w| *w == 0) {
                return Err(err(
                    line,
                    &format!("{field}.weights"),
                    "policy weighted needs at least one cluster with a weight above 0".into(),
                ));
            }
        }
        Ok(())
    }
}

/// A single DNS label: letters, digits, hyphens (and underscores, which Kubernetes does not
/// allow but DNS tolerates); 1 to 63 bytes.
pub fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `host` is the zone apex or below it, case-insensitively.
pub fn in_zone(host: &str, zone: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    let z = zone.trim_end_matches('.').to_ascii_lowercase();
    h == z || h.ends_with(&format!(".{z}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "zone: fed.example.com\nfederation: myfed\nclusters:\n  - name: us-east\n    region: us-east-1\n";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.yaml"))
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.ttl, 30);
        assert_eq!(c.policy, PolicyKind::Nearest);
        assert_eq!(c.health.interval, Duration::from_secs(1));
        assert_eq!(c.health.on_all_unhealthy, AllUnhealthy::FailOpen);
        assert!(c.geoip.is_none());
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let text = format!("{MINIMAL}    regoin: x\n");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("test.yaml"), "{e}");
        assert!(e.contains("line 6"), "{e}");
        assert!(e.contains("regoin"), "{e}");
    }

    #[test]
    fn semantic_error_names_line_and_field() {
        let text = format!("{MINIMAL}  - name: mars\n    region: olympus-mons-1\n");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.starts_with("test.yaml:6: clusters[1].location:"), "{e}");
        assert!(e.contains("olympus-mons-1"), "{e}");
    }

    #[test]
    fn host_bits_in_cidr_are_rejected() {
        let text = format!("{MINIMAL}networks:\n  - {{ cidr: 10.1.2.3/8, cluster: us-east }}\n");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("line 7") && e.contains("10.0.0.0/8"), "{e}");
    }

    #[test]
    fn network_to_unknown_cluster_is_rejected() {
        let text = format!("{MINIMAL}networks:\n  - {{ cidr: 10.0.0.0/8, cluster: nope }}\n");
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.starts_with("test.yaml:7: networks[0].cluster: no cluster `nope`"),
            "{e}"
        );
    }

    #[test]
    fn static_probe_settings_are_checked() {
        let with = |svc: &str| {
            parse(&format!(
                "{MINIMAL}    services:\n      - {{ namespace: default, name: app, addresses: [192.0.2.1], {svc} }}\n"
            ))
        };
        let ok = with(
            "port: 443, probe: http, probe_path: /healthz, probe_port: 8080, probe_status: 204",
        )
        .unwrap();
        let s = &ok.clusters[0].value.services[0].value;
        assert_eq!(
            (
                s.probe,
                s.probe_path.as_deref(),
                s.probe_port,
                s.probe_status
            ),
            (
                Some(ProbeKind::Http),
                Some("/healthz"),
                Some(8080),
                Some(204)
            )
        );
        for (svc, want) in [
            (
                "port: 80, probe_path: healthz",
                "test.yaml:7: clusters[0].services[0].probe_path: `healthz` is not a path",
            ),
            (
                "port: 80, probe_status: 42",
                "test.yaml:7: clusters[0].services[0].probe_status: 42 is not an HTTP status",
            ),
            (
                "port: 80, probe_port: 0",
                "test.yaml:7: clusters[0].services[0].probe_port: port 0",
            ),
            (
                "probe: http",
                "test.yaml:7: clusters[0].services[0].probe_port: probe settings need a port",
            ),
        ] {
            let e = with(svc).unwrap_err().to_string();
            assert!(e.starts_with(want), "{svc}: {e}");
        }
        // Probe `none` needs no port.
        assert!(with("probe: none").is_ok());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("2 weeks"), None);
        assert_eq!(parse_duration("-1s"), None);
    }
}
