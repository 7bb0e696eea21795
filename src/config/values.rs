//! The values a config holds that serde cannot check alone: CIDRs without host bits,
//! range-checked coordinates, durations written `500ms`/`2s`/`1m`, DNS labels and names
//! inside the zone.

use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, de};

use crate::geo::LatLon;

/// A CIDR whose host bits must be zero, so that `10.1.2.3/8` is caught as a likely typo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub IpNet);

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let net = IpNet::from_str(&s).map_err(|_| {
            de::Error::custom(format!("`{s}` is not a CIDR (expected e.g. 10.8.0.0/14)"))
        })?;
        if net.trunc() != net {
            return Err(de::Error::custom(format!(
                "`{s}` has host bits set; did you mean {}?",
                net.trunc()
            )));
        }
        Ok(Cidr(net))
    }
}

/// `{ lat: 50.11, lon: 8.68 }`, range-checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coordinates(pub LatLon);

impl<'de> Deserialize<'de> for Coordinates {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            lat: f64,
            lon: f64,
        }
        let raw = Raw::deserialize(d)?;
        if !(-90.0..=90.0).contains(&raw.lat) || !(-180.0..=180.0).contains(&raw.lon) {
            return Err(de::Error::custom(format!(
                "coordinates out of range: lat {} must be in [-90, 90], lon {} in [-180, 180]",
                raw.lat, raw.lon
            )));
        }
        Ok(Coordinates(LatLon {
            lat: raw.lat,
            lon: raw.lon,
        }))
    }
}

/// Parses `500ms`, `2s`, `1m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(n) => Ok(Duration::from_secs(n)),
        Raw::Text(s) => parse_duration(&s).ok_or_else(|| {
            de::Error::custom(format!(
                "`{s}` is not a duration (expected e.g. 500ms, 2s, 1m)"
            ))
        }),
    }
}

/// A single DNS label: letters, digits, hyphens (and underscores, which Kubernetes does not
/// allow but DNS tolerates); 1 to 63 bytes.
pub fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `host` is the zone apex or below it, case-insensitively.
pub fn in_zone(host: &str, zone: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    let z = zone.trim_end_matches('.').to_ascii_lowercase();
    h == z || h.ends_with(&format!(".{z}"))
}
