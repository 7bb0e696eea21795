//! The dnstap protobuf (dnstap.proto, the schema every dnstap reader shares), written by
//! hand: the few fields fedns fills need no code generator. Runs on the query path, so a
//! frame is written in place into the worker's buffer (grown, rarely, to hold it): each
//! part of a frame checks its room once, and its fields are then stores at known places.
//! What every frame of a worker's socket begins with (the head and the server's fields)
//! is made once (`Prefix`); the client's fields once per event, for both its messages.
//! The two lengths known only once a frame is written (the frame's, and the message's)
//! are written last: the message's as a three-byte varint with redundant continuation
//! bytes, which protobuf readers take (Perfetto's protozero writes nested lengths so).
//!
//! ```text
//! Dnstap  { identity = 1 (bytes), version = 2 (bytes), extra = 3 (bytes),
//!           message = 14 (Message), type = 15 (enum: MESSAGE = 1) }
//! Message { type = 1 (enum: AUTH_QUERY = 1, AUTH_RESPONSE = 2),
//!           socket_family = 2 (INET = 1, INET6 = 2), socket_protocol = 3 (UDP = 1, TCP = 2),
//!           query_address = 4, response_address = 5 (bytes),
//!           query_port = 6, response_port = 7 (uint32),
//!           query_time_sec = 8 (uint64), query_time_nsec = 9 (fixed32),
//!           query_message = 10 (bytes),
//!           response_time_sec = 12 (uint64), response_time_nsec = 13 (fixed32),
//!           response_message = 14 (bytes) }
//! ```
//!
//! Protobuf fields may come in any order, so each frame starts with the constant ones
//! (identity, version, type, and the message's type, protocol and response address and
//! port) in one copy, and `extra` follows the message. As in BIND's and Knot's dnstap,
//! an `AUTH_RESPONSE` carries the response message and not the query again.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Event, Stamp, Transport};

/// Which message an event becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    AuthQuery = 1,
    AuthResponse = 2,
}

const VARINT: u8 = 0;
const FIXED32: u8 = 5;
const BYTES: u8 = 2;

/// The key byte of a field below 16.
const fn key(field: u8, wire: u8) -> u8 {
    (field << 3) | wire
}

/// How many bytes `v` takes as a varint: 1 for 0..=127, one more per 7 bits. Compared,
/// not divided: the lengths written per query are mostly one or two bytes.
#[inline(always)]
fn varint_len(v: u64) -> usize {
    if v < 1 << 7 {
        1
    } else if v < 1 << 14 {
        2
    } else {
        (64 - v.leading_zeros() as usize).div_ceil(7)
    }
}

/// A cursor over a slice. `room(n)` checks, once, that `n` bytes from the cursor are in
/// the slice; the stores after it write without checking, each within those `n` (what
/// the comment at each `room` adds up; debug builds check every store against it). Short
/// fields are built in registers and stored whole (8 bytes, or a fixed-size block), then
/// the cursor moves by their true length: what is stored past it is written over next,
/// or lies past the frames. `slice` checks for itself.
struct Put<'a> {
    b: &'a mut [u8],
    at: usize,
    /// The end of the last room checked.
    end: usize,
}

impl<'a> Put<'a> {
    fn new(b: &'a mut [u8]) -> Put<'a> {
        Put { b, at: 0, end: 0 }
    }

    /// Checks that `n` bytes from the cursor are in the slice (the one check of the
    /// stores that follow).
    #[inline(always)]
    fn room(&mut self, n: usize) {
        assert!(
            n <= self.b.len() && self.at <= self.b.len() - n,
            "dnstap: a frame's room was miscounted"
        );
        self.end = self.at + n;
    }

    /// Stores `src` at `at` (not moving the cursor), inside the last room checked or
    /// before the cursor.
    #[inline(always)]
    fn store(&mut self, at: usize, src: &[u8]) {
        debug_assert!(
            at + src.len() <= self.end.max(self.at),
            "dnstap: a store outside its room"
        );
        // SAFETY: `at + src.len()` is at most the end of the last room, which `room`
        // checked to be in the slice (its caller counts the stores), or at most the
        // cursor, which stays in the slice (it moves within a room, or past a `slice`
        // that checked itself); `src` is another borrow, so they do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.b.as_mut_ptr().add(at), src.len());
        }
    }

    #[inline(always)]
    fn byte(&mut self, v: u8) {
        self.store(self.at, &[v]);
        self.at += 1;
    }

    /// The low `len` bytes of `v`, little-endian.
    #[inline(always)]
    fn word(&mut self, v: u64, len: usize) {
        self.store(self.at, &v.to_le_bytes());
        self.at += len;
    }

    /// The first `len` bytes of a block of `N`.
    #[inline(always)]
    fn block<const N: usize>(&mut self, src: &[u8; N], len: usize) {
        self.store(self.at, src);
        self.at += len;
    }

    /// A slice, within the last room checked.
    #[inline(always)]
    fn block_of(&mut self, s: &[u8]) {
        self.store(self.at, s);
        self.at += s.len();
    }

