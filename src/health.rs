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
//! snapshot, which the builder fills from this table.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::config::{HealthConfig, ProbeKind};
use crate::metrics::Metrics;
use crate::snapshot::Health;
use crate::store::{ClusterEndpoints, Store};

/// What to probe: an address and port, and how.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub addr: SocketAddr,
    pub kind: ProbeKind,
    /// HTTP path and expected status (unused for TCP).
    pub path: String,
    pub expect: u16,
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

/// Health of every probed address. Written by probe loops, read by the snapshot builder.
#[derive(Debug, Default)]
pub struct HealthTable {
    states: Mutex<HashMap<SocketAddr, TargetState>>,
}

impl HealthTable {
    /// Health of an address on a port; addresses that are not probed count as healthy
    /// (readiness alone decides for them).
    pub fn health(&self, ip: IpAddr, port: Option<u16>) -> Health {
        let Some(port) = port else {
            return Health::Healthy;
        };
        self.lock()
            .get(&SocketAddr::new(ip, port))
            .map_or(Health::Healthy, |s| s.health)
    }

    /// A copy of every state, for /debug.
    pub fn states(&self) -> HashMap<SocketAddr, TargetState> {
        self.lock().clone()
    }

    fn record(&self, addr: SocketAddr, result: Result<(), String>, rise: u32, fall: u32) -> bool {
        self.lock()
            .entry(addr)
            .or_default()
            .record(result, rise, fall)
    }

    fn forget(&self, addr: &SocketAddr) {
        self.lock().remove(addr);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, TargetState>> {
        // Every write is one entry update: a poisoned lock holds consistent data.
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The probe targets that the store's endpoints call for.
pub fn targets(
    clusters: &std::collections::BTreeMap<String, ClusterEndpoints>,
    cfg: &HealthConfig,
) -> HashSet<Target> {
    let mut out = HashSet::new();
    for c in clusters.values() {
        for ep in c.endpoints() {
            let kind = ep.settings.probe.unwrap_or(cfg.probe);
            let Some(port) = ep.settings.probe_port.or(ep.port) else {
                continue;
            };
            if kind == ProbeKind::None {
                continue;
            }
            for ip in &ep.addresses {
                out.insert(Target {
                    addr: SocketAddr::new(ip.to_canonical(), port),
                    kind,
                    path: ep
                        .settings
                        .probe_path
                        .clone()
                        .unwrap_or_else(|| cfg.path.clone()),
                    expect: ep.settings.probe_expect.unwrap_or(cfg.expect),
                });
            }
        }
    }
    out
}

/// Keeps one probe loop per target, following the store. Runs until aborted.
pub async fn run(
    store: Arc<Store>,
    table: Arc<HealthTable>,
    cfg: HealthConfig,
    metrics: Arc<Metrics>,
) {
    let limit = Arc::new(Semaphore::new(cfg.max_concurrent));
    let mut loops = Loops(HashMap::new());
    let mut changed = store.subscribe();
    loop {
        let wanted = targets(&store.contents(), &cfg);
        loops.0.retain(|t, handle| {
            let keep = wanted.contains(t);
            if !keep {
                handle.abort();
                table.forget(&t.addr);
                metrics.forget_probe(&t.addr.to_string());
                debug!(target = %t.addr, "probe stopped");
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
                    metrics.clone(),
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
    metrics: Arc<Metrics>,
) {
    metrics.set_probe_health(&t.addr.to_string(), Health::Healthy);
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
            debug!(target = %t.addr, error = e.as_str(), "probe failed");
        }
        metrics.probe(result.is_ok());
        if table.record(t.addr, result, cfg.rise, cfg.fall) {
            let h = table.health(t.addr.ip(), Some(t.addr.port()));
            info!(target = %t.addr, health = ?h, "health changed");
            metrics.set_probe_health(&t.addr.to_string(), h);
            store.touch();
        }
        let spread = 0.9 + 0.2 * jitter(&t, round);
        tokio::time::sleep(cfg.interval.mul_f64(spread)).await;
        round += 1;
    }
}

/// One probe: connect within `timeout`, and for HTTP(S) get the expected status.
pub async fn probe(t: &Target, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, probe_inner(t)).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {timeout:?}")),
    }
}

async fn probe_inner(t: &Target) -> Result<(), String> {
    let stream = TcpStream::connect(t.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    match t.kind {
        ProbeKind::Tcp | ProbeKind::None => Ok(()),
        ProbeKind::Http => http_get(stream, t).await,
        ProbeKind::Https => {
            let connector = tokio_rustls::TlsConnector::from(tls_config());
            let name = rustls::pki_types::ServerName::IpAddress(t.addr.ip().into());
            let tls = connector
                .connect(name, stream)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            http_get(tls, t).await
        }
    }
}

/// Sends a GET and reads the status line.
async fn http_get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    t: &Target,
) -> Result<(), String> {
    let host = match t.addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: fedns-probe\r\nConnection: close\r\n\r\n",
        t.path
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    // Read until the status line is complete (or 64 bytes, more than any status line).
    while n < buf.len() && !buf[..n].contains(&b'\n') {
        let m = s
            .read(&mut buf[n..])
            .await
            .map_err(|e| format!("read: {e}"))?;
        if m == 0 {
            break;
        }
        n += m;
    }
    let line = String::from_utf8_lossy(&buf[..n]);
    let status = line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP response: {:?}",
                line.lines().next().unwrap_or("")
            )
        })?;
    if status == t.expect {
        Ok(())
    } else {
        Err(format!("status {status}, expected {}", t.expect))
    }
}

/// TLS for probes: no certificate verification (a load balancer probed by address rarely
/// has a certificate for it; the probe asks "does it answer", not "who is it").
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map(|b| {
                    b.dangerous()
                        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
                        .with_no_client_auth()
                });
            Arc::new(config.unwrap_or_else(|_| {
                // Only reachable if ring lacked every default protocol version.
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            }))
        })
        .clone()
}

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
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

    #[test]
    fn first_success_keeps_healthy() {
        let mut s = TargetState::default();
        assert!(!s.record(Ok(()), 2, 2));
        assert_eq!(s.health, Health::Healthy);
    }
}
