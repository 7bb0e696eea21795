//! Signed answers, proven by validators that are not fedns's code: BIND's `delv` with the
//! zone's key as its trust anchor, and Unbound as a validating resolver below a parent
//! zone that NSD serves, signed by BIND's `dnssec-signzone` and holding fedns's DS.
//!
//! The server is the usual test federation (`fedns_testkit::server::CONFIG`) with a
//! `dnssec:` section naming keys that `fedns dnssec keygen` wrote, and three loopback
//! sources placed in New York, London and Tokyo, so that `delv` (which sends no ECS) gets
//! three different geo answers.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fedns_testkit::process::Process;
use fedns_testkit::server::{CONFIG, TestServer, write_config};
use fedns_testkit::sys::{run, tool};

const BIN: &str = env!("CARGO_BIN_EXE_fedns");
const ZONE: &str = "fed.example.com";
const APP: &str = "app.default.myfed.svc.fed.example.com";

/// Sources `delv -b` can use, placed by `networks` overrides.
const NEW_YORK: &str = "127.0.1.1";
const LONDON: &str = "127.0.1.2";
const TOKYO: &str = "127.0.1.3";

/// Writes a key with `fedns dnssec keygen` into `dir`; returns its `.private` file's name.
fn keygen(dir: &Path, args: &[&str]) -> String {
    let key = run(Command::new(BIN)
        .args(["dnssec", "keygen", "--zone", ZONE, "--dir"])
        .arg(dir)
        .args(args));
    let key = PathBuf::from(key.trim());
    key.file_name()
        .unwrap()
        .to_string_lossy()
        .replace(".key", ".private")
}

/// The test federation with three placed loopback sources and `dnssec` set to `keys`
/// (YAML list items, one per line).
fn signed_config(keys: &str, extra: &str) -> String {
    let placed = format!(
        "networks:\n  - {{ cidr: {NEW_YORK}/32, location: {{ lat: 40.71, lon: -74.01 }} }}\n  \
         - {{ cidr: {LONDON}/32, location: {{ lat: 51.51, lon: -0.13 }} }}\n  \
         - {{ cidr: {TOKYO}/32, location: {{ lat: 35.68, lon: 139.69 }} }}\n"
    );
    format!(
        "{}dnssec:\n  keys:\n{keys}{extra}",
        CONFIG.replacen("networks:\n", &placed, 1)
    )
}

/// The key-signing key's DNSKEY from its `.key` file, as zone-file text.
fn dnskey_line(dir: &Path, private: &str) -> String {
    let text = std::fs::read_to_string(dir.join(private.replace(".private", ".key"))).unwrap();
    text.lines()
        .find(|l| l.contains(" DNSKEY "))
        .unwrap()
        .to_owned()
}

/// A delv trust anchor file for the zone's key-signing key.
fn anchor(dir: &Path, ksk: &str) -> PathBuf {
    let f: Vec<String> = dnskey_line(dir, ksk)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    // owner IN DNSKEY flags protocol algorithm key...
    let path = dir.join("anchor.conf");
    std::fs::write(
        &path,
        format!(
            "trust-anchors {{ {} static-key {} {} {} \"{}\"; }};\n",
            f[0],
            f[3],
            f[4],
            f[5],
            f[6..].concat()
        ),
    )
    .unwrap();
    path
}

