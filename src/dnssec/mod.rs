//! DNSSEC for the federation zone. Built so far: the zone's keys, read from and written to
//! the files BIND and Knot export (`keys`), with their DS for the parent, and the signing
//! of one RRset (`sign`). Not built yet: the `dnssec:` config section, serving
//! DNSKEY/CDS/CDNSKEY, signing answers online and compact denial (issue 16).

pub mod keys;
pub mod sign;

pub use keys::{Algorithm, Key, KeyError, name_wire};
pub use sign::{Signer, Validity};
