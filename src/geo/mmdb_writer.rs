//! A small writer for MaxMind DB (MMDB v2.0) files.
//!
//! It exists so tests and the demo-database generator can produce real MMDB
//! files without depending on MaxMind's tooling. Only what fedns needs is
//! supported: an IPv6 tree (IPv4 lives at `::a.b.c.d`, as in MaxMind's own
//! IPv6 databases), longest-prefix-wins inserts, de-duplicated values and
//! byte-for-byte deterministic output. Not supported: aliases such as
//! `::ffff:0:0/96` or `2002::/16` pointing into the IPv4 subtree, so callers
//! must look up IPv4-mapped IPv6 addresses as plain IPv4
//! (`IpAddr::to_canonical`).

use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};

/// A value in the MMDB data section.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    String(String),
    Double(f64),
    Float(f32),
    U16(u16),
    U32(u32),
    U64(u64),
    I32(i32),
    Bool(bool),
    Map(Vec<(String, Value)>),
    Array(Vec<Value>),
}

/// Builds an MMDB file in memory; see [`Writer::to_bytes`].
#[derive(Clone, Debug)]
pub struct Writer {
    database_type: String,
    description: String,
    /// Networks keyed by (IPv6 network address, IPv6 prefix length). A
    /// `BTreeMap` gives a deterministic walk, and re-inserting the same
    /// network simply replaces its value (last insert wins).
    networks: BTreeMap<(u128, u8), Value>,
}

/// Separator between the search tree and the data section (all zero bytes).
const SEPARATOR_LEN: usize = 16;
const METADATA_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";

/// One record of a search-tree node, before pointer values are known.
#[derive(Clone, Copy)]
enum Record {
    Empty,
    Node(usize),
    /// Offset into the data section.
    Data(usize),
}

/// In-memory binary trie used while building the tree.
#[derive(Default)]
struct Trie {
    children: [Option<Box<Trie>>; 2],
    value: Option<Value>,
}

impl Writer {
    /// `database_type` goes in the metadata (e.g. "GeoLite2-City",
    /// "fedns-demo"); languages are `["en"]`; description is `{"en": description}` (`{}` when
    /// empty).
    pub fn new(database_type: &str, description: &str) -> Self {
        Writer {
            database_type: database_type.to_owned(),
            description: description.to_owned(),
            networks: BTreeMap::new(),
        }
    }

    /// Maps every address in `net` to `value`.
    ///
    /// IPv4 networks are stored at `::a.b.c.d/(96+len)`, the way MaxMind IPv6
    /// databases do, so the reader finds them with an IPv4 lookup. Hence an
    /// IPv6 network covering `::/96` (e.g. `::/0`) also covers IPv4 lookups,
    /// and `1.2.3.0/24` and `::1.2.3.0/120` are the same network (the later
    /// insert wins). Otherwise the longest prefix wins, whatever the insert
    /// order. Host bits in `net` are ignored.
    pub fn insert(&mut self, net: IpNet, value: Value) {
        let key = match net.trunc() {
            IpNet::V4(n) => (u128::from(u32::from(n.addr())), n.prefix_len() + 96),
            IpNet::V6(n) => (u128::from(n.addr()), n.prefix_len()),
        };
        self.networks.insert(key, value);
    }

