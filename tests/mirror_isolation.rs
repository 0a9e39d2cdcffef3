//! One partition stuck on the target stalls nothing else. The target partition of topic
//! `stuck` is given a single replica, on a node that is then stopped: it has no leader, so
//! every produce to it is retried (NOT_LEADER_OR_FOLLOWER / no leader) for as long as the
//! node is down. Topic `free` must still be mirrored completely while the stuck partition
//! holds a backlog far larger than the flow's `max_in_flight_bytes`; `/readyz` names the
//! stuck partition though the flow goes on acknowledging; once the node is back the stuck
//! partition catches up without loss and the daemon is ready again.
//!
//! A source partition without a leader when the flow starts (its only replica's node is
//! down) cannot give its start offset: it waits, counted with an unknown lag and named by
//! `/readyz`, while the other partitions are mirrored; it starts once its node is back
//! (with `start_from: latest`, at the source's end, as the others did).
//!
//! A target partition with fewer in-sync replicas than its `min.insync.replicas` refuses
//! acks=all produces (NOT_ENOUGH_REPLICAS, as Kafka's Partition.appendRecordsToLeader):
//! the daemon retries them, reports why, and writes everything once the replica is back.

mod support;

use std::time::Duration;

use support::cluster::{high_watermarks, reassign, wait_for_records};
use support::records::{self, Produce};
use support::*;

#[test]
fn a_partition_stuck_on_the_target_does_not_stall_the_others_at_kafka_4_1_versions() {
    stuck_partition(&[]);
}

#[test]
fn a_partition_stuck_on_the_target_does_not_stall_the_others_emulating_kafka_2_8() {
    stuck_partition(&["--emulate-kafka", "2.8"]);
}

/// Both clusters with `broker_args`.
fn stuck_partition(broker_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), broker_args);
    let target = ThreeNodes::start(&dir.path().join("target"), broker_args);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let acked_stuck = dir.path().join("stuck.json");
    let acked_free = dir.path().join("free.json");
    for (topic, acked) in [("stuck", &acked_stuck), ("free", &acked_free)] {
        Produce {
            create: true,
            ..Produce::new(&source.addr(), topic, 1, acked)
        }
        .run();
        run_python(
            "discovery_admin.py",
            &[&target.addr(), "create", topic, "1"],
        );
    }
    rt.block_on(reassign(&target.addr(), "stuck", 0, &[2]));
    // `free` created at replication factor 1 may have been placed on node 2 too.
    rt.block_on(reassign(&target.addr(), "free", 0, &[0, 1]));
    target.node(2, "stop");
    // 20 MiB waiting for the stuck partition, five times the flow's memory.
    let stuck = Produce {
        records: 2_000,
        value_bytes: 10_240,
        ..Produce::new(&source.addr(), "stuck", 1, &acked_stuck)
    }
    .run();
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        "  - name: iso\n    source: east\n    target: west\n    topics: { include: [\"stuck|free\"] }\n    rename: \"{topic}\"\n    discovery_interval: 1s\n    sync_configs: { enabled: false }\n    limits: { max_in_flight_bytes: 4MiB }\n",
    );
    let listen = add_telemetry_listener(&config);
    let daemon = DaemonProcess::start(&config);
    assert!(
        daemon.wait_ready(Duration::from_secs(60)),
        "{}",
        daemon.log.tail(40)
    );
    // `free` keeps flowing for 90 s, so the flow keeps acknowledging while `stuck` cannot.
    let free = Produce {
        records: 4_500,
        rate: 50,
        value_bytes: 1_024,
        ..Produce::new(&source.addr(), "free", 1, &acked_free)
    }
    .spawn();
    // The stuck partition alone makes the daemon not ready, once it has not moved for a
    // minute, though the flow acknowledges all along; the reason gives its error (its
    // leader is gone), not only that it is stuck.
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    loop {
        let readyz = http_get(&listen, "/readyz");
        if readyz.as_ref().is_some_and(|(code, body)| {
            // "... partition stuck-0: N records behind and not advanced for S s: <error>"
            *code == 503
                && body.lines().any(|l| {
                    l.contains("partition stuck-0")
                        && l.split_once("not advanced for")
                            .is_some_and(|(_, e)| e.contains("leader"))
                })
        }) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz does not name the stuck partition: {readyz:?}\n{}",
            daemon.log.tail(20)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let free = records::join_producer(free);
    wait_for_records(&rt, &target.addr(), "free", free as i64, &daemon);
    assert_eq!(
        rt.block_on(high_watermarks(&target.addr(), "stuck")),
        0,
        "the stuck partition has no leader"
    );
    assert!(
        daemon.log.contains("WARN"),
        "the stuck partition's retries are reported:\n{}",
        daemon.log.tail(20)
    );

    target.node(2, "start");
    wait_for_records(&rt, &target.addr(), "stuck", stuck as i64, &daemon);
    for (topic, acked, n) in [("stuck", &acked_stuck, stuck), ("free", &acked_free, free)] {
        let v = records::verify(&target.addr(), topic, 1, acked, None);
        v.assert_complete_and_ordered(n);
    }
    assert!(!daemon.log.contains(" ERROR "), "{}", daemon.log.tail(40));
    support::discovery::wait_until("ready once the partition caught up", &daemon, || {
        (http_get(&listen, "/readyz")?.0 == 200).then_some(())
    });
}

