//! The fast path: a query `wire` accepted (one question, class IN, at most an OPT) is
//! answered from the worker's cache of reply templates, or by the answer function and a
//! new template on a miss.

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, Query as HickoryQuery};
use hickory_proto::rr::{DNSClass, Name};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use hickory_server::proto::op::{OpCode, ResponseCode};
use hickory_server::proto::rr::RecordType;
use ipnet::IpNet;

use super::cache::{Cached, Keep, Lookup};
use super::rrl::Verdict;
use super::wire::{self, Ecs, Template};
use super::{Handler, MAX_UDP_PAYLOAD, Outcome, Worker, signed};
use crate::answer::{self, Client, Question};
use crate::dnssec::SigCache;
use crate::dnstap::Decision;
use crate::metrics::{LocalStats, Transport};
use crate::snapshot::{LocationKey, NetworkKey, Snapshot};

impl Handler {
    /// The fast path, for a query `wire` accepted: the cached template, or the answer
    /// function and a new template on a miss. None: leave it to the general path (the
    /// answer cannot be templated).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fast(
        &self,
        w: &mut Worker,
        snap: &Arc<Snapshot>,
        mut q: wire::Query<'_>,
        n: usize,
        src: SocketAddr,
        proto: Transport,
        out: &mut Vec<u8>,
    ) -> Option<bool> {
        let mut signed = false;
        if let Some(e) = q.edns.as_mut() {
            // Compact Answers OK means something only in a signed reply.
            signed = e.dnssec_ok && snap.dnssec.is_some();
            e.compact_ok &= signed;
            if !snap.use_ecs {
                // ECS off: neither used nor echoed, and not even checked.
                e.ecs = Ecs::None;
            } else if let Ecs::Malformed = e.ecs {
                let payload = e.payload.clamp(512, MAX_UDP_PAYLOAD);
                wire::error_reply(&q, ResponseCode::FormErr.low(), payload, out);
                let qtype = RecordType::from(q.qtype);
                match self.rrl(src, Some(&w.key[..n]), qtype, ResponseCode::FormErr, proto) {
                    Verdict::Send => {}
                    // No records to strip: the slip is the same reply with TC.
                    Verdict::Slip => out[2] |= 0x02,
                    Verdict::Drop => return Some(false),
                }
                w.stats
                    .query(proto, RecordType::from(q.qtype), ResponseCode::FormErr);
                return Some(true);
            }
        }
        let ecs = q.edns.and_then(|e| e.ecs.valid());
        // A /0 source prefix asks not to be located by subnet (RFC 7871 section 7.1.2).
        let ecs_net = ecs
            .filter(|e| e.source_prefix > 0)
            .and_then(|e| IpNet::new(e.addr, e.source_prefix).ok());
        let locating = ecs_net.map_or(src.ip(), |n| n.addr());
        w.key[n + 2] = match q.edns {
            Some(e) if signed => {
                wire::KEY_SIGNED | if e.compact_ok { wire::KEY_COMPACT } else { 0 }
            }
            _ => 0,
        };
        let key = &w.key[..n + 3];
        let name = &w.key[..n];
        let now = w.now;
        let mut location = None;
        // `never`: known to vary, so answered afresh each time and not remembered.
        let mut never = false;
        let hit = match w.cache.get(key) {
            Lookup::Hit(c) if c.renew_at > now => Some((c, 0, false)),
            Lookup::Hit(_) => None,
            Lookup::ByLocation(m) => {
                let l = w.memo.locate(&snap.locator, locating);
                location = Some(l);
                m.get(&l.0, || NetworkKey::of(locating, l.1))
                    .filter(|c| c.renew_at > now)
                    .map(|c| {
                        // The ECS scope: the widest block with this answer, within the
                        // source prefix.
                        let scope = match (c.client_dependent, ecs_net) {
                            (true, Some(net)) => {
                                w.memo.widest(c, locating, l.1).min(net.prefix_len())
                            }
                            _ => 0,
                        };
                        let widened = c.client_dependent
                            && ecs_net.is_some_and(|n| scope < l.1.min(n.prefix_len()));
                        (c, scope, widened)
                    })
            }
            Lookup::Miss => None,
            Lookup::Uncacheable => {
                never = true;
                None
            }
        };
        if let Some((c, scope, widened)) = hit {
            let reply = Reply { scope, widened };
            return Some(self.emit(
                &mut w.stats,
                w.tap_to.as_ref().map(|_| &mut w.tap),
                snap,
                c,
                &q,
                name,
                reply,
                src,
                proto,
                out,
            ));
        }
        let sign = match q.edns {
            Some(e) if signed => Some((e.compact_ok, &mut w.sigs)),
            _ => None,
        };
        let (cached, reply, store) = template_for(snap, name, q.qtype, src, ecs_net, sign)?;
        let sent = self.emit(
            &mut w.stats,
            w.tap_to.as_ref().map(|_| &mut w.tap),
            snap,
            &cached,
            &q,
            name,
            reply,
            src,
            proto,
            out,
        );
        if !never {
            let store = match store {
                Keep::ByLocation(_) => {
                    let l = location.unwrap_or_else(|| w.memo.locate(&snap.locator, locating));
                    if cached.per_network {
                        Keep::ByNetwork(l.0, NetworkKey::of(locating, l.1))
                    } else {
                        Keep::ByLocation(l.0)
                    }
                }
                s => s,
            };
            w.cache.insert(key, store, cached);
        }
        Some(sent)
    }

    /// Writes the reply to `q` from `c` (truncated when it does not fit the client's UDP
    /// buffer; subject to RRL), then counts and logs it. False: drop it.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        stats: &mut LocalStats,
        tap: Option<&mut Decision>,
        snap: &Snapshot,
        c: &Cached,
        q: &wire::Query<'_>,
        lower: &[u8],
        reply: Reply,
        src: SocketAddr,
        proto: Transport,
        out: &mut Vec<u8>,
    ) -> bool {
        let scope = reply.scope;
        let limit = match proto {
            Transport::Udp => wire::udp_limit(q.edns.as_ref(), MAX_UDP_PAYLOAD),
            Transport::Tcp => usize::from(u16::MAX),
        };
        let payload = q
            .edns
            .map_or(512, |e| e.payload.clamp(512, MAX_UDP_PAYLOAD));
        if !c.template.reply(q, payload, scope, false, limit, out) {
            // Too big for the client's buffer: header, question and OPT with TC, so that
            // it retries over TCP (RFC 7766 section 5). These always fit in 512 bytes.
            c.template
                .reply(q, payload, scope, true, usize::from(u16::MAX), out);
        }
        let qtype = RecordType::from(q.qtype);
        match self.rrl(src, Some(lower), qtype, c.rcode, proto) {
            Verdict::Send => {}
            Verdict::Slip => {
                c.template
                    .reply(q, payload, scope, true, usize::from(u16::MAX), out);
            }
            Verdict::Drop => return false,
        }
        let ecs = q
            .edns
            .and_then(|e| e.ecs.valid())
            .is_some_and(|e| e.source_prefix > 0);
        let outcome = Outcome {
            src,
            transport: proto,
            qtype,
            rcode: c.rcode,
            answers: usize::from(c.answers),
            first_cluster: c.first_cluster,
            located_by: c.located_by.as_ref(),
            fail_open: c.fail_open,
            ecs,
            scope,
            steered: c.steered,
            widened: reply.widened,
            decided: c.decided,
        };
        self.account(stats, tap, snap, &outcome, &wire::NameText(q.qname));
        true
    }
}

