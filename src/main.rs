//! The `fedns` command: `serve`, `check`, `explain`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hickory_proto::rr::{Name, RecordType};
use tracing::{error, info};

use fedns::app::{self, LoadedConfig};
use fedns::config::DnstapConfig;
use fedns::fleet::overrides::{Action, Override};
use fedns::store::Store;

/// EX_USAGE from sysexits.h: the config (or the command line) is wrong.
const EX_USAGE: u8 = 64;
/// EX_UNAVAILABLE: a port could not be bound, or the server failed.
const EX_UNAVAILABLE: u8 = 69;
/// EX_CANTCREAT: an output file could not be written.
const EX_CANTCREAT: u8 = 73;
/// A second SIGINT or SIGTERM cut the drain short (128 + SIGINT, as shells report Ctrl-C).
const EX_SIGNALLED: i32 = 130;

#[derive(Parser)]
#[command(
    name = "fedns",
    version,
    about = "Geo-aware, multi-cluster, authoritative DNS for a Kubernetes federation zone"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve DNS. With no --config, serves the embedded demo federation on 127.0.0.1:5353.
    Serve {
        /// The config file (README.md, "Configuration"); the embedded demo when absent.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen here instead of the config's `listen.dns` (repeatable; port 0 picks one).
        #[arg(long)]
        listen: Vec<SocketAddr>,
        /// Serve the admin HTTP endpoints here instead of the config's `listen.admin`.
        #[arg(long)]
        admin: Option<SocketAddr>,
        /// How long to keep answering after SIGTERM while /readyz says 503 (default: the
        /// config's `drain`, 5s).
        #[arg(long, value_parser = parse_duration)]
        drain: Option<std::time::Duration>,
        /// Log format.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
        /// Log filter, e.g. `info` or `debug,hickory_server=warn` (else FEDNS_LOG, else info).
        #[arg(long)]
        log_level: Option<String>,
        /// Log every query at info (target fedns::query).
        #[arg(long)]
        query_log: bool,
        /// UDP worker threads per DNS address instead of the config's `listen.udp_workers`
        /// (default: the CPUs fedns may run on).
        #[arg(long)]
        udp_workers: Option<std::num::NonZeroUsize>,
        /// dnstap to this collector instead of the config's `dnstap`, through reloads too:
        /// `unix:/path/to.sock` or `tcp:127.0.0.1:6000` (both message types).
        #[arg(long, value_parser = parse_dnstap)]
        dnstap: Option<DnstapConfig>,
    },
    /// Check a config, its zone file and GeoIP database, then exit.
    Check {
        /// The config file to check.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Drain a cluster (or one service of it) out of every replica's answers, until the
    /// drain expires. Written to `fedns-overrides` in every member cluster it can reach.
    Drain(OverrideArgs),
    /// Keep a cluster (or one service of it) in the answers whatever its probes say.
    ForceUp(OverrideArgs),
    /// Remove a drain or force-up of a cluster (or of one service of it).
    Undrain {
        /// The config file `serve` runs with: it names the member clusters to write to.
        #[arg(long, short)]
        config: PathBuf,
        cluster: String,
        /// One service, `namespace/name`, instead of the whole cluster.
        #[arg(long)]
        service: Option<String>,
    },
    /// DNSSEC keys: make one, or print the DS records to give the parent zone.
    #[command(subcommand)]
    Dnssec(DnssecCommand),
    /// Show where a client is, each candidate cluster, and the answer it would get.
    Explain {
        /// Config file; the embedded demo when absent.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The client: an address (packet source) or a CIDR (sent as EDNS Client Subnet).
        #[arg(long)]
        client: String,
        name: String,
        #[arg(default_value = "A")]
        qtype: String,
    },
}

