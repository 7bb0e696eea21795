//! The status page in a real browser: headless Chromium (Debian's `chromium`) loads it
//! from a running fedns whose clusters are probed over TCP. The page loads with no
//! console message and under 500 KB; three countries show the cluster `explain` gives for
//! clients there; when a cluster's load balancer stops answering, the map follows; a
//! screenshot at desktop and phone width is kept in target/test-artifacts/.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use fedns_testkit::server::TestServer;
use fedns_testkit::sys::tool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const PATIENCE: Duration = Duration::from_secs(20);
const APP: &str = "app.default.myfed.svc.fed.example.com";

/// A TCP load balancer that accepts connections until dropped.
struct Lb(JoinHandle<()>);

impl Lb {
    async fn start(addr: SocketAddr) -> Lb {
        let l = TcpListener::bind(addr)
            .await
            .expect("bind the load balancer");
        Lb(tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                drop(s);
            }
        }))
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.11:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        if TcpListener::bind(("127.0.0.12", port)).await.is_ok() {
            return port;
        }
    }
}

fn config(port: u16) -> String {
    format!(
        "zone: fed.example.com\nfederation: myfed\nzone_file: fed.zone\nlisten: {{ dns: [\"127.0.0.1:0\"] }}\n\
         geoip: {{ database: city.mmdb }}\n\
         health: {{ probe: tcp, interval: 100ms, timeout: 200ms, rise: 2, fall: 2 }}\n\
         clusters:\n\
         \x20 - name: us-east\n    region: us-east-1\n    services:\n      \
         - {{ namespace: default, name: app, addresses: [127.0.0.11], port: {port} }}\n\
         \x20 - name: eu-west\n    region: eu-west-1\n    services:\n      \
         - {{ namespace: default, name: app, addresses: [127.0.0.12], port: {port} }}\n"
    )
}

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("target/test-artifacts");
    dir
}

