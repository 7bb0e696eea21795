//! Sockets: UDP and TCP on every listen address, and the loops that feed the query path.
//!
//! - `udp`: worker threads, each with its own socket (SO_REUSEPORT when more than one),
//!   batched `recvmmsg`/`sendmmsg`.
//! - `tcp`: the accept loop on the tokio runtime, with its connection limit, and
//!   connections with idle and I/O timeouts and in-order pipelining.
//!
//! Listeners depend on the query path (`dns::Handler`), never the reverse.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::warn;

use crate::dns::Handler;
use crate::metrics::Metrics;

pub mod tcp;
pub mod udp;

use tcp::TcpLimits;

/// How the listeners are run.
#[derive(Debug, Clone, Copy)]
pub struct ServeSettings {
    /// UDP worker threads (and sockets) per listen address.
    pub udp_workers: usize,
    pub tcp: TcpLimits,
    /// How long open TCP connections may take to finish on shutdown.
    pub linger: Duration,
}

/// The DNS listeners of a running server.
pub struct DnsServer {
    udp_threads: Vec<std::thread::JoinHandle<()>>,
    udp_stop: Arc<AtomicBool>,
    tcp_stop: watch::Sender<bool>,
    tcp_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Where it listens (the real ports when the config asked for port 0).
    pub addrs: Vec<SocketAddr>,
}

impl DnsServer {
    /// Binds UDP (`udp_workers` sockets and threads) and TCP on every address and starts
    /// serving. Must be called within a tokio runtime (TCP runs there).
    pub fn bind(
        addrs: &[SocketAddr],
        handler: Handler,
        metrics: Arc<Metrics>,
        settings: ServeSettings,
    ) -> std::io::Result<DnsServer> {
        let udp_stop = Arc::new(AtomicBool::new(false));
        let (tcp_stop, stop_rx) = watch::channel(false);
        let mut bound = Vec::new();
        let mut sockets = Vec::new();
        let mut listeners = Vec::new();
        for addr in addrs {
            let (udp, tcp) = bind_pair(*addr, settings.udp_workers.max(1))?;
            bound.push(udp[0].local_addr()?);
            sockets.extend(udp);
            listeners.push(tcp);
        }
        // Everything is bound before anything starts, so a failure leaves nothing running.
        let udp_threads = udp::spawn(sockets, &handler, &udp_stop)?;
        let tcp_tasks = listeners
            .into_iter()
            .map(|l| {
                tokio::spawn(tcp::serve(
                    l,
                    handler.clone(),
                    metrics.clone(),
                    settings.tcp,
                    stop_rx.clone(),
                    settings.linger,
                ))
            })
            .collect();
        Ok(DnsServer {
            udp_threads,
            udp_stop,
            tcp_stop,
            tcp_tasks,
            addrs: bound,
        })
    }

    /// Stops accepting, lets open TCP connections finish (up to the linger time) and
    /// waits for the UDP workers to finish their batch.
    pub async fn shutdown(self) {
        let _ = self.tcp_stop.send(true);
        for t in self.tcp_tasks {
            let _ = t.await;
        }
        self.udp_stop.store(true, Ordering::Relaxed);
        let threads = self.udp_threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                if t.join().is_err() {
                    warn!("a UDP worker panicked");
                }
            }
        })
        .await;
    }
}

/// UDP sockets and a TCP listener on the same address; with port 0, the same ephemeral
/// port for all.
fn bind_pair(
    addr: SocketAddr,
    workers: usize,
) -> std::io::Result<(Vec<std::net::UdpSocket>, TcpListener)> {
    if addr.port() != 0 {
        return Ok((udp::bind(addr, workers)?, bind_tcp(addr)?));
    }
    let mut last = None;
    for _ in 0..16 {
        let udp = udp::bind(addr, workers)?;
        match bind_tcp(udp[0].local_addr()?) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port")))
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    if addr.is_ipv6() {
        // So that `0.0.0.0:53` and `[::]:53` can both be listed (Linux would otherwise let
        // `[::]` take IPv4 too and the second bind fail).
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    // Restart without waiting for TIME_WAIT connections of the previous process to expire.
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}