    /// The whole file: search tree (IPv6, smallest record size that fits),
    /// 16-byte zero separator, data section (identical values stored once),
    /// metadata marker and metadata map. `build_epoch` is always 0 so the
    /// same inserts always give the same bytes.
    ///
    /// Panics only past the format's limits: a value bigger than 16,843,036
    /// bytes/entries, or a file needing record values of 2^32 or more.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_with(None)
    }

    /// `to_bytes`, optionally forcing a record size (tests use this to
    /// exercise all three node layouts without building huge databases).
    fn to_bytes_with(&self, forced_record_size: Option<u16>) -> Vec<u8> {
        let mut root = Trie::default();
        for (&(addr, len), value) in &self.networks {
            let mut node = &mut root;
            for depth in 0..len {
                let bit = ((addr >> (127 - depth)) & 1) as usize;
                node = node.children[bit].get_or_insert_with(Box::default);
            }
            node.value = Some(value.clone());
        }

        let mut flat = Flattener::default();
        flat.node(&root, None);
        let node_count = flat.nodes.len();
        // The largest value any record holds is a pointer to the last data
        // item; the "empty" value (node_count) is smaller than that.
        let max_record = node_count + SEPARATOR_LEN + flat.data.len();
        let record_size = forced_record_size.unwrap_or_else(|| record_size_for(max_record));
        assert!(
            (max_record as u64) < 1 << record_size,
            "database too large for {record_size}-bit records"
        );

        let mut out = Vec::with_capacity(node_count * 8 + flat.data.len() + 256);
        let pointer = |r: Record| -> u32 {
            let p = match r {
                Record::Empty => node_count,
                Record::Node(n) => n,
                Record::Data(offset) => node_count + SEPARATOR_LEN + offset,
            };
            p as u32 // fits: checked against 2^record_size above
        };
        for [left, right] in &flat.nodes {
            let (l, r) = (pointer(*left), pointer(*right));
            match record_size {
                24 => {
                    out.extend_from_slice(&l.to_be_bytes()[1..]);
                    out.extend_from_slice(&r.to_be_bytes()[1..]);
                }
                // Spec layout: [left low 24][left high 4 | right high 4][right low 24].
                28 => {
                    out.extend_from_slice(&l.to_be_bytes()[1..]);
                    out.push((((l >> 24) & 0x0F) << 4) as u8 | ((r >> 24) & 0x0F) as u8);
                    out.extend_from_slice(&r.to_be_bytes()[1..]);
                }
                _ => {
                    out.extend_from_slice(&l.to_be_bytes());
                    out.extend_from_slice(&r.to_be_bytes());
                }
            }
        }
        out.extend_from_slice(&[0; SEPARATOR_LEN]);
        out.extend_from_slice(&flat.data);
        out.extend_from_slice(METADATA_MARKER);
        let metadata = Value::Map(vec![
            ("binary_format_major_version".into(), Value::U16(2)),
            ("binary_format_minor_version".into(), Value::U16(0)),
            ("build_epoch".into(), Value::U64(0)),
            (
                "database_type".into(),
                Value::String(self.database_type.clone()),
            ),
            // An empty description is an empty map, as ip-location-db's builds have it.
            (
                "description".into(),
                Value::Map(if self.description.is_empty() {
                    Vec::new()
                } else {
                    vec![("en".into(), Value::String(self.description.clone()))]
                }),
            ),
            ("ip_version".into(), Value::U16(6)),
            (
                "languages".into(),
                Value::Array(vec![Value::String("en".into())]),
            ),
            ("node_count".into(), Value::U32(node_count as u32)),
            ("record_size".into(), Value::U16(record_size)),
        ]);
        encode(&metadata, &mut out);
        out
    }
}

/// Smallest record size (24, 28 or 32 bits) that can hold `max_record`.
fn record_size_for(max_record: usize) -> u16 {
    [24, 28, 32]
        .into_iter()
        .find(|&bits| (max_record as u64) < 1 << bits)
        .expect("database too large for 32-bit records")
}

/// Turns the trie into numbered MMDB nodes (pre-order, root is node 0) and
/// the de-duplicated data section.
#[derive(Default)]
struct Flattener {
    nodes: Vec<[Record; 2]>,
    data: Vec<u8>,
    /// Encoded value -> its offset in `data`, so identical values are stored once.
    offsets: HashMap<Vec<u8>, usize>,
}

impl Flattener {
    /// Emits `trie` as a node; `inherited` is the value of the nearest
    /// ancestor network, which fills any side no longer prefix claims.
    fn node(&mut self, trie: &Trie, inherited: Option<&Value>) -> usize {
        let index = self.nodes.len();
        self.nodes.push([Record::Empty; 2]);
        let inherited = trie.value.as_ref().or(inherited);
        for side in 0..2 {
            let record = match trie.children[side].as_deref() {
                Some(child) if child.children.iter().any(Option::is_some) => {
                    Record::Node(self.node(child, inherited))
                }
                // A leaf trie node always carries a value.
                Some(child) => self.data_record(child.value.as_ref()),
                None => self.data_record(inherited),
            };
            self.nodes[index][side] = record;
        }
        index
    }

    fn data_record(&mut self, value: Option<&Value>) -> Record {
        let Some(value) = value else {
            return Record::Empty;
        };
        let mut bytes = Vec::new();
        encode(value, &mut bytes);
        let next = self.data.len();
        let offset = *self.offsets.entry(bytes).or_insert(next);
        if offset == next {
            encode(value, &mut self.data);
        }
        Record::Data(offset)
    }
}

