//! One probe of one target: TCP connect, or HTTP(S) GET expecting a status, within a
//! timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Target;
use crate::config::ProbeKind;

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
