//! dnstap: every query and reply, with fedns's routing decision, as dnstap messages
//! (protobuf, `dnstap.proto`) over Frame Streams, the logging format of Knot, BIND, NSD,
//! Unbound and CoreDNS, to a collector (fstrm_capture, dnstap-read, Vector, go-dnstap).
//!
//! Each query worker encodes its queries' frames (`proto.rs`) into a buffer of its own
//! and, once per batch of queries, hands the buffer to a bounded queue without waiting,
//! taking a recycled one back: nothing is allocated per query once warm. When the queue is
//! full (the collector is slow, stalled or gone) the buffer's frames are dropped and
//! counted; the query path never waits. One writer thread drains the queue: it connects
//! (Unix socket or TCP), does the bidirectional Frame Streams handshake (`frames.rs`),
//! writes the buffers, returns them, and reconnects with backoff when the collector goes
//! away.
//!
//! Knows nothing of the answer function or the snapshot: an event carries bytes,
//! addresses, times and the decision's text.

mod frames;
mod proto;

use std::io::{BufWriter, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use prometheus::IntCounter;
use tracing::{info, warn};

use proto::Scratch;

/// The Frame Streams content type of dnstap.
pub const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

/// Where the collector listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// The transport a query came over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// One query and its reply, as the query path saw them.
#[derive(Debug)]
pub struct Event<'a> {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub transport: Transport,
    pub query_time: SystemTime,
    pub response_time: SystemTime,
    pub query: &'a [u8],
    /// None: nothing was sent.
    pub reply: Option<&'a [u8]>,
    /// fedns's decision, written as compact text in dnstap's `extra`.
    pub decision: &'a Decision,
}

/// What fedns decided for a query, for dnstap's `extra` field:
/// `cluster=eu-west policy=nearest scope=24 located=city fail_open=0` (only what applies:
/// a static answer has none of it and no `extra`).
#[derive(Clone, Debug, Default)]
pub struct Decision {
    pub cluster: Option<std::sync::Arc<str>>,
    pub policy: Option<&'static str>,
    /// The ECS scope sent (with `ecs`: the query had an ECS option).
    pub scope: u8,
    pub ecs: bool,
    /// What placed the client: override, city, country, continent or unknown.
    pub located: Option<&'static str>,
    pub fail_open: bool,
}

impl Decision {
    /// Appends the compact text to `out` (nothing when nothing was decided). Written by
    /// hand: the formatting machinery cost more than the rest of a frame.
    pub fn write(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let mut field = |key: &str, value: &[u8]| {
            if out.len() > start {
                out.push(b' ');
            }
            out.extend_from_slice(key.as_bytes());
            out.push(b'=');
            out.extend_from_slice(value);
        };
        if let Some(c) = &self.cluster {
            field("cluster", c.as_bytes());
        }
        if let Some(p) = self.policy {
            field("policy", p.as_bytes());
        }
        if let Some(l) = self.located {
            field("located", l.as_bytes());
        }
        if self.ecs {
            let mut digits = [0u8; 3];
            let (mut n, mut i) = (self.scope, digits.len());
            loop {
                i -= 1;
                digits[i] = b'0' + n % 10;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            field("scope", &digits[i..]);
        }
        if self.cluster.is_some() || self.located.is_some() {
            field("fail_open", if self.fail_open { b"1" } else { b"0" });
        }
    }
}

/// What the writer counts: frames written, dropped because the queue was full, and lost
/// with a connection that broke.
#[derive(Clone, Debug)]
pub struct Counters {
    pub sent: IntCounter,
    pub dropped: IntCounter,
    pub lost: IntCounter,
}

/// The settings of a tap.
#[derive(Clone, Debug)]
pub struct Settings {
    pub endpoint: Endpoint,
    /// dnstap's `identity` (the host name by default) and `version` fields.
    pub identity: Vec<u8>,
    pub version: Vec<u8>,
    pub queries: bool,
    pub responses: bool,
    /// Events the queue holds, about, before new ones are dropped (kept as a budget of
    /// bytes: `BYTES_PER_EVENT` each).
    pub queue: usize,
}

/// What one event takes in the queue's byte budget: about a query frame and a response
/// frame of an ordinary answer.
const BYTES_PER_EVENT: usize = 512;

/// A worker's frames not yet handed to the writer.
#[derive(Debug, Default)]
pub struct Buffer {
    bytes: Vec<u8>,
    frames: u64,
    scratch: Scratch,
}

/// Framed bytes on their way to the writer.
struct Batch {
    bytes: Vec<u8>,
    frames: u64,
}

/// A worker hands its buffer over past this size even before its batch ends.
const HAND_OVER_AT: usize = 64 << 10;
/// Buffers the writer keeps for the workers to take back.
const POOL: usize = 16;

/// The query path's end of a tap: recording an event never blocks.
pub struct Tap {
    tx: SyncSender<Batch>,
    /// Bytes handed over and not yet written (or dropped) by the writer, and the most
    /// there may be: the queue's bound in memory, whatever the batches' sizes.
    queued: Arc<AtomicUsize>,
    budget: usize,
    /// Emptied buffers coming back from the writer.
    pool: Mutex<Receiver<Vec<u8>>>,
    head: Vec<u8>,
    queries: bool,
    responses: bool,
    dropped: IntCounter,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tap")
    }
}

