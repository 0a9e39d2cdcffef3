//! MirrorMaker 2 compatibility (issue 10): a flow with `mm2_compat: true` writes MM2's
//! checkpoints to `<source>.checkpoints.internal` and heartbeats to `heartbeats` on its
//! target. A confluent-kafka reader decodes them with MM2's documented layouts (written
//! from Kafka's Checkpoint.java and Heartbeat.java, not from kmirror's encoder) and every
//! field is checked: the checkpoint offsets are the translation `kmirror offsets` gives.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::groups::*;
use support::records::Produce;
use support::*;

const FLOW: &str = "east-to-west";

/// The decoded MM2 records of `topic` on `bootstrap`.
fn mm2(bootstrap: &str, topic: &str, kind: &str) -> Vec<Value> {
    json(
        &groups("mm2", bootstrap, topic, None, &["--kind", kind]),
        "MM2 ",
    )
}

#[test]
fn checkpoints_and_heartbeats_follow_mirrormaker_2s_layout() {
    let (dir, [source, target]) = brokers();
    let produced = Produce {
        records: 120,
        create: true,
        ..Produce::new(&source.addr(), TOPIC, PARTITIONS, &dir.path().join("acked"))
    }
    .run();
    assert_eq!(produced, 240);
    // Target offsets differ from source offsets: the target topic holds 30 records first.
    let local = Produce {
        records: 30,
        create: true,
        ..Produce::new(
            &target.addr(),
            "east.orders",
            PARTITIONS,
            &dir.path().join("local"),
        )
    }
    .run();
    assert_eq!(local, 60);
    // Kafka Streams keeps a partition's stream time in the commit's metadata.
    let metadata = "streams-partition-time=1700000000000";
    commit_with_metadata(&source.addr(), TOPIC, "app", "0:37,1:120", metadata);
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        &format!("  - name: {FLOW}\n    source: east\n    target: west\n    topics: {{ include: [\"{TOPIC}\"] }}\n    mm2_compat: true\n    groups: {{ include: [\"app\"], interval: 1s }}\n"),
    );
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let daemon = DaemonProcess::start(&config);
    let deadline = Instant::now() + Duration::from_secs(60);
    let checkpoints = loop {
        let got = mm2(&target.addr(), "east.checkpoints.internal", "checkpoint");
        // The last checkpoint per partition (a partition not mirrored yet waits).
        let last = |p: i64| got.iter().rev().find(|c| c["partition"] == p).cloned();
        if let (Some(c0), Some(c1)) = (last(0), last(1)) {
            if c1["upstream_offset"] == 120 && c1["offset"] == 150 {
                break [c0, c1];
            }
        }
        assert!(
            Instant::now() < deadline,
            "{got:?}\n{}",
            daemon.log.tail(20)
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    for (c, (upstream, offset)) in checkpoints.iter().zip([(37, 67), (120, 150)]) {
        assert_eq!(c["group"], "app", "{c}");
        assert_eq!(c["topic"], "east.orders", "the target topic: {c}");
        assert_eq!(c["version"], 0, "{c}");
        // librdkafka commits the metadata as a C string, with its NUL: the source holds
        // those bytes, and so does the checkpoint.
        assert_eq!(c["metadata"], format!("{metadata}\0"), "{c}");
        assert_eq!(
            (c["upstream_offset"].as_i64(), c["offset"].as_i64()),
            (Some(upstream), Some(offset)),
            "{c}"
        );
    }
    let mut beats = mm2(&target.addr(), "heartbeats", "heartbeat");
    while beats.is_empty() {
        assert!(Instant::now() < deadline, "{}", daemon.log.tail(20));
        std::thread::sleep(Duration::from_millis(300));
        beats = mm2(&target.addr(), "heartbeats", "heartbeat");
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for b in &beats {
        assert_eq!(
            (b["source"].as_str(), b["target"].as_str()),
            (Some("east"), Some("west")),
            "{b}"
        );
        assert_eq!(b["version"], 0, "{b}");
        let at = b["timestamp"].as_i64().unwrap();
        assert!(started_ms <= at && at <= now_ms, "{b}");
    }
    // Without `sync_offsets`, nothing is committed to the target group.
    assert!(committed(&target.addr(), "east.orders", "app").is_empty());
}