    /// A slice of any length, checked.
    #[inline(always)]
    fn slice(&mut self, s: &[u8]) {
        self.b[self.at..self.at + s.len()].copy_from_slice(s);
        self.at += s.len();
    }

    #[inline(always)]
    fn varint(&mut self, v: u64) {
        if v < 1 << 56 {
            let (x, len) = varint_word(v);
            self.word(x, len);
        } else {
            let mut v = v;
            while v >= 0x80 {
                self.byte((v as u8) | 0x80);
                v >>= 7;
            }
            self.byte(v as u8);
        }
    }

    /// A field's key and its varint value (11 bytes at most, 8 stored past the cursor).
    #[inline(always)]
    fn uint(&mut self, key: u8, v: u64) {
        if v < 1 << 49 {
            let (x, len) = varint_word(v);
            self.word((x << 8) | u64::from(key), len + 1);
        } else {
            self.byte(key);
            self.varint(v);
        }
    }

    /// A field's key, its length and its bytes, within the last room checked.
    #[inline(always)]
    fn message(&mut self, key: u8, s: &[u8]) {
        self.uint(key, s.len() as u64);
        self.block_of(s);
    }

    /// A field's key, its length (`uint`) and its bytes (`slice`).
    #[inline(always)]
    fn bytes(&mut self, key: u8, s: &[u8]) {
        self.uint(key, s.len() as u64);
        self.slice(s);
    }
}

/// `v` (below 2^56) as a varint in the low bytes of a word, and its length: its 7-bit
/// groups spread one to a byte, with the continuation bit on all but the last. No loop:
/// lengths and ports take the first three branches, times the last.
#[inline(always)]
fn varint_word(v: u64) -> (u64, usize) {
    if v < 0x80 {
        return (v, 1);
    }
    if v < 0x4000 {
        return ((v & 0x7F) | 0x80 | (v >> 7) << 8, 2);
    }
    // Ports above 16,383 (every ephemeral one).
    if v < 0x20_0000 {
        return (
            (v & 0x7F) | 0x80 | ((v >> 7 & 0x7F) | 0x80) << 8 | (v >> 14) << 16,
            3,
        );
    }
    let spread = (v & 0x7F)
        | (v << 1 & 0x7F00)
        | (v << 2 & 0x7F_0000)
        | (v << 3 & 0x7F00_0000)
        | (v << 4 & 0x7F_0000_0000)
        | (v << 5 & 0x7F00_0000_0000)
        | (v << 6 & 0x7F_0000_0000_0000)
        | (v << 7 & 0x7F00_0000_0000_0000);
    let len = varint_len(v);
    let continued = 0x8080_8080_8080_8080 & ((1u64 << (8 * (len - 1))) - 1);
    (spread | continued, len)
}

/// The most bytes the client's fields take: family (2), address (18), port (4) and the
/// query time (16).
const COMMON_MAX: usize = 40;
/// The block they are written into and copied as: the longest, and room for the last
/// fixed-width store.
const COMMON_BLOCK: usize = COMMON_MAX + 8;

/// What a worker's frames keep from one event to the next (kept, so neither cleared nor
/// moved per event): the frames' constant beginning for its socket, the varint of the
/// last second, and the block the client's fields are written into, once per event, for
/// both of its messages.
#[derive(Debug)]
pub struct Scratch {
    prefix: Prefix,
    seconds: Seconds,
    common: [u8; COMMON_BLOCK],
}

impl Scratch {
    /// The scratch of a worker whose socket is bound to `server`.
    pub fn serving(server: SocketAddr) -> Scratch {
        Scratch {
            prefix: Prefix::of(server),
            seconds: Seconds::default(),
            common: [0; COMMON_BLOCK],
        }
    }
}

/// An address field: its key, its length and its bytes (18 at most).
#[inline(always)]
fn address(p: &mut Put<'_>, key: u8, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => p.word(
            u64::from(key) | 4 << 8 | u64::from(u32::from_le_bytes(a.octets())) << 16,
            6,
        ),
        IpAddr::V6(a) => {
            p.word(u64::from(key) | 16 << 8, 2);
            p.block(&a.octets(), 16);
        }
    }
}

/// The varint of the last second a time field carried: it changes once a second, and
/// spreading a 5-byte varint costs more than the rest of the field.
#[derive(Debug, Default)]
struct Seconds {
    sec: u64,
    word: u64,
    len: usize,
}

impl Seconds {
    /// `sec` as a varint word and its length (below 2^49; else 0, 0).
    #[inline(always)]
    fn of(&mut self, sec: u64) -> (u64, usize) {
        if sec != self.sec || self.len == 0 {
            self.set(sec);
        }
        (self.word, self.len)
    }

    /// Once a second: out of line, so that the compiler does not spread every second's
    /// varint in case it changed.
    #[cold]
    #[inline(never)]
    fn set(&mut self, sec: u64) {
        (self.word, self.len) = if sec < 1 << 49 {
            varint_word(sec)
        } else {
            (0, 0)
        };
        self.sec = sec;
    }
}

