//! What a snapshot build asks of each endpoint: the health the fleet's quorum decides for
//! each of its addresses (`health::quorum::Judge`), and the operators' overrides in force.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::fleet::overrides::{Action, Override, Overrides};
use crate::health::Health;
use crate::health::quorum::Judge;
use crate::snapshot::Verdicts;
use crate::store::Endpoint;

pub(super) struct Build<'a> {
    pub judge: Judge<'a>,
    /// Active overrides by key, taken once for the whole build.
    pub overrides: HashMap<String, Override>,
}

impl Verdicts for Build<'_> {
    fn health(&self, ep: &Endpoint, ip: IpAddr) -> Health {
        self.judge.endpoint(ep, ip)
    }

    fn action(&self, cluster: &str, ep: &Endpoint) -> Option<Action> {
        if self.overrides.is_empty() {
            return None;
        }
        Overrides::lookup(&self.overrides, cluster, &ep.namespace, &ep.name).map(|o| o.action)
    }
}
