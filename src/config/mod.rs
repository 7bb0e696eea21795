//! The YAML configuration: its shape (SPEC section 6), parsing with errors that name the
//! file, line and field, and the semantic checks that serde cannot express.
//!
//! Field names here are an interface that users and outside tests rely on: add fields
//! freely, rename none. Every struct rejects unknown fields so that a typo is an error,
//! not a silently ignored setting.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

mod defaults;
mod validate;
pub use validate::field_line;
pub mod values;
pub mod zonefile;

pub use values::{Cidr, Coordinates, GeoKey, Weights, in_zone, is_label, parse_duration};

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

/// What the YAML parser reports badly: an empty file, and a tab in the indentation (it
/// names another line).
fn before_yaml(text: &str, path: &Path) -> Result<(), ConfigError> {
    let invalid = |line: usize, field: &str, message: &str| ConfigError::Invalid {
        path: path.to_owned(),
        line: line as u64,
        field: field.to_owned(),
        message: message.to_owned(),
    };
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(invalid(
            1,
            "(file)",
            "the file is empty: a config needs at least `zone`, `federation` and `clusters` \
             (README.md, \"Configuration\", has a minimal one)",
        ));
    }
    for (i, l) in text.lines().enumerate() {
        let indent: String = l.chars().take_while(|c| *c == ' ' || *c == '\t').collect();
        if indent.contains('\t') && !l.trim().is_empty() {
            return Err(invalid(
                i + 1,
                "(indentation)",
                "a tab in the indentation: YAML indents with spaces only",
            ));
        }
    }
    Ok(())
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
    #[serde(default = "defaults::ttl")]
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
    #[serde(default = "defaults::count")]
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
    /// This replica's place in a fleet of fedns replicas that share health votes through
    /// Leases in the member clusters. Absent: the replica decides alone, as before.
    #[serde(default)]
    pub fleet: Option<FleetConfig>,
    /// Where the last-known Kubernetes endpoints of every cluster are kept across restarts,
    /// so that a restart while some member APIs are unreachable still answers with their
    /// last-known records (flagged stale). Optional; relative to the config file.
    #[serde(default)]
    pub state_file: Option<PathBuf>,
    /// Response rate limiting of UDP replies per client network; off when absent.
    #[serde(default)]
    pub rrl: Option<RrlConfig>,
    /// dnstap of queries and replies, with fedns's decisions, to a Frame Streams
    /// collector; off when absent.
    #[serde(default)]
    pub dnstap: Option<DnstapConfig>,
    /// Online DNSSEC signing of every answer to a query with DO; off when absent.
    #[serde(default)]
    pub dnssec: Option<DnssecConfig>,
    /// After SIGTERM, how long fedns keeps answering while /readyz says 503, so that load
    /// balancers and forwarders move away before the listeners close.
    #[serde(default = "defaults::drain", deserialize_with = "values::duration")]
    pub drain: Duration,
    pub clusters: Vec<Spanned<ClusterConfig>>,
}

/// Response rate limiting (see `rrl.rs`). Changes take effect at the next restart.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RrlConfig {
    /// Identical-looking UDP responses per second to one client network.
    #[serde(default = "defaults::rrl_rate")]
    pub responses_per_second: u32,
    /// Over the limit, every `slip`-th response is sent truncated (TC) so real clients
    /// retry over TCP; 0 drops them all.
    #[serde(default = "defaults::rrl_slip")]
    pub slip: u32,
    #[serde(default = "defaults::rrl_v4")]
    pub ipv4_prefix: u8,
    #[serde(default = "defaults::rrl_v6")]
    pub ipv6_prefix: u8,
    /// Counters kept: memory is fixed at 8 bytes each, whatever the clients send.
    #[serde(default = "defaults::rrl_table")]
    pub table_size: usize,
}

impl Default for RrlConfig {
    fn default() -> Self {
        RrlConfig {
            responses_per_second: defaults::rrl_rate(),
            slip: defaults::rrl_slip(),
            ipv4_prefix: defaults::rrl_v4(),
            ipv6_prefix: defaults::rrl_v6(),
            table_size: defaults::rrl_table(),
        }
    }
}

