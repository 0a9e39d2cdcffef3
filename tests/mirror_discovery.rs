//! Topic discovery end to end: which source topics a flow mirrors, under which names, with
//! how many partitions and which configs, and what `kmirror plan` and `kmirror validate`
//! say about a topology. Brokers and the daemon run as processes; topics are created,
//! grown, written and read with confluent-kafka (`tests/clients/discovery_admin.py`).
//!
//! Every wait polls the target for up to two minutes; nothing asserts how long it took.
//! Flows use `discovery_interval: 1s`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

const CONVERGE: Duration = Duration::from_secs(120);

/// `{partition: [value, ...]}` as read by `discovery_admin.py read`.
type Contents = BTreeMap<i32, Vec<String>>;

fn admin(bootstrap: &str, args: &[&str]) -> String {
    let mut all = vec![bootstrap];
    all.extend_from_slice(args);
    run_python("discovery_admin.py", &all)
}

fn create(bootstrap: &str, topic: &str, partitions: i32, configs: &[&str]) {
    let partitions = partitions.to_string();
    let mut args = vec!["create", topic, &partitions];
    args.extend_from_slice(configs);
    admin(bootstrap, &args);
}

/// Writes `count` records with values `<prefix>-<partition>-<i>` to each of `partitions`
/// (every partition when empty).
fn produce(bootstrap: &str, topic: &str, prefix: &str, count: usize, partitions: &[i32]) {
    let count = count.to_string();
    let partitions: Vec<String> = partitions.iter().map(i32::to_string).collect();
    let mut args = vec!["produce", topic, prefix, &count];
    args.extend(partitions.iter().map(String::as_str));
    admin(bootstrap, &args);
}

/// Every topic of the cluster with its partition count.
fn topics(bootstrap: &str) -> BTreeMap<String, i32> {
    serde_json::from_str(&admin(bootstrap, &["topics"])).unwrap()
}

/// Non-internal topics (not starting with `__`).
fn user_topics(bootstrap: &str) -> BTreeMap<String, i32> {
    let mut t = topics(bootstrap);
    t.retain(|name, _| !name.starts_with("__"));
    t
}

/// A topic's records per partition; `None` when the topic does not exist.
fn read(bootstrap: &str, topic: &str) -> Option<Contents> {
    let v: Option<BTreeMap<String, Vec<String>>> =
        serde_json::from_str(&admin(bootstrap, &["read", topic])).unwrap();
    v.map(|m| {
        m.into_iter()
            .map(|(p, r)| (p.parse().unwrap(), r))
            .collect()
    })
}

/// `{name: {"value", "source", "default"}}` from DescribeConfigs.
fn configs(bootstrap: &str, topic: &str) -> serde_json::Value {
    serde_json::from_str(&admin(bootstrap, &["configs", topic])).unwrap()
}

fn total(c: &Contents) -> usize {
    c.values().map(Vec::len).sum()
}

