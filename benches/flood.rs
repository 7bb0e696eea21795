//! Flood of random ECS subnets and random names: UDP queries, each with a fresh random ECS
//! /24 or /56, every other one for a fresh random name (NXDOMAIN), as fast as one client
//! socket goes for a bounded time, against the embedded demo served in-process. Reports
//! queries answered and the process's resident memory before, during and after, to show
//! that no table keyed by client data grows with the flood: each worker's answer cache
//! starts over at `cache::MAX_TEMPLATES`, its location memo has fixed slots, and RRL's
//! table is fixed-size.
//!
//! With `FEDNS_FLOOD_DNSSEC=13` (or `15`) the zone is signed (a KSK and a ZSK of that
//! algorithm) and every query sets DO: each random name is then a compact denial whose NSEC
//! must be signed afresh, the worst case of online signing.
//!
//! Run: `cargo bench --bench flood` (`FEDNS_FLOOD_SECONDS`, default 20; add
//! `FEDNS_FLOOD_RRL=1` to turn RRL on). Only under `cargo bench` (which passes `--bench`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fedns::app::{self, LoadedConfig};
use fedns::dnssec::{Algorithm, Key, KeySpec, Policy, Zone};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};

use fedns_testkit::random::Xorshift;

/// The demo zone's keys: a fresh KSK and ZSK of `algorithm`, active now.
fn signed_zone(algorithm: Algorithm) -> Arc<Zone> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let spec = |ksk| KeySpec {
        key: Key::generate("fed.example.com", algorithm, ksk, now),
        path: if ksk { "ksk" } else { "zsk" }.into(),
        forced: None,
    };
    let policy = Policy {
        validity: 7 * 86_400,
        dnskey_ttl: 3600,
        cds: true,
    };
    let apex = Name::from_ascii("fed.example.com.").unwrap();
    Arc::new(Zone::new(&apex, vec![spec(true), spec(false)], policy, now).unwrap())
}

fn rss_kib() -> u64 {
    fedns_testkit::sys::rss_kib("self")
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("flood: run with `cargo bench --bench flood`");
        return;
    }
    let seconds: u64 = std::env::var("FEDNS_FLOOD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let rrl = std::env::var_os("FEDNS_FLOOD_RRL").is_some();
    let dnssec = std::env::var("FEDNS_FLOOD_DNSSEC")
        .ok()
        .map(|a| Algorithm::parse(&a).expect("FEDNS_FLOOD_DNSSEC: 13 or 15"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut loaded = LoadedConfig::demo().unwrap();
        if rrl {
            loaded.config.rrl = Some(Default::default());
        }
        if let Some(algorithm) = dnssec {
            loaded.dnssec = Some(signed_zone(algorithm));
        }
        let options = app::Options {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            admin: None,
            query_log: false,
            ..Default::default()
        };
        let running = app::start(loaded, &options).await.unwrap();
        let server: SocketAddr = running.dns_addrs()[0];
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let name = Name::from_ascii("app.default.myfed.svc.fed.example.com.").unwrap();
        let before = rss_kib();
        let (mut sent, mut answered, mut truncated) = (0u64, 0u64, 0u64);
        let mut rng = Xorshift::new(0x243f_6a88_85a3_08d3);
        let mut samples = Vec::new();
        let start = Instant::now();
        let mut buf = [0u8; 1500];
        // A blocking client on its own thread; up to 64 queries in flight.
        let handle = std::thread::spawn(move || {
            let mut inflight = 0u32;
            let mut next_sample = 100_000;
            while start.elapsed() < Duration::from_secs(seconds) {
                while inflight < 64 {
                    let seed = rng.next_u64();
                    let subnet: ipnet::IpNet = if seed & 1 == 0 {
                        let a = (seed >> 8) as u32 & 0xffff_ff00;
                        ipnet::IpNet::new(std::net::Ipv4Addr::from(a).into(), 24).unwrap()
                    } else {
                        let a = u128::from(seed) << 72;
                        ipnet::IpNet::new(std::net::Ipv6Addr::from(a).into(), 56).unwrap()
                    };
                    let mut m =
                        Message::new((sent & 0xffff) as u16, MessageType::Query, OpCode::Query);
                    // Every other query a random name (NXDOMAIN): each is a new question
                    // for the answer cache, which must start over at its bound.
                    let qname = if (seed >> 40) & 1 == 0 {
                        name.clone()
                    } else {
                        Name::from_ascii(format!("r{:x}.fed.example.com.", seed >> 20)).unwrap()
                    };
                    m.add_query(Query::query(qname, RecordType::A));
                    let mut e = Edns::new();
                    e.set_dnssec_ok(dnssec.is_some());
                    e.options_mut()
                        .insert(EdnsOption::Subnet(ClientSubnet::from(subnet)));
                    m.set_edns(e);
                    sock.send_to(&m.to_vec().unwrap(), server).unwrap();
                    sent += 1;
                    inflight += 1;
                }
                match sock.recv_from(&mut buf) {
                    Ok((n, _)) => {
                        // TC set: an RRL slip (a truncated, empty reply).
                        if n > 2 && buf[2] & 0x02 != 0 {
                            truncated += 1;
                        } else {
                            answered += 1;
                        }
                        inflight -= 1;
                    }
                    Err(_) => inflight = 0,
                }
                if sent >= next_sample {
                    samples.push((start.elapsed().as_secs_f64(), rss_kib()));
                    next_sample += 100_000;
                }
            }
            (sent, answered, truncated, samples)
        });
        let (sent, answered, truncated, samples) = tokio::task::spawn_blocking(move || handle.join().unwrap())
            .await
            .unwrap();
        let after = rss_kib();
        let elapsed = start.elapsed().as_secs_f64();
        running.shutdown(Duration::ZERO).await;
        println!(
            "flood: {seconds} s of random ECS subnets (/24 and /56), every other query a random name, rrl {}, {}",
            if rrl { "on" } else { "off" },
            match dnssec {
                Some(a) => format!("signed ({}), DO set", a.mnemonic()),
                None => "unsigned".to_owned(),
            }
        );
        println!("| queries sent | full answers | full answers/s | truncated (RRL slips) | no reply | RSS before | RSS after |");
        println!("|---|---|---|---|---|---|---|");
        println!(
            "| {sent} | {answered} | {:.0} | {truncated} | {} | {} MiB | {} MiB |",
            answered as f64 / elapsed,
            sent.saturating_sub(answered + truncated),
            before / 1024,
            after / 1024
        );
        let trail: Vec<String> = samples
            .iter()
            .map(|(t, r)| format!("{t:.0}s:{}MiB", r / 1024))
            .collect();
        println!("RSS every 100,000 queries: {}", trail.join(" "));
    });
}
