//! The `fedns` command: `serve`, `check`, `explain`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hickory_proto::rr::{Name, RecordType};
use tracing::{error, info};

use fedns::app::{self, LoadedConfig};
use fedns::store::Store;

/// EX_USAGE from sysexits.h: the config (or the command line) is wrong.
const EX_USAGE: u8 = 64;
/// EX_UNAVAILABLE: a port could not be bound, or the server failed.
const EX_UNAVAILABLE: u8 = 69;

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
    },
    /// Check a config, its zone file and GeoIP database, then exit.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
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
        } => {
            init_logging(log_format, log_level.as_deref());
            let options = app::Options {
                listen,
                admin,
                query_log,
                udp_workers,
            };
            serve(config, options, drain)
        }
        Command::Check { config } => match load(Some(&config)) {
            Ok(loaded) => match loaded.snapshot(&Store::default(), &Default::default(), None) {
                Ok(snap) => {
                    println!(
                        "{}: ok: zone {}, {} clusters ({} watched through Kubernetes), {} static names, GeoIP {}",
                        config.display(),
                        snap.apex,
                        snap.clusters.len(),
                        loaded.clusters.len(),
                        snap.statics.len(),
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
            match fedns::ops::explain::explain(&snap, &client, &name, qtype) {
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fedns: cannot start the runtime: {e}");
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };
    runtime.block_on(async move {
        let drain = drain.unwrap_or(loaded.config.drain);
        // Handle SIGTERM from before the first "listening" line: a signal that arrives
        // between binding and installing the handler would otherwise kill the process
        // without a drain.
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
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
        wait_for_signal(term).await;
        info!(?drain, "shutting down: /readyz now 503, draining");
        running.shutdown(drain).await;
        info!("stopped");
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal(mut term: Option<tokio::signal::unix::Signal>) {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}
