//! The daemon against a broker that refuses what Apache Kafka refuses: sources whose batches
//! Kafka would not take back from a client as they are, and sources that change under it.
//!
//! - A source written with `linger.ms=0` holds thousands of one-record batches: they are
//!   merged into larger batches (one per Produce request, as Kafka requires) and arrive
//!   complete, in order and byte-equal (key, value, headers, timestamps); so are batches of
//!   a few KB to a target 20 ms away.
//! - A compacted-style source (batches with offset gaps, a batch left empty and one with a
//!   delete horizon, written into the source's log by hand because the broker does not
//!   compact) is mirrored record for record; Kafka refuses the first two from a client, so
//!   they are rebuilt, and the third arrives without the source cleaner's horizon.
//!
//! Sources that change under the daemon are in `mirror_source_changes.rs`.
//!
//! Each runs at the broker's default (Kafka 4.1 versions: Fetch and Produce by topic id)
//! and, where noted, against brokers emulating Kafka 2.8.

mod support;

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::Compression;
use kmirror::client::fetch::{self, FetchWant};
use kmirror::client::{ClientConfig, ClusterClient};
use kmirror_wire::backoff::BackoffConfig;
use kmirror_wire::batch::Batches;
use kmirror_wire::messenger::MessengerConfig;
use support::hand_log::{compacted_batch, write_log};
use support::topics::{flow, read, translate, wait_records};
use support::*;

/// Each batch of a partition of `topic` as `(bytes, attributes)` (raw Fetch, nothing
/// decompressed).
fn batches(bootstrap: &str, topic: &str, partition: i32) -> Vec<(usize, i16)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = ClusterClient::new(ClientConfig {
            cluster: "check".into(),
            bootstrap: vec![bootstrap.to_string()],
            messenger: MessengerConfig::default(),
            backoff: BackoffConfig::default(),
            replication_factor: None,
        });
        client.refresh_metadata().await.unwrap();
        let leader = client.leader(topic, partition).await.unwrap();
        let (mut offset, mut batches) = (0, Vec::new());
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
            assert_eq!(got.error_code, 0);
            for b in Batches::new(&got.records) {
                let b = b.unwrap();
                if b.next_offset() > offset {
                    batches.push((b.size_bytes(), b.attributes()));
                    offset = b.next_offset();
                }
            }
            if offset >= got.high_watermark {
                return batches;
            }
        }
    })
}

/// Writes `topic` on `source` with `crash_produce.py` and `args`, listing what the source
/// acknowledged in `acked`; every record must be acknowledged.
fn produce_acked(source: &str, topic: &str, acked: &str, args: &[&str]) {
    let mut all = vec!["--bootstrap", source, "--topic", topic, "--acked", acked];
    all.extend_from_slice(args);
    let produced = run_python("crash_produce.py", &all);
    assert!(produced.contains("failed=0"), "{produced}");
}

/// Checks with `crash_verify.py` that the target's `topic` holds every record the source
/// acknowledged (`acked`), once each and in order.
fn verify_mirrored(source: &str, target: &str, topic: &str, partitions: i32, acked: &str) {
    let partitions = partitions.to_string();
    let verdict = run_python(
        "crash_verify.py",
        &[
            "--bootstrap",
            target,
            "--topic",
            topic,
            "--partitions",
            &partitions,
            "--acked",
            acked,
            "--source",
            source,
        ],
    );
    let result = verdict
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .expect("RESULT line");
    let totals: serde_json::Value = serde_json::from_str(&result["RESULT ".len()..]).unwrap();
    for key in ["lost", "duplicated", "reordered", "misplaced", "unexpected"] {
        assert_eq!(totals[key], 0, "{key}: {verdict}");
    }
}

