//! The zone's signing state at one moment: which keys are in the DNSKEY set, which of them
//! sign the data and which the DNSKEY set, the records the apex gets for them (DNSKEY,
//! CDS, CDNSKEY), and when a key's timing next changes that.
//!
//! A key's state comes from its file's timing fields (as `dnssec-keygen` and `keymgr`
//! write them) or from the config, which wins:
//! - before Publish, or from Delete on: not in the zone;
//! - published: in the DNSKEY set, signing nothing (a pre-published key of a rollover);
//! - active from Activate until Inactive: signing;
//! - retired from Inactive until Delete: still in the DNSKEY set, signing nothing.
//!
//! A file with no Publish and no Activate field is active.

use std::path::PathBuf;

use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::keys::{Key, name_wire};
use super::sign::{Signer, Validity};

/// A key's part in the zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    Published,
    Active,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Published => "published",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
        }
    }
}

/// A key as the config names it: the key, its file, and the state the config forces.
#[derive(Clone, Debug)]
pub struct KeySpec {
    pub key: Key,
    pub path: PathBuf,
    pub forced: Option<KeyState>,
}

impl KeySpec {
    /// Its state at `now` (Unix seconds); None: not in the zone.
    pub fn state_at(&self, now: i64) -> Option<KeyState> {
        if let Some(s) = self.forced {
            return Some(s);
        }
        let t = &self.key.timing;
        let reached = |at: Option<i64>| at.is_some_and(|at| at <= now);
        let published = t.publish.or(t.activate).is_none_or(|p| p <= now);
        if !published || reached(t.delete) {
            return None;
        }
        let active = t.activate.map_or(t.publish.is_none(), |a| a <= now);
        Some(if reached(t.inactive) {
            KeyState::Retired
        } else if active {
            KeyState::Active
        } else {
            KeyState::Published
        })
    }

    /// The first of its timing fields after `now`, when its state next changes.
    fn next_event(&self, now: i64) -> Option<i64> {
        if self.forced.is_some() {
            return None;
        }
        let t = &self.key.timing;
        [t.publish, t.activate, t.inactive, t.delete]
            .into_iter()
            .flatten()
            .filter(|at| *at > now)
            .min()
    }
}

/// How signatures are made.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Seconds a signature is valid from the moment it is made.
    pub validity: u32,
    pub dnskey_ttl: u32,
    /// Publish CDS and CDNSKEY for the key-signing keys.
    pub cds: bool,
}

/// Signatures start this long before they are made, for validators whose clocks are
/// behind.
const BACKDATE: u32 = 3600;

/// The zone's keys at one moment, ready to sign.
pub struct Zone {
    /// The apex in canonical wire form.
    apex: Vec<u8>,
    /// Every key in the zone, with its state.
    keys: Vec<(KeySpec, KeyState)>,
    /// Who signs the data: the active zone-signing keys, else the active key-signing ones.
    data: Vec<Signer>,
    /// Who signs the DNSKEY, CDS and CDNSKEY sets: the active key-signing keys, else the
    /// active zone-signing ones.
    apex_keys: Vec<Signer>,
    policy: Policy,
    /// DNSKEY, and CDS and CDNSKEY where asked for, owned by the apex.
    records: Vec<Record>,
    next_event: Option<i64>,
}

impl std::fmt::Debug for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zone")
            .field("keys", &self.keys)
            .field("policy", &self.policy)
            .finish()
    }
}

/// Why the keys cannot sign the zone.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("{path}: the key is for `{key_zone}`, not the zone `{zone}`")]
    OtherZone {
        path: String,
        key_zone: String,
        zone: String,
    },
    #[error("{0} and {1} are the same key")]
    Twice(String, String),
    #[error("no key is active now ({0}): nothing could sign the zone")]
    NoneActive(String),
}

