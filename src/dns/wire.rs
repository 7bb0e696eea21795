//! The wire-level fast path: a strict, allocation-free reader for the queries that make up
//! nearly all traffic (one question, class IN, no records but at most one OPT), and the
//! writer that turns a cached reply template into the reply to one such query.
//!
//! Anything this reader does not accept goes to the general path in `dns`, which parses
//! with hickory and answers errors (FORMERR, NOTIMP, BADVERS, REFUSED for transfers) the
//! slow way. So the rule here is to accept only what is certainly well-formed and
//! certainly answered by the answer function, and to say "not for me" otherwise.

use std::net::IpAddr;

use crate::dns::ecs;

/// The longest name on the wire (RFC 1035 section 3.1).
pub const MAX_NAME: usize = 255;

const TYPE_OPT: u16 = 41;
const OPTION_ECS: u16 = 8;
const CLASS_IN: u16 = 1;

/// Header flag bits (RFC 1035 section 4.1.1), as one big-endian u16.
const QR: u16 = 0x8000;
const OPCODE: u16 = 0x7800;
const TC: u16 = 0x0200;
const RD: u16 = 0x0100;
const Z: u16 = 0x0040;
const CD: u16 = 0x0010;

/// EDNS header flags: DNSSEC OK (RFC 3225), Compact Answers OK (RFC 9824).
const EDNS_DO: u16 = 0x8000;
const EDNS_CO: u16 = 0x4000;

/// What the first 12 bytes say, enough to drop a packet without reading further.
pub fn is_response(packet: &[u8]) -> bool {
    packet.get(2).is_some_and(|b| b & 0x80 != 0)
}

/// A query the fast path can answer, borrowed from the packet.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub id: u16,
    /// RD and CD, copied into the reply (RFC 1035 section 4.1.1; RFC 6840 section 5.9).
    pub copied_flags: u16,
    /// The question name as sent (case kept), uncompressed wire form.
    pub qname: &'a [u8],
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
}

/// The OPT record of a query.
#[derive(Debug, Clone, Copy)]
pub struct Edns {
    /// The requestor's UDP payload size, as sent.
    pub payload: u16,
    /// DNSSEC OK, copied into the reply's OPT (RFC 3225 section 3).
    pub dnssec_ok: bool,
    /// Compact Answers OK (RFC 9824 section 4): a nonexistent name in a signed reply keeps
    /// its NXDOMAIN. Echoed in the reply's OPT when honoured (the query path clears it
    /// when the zone is not signed).
    pub compact_ok: bool,
    pub ecs: Ecs,
}

/// The ECS option of a query, if any.
#[derive(Debug, Clone, Copy)]
pub enum Ecs {
    None,
    Valid(EcsOption),
    /// Present but malformed, or repeated: FORMERR when ECS is in use (RFC 7871 section
    /// 7.1.1), ignored when it is not (section 7.2.1).
    Malformed,
}

impl Ecs {
    pub fn valid(self) -> Option<EcsOption> {
        match self {
            Ecs::Valid(e) => Some(e),
            _ => None,
        }
    }
}

/// An ECS option of a query, validated (RFC 7871 section 7.1.1).
#[derive(Debug, Clone, Copy)]
pub struct EcsOption {
    pub family: u16,
    pub source_prefix: u8,
    pub addr: IpAddr,
}

