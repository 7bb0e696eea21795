//! The policies: which of the ranked clusters a name answers with.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use ipnet::IpNet;

use crate::config::{GeoKey, PolicyKind};
use crate::snapshot::{ClusterId, Located, Policy, Weight};

/// Round-robin position for policy `all`: the one value the answer function writes that
/// other queries read; shared by every worker, relaxed is enough.
static ROUND_ROBIN: AtomicU64 = AtomicU64::new(0);

/// What a policy is asked: the eligible clusters, ranked best first, and where the client
/// is (`address` is its locating address).
pub(super) struct Ask<'a> {
    pub policy: &'a Policy,
    pub eligible: &'a [ClusterId],
    pub ranked: &'a [ClusterId],
    pub located: Option<&'a Located>,
    pub address: IpAddr,
    /// Ready endpoints of a cluster's member, where Kubernetes counts them.
    pub ready: &'a dyn Fn(ClusterId) -> Option<u32>,
}

/// What a policy chose.
#[derive(Debug, Default)]
pub(super) struct Pick {
    /// The clusters answered, in order.
    pub chosen: Vec<ClusterId>,
    /// The choice depends on where the client is (so the ECS scope is the locating
    /// network's prefix, not 0).
    pub by_location: bool,
    /// The choice is drawn or rotated: never cached.
    pub varies: bool,
    /// The per-geography failover order that applied.
    pub geo_order: Option<GeoKey>,
    /// Capacity spillover was weighed for this client: the answer depends on its
    /// network's hash, not only on where it is.
    pub spill: Option<Spill>,
}

/// A spillover decision: the nearest cluster, the share of its clients it keeps, and
/// whether this client was sent on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spill {
    pub from: ClusterId,
    pub keep: f64,
    pub spilled: bool,
}

/// Whether the policy needs the client's location to choose among `eligible`: `nearest`
/// with more clusters than it answers (or with spillover), and `failover` with orders per
/// geography or an unlisted cluster that distance must order.
pub(super) fn needs_location(policy: &Policy, eligible: &[ClusterId]) -> bool {
    match policy.kind {
        PolicyKind::Nearest => {
            eligible.len() > policy.count || (policy.spill_below.is_some() && eligible.len() > 1)
        }
        PolicyKind::Failover => {
            !policy.orders.is_empty() || eligible.iter().any(|c| !policy.order.contains(c))
        }
        PolicyKind::Weighted | PolicyKind::All => false,
    }
}

/// Applies the policy to the eligible clusters.
pub(super) fn pick(ask: &Ask<'_>) -> Pick {
    let Ask {
        policy,
        eligible,
        ranked,
        ..
    } = *ask;
    match policy.kind {
        PolicyKind::Nearest => {
            let n = policy.count.max(1);
            let spill = spill(ask);
            let from = if spill.is_some_and(|s| s.spilled) {
                1
            } else {
                0
            };
            Pick {
                chosen: ranked.iter().skip(from).take(n).copied().collect(),
                by_location: ranked.len() > n || spill.is_some(),
                spill,
                ..Pick::default()
            }
        }
        PolicyKind::Failover => {
            let (listed, key) = policy.order_for(ask.located, ask.address);
            let mut order: Vec<ClusterId> = listed
                .iter()
                .copied()
                .filter(|c| eligible.contains(c))
                .collect();
            // The client's location matters when orders differ by geography, or when no
            // listed cluster is eligible and the pick falls to distance.
            let by_distance = order.is_empty() && ranked.len() > 1;
            order.extend(ranked.iter().filter(|c| !listed.contains(c)));
            Pick {
                chosen: order.first().copied().into_iter().collect(),
                by_location: by_distance || !policy.orders.is_empty(),
                geo_order: key.copied(),
                ..Pick::default()
            }
        }
        PolicyKind::Weighted => {
            let weighted: Vec<(ClusterId, u32)> = eligible
                .iter()
                .map(|c| {
                    let w = match policy.weights.iter().find(|(id, _)| id == c) {
                        Some((_, Weight::Fixed(w))) => *w,
                        Some((_, Weight::ReadyEndpoints)) => (ask.ready)(*c).unwrap_or(0),
                        None => 0,
                    };
                    (*c, w)
                })
                .collect();
            let mut p = match pick_weighted(&weighted) {
                Some(c) => Pick {
                    chosen: vec![c],
                    ..Pick::default()
                },
                None => Pick {
                    chosen: ranked.iter().take(1).copied().collect(),
                    by_location: ranked.len() > 1,
                    ..Pick::default()
                },
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
                varies,
                ..Pick::default()
            }
        }
    }
}

/// Capacity spillover: when the nearest cluster has fewer ready endpoints than
/// `spill_below`, it keeps `ready / spill_below` of its clients and the others go to the
/// next nearest. Which ones is a stable hash of the client's network (the one that placed
/// it), so that every replica, and every query from one resolver's subnet, agree.
fn spill(ask: &Ask<'_>) -> Option<Spill> {
    let below = ask.policy.spill_below?;
    let (&first, rest) = ask.ranked.split_first()?;
    if rest.is_empty() {
        return None;
    }
    let ready = (ask.ready)(first)?;
    if ready >= below {
        return None;
    }
    let keep = f64::from(ready) / f64::from(below);
    let network = ask.located.map(|l| l.network)?;
    Some(Spill {
        from: first,
        keep,
        spilled: network_share(network) >= keep,
    })
}

/// Where a network falls in [0, 1): a fixed hash (splitmix64 of its address and prefix),
/// the same in every process and every version.
pub fn network_share(net: IpNet) -> f64 {
    let bits: u128 = match net.network() {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a) ^ (1 << 127),
    };
    let mut h = mix((bits as u64) ^ mix((bits >> 64) as u64 ^ u64::from(net.prefix_len())));
    h = mix(h);
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
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
