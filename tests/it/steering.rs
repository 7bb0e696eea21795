//! Steering rules as tables, on the answer function with a synthetic GeoIP database: the
//! most specific per-geography failover order wins, capacity spillover shares clients by
//! their network, weights follow ready endpoints, and the ECS scope is the widest block
//! with one answer and never joins two networks whose answers differ.

use std::collections::BTreeMap;
use std::net::IpAddr;

use fedns::answer::{Client, Question, answer, network_share};
use fedns::geo::mmdb_writer::{Value, Writer};
use fedns::snapshot::Snapshot;
use fedns::store::Store;
use fedns_testkit::random::Xorshift;
use hickory_proto::rr::{DNSClass, Name, RecordType};
use ipnet::IpNet;

/// Places of the synthetic world: name, coordinates, country.
const CITIES: [(&str, f64, f64, &str); 12] = [
    ("new-york", 40.71, -74.01, "US"),
    ("chicago", 41.88, -87.63, "US"),
    ("toronto", 43.65, -79.38, "CA"),
    ("london", 51.51, -0.13, "GB"),
    ("berlin", 52.52, 13.40, "DE"),
    ("paris", 48.86, 2.35, "FR"),
    ("madrid", 40.42, -3.70, "ES"),
    ("tokyo", 35.68, 139.69, "JP"),
    ("sao-paulo", -23.55, -46.63, "BR"),
    ("sydney", -33.87, 151.21, "AU"),
    ("mumbai", 19.08, 72.88, "IN"),
    ("lagos", 6.52, 3.38, "NG"),
];

fn city(name: &str) -> usize {
    CITIES.iter().position(|c| c.0 == name).unwrap()
}

fn record(i: usize) -> Value {
    let (_, lat, lon, cc) = CITIES[i];
    Value::Map(vec![
        (
            "location".into(),
            Value::Map(vec![
                ("latitude".into(), Value::Double(lat)),
                ("longitude".into(), Value::Double(lon)),
            ]),
        ),
        (
            "country".into(),
            Value::Map(vec![("iso_code".into(), Value::String(cc.into()))]),
        ),
    ])
}

/// The synthetic world: 20.0.0.0/8 in /20s (some split into /22s), 2001:db8::/40 in
/// /48s, runs of one city as real databases have, and known places at its start:
/// 20.0.0.0/20 New York, 20.0.16.0/20 London, 20.0.32.0/20 Berlin, 20.3.0.0/20 Berlin
/// (inside the order network 20.3.0.0/16). 30.0.0.0/24 and the 9,999 /24s after it are
/// New York, each a network of its own (the spillover table).
fn world() -> Vec<u8> {
    let mut w = Writer::new("fedns-steering-test", "synthetic world");
    let mut rng = Xorshift::new(0x5eed_f00d);
    let mut at = city("new-york");
    for i in 0u32..4096 {
        if rng.next_u64().is_multiple_of(10) {
            at = (rng.next_u64() % CITIES.len() as u64) as usize;
        }
        let base = (20u32 << 24) + (i << 12);
        if rng.next_u64().is_multiple_of(8) {
            for q in 0..4u32 {
                let c = (at + q as usize * (rng.next_u64() % 2) as usize) % CITIES.len();
                let net = IpNet::new(IpAddr::V4((base + (q << 10)).into()), 22).unwrap();
                w.insert(net, record(c));
            }
        } else {
            let net = IpNet::new(IpAddr::V4(base.into()), 20).unwrap();
            w.insert(net, record(at));
        }
    }
    for i in 0u128..256 {
        if rng.next_u64().is_multiple_of(6) {
            at = (rng.next_u64() % CITIES.len() as u64) as usize;
        }
        let base: u128 = (0x2001_0db8u128 << 96) + (i << 80);
        w.insert(IpNet::new(IpAddr::V6(base.into()), 48).unwrap(), record(at));
    }
    for (net, c) in [
        ("20.0.0.0/20", "new-york"),
        ("20.0.16.0/20", "london"),
        ("20.0.32.0/20", "berlin"),
        ("20.3.0.0/20", "berlin"),
    ] {
        w.insert(net.parse().unwrap(), record(city(c)));
    }
    for i in 0u32..10_000 {
        let net = IpNet::new(IpAddr::V4(((30u32 << 24) + (i << 8)).into()), 24).unwrap();
        w.insert(net, record(city("new-york")));
    }
    w.to_bytes()
}

