//! What a child process writes to stdout and stderr, line by line (ANSI colours removed),
//! kept for assertions and failure output. Waiters wake on every new line and when the
//! streams close, so nothing polls.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The lines of one process incarnation.
#[derive(Clone, Default)]
pub struct Log(Arc<(Mutex<State>, Condvar)>);

#[derive(Default)]
struct State {
    lines: Vec<String>,
    /// Streams still being read.
    open: usize,
}

impl Log {
    pub fn lines(&self) -> Vec<String> {
        self.state().lines.clone()
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.state().lines.iter().any(|l| l.contains(needle))
    }

    /// The lines containing `needle`.
    pub fn lines_containing(&self, needle: &str) -> Vec<String> {
        let s = self.state();
        s.lines
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// The number a log line gives a field (`name=123`, as tracing writes fields).
    pub fn field(line: &str, name: &str) -> Option<u64> {
        let (_, rest) = line.split_once(&format!(" {name}="))?;
        rest.split_whitespace().next()?.parse().ok()
    }

    /// The last `n` lines, joined.
    pub fn tail(&self, n: usize) -> String {
        let s = self.state();
        s.lines[s.lines.len().saturating_sub(n)..].join("\n")
    }

    /// Every line, joined.
    pub fn text(&self) -> String {
        self.state().lines.join("\n")
    }

    /// Waits until a line containing `needle` appears; false after `timeout` or once the
    /// process closed its output without writing it.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_for_line(needle, timeout).is_some()
    }

    /// Like [`wait_for`](Self::wait_for), returning the first line containing `needle`.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.wait_for_match(|l| l.contains(needle), timeout)
    }

    /// Like [`wait_for_line`](Self::wait_for_line), for the first line `matches` takes.
    pub fn wait_for_match(
        &self,
        matches: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Option<String> {
        self.wait(timeout, |s| match s.lines.iter().find(|l| matches(l)) {
            Some(line) => Some(Some(line.clone())),
            None => (s.open == 0).then_some(None),
        })
        .flatten()
    }

    /// Waits until at least `count` lines contain `needle`; false after `timeout` or once
    /// the process closed its output with fewer.
    pub fn wait_for_count(&self, needle: &str, count: usize, timeout: Duration) -> bool {
        self.wait(timeout, |s| {
            let n = s.lines.iter().filter(|l| l.contains(needle)).count();
            (n >= count || s.open == 0).then_some(n >= count)
        })
        .unwrap_or(false)
    }

    /// Waits until every stream reached its end (the process exited); false on timeout.
    pub(crate) fn wait_closed(&self, timeout: Duration) -> bool {
        self.wait(timeout, |s| (s.open == 0).then_some(true))
            .is_some()
    }

    /// Reads `stream` line by line on a thread of its own until its end.
    pub(crate) fn capture(&self, stream: impl Read + Send + 'static) {
        self.state().open += 1;
        let log = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                log.state().lines.push(strip_ansi(&line));
                log.0 .1.notify_all();
            }
            log.state().open -= 1;
            log.0 .1.notify_all();
        });
    }

    fn wait<T>(&self, timeout: Duration, done: impl Fn(&State) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut s = self.state();
        loop {
            if let Some(v) = done(&s) {
                return Some(v);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            s = self.0 .1.wait_timeout(s, left).unwrap().0;
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0 .0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Removes ANSI escape sequences (`ESC [ ... final-byte`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}
