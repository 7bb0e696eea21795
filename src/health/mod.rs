//! Active health probes of every load-balancer address that a record uses.
//!
//! One probe loop per target (address, port, probe kind), shared by every record that uses
//! it; loops start and stop as endpoints appear and go. Results pass through rise/fall
//! hysteresis into the `HealthTable`, and a change of state wakes the snapshot builder.
//!
//! A new target starts healthy and its first probe runs at once (within a short jitter):
//! Kubernetes readiness has already vouched for the service, and the first result decides
//! immediately (no rise/fall on the first probe). So a new cluster is not kept out for
//! `rise` intervals, and a dead one is out within one probe timeout. PowerDNS's opposite
//! choice (first answers treat everything as down) is a long-standing complaint (#12557).
//!
//! Architecture invariant: the query path never waits on a probe; it reads health from the
//! snapshot, which the builder fills from this table. The prober writes only this table
//! and wakes the store; metrics and /debug read the table when they are asked.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::config::{HealthConfig, ProbeKind};
use crate::fleet::OwnView;
use crate::store::{ClusterEndpoints, Endpoint};

pub mod probe;
pub mod prober;
pub mod quorum;

/// Health of one probe target, and so of the load-balancer address it probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    Healthy,
    Unhealthy,
}

/// What is probed: an address and port, and how. Health is recorded and read under this
/// key, so two objects that share a load-balancer address but probe it differently keep
/// separate states, and one that probes another port than it serves is read where its probe
/// writes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub addr: SocketAddr,
    pub kind: ProbeKind,
    /// HTTP path and expected status; empty and 0 for TCP, so that every TCP probe of one
    /// address and port is one target.
    pub path: String,
    pub expect: u16,
}

impl Target {
    /// What is probed for one load-balancer address of an endpoint: the probe kind, port,
    /// path and status from the endpoint's settings (annotations or static service), else
    /// the `health:` section (`https` for a TLS listener, where the section probes). `None` when the address is not probed (probe `none`, or no
    /// port to probe), so readiness alone decides. The prober starts loops for these
    /// targets and the snapshot builder reads health by them: there is no other key.
    pub fn of(ep: &Endpoint, ip: IpAddr, cfg: &HealthConfig) -> Option<Target> {
        let kind = match (ep.settings.probe, cfg.probe) {
            (Some(kind), _) => kind,
            (None, ProbeKind::None) => ProbeKind::None,
            (None, _) if ep.settings.probe_tls => ProbeKind::Https,
            (None, kind) => kind,
        };
        let port = ep.settings.probe_port.or(ep.port)?;
        let (path, expect) = match kind {
            ProbeKind::None => return None,
            ProbeKind::Tcp => (String::new(), 0),
            ProbeKind::Http | ProbeKind::Https => (
                ep.settings
                    .probe_path
                    .clone()
                    .unwrap_or_else(|| cfg.path.clone()),
                ep.settings.probe_expect.unwrap_or(cfg.expect),
            ),
        };
        Some(Target {
            addr: SocketAddr::new(ip.to_canonical(), port),
            kind,
            path,
            expect,
        })
    }
}

impl Target {
    /// The target as one token, the same on every replica: `tcp:192.0.2.1:443`,
    /// `http:192.0.2.1:80/healthz#200`. Replicas name targets by it in their Leases.
    pub fn key(&self) -> String {
        match self.kind {
            ProbeKind::Tcp | ProbeKind::None => format!("tcp:{}", self.addr),
            ProbeKind::Http => format!("http:{}{}#{}", self.addr, self.path, self.expect),
            ProbeKind::Https => format!("https:{}{}#{}", self.addr, self.path, self.expect),
        }
    }

    /// The address and port in a key made by [`Target::key`] (`kind:addr[path#status]`).
    pub fn addr_in_key(key: &str) -> Option<SocketAddr> {
        let (_, rest) = key.split_once(':')?;
        rest.split(['/', '#']).next()?.parse().ok()
    }

