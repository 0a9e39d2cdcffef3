//! `start_from: latest` end to end: records that existed when a flow first found a topic
//! are skipped, and the choice is made once and stored, so records written while the
//! daemon is stopped are mirrored after a restart. Brokers and the daemon run as processes;
//! topics are created, written and read with confluent-kafka
//! (`tests/clients/discovery_admin.py`).
//!
//! Every wait polls the target for up to two minutes; nothing asserts how long it took.
//! Flows use `discovery_interval: 1s`.

mod support;

use std::time::Duration;

use support::discovery::{east_to_west, started, stop, wait_mirrored, wait_until, Clusters};
use support::topics::{contents, create, produce, total, user_topics};
use support::DaemonProcess;

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
        let got = contents(target, target_topic)?;
        (got.len() == partitions && got.values().all(|r| !r.is_empty())).then_some(())
    });
}

/// `start_from: latest`: records that existed at the first start are skipped, records
/// written after the daemon found the topic are mirrored, in order.
#[test]
fn start_from_latest_skips_existing_records_and_mirrors_later_ones() {
    skips_existing_records(&[]);
}

/// The same against brokers emulating Kafka 2.8 (Fetch v12 and Produce v9, by name).
#[test]
fn start_from_latest_skips_existing_records_and_mirrors_later_ones_emulating_kafka_2_8() {
    skips_existing_records(&["--emulate-kafka", "2.8"]);
}

fn skips_existing_records(broker_args: &[&str]) {
    let c = Clusters::start_with(broker_args, broker_args);
    let (s, t) = (c.source.addr(), c.target.addr());
    create(&s, "feed", 2, &[]);
    produce(&s, "feed", "early", 20, &[]);
    let config = c.topology(&east_to_west("feed", "    start_from: latest\n"));
    let daemon = started(&config);
    wait_until("the target topic", &daemon, || {
        user_topics(&t).get("east.feed").copied()
    });
    wait_for_probes(&daemon, &s, "feed", &t, "east.feed", 2);
    produce(&s, "feed", "after", 10, &[]);
    let source = contents(&s, "feed").unwrap();
    let got = wait_until("the later records on the target", &daemon, || {
        let got = contents(&t, "east.feed")?;
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
    not_applied_again(&[]);
}

/// The same against brokers emulating Kafka 2.8 (Fetch v12 and Produce v9, by name).
#[test]
fn start_from_latest_is_not_applied_again_after_a_restart_emulating_kafka_2_8() {
    not_applied_again(&["--emulate-kafka", "2.8"]);
}

fn not_applied_again(broker_args: &[&str]) {
    let c = Clusters::start_with(broker_args, broker_args);
    let (s, t) = (c.source.addr(), c.target.addr());
    create(&s, "feed", 1, &[]);
    produce(&s, "feed", "early", 5, &[]);
    let config = c.topology(&east_to_west("feed.*", "    start_from: latest\n"));
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
        let got = contents(&t, "east.feed")?;
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

/// `start_from: latest` decides the start once, when the topic is first discovered: records
/// written while the daemon is stopped afterwards are mirrored after the restart, even in
/// a partition that had received nothing yet (so had no progress to resume from).
#[test]
fn start_from_latest_loses_nothing_across_a_restart() {
    loses_nothing_across_a_restart(&[]);
}

/// The same against brokers emulating Kafka 2.8 (Fetch v12 and Produce v9, by name).
#[test]
fn start_from_latest_loses_nothing_across_a_restart_emulating_kafka_2_8() {
    loses_nothing_across_a_restart(&["--emulate-kafka", "2.8"]);
}

fn loses_nothing_across_a_restart(broker_args: &[&str]) {
    let c = Clusters::start_with(broker_args, broker_args);
    let (s, t) = (c.source.addr(), c.target.addr());
    create(&s, "feed", 2, &[]);
    produce(&s, "feed", "early", 5, &[]);
    let config = c.topology(&east_to_west("feed", "    start_from: latest\n"));
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
        let got = contents(&t, "east.feed")?;
        got.get(&1).is_some_and(|r| !r.is_empty()).then_some(())
    });
    daemon.terminate_ok();

    produce(&s, "feed", "down", 3, &[]);
    daemon.restart();
    assert!(
        daemon.wait_ready(Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    produce(&s, "feed", "after", 3, &[]);
    let got = wait_until("the records written after the restart", &daemon, || {
        let got = contents(&t, "east.feed")?;
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

/// The start `start_from: latest` chose is stored before anything is fetched: a daemon
/// killed (SIGKILL, no drain, no final progress write) as soon as its flow started does
/// not choose again at the restart, so the records written while it was down are
/// mirrored, and those from before its first start are not.
#[test]
fn start_from_latest_is_stored_before_anything_is_fetched_and_survives_a_kill() {
    stored_before_anything_is_fetched(&[]);
}

/// The same against brokers emulating Kafka 2.8 (Fetch v12 and Produce v9, by name).
#[test]
fn start_from_latest_is_stored_before_anything_is_fetched_emulating_kafka_2_8() {
    stored_before_anything_is_fetched(&["--emulate-kafka", "2.8"]);
}

fn stored_before_anything_is_fetched(broker_args: &[&str]) {
    let c = Clusters::start_with(broker_args, broker_args);
    let (s, t) = (c.source.addr(), c.target.addr());
    create(&s, "feed", 2, &[]);
    produce(&s, "feed", "early", 5, &[]);
    let config = c.topology(&east_to_west("feed", "    start_from: latest\n"));
    let mut daemon = started(&config);
    assert!(
        daemon
            .log
            .wait_for("Flow started.", Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    daemon.kill9();

    produce(&s, "feed", "down", 3, &[]);
    daemon.restart();
    assert!(
        daemon.wait_ready(Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    let got = wait_until(
        "the records written while the daemon was down",
        &daemon,
        || {
            let got = contents(&t, "east.feed")?;
            let done =
                (0..2).all(|p| got.get(&p).and_then(|r| r.last()) == Some(&format!("down-{p}-2")));
            done.then_some(got)
        },
    );
    for p in 0..2 {
        let down: Vec<String> = (0..3).map(|i| format!("down-{p}-{i}")).collect();
        assert_eq!(got[&p], down, "partition {p}");
    }
    stop(daemon);
}

/// A flow's progress is kept under its name: renamed, it mirrors its topics again from
/// the source's start. The daemon says so at WARN, with the records the target partitions
/// held already, instead of doubling them silently.
#[test]
fn a_renamed_flow_says_that_the_target_already_holds_records() {
    let c = Clusters::start();
    let s = c.source.addr();
    create(&s, "feed", 2, &[]);
    produce(&s, "feed", "r", 5, &[]);
    let daemon = started(&c.topology(&east_to_west("feed", "")));
    wait_mirrored(&daemon, &c.source, "feed", &c.target, "east.feed");
    assert!(
        !daemon.log.contains("already hold records"),
        "{}",
        daemon.log.tail(20)
    );
    stop(daemon);

    let renamed = east_to_west("feed", "").replace("name: east-to-west", "name: renamed");
    let daemon = started(&c.topology(&renamed));
    let line = daemon
        .log
        .wait_for_line("already hold records", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no WARN:\n{}", daemon.log.tail(30)));
    assert!(
        line.contains("WARN")
            && line.contains("topic=east.feed")
            && line.contains("partitions=2")
            && line.contains("records=10"),
        "{line}"
    );
    stop(daemon);
}
