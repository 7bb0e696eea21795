//! ECS scope of geo answers over a sweep of client /24s, for servers serving the same map
//! (fedns and gdnsd, started by `benches/ecs_scope.sh`): how wide the scopes are next to
//! the networks of the GeoIP database ("today's scope"), how many entries a resolver's ECS
//! cache would hold after the sweep, and where two servers give a different answer or a
//! different scope for the same client.
//!
//! Two commands (under `cargo bench --bench ecs_scope -- COMMAND ...`, which adds `--bench`;
//! without `--bench`, as `cargo test --all-targets` runs it, it does nothing):
//!
//! `sweep --db MMDB --server NAME=ADDR [--server NAME=ADDR ...] [--name QNAME]
//!  [--mode every24|sample:N[:RUN]] [--override CIDR ...] [--seed N] [--max N]
//!  [--window N] [--examples N]`
//!
//! - The sweep is over IPv4 /24s whose first address has a record in MMDB (the address a
//!   server looks up for ECS `a.b.c.0/24`). `every24`: all of them, in address order; past
//!   `--max` (default 1,000,000) every k-th of them, evenly spread, and the report says so.
//!   `sample:N`: N distinct /24s drawn uniformly from that set with a fixed seed (`--seed`,
//!   default 0xEC5), i.e. weighted by how many /24s of data each network has; `sample:N:RUN`
//!   draws N/RUN starts and takes RUN consecutive /24s of the set from each, so that a
//!   resolver's cache sees neighbours.
//! - Each server gets one UDP query per /24: QNAME (default the demo's
//!   `app.default.myfed.svc.fed.example.com`) type A, EDNS(0) with ECS `a.b.c.0/24`. At most
//!   `--window` (default 64) queries are in flight; a query with no reply in 500 ms is sent
//!   again, at most 3 times, then counted lost. Loopback servers only.
//! - Today's scope of a /24: the prefix of the longest `--override` CIDR that contains it
//!   (fedns's `networks`), else of the MMDB network that contains its first address, at
//!   most 24: what fedns answers before networks with the same answer are merged.
//! - The resolver's cache: the /24s in address order; a /24 is a hit when an entry cached
//!   before covers it (its scope network contains the /24), else a miss that caches the
//!   server's reply under (answer, the /24 cut to the reply's scope; scopes past 24 count as
//!   24, no ECS option as 0, RFC 7871 section 7.3.1). Entries = misses = distinct (answer,
//!   scope network) pairs. A hit whose cached answer is not what the server gave for that
//!   /24 is a wrong answer the resolver would serve: a scope wider than the server's own
//!   answer is uniform over.
//! - Two or more servers: the first is compared with each other one, /24 by /24.
//!
//! `convert IN.mmdb OUT.mmdb`: rewrites a City database in ip-location-db's flat shape
//! (`country_code`, `latitude`, `longitude`, as float or double) as a GeoIP2 City shaped one
//! (`country.iso_code`, `location.latitude`/`longitude` as doubles; `continent.code` from
//! fedns's table where a record has no coordinates) with every network kept, and a non-zero
//! `build_epoch` (libmaxminddb, hence gdnsd, refuses 0). gdnsd reads only the GeoIP2 shape;
//! fedns reads both and places a client at the same coordinates from either. It then reads
//! both files back and checks every network and record.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use ipnet::Ipv4Net;
use maxminddb::{Reader, WithinOptions};

use fedns::geo::mmdb_writer::{Value, Writer};
use fedns::geo::{GeoDb, Place, Precision};
use fedns_testkit::random::Xorshift;
use fedns_testkit::sys::hwm_kib;

/// How long a query waits for its reply before it is sent again.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// Sends after the first, before a query counts as lost.
const RETRIES: u8 = 3;
/// The ECS source prefix of every query.
const SOURCE: u8 = 24;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("ecs_scope: skipped (run it with benches/ecs_scope.sh)");
        return;
    }
    let args: Vec<String> = args.into_iter().filter(|a| a != "--bench").collect();
    let result = match args.first().map(String::as_str) {
        Some("sweep") => Settings::parse(&args[1..]).and_then(|s| sweep(&s)),
        Some("convert") if args.len() == 3 => convert(Path::new(&args[1]), Path::new(&args[2])),
        _ => Err(format!(
            "usage: see the top of benches/ecs_scope.rs (got {args:?})"
        )),
    };
    if let Err(e) = result {
        eprintln!("ecs_scope: {e}");
        std::process::exit(1);
    }
}

