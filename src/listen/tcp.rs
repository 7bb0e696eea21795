//! DNS over TCP (RFC 7766): 2-byte length-prefixed messages, pipelined, answered in order.
//! Abuse limits: at most `max_connections` at once (past that a new connection is closed at
//! once, so the accept queue never fills with idle sockets), an idle connection is closed
//! after `idle_timeout`, and a message that has started to arrive must finish, and a reply
//! must be taken by the client, within `io_timeout` (a slow reader or writer cannot hold a
//! connection slot for long).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::timeout;
use tracing::debug;

use crate::dns::{Handler, Worker};
use crate::dnssec::SigCache;

thread_local! {
    /// The signatures TCP connections made on this runtime thread (each connection's
    /// worker borrows them while it answers; the query path never awaits meanwhile).
    static THREAD_SIGNATURES: std::cell::RefCell<SigCache> = std::cell::RefCell::default();
}
use crate::metrics::{Metrics, TcpEvent, Transport};

/// The TCP limits of a listener.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub io_timeout: Duration,
}

/// Accepts until `stop` turns true, then waits up to `linger` for open connections to
/// finish what they are doing.
pub async fn serve(
    listener: TcpListener,
    handler: Handler,
    metrics: Arc<Metrics>,
    limits: TcpLimits,
    mut stop: watch::Receiver<bool>,
    linger: Duration,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, say: back off a little rather than spin.
                debug!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics.tcp(TcpEvent::Refused);
            debug!(%peer, "TCP connection refused: at the connection limit");
            drop(stream);
            continue;
        };
        metrics.tcp(TcpEvent::Accepted);
        let handler = handler.clone();
        let metrics = metrics.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            connection(stream, peer, &handler, &metrics, limits, stop).await;
            drop(permit);
        });
    }
    drop(listener);
    // Every permit back means every connection has ended.
    let _ = timeout(
        linger,
        slots.acquire_many(limits.max_connections.try_into().unwrap_or(u32::MAX)),
    )
    .await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    handler: &Handler,
    metrics: &Metrics,
    limits: TcpLimits,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let mut worker = match stream.local_addr() {
        Ok(local) => Worker::serving(local),
        Err(_) => Worker::default(),
    };
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut query = Vec::new();
    let mut reply = Vec::with_capacity(512);
    let mut framed = Vec::with_capacity(514);
    loop {
        // Idle: waiting for the first byte of the next message.
        let first = tokio::select! {
            r = timeout(limits.idle_timeout, read.read_u8()) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let first = match first {
            Ok(Ok(b)) => b,
            // Closed by the client, or a read error.
            Ok(Err(_)) => return,
            Err(_) => {
                metrics.tcp(TcpEvent::IdleTimeout);
                debug!(%peer, "TCP connection idle: closed");
                return;
            }
        };
        // A message has started: the rest of it must come in time.
        let body = timeout(limits.io_timeout, async {
            let second = read.read_u8().await?;
            let len = usize::from(u16::from_be_bytes([first, second]));
            query.resize(len, 0);
            read.read_exact(&mut query).await?;
            Ok::<usize, std::io::Error>(len)
        })
        .await;
        let len = match body {
            Ok(Ok(len)) => len,
            Ok(Err(_)) => return,
            Err(_) => {
                metrics.tcp(TcpEvent::IoTimeout);
                debug!(%peer, "TCP client too slow sending a message: closed");
                return;
            }
        };
        if len == 0 {
            return;
        }
        let arrival = handler.arrival(&mut worker);
        // The signatures of this thread's connections, lent for the query: a connection
        // is often one query (a retry after TC), and each would otherwise sign afresh.
        THREAD_SIGNATURES.with_borrow_mut(|s| worker.swap_signatures(s));
        let sent = handler.respond(&mut worker, &query, peer, Transport::Tcp, &mut reply);
        handler.flush(&mut worker, arrival);
        THREAD_SIGNATURES.with_borrow_mut(|s| worker.swap_signatures(s));
        // A connection may wait long for its next query: its dnstap frames go now.
        handler.idle(&mut worker);
        if !sent {
            continue;
        }
        framed.clear();
        framed.extend_from_slice(&(reply.len() as u16).to_be_bytes());
        framed.extend_from_slice(&reply);
        match timeout(limits.io_timeout, write.write_all(&framed)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                metrics.tcp(TcpEvent::IoTimeout);
                debug!(%peer, "TCP client too slow taking a reply: closed");
                return;
            }
        }
    }
}
