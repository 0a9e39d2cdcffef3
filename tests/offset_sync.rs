//! Group offset sync end to end (issue 10), with confluent-kafka on both sides: source
//! groups committed mid-batch, far behind and at the end are translated and committed on
//! the target (whose offsets differ from the source's), after the daemon restarted (so
//! the offset map was read back), and a consumer of the same group on the target reads
//! exactly the records that follow the source position: nothing skipped, nothing
//! repeated. A group outside the filter is left alone. `kmirror offsets` and
//! `GET /offsets` translate the same. A source with more gaps than the offset map keeps
//! runs for still translates its oldest offsets, never past the exact one.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::groups::*;
use support::records::Produce;
use support::*;

const FLOW: &str = GROUP_SYNC_FLOW;

#[test]
fn source_group_positions_carry_over_exactly_after_a_restart() {
    sync_scenario(&[]);
}

/// The same against brokers emulating Kafka 2.8: OffsetFetch below v8 and FindCoordinator
/// below v4 (one group or key at the top level), DescribeGroups saying `Dead`.
#[test]
fn group_sync_works_with_kafka_2_8_versions() {
    sync_scenario(&["--emulate-kafka", "2.8"]);
}

fn sync_scenario(broker_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), broker_args);
    let target = BrokerProcess::start(&dir.path().join("target"), broker_args);
    let produced = Produce {
        records: 300,
        create: true,
        linger_ms: 20,
        ..Produce::new(&source.addr(), TOPIC, PARTITIONS, &dir.path().join("acked"))
    }
    .run();
    assert_eq!(produced, 600);
    // Records below 20 of partition 0 are deleted before the mirror starts: the source
    // log start is 20 there, and the mirror begins at it.
    groups("delete", &source.addr(), TOPIC, None, &["--before", "0:20"]);
    // The target topic already holds records of its own, so target offsets differ from
    // source offsets (by 50 here): copying offsets unchanged would replay those.
    let local = Produce {
        records: 50,
        create: true,
        ..Produce::new(&target.addr(), TOPIC, PARTITIONS, &dir.path().join("local"))
    }
    .run();
    assert_eq!(local, 100);
    let config = group_sync_topology(dir.path(), &source, &target, "app-.*");
    let listen = add_telemetry_listener(&config);
    // The first run mirrors everything (no group has committed yet), then stops.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut daemon = DaemonProcess::start(&config);
    support::cluster::wait_for_records(&rt, &target.addr(), TOPIC, 680, &daemon);
    assert_eq!(
        daemon.terminate().map(|s| s.success()),
        Some(true),
        "{}",
        daemon.log.tail(20)
    );

    // Mid-batch (producer batches hold several records), far behind, at the end.
    commit(&source.addr(), TOPIC, "app-mid", "0:37,1:151");
    // With the daemon stopped, `kmirror offsets` reads the stored map from the target.
    let table = kmirror_ok(&[
        "offsets",
        config.to_str().unwrap(),
        "--flow",
        FLOW,
        "--group",
        "app-mid",
    ]);
    assert!(
        table.contains("37") && table.contains("67") && table.contains("exact"),
        "{table}"
    );
    let one_of = |partition: &str, offset: &str| -> Value {
        let out = kmirror_ok(&[
            "offsets",
            config.to_str().unwrap(),
            "--flow",
            FLOW,
            "--topic",
            TOPIC,
            "--partition",
            partition,
            "--offset",
            offset,
            "--json",
        ]);
        serde_json::from_str::<Value>(&out).unwrap()["partitions"][0].clone()
    };
    let one = |offset: &str| one_of("1", offset);
    // Below the log start: reported, and where a consumer resetting to earliest goes on.
    let deleted = one_of("0", "5");
    assert_eq!(deleted["state"], "below_log_start", "{deleted}");
    assert_eq!(
        (
            deleted["log_start"].clone(),
            deleted["target_offset"].clone()
        ),
        (20.into(), 50.into())
    );
    assert_eq!(one("151")["target_offset"], 201);
    assert_eq!(one("151")["state"], "exact");
    assert_eq!(
        one("300")["target_offset"],
        350,
        "the end: where the next record goes"
    );
    assert_eq!(one("301")["state"], "not_yet");
    commit(&source.addr(), TOPIC, "app-behind", "0:0,1:3");
    commit(&source.addr(), TOPIC, "app-end", "0:300,1:300");
    commit(&source.addr(), TOPIC, "other", "0:10,1:10");
    // A target group ahead of the translation is not moved backwards.
    commit(&source.addr(), TOPIC, "app-ahead", "0:40,1:40");
    commit(&target.addr(), TOPIC, "app-ahead", "0:300,1:300");

    daemon.restart();
    for group in ["app-mid", "app-behind", "app-end"] {
        wait_for_committed(&target.addr(), TOPIC, group, PARTITIONS, &daemon);
    }
    // The same translation over HTTP from the running daemon.
    let (status, body) = http_get(&listen, &format!("/offsets?flow={FLOW}&group=app-mid")).unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let rows = answer["partitions"].as_array().unwrap();
    assert_eq!(rows.len(), PARTITIONS, "{body}");
    let row = |p: i64| rows.iter().find(|r| r["partition"] == p).unwrap().clone();
    assert_eq!(
        (
            row(0)["source_offset"].clone(),
            row(0)["target_offset"].clone()
        ),
        (37.into(), 67.into())
    );
    assert_eq!(row(1)["target_offset"], 201);
    let (status, body) = http_get(
        &listen,
        &format!("/offsets?flow={FLOW}&topic={TOPIC}&partition=0&offset=299"),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"target_offset\":329") && body.contains("\"state\":\"exact\""),
        "{body}"
    );
    for (query, want) in [
        ("group=app-mid", 400),
        ("flow=nope&group=app-mid", 404),
        (
            &format!("flow={FLOW}&topic={TOPIC}&partition=x&offset=1") as &str,
            400,
        ),
        // A consumer's "no committed offset" (-1001) is not a position to translate.
        (
            &format!("flow={FLOW}&topic={TOPIC}&partition=0&offset=-1001"),
            400,
        ),
    ] {
        let status = http_get(&listen, &format!("/offsets?{query}")).map(|a| a.0);
        assert_eq!(status, Some(want), "{query}");
    }
    for (group, from) in [
        ("app-mid", "0:37,1:151"),
        ("app-behind", "0:0,1:3"),
        ("app-end", "0:300,1:300"),
    ] {
        let want = read_from(&source.addr(), TOPIC, from);
        let got = consume(&target.addr(), TOPIC, group);
        for p in 0..PARTITIONS as i64 {
            assert_eq!(
                partition(&got, p),
                partition(&want, p),
                "group {group} partition {p}: the target consumer reads exactly what follows the source position"
            );
        }
    }
    assert!(
        committed(&target.addr(), TOPIC, "other").is_empty(),
        "a group outside the filter is not synced"
    );
    // `/status` shows each group's last round, and why one was left alone.
    let status: Value = serde_json::from_str(&http_get(&listen, "/status").unwrap().1).unwrap();
    let synced = &status["flows"][0]["groups"];
    let group = |name: &str| {
        synced
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["group"] == name)
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        group("app-mid")["last_synced_unix_ms"].as_i64() > Some(0),
        "{synced}"
    );
    let ahead = group("app-ahead");
    assert!(
        ahead["skipped"]
            .as_str()
            .is_some_and(|s| s.contains("not moved backwards")),
        "{synced}"
    );
    assert_eq!(
        committed(&target.addr(), TOPIC, "app-ahead").get("0"),
        Some(&300)
    );
    // A source group rewound (to reprocess) moves its target group back with it.
    commit(&source.addr(), TOPIC, "app-mid", "0:25,1:151");
    let deadline = Instant::now() + Duration::from_secs(30);
    while committed(&target.addr(), TOPIC, "app-mid").get("0") != Some(&55) {
        assert!(Instant::now() < deadline, "{}", daemon.log.tail(20));
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A commit's metadata (Kafka Streams keeps a partition's stream time there) is committed
/// on the target with the translated offset, as MirrorMaker 2 does.
#[test]
fn a_commits_metadata_is_synced_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    let config = twenty_records_and_flow(dir.path(), (&source, &target), "m-.*");
    let metadata = "streams-partition-time=1700000000000";
    commit_with_metadata(&source.addr(), TOPIC, "m-1", "0:5,1:7", metadata);
    let daemon = DaemonProcess::start(&config);
    wait_for_committed(&target.addr(), TOPIC, "m-1", PARTITIONS, &daemon);
    let on_target = committed_metadata(&target.addr(), TOPIC, "m-1");
    assert_eq!(
        on_target,
        [
            ("0".to_string(), metadata.to_string()),
            ("1".to_string(), metadata.to_string())
        ]
        .into(),
    );
}