/// The ECS scope of one reply, and whether it is wider than the network that placed the
/// client.
#[derive(Clone, Copy)]
struct Reply {
    scope: u8,
    widened: bool,
}

/// The answer to a question the fast path read, as a template for its cache, the ECS
/// scope of this answer, and where the cache may keep it; signed when `sign` says so
/// (Compact Answers OK, and the worker's signatures). None when the answer needs what a
/// template cannot carry (an extended RCODE).
fn template_for(
    snap: &Snapshot,
    lower: &[u8],
    qtype: u16,
    src: SocketAddr,
    ecs: Option<IpNet>,
    sign: Option<(bool, &mut SigCache)>,
) -> Option<(Cached, Reply, Keep)> {
    let name = Name::read(&mut BinDecoder::new(lower)).ok()?;
    let rtype = RecordType::from(qtype);
    let question = Question {
        name: &name,
        qtype: rtype,
        qclass: DNSClass::IN,
    };
    let client = Client {
        source: src.ip(),
        ecs,
    };
    let mut a = answer::answer(snap, &question, &client, false);
    if a.rcode.high() != 0 {
        return None;
    }
    let answers = a.answers.len() as u16;
    let decided = super::decided(&a);
    let renew_at = match sign {
        Some((compact_ok, sigs)) => {
            signed::sign(snap, &mut a, compact_ok, signed::unix_now(), sigs)
        }
        None => u32::MAX,
    };
    let mut m = Message::new(0, MessageType::Response, OpCode::Query);
    m.metadata.authoritative = a.authoritative;
    m.metadata.response_code = a.rcode;
    m.add_query(HickoryQuery::query(name, rtype));
    m.answers = a.answers;
    m.authorities = a.authority;
    m.additionals = a.additionals;
    let bytes = m.to_vec().ok()?;
    let template = Template::new(bytes, lower)?;
    let store = if a.varies {
        Keep::Uncacheable
    } else if a.located_by.is_some() {
        // The key is filled in by the caller, who knows the client.
        Keep::ByLocation(LocationKey::Unknown)
    } else {
        Keep::ForAll
    };
    let cached = Cached {
        decided,
        template,
        rcode: a.rcode,
        client_dependent: a.client_dependent,
        first_cluster: a.first_cluster,
        located_by: a.located_by,
        fail_open: a.fail_open,
        answers,
        per_network: a.per_network,
        steered: a.steered,
        scope_maps: a.scope_maps.into_boxed_slice(),
        renew_at,
    };
    let reply = Reply {
        scope: a.scope,
        widened: a.widened,
    };
    Some((cached, reply, store))
}
