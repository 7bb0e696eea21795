//! The fleet's decision: this replica's own health of a target, and the votes of the other
//! replicas' fresh views (`fleet::Fleet::votes`), under the configured `Quorum`.

use std::net::IpAddr;
use std::time::SystemTime;

use super::{Health, HealthTable, Target};
use crate::config::{HealthConfig, Quorum};
use crate::fleet::{Fleet, Moved, Votes};
use crate::store::{Endpoint, Store};

/// Health as the quorum decides it from the votes.
pub fn decide(quorum: Quorum, votes: &Votes) -> Health {
    let (up, down) = (votes.up.len(), votes.down.len());
    let n = up + down;
    let is_down = match quorum {
        // Own is decided without votes; with votes, own is the first (and only) voter.
        Quorum::Own => down > 0 && n == 1,
        Quorum::Majority => down * 2 > n,
        Quorum::All => n > 0 && down == n,
        Quorum::Any => down > 0,
        // Healthy when more than `p` % of the voters say healthy.
        Quorum::Percent(p) => up * 100 <= usize::from(p) * n,
    };
    if is_down {
        Health::Unhealthy
    } else {
        Health::Healthy
    }
}

/// Health of targets as the fleet decides it: one per snapshot build, so that every
/// address is judged against the same moment and the same own view.
pub struct Judge<'a> {
    table: &'a HealthTable,
    cfg: &'a HealthConfig,
    /// The fleet and its quorum; None: this replica decides alone (`own`).
    fleet: Option<(&'a Fleet, Quorum, String)>,
    now: SystemTime,
}

impl<'a> Judge<'a> {
    pub fn new(table: &'a HealthTable, cfg: &'a HealthConfig, fleet: Option<&'a Fleet>) -> Self {
        let fleet = fleet
            .map(|f| (f, cfg.quorum(true)))
            .filter(|(_, q)| *q != Quorum::Own)
            .map(|(f, q)| (f, q, table.view().digest()));
        Judge {
            table,
            cfg,
            fleet,
            now: SystemTime::now(),
        }
    }

    /// The health of one load-balancer address of an endpoint.
    pub fn endpoint(&self, ep: &Endpoint, ip: IpAddr) -> Health {
        match Target::of(ep, ip, self.cfg) {
            Some(t) => self.target(&t),
            None => Health::Healthy,
        }
    }

    /// The health of a target: its own, or the quorum's over the fleet's votes.
    pub fn target(&self, t: &Target) -> Health {
        let own = self.table.health(t);
        match &self.fleet {
            None => own,
            Some((fleet, quorum, digest)) => decide(*quorum, &self.votes_on(fleet, t, own, digest)),
        }
    }

    fn votes_on(&self, fleet: &Fleet, t: &Target, own: Health, digest: &str) -> Votes {
        fleet.votes(&t.key(), own == Health::Unhealthy, digest, self.now)
    }
}

/// Asks the store to rebuild the names behind the fleet's targets whose votes moved:
/// those names alone, or everything when any target may have.
pub fn rebuild_moved(store: &Store, moved: Moved) {
    match moved {
        Moved::Nothing => {}
        Moved::All => store.rebuild_all(),
        Moved::Targets(keys) => {
            let ips: Option<Vec<IpAddr>> = keys
                .iter()
                .map(|k| Target::addr_in_key(k).map(|a| a.ip()))
                .collect();
            match ips {
                Some(ips) => store.rebuild_names_using(ips),
                // A key from another fedns version that this one cannot read.
                None => store.rebuild_all(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn votes(up: usize, down: usize) -> Votes {
        Votes {
            up: (0..up).map(|i| format!("u{i}")).collect(),
            down: (0..down).map(|i| format!("d{i}")).collect(),
        }
    }

    #[test]
    fn quorums() {
        use Health::{Healthy as H, Unhealthy as U};
        // (up, down) -> majority, all, any, 18 %
        let table = [
            ((1, 0), [H, H, H, H]),
            ((0, 1), [U, U, U, U]),
            ((2, 1), [H, H, U, H]),
            ((1, 2), [U, H, U, H]),
            ((1, 1), [H, H, U, H]),
            ((0, 3), [U, U, U, U]),
            ((1, 4), [U, H, U, H]),
            ((1, 5), [U, H, U, U]),
            ((1, 9), [U, H, U, U]),
        ];
        for ((up, down), want) in table {
            let v = votes(up, down);
            let got = [
                decide(Quorum::Majority, &v),
                decide(Quorum::All, &v),
                decide(Quorum::Any, &v),
                decide(Quorum::Percent(18), &v),
            ];
            assert_eq!(got, want, "up {up}, down {down}");
        }
    }

    #[test]
    fn moved_votes_rebuild_only_the_names_behind_them() {
        use crate::store::{Endpoint, NameKey, ObjectKind};
        let store = Store::default();
        let ep = |name: &str, ip: [u8; 4]| Endpoint {
            kind: ObjectKind::Service,
            namespace: "default".into(),
            name: name.into(),
            federated_name: true,
            hosts: Vec::new(),
            addresses: vec![IpAddr::from(ip)],
            hostname: None,
            port: Some(443),
            ready: true,
            ready_endpoints: None,
            settings: Default::default(),
        };
        let changes = [ep("app", [192, 0, 2, 1]), ep("web", [192, 0, 2, 2])]
            .map(|e| (e.key(), Some(e)))
            .into();
        store.update_kube("us-east", changes, true, |_| {});
        store.take_dirty();
        let moved = Moved::Targets(["http:192.0.2.2:443/healthz#200".to_owned()].into());
        rebuild_moved(&store, moved);
        let dirty = store.take_dirty();
        assert!(!dirty.full);
        assert_eq!(dirty.names, [NameKey::Service("default/web".into())].into());
        rebuild_moved(&store, Moved::Nothing);
        assert!(!store.take_dirty().full);
        // Unreadable keys, or targets unknown: everything.
        rebuild_moved(&store, Moved::Targets(["what:ever".to_owned()].into()));
        assert!(store.take_dirty().full);
        rebuild_moved(&store, Moved::All);
        assert!(store.take_dirty().full);
    }
}
