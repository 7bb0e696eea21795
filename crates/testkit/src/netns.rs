//! Real network partitions: Linux network namespaces made with `ip netns`, joined by veth
//! pairs to a bridge in a hub namespace, and nftables rules that cut one path.
//!
//! A [`Net`] is one private network, 10.200.0.0/24 on a bridge in its own hub namespace
//! (10.200.0.1); each [`Host`] is a namespace with one veth leg on that bridge. Nothing
//! touches the namespace the test runs in: every address, route and rule is inside
//! namespaces the [`Net`] made, and dropping it deletes them. Two tests may each have a
//! [`Net`] at once; their namespaces are apart, so they may use the same addresses.
//!
//! Code runs inside a host with [`Host::enter`] (a thread that joins the namespace with
//! `setns(2)`; a socket made there stays in that namespace wherever it is used later) and
//! programs with [`Host::command`] (`ip netns exec`). This needs root (CAP_SYS_ADMIN and
//! CAP_NET_ADMIN), `ip` (iproute2) and `nft` (nftables); [`Net::new`] says which is
//! missing instead of letting a test pass without them.

use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The hub's address on the bridge; hosts get 10.200.0.2 and up.
pub const HUB: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const PREFIX: u8 = 24;
/// Namespace names start with this, then the test process's pid.
const NAME_PREFIX: &str = "fedns-t";

/// One private network: a hub namespace with a bridge, and the hosts on it.
pub struct Net {
    hub: Host,
    tag: String,
    /// Every namespace made, the hub first; deleted on drop.
    made: Vec<String>,
    next_ip: u8,
}

/// One network namespace with an address on its [`Net`]'s bridge.
#[derive(Clone, Debug)]
pub struct Host {
    /// The namespace's name (`ip netns list`).
    pub ns: String,
    /// Its first address on the bridge.
    pub ip: Ipv4Addr,
}

/// Runs `ip ARGS`; the error names the command and what it printed.
fn ip(args: &[&str]) -> Result<(), String> {
    run(Command::new("ip").args(args), None)
}