/// Polls `check` until it returns `Some`, for up to [`CONVERGE`].
fn wait_until<T>(what: &str, daemon: &DaemonProcess, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + CONVERGE;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; daemon log:\n{}",
            daemon.log.tail(40)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Waits until `target_topic` on the target holds exactly what `source_topic` holds on
/// the source, partition by partition, and returns it.
fn wait_mirrored(
    daemon: &DaemonProcess,
    source: &BrokerProcess,
    source_topic: &str,
    target: &BrokerProcess,
    target_topic: &str,
) -> Contents {
    let expected = read(&source.addr(), source_topic).expect("source topic exists");
    let mut last = None;
    let what = format!("{source_topic} to be mirrored to {target_topic}");
    let deadline = Instant::now() + CONVERGE;
    loop {
        let got = read(&target.addr(), target_topic);
        if got.as_ref() == Some(&expected) {
            return expected;
        }
        if let Some(g) = &got {
            // Never more than the source, and never anything else.
            for (p, records) in g {
                let want = expected.get(p).cloned().unwrap_or_default();
                assert!(
                    want.starts_with(records),
                    "{target_topic}[{p}] is not a prefix of {source_topic}[{p}]:\n target {records:?}\n source {want:?}"
                );
            }
        }
        last = got.or(last);
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: source {expected:?}\ntarget {last:?}\ndaemon log:\n{}",
            daemon.log.tail(40)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Writes a probe record to every partition of `source_topic`, again and again, until
/// the target shows one in each of its `partitions`: the daemon then has looked up its
/// start offsets (it does so right after creating the target topic), known without
/// guessing a delay.
fn wait_for_probes(
    daemon: &DaemonProcess,
    source: &str,
    source_topic: &str,
    target: &str,
    target_topic: &str,
    partitions: usize,
) {
    let mut round = 0;
    wait_until("a probe record in every target partition", daemon, || {
        produce(source, source_topic, &format!("probe{round}"), 1, &[]);
        round += 1;
        let got = read(target, target_topic)?;
        (got.len() == partitions && got.values().all(|r| !r.is_empty())).then_some(())
    });
}

struct Clusters {
    dir: tempfile::TempDir,
    source: BrokerProcess,
    target: BrokerProcess,
}

impl Clusters {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let source = BrokerProcess::start(&dir.path().join("source"), &[]);
        let target = BrokerProcess::start(&dir.path().join("target"), &[]);
        Self {
            dir,
            source,
            target,
        }
    }

    /// A topology with clusters `east` (source) and `west` (target) and `flows_yaml`.
    fn topology(&self, flows_yaml: &str) -> PathBuf {
        write_topology(
            self.dir.path(),
            &[("east", &self.source.addr()), ("west", &self.target.addr())],
            flows_yaml,
        )
    }
}

fn started(config: &Path) -> DaemonProcess {
    let daemon = DaemonProcess::start(config);
    assert!(
        daemon.wait_ready(Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    daemon
}

fn stop(mut daemon: DaemonProcess) {
    let status = daemon.terminate().expect("daemon exits after SIGTERM");
    assert!(
        status.success(),
        "exit status {status}: {}",
        daemon.log.tail(30)
    );
}

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
    let config = c.topology(concat!(
        "  - name: east-to-west\n",
        "    source: east\n",
        "    target: west\n",
        "    topics: { include: [\"events\\\\..*\"] }\n",
        "    discovery_interval: 1s\n",
    ));
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

/// Partitions added to a source topic while the daemon runs are added to the target topic,
/// and what is written to them lands in the same partition numbers.
#[test]
fn partitions_added_at_the_source_are_added_and_mirrored() {
    let c = Clusters::start();
    let s = c.source.addr();
    create(&s, "grow", 2, &[]);
    produce(&s, "grow", "old", 5, &[]);
    let config = c.topology(concat!(
        "  - name: east-to-west\n",
        "    source: east\n",
        "    target: west\n",
        "    topics: { include: [\"grow\"] }\n",
        "    discovery_interval: 1s\n",
    ));
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
    let narrow = read(&t, "east.narrow").unwrap();
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

/// `start_from: latest`: records that existed at the first start are skipped, records
/// written after the daemon found the topic are mirrored, in order.
#[test]
fn start_from_latest_skips_existing_records_and_mirrors_later_ones() {
    let c = Clusters::start();
    let (s, t) = (c.source.addr(), c.target.addr());
    create(&s, "feed", 2, &[]);
    produce(&s, "feed", "early", 20, &[]);
    let config = c.topology(concat!(
        "  - name: east-to-west\n",
        "    source: east\n",
        "    target: west\n",
        "    topics: { include: [\"feed\"] }\n",
        "    start_from: latest\n",
        "    discovery_interval: 1s\n",
    ));
    let daemon = started(&config);
    wait_until("the target topic", &daemon, || {
        user_topics(&t).get("east.feed").copied()
    });
    wait_for_probes(&daemon, &s, "feed", &t, "east.feed", 2);
    produce(&s, "feed", "after", 10, &[]);
    let source = read(&s, "feed").unwrap();
    let got = wait_until("the later records on the target", &daemon, || {
        let got = read(&t, "east.feed")?;
        let done =
            (0..2).all(|p| got.get(&p).and_then(|r| r.last()) == Some(&format!("after-{p}-9")));
        done.then_some(got)
    });
    for p in 0..2 {
        let target = &got[&p];
        let src = &source[&p];
        assert!(
            src.ends_with(target),
            "target partition {p} is not a suffix of the source:\n target {target:?}\n source {src:?}"
        );
        assert!(
            target.iter().all(|v| !v.starts_with("early-")),
            "records that existed before the first start were mirrored: {target:?}"
        );
        let after: Vec<String> = (0..10).map(|i| format!("after-{p}-{i}")).collect();
        assert!(target.ends_with(&after), "{target:?}");
    }
    stop(daemon);
}

/// `start_from: latest` applies once, at the flow's first start, and is stored: after a
/// restart, a topic created and written while the daemon was stopped is mirrored from its
/// beginning, and the records written meanwhile to a known topic are mirrored too.
#[test]
fn start_from_latest_is_not_applied_again_after_a_restart() {
    let c = Clusters::start();
    let (s, t) = (c.source.addr(), c.target.addr());
    create(&s, "feed", 1, &[]);
    produce(&s, "feed", "early", 5, &[]);
    let config = c.topology(concat!(
        "  - name: east-to-west\n",
        "    source: east\n",
        "    target: west\n",
        "    topics: { include: [\"feed.*\"] }\n",
        "    start_from: latest\n",
        "    discovery_interval: 1s\n",
    ));
    let daemon = started(&config);
    // A probe on the target shows that the first start was chosen and stored.
    wait_for_probes(&daemon, &s, "feed", &t, "east.feed", 1);
    stop(daemon);

    create(&s, "feed.new", 2, &[]);
    produce(&s, "feed.new", "while-stopped", 10, &[]);
    produce(&s, "feed", "while-stopped", 10, &[]);
    let daemon = started(&config);
    let got = wait_mirrored(&daemon, &c.source, "feed.new", &c.target, "east.feed.new");
    assert_eq!(total(&got), 20, "{got:?}");
    let feed = wait_until("the records written to feed while stopped", &daemon, || {
        let got = read(&t, "east.feed")?;
        let last = got.get(&0)?.last()?;
        (last == "while-stopped-0-9").then_some(got)
    });
    let written: Vec<String> = (0..10).map(|i| format!("while-stopped-0-{i}")).collect();
    assert!(feed[&0].ends_with(&written), "{feed:?}");
    assert!(
        feed[&0].iter().all(|v| !v.starts_with("early-")),
        "records from before the first start were mirrored: {feed:?}"
    );
    stop(daemon);
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
    let config = c.topology(concat!(
        "  - name: east-to-west\n",
        "    source: east\n",
        "    target: west\n",
        "    topics: { include: [\"cfg\"] }\n",
        "    sync_configs: { exclude: [\"max\\\\.message\\\\.bytes\"] }\n",
        "    discovery_interval: 1s\n",
    ));
    let daemon = started(&config);
    wait_mirrored(&daemon, &c.source, "cfg", &c.target, "east.cfg");

    let source_configs = configs(&s, "cfg");
    let set_on_topic = |v: &serde_json::Value, name: &str| -> Option<String> {
        let e = &v[name];
        (e["source"] == "DYNAMIC_TOPIC_CONFIG").then(|| e["value"].as_str().unwrap().to_string())
    };
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
    wait_until("retention.ms to follow the source", &daemon, || {
        (set_on_topic(&configs(&t, "east.cfg"), "retention.ms").as_deref() == Some("222222222"))
            .then_some(())
    });
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
    let config = c.topology(concat!(
        "  - name: east-to-west\n",
        "    source: east\n",
        "    target: west\n",
        "    topics: { include: [\"cfg\"] }\n",
        "    discovery_interval: 1s\n",
    ));
    let daemon = started(&config);
    let topic_level = |name: &str| -> Option<String> {
        let v = configs(&t, "east.cfg");
        (v[name]["source"] == "DYNAMIC_TOPIC_CONFIG")
            .then(|| v[name]["value"].as_str().unwrap().to_string())
    };
    wait_until("the target topic with synced configs", &daemon, || {
        user_topics(&t).contains_key("east.cfg").then_some(())?;
        (topic_level("retention.ms").as_deref() == Some("123456789")).then_some(())
    });
    assert_eq!(topic_level("segment.ms").as_deref(), Some("3600000"));

    admin(&s, &["unset", "cfg", "retention.ms"]);
    // A change made after the removal: once it is on the target, discovery has seen the
    // removal too.
    admin(&s, &["alter", "cfg", "segment.ms=7200000"]);
    wait_until("segment.ms to follow the source", &daemon, || {
        (topic_level("segment.ms").as_deref() == Some("7200000")).then_some(())
    });
    let target_configs = configs(&t, "east.cfg");
    assert_eq!(
        topic_level("retention.ms"),
        None,
        "retention.ms was removed from the source topic but is still set on the target: {}",
        target_configs["retention.ms"]
    );
    stop(daemon);
}

/// `start_from: latest` decides the start once, when the topic is first discovered: records
/// written while the daemon is stopped afterwards are mirrored after the restart, even in
/// a partition that had received nothing yet (so had no progress to resume from).
#[test]
fn start_from_latest_loses_nothing_across_a_restart() {
    let c = Clusters::start();
    let (s, t) = (c.source.addr(), c.target.addr());
    create(&s, "feed", 2, &[]);
    produce(&s, "feed", "early", 5, &[]);
    let config = c.topology(concat!(
        "  - name: east-to-west\n",
        "    source: east\n",
        "    target: west\n",
        "    topics: { include: [\"feed\"] }\n",
        "    start_from: latest\n",
        "    discovery_interval: 1s\n",
    ));
    let mut daemon = started(&config);
    wait_until("the target topic", &daemon, || {
        user_topics(&t).get("east.feed").copied()
    });
    // Probes into partition 1 only, until one is mirrored: the daemon has then started
    // both partitions (it starts them in order, each at the high watermark it looked up),
    // and partition 0 has received nothing since.
    let mut round = 0;
    wait_until("a probe in target partition 1", &daemon, || {
        produce(&s, "feed", &format!("probe{round}"), 1, &[1]);
        round += 1;
        let got = read(&t, "east.feed")?;
        got.get(&1).is_some_and(|r| !r.is_empty()).then_some(())
    });
    stop_keep(&mut daemon);

    produce(&s, "feed", "down", 3, &[]);
    daemon.restart();
    assert!(
        daemon.wait_ready(Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    produce(&s, "feed", "after", 3, &[]);
    let got = wait_until("the records written after the restart", &daemon, || {
        let got = read(&t, "east.feed")?;
        let done =
            (0..2).all(|p| got.get(&p).and_then(|r| r.last()) == Some(&format!("after-{p}-2")));
        done.then_some(got)
    });
    for p in 0..2 {
        let down: Vec<String> = (0..3).map(|i| format!("down-{p}-{i}")).collect();
        let after: Vec<String> = (0..3).map(|i| format!("after-{p}-{i}")).collect();
        let tail: Vec<String> = down.into_iter().chain(after).collect();
        assert!(
            got[&p].ends_with(&tail),
            "partition {p}: records written while the daemon was stopped are missing: {:?}",
            got[&p]
        );
        assert!(
            got[&p].iter().all(|v| !v.starts_with("early-")),
            "{:?}",
            got[&p]
        );
    }
    stop(daemon);
}

/// SIGTERM and a clean exit, keeping the process handle for a restart.
fn stop_keep(daemon: &mut DaemonProcess) {
    let status = daemon.terminate().expect("daemon exits after SIGTERM");
    assert!(
        status.success(),
        "exit status {status}: {}",
        daemon.log.tail(30)
    );
}

/// `kmirror plan` lists, per flow, the matching source topics, their target names and what
/// would be done, and changes nothing on either cluster.
#[test]
fn plan_prints_what_would_be_done_and_changes_nothing() {
    let c = Clusters::start();
    let (s, t) = (c.source.addr(), c.target.addr());
    create(&s, "orders.a", 3, &[]);
    create(&s, "orders.b", 1, &["retention.ms=123456789"]);
    create(&s, "orders.c", 4, &[]);
    create(&s, "misc", 1, &[]);
    produce(&s, "orders.a", "r", 2, &[]);
    create(&t, "east.orders.c", 2, &[]);
    let config = c.topology(concat!(
        "  - name: east-to-west\n",
        "    source: east\n",
        "    target: west\n",
        "    topics: { include: [\"orders\\\\..*\"] }\n",
        "    discovery_interval: 1s\n",
    ));
    let before = topics(&t);

    let out = Command::new(env!("CARGO_BIN_EXE_kmirror"))
        .arg("plan")
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        "flow east-to-west (east -> west)",
        "orders.a -> east.orders.a: create with 3 partitions",
        "orders.b -> east.orders.b: create with 1 partitions; set retention.ms=123456789",
        "orders.c -> east.orders.c: add partitions 2 -> 4",
    ] {
        assert!(
            stdout.lines().any(|l| l.trim() == line),
            "missing {line:?} in:\n{stdout}"
        );
    }
    assert!(!stdout.contains("misc"), "{stdout}");

    let after = topics(&t);
    assert_eq!(before, after, "plan changed the target's topics");
    assert!(!after
        .keys()
        .any(|k| k == "east.orders.a" || k == "east.orders.b"));
    assert_eq!(after["east.orders.c"], 2);
    assert!(!after.contains_key("__kmirror_progress"), "{after:?}");
    assert_eq!(
        total(&read(&t, "east.orders.c").unwrap()),
        0,
        "plan wrote to the target"
    );
}

/// `kmirror validate` reports every error of a topology at once, each with file, line and
/// column, and exits 1.
#[test]
fn validate_reports_every_error_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(
        &path,
        concat!(
            "clusters:\n",                                                 // 1
            "  east:\n",                                                   // 2
            "    bootstrap: [\"127.0.0.1:9092\"]\n",                       // 3
            "    colour: blue\n",                                          // 4 unknown key
            "  west:\n",                                                   // 5
            "    bootstrap: [\"127.0.0.1:9093\"]\n",                       // 6
            "flows:\n",                                                    // 7
            "  - name: east-to-nowhere\n",                                 // 8
            "    source: east\n",                                          // 9
            "    target: nowhere\n",                                       // 10 unknown cluster
            "    topics:\n",                                               // 11
            "      include: [\"orders(\"]\n",                              // 12 bad regex
            "  - name: east-to-west\n",                                    // 13
            "    source: east\n",                                          // 14
            "    target: west\n",                                          // 15
            "    topics: { include: [\"ok.*\"], exclude: [\"[z-a]\"] }\n", // 16 bad regex
            "    discovery_interval: 1s\n",                                // 17
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kmirror"))
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
    let file = path.display().to_string();
    for (position, needles) in [
        ("4:5", &["colour"][..]),
        ("10:13", &["nowhere", "unknown cluster"][..]),
        ("12:17", &["orders(", "regex"][..]),
        ("16:44", &["[z-a]", "regex"][..]),
    ] {
        let prefix = format!("{file}:{position}:");
        let line = text.lines().find(|l| l.starts_with(&prefix));
        let line = line.unwrap_or_else(|| panic!("no error at {prefix} in:\n{text}"));
        for needle in needles {
            assert!(
                line.contains(needle),
                "{line:?} does not mention {needle:?}"
            );
        }
    }
    let errors: BTreeSet<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with(&format!("{file}:"))
                && l[file.len() + 1..].starts_with(|c: char| c.is_ascii_digit())
        })
        .collect();
    assert_eq!(errors.len(), 4, "{text}");
}

/// A SASL block with an empty user and a TLS CA file that cannot be read are refused by
/// both `kmirror validate` and `kmirror run`, with the setting's position, and the password
/// is not printed. The daemon never connects in plaintext or unauthenticated instead.
#[test]
fn bad_sasl_and_unreadable_tls_files_are_refused_by_validate_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secure.yaml");
    std::fs::write(
        &path,
        concat!(
            "clusters:\n",                                                                   // 1
            "  east:\n",                                                                     // 2
            "    bootstrap: [\"127.0.0.1:9092\"]\n",                                         // 3
            "    tls: { ca: /etc/kmirror/ca.pem }\n",                                        // 4
            "  west:\n",                                                                     // 5
            "    bootstrap: [\"127.0.0.1:9093\"]\n",                                         // 6
            "    sasl: { mechanism: SCRAM-SHA-512, username: \"\", password: \"${PW}\" }\n", // 7
            "flows:\n",                                                                      // 8
            "  - { name: f, source: east, target: west, topics: { include: [x] } }\n",
        ),
    )
    .unwrap();
    let file = path.display().to_string();
    for command in ["validate", "run"] {
        let out = Command::new(env!("CARGO_BIN_EXE_kmirror"))
            .arg(command)
            .arg(&path)
            .env("PW", "hunter2")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{command}: {text}");
        for (position, needle) in [
            (
                "4:16: clusters.east.tls.ca:",
                "cannot read /etc/kmirror/ca.pem",
            ),
            (
                "7:49: clusters.west.sasl.username:",
                "sasl username must not be empty",
            ),
        ] {
            let prefix = format!("{file}:{position}");
            let line = text.lines().find(|l| l.starts_with(&prefix));
            let line =
                line.unwrap_or_else(|| panic!("{command}: no error at {prefix} in:\n{text}"));
            assert!(line.contains(needle), "{command}: {line:?}");
        }
        assert!(
            !text.contains("hunter2"),
            "{command} printed the password: {text}"
        );
        assert!(!text.contains("Flow started"), "{command} ran: {text}");
    }
}
