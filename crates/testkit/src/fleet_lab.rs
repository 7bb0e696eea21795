//! A fleet in network namespaces: fedns replicas, each the real `fedns serve` binary in its
//! own namespace, two member clusters (imitation API servers over HTTPS in the hub
//! namespace) and their load balancers (TCP listeners in one more namespace), all on one
//! bridge ([`crate::netns`]). Paths are cut with nftables inside a replica's namespace, so
//! a partition is a real one: the replica's probes time out, its API connections hang.
//!
//! ```text
//!   hub 10.200.0.1: API servers us-east, eu-west; DNS and admin clients
//!   lbs 10.200.0.101 (us-east's app), 10.200.0.102 (eu-west's app), TCP port 80
//!   r1 10.200.0.11, r2 .12, r3 .13: fedns serve, DNS on :53, admin on :8080
//! ```
//!
//! The demo GeoIP database places [`NEW_YORK`] nearest us-east, then eu-west. The lab is
//! blocking (its own tokio runtime serves the API servers and load balancers), for tests
//! and benches alike.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use serde_json::Value;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use crate::apiserver::{FakeCluster, Resource, endpoint_slice, lb_service};
use crate::dns::{UdpClient, a_records, query};
use crate::netns::{HUB, Host, Net};
use crate::process::Process;

pub const APP: &str = "app.default.myfed.svc.fed.example.com";
/// An ECS subnet the demo GeoIP database places in New York.
pub const NEW_YORK: &str = "198.18.0.0/24";
pub const US_LB: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 101);
pub const EU_LB: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 102);
pub const LB_PORT: u16 = 80;
/// The fleet namespace of the replicas' Leases.
pub const FLEET_NS: &str = "fedns";
const DNS_PORT: u16 = 53;
const ADMIN_PORT: u16 = 8080;
/// How long a replica may take to start serving.
const START_PATIENCE: Duration = Duration::from_secs(30);

/// What the replicas' config sets beyond the lab's fixed parts: YAML flow-mapping items.
#[derive(Clone, Debug)]
pub struct Options {
    pub replicas: usize,
    /// Items of `health: { probe: tcp, ... }`.
    pub health: String,
    /// Items of `fleet: { name: rN, ... }` (the region comes from `FEDNS_REGION`).
    pub fleet: String,
    /// Items of `kubernetes: { ... }`.
    pub kubernetes: String,
}

impl Options {
    /// Three replicas with fedns's defaults (probes every 1 s, rise 2, fall 2, Leases of
    /// 15 s renewed every 5 s, quorum `majority`).
    pub fn defaults() -> Options {
        Options {
            replicas: 3,
            health: String::new(),
            fleet: String::new(),
            kubernetes: String::new(),
        }
    }

    /// Three replicas at a test's pace: probes every 100 ms, Leases of 4 s renewed every
    /// second, watches restarted every 2 s.
    pub fn fast() -> Options {
        Options {
            replicas: 3,
            health: "interval: 100ms, timeout: 200ms, rise: 2, fall: 2".into(),
            fleet: "lease_duration: 4s, renew: 1s".into(),
            kubernetes: "watch_timeout: 2s, connect_timeout: 1s, sync_timeout: 10s".into(),
        }
    }
}

/// One member cluster: its API server and its app's load balancer.
pub struct Cluster {
    pub api: FakeCluster,
    pub lb: Ipv4Addr,
    listener: Option<JoinHandle<()>>,
}

/// One replica: a namespace and, while it runs, its `fedns serve` process.
pub struct Replica {
    pub name: String,
    /// Given in `FEDNS_REGION`, as deploy/ does.
    pub region: String,
    pub host: Host,
    pub process: Option<Process>,
    /// Its stderr (the log).
    pub log: PathBuf,
    pub config: PathBuf,
}

impl Replica {
    pub fn dns(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.host.ip), DNS_PORT)
    }

    pub fn admin(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.host.ip), ADMIN_PORT)
    }

    /// The last lines of its log, to put in a failure message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// The replicas, clusters and load balancers; dropping it kills the replicas and deletes
/// the namespaces.
pub struct FleetLab {
    pub replicas: Vec<Replica>,
    pub clusters: Vec<Cluster>,
    pub lbs: Host,
    pub net: Net,
    bin: PathBuf,
    rt: Runtime,
}

