//! Where endpoints come from. Each source writes into the `Store` and nothing else; none
//! of them knows of DNS, snapshots or health.
//!
//! - `kubernetes`: one task per member cluster that lists and watches its objects.
//! - `static_services`: the config's `services:` of each cluster.
//! - `state_file`: the last-known Kubernetes endpoints, written after changes and read at
//!   start, so that an unreachable cluster still answers after a restart.

pub mod kubernetes;
pub mod state_file;
pub mod static_services;