impl EcsOption {
    /// The address bytes as they go on the wire: the source prefix rounded up to bytes.
    fn addr_len(&self) -> usize {
        usize::from(self.source_prefix).div_ceil(8)
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

/// The question key of a query: its name in lowercase wire form, its QTYPE, and a byte
/// for what else changes the reply (`KEY_SIGNED`, `KEY_COMPACT`), which the query path
/// fills in.
pub type QuestionKey = [u8; MAX_NAME + 3];

/// The reply is signed (DO, in a signed zone).
pub const KEY_SIGNED: u8 = 1;
/// The reply keeps NXDOMAIN for a nonexistent name (CO, signed).
pub const KEY_COMPACT: u8 = 2;

/// Reads a query the fast path answers, writing its question name and type into `key` and
/// returning the name's length there (the key is `key[..n + 3]` once the caller sets its
/// last byte). `None`: not for the fast path
/// (not necessarily malformed).
pub fn parse_query<'a>(packet: &'a [u8], key: &mut QuestionKey) -> Option<(Query<'a>, usize)> {
    let mut c = Cursor {
        buf: packet,
        pos: 0,
    };
    let id = c.u16()?;
    let flags = c.u16()?;
    // A query (QR clear) with opcode QUERY and the Z bit clear; TC in a query is odd enough
    // to leave to the general path.
    if flags & (QR | OPCODE | TC | Z) != 0 {
        return None;
    }
    let (qd, an, ns, ar) = (c.u16()?, c.u16()?, c.u16()?, c.u16()?);
    if qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return None;
    }
    let start = c.pos;
    loop {
        let l = c.u8()?;
        // Label lengths above 63 are compression pointers or reserved: not here.
        if l > 63 {
            return None;
        }
        if l == 0 {
            break;
        }
        c.take(usize::from(l))?;
        if c.pos - start + 1 > MAX_NAME {
            return None;
        }
    }
    let qname = &packet[start..c.pos];
    let len = qname.len();
    key[..len].copy_from_slice(qname);
    // Label lengths are at most 63, below b'A': lowercasing the whole wire name leaves
    // them be.
    key[..len].make_ascii_lowercase();
    let qtype = c.u16()?;
    key[len..len + 2].copy_from_slice(&qtype.to_be_bytes());
    let qclass = c.u16()?;
    // Class IN only; meta types (OPT, IXFR, AXFR; 0 is reserved) go the general way.
    if qclass != CLASS_IN || matches!(qtype, 0 | TYPE_OPT | 251 | 252) {
        return None;
    }
    let edns = if ar == 1 {
        Some(parse_opt(&mut c)?)
    } else {
        None
    };
    if c.pos != packet.len() {
        return None;
    }
    Some((
        Query {
            id,
            copied_flags: flags & (RD | CD),
            qname,
            qtype,
            qclass,
            edns,
        },
        len,
    ))
}

/// Reads the one additional record, which must be an OPT of version 0 with at most one
/// valid ECS option (other options are ignored, RFC 6891 section 6.1.2).
fn parse_opt(c: &mut Cursor<'_>) -> Option<Edns> {
    if c.u8()? != 0 || c.u16()? != TYPE_OPT {
        return None;
    }
    let payload = c.u16()?;
    let (ext_rcode, version) = (c.u8()?, c.u8()?);
    let flags = c.u16()?;
    if ext_rcode != 0 || version != 0 {
        return None;
    }
    let rdlen = usize::from(c.u16()?);
    let mut o = Cursor {
        buf: c.take(rdlen)?,
        pos: 0,
    };
    let mut ecs = Ecs::None;
    while o.pos < o.buf.len() {
        let code = o.u16()?;
        let olen = usize::from(o.u16()?);
        let value = o.take(olen)?;
        if code == OPTION_ECS {
            ecs = match (ecs, ecs::parse_option(value)) {
                (Ecs::None, Ok(subnet)) => Ecs::Valid(EcsOption {
                    family: u16::from_be_bytes([value[0], value[1]]),
                    source_prefix: subnet.net.prefix_len(),
                    addr: subnet.net.addr(),
                }),
                _ => Ecs::Malformed,
            };
        }
    }
    Some(Edns {
        payload,
        dnssec_ok: flags & EDNS_DO != 0,
        compact_ok: flags & EDNS_CO != 0,
        ecs,
    })
}

/// A wire name as text (`www.example.com.`), for logs. Labels are shown as sent, with
/// dots, backslashes and bytes outside printable ASCII escaped as in zone files.
pub struct NameText<'a>(pub &'a [u8]);

impl std::fmt::Display for NameText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut rest = self.0;
        if rest.first().is_none_or(|l| *l == 0) {
            return f.write_str(".");
        }
        while let Some((&len, tail)) = rest.split_first() {
            if len == 0 {
                break;
            }
            let (label, tail) = tail.split_at(usize::from(len).min(tail.len()));
            for &b in label {
                match b {
                    b'.' | b'\\' => write!(f, "\\{}", b as char)?,
                    0x21..=0x7e => write!(f, "{}", b as char)?,
                    _ => write!(f, "\\{b:03}")?,
                }
            }
            f.write_str(".")?;
            rest = tail;
        }
        Ok(())
    }
}