/// How fedns talks to member clusters' API servers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Server-side timeout of each watch request; the watch is then re-established. A
    /// cluster whose API stops answering is noticed after this plus a quarter (1 to 15 s).
    #[serde(
        default = "defaults::watch_timeout",
        deserialize_with = "values::duration"
    )]
    pub watch_timeout: Duration,
    #[serde(
        default = "defaults::connect_timeout",
        deserialize_with = "values::duration"
    )]
    pub connect_timeout: Duration,
    /// `/readyz` stops waiting for clusters that have not synced after this long.
    #[serde(
        default = "defaults::sync_timeout",
        deserialize_with = "values::duration"
    )]
    pub sync_timeout: Duration,
    /// How often each cluster's API discovery is asked again which optional kinds
    /// (Gateway API, DNSEndpoint) it serves: a CRD installed or removed later is
    /// followed within this.
    #[serde(
        default = "defaults::discovery_interval",
        deserialize_with = "values::duration"
    )]
    pub discovery_interval: Duration,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            watch_timeout: defaults::watch_timeout(),
            connect_timeout: defaults::connect_timeout(),
            sync_timeout: defaults::sync_timeout(),
            discovery_interval: defaults::discovery_interval(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// UDP and TCP are served on each of these.
    #[serde(default = "defaults::dns_listen")]
    pub dns: Vec<SocketAddr>,
    #[serde(default)]
    pub admin: Option<SocketAddr>,
    /// UDP worker threads, each with its own socket, per DNS address. Default: the CPUs
    /// fedns may run on (its affinity mask).
    #[serde(default)]
    pub udp_workers: Option<NonZeroUsize>,
    /// Open TCP connections at most; past that, new ones are closed at once.
    #[serde(default = "defaults::tcp_max_connections")]
    pub tcp_max_connections: NonZeroUsize,
    /// A TCP connection with no query for this long is closed (RFC 7766 section 6.2.3).
    #[serde(
        default = "defaults::tcp_idle_timeout",
        deserialize_with = "values::duration"
    )]
    pub tcp_idle_timeout: Duration,
    /// A query that has started to arrive over TCP must be complete, and a reply must be
    /// taken by the client, within this; else the connection is closed.
    #[serde(
        default = "defaults::tcp_io_timeout",
        deserialize_with = "values::duration"
    )]
    pub tcp_io_timeout: Duration,
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            dns: defaults::dns_listen(),
            admin: None,
            udp_workers: None,
            tcp_max_connections: defaults::tcp_max_connections(),
            tcp_idle_timeout: defaults::tcp_idle_timeout(),
            tcp_io_timeout: defaults::tcp_io_timeout(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoipConfig {
    /// A GeoIP2/GeoLite2/DB-IP City or Country MMDB, or an ip-location-db one.
    /// Relative to the config file.
    pub database: PathBuf,
    /// Locate clients by EDNS Client Subnet when the query carries one.
    #[serde(default = "defaults::yes")]
    pub use_ecs: bool,
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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
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

impl PolicyKind {
    /// Every kind, in declaration order: `ALL[k as usize] == k`.
    pub const ALL: [PolicyKind; 4] = [
        PolicyKind::Nearest,
        PolicyKind::Failover,
        PolicyKind::Weighted,
        PolicyKind::All,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Nearest => "nearest",
            PolicyKind::Failover => "failover",
            PolicyKind::Weighted => "weighted",
            PolicyKind::All => "all",
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `dnstap:`: where the collector listens (a Unix socket or a TCP address) and which
/// messages it gets.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnstapConfig {
    /// A Unix socket path (relative to the config file), e.g. `/run/fedns/dnstap.sock`.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// A TCP address, e.g. `127.0.0.1:6000`.
    #[serde(default)]
    pub tcp: Option<String>,
    #[serde(default = "defaults::dnstap_messages")]
    pub messages: Vec<DnstapMessage>,
    /// Events held while the collector is slow or away, as a budget of 512 bytes each;
    /// past it they are dropped and counted (`fedns_dnstap_frames_total{outcome="dropped"}`).
    #[serde(default = "defaults::dnstap_queue")]
    pub queue: usize,
    /// dnstap's `identity` field; default: the host name.
    #[serde(default)]
    pub identity: Option<String>,
}

impl DnstapConfig {
    /// A collector at a socket or a TCP address, with every other setting at its default.
    pub fn to(socket: Option<PathBuf>, tcp: Option<String>) -> DnstapConfig {
        DnstapConfig {
            socket,
            tcp,
            messages: defaults::dnstap_messages(),
            queue: defaults::dnstap_queue(),
            identity: None,
        }
    }
}

/// `dnssec:`: the zone's keys (BIND or Knot key files) and how signatures are made.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnssecConfig {
    /// Key files (`K<zone>.+<alg>+<tag>.private`, the `.key` beside it), relative to the
    /// config file; each a path, or `{ file: path, state: published|active|retired }` to
    /// override the timing fields in the file.
    pub keys: Vec<Spanned<DnssecKey>>,
    /// How long a signature is valid; renewed when half of it has passed.
    #[serde(
        default = "defaults::signature_validity",
        deserialize_with = "values::duration"
    )]
    pub signature_validity: Duration,
    /// The TTL of the DNSKEY, CDS and CDNSKEY sets.
    #[serde(default = "defaults::dnskey_ttl")]
    pub dnskey_ttl: u32,
    /// Publish CDS and CDNSKEY for the key-signing keys (RFC 7344, RFC 8078), so that a
    /// parent that automates DS updates follows rollovers.
    #[serde(default = "defaults::yes")]
    pub cds: bool,
}