/// `delv` of `name`/`qtype` from `source` at `server`, validating from `anchor`.
fn delv(server: SocketAddr, anchor: &Path, source: &str, name: &str, qtype: &str) -> String {
    let o = Command::new(tool("delv", "bind9-dnsutils"))
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "-b", source, "-a"])
        .arg(anchor)
        .args([&format!("+root={ZONE}"), "+nomtrace", name, qtype])
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The record lines of delv's output (no comments).
fn records(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Starts the signed test server: a KSK and a ZSK (P-256), or one Ed25519 combined key.
async fn signed_server(tag: &str, split: bool) -> (TestServer, PathBuf, String) {
    let path = write_config(tag, "");
    let dir = path.parent().unwrap().to_owned();
    let (keys, ksk) = if split {
        let ksk = keygen(&dir, &[]);
        let zsk = keygen(&dir, &["--zsk"]);
        (format!("    - {ksk}\n    - {zsk}\n"), ksk)
    } else {
        let csk = keygen(&dir, &["--algorithm", "ed25519"]);
        (format!("    - {csk}\n"), csk)
    };
    std::fs::write(&path, signed_config(&keys, "")).unwrap();
    (TestServer::start_at(path).await, dir, ksk)
}

/// Every kind of answer the issue lists, validated by `delv` from the zone's key: geo
/// answers for three continents, an AAAA, a region name's CNAME fallback, a hostname load
/// balancer's CNAME, a static TXT behind a static CNAME, the SOA, DNSKEY and CDS, and the
/// compact denials of a nonexistent name, a NODATA at a static and at a federated name,
/// and an empty non-terminal. Both key layouts: KSK and ZSK (P-256), and one Ed25519 key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delv_fully_validates_every_kind_of_answer() {
    for split in [true, false] {
        let (server, dir, ksk) = signed_server("signed-delv", split).await;
        let anchor = anchor(&dir, &ksk);
        let at = server.addr;
        let d = |source: &str, name: &str, qtype: &str| {
            let out = delv(at, &anchor, source, name, qtype);
            assert!(
                out.contains("; fully validated"),
                "{name} {qtype} from {source} (split keys: {split}):\n{out}"
            );
            records(&out)
        };
        for (source, want) in [
            (NEW_YORK, "192.0.2.10"),
            (LONDON, "198.51.100.10"),
            (TOKYO, "203.0.113.10"),
        ] {
            let r = d(source, APP, "A");
            assert!(r[0].ends_with(&format!("IN A {want}")), "{source}: {r:?}");
            assert!(r[1].contains("IN RRSIG A "), "{r:?}");
        }
        let r = d(LONDON, APP, "AAAA");
        assert!(r[0].ends_with("IN AAAA 2001:db8:20::10"), "{r:?}");
        // No `web` in ap-northeast-1: the region name points up to the global one.
        let r = d(
            TOKYO,
            "web.default.myfed.svc.ap-northeast-1.fed.example.com",
            "A",
        );
        assert!(
            r[0].ends_with("IN CNAME web.default.myfed.svc.fed.example.com."),
            "{r:?}"
        );
        // Tokyo's nearest `api` is a hostname load balancer: a CNAME out of the zone
        // (which delv then cannot follow here; the CNAME itself is validated).
        let out = delv(
            at,
            &anchor,
            TOKYO,
            "api.default.myfed.svc.fed.example.com",
            "A",
        );
        assert!(out.contains("; fully validated"), "{out}");
        assert!(
            out.contains("CNAME\tapi-lb-1234.elb.ap-northeast-1.amazonaws.com.")
                || out.contains("CNAME api-lb-1234.elb.ap-northeast-1.amazonaws.com."),
            "{out}"
        );
        let r = d(LONDON, "shop.fed.example.com", "A");
        assert!(r[0].contains("IN CNAME checkout.shop.myfed.svc.fed.example.com."));
        let r = d(LONDON, "status.fed.example.com", "TXT");
        assert!(r[0].ends_with("IN TXT \"fedns demo federation\""), "{r:?}");
        let r = d(LONDON, ZONE, "SOA");
        assert!(r[0].contains("IN SOA "), "{r:?}");
        let r = d(LONDON, ZONE, "DNSKEY");
        let keys = r.iter().filter(|l| l.contains("IN DNSKEY ")).count();
        assert_eq!(keys, if split { 2 } else { 1 }, "{r:?}");
        let r = d(LONDON, ZONE, "CDS");
        assert!(r[0].contains("IN CDS "), "{r:?}");
        // Compact denial: every negative answer is a NODATA at the name asked.
        for (name, qtype) in [
            ("nothing.fed.example.com", "A"),
            ("status.fed.example.com", "A"),
            (APP, "TXT"),
            ("myfed.svc.fed.example.com", "A"),
        ] {
            let out = delv(at, &anchor, LONDON, name, qtype);
            assert!(
                out.contains("; negative response, fully validated"),
                "{name} {qtype}:\n{out}"
            );
        }
        server.stop().await;
    }
}

/// dig of `name`/`qtype` at fedns (no recursion desired, no cookie) with more `flags`.
fn dig(server: SocketAddr, name: &str, qtype: &str, flags: &[&str]) -> String {
    let mut all = vec!["+norec", "+nocookie"];
    all.extend(flags);
    dig_at(server, &all, name, qtype)
}

/// dig's reply to `name`/`qtype` from `server` with `flags`, one space between fields
/// (dig aligns short owners with tabs and long ones not).
fn dig_at(server: SocketAddr, flags: &[&str], name: &str, qtype: &str) -> String {
    let mut cmd = Command::new(tool("dig", "bind9-dnsutils"));
    cmd.arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string()])
        .args(flags)
        .args([name, qtype]);
    run(&mut cmd)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a signed server sends besides what validators check: no DNSSEC records without
