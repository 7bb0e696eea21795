//! The real `fedns` binary: `check` with good and bad input (exit 64, file and line named),
//! `serve` on an ephemeral port answering over UDP and stopping on SIGTERM, the embedded
//! demo, and `explain`.

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use fedns_testkit::process::{Process, serve_command};
use hickory_proto::rr::RecordType;

const BIN: &str = env!("CARGO_BIN_EXE_fedns");
/// How long `fedns serve` may take to print each line up to its admin address.
const STARTUP: Duration = Duration::from_secs(60);

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_accepts_a_good_config() {
    let path = fedns_testkit::server::write_config("check-good", fedns_testkit::server::CONFIG);
    let o = run(&["check", "--config", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("ok: zone fed.example.com., 5 clusters, 0 watched through Kubernetes, "),
        "{out}"
    );
}

#[test]
fn check_names_file_line_and_field_of_a_bad_config() {
    let bad = fedns_testkit::server::CONFIG.replace(
        "    region: sa-east-1\n",
        "    region: sa-east-1\n    regoin: typo\n",
    );
    let path = fedns_testkit::server::write_config("check-bad", &bad);
    let o = run(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(64));
    let e = stderr(&o);
    let line = bad.lines().position(|l| l.contains("regoin")).unwrap() + 1;
    assert!(e.contains(path.to_str().unwrap()), "{e}");
    assert!(e.contains(&format!("line {line}")), "{e}");
    assert!(e.contains("unknown field `regoin`"), "{e}");

    let bad = fedns_testkit::server::CONFIG.replace("cluster: sa-east }", "cluster: mars }");
    let path = fedns_testkit::server::write_config("check-bad-ref", &bad);
    let o = run(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(64));
    let line = bad
        .lines()
        .position(|l| l.contains("cluster: mars"))
        .unwrap()
        + 1;
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "fedns.yaml:{line}: networks[1].cluster: no cluster `mars`"
        )),
        "{e}"
    );
}

#[test]
fn check_names_the_line_of_a_bad_zone_file() {
    let path = fedns_testkit::server::write_config("check-zone", fedns_testkit::server::CONFIG);
    let zone = path.parent().unwrap().join("fed.zone");
    let text =
        fedns::demo::ZONE.replace("ns1     IN A    127.0.0.1", "ns1     IN A    127.0.0.300");
    std::fs::write(&zone, &text).unwrap();
    let o = run(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(64));
    let line = text
        .lines()
        .position(|l| l.contains("127.0.0.300"))
        .unwrap()
        + 1;
    let e = stderr(&o);
    assert!(e.contains(&format!("fed.zone:{line}:")), "{e}");
}

#[test]
fn check_rejects_a_corrupt_geoip_database() {
    let path = fedns_testkit::server::write_config("check-mmdb", fedns_testkit::server::CONFIG);
    let db = path.parent().unwrap().join("city.mmdb");
    let bytes = std::fs::read(&db).unwrap();
    std::fs::write(&db, &bytes[..bytes.len() / 2]).unwrap();
    let o = run(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(64));
    assert!(
        stderr(&o).contains("city.mmdb: not a GeoIP database (MMDB): "),
        "{}",
        stderr(&o)
    );
}

/// Starts `fedns serve` with `args` and returns it with the DNS address it printed and the
/// lines it printed up to its admin address.
fn serve(args: &[&str]) -> (Process, SocketAddr, Vec<String>) {
    let mut cmd = serve_command(BIN);
    if !args.contains(&"--drain") {
        cmd.args(["--drain", "0s"]);
    }
    let child = Process::spawn(cmd.args(args).stderr(Stdio::null())).unwrap();
    let listening = child
        .wait_listening(STARTUP)
        .unwrap_or_else(|e| panic!("fedns did not listen: {e}"));
    let addr = *listening
        .dns
        .first()
        .expect("fedns exited before listening");
    (child, addr, listening.lines)
}