// --- Settings -----------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Every24,
    /// (how many /24s, how many consecutive ones per draw)
    Sample(usize, usize),
}

struct Settings {
    db: String,
    servers: Vec<(String, SocketAddr)>,
    qname: Name,
    mode: Mode,
    /// `networks` overrides as (network, prefix), longest first.
    overrides: Vec<(u32, u8)>,
    seed: u64,
    max: usize,
    window: usize,
    examples: usize,
}

impl Settings {
    fn parse(args: &[String]) -> Result<Settings, String> {
        let mut s = Settings {
            db: String::new(),
            servers: Vec::new(),
            qname: Name::from_ascii("app.default.myfed.svc.fed.example.com.").unwrap(),
            mode: Mode::Every24,
            overrides: Vec::new(),
            seed: 0xEC5,
            max: 1_000_000,
            window: 64,
            examples: 5,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or(format!("{flag} needs a value"))?;
            let number = |v: &str| -> Result<usize, String> {
                let v = v.replace('_', "");
                let n = match v.strip_prefix("0x") {
                    Some(hex) => usize::from_str_radix(hex, 16),
                    None => v.parse(),
                };
                n.map_err(|_| format!("{flag} {v}: not a number"))
            };
            match flag.as_str() {
                "--db" => s.db = value.clone(),
                "--server" => {
                    let (name, addr) = value
                        .split_once('=')
                        .ok_or(format!("--server {value}: want NAME=ADDR"))?;
                    let addr: SocketAddr =
                        addr.parse().map_err(|e| format!("--server {value}: {e}"))?;
                    if !addr.ip().is_loopback() {
                        return Err(format!("--server {value}: loopback addresses only"));
                    }
                    s.servers.push((name.to_owned(), addr));
                }
                "--name" => {
                    s.qname =
                        Name::from_ascii(value).map_err(|e| format!("--name {value}: {e}"))?;
                    s.qname.set_fqdn(true);
                }
                "--mode" => s.mode = parse_mode(value)?,
                "--override" => {
                    let net: Ipv4Net = value
                        .parse()
                        .map_err(|e| format!("--override {value}: {e}"))?;
                    let net = net.trunc();
                    s.overrides.push((u32::from(net.addr()), net.prefix_len()));
                }
                "--seed" => s.seed = number(value)? as u64,
                "--max" => s.max = number(value)?.max(1),
                "--window" => s.window = number(value)?.clamp(1, 4096),
                "--examples" => s.examples = number(value)?,
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        if s.db.is_empty() || s.servers.is_empty() {
            return Err("sweep needs --db and at least one --server".into());
        }
        s.overrides.sort_by_key(|&(_, len)| Reverse(len));
        Ok(s)
    }
}

fn parse_mode(v: &str) -> Result<Mode, String> {
    if v == "every24" {
        return Ok(Mode::Every24);
    }
    let bad = || format!("--mode {v}: want every24, sample:N or sample:N:RUN");
    let rest = v.strip_prefix("sample:").ok_or_else(bad)?;
    let mut parts = rest.split(':').map(|p| p.replace('_', "").parse::<usize>());
    let n = parts.next().and_then(Result::ok).ok_or_else(bad)?;
    let run = match parts.next() {
        Some(r) => r.map_err(|_| bad())?,
        None => 1,
    };
    if n == 0 || run == 0 || parts.next().is_some() {
        return Err(bad());
    }
    Ok(Mode::Sample(n, run))
}

// --- The database: which /24s, today's scope, where a /24 is --------------------------------

/// The /24s (address >> 8) whose first address has a record, as runs of consecutive ones,
/// with the number of /24s before each run.
struct Blocks {
    runs: Vec<(u32, u32)>,
    before: Vec<u64>,
    total: u64,
}

impl Blocks {
    fn of(reader: &Reader<Vec<u8>>) -> Result<Blocks, String> {
        let mut runs: Vec<(u32, u32)> = Vec::new();
        let all_v4 = "0.0.0.0/0".parse().unwrap();
        for item in reader
            .within(all_v4, WithinOptions::default())
            .map_err(|e| e.to_string())?
        {
            let net = item.map_err(|e| e.to_string())?.network();
            let net = net.map_err(|e| e.to_string())?;
            let IpAddr::V4(addr) = net.ip() else { continue };
            let (addr, len) = (u32::from(addr), net.prefix());
            let run = match len {
                0..=24 => (addr >> 8, 1u32 << (24 - len)),
                _ if addr & 0xFF == 0 => (addr >> 8, 1),
                _ => continue,
            };
            match runs.last_mut() {
                Some(last) if last.0 + last.1 == run.0 => last.1 += run.1,
                _ => runs.push(run),
            }
        }
        let mut before = Vec::with_capacity(runs.len());
        let mut total = 0u64;
        for &(_, n) in &runs {
            before.push(total);
            total += u64::from(n);
        }
        Ok(Blocks {
            runs,
            before,
            total,
        })
    }

    /// The `i`th /24 of the set, in address order.
    fn nth(&self, i: u64) -> u32 {
        let r = self.before.partition_point(|&b| b <= i) - 1;
        self.runs[r].0 + (i - self.before[r]) as u32
    }

    /// The /24s to sweep, in address order, and a note on how they were chosen.
    fn pick(&self, mode: Mode, max: usize, seed: u64) -> (Vec<u32>, String) {
        match mode {
            Mode::Every24 if self.total as usize <= max => (
                (0..self.total).map(|i| self.nth(i)).collect(),
                "every /24".into(),
            ),
            Mode::Every24 => {
                let step = self.total.div_ceil(max as u64);
                let picked: Vec<u32> = (0..self.total)
                    .step_by(step as usize)
                    .map(|i| self.nth(i))
                    .collect();
                let note = format!("every {step}th /24 (over the limit of {max}; --max)");
                (picked, note)
            }
            Mode::Sample(n, run) => {
                let mut rng = Xorshift::new(seed.max(1));
                let mut picked = BTreeSet::new();
                let want = (n as u64).min(self.total);
                let mut draws = 0u64;
                while (picked.len() as u64) < want && draws < want * 50 {
                    draws += 1;
                    let start = rng.next_u64() % self.total;
                    for k in 0..run as u64 {
                        if picked.len() as u64 >= want {
                            break;
                        }
                        picked.insert(self.nth((start + k) % self.total));
                    }
                }
                let how = if run > 1 {
                    format!("runs of {run} consecutive /24s from ")
                } else {
                    String::new()
                };
                let note = format!(
                    "{} /24s: {how}uniform draws (seed {seed:#x}) over the /24s with data",
                    picked.len()
                );
                (picked.into_iter().collect(), note)
            }
        }
    }
}

/// The prefix fedns answers with today for ECS `block`/24: the longest override that
/// contains it, else the database network of its first address; at most 24.
fn today_scope(reader: &Reader<Vec<u8>>, overrides: &[(u32, u8)], block: u32) -> u8 {
    let addr = block << 8;
    let covers = |&&(net, len): &&(u32, u8)| len == 0 || (addr ^ net) >> (32 - len) == 0;
    let prefix = match overrides.iter().find(covers) {
        Some(&(_, len)) => len,
        None => reader
            .lookup(IpAddr::V4(Ipv4Addr::from(addr)))
            .ok()
            .and_then(|r| r.network().ok())
            .map_or(32, |n| n.prefix()),
    };
    prefix.min(SOURCE)
}

/// A record's coordinates and country as fedns reads them (both shapes, doubles or
/// floats): what this bench compares and converts.
fn coords_and_country(p: &Place) -> (Option<(f64, f64)>, Option<String>) {
    let coords = match p.location {
        Some((at, Precision::City)) => Some((at.lat, at.lon)),
        _ => None,
    };
    let country = p.country.map(|c| String::from_utf8_lossy(&c).into_owned());
    (coords, country)
}

/// "198.18.2.0/24 (35.68,139.69 JP)": a database network and its record, for examples.
fn describe(db: &GeoDb, block: u32) -> String {
    let hit = db.lookup(IpAddr::V4(Ipv4Addr::from(block << 8)));
    let (coords, country) = coords_and_country(&hit.place);
    let at = coords.map_or("no coordinates".into(), |(a, b)| format!("{a:.4},{b:.4}"));
    format!(
        "{} ({at} {})",
        hit.network,
        country.as_deref().unwrap_or("-")
    )
}

// --- Asking the servers --------------------------------------------------------------------

/// One reply: its answer (an index into `Answers`) and its ECS scope (None: no ECS option).
#[derive(Clone, Copy, Debug)]
struct Reply {
    answer: u32,
    scope: Option<u8>,
}

/// Distinct answers, shared by all servers so that their indexes compare.
#[derive(Default)]
struct Answers {
    index: HashMap<String, u32>,
    text: Vec<String>,
}

impl Answers {
    fn intern(&mut self, text: String) -> u32 {
        if let Some(&i) = self.index.get(&text) {
            return i;
        }
        let i = self.text.len() as u32;
        self.index.insert(text.clone(), i);
        self.text.push(text);
        i
    }

    /// The answer of a reply: its sorted A, AAAA and CNAME data ("NODATA" when none), or
    /// its RCODE when not NOERROR.
    fn of(&mut self, m: &Message) -> u32 {
        if m.metadata.response_code != ResponseCode::NoError {
            return self.intern(m.metadata.response_code.to_string());
        }
        let mut data: Vec<String> = m
            .answers
            .iter()
            .filter(|r| {
                matches!(
                    r.data.record_type(),
                    RecordType::A | RecordType::AAAA | RecordType::CNAME
                )
            })
            .map(|r| format!("{} {}", r.data.record_type(), r.data))
            .collect();
        data.sort();
        let text = if data.is_empty() {
            "NODATA".into()
        } else {
            data.join(", ")
        };
        self.intern(text)
    }
}

/// What one server answered over the sweep.
struct Swept {
    replies: Vec<Option<Reply>>,
    lost: usize,
    resent: usize,
    truncated: usize,
    took: Duration,
}

fn query(id: u16, qname: &Name, block: u32) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(qname.clone(), RecordType::A));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    let addr = IpAddr::V4(Ipv4Addr::from(block << 8));
    edns.options_mut()
        .insert(EdnsOption::Subnet(ClientSubnet::new(addr, SOURCE, 0)));
    m.set_edns(edns);
    m.to_vec().expect("encode a query")
}