impl Tap {
    /// Starts the writer thread. It ends once every `Tap` clone is dropped, after sending
    /// what is queued and a STOP.
    pub fn start(settings: Settings, counters: Counters) -> std::io::Result<Tap> {
        // The queue holds batches, each at least one event; its memory is bounded by the
        // byte budget.
        let (tx, rx) = sync_channel(settings.queue.max(1));
        let (pool_tx, pool) = sync_channel(POOL);
        let dropped = counters.dropped.clone();
        let queued = Arc::new(AtomicUsize::new(0));
        let tap = Tap {
            tx,
            queued: queued.clone(),
            budget: settings.queue.max(1).saturating_mul(BYTES_PER_EVENT),
            pool: Mutex::new(pool),
            head: proto::head(&settings.identity, &settings.version),
            queries: settings.queries,
            responses: settings.responses,
            dropped,
        };
        std::thread::Builder::new()
            .name("fedns-dnstap".into())
            .spawn(move || writer(settings, counters, rx, pool_tx, queued))?;
        Ok(tap)
    }

    /// Whether events are wanted at all (the config asks for some message type).
    pub fn wanted(&self) -> bool {
        self.queries || self.responses
    }

    /// Encodes an event's frames into the worker's buffer.
    pub fn record(&self, buf: &mut Buffer, e: &Event<'_>) {
        buf.frames +=
            buf.scratch
                .frames(&self.head, self.queries, self.responses, e, &mut buf.bytes);
        if buf.bytes.len() >= HAND_OVER_AT {
            self.hand_over(buf);
        }
    }

    /// Hands the worker's frames to the writer (at the end of each batch of queries), or
    /// drops and counts them when the queue is full.
    pub fn hand_over(&self, buf: &mut Buffer) {
        if buf.frames == 0 {
            return;
        }
        let frames = std::mem::take(&mut buf.frames);
        let len = buf.bytes.len();
        if self.queued.fetch_add(len, Ordering::Relaxed) + len > self.budget {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            self.dropped.inc_by(frames);
            buf.bytes.clear();
            return;
        }
        let bytes = std::mem::take(&mut buf.bytes);
        match self.tx.try_send(Batch { bytes, frames }) {
            Ok(()) => {
                buf.bytes = self
                    .pool
                    .try_lock()
                    .ok()
                    .and_then(|p| p.try_recv().ok())
                    .unwrap_or_else(|| Vec::with_capacity(16 << 10));
            }
            Err(TrySendError::Full(b) | TrySendError::Disconnected(b)) => {
                self.queued.fetch_sub(len, Ordering::Relaxed);
                self.dropped.inc_by(frames);
                let mut kept = b.bytes;
                kept.clear();
                buf.bytes = kept;
            }
        }
    }
}

/// A connection to the collector, handshake done.
enum Conn {
    Unix(BufWriter<UnixStream>),
    Tcp(BufWriter<TcpStream>),
}

impl Conn {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Conn::Unix(w) => w,
            Conn::Tcp(w) => w,
        }
    }

    fn reader(&mut self) -> &mut dyn Read {
        match self {
            Conn::Unix(w) => w.get_mut(),
            Conn::Tcp(w) => w.get_mut(),
        }
    }

    fn set_timeouts(&self, read: Duration, write: Duration) -> std::io::Result<()> {
        match self {
            Conn::Unix(w) => {
                w.get_ref().set_read_timeout(Some(read))?;
                w.get_ref().set_write_timeout(Some(write))
            }
            Conn::Tcp(w) => {
                w.get_ref().set_read_timeout(Some(read))?;
                w.get_ref().set_write_timeout(Some(write))
            }
        }
    }
}