/// One group the target refuses (no ACL for it there) does not hold up the others: its
/// failure is reported for it, and the groups after it are synced.
#[test]
fn a_group_the_target_refuses_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    // The target allows everything but groups that do not start with "b".
    let target_data = dir.path().join("target");
    std::fs::create_dir_all(&target_data).unwrap();
    let allow = |resource_type: i8, name: &str, pattern_type: i8| {
        serde_json::json!({"resource_type": resource_type, "resource_name": name,
            "pattern_type": pattern_type, "principal": "User:ANONYMOUS", "host": "*",
            "operation": 2, "permission": 3})
    };
    let acls = serde_json::json!([
        allow(2, "*", 3),
        allow(4, "kafka-cluster", 3),
        allow(3, "b", 4)
    ]);
    std::fs::write(target_data.join("acls.json"), acls.to_string()).unwrap();
    let target = BrokerProcess::start(
        &target_data,
        &["--authorizer", "acl", "--super-users", "User:admin"],
    );
    let config = twenty_records_and_flow(dir.path(), (&source, &target), ".*-1");
    commit(&source.addr(), TOPIC, "a-1", "0:5,1:5");
    commit(&source.addr(), TOPIC, "b-1", "0:7,1:9");
    let daemon = DaemonProcess::start(&config);
    wait_for_committed(&target.addr(), TOPIC, "b-1", PARTITIONS, &daemon);
    assert_eq!(
        committed(&target.addr(), TOPIC, "b-1"),
        [("0".to_string(), 7), ("1".to_string(), 9)].into(),
    );
    let failed = daemon.log.wait_for_line(
        "Group offset sync failed for this group",
        Duration::from_secs(30),
    );
    assert!(
        failed
            .as_deref()
            .is_some_and(|l| l.contains("group=\"a-1\"")),
        "{failed:?}\n{}",
        daemon.log.tail(30)
    );
}