#[derive(Subcommand)]
enum DnssecCommand {
    /// Write a new key for the zone as `K<zone>.+<alg>+<tag>.key` and `.private` (the
    /// files BIND's dnssec-keygen and Knot's keymgr write), and print the `.key` file's path.
    Keygen {
        /// The zone, e.g. fed.example.com.
        #[arg(long)]
        zone: String,
        /// 13 (ecdsap256sha256, the default) or 15 (ed25519).
        #[arg(long, default_value = "13")]
        algorithm: String,
        /// A zone-signing key (flags 256) instead of a key-signing or combined one (257).
        #[arg(long)]
        zsk: bool,
        /// Where to write the files.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Print the DS record (SHA-256) of each key-signing or combined key given, for the
    /// parent zone.
    Ds {
        /// Key files (`.key` or `.private`; the other half must be beside it).
        #[arg(required = true)]
        keys: Vec<PathBuf>,
    },
}

fn dnssec_command(command: DnssecCommand) -> ExitCode {
    use fedns::dnssec::{Algorithm, Key};
    let usage = |m: String| {
        eprintln!("fedns dnssec: {m}");
        ExitCode::from(EX_USAGE)
    };
    match command {
        DnssecCommand::Keygen {
            zone,
            algorithm,
            zsk,
            dir,
        } => {
            let Some(algorithm) = Algorithm::parse(&algorithm) else {
                return usage(format!(
                    "--algorithm {algorithm}: expected 13 (ecdsap256sha256) or 15 (ed25519)"
                ));
            };
            if zone.trim_end_matches('.').is_empty()
                || hickory_proto::rr::Name::from_ascii(&zone).is_err()
            {
                return usage(format!("--zone {zone}: not a domain name"));
            }
            let key = Key::generate(&zone, algorithm, !zsk, fedns::civil::unix_now());
            match key.write(&dir) {
                Ok(path) => {
                    println!("{}", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("fedns: cannot write the key into {}: {e}", dir.display());
                    ExitCode::from(EX_CANTCREAT)
                }
            }
        }
        DnssecCommand::Ds { keys } => {
            let mut status = ExitCode::SUCCESS;
            for path in keys {
                match Key::read(&path) {
                    Ok(k) if k.is_ksk() => println!("{}", k.ds()),
                    Ok(_) => eprintln!(
                        "fedns: {}: a zone-signing key (flags 256): the parent holds the DS of the key-signing key",
                        path.display()
                    ),
                    Err(e) => {
                        eprintln!("fedns: {e}");
                        status = ExitCode::from(EX_USAGE);
                    }
                }
            }
            status
        }
    }
}

#[derive(clap::Args)]
struct OverrideArgs {
    /// The config file `serve` runs with: it names the member clusters to write to.
    #[arg(long, short)]
    config: PathBuf,
    cluster: String,
    /// One service, `namespace/name`, instead of the whole cluster.
    #[arg(long)]
    service: Option<String>,
    /// How long it lasts (every override expires), e.g. `30m`, `2h`.
    #[arg(long = "for", value_parser = parse_duration)]
    duration: std::time::Duration,
    /// Why: shown in /debug/records and the logs of every replica.
    #[arg(long)]
    reason: String,
}

/// Writes (or with `action` None, removes) one override in every member cluster; returns
/// EX_UNAVAILABLE when no cluster could be written, success when at least one was (the
/// replicas read every cluster's copy), and names the clusters it could not write.
fn override_command(
    config: &PathBuf,
    cluster: &str,
    service: Option<&str>,
    action: Option<(Action, std::time::Duration, String)>,
) -> ExitCode {
    let loaded = match load(Some(config)) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let usage = |m: String| {
        eprintln!("fedns: {m}");
        ExitCode::from(EX_USAGE)
    };
    if !loaded
        .config
        .clusters
        .iter()
        .any(|c| c.value.name.eq_ignore_ascii_case(cluster))
    {
        return usage(format!("{}: no cluster `{cluster}`", config.display()));
    }
    let service = match service.map(|s| s.split_once('/')) {
        None => None,
        Some(Some((ns, name))) if fedns::config::is_label(ns) && fedns::config::is_label(name) => {
            Some((ns, name))
        }
        Some(_) => return usage("--service must be namespace/name".into()),
    };
    if loaded.clusters.is_empty() {
        return usage(format!(
            "{}: no cluster is reached through Kubernetes; overrides live in member clusters",
            config.display()
        ));
    }
    let value = match action {
        None => None,
        Some((_, d, _)) if d.is_zero() => return usage("--for must be above 0".into()),
        Some((_, _, r)) if r.trim().is_empty() => return usage("--reason must say why".into()),
        Some((action, d, reason)) => {
            let now = fedns::fleet::overrides::secs(std::time::SystemTime::now());
            let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
            let host = fedns::fleet::replica_name(None);
            Some(Override {
                action,
                until: now + d.as_secs().max(1),
                at: now,
                reason,
                by: format!("{user}@{host}"),
            })
        }
    };
    let namespace = loaded
        .config
        .fleet
        .as_ref()
        .map_or("fedns".to_owned(), |f| f.namespace.clone());
    let key = fedns::fleet::overrides::key(cluster, service);
    let runtime = match runtime(tokio::runtime::Builder::new_current_thread()) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let results = runtime.block_on(async {
        let mut out = Vec::new();
        for access in &loaded.clusters {
            let r = fedns::sources::kubernetes::fleet::write_override(
                access,
                &loaded.config.kubernetes,
                &namespace,
                &key,
                value.as_ref(),
            )
            .await;
            out.push((access.cluster.clone(), r));
        }
        out
    });
    let written = results.iter().filter(|(_, r)| r.is_ok()).count();
    for (c, r) in &results {
        match r {
            Ok(()) => println!("{c}: written"),
            Err(e) => eprintln!("{c}: NOT written: {e}"),
        }
    }
    let what = match &value {
        Some(o) => format!("{:?} `{key}` until {}", o.action, o.until),
        None => format!("removed `{key}`"),
    };
    println!("{what}: {written} of {} clusters", results.len());
    if written == 0 {
        ExitCode::from(EX_UNAVAILABLE)
    } else {
        ExitCode::SUCCESS
    }
}

/// A tokio runtime, or EX_UNAVAILABLE with the reason said.
fn runtime(mut b: tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, ExitCode> {
    b.enable_all().build().map_err(|e| {
        eprintln!("fedns: cannot start the runtime: {e}");
        ExitCode::from(EX_UNAVAILABLE)
    })
}

fn load(config: Option<&PathBuf>) -> Result<LoadedConfig, ExitCode> {
    let loaded = match config {
        Some(path) => LoadedConfig::from_file(path),
        None => LoadedConfig::demo(),
    };
    loaded.map_err(|e| {
        eprintln!("fedns: {e}");
        ExitCode::from(EX_USAGE)
    })
}

/// `--dnstap unix:/path` or `--dnstap tcp:host:port`.
fn parse_dnstap(s: &str) -> Result<DnstapConfig, String> {
    let (socket, tcp) = if let Some(p) = s.strip_prefix("unix:") {
        (Some(PathBuf::from(p)), None)
    } else if let Some(a) = s.strip_prefix("tcp:") {
        a.parse::<SocketAddr>()
            .map_err(|_| format!("`{a}` is not an address and port"))?;
        (None, Some(a.to_owned()))
    } else {
        return Err("expected unix:/path/to.sock or tcp:host:port".into());
    };
    Ok(DnstapConfig::to(socket, tcp))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            listen,
            admin,
            drain,
            log_format,
            log_level,
            query_log,
            udp_workers,
            dnstap,
        } => {
            init_logging(log_format, log_level.as_deref());
            let options = app::Options {
                listen,
                admin,
                query_log,
                udp_workers,
                dnstap,
            };
            serve(config, options, drain)
        }
        Command::Drain(a) => override_command(
            &a.config,
            &a.cluster,
            a.service.as_deref(),
            Some((Action::Drain, a.duration, a.reason)),
        ),
        Command::ForceUp(a) => override_command(
            &a.config,
            &a.cluster,
            a.service.as_deref(),
            Some((Action::ForceUp, a.duration, a.reason)),
        ),
        Command::Undrain {
            config,
            cluster,
            service,
        } => override_command(&config, &cluster, service.as_deref(), None),
        Command::Check { config } => match load(Some(&config)) {
            Ok(loaded) => match loaded.snapshot(&Store::default(), &Default::default(), None) {
                Ok(snap) => {
                    let signed = loaded.dnssec.as_ref().map_or("unsigned".to_owned(), |z| {
                        let keys: Vec<String> = z
                            .keys()
                            .map(|(k, state)| {
                                let role = if k.key.is_ksk() { "KSK" } else { "ZSK" };
                                format!("{role} {} {}", k.key.tag(), state.as_str())
                            })
                            .collect();
                        format!("signed ({})", keys.join(", "))
                    });
                    println!(
                        "{}: ok: zone {}, {}, {} watched through Kubernetes, {}, GeoIP {}, {signed}",
                        config.display(),
                        snap.apex,
                        count(snap.clusters.len(), "cluster"),
                        loaded.clusters.len(),
                        count(snap.statics.len(), "static name"),
                        loaded.geoip.as_ref().map_or("none".to_owned(), |g| format!(
                            "{} ({})",
                            g.path().display(),
                            g.database_type()
                        ))
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("fedns: {}: {e}", config.display());
                    ExitCode::from(EX_USAGE)
                }
            },
            Err(code) => code,
        },
        Command::Dnssec(command) => dnssec_command(command),
        Command::Explain {
            config,
            client,
            name,
            qtype,
        } => {
            let loaded = match load(config.as_ref()) {
                Ok(l) => l,
                Err(code) => return code,
            };
            let store =
                Store::with_static(fedns::sources::static_services::endpoints(&loaded.config));
            let (Ok(name), Ok(qtype)) = (
                Name::from_ascii(&name),
                qtype.to_ascii_uppercase().parse::<RecordType>(),
            ) else {
                eprintln!("fedns: `{name} {qtype}` is not a name and record type");
                return ExitCode::from(EX_USAGE);
            };
            let snap = match loaded.snapshot(&store, &Default::default(), None) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("fedns: {e}");
                    return ExitCode::from(EX_USAGE);
                }
            };
            match fedns::ops::explain::explain(&snap, &client, &name, qtype, &|_| Vec::new()) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("fedns: {e}");
                    ExitCode::from(EX_USAGE)
                }
            }
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    fedns::config::parse_duration(s)
        .ok_or_else(|| format!("`{s}` is not a duration (e.g. 500ms, 5s)"))
}