/// A time's two fields: 16 bytes at most, stored up to 8 past their end.
#[inline(always)]
fn time(p: &mut Put<'_>, seconds: &mut Seconds, sec_field: u8, t: Stamp) {
    match seconds.of(t.sec) {
        (x, len) if len > 0 => p.word((x << 8) | u64::from(key(sec_field, VARINT)), len + 1),
        _ => p.uint(key(sec_field, VARINT), t.sec),
    }
    p.word(
        u64::from(key(sec_field + 1, FIXED32)) | u64::from(t.nsec) << 8,
        5,
    );
}

/// Writes the client's fields of `e` (family, address, port, query time), which both of
/// its messages carry, into `scratch.common`; returns their length.
#[inline(always)]
fn common(e: &Event<'_>, scratch: &mut Scratch) -> usize {
    let mut p = Put::new(&mut scratch.common);
    // Family 2, address 18, port 4, time 16 and its last store's 8: the block.
    p.room(COMMON_BLOCK);
    // A v4-mapped client of a dual-stack socket is an IPv4 client.
    let ip = e.client.ip().to_canonical();
    let family: u64 = if ip.is_ipv4() { 1 } else { 2 };
    p.word(u64::from(key(2, VARINT)) | family << 8, 2);
    address(&mut p, key(4, BYTES), ip);
    p.uint(key(6, VARINT), u64::from(e.client.port()));
    time(&mut p, &mut scratch.seconds, 8, e.query_time);
    p.at
}

/// The frame's constant fields: identity, version and type MESSAGE, and a number that
/// tells one tap's head from another's.
#[derive(Debug)]
pub struct Head {
    bytes: Vec<u8>,
    id: u64,
}

