//! fedns started in-process on ephemeral ports from real config, zone and MMDB files.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use fedns::app::{self, LoadedConfig, Running};
use fedns::health::Health;
use fedns::snapshot::Snapshot;
use fedns::store::{Endpoint, ObjectKind, Store};

use crate::dns::DnsClient;
use crate::sys::temp_dir;

/// The demo zone plus a delegation, so that referrals are tested too.
pub const ZONE_EXTRA: &str = "{demo}sub     IN NS   ns.sub\nns.sub  IN A    192.0.2.53\n";

/// Writes a config, the demo zone and the generated demo GeoIP database into a fresh
/// directory and returns the config's path.
pub fn write_config(tag: &str, config: &str) -> PathBuf {
    let dir = temp_dir(tag);
    std::fs::write(
        dir.join("fed.zone"),
        ZONE_EXTRA.replace("{demo}", fedns::demo::ZONE),
    )
    .unwrap();
    std::fs::write(dir.join("city.mmdb"), fedns::demo::demo_geoip()).unwrap();
    let path = dir.join("fedns.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

/// Loads `config` (such as [`CONFIG`]) from real files without starting a server.
pub fn load(config: &str) -> LoadedConfig {
    LoadedConfig::from_file(&write_config("load", config)).unwrap_or_else(|e| panic!("{e}"))
}

/// A snapshot of `loaded` over `store` in which the load-balancer addresses in `down`
/// fail their probes and every other one passes.
pub fn snapshot_down(loaded: &LoadedConfig, store: &Store, down: &[&str]) -> Snapshot {
    let down: Vec<IpAddr> = down.iter().map(|a| a.parse().unwrap()).collect();
    let health = |_: &Endpoint, ip: IpAddr| {
        if down.contains(&ip) {
            Health::Unhealthy
        } else {
            Health::Healthy
        }
    };
    loaded.snapshot_with(store, &health).unwrap()
}

/// Fills `store` as a large federation's Kubernetes sources would: in each of `clusters`,
/// `per_cluster` LoadBalancer Services named by `name(cluster index, i)` in 100
/// namespaces, one address each (10.<cluster>.<i>), every cluster synced.
pub fn kube_services(
    store: &Store,
    clusters: &[String],
    per_cluster: u32,
    name: impl Fn(usize, u32) -> String,
) {
    for (ci, cluster) in clusters.iter().enumerate() {
        let changes = (0..per_cluster)
            .map(|i| {
                let ep = Endpoint {
                    kind: ObjectKind::Service,
                    namespace: format!("ns{}", i % 100),
                    name: name(ci, i),
                    federated_name: true,
                    hosts: Vec::new(),
                    addresses: vec![IpAddr::from([10, ci as u8, (i >> 8) as u8, i as u8])],
                    hostname: None,
                    port: Some(443),
                    ready: true,
                    ready_endpoints: None,
                    settings: Default::default(),
                };
                (ep.key(), Some(ep))
            })
            .collect();
        store.update_kube(cluster, changes, true, |k| {
            k.synced_at = Some(std::time::SystemTime::now())
        });
    }
}

/// A running in-process server.
pub struct TestServer {
    pub running: Running,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// The config file; the zone file and GeoIP database are beside it.
    pub path: PathBuf,
}

impl TestServer {
    pub async fn start(config: &str) -> TestServer {
        let path = write_config("fedns", config);
        TestServer::start_at(path).await
    }

    /// Starts a server on an existing config file.
    pub async fn start_at(path: PathBuf) -> TestServer {
        TestServer::start_with(path, |_| {}).await
    }

    /// As `start_at`, with `serve`'s options (DNS and admin on ephemeral ports, no query
    /// log) changed by `options`.
    pub async fn start_with(path: PathBuf, change: impl FnOnce(&mut app::Options)) -> TestServer {
        let loaded = LoadedConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut options = app::Options {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            admin: Some("127.0.0.1:0".parse().unwrap()),
            query_log: false,
            ..Default::default()
        };
        change(&mut options);
        let running = app::start(loaded, &options).await.unwrap();
        let addr = running.dns_addrs()[0];
        let admin = running.admin_addr.unwrap();
        TestServer {
            running,
            addr,
            admin,
            path,
        }
    }

    pub fn client(&self) -> DnsClient {
        DnsClient { server: self.addr }
    }

    /// Waits until every cluster's records are in the published snapshot (each watched
    /// cluster has listed every kind once): until then an answer may come from the
    /// clusters that listed first, and pass a check for the wrong reason.
    pub async fn until_synced(&self, patience: Duration) {
        crate::wait::eventually(patience, || async {
            let snap = self.running.app.published.load();
            let waiting: Vec<&str> = snap
                .clusters
                .iter()
                .filter(|c| !c.synced)
                .map(|c| c.name.as_str())
                .collect();
            if waiting.is_empty() {
                Ok(())
            } else {
                Err(format!("not synced after {patience:?}: {waiting:?}"))
            }
        })
        .await;
    }

    /// Stops the server at once (no drain).
    pub async fn stop(self) {
        self.running.shutdown(Duration::ZERO).await;
    }
}

/// The federation most tests use: the demo's five clusters and services, plus services for
/// every policy, overrides of each kind, and a name with more addresses than 512 bytes hold.
/// The GeoIP database is the generated demo one (`fedns::demo::NETWORKS`).
pub const CONFIG: &str = r#"
zone: fed.example.com
federation: myfed
zone_file: fed.zone
listen: { dns: ["127.0.0.1:0"] }
# The addresses below are documentation addresses: nothing to probe (tests/it/health.rs
# probes real listeners on 127.0.0.x).
health: { probe: none }
ttl: 30
geoip: { database: city.mmdb }
networks:
  - { cidr: 127.0.0.0/8, location: { lat: 50.11, lon: 8.68 } }
  - { cidr: 198.18.200.0/24, cluster: sa-east }
  - { cidr: 198.18.201.0/24, region: ap-northeast-1 }
fallback: [sa-east]
services:
  - { namespace: shop, name: checkout, policy: failover, order: [eu-west, us-east] }
  - { namespace: default, name: two, count: 2 }
  - { namespace: default, name: rr, policy: all }
  - { namespace: default, name: wt, policy: weighted, weights: { us-east: 1 } }
clusters:
  - name: us-east
    region: us-east-1
    zone: us-east-1a
    services:
      - { namespace: default, name: app, addresses: [192.0.2.10, "2001:db8:10::10"], port: 443 }
      - { namespace: default, name: web, addresses: [192.0.2.11], port: 80 }
      - { namespace: shop, name: checkout, addresses: [192.0.2.12], port: 443 }
      - { namespace: default, name: two, addresses: [192.0.2.13, 192.0.2.113] }
      - { namespace: default, name: rr, addresses: [192.0.2.14] }
      - { namespace: default, name: wt, addresses: [192.0.2.15] }
  - name: eu-west
    region: eu-west-1
    zone: eu-west-1b
    services:
      - { namespace: default, name: app, addresses: [198.51.100.10, "2001:db8:20::10"], port: 443, hosts: [www.fed.example.com] }
      - { namespace: default, name: web, addresses: [198.51.100.11], port: 80 }
      - { namespace: shop, name: checkout, addresses: [198.51.100.12], port: 443 }
      - { namespace: default, name: two, addresses: [198.51.100.13] }
      - { namespace: default, name: rr, addresses: [198.51.100.14] }
      - { namespace: default, name: wt, addresses: [198.51.100.15] }
  - name: ap-northeast
    region: ap-northeast-1
    services:
      - { namespace: default, name: app, addresses: [203.0.113.10, "2001:db8:30::10"], port: 443, hosts: [www.fed.example.com] }
      - { namespace: default, name: api, hostname: api-lb-1234.elb.ap-northeast-1.amazonaws.com, port: 443 }
      - { namespace: default, name: rr, addresses: [203.0.113.14] }
  - name: sa-east
    region: sa-east-1
    services:
      - { namespace: default, name: app, addresses: [192.0.2.40], port: 443 }
      - { namespace: default, name: api, addresses: [192.0.2.41], port: 443 }
  - name: ap-southeast
    region: ap-southeast-2
    location: { lat: -33.87, lon: 151.21 }
    services:
      - { namespace: default, name: app, addresses: [203.0.113.50, "2001:db8:50::10"], port: 443 }
      - namespace: default
        name: big
        addresses: ["2001:db8:99::1", "2001:db8:99::2", "2001:db8:99::3", "2001:db8:99::4", "2001:db8:99::5", "2001:db8:99::6", "2001:db8:99::7", "2001:db8:99::8", "2001:db8:99::9", "2001:db8:99::10", "2001:db8:99::11", "2001:db8:99::12", "2001:db8:99::13", "2001:db8:99::14", "2001:db8:99::15", "2001:db8:99::16", "2001:db8:99::17", "2001:db8:99::18", "2001:db8:99::19", "2001:db8:99::20", "2001:db8:99::21", "2001:db8:99::22", "2001:db8:99::23", "2001:db8:99::24", "2001:db8:99::25", "2001:db8:99::26", "2001:db8:99::27", "2001:db8:99::28", "2001:db8:99::29", "2001:db8:99::30"]
"#;
