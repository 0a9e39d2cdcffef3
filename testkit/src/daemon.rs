//! A `kmirror` daemon process running a topology file. Each incarnation gets a notify
//! socket of its own as `$NOTIFY_SOCKET`, so readiness is the daemon's `READY=1` rather
//! than a line of its log.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::binaries::daemon_binary;
use crate::notify::NotifySocket;
use crate::process::{free_port, Process};

/// A `kmirror run CONFIG` child process; dereferences to its [`Process`] (`log`,
/// `kill9`, `terminate`, `rss_kib`, ...).
pub struct DaemonProcess {
    pub config: PathBuf,
    /// Arguments after `run CONFIG`, and environment variables, on every incarnation.
    args: Vec<String>,
    envs: Vec<(String, String)>,
    process: Process,
    notify: Option<NotifySocket>,
    /// Holds the notify sockets.
    sockets: tempfile::TempDir,
    incarnation: u32,
}

impl DaemonProcess {
    /// Starts `kmirror run config` (it need not be ready yet: see
    /// [`wait_ready`](Self::wait_ready)).
    pub fn start(config: &Path) -> Self {
        Self::start_with(config, &[], &[])
    }

    /// Starts `kmirror run config ARGS...` with `envs` added to its environment.
    pub fn start_with(config: &Path, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut d = Self {
            config: config.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            process: Process::idle("kmirror daemon".into()),
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

    /// Starts (again) on the same topology file, with a fresh log and notify socket. The
    /// daemon logs at `info`, or at `$KMIRROR_TEST_DAEMON_LOG` when set (e.g. `debug`),
    /// unless the test passed its own `KMIRROR_LOG` in `envs`.
    pub fn restart(&mut self) {
        self.incarnation += 1;
        let path = self
            .sockets
            .path()
            .join(format!("notify-{}", self.incarnation));
        let mut cmd = Command::new(daemon_binary());
        cmd.arg("run")
            .arg(&self.config)
            .args(&self.args)
            .env(
                "KMIRROR_LOG",
                std::env::var("KMIRROR_TEST_DAEMON_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .env("NOTIFY_SOCKET", &path);
        self.notify = Some(NotifySocket::bind(&path));
        self.process.spawn(cmd);
    }

    /// Waits for `READY=1` from this incarnation (sent once every flow started or stands by).
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        self.notified("READY=1", timeout)
    }

    /// Waits for `state` (e.g. `WATCHDOG=1`) from this incarnation.
    pub fn wait_notified(&self, state: &str, timeout: Duration) -> bool {
        self.notified(state, timeout)
    }

    /// The notifications this incarnation sent that were read so far, one line each, in
    /// order (`MONOTONIC_USEC=...` beside `RELOADING=1` included).
    pub fn notifications(&self) -> Vec<String> {
        self.notify.as_ref().map(|n| n.states()).unwrap_or_default()
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
}

impl Deref for DaemonProcess {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

impl DerefMut for DaemonProcess {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
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

/// Adds `telemetry: { SETTINGS }` to a topology file from [`write_topology`], e.g.
/// `listen: "127.0.0.1:9644", log_interval: 1s`.
pub fn add_telemetry(config: &Path, settings: &str) {
    let mut text = std::fs::read_to_string(config).unwrap();
    text.push_str(&format!("telemetry: {{ {settings} }}\n"));
    std::fs::write(config, text).unwrap();
}

/// Adds a telemetry listener on a free port of 127.0.0.1 to a topology file from
/// [`write_topology`]; returns its address (`127.0.0.1:PORT`).
pub fn add_telemetry_listener(config: &Path) -> String {
    let listen = format!("127.0.0.1:{}", free_port());
    add_telemetry(config, &format!("listen: \"{listen}\""));
    listen
}

/// `kmirror ARGS...` (a command that ends by itself, e.g. `status` or `offsets`): its
/// stdout; panics with stdout and stderr unless it exits with status 0.
pub fn kmirror_ok(args: &[&str]) -> String {
    let out = Command::new(daemon_binary())
        .args(args)
        .output()
        .expect("kmirror runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "kmirror {args:?}: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
