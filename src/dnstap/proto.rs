//! The dnstap protobuf (dnstap.proto, the schema every dnstap reader shares), written by
//! hand: the few fields fedns fills need no code generator. Runs on the query path, so a
//! frame is written in place: its size is known before it is written, the worker's buffer
//! is grown (rarely) to hold it, and every field is then a store at a known place. The
//! fields that both messages of an event share are written once, on the stack, and copied.
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
//! (identity, version, type) in one copy. As in BIND's and Knot's dnstap, an
//! `AUTH_RESPONSE` carries the response message and not the query again.

use std::net::IpAddr;

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

/// Bytes a writer may store past its end with the fixed-width writes below; the frames'
/// room counts them.
const SLACK: usize = 256;

/// A cursor over a slice the frames are known to fit, `SLACK` included. Short fields are
/// built in registers and stored whole (8 bytes, or a fixed-size block), then the cursor
/// moves by their true length: what is stored past it is written over next, or lies past
/// the frames.
struct Put<'a> {
    b: &'a mut [u8],
    at: usize,
}

impl Put<'_> {
    #[inline(always)]
    fn byte(&mut self, v: u8) {
        self.b[self.at] = v;
        self.at += 1;
    }

    /// The low `len` bytes of `v`, little-endian.
    #[inline(always)]
    fn word(&mut self, v: u64, len: usize) {
        self.b[self.at..self.at + 8].copy_from_slice(&v.to_le_bytes());
        self.at += len;
    }

    /// The first `len` bytes of a block of `N`.
    #[inline(always)]
    fn block<const N: usize>(&mut self, src: &[u8; N], len: usize) {
        self.b[self.at..self.at + N].copy_from_slice(src);
        self.at += len;
    }

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

    /// A field's key and its varint value.
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

/// The most bytes the fields both messages share take (family, protocol, two addresses of
/// 16 bytes, two ports and the query time: 59), and room for the last fixed-width write.
const SHARED_BLOCK: usize = 64 + 16;

/// What a worker's frames keep from one event to the next: the varint of the last second,
/// and the block the fields both messages of an event share are written into, once per
/// event (kept, so neither cleared nor moved per event).
#[derive(Debug)]
pub struct Scratch {
    seconds: Seconds,
    shared: [u8; SHARED_BLOCK],
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            seconds: Seconds::default(),
            shared: [0; SHARED_BLOCK],
        }
    }
}

/// An address field: its key, its length and its bytes.
#[inline(always)]
fn address(p: &mut Put<'_>, key: u8, ip: IpAddr) {
    match ip.to_canonical() {
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
            (self.word, self.len) = if sec < 1 << 49 {
                varint_word(sec)
            } else {
                (0, 0)
            };
            self.sec = sec;
        }
        (self.word, self.len)
    }
}

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

/// Writes the fields both messages of `e` share into `scratch.shared`; returns their length.
fn shared(e: &Event<'_>, scratch: &mut Scratch) -> usize {
    let (client, server) = (&e.client, &e.server);
    let mut p = Put {
        b: &mut scratch.shared,
        at: 0,
    };
    let family: u64 = if client.ip().to_canonical().is_ipv4() {
        1
    } else {
        2
    };
    let protocol: u64 = match e.transport {
        Transport::Udp => 1,
        Transport::Tcp => 2,
    };
    p.word(
        u64::from(key(2, VARINT)) | family << 8 | u64::from(key(3, VARINT)) << 16 | protocol << 24,
        4,
    );
    address(&mut p, key(4, BYTES), client.ip());
    address(&mut p, key(5, BYTES), server.ip());
    p.uint(key(6, VARINT), u64::from(client.port()));
    p.uint(key(7, VARINT), u64::from(server.port()));
    time(&mut p, &mut scratch.seconds, 8, e.query_time);
    p.at
}

/// The frame's constant fields: identity, version and type MESSAGE, kept in a block of
/// `HEAD_BLOCK` bytes when they fit (copied whole), else as they are.
#[derive(Debug)]
pub struct Head {
    block: [u8; HEAD_BLOCK],
    bytes: Vec<u8>,
}

const HEAD_BLOCK: usize = 64;

impl Head {
    pub fn new(identity: &[u8], version: &[u8]) -> Head {
        let mut bytes = vec![0; 20 + identity.len() + version.len() + SLACK];
        let mut p = Put {
            b: &mut bytes,
            at: 0,
        };
        if !identity.is_empty() {
            p.bytes(key(1, BYTES), identity);
        }
        if !version.is_empty() {
            p.bytes(key(2, BYTES), version);
        }
        p.byte(key(15, VARINT));
        p.byte(1);
        let n = p.at;
        bytes.truncate(n);
        let mut block = [0; HEAD_BLOCK];
        if n <= HEAD_BLOCK {
            block[..n].copy_from_slice(&bytes);
        }
        Head { block, bytes }
    }

    #[inline(always)]
    fn put(&self, p: &mut Put<'_>) {
        if self.bytes.len() <= HEAD_BLOCK {
            p.block(&self.block, self.bytes.len());
        } else {
            p.slice(&self.bytes);
        }
    }
}

