//! DNS over real UDP and TCP sockets against an in-process fedns, as table cases whose
//! expectations read like zone-file lines. Client locations come from the generated demo
//! GeoIP database through ECS subnets (see `fedns::demo::NETWORKS`).

use fedns_testkit::dns::{Transport, answer_lines, ecs_of, query};
use fedns_testkit::server::{CONFIG, TestServer};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType::{self, A, AAAA, CNAME, MX, NS, SOA, TXT};

struct Case {
    name: &'static str,
    qtype: RecordType,
    ecs: Option<&'static str>,
    rcode: ResponseCode,
    answers: &'static [&'static str],
    /// Expected ECS scope in the reply (only checked when `ecs` is set).
    scope: Option<u8>,
}

const fn case(
    name: &'static str,
    qtype: RecordType,
    ecs: Option<&'static str>,
    answers: &'static [&'static str],
) -> Case {
    Case {
        name,
        qtype,
        ecs,
        rcode: ResponseCode::NoError,
        answers,
        scope: None,
    }
}

const APP: &str = "app.default.myfed.svc.fed.example.com.";

fn cases() -> Vec<Case> {
    let nodata = |name, qtype, ecs| Case {
        name,
        qtype,
        ecs,
        rcode: ResponseCode::NoError,
        answers: &[],
        scope: None,
    };
    let nxdomain = |name| Case {
        name,
        qtype: A,
        ecs: None,
        rcode: ResponseCode::NXDomain,
        answers: &[],
        scope: None,
    };
    let scoped = |mut c: Case, scope| {
        c.scope = Some(scope);
        c
    };
    let _ = APP;
    vec![
        // Global name: the nearest cluster to each known client network.
        scoped(
            case(
                "app.default.myfed.svc.fed.example.com",
                A,
                Some("198.18.0.0/24"),
                &["app.default.myfed.svc.fed.example.com. 30 IN A 192.0.2.10"],
            ),
            24,
        ),
        scoped(
            case(
                "app.default.myfed.svc.fed.example.com",
                A,
                Some("198.18.1.0/24"),
                &["app.default.myfed.svc.fed.example.com. 30 IN A 198.51.100.10"],
            ),
            24,
        ),
        scoped(
            case(
                "app.default.myfed.svc.fed.example.com",
                A,
                Some("198.18.2.0/24"),
                &["app.default.myfed.svc.fed.example.com. 30 IN A 203.0.113.10"],
            ),
            24,
        ),
        scoped(
            case(
                "app.default.myfed.svc.fed.example.com",
                A,
                Some("198.18.3.0/24"),
                &["app.default.myfed.svc.fed.example.com. 30 IN A 192.0.2.40"],
            ),
            24,
        ),
        scoped(
            case(
                "app.default.myfed.svc.fed.example.com",
                A,
                Some("198.18.4.0/24"),
                &["app.default.myfed.svc.fed.example.com. 30 IN A 203.0.113.50"],
            ),
            24,
        ),
        // Country-only records: the country's centroid (Argentina -> Sao Paulo, New Zealand -> Sydney).
        scoped(
            case(
                "app.default.myfed.svc.fed.example.com",
                A,
                Some("198.18.5.0/24"),
                &["app.default.myfed.svc.fed.example.com. 30 IN A 192.0.2.40"],
            ),
            24,
        ),
        scoped(
            case(
                "app.default.myfed.svc.fed.example.com",
                A,
                Some("198.18.6.0/24"),
                &["app.default.myfed.svc.fed.example.com. 30 IN A 203.0.113.50"],
            ),
            24,
        ),
        // A /16 database network (Chicago) and a /16 ECS source inside a /24 network: the
        // scope is the smaller of the two.
        scoped(
            case(
                "app.default.myfed.svc.fed.example.com",
                A,
                Some("198.19.7.0/24"),
                &["app.default.myfed.svc.fed.example.com. 30 IN A 192.0.2.10"],
            ),
            16,
        ),
        scoped(
            case(
                "app.default.myfed.svc.fed.example.com",
                A,
                Some("198.18.0.0/16"),
                &["app.default.myfed.svc.fed.example.com. 30 IN A 192.0.2.10"],
            ),
            16,
        ),
        // IPv6 clients and AAAA.
        scoped(
            case(
                "app.default.myfed.svc.fed.example.com",
                AAAA,
                Some("2001:db8:3::/48"),
                &["app.default.myfed.svc.fed.example.com. 30 IN AAAA 2001:db8:30::10"],
            ),
            48,
        ),
        scoped(
            case(
                "app.default.myfed.svc.fed.example.com",
                AAAA,
                Some("2001:db8:2::/56"),
                &["app.default.myfed.svc.fed.example.com. 30 IN AAAA 2001:db8:20::10"],
            ),
            48,
        ),
        case(
            "app.default.myfed.svc.fed.example.com",
            A,
            Some("2001:db8:1::/48"),
            &["app.default.myfed.svc.fed.example.com. 30 IN A 192.0.2.10"],
        ),
        // The chosen cluster has no IPv6 address and no hostname: NODATA.
        nodata(
            "app.default.myfed.svc.fed.example.com",
            AAAA,
            Some("198.18.3.0/24"),
        ),
        nodata(
            "app.default.myfed.svc.fed.example.com",
            MX,
            Some("198.18.3.0/24"),
        ),
        // Overrides: pinned cluster, region, and the fallback order for unknown clients.
        scoped(
            case(
                "app.default.myfed.svc.fed.example.com",
                A,
                Some("198.18.200.0/24"),
                &["app.default.myfed.svc.fed.example.com. 30 IN A 192.0.2.40"],
            ),
            24,
        ),
        scoped(
            case(
                "app.default.myfed.svc.fed.example.com",
                A,
                Some("198.18.201.0/24"),
                &["app.default.myfed.svc.fed.example.com. 30 IN A 203.0.113.10"],
            ),
            24,
        ),
        case(
            "app.default.myfed.svc.fed.example.com",
            A,
            Some("10.1.0.0/16"),
            &["app.default.myfed.svc.fed.example.com. 30 IN A 192.0.2.40"],
        ),
        // The widest block with the answer: nothing in 0.0.0.0/2 is placed, so all of it
        // gets the fallback. 96.0.0.0/4 is the widest such block around 100.64.0.0 (the
        // override 127.0.0.0/8 is in 64.0.0.0/2); the same location key (unplaced), so
        // the second is a cache hit that must find its own scope.
        scoped(
            case(
                "app.default.myfed.svc.fed.example.com",
                A,
                Some("8.8.8.0/24"),
                &["app.default.myfed.svc.fed.example.com. 30 IN A 192.0.2.40"],
            ),
            2,
        ),
        scoped(
            case(
                "app.default.myfed.svc.fed.example.com",
                A,
                Some("100.64.0.0/24"),
                &["app.default.myfed.svc.fed.example.com. 30 IN A 192.0.2.40"],
            ),
            4,
        ),
        // No ECS: the source address 127.0.0.1 is overridden to Frankfurt.
        case(
            "app.default.myfed.svc.fed.example.com",
            A,
            None,
            &["app.default.myfed.svc.fed.example.com. 30 IN A 198.51.100.10"],
        ),
        // Case is preserved.
        case(
            "ApP.DeFault.MyFed.SVC.fed.EXAMPLE.com",
            A,
            Some("198.18.2.0/24"),
            &["ApP.DeFault.MyFed.SVC.fed.EXAMPLE.com. 30 IN A 203.0.113.10"],
        ),
        // Region and zone names.
        scoped(
            case(
                "app.default.myfed.svc.us-east-1.fed.example.com",
                A,
                Some("198.18.2.0/24"),
                &["app.default.myfed.svc.us-east-1.fed.example.com. 30 IN A 192.0.2.10"],
            ),
            0,
        ),
        case(
            "app.default.myfed.svc.us-east-1a.us-east-1.fed.example.com",
            A,
            None,
            &["app.default.myfed.svc.us-east-1a.us-east-1.fed.example.com. 30 IN A 192.0.2.10"],
        ),
        // No cluster of the region has it: CNAME to the global name, followed.
        case(
            "web.default.myfed.svc.ap-northeast-1.fed.example.com",
            A,
            Some("198.18.0.0/24"),
            &[
                "web.default.myfed.svc.ap-northeast-1.fed.example.com. 30 IN CNAME web.default.myfed.svc.fed.example.com.",
                "web.default.myfed.svc.fed.example.com. 30 IN A 192.0.2.11",
            ],
        ),
        // Zone -> region -> global.
        case(
            "api.default.myfed.svc.us-east-1a.us-east-1.fed.example.com",
            A,
            Some("198.18.3.0/24"),
            &[
                "api.default.myfed.svc.fed.example.com. 30 IN A 192.0.2.41",
                "api.default.myfed.svc.us-east-1.fed.example.com. 30 IN CNAME api.default.myfed.svc.fed.example.com.",
                "api.default.myfed.svc.us-east-1a.us-east-1.fed.example.com. 30 IN CNAME api.default.myfed.svc.us-east-1.fed.example.com.",
            ],
        ),
        // A hostname-only load balancer: CNAME to it (outside the zone, not followed).
        case(
            "api.default.myfed.svc.fed.example.com",
            A,
            Some("198.18.2.0/24"),
            &[
                "api.default.myfed.svc.fed.example.com. 30 IN CNAME api-lb-1234.elb.ap-northeast-1.amazonaws.com.",
            ],
        ),
        case(
            "api.default.myfed.svc.fed.example.com",
            AAAA,
            Some("198.18.2.0/24"),
            &[
                "api.default.myfed.svc.fed.example.com. 30 IN CNAME api-lb-1234.elb.ap-northeast-1.amazonaws.com.",
            ],
        ),
        case(
            "api.default.myfed.svc.fed.example.com",
            A,
            Some("198.18.3.0/24"),
            &["api.default.myfed.svc.fed.example.com. 30 IN A 192.0.2.41"],
        ),
        // An Ingress-style host.
        case(
            "www.fed.example.com",
            A,
            Some("198.18.2.0/24"),
            &["www.fed.example.com. 30 IN A 203.0.113.10"],
        ),
        case(
            "www.fed.example.com",
            A,
            Some("198.18.0.0/24"),
            &["www.fed.example.com. 30 IN A 198.51.100.10"],
        ),
        // Policies: failover order, count, all, weighted.
        scoped(
            case(
                "checkout.shop.myfed.svc.fed.example.com",
                A,
                Some("198.18.2.0/24"),
                &["checkout.shop.myfed.svc.fed.example.com. 30 IN A 198.51.100.12"],
            ),
            0,
        ),
        case(
            "two.default.myfed.svc.fed.example.com",
            A,
            Some("198.18.0.0/24"),
            &[
                "two.default.myfed.svc.fed.example.com. 30 IN A 192.0.2.113",
                "two.default.myfed.svc.fed.example.com. 30 IN A 192.0.2.13",
                "two.default.myfed.svc.fed.example.com. 30 IN A 198.51.100.13",
            ],
        ),
        case(
            "rr.default.myfed.svc.fed.example.com",
            A,
            None,
            &[
                "rr.default.myfed.svc.fed.example.com. 30 IN A 192.0.2.14",
                "rr.default.myfed.svc.fed.example.com. 30 IN A 198.51.100.14",
                "rr.default.myfed.svc.fed.example.com. 30 IN A 203.0.113.14",
            ],
        ),
        case(
            "wt.default.myfed.svc.fed.example.com",
            A,
            Some("198.18.2.0/24"),
            &["wt.default.myfed.svc.fed.example.com. 30 IN A 192.0.2.15"],
        ),
        // Static records from the zone file; a static CNAME into the federation is followed.
        scoped(
            case(
                "status.fed.example.com",
                TXT,
                Some("198.18.2.0/24"),
                &["status.fed.example.com. 3600 IN TXT fedns demo federation"],
            ),
            0,
        ),
        case(
            "ns1.fed.example.com",
            A,
            None,
            &["ns1.fed.example.com. 3600 IN A 127.0.0.1"],
        ),
        case(
            "fed.example.com",
            NS,
            None,
            &[
                "fed.example.com. 3600 IN NS ns1.fed.example.com.",
                "fed.example.com. 3600 IN NS ns2.fed.example.com.",
            ],
        ),
        case(
            "fed.example.com",
            SOA,
            None,
            &[
                "fed.example.com. 3600 IN SOA ns1.fed.example.com. hostmaster.fed.example.com. 2026112301 3600 600 86400 30",
            ],
        ),
        case(
            "shop.fed.example.com",
            A,
            None,
            &[
                "checkout.shop.myfed.svc.fed.example.com. 30 IN A 198.51.100.12",
                "shop.fed.example.com. 3600 IN CNAME checkout.shop.myfed.svc.fed.example.com.",
            ],
        ),
        case(
            "shop.fed.example.com",
            CNAME,
            None,
            &["shop.fed.example.com. 3600 IN CNAME checkout.shop.myfed.svc.fed.example.com."],
        ),
        // NODATA at static names and at empty non-terminals; NXDOMAIN elsewhere.
        nodata("status.fed.example.com", A, None),
        nodata("svc.fed.example.com", A, None),
        nodata("myfed.svc.fed.example.com", A, None),
        nodata("default.myfed.svc.fed.example.com", A, None),
        nodata("default.myfed.svc.eu-west-1.fed.example.com", A, None),
        nodata("eu-west-1.fed.example.com", A, None),
        nxdomain("nope.default.myfed.svc.fed.example.com"),
        nxdomain("app.nope.myfed.svc.fed.example.com"),
        nxdomain("app.default.otherfed.svc.fed.example.com"),
        nxdomain("app.default.myfed.svc.mars-1.fed.example.com"),
        nxdomain("x.app.default.myfed.svc.fed.example.com"),
        nxdomain("nothing.fed.example.com"),
        // Outside the zone: refused, not an open resolver.
        Case {
            name: "example.org",
            qtype: A,
            ecs: None,
            rcode: ResponseCode::Refused,
            answers: &[],
            scope: None,
        },
        Case {
            name: "example.com",
            qtype: A,
            ecs: None,
            rcode: ResponseCode::Refused,
            answers: &[],
            scope: None,
        },
    ]
}

