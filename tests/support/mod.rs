//! Process harness for end-to-end tests: kmirror-broker and kmirror as real processes on
//! 127.0.0.1, so tests can `kill -9` them, stop them with SIGTERM and restart them on the
//! same data directory and port. Third-party Python clients run through `python()`.
#![allow(dead_code)]

pub mod cluster;
pub mod records;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The kmirror-broker binary, built on demand (tests of this package do not build other
/// packages' binaries).
pub fn broker_binary() -> PathBuf {
    let kmirror = PathBuf::from(env!("CARGO_BIN_EXE_kmirror"));
    let path = kmirror.with_file_name("kmirror-broker");
    static BUILD: Mutex<()> = Mutex::new(());
    let _guard = BUILD.lock().unwrap();
    let profile_release = kmirror.parent().is_some_and(|d| d.ends_with("release"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "-q",
        "-p",
        "kmirror-broker",
        "--bin",
        "kmirror-broker",
    ]);
    if profile_release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "building kmirror-broker failed");
    assert!(path.exists(), "{} missing after build", path.display());
    path
}

/// A free port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Lines a child wrote to stderr, kept for diagnostics.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub fn contains(&self, needle: &str) -> bool {
        self.0.lock().unwrap().iter().any(|l| l.contains(needle))
    }
    pub fn tail(&self, n: usize) -> String {
        let l = self.0.lock().unwrap();
        l[l.len().saturating_sub(n)..].join("\n")
    }
    /// Waits until a line containing `needle` appears.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

fn spawn_logged(mut cmd: Command) -> (Child, Log) {
    cmd.stderr(Stdio::piped()).stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("process starts");
    let log = Log::default();
    for stream in [
        Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stdout.take().unwrap()),
    ] {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                log.0.lock().unwrap().push(line);
            }
        });
    }
    (child, log)
}

fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status();
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A kmirror-broker process with a fixed port and data directory, restartable.
pub struct BrokerProcess {
    pub port: u16,
    pub data_dir: PathBuf,
    extra_args: Vec<String>,
    child: Option<Child>,
    pub log: Log,
}

impl BrokerProcess {
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

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and data directory; waits until it accepts.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "broker still running");
        let mut cmd = Command::new(broker_binary());
        cmd.arg("--listen")
            .arg(self.addr())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--group-initial-rebalance-delay-ms", "0"])
            .args(&self.extra_args);
        let (child, log) = spawn_logged(cmd);
        self.child = Some(child);
        self.log = log;
        assert!(
            self.log
                .wait_for("accepting connections", Duration::from_secs(60)),
            "broker did not start:\n{}",
            self.log.tail(20)
        );
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM; returns the exit status.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        signal(&c, "-TERM");
        wait_exit(&mut c, Duration::from_secs(60))
    }

    /// SIGSTOP / SIGCONT: a target that stops answering.
    pub fn pause(&self) {
        if let Some(c) = &self.child {
            signal(c, "-STOP");
        }
    }
    pub fn resume(&self) {
        if let Some(c) = &self.child {
            signal(c, "-CONT");
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            signal(c, "-CONT");
        }
        self.kill9();
    }
}

/// A kmirror daemon process running a topology file.
pub struct DaemonProcess {
    pub config: PathBuf,
    child: Option<Child>,
    pub log: Log,
}

impl DaemonProcess {
    pub fn start(config: &Path) -> Self {
        let mut d = Self {
            config: config.to_path_buf(),
            child: None,
            log: Log::default(),
        };
        d.restart();
        d
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "daemon still running");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmirror"));
        cmd.args(["run"])
            .arg(&self.config)
            .env("KMIRROR_LOG", "info");
        let (child, log) = spawn_logged(cmd);
        self.child = Some(child);
        self.log = log;
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        signal(&c, "-TERM");
        wait_exit(&mut c, Duration::from_secs(60))
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
    }
}

/// The Python interpreter with confluent-kafka and kafka-python (`scripts/test.sh` sets
/// `KMIRROR_PYTHON` to its virtualenv).
pub fn python() -> String {
    std::env::var("KMIRROR_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs a Python script from `tests/clients/` with arguments; panics with its output on
/// failure, returns its stdout.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let out = Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); run scripts/test.sh to install the clients",
                python()
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{script} {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A topology file with two remote clusters (the given brokers) and the flows' YAML.
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
