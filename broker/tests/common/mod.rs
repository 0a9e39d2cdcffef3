//! Shared helpers for broker tests: start a broker on 127.0.0.1:0, connect with the
//! project's own client connection, build record batches with kafka-protocol.
#![allow(dead_code)]

use std::path::Path;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record};
use kmirror_broker::log::FlushPolicy;
use kmirror_broker::{BrokerConfig, RunningBroker};
use kmirror_wire::messenger::{Messenger, MessengerConfig};

pub fn config(data_dir: Option<&Path>) -> BrokerConfig {
    BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.map(Path::to_path_buf),
        flush: FlushPolicy::Never,
        // Test records carry small timestamps; time retention would delete them.
        log_defaults: kmirror_broker::log::LogConfig {
            retention_ms: -1,
            ..Default::default()
        },
        ..BrokerConfig::default()
    }
}

pub async fn start(data_dir: &Path) -> RunningBroker {
    kmirror_broker::start(config(Some(data_dir))).await.unwrap()
}

pub async fn connect(b: &RunningBroker) -> Messenger {
    Messenger::connect(&b.local_addr.to_string(), MessengerConfig::default())
        .await
        .unwrap()
}

pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A record with a key, a value, one header and a timestamp.
pub fn record(i: i64, timestamp: i64) -> Record {
    let mut r = kmirror_wire::records::record(
        i,
        timestamp,
        Some(Bytes::from(format!("k{i}"))),
        Some(Bytes::from(format!("value-{i}"))),
    );
    r.headers.insert(
        StrBytes::from_static_str("h"),
        Some(Bytes::from(format!("hv{i}"))),
    );
    r
}

/// One uncompressed batch of `count` records with timestamps `ts0, ts0+1, ...`.
pub fn batch(count: i64, ts0: i64) -> Bytes {
    let records: Vec<Record> = (0..count).map(|i| record(i, ts0 + i)).collect();
    kmirror_wire::records::encode(&records, Compression::None).unwrap()
}

pub async fn create_topic(m: &Messenger, topic: &str, partitions: i32) {
    let req = CreateTopicsRequest::default().with_topics(vec![
        kafka_protocol::messages::create_topics_request::CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1),
    ]);
    let (resp, _) = m.send(&req).await.unwrap();
    assert_eq!(
        resp.topics[0].error_code, 0,
        "{:?}",
        resp.topics[0].error_message
    );
}

/// The highest Produce version that names topics (v13 addresses them by id only).
pub const PRODUCE_BY_NAME_VERSION: i16 = 12;

pub fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

pub async fn produce(
    m: &Messenger,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> PartitionProduceResponse {
    // The highest version both speak that names topics (a broker emulating an older
    // release may stop below v12).
    let version = m
        .versions()
        .pick_within::<ProduceRequest>(kafka_protocol::protocol::VersionRange {
            min: 3,
            max: PRODUCE_BY_NAME_VERSION,
        })
        .unwrap();
    let resp = m
        .send_at(&produce_request(topic, partition, records, -1), version)
        .await
        .unwrap();
    resp.responses[0].partition_responses[0].clone()
}

/// The highest Fetch version that names topics by name; v13+ name them by id only.
pub const FETCH_BY_NAME: i16 = 12;

/// A Fetch naming `topic` by name: send it at [`FETCH_BY_NAME`] or below.
pub fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    partition_max_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(64 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(partition_max_bytes)])])
}

pub async fn fetch(m: &Messenger, topic: &str, partition: i32, offset: i64) -> PartitionData {
    let resp = m
        .send_at(
            &fetch_request(topic, partition, offset, 0, 1 << 20),
            FETCH_BY_NAME,
        )
        .await
        .unwrap();
    resp.responses[0].partitions[0].clone()
}

/// The offset after the last whole batch a fetch response's partition holds (0: none).
pub fn end_offset(p: &PartitionData) -> i64 {
    let records = p.records.clone().unwrap_or_default();
    kmirror_wire::batch::Batches::new(&records)
        .map_while(Result::ok)
        .last()
        .map_or(0, |b| b.next_offset())
}

/// Decodes every record of a fetch response's partition's whole batches (as Kafka, the
/// broker may cut the last batch at the partition's limit; clients drop it).
pub fn records_of(p: &PartitionData) -> Vec<Record> {
    let records = p.records.clone().unwrap_or_default();
    let whole: usize = kmirror_wire::batch::Batches::new(&records)
        .map_while(Result::ok)
        .map(|b| b.size_bytes())
        .sum();
    let mut bytes = records.slice(..whole);
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).unwrap();
        out.extend(set.records);
    }
    out
}

/// CreateTopics' configs from `(name, value)` pairs.
pub fn topic_configs(configs: &[(&str, &str)]) -> Vec<create_topics_request::CreatableTopicConfig> {
    configs
        .iter()
        .map(|(k, v)| {
            create_topics_request::CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_value(Some(StrBytes::from_string(v.to_string())))
        })
        .collect()
}

/// A request frame with header v1 (non-flexible versions only).
pub fn raw_frame<R: Encodable>(
    api_key: i16,
    version: i16,
    correlation_id: i32,
    req: &R,
) -> Vec<u8> {
    let mut body = bytes::BytesMut::new();
    body.extend_from_slice(&api_key.to_be_bytes());
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&correlation_id.to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(b"t");
    req.encode(&mut body, version).unwrap();
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// A broker (idle timeout `idle`) whose topic "big" holds 35 MiB in batches of 900 KiB: a
/// Fetch answer far larger than both sockets' buffers. Also creates the empty topic "small".
pub async fn broker_with_36_mib(
    dir: &Path,
    idle: std::time::Duration,
) -> (RunningBroker, Messenger) {
    let mut c = config(Some(dir));
    c.connections_max_idle = idle;
    let b = kmirror_broker::start(c).await.unwrap();
    let m = connect(&b).await;
    create_topic(&m, "big", 1).await;
    create_topic(&m, "small", 1).await;
    let value = Bytes::from(vec![7u8; 900 << 10]);
    for i in 0..40 {
        let r = kmirror_wire::records::record(0, 1_000 + i, None, Some(value.clone()));
        let records = kmirror_wire::records::encode(&[r], Compression::None).unwrap();
        let answer = produce(&m, "big", 0, records).await;
        assert_eq!(answer.error_code, 0, "{:?}", answer.error_message);
    }
    (b, m)
}

/// A Fetch v4 frame for all of "big".
pub fn fetch_all_of_big(correlation_id: i32) -> Vec<u8> {
    let mut fetch = fetch_request("big", 0, 0, 0, 50 << 20);
    fetch.max_bytes = 55 << 20;
    raw_frame(1, 4, correlation_id, &fetch)
}
