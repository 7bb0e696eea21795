//! A reply to a query with DO, in a signed zone: compact denial for what does not exist
//! (RFC 9824: NOERROR and an NSEC with NXNAME, or NXDOMAIN when the query says Compact
//! Answers OK), then an RRSIG for every RRset, from the worker's signature cache when it
//! has them.

use hickory_proto::op::ResponseCode;

use crate::answer::Answer;
use crate::dnssec::{self, SigCache};
use crate::snapshot::Snapshot;

/// Signs `a` for a query with DO, at `now`; `compact_ok` keeps an NXDOMAIN. Returns when
/// its earliest signature should be made again (`u32::MAX`: nothing signed, as when the
/// zone is not signed or the reply is an error).
pub(super) fn sign(
    snap: &Snapshot,
    a: &mut Answer,
    compact_ok: bool,
    now: u32,
    sigs: &mut SigCache,
) -> u32 {
    let Some(zone) = &snap.dnssec else {
        return u32::MAX;
    };
    if !matches!(a.rcode, ResponseCode::NoError | ResponseCode::NXDomain) {
        return u32::MAX;
    }
    if let Some(d) = &a.denial {
        if a.rcode == ResponseCode::NXDomain && !compact_ok {
            a.rcode = ResponseCode::NoError;
        }
        a.authority.extend(d.nsec(snap.negative_ttl));
    }
    dnssec::sign_reply(zone, &mut a.answers, &mut a.authority, now, sigs)
}

/// Unix seconds now, as RRSIGs count them (serial number arithmetic past 2106).
pub(super) fn unix_now() -> u32 {
    crate::civil::unix_now() as u32
}