impl Zone {
    /// The zone `apex` signed by `specs` at `now` (Unix seconds).
    pub fn new(
        apex: &Name,
        specs: Vec<KeySpec>,
        policy: Policy,
        now: i64,
    ) -> Result<Zone, ZoneError> {
        let zone_text = apex.to_ascii().trim_end_matches('.').to_ascii_lowercase();
        for s in &specs {
            if s.key.zone != zone_text {
                return Err(ZoneError::OtherZone {
                    path: s.path.display().to_string(),
                    key_zone: s.key.zone.clone(),
                    zone: zone_text,
                });
            }
        }
        for (i, a) in specs.iter().enumerate() {
            if let Some(b) = specs[..i].iter().find(|b| b.key.public == a.key.public) {
                return Err(ZoneError::Twice(
                    b.path.display().to_string(),
                    a.path.display().to_string(),
                ));
            }
        }
        let next_event = specs.iter().filter_map(|s| s.next_event(now)).min();
        let keys: Vec<(KeySpec, KeyState)> = specs
            .into_iter()
            .filter_map(|s| s.state_at(now).map(|st| (s, st)))
            .collect();
        let active = |ksk: bool| -> Vec<Signer> {
            keys.iter()
                .filter(|(s, st)| *st == KeyState::Active && s.key.is_ksk() == ksk)
                .map(|(s, _)| Signer::new(&s.key))
                .collect()
        };
        let (zsks, ksks) = (active(false), active(true));
        if zsks.is_empty() && ksks.is_empty() {
            let states: Vec<String> = keys
                .iter()
                .map(|(s, st)| format!("{} {}", s.path.display(), st.as_str()))
                .collect();
            let states = if states.is_empty() {
                "none is in the zone yet, or all are deleted".to_owned()
            } else {
                states.join(", ")
            };
            return Err(ZoneError::NoneActive(states));
        }
        let (data, apex_keys) = match (zsks.is_empty(), ksks.is_empty()) {
            (false, false) => (zsks, ksks),
            (true, _) => (active(true), ksks),
            (_, true) => (zsks, active(false)),
        };
        let mut zone = Zone {
            apex: name_wire(&zone_text),
            keys,
            data,
            apex_keys,
            policy,
            records: Vec::new(),
            next_event,
        };
        zone.records = zone.apex_records(apex);
        Ok(zone)
    }

    /// The DNSKEY set, and CDS and CDNSKEY for the key-signing keys that are not retired.
    fn apex_records(&self, apex: &Name) -> Vec<Record> {
        let ttl = self.policy.dnskey_ttl;
        let record = |t: RecordType, rdata: Vec<u8>| {
            Record::from_rdata(
                apex.clone(),
                ttl,
                RData::Unknown {
                    code: t,
                    rdata: NULL::with(rdata),
                },
            )
        };
        let mut out: Vec<Record> = self
            .keys
            .iter()
            .map(|(s, _)| record(RecordType::DNSKEY, s.key.dnskey_rdata()))
            .collect();
        if self.policy.cds {
            let sep = self
                .keys
                .iter()
                .filter(|(s, st)| s.key.is_ksk() && *st != KeyState::Retired);
            for (s, _) in sep {
                out.push(record(RecordType::CDS, s.key.ds_rdata()));
                out.push(record(RecordType::CDNSKEY, s.key.dnskey_rdata()));
            }
        }
        out
    }

    /// The apex in canonical wire form.
    pub fn apex(&self) -> &[u8] {
        &self.apex
    }

    /// The records the apex gets: DNSKEY, and CDS and CDNSKEY when asked for.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// When a key's timing next changes the zone's keys (Unix seconds).
    pub fn next_event(&self) -> Option<i64> {
        self.next_event
    }