/// The largest UDP reply for a query: its EDNS payload size clamped to [512, `max`], or
/// 512 without EDNS (RFC 1035 section 4.2.1, RFC 6891 section 6.2.5).
pub fn udp_limit(edns: Option<&Edns>, max: u16) -> usize {
    usize::from(edns.map_or(512, |e| e.payload.clamp(512, max)))
}

/// A reply to one question, encoded for a lowercase question and ID 0, without OPT: what
/// the cache keeps. `reply` turns it into the reply to a particular query.
#[derive(Debug, Clone)]
pub struct Template {
    pub bytes: Box<[u8]>,
    /// Where the question section ends (header and question are all a slipped reply has).
    pub question_end: usize,
}

/// Where the question name starts in every message.
const QNAME_AT: usize = 12;

impl Template {
    /// Takes an encoded reply (header, one question, records, no OPT) whose question name
    /// must be `qname` exactly, uncompressed, as the query's name is patched over it.
    pub fn new(bytes: Vec<u8>, qname: &[u8]) -> Option<Template> {
        let question_end = QNAME_AT + qname.len() + 4;
        let ok = bytes.len() >= question_end
            && bytes[4..6] == [0, 1]
            && bytes[QNAME_AT..QNAME_AT + qname.len()] == *qname;
        ok.then(|| Template {
            bytes: bytes.into_boxed_slice(),
            question_end,
        })
    }