/// The table is asked three times of one server: once, again (now from the answer
/// cache), and with every other letter of each name in uppercase, which must give the
/// same answers with the question's case kept in the question and the owner names
/// (RFC 1035 section 2.3.3, RFC 4343 section 4.1).
async fn run_cases(transport: Transport) {
    let server = TestServer::start(CONFIG).await;
    let client = server.client();
    let mut failures = Vec::new();
    for pass in ["first", "cached", "mixed case"] {
        for c in cases() {
            check_case(&client, &c, transport, pass, &mut failures).await;
        }
    }
    server.stop().await;
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `name` with every other ASCII letter in uppercase.
fn mixed_case(name: &str) -> String {
    name.chars()
        .enumerate()
        .map(|(i, ch)| {
            if i % 2 == 0 {
                ch.to_ascii_uppercase()
            } else {
                ch
            }
        })
        .collect()
}

async fn check_case(
    client: &fedns_testkit::dns::DnsClient,
    c: &Case,
    transport: Transport,
    pass: &str,
    failures: &mut Vec<String>,
) {
    {
        let asked = if pass == "mixed case" {
            mixed_case(c.name)
        } else {
            c.name.to_string()
        };
        let reply = client
            .exchange(&query(&asked, c.qtype, c.ecs), transport)
            .await;
        let mut got = answer_lines(&reply);
        let label = format!(
            "{asked} {} ecs={:?} over {:?} ({pass})",
            c.qtype, c.ecs, transport
        );
        if pass == "mixed case" {
            let mut sent = hickory_proto::rr::Name::from_ascii(&asked).unwrap();
            sent.set_fqdn(true);
            let echoed = reply.queries.first().map(|q| q.name().clone());
            if !echoed.as_ref().is_some_and(|n| n.eq_case(&sent)) {
                failures.push(format!("{label}: question echoed as {echoed:?}"));
            }
            for r in &reply.answers {
                if r.name.eq_case(&sent) != r.name.eq(&sent) {
                    failures.push(format!("{label}: owner {} lost the case", r.name));
                }
            }
            got = got.iter().map(|l| l.to_ascii_lowercase()).collect();
            got.sort();
        }
        let mut want: Vec<String> = c.answers.iter().map(|s| s.to_string()).collect();
        if pass == "mixed case" {
            want = want.iter().map(|l| l.to_ascii_lowercase()).collect();
        }
        want.sort();
        if reply.metadata.response_code != c.rcode {
            failures.push(format!(
                "{label}: rcode {} want {}",
                reply.metadata.response_code, c.rcode
            ));
        }
        if got != want {
            failures.push(format!("{label}:\n  got  {got:?}\n  want {want:?}"));
        }
        let authoritative = c.rcode != ResponseCode::Refused;
        if reply.metadata.authoritative != authoritative {
            failures.push(format!("{label}: AA {}", reply.metadata.authoritative));
        }
        if reply.metadata.recursion_available {
            failures.push(format!("{label}: RA set"));
        }
        let negative = authoritative && c.answers.is_empty();
        let has_soa = reply.authorities.iter().any(|r| r.record_type() == SOA);
        if negative != has_soa {
            failures.push(format!("{label}: SOA in authority: {has_soa}"));
        }
        if let Some(soa) = reply.authorities.iter().find(|r| r.record_type() == SOA) {
            // Negative TTL: the SOA's MINIMUM (RFC 2308).
            if soa.ttl != 30 {
                failures.push(format!("{label}: negative SOA TTL {}", soa.ttl));
            }
        }
        match (c.ecs, ecs_of(&reply)) {
            (Some(sent), Some((source, scope))) => {
                let sent: ipnet::IpNet = sent.parse().unwrap();
                if source != sent.prefix_len() {
                    failures.push(format!("{label}: ECS source {source} echoed"));
                }
                if scope > source {
                    failures.push(format!("{label}: ECS scope {scope} > source {source}"));
                }
                if let Some(want) = c.scope
                    && scope != want
                {
                    failures.push(format!("{label}: ECS scope {scope} want {want}"));
                }
            }
            (Some(_), None) if authoritative => failures.push(format!("{label}: no ECS in reply")),
            (None, Some(_)) => failures.push(format!("{label}: ECS in reply to a query without")),
            _ => {}
        }
    }
}

#[tokio::test]
async fn table_over_udp() {
    run_cases(Transport::Udp).await;
}

#[tokio::test]
async fn table_over_tcp() {
    run_cases(Transport::Tcp).await;
}
