//! The daemon between two three-node clusters whose partition leaders keep moving: 100,000
//! records are mirrored while the leaders of the source topic, the target topic and the
//! target's progress topic move ten times on each side, and one node of each cluster is
//! stopped and started again. Requests that reach a node that no longer leads get
//! NOT_LEADER_OR_FOLLOWER (or FENCED_LEADER_EPOCH) as from Kafka; the daemon refreshes its
//! metadata and resends in order. Nothing may be lost and order must hold; duplicates are
//! reported (a resend after a leader move can write a batch twice only when its first
//! answer was lost, which these moves do not cause). At Kafka 4.1 versions and with both
//! clusters emulating Kafka 2.8.

mod support;

use std::time::{Duration, Instant};

use kmirror::client::fetch::{self, FetchWant};
use kmirror_wire::errors::ResponseError;
use support::cluster::{check_client, high_watermarks, move_leaders};
use support::records::{self, join_producer, Produce};
use support::*;

const TOPIC: &str = "moving";
const PARTITIONS: usize = 6;
const RECORDS_PER_PARTITION: u32 = 16_667;

/// Waits until the target holds more records than `than` (the mirror made progress).
fn wait_progress(
    rt: &tokio::runtime::Runtime,
    target: &str,
    than: i64,
    daemon: &DaemonProcess,
    total: i64,
) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = rt.block_on(high_watermarks(target, TOPIC));
        if now > than || now >= total {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "no progress past {than} records in 120 s:\n{}",
            daemon.log.tail(60)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn leader_moves_and_node_restarts_on_both_sides_lose_nothing() {
    leader_moves_and_node_restarts(&[]);
}

/// The same against brokers emulating Kafka 2.8: Fetch v12 and Produce v9, by name.
#[test]
fn leader_moves_and_node_restarts_on_both_sides_lose_nothing_emulating_kafka_2_8() {
    leader_moves_and_node_restarts(&["--emulate-kafka", "2.8"]);
}

fn leader_moves_and_node_restarts(broker_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let source = ThreeNodes::start(&dir.path().join("source"), broker_args);
    let target = ThreeNodes::start(&dir.path().join("target"), broker_args);
    let acked = dir.path().join("acked.json");
    let produce = Produce {
        records: RECORDS_PER_PARTITION,
        rate: 5_000,
        ..Produce::new(&source.addr(), TOPIC, PARTITIONS, &acked)
    };
    Produce {
        records: 0,
        create: true,
        ..produce.clone()
    }
    .run();
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        &format!("  - name: moves\n    source: east\n    target: west\n    topics: {{ include: [\"{TOPIC}\"] }}\n    rename: \"{{topic}}\"\n    discovery_interval: 1s\n"),
    );
    let producer = produce.spawn();
    let daemon = DaemonProcess::start(&config);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let total = i64::from(RECORDS_PER_PARTITION) * PARTITIONS as i64;
    let mut seen = wait_progress(&rt, &target.addr(), 0, &daemon, total);
    for round in 1..=10 {
        let moved_source = rt.block_on(move_leaders(&source.addr(), &[TOPIC]));
        let moved_target =
            rt.block_on(move_leaders(&target.addr(), &[TOPIC, "__kmirror_progress"]));
        seen = wait_progress(&rt, &target.addr(), seen, &daemon, total);
        eprintln!("move {round}: {moved_source} source and {moved_target} target leaders moved; target holds {seen}");
    }
    for side in [&source, &target] {
        side.node(1, "stop");
        seen = wait_progress(&rt, &target.addr(), seen, &daemon, total);
        side.node(1, "start");
        seen = wait_progress(&rt, &target.addr(), seen, &daemon, total);
        eprintln!(
            "node 1 of {} stopped and started; target holds {seen}",
            side.addr()
        );
    }
    let acked_count = join_producer(producer);
    let verdict = records::verify_until_complete(
        &target.addr(),
        TOPIC,
        PARTITIONS,
        &acked,
        Duration::from_secs(180),
    );
    eprintln!("{}", verdict.report);
    eprintln!(
        "duplicates: {} (longest run {})",
        verdict.duplicated, verdict.max_dup_run
    );
    verdict.assert_complete_and_ordered(acked_count);
    assert!(
        !daemon.log.contains(" ERROR "),
        "the daemon reported errors:\n{}",
        daemon.log.tail(60)
    );
}

/// Fetch carries the partition's leader epoch from Metadata, as Kafka's consumer does
/// (KIP-320): the new leader refuses the epoch before a move with FENCED_LEADER_EPOCH
/// (Kafka: Partition.localLogWithEpochOrThrow) and serves the refreshed one. With -1, as
/// before, the stale fetch would be served. At Kafka 4.1 versions and emulating 2.8.
fn fetch_carries_the_leader_epoch(broker_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let source = ThreeNodes::start(&dir.path().join("source"), broker_args);
    Produce {
        records: 10,
        create: true,
        ..Produce::new(&source.addr(), TOPIC, 1, &dir.path().join("acked.json"))
    }
    .run();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = check_client(&source.addr());
        let before = client.refresh_metadata().await.unwrap();
        let old_epoch = before.leader_epoch(TOPIC, 0);
        assert!(old_epoch >= 0, "Metadata gave no leader epoch");
        assert_eq!(move_leaders(&source.addr(), &[TOPIC]).await, 1);
        let after = client.refresh_metadata().await.unwrap();
        let new_epoch = after.leader_epoch(TOPIC, 0);
        assert!(new_epoch > old_epoch, "epoch {old_epoch} -> {new_epoch}");
        let leader = client.leader(TOPIC, 0).await.unwrap();
        let fetch_at = |leader_epoch| {
            let want = FetchWant {
                topic: TOPIC.to_string(),
                topic_id: after.topic_id(TOPIC),
                partition: 0,
                offset: 0,
                max_bytes: None,
                leader_epoch,
                last_fetched_epoch: -1,
            };
            let leader = leader.clone();
            async move { fetch::fetch(&leader, &[want], 0, 1 << 20, 1 << 20).await }
        };
        let stale = fetch_at(old_epoch).await.unwrap();
        assert_eq!(
            stale[0].error_code,
            ResponseError::FencedLeaderEpoch.code(),
            "a fetch at the epoch before the move"
        );
        assert!(stale[0].records.is_empty());
        let current = fetch_at(new_epoch).await.unwrap();
        assert_eq!(current[0].error_code, 0, "a fetch at the current epoch");
        assert!(!current[0].records.is_empty());
    });
}

#[test]
fn fetch_carries_the_leader_epoch_at_kafka_4_1_versions() {
    fetch_carries_the_leader_epoch(&[]);
}

#[test]
fn fetch_carries_the_leader_epoch_emulating_kafka_2_8() {
    fetch_carries_the_leader_epoch(&["--emulate-kafka", "2.8"]);
}