    /// Writes the reply to `q` into `out`: this template with the query's ID, RD and CD
    /// bits and question name (its case kept), then an OPT record when the query had one,
    /// echoing ECS with `scope` (RFC 7871 section 7.2.1). `slip` sends only header,
    /// question and OPT, with TC set: an RRL slip, or a reply that does not fit (RFC 1035
    /// section 4.2.1; the client retries over TCP). Returns false, writing nothing, when
    /// the reply would exceed `limit` bytes.
    pub fn reply(
        &self,
        q: &Query<'_>,
        opt_payload: u16,
        scope: u8,
        slip: bool,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> bool {
        let body = if slip {
            &self.bytes[..self.question_end]
        } else {
            &self.bytes[..]
        };
        let opt_len = q.edns.map_or(0, opt_len);
        if body.len() + opt_len > limit {
            return false;
        }
        out.clear();
        out.extend_from_slice(body);
        out[0..2].copy_from_slice(&q.id.to_be_bytes());
        let mut flags = u16::from_be_bytes([out[2], out[3]]) & !(RD | CD);
        flags |= q.copied_flags;
        if slip {
            flags |= TC;
            out[6..12].fill(0);
        }
        out[2..4].copy_from_slice(&flags.to_be_bytes());
        out[QNAME_AT..QNAME_AT + q.qname.len()].copy_from_slice(q.qname);
        if let Some(e) = q.edns {
            push_opt(out, &e, opt_payload, scope);
        }
        true
    }
}

/// The bytes of the OPT record a reply to `e` carries.
fn opt_len(e: Edns) -> usize {
    11 + e.ecs.valid().map_or(0, |ecs| 8 + ecs.addr_len())
}

/// Appends the reply's OPT record: our payload size, extended RCODE 0, version 0, DO
/// copied, and the ECS option echoed with `scope` when the query had a valid one. Counts
/// it in ARCOUNT.
fn push_opt(out: &mut Vec<u8>, e: &Edns, payload: u16, scope: u8) {
    let ar = u16::from_be_bytes([out[10], out[11]]).saturating_add(1);
    out[10..12].copy_from_slice(&ar.to_be_bytes());
    // Root owner, TYPE 41, CLASS = payload, TTL = extended RCODE 0, version 0, flags.
    let mut opt = [0u8; 11 + 8 + 16];
    opt[1..3].copy_from_slice(&TYPE_OPT.to_be_bytes());
    opt[3..5].copy_from_slice(&payload.to_be_bytes());
    let flags = if e.dnssec_ok { EDNS_DO } else { 0 } | if e.compact_ok { EDNS_CO } else { 0 };
    opt[7..9].copy_from_slice(&flags.to_be_bytes());
    let len = match e.ecs.valid() {
        Some(ecs) => {
            let n = ecs.addr_len();
            opt[9..11].copy_from_slice(&((8 + n) as u16).to_be_bytes());
            opt[11..13].copy_from_slice(&OPTION_ECS.to_be_bytes());
            opt[13..15].copy_from_slice(&((4 + n) as u16).to_be_bytes());
            opt[15..17].copy_from_slice(&ecs.family.to_be_bytes());
            opt[17] = ecs.source_prefix;
            opt[18] = scope.min(ecs.source_prefix);
            match ecs.addr {
                IpAddr::V4(a) => opt[19..19 + n].copy_from_slice(&a.octets()[..n]),
                IpAddr::V6(a) => opt[19..19 + n].copy_from_slice(&a.octets()[..n]),
            }
            19 + n
        }
        None => 11,
    };
    out.extend_from_slice(&opt[..len]);
}

/// A reply to `q` with `rcode` and no records: header, the question as sent and, when the
/// query had EDNS, an OPT without ECS (used for FORMERR on a malformed ECS option).
pub fn error_reply(q: &Query<'_>, rcode: u8, opt_payload: u16, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&q.id.to_be_bytes());
    out.extend_from_slice(&(QR | q.copied_flags | u16::from(rcode & 0x0F)).to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(q.qname);
    out.extend_from_slice(&q.qtype.to_be_bytes());
    out.extend_from_slice(&q.qclass.to_be_bytes());
    if let Some(mut e) = q.edns {
        e.ecs = Ecs::None;
        push_opt(out, &e, opt_payload, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(flags: u16, name: &[u8], qtype: u16, opt: Option<&[u8]>) -> Vec<u8> {
        let mut p = vec![0x12, 0x34];
        p.extend(flags.to_be_bytes());
        p.extend([0, 1, 0, 0, 0, 0, 0, u8::from(opt.is_some())]);
        p.extend(name);
        p.extend(qtype.to_be_bytes());
        p.extend(CLASS_IN.to_be_bytes());
        if let Some(o) = opt {
            p.extend(o);
        }
        p
    }

    const NAME: &[u8] = b"\x03App\x03FED\x00";

    fn opt(options: &[u8]) -> Vec<u8> {
        let mut o = vec![0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0];
        o.extend((options.len() as u16).to_be_bytes());
        o.extend(options);
        o
    }

    #[test]
    fn names_print_as_text() {
        assert_eq!(NameText(NAME).to_string(), "App.FED.");
        assert_eq!(NameText(b"\x00").to_string(), ".");
        assert_eq!(NameText(b"\x03a.b\x01\x07\x00").to_string(), "a\\.b.\\007.");
    }

    #[test]
    fn reads_a_plain_query_and_lowercases_the_name() {
        let p = query(RD, NAME, 1, None);
        let mut lower = [0; MAX_NAME + 3];
        let (q, n) = parse_query(&p, &mut lower).unwrap();
        assert_eq!(&lower[..n + 2], b"\x03app\x03fed\x00\x00\x01");
        assert_eq!(q.qname, NAME);
        assert_eq!((q.id, q.qtype, q.copied_flags), (0x1234, 1, RD));
        assert!(q.edns.is_none());
    }

    #[test]
    fn reads_edns_and_ecs() {
        let ecs = [0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100];
        let p = query(0, NAME, 28, Some(&opt(&ecs)));
        let mut lower = [0; MAX_NAME + 3];
        let (q, _) = parse_query(&p, &mut lower).unwrap();
        let e = q.edns.unwrap();
        assert_eq!(e.payload, 1232);
        assert!(e.dnssec_ok);
        let s = e.ecs.valid().unwrap();
        assert_eq!((s.family, s.source_prefix), (1, 24));
        assert_eq!(s.addr, "198.51.100.0".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn leaves_the_unusual_to_the_general_path() {
        let mut lower = [0; MAX_NAME + 3];
        let cases: Vec<Vec<u8>> = vec![
            query(QR, NAME, 1, None),
            query(0x2800, NAME, 1, None), // opcode UPDATE
            query(Z, NAME, 1, None),
            query(0, NAME, 252, None),             // AXFR
            query(0, b"\x03app\xc0\x0c", 1, None), // pointer in the question
            query(0, NAME, 1, Some(&[0, 0, 41, 4, 0xd0, 0, 1, 0, 0, 0, 0])), // version 1
            {
                let mut p = query(0, NAME, 1, None);
                p.push(0); // trailing byte
                p
            },
            query(0, NAME, 1, None)[..15].to_vec(),
        ];
        for p in cases {
            assert!(parse_query(&p, &mut lower).is_none(), "{p:?}");
        }
    }

    #[test]
    fn malformed_or_repeated_ecs_is_flagged() {
        let mut lower = [0; MAX_NAME + 3];
        let ecs = [0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100];
        let twice: Vec<u8> = ecs.iter().chain(&ecs).copied().collect();
        for options in [&[0, 8, 0, 4, 0, 1, 24, 0][..], &twice] {
            let p = query(0, NAME, 1, Some(&opt(options)));
            let (q, _) = parse_query(&p, &mut lower).unwrap();
            assert!(matches!(q.edns.unwrap().ecs, Ecs::Malformed), "{options:?}");
        }
        // The FORMERR for it: the question and an OPT without ECS, DO copied.
        let p = query(RD, NAME, 1, Some(&opt(&twice)));
        let (q, _) = parse_query(&p, &mut lower).unwrap();
        let mut out = Vec::new();
        error_reply(&q, 1, 1232, &mut out);
        let mut want = vec![0x12, 0x34, 0x81, 0x01, 0, 1, 0, 0, 0, 0, 0, 1];
        want.extend(NAME);
        want.extend([0, 1, 0, 1, 0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 0]);
        assert_eq!(out, want);
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut lower = [0; MAX_NAME + 3];
        let mut seed = 0x9e37_79b9_u64;
        let base = query(0, NAME, 1, Some(&opt(&[0, 8, 0, 7, 0, 1, 24, 0, 1, 2, 3])));
        for i in 0..20_000 {
            let mut p = base.clone();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed as usize) % p.len();
            p[at] = (seed >> 32) as u8;
            p.truncate(p.len() - i % 3);
            let _ = parse_query(&p, &mut lower);
        }
        // Labels that add up to more than 255 bytes.
        let mut long = Vec::new();
        for _ in 0..5 {
            long.push(63);
            long.extend([b'a'; 63]);
        }
        long.push(0);
        assert!(parse_query(&query(0, &long, 1, None), &mut lower).is_none());
    }

    #[test]
    fn reply_patches_id_flags_case_and_appends_opt() {
        // Header: QR AA, rcode NXDOMAIN, one question, no records.
        let mut t = vec![0, 0, 0x84, 0x03, 0, 1, 0, 0, 0, 0, 0, 0];
        t.extend(b"\x03app\x03fed\x00\x00\x01\x00\x01");
        let t = Template::new(t, b"\x03app\x03fed\x00").unwrap();
        let ecs = [0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100];
        let p = query(RD | CD, NAME, 1, Some(&opt(&ecs)));
        let mut lower = [0; MAX_NAME + 3];
        let (q, _) = parse_query(&p, &mut lower).unwrap();
        let mut out = Vec::new();
        assert!(t.reply(&q, 1232, 16, false, 1232, &mut out));
        assert_eq!(&out[..4], &[0x12, 0x34, 0x85, 0x13]);
        assert_eq!(&out[10..12], &[0, 1]);
        assert_eq!(&out[12..12 + NAME.len()], NAME);
        assert_eq!(
            &out[t.question_end..],
            &[
                0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 11, 0, 8, 0, 7, 0, 1, 24, 16, 198, 51, 100
            ]
        );
        // Too big for the limit: nothing written.
        let mut small = Vec::new();
        assert!(!t.reply(&q, 1232, 16, false, 40, &mut small));
        assert!(small.is_empty());
        // A slip: truncated, not authoritative, counts zeroed but for the OPT.
        assert!(t.reply(&q, 1232, 16, true, 1232, &mut out));
        assert_eq!(&out[2..4], &[0x87, 0x13]);
        assert_eq!(&out[6..12], &[0, 0, 0, 0, 0, 1]);
    }
}
