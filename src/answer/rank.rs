//! Ranking the clusters of a name for one client.

use crate::snapshot::{ClusterId, Located, Snapshot};

/// The eligible clusters, best first: a pinned cluster (a `networks` override that names
/// it) before all, then nearest first (by distance scaled by `bias`, each cluster's bias
/// for this name), clusters at the same distance by name so that every replica answers
/// alike; with no location, the configured fallback order. Each sort key is computed
/// once, not per comparison.
pub(super) fn rank(
    snap: &Snapshot,
    eligible: &[ClusterId],
    located: Option<&Located>,
    bias: &dyn Fn(ClusterId) -> i8,
) -> Vec<ClusterId> {
    let location = located.and_then(|l| l.location);
    let pinned = located.and_then(|l| l.pinned);
    let mut keyed: Vec<(ClusterId, bool, f64)> = eligible
        .iter()
        .map(|&c| {
            let key = match location {
                Some(loc) => snap.biased_km(loc, c, bias(c)),
                None => snap
                    .fallback
                    .iter()
                    .position(|f| *f == c)
                    .unwrap_or(usize::MAX) as f64,
            };
            (c, Some(c) != pinned, key)
        })
        .collect();
    keyed.sort_by(|a, b| {
        a.1.cmp(&b.1).then(a.2.total_cmp(&b.2)).then_with(|| {
            snap.clusters[usize::from(a.0)]
                .name
                .cmp(&snap.clusters[usize::from(b.0)].name)
        })
    });
    keyed.into_iter().map(|(c, _, _)| c).collect()
}