impl FleetLab {
    /// Makes the namespaces, starts the API servers with the app in both clusters, the
    /// load balancers, and `options.replicas` replicas of `bin`; returns once every replica
    /// serves DNS. An error says what could not be made.
    pub fn start(bin: &Path, options: &Options) -> Result<FleetLab, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        let mut net = Net::new("fleet")?;
        let lbs = net.host("lbs", Some(US_LB))?;
        lbs.add_ip(EU_LB)?;
        let dir = crate::sys::temp_dir("fleet-lab");
        let mut clusters = Vec::new();
        let mut cluster_yaml = String::new();
        for (name, region, lb) in [
            ("us-east", "us-east-1", US_LB),
            ("eu-west", "eu-west-1", EU_LB),
        ] {
            let listener = net
                .hub()
                .enter(|| std::net::TcpListener::bind((HUB, 0)))
                .map_err(|e| format!("bind an API server in the hub: {e}"))?;
            let api = rt.block_on(FakeCluster::start_on(name, listener));
            api.apply(
                Resource::Services,
                lb_service("default", "app", &[&lb.to_string()], None, &[LB_PORT]),
            );
            api.apply(
                Resource::EndpointSlices,
                endpoint_slice("default", "app", "app-abc", &[true]),
            );
            let kubeconfig = api.write_kubeconfig(&dir);
            cluster_yaml.push_str(&format!(
                "  - {{ name: {name}, region: {region}, kubeconfig: {} }}\n",
                kubeconfig.display()
            ));
            clusters.push(Cluster {
                api,
                lb,
                listener: None,
            });
        }
        let mut replicas = Vec::new();
        let regions = ["us-east-1", "eu-west-1", "ap-south-1"];
        for i in 0..options.replicas {
            let name = format!("r{}", i + 1);
            let host = net.host(&name, Some(Ipv4Addr::new(10, 200, 0, 11 + i as u8)))?;
            let config = crate::server::write_config(
                &format!("fleet-lab-{name}"),
                &format!(
                    "zone: fed.example.com\nfederation: myfed\nzone_file: fed.zone\n\
                     geoip: {{ database: city.mmdb }}\n\
                     health: {{ probe: tcp, {health} }}\n\
                     kubernetes: {{ {kubernetes} }}\n\
                     fleet: {{ name: {name}, {fleet} }}\n\
                     clusters:\n{cluster_yaml}",
                    health = options.health,
                    kubernetes = options.kubernetes,
                    fleet = options.fleet,
                ),
            );
            let log = config.with_file_name("stderr.log");
            replicas.push(Replica {
                region: regions[i % regions.len()].to_owned(),
                name,
                host,
                process: None,
                log,
                config,
            });
        }
        let mut lab = FleetLab {
            replicas,
            clusters,
            lbs,
            net,
            bin: bin.to_owned(),
            rt,
        };
        for c in 0..lab.clusters.len() {
            lab.lb_up(c)?;
        }
        for i in 0..lab.replicas.len() {
            lab.start_replica(i)?;
        }
        Ok(lab)
    }

    /// Starts replica `i` (again) and waits until it serves DNS.
    pub fn start_replica(&mut self, i: usize) -> Result<(), String> {
        let r = &mut self.replicas[i];
        let log = std::fs::File::create(&r.log).map_err(|e| format!("{}: {e}", r.log.display()))?;
        let mut cmd = r.host.command(&self.bin);
        cmd.arg("serve")
            .arg("--config")
            .arg(&r.config)
            .arg("--listen")
            .arg(r.dns().to_string())
            .arg("--admin")
            .arg(r.admin().to_string())
            .args(["--udp-workers", "1", "--drain", "0s"])
            .env("FEDNS_LOG", "info")
            .env("FEDNS_REGION", &r.region)
            .stdin(Stdio::null())
            .stderr(log);
        let process = Process::spawn(&mut cmd).map_err(|e| format!("start {}: {e}", r.name))?;
        let listening = process.wait_listening(START_PATIENCE);
        r.process = Some(process);
        listening
            .map(drop)
            .map_err(|e| format!("{} did not start: {e}\n{}", r.name, r.log_tail()))
    }

    /// Kills replica `i` with SIGKILL: no goodbye, its Leases stay as they were.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.replicas[i].process.take() {
            p.signal("KILL");
            p.wait();
        }
    }

    /// Stops replica `i` with SIGTERM and waits for it to exit.
    pub fn terminate(&mut self, i: usize) {
        if let Some(mut p) = self.replicas[i].process.take() {
            p.terminate();
        }
    }

    /// Starts cluster `c`'s load balancer: a TCP listener that accepts and closes.
    pub fn lb_up(&mut self, c: usize) -> Result<(), String> {
        let addr = SocketAddr::new(IpAddr::V4(self.clusters[c].lb), LB_PORT);
        let listener = self
            .lbs
            .enter(|| std::net::TcpListener::bind(addr))
            .map_err(|e| format!("load balancer {addr}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("load balancer {addr}: {e}"))?;
        let _runtime = self.rt.enter();
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| format!("load balancer {addr}: {e}"))?;
        self.clusters[c].listener = Some(self.rt.spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                drop(s);
            }
        }));
        Ok(())
    }

    /// Kills cluster `c`'s load balancer: its socket is closed, connections are refused.
    pub fn lb_down(&mut self, c: usize) {
        if let Some(task) = self.clusters[c].listener.take() {
            task.abort();
            // The socket closes when the aborted task is dropped by the runtime: wait for it.
            let _ = self.rt.block_on(task);
        }
    }

    /// Replica `i`'s answer for [`APP`] to a client in New York, asked from the hub over
    /// UDP; an error when it does not answer within `timeout`.
    pub fn answer(&self, i: usize, timeout: Duration) -> Result<Vec<Ipv4Addr>, String> {
        let r = &self.replicas[i];
        let dns = r.dns();
        self.net
            .hub()
            .enter(|| {
                UdpClient::new(dns, timeout).exchange(query(APP, RecordType::A, Some(NEW_YORK)))
            })
            .map(|m| a_records(&m))
            .ok_or_else(|| format!("{} did not answer within {timeout:?}", r.name))
    }

    /// GET `path` from replica `i`'s admin listener: (status, body); status 0 and the
    /// error as body when it fails.
    pub fn admin_get(&self, i: usize, path: &str) -> (u16, String) {
        let admin = self.replicas[i].admin();
        self.net
            .hub()
            .enter(|| crate::http::get_blocking(admin, path, Duration::from_secs(5)))
    }

    /// The replicas that replica `i`'s `/debug/fleet` shows fresh.
    pub fn fresh_peers(&self, i: usize) -> Vec<String> {
        let (_, body) = self.admin_get(i, "/debug/fleet");
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        v["replicas"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["fresh"] == true)
            .filter_map(|r| Some(r["name"].as_str()?.to_owned()))
            .collect()
    }

    /// Waits until the fleet is at rest: every running replica answers `want`, counts
    /// every other one fresh, and has every replica's vote up on every target (a fleet
    /// just started is not: votes arrive as Leases list the targets).
    pub fn until_settled(&self, want: Ipv4Addr, patience: Duration) -> Result<(), String> {
        let start = Instant::now();
        self.until_all_answer(want, Duration::from_millis(50), patience)?;
        let mut all: Vec<String> = self
            .running()
            .map(|i| self.replicas[i].name.clone())
            .collect();
        all.sort();
        for i in self.running() {
            loop {
                let (_, body) = self.admin_get(i, "/debug/fleet");
                let v: Value = serde_json::from_str(&body).unwrap_or_default();
                let targets = v["targets"].as_array().cloned().unwrap_or_default();
                let names = |t: &Value, k: &str| {
                    let mut n: Vec<String> = t[k]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|n| Some(n.as_str()?.to_owned()))
                        .collect();
                    n.sort();
                    n
                };
                let agreed = targets.len() == self.clusters.len()
                    && targets.iter().all(|t| names(t, "up") == all);
                let others = all.len() - 1;
                if agreed && self.fresh_peers(i).len() == others {
                    break;
                }
                if start.elapsed() > patience {
                    let r = &self.replicas[i];
                    return Err(format!(
                        "{} never saw all of {all:?} vote up on both load balancers: \
                         /debug/fleet {body}\nlog:\n{}",
                        r.name,
                        r.log_tail()
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// Replica `name`'s Lease in cluster `c`, if it has written one.
    pub fn lease(&self, c: usize, name: &str) -> Option<Value> {
        self.clusters[c]
            .api
            .get(Resource::Leases, FLEET_NS, &format!("fedns-{name}"))
    }

    /// Cuts replica `i`'s path to cluster `c`'s load balancer (its probes time out).
    pub fn cut_lb(&self, i: usize, c: usize) -> Result<(), String> {
        self.replicas[i]
            .host
            .cut(IpAddr::V4(self.clusters[c].lb), Some(LB_PORT))
    }

    /// Cuts replica `i`'s path to every API server (its requests and watches hang).
    pub fn cut_apis(&self, i: usize) -> Result<(), String> {
        let ports: Vec<String> = self
            .clusters
            .iter()
            .map(|c| {
                c.api
                    .url()
                    .rsplit(':')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        self.replicas[i].host.nft(&format!(
            "table inet fedns_cut {{\n  chain out {{\n    type filter hook output priority 0;\n    \
             ip daddr {HUB} tcp dport {{ {} }} drop\n  }}\n}}\n",
            ports.join(", ")
        ))
    }

    /// Undoes every cut of replica `i`.
    pub fn heal(&self, i: usize) -> Result<(), String> {
        self.replicas[i].host.heal()
    }

    /// Polls every running replica's answer until each is `want`, every `poll`; the time it
    /// took, or an error naming the replicas that did not within `patience`.
    pub fn until_all_answer(
        &self,
        want: Ipv4Addr,
        poll: Duration,
        patience: Duration,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        let mut pending: Vec<usize> = self.running().collect();
        loop {
            pending.retain(|&i| {
                self.answer(i, poll.max(Duration::from_millis(200))) != Ok(vec![want])
            });
            if pending.is_empty() {
                return Ok(start.elapsed());
            }
            if start.elapsed() > patience {
                let report: Vec<String> = pending
                    .iter()
                    .map(|&i| {
                        let r = &self.replicas[i];
                        format!(
                            "{} answers {:?}, want [{want}]; /debug/fleet: {}\nlog:\n{}",
                            r.name,
                            self.answer(i, Duration::from_secs(1)),
                            self.admin_get(i, "/debug/fleet").1,
                            r.log_tail()
                        )
                    })
                    .collect();
                return Err(report.join("\n\n"));
            }
            std::thread::sleep(poll);
        }
    }

    /// The replicas whose process runs.
    pub fn running(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.replicas.len()).filter(|&i| self.replicas[i].process.is_some())
    }
}