/// How the source is written, and how far the target is.
struct Small {
    broker_args: &'static [&'static str],
    value_bytes: usize,
    /// librdkafka's `batch.size`.
    batch_bytes: usize,
    linger_ms: u32,
    /// librdkafka's `compression.type`.
    compression: &'static str,
    /// Source batches (partition 0) at least this many, and this size on average (bytes
    /// on the wire).
    min_source_batches: usize,
    min_source_batch_bytes: usize,
    /// A round trip added in front of the target.
    target_rtt: Option<Duration>,
    /// How long the target answers an acks=all produce after appending (its followers).
    target_follower_wait_ms: u32,
}

fn small_batches_are_merged_and_mirrored_in_order(shape: Small) {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), shape.broker_args);
    let mut target_args: Vec<String> = shape.broker_args.iter().map(|a| a.to_string()).collect();
    if shape.target_follower_wait_ms > 0 {
        target_args.extend([
            "--emulate-follower-wait-ms".to_string(),
            shape.target_follower_wait_ms.to_string(),
        ]);
    }
    let target_args: Vec<&str> = target_args.iter().map(String::as_str).collect();
    // Behind a proxy, even a near one, which counts the partitions of each Produce request.
    let (target, target_for_daemon, link) = BrokerProcess::start_watched(
        &dir.path().join("target"),
        &target_args,
        shape.target_rtt.unwrap_or(Duration::ZERO),
    );
    let acked = dir.path().join("acked.json");
    let acked_arg = acked.to_str().unwrap();
    produce_acked(
        &source.addr(),
        "small",
        acked_arg,
        &[
            "--partitions",
            "2",
            "--records",
            "3000",
            "--value-bytes",
            &shape.value_bytes.to_string(),
            "--linger-ms",
            &shape.linger_ms.to_string(),
            "--batch-bytes",
            &shape.batch_bytes.to_string(),
            "--compression",
            shape.compression,
            "--create",
        ],
    );
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target_for_daemon)],
        &flow("small"),
    );
    let daemon = DaemonProcess::start(&config);
    wait_records(&target.addr(), "small", 6000, &daemon);
    verify_mirrored(&source.addr(), &target.addr(), "small", 2, acked_arg);
    // Record for record, byte-equal: key, value, headers, timestamp type and timestamp.
    records::assert_byte_equal(
        (&source.addr(), &target.addr()),
        "small",
        "{topic}",
        6000,
        &[],
    );
    let on_source = batches(&source.addr(), "small", 0);
    let source_bytes: usize = on_source.iter().map(|b| b.0).sum();
    let (on_source, on_target) = (on_source.len(), batches(&target.addr(), "small", 0).len());
    eprintln!("partition 0: {on_source} source batches ({source_bytes} bytes), {on_target} target batches");
    assert!(
        on_source >= shape.min_source_batches,
        "the source should hold small batches: {on_source}"
    );
    assert!(
        source_bytes / on_source >= shape.min_source_batch_bytes,
        "source batches average {} bytes",
        source_bytes / on_source
    );
    assert!(
        on_target * 4 < on_source,
        "small batches were not merged: {on_target} target batches for {on_source}"
    );
    assert!(!daemon.log.contains(" ERROR "), "{}", daemon.log.tail(40));
    // Kafka takes many partitions in one Produce request, one batch each. To a near target
    // (one connection) batches that wait together leave together: with thousands of
    // one-record batches arriving in bursts from each Fetch answer, the two partitions'
    // batches are bound to share requests. (With fewer, larger batches and free request
    // slots each may leave alone, which is not asserted.) A distant target gets a
    // connection per partition, so that their requests run concurrently (Kafka reads one
    // request at a time per connection). Near or distant is the daemon's choice, by the
    // round trips it measured (on a busy machine a near target may measure distant).
    let names = named_by(&target.addr(), "small");
    let most = names
        .iter()
        .map(|name| link.most_partitions_in_one_produce(name))
        .max()
        .unwrap_or(0);
    let connections = link.connections_producing(&names);
    let near = daemon.log.contains("produce_connections=1 ");
    eprintln!("partitions in one Produce request at most: {most}, over {connections} connections; near: {near}");
    if !near {
        assert_eq!(
            connections, 2,
            "connections the two partitions were produced over"
        );
    } else if shape.min_source_batches >= 2_000 {
        assert_eq!(most, 2, "partitions in one Produce request at most");
    }
    if shape.target_rtt.is_some() {
        assert!(!near, "a target 20 ms away taken for near");
    }
}

