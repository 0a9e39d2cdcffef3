//! What brokers and daemons share as child processes: a free port, spawning with the
//! output captured in a [`Log`], signals, stopping with a deadline.

use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::log::Log;

/// How long a process may take to start or to stop. Generous: CI machines are shared.
pub(crate) const PROCESS_WAIT: Duration = Duration::from_secs(60);

/// A free port on 127.0.0.1 for a listener a test starts later: one of
/// [`free_port_span`]'s, below the kernel's ephemeral range. (A port bound at 0 and
/// released comes from that range, where a concurrent test's client connection can take it
/// before the listener binds: it did, in CI, for a node of a three-node broker.)
pub fn free_port() -> u16 {
    free_port_span(1)
}

/// The first of `span` consecutive free ports on 127.0.0.1, for a broker with `--nodes`
/// (node k listens on the port + k). Taken below the kernel's ephemeral range
/// (32768..), where client connections of concurrent tests cannot land on them.
pub fn free_port_span(span: u16) -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() % 1000) as u16 * 11;
    loop {
        let offset = NEXT.fetch_add(span, Ordering::Relaxed);
        let base = 20_000 + (seed.wrapping_add(offset)) % 12_000;
        let bound: Vec<TcpListener> = (0..span)
            .filter_map(|k| TcpListener::bind(("127.0.0.1", base + k)).ok())
            .collect();
        if bound.len() == span as usize {
            return base;
        }
    }
}

/// A child process (one incarnation at a time) with its output captured in `log`: what
/// brokers and daemons share. SIGCONTed and SIGKILLed on drop, its log printed if the
/// test is failing. [`BrokerProcess`](crate::BrokerProcess) and
/// [`DaemonProcess`](crate::DaemonProcess) dereference to it.
pub struct Process {
    /// The current incarnation's stdout and stderr.
    pub log: Log,
    child: Option<Child>,
    name: String,
}

impl Process {
    /// Nothing running yet; `name` labels the log printed on failure.
    pub(crate) fn idle(name: String) -> Self {
        Self {
            log: Log::default(),
            child: None,
            name,
        }
    }

    /// Starts `cmd` (stdin closed) with a fresh log.
    pub(crate) fn spawn(&mut self, mut cmd: Command) {
        assert!(self.child.is_none(), "{} is still running", self.name);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        self.log = Log::default();
        self.log.capture(child.stdout.take().unwrap());
        self.log.capture(child.stderr.take().unwrap());
        self.child = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9` and reap, if running: no shutdown code runs. Returns once `log` holds
    /// every line the process wrote (its pipes closed).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            if !self.log.wait_closed(Duration::from_secs(10)) {
                eprintln!(
                    "{}: its output stayed open after kill -9 (a child holds it?)",
                    self.name
                );
            }
        }
    }

    /// SIGTERM, then the exit status once the process closed its output (so `log` holds
    /// its last lines); `None` if it was not running or did not exit within
    /// [`PROCESS_WAIT`] (it is then killed).
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        signal(&c, "-TERM");
        if !self.log.wait_closed(PROCESS_WAIT) {
            let _ = c.kill();
            let _ = c.wait();
            return None;
        }
        c.wait().ok()
    }

    /// SIGTERM and require exit status 0.
    pub fn terminate_ok(&mut self) {
        let status = self.terminate();
        assert!(
            status.is_some_and(|s| s.success()),
            "{} exit after SIGTERM: {status:?}:\n{}",
            self.name,
            self.log.tail(40)
        );
    }

    /// SIGSTOP: the process stops answering (its connections stay open).
    pub fn pause(&self) {
        if let Some(c) = &self.child {
            signal(c, "-STOP");
        }
    }

    /// Sends a signal, e.g. `-HUP`, with kill(1).
    pub fn signal(&self, signal_name: &str) {
        if let Some(c) = &self.child {
            signal(c, signal_name);
        }
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        if let Some(c) = &self.child {
            signal(c, "-CONT");
        }
    }

    /// Threads of the running process whose name is `name` (Linux: /proc/PID/task).
    pub fn threads_named(&self, name: &str) -> Option<usize> {
        let pid = self.pid()?;
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        Some(
            tasks
                .flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|comm| comm.trim_end() == name)
                })
                .count(),
        )
    }

    /// CPU clock ticks (user + system) the running process's main thread and the whole
    /// process have used so far (Linux: /proc/PID/task/PID/stat and /proc/PID/stat).
    pub fn cpu_ticks(&self) -> Option<(u64, u64)> {
        let pid = self.pid()?;
        let ticks = |path: String| -> Option<u64> {
            let stat = std::fs::read_to_string(path).ok()?;
            // The fields after the command name, which is in parentheses: utime and
            // stime are the 14th and 15th fields, the 12th and 13th of these.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        };
        Some((
            ticks(format!("/proc/{pid}/task/{pid}/stat"))?,
            ticks(format!("/proc/{pid}/stat"))?,
        ))
    }

    /// The inodes of the sockets the running process holds open (Linux: /proc/PID/fd).
    pub fn socket_inodes(&self) -> std::collections::BTreeSet<u64> {
        let Some(pid) = self.pid() else {
            return Default::default();
        };
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|fd| {
                let link = std::fs::read_link(fd.path()).ok()?;
                let link = link.to_str()?;
                link.strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .parse()
                    .ok()
            })
            .collect()
    }

    /// Resident set size in KiB (from /proc), if running.
    pub fn rss_kib(&self) -> Option<u64> {
        self.status_kib("VmRSS:")
    }

    /// The highest resident set size so far in KiB (from /proc), if running.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.status_kib("VmHWM:")
    }

    /// One KiB figure of /proc/PID/status, named by `field` with its colon.
    fn status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find(|l| l.starts_with(field))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.resume();
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "---- {} log (last 200 lines) ----\n{}\n---- end of {} log ----",
                self.name,
                self.log.tail(200),
                self.name
            );
        }
    }
}

/// Sends `sig` (e.g. `-STOP`) with the shell's `kill` (/bin/kill is not on every image).
pub(crate) fn signal(child: &Child, sig: &str) {
    let pid = child.id();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("kill {sig} {pid}"))
        .status()
        .expect("run sh -c kill");
    assert!(status.success(), "kill {sig} {pid} failed: {status}");
}

/// A process whose log nobody reads: started with standard error a pipe closed at once (a
/// log shipper that went away, a `| head`), stdin and stdout closed. Killed and reaped on
/// drop.
pub struct Unlogged(Child);

impl Unlogged {
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        drop(child.stderr.take());
        Self(child)
    }

    /// SIGTERM, then the exit status; `None` if it did not exit within 30 s.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        signal(&self.0, "-TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().ok().flatten() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Unlogged {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