/// A source group rewound while its target group has an active member (left alone: its
/// consumers own its offsets) is rewound on the target once the member has left: what the
/// sync compares with is the source offset it last committed, not the one it last read
/// (which, read during the hold, had hidden the rewind for good).
#[test]
fn a_rewind_during_a_target_members_hold_is_synced_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    let config = twenty_records_and_flow(dir.path(), (&source, &target), "r-.*");
    commit(&source.addr(), TOPIC, "r-1", "0:15,1:15");
    let daemon = DaemonProcess::start(&config);
    let at = |offset: i64| -> std::collections::BTreeMap<String, i64> {
        [("0".to_string(), offset), ("1".to_string(), offset)].into()
    };
    let synced_to = |offset| {
        support::discovery::wait_until("the target group's offsets", &daemon, || {
            (committed(&target.addr(), TOPIC, "r-1") == at(offset)).then_some(())
        })
    };
    synced_to(15);
    let holder = std::thread::spawn({
        let bootstrap = target.addr();
        move || groups("hold", &bootstrap, TOPIC, Some("r-1"), &["--seconds", "8"])
    });
    assert!(
        daemon
            .log
            .wait_for("active member", Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    commit(&source.addr(), TOPIC, "r-1", "0:3,1:3");
    let held: Value = json(&holder.join().unwrap(), "HELD ");
    assert!(held.as_bool().unwrap_or(false));
    synced_to(3);
}

/// 20 records in each partition of the source topic, and a topology syncing the groups
/// `include` matches (a regex) every second.
fn twenty_records_and_flow(
    dir: &std::path::Path,
    (source, target): (&BrokerProcess, &BrokerProcess),
    include: &str,
) -> std::path::PathBuf {
    let produced = Produce {
        records: 20,
        create: true,
        ..Produce::new(&source.addr(), TOPIC, PARTITIONS, &dir.join("acked"))
    }
    .run();
    assert_eq!(produced, 40);
    group_sync_topology(dir, source, target, include)
}

/// A source with more gaps than the offset map keeps runs for (4,400 batches of a
/// compacted log, each missing its last offset, as a marker per transaction of an
/// exactly-once producer leaves one): the oldest offsets still translate, read back from
/// the stored progress by `kmirror offsets`: exactly where the map kept a run,
/// `approximate` elsewhere, and never past the exact target offset, so a group synced from
/// there skips nothing.
#[test]
fn offsets_older_than_the_maps_bound_still_translate_never_past_the_exact_one() {
    use support::hand_log::{compacted_batch, write_log};
    use support::topics::{create, flow, translate, wait_records};
    const BATCHES: i64 = 4_400;
    let dir = tempfile::tempdir().unwrap();
    let mut source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    create(&source.addr(), "gaps", 1, &["cleanup.policy=compact"]);
    source.terminate().expect("source stops");
    // Batch i holds offsets 3i and 3i + 1 of 3i..3i + 3: they are at 2i and 2i + 1 on
    // the target, and offset 3i + 2 (no record) translates to 2i + 2.
    let log: Vec<Vec<u8>> = (0..BATCHES)
        .map(|i| compacted_batch(3 * i, 3, &[3 * i, 3 * i + 1]))
        .collect();
    write_log(&source.data_dir, "gaps", &log);
    source.restart();
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        &flow("gaps"),
    );
    let daemon = DaemonProcess::start(&config);
    wait_records(&target.addr(), "gaps", (2 * BATCHES) as usize, &daemon);
    let config = config.to_str().unwrap();
    let end = 3 * BATCHES;
    let deadline = Instant::now() + Duration::from_secs(60);
    while translate(config, "gaps", 0, end) != ("exact".to_string(), 2 * BATCHES) {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            translate(config, "gaps", 0, end)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let exact = |offset: i64| 2 * (offset / 3) + (offset % 3);
    assert_eq!(translate(config, "gaps", 0, 1), ("exact".to_string(), 1));
    let mut approximate = 0;
    for offset in (2..end).step_by(307) {
        let (state, at) = translate(config, "gaps", 0, offset);
        match state.as_str() {
            "exact" | "gap" => assert_eq!(at, exact(offset), "source offset {offset}"),
            "approximate" => {
                approximate += 1;
                assert!(
                    (0..=exact(offset)).contains(&at),
                    "source offset {offset}: {at}"
                );
            }
            other => panic!("source offset {offset}: {other} {at}"),
        }
    }
    assert!(approximate > 0, "no offset was in the thinned part");
}