#[test]
fn a_source_partition_without_a_leader_at_start_waits_and_stalls_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let source = ThreeNodes::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let acked_offline = dir.path().join("offline.json");
    let acked_free = dir.path().join("free.json");
    let mut produced = Vec::new();
    // "a-offline" sorts first: its start offset is asked before "free"'s.
    for (topic, acked, replicas) in [
        ("a-offline", &acked_offline, [2]),
        ("free", &acked_free, [0]),
    ] {
        Produce {
            create: true,
            records: 0,
            ..Produce::new(&source.addr(), topic, 1, acked)
        }
        .run();
        rt.block_on(reassign(&source.addr(), topic, 0, &replicas));
        produced.push(
            Produce {
                records: 200,
                ..Produce::new(&source.addr(), topic, 1, acked)
            }
            .run(),
        );
    }
    source.node(2, "stop");
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        "  - name: iso\n    source: east\n    target: west\n    topics: { include: [\"a-offline|free|late\"] }\n    rename: \"{topic}\"\n    discovery_interval: 1s\n",
    );
    let listen = add_telemetry_listener(&config);
    let daemon = DaemonProcess::start(&config);
    wait_for_records(&rt, &target.addr(), "free", produced[1] as i64, &daemon);
    // The partition that could not start is counted and named, not left out.
    support::discovery::wait_until("/readyz naming the partition not started", &daemon, || {
        let (code, body) = http_get(&listen, "/readyz")?;
        (code == 503
            && body.contains("partition a-offline-0: not started: cannot find its start offset"))
        .then_some(())
    });
    let (_, status) = http_get(&listen, "/status").expect("/status answers");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let flow = &status["flows"][0];
    assert_eq!(flow["lag_unknown_partitions"], 1, "{flow}");

    // The next rounds ask it once each, quietly: a topic created meanwhile starts without
    // waiting for its retries, and they are not logged again.
    let retries = || {
        daemon
            .log
            .text()
            .lines()
            .filter(|l| l.contains("Request failed; retrying.") && l.contains("ListOffsets"))
            .count()
    };
    let said_before = retries();
    let acked_late = dir.path().join("late.json");
    Produce {
        create: true,
        records: 0,
        ..Produce::new(&source.addr(), "late", 1, &acked_late)
    }
    .run();
    rt.block_on(reassign(&source.addr(), "late", 0, &[0]));
    let late = Produce {
        records: 50,
        ..Produce::new(&source.addr(), "late", 1, &acked_late)
    }
    .run();
    wait_for_records(&rt, &target.addr(), "late", late as i64, &daemon);
    assert_eq!(retries(), said_before, "{}", daemon.log.tail(30));

    source.node(2, "start");
    wait_for_records(
        &rt,
        &target.addr(),
        "a-offline",
        produced[0] as i64,
        &daemon,
    );
    for (topic, acked, n) in [
        ("a-offline", &acked_offline, produced[0]),
        ("free", &acked_free, produced[1]),
    ] {
        records::verify(&target.addr(), topic, 1, acked, None).assert_complete_and_ordered(n);
    }
    support::discovery::wait_until("ready once every partition started", &daemon, || {
        (http_get(&listen, "/readyz")?.0 == 200).then_some(())
    });
    // Its node down again while it runs: said, and its lag unknown, not a stale 0.
    let said = |line: &str| {
        let found = daemon.log.wait_for(line, Duration::from_secs(60));
        assert!(found, "no {line:?}:\n{}", daemon.log.tail(30));
    };
    source.node(2, "stop");
    said("The source partition has no leader");
    support::discovery::wait_until("the partition's lag unknown", &daemon, || {
        let (_, status) = http_get(&listen, "/status")?;
        let status: serde_json::Value = serde_json::from_str(&status).ok()?;
        (status["flows"][0]["lag_unknown_partitions"] == 1).then_some(())
    });
    source.node(2, "start");
    said("The source partition has a leader again");
}

