//! Topic discovery end to end: which source topics a flow mirrors, under which names, with
//! how many partitions and which configs. Brokers and the daemon run as processes; topics
//! are created, grown, written and read with confluent-kafka
//! (`tests/clients/discovery_admin.py`).
//!
//! Which topic configs go with them is in `mirror_config_sync.rs`.
//!
//! Every wait polls the target for up to two minutes; nothing asserts how long it took.
//! Flows use `discovery_interval: 1s`. Where a flow starts in a topic (`start_from`) is in
//! `mirror_start_from.rs`; `kmirror plan` and `kmirror validate` in `plan_and_validate.rs`.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::discovery::{east_to_west, started, stop, wait_mirrored, wait_until, Clusters};
use support::topics::{admin, contents, create, produce, total, translate_in, user_topics};

/// `"{topic}"` keeps names, `"dc1.{topic}"` prefixes them with literal text, and excluded
/// topics never appear on the target — neither those present at start nor those created
/// later.
#[test]
fn rename_templates_and_excludes_decide_the_target_topics() {
    let c = Clusters::start();
    let s = c.source.addr();
    for (topic, partitions) in [
        ("app.orders", 2),
        ("app.audit", 1),
        ("app.secret", 1),
        ("logs.web", 3),
        ("logs.web.tmp", 1),
        ("other", 1),
    ] {
        create(&s, topic, partitions, &[]);
        produce(&s, topic, "early", 5, &[]);
    }
    let config = c.topology(concat!(
        "  - name: keep-names\n",
        "    source: east\n",
        "    target: west\n",
        "    topics: { include: [\"app\\\\..*\"], exclude: [\"app\\\\.secret.*\"] }\n",
        "    rename: \"{topic}\"\n",
        "    discovery_interval: 1s\n",
        "  - name: prefixed\n",
        "    source: east\n",
        "    target: west\n",
        "    topics: { include: [\"logs\\\\..*\"], exclude: [\".*\\\\.tmp\"] }\n",
        "    rename: \"dc1.{topic}\"\n",
        "    discovery_interval: 1s\n",
    ));
    let daemon = started(&config);
    for (from, to) in [
        ("app.orders", "app.orders"),
        ("app.audit", "app.audit"),
        ("logs.web", "dc1.logs.web"),
    ] {
        let got = wait_mirrored(&daemon, &c.source, from, &c.target, to);
        assert_eq!(got.len(), user_topics(&s)[from] as usize);
    }

    // Excluded topics created after start, then one that is mirrored: once the latter
    // shows up on the target, discovery has seen the excluded ones too.
    create(&s, "app.secret.late", 1, &[]);
    produce(&s, "app.secret.late", "late", 3, &[]);
    create(&s, "logs.late.tmp", 2, &[]);
    produce(&s, "logs.late.tmp", "late", 3, &[]);
    create(&s, "app.late", 2, &[]);
    produce(&s, "app.late", "late", 3, &[]);
    create(&s, "logs.late", 2, &[]);
    produce(&s, "logs.late", "late", 3, &[]);
    wait_mirrored(&daemon, &c.source, "app.late", &c.target, "app.late");
    wait_mirrored(&daemon, &c.source, "logs.late", &c.target, "dc1.logs.late");

    let on_target = user_topics(&c.target.addr());
    let expected: BTreeMap<String, i32> = [
        ("app.orders", 2),
        ("app.audit", 1),
        ("app.late", 2),
        ("dc1.logs.web", 3),
        ("dc1.logs.late", 2),
    ]
    .into_iter()
    .map(|(t, n)| (t.to_string(), n))
    .collect();
    assert_eq!(
        on_target, expected,
        "target topics are not what the rename templates and excludes say"
    );
    stop(daemon);
}

/// A topic created on the source while the daemon runs is mirrored from offset 0,
/// including what was written to it before discovery found it.
#[test]
fn a_topic_created_after_start_is_mirrored_from_the_beginning() {
    let c = Clusters::start();
    let s = c.source.addr();
    create(&s, "events.first", 1, &[]);
    produce(&s, "events.first", "first", 3, &[]);
    let config = c.topology(&east_to_west("events\\\\..*", ""));
    let daemon = started(&config);
    wait_mirrored(
        &daemon,
        &c.source,
        "events.first",
        &c.target,
        "east.events.first",
    );

    create(&s, "events.late", 3, &[]);
    produce(&s, "events.late", "before", 20, &[]);
    let got = wait_mirrored(
        &daemon,
        &c.source,
        "events.late",
        &c.target,
        "east.events.late",
    );
    assert_eq!(total(&got), 60);
    assert_eq!(got[&1][0], "before-1-0", "not mirrored from offset 0");
    produce(&s, "events.late", "after", 5, &[]);
    let got = wait_mirrored(
        &daemon,
        &c.source,
        "events.late",
        &c.target,
        "east.events.late",
    );
    assert_eq!(total(&got), 75);
    assert_eq!(user_topics(&c.target.addr())["east.events.late"], 3);
    stop(daemon);
}

