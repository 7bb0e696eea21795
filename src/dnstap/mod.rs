//! dnstap: every query and reply, with fedns's routing decision, as dnstap messages
//! (protobuf, `dnstap.proto`) over Frame Streams, the logging format of Knot, BIND, NSD,
//! Unbound and CoreDNS, to a collector (fstrm_capture, dnstap-read, Vector, go-dnstap).
//!
//! Each query worker encodes its queries' frames (`proto.rs`) in place into a buffer of
//! its own; as a batch of queries ends it writes the replies' time into them
//! (`Tap::stamp`), and hands the buffer to a bounded queue without waiting, taking a
//! recycled one back: once its oldest frames have waited 50 ms, once it holds a quarter
//! of the queue's byte budget (64 KiB at most), and whenever the worker goes idle (a UDP
//! worker wakes every 100 ms without queries; a TCP connection hands over after each
//! reply).
//! Handing over less often than per batch of queries keeps a lightly loaded server's cost
//! per query low. When the queue is full (the collector is slow, stalled or gone) the
//! buffer's frames are dropped and counted; the query path never waits. One writer
//! thread drains the queue: it connects (Unix socket or TCP), does the bidirectional
//! Frame Streams handshake (`frames.rs`), writes the buffers, returns them, and
//! reconnects with backoff when the collector goes away.
//!
//! Knows nothing of the answer function or the snapshot: an event carries bytes,
//! addresses, a time and the decision's numbers, which the caller names.

mod frames;
mod proto;

use std::io::{BufWriter, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use prometheus::IntCounter;
use tracing::{info, warn};

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

/// A wall-clock time as dnstap carries it: seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stamp {
    pub sec: u64,
    pub nsec: u32,
}

impl Stamp {
    /// Now, from `CLOCK_REALTIME`: read directly, it costs a third of `SystemTime::now`
    /// and its conversion to the epoch, which the query path pays twice per batch.
    pub fn now() -> Stamp {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec for the call to write; CLOCK_REALTIME always
        // exists, and on a failure `ts` stays the epoch.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
        Stamp {
            sec: u64::try_from(ts.tv_sec).unwrap_or(0),
            nsec: u32::try_from(ts.tv_nsec).unwrap_or(0),
        }
    }

    /// Nanoseconds since the epoch (they fit in 64 bits until 2554; past it they wrap).
    pub fn nanos(self) -> u64 {
        self.sec
            .wrapping_mul(1_000_000_000)
            .wrapping_add(u64::from(self.nsec))
    }
}

/// One query and its reply, as the query path saw them. The reply's time comes after,
/// for every reply of the batch at once (`Tap::stamp`).
#[derive(Debug)]
pub struct Event<'a> {
    pub client: SocketAddr,
    pub transport: Transport,
    pub query_time: Stamp,
    pub query: &'a [u8],
    /// None: nothing was sent.
    pub reply: Option<&'a [u8]>,
}

/// What fedns decided for a query, for dnstap's `extra` field:
/// `cluster=eu-west policy=nearest scope=24 located=city fail_open=0` (only what applies:
/// a static answer has none of it and no `extra`). Small numbers the caller names
/// (`Words`) when the text is written, packed in a word (`Decision`) so that the query
/// path sets, copies and compares it as one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decided {
    /// The chosen cluster, by its index in the snapshot the query was answered from.
    pub cluster: Option<u16>,
    pub policy: Option<u8>,
    /// The ECS scope sent (with `ecs`: the query had an ECS option).
    pub scope: u8,
    pub ecs: bool,
    /// What placed the client (override, city, country, continent or unknown).
    pub located: Option<u8>,
    pub fail_open: bool,
}

/// A `Decided`, packed: the cluster plus one in bits 0 to 16 (0: none), the policy plus
/// one in 17 to 25, the placement plus one in 26 to 34, the scope in 35 to 42, ECS in 43
/// and fail-open in 44. Zero: nothing decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decision(u64);

impl From<Decided> for Decision {
    #[inline(always)]
    fn from(d: Decided) -> Decision {
        let plus_one = |v: Option<u64>| v.map_or(0, |v| v + 1);
        Decision(
            plus_one(d.cluster.map(u64::from))
                | plus_one(d.policy.map(u64::from)) << 17
                | plus_one(d.located.map(u64::from)) << 26
                | u64::from(d.scope) << 35
                | u64::from(d.ecs) << 43
                | u64::from(d.fail_open) << 44,
        )
    }
}