/// One key of `dnssec.keys`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum DnssecKey {
    Path(PathBuf),
    Entry {
        file: PathBuf,
        #[serde(default)]
        state: Option<KeyStateConfig>,
    },
}

impl DnssecKey {
    pub fn file(&self) -> &Path {
        match self {
            DnssecKey::Path(p) | DnssecKey::Entry { file: p, .. } => p,
        }
    }

    pub fn file_mut(&mut self) -> &mut PathBuf {
        match self {
            DnssecKey::Path(p) | DnssecKey::Entry { file: p, .. } => p,
        }
    }

    /// The state the config gives it, overriding the file's timing fields.
    pub fn state(&self) -> Option<KeyStateConfig> {
        match self {
            DnssecKey::Path(_) => None,
            DnssecKey::Entry { state, .. } => *state,
        }
    }
}

/// A key's state as the config can force it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStateConfig {
    /// In the DNSKEY set, signing nothing (before it becomes active).
    Published,
    /// In the DNSKEY set and signing.
    Active,
    /// Still in the DNSKEY set, no longer signing (until the signatures it made expire
    /// from caches).
    Retired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DnstapMessage {
    AuthQuery,
    AuthResponse,
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
    /// Cluster order for `failover`: the default, for clients no entry of `orders` matches.
    #[serde(default)]
    pub order: Vec<String>,
    /// Failover orders per geography (`continent:EU`, `country:DE`, or a CIDR), most
    /// specific match first: a network, then a country, then a continent, then `order`.
    #[serde(default)]
    pub orders: BTreeMap<String, Vec<String>>,
    /// Cluster weights for `weighted` (clusters not named weigh 0), or `ready-endpoints`.
    #[serde(default)]
    pub weights: values::Weights,
    /// Capacity spillover for `nearest`: a cluster with fewer ready endpoints than this
    /// keeps only its share (ready / spill_below) of the clients it is nearest to; the
    /// others, chosen by a stable hash of their network, go to the next nearest.
    #[serde(default)]
    pub spill_below: Option<u32>,
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
    #[serde(default = "defaults::path")]
    pub path: String,
    /// Status an `http`/`https` probe expects.
    #[serde(default = "defaults::expect")]
    pub expect: u16,
    /// At most this many probes run at once.
    #[serde(default = "defaults::max_concurrent")]
    pub max_concurrent: usize,
    #[serde(default = "defaults::interval", deserialize_with = "values::duration")]
    pub interval: Duration,
    #[serde(default = "defaults::timeout", deserialize_with = "values::duration")]
    pub timeout: Duration,
    #[serde(default = "defaults::rise")]
    pub rise: u32,
    #[serde(default = "defaults::fall")]
    pub fall: u32,
    #[serde(default)]
    pub on_all_unhealthy: AllUnhealthy,
    /// A Kubernetes Service's cluster counts as ready only with at least this many ready
    /// endpoints (EndpointSlices), so that a cluster down to its last pods stops taking
    /// the world. Static services and Ingresses have no count and are not held to it.
    #[serde(default = "defaults::min_ready")]
    pub min_ready: u32,
    /// A cluster counts as healthy for a name only with at least this many of its
    /// load-balancer addresses passing their probes (all of them, when it has fewer).
    #[serde(default = "defaults::min_healthy_addresses")]
    pub min_healthy_addresses: u32,
    /// How the fleet's views decide a target's health. Default: `majority` with a
    /// `fleet:` section, `own` without (see `Quorum`).
    #[serde(default)]
    pub quorum: Option<Quorum>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            probe: ProbeKind::default(),
            path: defaults::path(),
            expect: defaults::expect(),
            max_concurrent: defaults::max_concurrent(),
            interval: defaults::interval(),
            timeout: defaults::timeout(),
            rise: defaults::rise(),
            fall: defaults::fall(),
            on_all_unhealthy: AllUnhealthy::default(),
            min_ready: defaults::min_ready(),
            min_healthy_addresses: defaults::min_healthy_addresses(),
            quorum: None,
        }
    }
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

/// How the views of the fleet's replicas decide whether a probe target is down. Only fresh
/// views that probe the target vote; rise and fall apply within each replica, before it
/// publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quorum {
    /// This replica's own probes alone.
    Own,
    /// Down when more than half of the voting views say down.
    Majority,
    /// Down only when every voting view says down.
    All,
    /// Down when any voting view says down.
    Any,
    /// Healthy when more than this percentage of the voting views say healthy (Route 53
    /// counts an endpoint healthy when more than 18 % of its checkers do).
    Percent(u8),
}