fn run(cmd: &mut Command, stdin: Option<&str>) -> Result<(), String> {
    let shown = format!("{cmd:?}").replace('"', "");
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{shown}: {e} (is it installed?)"))?;
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(text.as_bytes())
            .map_err(|e| format!("{shown}: writing its input: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{shown}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Net {
    /// Makes the hub namespace and its bridge. `tag` names the namespaces
    /// (`fedns-t<pid>-<n>-<tag>-...`). Namespaces left by test processes that are gone
    /// are deleted first.
    pub fn new(tag: &str) -> Result<Net, String> {
        static N: AtomicUsize = AtomicUsize::new(0);
        sweep_stale();
        let tag = format!(
            "{NAME_PREFIX}{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let hub = Host {
            ns: format!("{tag}-hub"),
            ip: HUB,
        };
        ip(&["netns", "add", &hub.ns]).map_err(|e| {
            format!(
                "cannot make a network namespace, which the partition tests need \
                 (they run as root, with iproute2 and nftables installed; .ci/run does so): {e}"
            )
        })?;
        let net = Net {
            hub: hub.clone(),
            tag,
            made: vec![hub.ns.clone()],
            next_ip: 2,
        };
        let cidr = format!("{HUB}/{PREFIX}");
        for args in [
            &["link", "set", "lo", "up"][..],
            &["link", "add", "br0", "type", "bridge"],
            &["link", "set", "br0", "up"],
            &["addr", "add", &cidr, "dev", "br0"],
        ] {
            hub.ip(args)?;
        }
        // nft must work here too, not only `ip`: say so now rather than at the first cut.
        hub.nft("table inet fedns_probe {}\ndelete table inet fedns_probe\n")
            .map_err(|e| format!("nftables does not work in a test namespace: {e}"))?;
        Ok(net)
    }

    /// The hub namespace (10.200.0.1): where the tests' API servers and clients live.
    pub fn hub(&self) -> &Host {
        &self.hub
    }

    /// A new namespace named `<tag>-<name>` on the bridge, with the next free address, or
    /// `ip` when given.
    pub fn host(&mut self, name: &str, ip: Option<Ipv4Addr>) -> Result<Host, String> {
        let ip = match ip {
            Some(ip) => ip,
            None => {
                let ip = Ipv4Addr::new(10, 200, 0, self.next_ip);
                self.next_ip += 1;
                ip
            }
        };
        let host = Host {
            ns: format!("{}-{name}", self.tag),
            ip,
        };
        self::ip(&["netns", "add", &host.ns])?;
        self.made.push(host.ns.clone());
        // The hub's end of the veth pair is named after the host's position; the host's end
        // is eth0 in its own namespace.
        let leg = format!("v{}", self.made.len());
        self.hub.ip(&[
            "link", "add", &leg, "type", "veth", "peer", "name", "eth0", "netns", &host.ns,
        ])?;
        self.hub.ip(&["link", "set", &leg, "master", "br0"])?;
        self.hub.ip(&["link", "set", &leg, "up"])?;
        let cidr = format!("{ip}/{PREFIX}");
        for args in [
            &["link", "set", "lo", "up"][..],
            &["link", "set", "eth0", "up"],
            &["addr", "add", &cidr, "dev", "eth0"],
        ] {
            host.ip(args)?;
        }
        Ok(host)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.made.iter().rev() {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// Deletes the namespaces of test processes that are no longer running (a test killed
/// before its [`Net`] was dropped).
fn sweep_stale() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(NAME_PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

impl Host {
    /// Runs `ip -n NS ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-n", &self.ns];
        all.extend_from_slice(args);
        ip(&all).map_err(|e| format!("in namespace {}: {e}", self.ns))
    }

    /// Adds one more address on the host's leg of the bridge.
    pub fn add_ip(&self, addr: Ipv4Addr) -> Result<(), String> {
        self.ip(&["addr", "add", &format!("{addr}/{PREFIX}"), "dev", "eth0"])
    }

    /// `program` run inside the namespace (`ip netns exec NS program`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns]).arg(program);
        cmd
    }

    /// Loads an nftables ruleset (`nft -f -`) inside the namespace.
    pub fn nft(&self, ruleset: &str) -> Result<(), String> {
        run(self.command("nft").args(["-f", "-"]), Some(ruleset))
            .map_err(|e| format!("in namespace {}: {e}\n{ruleset}", self.ns))
    }

    /// Cuts this host's path to `to` (TCP to `port` only, when given): packets it sends
    /// there are dropped, so connections time out as behind a broken link. Every cut of
    /// one host is undone by [`Host::heal`].
    pub fn cut(&self, to: IpAddr, port: Option<u16>) -> Result<(), String> {
        let family = if to.is_ipv4() { "ip" } else { "ip6" };
        let port = port.map(|p| format!(" tcp dport {p}")).unwrap_or_default();
        self.nft(&format!(
            "table inet fedns_cut {{\n  chain out {{\n    type filter hook output priority 0;\n    \
             {family} daddr {to}{port} drop\n  }}\n}}\n"
        ))
    }

    /// Undoes every [`Host::cut`] of this host.
    pub fn heal(&self) -> Result<(), String> {
        self.nft("delete table inet fedns_cut\n")
    }

    /// Runs `f` on a thread inside this namespace and returns what it returns (a panic in
    /// `f` is this caller's panic). Sockets `f` makes belong to the namespace.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|scope| {
            let joined = scope.spawn(|| {
                let path = format!("/run/netns/{}", self.ns);
                let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                // SAFETY: setns on a namespace file we hold open; it changes only this
                // thread's network namespace, and this thread ends when `f` returns.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(
                    rc,
                    0,
                    "setns into {}: {}",
                    self.ns,
                    std::io::Error::last_os_error()
                );
                f()
            });
            joined
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}