const CLUSTERS: [(&str, &str, &str); 5] = [
    ("us-east", "us-east-1", "192.0.2.1"),
    ("eu-west", "eu-west-1", "192.0.2.2"),
    ("eu-central", "eu-central-1", "192.0.2.3"),
    ("ap-northeast", "ap-northeast-1", "192.0.2.4"),
    ("sa-east", "sa-east-1", "192.0.2.5"),
];

/// A federation of the five clusters over the synthetic world, with `services` (YAML list
/// entries of `services:`) and every cluster serving `near`, `near2`, `fo`, `spill` and
/// `wt`; `two` is in us-east and eu-west only.
fn federation(services: &str) -> String {
    let dir = fedns_testkit::sys::temp_dir("steering");
    let db = dir.join("world.mmdb");
    std::fs::write(&db, world()).unwrap();
    let mut c = format!(
        "zone: fed.example.com\nfederation: myfed\nhealth: {{ probe: none }}\n\
         geoip: {{ database: {} }}\n\
         networks:\n  - {{ cidr: 20.1.0.0/16, location: {{ lat: 50.11, lon: 8.68 }} }}\n  \
         - {{ cidr: 20.2.3.0/24, cluster: sa-east }}\n\
         services:\n{services}\nclusters:\n",
        db.display()
    );
    for (name, region, ip) in CLUSTERS {
        c.push_str(&format!(
            "  - name: {name}\n    region: {region}\n    services:\n"
        ));
        for svc in ["near", "near2", "fo", "spill", "wt"] {
            c.push_str(&format!(
                "      - {{ namespace: default, name: {svc}, addresses: [{ip}] }}\n"
            ));
        }
        if ["us-east", "eu-west"].contains(&name) {
            c.push_str(&format!(
                "      - {{ namespace: default, name: two, addresses: [{ip}] }}\n"
            ));
        }
    }
    c
}

const SERVICES: &str = "  - { namespace: default, name: near2, count: 2 }
  - namespace: default
    name: fo
    policy: failover
    order: [us-east, eu-west]
    orders:
      continent:EU: [eu-west, eu-central, us-east]
      country:DE: [eu-central, eu-west]
      20.3.0.0/16: [ap-northeast]
  - { namespace: default, name: spill, spill_below: 10 }
  - { namespace: default, name: wt, policy: weighted, weights: ready-endpoints }";

/// A snapshot of `config` with the addresses in `down` failing, and each cluster's
/// ready endpoints for every service as `ready` says (none: not counted).
fn snapshot(config: &str, down: &[&str], ready: &[(&str, u32)]) -> Snapshot {
    let loaded = fedns_testkit::server::load(config);
    let mut eps = fedns::sources::static_services::endpoints(&loaded.config);
    for (cluster, n) in ready {
        for ep in eps.get_mut(*cluster).into_iter().flatten() {
            ep.ready_endpoints = Some(*n);
        }
    }
    fedns_testkit::server::snapshot_down(&loaded, &Store::with_static(eps), down)
}

/// The answer's addresses and ECS scope for a client at `ip` (ECS of the whole address).
fn ask(snap: &Snapshot, svc: &str, ip: IpAddr) -> (Vec<String>, u8) {
    let name = Name::from_ascii(format!("{svc}.default.myfed.svc.fed.example.com.")).unwrap();
    let q = Question {
        name: &name,
        qtype: RecordType::A,
        qclass: DNSClass::IN,
    };
    let client = Client {
        source: "192.0.2.53".parse().unwrap(),
        ecs: Some(IpNet::from(ip)),
    };
    let a = answer(snap, &q, &client, false);
    // The metric's flag says what the scope says: wider than the placing network.
    let network = snap.locator.locate(ip).network.prefix_len();
    assert_eq!(a.widened, a.client_dependent && a.scope < network, "{ip}");
    let mut data: Vec<String> = a.answers.iter().map(|r| r.data.to_string()).collect();
    data.sort();
    (data, a.scope)
}

