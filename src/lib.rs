//! fedns: a geo-aware, multi-cluster, authoritative DNS server for a Kubernetes federation
//! zone. Modules in the order data flows:
//!
//! `config` -> `store` (what sources learned, per cluster) -> `snapshot` (immutable,
//! published through arc-swap) -> `answer` (pure) -> `dns` (hickory-server handler).
//! Beside them: `geo` (GeoIP and distances), `ecs` (strict ECS parsing), `zonefile`
//! (static records), `demo` (the embedded federation), `explain`, and `app` (wiring).

pub mod admin;
pub mod answer;
pub mod app;
pub mod cache;
pub mod config;
pub mod counters;
pub mod demo;
pub mod dns;
pub mod ecs;
pub mod explain;
pub mod geo;
pub mod health;
pub mod kubernetes;
pub mod metrics;
pub mod rrl;
pub mod snapshot;
pub mod state;
pub mod store;
pub mod tcp;
pub mod udp;
pub mod wire;
pub mod zonefile;