impl Head {
    pub fn new(identity: &[u8], version: &[u8]) -> Head {
        static HEADS: AtomicU64 = AtomicU64::new(1);
        let mut bytes = vec![0; identity.len() + version.len() + 64];
        let mut p = Put::new(&mut bytes);
        // Two keys and lengths (11 bytes each at most, stores included) and the type.
        p.room(24);
        if !identity.is_empty() {
            p.bytes(key(1, BYTES), identity);
            p.room(24);
        }
        if !version.is_empty() {
            p.bytes(key(2, BYTES), version);
            p.room(24);
        }
        p.byte(key(15, VARINT));
        p.byte(1);
        let n = p.at;
        bytes.truncate(n);
        Head {
            bytes,
            id: HEADS.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// The beginning of a worker's frames, after their length, that is the same for every
/// event of its socket: the head, the message's key and length (three bytes, a varint
/// with redundant continuation bytes, which protobuf readers take, so that it is written
/// once the message is), and the message's type (`AUTH_QUERY`; a response's is patched),
/// protocol, response address and port. Protobuf fields may come in any order: the
/// client's fields follow, then the DNS message, and `extra` after the message.
#[derive(Debug)]
struct Prefix {
    /// The socket's address.
    server: SocketAddr,
    /// What it was made for: the head's id and the transport (0: not yet made).
    of: u64,
    /// Its bytes, in a block copied whole when they fit, and as they are.
    block: [u8; PREFIX_BLOCK],
    bytes: Vec<u8>,
    /// Where its message's length is: after the head and the message's key.
    message_len_at: usize,
    /// What copying it stores: the block, or its bytes when they do not fit.
    room: usize,
}

const PREFIX_BLOCK: usize = 128;

/// The message's length: three bytes, so every DNS message (64 KiB at most) fits.
const MESSAGE_LEN: usize = 3;

impl Prefix {
    fn of(server: SocketAddr) -> Prefix {
        Prefix {
            server,
            of: 0,
            block: [0; PREFIX_BLOCK],
            bytes: Vec::new(),
            message_len_at: 0,
            room: PREFIX_BLOCK,
        }
    }

    /// Makes it for `head` and `transport`, unless it is already.
    #[inline(always)]
    fn make(&mut self, head: &Head, transport: Transport) {
        if self.of != head.id << 1 | transport as u64 {
            self.build(head, transport);
        }
    }

    #[cold]
    fn build(&mut self, head: &Head, transport: Transport) {
        let mut b = vec![0; head.bytes.len() + 64];
        let mut p = Put::new(&mut b);
        p.slice(&head.bytes);
        // The message's key and length (4), its type (2), protocol (2), the response
        // address (18) and port (4, 8 stored).
        p.room(34);
        p.byte(key(14, BYTES));
        p.block(&[0x80, 0x80, 0], MESSAGE_LEN);
        p.word(u64::from(key(1, VARINT)) | (Kind::AuthQuery as u64) << 8, 2);
        let protocol: u64 = match transport {
            Transport::Udp => 1,
            Transport::Tcp => 2,
        };
        p.word(u64::from(key(3, VARINT)) | protocol << 8, 2);
        address(&mut p, key(5, BYTES), self.server.ip());
        p.uint(key(7, VARINT), u64::from(self.server.port()));
        let len = p.at;
        b.truncate(len);
        self.block = [0; PREFIX_BLOCK];
        if len <= PREFIX_BLOCK {
            self.block[..len].copy_from_slice(&b);
        }
        self.room = len.max(PREFIX_BLOCK);
        self.message_len_at = head.bytes.len() + 1;
        self.bytes = b;
        self.of = head.id << 1 | transport as u64;
    }
}

/// What a frame stores besides its prefix and DNS message, at most: its length (4), the
/// client's fields (40, `COMMON_BLOCK` stored), the response time (16, and 8 stored past
/// it), the DNS message's key and length (4, 8 stored), and `extra`'s key and length (3,
/// 8 stored) and block. (Each store past a field's end lies within what the fields after
/// it may take.)
const FRAME_ROOM: usize = 4 + COMMON_BLOCK + 24 + 8 + 8 + EXTRA_BLOCK;

/// Appends the data frames of `e` (an `AUTH_QUERY` when `queries`, an `AUTH_RESPONSE`
/// when `responses` and there was a reply) at `out[*used..]`, each its length then its
/// protobuf, growing `out` (whose bytes are all initialized; only `*used` of them count)
/// when they would not fit; returns how many frames. `extra` (the response's; a query
/// carries none) is at most `EXTRA_BLOCK` bytes, in a block of that size. A response's
/// time is the query's until `stamp` writes it: where it is goes in `times`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn frames(
    head: &Head,
    queries: bool,
    responses: bool,
    e: &Event<'_>,
    extra: (&[u8; EXTRA_BLOCK], usize),
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
    used: &mut usize,
    times: &mut Times,
) -> u64 {
    let reply = e.reply.filter(|_| responses);
    let reply_len = reply.map_or(0, <[u8]>::len);
    // A DNS message is 64 KiB at most (its length over TCP is 16 bits): the message's
    // three-byte length holds it.
    if (!queries && reply.is_none()) || (e.query.len() | reply_len) > usize::from(u16::MAX) {
        return 0;
    }
    scratch.prefix.make(head, e.transport);
    let common_len = common(e, scratch);
    // Each frame stores at most its prefix's room, its DNS message and `FRAME_ROOM`.
    let need = 2 * (scratch.prefix.room + FRAME_ROOM) + e.query.len() + reply_len;
    if out.len() < *used + need {
        out.resize((*used + need).max(out.len() * 2).max(4096), 0);
    }
    let mut p = Put::new(&mut out[*used..]);
    p.room(need);
    let common = (&scratch.common, common_len);
    let mut n = 0;
    if queries {
        let f = frame(&mut p, &scratch.prefix, Kind::AuthQuery, common);
        p.message(key(10, BYTES), e.query);
        // The decision is the response's: a query carries none.
        end(&mut p, f, &scratch.prefix, (extra.0, 0));
        n += 1;
    }
    if let Some(reply) = reply {
        let f = frame(&mut p, &scratch.prefix, Kind::AuthResponse, common);
        let at = p.at;
        time(&mut p, &mut scratch.seconds, 12, e.query_time);
        if p.at - at == TIME_LEN {
            times.push(*used + at);
        }
        p.message(key(14, BYTES), reply);
        end(&mut p, f, &scratch.prefix, extra);
        n += 1;
    }
    *used += p.at;
    n
}

/// How long a time's two fields are when its seconds take five bytes (every second from
/// 1978 to 3058): the seconds' key and varint, the nanoseconds' key and value.
const TIME_LEN: usize = 1 + 5 + 1 + 4;

/// Where the response times of a batch's replies are in a worker's buffer, to be written
/// once the batch ends (`stamp`). A reply past the first `Times::MOST` of a batch (a UDP
/// batch has 32 at most, a TCP one 1), or whose time takes other than `TIME_LEN` bytes,
/// keeps its query's time.
#[derive(Debug)]
pub struct Times {
    at: [usize; Times::MOST],
    n: usize,
}

impl Default for Times {
    fn default() -> Self {
        Times {
            at: [0; Times::MOST],
            n: 0,
        }
    }
}

impl Times {
    const MOST: usize = 64;

    #[inline(always)]
    fn push(&mut self, at: usize) {
        if let Some(slot) = self.at.get_mut(self.n) {
            *slot = at;
            self.n += 1;
        }
    }

    /// Forgets them: their frames keep their query's time.
    pub fn clear(&mut self) {
        self.n = 0;
    }
}

/// Writes `t` as the response time of the replies in `times`, and forgets them. A time
/// whose seconds take other than five bytes is not written.
#[inline(always)]
pub fn stamp(bytes: &mut [u8], times: &mut Times, scratch: &mut Scratch, t: Stamp) {
    let (word, len) = scratch.seconds.of(t.sec);
    let n = std::mem::take(&mut times.n);
    if len != 5 {
        return;
    }
    for &at in &times.at[..n.min(Times::MOST)] {
        if let Some(field) = bytes
            .get_mut(at..)
            .and_then(|b| b.first_chunk_mut::<TIME_LEN>())
        {
            field[1..6].copy_from_slice(&word.to_le_bytes()[..5]);
            field[7..].copy_from_slice(&t.nsec.to_le_bytes());
        }
    }
}

/// The size of the block `extra` comes in.
pub const EXTRA_BLOCK: usize = 192;

/// Starts a frame: room for its length, then the prefix (with `kind`) and the client's
/// fields. Returns where it starts.
#[inline(always)]
fn frame(
    p: &mut Put<'_>,
    prefix: &Prefix,
    kind: Kind,
    common: (&[u8; COMMON_BLOCK], usize),
) -> usize {
    let f = p.at;
    p.at += 4;
    if prefix.room == PREFIX_BLOCK {
        // Most prefixes (a host name up to about 25 bytes) fit half the block: half the
        // copy.
        match prefix.block.first_chunk::<{ PREFIX_BLOCK / 2 }>() {
            Some(short) if prefix.bytes.len() <= PREFIX_BLOCK / 2 => {
                p.block(short, prefix.bytes.len())
            }
            _ => p.block(&prefix.block, prefix.bytes.len()),
        }
    } else {
        p.block_of(&prefix.bytes);
    }
    if kind != Kind::AuthQuery {
        // The type's value: after the message's key, its length and the type's key.
        p.store(
            f + 4 + prefix.message_len_at + MESSAGE_LEN + 1,
            &[kind as u8],
        );
    }
    p.block(common.0, common.1);
    f
}

/// Ends the frame that starts at `f` (its DNS message written): writes `extra`, the
/// message's length and the frame's.
#[inline(always)]
fn end(p: &mut Put<'_>, f: usize, prefix: &Prefix, extra: (&[u8; EXTRA_BLOCK], usize)) {
    // Both lengths lie before the cursor.
    let message = f + 4 + prefix.message_len_at + MESSAGE_LEN;
    let len = (p.at - message) as u64;
    let len = (len & 0x7F) | 0x80 | ((len >> 7 & 0x7F) | 0x80) << 8 | (len >> 14) << 16;
    p.store(message - MESSAGE_LEN, &len.to_le_bytes()[..MESSAGE_LEN]);
    if extra.1 > 0 {
        p.uint(key(3, BYTES), extra.1 as u64);
        // Most texts fit the first third of the block, nearly all two thirds (a cluster
        // label of 63 bytes and every other field take 115): copies the compiler writes
        // out, where the whole block's is a call.
        if let Some(short) = extra.0.first_chunk::<64>()
            && extra.1 <= 64
        {
            p.block(short, extra.1);
        } else if let Some(most) = extra.0.first_chunk::<128>()
            && extra.1 <= 128
        {
            p.block(most, extra.1);
        } else {
            p.block(extra.0, extra.1);
        }
    }
    let body = (p.at - f - 4) as u32;
    p.store(f, &body.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader of the few protobuf shapes written here: (field, wire type, bytes or
    /// value) in order.
    fn fields(mut m: &[u8]) -> Vec<(u64, Vec<u8>)> {
        fn varint(m: &mut &[u8]) -> u64 {
            let mut v = 0;
            for shift in (0..64).step_by(7) {
                let b = m[0];
                *m = &m[1..];
                v |= u64::from(b & 0x7F) << shift;
                if b < 0x80 {
                    break;
                }
            }
            v
        }
        let mut out = Vec::new();
        while !m.is_empty() {
            let k = varint(&mut m);
            let value = match k & 7 {
                0 => varint(&mut m).to_le_bytes().to_vec(),
                5 => {
                    let v = m[..4].to_vec();
                    m = &m[4..];
                    v
                }
                2 => {
                    let n = varint(&mut m) as usize;
                    let v = m[..n].to_vec();
                    m = &m[n..];
                    v
                }
                w => panic!("wire type {w}"),
            };
            out.push((k >> 3, value));
        }
        out
    }

    fn get(f: &[(u64, Vec<u8>)], field: u64) -> Option<&[u8]> {
        f.iter().find(|(n, _)| *n == field).map(|(_, v)| &v[..])
    }

    fn extra(s: &[u8]) -> ([u8; EXTRA_BLOCK], usize) {
        let mut b = [0; EXTRA_BLOCK];
        b[..s.len()].copy_from_slice(s);
        (b, s.len())
    }

    const QUERY_TIME: Stamp = Stamp {
        sec: 1_699_999_999,
        nsec: 2,
    };
    const REPLY_TIME: Stamp = Stamp {
        sec: 1_700_000_000,
        nsec: 5,
    };

    fn event<'a>(query: &'a [u8], reply: Option<&'a [u8]>, client: &str) -> Event<'a> {
        Event {
            client: client.parse().unwrap(),
            transport: Transport::Udp,
            query_time: QUERY_TIME,
            query,
            reply,
        }
    }

    /// Splits a buffer of frames into their bodies, checking each length.
    fn split(mut b: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let len = u32::from_be_bytes(b[..4].try_into().unwrap()) as usize;
            out.push(&b[4..4 + len]);
            b = &b[4 + len..];
        }
        out
    }

    /// A worker's buffer and scratch, as `frames` is given them.
    struct Sink {
        out: Vec<u8>,
        used: usize,
        scratch: Scratch,
        times: Times,
        stamp_with: Option<Stamp>,
    }

    impl Default for Sink {
        fn default() -> Self {
            Sink {
                out: Vec::new(),
                used: 0,
                scratch: Scratch::serving("127.0.0.1:53".parse().unwrap()),
                times: Times::default(),
                stamp_with: Some(REPLY_TIME),
            }
        }
    }

    impl Sink {
        /// The event's frames, and the end of their batch at `stamp_with`, if any.
        fn write(
            &mut self,
            head: &Head,
            queries: bool,
            responses: bool,
            e: &Event<'_>,
            extra: (&[u8; EXTRA_BLOCK], usize),
        ) -> u64 {
            let (out, used, scratch) = (&mut self.out, &mut self.used, &mut self.scratch);
            let n = frames(
                head,
                queries,
                responses,
                e,
                extra,
                scratch,
                out,
                used,
                &mut self.times,
            );
            if let Some(t) = self.stamp_with {
                self.stamp(t);
            }
            n
        }

        fn stamp(&mut self, t: Stamp) {
            stamp(&mut self.out, &mut self.times, &mut self.scratch, t);
        }
    }

    #[test]
    fn varint_lengths() {
        let mut values = vec![0u64, 1, 127, 128, 300, 16_383, 16_384, u64::MAX];
        values.extend((14..64).flat_map(|bits| [(1u64 << bits) - 1, 1 << bits, (1 << bits) + 1]));
        for v in values {
            let mut b = [0u8; 16];
            let mut p = Put::new(&mut b);
            p.room(16);
            p.varint(v);
            let len = p.at;
            assert_eq!(len, varint_len(v), "{v}");
            // Decoded back, the same value.
            let (mut x, mut shift) = (0u64, 0);
            for &byte in &b[..len] {
                x |= u64::from(byte & 0x7F) << shift;
                shift += 7;
            }
            assert_eq!(x, v);
            assert!(b[..len - 1].iter().all(|b| b & 0x80 != 0));
            assert!(b[len - 1] & 0x80 == 0);
        }
        let mut b = [0u8; 16];
        let mut p = Put::new(&mut b);
        p.room(16);
        p.varint(300);
        assert_eq!(b[..2], [0xAC, 0x02]);
    }

    #[test]
    fn frames_decode_to_the_event() {
        let head = Head::new(b"id", b"v1");
        let x = extra(b"policy=x");
        let none = extra(b"");
        let mut sink = Sink {
            out: vec![0xEE; 3],
            used: 1,
            ..Sink::default()
        };
        let big = vec![7u8; 300];
        let e = event(b"QQ", Some(&big), "[2001:db8::1]:5353");
        let n = sink.write(&head, true, true, &e, (&x.0, x.1));
        assert_eq!(n, 2);
        assert_eq!(sink.out[0], 0xEE, "bytes before `used` are kept");
        let frames_ = split(&sink.out[1..sink.used]);
        assert_eq!(frames_.len(), 2);
        for (i, f) in frames_.iter().enumerate() {
            let top = fields(f);
            assert_eq!(get(&top, 1), Some(&b"id"[..]));
            assert_eq!(get(&top, 2), Some(&b"v1"[..]));
            let decision = if i == 1 { Some(&b"policy=x"[..]) } else { None };
            assert_eq!(get(&top, 3), decision, "only the response has the decision");
            assert_eq!(get(&top, 15).map(|v| v[0]), Some(1));
            let m = fields(get(&top, 14).unwrap());
            assert_eq!(get(&m, 1).map(|v| v[0]), Some(i as u8 + 1));
            assert_eq!(get(&m, 2).map(|v| v[0]), Some(2), "INET6");
            assert_eq!(get(&m, 3).map(|v| v[0]), Some(1), "UDP");
            let client: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
            assert_eq!(get(&m, 4), Some(&client.octets()[..]));
            assert_eq!(get(&m, 5), Some(&[127, 0, 0, 1][..]));
            assert_eq!(
                get(&m, 6).map(|v| v[..2].to_vec()),
                Some(5353u16.to_le_bytes().to_vec())
            );
            assert_eq!(number(&m, 8), QUERY_TIME.sec);
            assert_eq!(get(&m, 9), Some(&2u32.to_le_bytes()[..]));
            if i == 0 {
                assert_eq!(get(&m, 10), Some(&b"QQ"[..]));
                assert_eq!(get(&m, 14), None);
            } else {
                assert_eq!(get(&m, 10), None, "the response does not repeat the query");
                assert_eq!(get(&m, 14), Some(&big[..]));
                let sec = u64::from_le_bytes(get(&m, 12).unwrap().try_into().unwrap());
                assert_eq!(sec, 1_700_000_000);
                assert_eq!(get(&m, 13), Some(&5u32.to_le_bytes()[..]));
            }
        }
        // More frames append; no reply: no response frame; no extra: no field 3.
        let before = sink.used;
        let e = event(b"Q", None, "192.0.2.1:1");
        assert_eq!(sink.write(&head, true, true, &e, (&none.0, 0)), 1);
        let f = split(&sink.out[before..sink.used]);
        let top = fields(f[0]);
        assert_eq!(get(&top, 3), None);
        let m = fields(get(&top, 14).unwrap());
        assert_eq!(get(&m, 2).map(|v| v[0]), Some(1), "INET");
        assert_eq!(get(&m, 4), Some(&[192, 0, 2, 1][..]));
        // Only responses wanted, and none: nothing written.
        assert_eq!(sink.write(&head, false, true, &e, (&none.0, 0)), 0);
    }

    #[test]
    fn a_large_tcp_reply_grows_the_buffer() {
        let head = Head::new(b"", b"");
        let none = extra(b"");
        let reply = vec![1u8; 65_535];
        let e = event(b"Q", Some(&reply), "192.0.2.1:1");
        let mut sink = Sink::default();
        assert_eq!(sink.write(&head, false, true, &e, (&none.0, 0)), 1);
        let f = split(&sink.out[..sink.used]);
        let m = fields(get(&fields(f[0]), 14).unwrap());
        assert_eq!(get(&m, 14).map(<[u8]>::len), Some(65_535));
    }

    type Fields = Vec<(u64, Vec<u8>)>;

    /// A frame read back: its top-level fields and its message's, each once.
    fn decode(frame: &[u8]) -> (Fields, Fields) {
        let top = fields(frame);
        let mut seen: Vec<u64> = top.iter().map(|(n, _)| *n).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), top.len(), "a top-level field twice");
        let m = fields(get(&top, 14).expect("a message"));
        (top, m)
    }

    fn number(f: &[(u64, Vec<u8>)], field: u64) -> u64 {
        u64::from_le_bytes(get(f, field).expect("the field").try_into().unwrap())
    }

    /// DNS messages of every length up to 200 bytes, and longer ones, each byte distinct
    /// from its neighbours, arrive byte for byte, frame after frame.
    #[test]
    fn messages_of_every_length_are_copied_byte_for_byte() {
        let head = Head::new(b"host", b"fedns 0.1.0");
        let mut sink = Sink::default();
        let pattern =
            |n: usize, salt: usize| -> Vec<u8> { (0..n).map(|i| (i * 7 + salt) as u8).collect() };
        let lengths: Vec<usize> = (0..=200).chain([1000, 4096]).collect();
        let mut expected = Vec::new();
        for &n in &lengths {
            let (query, reply) = (pattern(n, 1), pattern(n + 3, 2));
            let e = event(&query, Some(&reply), "192.0.2.1:5300");
            let x = extra(b"");
            assert_eq!(sink.write(&head, true, true, &e, (&x.0, x.1)), 2);
            expected.push((10, query));
            expected.push((14, reply));
        }
        let frames_ = split(&sink.out[..sink.used]);
        assert_eq!(frames_.len(), expected.len());
        for (f, (field, message)) in frames_.iter().zip(expected) {
            let (_, m) = decode(f);
            assert_eq!(get(&m, field).unwrap(), message, "{} bytes", message.len());
        }
    }

    /// Every shape a frame takes (heads short and past the block, both families on both
    /// sides, both transports, `extra` of every size class, messages whose lengths cross
    /// each varint width up to 64 KiB) decodes to exactly the event, frame after frame in
    /// one buffer. Debug builds check every unchecked store against its room.
    #[test]
    fn every_shape_decodes_to_its_event() {
        let long = vec![b'h'; 300];
        let heads = [
            (&b""[..], &b""[..]),
            (b"host", b"fedns 0.1.0"),
            (&long[..81], b"fedns 0.1.0"),
            (&long[..], b"v"),
        ];
        let servers = ["127.0.0.1:53", "[2001:db8::53]:5353", "0.0.0.0:0"];
        let clients = [
            "192.0.2.1:1",
            "[2001:db8::1]:65535",
            "[::ffff:198.51.100.7]:40000",
        ];
        let texts = [
            &b""[..],
            b"x",
            &[b'e'; 64],
            &[b'e'; 65],
            &[b'e'; EXTRA_BLOCK],
        ];
        let sizes = [0usize, 1, 12, 127, 128, 16_383, 16_384, 65_535];
        let mut cases = 0;
        for (id, version) in heads {
            let head = Head::new(id, version);
            for server in servers {
                let mut sink = Sink {
                    scratch: Scratch::serving(server.parse().unwrap()),
                    ..Sink::default()
                };
                let mut expected = Vec::new();
                for (i, client) in clients.iter().enumerate() {
                    for (j, text) in texts.iter().enumerate() {
                        let size = sizes[(i * 3 + j) % sizes.len()];
                        let query = vec![0x51u8; sizes[(i + j) % 4]];
                        let reply = vec![0x52u8; size];
                        let mut e = event(&query, Some(&reply), client);
                        e.transport = if j % 2 == 0 {
                            Transport::Udp
                        } else {
                            Transport::Tcp
                        };
                        e.query_time.sec = QUERY_TIME.sec - j as u64;
                        let x = extra(text);
                        let (queries, responses) =
                            [(true, true), (true, false), (false, true)][j % 3];
                        let n = sink.write(&head, queries, responses, &e, (&x.0, x.1));
                        assert_eq!(n, u64::from(queries) + u64::from(responses));
                        for kind in [1u8, 2]
                            .into_iter()
                            .filter(|k| [queries, responses][usize::from(k - 1)])
                        {
                            expected.push((
                                kind,
                                e.client,
                                e.transport,
                                e.query_time,
                                query.clone(),
                                reply.clone(),
                                text.to_vec(),
                            ));
                        }
                        cases += 1;
                    }
                }
                let frames_ = split(&sink.out[..sink.used]);
                assert_eq!(frames_.len(), expected.len());
                for (f, (kind, client, transport, qtime, query, reply, text)) in
                    frames_.iter().zip(expected)
                {
                    let (top, m) = decode(f);
                    assert_eq!(get(&top, 1).unwrap_or_default(), id);
                    assert_eq!(get(&top, 2).unwrap_or_default(), version);
                    let decision = if kind == 2 { &text[..] } else { &[][..] };
                    assert_eq!(get(&top, 3).unwrap_or_default(), decision);
                    assert_eq!(number(&top, 15), 1);
                    assert_eq!(number(&m, 1), u64::from(kind));
                    let ip = client.ip().to_canonical();
                    assert_eq!(number(&m, 2), if ip.is_ipv4() { 1 } else { 2 });
                    let proto = match transport {
                        Transport::Udp => 1,
                        Transport::Tcp => 2,
                    };
                    assert_eq!(number(&m, 3), proto);
                    let octets = |ip: IpAddr| match ip {
                        IpAddr::V4(a) => a.octets().to_vec(),
                        IpAddr::V6(a) => a.octets().to_vec(),
                    };
                    assert_eq!(get(&m, 4).unwrap(), octets(ip));
                    let server: SocketAddr = server.parse().unwrap();
                    assert_eq!(get(&m, 5).unwrap(), octets(server.ip()));
                    assert_eq!(number(&m, 6), u64::from(client.port()));
                    assert_eq!(number(&m, 7), u64::from(server.port()));
                    assert_eq!(number(&m, 8), qtime.sec);
                    assert_eq!(get(&m, 9).unwrap(), qtime.nsec.to_le_bytes());
                    if kind == 1 {
                        assert_eq!(get(&m, 10).unwrap(), query);
                        assert_eq!(get(&m, 12), None);
                    } else {
                        assert_eq!(get(&m, 10), None);
                        assert_eq!(get(&m, 14).unwrap(), reply);
                        assert_eq!(number(&m, 12), REPLY_TIME.sec);
                        assert_eq!(get(&m, 13).unwrap(), REPLY_TIME.nsec.to_le_bytes());
                    }
                }
            }
        }
        assert_eq!(cases, 4 * 3 * 3 * 5);
    }

    #[test]
    fn a_message_past_64_kib_is_not_framed() {
        let head = Head::new(b"h", b"v");
        let none = extra(b"");
        let reply = vec![1u8; 65_536];
        let mut sink = Sink::default();
        let e = event(b"Q", Some(&reply), "192.0.2.1:1");
        assert_eq!(sink.write(&head, true, true, &e, (&none.0, 0)), 0);
        assert_eq!(sink.used, 0);
    }

    /// A reply's time is the query's until the batch ends; a time whose seconds take
    /// another number of bytes is not written over it.
    #[test]
    fn a_reply_is_stamped_when_its_batch_ends() {
        let head = Head::new(b"h", b"v");
        let none = extra(b"");
        let mut sink = Sink {
            stamp_with: None,
            ..Sink::default()
        };
        let e = event(b"Q", Some(b"R"), "192.0.2.1:1");
        sink.write(&head, false, true, &e, (&none.0, 0));
        let reply_time = |sink: &Sink| {
            let m = fields(get(&fields(split(&sink.out[..sink.used])[0]), 14).unwrap());
            (number(&m, 12), get(&m, 13).unwrap().to_vec())
        };
        assert_eq!(
            reply_time(&sink),
            (QUERY_TIME.sec, 2u32.to_le_bytes().to_vec())
        );
        sink.stamp(Stamp { sec: 1, nsec: 9 });
        assert_eq!(
            reply_time(&sink),
            (QUERY_TIME.sec, 2u32.to_le_bytes().to_vec())
        );
        sink.used = 0;
        sink.out.clear();
        sink.times.clear();
        sink.write(&head, false, true, &e, (&none.0, 0));
        sink.stamp(REPLY_TIME);
        assert_eq!(
            reply_time(&sink),
            (REPLY_TIME.sec, 5u32.to_le_bytes().to_vec())
        );
    }
}
