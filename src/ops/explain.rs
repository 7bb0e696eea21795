//! `fedns explain`: where a client is, each candidate cluster with its distance and health,
//! and the answer that would be given. The same code path as a real query, with tracing on.

use std::fmt::Write;
use std::net::IpAddr;

use hickory_proto::rr::{DNSClass, Name, RecordType};
use ipnet::IpNet;

use crate::answer::{self, Client};
use crate::geo::{Precision, places};
use crate::health::Health;
use crate::snapshot::{Located, LocationSource, Snapshot};

/// Explains the answer to `name`/`qtype` for a client given as an address (the packet
/// source) or a CIDR (an ECS subnet, sent from `source`). Under each candidate, each
/// load-balancer address with its health and the lines `why` gives for it (the fleet's
/// votes, from the live server; none offline).
pub fn explain(
    snap: &Snapshot,
    client: &str,
    name: &Name,
    qtype: RecordType,
    why: &dyn Fn(IpAddr) -> Vec<String>,
) -> Result<String, String> {
    let client = parse_client(client, snap.use_ecs)?;
    let q = answer::Question {
        name,
        qtype,
        qclass: DNSClass::IN,
    };
    let a = answer::answer(snap, &q, &client, true);
    let said = match client.ecs {
        Some(net) => format!("ECS {net} (source {})", client.source),
        None => client.source.to_string(),
    };
    Ok(render(
        snap,
        name,
        qtype,
        &said,
        client.ecs.is_some(),
        false,
        &a,
        why,
    ))
}

/// Explains the answer for a client in a country (ISO 3166 alpha-2), placed at the
/// country's centroid as fedns places clients whose GeoIP record has only a country:
/// what the status page shows for each country of its map.
pub fn explain_country(
    snap: &Snapshot,
    country: &str,
    name: &Name,
    qtype: RecordType,
    why: &dyn Fn(IpAddr) -> Vec<String>,
) -> Result<String, String> {
    let located = country_client(country)?;
    let q = answer::Question {
        name,
        qtype,
        qclass: DNSClass::IN,
    };
    let a = answer::answer_placed(snap, &q, &located, true);
    let said = format!(
        "anywhere in {} (its centroid)",
        country.to_ascii_uppercase()
    );
    let mut out = render(snap, name, qtype, &said, false, true, &a, why);
    out.push_str(&country_scope(snap, &q, located.country));
    Ok(out)
}

/// The ECS scope a client of the country gets: the real answer (not the centroid's) for
/// the first network the GeoIP database places in it, asked with ECS /24 (/56), and the
/// widest block with that answer. A line for the explain of a country.
fn country_scope(snap: &Snapshot, q: &answer::Question<'_>, country: Option<[u8; 2]>) -> String {
    let sample = snap.places.as_deref().and_then(|p| {
        p.classes
            .iter()
            .find(|c| {
                c.located.country == country && matches!(c.located.source, LocationSource::GeoIp(_))
            })
            .map(|c| c.address)
    });
    let cc = country.map_or_else(String::new, |c| String::from_utf8_lossy(&c).into_owned());
    let Some(ip) = sample else {
        return format!(
            "scope:    no network of the GeoIP database is in {cc}, so no ECS scope to show\n"
        );
    };
    let ecs = IpNet::new(ip, if ip.is_ipv4() { 24 } else { 56 })
        .map(|n| n.trunc())
        .ok();
    let client = Client { source: ip, ecs };
    let a = answer::answer(snap, q, &client, true);
    let net = ecs.map_or_else(|| ip.to_string(), |n| n.to_string());
    match a.decisions.iter().find_map(|d| d.widest) {
        Some((block, true)) => format!(
            "scope:    a client in {net} ({cc}) gets ECS scope /{}: {block} is the widest block with its answer\n",
            a.scope
        ),
        Some((block, false)) => format!(
            "scope:    a client in {net} ({cc}) gets ECS scope /{}: the network that placed it ({block}); no wider block is known to share its answer\n",
            a.scope
        ),
        None => format!(
            "scope:    a client in {net} ({cc}) gets ECS scope /{}: the answer does not depend on where it is\n",
            a.scope
        ),
    }
}

/// A client of country `code`, placed at its centroid (and in its continent).
pub fn country_client(code: &str) -> Result<Located, String> {
    let cc = code.to_ascii_uppercase();
    let at = places::country_centroid(&cc)
        .ok_or_else(|| format!("`{code}` is not an ISO 3166 country code"))?;
    let bytes: [u8; 2] = cc
        .as_bytes()
        .try_into()
        .map_err(|_| format!("`{code}` is not an ISO 3166 country code"))?;
    let continent = places::country_continent(&cc).and_then(|c| c.as_bytes().try_into().ok());
    Ok(Located {
        location: Some(at),
        pinned: None,
        network: IpNet::from(IpAddr::from([0, 0, 0, 0])),
        source: LocationSource::GeoIp(Precision::Country(bytes)),
        country: Some(bytes),
        continent,
    })
}

