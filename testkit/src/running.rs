//! A client process whose stdout is read line by line while it runs, to act on its
//! progress (a consumer's first record, a producer's acknowledgements).

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use crate::clients::{drain, tail};
use crate::process::signal;

/// The lines of a child's stdout, as they come.
fn lines_of(stdout: ChildStdout) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A client process whose stdout is read line by line while it runs (to act on its
/// progress), with stderr kept for failure output. Killed on drop.
pub struct Running {
    desc: String,
    child: Child,
    lines: Receiver<String>,
    stderr: Option<thread::JoinHandle<Vec<u8>>>,
    /// Every stdout line seen so far.
    pub seen: Vec<String>,
}

impl Running {
    pub fn spawn(cmd: &mut Command) -> Running {
        let desc = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
        let lines = lines_of(child.stdout.take().unwrap());
        let stderr = Some(drain(child.stderr.take().unwrap()));
        Running {
            desc,
            child,
            lines,
            stderr,
            seen: Vec::new(),
        }
    }

    /// Reads stdout lines until one satisfies `pred` and returns it; panics (with the
    /// output so far) if the process ends or `timeout` passes first.
    pub fn wait_line(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if pred(&l) {
                        return l;
                    }
                }
                Err(e) => {
                    let _ = self.child.kill();
                    let status = self.child.wait();
                    let stderr = self
                        .stderr
                        .take()
                        .map(|h| h.join().unwrap())
                        .unwrap_or_default();
                    panic!(
                        "{}: the awaited line did not come ({e:?}; exit: {status:?})\n--- \
                         stdout:\n{}\n--- stderr (last 16 KiB):\n{}",
                        self.desc,
                        self.seen.join("\n"),
                        tail(&stderr, 16384)
                    );
                }
            }
        }
    }

    /// The next stdout line if one comes within `timeout`; `None` on timeout or after the
    /// end of the output.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        let l = self.lines.recv_timeout(timeout).ok()?;
        self.seen.push(l.clone());
        Some(l)
    }

    /// `kill -TERM` (the process may shut down cleanly; see [`finish_ok`](Self::finish_ok)).
    pub fn sigterm(&self) {
        signal(&self.child, "-TERM");
    }

    /// Waits for the exit (up to `timeout`), requires status 0, echoes all output to the
    /// test's stderr and returns the stdout lines.
    pub fn finish_ok(mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(20));
        };
        // The reader thread ends at EOF once the child is gone.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(10)) {
            self.seen.push(l);
        }
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default();
        let stderr = tail(&stderr, 16384);
        let stdout = self.seen.join("\n");
        eprintln!("{} ({status:?}):\n{stdout}\n{stderr}", self.desc);
        match status {
            None => panic!(
                "{} did not finish within {timeout:?}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}",
                self.desc
            ),
            Some(s) if !s.success() => panic!(
                "{} failed: {s}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}",
                self.desc
            ),
            Some(_) => std::mem::take(&mut self.seen),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
