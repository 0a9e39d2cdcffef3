//! Every API of the broker's data path through the real server on 127.0.0.1:0, with the
//! project's own client connection.

mod common;

use std::time::Duration;

use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

#[tokio::test]
async fn api_versions_advertises_decodable_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path()).await;
    let m = connect(&b).await;
    let produce = m.versions().range(0).unwrap();
    // 13 = the codec's maximum: Produce v13 addresses topics by id (KIP-516).
    assert_eq!((produce.min, produce.max), (0, 13));
    let fetch = m.versions().range(1).unwrap();
    // Kafka 4.1's Fetch range (v13+ name topics by id).
    assert_eq!((fetch.min, fetch.max), (4, 17));
    // Never advertise what the request struct cannot decode.
    assert!(m.versions().range(8).is_none_or(|r| r.max <= 9));
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn metadata_reports_cluster_and_auto_creates_with_stable_ids() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path()).await;
    let m = connect(&b).await;
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("auto")))
        ]))
        .with_allow_auto_topic_creation(true);
    // As Kafka's brokers answer while the controller creates the topic: not yet.
    let (resp, v) = m.send(&req).await.unwrap();
    assert!(v >= 10);
    let t = &resp.topics[0];
    assert_eq!(
        (t.error_code, t.partitions.len()),
        (ResponseError::UnknownTopicOrPartition.code(), 0)
    );
    let (resp, _) = m.send(&req).await.unwrap();
    assert_eq!(
        resp.cluster_id.as_ref().unwrap().as_str(),
        "kmirror-local-cluster"
    );
    assert_eq!(resp.controller_id.0, 0);
    assert_eq!(resp.brokers[0].port, b.local_addr.port() as i32);
    let t = &resp.topics[0];
    assert_eq!(t.error_code, 0);
    assert_eq!(t.partitions.len(), 1);
    assert!(!t.topic_id.is_nil());
    let id = t.topic_id;

    let no_create = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("nope")))
        ]))
        .with_allow_auto_topic_creation(false);
    let (resp, _) = m.send(&no_create).await.unwrap();
    assert_eq!(
        resp.topics[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );

    drop(m);
    b.shutdown().await.unwrap();
    let b = start(dir.path()).await;
    let m = connect(&b).await;
    let (resp, _) = m
        .send(&MetadataRequest::default().with_topics(None))
        .await
        .unwrap();
    assert_eq!(resp.topics.len(), 1);
    assert_eq!(resp.topics[0].topic_id, id, "topic ids survive restarts");
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn produce_then_fetch_returns_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path()).await;
    let m = connect(&b).await;
    create_topic(&m, "t", 2).await;
    let r = produce(&m, "t", 1, batch(5, 1000)).await;
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    let r = produce(&m, "t", 1, batch(3, 2000)).await;
    assert_eq!((r.error_code, r.base_offset), (0, 5));
    let p = fetch(&m, "t", 1, 0).await;
    assert_eq!(p.high_watermark, 8);
    let recs = records_of(&p);
    assert_eq!(recs.len(), 8);
    assert_eq!(
        recs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    assert_eq!(recs[6].key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(recs[6].timestamp, 2001);
    // Fetching from inside a batch returns that whole batch.
    let p = fetch(&m, "t", 1, 6).await;
    assert_eq!(records_of(&p)[0].offset, 5);
    // At the end: empty bytes, not null.
    let p = fetch(&m, "t", 1, 8).await;
    assert_eq!(p.records.as_ref().map(|r| r.len()), Some(0));
    assert_eq!(p.error_code, 0);
    // Beyond the end or before the start: out of range.
    assert_eq!(
        fetch(&m, "t", 1, 9).await.error_code,
        ResponseError::OffsetOutOfRange.code()
    );
    assert_eq!(
        fetch(&m, "t", 1, -1).await.error_code,
        ResponseError::OffsetOutOfRange.code()
    );
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn acks_zero_gets_no_response_and_still_appends() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path()).await;
    let m = connect(&b).await;
    create_topic(&m, "a0", 1).await;
    m.send_no_response(
        &produce_request("a0", 0, batch(2, 1), 0),
        PRODUCE_BY_NAME_VERSION,
    )
    .await
    .unwrap();
    // The next request's response must be its own (correlation ids stay in step).
    let p = fetch(&m, "a0", 0, 0).await;
    assert_eq!(records_of(&p).len(), 2);
    b.shutdown().await.unwrap();
}

