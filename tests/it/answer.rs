//! The answer function with a parsed question and no socket: health decisions (readiness and
//! probe state per address come from the snapshot), fail-open and SERVFAIL, the CNAME up the
//! hierarchy when a region has nothing healthy, and `explain`.

use std::net::IpAddr;

use fedns::answer::{Client, Question, answer};
use fedns::snapshot::Snapshot;
use fedns::store::Store;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RecordType};

/// A snapshot of `config` in which the addresses in `down` fail their probes.
fn snapshot(config: &str, down: &[&str]) -> Snapshot {
    let loaded = fedns_testkit::server::load(config);
    let store = Store::with_static(fedns::sources::static_services::endpoints(&loaded.config));
    fedns_testkit::server::snapshot_down(&loaded, &store, down)
}

fn ask(snap: &Snapshot, name: &str, qtype: RecordType, ecs: &str) -> (ResponseCode, Vec<String>) {
    let name = Name::from_ascii(name).unwrap();
    let q = Question {
        name: &name,
        qtype,
        qclass: DNSClass::IN,
    };
    let client = Client {
        source: "192.0.2.53".parse().unwrap(),
        ecs: Some(ecs.parse().unwrap()),
    };
    let a = answer(snap, &q, &client, false);
    (a.rcode, a.answers.iter().map(|r| r.to_string()).collect())
}

const NEW_YORK: &str = "198.18.0.0/24";
const APP: &str = "app.default.myfed.svc.fed.example.com.";

#[test]
fn an_unhealthy_nearest_cluster_gives_way_to_the_next_nearest() {
    let snap = snapshot(
        fedns_testkit::server::CONFIG,
        &["192.0.2.10", "2001:db8:10::10"],
    );
    let (rcode, answers) = ask(&snap, APP, RecordType::A, NEW_YORK);
    assert_eq!(rcode, ResponseCode::NoError);
    assert_eq!(answers, [format!("{APP} 30 IN A 198.51.100.10")]);
}

#[test]
fn only_healthy_addresses_of_a_cluster_are_answered() {
    let snap = snapshot(fedns_testkit::server::CONFIG, &["192.0.2.113"]);
    let (_, answers) = ask(
        &snap,
        "two.default.myfed.svc.fed.example.com.",
        RecordType::A,
        NEW_YORK,
    );
    assert_eq!(
        answers,
        [
            "two.default.myfed.svc.fed.example.com. 30 IN A 192.0.2.13",
            "two.default.myfed.svc.fed.example.com. 30 IN A 198.51.100.13",
        ]
    );
}

#[test]
fn all_unhealthy_fails_open_to_the_nearest() {
    let all = [
        "192.0.2.10",
        "2001:db8:10::10",
        "198.51.100.10",
        "2001:db8:20::10",
        "203.0.113.10",
        "2001:db8:30::10",
        "192.0.2.40",
        "203.0.113.50",
        "2001:db8:50::10",
    ];
    let snap = snapshot(fedns_testkit::server::CONFIG, &all);
    let (rcode, answers) = ask(&snap, APP, RecordType::A, NEW_YORK);
    assert_eq!(rcode, ResponseCode::NoError);
    assert_eq!(answers, [format!("{APP} 30 IN A 192.0.2.10")]);
    let name = Name::from_ascii(APP).unwrap();
    let q = Question {
        name: &name,
        qtype: RecordType::A,
        qclass: DNSClass::IN,
    };
    let client = Client {
        source: "192.0.2.53".parse().unwrap(),
        ecs: Some(NEW_YORK.parse().unwrap()),
    };
    let traced = answer(&snap, &q, &client, true);
    assert!(traced.decisions[0].fail_open);

    // With `on_all_unhealthy: servfail`, the same question is SERVFAIL.
    let servfail = fedns_testkit::server::CONFIG.replace(
        "health: { probe: none }",
        "health: { probe: none, on_all_unhealthy: servfail }",
    );
    let snap = snapshot(&servfail, &all);
    assert_eq!(
        ask(&snap, APP, RecordType::A, NEW_YORK).0,
        ResponseCode::ServFail
    );
    // A name with a healthy cluster is not affected.
    let (rcode, _) = ask(
        &snap,
        "web.default.myfed.svc.fed.example.com.",
        RecordType::A,
        NEW_YORK,
    );
    assert_eq!(rcode, ResponseCode::NoError);
}