fn cluster_of(answers: &[String]) -> &'static str {
    match answers {
        [one] => CLUSTERS
            .iter()
            .find(|c| c.2 == one)
            .map(|c| c.0)
            .unwrap_or_else(|| panic!("{one} is no cluster's")),
        other => panic!("expected one address, got {other:?}"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn the_most_specific_failover_order_wins() {
    let snap = snapshot(&federation(SERVICES), &[], &[]);
    let fo = |at: &str| cluster_of(&ask(&snap, "fo", ip(at)).0);
    assert_eq!(fo("20.0.0.1"), "us-east", "New York: the default order");
    assert_eq!(fo("20.0.16.1"), "eu-west", "London: continent:EU");
    assert_eq!(
        fo("20.0.32.1"),
        "eu-central",
        "Berlin: country:DE over continent:EU"
    );
    assert_eq!(
        fo("20.3.0.1"),
        "ap-northeast",
        "20.3.0.0/16 over country:DE"
    );
    // Each order is followed down when its first cluster is out.
    let snap = snapshot(&federation(SERVICES), &["192.0.2.3", "192.0.2.4"], &[]);
    let fo = |at: &str| cluster_of(&ask(&snap, "fo", ip(at)).0);
    assert_eq!(fo("20.0.32.1"), "eu-west");
    assert_eq!(fo("20.0.16.1"), "eu-west");
    // Nothing listed in the network's order is up: the nearest of the rest.
    assert_eq!(fo("20.3.0.1"), "eu-west");
    // explain names the order that applied.
    let name = Name::from_ascii("fo.default.myfed.svc.fed.example.com.").unwrap();
    let text =
        fedns::ops::explain::explain(&snap, "20.0.32.0/24", &name, RecordType::A, &|_| Vec::new())
            .unwrap();
    assert!(
        text.contains("order:    the failover order for country:DE"),
        "{text}"
    );
}

#[test]
fn spillover_shares_a_short_clusters_clients_by_network_and_stably() {
    // us-east has 4 of the 10 ready endpoints it needs: it keeps 40 % of New York.
    let snap = snapshot(
        &federation(SERVICES),
        &[],
        &[("us-east", 4), ("eu-west", 20)],
    );
    let mut spilled = 0;
    for i in 0u32..10_000 {
        let net = (30u32 << 24) + (i << 8);
        let (a, scope) = ask(&snap, "spill", IpAddr::V4((net + 7).into()));
        let c = cluster_of(&a);
        // The next nearest to New York is eu-west (Dublin), then eu-central.
        assert!(c == "us-east" || c == "eu-west", "{c}");
        spilled += usize::from(c == "eu-west");
        // The same network, another address: the same answer; the scope is its own /24.
        let (again, _) = ask(&snap, "spill", IpAddr::V4((net + 200).into()));
        assert_eq!(a, again, "network {i}");
        assert_eq!(scope, 24);
        // The share is the documented hash of the network.
        let share = network_share(IpNet::new(IpAddr::V4(net.into()), 24).unwrap());
        assert_eq!(c == "eu-west", share >= 0.4, "network {i}");
    }
    let share = spilled as f64 / 10_000.0;
    assert!((0.55..=0.65).contains(&share), "spilled {share}");
    // At its threshold, it keeps every client.
    let snap = snapshot(&federation(SERVICES), &[], &[("us-east", 10)]);
    for i in 0u32..200 {
        let (a, _) = ask(
            &snap,
            "spill",
            IpAddr::V4(((30u32 << 24) + (i << 8)).into()),
        );
        assert_eq!(cluster_of(&a), "us-east");
    }
}

#[test]
fn ready_endpoint_weights_share_in_proportion() {
    let snap = snapshot(
        &federation(SERVICES),
        &[],
        &[
            ("us-east", 1),
            ("eu-west", 3),
            ("eu-central", 6),
            ("ap-northeast", 0),
            ("sa-east", 0),
        ],
    );
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for _ in 0..10_000 {
        *by.entry(cluster_of(&ask(&snap, "wt", ip("20.0.0.1")).0))
            .or_default() += 1;
    }
    let share = |c: &str| by.get(c).copied().unwrap_or(0) as f64 / 10_000.0;
    assert!((0.08..0.12).contains(&share("us-east")), "{by:?}");
    assert!((0.27..0.33).contains(&share("eu-west")), "{by:?}");
    assert!((0.57..0.63).contains(&share("eu-central")), "{by:?}");
    assert_eq!(share("ap-northeast") + share("sa-east"), 0.0, "{by:?}");
}

/// Every client asks with its whole address as ECS; every address inside the scope it
/// is given must get the same answer. Checked for random clients over the synthetic
/// world (and outside it), for each policy, with every cluster up and with some down.
#[test]
fn a_scope_never_joins_networks_whose_answers_differ() {
    let config = federation(SERVICES);
    let ready = [("us-east", 4), ("eu-west", 20)];
    let states: [&[&str]; 3] = [&[], &["192.0.2.1"], &["192.0.2.2", "192.0.2.3"]];
    let mut rng = Xorshift::new(0xdead_beef);
    let random_in = |net: IpNet, rng: &mut Xorshift| -> IpAddr {
        match net {
            IpNet::V4(n) => {
                let span = u64::from(!u32::from(n.netmask()));
                let off = if span == 0 {
                    0
                } else {
                    rng.next_u64() % (span + 1)
                };
                IpAddr::V4((u32::from(n.network()) + off as u32).into())
            }
            IpNet::V6(n) => {
                let span = !u128::from(n.netmask());
                let r = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
                let off = if span == 0 { 0 } else { r % span };
                IpAddr::V6((u128::from(n.network()) + off).into())
            }
        }
    };
    let mut widened = 0;
    let mut asked = 0;
    for down in states {
        let snap = snapshot(&config, down, &ready);
        for svc in ["near", "near2", "fo", "spill", "two"] {
            for _ in 0..300 {
                let x = match rng.next_u64() % 10 {
                    0 => random_in("0.0.0.0/0".parse().unwrap(), &mut rng),
                    1 => random_in("2001:db8::/40".parse().unwrap(), &mut rng),
                    2 => random_in("30.0.0.0/10".parse().unwrap(), &mut rng),
                    _ => random_in("20.0.0.0/8".parse().unwrap(), &mut rng),
                };
                let (a, scope) = ask(&snap, svc, x);
                let block = IpNet::new(x, scope).unwrap().trunc();
                let today = snap.locator.locate(x).network.prefix_len();
                asked += 1;
                widened += usize::from(scope < today);
                let ends = match block {
                    IpNet::V4(n) => [IpAddr::V4(n.network()), IpAddr::V4(n.broadcast())],
                    IpNet::V6(n) => [IpAddr::V6(n.network()), IpAddr::V6(n.broadcast())],
                };
                let samples = (0..12).map(|_| random_in(block, &mut rng));
                for y in ends.into_iter().chain(samples) {
                    let (b, _) = ask(&snap, svc, y);
                    assert_eq!(
                        a, b,
                        "{svc} with {down:?} down: {x} got scope {block}, but {y} in it gets another answer"
                    );
                }
            }
        }
    }
    // Most answers hold for more than the network that placed the client.
    assert!(widened * 2 > asked, "{widened} of {asked} widened");
}

#[test]
fn orders_with_a_bad_geography_are_config_errors_at_their_line() {
    for (key, want) in [
        ("continent:XX", "`XX` is not a continent code"),
        ("country:ZZ", "`ZZ` is not an ISO 3166 country code"),
        ("10.0.0.1/8", "has host bits set"),
        ("europe", "is not a geography"),
    ] {
        let services = format!(
            "  - namespace: default\n    name: fo\n    policy: failover\n    orders:\n      {key}: [us-east]"
        );
        let path = fedns_testkit::server::write_config("orders", &federation(&services));
        let e = fedns::app::LoadedConfig::from_file(&path)
            .err()
            .unwrap_or_else(|| panic!("{key} accepted"))
            .to_string();
        assert!(
            e.contains(&format!("services[0].orders.{key}")) && e.contains(want),
            "{key}: {e}"
        );
    }
}

/// A name whose new per-geography order has a network no order had cuts the place map
/// anew; every other name keeps a scope map (made again from the new place map), not
/// only the name that changed.
#[test]
fn a_new_order_network_remaps_every_name() {
    let mut snap = snapshot(&federation(SERVICES), &[], &[]);
    let before = snap.places.clone().unwrap();
    let maps = snap.scopes.len();
    let clients: Vec<IpAddr> = (0..64u32)
        .map(|i| IpAddr::V4(((21u32 << 24) - 1 - i * 0x0004_1000).into()))
        .collect();
    let scopes =
        |snap: &Snapshot| -> Vec<u8> { clients.iter().map(|c| ask(snap, "near", *c).1).collect() };
    let near_before = scopes(&snap);
    assert!(near_before.iter().any(|s| *s < 20), "{near_before:?}");
    assert!(maps >= 3, "{maps}");
    let mut fo = (**snap.services.get("default/fo").unwrap()).clone();
    fo.policy.orders.insert(
        0,
        (
            "20.4.0.0/16".parse().unwrap(),
            fo.policy.order.iter().rev().copied().collect(),
        ),
    );
    let fo = std::sync::Arc::new(fo);
    snap.services.insert("default/fo".into(), fo.clone());
    fedns::answer::scope::prepare(&mut snap, None, None, Some(&[fo]));
    let after = snap.places.clone().unwrap();
    assert!(!std::sync::Arc::ptr_eq(&before, &after), "a new place map");
    assert!(after.inputs.contains("order network 20.4.0.0/16"));
    assert!(snap.scopes.len() >= maps, "{} of {maps}", snap.scopes.len());
    // `near` (untouched) gives its clients outside 20.4.0.0/16 the same scopes as before.
    assert_eq!(scopes(&snap), near_before);
}
