//! The prober: one probe loop per target, following the store. Results go through
//! rise/fall into the `HealthTable`; a change of state asks the publisher to rebuild the
//! names whose endpoints have the target's address.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use super::probe::probe;
use super::{HealthTable, Target, targets};
use crate::config::HealthConfig;
use crate::store::Store;

/// Keeps one probe loop per target, following the store. Runs until aborted.
pub async fn run(store: Arc<Store>, table: Arc<HealthTable>, cfg: HealthConfig) {
    let limit = Arc::new(Semaphore::new(cfg.max_concurrent));
    let mut loops = Loops(HashMap::new());
    let mut changed = store.subscribe();
    loop {
        let wanted = targets(&store.contents(), &cfg);
        loops.0.retain(|t, handle| {
            let keep = wanted.contains(t);
            if !keep {
                handle.abort();
                table.forget(t);
                debug!(target = %t, "probe stopped");
            }
            keep
        });
        for t in wanted {
            if let std::collections::hash_map::Entry::Vacant(slot) = loops.0.entry(t) {
                let t = slot.key().clone();
                slot.insert(tokio::spawn(probe_loop(
                    t,
                    cfg.clone(),
                    table.clone(),
                    store.clone(),
                    limit.clone(),
                )));
            }
        }
        if changed.changed().await.is_err() {
            break;
        }
    }
}

/// The probe loops; aborted when the prober stops or is restarted (a dropped JoinHandle
/// would leave its task running).
struct Loops(HashMap<Target, JoinHandle<()>>);

impl Drop for Loops {
    fn drop(&mut self) {
        for h in self.0.values() {
            h.abort();
        }
    }
}

/// A random fraction in [0, 1), spread per target so that probes do not fire in lockstep.
fn jitter(seed: &Target, round: u64) -> f64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    seed.hash(&mut h);
    round.hash(&mut h);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

async fn probe_loop(
    t: Target,
    cfg: HealthConfig,
    table: Arc<HealthTable>,
    store: Arc<Store>,
    limit: Arc<Semaphore>,
) {
    // The first probe soon (spread over 250 ms), then every interval ±10 %.
    let first = Duration::from_millis(250).min(cfg.interval);
    tokio::time::sleep(first.mul_f64(jitter(&t, 0))).await;
    let mut round = 1;
    loop {
        let result = {
            let Ok(_permit) = limit.acquire().await else {
                return;
            };
            probe(&t, cfg.timeout).await
        };
        if let Err(e) = &result {
            debug!(target = %t, error = e.as_str(), "probe failed");
        }
        if table.record(&t, result, cfg.rise, cfg.fall) {
            let h = table.health(&t);
            info!(target = %t, health = ?h, "health changed");
            store.rebuild_names_using([t.addr.ip()]);
        }
        let spread = 0.9 + 0.2 * jitter(&t, round);
        tokio::time::sleep(cfg.interval.mul_f64(spread)).await;
        round += 1;
    }
}