#[test]
fn a_region_with_nothing_healthy_points_up_to_the_global_name() {
    let snap = snapshot(
        fedns_testkit::server::CONFIG,
        &["192.0.2.10", "2001:db8:10::10"],
    );
    let (rcode, answers) = ask(
        &snap,
        "app.default.myfed.svc.us-east-1.fed.example.com.",
        RecordType::A,
        NEW_YORK,
    );
    assert_eq!(rcode, ResponseCode::NoError);
    assert_eq!(
        answers,
        [
            format!("app.default.myfed.svc.us-east-1.fed.example.com. 30 IN CNAME {APP}"),
            format!("{APP} 30 IN A 198.51.100.10"),
        ]
    );
}

#[test]
fn explain_names_location_candidates_and_choice() {
    let snap = snapshot(
        fedns_testkit::server::CONFIG,
        &["192.0.2.10", "2001:db8:10::10"],
    );
    let name = Name::from_ascii(APP).unwrap();
    let text = fedns::ops::explain::explain(&snap, NEW_YORK, &name, RecordType::A, &|_| Vec::new())
        .unwrap();
    assert!(
        text.contains("located:  40.71,-74.01 by GeoIP (city coordinates) (network 198.18.0.0/24)"),
        "{text}"
    );
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(
        lines[0].contains("eu-west") && lines[0].contains("<- chosen"),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("us-east") && l.contains("UNHEALTHY")),
        "{text}"
    );
    // Each candidate's addresses, with their health.
    assert!(text.contains("address 192.0.2.10 UNHEALTHY"), "{text}");
    assert!(text.contains("address 198.51.100.10 healthy"), "{text}");
    assert!(
        text.contains(&format!("{APP} 30 IN A 198.51.100.10")),
        "{text}"
    );
    assert!(
        fedns::ops::explain::explain(&snap, "198.18.0.1/24", &name, RecordType::A, &|_| Vec::new(
        ))
        .is_err()
    );
}

#[test]
fn each_demo_network_gets_its_documented_nearest_cluster() {
    let loaded = fedns::app::LoadedConfig::demo().unwrap();
    let store = Store::with_static(fedns::sources::static_services::endpoints(&loaded.config));
    let snap = loaded.snapshot(&store, &Default::default(), None).unwrap();
    let name = Name::from_ascii(APP).unwrap();
    for n in fedns::demo::NETWORKS {
        let net: ipnet::IpNet = n.net.parse().unwrap();
        let qtype = if net.addr().is_ipv4() {
            RecordType::A
        } else {
            RecordType::AAAA
        };
        let q = Question {
            name: &name,
            qtype,
            qclass: DNSClass::IN,
        };
        let client = Client {
            source: "192.0.2.53".parse().unwrap(),
            ecs: Some(net),
        };
        let a = answer(&snap, &q, &client, true);
        let chosen = a.decisions[0].chosen[0];
        assert_eq!(snap.clusters[chosen as usize].name, n.nearest, "{}", n.net);
        assert_eq!(a.answers.len(), 1, "{}", n.net);
    }
}

/// The longitudes of [`atlantic`]'s clients, every 5 degrees.
fn longitudes() -> impl Iterator<Item = i32> {
    (-70..0).step_by(5)
}

