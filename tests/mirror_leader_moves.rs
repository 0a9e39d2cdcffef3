//! The daemon between two three-node clusters whose partition leaders keep moving: 100,000
//! records are mirrored while the leaders of the source topic, the target topic and the
//! target's progress topic move ten times on each side, and one node of each cluster is
//! stopped and started again. Requests that reach a node that no longer leads get
//! NOT_LEADER_OR_FOLLOWER (or FENCED_LEADER_EPOCH) as from Kafka; the daemon refreshes its
//! metadata and resends in order. Nothing may be lost and order must hold; duplicates are
//! reported (a resend after a leader move can write a batch twice only when its first
//! answer was lost, which these moves do not cause).

mod support;

use std::time::{Duration, Instant};

use support::cluster::{high_watermarks, move_leaders, ThreeNodes};
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
    let dir = tempfile::tempdir().unwrap();
    let source = ThreeNodes::start(&dir.path().join("source"), &[]);
    let target = ThreeNodes::start(&dir.path().join("target"), &[]);
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
    let deadline = Instant::now() + Duration::from_secs(180);
    let verdict = loop {
        let v = records::verify(&target.addr(), TOPIC, PARTITIONS, &acked, None);
        if v.lost == 0 || Instant::now() >= deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
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
