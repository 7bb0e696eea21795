//! Test support: a fedns started in-process on ephemeral ports from real config, zone and
//! MMDB files, and a small DNS client (hickory-proto messages over real UDP and TCP sockets).
#![allow(dead_code)] // each test binary uses a different part

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use fedns::app::{self, LoadedConfig, Running};

/// How long a test waits for a reply that should come.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a test waits to be sure no reply comes.
pub const SILENCE: Duration = Duration::from_millis(300);

pub mod http;

/// Polls `check` every 20 ms until it returns `Ok`; after `patience`, panics with the last
/// `Err` it returned (which should say what was seen and what was wanted).
pub async fn eventually<F, Fut>(patience: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match check().await {
            Ok(()) => return,
            Err(last) => {
                assert!(tokio::time::Instant::now() < deadline, "{last}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// A fresh directory under the cargo target dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

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
        let loaded = LoadedConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
        let options = app::Options {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            admin: Some("127.0.0.1:0".parse().unwrap()),
            query_log: false,
            ..Default::default()
        };
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Sends queries to one server.
#[derive(Clone, Copy)]
pub struct DnsClient {
    pub server: SocketAddr,
}

/// Builds a query message.
pub fn query(name: &str, qtype: RecordType, ecs: Option<&str>) -> Message {
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    if let Some(subnet) = ecs {
        let net: ipnet::IpNet = subnet.parse().unwrap();
        edns.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::from(net)));
    }
    m.set_edns(edns);
    m
}

impl DnsClient {
    /// Sends a message and returns the decoded reply.
    pub async fn exchange(&self, msg: &Message, transport: Transport) -> Message {
        let bytes = msg.to_vec().unwrap();
        let reply = self
            .raw(&bytes, transport)
            .await
            .expect("the server did not reply");
        Message::from_vec(&reply).unwrap()
    }

    /// Asks `name`/`qtype`, with an ECS subnet when given, over UDP.
    pub async fn ask(&self, name: &str, qtype: RecordType, ecs: Option<&str>) -> Message {
        self.exchange(&query(name, qtype, ecs), Transport::Udp)
            .await
    }

    /// Sends raw bytes; `None` when no reply came within `SILENCE` (UDP) or the server
    /// closed the connection without one (TCP).
    pub async fn raw(&self, bytes: &[u8], transport: Transport) -> Option<Vec<u8>> {
        match transport {
            Transport::Udp => {
                let local: SocketAddr = match self.server.ip() {
                    IpAddr::V4(_) => "127.0.0.1:0".parse().unwrap(),
                    IpAddr::V6(_) => "[::1]:0".parse().unwrap(),
                };
                let sock = UdpSocket::bind(local).await.unwrap();
                sock.send_to(bytes, self.server).await.unwrap();
                let mut buf = vec![0u8; 65_535];
                let wait = if bytes.len() >= 12 {
                    REPLY_TIMEOUT.min(SILENCE * 4)
                } else {
                    SILENCE
                };
                match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
                    Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
                    _ => None,
                }
            }
            Transport::Tcp => {
                let mut s = TcpStream::connect(self.server).await.unwrap();
                let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(bytes);
                s.write_all(&framed).await.unwrap();
                read_frame(&mut s, REPLY_TIMEOUT).await
            }
        }
    }
}

/// Reads one length-prefixed DNS message from a TCP stream.
pub async fn read_frame(s: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    tokio::time::timeout(wait, s.read_exact(&mut len))
        .await
        .ok()?
        .ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    tokio::time::timeout(wait, s.read_exact(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(buf)
}

/// The answer section as zone-file lines, sorted.
pub fn answer_lines(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m.answers.iter().map(|r| r.to_string()).collect();
    v.sort();
    v
}

/// The ECS option of a reply: (source prefix, scope prefix).
pub fn ecs_of(m: &Message) -> Option<(u8, u8)> {
    let edns = m.edns.as_ref()?;
    match edns.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some((s.source_prefix(), s.scope_prefix())),
        _ => None,
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
# The addresses below are documentation addresses: nothing to probe (tests/health.rs
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

/// Loads `CONFIG` (or another config) from real files without starting a server.
pub fn load(config: &str) -> LoadedConfig {
    LoadedConfig::from_file(&write_config("load", config)).unwrap_or_else(|e| panic!("{e}"))
}
