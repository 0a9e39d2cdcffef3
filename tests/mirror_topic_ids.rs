//! The daemon names topics by id where the broker offers it (Kafka 3.1+: Fetch v13 and
//! later; 4.1: Produce v13), and by name where it does not (Kafka 2.8: Fetch up to v12,
//! Produce up to v9). Both brokers log every request at TRACE
//! (`kmirror_broker::dispatch`); the versions the daemon's Fetches and Produces used are
//! read from there after a mirror.

mod support;

use support::topics::{create, flow, produce, wait_records};
use support::*;

/// The versions of `api` requests `broker` answered, from its TRACE lines.
fn versions(broker: &BrokerProcess, api: &str) -> Vec<i16> {
    let field = format!("api={api} ");
    broker
        .log
        .lines()
        .iter()
        .filter(|l| l.contains("Request.") && l.contains(&field))
        .filter_map(|l| {
            let v = l.split("api_version=").nth(1)?;
            v.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        })
        .collect()
}

/// Mirrors 20 records between brokers started with `broker_args`: the highest Fetch
/// version the source answered and the highest Produce version the target answered.
fn mirrored_with(broker_args: &[&str]) -> (i16, i16) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = broker_args.to_vec();
    args.extend(["--log-level", "info,kmirror_broker::dispatch=trace"]);
    let source = BrokerProcess::start(&dir.path().join("source"), &args);
    let target = BrokerProcess::start(&dir.path().join("target"), &args);
    create(&source.addr(), "ids", 2, &[]);
    produce(&source.addr(), "ids", "v", 10, &[]);
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        &flow("ids"),
    );
    let mut daemon = DaemonProcess::start(&config);
    wait_records(&target.addr(), "ids", 20, &daemon);
    daemon.terminate_ok();
    let fetch = versions(&source, "Fetch").into_iter().max();
    let produce = versions(&target, "Produce").into_iter().max();
    (
        fetch.expect("no Fetch in the source's log"),
        produce.expect("no Produce in the target's log"),
    )
}

#[test]
fn at_kafka_4_1_versions_fetch_and_produce_name_topics_by_id() {
    let (fetch, produce) = mirrored_with(&[]);
    assert!(fetch >= 13, "Fetch v{fetch}");
    assert!(produce >= 13, "Produce v{produce}");
}

#[test]
fn emulating_kafka_2_8_fetch_and_produce_name_topics() {
    let (fetch, produce) = mirrored_with(&["--emulate-kafka", "2.8"]);
    assert_eq!((fetch, produce), (12, 9));
}
