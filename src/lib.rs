//! fedns: a geo-aware, multi-cluster, authoritative DNS server for a Kubernetes federation
//! zone. The modules, in the order data flows through them (ARCHITECTURE.md draws it):

/// The pure answer function: (snapshot, question, client) -> answer.
pub mod answer;
/// Wiring: the loaded config, the sources' lifecycle, publishing, reload, readiness.
pub mod app;
/// Civil dates from Unix days and back.
pub mod civil;
/// The YAML config: its shape, its values, its validation, and the zone file it names.
pub mod config;
/// The query path: raw query to raw reply (fast path, general path, cache, RRL).
pub mod dns;
/// DNSSEC: the zone's keys (the files BIND and Knot export), their states, and online signing
/// of replies with compact denial.
pub mod dnssec;
/// dnstap: queries, replies and fedns's decisions to a Frame Streams collector; knows
/// nothing of DNS answers or snapshots, only bytes, addresses, times and text.
pub mod dnstap;
/// What the other fedns replicas see: their views of the probe targets, from their Leases.
pub mod fleet;
/// Active probes of load-balancer addresses, the health table they fill, and the fleet's
/// quorum over the replicas' views.
pub mod health;
/// Sockets: binding, UDP worker threads, TCP connections.
pub mod listen;
/// Prometheus metrics: the registry and the per-worker query counters.
pub mod metrics;
/// What operators read: the admin HTTP server and `explain`.
pub mod ops;
/// The immutable snapshot an answer reads, its builder, and the client locator.
pub mod snapshot;
/// Where endpoints come from: member clusters' Kubernetes APIs, the config's static
/// services, and the state file that keeps them across restarts.
pub mod sources;
/// The endpoint store: what the sources learned, per cluster, and what changed.
pub mod store;

/// The embedded demo federation and its GeoIP database.
pub mod demo;
/// GeoIP lookups, distances and places; knows nothing of DNS or clusters.
pub mod geo;

#[cfg(not(target_os = "linux"))]
compile_error!(
    "fedns runs on Linux only: its UDP workers use recvmmsg/sendmmsg and IP_MTU_DISCOVER \
     (README.md, \"Platforms\")"
);