/// `--emulate-follower-wait-ms`: an acks=all produce is appended at once and answered after
/// the wait, as a leader answers once its followers have the batch; acks=1 is answered at
/// once. (The wait is a lower bound: a sleep never ends early. acks=1 is only required to
/// beat a wait far longer than any answer takes.)
#[tokio::test]
async fn acks_all_is_answered_after_the_emulated_follower_wait() {
    let wait = Duration::from_secs(5);
    let dir = tempfile::tempdir().unwrap();
    let b = kmirror_broker::start(kmirror_broker::BrokerConfig {
        follower_wait: wait,
        ..config(Some(dir.path()))
    })
    .await
    .unwrap();
    let m = connect(&b).await;
    create_topic(&m, "w", 1).await;
    let started = std::time::Instant::now();
    let r = produce(&m, "w", 0, batch(2, 1)).await;
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    assert!(
        started.elapsed() >= wait,
        "acks=all answered after {:?}",
        started.elapsed()
    );
    let started = std::time::Instant::now();
    let resp = m
        .send_at(
            &produce_request("w", 0, batch(1, 2), 1),
            PRODUCE_BY_NAME_VERSION,
        )
        .await
        .unwrap();
    assert_eq!(resp.responses[0].partition_responses[0].base_offset, 2);
    assert!(
        started.elapsed() < wait,
        "acks=1 waited {:?}",
        started.elapsed()
    );
    b.shutdown().await.unwrap();
}