/// The ECS option of a reply: (address, scope prefix).
fn ecs_of(m: &Message) -> Option<(IpAddr, u8)> {
    match m.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some((s.addr(), s.scope_prefix())),
        _ => None,
    }
}

/// Sends one query per block to `server`, at most `window` in flight, and collects the
/// replies. Ends by itself: each query is sent at most 1 + RETRIES times, RETRY_AFTER apart.
fn ask_all(
    server: SocketAddr,
    qname: &Name,
    blocks: &[u32],
    window: usize,
    answers: &mut Answers,
) -> std::io::Result<Swept> {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    sock.connect(server)?;
    sock.set_read_timeout(Some(Duration::from_millis(10)))?;
    let started = Instant::now();
    let mut replies = vec![None; blocks.len()];
    // id -> (index into blocks, sent at, sends so far)
    let mut inflight: HashMap<u16, (usize, Instant, u8)> = HashMap::new();
    let (mut next, mut next_id) = (0usize, 0u16);
    let (mut lost, mut resent, mut truncated) = (0, 0, 0);
    let mut last_scan = Instant::now();
    let mut buf = vec![0u8; 65_535];
    while next < blocks.len() || !inflight.is_empty() {
        while inflight.len() < window && next < blocks.len() {
            next_id = next_id.wrapping_add(1);
            if inflight.contains_key(&next_id) {
                continue;
            }
            // A send that fails (a full socket buffer) is retried like a lost reply.
            let _ = sock.send(&query(next_id, qname, blocks[next]));
            inflight.insert(next_id, (next, Instant::now(), 1));
            next += 1;
        }
        match sock.recv(&mut buf) {
            Ok(n) => {
                if let Ok(m) = Message::from_vec(&buf[..n])
                    && let Some(&(i, _, _)) = inflight.get(&m.metadata.id)
                {
                    let ecs = ecs_of(&m);
                    let sent = IpAddr::V4(Ipv4Addr::from(blocks[i] << 8));
                    // A late reply to an earlier query that had this ID: not this one's.
                    if ecs.is_none_or(|(addr, _)| addr == sent) {
                        inflight.remove(&m.metadata.id);
                        truncated += usize::from(m.metadata.truncation);
                        replies[i] = Some(Reply {
                            answer: answers.of(&m),
                            scope: ecs.map(|(_, scope)| scope),
                        });
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // ECONNREFUSED from an earlier ICMP error, and the like: wait, then retry.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
        if last_scan.elapsed() >= RETRY_AFTER / 10 {
            last_scan = Instant::now();
            let expired: Vec<u16> = inflight
                .iter()
                .filter(|(_, (_, at, _))| at.elapsed() >= RETRY_AFTER)
                .map(|(&id, _)| id)
                .collect();
            for id in expired {
                let entry = inflight.get_mut(&id).expect("just listed");
                if entry.2 > RETRIES {
                    inflight.remove(&id);
                    lost += 1;
                } else {
                    let _ = sock.send(&query(id, qname, blocks[entry.0]));
                    entry.1 = Instant::now();
                    entry.2 += 1;
                    resent += 1;
                }
            }
        }
    }
    Ok(Swept {
        replies,
        lost,
        resent,
        truncated,
        took: started.elapsed(),
    })
}

// --- What the replies say ------------------------------------------------------------------

/// A reply's scope as a resolver caches it: no ECS option is 0, past the source prefix is
/// the source prefix (RFC 7871 section 7.3.1).
fn cache_scope(r: &Reply) -> u8 {
    r.scope.unwrap_or(0).min(SOURCE)
}

/// The /24 number `block` cut to `prefix` bits: the key of its scope network.
fn cut(block: u32, prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        block >> (24 - prefix)
    }
}

/// A resolver's ECS cache after the sweep.
struct CacheSim {
    entries: usize,
    hits: usize,
    /// Hits whose cached answer is not the server's answer for that /24:
    /// (block, scope network that covered it, cached answer).
    wrong: Vec<(u32, (u8, u32), u32)>,
}

fn resolver_cache(blocks: &[u32], replies: &[Option<Reply>]) -> CacheSim {
    let mut cache: HashMap<(u8, u32), u32> = HashMap::new();
    let mut sim = CacheSim {
        entries: 0,
        hits: 0,
        wrong: Vec::new(),
    };
    for (&block, reply) in blocks.iter().zip(replies) {
        let Some(reply) = reply else { continue };
        let covering = (0..=SOURCE).rev().find_map(|p| {
            cache
                .get(&(p, cut(block, p)))
                .map(|&a| ((p, cut(block, p)), a))
        });
        match covering {
            Some((key, cached)) => {
                sim.hits += 1;
                if cached != reply.answer {
                    sim.wrong.push((block, key, cached));
                }
            }
            None => {
                let scope = cache_scope(reply);
                cache.insert((scope, cut(block, scope)), reply.answer);
                sim.entries += 1;
            }
        }
    }
    sim
}

fn block_net(block: u32, prefix: u8) -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::from(block << 8), prefix)
        .expect("prefix <= 32")
        .trunc()
}

fn pct(n: usize, of: usize) -> String {
    if of == 0 {
        "-".into()
    } else {
        format!("{:.1} %", n as f64 * 100.0 / of as f64)
    }
}

/// "/8 1,234 · /24 56" : how many replies had each scope.
fn histogram(replies: &[Option<Reply>]) -> String {
    let mut h: BTreeMap<Option<u8>, usize> = BTreeMap::new();
    for r in replies.iter().flatten() {
        *h.entry(r.scope).or_default() += 1;
    }
    h.iter()
        .map(|(s, n)| match s {
            Some(s) => format!("/{s} {}", th(*n)),
            None => format!("no ECS {}", th(*n)),
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// A whole number with thousands separators.
fn th(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn sweep(s: &Settings) -> Result<(), String> {
    let reader = Reader::open_readfile(&s.db).map_err(|e| format!("{}: {e}", s.db))?;
    let db = GeoDb::open(Path::new(&s.db)).map_err(|e| e.to_string())?;
    let meta = reader.metadata();
    let blocks_of_db = Blocks::of(&reader)?;
    let (blocks, how) = blocks_of_db.pick(s.mode, s.max, s.seed);
    let today: Vec<u8> = blocks
        .iter()
        .map(|&b| today_scope(&reader, &s.overrides, b))
        .collect();
    println!(
        "ECS scope sweep: {} (type {}, build {}), {} /24s with data, swept {}; {} A with ECS /{SOURCE}.",
        s.db,
        meta.database_type,
        meta.build_epoch,
        th(blocks_of_db.total as usize),
        how,
        s.qname
    );
    println!();

    let mut answers = Answers::default();
    let mut swept = Vec::new();
    for (name, addr) in &s.servers {
        eprintln!("ecs_scope: {} queries to {name} ({addr})", th(blocks.len()));
        let r = ask_all(*addr, &s.qname, &blocks, s.window, &mut answers)
            .map_err(|e| format!("{name} ({addr}): {e}"))?;
        let took = r.took.as_secs_f64();
        eprintln!("ecs_scope: {name}: {took:.1} s, {} lost", r.lost);
        swept.push((name.as_str(), r));
    }
    let report = Report {
        db: &db,
        blocks: &blocks,
        today: &today,
        answers: &answers,
        examples: s.examples,
    };
    report.per_server(&swept);
    // The first server against each other one.
    for (other, b) in swept.iter().skip(1) {
        report.compare(&swept[0], (other, b));
    }
    Ok(())
}

/// What the sweep found, printed as Markdown.
struct Report<'a> {
    db: &'a GeoDb,
    blocks: &'a [u32],
    today: &'a [u8],
    answers: &'a Answers,
    examples: usize,
}

impl Report<'_> {
    fn answer(&self, a: u32) -> &str {
        &self.answers.text[a as usize]
    }

    /// The table (scopes against today's, the resolver's cache), the scopes' histograms,
    /// the answers, and examples of wrong answers from the cache.
    fn per_server(&self, swept: &[(&str, Swept)]) {
        println!(
            "| server | queries | lost | distinct answers | scope wider than today's | same | narrower | cache entries | cache hits | wrong answers from cache |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        let mut sims = Vec::new();
        for (name, r) in swept {
            let (mut wider, mut same, mut narrower, mut got) = (0, 0, 0, 0);
            let mut distinct = BTreeSet::new();
            for (reply, &t) in r.replies.iter().zip(self.today) {
                let Some(reply) = reply else { continue };
                got += 1;
                distinct.insert(reply.answer);
                match cache_scope(reply).cmp(&t) {
                    Ordering::Less => wider += 1,
                    Ordering::Equal => same += 1,
                    Ordering::Greater => narrower += 1,
                }
            }
            let sim = resolver_cache(self.blocks, &r.replies);
            println!(
                "| {name} | {} | {} | {} | {} ({}) | {} ({}) | {} ({}) | {} | {} | {} |",
                th(self.blocks.len()),
                th(r.lost),
                th(distinct.len()),
                th(wider),
                pct(wider, got),
                th(same),
                pct(same, got),
                th(narrower),
                pct(narrower, got),
                th(sim.entries),
                th(sim.hits),
                th(sim.wrong.len()),
            );
            sims.push(sim);
        }

        println!();
        println!("Scopes returned (prefix length: replies):");
        println!();
        for (name, r) in swept {
            println!("- {name}: {}", histogram(&r.replies));
        }
        let mut t: BTreeMap<u8, usize> = BTreeMap::new();
        for &p in self.today {
            *t.entry(p).or_default() += 1;
        }
        let t: Vec<String> = t.iter().map(|(p, n)| format!("/{p} {}", th(*n))).collect();
        println!("- today's scope (from the database): {}", t.join(" · "));

        println!();
        println!("Answers (replies):");
        println!();
        for (name, r) in swept {
            let mut count: HashMap<u32, usize> = HashMap::new();
            for reply in r.replies.iter().flatten() {
                *count.entry(reply.answer).or_default() += 1;
            }
            let mut count: Vec<(u32, usize)> = count.into_iter().collect();
            count.sort_by_key(|&(a, n)| (Reverse(n), a));
            let shown: Vec<String> = count
                .iter()
                .take(8)
                .map(|&(a, n)| format!("{} {}", self.answer(a), th(n)))
                .collect();
            let more = if count.len() > 8 { " · …" } else { "" };
            println!("- {name}: {}{more}", shown.join(" · "));
            let extra = [(r.resent, "sent again"), (r.truncated, "truncated")];
            for (n, what) in extra.into_iter().filter(|(n, _)| *n > 0) {
                println!("  ({} queries {what})", th(n));
            }
        }

        for ((name, r), sim) in swept.iter().zip(&sims) {
            if sim.wrong.is_empty() || self.examples == 0 {
                continue;
            }
            println!();
            println!(
                "{name}: wrong answers from the resolver's cache (first {}):",
                self.examples
            );
            println!();
            for &(block, (p, key), cached) in sim.wrong.iter().take(self.examples) {
                let i = self.blocks.binary_search(&block).expect("a swept block");
                let reply = r.replies[i].expect("only replies are hits");
                let covering = block_net(if p == 0 { 0 } else { key << (24 - p) }, p);
                println!(
                    "- {}: cached from {covering}: {}; its own answer: {} (scope /{}); database: {}",
                    block_net(block, 24),
                    self.answer(cached),
                    self.answer(reply.answer),
                    cache_scope(&reply),
                    describe(self.db, block),
                );
            }
        }
    }

    /// Server `a` against server `b`, /24 by /24: same answer with a narrower, the same or
    /// a wider scope, or a different answer; with examples.
    fn compare(&self, (first, a): &(&str, Swept), (other, b): (&str, &Swept)) {
        let (mut both, mut narrower, mut wider, mut equal) = (0, Vec::new(), 0, 0);
        let mut differ = Vec::new();
        for (i, (ra, rb)) in a.replies.iter().zip(&b.replies).enumerate() {
            let (Some(ra), Some(rb)) = (ra, rb) else {
                continue;
            };
            both += 1;
            if ra.answer != rb.answer {
                differ.push(i);
                continue;
            }
            match cache_scope(ra).cmp(&cache_scope(rb)) {
                Ordering::Greater => narrower.push(i),
                Ordering::Less => wider += 1,
                Ordering::Equal => equal += 1,
            }
        }
        println!();
        println!(
            "{first} against {other}, over the {} /24s both answered:",
            th(both)
        );
        println!();
        println!(
            "| same answer, {first}'s scope narrower | same answer, same scope | same answer, {first}'s scope wider | answers differ |"
        );
        println!("|---|---|---|---|");
        let cell = |n: usize| format!("{} ({})", th(n), pct(n, both));
        println!(
            "| {} | {} | {} | {} |",
            cell(narrower.len()),
            cell(equal),
            cell(wider),
            cell(differ.len())
        );
        let example = |i: usize| {
            let (ra, rb) = (a.replies[i].unwrap(), b.replies[i].unwrap());
            format!(
                "- {}: {first} {} /{}, {other} {} /{}; today /{}; database: {}",
                block_net(self.blocks[i], 24),
                self.answer(ra.answer),
                cache_scope(&ra),
                self.answer(rb.answer),
                cache_scope(&rb),
                self.today[i],
                describe(self.db, self.blocks[i])
            )
        };
        for (what, list) in [
            (format!("{first}'s scope narrower, same answer"), &narrower),
            ("answers differ".to_owned(), &differ),
        ] {
            if list.is_empty() || self.examples == 0 {
                continue;
            }
            println!();
            // Spread over the sweep rather than the first few of one region.
            let step = (list.len() / self.examples).max(1);
            println!("{what} ({}; 1 in {} shown):", th(list.len()), th(step));
            println!();
            for &i in list.iter().step_by(step).take(self.examples) {
                println!("{}", example(i));
            }
        }
    }
}

// --- convert -------------------------------------------------------------------------------

/// The GeoIP2 City shape of a record: country, location (doubles), and where there are no
/// coordinates the continent fedns derives from the country.
fn city_value(p: &Place) -> Value {
    let mut fields = Vec::new();
    let (coords, country) = coords_and_country(p);
    if let Some(cc) = country {
        let iso = Value::String(cc);
        fields.push(("country".into(), Value::Map(vec![("iso_code".into(), iso)])));
    }
    match coords {
        Some((lat, lon)) => fields.push((
            "location".into(),
            Value::Map(vec![
                ("latitude".into(), Value::Double(lat)),
                ("longitude".into(), Value::Double(lon)),
            ]),
        )),
        None => {
            if let Some(c) = p.continent {
                let code = Value::String(String::from_utf8_lossy(&c).into_owned());
                fields.push(("continent".into(), Value::Map(vec![("code".into(), code)])));
            }
        }
    }
    Value::Map(fields)
}

/// Sets the metadata's `build_epoch` (fedns's writer writes 0) to `epoch`. The metadata map
/// is the last thing in the file and nothing points into it, so growing it is safe.
fn set_build_epoch(bytes: &mut Vec<u8>, epoch: u64) -> Result<(), String> {
    const MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";
    // The key, then a uint64 (extended type 9 - 7 = 2) of size 0.
    const ZERO: &[u8] = b"build_epoch\x00\x02";
    let meta = bytes
        .windows(MARKER.len())
        .rposition(|w| w == MARKER)
        .ok_or("no metadata marker")?;
    let at = bytes[meta..]
        .windows(ZERO.len())
        .position(|w| w == ZERO)
        .ok_or("no build_epoch 0 in the metadata")?
        + meta
        + ZERO.len()
        - 2;
    let mut value = vec![8, 2];
    value.extend_from_slice(&epoch.to_be_bytes());
    bytes.splice(at..at + 2, value);
    Ok(())
}

fn convert(input: &Path, output: &Path) -> Result<(), String> {
    let started = Instant::now();
    let src = GeoDb::open(input).map_err(|e| e.to_string())?;
    let meta = Reader::open_readfile(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let epoch = meta.metadata().build_epoch.max(1);
    let mut w = Writer::new(
        &format!("{} (GeoIP2 City shape)", src.database_type()),
        &format!(
            "{}, converted by fedns's benches/ecs_scope.rs",
            input.display()
        ),
    );
    // One Value per distinct record, cloned into each of its networks.
    let mut values: HashMap<u32, Value> = HashMap::new();
    let (mut networks, mut no_coords) = (0usize, 0usize);
    src.for_each_network(false, |net, offset, place| {
        let Some(offset) = offset else {
            return;
        };
        let value = values
            .entry(offset)
            .or_insert_with(|| {
                let p = place();
                no_coords += usize::from(coords_and_country(&p).0.is_none());
                city_value(&p)
            })
            .clone();
        w.insert(net, value);
        networks += 1;
    })?;
    let records = values.len();
    drop(values);
    eprintln!(
        "convert: read {} networks, {} records ({} without coordinates) in {:.1} s",
        th(networks),
        th(records),
        th(no_coords),
        started.elapsed().as_secs_f64()
    );
    let mut bytes = w.to_bytes();
    drop(w);
    set_build_epoch(&mut bytes, epoch)?;
    let tmp = output.with_extension("mmdb.tmp");
    std::fs::write(&tmp, &bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    eprintln!(
        "convert: wrote {} MB in {:.1} s, peak RSS {} MiB",
        bytes.len() / 1_000_000,
        started.elapsed().as_secs_f64(),
        hwm_kib("self") / 1024
    );
    drop(bytes);

    // Read both back: the same network, and the same place as fedns reads it, everywhere.
    let out = GeoDb::open(&tmp).map_err(|e| e.to_string())?;
    let written = Reader::open_readfile(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    if written.metadata().build_epoch != epoch {
        return Err("build_epoch did not take".into());
    }
    let mut checked = 0usize;
    let mut bad = None;
    src.for_each_network(false, |net, offset, _| {
        if offset.is_none() || bad.is_some() {
            return;
        }
        let (a, b) = (src.lookup(net.addr()), out.lookup(net.addr()));
        if b.network != net || a.place != b.place {
            bad = Some(format!(
                "{net}: converted as {} {:?}, was {:?}",
                b.network, b.place, a.place
            ));
        }
        checked += 1;
    })?;
    if let Some(e) = bad {
        return Err(e);
    }
    std::fs::rename(&tmp, output).map_err(|e| format!("{}: {e}", output.display()))?;
    eprintln!(
        "convert: {} networks checked; {} in {:.1} s",
        th(checked),
        output.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
