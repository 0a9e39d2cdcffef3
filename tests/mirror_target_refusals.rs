//! A target that refuses records as Kafka does names them: Kafka's answer to a batch with
//! records out of the target topic's timestamp range says only "One or more records have
//! been rejected due to invalid timestamp", and lists the records in `record_errors`
//! (KIP-467). The daemon stops that partition with an ERROR naming the first of them and
//! the refused batch's source offsets, after writing the records before it that the
//! refused batch held.

mod support;

use std::time::Duration;

use support::topics::{admin, contents, create, flow, produce};
use support::*;

/// Creates `topic` on the target with `target_config`, mirrors it there (configs not
/// synced) until the daemon logs an ERROR: the daemon and that line.
fn mirror_until_error(
    dir: &std::path::Path,
    (source, target): (&BrokerProcess, &BrokerProcess),
    topic: &str,
    target_config: &str,
) -> (DaemonProcess, String) {
    create(&target.addr(), topic, 1, &[target_config]);
    let mut topology = flow(topic);
    topology.push_str("    sync_configs: { enabled: false }\n");
    let config = write_topology(
        dir,
        &[("east", &source.addr()), ("west", &target.addr())],
        &topology,
    );
    let daemon = DaemonProcess::start(&config);
    let line = daemon
        .log
        .wait_for_line(" ERROR ", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no ERROR:\n{}", daemon.log.tail(30)));
    (daemon, line)
}

#[test]
fn a_partition_whose_records_the_target_refuses_stops_naming_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    create(&source.addr(), "aged", 1, &[]);
    produce(&source.addr(), "aged", "v", 5, &[]);
    // Records older than 0 ms are out of range: all of them, by the time they are mirrored.
    let (mut daemon, line) = mirror_until_error(
        dir.path(),
        (&source, &target),
        "aged",
        "message.timestamp.before.max.ms=0",
    );
    assert!(
        line.contains("rejected due to invalid timestamp")
            && line.contains("record 0 of the batch: Timestamp")
            && line.contains("of message with offset 0 is out of range"),
        "{line}"
    );
    // The stopped partition holds nothing up: the daemon still stops cleanly.
    daemon.terminate_ok();
}

/// Kafka refuses a whole batch for one record out of its timestamp range; the records
/// before that one are still written: the daemon halves the refused batch until the
/// refused record is alone, and the partition stops there, not at the batch's start.
#[test]
fn the_records_before_a_refused_one_in_its_batch_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    create(&source.addr(), "mixed", 1, &[]);
    // One batch: v-0..v-5 stamped now, v-6..v-9 two hours ago.
    admin(
        &source.addr(),
        &["produce-aged", "mixed", "v", "7200000", "6", "4"],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    // librdkafka once sent the first record alone ahead of the rest; a batch holding both
    // recent and aged records is all the test needs.
    let batches = rt.block_on(support::cluster::count_batches(&source.addr(), "mixed"));
    assert!(
        batches <= 2,
        "the source holds the records in {batches} batches"
    );
    let (mut daemon, line) = mirror_until_error(
        dir.path(),
        (&source, &target),
        "mixed",
        "message.timestamp.before.max.ms=3600000",
    );
    assert!(line.contains("rejected due to invalid timestamp"), "{line}");
    // Kafka's text counts offsets within the batch as sent; the source's are said too.
    assert!(
        line.contains("the refused batch holds source offsets 6 to 6 (1 record,"),
        "{line}"
    );
    let written = contents(&target.addr(), "mixed").expect("the target topic");
    let want: Vec<String> = (0..6).map(|i| format!("v-{i}")).collect();
    assert_eq!(written.get(&0), Some(&want), "{}", daemon.log.tail(30));
    daemon.terminate_ok();
}