    /// How the target is probed: `tcp`, `http /healthz 200`, `https / 204`.
    pub fn probe(&self) -> String {
        match self.kind {
            ProbeKind::Tcp | ProbeKind::None => "tcp".to_owned(),
            ProbeKind::Http => format!("http {} {}", self.path, self.expect),
            ProbeKind::Https => format!("https {} {}", self.path, self.expect),
        }
    }
}

impl std::fmt::Display for Target {
    /// `192.0.2.1:443 (tcp)`, `192.0.2.1:80 (http /healthz 200)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.addr, self.probe())
    }
}

/// The state of one probed address.
#[derive(Clone, Debug)]
pub struct TargetState {
    pub health: Health,
    /// No result yet: the first one decides at once.
    pub first: bool,
    pub ok_streak: u32,
    pub fail_streak: u32,
    /// The last probe's outcome, for /debug and explain.
    pub last_result: Option<Result<(), String>>,
    pub last_change: Option<SystemTime>,
    pub probes: u64,
    pub failures: u64,
}

impl Default for TargetState {
    fn default() -> Self {
        TargetState {
            health: Health::Healthy,
            first: true,
            ok_streak: 0,
            fail_streak: 0,
            last_result: None,
            last_change: None,
            probes: 0,
            failures: 0,
        }
    }
}

impl TargetState {
    /// Applies one probe result; returns whether the health state changed.
    pub fn record(&mut self, result: Result<(), String>, rise: u32, fall: u32) -> bool {
        let ok = result.is_ok();
        self.probes += 1;
        if !ok {
            self.failures += 1;
        }
        self.last_result = Some(result);
        if ok {
            self.ok_streak += 1;
            self.fail_streak = 0;
        } else {
            self.fail_streak += 1;
            self.ok_streak = 0;
        }
        let next = match (self.health, ok) {
            _ if self.first => {
                if ok {
                    Health::Healthy
                } else {
                    Health::Unhealthy
                }
            }
            (Health::Healthy, false) if self.fail_streak >= fall => Health::Unhealthy,
            (Health::Unhealthy, true) if self.ok_streak >= rise => Health::Healthy,
            (h, _) => h,
        };
        self.first = false;
        let changed = next != self.health;
        if changed {
            self.health = next;
            self.last_change = Some(SystemTime::now());
        }
        changed
    }
}