#[tokio::test]
async fn serve_answers_and_exits_cleanly_on_sigterm() {
    let path = fedns_testkit::server::write_config("serve", fedns_testkit::server::CONFIG);
    let (mut child, addr, _) = serve(&[
        "--config",
        path.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let client = fedns_testkit::dns::DnsClient { server: addr };
    let r = client
        .ask(
            "app.default.myfed.svc.fed.example.com",
            RecordType::A,
            Some("198.18.2.0/24"),
        )
        .await;
    assert_eq!(
        fedns_testkit::dns::answer_lines(&r),
        ["app.default.myfed.svc.fed.example.com. 30 IN A 203.0.113.10"]
    );
    let status = child.terminate();
    assert!(status.success(), "{status}");
}

/// `fedns serve` of the test config on an ephemeral port with a `drain` of `drain`: the
/// process, its DNS address and its admin address.
fn serve_draining(tag: &str, drain: &str) -> (Process, SocketAddr, SocketAddr) {
    let path = fedns_testkit::server::write_config(tag, fedns_testkit::server::CONFIG);
    let (child, addr, lines) = serve(&[
        "--config",
        path.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--drain",
        drain,
    ]);
    (child, addr, admin_in(&lines))
}

/// The admin address in the lines `fedns serve` printed.
fn admin_in(lines: &[String]) -> SocketAddr {
    lines
        .iter()
        .find_map(|l| l.strip_prefix("listening admin "))
        .map(|a| a.parse().unwrap())
        .unwrap_or_else(|| panic!("no admin address in {lines:?}"))
}

#[tokio::test]
async fn sigterm_turns_readyz_503_drains_then_exits_0() {
    let (mut child, addr, admin) = serve_draining("drain", "2s");
    assert_eq!(fedns_testkit::http::get(admin, "/readyz").await.0, 200);
    child.signal("TERM");
    // At once: not ready, but still answering DNS during the drain.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let (status, _) = fedns_testkit::http::get(admin, "/readyz").await;
        if status == 503 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz stayed {status}"
        );
    }
    let client = fedns_testkit::dns::DnsClient { server: addr };
    let r = client
        .ask("app.default.myfed.svc.fed.example.com", RecordType::A, None)
        .await;
    assert_eq!(r.answers.len(), 1);
    let status = child.wait();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn the_embedded_demo_serves_with_no_config() {
    let (mut child, addr, _) = serve(&["--listen", "127.0.0.1:0"]);
    let client = fedns_testkit::dns::DnsClient { server: addr };
    for n in fedns::demo::NETWORKS {
        let r = client
            .ask(
                "app.default.myfed.svc.fed.example.com",
                RecordType::A,
                Some(n.net),
            )
            .await;
        assert_eq!(r.answers.len(), 1, "{}", n.net);
    }
    let r = client
        .ask("www.fed.example.com", RecordType::A, Some("198.18.2.0/24"))
        .await;
    assert_eq!(
        fedns_testkit::dns::answer_lines(&r),
        ["www.fed.example.com. 30 IN A 203.0.113.10"]
    );
    assert!(child.terminate().success());
}

#[test]
fn explain_shows_the_decision() {
    let o = run(&[
        "explain",
        "--client",
        "198.18.2.0/24",
        "app.default.myfed.svc.fed.example.com",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let chosen = out
        .lines()
        .find(|l| l.contains("<- chosen"))
        .unwrap_or_default();
    assert!(chosen.contains("ap-northeast"), "{out}");
    assert!(out.contains("GeoIP (city coordinates)"), "{out}");
    assert!(
        out.contains("app.default.myfed.svc.fed.example.com. 30 IN A 203.0.113.10"),
        "{out}"
    );
    let o = run(&[
        "explain",
        "--client",
        "not-an-ip",
        "app.default.myfed.svc.fed.example.com",
    ]);
    assert_eq!(o.status.code(), Some(64));
}

#[tokio::test]
async fn query_log_names_client_question_and_cluster() {
    let path = fedns_testkit::server::write_config("qlog", fedns_testkit::server::CONFIG);
    let mut cmd = serve_command(BIN);
    cmd.args([
        "--config",
        path.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ])
    .args(["--drain", "0s", "--query-log", "--log-format", "json"])
    .stderr(Stdio::piped());
    let mut child = Process::spawn(&mut cmd).unwrap();
    let addr = child
        .wait_listening(STARTUP)
        .expect("no listening line")
        .dns[0];
    let client = fedns_testkit::dns::DnsClient { server: addr };
    client
        .ask(
            "app.default.myfed.svc.fed.example.com",
            RecordType::A,
            Some("198.18.2.0/24"),
        )
        .await;
    child.terminate();
    let mut err = String::new();
    use std::io::Read;
    child
        .take_stderr()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let line = err
        .lines()
        .find(|l| l.contains("\"target\":\"fedns::query\""))
        .unwrap_or_else(|| panic!("no query log line in {err}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let f = &v["fields"];
    assert_eq!(
        f["name"], "app.default.myfed.svc.fed.example.com.",
        "{line}"
    );
    assert_eq!(f["qtype"], "A", "{line}");
    assert_eq!(f["cluster"], "ap-northeast", "{line}");
    assert_eq!(f["scope"], 24, "{line}");
    assert!(
        f["client"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{line}"
    );
}

/// The YAML blocks of README.md's "Configuration" section, in order.
fn readme_configs() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Configuration section in README.md");
    section
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("\n```").next())
        .map(str::to_owned)
        .collect()
}

/// A directory with `config` as fedns.yaml and the repository's demo zone file and GeoIP
/// database at `zone` and `geoip` beside it.
fn config_dir(tag: &str, config: &str, zone: &str, geoip: &str) -> std::path::PathBuf {
    let dir = fedns_testkit::sys::temp_dir(tag);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (from, to) in [
        ("zones/fed.example.com.zone", zone),
        ("geoip/demo.mmdb", geoip),
    ] {
        let to = dir.join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root.join(from), &to).unwrap();
    }
    std::fs::write(dir.join("fedns.yaml"), config).unwrap();
    dir.join("fedns.yaml")
}

#[tokio::test]
async fn the_readme_minimal_config_runs_as_shown() {
    let configs = readme_configs();
    let minimal = configs.first().expect("the minimal config in README.md");
    let path = config_dir(
        "readme-minimal",
        minimal,
        "zones/fed.example.com.zone",
        "geoip/demo.mmdb",
    );
    let o = run(&["check", "--config", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}\n{minimal}", stderr(&o));
    // Served, it answers what the README's dig lines say.
    let (mut child, addr, _) = serve(&[
        "--config",
        path.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let client = fedns_testkit::dns::DnsClient { server: addr };
    for (subnet, want) in [
        ("198.18.0.0/24", "192.0.2.10"),
        ("198.18.1.0/24", "198.51.100.10"),
    ] {
        let r = client
            .ask(
                "app.default.myfed.svc.fed.example.com",
                RecordType::A,
                Some(subnet),
            )
            .await;
        assert_eq!(
            fedns_testkit::dns::answer_data(&r),
            [want],
            "{subnet}: {r:?}"
        );
    }
    assert!(child.terminate().success());
}

#[test]
fn the_readme_reference_config_passes_check_as_shown() {
    let configs = readme_configs();
    let full = configs.get(1).expect("the reference config in README.md");
    let path = config_dir(
        "readme-full",
        full,
        "zones/fed.example.com.zone",
        "geoip/city.mmdb",
    );
    // The two kubeconfigs it names: us-east with its context named, eu-west by its current
    // context.
    let dir = path.parent().unwrap().join("kubeconfigs");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["us-east", "eu-west"] {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    \
             server: https://{name}.k8s.example.com:6443\nusers:\n- name: fedns\n  user:\n    \
             token: t0ken\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    \
             user: fedns\ncurrent-context: {name}\n"
        );
        std::fs::write(dir.join(format!("{name}.kubeconfig")), text).unwrap();
    }
    // The two DNSSEC keys it names, made by `fedns dnssec keygen` and put at those names
    // (the file name's tag is the reader's business only for the pairing of the two files).
    let keys = path.parent().unwrap().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    for (tag, zsk) in [("09620", false), ("65319", true)] {
        let mut args = vec!["dnssec", "keygen", "--zone", "fed.example.com", "--dir"];
        let made = keys.join("made");
        std::fs::create_dir_all(&made).unwrap();
        args.push(made.to_str().unwrap());
        if zsk {
            args.push("--zsk");
        }
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let public = String::from_utf8_lossy(&o.stdout).trim().to_owned();
        // Not `with_extension`: the base name has dots of its own.
        let base = keys.join(format!("Kfed.example.com.+013+{tag}"));
        std::fs::rename(&public, format!("{}.key", base.display())).unwrap();
        std::fs::rename(
            public.replace(".key", ".private"),
            format!("{}.private", base.display()),
        )
        .unwrap();
    }
    let o = run(&["check", "--config", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}\n{full}", stderr(&o));
}

#[test]
fn errors_about_the_files_a_config_names_point_at_its_line() {
    let dir = fedns_testkit::sys::temp_dir("named-files");
    let head = "zone: fed.example.com\nfederation: myfed\n";
    let cluster = "clusters:\n  - { name: a, region: us-east-1, services: [] }\n";
    let cases = [
        (
            format!("{head}geoip: {{ database: nosuch/city.mmdb }}\n{cluster}"),
            ":3: geoip.database: ",
            "nosuch/city.mmdb: cannot read the GeoIP database",
        ),
        (
            format!("{head}\nzone_file: nosuch.zone\n{cluster}"),
            ":4: zone_file: ",
            "nosuch.zone: cannot read the zone file",
        ),
        (
            format!(
                "{head}clusters:\n  - name: a\n    kubeconfig: nosuch.kubeconfig\n    region: us-east-1\n"
            ),
            ":4: clusters[0]: cluster `a`: kubeconfig ",
            "nosuch.kubeconfig: cannot read it: ",
        ),
        (String::new(), ":1: (file): the file is empty", ""),
        (
            format!("{head}state_file: nosuch/state.json\n{cluster}"),
            ":3: state_file: ",
            "nosuch/state.json: its directory does not exist",
        ),
        (
            format!("{head}\tttl: 30\n{cluster}"),
            ":3: (indentation): a tab in the indentation",
            "",
        ),
    ];
    for (i, (text, at, what)) in cases.iter().enumerate() {
        let path = dir.join(format!("case{i}.yaml"));
        std::fs::write(&path, text).unwrap();
        let o = run(&["check", "--config", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(64), "{text}");
        let e = stderr(&o);
        assert!(
            e.contains(&format!("{}{at}", path.display())),
            "{text}\n{e}"
        );
        // The path is given resolved, against the config's directory.
        let resolved = format!("{}/{what}", dir.display());
        assert!(what.is_empty() || e.contains(&resolved), "{text}\n{e}");
        assert!(!e.contains("'\""), "doubled quotes: {e}");
    }
}

#[tokio::test]
async fn sigint_drains_and_a_second_one_stops_at_once() {
    let (mut child, _, admin) = serve_draining("sigint", "10m");
    // Ctrl-C drains as SIGTERM does: not ready, still serving.
    child.signal("INT");
    fedns_testkit::wait::eventually(STARTUP, || async move {
        match fedns_testkit::http::get(admin, "/readyz").await.0 {
            503 => Ok(()),
            s => Err(format!("/readyz {s} after SIGINT")),
        }
    })
    .await;
    assert!(child.exited().is_none(), "exited before the drain");
    // A second one ends it now, not in 10 minutes.
    child.signal("INT");
    let deadline = std::time::Instant::now() + STARTUP;
    let status = loop {
        if let Some(s) = child.exited() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a second SIGINT did not stop it"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130), "{status}");
}

#[test]
fn a_port_in_use_exits_69_saying_how_to_choose_another() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let o = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(69), "{o:?}");
    let e = stderr(&o);
    assert!(
        e.contains(&format!("cannot listen for DNS on 127.0.0.1:{port}")),
        "{e}"
    );
    assert!(e.contains("another program has that port"), "{e}");
    assert!(e.contains("--listen ADDR:PORT"), "{e}");
    // Not a terminal: no colour codes in the log.
    assert!(!e.contains('\u{1b}'), "{e:?}");
}