/// The names of a decision's numbers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Words<'a> {
    pub cluster: Option<&'a str>,
    pub policy: Option<&'a str>,
    pub located: Option<&'a str>,
}

/// The longest `extra` text: a cluster label is a DNS label (63 bytes at most), the other
/// values are short words; a longer text is cut, never overflowed.
const EXTRA_MAX: usize = proto::EXTRA_BLOCK;

impl Decision {
    /// Nothing was decided.
    pub const NONE: Decision = Decision(0);

    /// This decision (whose scope is 0 and ECS off: an answer's, kept with it) as one
    /// reply gave it: with its ECS scope, and whether an ECS option came.
    #[inline(always)]
    pub fn with_reply(self, scope: u8, ecs: bool) -> Decision {
        Decision(self.0 | u64::from(scope) << 35 | u64::from(ecs) << 43)
    }

    /// Its parts.
    pub fn parts(self) -> Decided {
        let minus_one = |bits: u64, width: u32| {
            let v = bits & ((1 << width) - 1);
            v.checked_sub(1)
        };
        let b = self.0;
        Decided {
            cluster: minus_one(b, 17).map(|v| v as u16),
            policy: minus_one(b >> 17, 9).map(|v| v as u8),
            located: minus_one(b >> 26, 9).map(|v| v as u8),
            scope: (b >> 35) as u8,
            ecs: b >> 43 & 1 == 1,
            fail_open: b >> 44 & 1 == 1,
        }
    }

