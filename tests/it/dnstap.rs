//! dnstap to real readers: fstrm_capture (Debian's fstrm-bin) takes what fedns sends over
//! the bidirectional Frame Streams handshake and writes it to a file; dnstap-read (BIND's
//! tools) decodes it. fedns's decision in `extra` is read from the same file, frame by
//! frame. A collector that goes away or stalls costs frames, counted, and no answer.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use fedns_testkit::dns::{Transport, answer_data, query};
use fedns_testkit::process::Process;
use fedns_testkit::server::{CONFIG, TestServer};
use fedns_testkit::sys::tool;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const PATIENCE: Duration = Duration::from_secs(15);
const APP: &str = "app.default.myfed.svc.fed.example.com";
/// The metric line of the frames sent to a collector.
const SENT: &str = "fedns_dnstap_frames_total{outcome=\"sent\"} ";

/// fstrm_capture on a Unix socket, writing to `file`; waits for the socket.
fn capture(socket: &Path, file: &Path) -> Process {
    capture_logged(socket, file, None)
}

/// As `capture`, with fstrm_capture's debug messages (a connection accepted, a
/// connection closing and the frames it carried) in `log`.
fn capture_logged(socket: &Path, file: &Path, log: Option<&Path>) -> Process {
    let _ = std::fs::remove_file(socket);
    let mut cmd = Command::new(tool("fstrm_capture", "fstrm-bin"));
    cmd.args(["-t", "protobuf:dnstap.Dnstap", "-u"])
        .arg(socket)
        .arg("-w")
        .arg(file);
    match log {
        Some(log) => {
            // The connections' messages come at the third debug level.
            cmd.args(["-d", "-d", "-d"])
                .stderr(std::fs::File::create(log).expect("the capture's log"));
        }
        None => {
            cmd.stderr(Stdio::null());
        }
    }
    let p = Process::spawn(&mut cmd).expect("start fstrm_capture");
    for _ in 0..100 {
        if socket.exists() {
            return p;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("fstrm_capture made no socket at {}", socket.display());
}

fn server_config(socket: &Path, extra: &str) -> String {
    format!(
        "{CONFIG}dnstap: {{ socket: {}{extra} }}\n",
        socket.display()
    )
}

/// The value of one metric line of /metrics (0 when absent).
async fn metric(server: &TestServer, line: &str) -> f64 {
    let (_, body) = fedns_testkit::http::get(server.admin, "/metrics").await;
    body.lines()
        .find_map(|l| l.strip_prefix(line))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn until_metric(server: &TestServer, line: &str, at_least: f64) {
    fedns_testkit::wait::eventually(PATIENCE, || async move {
        let v = metric(server, line).await;
        if v >= at_least {
            Ok(())
        } else {
            Err(format!("{line} is {v}, waiting for {at_least}"))
        }
    })
    .await;
}

/// The `extra` field of every dnstap frame in a Frame Streams file, in order.
fn extras(file: &Path) -> Vec<String> {
    let bytes = std::fs::read(file).expect("the capture file");
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= bytes.len() {
        let len = word(at);
        if len == 0 {
            // A control frame: escape, its length, its body.
            at += 8 + word(at + 4);
            continue;
        }
        out.push(extra_of(&bytes[at + 4..at + 4 + len]));
        at += 4 + len;
    }
    out
}

/// Field 3 (`extra`) of one Dnstap protobuf message, empty when absent.
fn extra_of(mut m: &[u8]) -> String {
    fn varint(m: &mut &[u8]) -> u64 {
        let mut v = 0;
        for shift in (0..64).step_by(7) {
            let b = m[0];
            *m = &m[1..];
            v |= u64::from(b & 0x7F) << shift;
            if b < 0x80 {
                break;
            }
        }
        v
    }
    let mut extra = String::new();
    while !m.is_empty() {
        let key = varint(&mut m);
        match key & 7 {
            0 => {
                varint(&mut m);
            }
            2 => {
                let n = varint(&mut m) as usize;
                if key >> 3 == 3 {
                    extra = String::from_utf8_lossy(&m[..n]).into_owned();
                }
                m = &m[n..];
            }
            5 => m = &m[4..],
            1 => m = &m[8..],
            w => panic!("wire type {w} in a dnstap frame"),
        }
    }
    extra
}

fn dnstap_read(file: &Path, yaml: bool) -> String {
    let mut cmd = Command::new(tool("dnstap-read", "bind9-dnsutils"));
    if yaml {
        cmd.arg("-y");
    }
    let out = cmd.arg(file).output().expect("run dnstap-read");
    assert!(
        out.status.success(),
        "dnstap-read failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Milliseconds since the epoch, now.
fn unix_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970");
    i64::try_from(d.as_millis()).expect("ms fit")
}

/// The time at the start of a dnstap-read line (`05-Dec-2026 01:43:22.233 AQ ...`, UTC),
/// in milliseconds since the epoch.
fn line_ms(line: &str) -> i64 {
    let bad = format!("no time at the start of {line:?}");
    let (date, rest) = line.split_once(' ').expect(&bad);
    let clock = rest.split(' ').next().expect(&bad);
    let d: Vec<&str> = date.split('-').collect();
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| Some(m) == d.get(1))
    .expect(&bad) as u32
        + 1;
    let (day, year): (u32, i64) = (d[0].parse().unwrap(), d[2].parse().unwrap());
    let c: Vec<f64> = clock.split(':').map(|x| x.parse().unwrap()).collect();
    let days = fedns::civil::to_days(year, month, day);
    days * 86_400_000 + ((c[0] * 3600.0 + c[1] * 60.0 + c[2]) * 1000.0).round() as i64
}

fn work() -> PathBuf {
    fedns_testkit::sys::temp_dir("dnstap")
}

/// Queries over UDP and TCP reach fstrm_capture as AUTH_QUERY and AUTH_RESPONSE, which
/// dnstap-read decodes; each reply's frame carries the routing decision in `extra`. The
/// collector then goes away and a new one takes its place: fedns reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_collector_gets_queries_replies_and_decisions() {
    let dir = work();
    let socket = dir.join("tap.sock");
    let first = dir.join("first.fstrm");
    let mut cap = capture(&socket, &first);
    let server = TestServer::start(&server_config(&socket, "")).await;
    let client = server.client();
    let began = unix_ms();
    // Twice: the second reply comes from the worker's cache, with the decision kept there.
    for _ in 0..2 {
        let geo = client.ask(APP, RecordType::A, Some("198.18.0.0/24")).await;
        assert_eq!(answer_data(&geo), ["192.0.2.10"]);
    }
    let txt = client
        .exchange(
            &query("status.fed.example.com", RecordType::TXT, None),
            Transport::Tcp,
        )
        .await;
    assert!(!txt.answers.is_empty());
    client
        .ask("nothing.fed.example.com", RecordType::A, None)
        .await;
    let ended = unix_ms();
    until_metric(&server, SENT, 8.0).await;
    cap.terminate();

    let text = dnstap_read(&first, false);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8, "{text}");
    // Each message's time (a query's arrival, a reply's sending) lies within the test's
    // queries, to dnstap-read's millisecond; a reply's is not before its query's.
    let times: Vec<i64> = lines.iter().map(|l| line_ms(l)).collect();
    for (l, t) in lines.iter().zip(&times) {
        assert!(
            (began - 1..=ended + 1).contains(t),
            "{l}: not within {began}..{ended} ms"
        );
    }
    for pair in times.chunks(2).zip(lines.chunks(2)) {
        if let ([q, r], [lq, lr]) = pair
            && lq.contains(" AQ ")
            && lr.contains(" AR ")
        {
            assert!(r >= q, "a reply before its query:\n{lq}\n{lr}");
        }
    }
    // Each worker hands its frames over on its own (UDP and TCP are different workers),
    // so the file keeps each worker's order, not the queries'. The frames of `extra`
    // are in the file's order, as dnstap-read's lines are.
    let extras = extras(&first);
    assert_eq!(extras.len(), 8, "{extras:?}");
    for (kind, proto, name, extra) in [
        // A query carries no decision; its response does.
        (
            "AQ",
            "UDP",
            "app.default.myfed.svc.fed.example.com/IN/A",
            "",
        ),
        (
            "AR",
            "UDP",
            "app.default.myfed.svc.fed.example.com/IN/A",
            "cluster=us-east policy=nearest located=city scope=24 fail_open=0",
        ),
        ("AQ", "TCP", "status.fed.example.com/IN/TXT", ""),
        // A static record and a name that does not exist decide nothing.
        ("AR", "TCP", "status.fed.example.com/IN/TXT", ""),
        ("AQ", "UDP", "nothing.fed.example.com/IN/A", ""),
        ("AR", "UDP", "nothing.fed.example.com/IN/A", ""),
    ] {
        let at = lines
            .iter()
            .position(|l| l.contains(&format!(" {kind} ")) && l.contains(proto) && l.contains(name))
            .unwrap_or_else(|| panic!("no {kind} {proto} {name} in\n{text}"));
        assert_eq!(extras[at], extra, "{}", lines[at]);
    }
    // Both geo replies, the cached one too, carry the decision.
    let geo_replies: Vec<&String> = lines
        .iter()
        .zip(&extras)
        .filter(|(l, _)| l.contains(" AR ") && l.contains(APP))
        .map(|(_, x)| x)
        .collect();
    assert_eq!(
        geo_replies, ["cluster=us-east policy=nearest located=city scope=24 fail_open=0"; 2],
        "{text}"
    );
    // One worker's frames keep its order: the UDP query before its response.
    let udp: Vec<&&str> = lines.iter().filter(|l| l.contains("UDP")).collect();
    assert!(udp[0].contains(" AQ ") && udp[1].contains(" AR "), "{text}");
    let yaml = dnstap_read(&first, true);
    assert!(yaml.contains("type: AUTH_RESPONSE"), "{yaml}");
    assert!(
        yaml.contains("'app.default.myfed.svc.fed.example.com. 30 IN A 192.0.2.10'"),
        "{yaml}"
    );
    assert!(yaml.contains("status: NXDOMAIN"), "{yaml}");

    // A new collector: frames flow again once fedns has reconnected.
    let second = dir.join("second.fstrm");
    let mut cap = capture(&socket, &second);
    fedns_testkit::wait::eventually(PATIENCE, || {
        let (client, server) = (&client, &server);
        async move {
            client.ask(APP, RecordType::A, Some("198.18.2.0/24")).await;
            let sent = metric(server, SENT).await;
            if sent >= 10.0 {
                Ok(())
            } else {
                Err(format!("{sent} frames sent"))
            }
        }
    })
    .await;
    server.stop().await;
    cap.terminate();
    let text = dnstap_read(&second, false);
    assert!(
        text.lines().any(|l| l.contains("AR") && l.contains(APP)),
        "{text}"
    );
}

/// A collector that stops reading costs frames, dropped from a bounded queue and counted,
/// and no answer: every query is answered while it is stopped. When it reads again,
/// frames flow again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_collector_costs_frames_not_answers() {
    let dir = work();
    let socket = dir.join("tap.sock");
    let cap = capture(&socket, &dir.join("out.fstrm"));
    let server = TestServer::start(&server_config(&socket, ", queue: 16")).await;
    let client = server.client();
    client.ask(APP, RecordType::A, Some("198.18.0.0/24")).await;
    until_metric(&server, SENT, 2.0).await;
    cap.signal("STOP");
    // Enough replies to fill the socket's buffer, then the queue.
    for i in 0..3000u32 {
        let m = client
            .ask(APP, RecordType::A, Some(&format!("198.18.{}.0/24", i % 5)))
            .await;
        assert_eq!(answer_data(&m).len(), 1, "query {i} unanswered");
    }
    let dropped = metric(&server, "fedns_dnstap_frames_total{outcome=\"dropped\"} ").await;
    assert!(
        dropped > 0.0,
        "nothing dropped while the collector was stopped"
    );
    cap.signal("CONT");
    let sent = metric(&server, SENT).await;
    client.ask(APP, RecordType::A, Some("198.18.1.0/24")).await;
    until_metric(&server, SENT, sent + 2.0).await;
    server.stop().await;
}

