//! The locator: where a client is, from the `networks` overrides (longest prefix first),
//! else the GeoIP database. It also names the record that placed a client
//! (`LocationKey`), so that answer caches can share one answer per place.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::geo::{GeoDb, GeoHit, LatLon, Place, Precision};

/// Index of a cluster in `Snapshot::clusters`.
pub type ClusterId = u16;

/// A source override: clients in `net` are placed by the config, not by GeoIP.
#[derive(Clone, Debug)]
pub struct Override {
    pub net: IpNet,
    pub target: OverrideTarget,
}

#[derive(Clone, Debug)]
pub enum OverrideTarget {
    /// A cluster, with its location.
    Cluster(ClusterId, LatLon),
    Location(LatLon, String),
}

/// Where a client was placed, and what decided it.
#[derive(Clone, Debug, PartialEq)]
pub struct Located {
    pub location: Option<LatLon>,
    /// A `networks` override that names a cluster: that cluster comes first.
    pub pinned: Option<ClusterId>,
    /// The network whose prefix decided the location (the ECS scope of a geo answer).
    pub network: IpNet,
    pub source: LocationSource,
    /// The GeoIP record's country and continent codes (none for an override), for the
    /// per-geography failover orders.
    pub country: Option<[u8; 2]>,
    pub continent: Option<[u8; 2]>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LocationSource {
    Override(IpNet),
    GeoIp(Precision),
    /// Neither an override nor the database knows the address.
    Unknown,
}

impl fmt::Display for LocationSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocationSource::Override(net) => write!(f, "networks override {net}"),
            LocationSource::GeoIp(p) => write!(f, "GeoIP ({p})"),
            LocationSource::Unknown => f.write_str("unknown (fallback order)"),
        }
    }
}

/// What placed a client, as `Locator::key` gives it: an override (by its index), a GeoIP
/// record (by its offset in the database), or nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LocationKey {
    Override(u32),
    GeoIp(u32),
    Unknown,
}

/// One client network (its address bits and prefix length, IPv4 as IPv4-mapped IPv6):
/// the cache key of answers that depend on the client's network and not only on its
/// place (capacity spillover).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NetworkKey(u128, u8);

impl NetworkKey {
    /// The key of the network of `prefix` bits that contains `ip`.
    pub fn of(ip: IpAddr, prefix: u8) -> NetworkKey {
        let net = IpNet::new(ip.to_canonical(), prefix).map_or(IpNet::from(ip), |n| n.trunc());
        match net.network() {
            IpAddr::V4(a) => NetworkKey(u128::from(a.to_ipv6_mapped()), 96 + net.prefix_len()),
            IpAddr::V6(a) => NetworkKey(u128::from(a), net.prefix_len()),
        }
    }
}

/// Source overrides and the GeoIP database together.
#[derive(Debug, Default, Clone)]
pub struct Locator {
    /// Sorted by prefix length, longest first, so the first match wins.
    overrides: Vec<Override>,
    geoip: Option<Arc<GeoDb>>,
}

impl Locator {
    pub fn new(mut overrides: Vec<Override>, geoip: Option<Arc<GeoDb>>) -> Locator {
        overrides.sort_by_key(|o| std::cmp::Reverse(o.net.prefix_len()));
        Locator { overrides, geoip }
    }

    pub fn geoip(&self) -> Option<&GeoDb> {
        self.geoip.as_deref()
    }

    /// Which location `locate` would give `ip`, as a key that is equal for two addresses
    /// only when `locate` places them alike, and the prefix length of the deciding
    /// network (`locate`'s `network`). No record is decoded: this is the query path's
    /// cheap question, asked before the answer cache.
    pub fn key(&self, ip: IpAddr) -> (LocationKey, u8) {
        let ip = ip.to_canonical();
        if let Some(i) = self.overrides.iter().position(|o| o.net.contains(&ip)) {
            return (
                LocationKey::Override(i as u32),
                self.overrides[i].net.prefix_len(),
            );
        }
        let host = if ip.is_ipv4() { 32 } else { 128 };
        match &self.geoip {
            Some(db) => match db.record_of(ip) {
                (Some(offset), prefix) => (LocationKey::GeoIp(offset), prefix),
                (None, prefix) => (LocationKey::Unknown, prefix),
            },
            None => (LocationKey::Unknown, host),
        }
    }

    pub fn locate(&self, ip: IpAddr) -> Located {
        // An IPv4 client seen on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        if let Some(o) = self.overrides.iter().find(|o| o.net.contains(&ip)) {
            return Located::by_override(o);
        }
        if let Some(db) = &self.geoip {
            let GeoHit { place, network } = db.lookup(ip);
            return Located::at_place(place, network);
        }
        Located::at_place(Place::default(), IpNet::from(ip))
    }

    pub fn overrides(&self) -> &[Override] {
        &self.overrides
    }
}

impl Located {
    /// A client placed by a GeoIP record (or by nothing: an empty place).
    pub fn at_place(place: Place, network: IpNet) -> Located {
        let (location, source) = match place.location {
            Some((l, precision)) => (Some(l), LocationSource::GeoIp(precision)),
            None => (None, LocationSource::Unknown),
        };
        Located {
            location,
            pinned: None,
            network,
            source,
            country: place.country,
            continent: place.continent,
        }
    }

    /// A client placed by a `networks` override.
    pub fn by_override(o: &Override) -> Located {
        let (location, pinned) = match &o.target {
            OverrideTarget::Cluster(id, l) => (Some(*l), Some(*id)),
            OverrideTarget::Location(l, _) => (Some(*l), None),
        };
        Located {
            location,
            pinned,
            network: o.net,
            source: LocationSource::Override(o.net),
            country: None,
            continent: None,
        }
    }
}
