//! The dnstap protobuf (dnstap.proto, the schema every dnstap reader shares), written by
//! hand: the few fields fedns fills need no code generator. Runs on the writer thread.
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

/// Scratch space of the writer thread, kept between frames so that encoding allocates
/// nothing once warm: the fields both messages of an event share, its `extra`, and the
/// frame's constant head (identity and version).
#[derive(Default)]
pub struct Scratch {
    shared: Vec<u8>,
    message: Vec<u8>,
    tail: Vec<u8>,
    frame: Vec<u8>,
    head: Vec<u8>,
    extra: Vec<u8>,
}

impl Scratch {
    /// A scratch for frames with this identity and version.
    pub fn new(identity: &[u8], version: &[u8]) -> Scratch {
        let mut head = Vec::new();
        if !identity.is_empty() {
            bytes(&mut head, 1, identity);
        }
        if !version.is_empty() {
            bytes(&mut head, 2, version);
        }
        Scratch {
            head,
            ..Scratch::default()
        }
    }

    /// Encodes what both frames of `e` share: addresses, ports, transport, the query and
    /// its time, and the `extra` text.
    pub fn event(&mut self, e: &Event) {
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
        bytes(m, 10, e.query());
    }
}

/// Writes the data frame of `e` as a `kind` message (its length, then the Dnstap
/// protobuf) to `w`, piece by piece, with no copy of the message; `s.event(e)` must have
/// been called for this event.
pub fn write_frame(
    kind: Kind,
    e: &Event,
    s: &mut Scratch,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    // The message: its type, the shared fields, and for a response its time and bytes.
    let m = &mut s.message;
    m.clear();
    uint(m, 1, kind as u64);
    let tail = if kind == Kind::AuthResponse {
        let reply = e.reply();
        let mut t = Vec::new();
        std::mem::swap(&mut t, &mut s.tail);
        t.clear();
        time(&mut t, 12, e.response_time);
        key(&mut t, 14, BYTES);
        varint(&mut t, reply.len() as u64);
        s.tail = t;
        Some(reply)
    } else {
        None
    };
    let tail_len = tail.map_or(0, |r| s.tail.len() + r.len());
    let m_len = m.len() + s.shared.len() + tail_len;
    // The Dnstap around it: head (identity, version), extra, message, type.
    let f = &mut s.frame;
    f.clear();
    f.extend_from_slice(&s.head);
    if !s.extra.is_empty() {
        bytes(f, 3, &s.extra);
    }
    key(f, 14, BYTES);
    varint(f, m_len as u64);
    let total = f.len() + m_len + 2;
    let total = u32::try_from(total).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    w.write_all(&total.to_be_bytes())?;
    w.write_all(f)?;
    w.write_all(m)?;
    w.write_all(&s.shared)?;
    if let Some(reply) = tail {
        w.write_all(&s.tail)?;
        w.write_all(reply)?;
    }
    // type = MESSAGE
    w.write_all(&[0x78, 1])
}

/// The data frame's payload of `e` as a `kind` message, as `write_frame` writes it (for
/// tests and readers of this module).
pub fn encode(kind: Kind, e: &Event, s: &mut Scratch) -> Vec<u8> {
    let mut framed = Vec::new();
    write_frame(kind, e, s, &mut framed).expect("writing to a vector");
    framed.split_off(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_a_message_round_the_known_bytes() {
        let mut v = Vec::new();
        varint(&mut v, 300);
        assert_eq!(v, [0xAC, 0x02]);
        let e = Event {
            client: "192.0.2.1:5353".parse().unwrap(),
            server: "127.0.0.1:53".parse().unwrap(),
            transport: Transport::Udp,
            query_time: UNIX_EPOCH + std::time::Duration::new(1, 2),
            response_time: UNIX_EPOCH + std::time::Duration::new(1, 5),
            bytes: b"QQRRR".to_vec(),
            query_len: 2,
            replied: true,
            decision: super::super::Decision {
                policy: Some("x"),
                ..Default::default()
            },
        };
        let mut s = Scratch::new(b"id", b"");
        s.event(&e);
        let out = encode(Kind::AuthQuery, &e, &mut s);
        // identity, extra, then the message (type AUTH_QUERY first), then type MESSAGE.
        assert_eq!(&out[..4], &[0x0A, 2, b'i', b'd']);
        assert_eq!(&out[4..14], b"\x1A\x08policy=x");
        assert_eq!(out[14], 0x72); // field 14, length-delimited
        assert_eq!(&out[16..18], &[0x08, 1]);
        assert_eq!(&out[out.len() - 2..], &[0x78, 1]);
        // The query's bytes are there, the reply's are not.
        assert!(out.windows(4).any(|w| w == [0x52, 2, b'Q', b'Q']));
        assert!(!out.windows(3).any(|w| w == b"RRR"));
        let out = encode(Kind::AuthResponse, &e, &mut s);
        assert!(out.windows(5).any(|w| w == [0x72, 3, b'R', b'R', b'R']));
    }
}