    /// Writes the compact text at the start of `out`, its numbers named by `words`, and
    /// returns its length (0 when nothing was decided). Written by hand: the formatting
    /// machinery cost more than a frame.
    pub fn write(self, words: &Words<'_>, out: &mut [u8; EXTRA_MAX]) -> usize {
        let d = self.parts();
        let mut at = 0;
        // A field: its key (after a space, but for the first) and its value.
        let mut field = |key: &[u8], value: &[u8]| {
            let key = if at == 0 { &key[1..] } else { key };
            for s in [key, value] {
                let n = s.len().min(EXTRA_MAX - at);
                out[at..at + n].copy_from_slice(&s[..n]);
                at += n;
            }
        };
        if let Some(c) = words.cluster.filter(|_| d.cluster.is_some()) {
            field(b" cluster=", c.as_bytes());
        }
        if let Some(p) = words.policy.filter(|_| d.policy.is_some()) {
            field(b" policy=", p.as_bytes());
        }
        if let Some(l) = words.located.filter(|_| d.located.is_some()) {
            field(b" located=", l.as_bytes());
        }
        if d.ecs {
            let mut digits = [0u8; 3];
            let (mut n, mut i) = (d.scope, digits.len());
            loop {
                i -= 1;
                digits[i] = b'0' + n % 10;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            field(b" scope=", &digits[i..]);
        }
        if d.cluster.is_some() || d.located.is_some() {
            field(b" fail_open=", if d.fail_open { b"1" } else { b"0" });
        }
        at
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
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// A worker's frames not yet handed to the writer. Its bytes are all initialized and
/// kept at their length between uses (frames are written over them in place); `used` of
/// them are frames.
#[derive(Debug)]
pub struct Buffer {
    bytes: Vec<u8>,
    used: usize,
    frames: u64,
    /// When its frames are due, in nanoseconds since the epoch: from the end of the first
    /// batch of queries whose frames are not yet handed over (or earlier: the clock was
    /// set back), to `HAND_OVER_AFTER` after it (a deadline, so that each batch compares
    /// rather than subtracts).
    due: Option<(u64, u64)>,
    /// The response times its latest frames wait for (`Tap::stamp`).
    times: proto::Times,
    /// The `extra` texts of recent decisions (kept, so not cleared per query).
    texts: Box<[Text; TEXTS]>,
    /// The slot of the last decision's text: a resolver's queries mostly repeat one, and
    /// a mix of names a few.
    last: usize,
    /// What its frames keep from one event to the next.
    scratch: proto::Scratch,
}

/// A decision's `extra` text (an empty decision's is empty).
#[derive(Clone, Copy, Debug)]
struct Text {
    of: Decision,
    len: usize,
    bytes: [u8; EXTRA_MAX],
}

/// Texts a worker keeps, by a hash of their decision (in pairs of slots).
const TEXTS: usize = 16;

impl Text {
    const EMPTY: Text = Text {
        of: Decision::NONE,
        len: 0,
        bytes: [0; EXTRA_MAX],
    };

    /// Where a decision's text is kept.
    #[inline(always)]
    fn slot(d: Decision) -> usize {
        (d.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % TEXTS
    }
}

impl Default for Buffer {
    fn default() -> Self {
        Buffer::serving(SocketAddr::from(([0, 0, 0, 0], 0)))
    }
}

impl Buffer {
    /// The buffer of a worker whose socket is bound to `server` (dnstap's response
    /// address and port).
    pub fn serving(server: SocketAddr) -> Buffer {
        Buffer {
            bytes: Vec::new(),
            used: 0,
            frames: 0,
            due: None,
            times: proto::Times::default(),
            texts: Box::new([Text::EMPTY; TEXTS]),
            last: 0,
            scratch: proto::Scratch::serving(server),
        }
    }

    /// Cluster indices now name other clusters (a new snapshot): the texts kept are
    /// written again.
    pub fn renamed(&mut self) {
        *self.texts = [Text::EMPTY; TEXTS];
    }
}

/// Framed bytes on their way to the writer: `bytes[..used]`.
struct Batch {
    bytes: Vec<u8>,
    used: usize,
    frames: u64,
}

/// A worker hands its buffer over at this size at most (less when the queue's budget is
/// small), or once its oldest frame has waited `HAND_OVER_AFTER`. Handing over less often
/// than per batch of queries is what keeps a lightly loaded server's cost per query low:
/// each hand-over costs the worker and the writer more than encoding a frame.
const HAND_OVER_AT: usize = 64 << 10;
const HAND_OVER_AFTER: Duration = Duration::from_millis(50);
/// Buffers the writer keeps for the workers to take back.
const POOL: usize = 16;

/// The tap of the current config (None: dnstap off), which a reload may replace, and how
/// many times it was set: a query worker compares that count as each batch begins and
/// as it idles, and takes the tap only when the count moved, so a batch's frames all go
/// to one tap.
#[derive(Debug, Default)]
pub struct Current {
    tap: ArcSwapOption<Tap>,
    generation: AtomicU64,
}

impl Current {
    pub fn new(tap: Option<Arc<Tap>>) -> Current {
        Current {
            tap: ArcSwapOption::new(tap),
            generation: AtomicU64::new(0),
        }
    }

    /// Makes `tap` the current one. The one before ends once no worker holds it.
    pub fn set(&self, tap: Option<Arc<Tap>>) {
        self.tap.store(tap);
        // After the store: a worker that sees the count sees this tap or a later one.
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// How many times a tap was set.
    #[inline(always)]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current tap and the count it goes with.
    pub fn load(&self) -> (Option<Arc<Tap>>, u64) {
        let generation = self.generation();
        (self.tap.load_full(), generation)
    }

    /// No tap from now on; waits up to `wait` for the last one's writer to send what it
    /// holds and a STOP, once the workers have let the tap go (the caller stopped them).
    /// False: it had not ended by then.
    pub fn stop(&self, wait: Duration) -> bool {
        let Some(tap) = self.tap.swap(None) else {
            return true;
        };
        self.generation.fetch_add(1, Ordering::Release);
        let writer = tap.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(tap);
        let Some(writer) = writer else {
            return true;
        };
        let deadline = Instant::now() + wait;
        while !writer.is_finished() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = writer.join();
        true
    }
}

/// The query path's end of a tap: recording an event never blocks.
pub struct Tap {
    tx: SyncSender<Batch>,
    /// Bytes handed over and not yet written (or dropped) by the writer, and the most
    /// there may be: the queue's bound in memory, whatever the batches' sizes.
    queued: Arc<AtomicUsize>,
    budget: usize,
    /// A worker's buffer is handed over past this many bytes.
    hand_over_at: usize,
    /// Emptied buffers coming back from the writer.
    pool: Mutex<Receiver<Vec<u8>>>,
    head: proto::Head,
    queries: bool,
    responses: bool,
    dropped: IntCounter,
    /// The writer thread, for `Current::stop` to wait on.
    writer: Mutex<Option<JoinHandle<()>>>,
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
        let budget = settings.queue.max(1).saturating_mul(BYTES_PER_EVENT);
        let mut tap = Tap {
            tx,
            queued: queued.clone(),
            budget,
            // A few hand-overs fit the budget, so one late buffer does not fill it.
            hand_over_at: (budget / 4).clamp(BYTES_PER_EVENT, HAND_OVER_AT),
            pool: Mutex::new(pool),
            head: proto::Head::new(&settings.identity, &settings.version),
            queries: settings.queries,
            responses: settings.responses,
            dropped,
            writer: Mutex::default(),
        };
        let writer = std::thread::Builder::new()
            .name("fedns-dnstap".into())
            .spawn(move || writer(settings, counters, rx, pool_tx, queued))?;
        tap.writer = Mutex::new(Some(writer));
        Ok(tap)
    }

    /// Encodes an event's frames, with the decision `d` in `extra` (`Decision::NONE`:
    /// nothing decided, a static answer or an error), into the worker's buffer; `words`
    /// names its numbers (asked only when its text is written). The buffer's caller tells it when cluster
    /// indices change (`Buffer::renamed`).
    #[inline(always)]
    pub fn record<'a>(
        &self,
        buf: &mut Buffer,
        e: &Event<'_>,
        d: Decision,
        words: impl FnOnce(Decided) -> Words<'a>,
    ) {
        let text = match d {
            Decision::NONE => None,
            d if buf.texts[buf.last % TEXTS].of == d => Some(&buf.texts[buf.last % TEXTS]),
            d => {
                // Two slots per decision's hash: the one it was kept in, or else the one
                // not used last (so two decisions of one hash do not evict each other).
                let set = Text::slot(d) & !1;
                buf.last = if buf.texts[set].of == d {
                    set
                } else if buf.texts[set + 1].of == d || buf.last == set {
                    set + 1
                } else {
                    set
                };
                let t = &mut buf.texts[buf.last % TEXTS];
                if t.of != d {
                    t.len = d.write(&words(d.parts()), &mut t.bytes);
                    t.of = d;
                }
                Some(&*t)
            }
        };
        let extra = text.map_or((&Text::EMPTY.bytes, 0), |t| (&t.bytes, t.len));
        let n = proto::frames(
            &self.head,
            self.queries,
            self.responses,
            e,
            extra,
            &mut buf.scratch,
            &mut buf.bytes,
            &mut buf.used,
            &mut buf.times,
        );
        buf.frames += n;
    }

    /// Ends a batch of queries: writes `now` as the time of the replies recorded since
    /// the last batch (they go to the kernel together, right after), and hands the
    /// worker's frames over when they are due: at a quarter of the queue's budget, or
    /// once they have waited `HAND_OVER_AFTER` since the first batch that made them ended
    /// (or the clock was set back past it). A worker calls this after each batch, and
    /// `hand_over` when it goes idle.
    #[inline(always)]
    pub fn stamp(&self, buf: &mut Buffer, now: Stamp) {
        proto::stamp(&mut buf.bytes, &mut buf.times, &mut buf.scratch, now);
        if buf.frames == 0 {
            return;
        }
        let at = now.nanos();
        match buf.due {
            Some((from, to)) if from <= at && at < to && buf.used < self.hand_over_at => {}
            None if buf.used < self.hand_over_at => {
                buf.due = Some((at, at.saturating_add(HAND_OVER_AFTER.as_nanos() as u64)));
            }
            _ => self.hand_over(buf),
        }
    }

    /// Hands the worker's frames to the writer, or drops and counts them when the queue
    /// is full.
    pub fn hand_over(&self, buf: &mut Buffer) {
        if buf.frames == 0 {
            return;
        }
        let frames = std::mem::take(&mut buf.frames);
        let used = std::mem::take(&mut buf.used);
        buf.due = None;
        // Replies not yet stamped (a worker that ends mid-batch) keep the query's time.
        buf.times.clear();
        if self.queued.fetch_add(used, Ordering::Relaxed) + used > self.budget {
            self.queued.fetch_sub(used, Ordering::Relaxed);
            self.dropped.inc_by(frames);
            return;
        }
        let bytes = std::mem::take(&mut buf.bytes);
        match self.tx.try_send(Batch {
            bytes,
            used,
            frames,
        }) {
            Ok(()) => {
                // A recycled buffer keeps its length: its bytes are written over.
                buf.bytes = self
                    .pool
                    .try_lock()
                    .ok()
                    .and_then(|p| p.try_recv().ok())
                    .unwrap_or_default();
            }
            Err(TrySendError::Full(b) | TrySendError::Disconnected(b)) => {
                self.queued.fetch_sub(used, Ordering::Relaxed);
                self.dropped.inc_by(frames);
                buf.bytes = b.bytes;
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
                    .try_for_each(|b| c.writer().write_all(&b.bytes[..b.used]))
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
            queued.fetch_sub(b.used, Ordering::Relaxed);
            let _ = pool.try_send(b.bytes);
        }
    }
    if let Some(mut c) = conn {
        let _ = frames::stop(c.writer()).and_then(|()| c.writer().flush());
        let _ = frames::expect_finish(c.reader());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_is_written_with_its_words() {
        let parts = Decided {
            cluster: Some(3),
            policy: Some(0),
            scope: 24,
            ecs: true,
            located: Some(1),
            fail_open: false,
        };
        let d = Decision::from(parts);
        assert_eq!(d.parts(), parts);
        // Every part's largest value, and none, come back.
        for parts in [
            Decided {
                cluster: Some(u16::MAX),
                policy: Some(u8::MAX),
                scope: u8::MAX,
                ecs: true,
                located: Some(u8::MAX),
                fail_open: true,
            },
            Decided::default(),
        ] {
            assert_eq!(Decision::from(parts).parts(), parts);
        }
        assert_eq!(Decision::from(Decided::default()), Decision::NONE);
        let words = Words {
            cluster: Some("us-east"),
            policy: Some("nearest"),
            located: Some("city"),
        };
        let mut text = [0; EXTRA_MAX];
        let n = d.write(&words, &mut text);
        assert_eq!(
            &text[..n],
            b"cluster=us-east policy=nearest located=city scope=24 fail_open=0"
        );
        // Only what was decided is written, whatever the words.
        let n = Decision::from(Decided {
            ecs: true,
            ..Decided::default()
        })
        .write(&words, &mut text);
        assert_eq!(&text[..n], b"scope=0");
        assert_eq!(Decision::default().write(&words, &mut text), 0);
    }

    /// The text follows the cluster's name: kept while the decision repeats, written
    /// again once the buffer is told the indices name other clusters; a few decisions
    /// that alternate keep theirs.
    #[test]
    fn a_new_snapshot_writes_the_text_again() {
        let counter = |n: &str| IntCounter::new(n, n).unwrap();
        let tap = Tap::start(
            Settings {
                endpoint: Endpoint::Unix("/nonexistent/fedns-test-dnstap.sock".into()),
                identity: Vec::new(),
                version: Vec::new(),
                queries: false,
                responses: true,
                queue: 16,
            },
            Counters {
                sent: counter("sent"),
                dropped: counter("dropped"),
                lost: counter("lost"),
            },
        )
        .unwrap();
        let mut buf = Buffer::default();
        let e = Event {
            client: "192.0.2.1:1".parse().unwrap(),
            transport: Transport::Udp,
            query_time: Stamp::default(),
            query: b"q",
            reply: Some(b"r"),
        };
        let d = Decision::from(Decided {
            cluster: Some(0),
            located: Some(1),
            ..Decided::default()
        });
        let words = |cluster| {
            move |_: Decided| Words {
                cluster: Some(cluster),
                located: Some("city"),
                ..Words::default()
            }
        };
        let text = |buf: &Buffer| {
            let t = &buf.texts[buf.last];
            String::from_utf8_lossy(&t.bytes[..t.len]).into_owned()
        };
        tap.record(&mut buf, &e, d, words("eu-west"));
        assert_eq!(text(&buf), "cluster=eu-west located=city fail_open=0");
        tap.record(&mut buf, &e, d, |_| panic!("the kept text is used"));
        buf.renamed();
        tap.record(&mut buf, &e, d, words("us-east"));
        assert_eq!(text(&buf), "cluster=us-east located=city fail_open=0");
        // Decisions that alternate (a resolver asking several names) keep their texts.
        let other = Decision::from(Decided {
            cluster: Some(1),
            ..d.parts()
        });
        tap.record(&mut buf, &e, other, words("ap-south"));
        assert_eq!(text(&buf), "cluster=ap-south located=city fail_open=0");
        for _ in 0..3 {
            tap.record(&mut buf, &e, d, |_| panic!("d's text is kept"));
            assert_eq!(text(&buf), "cluster=us-east located=city fail_open=0");
            tap.record(&mut buf, &e, other, |_| panic!("other's text is kept"));
            assert_eq!(text(&buf), "cluster=ap-south located=city fail_open=0");
        }
    }
}
