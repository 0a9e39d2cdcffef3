//! Quotas on the daemon's client id, as platform teams put on mirror makers, at Kafka 4.1
//! versions and with `--emulate-kafka 2.8`:
//! - a source `consumer_byte_rate`: the broker answers a Fetch over the quota with no
//!   partitions and a `throttle_time_ms` (Kafka: FetchContext.getThrottledResponse), and
//!   reads nothing more from that connection until the time has passed;
//! - a target `producer_byte_rate`: the broker carries out a Produce over the quota and
//!   answers it with a `throttle_time_ms`, then mutes the connection (Kafka:
//!   KafkaApis.handleProduceRequest);
//! - a target `consumer_byte_rate` while the daemon starts: its progress load reads
//!   `__kmirror_progress` through empty, throttled answers to the end.
//!
//! The daemon waits each throttle out before sending to that broker again (KIP-219) and
//! mirrors every record once. The brokers log, at DEBUG, each throttled answer and any
//! request that arrived during a throttle, with how long after the response; the tests
//! read both.

mod support;

use support::topics::{create, flow, read, wait_records};
use support::*;

const RECORDS: usize = 1_500;

/// A broker that logs its throttles at DEBUG.
fn logging_broker(dir: &std::path::Path, broker_args: &[&str]) -> BrokerProcess {
    let mut args = broker_args.to_vec();
    args.extend([
        "--log-level",
        "info,kmirror_broker::dispatch=debug,kmirror_broker::connection=debug",
    ]);
    BrokerProcess::start(dir, &args)
}

/// Sets `key=value` on the daemon's client id (`kmirror`) at `broker`.
fn set_quota(broker: &BrokerProcess, key_value: &str) {
    let set = run_python(
        "client_quotas.py",
        &[&broker.addr(), "alter", "client-id=kmirror", key_value],
    );
    assert_eq!(set.trim(), "ALTERED");
}

/// How many answers `broker` has throttled.
fn throttles(broker: &BrokerProcess) -> usize {
    broker
        .log
        .lines_containing("Client over its quota; throttled.")
        .len()
}

/// How far from the ends of a throttle a request may arrive on that connection and still
/// have been sent in keeping with it: Produce requests are pipelined (five in flight), so
/// those sent just before the daemon read a throttled response arrive at its start; and
/// the broker's clock starts once its write of the response has returned, which on a
/// busy machine may be after the daemon read it and started its own, so the daemon's next
/// request may arrive just before the broker's end (4 ms before, once). One arriving in
/// between was sent while the daemon knew to wait.
///
/// The broker reads one request during a throttle and logs it; when that one is a
/// pipelined Produce, a later one is not seen. So a daemon that ignores the throttle is
/// caught by chance, not every time: without the messenger's hold in the produce path,
/// five runs of six failed (a request 261-423 ms into a throttle).
const EDGE_MS: u64 = 200;

/// Throttled at least once, and sent nothing on a throttled connection while it knew of
/// the throttle.
fn waited_out(broker: &BrokerProcess, side: &str) {
    let long = broker
        .log
        .lines_containing("Client over its quota; throttled.")
        .iter()
        .filter_map(|l| Log::field(l, "throttle_ms"))
        .any(|ms| ms >= 2 * EDGE_MS);
    assert!(
        long,
        "the {side} never throttled the daemon for {} ms or more: {}",
        2 * EDGE_MS,
        broker.log.tail(20)
    );
    let late: Vec<String> = broker
        .log
        .lines_containing("arrived from a throttled client")
        .into_iter()
        .filter(
            |l| match (Log::field(l, "throttle_ms"), Log::field(l, "after_ms")) {
                (Some(throttle_ms), Some(after_ms)) => {
                    after_ms >= EDGE_MS && after_ms + EDGE_MS <= throttle_ms
                }
                _ => true,
            },
        )
        .collect();
    assert!(
        late.is_empty(),
        "the daemon sent requests to the {side} during its throttle time: {late:#?}"
    );
}

/// Writes `count` records of 1000 bytes to partition 0 of `topic`.
fn write(source: &BrokerProcess, topic: &str, count: usize) {
    let written = run_python(
        "client_quotas.py",
        &[
            &source.addr(),
            "produce",
            topic,
            "writer",
            &count.to_string(),
            "1000",
        ],
    );
    assert!(
        written.contains(&format!("DONE records={count}")),
        "{written}"
    );
}