/// Appends `value` in the MMDB data-section encoding.
fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::String(s) => {
            control(2, s.len(), out);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Double(d) => {
            control(3, 8, out);
            out.extend_from_slice(&d.to_be_bytes());
        }
        Value::U16(n) => uint(5, u64::from(*n), out),
        Value::U32(n) => uint(6, u64::from(*n), out),
        Value::Map(entries) => {
            control(7, entries.len(), out);
            for (key, value) in entries {
                control(2, key.len(), out);
                out.extend_from_slice(key.as_bytes());
                encode(value, out);
            }
        }
        // The reader zero-extends short int32s, so negatives need all 4 bytes.
        Value::I32(n) if *n < 0 => {
            control(8, 4, out);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::I32(n) => uint(8, n.unsigned_abs().into(), out),
        Value::U64(n) => uint(9, *n, out),
        Value::Array(items) => {
            control(11, items.len(), out);
            items.iter().for_each(|item| encode(item, out));
        }
        Value::Bool(b) => control(14, usize::from(*b), out),
        Value::Float(f) => {
            control(15, 4, out);
            out.extend_from_slice(&f.to_be_bytes());
        }
    }
}

/// Unsigned integers are stored big-endian with leading zero bytes dropped.
fn uint(type_num: u8, n: u64, out: &mut Vec<u8>) {
    let bytes = n.to_be_bytes();
    let skip = (n.leading_zeros() / 8) as usize;
    control(type_num, 8 - skip, out);
    out.extend_from_slice(&bytes[skip..]);
}

/// Control byte(s): 3-bit type (types above 7 go in an extra byte as
/// `type - 7`) and a 5-bit size with 29/30/31 meaning 1/2/3 extra size bytes.
///
/// Panics if `size` exceeds the format's limit of 16,843,036 (bytes of a
/// string, or entries of a map or array).
fn control(type_num: u8, size: usize, out: &mut Vec<u8>) {
    let (size_bits, extra): (u8, Vec<u8>) = match size {
        0..29 => (size as u8, vec![]),
        29..285 => (29, vec![(size - 29) as u8]),
        285..65_821 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        65_821..16_843_037 => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
        _ => panic!("MMDB value of size {size} is too large"),
    };
    if type_num <= 7 {
        out.push(type_num << 5 | size_bits);
    } else {
        out.push(size_bits);
        out.push(type_num - 7);
    }
    out.extend_from_slice(&extra);
}

#[cfg(test)]
mod tests {
    use super::*;
    use maxminddb::Reader;
    use serde::Deserialize;

    type Map<V> = BTreeMap<String, V>;

    /// The flat ip-location-db record shape.
    #[derive(Deserialize, Debug, PartialEq)]
    struct Flat {
        country_code: String,
        latitude: f64,
        longitude: f64,
    }

    /// The MaxMind City record shape (only the fields fedns reads).
    #[derive(Deserialize, Debug)]
    struct City {
        city: Map<Map<String>>,
        country: Map<String>,
        continent: Map<String>,
        location: Map<f64>,
    }

    fn flat(cc: &str, lat: f64, lon: f64) -> Value {
        Value::Map(vec![
            ("country_code".into(), Value::String(cc.into())),
            ("latitude".into(), Value::Double(lat)),
            ("longitude".into(), Value::Double(lon)),
        ])
    }

    fn city(name: &str, cc: &str, continent: &str, lat: f64, lon: f64) -> Value {
        let map = |k: &str, v: Value| Value::Map(vec![(k.into(), v)]);
        let s = |v: &str| Value::String(v.into());
        let location = vec![
            ("latitude".into(), Value::Double(lat)),
            ("longitude".into(), Value::Double(lon)),
        ];
        Value::Map(vec![
            ("city".into(), map("names", map("en", s(name)))),
            ("country".into(), map("iso_code", s(cc))),
            ("continent".into(), map("code", s(continent))),
            ("location".into(), Value::Map(location)),
        ])
    }

    /// Looks `ip` up and returns the decoded record plus the reported network.
    fn get<T: for<'de> Deserialize<'de>>(r: &Reader<Vec<u8>>, ip: &str) -> (Option<T>, String) {
        let result = r.lookup(ip.parse().unwrap()).unwrap();
        let record: Option<T> = result.decode().unwrap();
        assert_eq!(record.is_some(), result.has_data());
        (record, result.network().unwrap().to_string())
    }

    fn country(r: &Reader<Vec<u8>>, ip: &str) -> Option<String> {
        get::<Flat>(r, ip).0.map(|f| f.country_code)
    }

