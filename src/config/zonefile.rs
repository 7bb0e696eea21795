//! The static part of the zone: SOA, NS, glue and any static records, from an RFC 1035
//! master file read with hickory's parser.
//!
//! hickory's parser reports no line numbers, so on an error we find the line ourselves: the
//! first prefix of the file (in whole lines) that fails with the same error as the whole file
//! names the bad line. That costs a few re-parses on the error path only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::Parser;

#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("{path}: cannot read zone file: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// The static records of the zone, by owner name.
#[derive(Debug, Clone)]
pub struct ZoneData {
    pub soa: Record,
    /// Every static record, the apex SOA and NS included, grouped by owner name.
    pub records: HashMap<LowerName, Vec<Record>>,
}

impl ZoneData {
    pub fn load(path: &Path, apex: &Name, federation: &str) -> Result<ZoneData, ZoneError> {
        let text = std::fs::read_to_string(path).map_err(|source| ZoneError::Read {
            path: path.to_owned(),
            source,
        })?;
        ZoneData::parse(&text, path, apex, federation)
    }

    /// Parses zone text; `path` names it in errors and resolves `$INCLUDE`. A record under
    /// `<federation>.svc` is an error: fedns answers those names from the clusters, so it
    /// would never be served.
    pub fn parse(
        text: &str,
        path: &Path,
        apex: &Name,
        federation: &str,
    ) -> Result<ZoneData, ZoneError> {
        let parse = |t: &str| {
            Parser::new(t, Some(path.to_owned()), Some(apex.clone()))
                .parse()
                .map_err(|e| e.to_string())
        };
        let invalid = |line: usize, message: String| ZoneError::Invalid {
            path: path.to_owned(),
            line,
            message,
        };
        let (_, sets) = match parse(text) {
            Ok(parsed) => parsed,
            Err(message) => {
                let line = error_line(text, &message, parse);
                let quoted = text.lines().nth(line - 1).unwrap_or_default();
                return Err(invalid(line, in_zone_terms(&message, quoted)));
            }
        };
        let apex_lower = LowerName::new(apex);
        let mut records: HashMap<LowerName, Vec<Record>> = HashMap::new();
        let mut soa = None;
        for (key, set) in sets {
            for record in set.records_without_rrsigs() {
                let owner = LowerName::new(&record.name);
                if !apex_lower.zone_of(&owner) {
                    let line = record_line(text, |t| parse(t).ok(), &record.name);
                    return Err(invalid(
                        line,
                        format!("{} is outside the zone {apex}", record.name),
                    ));
                }
                if is_federated(&record.name, federation) {
                    let line = record_line(text, |t| parse(t).ok(), &record.name);
                    return Err(invalid(
                        line,
                        format!(
                            "{} is a federated name ({federation}.svc): fedns answers it from \
                             the clusters, so a record here would never be served; give the \
                             Service or a static service in the config instead",
                            record.name
                        ),
                    ));
                }
                if key.record_type == RecordType::SOA {
                    if owner != apex_lower {
                        let line = record_line(text, |t| parse(t).ok(), &record.name);
                        return Err(invalid(line, "SOA is allowed only at the apex".into()));
                    }
                    soa = Some(record.clone());
                }
                records.entry(owner).or_default().push(record.clone());
            }
        }
        let Some(soa) = soa else {
            return Err(invalid(1, format!("no SOA record at the apex {apex}")));
        };
        let has_ns = records
            .get(&apex_lower)
            .is_some_and(|rs| rs.iter().any(|r| r.record_type() == RecordType::NS));
        if !has_ns {
            return Err(invalid(1, format!("no NS record at the apex {apex}")));
        }
        Ok(ZoneData { soa, records })
    }

    /// A zone with only a synthesized SOA and NS, for configs without a zone file. The
    /// serial is fixed so that every replica answers alike.
    pub fn synthesized(apex: &Name, negative_ttl: u32) -> ZoneData {
        let ns_name = Name::from_ascii("ns1")
            .and_then(|n| n.append_domain(apex))
            .unwrap_or_else(|_| apex.clone());
        let rname = Name::from_ascii("hostmaster")
            .and_then(|n| n.append_domain(apex))
            .unwrap_or_else(|_| apex.clone());
        let soa = Record::from_rdata(
            apex.clone(),
            3600,
            RData::SOA(SOA::new(
                ns_name.clone(),
                rname,
                1,
                3600,
                600,
                86400,
                negative_ttl,
            )),
        );
        let ns = Record::from_rdata(apex.clone(), 3600, RData::NS(NS(ns_name)));
        let mut records = HashMap::new();
        records.insert(LowerName::new(apex), vec![soa.clone(), ns]);
        ZoneData { soa, records }
    }

    /// The negative-caching TTL (RFC 2308): the smaller of the SOA's TTL and MINIMUM.
    pub fn negative_ttl(&self) -> u32 {
        match &self.soa.data {
            RData::SOA(soa) => soa.minimum.min(self.soa.ttl),
            _ => self.soa.ttl,
        }
    }
}

/// Whether `name` is among the names fedns makes from the clusters: it has the labels
/// `<federation>.svc` in a row.
fn is_federated(name: &Name, federation: &str) -> bool {
    if federation.is_empty() {
        return false;
    }
    let labels: Vec<&[u8]> = name.iter().collect();
    labels.windows(2).any(|w| {
        w[0].eq_ignore_ascii_case(federation.as_bytes()) && w[1].eq_ignore_ascii_case(b"svc")
    })
}

