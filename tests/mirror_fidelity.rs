//! Fidelity end to end: what a third-party consumer reads from the target is what it reads
//! from the source, record by record, byte for byte.
//!
//! confluent-kafka writes 100,000 records over 3 topics × 8 partitions of the source
//! (`tests/clients/fidelity_produce.py`): keys, null and empty keys, null and empty values,
//! headers with repeated names and None values, explicit timestamps, and five producers with
//! different compression codecs (none, gzip, snappy, lz4, zstd) taking turns, so that the
//! batches of one partition alternate between codecs. The daemon is started while the
//! producers are writing. A confluent-kafka consumer then reads every partition of both
//! clusters from the beginning (`tests/clients/fidelity_verify.py`) and compares key, value,
//! the full header list, timestamp type and timestamp of every record, in order.
//!
//! The test also reads the raw record batches of both clusters (Fetch, nothing
//! decompressed) to check its own premise — every source partition holds batches of
//! several codecs — and DESIGN.md's data path: every record reaches the target in a batch
//! of its source batch's codec (batches are forwarded as they are, or small ones merged
//! with the same codec), so record by record the codecs of source and target agree.

mod support;

use std::time::{Duration, Instant};

use kmirror::client::fetch::{self, FetchWant};
use kmirror::client::{ClientConfig, ClusterClient};
use kmirror_wire::backoff::BackoffConfig;
use kmirror_wire::batch::Batches;
use kmirror_wire::messenger::MessengerConfig;
use support::*;

const TOPICS: &str = "orders,payments,clicks";
const PARTITIONS: &str = "8";
const RECORDS: usize = 100_000;

#[test]
fn mixed_codecs_keys_headers_and_timestamps_are_mirrored_byte_equal() {
    mixed_codecs_keys_headers_and_timestamps(&[]);
}

/// The same against brokers emulating Kafka 2.8 (Fetch v12 and Produce v9, by name).
#[test]
fn mixed_codecs_keys_headers_and_timestamps_are_mirrored_byte_equal_emulating_kafka_2_8() {
    mixed_codecs_keys_headers_and_timestamps(&["--emulate-kafka", "2.8"]);
}

