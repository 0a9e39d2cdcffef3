//! The source data: lz4 batches shaped like a producer's output ("large": linger 50 ms and
//! 1 MiB batches; "small": linger 0 and 16 KiB batches), loaded into a source topic with
//! one batch per partition per Produce request, and the target's log end offsets the bench
//! polls to see when a copy is complete. Nothing here measures.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use kmirror_wire::messenger::{Messenger, MessengerConfig};

use crate::data;

pub const PARTITIONS: i32 = 8;
const RECORD_BYTES: usize = 1024;
/// Distinct batches per shape; the load cycles through them.
const POOL: u64 = 8;
/// Produce requests the loader keeps in flight.
const LOAD_IN_FLIGHT: usize = 16;

/// How the source producer batched its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// lz4, linger 50 ms, batch.size 1 MiB: full batches of ~1 MiB before compression.
    Large,
    /// lz4, linger 0, batch.size 16 KiB: batches of ~16 KiB before compression.
    Small,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Large => "large",
            Shape::Small => "small",
        }
    }

    /// Records of ~1 KiB (value, key and header) that fill the producer's batch.size.
    fn records_per_batch(self) -> usize {
        match self {
            Shape::Large => 960,
            Shape::Small => 15,
        }
    }
}

/// The distinct batches of one shape, with their key+value bytes.
pub struct Pool {
    pub shape: Shape,
    batches: Vec<(Bytes, u64)>,
}

impl Pool {
    pub fn new(shape: Shape) -> Self {
        let batches = (1..=POOL)
            .map(|seed| {
                let batch = data::lz4_batch(seed, shape.records_per_batch(), RECORD_BYTES, true);
                let set = RecordBatchDecoder::decode(&mut batch.clone()).expect("batch decodes");
                let kv = set
                    .records
                    .iter()
                    .map(|r| {
                        r.key.as_ref().map_or(0, Bytes::len)
                            + r.value.as_ref().map_or(0, Bytes::len)
                    })
                    .sum::<usize>() as u64;
                (batch, kv)
            })
            .collect();
        Self { shape, batches }
    }

    fn kv_per_batch(&self) -> u64 {
        self.batches.iter().map(|(_, kv)| kv).sum::<u64>() / self.batches.len() as u64
    }
}

/// What a source topic holds.
#[derive(Debug, Clone, Copy)]
pub struct Loaded {
    pub records: u64,
    pub batches: u64,
    pub wire_bytes: u64,
    pub kv_bytes: u64,
}

pub async fn connect(addr: &str) -> Arc<Messenger> {
    Arc::new(
        Messenger::connect(addr, MessengerConfig::default())
            .await
            .expect("broker reachable"),
    )
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub async fn create(m: &Messenger, topic: &str) {
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(PARTITIONS)
        .with_replication_factor(1)]);
    let (resp, _) = m.send(&req).await.expect("CreateTopics answered");
    assert_eq!(resp.topics[0].error_code, 0, "creating {topic}");
}

/// Creates `topic` and fills it with at least `kv_bytes` of key+value bytes.
pub async fn load(m: &Arc<Messenger>, topic: &str, pool: &Pool, kv_bytes: u64) -> Loaded {
    create(m, topic).await;
    let rounds = kv_bytes.div_ceil(pool.kv_per_batch() * PARTITIONS as u64) as usize;
    let mut loaded = Loaded {
        records: 0,
        batches: 0,
        wire_bytes: 0,
        kv_bytes: 0,
    };
    let mut inflight = tokio::task::JoinSet::new();
    for round in 0..rounds {
        let partitions = (0..PARTITIONS)
            .map(|p| {
                let (batch, kv) = &pool.batches[(round + p as usize) % pool.batches.len()];
                loaded.records += pool.shape.records_per_batch() as u64;
                loaded.batches += 1;
                loaded.wire_bytes += batch.len() as u64;
                loaded.kv_bytes += kv;
                PartitionProduceData::default()
                    .with_index(p)
                    .with_records(Some(batch.clone()))
            })
            .collect();
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(partitions)]);
        if inflight.len() >= LOAD_IN_FLIGHT {
            inflight
                .join_next()
                .await
                .expect("non-empty")
                .expect("load task");
        }
        let m = m.clone();
        inflight.spawn(async move {
            // v12 names topics; v13 (Kafka 4.1) would need the topic id.
            let version = m
                .versions()
                .pick_within::<ProduceRequest>(kafka_protocol::protocol::VersionRange {
                    min: 3,
                    max: 12,
                })
                .expect("Produce v3-12");
            let resp = m.send_at(&req, version).await.expect("Produce answered");
            let errors: Vec<i16> = resp.responses[0]
                .partition_responses
                .iter()
                .map(|p| p.error_code)
                .filter(|&e| e != 0)
                .collect();
            assert!(errors.is_empty(), "source refused the load: {errors:?}");
        });
    }
    while let Some(done) = inflight.join_next().await {
        done.expect("load task");
    }
    loaded
}

/// Sum of the log end offsets of `topic` (0 while it does not exist).
pub async fn end_offsets(m: &Messenger, topic: &str) -> u64 {
    let req = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
        .with_name(name(topic))
        .with_partitions(
            (0..PARTITIONS)
                .map(|p| {
                    ListOffsetsPartition::default()
                        .with_partition_index(p)
                        .with_timestamp(-1)
                })
                .collect(),
        )]);
    let Ok((resp, _)) = m.send(&req).await else {
        return 0;
    };
    resp.topics
        .iter()
        .flat_map(|t| &t.partitions)
        .filter(|p| p.error_code == 0)
        .map(|p| p.offset.max(0) as u64)
        .sum()
}
