//! The integration tests, one binary (kube, hyper, rustls and fedns linked once), one module
//! per area. What they share (the in-process server, DNS clients, the imitation
//! kube-apiserver, ...) is in `crates/testkit` (`fedns_testkit`).
//!
//! `tests/data/` holds fuzzer finds (read by `replies`); `tests/smoke/` is a shell smoke test
//! of a release build.

mod admin;
mod answer;
mod apiserver;
mod cli;
mod demo_geoip;
mod dns;
mod dnssec;
mod dnstap;
mod fleet;
mod health;
mod kubernetes;
mod layout;
mod partition;
mod protocol;
mod replies;
mod rfc;
mod server;
mod signed;
mod snapshot;
mod status;
mod steering;