/// Kafka answers at once when the Fetch does not want to wait (ReplicaManager.
/// fetchMessages: `params.maxWaitMs <= 0`), even with nothing to return; the daemon sends
/// such Fetches for partitions that have data, and one kept waiting would stall them.
#[tokio::test]
async fn fetch_with_max_wait_zero_answers_at_once_even_when_empty() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path()).await;
    let m = connect(&b).await;
    create_topic(&m, "now", 1).await;
    // Nothing is ever appended: only honouring max_wait_ms 0 answers in time.
    let resp = tokio::time::timeout(
        Duration::from_secs(20),
        m.send_at(&fetch_request("now", 0, 0, 0, 1 << 20), FETCH_BY_NAME),
    )
    .await
    .expect("a Fetch with max_wait_ms 0 was kept waiting")
    .unwrap();
    assert!(records_of(&resp.responses[0].partitions[0]).is_empty());
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn fetch_long_poll_is_woken_by_new_data() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path()).await;
    let m = connect(&b).await;
    create_topic(&m, "lp", 1).await;
    let addr = b.local_addr.to_string();
    let waiter = tokio::spawn(async move {
        let m2 = kmirror_wire::messenger::Messenger::connect(&addr, Default::default())
            .await
            .unwrap();
        // max_wait far beyond the test's patience: only a wake-up by data can answer in time.
        m2.send_at(&fetch_request("lp", 0, 0, 120_000, 1 << 20), FETCH_BY_NAME)
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    produce(&m, "lp", 0, batch(1, 1)).await;
    let resp = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("fetch was not woken by the append")
        .unwrap();
    assert_eq!(records_of(&resp.responses[0].partitions[0]).len(), 1);
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn fetch_max_bytes_returns_at_least_one_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path()).await;
    let m = connect(&b).await;
    create_topic(&m, "mb", 1).await;
    for i in 0..4 {
        produce(&m, "mb", 0, batch(10, i * 10)).await;
    }
    // A partition limit of 1 byte still returns the first whole batch (KIP-74).
    let resp = m
        .send_at(&fetch_request("mb", 0, 0, 0, 1), FETCH_BY_NAME)
        .await
        .unwrap();
    assert_eq!(records_of(&resp.responses[0].partitions[0]).len(), 10);
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn list_offsets_earliest_latest_and_by_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path()).await;
    let m = connect(&b).await;
    create_topic(&m, "lo", 1).await;
    produce(&m, "lo", 0, batch(10, 1000)).await; // offsets 0-9, ts 1000-1009
    produce(&m, "lo", 0, batch(10, 5000)).await; // offsets 10-19, ts 5000-5009
    let query = |ts: i64| {
        ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
            .with_name(name("lo"))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(ts)])])
    };
    let mut answers = Vec::new();
    for ts in [-1, -2, -3, 1005, 3000, 9999] {
        let (resp, _) = m.send(&query(ts)).await.unwrap();
        let p = &resp.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        answers.push((p.timestamp, p.offset));
    }
    assert_eq!(answers[0].1, 20, "latest is the log end offset");
    assert_eq!(answers[1].1, 0);
    assert_eq!(answers[2], (5009, 19), "max timestamp");
    assert_eq!(
        answers[3],
        (1005, 5),
        "exact record for an uncompressed batch"
    );
    assert_eq!(answers[4], (5000, 10));
    assert_eq!(answers[5].1, -1, "nothing at or after the timestamp");
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn create_topics_errors_and_validate_only() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path()).await;
    let m = connect(&b).await;
    let topic = |n: &str| {
        CreatableTopic::default()
            .with_name(name(n))
            .with_num_partitions(3)
            .with_replication_factor(1)
    };
    let req = CreateTopicsRequest::default().with_topics(vec![
        topic("ok"),
        topic("bad name!"),
        topic("rf").with_replication_factor(3),
        topic("cfg").with_configs(vec![CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("retention.ms"))
            .with_value(Some(StrBytes::from_static_str("soon")))]),
        topic("unknowncfg").with_configs(vec![CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("no.such.config"))
            .with_value(Some(StrBytes::from_static_str("1")))]),
        topic("zero").with_num_partitions(0),
    ]);
    let (resp, v) = m.send(&req).await.unwrap();
    assert!(v >= 5);
    let codes: Vec<i16> = resp.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(
        codes,
        vec![
            0,
            ResponseError::InvalidTopicException.code(),
            ResponseError::InvalidReplicationFactor.code(),
            ResponseError::InvalidConfig.code(),
            ResponseError::InvalidConfig.code(),
            ResponseError::InvalidPartitions.code(),
        ]
    );
    assert_eq!(resp.topics[0].num_partitions, 3);
    assert!(resp.topics[0]
        .configs
        .as_ref()
        .unwrap()
        .iter()
        .any(|c| c.name.as_str() == "retention.ms"));
    let (resp, _) = m
        .send(&CreateTopicsRequest::default().with_topics(vec![topic("ok")]))
        .await
        .unwrap();
    assert_eq!(
        resp.topics[0].error_code,
        ResponseError::TopicAlreadyExists.code()
    );
    let (resp, _) = m
        .send(
            &CreateTopicsRequest::default()
                .with_topics(vec![topic("dry")])
                .with_validate_only(true),
        )
        .await
        .unwrap();
    assert_eq!(resp.topics[0].error_code, 0);
    let (md, _) = m
        .send(&MetadataRequest::default().with_topics(None))
        .await
        .unwrap();
    let names: Vec<&str> = md
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().as_str())
        .collect();
    assert_eq!(names, vec!["ok"], "validate_only created nothing");
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn delete_topics_and_create_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path()).await;
    let m = connect(&b).await;
    create_topic(&m, "grow", 2).await;
    create_topic(&m, "gone", 1).await;
    produce(&m, "gone", 0, batch(3, 1)).await;
    let grow = |count| {
        CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default()
            .with_name(name("grow"))
            .with_count(count)
            .with_assignments(None)])
    };
    let (resp, _) = m.send(&grow(5)).await.unwrap();
    assert_eq!(resp.results[0].error_code, 0);
    let (resp, _) = m.send(&grow(3)).await.unwrap();
    assert_eq!(
        resp.results[0].error_code,
        ResponseError::InvalidPartitions.code()
    );
    assert_eq!(produce(&m, "grow", 4, batch(1, 1)).await.error_code, 0);

    let (resp, v) = m
        .send(
            &DeleteTopicsRequest::default()
                .with_topics(vec![
                    DeleteTopicState::default().with_name(Some(name("gone")))
                ])
                .with_topic_names(vec![name("gone")]),
        )
        .await
        .unwrap();
    assert!(v >= 1);
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(
        produce(&m, "gone", 0, batch(1, 1)).await.error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let (resp, _) = m
        .send(
            &DeleteTopicsRequest::default()
                .with_topics(vec![
                    DeleteTopicState::default().with_name(Some(name("gone")))
                ])
                .with_topic_names(vec![name("gone")]),
        )
        .await
        .unwrap();
    assert_eq!(
        resp.responses[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    drop(m);
    b.shutdown().await.unwrap();
    // Partition count survives a restart; the deleted topic stays deleted.
    let b = start(dir.path()).await;
    let m = connect(&b).await;
    let (md, _) = m
        .send(&MetadataRequest::default().with_topics(None))
        .await
        .unwrap();
    assert_eq!(md.topics.len(), 1);
    assert_eq!(md.topics[0].partitions.len(), 5);
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn produce_errors_are_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path()).await;
    let m = connect(&b).await;
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name("small"))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("max.message.bytes"))
            .with_value(Some(StrBytes::from_static_str("200")))])]);
    m.send(&req).await.unwrap();
    assert_eq!(produce(&m, "small", 0, batch(1, 1)).await.error_code, 0);
    assert_eq!(
        produce(&m, "small", 0, batch(50, 1)).await.error_code,
        ResponseError::MessageTooLarge.code()
    );
    assert_eq!(
        produce(&m, "small", 7, batch(1, 1)).await.error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        produce(&m, "missing", 0, batch(1, 1)).await.error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let mut corrupt = batch(1, 1).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    assert_eq!(
        produce(&m, "small", 0, corrupt.into()).await.error_code,
        ResponseError::CorruptMessage.code()
    );
    let whole = batch(1, 1);
    assert_eq!(
        produce(&m, "small", 0, whole.slice(..whole.len() - 4))
            .await
            .error_code,
        ResponseError::InvalidRecord.code(),
        "a lone truncated batch is no batch at all (Kafka: ProduceRequest.validateRecords)"
    );
    // Nothing of the failed produces was appended.
    assert_eq!(fetch(&m, "small", 0, 0).await.high_watermark, 1);
    b.shutdown().await.unwrap();
}

