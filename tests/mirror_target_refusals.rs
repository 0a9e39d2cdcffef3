//! A target that refuses records as Kafka does names them: Kafka's answer to a batch with
//! records out of the target topic's timestamp range says only "One or more records have
//! been rejected due to invalid timestamp", and lists the records in `record_errors`
//! (KIP-467). The daemon stops that partition with an ERROR naming the first of them.

mod support;

use std::time::Duration;

use support::topics::{create, flow, produce};
use support::*;

#[test]
fn a_partition_whose_records_the_target_refuses_stops_naming_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    create(&source.addr(), "aged", 1, &[]);
    produce(&source.addr(), "aged", "v", 5, &[]);
    // Records older than 0 ms are out of range: all of them, by the time they are mirrored.
    create(
        &target.addr(),
        "aged",
        1,
        &["message.timestamp.before.max.ms=0"],
    );
    let mut topology = flow("aged");
    topology.push_str("    sync_configs: { enabled: false }\n");
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        &topology,
    );
    let mut daemon = DaemonProcess::start(&config);
    let line = daemon
        .log
        .wait_for_line(" ERROR ", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no ERROR:\n{}", daemon.log.tail(30)));
    assert!(
        line.contains("rejected due to invalid timestamp")
            && line.contains("record 0 of the batch: Timestamp")
            && line.contains("of message with offset 0 is out of range"),
        "{line}"
    );
    // The stopped partition holds nothing up: the daemon still stops cleanly.
    daemon.terminate_ok();
}
