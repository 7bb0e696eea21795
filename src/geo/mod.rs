//! Where a client is: source overrides, then the GeoIP database (city coordinates, else the
//! country's centroid, else the continent's), and how far it is from each cluster.
//!
//! Architecture invariant: this module knows nothing of DNS or Kubernetes. It maps an IP
//! address to a location and the prefix length that decided it.

pub mod mmdb_writer;
pub mod places;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

/// A point on the globe in degrees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatLon {
    pub lat: f64,
    pub lon: f64,
}

impl fmt::Display for LatLon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2},{:.2}", self.lat, self.lon)
    }
}

/// Mean Earth radius (IUGG), in km.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Great-circle distance in km (haversine; accurate to ~0.5 %, far below what GeoIP gives).
pub fn distance_km(a: LatLon, b: LatLon) -> f64 {
    let (la1, la2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = la2 - la1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().clamp(0.0, 1.0).asin()
}

#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("{path}: cannot read GeoIP database: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid MMDB file: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// How precisely the database placed a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// The record carried coordinates (a City database).
    City,
    /// Only a country code: its centroid.
    Country([u8; 2]),
    /// Only a continent code: its representative point.
    Continent([u8; 2]),
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = |c: &[u8; 2]| String::from_utf8_lossy(c).into_owned();
        match self {
            Precision::City => f.write_str("city coordinates"),
            Precision::Country(c) => write!(f, "centroid of country {}", code(c)),
            Precision::Continent(c) => write!(f, "centroid of continent {}", code(c)),
        }
    }
}

/// The result of one database lookup.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GeoHit {
    pub place: Place,
    /// The database network that contains the address: the ECS scope of an answer decided
    /// by this lookup.
    pub network: IpNet,
}

/// The fields fedns reads, in both record shapes it supports: MaxMind's GeoIP2/GeoLite2 and
/// DB-IP (`location.latitude`, `country.iso_code`, `continent.code`) and ip-location-db's
/// flat one (`latitude`, `longitude`, `country_code`). Strings are borrowed: no allocation.
#[derive(Deserialize, Default)]
struct Record<'a> {
    #[serde(default)]
    location: Option<Location>,
    #[serde(borrow, default)]
    country: Option<Code<'a>>,
    #[serde(borrow, default)]
    registered_country: Option<Code<'a>>,
    #[serde(borrow, default)]
    continent: Option<Code<'a>>,
    #[serde(default)]
    latitude: Option<Coord>,
    #[serde(default)]
    longitude: Option<Coord>,
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(borrow, default)]
    continent_code: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct Location {
    #[serde(default)]
    latitude: Option<Coord>,
    #[serde(default)]
    longitude: Option<Coord>,
}

/// A coordinate as the database stores it: MaxMind writes doubles, ip-location-db's DB-IP
/// and GeoLite2 builds write 32-bit floats, and the MMDB decoder turns neither into the
/// other by itself.
#[derive(Clone, Copy)]
struct Coord(f64);

impl<'de> Deserialize<'de> for Coord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Coord, D::Error> {
        struct Number;
        impl serde::de::Visitor<'_> for Number {
            type Value = Coord;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a coordinate (double or float)")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Coord, E> {
                Ok(Coord(v))
            }
            fn visit_f32<E>(self, v: f32) -> Result<Coord, E> {
                Ok(Coord(f64::from(v)))
            }
        }
        d.deserialize_any(Number)
    }
}

#[derive(Deserialize, Default)]
struct Code<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
    #[serde(borrow, default)]
    code: Option<&'a str>,
}

fn two_letters(s: &str) -> Option<[u8; 2]> {
    let b = s.as_bytes();
    (b.len() == 2 && b.iter().all(u8::is_ascii_alphabetic))
        .then(|| [b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()])
}