fn list_offsets_query(topic: &str, ts: i64) -> ListOffsetsRequest {
    ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
        .with_name(name(topic))
        .with_partitions(vec![ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_timestamp(ts)])])
}

#[tokio::test]
async fn list_offsets_by_timestamp_finds_the_record_inside_a_compressed_batch() {
    use kafka_protocol::records::Compression;
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path()).await;
    let m = connect(&b).await;
    create_topic(&m, "lz", 1).await;
    for compression in [
        Compression::Lz4,
        Compression::Zstd,
        Compression::Gzip,
        Compression::Snappy,
    ] {
        let base = fetch(&m, "lz", 0, 0).await.high_watermark;
        let ts0 = 1_000_000 * (base + 1);
        let records: Vec<_> = (0..100).map(|i| record(i, ts0 + 10 * i)).collect();
        let bytes = kmirror_wire::records::encode(&records, compression).unwrap();
        assert_eq!(produce(&m, "lz", 0, bytes).await.error_code, 0);
        let (resp, _) = m.send(&list_offsets_query("lz", ts0 + 500)).await.unwrap();
        let p = &resp.topics[0].partitions[0];
        assert_eq!(
            (p.timestamp, p.offset),
            (ts0 + 500, base + 50),
            "{compression:?}"
        );
    }
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_decompression_bomb_is_answered_not_expanded() {
    use kafka_protocol::records::Compression;
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path()).await;
    let m = connect(&b).await;
    create_topic(&m, "bomb", 1).await;
    // 130 MiB of zeros compress to well under max.message.bytes.
    let mut r = record(0, 5_000);
    r.value = Some(bytes::Bytes::from(vec![0u8; 130 << 20]));
    let bytes = kmirror_wire::records::encode(&[r], Compression::Zstd).unwrap();
    assert!(bytes.len() < 1 << 20, "{} bytes", bytes.len());
    // Produce decompresses to validate (as Kafka's LogValidator does) but stops at 128 MiB
    // and refuses the batch, where Kafka would stream through it.
    assert_eq!(
        produce(&m, "bomb", 0, bytes).await.error_code,
        ResponseError::InvalidRecord.code()
    );
    // The broker is still serving.
    let (resp, _) = m.send(&list_offsets_query("bomb", 1)).await.unwrap();
    let p = &resp.topics[0].partitions[0];
    assert_eq!((p.error_code, p.offset), (0, -1), "nothing was appended");
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn describe_log_dirs_reports_the_file_systems_total_and_usable_bytes() {
    // Kafka: ReplicaManager.describeLogDirs (FileStore.getTotalSpace / getUsableSpace).
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path()).await;
    let m = connect(&b).await;
    create_topic(&m, "sized", 1).await;
    produce(&m, "sized", 0, batch(3, 1)).await;
    let r = m
        .send_at(&DescribeLogDirsRequest::default().with_topics(None), 4)
        .await
        .unwrap();
    let result = &r.results[0];
    // What df says of the same file system: its size in bytes, exactly.
    let df = std::process::Command::new("df")
        .args(["-B1", "--output=size,avail"])
        .arg(dir.path())
        .output()
        .expect("df runs");
    let text = String::from_utf8_lossy(&df.stdout);
    let numbers: Vec<i64> = text
        .lines()
        .nth(1)
        .expect("a row")
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(result.total_bytes, numbers[0], "{text}");
    assert!(
        result.usable_bytes > 0 && result.usable_bytes <= result.total_bytes,
        "{result:?}"
    );
    assert_eq!(
        result.log_dir.as_str(),
        dir.path().to_str().unwrap(),
        "the absolute path"
    );
    assert!(
        result.topics.iter().any(|t| t.name.as_str() == "sized"),
        "{result:?}"
    );
}