/// Appends the data frames of `e` (an `AUTH_QUERY` when `queries`, an `AUTH_RESPONSE`
/// when `responses` and there was a reply) at `out[*used..]`, each its length then its
/// protobuf, growing `out` (whose bytes are all initialized; only `*used` of them count)
/// when they would not fit; returns how many frames. `extra` is at most `EXTRA_BLOCK`
/// bytes, in a block of that size.
#[allow(clippy::too_many_arguments)]
pub fn frames(
    head: &Head,
    queries: bool,
    responses: bool,
    e: &Event<'_>,
    extra: (&[u8; EXTRA_BLOCK], usize),
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
    used: &mut usize,
) -> u64 {
    let reply = e.reply.filter(|_| responses);
    if !queries && reply.is_none() {
        return 0;
    }
    let shared_len = shared(e, scratch);
    // The most a frame takes around its DNS message: its length, the constant fields,
    // `extra` (key and length, 3), the message's key and length (4), its type (2), the
    // shared fields, the response time (11), the DNS message's key and length (4).
    let most = 4 + head.bytes.len() + 3 + extra.1 + 4 + 2 + shared_len + 11 + 4;
    let need = 2 * most + e.query.len() + reply.map_or(0, <[u8]>::len) + SLACK;
    if out.len() < *used + need {
        out.resize((*used + need).max(out.len() * 2).max(4096), 0);
    }
    let mut p = Put {
        b: &mut out[*used..*used + need],
        at: 0,
    };
    let mut n = 0;
    if queries {
        let message = 2 + shared_len + 1 + varint_len(e.query.len() as u64) + e.query.len();
        let shared = (&scratch.shared, shared_len);
        frame(&mut p, head, extra, Kind::AuthQuery, shared, message);
        p.bytes(key(10, BYTES), e.query);
        n += 1;
    }
    if let Some(reply) = reply {
        let message = 2 + shared_len + 11 + 1 + varint_len(reply.len() as u64) + reply.len();
        let shared = (&scratch.shared, shared_len);
        frame(&mut p, head, extra, Kind::AuthResponse, shared, message);
        time(&mut p, &mut scratch.seconds, 12, e.response_time);
        p.bytes(key(14, BYTES), reply);
        n += 1;
    }
    *used += p.at;
    n
}

/// The size of the block `extra` comes in.
pub const EXTRA_BLOCK: usize = 192;

/// Writes a frame up to its DNS message: the frame's length, the constant fields, `extra`,
/// the message's key and length (`message` bytes), its type and the shared fields.
#[inline(always)]
fn frame(
    p: &mut Put<'_>,
    head: &Head,
    extra: (&[u8; EXTRA_BLOCK], usize),
    kind: Kind,
    shared: (&[u8; SHARED_BLOCK], usize),
    message: usize,
) {
    let mut body = head.bytes.len() + 1 + varint_len(message as u64) + message;
    if extra.1 > 0 {
        body += 1 + varint_len(extra.1 as u64) + extra.1;
    }
    p.word(u64::from((body as u32).swap_bytes()), 4);
    head.put(p);
    if extra.1 > 0 {
        p.uint(key(3, BYTES), extra.1 as u64);
        // Most texts fit the first third of the block: a third of the copy.
        match extra.0.first_chunk::<64>() {
            Some(short) if extra.1 <= 64 => p.block(short, extra.1),
            _ => p.block(extra.0, extra.1),
        }
    }
    p.uint(key(14, BYTES), message as u64);
    p.word(u64::from(key(1, VARINT)) | (kind as u64) << 8, 2);
    p.block(shared.0, shared.1);
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

    fn event<'a>(query: &'a [u8], reply: Option<&'a [u8]>, client: &str) -> Event<'a> {
        Event {
            client: client.parse().unwrap(),
            server: "127.0.0.1:53".parse().unwrap(),
            transport: Transport::Udp,
            query_time: Stamp { sec: 1, nsec: 2 },
            response_time: Stamp {
                sec: 1_700_000_000,
                nsec: 5,
            },
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
    #[derive(Default)]
    struct Sink {
        out: Vec<u8>,
        used: usize,
        scratch: Scratch,
    }

    impl Sink {
        fn write(
            &mut self,
            head: &Head,
            queries: bool,
            responses: bool,
            e: &Event<'_>,
            extra: (&[u8; EXTRA_BLOCK], usize),
        ) -> u64 {
            let (out, used, scratch) = (&mut self.out, &mut self.used, &mut self.scratch);
            frames(head, queries, responses, e, extra, scratch, out, used)
        }
    }

    #[test]
    fn varint_lengths() {
        let mut values = vec![0u64, 1, 127, 128, 300, 16_383, 16_384, u64::MAX];
        values.extend((14..64).flat_map(|bits| [(1u64 << bits) - 1, 1 << bits, (1 << bits) + 1]));
        for v in values {
            let mut b = [0u8; 16];
            let mut p = Put { b: &mut b, at: 0 };
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
        Put { b: &mut b, at: 0 }.varint(300);
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
            scratch: Scratch::default(),
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
            assert_eq!(get(&top, 3), Some(&b"policy=x"[..]));
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
            assert_eq!(get(&m, 8).map(|v| v[0]), Some(1));
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
}
