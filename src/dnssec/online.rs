//! Online signing of one reply: an RRSIG for every RRset of the answer and authority
//! sections (but a delegation's NS, which the parent does not sign), and the compact
//! denial of existence of RFC 9824 for negative answers: one NSEC from the name to its
//! immediate successor, so that nothing of the zone can be walked.
//!
//! Signing is the costly part of a reply (tens of microseconds per RRset), so each query
//! worker keeps the signatures it made in a `SigCache` keyed by the RRset itself: the same
//! addresses answered to a thousand client locations are signed once.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use foldhash::fast::{FixedState, RandomState};
use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::zone::Zone;

/// The meta-type an NSEC of a nonexistent name carries (RFC 9824 section 3.1).
pub const NXNAME: u16 = 128;

/// What a negative answer denies, for its NSEC: the name, the types that exist there (for
/// a NODATA), or that the name itself does not exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    pub owner: Name,
    /// Types at the name; RRSIG and NSEC are added.
    pub types: Vec<RecordType>,
    /// The name does not exist (NXDOMAIN without DNSSEC).
    pub nxname: bool,
}

impl Denial {
    /// The NSEC of this denial: from the name to `\000.<name>`, its immediate successor in
    /// canonical order, with the name's types, or NXNAME.
    pub fn nsec(&self, ttl: u32) -> Option<Record> {
        let owner = canonical_name(&self.owner)?;
        // The successor has one more label; a name already at 255 bytes has none, and its
        // NSEC then covers nothing more than itself, which is all it must prove.
        let mut rdata = if owner.len() < 254 {
            let mut r = vec![1, 0];
            r.extend_from_slice(&owner);
            r
        } else {
            owner.clone()
        };
        let mut types: Vec<u16> = self.types.iter().map(|t| u16::from(*t)).collect();
        types.push(u16::from(RecordType::RRSIG));
        types.push(u16::from(RecordType::NSEC));
        if self.nxname {
            types.push(NXNAME);
        }
        rdata.extend_from_slice(&type_bitmap(&mut types));
        Some(Record::from_rdata(
            self.owner.clone(),
            ttl,
            RData::Unknown {
                code: RecordType::NSEC,
                rdata: NULL::with(rdata),
            },
        ))
    }
}

/// The NSEC type bitmap (RFC 4034 section 4.1.2): per window of 256 types that has any,
/// the window, the bitmap's length and the bitmap, trailing zero bytes left out.
fn type_bitmap(types: &mut Vec<u16>) -> Vec<u8> {
    types.sort_unstable();
    types.dedup();
    let mut out = Vec::new();
    let mut at = 0;
    while at < types.len() {
        let window = types[at] >> 8;
        let mut bits = [0u8; 32];
        let mut len = 0;
        while at < types.len() && types[at] >> 8 == window {
            let low = usize::from(types[at] & 0xFF);
            bits[low / 8] |= 0x80 >> (low % 8);
            len = low / 8 + 1;
            at += 1;
        }
        out.push(window as u8);
        out.push(len as u8);
        out.extend_from_slice(&bits[..len]);
    }
    out
}

/// A name in canonical wire form (lowercase, uncompressed).
fn canonical_name(n: &Name) -> Option<Vec<u8>> {
    let mut n = n.to_lowercase();
    n.set_fqdn(true);
    n.to_bytes().ok()
}

/// A record's RDATA in canonical form (RFC 4034 section 6.2: the names in it in lowercase,
/// uncompressed).
fn canonical_rdata(r: &Record) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(32);
    let mut e = BinEncoder::new(&mut buf);
    e.set_canonical_form(true);
    r.data.emit(&mut e).ok()?;
    Some(buf)
}

/// The signatures one worker made, by RRset (owner, type, TTL and RDATA in canonical
/// form), for the zone's keys of one moment: emptied when the keys change, and bounded.
#[derive(Default)]
pub struct SigCache {
    zone: Option<Arc<Zone>>,
    sigs: HashMap<Box<[u8]>, Sigs, RandomState>,
    /// RRSIGs made since `take_made` last asked.
    made: u32,
}

/// How many RRsets one worker keeps signatures of before it starts over.
pub const MAX_SIGNED: usize = 16_384;

struct Sigs {
    rrsigs: Vec<Box<[u8]>>,
    renew_at: u32,
}

impl std::fmt::Debug for SigCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigCache({} RRsets)", self.sigs.len())
    }
}

impl SigCache {
    fn sync(&mut self, zone: &Arc<Zone>) {
        if !self.zone.as_ref().is_some_and(|z| Arc::ptr_eq(z, zone)) {
            self.zone = Some(zone.clone());
            self.sigs.clear();
        }
    }

    /// RRsets with signatures kept.
    pub fn len(&self) -> usize {
        self.sigs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sigs.is_empty()
    }

    /// The RRSIGs made since the last call (for the metrics).
    pub fn take_made(&mut self) -> u32 {
        std::mem::take(&mut self.made)
    }
}

