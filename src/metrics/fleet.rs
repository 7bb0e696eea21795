//! The fleet metrics, read at scrape time from the other replicas' views and this
//! replica's health table: how many replicas vote, on how many targets the views
//! disagree, and how many replicas run another config or GeoIP database.

use std::sync::Arc;
use std::time::SystemTime;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge, Metric, MetricFamily, MetricType};

use super::families::{desc, family, labels};
use crate::fleet::Fleet;
use crate::fleet::overrides::{Action, Overrides};
use crate::health::HealthTable;

pub struct FleetCollector {
    fleet: Arc<Fleet>,
    table: Arc<HealthTable>,
    overrides: Arc<Overrides>,
    descs: Vec<Desc>,
}

const REPLICAS: (&str, &str) = (
    "fedns_fleet_replicas",
    "Other fedns replicas known from their Leases, by whether their view is fresh (votes) or stale.",
);
const DISAGREE: (&str, &str) = (
    "fedns_fleet_disagreeing_targets",
    "Probe targets of this replica on which the fresh views do not all agree.",
);
const OVERRIDES: (&str, &str) = (
    "fedns_fleet_overrides",
    "Operators' overrides in force (fedns drain, force-up), by action.",
);
const MISMATCH: (&str, &str) = (
    "fedns_fleet_digest_mismatch",
    "Fresh replicas whose config or GeoIP database digest differs from this replica's.",
);

impl FleetCollector {
    pub fn new(
        fleet: Arc<Fleet>,
        table: Arc<HealthTable>,
        overrides: Arc<Overrides>,
    ) -> FleetCollector {
        FleetCollector {
            fleet,
            table,
            overrides,
            descs: vec![
                desc(REPLICAS, &["state"]),
                desc(DISAGREE, &[]),
                desc(MISMATCH, &["digest"]),
                desc(OVERRIDES, &["action"]),
            ],
        }
    }
}

fn gauge(pairs: &[(&str, &str)], value: usize) -> Metric {
    let mut g = Gauge::default();
    g.set_value(value as f64);
    let mut m = Metric::from_label(labels(pairs));
    m.set_gauge(g);
    m
}

impl Collector for FleetCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let now = SystemTime::now();
        let views = self.fleet.views();
        let fresh: Vec<_> = views.iter().filter(|v| v.fresh(now)).collect();
        let (config, geoip) = self.fleet.digests();
        let disagreeing = self
            .fleet
            .tally(&self.table.view(), now)
            .iter()
            .filter(|(_, v)| !v.up.is_empty() && !v.down.is_empty())
            .count();
        let active = self.overrides.active(now);
        let count = |a: Action| active.values().filter(|o| o.action == a).count();
        vec![
            family(
                OVERRIDES,
                MetricType::GAUGE,
                vec![
                    gauge(&[("action", "drain")], count(Action::Drain)),
                    gauge(&[("action", "force-up")], count(Action::ForceUp)),
                ],
            ),
            family(
                REPLICAS,
                MetricType::GAUGE,
                vec![
                    gauge(&[("state", "fresh")], fresh.len()),
                    gauge(&[("state", "stale")], views.len() - fresh.len()),
                ],
            ),
            family(DISAGREE, MetricType::GAUGE, vec![gauge(&[], disagreeing)]),
            family(
                MISMATCH,
                MetricType::GAUGE,
                vec![
                    gauge(
                        &[("digest", "config")],
                        fresh.iter().filter(|v| v.config_digest != config).count(),
                    ),
                    gauge(
                        &[("digest", "geoip")],
                        fresh.iter().filter(|v| v.geoip_digest != geoip).count(),
                    ),
                ],
            ),
        ]
    }
}