/// The explain text of an answer: the question, the client as `said`, each decision with
/// its candidates, and the records. `placed`: the client was placed by the caller.
#[allow(clippy::too_many_arguments)]
fn render(
    snap: &Snapshot,
    name: &Name,
    qtype: RecordType,
    said: &str,
    ecs: bool,
    placed: bool,
    a: &answer::Answer,
    why: &dyn Fn(IpAddr) -> Vec<String>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "question: {name} IN {qtype}");
    let _ = writeln!(out, "client:   {said}");
    for d in &a.decisions {
        let _ = writeln!(
            out,
            "name:     {} ({}), policy {}",
            d.name, d.level, d.policy
        );
        if let Some(l) = &d.located {
            // A client placed by the caller (a country) has no network of its own.
            let network = if placed {
                String::new()
            } else {
                format!(" (network {})", l.network)
            };
            match l.location {
                Some(loc) => {
                    let _ = writeln!(out, "located:  {loc} by {}{network}", l.source);
                }
                None => {
                    let _ = writeln!(out, "located:  nowhere: {}{network}", l.source);
                }
            }
        }
        if let Some((block, mapped)) = &d.widest {
            let how = if *mapped {
                "the widest block with this answer"
            } else {
                "the network that placed the client; no wider block is known to share this answer"
            };
            let _ = writeln!(out, "scope:    {block}: {how}");
        }
        if let Some(key) = &d.geo_order {
            let _ = writeln!(out, "order:    the failover order for {key}");
        }
        if let Some((spill, share)) = &d.spill {
            let from = &snap.clusters[usize::from(spill.from)].name;
            let _ = writeln!(
                out,
                "spill:    {from} is below its ready endpoints for spillover: it keeps {:.0} % of its clients; this network's share is {:.0} %: {}",
                spill.keep * 100.0,
                share * 100.0,
                if spill.spilled {
                    "sent to the next nearest"
                } else {
                    "kept"
                }
            );
        }
        if a.drains_held {
            let _ = writeln!(
                out,
                "note:     only drained clusters are healthy; the drains are held for this name"
            );
        }
        if d.fail_open {
            let _ = writeln!(
                out,
                "note:     no candidate is healthy; failing open (all treated as healthy)"
            );
        }
        for (i, c) in d.candidates.iter().enumerate() {
            let cl = &snap.clusters[c.cluster as usize];
            let dist = c
                .distance_km
                .map_or_else(|| "-".to_owned(), |d| format!("{d:.0} km"));
            let chosen = if d.chosen.contains(&c.cluster) {
                "  <- chosen"
            } else {
                ""
            };
            // A biased cluster ranks by its biased distance: say both.
            let biased = match c.biased_km {
                Some(b) if c.bias != 0 => format!(" (bias {:+}: ranks as {b:.0} km)", c.bias),
                _ => String::new(),
            };
            let ready = c
                .ready_endpoints
                .map_or_else(String::new, |n| format!("  {n} ready"));
            let _ = writeln!(
                out,
                "  {}. {:<16} {:<9} {:>10}{biased}{ready}  region {}{}{}{}",
                i + 1,
                cl.name,
                if c.healthy { "healthy" } else { "UNHEALTHY" },
                dist,
                cl.region.as_deref().unwrap_or("-"),
                if cl.stale { " (stale)" } else { "" },
                if c.drained { " (drained)" } else { "" },
                chosen
            );
            for &(ip, health) in &c.addresses {
                let _ = writeln!(out, "       address {ip} {}", health_word(health));
                for line in why(ip) {
                    let _ = writeln!(out, "         {line}");
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "rcode:    {}{}",
        a.rcode,
        if ecs {
            format!(", ECS scope /{}", a.scope)
        } else {
            String::new()
        }
    );
    for r in a.answers.iter().chain(&a.authority) {
        let _ = writeln!(out, "  {r}");
    }
    out
}

fn health_word(h: Health) -> &'static str {
    match h {
        Health::Healthy => "healthy",
        Health::Unhealthy => "UNHEALTHY",
    }
}

fn parse_client(s: &str, use_ecs: bool) -> Result<Client, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(Client {
            source: ip,
            ecs: None,
        });
    }
    let net: IpNet = s
        .parse()
        .map_err(|_| format!("the client `{s}` is neither an IP address nor a CIDR"))?;
    if net.trunc() != net {
        return Err(format!(
            "the client `{s}` has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    let source = match net {
        IpNet::V4(_) => IpAddr::from([192, 0, 2, 53]),
        IpNet::V6(_) => "2001:db8::53".parse().expect("literal"),
    };
    Ok(Client {
        source,
        ecs: (use_ecs && net.prefix_len() > 0).then_some(net),
    })
}
