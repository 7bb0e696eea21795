//! dnstap: every query and reply, with fedns's routing decision, as dnstap messages
//! (protobuf, `dnstap.proto`) over Frame Streams, the logging format of Knot, BIND, NSD,
//! Unbound and CoreDNS, to a collector (fstrm_capture, dnstap-read, Vector, go-dnstap).
//!
//! The query path only offers a `Tap` an event: one allocation and a copy of the query
//! and reply bytes, then a non-blocking send into a bounded queue. When the queue is full
//! (the collector is slow, stalled or gone) the event is dropped and counted; the query
//! path never waits. One writer thread drains the queue: it encodes the messages
//! (`proto.rs`), connects (Unix socket or TCP), does the bidirectional Frame Streams
//! handshake (`frames.rs`), writes, and reconnects with backoff when the collector goes
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
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::{Duration, Instant, SystemTime};

use prometheus::IntCounter;
use tracing::{info, warn};

pub use proto::{Kind, Scratch, encode, write_frame};

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

impl Event {
    /// The query's bytes.
    pub fn query(&self) -> &[u8] {
        &self.bytes[..self.query_len.min(self.bytes.len())]
    }

    /// The reply's bytes (empty when nothing was sent).
    pub fn reply(&self) -> &[u8] {
        &self.bytes[self.query_len.min(self.bytes.len())..]
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
pub struct Event {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub transport: Transport,
    pub query_time: SystemTime,
    pub response_time: SystemTime,
    /// The query's bytes, then the reply's (`query_len` splits them; no reply: none).
    pub bytes: Vec<u8>,
    pub query_len: usize,
    pub replied: bool,
    /// fedns's decision, written as compact text in dnstap's `extra`.
    pub decision: Decision,
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

    /// The compact text, as `write` gives it.
    pub fn text(&self) -> String {
        let mut out = Vec::new();
        self.write(&mut out);
        String::from_utf8_lossy(&out).into_owned()
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
    /// Events the queue holds before new ones are dropped.
    pub queue: usize,
}

/// The query path's end of a tap: offering an event never blocks.
#[derive(Debug)]
pub struct Tap {
    tx: SyncSender<Event>,
    dropped: IntCounter,
    sent_any: bool,
}

impl Tap {
    /// Starts the writer thread. It ends once every `Tap` clone is dropped, after sending
    /// what is queued and a STOP.
    pub fn start(settings: Settings, counters: Counters) -> std::io::Result<Tap> {
        let (tx, rx) = sync_channel(settings.queue.max(1));
        let dropped = counters.dropped.clone();
        let sent_any = settings.queries || settings.responses;
        std::thread::Builder::new()
            .name("fedns-dnstap".into())
            .spawn(move || writer(settings, counters, rx))?;
        Ok(Tap {
            tx,
            dropped,
            sent_any,
        })
    }

    /// Whether events are wanted at all (the config asks for some message type).
    pub fn wanted(&self) -> bool {
        self.sent_any
    }

    /// Queues an event, or drops and counts it when the queue is full.
    pub fn offer(&self, e: Event) {
        match self.tx.try_send(e) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.inc();
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

/// Events written between two flushes at most.
const BATCH: usize = 256;
/// How long the writer sleeps when the queue is empty: from the first poll after events
/// to the longest, when none have come for a while.
const POLL: (Duration, Duration) = (Duration::from_millis(2), Duration::from_millis(50));

/// The writer thread: connect, drain the queue into frames, reconnect on failure, and
/// stop cleanly when the query path's ends are gone.
fn writer(settings: Settings, counters: Counters, rx: Receiver<Event>) {
    let mut conn: Option<Conn> = None;
    let mut backoff = BACKOFF.0;
    let mut next_try = Instant::now();
    let mut scratch = Scratch::new(&settings.identity, &settings.version);
    let mut batch: Vec<Event> = Vec::with_capacity(BATCH);
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
        // then never has a sleeping receiver to wake (a futex call per query); frames
        // wait at most POLL.1 for the collector.
        batch.clear();
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
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
        let frames: u64 = batch.iter().map(|e| frames_of(&settings, e)).sum();
        let Some(c) = conn.as_mut() else {
            // No collector: what is queued now is dropped, not kept without bound.
            counters.dropped.inc_by(frames);
            continue;
        };
        let written = batch.iter().try_for_each(|e| {
            scratch.event(e);
            kinds(&settings, e)
                .try_for_each(|kind| proto::write_frame(kind, e, &mut scratch, c.writer()))
        });
        match written.and_then(|()| c.writer().flush()) {
            Ok(()) => counters.sent.inc_by(frames),
            Err(e) => {
                warn!(collector = %settings.endpoint, error = %e, "dnstap: the collector went away; reconnecting");
                counters.lost.inc_by(frames);
                conn = None;
                next_try = Instant::now() + backoff;
            }
        }
    }
    if let Some(mut c) = conn {
        let _ = frames::stop(c.writer()).and_then(|()| c.writer().flush());
        let _ = frames::expect_finish(c.reader());
    }
}

/// The message types an event becomes.
fn kinds(settings: &Settings, e: &Event) -> impl Iterator<Item = Kind> {
    let q = settings.queries.then_some(Kind::AuthQuery);
    let r = (settings.responses && e.replied).then_some(Kind::AuthResponse);
    q.into_iter().chain(r)
}

fn frames_of(settings: &Settings, e: &Event) -> u64 {
    kinds(settings, e).count() as u64
}
