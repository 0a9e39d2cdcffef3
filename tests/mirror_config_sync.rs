//! Topic config sync end to end: the configs a source topic has (set on it, or inherited
//! from a dynamic broker config, as MirrorMaker 2 picks them) go with its target topic at
//! creation and follow later changes; excluded keys, keys the target does not know or
//! refuses, and keys the source does not know are handled as README's `sync_configs`
//! says. Brokers and the daemon run as processes; topics and configs are made and read
//! with confluent-kafka (`tests/clients/discovery_admin.py`).

mod support;

use std::time::Duration;

use support::discovery::{east_to_west, started, stop, wait_mirrored, wait_until, Clusters};
use support::topics::{admin, configs, create, produce, user_topics};

/// The value of `name` when it is set on the topic itself (not inherited).
fn set_on_topic(v: &serde_json::Value, name: &str) -> Option<String> {
    let e = &v[name];
    (e["source"] == "DYNAMIC_TOPIC_CONFIG").then(|| e["value"].as_str().unwrap().to_string())
}

/// Waits until `key` is set on `topic` of `bootstrap` itself with `value`.
fn wait_set_on_topic(
    daemon: &support::DaemonProcess,
    (bootstrap, topic): (&str, &str),
    key: &str,
    value: &str,
) {
    wait_until(&format!("{key}={value} on {topic}"), daemon, || {
        (set_on_topic(&configs(bootstrap, topic), key).as_deref() == Some(value)).then_some(())
    });
}

/// Topic configs set on a source topic are set on the target topic, at creation and when
/// they change later; MirrorMaker 2's default exclusions (`min.insync.replicas`) and the
/// flow's own `sync_configs.exclude` are not copied.
#[test]
fn topic_configs_are_synced_except_excluded_ones() {
    let c = Clusters::start();
    let (s, t) = (c.source.addr(), c.target.addr());
    create(
        &s,
        "cfg",
        2,
        &[
            "retention.ms=123456789",
            "cleanup.policy=delete",
            "min.insync.replicas=2",
            "max.message.bytes=2000000",
        ],
    );
    produce(&s, "cfg", "r", 3, &[]);
    let config = c.topology(&east_to_west(
        "cfg",
        "    sync_configs: { exclude: [\"max\\\\.message\\\\.bytes\"] }\n",
    ));
    let daemon = started(&config);
    wait_mirrored(&daemon, &c.source, "cfg", &c.target, "east.cfg");

    let source_configs = configs(&s, "cfg");
    for name in [
        "retention.ms",
        "cleanup.policy",
        "min.insync.replicas",
        "max.message.bytes",
    ] {
        assert!(
            set_on_topic(&source_configs, name).is_some(),
            "the source topic does not have {name} set: {}",
            source_configs[name]
        );
    }
    let target_configs = configs(&t, "east.cfg");
    assert_eq!(
        set_on_topic(&target_configs, "retention.ms").as_deref(),
        Some("123456789"),
        "{}",
        target_configs["retention.ms"]
    );
    assert_eq!(
        set_on_topic(&target_configs, "cleanup.policy").as_deref(),
        Some("delete"),
        "{}",
        target_configs["cleanup.policy"]
    );
    for excluded in ["min.insync.replicas", "max.message.bytes"] {
        assert_eq!(
            set_on_topic(&target_configs, excluded),
            None,
            "excluded config {excluded} was copied: {}",
            target_configs[excluded]
        );
        assert_ne!(
            target_configs[excluded]["value"], source_configs[excluded]["value"],
            "{excluded}"
        );
    }

    // A later change at the source follows; an excluded one does not.
    admin(
        &s,
        &[
            "alter",
            "cfg",
            "retention.ms=222222222",
            "min.insync.replicas=3",
        ],
    );
    wait_set_on_topic(&daemon, (&t, "east.cfg"), "retention.ms", "222222222");
    assert_eq!(
        set_on_topic(&configs(&t, "east.cfg"), "min.insync.replicas"),
        None
    );
    stop(daemon);
}

/// A config override removed from the source topic (back to the broker default) is removed
/// from the target topic too, as MirrorMaker 2 does (it sends DELETE for configs that are
/// defaults at the source); otherwise the target keeps a stale override forever.
#[test]
fn a_config_removed_at_the_source_is_removed_at_the_target() {
    let c = Clusters::start();
    let (s, t) = (c.source.addr(), c.target.addr());
    create(
        &s,
        "cfg",
        1,
        &["retention.ms=123456789", "segment.ms=3600000"],
    );
    let config = c.topology(&east_to_west("cfg", ""));
    let daemon = started(&config);
    let topic_level = |name: &str| set_on_topic(&configs(&t, "east.cfg"), name);
    wait_until("the target topic with synced configs", &daemon, || {
        user_topics(&t).contains_key("east.cfg").then_some(())?;
        (topic_level("retention.ms").as_deref() == Some("123456789")).then_some(())
    });
    assert_eq!(topic_level("segment.ms").as_deref(), Some("3600000"));

    admin(&s, &["unset", "cfg", "retention.ms"]);
    // A change made after the removal: once it is on the target, discovery has seen the
    // removal too.
    admin(&s, &["alter", "cfg", "segment.ms=7200000"]);
    wait_set_on_topic(&daemon, (&t, "east.cfg"), "segment.ms", "7200000");
    let target_configs = configs(&t, "east.cfg");
    assert_eq!(
        topic_level("retention.ms"),
        None,
        "retention.ms was removed from the source topic but is still set on the target: {}",
        target_configs["retention.ms"]
    );
    stop(daemon);
}

