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
        "d" => n * 86_400.0,
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
                "`{s}` is not a duration (expected e.g. 500ms, 2s, 1m, 7d)"
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

/// Where a per-geography failover order applies: `continent:EU`, `country:DE`, or a CIDR
/// (`10.8.0.0/14`). The most specific match wins: a network (longest prefix first), then
/// a country, then a continent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GeoKey {
    Network(IpNet),
    Country([u8; 2]),
    Continent([u8; 2]),
}

/// The continent codes GeoIP databases use.
const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

impl FromStr for GeoKey {
    type Err = String;

    fn from_str(s: &str) -> Result<GeoKey, String> {
        let code = |c: &str| -> Option<[u8; 2]> {
            let b = c.as_bytes();
            (b.len() == 2 && b.iter().all(u8::is_ascii_alphabetic))
                .then(|| [b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()])
        };
        if let Some(c) = s.strip_prefix("continent:") {
            return code(c)
                .filter(|c| CONTINENTS.iter().any(|k| k.as_bytes() == c))
                .map(GeoKey::Continent)
                .ok_or_else(|| {
                    format!(
                        "`{c}` is not a continent code (one of {})",
                        CONTINENTS.join(", ")
                    )
                });
        }
        if let Some(c) = s.strip_prefix("country:") {
            return code(c)
                .filter(|c| {
                    crate::geo::places::country_centroid(std::str::from_utf8(c).unwrap_or(""))
                        .is_some()
                })
                .map(GeoKey::Country)
                .ok_or_else(|| format!("`{c}` is not an ISO 3166 country code"));
        }
        match IpNet::from_str(s) {
            Ok(net) if net.trunc() == net => Ok(GeoKey::Network(net)),
            Ok(net) => Err(format!(
                "`{s}` has host bits set; did you mean {}?",
                net.trunc()
            )),
            Err(_) => Err(format!(
                "`{s}` is not a geography (expected continent:EU, country:DE or a CIDR)"
            )),
        }
    }
}

impl std::fmt::Display for GeoKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = |c: &[u8; 2]| String::from_utf8_lossy(c).into_owned();
        match self {
            GeoKey::Network(n) => write!(f, "{n}"),
            GeoKey::Country(c) => write!(f, "country:{}", code(c)),
            GeoKey::Continent(c) => write!(f, "continent:{}", code(c)),
        }
    }
}

impl GeoKey {
    /// Higher is more specific: networks by prefix length above countries above continents.
    pub fn specificity(&self) -> u16 {
        match self {
            GeoKey::Network(n) => 256 + u16::from(n.prefix_len()),
            GeoKey::Country(_) => 2,
            GeoKey::Continent(_) => 1,
        }
    }
}

/// `weights:` of a `weighted` service: fixed per cluster, or each cluster's ready
/// endpoints (`weights: ready-endpoints`).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Weights {
    Fixed(std::collections::BTreeMap<String, u32>),
    #[default]
    None,
    ReadyEndpoints,
}

impl<'de> Deserialize<'de> for Weights {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Weights;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of cluster weights, or `ready-endpoints`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Weights, E> {
                match v {
                    "ready-endpoints" => Ok(Weights::ReadyEndpoints),
                    _ => Err(E::custom(format!(
                        "`{v}`: expected a map of cluster weights, or `ready-endpoints`"
                    ))),
                }
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Weights, A::Error> {
                let m = std::collections::BTreeMap::<String, u32>::deserialize(
                    de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(Weights::Fixed(m))
            }
        }
        d.deserialize_any(V)
    }
}

impl Weights {
    /// The fixed weights by cluster name (none for `ready-endpoints`).
    pub fn fixed(&self) -> impl Iterator<Item = (&String, &u32)> {
        match self {
            Weights::Fixed(m) => Some(m.iter()),
            _ => None,
        }
        .into_iter()
        .flatten()
    }
}

/// Written as its text (`continent:EU`), as in the config; the state file keeps it so.
impl serde::Serialize for GeoKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GeoKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}