/// With `start_from: latest`, a partition found at the flow's first start whose leader is
/// down then starts at the source's end once its leader is back, as the others did, also
/// when the daemon restarted meanwhile: what was written to it before the flow started is
/// not mirrored, what comes after is.
#[test]
fn start_from_latest_applies_to_a_partition_that_could_start_only_later() {
    let dir = tempfile::tempdir().unwrap();
    let source = ThreeNodes::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (topic, replicas) in [("a-offline", [2]), ("free", [0])] {
        let acked = dir.path().join(format!("{topic}-before.json"));
        Produce {
            create: true,
            records: 0,
            ..Produce::new(&source.addr(), topic, 1, &acked)
        }
        .run();
        rt.block_on(reassign(&source.addr(), topic, 0, &replicas));
        Produce {
            records: 100,
            ..Produce::new(&source.addr(), topic, 1, &acked)
        }
        .run();
    }
    source.node(2, "stop");
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        "  - name: iso\n    source: east\n    target: west\n    topics: { include: [\"a-offline|free\"] }\n    rename: \"{topic}\"\n    start_from: latest\n    discovery_interval: 1s\n",
    );
    let mut daemon = DaemonProcess::start(&config);
    let said = |daemon: &DaemonProcess, line: &str| {
        let found = daemon.log.wait_for(line, Duration::from_secs(60));
        assert!(found, "no {line:?}:\n{}", daemon.log.tail(30));
    };
    // The first round is over once it says the partition it could not start.
    said(&daemon, "Cannot find the start offset");
    let after: Vec<_> = ["free", "a-offline"]
        .iter()
        .map(|t| dir.path().join(format!("{t}-after.json")))
        .collect();
    let free = Produce {
        records: 50,
        ..Produce::new(&source.addr(), "free", 1, &after[0])
    }
    .run();
    wait_for_records(&rt, &target.addr(), "free", free as i64, &daemon);

    // Restarted while the partition still cannot start, the daemon still starts it at
    // the end (kept with the progress), not from its beginning as a partition found later.
    daemon.terminate_ok();
    daemon.restart();
    said(&daemon, "Cannot find the start offset");
    source.node(2, "start");
    said(&daemon, "Found the start offset; the partition starts.");
    let offline = Produce {
        records: 30,
        ..Produce::new(&source.addr(), "a-offline", 1, &after[1])
    }
    .run();
    wait_for_records(&rt, &target.addr(), "a-offline", offline as i64, &daemon);
    for (topic, acked, n) in [("free", &after[0], free), ("a-offline", &after[1], offline)] {
        records::verify(&target.addr(), topic, 1, acked, None).assert_complete_and_ordered(n);
        assert_eq!(
            rt.block_on(high_watermarks(&target.addr(), topic)),
            n as i64,
            "{topic}: records written before the flow started were mirrored:\n{}",
            daemon.log.tail(30)
        );
    }
}

#[test]
fn a_target_partition_short_of_min_insync_replicas_waits_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = ThreeNodes::start(&dir.path().join("target"), &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let acked = dir.path().join("short.json");
    let sent = Produce {
        create: true,
        records: 1_000,
        ..Produce::new(&source.addr(), "short", 1, &acked)
    }
    .run();
    support::topics::create(&target.addr(), "short", 1, &["min.insync.replicas=3"]);
    // Led by node 0, followed by 1 and 2; with 2 stopped the ISR is [0, 1].
    rt.block_on(reassign(&target.addr(), "short", 0, &[0, 1, 2]));
    target.node(2, "stop");
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        "  - name: isr\n    source: east\n    target: west\n    topics: { include: [short] }\n    rename: \"{topic}\"\n    sync_configs: { enabled: false }\n",
    );
    let daemon = DaemonProcess::start(&config);
    assert!(
        daemon.wait_ready(Duration::from_secs(60)),
        "{}",
        daemon.log.tail(40)
    );
    assert!(
        // Kafka answers NOT_ENOUGH_REPLICAS with a null message (LogAppendResult).
        daemon
            .log
            .wait_for("NotEnoughReplicas", Duration::from_secs(60)),
        "the refusals are reported:\n{}",
        daemon.log.tail(20)
    );
    assert_eq!(rt.block_on(high_watermarks(&target.addr(), "short")), 0);
    target.node(2, "start");
    wait_for_records(&rt, &target.addr(), "short", sent as i64, &daemon);
    records::verify(&target.addr(), "short", 1, &acked, None).assert_complete_and_ordered(sent);
    assert!(!daemon.log.contains(" ERROR "), "{}", daemon.log.tail(40));
}
