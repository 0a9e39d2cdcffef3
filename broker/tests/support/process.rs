//! A `kmirror-broker` child process for tests: started with extra flags on a data dir,
//! its address parsed from the `listen=ADDR` field of the "accepting connections" log
//! line, stopped with SIGKILL or SIGTERM and restarted on the same data dir and address.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const BROKER_BIN: &str = env!("CARGO_BIN_EXE_kmirror-broker");
/// How long to wait for the broker to start or stop. Generous: CI machines are shared.
pub const START_WAIT: Duration = Duration::from_secs(60);

/// A `kmirror-broker` child process; SIGKILLed on drop. Its stderr is drained by a thread
/// for its whole life (the child never blocks on a full pipe) and kept for failure output:
/// the log of every incarnation accumulates in [`BrokerProcess::log`].
pub struct BrokerProcess {
    child: Option<Child>,
    /// `host:port` the broker listens on (the same across restarts).
    pub addr: String,
    data_dir: PathBuf,
    args: Vec<String>,
    log: Arc<Mutex<String>>,
    incarnation: u32,
}

/// A free TCP port on 127.0.0.1: bound to port 0, then released. Another process could
/// take it in between; tests use it only where a fixed address is the point.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

impl BrokerProcess {
    /// Starts a broker on `data_dir` listening on 127.0.0.1:0 (a free port) unless `args`
    /// holds `--listen`.
    pub fn start(data_dir: &Path, args: &[&str]) -> BrokerProcess {
        let mut b = BrokerProcess {
            child: None,
            addr: String::new(),
            data_dir: data_dir.to_path_buf(),
            args: args.iter().map(|s| s.to_string()).collect(),
            log: Arc::new(Mutex::new(String::new())),
            incarnation: 0,
        };
        let listen = if b.args.iter().any(|a| a == "--listen") {
            None
        } else {
            Some("127.0.0.1:0".to_string())
        };
        b.spawn(listen);
        b
    }

    /// Starts the broker again on the same data dir, flags and address (after
    /// [`sigkill`](Self::sigkill) or [`sigterm`](Self::sigterm)).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart: the broker is still running");
        let addr = self.addr.clone();
        let listen = if self.args.iter().any(|a| a == "--listen") {
            None
        } else {
            Some(addr.clone())
        };
        self.spawn(listen);
        assert_eq!(self.addr, addr, "the restarted broker listens elsewhere");
    }

    fn spawn(&mut self, listen: Option<String>) {
        self.incarnation += 1;
        let mut cmd = Command::new(BROKER_BIN);
        if let Some(l) = &listen {
            cmd.arg("--listen").arg(l);
        }
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // Flags are also read from KMIRROR_BROKER_* variables: keep the caller's out.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("KMIRROR_BROKER_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BROKER_BIN}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let log = self.log.clone();
        log.lock().unwrap().push_str(&format!(
            "==== broker start #{} ({listen:?} {:?}) ====\n",
            self.incarnation, self.args
        ));
        thread::spawn(move || {
            let mut tx = Some(tx);
            let mut reader = BufReader::new(stderr);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = strip_ansi(&String::from_utf8_lossy(&buf));
                log.lock().unwrap().push_str(&line);
                if line.contains("accepting connections") {
                    if let Some(addr) = field(&line, "listen") {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(addr);
                        }
                    }
                }
            }
        });
        match rx.recv_timeout(START_WAIT) {
            Ok(addr) => {
                self.addr = addr;
                self.child = Some(child);
            }
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                thread::sleep(Duration::from_millis(100));
                panic!(
                    "broker did not log \"accepting connections\" with listen=ADDR ({}; exit: \
                     {status:?}). Log:\n{}",
                    match e {
                        RecvTimeoutError::Timeout => "timed out",
                        RecvTimeoutError::Disconnected => "stderr closed",
                    },
                    self.log()
                );
            }
        }
    }

    /// Everything every incarnation logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker running").id()
    }

    /// `kill -9`: no shutdown code runs.
    pub fn sigkill(&mut self) {
        let mut child = self.child.take().expect("broker running");
        child.kill().expect("SIGKILL the broker");
        child.wait().expect("reap the broker");
    }

    /// `kill -TERM` and wait (up to [`START_WAIT`]) for the exit.
    pub fn sigterm(&mut self) -> ExitStatus {
        let pid = self.pid();
        // The shell builtin: /bin/kill is not on every minimal image.
        let st = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -TERM {pid}"))
            .status()
            .expect("run sh -c kill");
        assert!(st.success(), "kill -TERM {pid} failed: {st}");
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + START_WAIT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for the broker") {
                // Let the stderr thread catch the last lines.
                thread::sleep(Duration::from_millis(200));
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "broker did not exit within {START_WAIT:?} of SIGTERM. Log:\n{}",
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM and require exit status 0.
    pub fn sigterm_ok(&mut self) {
        let status = self.sigterm();
        assert_eq!(
            status.code(),
            Some(0),
            "broker exit after SIGTERM: {status}. Log:\n{}",
            self.log()
        );
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            eprintln!(
                "---- kmirror-broker log ({}) ----\n{}---- end of broker log ----",
                self.addr,
                self.log()
            );
        }
    }
}

/// Removes ANSI escape sequences (`ESC [ ... final-byte`).
pub fn strip_ansi(s: &str) -> String {
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

/// The value of `name=value` in a log line.
pub fn field(line: &str, name: &str) -> Option<String> {
    let pat = format!("{name}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&pat))
        .map(|v| v.trim_matches('"').to_string())
}