/// How long the writer waits for the collector's ACCEPT or FINISH.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// A collector that takes nothing for this long is dropped and reconnected (a frame cut
/// in the middle cannot be finished later). Until then the queue fills and events are
/// dropped, counted.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Reconnection backoff: from the first to the longest wait.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

fn connect(endpoint: &Endpoint) -> std::io::Result<Conn> {
    let mut conn = match endpoint {
        Endpoint::Unix(p) => Conn::Unix(BufWriter::new(UnixStream::connect(p)?)),
        Endpoint::Tcp(a) => {
            let s = TcpStream::connect_timeout(a, HANDSHAKE_TIMEOUT)?;
            s.set_nodelay(true)?;
            Conn::Tcp(BufWriter::new(s))
        }
    };
    conn.set_timeouts(HANDSHAKE_TIMEOUT, STALL_TIMEOUT)?;
    frames::handshake(conn.writer(), CONTENT_TYPE)?;
    frames::expect_accept(conn.reader(), CONTENT_TYPE)?;
    frames::start(conn.writer(), CONTENT_TYPE)?;
    conn.writer().flush()?;
    Ok(conn)
}

/// Batches written between two flushes at most.
const BATCH: usize = 64;
/// How long the writer sleeps when the queue is empty: from the first poll after events
/// to the longest, when none have come for a while.
const POLL: (Duration, Duration) = (Duration::from_millis(2), Duration::from_millis(50));

/// The writer thread: connect, write the workers' batches, reconnect on failure, and stop
/// cleanly when the query path's ends are gone.
fn writer(
    settings: Settings,
    counters: Counters,
    rx: Receiver<Batch>,
    pool: SyncSender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
) {
    let mut conn: Option<Conn> = None;
    let mut backoff = BACKOFF.0;
    let mut next_try = Instant::now();
    let mut batch: Vec<Batch> = Vec::with_capacity(BATCH);
    let mut open = true;
    let mut idle = POLL.0;
    while open {
        if conn.is_none() && Instant::now() >= next_try {
            match connect(&settings.endpoint) {
                Ok(c) => {
                    info!(collector = %settings.endpoint, "dnstap connected");
                    conn = Some(c);
                    backoff = BACKOFF.0;
                }
                Err(e) => {
                    if backoff == BACKOFF.0 {
                        warn!(collector = %settings.endpoint, error = %e, "dnstap: cannot reach the collector; retrying with backoff");
                    }
                    next_try = Instant::now() + backoff;
                    backoff = (backoff * 2).min(BACKOFF.1);
                }
            }
        }
        // What is queued, up to a batch. The writer polls rather than blocks: a sender
        // then never has a sleeping receiver to wake (a futex call per batch); frames
        // wait at most POLL.1 for the collector.
        batch.clear();
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(b) => batch.push(b),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if batch.is_empty() {
            if open {
                std::thread::sleep(idle);
                idle = (idle * 2).min(POLL.1);
            }
            continue;
        }
        idle = POLL.0;
        let frames: u64 = batch.iter().map(|b| b.frames).sum();
        match conn.as_mut() {
            // No collector: what is queued now is dropped, not kept without bound.
            None => counters.dropped.inc_by(frames),
            Some(c) => {
                let written = batch
                    .iter()
                    .try_for_each(|b| c.writer().write_all(&b.bytes))
                    .and_then(|()| c.writer().flush());
                match written {
                    Ok(()) => counters.sent.inc_by(frames),
                    Err(e) => {
                        warn!(collector = %settings.endpoint, error = %e, "dnstap: the collector went away; reconnecting");
                        counters.lost.inc_by(frames);
                        conn = None;
                        next_try = Instant::now() + backoff;
                    }
                }
            }
        }
        for b in batch.drain(..) {
            queued.fetch_sub(b.bytes.len(), Ordering::Relaxed);
            let mut bytes = b.bytes;
            bytes.clear();
            let _ = pool.try_send(bytes);
        }
    }
    if let Some(mut c) = conn {
        let _ = frames::stop(c.writer()).and_then(|()| c.writer().flush());
        let _ = frames::expect_finish(c.reader());
    }
}
