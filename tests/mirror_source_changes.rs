//! The daemon against sources that change under it, as Kafka sources can: each change
//! stops only what it touches, with an ERROR that names it, and the rest keeps flowing.
//!
//! - A source topic deleted and re-created (its topic id changes) stops that topic, until
//!   a reload takes it out of the flow; also when it was re-created while the daemon was
//!   stopped (the id is kept with the progress). `kmirror forget` deletes the topic's
//!   progress, and the next start mirrors the new topic from its start.
//! - Records deleted before they were mirrored stop their partition, naming the log start.
//! - A batch that fails its CRC on the source's disk stops its partition after everything
//!   before it is mirrored and three fetches again, whether it was to be merged or
//!   forwarded as it is; one that came bad once (damage on the way) is mirrored.
//! - A source log that diverged from what was mirrored (an unclean leader election) stops
//!   its partition, at Kafka 4.1 versions and emulating Kafka 2.8, also when it diverged
//!   while the daemon was stopped.

mod support;

use std::time::{Duration, Instant};

use kmirror_wire::batch::Batches;
use support::cluster::move_leaders;
use support::topics::{admin, contents, flow, read, total, wait_records};
use support::*;

/// `/status` on `listen`.
fn status(listen: &str) -> serde_json::Value {
    let (_, status) = http_get(listen, "/status").expect("/status");
    serde_json::from_str(&status).unwrap()
}

/// Asserts that `/status` on `listen` shows the partition failed, its last error
/// containing `error`.
fn assert_failed(listen: &str, topic: &str, partition: i32, error: &str) -> serde_json::Value {
    let status = status(listen);
    let p = status["flows"][0]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["topic"] == topic && p["partition"] == partition)
        .unwrap_or_else(|| panic!("{topic}-{partition} not in {status}"));
    assert_eq!(p["state"], "failed", "{p}");
    assert!(
        p["last_error"].as_str().is_some_and(|e| e.contains(error)),
        "{p}"
    );
    p.clone()
}

/// Two source topics, `keep` and `gone`, with ten records each, mirrored by a daemon with
/// a telemetry listener; `gone` is the one tests delete and create again.
struct KeepAndGone {
    source: BrokerProcess,
    target: BrokerProcess,
    config: std::path::PathBuf,
    listen: String,
    daemon: DaemonProcess,
}

impl KeepAndGone {
    /// Both brokers with `broker_args` (e.g. `--emulate-kafka 2.8`).
    fn start(dir: &std::path::Path, broker_args: &[&str]) -> Self {
        let source = BrokerProcess::start(&dir.join("source"), broker_args);
        let target = BrokerProcess::start(&dir.join("target"), broker_args);
        for topic in ["keep", "gone"] {
            admin(&source.addr(), &["create", topic, "1"]);
            admin(&source.addr(), &["produce", topic, "a", "10"]);
        }
        let config = write_topology(
            dir,
            &[("east", &source.addr()), ("west", &target.addr())],
            &flow("keep|gone"),
        );
        let listen = format!("127.0.0.1:{}", free_port());
        add_telemetry(&config, &format!("listen: \"{listen}\", log_interval: 1s"));
        let daemon = DaemonProcess::start(&config);
        wait_records(&target.addr(), "keep", 10, &daemon);
        wait_records(&target.addr(), "gone", 10, &daemon);
        Self {
            source,
            target,
            config,
            listen,
            daemon,
        }
    }

    /// Deletes `gone` and creates it again with `records` new records.
    fn recreate_gone(&self, records: &str) {
        admin(&self.source.addr(), &["delete", "gone"]);
        self.create_gone(records);
    }

    /// Creates `gone` (again) with `records` new records.
    fn create_gone(&self, records: &str) {
        admin(&self.source.addr(), &["create", "gone", "1"]);
        admin(&self.source.addr(), &["produce", "gone", "b", records]);
    }