impl fmt::Display for Quorum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quorum::Own => f.write_str("own"),
            Quorum::Majority => f.write_str("majority"),
            Quorum::All => f.write_str("all"),
            Quorum::Any => f.write_str("any"),
            Quorum::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl<'de> Deserialize<'de> for Quorum {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bad = || {
            serde::de::Error::custom(format!(
                "`{s}` is not a quorum: own, majority, all, any, or a percentage such as 18%"
            ))
        };
        Ok(match s.trim() {
            "own" => Quorum::Own,
            "majority" => Quorum::Majority,
            "all" => Quorum::All,
            "any" => Quorum::Any,
            p => {
                let n: u8 = p
                    .strip_suffix('%')
                    .ok_or_else(bad)?
                    .trim()
                    .parse()
                    .map_err(|_| bad())?;
                if n >= 100 {
                    return Err(bad());
                }
                Quorum::Percent(n)
            }
        })
    }
}

/// This replica in a fleet: its name, region, and where its Leases and the operators'
/// overrides live in every member cluster.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// The replica's name. Default: `POD_NAME` from the environment, else the host name.
    #[serde(default)]
    pub name: Option<String>,
    /// Shown in the Lease and /debug/fleet. Default: `FEDNS_REGION` from the environment.
    #[serde(default)]
    pub region: Option<String>,
    /// The namespace of the fleet's Leases and of `fedns-overrides` in every member cluster.
    #[serde(default = "defaults::fleet_namespace")]
    pub namespace: String,
    /// Member clusters this replica publishes its Lease to. Default: every watched cluster,
    /// so that no single API outage hides a replica; readers take the freshest copy.
    #[serde(default)]
    pub publish_to: Vec<String>,
    /// A replica whose Lease has not been renewed for this long no longer votes.
    #[serde(
        default = "defaults::lease_duration",
        deserialize_with = "values::duration"
    )]
    pub lease_duration: Duration,
    /// How often the Lease is renewed when nothing changes.
    #[serde(
        default = "defaults::lease_renew",
        deserialize_with = "values::duration"
    )]
    pub renew: Duration,
}

impl HealthConfig {
    /// The quorum in force: the configured one, else `majority` in a fleet and `own`
    /// alone.
    pub fn quorum(&self, fleet: bool) -> Quorum {
        self.quorum
            .unwrap_or(if fleet { Quorum::Majority } else { Quorum::Own })
    }
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
    /// −99 … 99, as Route 53 geoproximity's: the cluster's distances count as
    /// `distance × (1 − bias/100)`, so a positive bias draws clients from farther away and a
    /// negative one sends them elsewhere sooner. 0 by default.
    #[serde(default)]
    pub bias: i8,
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
        Config::load_with_text(path).map(|(c, _)| c)
    }

    /// As `load`, with the file's text (replicas compare configs by its digest).
    pub fn load_with_text(path: &Path) -> Result<(Config, String), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::parse(&text, path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        Ok((config, text))
    }

    /// Parses and checks config text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        before_yaml(text, path)?;
        let config: Config = serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e
                .to_string()
                .replace("<input>", &path.display().to_string()),
        })?;
        validate::validate(&config, text, path)?;
        Ok(config)
    }

    /// The config error of a file this config names (zone file, GeoIP database), at the
    /// line of the `field` that names it, with the path resolved.
    pub fn named_file_error(
        text: &str,
        path: &Path,
        field: &str,
        file: &Path,
        message: &str,
    ) -> ConfigError {
        let resolved = std::path::absolute(file).unwrap_or_else(|_| file.to_owned());
        ConfigError::Invalid {
            path: path.to_owned(),
            line: validate::field_line(text, field),
            field: field.to_owned(),
            message: format!("{}: {message}", resolved.display()),
        }
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
        if let Some(d) = &mut self.dnssec {
            for k in &mut d.keys {
                join(k.value.file_mut());
            }
        }
        for c in &mut self.clusters {
            if let Some(k) = &mut c.value.kubeconfig {
                join(k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_kinds_are_numbered_in_order() {
        for (i, k) in PolicyKind::ALL.into_iter().enumerate() {
            assert_eq!(k as usize, i, "{k}");
        }
    }

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
    fn top_level_errors_name_their_line() {
        let text = "zone: fed.example.com\nfederation: myfed\n\ncount: 0\nclusters:\n  - name: us-east\n    region: us-east-1\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(
            e.starts_with("test.yaml:4: count: must be at least 1"),
            "{e}"
        );
        let text = "zone: fed.example.com\nfederation: myfed\nhealth:\n  probe: http\n  path: healthz\nclusters:\n  - name: us-east\n    region: us-east-1\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(e.starts_with("test.yaml:5: health.path:"), "{e}");
        let text = "zone: fed.example.com\nfederation: myfed\nclusters: []\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(e.starts_with("test.yaml:3: clusters: at least one"), "{e}");
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
