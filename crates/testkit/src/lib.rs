//! What fedns's integration tests (`tests/it`) and benches (`benches/`) share, in one place
//! instead of a copy in each:
//!
//! - [`apiserver`]: an imitation Kubernetes API server (store with history, selectors,
//!   watches with bookmarks and 410, writes with optimistic concurrency, TLS and tokens)
//!   and builders of the objects it serves;
//! - [`dns`]: query builders and DNS clients, async (tests) and blocking (benches);
//! - [`server`]: fedns started in-process from real config, zone and GeoIP files;
//! - [`handler`]: a query `Handler` over a config without any socket, for the tests that
//!   need none;
//! - [`process`]: the `fedns` binary as a child process;
//! - [`netns`]: network namespaces, veth pairs and nftables cuts, for real partitions;
//! - [`fleet_lab`]: replicas of the `fedns` binary in namespaces, voting through
//!   imitation API servers, with load balancers whose paths can be cut;
//! - [`http`]: one-request HTTP GETs of the admin endpoints;
//! - [`sys`]: settings from the environment, scratch directories and `/proc` readers;
//! - [`random`]: random numbers for tokens, phases and fuzz-like inputs;
//! - [`stats`]: medians and maxima of measured durations, for the benches;
//! - [`wait`]: polling until a condition holds.

pub mod apiserver;
pub mod dns;
pub mod fleet_lab;
pub mod handler;
pub mod http;
pub mod netns;
pub mod process;
pub mod random;
pub mod server;
pub mod stats;
pub mod sys;
pub mod wait;