/// Health of every probe target. Written by probe loops; read by the snapshot builder,
/// and by metrics and /debug at scrape time.
#[derive(Debug)]
pub struct HealthTable {
    inner: Mutex<Table>,
    /// Bumped whenever this replica's view changes (a target's health, a target probed
    /// for the first time, a target no longer probed): the fleet publisher follows it.
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for HealthTable {
    fn default() -> Self {
        HealthTable {
            inner: Mutex::default(),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    states: HashMap<Target, TargetState>,
    /// Probes and failures of targets no longer probed, so that totals never go back.
    retired: (u64, u64),
}

impl HealthTable {
    /// Health of a target; a target not probed (yet) counts as healthy.
    pub fn health(&self, t: &Target) -> Health {
        self.lock()
            .states
            .get(t)
            .map_or(Health::Healthy, |s| s.health)
    }

    /// A copy of every state, for /debug.
    pub fn states(&self) -> HashMap<Target, TargetState> {
        self.lock().states.clone()
    }

    /// Every target's health, for the probe gauges.
    pub fn healths(&self) -> Vec<(Target, Health)> {
        let t = self.lock();
        t.states
            .iter()
            .map(|(k, s)| (k.clone(), s.health))
            .collect()
    }

    /// This replica's view, as it publishes it to the fleet: the keys of the targets it
    /// probes and of those it finds down, sorted. A target not probed yet is not down.
    pub fn view(&self) -> OwnView {
        let t = self.lock();
        let mut probed: Vec<String> = t.states.keys().map(Target::key).collect();
        let mut down: Vec<String> = t
            .states
            .iter()
            .filter(|(_, s)| s.health == Health::Unhealthy)
            .map(|(k, _)| k.key())
            .collect();
        probed.sort();
        down.sort();
        OwnView { probed, down }
    }

    /// Probes run and probes failed since start, over every target there has been.
    pub fn totals(&self) -> (u64, u64) {
        let t = self.lock();
        t.states
            .values()
            .fold(t.retired, |(p, f), s| (p + s.probes, f + s.failures))
    }

    /// Wakes on every change of this replica's view (see `view`).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn record(&self, t: &Target, result: Result<(), String>, rise: u32, fall: u32) -> bool {
        let (changed, new) = {
            let states = &mut self.lock().states;
            match states.get_mut(t) {
                Some(s) => (s.record(result, rise, fall), false),
                None => (
                    states
                        .entry(t.clone())
                        .or_default()
                        .record(result, rise, fall),
                    true,
                ),
            }
        };
        if changed || new {
            self.changed.send_modify(|g| *g = g.wrapping_add(1));
        }
        changed
    }

    fn forget(&self, t: &Target) {
        let mut table = self.lock();
        if let Some(s) = table.states.remove(t) {
            table.retired.0 += s.probes;
            table.retired.1 += s.failures;
            drop(table);
            self.changed.send_modify(|g| *g = g.wrapping_add(1));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // Every write is one entry update: a poisoned lock holds consistent data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The probe targets that the store's endpoints call for.
pub fn targets(
    clusters: &std::collections::BTreeMap<String, ClusterEndpoints>,
    cfg: &HealthConfig,
) -> HashSet<Target> {
    clusters
        .values()
        .flat_map(|c| c.endpoints())
        .flat_map(|ep| {
            ep.addresses
                .iter()
                .filter_map(|&ip| Target::of(ep, ip, cfg))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis() {
        let mut s = TargetState::default();
        // The first result decides at once.
        assert!(s.record(Err("x".into()), 2, 2));
        assert_eq!(s.health, Health::Unhealthy);
        // One success is not enough to come back (rise 2)...
        assert!(!s.record(Ok(()), 2, 2));
        assert_eq!(s.health, Health::Unhealthy);
        // ...two are.
        assert!(s.record(Ok(()), 2, 2));
        assert_eq!(s.health, Health::Healthy);
        // A single lost probe never flips it (fall 2); a second in a row does.
        assert!(!s.record(Err("x".into()), 2, 2));
        assert!(!s.record(Ok(()), 2, 2));
        assert!(!s.record(Err("x".into()), 2, 2));
        assert_eq!(s.health, Health::Healthy);
        assert!(s.record(Err("x".into()), 2, 2));
        assert_eq!(s.health, Health::Unhealthy);
        assert_eq!((s.probes, s.failures), (7, 4));
    }

    fn endpoint(port: Option<u16>, settings: crate::store::Settings) -> Endpoint {
        Endpoint {
            kind: crate::store::ObjectKind::Service,
            namespace: "default".into(),
            name: "app".into(),
            federated_name: true,
            hosts: Vec::new(),
            addresses: vec!["192.0.2.1".parse().unwrap()],
            hostname: None,
            port,
            ready: true,
            ready_endpoints: None,
            settings,
        }
    }

    #[test]
    fn a_tls_listener_is_probed_over_https_where_the_config_probes() {
        use crate::store::Settings;
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let tls = Settings {
            probe_tls: true,
            ..Settings::default()
        };
        let mut cfg = HealthConfig::default();
        for (config, want) in [
            (ProbeKind::Tcp, Some(ProbeKind::Https)),
            (ProbeKind::Http, Some(ProbeKind::Https)),
            (ProbeKind::None, None),
        ] {
            cfg.probe = config;
            let t = Target::of(&endpoint(Some(443), tls.clone()), ip, &cfg);
            assert_eq!(t.map(|t| t.kind), want, "{config:?}");
        }
        // An annotation still wins.
        cfg.probe = ProbeKind::Tcp;
        let annotated = Settings {
            probe: Some(ProbeKind::Tcp),
            ..tls
        };
        let t = Target::of(&endpoint(Some(443), annotated), ip, &cfg).unwrap();
        assert_eq!(t.kind, ProbeKind::Tcp);
    }

    #[test]
    fn a_key_gives_its_address_back() {
        for key in [
            "tcp:192.0.2.1:443",
            "http:192.0.2.1:80/healthz#200",
            "https:[2001:db8::1]:8443/#204",
            "tcp:[::1]:53",
        ] {
            let addr = Target::addr_in_key(key).unwrap_or_else(|| panic!("{key}"));
            assert!(key.contains(&addr.to_string()), "{key}: {addr}");
        }
        assert_eq!(Target::addr_in_key("nonsense"), None);
    }

    #[test]
    fn a_target_is_where_the_probe_goes() {
        use crate::store::Settings;
        let cfg = HealthConfig::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let at = |port| SocketAddr::new(ip, port);
        // The service port, probed as the health section says.
        let plain = Target::of(&endpoint(Some(443), Settings::default()), ip, &cfg).unwrap();
        assert_eq!((plain.addr, plain.kind), (at(443), ProbeKind::Tcp));
        // A probe port moves the target, not only the probe.
        let moved = Settings {
            probe_port: Some(8080),
            ..Settings::default()
        };
        let t = Target::of(&endpoint(Some(443), moved.clone()), ip, &cfg).unwrap();
        assert_eq!(t.addr, at(8080));
        // A probe port is enough where the object has no port of its own.
        assert_eq!(
            Target::of(&endpoint(None, moved), ip, &cfg).unwrap().addr,
            at(8080)
        );
        // No port at all, or probe `none`: not probed.
        assert_eq!(
            Target::of(&endpoint(None, Settings::default()), ip, &cfg),
            None
        );
        let off = Settings {
            probe: Some(ProbeKind::None),
            ..Settings::default()
        };
        assert_eq!(Target::of(&endpoint(Some(443), off), ip, &cfg), None);
        // HTTP paths make different targets; TCP ignores them.
        let http = |path: &str, probe| Settings {
            probe: Some(probe),
            probe_path: Some(path.into()),
            ..Settings::default()
        };
        let of = |s| Target::of(&endpoint(Some(80), s), ip, &cfg).unwrap();
        assert_ne!(
            of(http("/a", ProbeKind::Http)),
            of(http("/b", ProbeKind::Http))
        );
        assert_eq!(
            of(http("/a", ProbeKind::Tcp)),
            of(http("/b", ProbeKind::Tcp))
        );
        assert_eq!(
            of(http("/a", ProbeKind::Http)).to_string(),
            "192.0.2.1:80 (http /a 200)"
        );
        // An IPv4-mapped IPv6 address is the IPv4 target.
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(
            Target::of(&endpoint(Some(443), Settings::default()), mapped, &cfg),
            Some(plain)
        );
    }

    #[test]
    fn health_is_read_where_it_is_recorded() {
        use crate::store::Settings;
        let cfg = HealthConfig::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let table = HealthTable::default();
        let on_path = |path: &str| {
            endpoint(
                Some(443),
                Settings {
                    probe: Some(ProbeKind::Http),
                    probe_path: Some(path.into()),
                    probe_port: Some(8080),
                    ..Settings::default()
                },
            )
        };
        let (web, app) = (on_path("/web"), on_path("/app"));
        let t = Target::of(&web, ip, &cfg).unwrap();
        assert!(table.record(&t, Err("refused".into()), 2, 2));
        assert_eq!(
            quorum::Judge::new(&table, &cfg, None).endpoint(&web, ip),
            Health::Unhealthy
        );
        assert_eq!(
            quorum::Judge::new(&table, &cfg, None).endpoint(&app, ip),
            Health::Healthy
        );
        table.forget(&Target::of(&app, ip, &cfg).unwrap());
        assert_eq!(
            quorum::Judge::new(&table, &cfg, None).endpoint(&web, ip),
            Health::Unhealthy
        );
    }

    #[test]
    fn first_success_keeps_healthy() {
        let mut s = TargetState::default();
        assert!(!s.record(Ok(()), 2, 2));
        assert_eq!(s.health, Health::Healthy);
    }
}
