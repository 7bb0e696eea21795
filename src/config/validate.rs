//! The checks serde cannot make: names are valid DNS labels, references point at clusters
//! that exist, every cluster can be located, numbers are in range. One function per
//! section of the file; each error names the file, the line of the field (or of its
//! section, for a nested field in flow style) and the field.

use std::collections::HashSet;
use std::path::Path;

use super::values::{GeoKey, Weights, in_zone, is_label};
use super::{ClusterConfig, Config, ConfigError, PolicyKind, ProbeKind, StaticService};
use crate::geo::places;

/// Checks a parsed config; `text` is the file's text, for the lines of top-level fields.
pub fn validate(config: &Config, text: &str, path: &Path) -> Result<(), ConfigError> {
    let v = Checker {
        path,
        lines: Lines(text),
    };
    v.top_level(config)?;
    let names = v.clusters(config)?;
    v.networks(config, &names)?;
    v.fallback(config, &names)?;
    v.services(config, &names)?;
    v.dnstap(config)?;
    v.dnssec(config)?;
    v.fleet(config, &names)
}

/// The line of a field given as `section` or `section.key` in config text (see
/// `Lines::of`), for errors found after the config itself loaded (a file it names).
pub fn field_line(text: &str, field: &str) -> u64 {
    Lines(text).of(field)
}

/// Where top-level fields stand in the file.
struct Lines<'a>(&'a str);

impl Lines<'_> {
    /// The line of a field given as `section` or `section.key`: the line of `key:` inside
    /// the section's block, else the line of `section:` (which holds the key in flow style
    /// `section: { key: .. }`). 1 when the section is not in the file (a default value).
    fn of(&self, field: &str) -> u64 {
        let (section, key) = field.split_once('.').unwrap_or((field, ""));
        let lines: Vec<&str> = self.0.lines().collect();
        let is_key = |line: &str, k: &str| {
            line.strip_prefix(k)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        };
        let Some(start) = lines
            .iter()
            .position(|l| !l.starts_with([' ', '\t', '#']) && is_key(l, section))
        else {
            return 1;
        };
        if !key.is_empty() {
            for (i, l) in lines.iter().enumerate().skip(start + 1) {
                let trimmed = l.trim_start();
                if !l.starts_with([' ', '\t']) && !trimmed.is_empty() && !trimmed.starts_with('#') {
                    break;
                }
                if is_key(trimmed, key) {
                    return i as u64 + 1;
                }
            }
        }
        start as u64 + 1
    }
}

struct Checker<'a> {
    path: &'a Path,
    lines: Lines<'a>,
}

