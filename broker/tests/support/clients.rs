//! Third-party clients run as child processes with timeouts: kcat (Debian's apt package)
//! and the Python clients (confluent-kafka, kafka-python) from `$KMIRROR_PYTHON`, as
//! `scripts/test.sh` installs them. A missing client fails the test and says so.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// Runs a command to completion with optional stdin, failing the test after `timeout`.
pub fn run(cmd: &mut Command, stdin: Option<Vec<u8>>, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    let writer = stdin.map(|data| {
        let mut pipe = child.stdin.take().unwrap();
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out.join().unwrap();
            let stderr = err.join().unwrap();
            panic!(
                "{desc} did not finish within {timeout:?}\n--- stdout (last 8 KiB):\n{}\n--- \
                 stderr (last 8 KiB):\n{}",
                tail(&stdout, 8192),
                tail(&stderr, 8192)
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Runs and requires exit status 0; on failure the panic message holds the output.
pub fn run_ok(cmd: &mut Command, stdin: Option<Vec<u8>>, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    let out = run(cmd, stdin, timeout);
    let stdout = tail(&out.stdout, 16384);
    let stderr = tail(&out.stderr, 16384);
    assert!(
        out.status.success(),
        "{desc} failed: {}\n--- stdout (last 16 KiB):\n{stdout}\n--- stderr (last 16 KiB):\n{stderr}",
        out.status
    );
    out
}

/// Like [`run_ok`] for a Python script: prints its stdout and stderr to the test's stderr.
pub fn run_script_ok(cmd: &mut Command, timeout: Duration) -> String {
    let desc = format!("{cmd:?}");
    let started = Instant::now();
    let out = run(cmd, None, timeout);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "{desc} ({:.1?}, {}):\n{stdout}{}",
        started.elapsed(),
        out.status,
        tail(stderr.as_bytes(), 16384)
    );
    assert!(
        out.status.success(),
        "{desc} failed: {}\n--- stdout:\n{stdout}\n--- stderr (last 16 KiB):\n{}",
        out.status,
        tail(stderr.as_bytes(), 16384)
    );
    stdout
}

pub fn drain(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

pub fn tail(b: &[u8], n: usize) -> String {
    String::from_utf8_lossy(&b[b.len().saturating_sub(n)..]).into_owned()
}

/// The lines of a child's stdout, as they come.
pub fn lines_of(stdout: ChildStdout) -> Receiver<String> {
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
    pub desc: String,
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -TERM` (the process may shut down cleanly; see [`finish_ok`](Self::finish_ok)).
    pub fn sigterm(&self) {
        let pid = self.child.id();
        let st = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -TERM {pid}"))
            .status()
            .expect("run sh -c kill");
        assert!(st.success(), "kill -TERM {pid} failed: {st}");
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

/// `kcat` with a check that it is installed.
pub fn kcat() -> Command {
    static FOUND: OnceLock<Result<String, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let found = match Command::new("kcat").arg("-V").output() {
            Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout)
                .lines()
                .find(|l| l.starts_with("Version"))
                .unwrap_or("")
                .to_string()),
            Ok(o) => Err(format!("`kcat -V` failed: {}", o.status)),
            Err(e) => Err(format!("cannot run kcat: {e}")),
        };
        if let Ok(version) = &found {
            eprintln!("kcat: {version}");
        }
        found
    });
    if let Err(e) = found {
        panic!(
            "{e}. These interop tests need kcat: run scripts/test.sh (it installs kcat with \
             apt-get)."
        );
    }
    Command::new("kcat")
}

/// The Python with confluent-kafka and kafka-python: `$KMIRROR_PYTHON`, else `python3`.
pub fn python() -> Command {
    let py = std::env::var("KMIRROR_PYTHON").unwrap_or_else(|_| "python3".into());
    static CHECKED: OnceLock<Result<String, String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        let probe = "import confluent_kafka, kafka; print('confluent-kafka', \
                     confluent_kafka.version()[0], 'librdkafka', confluent_kafka.libversion()[0], \
                     'kafka-python', kafka.__version__)";
        let checked = match Command::new(&py).arg("-c").arg(probe).output() {
            Ok(o) if o.status.success() => {
                Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
            }
            Ok(o) => Err(format!(
                "{py} cannot import confluent_kafka and kafka: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Err(format!("cannot run {py}: {e}")),
        };
        if let Ok(versions) = &checked {
            eprintln!("python clients ({py}): {versions}");
        }
        checked
    });
    if let Err(e) = checked {
        panic!(
            "{e}. These interop tests need confluent-kafka and kafka-python: run \
             scripts/test.sh (it creates .venv/ and sets KMIRROR_PYTHON)."
        );
    }
    let mut cmd = Command::new(py);
    cmd.env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}