/// Headless Chromium on `url` with `extra` arguments: its stdout (the DOM with
/// `--dump-dom`) and its log (console messages included).
fn browse(url: &str, extra: &[&str]) -> (String, String) {
    let profile = fedns_testkit::sys::temp_dir("chromium");
    let out = Command::new(tool("chromium", "chromium"))
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            // The page polls every second: two polls and their renders fit in the budget.
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `data-cluster` of a country's shape in a dumped DOM.
fn shaded(dom: &str, country: &str) -> String {
    let at = dom
        .find(&format!("data-country=\"{country}\""))
        .unwrap_or_else(|| panic!("no {country} on the map"));
    let start = dom[..at].rfind('<').expect("the tag's start");
    let end = at + dom[at..].find('>').expect("the tag's end");
    let tag = &dom[start..end];
    let attr = tag
        .split("data-cluster=\"")
        .nth(1)
        .unwrap_or_else(|| panic!("{country} has no data-cluster: {tag}"));
    attr[..attr.find('"').unwrap()].to_owned()
}

/// The cluster `/debug/explain` chooses for a client network.
async fn explained(server: &TestServer, client: &str) -> String {
    let (status, text) = fedns_testkit::http::get(
        server.admin,
        &format!("/debug/explain?name={APP}&client={client}"),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("<- chosen"))
        .unwrap_or_else(|| panic!("nothing chosen: {text}"));
    line.split_whitespace()
        .nth(1)
        .expect("a cluster")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_where_the_world_goes_and_follows_a_failure() {
    let port = free_port().await;
    let us = Lb::start(SocketAddr::from(([127, 0, 0, 11], port))).await;
    let _eu = Lb::start(SocketAddr::from(([127, 0, 0, 12], port))).await;
    let server = TestServer::start(&config(port)).await;
    let client = server.client();
    fedns_testkit::wait::until_eq(
        PATIENCE,
        "New York's answer",
        || {
            let client = &client;
            async move {
                fedns_testkit::dns::answer_data(
                    &client
                        .ask(APP, hickory_proto::rr::RecordType::A, Some("198.18.0.0/24"))
                        .await,
                )
            }
        },
        &["127.0.0.11"],
    )
    .await;
    let base = format!("http://{}/", server.admin);
    let url = format!("{base}?name={APP}");

    // What the page and its data weigh.
    let mut bytes = 0;
    for path in [
        "/",
        "/status/world.json",
        &format!("/status/state.json?name={APP}"),
    ] {
        let (status, body) = fedns_testkit::http::get(server.admin, path).await;
        assert_eq!(status, 200, "{path}");
        bytes += body.len();
    }
    assert!(bytes < 500_000, "the page loads {bytes} bytes");
    // Each probe row names its target: address, port and kind.
    let want = [
        format!("127.0.0.11:{port} (tcp)"),
        format!("127.0.0.12:{port} (tcp)"),
    ];
    fedns_testkit::wait::until_eq(
        PATIENCE,
        "the probes' targets",
        || async {
            let (_, state) =
                fedns_testkit::http::get(server.admin, &format!("/status/state.json?name={APP}"))
                    .await;
            let state: serde_json::Value = serde_json::from_str(&state).expect("JSON");
            let mut targets: Vec<String> = state["probes"]
                .as_array()
                .expect("probes")
                .iter()
                .map(|p| p["target"].as_str().expect("a target").to_owned())
                .collect();
            targets.sort_unstable();
            targets
        },
        &want,
    )
    .await;

    // Loaded in a browser: no console message at all, and three countries shaded as
    // explain decides for clients there (New York, London, Tokyo in the test database).
    let (dom, log) = browse(&url, &["--dump-dom"]);
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert!(
        dom.contains("data-updated="),
        "the page never rendered: {dom}"
    );
    for (country, client) in [
        ("US", "198.18.0.0/24"),
        ("GB", "198.18.1.0/24"),
        ("JP", "198.18.2.0/24"),
    ] {
        assert_eq!(
            shaded(&dom, country),
            explained(&server, client).await,
            "{country}"
        );
    }
    assert_eq!(shaded(&dom, "US"), "us-east");
    // A country's explain (the hover) ends with the ECS scope a client of it gets: the
    // same block `/debug/explain` gives for that client's network.
    for (country, client) in [("US", "198.18.0.0/24"), ("GB", "198.18.1.0/24")] {
        let (_, hover) = fedns_testkit::http::get(
            server.admin,
            &format!("/status/explain?name={APP}&type=A&country={country}"),
        )
        .await;
        let (_, direct) = fedns_testkit::http::get(
            server.admin,
            &format!("/debug/explain?name={APP}&client={client}"),
        )
        .await;
        let block = direct
            .lines()
            .find_map(|l| l.strip_prefix("scope:    "))
            .and_then(|l| l.split(':').next())
            .unwrap_or_else(|| panic!("no scope in {direct}"));
        let want = format!(
            "scope:    a client in {client} ({country}) gets ECS scope /24: {block} is the widest block with its answer"
        );
        assert!(hover.contains(&want), "{want}\n{hover}");
    }
    let shots = artifacts();
    for (width, height) in [(1280, 900), (375, 800)] {
        let file = shots.join(format!("status-{width}.png"));
        browse(
            &url,
            &[
                &format!("--window-size={width},{height}"),
                &format!("--screenshot={}", file.display()),
            ],
        );
        assert!(file.exists(), "no screenshot at {}", file.display());
    }

    // us-east's load balancer stops answering: the United States turn to eu-west.
    drop(us);
    let stopped = Instant::now();
    loop {
        let (dom, _) = browse(&url, &["--dump-dom"]);
        if shaded(&dom, "US") == "eu-west" {
            break;
        }
        assert!(
            stopped.elapsed() < PATIENCE,
            "the map still sends the US to us-east"
        );
    }
    eprintln!(
        "status page: the map followed the failure {:.1} s after the load balancer stopped (probe interval 100 ms, fall 2, page poll 1 s, one browser start)",
        stopped.elapsed().as_secs_f64()
    );
    server.stop().await;
}

/// A federation of more names than the picker lists: the filter (in the page's address,
/// as a typed filter leaves it) narrows the picker to the names that contain it and
/// shows the first of them; `state.json` says how many match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_filter_finds_any_name_of_a_large_federation() {
    let services: String = (0..600)
        .map(|i| {
            format!("      - {{ namespace: default, name: svc-{i:03}, addresses: [192.0.2.10] }}\n")
        })
        .collect();
    let server = TestServer::start(&format!(
        "zone: fed.example.com\nfederation: myfed\nzone_file: fed.zone\n\
         geoip: {{ database: city.mmdb }}\nhealth: {{ probe: none }}\n\
         clusters:\n  - name: us-east\n    region: us-east-1\n    services:\n{services}"
    ))
    .await;
    let name = |i: usize| format!("svc-{i:03}.default.myfed.svc.fed.example.com");
    let state = |query: &'static str| {
        let admin = server.admin;
        async move {
            let (status, body) =
                fedns_testkit::http::get(admin, &format!("/status/state.json?{query}")).await;
            assert_eq!(status, 200, "{query}: {body}");
            serde_json::from_str::<serde_json::Value>(&body).expect("state.json is JSON")
        }
    };
    let all = state("").await;
    assert_eq!(all["names"].as_array().unwrap().len(), 500);
    assert_eq!(
        (&all["names_matched"], &all["names_total"]),
        (&600.into(), &600.into())
    );
    let some = state("filter=SVC-59").await;
    let want: Vec<String> = (590..600).map(name).collect();
    assert_eq!(some["names"], serde_json::json!(want));
    assert_eq!(some["names_matched"], 10);
    assert_eq!(some["name"], name(590));
    // A name asked for is shown whatever the filter.
    let asked = state("filter=svc-59&name=svc-007.default.myfed.svc.fed.example.com").await;
    assert_eq!(asked["name"], name(7));

    let (dom, log) = browse(
        &format!("http://{}/?filter=svc-59", server.admin),
        &["--dump-dom"],
    );
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    let select = &dom[dom.find("<select id=\"name\"").expect("the name picker")..];
    let select = &select[..select.find("</select>").expect("the picker's end")];
    let options: Vec<&str> = select
        .split("<option value=\"")
        .skip(1)
        .map(|o| &o[..o.find('"').unwrap()])
        .collect();
    assert_eq!(options, want, "{select}");
    assert!(
        dom.contains("10 of 600 names match"),
        "no count of the matching names in {dom}"
    );
    assert!(
        dom.contains(&format!("<title>{} · fedns status</title>", name(590))),
        "the first match is not the name shown"
    );
    // A filter that matches nothing says so (the name shown stays the first).
    let (dom, _) = browse(
        &format!("http://{}/?filter=nothing-like-it", server.admin),
        &["--dump-dom"],
    );
    assert!(
        dom.contains("no name of 600 contains “nothing-like-it”"),
        "no word of the empty match in {dom}"
    );
    server.stop().await;
}