fn mixed_codecs_keys_headers_and_timestamps(broker_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), broker_args);
    let target = BrokerProcess::start(&dir.path().join("target"), broker_args);
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        concat!(
            "  - name: east-to-west\n",
            "    source: east\n",
            "    target: west\n",
            "    topics: { include: [\".*\"], exclude: [\"__.*\"] }\n",
            "    discovery_interval: 1s\n",
        ),
    );

    // Production starts first; the daemon starts once a tenth of the records are on the
    // source, and the rest is written while it mirrors.
    let started = dir.path().join("producer-started");
    let go_on = dir.path().join("daemon-started");
    let producer = {
        let (bootstrap, started, go_on) = (
            source.addr(),
            started.display().to_string(),
            go_on.display().to_string(),
        );
        std::thread::spawn(move || {
            run_python(
                "fidelity_produce.py",
                &[
                    "--bootstrap",
                    &bootstrap,
                    "--topics",
                    TOPICS,
                    "--partitions",
                    PARTITIONS,
                    "--records",
                    &RECORDS.to_string(),
                    "--started-file",
                    &started,
                    "--continue-file",
                    &go_on,
                ],
            )
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !started.exists() {
        assert!(
            !producer.is_finished(),
            "the producer ended before it started: {:?}",
            producer.join()
        );
        assert!(Instant::now() < deadline, "the producer did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let t0 = Instant::now();
    let mut daemon = DaemonProcess::start(&config);
    assert!(
        daemon.wait_ready(Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    std::fs::write(&go_on, b"").unwrap();
    let produced = producer.join().expect("producer thread");
    eprintln!("{}", produced.trim());
    assert!(
        produced.contains(&format!("acked={RECORDS} failed=0")),
        "{produced}"
    );

    let verified = records::assert_byte_equal(
        (&source.addr(), &target.addr()),
        TOPICS,
        "east.{topic}",
        RECORDS,
        &[],
    );
    eprintln!("{verified}");
    eprintln!(
        "mirrored and verified {:.1?} after the daemon started",
        t0.elapsed()
    );
    assert!(
        verified.contains(&format!("compared={RECORDS} "))
            && verified.contains(&format!("create_time={RECORDS} ")),
        "not every record was compared:\n{verified}"
    );

    // Codecs mixed within every source partition, and kept by the mirror for every record.
    let codec_names = ["none", "gzip", "snappy", "lz4", "zstd"];
    for topic in TOPICS.split(',') {
        let on_source = record_codecs(&source.addr(), topic, 8);
        let on_target = record_codecs(&target.addr(), &format!("east.{topic}"), 8);
        for (partition, (s, t)) in on_source.iter().zip(&on_target).enumerate() {
            let mut distinct: Vec<i16> = s.clone();
            distinct.sort();
            distinct.dedup();
            let names: Vec<&str> = distinct.iter().map(|c| codec_names[*c as usize]).collect();
            let switches = s.windows(2).filter(|w| w[0] != w[1]).count();
            eprintln!(
                "{topic}[{partition}]: {} records, codecs {names:?}, {switches} codec changes",
                s.len()
            );
            assert!(
                distinct.len() >= 3 && switches >= 10,
                "{topic}[{partition}]: the source partition does not mix codecs: {s:?}"
            );
            assert_eq!(
                s, t,
                "{topic}[{partition}]: the target's records are not in batches of the source's codecs"
            );
        }
    }

    assert!(
        !daemon.log.contains(" ERROR "),
        "the daemon reported errors:\n{}",
        daemon.log.tail(40)
    );

    let status = daemon.terminate().expect("daemon exits after SIGTERM");
    assert!(
        status.success(),
        "exit status {status}: {}",
        daemon.log.tail(30)
    );
}

/// The compression codec (attributes & 7) of the batch of every record of each partition of
/// `topic`, in offset order, read with raw Fetch requests (nothing decompressed).
fn record_codecs(bootstrap: &str, topic: &str, partitions: i32) -> Vec<Vec<i16>> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = ClusterClient::new(ClientConfig {
            cluster: "check".into(),
            bootstrap: vec![bootstrap.to_string()],
            messenger: MessengerConfig::default(),
            backoff: BackoffConfig::default(),
            replication_factor: None,
        });
        client.refresh_metadata().await.unwrap();
        let mut out = Vec::new();
        for partition in 0..partitions {
            let leader = client.leader(topic, partition).await.unwrap();
            let mut codecs = Vec::new();
            let mut offset = 0;
            loop {
                let want = FetchWant {
                    topic: topic.to_string(),
                    topic_id: client.metadata().topic_id(topic),
                    partition,
                    offset,
                    max_bytes: None,
                    leader_epoch: client.metadata().leader_epoch(topic, partition),
                    last_fetched_epoch: -1,
                };
                let got = fetch::fetch(&leader, &[want], 0, 8 << 20, 4 << 20)
                    .await
                    .unwrap()
                    .remove(0);
                assert_eq!(got.error_code, 0, "fetch {topic}[{partition}] at {offset}");
                let mut advanced = false;
                for batch in Batches::new(&got.records) {
                    let batch = batch.unwrap();
                    if batch.next_offset() <= offset {
                        continue;
                    }
                    for _ in 0..batch.record_count() {
                        codecs.push(batch.compression());
                    }
                    offset = batch.next_offset();
                    advanced = true;
                }
                if offset >= got.high_watermark {
                    break;
                }
                assert!(
                    advanced,
                    "no whole batch in a fetch of {topic}[{partition}]"
                );
            }
            out.push(codecs);
        }
        out
    })
}

/// A source topic with `message.timestamp.type=LogAppendTime`: consumers of the source see
/// the time the source broker appended each batch (not the producer's timestamps). The
/// mirror must show them the same timestamps, not the time the target appended its copy
/// nor the producer's original CreateTime values. `message.timestamp.type` is not synced
/// (MirrorMaker 2 excludes it too), so the target topic is CreateTime, and a Kafka target
/// rewrites a client batch's LogAppendTime attribute: the daemon therefore sends CreateTime
/// batches whose records carry the source's append time, and the timestamp type on the
/// target is CreateTime.
#[test]
fn log_append_time_timestamps_are_mirrored_as_the_source_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    let records = "5000";
    let produced = run_python(
        "fidelity_produce.py",
        &[
            "--bootstrap",
            &source.addr(),
            "--topics",
            "appended",
            "--partitions",
            "4",
            "--records",
            records,
            "--round",
            "100",
            "--topic-config",
            "message.timestamp.type=LogAppendTime",
        ],
    );
    eprintln!("{}", produced.trim());
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        concat!(
            "  - name: east-to-west\n",
            "    source: east\n",
            "    target: west\n",
            "    topics: { include: [\"appended\"] }\n",
            "    discovery_interval: 1s\n",
        ),
    );
    // Let the source's append times be clearly older than any the target could assign.
    std::thread::sleep(Duration::from_millis(1500));
    let mut daemon = DaemonProcess::start(&config);
    let verified = records::assert_byte_equal(
        (&source.addr(), &target.addr()),
        "appended",
        "east.{topic}",
        records.parse().expect("a count"),
        &["--append-time-as-create-time"],
    );
    eprintln!("{verified}");
    assert!(
        verified.contains(&format!("create_time=0 log_append_time={records} ")),
        "the source does not show LogAppendTime timestamps:\n{verified}"
    );
    let status = daemon.terminate().expect("daemon exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
}