impl Record<'_> {
    /// The record's country and continent codes, where it has them (a continent from the
    /// country when the record names none).
    fn codes(&self) -> (Option<[u8; 2]>, Option<[u8; 2]>) {
        let country = self
            .country
            .as_ref()
            .and_then(|c| c.iso_code)
            .or(self.country_code)
            .or(self.registered_country.as_ref().and_then(|c| c.iso_code))
            .and_then(two_letters);
        let continent = self
            .continent
            .as_ref()
            .and_then(|c| c.code)
            .or(self.continent_code)
            .and_then(two_letters)
            .or_else(|| {
                let cc = country?;
                two_letters(places::country_continent(std::str::from_utf8(&cc).ok()?)?)
            });
        (country, continent)
    }

    fn locate(&self) -> Place {
        let (country, continent) = self.codes();
        let at = |location| Place {
            location,
            country,
            continent,
        };
        let coords = match &self.location {
            Some(Location {
                latitude: Some(lat),
                longitude: Some(lon),
            }) => Some((lat.0, lon.0)),
            _ => self.latitude.zip(self.longitude).map(|(a, b)| (a.0, b.0)),
        };
        if let Some((lat, lon)) = coords
            && (-90.0..=90.0).contains(&lat)
            && (-180.0..=180.0).contains(&lon)
        {
            return at(Some((LatLon { lat, lon }, Precision::City)));
        }
        if let Some(cc) = country {
            let code = std::str::from_utf8(&cc).unwrap_or_default();
            if let Some(p) = places::country_centroid(code) {
                return at(Some((p, Precision::Country(cc))));
            }
        }
        let centroid = continent.and_then(|c| {
            let p = places::continent_centroid(std::str::from_utf8(&c).ok()?)?;
            Some((p, Precision::Continent(c)))
        });
        at(centroid)
    }
}

/// What one database record says of where its clients are.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Place {
    pub location: Option<(LatLon, Precision)>,
    /// ISO 3166 alpha-2 country code, uppercase.
    pub country: Option<[u8; 2]>,
    /// Continent code (AF, AN, AS, EU, NA, OC, SA), uppercase.
    pub continent: Option<[u8; 2]>,
}

/// An open GeoIP database, read whole into memory (databases are tens of MB at most, and a
/// reload replaces the file by rename, which a memory map would not follow).
pub struct GeoDb {
    reader: maxminddb::Reader<Vec<u8>>,
    path: PathBuf,
}

impl fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoDb")
            .field("path", &self.path)
            .field("type", &self.reader.metadata().database_type)
            .finish()
    }
}

impl GeoDb {
    pub fn open(path: &Path) -> Result<GeoDb, GeoError> {
        let bytes = std::fs::read(path).map_err(|source| GeoError::Read {
            path: path.to_owned(),
            source,
        })?;
        GeoDb::from_bytes(bytes, path)
    }

    /// Opens a database from memory; `path` names it in errors and in `explain`.
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<GeoDb, GeoError> {
        let invalid = |e: maxminddb::MaxMindDbError| GeoError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let reader = maxminddb::Reader::from_source(bytes).map_err(invalid)?;
        let db = GeoDb {
            reader,
            path: path.to_owned(),
        };
        // A truncated or corrupt file must fail here, at load, and not on a query. The
        // crate's `verify` also insists on a non-empty `description`, which real
        // databases lack (ip-location-db's DB-IP and GeoLite2 builds): those are checked
        // by walking every network and decoding every record as a lookup would.
        if db.reader.metadata().description.is_empty() {
            db.check_by_walking().map_err(|message| GeoError::Invalid {
                path: path.to_owned(),
                message,
            })?;
        } else {
            db.reader.verify().map_err(invalid)?;
        }
        Ok(db)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Walks every network of both families and decodes each record once: the search
    /// tree's pointers and every record a lookup can reach must be sound.
    fn check_by_walking(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        let mut bad = None;
        for v6 in [false, true] {
            self.for_each_network(v6, |net, offset, _| {
                if bad.is_some() {
                    return;
                }
                if let Some(o) = offset
                    && seen.insert(o)
                    && let Err(e) = self
                        .reader
                        .lookup(net.addr())
                        .and_then(|r| r.decode::<Record>())
                {
                    bad = Some(format!("record of {net} cannot be read: {e}"));
                }
            })?;
        }
        bad.map_or(Ok(()), Err)
    }

    /// The database's build time (seconds since the epoch), as its metadata says.
    pub fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }

    /// What identifies one build of a database: type, build time and size of its tree.
    pub fn identity(&self) -> String {
        let m = self.reader.metadata();
        format!("{} {} {}", m.database_type, m.build_epoch, m.node_count)
    }

    /// Whether it holds IPv6 networks (an IPv4-only database places no IPv6 client).
    pub fn has_ipv6(&self) -> bool {
        self.reader.metadata().ip_version == 6
    }

    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// Where `ip` falls in the database without decoding its record: the record's offset
    /// (`None` when the address has no record) and the prefix length of the network that
    /// contains it. Two addresses with the same offset share one record, so `lookup` gives
    /// them the same location: the answer cache is keyed by this.
    pub fn record_of(&self, ip: IpAddr) -> (Option<u32>, u8) {
        let host = if ip.is_ipv4() { 32 } else { 128 };
        match self.reader.lookup(ip) {
            Ok(result) => (
                result.offset().and_then(|o| u32::try_from(o).ok()),
                result.network().map_or(host, |n| n.prefix()),
            ),
            Err(_) => (None, host),
        }
    }

    /// Every network of one family (`v6`) that the database holds, in address order, with
    /// its record's offset (None: a network without data) and a function that reads the
    /// record's place (`lookup`'s for that network). Ranges the database aliases to
    /// another (IPv4-mapped, 6to4, Teredo) are not visited: they are gaps. An IPv4-only
    /// database has no IPv6 networks.
    pub fn for_each_network(
        &self,
        v6: bool,
        mut f: impl FnMut(IpNet, Option<u32>, &dyn Fn() -> Place),
    ) -> Result<(), String> {
        if v6 && self.reader.metadata().ip_version != 6 {
            return Ok(());
        }
        let root = if v6 { "::/0" } else { "0.0.0.0/0" };
        let options = maxminddb::WithinOptions::default().include_networks_without_data();
        let bad = |e: &dyn fmt::Display| format!("{}: {e}", self.path.display());
        let walk = self
            .reader
            .within(root.parse().map_err(|e| bad(&e))?, options)
            .map_err(|e| bad(&e))?;
        for item in walk {
            let result = item.map_err(|e| bad(&e))?;
            let network = result.network().map_err(|e| bad(&e))?;
            let (ip, prefix) = (network.network(), network.prefix());
            let net = match (ip, v6) {
                (IpAddr::V4(_), false) | (IpAddr::V6(_), true) => IpNet::new(ip, prefix),
                // An IPv6 record above the IPv4 subtree holds every IPv4 address.
                (IpAddr::V6(_), false) => {
                    IpNet::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0)
                }
                (IpAddr::V4(_), true) => continue,
            }
            .map_err(|e| bad(&e))?;
            let offset = result.offset().and_then(|o| u32::try_from(o).ok());
            let place = || match result.decode::<Record>() {
                Ok(Some(record)) => record.locate(),
                _ => Place::default(),
            };
            f(net, offset, &place);
        }
        Ok(())
    }

    /// Looks an address up. Never fails: a record that cannot be decoded counts as no
    /// location, since a query must not fail because of one odd record.
    pub fn lookup(&self, ip: IpAddr) -> GeoHit {
        let host = IpNet::from(ip);
        let Ok(result) = self.reader.lookup(ip) else {
            return GeoHit {
                place: Place::default(),
                network: host,
            };
        };
        let network = result
            .network()
            .ok()
            .and_then(|n| IpNet::new(n.network(), n.prefix()).ok())
            .unwrap_or(host);
        let place = match result.decode::<Record>() {
            Ok(Some(record)) => record.locate(),
            _ => Place::default(),
        };
        GeoHit { place, network }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmdb_writer::{Value, Writer};

    /// Both record shapes, with coordinates as doubles (MaxMind) and as floats (the DB-IP
    /// and GeoLite2 builds of ip-location-db on npm), place a client at its city.
    #[test]
    fn coordinates_are_read_as_doubles_or_floats_in_both_shapes() {
        let mut w = Writer::new("test", "shapes");
        let flat = |lat: Value, lon: Value| {
            Value::Map(vec![
                ("country_code".into(), Value::String("DE".into())),
                ("latitude".into(), lat),
                ("longitude".into(), lon),
            ])
        };
        let nested = |lat: Value, lon: Value| {
            Value::Map(vec![
                (
                    "location".into(),
                    Value::Map(vec![("latitude".into(), lat), ("longitude".into(), lon)]),
                ),
                (
                    "country".into(),
                    Value::Map(vec![("iso_code".into(), Value::String("DE".into()))]),
                ),
            ])
        };
        let cases = [
            (
                "192.0.2.0/24",
                flat(Value::Float(50.11), Value::Float(8.68)),
            ),
            (
                "198.51.100.0/24",
                flat(Value::Double(50.11), Value::Double(8.68)),
            ),
            (
                "203.0.113.0/24",
                nested(Value::Float(50.11), Value::Float(8.68)),
            ),
            (
                "198.18.0.0/24",
                nested(Value::Double(50.11), Value::Double(8.68)),
            ),
        ];
        for (net, v) in &cases {
            w.insert(net.parse().unwrap(), v.clone());
        }
        let db = GeoDb::from_bytes(w.to_bytes(), Path::new("shapes.mmdb")).unwrap();
        for (net, _) in cases {
            let ip = net.parse::<IpNet>().unwrap().addr();
            let place = db.lookup(ip).place;
            let (at, precision) = place.location.expect(net);
            assert_eq!(place.country, Some(*b"DE"), "{net}");
            assert_eq!(precision, Precision::City, "{net}");
            assert!(
                (at.lat - 50.11).abs() < 1e-4 && (at.lon - 8.68).abs() < 1e-4,
                "{net}: {at}"
            );
        }
    }

    /// A database without a description (as ip-location-db ships DB-IP and GeoLite2)
    /// loads; the same file with a record overwritten by garbage does not.
    #[test]
    fn a_database_without_description_is_checked_by_walking_it() {
        let mut w = Writer::new("test", "");
        for i in 0..64u32 {
            let net = IpNet::new(IpAddr::V4((0xC612_0000 + (i << 8)).into()), 24).unwrap();
            w.insert(
                net,
                Value::Map(vec![
                    ("country_code".into(), Value::String("JP".into())),
                    ("city".into(), Value::String(format!("city {i}"))),
                ]),
            );
        }
        let bytes = w.to_bytes();
        let db = GeoDb::from_bytes(bytes.clone(), Path::new("plain.mmdb")).unwrap();
        let hit = db.lookup("198.18.5.1".parse().unwrap());
        assert_eq!(hit.place.country, Some(*b"JP"));
        // Overwrite the first record's text with bytes that are no valid MMDB value.
        let at = bytes
            .windows(6)
            .position(|w| w == b"city 0")
            .expect("the record's text is in the file");
        let mut broken = bytes;
        broken[at - 1..at + 6].fill(0xFF);
        let e = GeoDb::from_bytes(broken, Path::new("broken.mmdb"))
            .expect_err("a broken record is refused at load");
        assert!(
            e.to_string().contains("broken.mmdb: not a valid MMDB file"),
            "{e}"
        );
    }

    #[test]
    fn distances_are_plausible() {
        let nyc = LatLon {
            lat: 40.71,
            lon: -74.01,
        };
        let london = LatLon {
            lat: 51.51,
            lon: -0.13,
        };
        let d = distance_km(nyc, london);
        assert!((5550.0..5600.0).contains(&d), "{d}");
        assert_eq!(distance_km(nyc, nyc), 0.0);
        // Across the antimeridian: Fiji to Samoa is ~1150 km, not ~38000.
        let fiji = LatLon {
            lat: -17.7,
            lon: 178.0,
        };
        let samoa = LatLon {
            lat: -13.8,
            lon: -172.1,
        };
        assert!(distance_km(fiji, samoa) < 1300.0);
    }
}