/// How Produce requests name `topic` on `target`: by name up to v12 (Kafka 2.8: v9), by
/// id from v13 (Kafka 4.1), in lower-case hex.
fn named_by(target: &str, topic: &str) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(async {
        let client = support::cluster::check_client(target);
        let md = client.refresh_metadata().await.unwrap();
        md.topic_id(topic)
    });
    let mut names = vec![topic.to_string()];
    names.extend(
        id.filter(|id| !id.is_nil())
            .map(|id| id.simple().to_string()),
    );
    names
}

/// One record per batch (linger 0 and a batch of one message): tiny batches are merged
/// even on a near target, their per-request cost exceeds the recompression.
const TINY: Small = Small {
    broker_args: &[],
    value_bytes: 100,
    batch_bytes: 1,
    linger_ms: 0,
    compression: "none",
    min_source_batches: 2_000,
    min_source_batch_bytes: 0,
    target_rtt: None,
    target_follower_wait_ms: 0,
};

#[test]
fn small_batches_are_merged_and_mirrored_in_order_at_kafka_4_1_versions() {
    small_batches_are_merged_and_mirrored_in_order(TINY);
}

/// Kafka 2.8 has no topic ids in Fetch (v12 at most) nor in Produce (v9 at most).
#[test]
fn small_batches_are_merged_and_mirrored_in_order_emulating_kafka_2_8() {
    small_batches_are_merged_and_mirrored_in_order(Small {
        broker_args: &["--emulate-kafka", "2.8"],
        ..TINY
    });
}

/// Batches of about 8 KB, above the tiny size, written with linger 20 ms.
const SMALL: Small = Small {
    value_bytes: 1000,
    batch_bytes: 8192,
    linger_ms: 20,
    min_source_batches: 300,
    min_source_batch_bytes: 4096,
    ..TINY
};

/// Small batches are merged where the target's round trip (20 ms here, a WAN) limits the
/// partition's five requests in flight.
#[test]
fn small_batches_to_a_distant_target_are_merged_and_mirrored_in_order() {
    small_batches_are_merged_and_mirrored_in_order(Small {
        target_rtt: Some(Duration::from_millis(20)),
        ..SMALL
    });
}

/// A near target whose produces wait 20 ms for its followers (acks=all on a replicated
/// cluster): its connections open at once, and the daemon is never without a request
/// there during the copy, yet the round trip that limits each partition is found and the
/// batches are merged.
#[test]
fn small_batches_to_a_near_acks_all_target_are_merged_and_mirrored_in_order() {
    small_batches_are_merged_and_mirrored_in_order(Small {
        target_follower_wait_ms: 20,
        ..SMALL
    });
}

/// Gzip merges of 64 KiB and more are recompressed off the scheduler's thread
/// (`src/mirror/rebuilds.rs`); what they carry arrives the same.
#[test]
fn small_gzip_batches_to_a_distant_target_are_merged_and_mirrored_in_order() {
    small_batches_are_merged_and_mirrored_in_order(Small {
        compression: "gzip",
        min_source_batch_bytes: 3000,
        target_rtt: Some(Duration::from_millis(20)),
        ..SMALL
    });
}

/// The same with both brokers emulating Kafka 2.8.
#[test]
fn small_gzip_batches_to_a_distant_target_are_merged_and_mirrored_in_order_emulating_kafka_2_8() {
    small_batches_are_merged_and_mirrored_in_order(Small {
        broker_args: &["--emulate-kafka", "2.8"],
        compression: "gzip",
        min_source_batch_bytes: 3000,
        target_rtt: Some(Duration::from_millis(20)),
        ..SMALL
    });
}