/// DO; with DO, NOERROR and NXNAME for a nonexistent name, or NXDOMAIN when the query says
/// Compact Answers OK (echoed); a delegation's NSEC proving it has no DS; and a DS query
/// at the delegation answered by the parent side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_follow_do_and_compact_answers_ok() {
    let (server, _dir, _) = signed_server("signed-flags", true).await;
    let at = server.addr;
    let plain = dig(at, "nothing.fed.example.com", "A", &[]);
    assert!(plain.contains("status: NXDOMAIN"), "{plain}");
    assert!(
        !plain.contains("RRSIG") && !plain.contains("NSEC"),
        "{plain}"
    );
    let signed = dig(at, "nothing.fed.example.com", "A", &["+dnssec"]);
    assert!(signed.contains("status: NOERROR"), "{signed}");
    assert!(
        signed.contains("NSEC \\000.nothing.fed.example.com. RRSIG NSEC TYPE128"),
        "{signed}"
    );
    // dig 9.18 has no option for the CO bit: raw bytes.
    let co = raw_query(at, "nothing.fed.example.com", 0xC000);
    assert_eq!((co.rcode, co.opt_flags), (3, 0xC000));
    let no_do = raw_query(at, "nothing.fed.example.com", 0x4000);
    assert_eq!((no_do.rcode, no_do.opt_flags), (3, 0));
    // A NODATA's NSEC lists what is there, not what was asked.
    let nodata = dig(at, "status.fed.example.com", "A", &["+dnssec"]);
    assert!(
        nodata.contains("NSEC \\000.status.fed.example.com. TXT RRSIG NSEC"),
        "{nodata}"
    );
    let federated = dig(at, APP, "TXT", &["+dnssec"]);
    assert!(
        federated.contains(&format!("NSEC \\000.{APP}. A AAAA RRSIG NSEC\n")),
        "{federated}"
    );
    // ... and never the type asked: AAAA from a network pinned to sa-east, which has
    // none while other clusters do, would otherwise deny what the bitmap claims.
    let sa = dig(at, APP, "AAAA", &["+dnssec", "+subnet=198.18.200.0/24"]);
    assert!(
        sa.contains(&format!("NSEC \\000.{APP}. A RRSIG NSEC\n")),
        "{sa}"
    );
    // The test zone delegates `sub`: the referral is not signed, but its NSEC is.
    let referral = dig(at, "host.sub.fed.example.com", "A", &["+dnssec"]);
    assert!(referral.contains("flags: qr;"), "{referral}");
    assert!(
        referral.contains("NSEC \\000.sub.fed.example.com. NS RRSIG NSEC"),
        "{referral}"
    );
    assert!(referral.contains("RRSIG NSEC "), "{referral}");
    assert!(!referral.contains("RRSIG NS "), "{referral}");
    // Signed replies too big for the client's buffer truncate whole; TCP has them all.
    let big = "big.default.myfed.svc.fed.example.com";
    let udp = dig(at, big, "AAAA", &["+dnssec", "+bufsize=512", "+ignore"]);
    assert!(udp.contains("flags: qr aa tc;"), "{udp}");
    assert!(udp.contains("ANSWER: 0, AUTHORITY: 0"), "{udp}");
    let tcp = dig(at, big, "AAAA", &["+dnssec", "+tcp"]);
    assert!(tcp.contains("ANSWER: 31,"), "{tcp}");
    assert!(tcp.contains("IN RRSIG AAAA "), "{tcp}");
    // TCP connections of one runtime thread share their signatures: six connections
    // asking one new question sign it once per thread (the test runtime has two).
    let made = || async {
        let (_, m) = fedns_testkit::http::get(server.admin, "/metrics").await;
        m.lines()
            .find_map(|l| l.strip_prefix("fedns_dnssec_signatures_total "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let before = made().await;
    let web = "web.default.myfed.svc.fed.example.com";
    for _ in 0..6 {
        let r = dig(at, web, "A", &["+dnssec", "+tcp"]);
        assert!(r.contains("IN RRSIG A "), "{r}");
    }
    let signed = made().await - before;
    assert!(
        (1.0..=2.0).contains(&signed),
        "{signed} signatures for one RRset"
    );
    // An explicit query for NXNAME is a format error (RFC 9824 section 3.5).
    let nxname = dig(at, "nothing.fed.example.com", "TYPE128", &["+dnssec"]);
    assert!(nxname.contains("status: FORMERR"), "{nxname}");
    let ds = dig(at, "sub.fed.example.com", "DS", &["+dnssec"]);
    assert!(ds.contains("flags: qr aa;"), "{ds}");
    assert!(ds.contains("status: NOERROR"), "{ds}");
    assert!(
        ds.contains("NSEC \\000.sub.fed.example.com. NS RRSIG NSEC"),
        "{ds}"
    );
    server.stop().await;
}

struct RawReply {
    rcode: u8,
    opt_flags: u16,
}

/// An A query with an OPT whose flags are `flags`, over UDP; the reply's RCODE and OPT
/// flags (the OPT is the reply's last record and has no options here).
fn raw_query(server: SocketAddr, name: &str, flags: u16) -> RawReply {
    let mut p = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in name.split('.') {
        p.push(label.len() as u8);
        p.extend(label.bytes());
    }
    p.extend([0, 0, 1, 0, 1]);
    p.extend([0, 0, 41, 0x04, 0xd0, 0, 0]);
    p.extend(flags.to_be_bytes());
    p.extend([0, 0]);
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.send_to(&p, server).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.recv(&mut buf).unwrap();
    let r = &buf[..n];
    RawReply {
        rcode: r[3] & 0x0F,
        opt_flags: u16::from_be_bytes([r[n - 4], r[n - 3]]),
    }
}

/// A port nothing listens on now over UDP or TCP, for a server that takes its port from
/// its config and binds both (NSD, Unbound): a free UDP port can be a TCP connection's
/// ephemeral port, and NSD then fails to start.
fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free over both UDP and TCP on 127.0.0.1 in 50 tries");
}

/// Waits until a UDP server at `at` answers a query for `name`.
fn until_answering(at: SocketAddr, name: &str, what: &str) {
    let start = Instant::now();
    loop {
        let o = Command::new(tool("dig", "bind9-dnsutils"))
            .arg(format!("@{}", at.ip()))
            .args([
                "-p",
                &at.port().to_string(),
                "+time=1",
                "+tries=1",
                name,
                "SOA",
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        if o.success() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} at {at} did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A signed parent zone `example.com` served by NSD, delegating `fed.example.com` to fedns
/// with the DS of its key-signing key, and Unbound validating from the parent's key, with
/// ECS passed on to fedns.
struct Lab {
    nsd: Process,
    unbound: Option<Process>,
    dir: PathBuf,
    /// Unbound's address.
    resolver: SocketAddr,
    /// The parent's key-signing key, as a zone-file DNSKEY line.
    parent_key: String,
    fedns: SocketAddr,
    nsd_at: SocketAddr,
    anchor: String,
    /// Unbound's `cache-max-ttl`.
    max_ttl: u32,
}

impl Lab {
    fn start(dir: &Path, fedns: SocketAddr, fed_ksk: &str, max_ttl: u32) -> Lab {
        let keygen = |flags: &[&str]| {
            run(Command::new(tool("dnssec-keygen", "bind9-utils"))
                .args(["-q", "-K"])
                .arg(dir)
                .args(["-a", "ECDSAP256SHA256"])
                .args(flags)
                .arg("example.com"))
            .trim()
            .to_owned()
        };
        let parent_ksk = keygen(&["-f", "KSK"]);
        keygen(&[]);
        let ds = run(Command::new(BIN)
            .args(["dnssec", "ds"])
            .arg(dir.join(fed_ksk.replace(".private", ".key"))));
        let zone = format!(
            "$TTL 300\nexample.com. IN SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 60\n\
             example.com. IN NS ns.example.com.\nns.example.com. IN A 127.0.0.1\n\
             fed.example.com. IN NS ns1.fed.example.com.\nns1.fed.example.com. IN A 127.0.0.1\n{ds}"
        );
        std::fs::write(dir.join("parent.zone"), zone).unwrap();
        run(Command::new(tool("dnssec-signzone", "bind9-utils"))
            .current_dir(dir)
            .args([
                "-q",
                "-S",
                "-K",
                ".",
                "-o",
                "example.com",
                "-f",
                "parent.signed",
            ])
            .arg("parent.zone"));
        let nsd_port = free_port();
        let nsd_conf = format!(
            "server:\n  ip-address: 127.0.0.1@{nsd_port}\n  port: {nsd_port}\n  do-ip6: no\n  \
             username: \"\"\n  chroot: \"\"\n  zonesdir: \"{d}\"\n  database: \"\"\n  \
             pidfile: \"{d}/nsd.pid\"\n  xfrdfile: \"{d}/xfrd.state\"\n  \
             zonelistfile: \"{d}/zone.list\"\n  logfile: \"{d}/nsd.log\"\n  server-count: 1\n\
             remote-control:\n  control-enable: no\nzone:\n  name: example.com\n  zonefile: parent.signed\n",
            d = dir.display()
        );
        std::fs::write(dir.join("nsd.conf"), nsd_conf).unwrap();
        let nsd = Process::spawn(
            Command::new(tool("nsd", "nsd"))
                .args(["-d", "-c"])
                .arg(dir.join("nsd.conf"))
                .stderr(Stdio::null()),
        )
        .expect("start nsd");
        let nsd_at = SocketAddr::from(([127, 0, 0, 1], nsd_port));
        until_answering(nsd_at, "example.com", "nsd");
        let parent_key = dnskey_line(dir, &format!("{parent_ksk}.private"));
        let anchor = parent_key.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut lab = Lab {
            nsd,
            unbound: None,
            dir: dir.to_owned(),
            resolver: SocketAddr::from(([127, 0, 0, 1], 0)),
            parent_key,
            fedns,
            nsd_at,
            anchor,
            max_ttl,
        };
        lab.restart_resolver();
        lab
    }

    /// Starts Unbound afresh (an empty cache).
    fn restart_resolver(&mut self) {
        if let Some(mut u) = self.unbound.take() {
            u.terminate();
        }
        let port = free_port();
        let conf = format!(
            "server:\n  verbosity: 1\n  interface: 127.0.0.1@{port}\n  port: {port}\n  do-ip6: no\n  \
             do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n  \
             pidfile: \"\"\n  use-syslog: no\n  logfile: \"{d}/unbound.log\"\n  \
             access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n  \
             module-config: \"subnetcache validator iterator\"\n  send-client-subnet: 127.0.0.1\n  \
             max-client-subnet-ipv4: 24\n  trust-anchor: \"{anchor}\"\n  val-log-level: 2\n  \
             qname-minimisation: no\n  target-fetch-policy: \"0 0 0 0 0\"\n  \
             cache-max-ttl: {max}\n  cache-max-negative-ttl: {max}\n\
             stub-zone:\n  name: \".\"\n  stub-addr: 127.0.0.1@{nsd}\n\
             stub-zone:\n  name: \"example.com\"\n  stub-addr: 127.0.0.1@{nsd}\n\
             stub-zone:\n  name: \"fed.example.com\"\n  stub-addr: 127.0.0.1@{fedns}\n",
            d = self.dir.display(),
            anchor = self.anchor,
            max = self.max_ttl,
            nsd = self.nsd_at.port(),
            fedns = self.fedns.port(),
        );
        let path = self.dir.join("unbound.conf");
        std::fs::write(&path, conf).unwrap();
        run(Command::new(tool("unbound-checkconf", "unbound")).arg(&path));
        let u = Process::spawn(
            Command::new(tool("unbound", "unbound"))
                .args(["-d", "-c"])
                .arg(&path)
                .stderr(Stdio::null()),
        )
        .expect("start unbound");
        self.resolver = SocketAddr::from(([127, 0, 0, 1], port));
        self.unbound = Some(u);
        until_answering(self.resolver, "example.com", "unbound");
    }

    /// Asks Unbound; the reply as dig prints it, one space between fields.
    fn ask(&self, name: &str, qtype: &str, subnet: Option<&str>) -> String {
        let mut flags = vec!["+dnssec".to_owned(), "+time=3".to_owned()];
        flags.extend(subnet.map(|s| format!("+subnet={s}")));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        dig_at(self.resolver, &flags, name, qtype)
    }

    /// Unbound's log, for failures.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("unbound.log")).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut u) = self.unbound.take() {
            u.terminate();
        }
        self.nsd.terminate();
    }
}

/// Whether a reply is a validated NOERROR (the AD flag).
fn validated(reply: &str) -> bool {
    let flags = reply
        .lines()
        .find_map(|l| l.strip_prefix(";; flags:"))
        .and_then(|l| l.split(';').next())
        .unwrap_or("");
    reply.contains("status: NOERROR") && flags.split_whitespace().any(|f| f == "ad")
}

/// Unbound, validating from the parent zone's key down through the DS that `fedns
/// dnssec ds` printed, sets AD on geo answers for ECS subnets of three continents (the
/// demo GeoIP database places them), and on the other kinds of answer. With a key the
/// parent has no DS of swapped into fedns, the same questions fail validation: SERVFAIL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_validates_through_a_signed_parent_and_fails_a_swapped_key() {
    let (server, dir, ksk) = signed_server("signed-unbound", true).await;
    let mut lab = Lab::start(&dir, server.addr, &ksk, 300);
    for (subnet, want) in [
        ("198.18.0.0/24", "192.0.2.10"),
        ("198.18.1.0/24", "198.51.100.10"),
        ("198.18.2.0/24", "203.0.113.10"),
    ] {
        let r = lab.ask(APP, "A", Some(subnet));
        assert!(validated(&r), "{subnet}:\n{r}\n{}", lab.log());
        assert!(r.contains(&format!("IN A {want}")), "{subnet}:\n{r}");
    }
    for (name, qtype, has) in [
        (APP, "AAAA", "IN AAAA "),
        (
            "web.default.myfed.svc.ap-northeast-1.fed.example.com",
            "A",
            "IN CNAME web.default.myfed.svc.fed.example.com.",
        ),
        ("status.fed.example.com", "TXT", "IN TXT "),
        (ZONE, "SOA", "IN SOA "),
        ("nothing.fed.example.com", "A", "IN NSEC \\000.nothing"),
        ("status.fed.example.com", "A", "IN NSEC \\000.status"),
        ("myfed.svc.fed.example.com", "A", "IN NSEC \\000.myfed"),
    ] {
        let r = lab.ask(name, qtype, Some("198.18.1.0/24"));
        assert!(validated(&r), "{name} {qtype}:\n{r}\n{}", lab.log());
        assert!(r.contains(has), "{name} {qtype}:\n{r}");
    }

    // Another key pair, whose DS the parent does not hold, swapped in by a reload.
    let other_ksk = keygen(&dir, &[]);
    let other_zsk = keygen(&dir, &["--zsk"]);
    std::fs::write(
        &server.path,
        signed_config(&format!("    - {other_ksk}\n    - {other_zsk}\n"), ""),
    )
    .unwrap();
    let app = server.running.app.clone();
    tokio::task::spawn_blocking(move || app.reload().unwrap())
        .await
        .unwrap();
    lab.restart_resolver();
    for (name, subnet) in [
        (APP, Some("198.18.1.0/24")),
        ("status.fed.example.com", None),
    ] {
        let r = lab.ask(name, if subnet.is_some() { "A" } else { "TXT" }, subnet);
        assert!(r.contains("status: SERVFAIL"), "{name}:\n{r}");
    }
    drop(lab);
    server.stop().await;
}

/// The key tags of the RRSIGs over `rtype` and of the DNSKEYs in a reply as dig prints it.
fn tags(reply: &str, rtype: &str) -> (Vec<u16>, Vec<u16>) {
    let mut sigs = Vec::new();
    let mut keys = Vec::new();
    for l in reply.lines().filter(|l| !l.starts_with(';')) {
        let f: Vec<&str> = l.split_whitespace().collect();
        // owner TTL IN RRSIG type alg labels ttl expiration inception tag signer sig
        if f.len() > 10 && f[3] == "RRSIG" && f[4] == rtype {
            sigs.extend(f[10].parse::<u16>());
        }
        if let Some(id) = l.split("key id = ").nth(1) {
            keys.extend(id.trim().parse::<u16>());
        }
    }
    (sigs, keys)
}

/// A ZSK rollover the documented way (README.md, "DNSSEC"), pre-publication, each step a
/// reload: the new ZSK is published, then signs while the old one is retired, then the
/// old one goes. Throughout, Unbound asks (its cache capped at 2 s, so that it fetches and
/// validates again all the time) and every answer must be validated; and fedns itself is
/// asked for its DNSKEY set and a geo answer's RRSIG, which must never carry a key that a
/// DNSKEY set served within the DNSKEY TTL before lacked (a cache holding that set could
/// not validate it), nor a DNSKEY set lack a key whose signatures were served within the
/// answer's TTL. Checked to fail when the new key signs without being published first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zsk_rollover_keeps_every_answer_validated() {
    let path = write_config("signed-rollover", "");
    let dir = path.parent().unwrap().to_owned();
    let ksk = keygen(&dir, &[]);
    let old = keygen(&dir, &["--zsk"]);
    let new = keygen(&dir, &["--zsk"]);
    // Short TTLs, so that each step may follow the one before after 3 s.
    let ttl = Duration::from_secs(2);
    let extra = "  dnskey_ttl: 2\n";
    let config = |keys: &str| signed_config(keys, extra).replacen("ttl: 30\n", "ttl: 2\n", 1);
    let steps = [
        format!("    - {ksk}\n    - {old}\n"),
        format!("    - {ksk}\n    - {old}\n    - {{ file: {new}, state: published }}\n"),
        format!("    - {ksk}\n    - {{ file: {old}, state: retired }}\n    - {new}\n"),
        format!("    - {ksk}\n    - {new}\n"),
    ];
    std::fs::write(&path, config(&steps[0])).unwrap();
    let server = TestServer::start_at(path.clone()).await;
    let lab = Lab::start(&dir, server.addr, &ksk, 2);
    let subnets = ["198.18.0.0/24", "198.18.1.0/24", "198.18.2.0/24"];
    let mut asked = 0;
    // What fedns served, and when: DNSKEY sets, and the key tags signing the geo answer.
    let mut key_sets: Vec<(Instant, Vec<u16>)> = Vec::new();
    let mut signed_by: Vec<(Instant, Vec<u16>)> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        if i > 0 {
            std::fs::write(&path, config(step)).unwrap();
            let app = server.running.app.clone();
            tokio::task::spawn_blocking(move || app.reload().unwrap())
                .await
                .unwrap();
        }
        let until = Instant::now() + ttl + Duration::from_secs(1);
        while Instant::now() < until {
            for (name, qtype) in [
                (APP, "A"),
                ("status.fed.example.com", "TXT"),
                (ZONE, "DNSKEY"),
            ] {
                let r = lab.ask(name, qtype, Some(subnets[asked % 3]));
                asked += 1;
                assert!(
                    validated(&r),
                    "step {i}, {name} {qtype}:\n{r}\n{}",
                    lab.log()
                );
            }
            let keys = dig(server.addr, ZONE, "DNSKEY", &["+dnssec", "+rrcomments"]);
            key_sets.push((Instant::now(), tags(&keys, "DNSKEY").1));
            let subnet = format!("+subnet={}", subnets[asked % 3]);
            let a = dig(server.addr, APP, "A", &["+dnssec", &subnet]);
            signed_by.push((Instant::now(), tags(&a, "A").0));
        }
    }
    assert!(asked >= 30, "only {asked} questions asked");
    for (t, sigs) in &signed_by {
        for (s, keys) in &key_sets {
            let close = |a: &Instant, b: &Instant| a.saturating_duration_since(*b) <= ttl;
            for tag in sigs {
                assert!(
                    !close(t, s) || s > t || keys.contains(tag),
                    "key {tag} signed {:?} after a DNSKEY set without it ({keys:?})",
                    t.duration_since(*s)
                );
                assert!(
                    !close(s, t) || t > s || keys.contains(tag),
                    "a DNSKEY set without key {tag} ({keys:?}) {:?} after its signatures",
                    s.duration_since(*t)
                );
            }
        }
    }
    // The DNSKEY set ends with the KSK and the new ZSK only.
    let r = lab.ask(ZONE, "DNSKEY", None);
    assert_eq!(r.matches("IN DNSKEY ").count(), 2, "{r}");
    drop(lab);
    server.stop().await;
}

