//! Child processes, `fedns serve` above all: its stdout read line by line on a thread (with
//! the time each line came), the `listening dns ADDR` / `listening admin ADDR` lines it
//! prints once it serves, and a kill when the handle is dropped (a failed test leaves no
//! server behind).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// A child process whose stdout is read line by line; killed when dropped.
pub struct Process {
    child: Child,
    lines: Receiver<(Instant, String)>,
}

/// `bin serve` with an admin listener on an ephemeral port, ready for more arguments
/// (stdout is taken by [`Process::spawn`]; stdin and stderr are the caller's to set).
pub fn serve_command(bin: impl AsRef<Path>) -> Command {
    let mut cmd = Command::new(bin.as_ref());
    cmd.args(["serve", "--admin", "127.0.0.1:0"]);
    cmd
}

impl Process {
    /// Starts `cmd` with its stdout piped to a thread that hands each line on.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Process> {
        let mut child = cmd.stdout(Stdio::piped()).spawn()?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        Ok(Process { child, lines })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's stderr, when it was piped (once).
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.stderr.take()
    }

    /// The next stdout line and when it was read, within `wait`; an error when none came
    /// or stdout was closed.
    pub fn line(&self, wait: Duration) -> Result<(Instant, String), String> {
        self.lines.recv_timeout(wait).map_err(|e| match e {
            RecvTimeoutError::Timeout => format!("no output from the child process in {wait:?}"),
            RecvTimeoutError::Disconnected => "the child process closed its output".to_owned(),
        })
    }

    /// A stdout line that has already come, if any.
    pub fn try_line(&self) -> Option<(Instant, String)> {
        self.lines.try_recv().ok()
    }

    /// Reads stdout until fedns's `listening admin` line (it prints its DNS lines first),
    /// each line within `patience`.
    pub fn wait_listening(&self, patience: Duration) -> Result<Listening, String> {
        let mut seen = Listening::default();
        loop {
            let (t, line) = self.line(patience)?;
            if seen.read(t, &line) {
                return Ok(seen);
            }
        }
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends `sig` ("TERM", "INT", ...), see [`signal`].
    pub fn signal(&self, sig: &str) {
        signal(self.pid(), sig);
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait()
    }

    /// Waits for the exit.
    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().expect("wait for the child process")
    }

    /// SIGKILL, then waits for the exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `sig` ("TERM", "INT", "HUP", ...) to process `pid` with kill(1).
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status();
}

/// What `fedns serve` said about where it listens.
#[derive(Clone, Debug, Default)]
pub struct Listening {
    /// Every line read so far.
    pub lines: Vec<String>,
    /// The addresses of the `listening dns` lines.
    pub dns: Vec<SocketAddr>,
    /// When the first `listening dns` line was read.
    pub dns_at: Option<Instant>,
    /// The address of the `listening admin` line.
    pub admin: Option<SocketAddr>,
}

impl Listening {
    /// Takes in one stdout line read at `t`; true for the `listening admin` line.
    pub fn read(&mut self, t: Instant, line: &str) -> bool {
        self.lines.push(line.to_owned());
        if let Some(a) = line.strip_prefix("listening dns ") {
            self.dns.extend(a.trim().parse::<SocketAddr>().ok());
            self.dns_at.get_or_insert(t);
        } else if let Some(a) = line.strip_prefix("listening admin ") {
            self.admin = a.trim().parse().ok();
            return true;
        }
        false
    }
}
