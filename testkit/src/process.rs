//! What brokers and daemons share as child processes: a free port, spawning with the
//! output captured in a [`Log`], signals, and stopping with a deadline.

use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::log::Log;

/// How long a process may take to start or to stop. Generous: CI machines are shared.
pub(crate) const PROCESS_WAIT: Duration = Duration::from_secs(60);

/// A free port on 127.0.0.1: bound to port 0, then released. Another process could take
/// it in between; good enough for tests that need a fixed address.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `cmd` with stdin closed and stdout and stderr captured in a fresh [`Log`].
pub(crate) fn spawn_logged(mut cmd: Command) -> (Child, Log) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let log = Log::default();
    log.capture(child.stdout.take().unwrap());
    log.capture(child.stderr.take().unwrap());
    (child, log)
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

/// `kill -9` and reap, if running.
pub(crate) fn kill9(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// SIGTERM, then the exit status once the process closed its output (so `log` holds its
/// last lines); `None` if it was not running or did not exit within [`PROCESS_WAIT`] (it
/// is then killed).
pub(crate) fn terminate(child: &mut Option<Child>, log: &Log) -> Option<ExitStatus> {
    let mut c = child.take()?;
    signal(&c, "-TERM");
    if !log.wait_closed(PROCESS_WAIT) {
        let _ = c.kill();
        let _ = c.wait();
        return None;
    }
    c.wait().ok()
}

/// On a failing test, prints the end of a process's log to the test's output.
pub(crate) fn dump_on_panic(what: &str, log: &Log) {
    if std::thread::panicking() {
        eprintln!(
            "---- {what} log (last 200 lines) ----\n{}\n---- end of {what} log ----",
            log.tail(200)
        );
    }
}