/// A topic config the target's Kafka release does not know is left out, with one WARN
/// naming it, and the topic is still created, mirrored and synced: a 4.1 source's
/// `compression.zstd.level` (Kafka 3.8+) to a 3.6 target, which would refuse the whole
/// creation. A 3.6 source's `message.format.version`, which 4.x brokers refuse, is not
/// synced at all (a default exclusion).
#[test]
fn configs_the_target_release_does_not_know_are_left_out() {
    for (source_args, target_args, unknown) in [
        (
            &[][..],
            &["--emulate-kafka", "3.6"][..],
            "compression.zstd.level=5",
        ),
        (
            &["--emulate-kafka", "3.6"][..],
            &[][..],
            "message.format.version=3.0-IV1",
        ),
    ] {
        let c = Clusters::start_with(source_args, target_args);
        let (s, t) = (c.source.addr(), c.target.addr());
        create(&s, "cfg", 1, &["retention.ms=123456789", unknown]);
        produce(&s, "cfg", "r", 3, &[]);
        let daemon = started(&c.topology(&east_to_west("cfg", "")));
        wait_mirrored(&daemon, &c.source, "cfg", &c.target, "east.cfg");
        let target_configs = configs(&t, "east.cfg");
        assert_eq!(
            target_configs["retention.ms"]["value"], "123456789",
            "{target_configs}"
        );
        let key = unknown.split('=').next().unwrap();
        assert!(
            target_configs.get(key).is_none(),
            "the target lists {key}: {target_configs}"
        );
        if key == "compression.zstd.level" {
            assert!(
                daemon
                    .log
                    .wait_for("does not know this topic config", Duration::from_secs(10))
                    && daemon.log.contains(&format!("config={key}")),
                "no WARN naming {key}: {}",
                daemon.log.tail(30)
            );
        } else {
            // Excluded by default before the target is asked: nothing to warn about.
            assert!(
                !daemon.log.contains(&format!("config={key}")),
                "{}",
                daemon.log.tail(30)
            );
        }
        stop(daemon);
    }
}

/// A topic config the target refuses (a 3.9 source's `segment.bytes` of 100000, below
/// the 1 MiB a 4.x target takes) is the one config not synced: the topic is created
/// without it and its other configs are synced, the refusal is said at WARN, and the
/// topic is mirrored. Later changes of other configs are still synced, and partitions
/// added at the source are mirrored: a refused config never holds records back.
#[test]
fn a_config_the_target_refuses_is_reported_while_the_rest_is_synced_and_mirrored() {
    let c = Clusters::start_with(&["--emulate-kafka", "3.9"], &[]);
    let (s, t) = (c.source.addr(), c.target.addr());
    create(
        &s,
        "seg",
        2,
        &["segment.bytes=100000", "retention.ms=123456789"],
    );
    produce(&s, "seg", "old", 5, &[]);
    let daemon = started(&c.topology(&east_to_west("seg", "")));
    wait_mirrored(&daemon, &c.source, "seg", &c.target, "east.seg");
    assert_eq!(
        configs(&t, "east.seg")["retention.ms"]["value"],
        "123456789"
    );
    let refused = daemon
        .log
        .wait_for_line(
            "The target refuses this topic config",
            Duration::from_secs(30),
        )
        .unwrap_or_else(|| panic!("no WARN of the refused config:\n{}", daemon.log.tail(30)));
    assert!(refused.contains("config=segment.bytes"), "{refused}");

    // The topic exists now: another config changed and partitions added at the source.
    admin(&s, &["alter", "seg", "retention.ms=987654321"]);
    admin(&s, &["add-partitions", "seg", "4"]);
    produce(&s, "seg", "new", 7, &[2, 3]);
    let got = wait_mirrored(&daemon, &c.source, "seg", &c.target, "east.seg");
    for p in 2..4 {
        let expected: Vec<String> = (0..7).map(|i| format!("new-{p}-{i}")).collect();
        assert_eq!(got[&p], expected, "partition {p}");
    }
    wait_until(
        "retention.ms synced beside the refused config",
        &daemon,
        || (configs(&t, "east.seg")["retention.ms"]["value"] == "987654321").then_some(()),
    );
    assert!(
        !daemon.log.contains("not mirrored"),
        "{}",
        daemon.log.tail(30)
    );
    // Said once, not every round.
    let said = daemon
        .log
        .lines()
        .iter()
        .filter(|l| l.contains("The target refuses this topic config"))
        .count();
    assert_eq!(said, 1, "{}", daemon.log.tail(30));
    stop(daemon);
}