    /// Every key in the zone and its state, for logs and `/debug`.
    pub fn keys(&self) -> impl Iterator<Item = (&KeySpec, KeyState)> {
        self.keys.iter().map(|(s, st)| (s, *st))
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The validity of a signature made at `now`, its expiry moved earlier by `jitter`
    /// (less than a tenth of the validity), so that signatures made together do not all
    /// expire together.
    pub fn validity_at(&self, now: u32, jitter: u32) -> Validity {
        let v = self.policy.validity;
        Validity {
            inception: now.wrapping_sub(BACKDATE),
            expiration: now.wrapping_add(v - jitter % (v / 10).max(1)),
        }
    }

    /// The moment a signature with this validity should be made again: when half of its
    /// validity after `now` has passed.
    pub fn renew_at(&self, v: Validity) -> u32 {
        v.expiration.wrapping_sub(
            v.expiration
                .wrapping_sub(v.inception.wrapping_add(BACKDATE))
                / 2,
        )
    }

    /// The RRSIGs (RDATA) of one RRset: `owner` in canonical wire form, each RDATA
    /// canonical. DNSKEY, CDS and CDNSKEY at the apex are signed by the key-signing keys,
    /// everything else by the zone-signing keys.
    pub fn sign(
        &self,
        owner: &[u8],
        rtype: RecordType,
        ttl: u32,
        rdatas: &[&[u8]],
        validity: Validity,
    ) -> Vec<Vec<u8>> {
        let apex_set = owner == self.apex.as_slice()
            && matches!(
                rtype,
                RecordType::DNSKEY | RecordType::CDS | RecordType::CDNSKEY
            );
        let signers = if apex_set {
            &self.apex_keys
        } else {
            &self.data
        };
        signers
            .iter()
            .map(|s| s.sign(owner, u16::from(rtype), ttl, rdatas, validity))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnssec::keys::{Algorithm, Timing};

    fn spec(ksk: bool, timing: Timing) -> KeySpec {
        let mut key = Key::generate("fed.example.com", Algorithm::EcdsaP256Sha256, ksk, 0);
        key.timing = timing;
        KeySpec {
            key,
            path: PathBuf::from("k"),
            forced: None,
        }
    }

    #[test]
    fn timing_fields_give_the_state() {
        let t = |publish, activate, inactive, delete| Timing {
            created: None,
            publish,
            activate,
            inactive,
            delete,
        };
        let s = spec(false, t(Some(100), Some(200), Some(300), Some(400)));
        assert_eq!(s.state_at(50), None);
        assert_eq!(s.state_at(100), Some(KeyState::Published));
        assert_eq!(s.state_at(200), Some(KeyState::Active));
        assert_eq!(s.state_at(300), Some(KeyState::Retired));
        assert_eq!(s.state_at(400), None);
        assert_eq!(s.next_event(150), Some(200));
        assert_eq!(s.next_event(400), None);
        // No fields: active. Publish alone: published, never active.
        assert_eq!(
            spec(false, Timing::default()).state_at(0),
            Some(KeyState::Active)
        );
        let pre = spec(false, t(Some(10), None, None, None));
        assert_eq!(pre.state_at(20), Some(KeyState::Published));
        // The config wins.
        let mut forced = pre.clone();
        forced.forced = Some(KeyState::Retired);
        assert_eq!(forced.state_at(0), Some(KeyState::Retired));
    }

    #[test]
    fn keys_sign_what_their_role_says() {
        let apex = Name::from_ascii("fed.example.com.").unwrap();
        let policy = Policy {
            validity: 7 * 86_400,
            dnskey_ttl: 3600,
            cds: true,
        };
        let split = Zone::new(
            &apex,
            vec![
                spec(true, Timing::default()),
                spec(false, Timing::default()),
            ],
            policy,
            1000,
        )
        .unwrap();
        let v = split.validity_at(1_000_000, 0);
        let tag = |sig: &[u8]| u16::from_be_bytes([sig[16], sig[17]]);
        let ksk_tag = split.keys[0].0.key.tag();
        let zsk_tag = split.keys[1].0.key.tag();
        let dnskey = split.sign(&split.apex, RecordType::DNSKEY, 3600, &[b"x"], v);
        assert_eq!(dnskey.iter().map(|s| tag(s)).collect::<Vec<_>>(), [ksk_tag]);
        let a = split.sign(&split.apex, RecordType::A, 30, &[b"\x01\x02\x03\x04"], v);
        assert_eq!(a.iter().map(|s| tag(s)).collect::<Vec<_>>(), [zsk_tag]);
        // DNSKEY twice, CDS and CDNSKEY for the KSK.
        let types: Vec<RecordType> = split.records().iter().map(|r| r.record_type()).collect();
        assert_eq!(
            types,
            [
                RecordType::DNSKEY,
                RecordType::DNSKEY,
                RecordType::CDS,
                RecordType::CDNSKEY
            ]
        );
        // A lone KSK signs everything; a key for another zone is refused.
        let csk = Zone::new(&apex, vec![spec(true, Timing::default())], policy, 0).unwrap();
        assert_eq!(csk.sign(&csk.apex, RecordType::A, 30, &[b"x"], v).len(), 1);
        let other = KeySpec {
            key: Key::generate("other.example", Algorithm::Ed25519, true, 0),
            path: PathBuf::from("o"),
            forced: None,
        };
        assert!(matches!(
            Zone::new(&apex, vec![other], policy, 0),
            Err(ZoneError::OtherZone { .. })
        ));
        let retired = KeySpec {
            forced: Some(KeyState::Retired),
            ..spec(true, Timing::default())
        };
        assert!(matches!(
            Zone::new(&apex, vec![retired], policy, 0),
            Err(ZoneError::NoneActive(_))
        ));
    }

    #[test]
    fn signatures_renew_halfway_and_expire_jittered() {
        let apex = Name::from_ascii("fed.example.com.").unwrap();
        let policy = Policy {
            validity: 100_000,
            dnskey_ttl: 3600,
            cds: false,
        };
        let z = Zone::new(&apex, vec![spec(true, Timing::default())], policy, 0).unwrap();
        let v = z.validity_at(1_000_000, 0);
        assert_eq!((v.inception, v.expiration), (1_000_000 - 3600, 1_100_000));
        assert_eq!(z.renew_at(v), 1_050_000);
        let j = z.validity_at(1_000_000, 12_345);
        assert_eq!(j.expiration, 1_100_000 - 2_345);
        assert!(z.renew_at(j) < 1_050_000 && z.renew_at(j) > 1_000_000);
    }
}
