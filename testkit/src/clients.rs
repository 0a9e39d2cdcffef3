//! Third-party clients run to completion as child processes with timeouts: kcat (Debian's
//! apt package) and the Python clients (confluent-kafka, kafka-python) from
//! `$KMIRROR_PYTHON`, as `scripts/test.sh` installs them. A missing client fails the test
//! and says so.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
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

pub(crate) fn drain(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

pub(crate) fn tail(b: &[u8], n: usize) -> String {
    String::from_utf8_lossy(&b[b.len().saturating_sub(n)..]).into_owned()
}

/// `kcat` with a check that it is installed.
pub fn kcat() -> Command {
    static FOUND: OnceLock<Result<String, String>> = OnceLock::new();
    check_once(
        &FOUND,
        "kcat",
        "These tests need kcat: run scripts/test.sh (it installs kcat with apt-get).",
        || match Command::new("kcat").arg("-V").output() {
            Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout)
                .lines()
                .find(|l| l.starts_with("Version"))
                .unwrap_or("")
                .to_string()),
            Ok(o) => Err(format!("`kcat -V` failed: {}", o.status)),
            Err(e) => Err(format!("cannot run kcat: {e}")),
        },
    );
    Command::new("kcat")
}

/// The Python interpreter with confluent-kafka and kafka-python: `$KMIRROR_PYTHON`
/// (`scripts/test.sh` sets it to its virtualenv), else `python3`; checked once.
pub fn python() -> String {
    let py = std::env::var("KMIRROR_PYTHON").unwrap_or_else(|_| "python3".into());
    static CHECKED: OnceLock<Result<String, String>> = OnceLock::new();
    check_once(
        &CHECKED,
        &format!("python clients ({py})"),
        "These tests need confluent-kafka and kafka-python: run scripts/test.sh (it creates \
         .venv/ and sets KMIRROR_PYTHON).",
        || {
            let probe = "import confluent_kafka, kafka; print('confluent-kafka', \
                         confluent_kafka.version()[0], 'librdkafka', \
                         confluent_kafka.libversion()[0], 'kafka-python', kafka.__version__)";
            match Command::new(&py).arg("-c").arg(probe).output() {
                Ok(o) if o.status.success() => {
                    Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
                }
                Ok(o) => Err(format!(
                    "{py} cannot import confluent_kafka and kafka: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => Err(format!("cannot run {py}: {e}")),
            }
        },
    );
    py
}

/// Runs `probe` once per process and prints what it found (a version); if it failed,
/// every call fails the test with the reason and `hint`.
fn check_once(
    result: &OnceLock<Result<String, String>>,
    what: &str,
    hint: &str,
    probe: impl FnOnce() -> Result<String, String>,
) {
    let found = result.get_or_init(|| {
        let found = probe();
        if let Ok(version) = &found {
            eprintln!("{what}: {version}");
        }
        found
    });
    if let Err(e) = found {
        panic!("{e}. {hint}");
    }
}

/// [`python()`] as a command, unbuffered (so its lines can be read as they come).
pub fn python_command() -> Command {
    let mut cmd = Command::new(python());
    cmd.env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

/// How long a client script of `tests/clients/` may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(1800);

/// Runs a Python script from the workspace's `tests/clients/` with arguments; panics with
/// its output on failure, returns its stdout.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/clients")).join(script);
    run_script_ok(python_command().arg(path).args(args), SCRIPT_TIMEOUT)
}
