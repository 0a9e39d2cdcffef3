//! A source cluster with a `consumer_byte_rate` quota on the daemon's client id, as
//! platform teams put on mirror makers: the broker answers a Fetch over the quota with no
//! partitions and a `throttle_time_ms` (Kafka: FetchContext.getThrottledResponse), and
//! reads nothing more from that connection until the time has passed. The daemon waits it
//! out before fetching again from that broker (KIP-219), and mirrors every record. The
//! source logs, at DEBUG, each throttled answer and any request that arrived during a
//! throttle; the test reads both. At Kafka 4.1 versions and with `--emulate-kafka 2.8`.

mod support;

use support::topics::{create, flow, wait_records};
use support::*;

const RECORDS: usize = 1_500;

fn mirror_under_quota(broker_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = broker_args.to_vec();
    args.extend([
        "--log-level",
        "info,kmirror_broker::dispatch=debug,kmirror_broker::connection=debug",
    ]);
    let source = BrokerProcess::start(&dir.path().join("source"), &args);
    let target = BrokerProcess::start(&dir.path().join("target"), broker_args);
    // 100 KB/s, measured over at least ten one-second windows: about 1 MB passes at once,
    // and the Fetch that would bring the rest of 1.5 MB is throttled.
    let set = run_python(
        "client_quotas.py",
        &[
            &source.addr(),
            "alter",
            "client-id=kmirror",
            "consumer_byte_rate=100000",
        ],
    );
    assert_eq!(set.trim(), "ALTERED");
    create(&source.addr(), "limited", 1, &[]);
    let written = run_python(
        "client_quotas.py",
        &[
            &source.addr(),
            "produce",
            "limited",
            "writer",
            &RECORDS.to_string(),
            "1000",
        ],
    );
    assert!(
        written.contains(&format!("DONE records={RECORDS}")),
        "{written}"
    );
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        &flow("limited"),
    );
    let mut daemon = DaemonProcess::start(&config);
    wait_records(&target.addr(), "limited", RECORDS, &daemon);
    daemon.terminate_ok();
    assert!(
        source.log.contains("Client over its quota; throttled."),
        "the source never throttled the daemon: {}",
        source.log.tail(20)
    );
    assert!(
        !source.log.contains("arrived from a throttled client"),
        "the daemon sent a request before its throttle time passed: {}",
        source.log.tail(40)
    );
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