fn mirror_under_quota(broker_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let source = logging_broker(&dir.path().join("source"), broker_args);
    let target = BrokerProcess::start(&dir.path().join("target"), broker_args);
    // 100 KB/s, measured over at least ten one-second windows: about 1 MB passes at once,
    // and the Fetch that would bring the rest of 1.5 MB is throttled.
    set_quota(&source, "consumer_byte_rate=100000");
    create(&source.addr(), "limited", 1, &[]);
    write(&source, "limited", RECORDS);
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        &flow("limited"),
    );
    let mut daemon = DaemonProcess::start(&config);
    wait_records(&target.addr(), "limited", RECORDS, &daemon);
    daemon.terminate_ok();
    waited_out(&source, "source");
    assert!(
        !daemon.log.contains("Fetch failed"),
        "{}",
        daemon.log.tail(40)
    );
}

#[test]
fn a_throttled_fetch_is_waited_out_and_nothing_is_lost() {
    mirror_under_quota(&[]);
}

#[test]
fn a_throttled_fetch_is_waited_out_at_kafka_2_8() {
    mirror_under_quota(&["--emulate-kafka", "2.8"]);
}

/// The bytes of `__kmirror_progress` in the log of the broker with data directory `dir`.
fn progress_log_bytes(dir: &std::path::Path) -> u64 {
    let partition = dir.join("__kmirror_progress-0");
    std::fs::read_dir(&partition)
        .unwrap_or_else(|e| panic!("{}: {e}", partition.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

/// The target throttles the daemon's Produce requests, then, at a restart, the Fetch
/// requests that load its progress: every record is mirrored once, and the progress is
/// read to its end through the throttled answers (a load that stopped at one would start
/// the partition again from the source's log start, and mirror it twice).
fn mirror_to_a_throttling_target(broker_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), broker_args);
    let target = logging_broker(&dir.path().join("target"), broker_args);
    set_quota(&target, "producer_byte_rate=100000");
    create(&source.addr(), "limited", 1, &[]);
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        &flow("limited"),
    );
    let mut daemon = DaemonProcess::start(&config);
    // In rounds, so that the progress topic holds several batches, one or more a round.
    for round in 1..=5 {
        write(&source, "limited", RECORDS / 5);
        wait_records(&target.addr(), "limited", round * RECORDS / 5, &daemon);
    }
    waited_out(&target, "target");
    daemon.terminate_ok();

    // A quota whose window (ten seconds or so) holds about three quarters of the progress
    // topic: its first batch passes, and reading the rest is throttled.
    let progress = progress_log_bytes(&dir.path().join("target"));
    assert!(
        progress >= 14 * 50,
        "the progress topic holds {progress} bytes"
    );
    let rate = progress / 14;
    // Produce no longer throttled: every throttle from here on is a Fetch's.
    set_quota(&target, "producer_byte_rate=");
    eprintln!("progress topic: {progress} bytes; consumer_byte_rate={rate}");
    set_quota(&target, &format!("consumer_byte_rate={rate}"));
    let before = throttles(&target);
    write(&source, "limited", 10);
    daemon.restart();
    let got = wait_records(&target.addr(), "limited", RECORDS + 10, &daemon);
    let mirrored = got["0"].as_array().map_or(0, Vec::len);
    assert_eq!(mirrored, RECORDS + 10, "records mirrored twice");
    assert!(
        throttles(&target) > before
            && daemon
                .log
                .contains("reading progress: the Fetch response held no data"),
        "the progress load was never throttled: {}\n{}",
        target.log.tail(20),
        daemon.log.tail(20)
    );
    waited_out(&target, "target");
    daemon.terminate_ok();
    let after = read(&target.addr(), "limited");
    let mirrored = after["0"].as_array().map_or(0, Vec::len);
    assert_eq!(mirrored, RECORDS + 10, "records mirrored twice");
}

#[test]
fn a_throttling_target_is_waited_out_and_progress_loads_through_it() {
    mirror_to_a_throttling_target(&[]);
}

#[test]
fn a_throttling_target_is_waited_out_at_kafka_2_8() {
    mirror_to_a_throttling_target(&["--emulate-kafka", "2.8"]);
}
