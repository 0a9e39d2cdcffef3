//! What a test wrote and what arrived: the confluent-kafka producer of `(partition, seq)`
//! records (`tests/clients/crash_produce.py`) and the verifier that compares a target topic
//! with what the source acknowledged (`tests/clients/crash_verify.py`); and the byte-for-byte
//! comparison of source and target topics (`tests/clients/fidelity_verify.py`).

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use super::run_python;

/// A producer run: `records` per partition of `topic`, `rate` records/s over all
/// partitions (0: as fast as possible); acknowledged sequences go to `acked`.
#[derive(Debug, Clone)]
pub struct Produce {
    pub bootstrap: String,
    pub topic: String,
    pub partitions: usize,
    pub records: u32,
    pub rate: u32,
    pub value_bytes: u32,
    pub linger_ms: u32,
    pub acked: PathBuf,
    /// Create the topic with `partitions` partitions first.
    pub create: bool,
}

impl Produce {
    pub fn new(bootstrap: &str, topic: &str, partitions: usize, acked: &Path) -> Self {
        Self {
            bootstrap: bootstrap.to_string(),
            topic: topic.to_string(),
            partitions,
            records: 0,
            rate: 0,
            value_bytes: 100,
            linger_ms: 5,
            acked: acked.to_path_buf(),
            create: false,
        }
    }

    fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "--bootstrap",
            &self.bootstrap,
            "--topic",
            &self.topic,
            "--partitions",
            &self.partitions.to_string(),
            "--records",
            &self.records.to_string(),
            "--rate",
            &self.rate.to_string(),
            "--value-bytes",
            &self.value_bytes.to_string(),
            "--linger-ms",
            &self.linger_ms.to_string(),
            "--acked",
            self.acked.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if self.create {
            args.push("--create".into());
        }
        args
    }

    /// Runs the producer to the end (and checks it like [`join_producer`]).
    pub fn run(&self) -> u64 {
        summary(&self.run_raw())
    }

    fn run_raw(&self) -> String {
        let args = self.args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_python("crash_produce.py", &args)
    }

    /// Runs the producer in the background; [`join_producer`] waits for it.
    pub fn spawn(&self) -> JoinHandle<String> {
        let me = self.clone();
        std::thread::spawn(move || me.run_raw())
    }
}

/// Waits for a producer; panics unless the source acknowledged every record, which it
/// returns the count of.
pub fn join_producer(producer: JoinHandle<String>) -> u64 {
    summary(&producer.join().expect("producer thread"))
}

fn summary(out: &str) -> u64 {
    eprintln!("{}", out.trim());
    let line = out
        .lines()
        .find(|l| l.starts_with("PRODUCED"))
        .expect("producer summary");
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    assert_eq!(
        field("failed"),
        0,
        "the source refused records, the test cannot judge the mirror: {line}"
    );
    assert_eq!(field("acked"), field("records"), "{line}");
    field("acked")
}

/// The verifier's totals.
#[derive(Debug)]
pub struct Verdict {
    pub records: u64,
    pub acked: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub max_dup_run: u64,
    pub misplaced: u64,
    pub lost_vs_source: u64,
    pub report: String,
}

impl Verdict {
    /// Nothing acknowledged is missing, first occurrences are in order, nothing is in the
    /// wrong partition.
    pub fn assert_complete_and_ordered(&self, acked: u64) {
        assert_eq!(self.acked, acked);
        assert_eq!(
            self.lost, 0,
            "records acknowledged by the source are missing on the target:\n{}",
            self.report
        );
        assert_eq!(
            self.reordered, 0,
            "first occurrences out of order:\n{}",
            self.report
        );
        assert_eq!(
            self.misplaced, 0,
            "records in the wrong partition or with the wrong key:\n{}",
            self.report
        );
    }
}

/// [`verify`] again every half second until nothing acknowledged is missing from the
/// target or `within` passed (a high watermark counts duplicates too, so it cannot tell
/// when a mirror is complete); the last verdict.
pub fn verify_until_complete(
    target: &str,
    topic: &str,
    partitions: usize,
    acked: &Path,
    within: std::time::Duration,
) -> Verdict {
    let deadline = std::time::Instant::now() + within;
    loop {
        let v = verify(target, topic, partitions, acked, None);
        if v.lost == 0 || std::time::Instant::now() >= deadline {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// Reads `topic` on `target` (and on `source`, when given) and compares it with `acked`.
pub fn verify(
    target: &str,
    topic: &str,
    partitions: usize,
    acked: &Path,
    source: Option<&str>,
) -> Verdict {
    let mut args = vec![
        "--bootstrap".to_string(),
        target.to_string(),
        "--topic".into(),
        topic.into(),
        "--partitions".into(),
        partitions.to_string(),
        "--acked".into(),
        acked.to_str().unwrap().into(),
    ];
    if let Some(s) = source {
        args.extend(["--source".to_string(), s.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_python("crash_verify.py", &args);
    let json = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line:\n{out}"));
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {json}"));
    Verdict {
        records: n("records"),
        acked: n("acked"),
        lost: n("lost"),
        duplicated: n("duplicated"),
        reordered: n("reordered"),
        max_dup_run: n("max_dup_run"),
        misplaced: n("misplaced"),
        lost_vs_source: n("lost_vs_source"),
        report: out
            .lines()
            .filter(|l| !l.starts_with("RESULT"))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// Compares every partition of each of `topics` (comma-separated) on `source` with its copy
/// on `target` (named by `rename`, `{topic}` the source name), record for record: key,
/// value, headers, timestamp type and timestamp. `expected` source records in all; `extra`
/// options of the script. Panics unless they are equal; returns the script's report.
pub fn assert_byte_equal(
    (source, target): (&str, &str),
    topics: &str,
    rename: &str,
    expected: usize,
    extra: &[&str],
) -> String {
    let expected = expected.to_string();
    let mut args = vec![
        "--source",
        source,
        "--target",
        target,
        "--topics",
        topics,
        "--rename",
        rename,
        "--expected",
        &expected,
        "--wait",
        "120",
    ];
    args.extend(extra);
    let verified = run_python("fidelity_verify.py", &args);
    assert!(verified.contains("RESULT ok"), "{verified}");
    verified
}