/// Waits until fstrm_capture's `log` says the connection closed (fedns's writer sent a
/// STOP and ended), and returns the frames it says the connection carried.
async fn until_closed(log: &Path) -> u64 {
    let mut frames = 0;
    fedns_testkit::wait::eventually(PATIENCE, || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let closed = text.lines().find_map(|l| {
            l.split_once("closing (read ")?
                .1
                .split(' ')
                .next()?
                .parse()
                .ok()
        });
        if let Some(n) = closed {
            frames = n;
        }
        async move {
            match closed {
                Some(_) => Ok(()),
                None => Err(format!(
                    "no connection closed in {}:\n{text}",
                    log.display()
                )),
            }
        }
    })
    .await;
    frames
}

/// Reloads `server` with `config` written over its config file. A new tap is set when
/// the reload returns; each worker takes it as its next batch begins or as it idles.
fn reload_with(server: &TestServer, config: &str) {
    std::fs::write(&server.path, config).expect("write the config");
    server.running.app.reload().expect("reload");
}

/// A reload moves dnstap to another collector, and turns it off: the first collector
/// gets the frames from before the move and a STOP, the second those from after it, and
/// once off no writer is left. No frame is lost or sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_moves_dnstap_and_turns_it_off() {
    let dir = work();
    let (first_sock, second_sock) = (dir.join("first.sock"), dir.join("second.sock"));
    let (first, second) = (dir.join("first.fstrm"), dir.join("second.fstrm"));
    let (first_log, second_log) = (dir.join("first.log"), dir.join("second.log"));
    let mut first_cap = capture_logged(&first_sock, &first, Some(&first_log));
    let mut second_cap = capture_logged(&second_sock, &second, Some(&second_log));
    let server = TestServer::start(&server_config(&first_sock, "")).await;
    let client = server.client();
    client
        .ask("before.fed.example.com", RecordType::A, None)
        .await;
    until_metric(&server, SENT, 2.0).await;

    // To the second collector: the first one's connection ends, with both frames.
    reload_with(&server, &server_config(&second_sock, ""));
    assert_eq!(until_closed(&first_log).await, 2);
    client
        .ask("moved.fed.example.com", RecordType::A, None)
        .await;
    until_metric(&server, SENT, 4.0).await;

    // Off: the second collector's connection ends too, with the two frames it got.
    reload_with(&server, CONFIG);
    assert_eq!(until_closed(&second_log).await, 2);
    let off = client.ask("off.fed.example.com", RecordType::A, None).await;
    assert_eq!(off.response_code, ResponseCode::NXDomain);
    // Every frame went to a collector: none dropped or lost in the moves.
    for (outcome, n) in [("sent", 4.0), ("dropped", 0.0), ("lost", 0.0)] {
        let line = format!("fedns_dnstap_frames_total{{outcome=\"{outcome}\"}} ");
        assert_eq!(metric(&server, &line).await, n, "{line}");
    }
    server.stop().await;
    first_cap.terminate();
    second_cap.terminate();
    for (file, name) in [(&first, "before."), (&second, "moved.")] {
        let text = dnstap_read(file, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines.iter().all(|l| l.contains(name)), "{text}");
    }
}