/// Signs a reply at `now` (Unix seconds): an RRSIG after each RRset of `answers` and of
/// `authority` (but NS RRsets below the apex: a delegation's, unsigned by its parent).
/// Returns when the earliest of its signatures should be made again.
pub fn sign_reply(
    zone: &Arc<Zone>,
    answers: &mut Vec<Record>,
    authority: &mut Vec<Record>,
    now: u32,
    cache: &mut SigCache,
) -> u32 {
    cache.sync(zone);
    let apex_ns = |r: &Record| {
        r.record_type() == RecordType::NS && canonical_name(&r.name).as_deref() != Some(zone.apex())
    };
    let a = sign_section(zone, answers, &|_| false, now, cache);
    let b = sign_section(zone, authority, &apex_ns, now, cache);
    a.min(b)
}

/// Signs the RRsets of one section in place (each followed by its RRSIGs) but those
/// `skip` picks; returns the earliest renewal time (u32::MAX with nothing signed).
fn sign_section(
    zone: &Zone,
    records: &mut Vec<Record>,
    skip: &dyn Fn(&Record) -> bool,
    now: u32,
    cache: &mut SigCache,
) -> u32 {
    if records.is_empty() {
        return u32::MAX;
    }
    let mut renew = u32::MAX;
    let taken = std::mem::take(records);
    let owners: Vec<Option<Vec<u8>>> = taken.iter().map(|r| canonical_name(&r.name)).collect();
    let mut done = vec![false; taken.len()];
    for i in 0..taken.len() {
        if done[i] {
            continue;
        }
        let t = taken[i].record_type();
        let set: Vec<usize> = (i..taken.len())
            .filter(|&j| !done[j] && taken[j].record_type() == t && owners[j] == owners[i])
            .collect();
        for &j in &set {
            done[j] = true;
        }
        let ttl = set.iter().map(|&j| taken[j].ttl).min().unwrap_or(0);
        for &j in &set {
            let mut r = taken[j].clone();
            r.ttl = ttl;
            records.push(r);
        }
        let Some(owner) = owners[i].as_deref() else {
            continue;
        };
        if skip(&taken[i]) {
            continue;
        }
        let rdatas: Vec<Vec<u8>> = set
            .iter()
            .filter_map(|&j| canonical_rdata(&taken[j]))
            .collect();
        let mut key =
            Vec::with_capacity(owner.len() + 6 + rdatas.iter().map(|r| r.len() + 2).sum::<usize>());
        key.extend_from_slice(owner);
        key.extend_from_slice(&u16::from(t).to_be_bytes());
        key.extend_from_slice(&ttl.to_be_bytes());
        let mut sorted: Vec<&[u8]> = rdatas.iter().map(Vec::as_slice).collect();
        sorted.sort_unstable();
        for r in &sorted {
            key.extend_from_slice(&(r.len() as u16).to_be_bytes());
            key.extend_from_slice(r);
        }
        let fresh = cache.sigs.get(key.as_slice()).filter(|s| now < s.renew_at);
        let rrsigs: Vec<Box<[u8]>> = match fresh {
            Some(s) => {
                renew = renew.min(s.renew_at);
                s.rrsigs.clone()
            }
            None => {
                let jitter = FixedState::default().hash_one(&key) as u32;
                let validity = zone.validity_at(now, jitter);
                let made: Vec<Box<[u8]>> = zone
                    .sign(owner, t, ttl, &sorted, validity)
                    .into_iter()
                    .map(Vec::into_boxed_slice)
                    .collect();
                let renew_at = zone.renew_at(validity);
                cache.made = cache.made.saturating_add(made.len() as u32);
                renew = renew.min(renew_at);
                if cache.sigs.len() >= MAX_SIGNED {
                    cache.sigs.clear();
                }
                cache.sigs.insert(
                    key.into_boxed_slice(),
                    Sigs {
                        rrsigs: made.clone(),
                        renew_at,
                    },
                );
                made
            }
        };
        for sig in rrsigs {
            records.push(Record::from_rdata(
                taken[i].name.clone(),
                ttl,
                RData::Unknown {
                    code: RecordType::RRSIG,
                    rdata: NULL::with(sig.into_vec()),
                },
            ));
        }
    }
    renew
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmaps_follow_rfc_4034() {
        // RFC 4034 section 4.3's example: A MX RRSIG NSEC TYPE1234.
        let mut types = vec![1, 15, 46, 47, 1234];
        let mut want = vec![0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03, 0x04, 0x1b];
        want.extend([0; 26]);
        want.push(0x20);
        assert_eq!(type_bitmap(&mut types), want);
    }

    #[test]
    fn a_nonexistent_name_gets_its_successor_and_nxname() {
        let d = Denial {
            owner: Name::from_ascii("Nope.Fed.Example.").unwrap(),
            types: vec![],
            nxname: true,
        };
        let r = d.nsec(60).unwrap();
        let RData::Unknown { code, rdata } = &r.data else {
            panic!("{r:?}")
        };
        assert_eq!(*code, RecordType::NSEC);
        let mut want = b"\x01\x00\x04nope\x03fed\x07example\x00".to_vec();
        // Window 0, 16 bytes: RRSIG (46), NSEC (47), NXNAME (128).
        want.extend([0, 17, 0, 0, 0, 0, 0, 0x03]);
        want.extend([0; 10]);
        want.push(0x80);
        assert_eq!(rdata.anything, want);
    }
}
