//! Consumer groups with confluent-kafka (`tests/clients/groups.py`) on topics of
//! [`PARTITIONS`] partitions: commit, read committed offsets, consume as a group member,
//! read from given offsets; records as `[partition, key, value]`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

pub const TOPIC: &str = "orders";
pub const PARTITIONS: usize = 2;

/// The flow of [`group_sync_topology`].
pub const GROUP_SYNC_FLOW: &str = "east-to-west";

/// A topology in `dir` with clusters `east` (`source`) and `west` (`target`) and one flow,
/// [`GROUP_SYNC_FLOW`], of [`TOPIC`] under its own name, syncing the offsets of the groups
/// matching `groups` (a regex as YAML writes it in double quotes) every second.
pub fn group_sync_topology(
    dir: &std::path::Path,
    source: &BrokerProcess,
    target: &BrokerProcess,
    groups: &str,
) -> std::path::PathBuf {
    write_topology(
        dir,
        &[("east", &source.addr()), ("west", &target.addr())],
        &format!("  - name: {GROUP_SYNC_FLOW}\n    source: east\n    target: west\n    rename: \"{{topic}}\"\n    topics: {{ include: [\"{TOPIC}\"] }}\n    groups: {{ include: [\"{groups}\"], sync_offsets: true, interval: 1s }}\n"),
    )
}

/// Runs `groups.py COMMAND` on `topic` of `bootstrap`, for `group` if given, with `more`
/// arguments.
pub fn groups(
    command: &str,
    bootstrap: &str,
    topic: &str,
    group: Option<&str>,
    more: &[&str],
) -> String {
    let partitions = PARTITIONS.to_string();
    let mut args = vec![
        command,
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--partitions",
        &partitions,
    ];
    if let Some(group) = group {
        args.extend(["--group", group]);
    }
    args.extend(more);
    run_python("groups.py", &args)
}

/// The JSON after `prefix` on the line of `out` that starts with it.
pub fn json<T: serde::de::DeserializeOwned>(out: &str, prefix: &str) -> T {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix} line in:\n{out}"));
    serde_json::from_str(line).unwrap()
}

pub fn committed(bootstrap: &str, topic: &str, group: &str) -> BTreeMap<String, i64> {
    json(
        &groups("committed", bootstrap, topic, Some(group), &[]),
        "COMMITTED ",
    )
}

/// The metadata of `group`'s commits, by partition; a commit without metadata (null) is
/// left out.
pub fn committed_metadata(bootstrap: &str, topic: &str, group: &str) -> BTreeMap<String, String> {
    let all: BTreeMap<String, Option<String>> = json(
        &groups("committed", bootstrap, topic, Some(group), &[]),
        "METADATA ",
    );
    all.into_iter()
        .filter_map(|(partition, metadata)| Some((partition, metadata?)))
        .collect()
}

/// Commits `offsets` (`"0:37,1:200"`) for `group`, with the commit metadata `metadata`.
pub fn commit_with_metadata(
    bootstrap: &str,
    topic: &str,
    group: &str,
    offsets: &str,
    metadata: &str,
) {
    groups(
        "commit",
        bootstrap,
        topic,
        Some(group),
        &["--offsets", offsets, "--metadata", metadata],
    );
}

pub fn commit(bootstrap: &str, topic: &str, group: &str, offsets: &str) {
    groups(
        "commit",
        bootstrap,
        topic,
        Some(group),
        &["--offsets", offsets],
    );
}

/// The records of `bootstrap` from `offsets` (`"0:37,1:200"`) to the end.
pub fn read_from(bootstrap: &str, topic: &str, offsets: &str) -> Vec<Value> {
    json(
        &groups("read", bootstrap, topic, None, &["--from", offsets]),
        "RECORDS ",
    )
}

/// What a consumer of `group` on `bootstrap` reads from its committed positions on.
pub fn consume(bootstrap: &str, topic: &str, group: &str) -> Vec<Value> {
    json(
        &groups("consume", bootstrap, topic, Some(group), &[]),
        "RECORDS ",
    )
}

/// What a consumer of `group` reads from its committed positions on, stopping after `max`
/// records (or at the end) and committing its positions.
pub fn consume_some(bootstrap: &str, topic: &str, group: &str, max: usize) -> Vec<Value> {
    let max = max.to_string();
    json(
        &groups("consume", bootstrap, topic, Some(group), &["--max", &max]),
        "RECORDS ",
    )
}

/// The records of one partition, in order.
pub fn partition(records: &[Value], p: i64) -> Vec<Value> {
    records
        .iter()
        .filter(|r| r[0].as_i64() == Some(p))
        .cloned()
        .collect()
}

pub fn wait_for_committed(
    bootstrap: &str,
    topic: &str,
    group: &str,
    want: usize,
    daemon: &DaemonProcess,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = committed(bootstrap, topic, group);
        if got.len() >= want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "group {group} has {got:?} on the target after 60 s:\n{}",
            daemon.log.tail(30)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
