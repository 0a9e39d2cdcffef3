//! A `kmirror` daemon process running a topology file. Each incarnation gets a notify
//! socket of its own as `$NOTIFY_SOCKET`, so readiness is the daemon's `READY=1` rather
//! than a line of its log.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use crate::binaries::daemon_binary;
use crate::log::Log;
use crate::notify::NotifySocket;
use crate::process::{self, spawn_logged};

/// A `kmirror run CONFIG` child process; SIGKILLed on drop. `log` holds the current
/// incarnation's output.
pub struct DaemonProcess {
    pub config: PathBuf,
    pub log: Log,
    child: Option<Child>,
    notify: Option<NotifySocket>,
    /// Holds the notify sockets.
    sockets: tempfile::TempDir,
    incarnation: u32,
}

impl DaemonProcess {
    /// Starts `kmirror run config` (it need not be ready yet: see
    /// [`wait_ready`](Self::wait_ready)).
    pub fn start(config: &Path) -> Self {
        let mut d = Self {
            config: config.to_path_buf(),
            log: Log::default(),
            child: None,
            notify: None,
            sockets: tempfile::Builder::new()
                .prefix("kmirror-notify")
                .tempdir()
                .expect("a directory for the notify socket"),
            incarnation: 0,
        };
        d.restart();
        d
    }

    /// Starts (again) on the same topology file, with a fresh log and notify socket.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart: the daemon is still running");
        self.incarnation += 1;
        let path = self
            .sockets
            .path()
            .join(format!("notify-{}", self.incarnation));
        self.notify = Some(NotifySocket::bind(&path));
        let mut cmd = Command::new(daemon_binary());
        cmd.arg("run")
            .arg(&self.config)
            .env("KMIRROR_LOG", "info")
            .env("NOTIFY_SOCKET", &path);
        let (child, log) = spawn_logged(cmd);
        self.child = Some(child);
        self.log = log;
    }

    /// Waits for `READY=1` from this incarnation (sent once every flow was spawned).
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        self.notified("READY=1", timeout)
    }

    /// Waits for `STOPPING=1` from this incarnation (sent when shutdown begins).
    pub fn wait_stopping(&self, timeout: Duration) -> bool {
        self.notified("STOPPING=1", timeout)
    }

    fn notified(&self, state: &str, timeout: Duration) -> bool {
        self.notify
            .as_ref()
            .is_some_and(|n| n.wait_for(state, timeout))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9`: no shutdown code runs.
    pub fn kill9(&mut self) {
        process::kill9(&mut self.child);
    }

    /// SIGTERM; the exit status, `None` if not running or not stopped in time.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        process::terminate(&mut self.child, &self.log)
    }

    /// Resident set size in KiB (from /proc), if running.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        self.kill9();
        process::dump_on_panic("kmirror daemon", &self.log);
    }
}

/// Writes `topology.yaml` in `dir`: the remote clusters `(name, bootstrap)` and the flows'
/// YAML (the list items under `flows:`).
pub fn write_topology(dir: &Path, clusters: &[(&str, &str)], flows_yaml: &str) -> PathBuf {
    let mut text = String::from("clusters:\n");
    for (name, addr) in clusters {
        text.push_str(&format!("  {name}:\n    bootstrap: [\"{addr}\"]\n    request_timeout: 10s\n    connect_timeout: 2s\n"));
    }
    text.push_str("flows:\n");
    text.push_str(flows_yaml);
    let path = dir.join("topology.yaml");
    std::fs::write(&path, text).unwrap();
    path
}
