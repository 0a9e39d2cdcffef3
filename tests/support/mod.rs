//! Helpers for this package's end-to-end tests, built on the process harness of
//! `kmirror-testkit` (re-exported here, so a test writes `use support::*`).
// Each test file uses a part of these helpers.
#![allow(dead_code)]

pub mod cluster;
pub mod discovery;
pub mod groups;
pub mod hand_log;
pub mod records;
pub mod topics;

pub use kmirror_testkit::*;

/// A source and a target broker in a temporary directory.
pub fn brokers() -> (tempfile::TempDir, [BrokerProcess; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    (dir, [source, target])
}

/// A topology with one flow, `east-to-west`, of the topics matching `topics` from the first
/// broker (`east`) to the second (`west`).
pub fn one_flow(
    dir: &std::path::Path,
    [source, target]: &[&BrokerProcess; 2],
    topics: &str,
) -> std::path::PathBuf {
    write_topology(
        dir,
        &[("east", &source.addr()), ("west", &target.addr())],
        &format!("  - name: east-to-west\n    source: east\n    target: west\n    topics: {{ include: [\"{topics}\"] }}\n"),
    )
}

/// Throw-away TLS certificates in `dir` from `scripts/gen-certs.sh`: ca.pem, broker.pem and
/// broker.key (localhost, 127.0.0.1), client.pem and client.key.
pub fn certificates(dir: &std::path::Path) -> std::path::PathBuf {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gen-certs.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gen-certs.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.to_path_buf()
}