/// The parser's message said in the zone file's terms, with the offending line quoted.
fn in_zone_terms(message: &str, line: &str) -> String {
    let line = line.trim();
    let bare = message
        .trim_start_matches("proto error: ")
        .trim_start_matches("decoding error: ");
    if let Some(t) = bare.strip_prefix("record type string unknown: ") {
        return format!("unknown record type `{t}` in `{line}`");
    }
    if bare.starts_with("network address parse error") {
        let v6 = bare.contains("IPv6");
        let what = if v6 { "IPv6 (AAAA)" } else { "IPv4 (A)" };
        let value = line.split_whitespace().last().unwrap_or_default();
        return format!("`{value}` is not an {what} address, in `{line}`");
    }
    format!("{bare}, in `{line}`")
}

/// The 1-based line at which the file first fails with `message`.
fn error_line<T>(text: &str, message: &str, parse: impl Fn(&str) -> Result<T, String>) -> usize {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut prefix = String::with_capacity(text.len());
    for (i, line) in lines.iter().enumerate() {
        prefix.push_str(line);
        if let Err(m) = parse(&prefix)
            && m == message
        {
            return i + 1;
        }
    }
    lines.len().max(1)
}

/// The 1-based line of the first prefix of the file whose records include `name`.
fn record_line<T>(
    text: &str,
    parse: impl Fn(
        &str,
    ) -> Option<(
        T,
        std::collections::BTreeMap<hickory_proto::rr::RrKey, hickory_proto::rr::RecordSet>,
    )>,
    name: &Name,
) -> usize {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut prefix = String::with_capacity(text.len());
    for (i, line) in lines.iter().enumerate() {
        prefix.push_str(line);
        if let Some((_, sets)) = parse(&prefix)
            && sets.keys().any(|k| *k.name() == LowerName::new(name))
        {
            return i + 1;
        }
    }
    lines.len().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apex() -> Name {
        Name::from_ascii("fed.example.com.").unwrap()
    }

    const GOOD: &str = "$TTL 3600
@   IN SOA ns1 hostmaster (
        2026112301 ; serial
        3600 600 86400 30 )
    IN NS ns1
ns1 IN A 192.0.2.53
www IN CNAME app.default.myfed.svc
";

    #[test]
    fn parses_soa_ns_and_static_records() {
        let z = ZoneData::parse(GOOD, Path::new("z.zone"), &apex(), "myfed").unwrap();
        assert_eq!(z.negative_ttl(), 30);
        let ns1 = LowerName::new(&Name::from_ascii("ns1.fed.example.com.").unwrap());
        assert_eq!(z.records[&ns1].len(), 1);
    }

    #[test]
    fn syntax_error_names_the_line() {
        let bad = GOOD.replace("ns1 IN A 192.0.2.53", "ns1 IN A 192.0.2.999");
        let e = ZoneData::parse(&bad, Path::new("z.zone"), &apex(), "myfed").unwrap_err();
        assert!(e.to_string().starts_with("z.zone:6: "), "{e}");
    }

    #[test]
    fn record_outside_zone_names_the_line() {
        let bad = format!("{GOOD}evil.example.org. IN A 192.0.2.1\n");
        let e = ZoneData::parse(&bad, Path::new("z.zone"), &apex(), "myfed").unwrap_err();
        assert!(e.to_string().starts_with("z.zone:8: "), "{e}");
        assert!(e.to_string().contains("outside the zone"), "{e}");
    }

    #[test]
    fn missing_soa_is_an_error() {
        let e = ZoneData::parse("@ 3600 IN NS ns1\n", Path::new("z.zone"), &apex(), "myfed")
            .unwrap_err();
        assert!(e.to_string().contains("no SOA"), "{e}");
    }

    #[test]
    fn errors_say_what_is_wrong_in_the_files_terms() {
        for (line, want) in [
            (
                "bad IN BOGUS 1.2.3.4",
                "unknown record type `BOGUS` in `bad IN BOGUS 1.2.3.4`",
            ),
            (
                "bad IN A 999.1.2.3",
                "`999.1.2.3` is not an IPv4 (A) address, in `bad IN A 999.1.2.3`",
            ),
            (
                "bad IN AAAA 2001:zz::1",
                "`2001:zz::1` is not an IPv6 (AAAA) address",
            ),
            (
                "app.default.myfed.svc IN A 192.0.2.1",
                "app.default.myfed.svc.fed.example.com. is a federated name (myfed.svc)",
            ),
            (
                "web.default.myfed.svc.eu-west-1 IN A 192.0.2.1",
                "is a federated name (myfed.svc)",
            ),
        ] {
            let text = format!("{GOOD}{line}\n");
            let e = ZoneData::parse(&text, Path::new("z.zone"), &apex(), "myfed").unwrap_err();
            let n = text.lines().count();
            let e = e.to_string();
            assert!(e.starts_with(&format!("z.zone:{n}: ")), "{e}");
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("proto error"), "{e}");
        }
        // Another federation's names are static names like any other.
        let text = format!("{GOOD}app.default.other.svc IN A 192.0.2.1\n");
        assert!(ZoneData::parse(&text, Path::new("z.zone"), &apex(), "myfed").is_ok());
    }
}