/// A partition has at most five Produce requests in flight, the idempotent producer's
/// limit (Kafka keeps the last five batches of a producer per partition to find
/// duplicates, and the Java producer refuses `max.in.flight.requests.per.connection` above
/// five with idempotence), and it does use them: 50 ms from the target, with 20 MB of
/// 256 KB batches (forwarded as they are) behind it. The target's proxy counts each
/// connection's requests sent and answered, Produce requests by the topic they name (by
/// id from v13), so the progress written on the same connection does not count; the
/// source topic has one partition.
fn a_partition_keeps_at_most_five_produce_requests_in_flight(broker_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), broker_args);
    let proxy = DelayProxy::bind(Duration::from_millis(50));
    let target_for_daemon = proxy.addr();
    let mut target_args = broker_args.to_vec();
    target_args.extend(["--advertised-listener", &target_for_daemon]);
    let target = BrokerProcess::start(&dir.path().join("target"), &target_args);
    let link = proxy.forward_to(&target.addr());
    let acked = dir.path().join("acked.json");
    let acked_arg = acked.to_str().unwrap();
    produce_acked(
        &source.addr(),
        "window",
        acked_arg,
        &[
            "--partitions",
            "1",
            "--records",
            "20000",
            "--value-bytes",
            "1000",
            "--linger-ms",
            "50",
            "--batch-bytes",
            "262144",
            "--create",
        ],
    );
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target_for_daemon)],
        &flow("window"),
    );
    let daemon = DaemonProcess::start(&config);
    wait_records(&target.addr(), "window", 20000, &daemon);
    verify_mirrored(&source.addr(), &target.addr(), "window", 1, acked_arg);
    let most = named_by(&target.addr(), "window")
        .iter()
        .map(|name| link.most_produce_in_flight(name))
        .max()
        .unwrap_or(0);
    eprintln!("the partition's Produce requests in flight at most: {most}");
    assert!(
        (2..=5).contains(&most),
        "{most} Produce requests in flight at most"
    );
}

#[test]
fn a_partition_keeps_at_most_five_produce_requests_in_flight_at_kafka_4_1_versions() {
    a_partition_keeps_at_most_five_produce_requests_in_flight(&[]);
}

#[test]
fn a_partition_keeps_at_most_five_produce_requests_in_flight_emulating_kafka_2_8() {
    a_partition_keeps_at_most_five_produce_requests_in_flight(&["--emulate-kafka", "2.8"]);
}

/// A batch as Kafka's log cleaner leaves one whose tombstones it keeps until a delete
/// horizon (KIP-534): attribute bit 6 set and the base timestamp the horizon, a day after
/// its records. Records `base..base + count`, uncompressed and over 128 KiB
/// (`batch_bytes` / 8), so that the daemon forwards it as it is rather than merge it,
/// whatever round trip it measures. Returns the batch and its values.
fn delete_horizon_batch(base: i64, count: i64) -> (Vec<u8>, Vec<String>) {
    let values: Vec<String> = (base..base + count)
        .map(|o| format!("c-{o}-{}", "h".repeat(70_000)))
        .collect();
    let records: Vec<_> = (base..base + count)
        .zip(&values)
        .map(|(o, v)| {
            kmirror_wire::records::record(
                o,
                1_700_000_000_000 + o,
                Some(Bytes::from(format!("key-{o}"))),
                Some(Bytes::from(v.clone())),
            )
        })
        .collect();
    let mut raw = kmirror_wire::records::encode(&records, Compression::None)
        .unwrap()
        .to_vec();
    raw[0..8].copy_from_slice(&base.to_be_bytes());
    raw[22] |= 0x40;
    raw[27..35].copy_from_slice(&(1_700_000_000_000 + base + 86_400_000).to_be_bytes());
    let crc = crc32c::crc32c(&raw[21..]);
    raw[17..21].copy_from_slice(&crc.to_be_bytes());
    (raw, values)
}

#[test]
fn a_compacted_source_with_offset_gaps_and_empty_batches_is_mirrored_record_for_record_at_kafka_4_1_versions(
) {
    compacted_source(&[]);
}

