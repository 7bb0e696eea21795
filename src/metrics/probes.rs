//! The probe metrics, read from the health table at scrape time: the prober writes only
//! its table, and never a metric.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge, Metric, MetricFamily, MetricType};

use super::families::{counter, desc, family, labels};
use crate::health::{Health, HealthTable};
pub struct ProbeCollector {
    table: Arc<HealthTable>,
    descs: Vec<Desc>,
}

const PROBES: (&str, &str) = ("fedns_probes_total", "Health probes by result.");
const PROBE_HEALTHY: (&str, &str) = (
    "fedns_probe_healthy",
    "1 when the probe target (a load-balancer address and port, probed as `probe`) is healthy.",
);

impl ProbeCollector {
    pub fn new(table: Arc<HealthTable>) -> ProbeCollector {
        ProbeCollector {
            table,
            descs: vec![
                desc(PROBES, &["result"]),
                desc(PROBE_HEALTHY, &["address", "probe"]),
            ],
        }
    }
}

impl Collector for ProbeCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let (probes, failures) = self.table.totals();
        let mut healths = self.table.healths();
        healths.sort();
        let gauges = healths
            .into_iter()
            .map(|(t, h)| {
                let mut g = Gauge::default();
                g.set_value(f64::from(u8::from(h == Health::Healthy)));
                let (address, probe) = (t.addr.to_string(), t.probe());
                let mut m = Metric::from_label(labels(&[("address", &address), ("probe", &probe)]));
                m.set_gauge(g);
                m
            })
            .collect();
        vec![
            family(
                PROBES,
                MetricType::COUNTER,
                vec![
                    counter(&[("result", "ok")], probes - failures),
                    counter(&[("result", "fail")], failures),
                ],
            ),
            family(PROBE_HEALTHY, MetricType::GAUGE, gauges),
        ]
    }
}
