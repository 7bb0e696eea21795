//! The policies: which of the ranked clusters a name answers with.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::PolicyKind;
use crate::snapshot::{ClusterId, Policy};

/// Round-robin position for policy `all`: the one value the answer function writes that
/// other queries read; shared by every worker, relaxed is enough.
static ROUND_ROBIN: AtomicU64 = AtomicU64::new(0);

/// What a policy chose.
pub(super) struct Pick {
    /// The clusters answered, in order.
    pub chosen: Vec<ClusterId>,
    /// The choice depends on where the client is (so the ECS scope is the locating
    /// network's prefix, not 0).
    pub by_location: bool,
    /// The choice is drawn or rotated: never cached.
    pub varies: bool,
}

/// Whether the policy needs the client's location to choose among `eligible`: only
/// `nearest` with more clusters than it answers, and `failover` with an unlisted cluster
/// that distance must order.
pub(super) fn needs_location(policy: &Policy, eligible: &[ClusterId]) -> bool {
    match policy.kind {
        PolicyKind::Nearest => eligible.len() > policy.count,
        PolicyKind::Failover => eligible.iter().any(|c| !policy.order.contains(c)),
        PolicyKind::Weighted | PolicyKind::All => false,
    }
}

/// Applies the policy to the eligible clusters, `ranked` best first.
pub(super) fn pick(policy: &Policy, eligible: &[ClusterId], ranked: &[ClusterId]) -> Pick {
    let fixed = |chosen, by_location| Pick {
        chosen,
        by_location,
        varies: false,
    };
    match policy.kind {
        PolicyKind::Nearest => {
            let n = policy.count.max(1);
            fixed(ranked.iter().take(n).copied().collect(), ranked.len() > n)
        }
        PolicyKind::Failover => {
            let mut order: Vec<ClusterId> = policy
                .order
                .iter()
                .copied()
                .filter(|c| eligible.contains(c))
                .collect();
            // The client's location matters only when no listed cluster is eligible and
            // the pick falls to distance.
            let by_distance = order.is_empty() && ranked.len() > 1;
            order.extend(ranked.iter().filter(|c| !policy.order.contains(c)));
            fixed(order.first().copied().into_iter().collect(), by_distance)
        }
        PolicyKind::Weighted => {
            let weighted: Vec<(ClusterId, u32)> = eligible
                .iter()
                .map(|c| {
                    let w = policy
                        .weights
                        .iter()
                        .find(|(id, _)| id == c)
                        .map_or(0, |(_, w)| *w);
                    (*c, w)
                })
                .collect();
            let mut p = match pick_weighted(&weighted) {
                Some(c) => fixed(vec![c], false),
                None => fixed(ranked.iter().take(1).copied().collect(), ranked.len() > 1),
            };
            p.varies = true;
            p
        }
        PolicyKind::All => {
            let mut all = eligible.to_vec();
            let varies = all.len() > 1;
            if varies {
                let k = (ROUND_ROBIN.fetch_add(1, Ordering::Relaxed) % all.len() as u64) as usize;
                all.rotate_left(k);
            }
            Pick {
                chosen: all,
                by_location: false,
                varies,
            }
        }
    }
}

/// Draws one cluster with probability proportional to its weight.
fn pick_weighted(weighted: &[(ClusterId, u32)]) -> Option<ClusterId> {
    let total: u64 = weighted.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    let mut x = random_u64() % total;
    for (c, w) in weighted {
        let w = u64::from(*w);
        if x < w {
            return Some(*c);
        }
        x -= w;
    }
    None
}

/// A cheap per-thread pseudo-random number (splitmix64); weighted answers need spread, not
/// cryptographic strength.
fn random_u64() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let local = 0u8;
            t ^ (&local as *const u8 as u64).rotate_left(32)
        });
    }
    STATE.with(|s| {
        let mut z = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}