#[test]
fn a_compacted_source_with_offset_gaps_and_empty_batches_is_mirrored_record_for_record_emulating_kafka_2_8(
) {
    compacted_source(&["--emulate-kafka", "2.8"]);
}

/// Both brokers with `broker_args`.
fn compacted_source(broker_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut source = BrokerProcess::start(&dir.path().join("source"), broker_args);
    let target = BrokerProcess::start(&dir.path().join("target"), broker_args);
    run_python(
        "discovery_admin.py",
        &[
            &source.addr(),
            "create",
            "compacted",
            "1",
            "cleanup.policy=compact",
        ],
    );
    source.terminate().expect("source stops");
    let (horizon, horizon_values) = delete_horizon_batch(30, 2);
    let horizon_bytes = horizon.len();
    let log = [
        compacted_batch(0, 5, &[0, 1, 2, 3, 4]),
        compacted_batch(5, 10, &[5, 9, 14]),
        compacted_batch(15, 5, &[]),
        compacted_batch(20, 5, &[20, 22]),
        compacted_batch(25, 5, &[25, 26, 27, 28, 29]),
        horizon,
    ];
    write_log(&source.data_dir, "compacted", &log);
    source.restart();
    let kept: Vec<String> = [0, 1, 2, 3, 4, 5, 9, 14, 20, 22, 25, 26, 27, 28, 29]
        .iter()
        .map(|o| format!("c-{o}"))
        .chain(horizon_values)
        .collect();
    assert_eq!(
        read(&source.addr(), "compacted")["0"],
        serde_json::json!(kept),
        "the source serves the hand-written log"
    );
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        &flow("compacted"),
    );
    let daemon = DaemonProcess::start(&config);
    let got = wait_records(&target.addr(), "compacted", kept.len(), &daemon);
    assert_eq!(got["0"], serde_json::json!(kept));
    assert!(!daemon.log.contains(" ERROR "), "{}", daemon.log.tail(40));
    // The source's delete horizon is not carried over: the target's cleaner keeps
    // tombstones for the target topic's own delete.retention.ms.
    assert!(
        batches(&source.addr(), "compacted", 0)
            .iter()
            .any(|b| b.1 & 0x40 != 0),
        "the source holds a batch with a delete horizon"
    );
    let on_target = batches(&target.addr(), "compacted", 0);
    assert!(
        on_target.iter().all(|b| b.1 & 0x40 == 0),
        "a delete horizon was forwarded: {on_target:?}"
    );
    assert!(
        on_target.contains(&(horizon_bytes, 0)),
        "the batch with the horizon was forwarded as it is, only its flag cleared: {on_target:?}"
    );
    // Offsets translate through the gaps (issue 10): a removed record's offset goes to the
    // next mirrored record. Target offsets: 0-4 -> 0-4, 5 -> 5, 9 -> 6, 14 -> 7, 20 -> 8,
    // 22 -> 9, 25-31 -> 10-16.
    let config = config.to_str().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let translate = |offset: i64| translate(config, "compacted", 0, offset);
    // The progress (and map) is written within a second of the acks.
    while translate(32) != ("exact".to_string(), 17) {
        assert!(std::time::Instant::now() < deadline, "{:?}", translate(32));
        std::thread::sleep(Duration::from_millis(200));
    }
    for (offset, want) in [
        (4, ("exact", 4)),
        (7, ("gap", 6)),
        (9, ("exact", 6)),
        (16, ("gap", 8)),
        (21, ("gap", 9)),
        (22, ("exact", 9)),
        (27, ("exact", 12)),
        (31, ("exact", 16)),
        (33, ("not_yet", -1)),
    ] {
        assert_eq!(
            translate(offset),
            (want.0.to_string(), want.1),
            "source offset {offset}"
        );
    }
}