    /// Waits for the daemon's ERROR about `gone`, then checks that the target still holds
    /// only the old topic's ten records and that `/status` and `/readyz` show it failed.
    fn assert_gone_stopped(&self) {
        let line = self
            .daemon
            .log
            .wait_for_line("deleted and re-created", Duration::from_secs(60))
            .unwrap_or_else(|| {
                panic!(
                    "no error about the re-created topic:\n{}",
                    self.daemon.log.tail(40)
                )
            });
        assert!(line.contains("ERROR") && line.contains("gone"), "{line}");
        admin(&self.source.addr(), &["produce", "keep", "b", "10"]);
        wait_records(&self.target.addr(), "keep", 20, &self.daemon);
        // The new topic's records were not mirrored on top of the old ones.
        let gone = read(&self.target.addr(), "gone");
        assert_eq!(gone["0"].as_array().map(Vec::len), Some(10), "{gone}");
        // It stays failed in /status (it needs an operator), and the daemon is not ready.
        // Its lag is unknown: the new topic's offsets mean nothing against the old position.
        assert_failed(&self.listen, "gone", 0, "re-created");
        let (code, body) = http_get(&self.listen, "/readyz").expect("/readyz");
        assert!(code == 503 && body.contains("failed"), "{code} {body}");
        // The progress lines say so too, not a plain "Mirroring.".
        let line = self
            .daemon
            .log
            .wait_for_line("with partitions stopped", Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no progress line:\n{}", self.daemon.log.tail(20)));
        assert!(
            line.contains("WARN") && line.contains("failed_partitions=1"),
            "{line}"
        );
        // Its lag stays unknown through two of the daemon's lag refreshes (every 5 s for a
        // partition not fetched): the new topic's end means nothing against the old position.
        let until = Instant::now() + Duration::from_secs(12);
        while Instant::now() < until {
            let p = assert_failed(&self.listen, "gone", 0, "re-created");
            assert!(p["lag_records"].is_null(), "{p}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

#[test]
fn a_source_topic_deleted_and_recreated_stops_with_an_error_while_others_flow_at_kafka_4_1_versions(
) {
    deleted_and_recreated(&[]);
}

/// Kafka 2.8 has topic ids in Metadata but not in Fetch (v13 came with 3.1): the new id is
/// seen in the metadata.
#[test]
fn a_source_topic_deleted_and_recreated_stops_with_an_error_while_others_flow_emulating_kafka_2_8()
{
    deleted_and_recreated(&["--emulate-kafka", "2.8"]);
}

fn deleted_and_recreated(broker_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let t = KeepAndGone::start(dir.path(), broker_args);
    // Deleted, it is said once while its partition waits for it.
    admin(&t.source.addr(), &["delete", "gone"]);
    let line = t
        .daemon
        .log
        .wait_for_line("source topic is gone", Duration::from_secs(60))
        .unwrap_or_else(|| {
            panic!(
                "nothing said of the deleted topic:\n{}",
                t.daemon.log.tail(40)
            )
        });
    assert!(
        line.contains("WARN") && line.contains("topic=gone"),
        "{line}"
    );
    // /status says why it waits, not that it lacks a leader.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = status(&t.listen)["flows"][0]["partitions"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["topic"] == "gone").cloned())
            .expect("gone-0 in /status");
        if p["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("source topic was deleted"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "{p}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Its fetches, failing before discovery looked, said the topic left the metadata, not
    // that its partition lacks a leader (as a broker's outage would).
    let leaderless: Vec<String> = t
        .daemon
        .log
        .lines()
        .into_iter()
        .filter(|l| l.contains("has no leader"))
        .collect();
    assert!(leaderless.is_empty(), "{leaderless:?}");
    t.create_gone("5");
    t.assert_gone_stopped();
    let (source, target, config, listen, daemon) =
        (&t.source, &t.target, &t.config, &t.listen, &t.daemon);

    // The operator takes the topic out of the flow: once reloaded, the daemon is ready and
    // no longer reports the partition it does not mirror.
    write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        &flow("keep"),
    );
    add_telemetry(config, &format!("listen: \"{listen}\""));
    daemon.signal("-HUP");
    support::discovery::wait_until("ready after the reload", daemon, || {
        (http_get(listen, "/readyz")?.0 == 200).then_some(())
    });
    let partitions = status(listen)["flows"][0]["partitions"].clone();
    assert!(
        partitions
            .as_array()
            .is_some_and(|p| p.len() == 1 && p[0]["topic"] == "keep"),
        "{partitions}"
    );
}

/// A source topic deleted and re-created while the daemon was stopped, with more records
/// than the position the progress kept for the old one: at the restart it stops with the
/// ERROR (its id, kept with the progress, changed) instead of being mirrored from the old
/// offset on, which would skip the new topic's first records; other topics flow.
#[test]
fn a_source_topic_recreated_while_the_daemon_was_stopped_stops_at_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = KeepAndGone::start(dir.path(), &[]);
    t.daemon.terminate_ok();
    t.recreate_gone("30");
    t.daemon = DaemonProcess::start(&t.config);
    t.assert_gone_stopped();
    // The way on that the ERROR gives: stop, `kmirror forget` the topic, start again. The
    // new topic is mirrored from its start, after the old topic's records; `keep` goes on
    // from where it was. Forgetting while the daemon runs is refused: it would write the
    // positions again, or mirror the topic in full again after its next start.
    let config = t.config.to_str().unwrap();
    let args = ["forget", config, "--flow", "rules", "--topic", "gone"];
    let out = std::process::Command::new(daemon_binary())
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("flow rules is running (the daemon whose /status answers at"),
        "{stderr}"
    );
    t.daemon.terminate_ok();
    let out = kmirror_ok(&args);
    assert!(
        out.contains("1 partition positions") && out.contains("its topic id"),
        "{out}"
    );
    assert!(kmirror_ok(&args).contains("nothing deleted"));
    t.daemon = DaemonProcess::start(&t.config);
    wait_records(&t.target.addr(), "gone", 40, &t.daemon);
    let gone = &contents(&t.target.addr(), "gone").unwrap()[&0];
    assert!(
        gone.len() == 40
            && gone[..10].iter().all(|v| v.starts_with('a'))
            && gone[10..].iter().all(|v| v.starts_with('b')),
        "{gone:?}"
    );
    admin(&t.source.addr(), &["produce", "keep", "c", "5"]);
    wait_records(&t.target.addr(), "keep", 25, &t.daemon);
    let keep = &contents(&t.target.addr(), "keep").unwrap()[&0];
    assert_eq!(keep.len(), 25, "keep mirrored once: {keep:?}");
}

/// `kmirror forget` refuses what it cannot do, with exit status 1 and the reason: a flow
/// the topology does not have, and a flow whose target is an embedded cluster (which
/// exists only while `kmirror run` runs). Neither needs a cluster.
#[test]
fn forget_refuses_an_unknown_flow_and_an_embedded_target() {
    let quickstart = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/quickstart.yaml");
    for (flow, says) in [
        (
            "nope",
            "no flow \"nope\"; the topology has source-to-target",
        ),
        ("source-to-target", "writes to the embedded cluster target"),
    ] {
        let args = ["forget", quickstart, "--flow", flow, "--topic", "t"];
        let out = std::process::Command::new(daemon_binary())
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "kmirror {args:?}: {stderr}");
        assert!(stderr.contains(says), "kmirror {args:?}: {stderr}");
    }
}

/// Two topologies with a flow of the same name, from two source clusters into one target
/// (say `kmirror@us-east` and `kmirror@eu-west` from one template): their progress would
/// share keys in `__kmirror_progress`. The second flow does not start, with an ERROR naming
/// both clusters, instead of taking the first one's positions as its own (which skipped
/// or repeated records); the first flow keeps mirroring.
#[test]
fn another_topologys_flow_of_the_same_name_does_not_take_its_progress() {
    let dir = tempfile::tempdir().unwrap();
    let east = BrokerProcess::start(&dir.path().join("east"), &[]);
    let west = BrokerProcess::start(&dir.path().join("west"), &[]);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    for source in [&east, &west] {
        admin(&source.addr(), &["create", "orders", "1"]);
        admin(&source.addr(), &["produce", "orders", "a", "10"]);
    }
    let topology = |name: &str, source: &BrokerProcess, topic: &str| {
        let dir = dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        write_topology(
            &dir,
            &[("source", &source.addr()), ("target", &target.addr())],
            &format!("  - name: to-aggregate\n    source: source\n    target: target\n    topics: {{ include: [\"orders\"] }}\n    rename: \"{topic}.{{topic}}\"\n    discovery_interval: 1s\n"),
        )
    };
    let first = DaemonProcess::start(&topology("first", &east, "east"));
    wait_records(&target.addr(), "east.orders", 10, &first);
    let config = topology("second", &west, "west");
    let listen = add_telemetry_listener(&config);
    let second = DaemonProcess::start(&config);
    let line = second
        .log
        .wait_for_line("was written for source cluster id", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no error about the progress:\n{}", second.log.tail(40)));
    assert!(
        line.contains("ERROR") && line.contains("to-aggregate"),
        "{line}"
    );
    let (code, body) = http_get(&listen, "/readyz").expect("/readyz");
    assert!(
        code == 503 && body.contains("to-aggregate"),
        "{code} {body}"
    );
    // Stopped for good, the flow does not hold `systemctl start` back forever.
    assert!(
        second.wait_ready(Duration::from_secs(30)),
        "no READY=1 after the flow stopped for good: {:?}",
        second.notifications()
    );
    admin(&east.addr(), &["produce", "orders", "b", "10"]);
    wait_records(&target.addr(), "east.orders", 20, &first);
    let west_orders = read(&target.addr(), "west.orders");
    assert!(
        west_orders["0"].as_array().is_none_or(Vec::is_empty),
        "{west_orders}"
    );
}

/// Records deleted on the source (DeleteRecords) before they were mirrored: the partition
/// stops, and the ERROR and `/status` give the source log's real start (a Fetch answer
/// with an error carries -1) and its lag, the records it can no longer mirror included.
#[test]
fn records_deleted_before_they_were_mirrored_stop_the_partition_naming_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    let admin = |args: &[&str]| admin(&source.addr(), args);
    admin(&["create", "trimmed", "1"]);
    admin(&["produce", "trimmed", "a", "10"]);
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        &flow("trimmed"),
    );
    let listen = add_telemetry_listener(&config);
    let mut daemon = DaemonProcess::start(&config);
    wait_records(&target.addr(), "trimmed", 10, &daemon);
    daemon.terminate_ok();
    // While the daemon is stopped: ten more records, of which five are deleted.
    admin(&["produce", "trimmed", "b", "10"]);
    support::groups::groups(
        "delete",
        &source.addr(),
        "trimmed",
        None,
        &["--before", "0:15"],
    );
    let daemon = DaemonProcess::start(&config);
    let line = daemon
        .log
        .wait_for_line("Source offset out of range", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no out-of-range error:\n{}", daemon.log.tail(40)));
    assert!(
        line.contains("ERROR")
            && line.contains("log_start_offset=15")
            && line.contains("deleted_records=5"),
        "{line}"
    );
    assert_failed(&listen, "trimmed", 0, "the source log starts at 15");
    let p = status(&listen)["flows"][0]["partitions"][0].clone();
    assert_eq!(p["lag_records"], 10, "{p}");
}

/// A byte flipped on the source's disk in one batch of each topic: its offset, its log
/// file, and where the byte is in it.
struct Flipped {
    topic: &'static str,
    offset: i64,
    log: std::path::PathBuf,
    at: usize,
}

impl Flipped {
    /// Flips the byte back (or again), in place: the broker reads the file as it runs.
    fn flip(&self) {
        use std::io::{Read, Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.log)
            .unwrap();
        let mut byte = [0u8];
        f.seek(SeekFrom::Start(self.at as u64)).unwrap();
        f.read_exact(&mut byte).unwrap();
        byte[0] ^= 0xff;
        f.seek(SeekFrom::Start(self.at as u64)).unwrap();
        f.write_all(&byte).unwrap();
    }
}

/// Creates `broken` (batches of about 150 bytes, which the daemon merges) and
/// `broken-large` (about 12 KB, forwarded as they are) on `source`, three batches each,
/// and flips the last byte of a batch after the first: the second, or for the large shape
/// the first large one (a producer racing its first metadata may send its first records
/// one per batch).
fn flip_a_batch_in_each(source: &BrokerProcess) -> Vec<Flipped> {
    let admin = |args: &[&str]| admin(&source.addr(), args);
    let long = "x".repeat(100);
    let shapes = [
        ("broken", "5", "r".to_string()),
        ("broken-large", "100", long),
    ];
    let mut flipped = Vec::new();
    for (topic, count, prefix) in shapes {
        admin(&["create", topic, "1"]);
        for round in ["a", "b", "c"] {
            admin(&["produce", topic, &format!("{round}{prefix}"), count]);
        }
        let log = source
            .data_dir
            .join(format!("{topic}-0"))
            .join(format!("{:020}.log", 0));
        let bytes = std::fs::read(&log).unwrap();
        let sizes: Vec<(i64, usize)> = Batches::new(&bytes)
            .map(|b| b.map(|b| (b.base_offset(), b.size_bytes())).unwrap())
            .collect();
        assert!(sizes.len() >= 3, "{topic}: {sizes:?}");
        let corrupt = match topic {
            "broken-large" => (1..sizes.len())
                .find(|&i| sizes[i].1 >= 8 << 10)
                .unwrap_or_else(|| panic!("no batch large enough to go as it is: {sizes:?}")),
            _ => 1,
        };
        let end: usize = sizes[..=corrupt].iter().map(|(_, size)| size).sum();
        let f = Flipped {
            topic,
            offset: sizes[corrupt].0,
            log,
            at: end - 1,
        };
        f.flip();
        flipped.push(f);
    }
    flipped
}

/// A source batch that fails its CRC (a byte flipped on the source's disk) stops its
/// partition with an ERROR naming topic, partition and offset, after mirroring everything
/// before it and fetching it again three times (it came bad each time); it is never
/// fetched again in a silent loop, and other topics keep flowing.
/// Both ways a batch goes: small batches are merged (the daemon reads their records and
/// verifies them), large ones are forwarded as they are (the target refuses the wrong CRC,
/// which the daemon's stamping keeps wrong, and the daemon names the source offset).
#[test]
fn a_corrupt_source_batch_stops_its_partition_with_an_error_at_kafka_4_1_versions() {
    corrupt_source_batch(&[]);
}

#[test]
fn a_corrupt_source_batch_stops_its_partition_with_an_error_emulating_kafka_2_8() {
    corrupt_source_batch(&["--emulate-kafka", "2.8"]);
}

/// Both brokers with `broker_args`.
fn corrupt_source_batch(broker_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), broker_args);
    let target = BrokerProcess::start(&dir.path().join("target"), broker_args);
    let admin = |args: &[&str]| admin(&source.addr(), args);
    let flipped = flip_a_batch_in_each(&source);
    admin(&["create", "healthy", "1"]);
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        &flow("broken.*|healthy"),
    );
    let listen = add_telemetry_listener(&config);
    let daemon = DaemonProcess::start(&config);
    let stopped = |topic: &str| -> Vec<String> {
        let topic = format!("topic={topic} ");
        daemon
            .log
            .lines()
            .into_iter()
            .filter(|l| l.contains("Partition stopped") && l.contains(&topic))
            .collect()
    };
    let fetched_again = |topic: &str| {
        let topic = format!("topic={topic} ");
        daemon
            .log
            .lines()
            .into_iter()
            .filter(|l| l.contains("fetching it again") && l.contains(&topic))
            .count()
    };
    for Flipped {
        topic,
        offset: corrupt_offset,
        ..
    } in &flipped
    {
        let deadline = Instant::now() + Duration::from_secs(60);
        while stopped(topic).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let lines = stopped(topic);
        let line = lines
            .first()
            .unwrap_or_else(|| panic!("{topic} not stopped:\n{}", daemon.log.tail(40)));
        assert!(
            line.contains("ERROR") && line.contains(&format!("offset={corrupt_offset}")),
            "{line}"
        );
        // Everything before the corrupt batch is mirrored, nothing from it on.
        let first_batch = *corrupt_offset as usize;
        let got = wait_records(&target.addr(), topic, first_batch, &daemon);
        assert_eq!(
            got["0"].as_array().map(Vec::len),
            Some(first_batch),
            "{topic}: only the first batch: {got}"
        );
    }
    admin(&["produce", "healthy", "h", "7"]);
    wait_records(&target.addr(), "healthy", 7, &daemon);
    // Telemetry reports both partitions as failed, naming the offset, and is not ready.
    for Flipped {
        topic,
        offset: corrupt_offset,
        ..
    } in &flipped
    {
        assert_failed(&listen, topic, 0, &format!("offset {corrupt_offset}"));
    }
    let status = status(&listen);
    assert_eq!(
        status["flows"][0]["errors"]["corrupt_source"], 2,
        "{status}"
    );
    let (code, body) = http_get(&listen, "/readyz").expect("/readyz");
    assert!(code == 503 && body.contains("failed"), "{code} {body}");
    for Flipped { topic, .. } in &flipped {
        assert_eq!(
            (fetched_again(topic), stopped(topic).len()),
            (3, 1),
            "{topic} fetched again three times and reported once, not in a loop:\n{}",
            daemon.log.tail(20)
        );
    }
}

