//! The query path without sockets: a [`Handler`] over a config's snapshot, for tests of
//! wire rules (`Handler::respond_once`) and for benches and fuzzing of the query path.

use std::sync::Arc;

use arc_swap::ArcSwap;
use fedns::app::LoadedConfig;
use fedns::dns::Handler;
use fedns::snapshot::Published;
use fedns::store::Store;

/// The snapshot of `loaded` with its static endpoints and no health results yet, as a
/// server publishes it at start.
pub fn publish(loaded: &LoadedConfig) -> Published {
    let store = Store::with_static(fedns::sources::static_services::endpoints(&loaded.config));
    let snap = loaded
        .snapshot(&store, &Default::default(), None)
        .unwrap_or_else(|e| panic!("{e}"));
    Arc::new(ArcSwap::from_pointee(snap))
}

/// A handler on `published`: its own metrics, no query log, no RRL.
pub fn handler(published: Published) -> Handler {
    Handler::new(published, Default::default(), false)
}

/// A handler answering as a server on `loaded` does at start (no RRL: `with_rrl` adds it).
pub fn handler_for(loaded: &LoadedConfig) -> Handler {
    handler(publish(loaded))
}

/// A handler on the embedded demo federation (`LoadedConfig::demo`).
pub fn demo_handler() -> Handler {
    handler_for(&LoadedConfig::demo().unwrap())
}
