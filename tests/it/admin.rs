//! Operations over real sockets: /metrics after real queries (names, types, values),
//! /healthz, /readyz, /debug; reloads of the zone file, the config and the GeoIP database
//! under a running server (and a failed one that keeps the old answers); no query lost
//! while reloading.

use std::collections::BTreeMap;
use std::time::Duration;

use fedns_testkit::dns::{DnsClient, Transport, answer_lines, query};
use fedns_testkit::http::get;
use fedns_testkit::server::{CONFIG, TestServer};
use fedns_testkit::wait::until_eq;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const APP: &str = "app.default.myfed.svc.fed.example.com";
const PATIENCE: Duration = Duration::from_secs(15);

/// `name{labels} value` lines of the exposition, and `# TYPE` lines.
fn parse(text: &str) -> (BTreeMap<String, f64>, BTreeMap<String, String>) {
    let mut values = BTreeMap::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let (name, kind) = t.split_once(' ').unwrap();
            types.insert(name.to_owned(), kind.to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').unwrap();
            values.insert(series.to_owned(), value.parse().unwrap());
        }
    }
    (values, types)
}

#[tokio::test]
async fn metrics_after_real_queries() {
    let server = TestServer::start(CONFIG).await;
    let client = server.client();
    for _ in 0..3 {
        client.ask(APP, RecordType::A, Some("198.18.2.0/24")).await;
    }
    client.ask(APP, RecordType::AAAA, None).await;
    client
        .exchange(
            &query("nothing.fed.example.com", RecordType::A, None),
            Transport::Tcp,
        )
        .await;
    client.ask("example.org", RecordType::A, None).await;
    client
        .ask(
            "rr.default.myfed.svc.fed.example.com",
            RecordType::A,
            Some("10.0.0.0/8"),
        )
        .await;
    let (status, body) = get(server.admin, "/metrics").await;
    assert_eq!(status, 200);
    let (values, types) = parse(&body);
    let want_types = [
        ("fedns_dns_queries_total", "counter"),
        ("fedns_dns_query_duration_seconds", "histogram"),
        ("fedns_ecs_queries_total", "counter"),
        ("fedns_geoip_lookups_total", "counter"),
        ("fedns_fail_open_total", "counter"),
        ("fedns_answers_total", "counter"),
        ("fedns_snapshot_builds_total", "counter"),
        ("fedns_snapshot_build_duration_seconds", "histogram"),
        ("fedns_cluster_endpoints", "gauge"),
        ("fedns_ready", "gauge"),
    ];
    for (name, kind) in want_types {
        assert_eq!(
            types.get(name).map(String::as_str),
            Some(kind),
            "{name} in\n{body}"
        );
    }
    for name in types.keys() {
        assert!(name.starts_with("fedns_"), "{name}");
        if types[name] == "counter" {
            assert!(name.ends_with("_total"), "{name}");
        }
    }
    let v = |s: &str| {
        values
            .get(s)
            .copied()
            .unwrap_or_else(|| panic!("no {s} in\n{body}"))
    };
    assert_eq!(
        v(r#"fedns_dns_queries_total{proto="udp",qtype="A",rcode="NOERROR"}"#),
        4.0
    );
    assert_eq!(
        v(r#"fedns_dns_queries_total{proto="udp",qtype="AAAA",rcode="NOERROR"}"#),
        1.0
    );
    assert_eq!(
        v(r#"fedns_dns_queries_total{proto="tcp",qtype="A",rcode="NXDOMAIN"}"#),
        1.0
    );
    assert_eq!(
        v(r#"fedns_dns_queries_total{proto="udp",qtype="A",rcode="REFUSED"}"#),
        1.0
    );
    assert_eq!(
        v(r#"fedns_dns_query_duration_seconds_count{proto="udp"}"#),
        6.0
    );
    assert_eq!(v(r#"fedns_answers_total{cluster="ap-northeast"}"#), 3.0);
    assert_eq!(v(r#"fedns_geoip_lookups_total{outcome="city"}"#), 3.0);
    // The AAAA query without ECS came from 127.0.0.1: the networks override placed it.
    assert_eq!(v(r#"fedns_geoip_lookups_total{outcome="override"}"#), 1.0);
    assert_eq!(v(r#"fedns_ecs_queries_total{ecs="yes"}"#), 4.0);
    assert_eq!(v(r#"fedns_fail_open_total"#), 0.0);
    assert_eq!(v(r#"fedns_cluster_endpoints{cluster="us-east"}"#), 6.0);
    assert_eq!(v("fedns_ready"), 1.0);
    server.stop().await;
}

#[tokio::test]
async fn health_ready_and_debug_endpoints() {
    let server = TestServer::start(CONFIG).await;
    assert_eq!(get(server.admin, "/healthz").await.0, 200);
    assert_eq!(get(server.admin, "/readyz").await, (200, "ready\n".into()));
    assert_eq!(get(server.admin, "/nope").await.0, 404);
    let (status, body) = get(server.admin, "/debug/records").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let app = json["names"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "app.default.myfed.svc.fed.example.com.")
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(app["clusters"].as_array().unwrap().len(), 5);
    assert_eq!(app["clusters"][0]["addresses"][0]["health"], "healthy");
    assert_eq!(json["clusters"].as_array().unwrap().len(), 5);
    let (status, body) = get(
        server.admin,
        "/debug/explain?name=app.default.myfed.svc.fed.example.com&client=198.18.2.0%2F24&type=A",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body.contains("ap-northeast") && body.contains("<- chosen"),
        "{body}"
    );
    assert_eq!(get(server.admin, "/debug/explain?name=x").await.0, 400);
    server.stop().await;
}

async fn until_answer(client: &DnsClient, name: &str, qtype: RecordType, want: &[&str]) {
    let answer = || async { answer_lines(&client.ask(name, qtype, Some("198.18.2.0/24")).await) };
    until_eq(PATIENCE, name, answer, want).await;
}

fn reloads(metrics: &str, outcome: &str) -> f64 {
    parse(metrics)
        .0
        .get(&format!("fedns_reloads_total{{outcome=\"{outcome}\"}}"))
        .copied()
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_swap_zone_config_and_geoip_and_a_bad_one_keeps_the_old() {
    let server = TestServer::start(CONFIG).await;
    let client = server.client();
    let dir = server.path.parent().unwrap().to_owned();
    // Zone file: a new static record appears without a restart.
    let zone = format!("{}new IN A 192.0.2.200\n", fedns::demo::ZONE);
    std::fs::write(dir.join("fed.zone"), &zone).unwrap();
    until_answer(
        &client,
        "new.fed.example.com",
        RecordType::A,
        &["new.fed.example.com. 3600 IN A 192.0.2.200"],
    )
    .await;

    // A broken zone file: the reload fails, the old answers stay, and it is counted.
    std::fs::write(
        dir.join("fed.zone"),
        zone.replace("192.0.2.200", "192.0.2.999"),
    )
    .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while reloads(&get(server.admin, "/metrics").await.1, "error") < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "failed reload not counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = client.ask("new.fed.example.com", RecordType::A, None).await;
    assert_eq!(
        answer_lines(&r),
        ["new.fed.example.com. 3600 IN A 192.0.2.200"]
    );
    std::fs::write(dir.join("fed.zone"), &zone).unwrap();

    // Config: a new TTL.
    let config = std::fs::read_to_string(&server.path)
        .unwrap()
        .replace("ttl: 30\n", "ttl: 45\n");
    std::fs::write(&server.path, config).unwrap();
    until_answer(
        &client,
        APP,
        RecordType::A,
        &["app.default.myfed.svc.fed.example.com. 45 IN A 203.0.113.10"],
    )
    .await;

    // GeoIP: a new database written beside and renamed over the old (as geoipupdate does)
    // moves Tokyo's network to Sao Paulo.
    let mut w = fedns::geo::mmdb_writer::Writer::new("test", "moved");
    use fedns::geo::mmdb_writer::Value;
    w.insert(
        "198.18.2.0/24".parse().unwrap(),
        Value::Map(vec![(
            "location".into(),
            Value::Map(vec![
                ("latitude".into(), Value::Double(-23.55)),
                ("longitude".into(), Value::Double(-46.63)),
            ]),
        )]),
    );
    std::fs::write(dir.join("city.mmdb.tmp"), w.to_bytes()).unwrap();
    std::fs::rename(dir.join("city.mmdb.tmp"), dir.join("city.mmdb")).unwrap();
    until_answer(
        &client,
        APP,
        RecordType::A,
        &["app.default.myfed.svc.fed.example.com. 45 IN A 192.0.2.40"],
    )
    .await;
    assert!(reloads(&get(server.admin, "/metrics").await.1, "ok") >= 3.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_query_is_lost_while_reloading() {
    let server = TestServer::start(CONFIG).await;
    let client = server.client();
    let shared = server.running.app.clone();
    // Reload in a loop (SIGHUP's code path) while queries run; bounded in count.
    let reloader = tokio::task::spawn_blocking(move || {
        for _ in 0..20 {
            shared.reload().unwrap();
        }
    });
    let mut answered = 0;
    for i in 0..2000 {
        let t = if i % 10 == 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let r = client
            .exchange(&query(APP, RecordType::A, Some("198.18.2.0/24")), t)
            .await;
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert_eq!(r.answers.len(), 1);
        answered += 1;
    }
    reloader.await.unwrap();
    assert_eq!(answered, 2000);
    assert!(reloads(&get(server.admin, "/metrics").await.1, "ok") >= 20.0);
    server.stop().await;
}