    /// Flat-shape database with nested prefixes inserted in both orders.
    fn flat_db(forced_record_size: Option<u16>) -> Vec<u8> {
        let mut w = Writer::new("fedns-demo", "test database");
        // Less specific first, then more specific.
        w.insert("198.18.0.0/16".parse().unwrap(), flat("US", 1.0, 2.0));
        w.insert("198.18.2.0/24".parse().unwrap(), flat("JP", 35.68, 139.69));
        // More specific first, then less specific.
        w.insert("2001:db8:1::/48".parse().unwrap(), flat("DE", 52.5, 13.4));
        w.insert("2001:db8::/32".parse().unwrap(), flat("FR", 48.9, 2.35));
        w.insert("10.0.0.0/8".parse().unwrap(), flat("US", 1.0, 2.0)); // repeated value
        w.to_bytes_with(forced_record_size)
    }

    fn check_flat_db(bytes: Vec<u8>, record_size: u16) {
        let r = Reader::from_source(bytes).unwrap();
        r.verify().unwrap();
        let meta = r.metadata();
        assert_eq!((meta.ip_version, meta.record_size), (6, record_size));
        assert_eq!(meta.database_type, "fedns-demo");
        assert_eq!(meta.description["en"], "test database");
        assert_eq!(meta.languages, ["en"]);

        let (jp, net) = get::<Flat>(&r, "198.18.2.77");
        let jp = jp.unwrap();
        assert_eq!(
            (jp.country_code.as_str(), jp.latitude, jp.longitude),
            ("JP", 35.68, 139.69)
        );
        assert_eq!(net, "198.18.2.0/24");
        // Outside the /24 the /16 applies; the tree split reports the largest
        // network sharing that record.
        assert_eq!(country(&r, "198.18.200.1").as_deref(), Some("US"));
        assert_eq!(get::<Flat>(&r, "198.18.200.1").1, "198.18.128.0/17");
        assert_eq!(get::<Flat>(&r, "10.9.8.7").1, "10.0.0.0/8");
        assert_eq!(country(&r, "2001:db8:1:2::3").as_deref(), Some("DE"));
        assert_eq!(get::<Flat>(&r, "2001:db8:1:2::3").1, "2001:db8:1::/48");
        assert_eq!(country(&r, "2001:db8:ffff::1").as_deref(), Some("FR"));
        // The IPv4 insert is also reachable as ::198.18.2.1 (= ::c612:201).
        assert_eq!(get::<Flat>(&r, "::198.18.2.1").1, "::c612:200/120");
        for miss in [
            "198.19.0.1",
            "8.8.8.8",
            "0.0.0.0",
            "255.255.255.255",
            "2001:db9::1",
            "::1",
        ] {
            let (rec, _) = get::<Flat>(&r, miss);
            assert_eq!(rec, None, "{miss}");
        }
    }

    #[test]
    fn flat_shape_nested_prefixes_and_misses() {
        let bytes = flat_db(None);
        assert_eq!(bytes, flat_db(None), "output must be deterministic");
        check_flat_db(bytes, 24);
    }

    #[test]
    fn all_record_sizes_read_back() {
        for size in [24, 28, 32] {
            check_flat_db(flat_db(Some(size)), size);
        }
    }

    #[test]
    fn identical_values_stored_once() {
        let mut w = Writer::new("t", "t");
        w.insert("1.0.0.0/8".parse().unwrap(), flat("US", 1.0, 2.0));
        w.insert("9.0.0.0/8".parse().unwrap(), flat("US", 1.0, 2.0));
        let bytes = w.to_bytes();
        let copies = bytes
            .windows(12)
            .filter(|win| win == b"country_code")
            .count();
        assert_eq!(copies, 1);
        let r = Reader::from_source(bytes).unwrap();
        let a = r.lookup("1.1.1.1".parse().unwrap()).unwrap().offset();
        let b = r.lookup("9.1.1.1".parse().unwrap()).unwrap().offset();
        assert!(a.is_some() && a == b);
    }