/// A target topic deleted while the flow mirrors it is created again and mirrored on from
/// the source offsets reached, with a WARN saying that what was mirrored before is gone
/// with it (not silently, as a plain re-creation would be). Offset translation starts again
/// there: a source offset mirrored into the deleted topic is `before_map`, never "exact"
/// at the target offset that a later record now holds in the new one.
#[test]
fn a_target_topic_deleted_while_mirrored_is_recreated_with_a_warning() {
    let c = Clusters::start();
    let s = c.source.addr();
    create(&s, "events.gone", 1, &[]);
    produce(&s, "events.gone", "before", 5, &[]);
    let config = c.topology(&east_to_west("events\\\\..*", ""));
    let daemon = started(&config);
    wait_mirrored(
        &daemon,
        &c.source,
        "events.gone",
        &c.target,
        "east.events.gone",
    );
    assert!(!daemon.log.contains("The target topic was missing"));
    admin(&c.target.addr(), &["delete", "east.events.gone"]);
    produce(&s, "events.gone", "after", 3, &[]);
    let got = wait_until("the new records on the re-created topic", &daemon, || {
        contents(&c.target.addr(), "east.events.gone").filter(|c| total(c) == 3)
    });
    assert_eq!(got[&0], ["after-0-0", "after-0-1", "after-0-2"]);
    let warned = daemon
        .log
        .wait_for_line("The target topic was missing", Duration::from_secs(60))
        .expect("a WARN");
    assert!(
        warned.contains("WARN") && warned.contains("records=5"),
        "{warned}"
    );
    let config = config.to_str().unwrap();
    let translate = |offset| translate_in(config, "east-to-west", "events.gone", 0, offset);
    wait_until("the progress past the new records", &daemon, || {
        (translate(8) == ("exact".to_string(), 3)).then_some(())
    });
    assert_eq!(translate(6), ("exact".to_string(), 1));
    assert_eq!(translate(2).0, "before_map");
    stop(daemon);
}

/// Partitions added to a source topic while the daemon runs are added to the target topic,
/// and what is written to them lands in the same partition numbers.
#[test]
fn partitions_added_at_the_source_are_added_and_mirrored() {
    let c = Clusters::start();
    let s = c.source.addr();
    create(&s, "grow", 2, &[]);
    produce(&s, "grow", "old", 5, &[]);
    let config = c.topology(&east_to_west("grow", ""));
    let daemon = started(&config);
    wait_mirrored(&daemon, &c.source, "grow", &c.target, "east.grow");
    assert_eq!(user_topics(&c.target.addr())["east.grow"], 2);

    admin(&s, &["add-partitions", "grow", "5"]);
    // Written at once, before discovery can have seen the new partitions.
    produce(&s, "grow", "new", 7, &[2, 3, 4]);
    produce(&s, "grow", "more", 3, &[0, 1]);
    let got = wait_mirrored(&daemon, &c.source, "grow", &c.target, "east.grow");
    assert_eq!(user_topics(&c.target.addr())["east.grow"], 5);
    for p in 2..5 {
        let expected: Vec<String> = (0..7).map(|i| format!("new-{p}-{i}")).collect();
        assert_eq!(got[&p], expected, "partition {p}");
    }
    stop(daemon);
}

/// With `create_topics: false`, a target topic with fewer partitions than its source is
/// reported at ERROR and left alone (nothing is remapped into it, it is not grown), while
/// the other topics of the flow are mirrored.
#[test]
fn a_target_topic_with_fewer_partitions_is_reported_and_left_alone() {
    let c = Clusters::start();
    let (s, t) = (c.source.addr(), c.target.addr());
    create(&s, "narrow", 4, &[]);
    create(&s, "fine", 2, &[]);
    create(&t, "east.narrow", 2, &[]);
    create(&t, "east.fine", 2, &[]);
    produce(&s, "narrow", "n", 10, &[]);
    produce(&s, "fine", "f", 10, &[]);
    let config = c.topology(concat!(
        "  - name: east-to-west\n",
        "    source: east\n",
        "    target: west\n",
        "    topics: { include: [\"narrow\", \"fine\"] }\n",
        "    create_topics: false\n",
        "    discovery_interval: 1s\n",
    ));
    let daemon = started(&config);
    wait_mirrored(&daemon, &c.source, "fine", &c.target, "east.fine");
    assert!(
        daemon
            .log
            .wait_for("Topic not mirrored", Duration::from_secs(60)),
        "no error for the narrow target topic:\n{}",
        daemon.log.tail(30)
    );
    let report: Vec<String> = daemon
        .log
        .lines()
        .into_iter()
        .filter(|l| l.contains("Topic not mirrored"))
        .collect();
    assert!(
        report[0].contains("ERROR") && report[0].contains("topic=narrow"),
        "{report:?}"
    );
    assert!(
        report.iter().all(|l| !l.contains("topic=fine")),
        "{report:?}"
    );

    // More data on both, and time for several discovery rounds: fine keeps mirroring,
    // narrow stays untouched.
    produce(&s, "fine", "g", 10, &[]);
    produce(&s, "narrow", "m", 10, &[]);
    wait_mirrored(&daemon, &c.source, "fine", &c.target, "east.fine");
    std::thread::sleep(Duration::from_secs(3));
    let narrow = contents(&t, "east.narrow").unwrap();
    assert_eq!(
        total(&narrow),
        0,
        "records were mirrored into a target topic with fewer partitions: {narrow:?}"
    );
    assert_eq!(
        user_topics(&t)["east.narrow"],
        2,
        "the target topic was grown with create_topics: false"
    );
    stop(daemon);
}
