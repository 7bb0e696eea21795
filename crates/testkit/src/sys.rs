//! The machine around a test or bench: settings from the environment, scratch directories,
//! and readers of `/proc` (memory, CPU time, load, UDP drops, CPU waits).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A whole-number setting from the environment, else `default`; a value that is not a
/// whole number stops the run with its name.
pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a whole number")),
        Err(_) => default,
    }
}

/// Cargo's scratch directory for tests and benches (`CARGO_TARGET_TMPDIR`, i.e.
/// `<target dir>/tmp`), found from the running executable (`<target dir>/<profile>/deps/`);
/// the system's temporary directory when the executable is elsewhere.
pub fn scratch_root() -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| {
                let deps = exe.parent()?;
                (deps.file_name()? == "deps").then(|| Some(deps.parent()?.parent()?.join("tmp")))?
            })
            .unwrap_or_else(std::env::temp_dir)
    })
    .clone()
}

/// A fresh, empty directory `<tag>-<pid>-<n>` under [`scratch_root`], a new one on every
/// call.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = scratch_root().join(format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    fresh(&dir);
    dir
}

/// A fresh, empty directory `fedns-<tag>-<pid>` under [`scratch_root`].
pub fn work_dir(tag: &str) -> PathBuf {
    let dir = scratch_root().join(format!("fedns-{tag}-{}", std::process::id()));
    fresh(&dir);
    dir
}

fn fresh(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("create a scratch directory");
}

/// The 1-minute load average, to say how busy the machine was ("?" when unknown).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// The number of a `Field:  value [kB]` line of `/proc/<pid>/status` (`pid` may be
/// "self"), such as `VmRSS` or `VmHWM` (KiB) or `Threads`; 0 when unknown.
pub fn status_field(pid: &str, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: &str) -> u64 {
    status_field(pid, "VmRSS")
}

/// Peak resident memory of a process, in KiB.
pub fn hwm_kib(pid: &str) -> u64 {
    status_field(pid, "VmHWM")
}

/// User and system CPU time of a process so far (every thread, live or gone), in seconds:
/// fields 14 and 15 of `/proc/<pid>/stat`.
pub fn cpu_times(pid: &str) -> Result<(f64, f64), String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    let rest = stat.rsplit_once(')').ok_or("bad /proc stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14, stime 15.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let tick = clock_ticks();
    Ok((ticks(11) as f64 / tick, ticks(12) as f64 / tick))
}

/// User plus system CPU time of a process, in seconds (0 when unknown).
pub fn cpu_secs(pid: &str) -> f64 {
    cpu_times(pid).map_or(0.0, |(user, system)| user + system)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux in practice).
pub fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Datagrams the kernel dropped at the UDP socket(s) on 127.0.0.1:`port` because the
/// receive buffer was full (the `drops` column of /proc/net/udp).
pub fn socket_drops(port: u16) -> u64 {
    let local = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/udp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|l| l.split_whitespace().nth(1) == Some(local.as_str()))
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum()
}

/// Datagrams dropped at any UDP socket of the machine because its receive buffer was full
/// (`Udp: RcvbufErrors` of /proc/net/snmp).
pub fn rcvbuf_errors() -> u64 {
    let text = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let udp: Vec<&str> = text.lines().filter(|l| l.starts_with("Udp:")).collect();
    let (Some(names), Some(values)) = (udp.first(), udp.get(1)) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// How long the threads of a process have waited for a CPU while runnable (the second field
/// of /proc/PID/task/*/schedstat; threads that have exited are not counted).
pub fn run_delay(pid: u32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| {
            let text = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            text.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum();
    Duration::from_nanos(ns)
}

/// The machine's CPU pressure: total time some runnable task waited for a CPU (PSI,
/// /proc/pressure/cpu, "some"), if the kernel has it.
pub fn cpu_pressure() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let some = text.lines().find(|l| l.starts_with("some"))?;
    let us = some
        .split_whitespace()
        .find_map(|f| f.strip_prefix("total="))?;
    Some(Duration::from_micros(us.parse().ok()?))
}

/// The arguments of a bench binary that are not options: the parts asked for by
/// `cargo bench --bench NAME -- PART...`. None when it runs without `--bench`, as
/// `cargo test --all-targets` runs bench binaries.
pub fn bench_filters() -> Option<Vec<String>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.iter()
        .any(|a| a == "--bench")
        .then(|| args.into_iter().filter(|a| !a.starts_with("--")).collect())
}

/// Whether `part` is asked for: no filters, or one of them is in its name.
pub fn wanted(filters: &[String], part: &str) -> bool {
    filters.is_empty() || filters.iter().any(|f| part.contains(f.as_str()))
}

/// A program the tests need, as a path to run it by: found on `PATH` or in `/usr/sbin`
/// (where Debian puts daemons such as nsd and unbound), or a failure that says which Debian
/// package has it. Tests never skip for a missing tool: `.ci/run` installs them.
pub fn tool(name: &str, package: &str) -> String {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    let sbin = Path::new("/usr/sbin").join(name);
    if !on_path && sbin.is_file() {
        return sbin.display().to_string();
    }
    assert!(
        on_path,
        "{name} is missing: install Debian's {package} (.ci/run does: apt-get install {package})"
    );
    name.to_owned()
}

/// Runs `cmd` to its end; its standard output, or a failure with its status and output.
pub fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("UTF-8 output")
}