fn init_logging(format: LogFormat, level: Option<&str>) {
    // hickory-server logs every request at info; that is our query log's job.
    let default = "info,hickory_server=warn";
    let filter = match level {
        Some(l) => tracing_subscriber::EnvFilter::new(l),
        None => tracing_subscriber::EnvFilter::try_from_env("FEDNS_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
    };
    // Colours only for a terminal: a log file or journal gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn serve(
    config: Option<PathBuf>,
    options: app::Options,
    drain: Option<std::time::Duration>,
) -> ExitCode {
    let demo = config.is_none();
    // Load and check everything before binding any port.
    let loaded = match load(config.as_ref()) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let runtime = match runtime(tokio::runtime::Builder::new_multi_thread()) {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let drain = drain.unwrap_or(loaded.config.drain);
        // Handle SIGTERM and SIGINT from before the first "listening" line: a signal that
        // arrives between binding and installing the handler would otherwise kill the
        // process without a drain.
        let mut signals = Signals::new();
        let running = match app::start(loaded, &options).await {
            Ok(r) => r,
            Err(e) => {
                error!("{e}");
                return ExitCode::from(EX_UNAVAILABLE);
            }
        };
        for addr in running.dns_addrs() {
            info!(%addr, "serving DNS (UDP and TCP)");
            // A machine-readable line for scripts and tests that use port 0.
            println!("listening dns {addr}");
        }
        if let Some(addr) = running.admin_addr {
            info!(%addr, "serving admin HTTP (/metrics /healthz /readyz /debug/records /debug/explain)");
            println!("listening admin {addr}");
        }
        if demo {
            println!("\nfedns demo federation: zone fed.example.com, clusters us-east, eu-west, ap-northeast, sa-east, ap-southeast.\nTry:");
            if let Some(addr) = running.dns_addrs().first() {
                for line in fedns::demo::dig_examples(addr) {
                    println!("  {line}");
                }
            }
            println!();
        }
        signals.next().await;
        info!(?drain, "shutting down: /readyz now 503, draining (a second SIGINT or SIGTERM stops at once)");
        tokio::select! {
            () = running.shutdown(drain) => {}
            () = signals.next() => {
                info!("second signal: stopping now, without the rest of the drain");
                std::process::exit(EX_SIGNALLED);
            }
        }
        info!("stopped");
        ExitCode::SUCCESS
    })
}

/// SIGTERM and SIGINT (Ctrl-C), handled from when this is made.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        Signals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// The next SIGTERM or SIGINT.
    async fn next(&mut self) {
        async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = one(&mut self.term) => {}
            () = one(&mut self.int) => {}
        }
    }
}

/// "1 cluster", "2 clusters".
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
