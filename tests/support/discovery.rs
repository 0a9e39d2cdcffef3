//! What the topic discovery tests share: a source and a target broker (`east` and `west`)
//! with their topology, a daemon started until ready and stopped cleanly, and waits that
//! poll for up to two minutes (until a check holds, until a target topic holds what its
//! source topic holds).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::topics::{contents, Contents};
use super::{write_topology, BrokerProcess, DaemonProcess};

/// How long a wait polls.
pub const CONVERGE: Duration = Duration::from_secs(120);

/// The brokers of [`brokers`], by role.
pub struct Clusters {
    pub dir: tempfile::TempDir,
    pub source: BrokerProcess,
    pub target: BrokerProcess,
}

impl Clusters {
    pub fn start() -> Self {
        Self::start_with(&[], &[])
    }

    /// Brokers started with `source_args` and `target_args` (e.g. `--emulate-kafka 3.6`).
    pub fn start_with(source_args: &[&str], target_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let source = BrokerProcess::start(&dir.path().join("source"), source_args);
        let target = BrokerProcess::start(&dir.path().join("target"), target_args);
        Self {
            dir,
            source,
            target,
        }
    }

    /// A topology with clusters `east` (source) and `west` (target) and `flows_yaml`.
    pub fn topology(&self, flows_yaml: &str) -> PathBuf {
        write_topology(
            self.dir.path(),
            &[("east", &self.source.addr()), ("west", &self.target.addr())],
            flows_yaml,
        )
    }
}

/// The flow `east-to-west` of the topics matching `include` (a regex as YAML writes it in
/// double quotes), discovering every second, with the settings of `extra_yaml` (indented
/// lines) added.
pub fn east_to_west(include: &str, extra_yaml: &str) -> String {
    format!(
        "  - name: east-to-west\n    source: east\n    target: west\n    topics: {{ include: [\"{include}\"] }}\n{extra_yaml}    discovery_interval: 1s\n"
    )
}

/// A daemon on `config` that sent `READY=1`.
pub fn started(config: &Path) -> DaemonProcess {
    let daemon = DaemonProcess::start(config);
    assert!(
        daemon.wait_ready(Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    daemon
}

/// SIGTERM and a clean exit.
pub fn stop(mut daemon: DaemonProcess) {
    daemon.terminate_ok();
}

/// Polls `check` until it returns `Some`, for up to [`CONVERGE`].
pub fn wait_until<T>(
    what: &str,
    daemon: &DaemonProcess,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + CONVERGE;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; daemon log:\n{}",
            daemon.log.tail(40)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Waits until `target_topic` on the target holds exactly what `source_topic` holds on
/// the source, partition by partition, and returns it.
pub fn wait_mirrored(
    daemon: &DaemonProcess,
    source: &BrokerProcess,
    source_topic: &str,
    target: &BrokerProcess,
    target_topic: &str,
) -> Contents {
    let expected = contents(&source.addr(), source_topic).expect("source topic exists");
    let mut last = None;
    let what = format!("{source_topic} to be mirrored to {target_topic}");
    let deadline = Instant::now() + CONVERGE;
    loop {
        let got = contents(&target.addr(), target_topic);
        if got.as_ref() == Some(&expected) {
            return expected;
        }
        if let Some(g) = &got {
            // Never more than the source, and never anything else.
            for (p, records) in g {
                let want = expected.get(p).cloned().unwrap_or_default();
                assert!(
                    want.starts_with(records),
                    "{target_topic}[{p}] is not a prefix of {source_topic}[{p}]:\n target {records:?}\n source {want:?}"
                );
            }
        }
        last = got.or(last);
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: source {expected:?}\ntarget {last:?}\ndaemon log:\n{}",
            daemon.log.tail(40)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
