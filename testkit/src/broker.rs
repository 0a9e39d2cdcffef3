//! A `kmirror-broker` process on a fixed port and data directory, with extra flags:
//! restartable after `kill -9` or SIGTERM, and pausable (SIGSTOP / SIGCONT) to play a
//! cluster that stops answering.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};

use crate::binaries::broker_binary;
use crate::log::Log;
use crate::process::{self, free_port, spawn_logged, PROCESS_WAIT};

/// A `kmirror-broker` child process; SIGKILLed on drop. `log` holds the current
/// incarnation's output.
pub struct BrokerProcess {
    pub port: u16,
    pub data_dir: PathBuf,
    extra_args: Vec<String>,
    child: Option<Child>,
    pub log: Log,
}

impl BrokerProcess {
    /// Starts a broker on a free port of 127.0.0.1 (`--listen` is the kit's) and
    /// `data_dir`, with `extra_args`; returns once it accepts connections.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> Self {
        let mut b = Self {
            port: free_port(),
            data_dir: data_dir.to_path_buf(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            child: None,
            log: Log::default(),
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
        assert!(self.child.is_none(), "restart: the broker is still running");
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
        let (child, log) = spawn_logged(cmd);
        self.child = Some(child);
        self.log = log;
        assert!(
            self.log.wait_for("accepting connections", PROCESS_WAIT),
            "the broker on {} did not start:\n{}",
            self.addr(),
            self.log.tail(40)
        );
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

    /// SIGTERM and require exit status 0.
    pub fn terminate_ok(&mut self) {
        let status = self.terminate();
        assert!(
            status.is_some_and(|s| s.success()),
            "broker exit after SIGTERM: {status:?}:\n{}",
            self.log.tail(40)
        );
    }

    /// SIGSTOP: the broker stops answering (connections stay open).
    pub fn pause(&self) {
        if let Some(c) = &self.child {
            process::signal(c, "-STOP");
        }
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        if let Some(c) = &self.child {
            process::signal(c, "-CONT");
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.resume();
        self.kill9();
        process::dump_on_panic(&format!("kmirror-broker {}", self.addr()), &self.log);
    }
}