/// A batch that came bad once (damaged on the way, here flipped on disk and back) is
/// fetched again and mirrored: every record reaches the target exactly once, in order, and
/// the partition keeps running. Both ways a batch goes, as above.
#[test]
fn a_source_batch_that_came_bad_once_is_fetched_again_and_mirrored() {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    let flipped = flip_a_batch_in_each(&source);
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        &flow("broken.*"),
    );
    let listen = add_telemetry_listener(&config);
    let daemon = DaemonProcess::start(&config);
    for f in &flipped {
        let warned = format!("topic={} ", f.topic);
        daemon
            .log
            .wait_for_match(
                |l| l.contains("fetching it again") && l.contains(&warned),
                Duration::from_secs(60),
            )
            .unwrap_or_else(|| panic!("{} not fetched again:\n{}", f.topic, daemon.log.tail(40)));
        f.flip();
    }
    // Read once the source's log is whole again.
    let want: Vec<_> = flipped
        .iter()
        .map(|f| contents(&source.addr(), f.topic).unwrap())
        .collect();
    for (f, want) in flipped.iter().zip(&want) {
        wait_records(&target.addr(), f.topic, total(want), &daemon);
        assert_eq!(
            contents(&target.addr(), f.topic).as_ref(),
            Some(want),
            "{}: every record once, in order",
            f.topic
        );
    }
    assert!(
        !daemon.log.text().contains("Partition stopped"),
        "{}",
        daemon.log.tail(40)
    );
    for f in &flipped {
        let p = status(&listen)["flows"][0]["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["topic"] == f.topic)
            .cloned()
            .unwrap();
        assert_eq!(p["state"], "running", "{p}");
    }
}