/// A key the source cluster does not know (a 2.8 source has no
/// `message.timestamp.after.max.ms`) is the target's business: an operator who sets it on
/// the target topic (to let records from the future in) keeps it while the configs the
/// source has are synced. Before, every sync round removed it.
#[test]
fn a_key_the_source_does_not_know_is_left_to_the_target() {
    let c = Clusters::start_with(&["--emulate-kafka", "2.8"], &[]);
    let (s, t) = (c.source.addr(), c.target.addr());
    create(&s, "cfg", 1, &["retention.ms=123456789"]);
    produce(&s, "cfg", "r", 3, &[]);
    let daemon = started(&c.topology(&east_to_west("cfg", "")));
    wait_mirrored(&daemon, &c.source, "cfg", &c.target, "east.cfg");
    admin(
        &t,
        &[
            "alter",
            "east.cfg",
            "message.timestamp.after.max.ms=604800000",
        ],
    );
    // A change made after the operator's: once it is on the target, a sync round has run
    // since.
    admin(&s, &["alter", "cfg", "retention.ms=222222222"]);
    wait_set_on_topic(&daemon, (&t, "east.cfg"), "retention.ms", "222222222");
    let target_configs = configs(&t, "east.cfg");
    assert_eq!(
        set_on_topic(&target_configs, "message.timestamp.after.max.ms").as_deref(),
        Some("604800000"),
        "{}",
        target_configs["message.timestamp.after.max.ms"]
    );
    stop(daemon);
}

/// A retention the source's broker sets at run time for its topics (a dynamic
/// `log.retention.ms`, which the target cluster does not have) goes with the mirrored
/// topic, as MirrorMaker 2 copies dynamic broker configs: with the target's default of 7
/// days, records the source keeps for 30 would be deleted from the target. A later change
/// of it follows.
#[test]
fn a_retention_the_source_brokers_set_at_run_time_is_synced() {
    let c = Clusters::start();
    let (s, t) = (c.source.addr(), c.target.addr());
    admin(&s, &["alter-broker", "0", "log.retention.ms=2592000000"]);
    create(&s, "kept", 1, &[]);
    let source_configs = configs(&s, "kept");
    assert_eq!(
        source_configs["retention.ms"]["source"], "DYNAMIC_BROKER_CONFIG",
        "{source_configs}"
    );
    produce(&s, "kept", "r", 3, &[]);
    let daemon = started(&c.topology(&east_to_west("kept", "")));
    wait_mirrored(&daemon, &c.source, "kept", &c.target, "east.kept");
    let target_configs = configs(&t, "east.kept");
    assert_eq!(
        set_on_topic(&target_configs, "retention.ms").as_deref(),
        Some("2592000000"),
        "{}",
        target_configs["retention.ms"]
    );
    admin(&s, &["alter-broker", "0", "log.retention.ms=3000000000"]);
    wait_set_on_topic(&daemon, (&t, "east.kept"), "retention.ms", "3000000000");
    stop(daemon);
}

/// A value the source topic takes from its brokers' static configuration
/// (`--retention-ms`, Kafka's `server.properties`) is neither synced nor removed, as
/// MirrorMaker 2 leaves it: an operator who matched it on the target topic keeps it.
#[test]
fn a_target_override_of_a_key_from_the_source_brokers_files_is_kept() {
    let c = Clusters::start_with(&["--retention-ms", "2592000000"], &[]);
    let (s, t) = (c.source.addr(), c.target.addr());
    create(&s, "cfg", 1, &["segment.ms=3600000"]);
    let source_configs = configs(&s, "cfg");
    assert_eq!(
        source_configs["retention.ms"]["source"], "STATIC_BROKER_CONFIG",
        "{source_configs}"
    );
    produce(&s, "cfg", "r", 3, &[]);
    let daemon = started(&c.topology(&east_to_west("cfg", "")));
    wait_mirrored(&daemon, &c.source, "cfg", &c.target, "east.cfg");
    assert_eq!(set_on_topic(&configs(&t, "east.cfg"), "retention.ms"), None);
    admin(&t, &["alter", "east.cfg", "retention.ms=2592000000"]);
    // A change made after the operator's: once it is on the target, a sync round has run
    // since.
    admin(&s, &["alter", "cfg", "segment.ms=7200000"]);
    wait_set_on_topic(&daemon, (&t, "east.cfg"), "segment.ms", "7200000");
    assert_eq!(
        set_on_topic(&configs(&t, "east.cfg"), "retention.ms").as_deref(),
        Some("2592000000")
    );
    stop(daemon);
}
