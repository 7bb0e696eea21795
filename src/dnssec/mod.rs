//! DNSSEC for the federation zone, signed online: the zone's keys, read from and written
//! to the files BIND and Knot export (`keys`), with their DS for the parent; the signing of
//! one RRset (`sign`); the keys' states at one moment and the apex records they make
//! (`zone`); and the signing of one reply with compact denial of existence (`online`).
//! Knows nothing of answers or snapshots: it signs hickory records.

pub mod keys;
pub mod online;
pub mod sign;
pub mod zone;

pub use keys::{Algorithm, Key, KeyError, name_wire};
pub use online::{Denial, SigCache, sign_reply};
pub use sign::{Signer, Validity};
pub use zone::{KeySpec, KeyState, Policy, Zone, ZoneError};