/// `serve --dnstap` wins over the config's `dnstap` through reloads: a reload that
/// changes the config's collector, or anything else, leaves the flag's in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_flag_outlasts_reloads() {
    let dir = work();
    let (flag_sock, config_sock) = (dir.join("flag.sock"), dir.join("config.sock"));
    let (flag_file, flag_log) = (dir.join("flag.fstrm"), dir.join("flag.log"));
    let mut cap = capture_logged(&flag_sock, &flag_file, Some(&flag_log));
    let path = fedns_testkit::server::write_config("dnstap-flag", &server_config(&config_sock, ""));
    let flag = fedns::config::DnstapConfig::to(Some(flag_sock.clone()), None);
    let server = TestServer::start_with(path, |o| o.dnstap = Some(flag)).await;
    let client = server.client();
    client
        .ask("before.fed.example.com", RecordType::A, None)
        .await;
    until_metric(&server, SENT, 2.0).await;
    let other = dir.join("other.sock");
    reload_with(&server, &server_config(&other, ", queue: 64"));
    client
        .ask("after.fed.example.com", RecordType::A, None)
        .await;
    until_metric(&server, SENT, 4.0).await;
    server.stop().await;
    // The flag's collector had one connection throughout, closed as fedns stopped.
    assert_eq!(until_closed(&flag_log).await, 4);
    cap.terminate();
    let log = std::fs::read_to_string(&flag_log).unwrap();
    assert_eq!(log.matches("accepted new connection").count(), 1, "{log}");
    let text = dnstap_read(&flag_file, false);
    assert!(
        text.contains("before.") && text.contains("after."),
        "{text}"
    );
}

