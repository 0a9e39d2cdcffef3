//! Topics driven through confluent-kafka (`tests/clients/discovery_admin.py`): create,
//! produce and read them, wait until a target holds a number of records, and the one-flow
//! topology the rule tests mirror them with.

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

/// `{partition: [value, ...]}` of a topic, as a confluent-kafka consumer reads it.
pub fn read(bootstrap: &str, topic: &str) -> serde_json::Value {
    serde_json::from_str(&run_python(
        "discovery_admin.py",
        &[bootstrap, "read", topic],
    ))
    .expect("read prints JSON")
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