/// A source topic that takes larger batches than its target topic (`max.message.bytes`
/// 8 MB against 60 KB): a batch the target refuses as too large is split, and again
/// until the halves fit, as Kafka's producer (and so MirrorMaker 2) does; nothing is lost,
/// duplicated or reordered, and the partition goes on.
#[test]
fn batches_larger_than_the_target_topic_takes_are_split_until_they_fit() {
    // Kafka: MESSAGE_TOO_LARGE (UnifiedLog.analyzeAndValidateRecords).
    split_until_they_fit(
        &["max.message.bytes=60000"],
        60_000,
        &[
            "--records",
            "1200",
            "--value-bytes",
            "5000",
            "--batch-bytes",
            "300000",
        ],
        1200,
    );
}

/// The same where the target topic's `segment.bytes` (1 MiB), not its `max.message.bytes`,
/// is the limit.
#[test]
fn batches_larger_than_the_target_topics_segment_are_split_until_they_fit() {
    // Kafka: RECORD_LIST_TOO_LARGE (UnifiedLog.append, over segment.bytes), where the
    // target topic's max.message.bytes alone would take them.
    split_until_they_fit(
        &["max.message.bytes=8000000", "segment.bytes=1048576"],
        1 << 20,
        &[
            "--records",
            "2000",
            "--value-bytes",
            "10000",
            "--batch-bytes",
            "2500000",
        ],
        2000,
    );
}

/// Mirrors `records` records, produced with `produce_args` to a source topic that takes
/// batches of up to 8 MB, to a target topic with `target_configs`, which refuses batches
/// over `limit_bytes`: all arrive, in batches of at most `limit_bytes`, after few refusals.
fn split_until_they_fit(
    target_configs: &[&str],
    limit_bytes: usize,
    produce_args: &[&str],
    records: usize,
) {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    support::topics::create(&source.addr(), "wide", 1, &["max.message.bytes=8000000"]);
    support::topics::create(&target.addr(), "wide", 1, target_configs);
    let acked = dir.path().join("acked.json");
    let acked_arg = acked.to_str().unwrap();
    let mut args = vec!["--partitions", "1", "--linger-ms", "200"];
    args.extend_from_slice(produce_args);
    produce_acked(&source.addr(), "wide", acked_arg, &args);
    let source_batches = batches(&source.addr(), "wide", 0);
    let too_large = source_batches.iter().filter(|b| b.0 > limit_bytes).count();
    assert!(
        too_large >= 3,
        "the source should hold batches the target refuses: {source_batches:?}"
    );
    // The target topic keeps its own limits: no config sync.
    let mut topology = flow("wide");
    topology.push_str("    sync_configs: { enabled: false }\n");
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        &topology,
    );
    // Splits after a refusal are logged at DEBUG after the first.
    let daemon = DaemonProcess::start_with(
        &config,
        &["--log-level", "info,kmirror::mirror::pipeline=debug"],
        &[],
    );
    wait_records(&target.addr(), "wide", records, &daemon);
    verify_mirrored(&source.addr(), &target.addr(), "wide", 1, acked_arg);
    let on_target = batches(&target.addr(), "wide", 0);
    assert!(
        on_target.iter().all(|b| b.0 <= limit_bytes),
        "target batches: {on_target:?}"
    );
    // Many batches were split; one WARN says so, naming the limit. After the first
    // refusals, batches as large as a refused one are split before they are sent: far
    // fewer refusals than batches.
    let log = daemon.log.text();
    let warned = log.matches("sending it as two").count();
    assert_eq!(warned, 1, "{}", daemon.log.tail(40));
    let limit_name = target_configs.last().unwrap().split('=').next().unwrap();
    assert!(
        log.contains(&format!("over the target topic's {limit_name}")),
        "{}",
        daemon.log.tail(40)
    );
    let refused = warned + log.matches("Split another batch").count();
    eprintln!("{too_large} source batches over the limit, {refused} refused by the target");
    assert!(
        refused < 10 && refused < too_large,
        "{refused} refusals for {too_large} batches over the limit"
    );
    assert!(!daemon.log.contains(" ERROR "), "{}", daemon.log.tail(40));
}