/// A source log that diverged from what was mirrored (an unclean leader election: the new
/// leader's log ends the old epoch before records the daemon already read) stops that
/// partition with an ERROR, found by Fetch's `last_fetched_epoch` (KIP-320); the other
/// partition keeps flowing. The broker has no unclean elections, so the divergence is made
/// by hand: with the source stopped, its leader-epoch history is edited to say the epoch
/// the mirrored records carry ended at offset 1, then the source starts again. With
/// `while_stopped`, the daemon is stopped first and started again after the source: its
/// first Fetch then carries the epoch its progress kept.
fn a_source_log_that_diverged_stops_its_partition_with_an_error(
    broker_args: &[&str],
    while_stopped: bool,
) {
    let dir = tempfile::tempdir().unwrap();
    let source_dir = dir.path().join("source");
    let mut source = ThreeNodes::start(&source_dir, broker_args);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    let source_addr = source.addr();
    let admin = |args: &[&str]| admin(&source_addr, args);
    admin(&["create", "diverge", "2"]);
    // A leader move writes the leadership (and its epoch history) to leaders.json.
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(rt.block_on(move_leaders(&source_addr, &["diverge"])), 2);
    admin(&["produce", "diverge", "a", "3"]);
    let config = write_topology(
        dir.path(),
        &[("east", &source_addr), ("west", &target.addr())],
        &flow("diverge"),
    );
    let listen = add_telemetry_listener(&config);
    let mut daemon = DaemonProcess::start(&config);
    wait_records(&target.addr(), "diverge", 6, &daemon);

    if while_stopped {
        daemon.terminate_ok();
    }
    source.broker.terminate_ok();
    let path = source_dir.join("leaders.json");
    let mut leaders: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("leaders.json")).unwrap();
    let p0 = leaders
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["topic"] == "diverge" && r["partition"] == 0)
        .expect("partition 0 in leaders.json");
    let epoch = p0["leader_epoch"].as_i64().unwrap();
    p0["leader_epoch"] = (epoch + 1).into();
    p0["epochs"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({ "epoch": epoch + 1, "start_offset": 1 }));
    std::fs::write(&path, serde_json::to_vec(&leaders).unwrap()).unwrap();
    source.broker.restart();
    if while_stopped {
        daemon.restart();
    }

    let line = daemon
        .log
        .wait_for_line("Source log diverged", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no error about the diverged log:\n{}", daemon.log.tail(40)));
    assert!(
        line.contains("ERROR") && line.contains("diverge") && line.contains("partition=0"),
        "{line}"
    );
    assert!(
        line.contains(&format!("diverging_epoch={epoch}")) && line.contains("end_offset=1"),
        "{line}"
    );
    admin(&["produce", "diverge", "b", "2"]);
    let got = wait_records(&target.addr(), "diverge", 8, &daemon);
    assert_eq!(got["0"].as_array().map(Vec::len), Some(3), "{got}");
    assert_eq!(got["1"].as_array().map(Vec::len), Some(5), "{got}");
    // Telemetry reports partition 0 as failed, naming the divergence.
    assert_failed(
        &listen,
        "diverge",
        0,
        &format!("diverged: its epoch {epoch} ends at offset 1"),
    );
    let status = status(&listen);
    assert_eq!(status["flows"][0]["errors"]["log_diverged"], 1, "{status}");
}

#[test]
fn a_source_log_that_diverged_stops_its_partition_with_an_error_at_kafka_4_1_versions() {
    a_source_log_that_diverged_stops_its_partition_with_an_error(&[], false);
}

#[test]
fn a_source_log_that_diverged_stops_its_partition_with_an_error_emulating_kafka_2_8() {
    a_source_log_that_diverged_stops_its_partition_with_an_error(
        &["--emulate-kafka", "2.8"],
        false,
    );
}

#[test]
fn a_source_log_that_diverged_while_the_daemon_was_stopped_stops_its_partition_at_kafka_4_1_versions(
) {
    a_source_log_that_diverged_stops_its_partition_with_an_error(&[], true);
}

#[test]
fn a_source_log_that_diverged_while_the_daemon_was_stopped_stops_its_partition_emulating_kafka_2_8()
{
    a_source_log_that_diverged_stops_its_partition_with_an_error(&["--emulate-kafka", "2.8"], true);
}
