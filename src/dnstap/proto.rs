//! The dnstap protobuf (dnstap.proto, the schema every dnstap reader shares), written by
//! hand: the few fields fedns fills need no code generator. Runs on the query path, into
//! the worker's own buffer, with scratch space it keeps: nothing is allocated once warm.
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

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Event, Transport};

/// Which message an event becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    AuthQuery = 1,
    AuthResponse = 2,
}

const VARINT: u64 = 0;
const FIXED32: u64 = 5;
const BYTES: u64 = 2;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, (field << 3) | wire);
}

fn bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    key(out, field, BYTES);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn uint(out: &mut Vec<u8>, field: u64, v: u64) {
    key(out, field, VARINT);
    varint(out, v);
}

fn fixed32(out: &mut Vec<u8>, field: u64, v: u32) {
    key(out, field, FIXED32);
    out.extend_from_slice(&v.to_le_bytes());
}

fn time(out: &mut Vec<u8>, sec_field: u64, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    uint(out, sec_field, d.as_secs());
    fixed32(out, sec_field + 1, d.subsec_nanos());
}

/// An address as dnstap has it: its family (INET 1, INET6 2) and its bytes.
struct Address {
    bytes: [u8; 16],
    len: usize,
}

impl Address {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

fn address(ip: IpAddr) -> (u64, Address) {
    let mut bytes = [0u8; 16];
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            bytes[..4].copy_from_slice(&a.octets());
            (1, Address { bytes, len: 4 })
        }
        IpAddr::V6(a) => (
            2,
            Address {
                bytes: a.octets(),
                len: 16,
            },
        ),
    }
}

/// A worker's scratch space for encoding: the fields both messages of an event share, a
/// message, and the `extra` text.
#[derive(Debug, Default)]
pub struct Scratch {
    shared: Vec<u8>,
    message: Vec<u8>,
    extra: Vec<u8>,
}

/// The frame's constant head: identity and version.
pub fn head(identity: &[u8], version: &[u8]) -> Vec<u8> {
    let mut head = Vec::new();
    if !identity.is_empty() {
        bytes(&mut head, 1, identity);
    }
    if !version.is_empty() {
        bytes(&mut head, 2, version);
    }
    head
}

impl Scratch {
    /// Appends the data frames of `e` (an `AUTH_QUERY` when `queries`, an
    /// `AUTH_RESPONSE` when `responses` and there was a reply) to `out`, each its length
    /// then its protobuf; returns how many.
    pub fn frames(
        &mut self,
        head: &[u8],
        queries: bool,
        responses: bool,
        e: &Event<'_>,
        out: &mut Vec<u8>,
    ) -> u64 {
        self.extra.clear();
        e.decision.write(&mut self.extra);
        let m = &mut self.shared;
        m.clear();
        let (family, client) = address(e.client.ip());
        let (_, server) = address(e.server.ip());
        uint(m, 2, family);
        let protocol = match e.transport {
            Transport::Udp => 1,
            Transport::Tcp => 2,
        };
        uint(m, 3, protocol);
        bytes(m, 4, client.as_slice());
        bytes(m, 5, server.as_slice());
        uint(m, 6, u64::from(e.client.port()));
        uint(m, 7, u64::from(e.server.port()));
        time(m, 8, e.query_time);
        bytes(m, 10, e.query);
        let mut n = 0;
        if queries {
            self.frame(head, Kind::AuthQuery, e, out);
            n += 1;
        }
        if responses && e.reply.is_some() {
            self.frame(head, Kind::AuthResponse, e, out);
            n += 1;
        }
        n
    }

    fn frame(&mut self, head: &[u8], kind: Kind, e: &Event<'_>, out: &mut Vec<u8>) {
        let m = &mut self.message;
        m.clear();
        uint(m, 1, kind as u64);
        m.extend_from_slice(&self.shared);
        if let (Kind::AuthResponse, Some(reply)) = (kind, e.reply) {
            time(m, 12, e.response_time);
            bytes(m, 14, reply);
        }
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(head);
        if !self.extra.is_empty() {
            bytes(out, 3, &self.extra);
        }
        bytes(out, 14, m);
        uint(out, 15, 1);
        let len = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_a_message_round_the_known_bytes() {
        let mut v = Vec::new();
        varint(&mut v, 300);
        assert_eq!(v, [0xAC, 0x02]);
        let decision = super::super::Decision {
            policy: Some("x"),
            ..Default::default()
        };
        let e = Event {
            client: "192.0.2.1:5353".parse().unwrap(),
            server: "127.0.0.1:53".parse().unwrap(),
            transport: Transport::Udp,
            query_time: UNIX_EPOCH + std::time::Duration::new(1, 2),
            response_time: UNIX_EPOCH + std::time::Duration::new(1, 5),
            query: b"QQ",
            reply: Some(b"RRR"),
            decision: &decision,
        };
        let mut s = Scratch::default();
        let mut out = Vec::new();
        assert_eq!(s.frames(&head(b"id", b""), true, true, &e, &mut out), 2);
        // The first frame: its length, identity, extra, the message (type AUTH_QUERY
        // first), then type MESSAGE.
        let len = u32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
        let q = &out[4..4 + len];
        assert_eq!(&q[..4], &[0x0A, 2, b'i', b'd']);
        assert_eq!(&q[4..14], b"\x1A\x08policy=x");
        assert_eq!(q[14], 0x72); // field 14, length-delimited
        assert_eq!(&q[16..18], &[0x08, 1]);
        assert_eq!(&q[q.len() - 2..], &[0x78, 1]);
        // The query's bytes are in it, the reply's are not; the second frame has both.
        assert!(q.windows(4).any(|w| w == [0x52, 2, b'Q', b'Q']));
        assert!(!q.windows(3).any(|w| w == b"RRR"));
        let r = &out[8 + len..];
        assert!(r.windows(5).any(|w| w == [0x72, 3, b'R', b'R', b'R']));
        // No reply: no response frame.
        let e = Event { reply: None, ..e };
        out.clear();
        assert_eq!(s.frames(&head(b"id", b""), true, true, &e, &mut out), 1);
    }
}
