//! A `kmirror-broker` process on a fixed port and data directory, with extra flags:
//! restartable after `kill -9` or SIGTERM, and pausable (SIGSTOP / SIGCONT) to play a
//! cluster that stops answering.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::binaries::broker_binary;
use crate::process::{free_port, Process, PROCESS_WAIT};

/// A `kmirror-broker` child process; dereferences to its [`Process`] (`log`, `kill9`,
/// `terminate`, `pause`, ...).
pub struct BrokerProcess {
    pub port: u16,
    pub data_dir: PathBuf,
    extra_args: Vec<String>,
    process: Process,
}

impl BrokerProcess {
    /// Starts a broker on a free port of 127.0.0.1 (`--listen` is the kit's) and
    /// `data_dir`, with `extra_args`; returns once it accepts connections.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> Self {
        let port = free_port();
        let mut b = Self {
            port,
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

    /// Starts (again) on the same port, data directory and flags; waits until it accepts.
    pub fn restart(&mut self) {
        let mut cmd = Command::new(broker_binary());
        cmd.arg("--listen")
            .arg(self.addr())
            .arg("--data-dir")
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