impl Checker<'_> {
    fn err(&self, line: u64, field: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line,
            field: field.to_owned(),
            message,
        }
    }

    /// An error at a top-level field (or `section.key`), located by the file's text.
    fn at(&self, field: &str, message: impl Into<String>) -> ConfigError {
        self.err(self.lines.of(field), field, message.into())
    }

    /// zone, federation, listen, count, health and rrl.
    fn top_level(&self, c: &Config) -> Result<(), ConfigError> {
        if hickory_proto::rr::Name::from_ascii(&c.zone).is_err() || c.zone.is_empty() {
            return Err(self.at("zone", format!("`{}` is not a domain name", c.zone)));
        }
        if !is_label(&c.federation) {
            return Err(self.at(
                "federation",
                format!("`{}` is not a DNS label", c.federation),
            ));
        }
        if c.listen.dns.is_empty() {
            return Err(self.at("listen.dns", "at least one address is needed"));
        }
        if c.listen.udp_workers.is_some_and(|w| w.get() > 1024) {
            return Err(self.at(
                "listen.udp_workers",
                "at most 1024 (one per CPU is the useful most)",
            ));
        }
        if c.listen.tcp_idle_timeout.is_zero() || c.listen.tcp_io_timeout.is_zero() {
            return Err(self.at(
                "listen",
                "tcp_idle_timeout and tcp_io_timeout must be above 0",
            ));
        }
        if c.clusters.is_empty() {
            return Err(self.at("clusters", "at least one cluster is needed"));
        }
        if c.clusters.len() > usize::from(u16::MAX) {
            // Cluster ids are 16 bits in the snapshot and the answer cache.
            return Err(self.at(
                "clusters",
                format!("{} clusters; at most 65535", c.clusters.len()),
            ));
        }
        if c.count == 0 {
            return Err(self.at("count", "must be at least 1"));
        }
        if c.kubernetes.discovery_interval < std::time::Duration::from_secs(1) {
            return Err(self.at("kubernetes.discovery_interval", "must be at least 1s"));
        }
        let h = &c.health;
        if h.rise == 0 || h.fall == 0 {
            return Err(self.at("health", "rise and fall must be at least 1"));
        }
        if h.timeout.is_zero() || h.interval.is_zero() {
            return Err(self.at("health", "interval and timeout must be above 0"));
        }
        if h.max_concurrent == 0 {
            return Err(self.at("health.max_concurrent", "must be at least 1"));
        }
        if !h.path.starts_with('/') {
            return Err(self.at("health.path", format!("`{}` must start with /", h.path)));
        }
        if let Some(r) = &c.rrl
            && (r.responses_per_second == 0
                || r.table_size == 0
                || r.ipv4_prefix > 32
                || r.ipv6_prefix > 128)
        {
            return Err(self.at(
                "rrl",
                "responses_per_second and table_size must be above 0, prefixes at most 32 and 128",
            ));
        }
        Ok(())
    }

    /// Every cluster and its static services; returns the clusters' names, lowercase.
    fn clusters(&self, config: &Config) -> Result<HashSet<String>, ConfigError> {
        let mut names = HashSet::new();
        for (i, c) in config.clusters.iter().enumerate() {
            let line = c.referenced.line();
            let field = |f: &str| format!("clusters[{i}].{f}");
            let c = &c.value;
            if !is_label(&c.name) {
                return Err(self.err(
                    line,
                    &field("name"),
                    format!("`{}` is not a DNS label", c.name),
                ));
            }
            if !names.insert(c.name.to_ascii_lowercase()) {
                return Err(self.err(
                    line,
                    &field("name"),
                    format!("cluster `{}` is declared twice", c.name),
                ));
            }
            self.cluster(c, line, &field)?;
            for (j, s) in c.services.iter().enumerate() {
                let sfield = |f: &str| format!("clusters[{i}].services[{j}].{f}");
                self.static_service(&s.value, s.referenced.line(), &sfield, &config.zone)?;
            }
        }
        Ok(names)
    }

    /// One cluster's labels, location and Kubernetes access.
    fn cluster(
        &self,
        c: &ClusterConfig,
        line: u64,
        field: &dyn Fn(&str) -> String,
    ) -> Result<(), ConfigError> {
        if !(-99..=99).contains(&c.bias) {
            return Err(self.err(
                line,
                &field("bias"),
                format!("{} is outside -99..99", c.bias),
            ));
        }
        for (label, what) in [(&c.region, "region"), (&c.zone, "zone")] {
            if let Some(l) = label
                && !is_label(l)
            {
                return Err(self.err(line, &field(what), format!("`{l}` is not a DNS label")));
            }
        }
        if c.zone.is_some() && c.region.is_none() {
            return Err(self.err(
                line,
                &field("zone"),
                "a zone needs a region (names are <zone>.<region>.<Z>)".into(),
            ));
        }
        if c.location.is_none() {
            match &c.region {
                None => {
                    return Err(self.err(
                        line,
                        &field("location"),
                        format!("cluster `{}` has neither location nor region", c.name),
                    ));
                }
                Some(r) if places::cloud_region(r).is_none() => {
                    return Err(self.err(
                        line,
                        &field("location"),
                        format!(
                            "region `{r}` is not in the built-in table of cloud regions; \
                             give `location: {{ lat: .., lon: .. }}`"
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        for ns in &c.namespaces {
            if !is_label(ns) {
                return Err(self.err(
                    line,
                    &field("namespaces"),
                    format!("`{ns}` is not a namespace name"),
                ));
            }
        }
        if c.context.is_some() && c.kubeconfig.is_none() {
            return Err(self.err(
                line,
                &field("context"),
                "a context needs a kubeconfig".into(),
            ));
        }
        Ok(())
    }

    /// One static service: its names, addresses, hosts and probe settings.
    fn static_service(
        &self,
        s: &StaticService,
        line: u64,
        field: &dyn Fn(&str) -> String,
        zone: &str,
    ) -> Result<(), ConfigError> {
        for (v, f) in [(&s.namespace, "namespace"), (&s.name, "name")] {
            if !is_label(v) {
                return Err(self.err(line, &field(f), format!("`{v}` is not a DNS label")));
            }
        }
        if s.addresses.is_empty() && s.hostname.is_none() {
            return Err(self.err(
                line,
                &field("addresses"),
                format!(
                    "service {}/{} has neither addresses nor hostname",
                    s.namespace, s.name
                ),
            ));
        }
        if let Some(h) = &s.hostname
            && hickory_proto::rr::Name::from_ascii(h).is_err()
        {
            return Err(self.err(
                line,
                &field("hostname"),
                format!("`{h}` is not a host name"),
            ));
        }
        for h in &s.hosts {
            if !in_zone(h, zone) {
                return Err(self.err(
                    line,
                    &field("hosts"),
                    format!("host `{h}` is not inside zone `{zone}`"),
                ));
            }
        }
        if let Some(p) = s.probe_path.as_deref().filter(|p| !p.starts_with('/')) {
            return Err(self.err(
                line,
                &field("probe_path"),
                format!("`{p}` is not a path: it must start with /"),
            ));
        }
        let probed = s.probe.is_some_and(|k| k != ProbeKind::None)
            || s.probe_path.is_some()
            || s.probe_status.is_some();
        if probed && s.port.is_none() && s.probe_port.is_none() {
            return Err(self.err(
                line,
                &field("probe_port"),
                "probe settings need a port to probe: set `port` or `probe_port`".into(),
            ));
        }
        if s.probe_port == Some(0) {
            return Err(self.err(line, &field("probe_port"), "port 0 cannot be probed".into()));
        }
        if let Some(c) = s.probe_status.filter(|c| !(100..600).contains(c)) {
            return Err(self.err(
                line,
                &field("probe_status"),
                format!("{c} is not an HTTP status code (100 to 599)"),
            ));
        }
        Ok(())
    }

    /// `networks`: one target each, naming a cluster or a region that can be located.
    fn networks(&self, config: &Config, names: &HashSet<String>) -> Result<(), ConfigError> {
        for (i, n) in config.networks.iter().enumerate() {
            let line = n.referenced.line();
            let field = format!("networks[{i}]");
            let n = &n.value;
            let targets = [
                n.cluster.is_some(),
                n.region.is_some(),
                n.location.is_some(),
            ];
            if targets.iter().filter(|t| **t).count() != 1 {
                return Err(self.err(
                    line,
                    &field,
                    "give exactly one of cluster, region, location".into(),
                ));
            }
            if let Some(c) = &n.cluster
                && !names.contains(&c.to_ascii_lowercase())
            {
                return Err(self.err(
                    line,
                    &format!("{field}.cluster"),
                    format!("no cluster `{c}`"),
                ));
            }
            if let Some(r) = &n.region
                && places::cloud_region(r).is_none()
                && !config.clusters.iter().any(|c| {
                    c.value.region.as_deref().map(str::to_ascii_lowercase)
                        == Some(r.to_ascii_lowercase())
                        && c.value.location.is_some()
                })
            {
                return Err(self.err(
                    line,
                    &format!("{field}.region"),
                    format!(
                        "region `{r}` is neither a built-in cloud region nor a located cluster's region"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `fallback`: clusters that exist.
    fn fallback(&self, config: &Config, names: &HashSet<String>) -> Result<(), ConfigError> {
        for (i, f) in config.fallback.iter().enumerate() {
            if !names.contains(&f.value.to_ascii_lowercase()) {
                return Err(self.err(
                    f.referenced.line(),
                    &format!("fallback[{i}]"),
                    format!("no cluster `{}`", f.value),
                ));
            }
        }
        Ok(())
    }

    /// `fleet`: names that can be Kubernetes object names, clusters that exist, a lease
    /// renewed well within its duration.
    fn fleet(&self, config: &Config, names: &HashSet<String>) -> Result<(), ConfigError> {
        let Some(f) = &config.fleet else {
            return Ok(());
        };
        if let Some(n) = &f.name
            && !is_label(n)
        {
            return Err(self.at("fleet.name", format!("`{n}` is not a DNS label")));
        }
        if !is_label(&f.namespace) {
            return Err(self.at(
                "fleet.namespace",
                format!("`{}` is not a namespace name", f.namespace),
            ));
        }
        for c in &f.publish_to {
            if !names.contains(&c.to_ascii_lowercase()) {
                return Err(self.at("fleet.publish_to", format!("no cluster `{c}`")));
            }
        }
        if f.lease_duration.as_secs() < 2 || f.renew.is_zero() || f.renew * 2 > f.lease_duration {
            return Err(self.at(
                "fleet",
                "lease_duration must be at least 2s and renew at most half of it",
            ));
        }
        if config
            .clusters
            .iter()
            .all(|c| c.value.kube_source().is_none())
        {
            return Err(self.at(
                "fleet",
                "a fleet shares votes through member clusters' APIs: at least one cluster must be watched through Kubernetes",
            ));
        }
        Ok(())
    }

    /// `dnstap`: one collector (a socket or a TCP address), at least one message type.
    fn dnstap(&self, c: &Config) -> Result<(), ConfigError> {
        let Some(d) = &c.dnstap else {
            return Ok(());
        };
        match (&d.socket, &d.tcp) {
            (Some(_), None) => {}
            (None, Some(a)) => {
                if a.parse::<std::net::SocketAddr>().is_err() {
                    return Err(self.at(
                        "dnstap.tcp",
                        format!("`{a}` is not an address and port (e.g. 127.0.0.1:6000)"),
                    ));
                }
            }
            _ => {
                return Err(self.at(
                    "dnstap",
                    "give one collector: `socket: /path` or `tcp: host:port`",
                ));
            }
        }
        if d.messages.is_empty() {
            return Err(self.at(
                "dnstap.messages",
                "name at least one of auth_query, auth_response",
            ));
        }
        if d.queue == 0 {
            return Err(self.at("dnstap.queue", "must be at least 1"));
        }
        Ok(())
    }

    /// `dnssec`: at least one key; signatures valid long enough to outlive the records
    /// they cover in caches, and not beyond what an RRSIG's 32-bit times hold.
    fn dnssec(&self, c: &Config) -> Result<(), ConfigError> {
        let Some(d) = &c.dnssec else {
            return Ok(());
        };
        if d.keys.is_empty() {
            return Err(self.at(
                "dnssec.keys",
                "name at least one key file (`fedns dnssec keygen` makes one)",
            ));
        }
        let validity = d.signature_validity.as_secs();
        if !(2 * 3600..=365 * 86_400).contains(&validity) {
            return Err(self.at("dnssec.signature_validity", "must be between 2h and 365d"));
        }
        if d.dnskey_ttl == 0 || u64::from(d.dnskey_ttl) * 2 > validity {
            return Err(self.at(
                "dnssec.dnskey_ttl",
                "must be at least 1 and at most half of `signature_validity`",
            ));
        }
        Ok(())
    }

    /// `services`: a name or a host inside the zone, and policies that can be followed.
    fn services(&self, config: &Config, names: &HashSet<String>) -> Result<(), ConfigError> {
        for (i, s) in config.services.iter().enumerate() {
            let line = s.referenced.line();
            let field = format!("services[{i}]");
            let s = &s.value;
            match (&s.namespace, &s.name, &s.host) {
                (Some(_), Some(_), None) => {}
                (None, None, Some(h)) if in_zone(h, &config.zone) => {}
                (None, None, Some(h)) => {
                    return Err(self.err(
                        line,
                        &format!("{field}.host"),
                        format!("host `{h}` is not inside zone `{}`", config.zone),
                    ));
                }
                _ => {
                    return Err(self.err(
                        line,
                        &field,
                        "give either namespace and name, or host".into(),
                    ));
                }
            }
            if s.count == Some(0) {
                return Err(self.err(line, &format!("{field}.count"), "must be at least 1".into()));
            }
            for c in s.order.iter().chain(s.weights.fixed().map(|(c, _)| c)) {
                if !names.contains(&c.to_ascii_lowercase()) {
                    return Err(self.err(line, &field, format!("no cluster `{c}`")));
                }
            }
            for (key, order) in &s.orders {
                let at = format!("{field}.orders.{key}");
                if let Err(e) = key.parse::<GeoKey>() {
                    return Err(self.err(line, &at, e));
                }
                if let Some(c) = order
                    .iter()
                    .find(|c| !names.contains(&c.to_ascii_lowercase()))
                {
                    return Err(self.err(line, &at, format!("no cluster `{c}`")));
                }
            }
            let policy = s.policy.unwrap_or(config.policy);
            if !s.orders.is_empty() && policy != PolicyKind::Failover {
                return Err(self.err(
                    line,
                    &format!("{field}.orders"),
                    "per-geography orders need `policy: failover`".into(),
                ));
            }
            if s.spill_below == Some(0) {
                return Err(self.err(
                    line,
                    &format!("{field}.spill_below"),
                    "must be at least 1".into(),
                ));
            }
            if s.spill_below.is_some() && policy != PolicyKind::Nearest {
                return Err(self.err(
                    line,
                    &format!("{field}.spill_below"),
                    "capacity spillover applies to `policy: nearest`".into(),
                ));
            }
            let fixed_total: u64 = s.weights.fixed().map(|(_, w)| u64::from(*w)).sum();
            if s.policy == Some(PolicyKind::Weighted)
                && s.weights != Weights::ReadyEndpoints
                && fixed_total == 0
            {
                return Err(self.err(
                    line,
                    &format!("{field}.weights"),
                    "policy weighted needs at least one cluster with a weight above 0, or `weights: ready-endpoints`".into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_clusters_is_a_config_error() {
        // A file this large is refused by the YAML parser's node budget first; the check
        // keeps a config built otherwise from reaching the snapshot builder.
        let text = "zone: fed.example.com\nfederation: myfed\nclusters:\n  - { name: c, region: us-east-1 }\n";
        let path = Path::new("test.yaml");
        let mut c = Config::parse(text, path).unwrap();
        let one = c.clusters[0].clone();
        c.clusters = vec![one; usize::from(u16::MAX) + 1];
        let e = validate(&c, text, path).unwrap_err().to_string();
        assert!(
            e.starts_with("test.yaml:3: clusters: 65536 clusters; at most 65535"),
            "{e}"
        );
    }

    #[test]
    fn lines_of_top_level_fields() {
        let text = "# a comment\nzone: fed.example.com\nhealth:\n  probe: tcp\n  path: x\ncount: 0\nrrl: { table_size: 0 }\nclusters: []\n";
        let l = Lines(text);
        assert_eq!(l.of("zone"), 2);
        assert_eq!(l.of("health"), 3);
        assert_eq!(l.of("health.path"), 5);
        assert_eq!(l.of("health.rise"), 3);
        assert_eq!(l.of("count"), 6);
        assert_eq!(l.of("rrl"), 7);
        assert_eq!(l.of("clusters"), 8);
        assert_eq!(l.of("listen"), 1);
    }
}
