//! The immutable snapshot: everything an answer needs, built off the query path from the
//! config, the zone data, the GeoIP database and the endpoint store, then published whole
//! through `ArcSwap` (see `Published`). A snapshot never changes once built.
//!
//! - `types`: what a snapshot holds;
//! - `build`: building one in full, or updating the names an object change touched;
//! - `locate`: the locator (overrides, then GeoIP);
//! - `scope`: the maps of the widest address blocks with one answer (the ECS scope).

use std::sync::Arc;

use arc_swap::ArcSwap;

mod build;
mod locate;
pub mod scope;
mod types;

pub use build::Verdicts;
pub use locate::{
    ClusterId, Located, LocationKey, LocationSource, Locator, NetworkKey, Override, OverrideTarget,
};
pub use types::{
    BuildError, Cluster, DecisionKey, FedName, Member, Policies, Policy, Snapshot, Weight,
};

/// The published snapshot. Readers `load_full` it once per query; writers build a new one
/// off the query path and swap it in.
pub type Published = Arc<ArcSwap<Snapshot>>;