/// Keys whose files say when they become active and inactive (BIND's `dnssec-keygen -A
/// -I`) change roles at those moments with no reload asked for: the ZSK that signs the
/// geo answer changes, the retired one stays in the DNSKEY set, and delv still validates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_timing_in_the_files_moves_signing_to_the_next_key() {
    let path = write_config("signed-timing", "");
    let dir = path.parent().unwrap().to_owned();
    let ksk = keygen(&dir, &[]);
    let bind_zsk = |timing: &[&str]| {
        let name = run(Command::new(tool("dnssec-keygen", "bind9-utils"))
            .args(["-q", "-K"])
            .arg(&dir)
            .args(["-a", "ECDSAP256SHA256"])
            .args(timing)
            .arg(ZONE));
        let name = name.trim().to_owned();
        let tag: u16 = name.rsplit('+').next().unwrap().parse().unwrap();
        (format!("{name}.private"), tag)
    };
    let (old, old_tag) = bind_zsk(&["-A", "now", "-I", "+4"]);
    let (new, new_tag) = bind_zsk(&["-P", "now", "-A", "+4"]);
    std::fs::write(
        &path,
        signed_config(&format!("    - {ksk}\n    - {old}\n    - {new}\n"), ""),
    )
    .unwrap();
    let server = TestServer::start_at(path).await;
    let signer = || tags(&dig(server.addr, APP, "A", &["+dnssec"]), "A").0;
    assert_eq!(signer(), [old_tag]);
    let start = Instant::now();
    while signer() != [new_tag] {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "still signed by {:?}",
            signer()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let keys = tags(
        &dig(server.addr, ZONE, "DNSKEY", &["+dnssec", "+rrcomments"]),
        "DNSKEY",
    )
    .1;
    assert!(
        keys.contains(&old_tag) && keys.contains(&new_tag),
        "{keys:?}"
    );
    let anchor = anchor(&dir, &ksk);
    let out = delv(server.addr, &anchor, LONDON, APP, "A");
    assert!(out.contains("; fully validated"), "{out}");
    // The metrics follow: the keys' states, and signatures made.
    let (_, metrics) = fedns_testkit::http::get(server.admin, "/metrics").await;
    for (tag, state) in [(old_tag, "retired"), (new_tag, "active")] {
        let line = format!(
            "fedns_dnssec_keys{{algorithm=\"ECDSAP256SHA256\",role=\"zsk\",state=\"{state}\",tag=\"{tag}\"}} 1"
        );
        assert!(metrics.contains(&line), "{line}\n{metrics}");
    }
    let signatures: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("fedns_dnssec_signatures_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(signatures >= 2.0, "{metrics}");
    server.stop().await;
}

/// A key that cannot be used stops the config with an error that names the config file,
/// the line and the key: a missing file, a key of another zone, none active now.
#[test]
fn bad_keys_are_errors_that_name_the_file_and_line() {
    let path = write_config("signed-bad", "");
    let dir = path.parent().unwrap().to_owned();
    let other = run(Command::new(BIN)
        .args(["dnssec", "keygen", "--zone", "other.example", "--dir"])
        .arg(&dir));
    let other = PathBuf::from(other.trim())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace(".key", ".private");
    let ours = keygen(&dir, &[]);
    for (keys, want) in [
        (
            "    - Kfed.example.com.+013+00001.private\n".to_owned(),
            "dnssec.keys[0]: ",
        ),
        (
            format!("    - {ours}\n    - {other}\n"),
            "is for `other.example`",
        ),
        (
            format!("    - {{ file: {ours}, state: retired }}\n"),
            "no key is active now",
        ),
        (
            format!("    - {ours}\n    - {{ file: {ours}, state: retired }}\n"),
            "are the same key",
        ),
    ] {
        std::fs::write(&path, signed_config(&keys, "")).unwrap();
        let o = Command::new(BIN)
            .args(["check", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(64), "{e}");
        assert!(e.contains("fedns.yaml:") && e.contains(want), "{keys}: {e}");
    }
    std::fs::write(&path, signed_config(&format!("    - {ours}\n"), "")).unwrap();
    let ok = run(Command::new(BIN).args(["check", "-c"]).arg(&path));
    assert!(ok.contains("signed (KSK "), "{ok}");
}

/// Replicas compare config digests (README.md, "Fleet"): one whose key files differ, at
/// the same paths, has another digest, so the fleet says it does not answer alike.
#[test]
fn other_keys_at_the_same_paths_change_the_config_digest() {
    let path = write_config("signed-digest", "");
    let dir = path.parent().unwrap().to_owned();
    let ksk = keygen(&dir, &[]);
    std::fs::write(&path, signed_config(&format!("    - {ksk}\n"), "")).unwrap();
    let first = fedns::app::LoadedConfig::from_file(&path)
        .unwrap()
        .config_digest;
    let again = fedns::app::LoadedConfig::from_file(&path)
        .unwrap()
        .config_digest;
    assert_eq!(first, again);
    // Another key written over the same two files.
    let other = keygen(&dir, &[]);
    for ext in ["key", "private"] {
        std::fs::copy(
            dir.join(other.replace(".private", &format!(".{ext}"))),
            dir.join(ksk.replace(".private", &format!(".{ext}"))),
        )
        .unwrap();
    }
    let swapped = fedns::app::LoadedConfig::from_file(&path)
        .unwrap()
        .config_digest;
    assert_ne!(first, swapped);
}

/// `dnsviz`, the DNSSEC analyser, finds no error and no warning from the parent's key down:
/// it probes through Unbound (below NSD's signed parent) the apex, a geo name, a
/// nonexistent name, a NODATA and an empty non-terminal, then `grok` judges every
/// delegation, key, signature and denial it saw.
///
/// Debian 12's `dnsviz grok` refuses to start over a version check of pygraphviz (which
/// its JSON output does not use: the check imports a module python3-pygraphviz 1.7 does
/// not have), so grok's own `main` is called with that check skipped. At log level `info`
/// it reports everything it judged, errors and warnings under their own keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnsviz_finds_no_error_from_the_parent_down() {
    let (server, dir, ksk) = signed_server("signed-dnsviz", true).await;
    let lab = Lab::start(&dir, server.addr, &ksk, 300);
    let dnsviz = tool("dnsviz", "dnsviz");
    let probe = dir.join("probe.json");
    let resolver = lab.resolver;
    let names = [
        ZONE,
        APP,
        "nothing.fed.example.com",
        "status.fed.example.com",
        "myfed.svc.fed.example.com",
    ];
    let out = tokio::task::spawn_blocking({
        let probe = probe.clone();
        move || {
            Command::new(dnsviz)
                .args([
                    "probe",
                    "-4",
                    "-s",
                    &resolver.to_string(),
                    "-a",
                    "example.com",
                    "-o",
                ])
                .arg(&probe)
                .args(names)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "dnsviz probe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let anchor = dir.join("parent-anchor.txt");
    std::fs::write(&anchor, format!("{}\n", lab.parent_key)).unwrap();
    let grok = run(Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys, dnsviz.commands.grok as g\n\
             g.test_pygraphviz = lambda: None\n\
             g.main(['grok'] + sys.argv[1:])",
            "-l",
            "info",
            "-t",
        ])
        .arg(&anchor)
        .arg("-r")
        .arg(&probe));
    let report: serde_json::Value =
        serde_json::from_str(&grok).unwrap_or_else(|e| panic!("{e}: {grok}"));
    fn findings(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    if k == "error" || k == "warning" || k == "errors" || k == "warnings" {
                        out.push(format!("{path}/{k}: {v}"));
                    } else {
                        findings(v, &format!("{path}/{k}"), out);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| findings(v, path, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    findings(&report, "", &mut found);
    // The trust anchor's own DS would come from the root, which is not here.
    found.retain(|f| !f.starts_with("/example.com./queries/example.com./IN/DS/"));
    assert!(found.is_empty(), "dnsviz grok:\n{}", found.join("\n"));
    // It saw what it was asked: the zone and its names, judged secure.
    for name in names {
        assert!(
            grok.contains(&format!("\"{name}.\"")),
            "{name} not in {grok}"
        );
    }
    assert!(grok.contains("\"SECURE\""), "{grok}");
    drop(lab);
    server.stop().await;
}
