//! Topics driven through confluent-kafka (`tests/clients/discovery_admin.py`): create,
//! produce and read them, list them with their partition counts, describe their configs,
//! wait until a target holds a number of records, the one-flow topology the rule tests
//! mirror them with, and offsets translated in it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{run_python, DaemonProcess};

/// A flow `rules` from `east` to `west` of the topics matching `include`, names kept,
/// discovering every second.
pub fn flow(include: &str) -> String {
    format!("  - name: rules\n    source: east\n    target: west\n    topics: {{ include: [\"{include}\"] }}\n    rename: \"{{topic}}\"\n    discovery_interval: 1s\n")
}

/// Runs `discovery_admin.py` against `bootstrap`.
pub fn admin(bootstrap: &str, args: &[&str]) -> String {
    let mut all = vec![bootstrap];
    all.extend_from_slice(args);
    run_python("discovery_admin.py", &all)
}

/// Creates `topic` with `partitions` partitions and `configs` (`name=value`).
pub fn create(bootstrap: &str, topic: &str, partitions: i32, configs: &[&str]) {
    let partitions = partitions.to_string();
    let mut args = vec!["create", topic, &partitions];
    args.extend_from_slice(configs);
    admin(bootstrap, &args);
}

/// Writes `count` records with values `<prefix>-<partition>-<i>` to each of `partitions`
/// (every partition when empty).
pub fn produce(bootstrap: &str, topic: &str, prefix: &str, count: usize, partitions: &[i32]) {
    let count = count.to_string();
    let partitions: Vec<String> = partitions.iter().map(i32::to_string).collect();
    let mut args = vec!["produce", topic, prefix, &count];
    args.extend(partitions.iter().map(String::as_str));
    admin(bootstrap, &args);
}

/// Every topic of the cluster with its partition count.
pub fn topics(bootstrap: &str) -> BTreeMap<String, i32> {
    serde_json::from_str(&admin(bootstrap, &["topics"])).unwrap()
}

/// Non-internal topics (not starting with `__`).
pub fn user_topics(bootstrap: &str) -> BTreeMap<String, i32> {
    let mut t = topics(bootstrap);
    t.retain(|name, _| !name.starts_with("__"));
    t
}

/// `{partition: [value, ...]}` of a topic, as a confluent-kafka consumer reads it.
pub fn read(bootstrap: &str, topic: &str) -> serde_json::Value {
    serde_json::from_str(&admin(bootstrap, &["read", topic])).expect("read prints JSON")
}

/// `{partition: [value, ...]}` as [`contents`] returns it.
pub type Contents = BTreeMap<i32, Vec<String>>;

/// A topic's records per partition, typed; `None` when the topic does not exist.
pub fn contents(bootstrap: &str, topic: &str) -> Option<Contents> {
    let v: Option<BTreeMap<String, Vec<String>>> =
        serde_json::from_value(read(bootstrap, topic)).unwrap();
    v.map(|m| {
        m.into_iter()
            .map(|(p, r)| (p.parse().unwrap(), r))
            .collect()
    })
}

/// How many records `c` holds in all.
pub fn total(c: &Contents) -> usize {
    c.values().map(Vec::len).sum()
}

/// `{name: {"value", "source", "default"}}` from DescribeConfigs.
pub fn configs(bootstrap: &str, topic: &str) -> serde_json::Value {
    serde_json::from_str(&admin(bootstrap, &["configs", topic])).unwrap()
}

/// Waits until `topic` on `bootstrap` holds `want` records in partition 0..n.
pub fn wait_records(
    bootstrap: &str,
    topic: &str,
    want: usize,
    daemon: &DaemonProcess,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = read(bootstrap, topic);
        let n: usize = got
            .as_object()
            .map(|o| o.values().map(|v| v.as_array().map_or(0, Vec::len)).sum())
            .unwrap_or(0);
        if n >= want {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: {n} of {want} records after 120 s:\n{}",
            daemon.log.tail(40)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// What `kmirror offsets` answers for source `offset` of `topic`-`partition` in the flow
/// `rules` of `config`: the state ("exact", "gap", "not_yet", ...) and the target offset.
pub fn translate(config: &str, topic: &str, partition: i32, offset: i64) -> (String, i64) {
    translate_in(config, "rules", topic, partition, offset)
}

/// [`translate`] in the flow `flow`.
pub fn translate_in(
    config: &str,
    flow: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> (String, i64) {
    let out = super::kmirror_ok(&[
        "offsets",
        config,
        "--flow",
        flow,
        "--topic",
        topic,
        "--partition",
        &partition.to_string(),
        "--offset",
        &offset.to_string(),
        "--json",
    ]);
    let row = &serde_json::from_str::<serde_json::Value>(&out).unwrap()["partitions"][0];
    (
        row["state"].as_str().unwrap_or("").to_string(),
        row["target_offset"].as_i64().unwrap_or(-1),
    )
}