/// `fedns serve` stopped by SIGTERM sends the frames it still holds and a STOP before it
/// exits: the collector's connection closes with every frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_the_last_frames_and_a_stop() {
    let dir = work();
    let (socket, file, log) = (
        dir.join("tap.sock"),
        dir.join("out.fstrm"),
        dir.join("out.log"),
    );
    let mut cap = capture_logged(&socket, &file, Some(&log));
    let path = fedns_testkit::server::write_config("dnstap-sigterm", CONFIG);
    let mut cmd = fedns_testkit::process::serve_command(env!("CARGO_BIN_EXE_fedns"));
    cmd.args(["--drain", "0s", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .arg("--dnstap")
        .arg(format!("unix:{}", socket.display()))
        .stderr(Stdio::null());
    let mut fedns = Process::spawn(&mut cmd).expect("start fedns");
    let listening = fedns
        .wait_listening(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("fedns did not listen: {e}"));
    let client = fedns_testkit::dns::DnsClient {
        server: listening.dns[0],
    };
    for i in 0..3 {
        let m = client
            .ask(&format!("q{i}.fed.example.com"), RecordType::A, None)
            .await;
        assert_eq!(m.response_code, ResponseCode::NXDomain);
    }
    // Straight away: the frames are still in the worker's buffer or the queue.
    let status = fedns.terminate();
    assert!(status.success(), "{status}");
    assert_eq!(until_closed(&log).await, 6);
    cap.terminate();
    let text = dnstap_read(&file, false);
    for i in 0..3 {
        let name = format!("q{i}.fed.example.com");
        assert_eq!(text.matches(&name).count(), 2, "{name} in\n{text}");
    }
}