/// Two clusters, us-east and eu-west, with `eu_bias`; clients placed by `networks` along
/// latitude 45 at longitudes -70 to -5, each in its own 100.64.N.0/24.
fn atlantic(eu_bias: i8) -> Snapshot {
    let mut config = String::from(
        "zone: fed.example.com\nfederation: myfed\nhealth: { probe: none }\nnetworks:\n",
    );
    for (n, lon) in longitudes().enumerate() {
        config.push_str(&format!(
            "  - {{ cidr: 100.64.{n}.0/24, location: {{ lat: 45, lon: {lon} }} }}\n"
        ));
    }
    config.push_str(&format!(
        "clusters:\n  - name: us-east\n    region: us-east-1\n    services:\n      \
         - {{ namespace: default, name: app, addresses: [192.0.2.10] }}\n  \
         - name: eu-west\n    region: eu-west-1\n    bias: {eu_bias}\n    services:\n      \
         - {{ namespace: default, name: app, addresses: [198.51.100.10] }}\n"
    ));
    snapshot(&config, &[])
}

/// Which cluster answers each longitude of [`atlantic`].
fn across_the_atlantic(eu_bias: i8) -> Vec<(i32, String)> {
    let snap = atlantic(eu_bias);
    longitudes()
        .enumerate()
        .map(|(n, lon)| {
            let (_, answers) = ask(&snap, APP, RecordType::A, &format!("100.64.{n}.0/24"));
            let cluster = match answers.first().map(String::as_str) {
                Some(a) if a.ends_with("192.0.2.10") => "us-east",
                Some(a) if a.ends_with("198.51.100.10") => "eu-west",
                other => panic!("lon {lon}: {other:?}"),
            };
            (lon, cluster.to_owned())
        })
        .collect()
}

/// The westmost longitude answered from eu-west.
fn boundary(answers: &[(i32, String)]) -> i32 {
    answers
        .iter()
        .find(|(_, c)| c == "eu-west")
        .map(|(lon, _)| *lon)
        .expect("eu-west answers somewhere")
}

#[test]
fn bias_moves_the_boundary_between_two_clusters() {
    // Unbiased, the boundary lies between -45 (us-east 2,745 km, eu-west 2,924 km) and -40.
    assert_eq!(boundary(&across_the_atlantic(0)), -40);
    // eu-west +30: its distances count 0.7×, so it wins to -50 (2,279 < 2,353 km).
    assert_eq!(boundary(&across_the_atlantic(30)), -50);
    // eu-west -30: 1.3×, so us-east keeps -40 (3,138 < 3,371 km) and eu-west starts at -35.
    assert_eq!(boundary(&across_the_atlantic(-30)), -35);
    // Every client east of the boundary stays with eu-west: one boundary, no islands.
    for bias in [-30, 0, 30] {
        let answers = across_the_atlantic(bias);
        let b = boundary(&answers);
        for (lon, c) in &answers {
            assert_eq!(c == "eu-west", *lon >= b, "bias {bias}, lon {lon}: {c}");
        }
    }
}

#[test]
fn explain_shows_raw_and_biased_distances() {
    // 100.64.4.0/24 is at longitude -50.
    let name = Name::from_ascii(APP).unwrap();
    let none = |_: IpAddr| Vec::new();
    let text =
        fedns::ops::explain::explain(&atlantic(30), "100.64.4.0/24", &name, RecordType::A, &none)
            .unwrap();
    assert!(
        text.contains("3255 km (bias +30: ranks as 2279 km)"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("eu-west") && l.contains("<- chosen")),
        "{text}"
    );
}

#[test]
fn a_bias_out_of_range_is_a_config_error_at_its_line() {
    let text = "zone: fed.example.com\nfederation: myfed\nclusters:\n  - name: a\n    \
                region: us-east-1\n    bias: 100\n";
    let path = fedns_testkit::server::write_config("bias", text);
    let e = fedns::app::LoadedConfig::from_file(&path)
        .err()
        .expect("bias 100 refused");
    let e = e.to_string();
    assert!(
        e.contains(":4: clusters[0].bias: 100 is outside -99..99"),
        "{e}"
    );
}