    #[test]
    fn city_shape_and_default_route() {
        let mut w = Writer::new("GeoLite2-City", "city test");
        w.insert(
            "::/0".parse().unwrap(),
            city("Nowhere", "ZZ", "XX", 0.0, 0.0),
        );
        w.insert(
            "203.0.113.0/24".parse().unwrap(),
            city("Tokyo", "JP", "AS", 35.68, 139.69),
        );
        w.insert(
            "2001:db8::/32".parse().unwrap(),
            city("Berlin", "DE", "EU", 52.5, 13.4),
        );
        let r = Reader::from_source(w.to_bytes()).unwrap();
        r.verify().unwrap();
        let (tokyo, net) = get::<City>(&r, "203.0.113.9");
        let tokyo = tokyo.unwrap();
        assert_eq!(net, "203.0.113.0/24");
        assert_eq!(tokyo.city["names"]["en"], "Tokyo");
        assert_eq!(tokyo.country["iso_code"], "JP");
        assert_eq!(tokyo.continent["code"], "AS");
        assert_eq!(tokyo.location["latitude"], 35.68);
        assert_eq!(tokyo.location["longitude"], 139.69);
        let iso = |ip| get::<City>(&r, ip).0.unwrap().country["iso_code"].clone();
        assert_eq!(iso("2001:db8::1"), "DE");
        // ::/0 covers everything else, IPv4 included.
        assert_eq!(iso("8.8.8.8"), "ZZ");
        assert_eq!(iso("2600::1"), "ZZ");
    }

    #[test]
    fn empty_database_finds_nothing() {
        let r = Reader::from_source(Writer::new("t", "t").to_bytes()).unwrap();
        r.verify().unwrap();
        assert!(!r.lookup("1.2.3.4".parse().unwrap()).unwrap().has_data());
        assert!(!r.lookup("::1".parse().unwrap()).unwrap().has_data());
    }

    #[test]
    fn scalar_types_round_trip() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct All {
            s: String,
            f: f32,
            a: u16,
            b: u32,
            c: u64,
            neg: i32,
            pos: i32,
            t: bool,
            list: Vec<u32>,
            long: String,
        }
        let long = "x".repeat(70_000); // exercises the 3-byte size form
        let v = Value::Map(vec![
            ("s".into(), Value::String("héllo".into())),
            ("f".into(), Value::Float(1.5)),
            ("a".into(), Value::U16(300)),
            ("b".into(), Value::U32(0)),
            ("c".into(), Value::U64(u64::MAX)),
            ("neg".into(), Value::I32(-5)),
            ("pos".into(), Value::I32(70_000)),
            ("t".into(), Value::Bool(true)),
            (
                "list".into(),
                Value::Array((0..300).map(Value::U32).collect()),
            ),
            ("long".into(), Value::String(long.clone())),
        ]);
        let mut w = Writer::new("t", "t");
        w.insert("192.0.2.0/24".parse().unwrap(), v);
        let r = Reader::from_source(w.to_bytes()).unwrap();
        let (s, f, list) = ("héllo".into(), 1.5, (0..300).collect());
        let want = All {
            s,
            f,
            a: 300,
            b: 0,
            c: u64::MAX,
            neg: -5,
            pos: 70_000,
            t: true,
            list,
            long,
        };
        assert_eq!(get::<All>(&r, "192.0.2.1").0, Some(want));
    }

    #[test]
    fn thousands_of_networks() {
        let mut w = Writer::new("t", "t");
        for i in 0..4000u32 {
            let v4 = std::net::Ipv4Addr::from(0x0A00_0000 + (i << 8));
            w.insert(IpNet::new(v4.into(), 24).unwrap(), Value::U32(i));
            let v6 = std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i) << 64);
            w.insert(
                IpNet::new(v6.into(), 64).unwrap(),
                Value::U32(i + 1_000_000),
            );
        }
        let r = Reader::from_source(w.to_bytes()).unwrap();
        r.verify().unwrap();
        assert_eq!(r.metadata().record_size, 24);
        assert!(r.metadata().node_count > 8000);
        for i in [0u32, 1, 1234, 3999] {
            let (a, b) = (i >> 8, i & 0xFF);
            let want = (Some(i), format!("10.{a}.{b}.0/24"));
            assert_eq!(get::<u32>(&r, &format!("10.{a}.{b}.5")), want);
            assert_eq!(
                get::<u32>(&r, &format!("2001:db8:0:{i:x}::1")).0,
                Some(i + 1_000_000)
            );
        }
        assert_eq!(get::<u32>(&r, "10.15.160.1").0, None); // i = 4000 was not inserted
    }

    #[test]
    fn record_size_selection() {
        assert_eq!(record_size_for(0), 24);
        assert_eq!(record_size_for((1 << 24) - 1), 24);
        assert_eq!(record_size_for(1 << 24), 28);
        assert_eq!(record_size_for((1 << 28) - 1), 28);
        assert_eq!(record_size_for(1 << 28), 32);
        assert_eq!(record_size_for((1 << 32) - 1), 32);
    }
}
