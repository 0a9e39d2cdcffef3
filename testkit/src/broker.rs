//! A `kmirror-broker` process on a fixed port and data directory, with extra flags:
//! restartable after `kill -9` or SIGTERM, and pausable (SIGSTOP / SIGCONT) to play a
//! cluster that stops answering.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::binaries::broker_binary;
use crate::process::{free_port, free_port_span, Process, PROCESS_WAIT};
use crate::proxy::{Cutter, DelayProxy};

/// A `kmirror-broker` child process; dereferences to its [`Process`] (`log`, `kill9`,
/// `terminate`, `pause`, ...).
pub struct BrokerProcess {
    /// The first listener's port.
    pub port: u16,
    /// With [`Self::start_listeners`]: every listener's protocol and port.
    pub listeners: Vec<(String, u16)>,
    pub data_dir: PathBuf,
    extra_args: Vec<String>,
    process: Process,
}

impl BrokerProcess {
    /// Starts a broker on a free port of 127.0.0.1 (`--listen` is the kit's) and
    /// `data_dir`, with `extra_args`; returns once it accepts connections.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> Self {
        Self::start_listeners(data_dir, &[], extra_args)
    }

    /// [`Self::start`], and the address clients use: the broker's own or, with a round
    /// trip, a [`DelayProxy`]'s adding it, which the broker advertises so that clients
    /// that follow Metadata stay behind the proxy.
    pub fn start_behind(
        data_dir: &Path,
        extra_args: &[&str],
        rtt: Option<Duration>,
    ) -> (Self, String) {
        let Some(rtt) = rtt else {
            let broker = Self::start(data_dir, extra_args);
            let addr = broker.addr();
            return (broker, addr);
        };
        let (broker, addr, _) = Self::start_watched(data_dir, extra_args, rtt);
        (broker, addr)
    }

    /// [`Self::start`] behind a [`DelayProxy`] adding `rtt` (which may be zero), which the
    /// broker advertises; with the proxy's [`Cutter`], which also counts what its clients
    /// sent.
    pub fn start_watched(
        data_dir: &Path,
        extra_args: &[&str],
        rtt: Duration,
    ) -> (Self, String, Cutter) {
        let proxy = DelayProxy::bind(rtt);
        let addr = proxy.addr();
        let mut args = extra_args.to_vec();
        args.extend(["--advertised-listener", &addr]);
        let broker = Self::start(data_dir, &args);
        let link = proxy.forward_to(&broker.addr());
        (broker, addr, link)
    }

    /// [`Self::start`] with `--listeners`: one listener per protocol of `protocols`
    /// (`PLAINTEXT`, `SSL`, ...), each on a free port of 127.0.0.1 followed by three more
    /// (for `--nodes` up to 4); none: `--listen`.
    pub fn start_listeners(data_dir: &Path, protocols: &[&str], extra_args: &[&str]) -> Self {
        let ports: Vec<u16> = protocols.iter().map(|_| free_port_span(4)).collect();
        let port = ports.first().copied().unwrap_or_else(free_port);
        let listeners: Vec<(String, u16)> = protocols
            .iter()
            .zip(ports)
            .map(|(p, port)| (p.to_string(), port))
            .collect();
        let mut b = Self {
            port,
            listeners,
            data_dir: data_dir.to_path_buf(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            process: Process::idle(format!("kmirror-broker 127.0.0.1:{port}")),
        };
        b.restart();
        b
    }

    /// `127.0.0.1:PORT`, the same across restarts.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT` of the listener speaking `protocol`.
    pub fn listener_addr(&self, protocol: &str) -> String {
        let (_, port) = self
            .listeners
            .iter()
            .find(|(p, _)| p == protocol)
            .unwrap_or_else(|| panic!("no {protocol} listener"));
        format!("127.0.0.1:{port}")
    }

    /// Starts (again) on the same ports, data directory and flags; waits until it accepts.
    pub fn restart(&mut self) {
        let mut cmd = Command::new(broker_binary());
        if self.listeners.is_empty() {
            cmd.arg("--listen").arg(self.addr());
        } else {
            let listeners: Vec<String> = self
                .listeners
                .iter()
                .map(|(p, port)| format!("{p}://127.0.0.1:{port}"))
                .collect();
            cmd.arg("--listeners").arg(listeners.join(","));
        }
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra_args)
            .env("NO_COLOR", "1");
        // Flags are also read from KMIRROR_BROKER_* variables: keep the caller's out.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("KMIRROR_BROKER_") {
                cmd.env_remove(k);
            }
        }
        self.process.spawn(cmd);
        assert!(
            self.log.wait_for("accepting connections", PROCESS_WAIT),
            "the broker on {} did not start:\n{}",
            self.addr(),
            self.log.tail(40)
        );
    }
}

impl Deref for BrokerProcess {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

impl DerefMut for BrokerProcess {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}
