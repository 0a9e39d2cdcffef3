//! ListOffsets: latest (-1, the log end offset), earliest (-2, the log start offset), max
//! timestamp (-3, v7+), earliest local (-4, v8+, same as earliest here), latest tiered (-5,
//! v9+: offset -1 and leader epoch -1, as Kafka answers without tiered storage); any other
//! negative timestamp, or one older than its version, is UNSUPPORTED_VERSION. By timestamp: the first
//! record whose timestamp is at or after the wanted one, found exactly inside the batch (a
//! compressed batch is decompressed for this, as Kafka does; decompression is capped, and a
//! batch that cannot be decoded is answered with its first offset).

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::records::RecordBatchDecoder;

use crate::log::{FoundBatch, LogError, PartitionLog};
use crate::state::Broker;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
/// The leader epoch of every partition: this broker never changes leaders.
const LEADER_EPOCH: i32 = 0;

/// Whether a negative (special) timestamp is unknown or newer than `version`.
// Kafka: ReplicaManager.isListOffsetsTimestampUnsupported (timestampMinSupportedVersion).
fn timestamp_unsupported(timestamp: i64, version: i16) -> bool {
    let min_version = match timestamp {
        t if t >= 0 => return false,
        LATEST | EARLIEST => 1,
        MAX_TIMESTAMP => 7,
        EARLIEST_LOCAL => 8,
        LATEST_TIERED => 9,
        _ => return true,
    };
    version < min_version
}

pub fn handle(broker: &Broker, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let topic = broker.topics.get(t.name.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut out = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    let Some(partition) =
                        topic.as_ref().and_then(|t| t.partition(p.partition_index))
                    else {
                        out.error_code = ResponseError::UnknownTopicOrPartition.code();
                        return out;
                    };
                    if timestamp_unsupported(p.timestamp, version) {
                        out.error_code = ResponseError::UnsupportedVersion.code();
                        return out;
                    }
                    let log = partition.log.lock().expect("log lock");
                    match lookup(log.as_ref(), p.timestamp) {
                        Ok(Some((timestamp, offset, epoch))) => {
                            out.timestamp = timestamp;
                            out.offset = offset;
                            if version >= 4 {
                                out.leader_epoch = epoch;
                            }
                        }
                        Ok(None) => {}
                        Err(e) => out.error_code = super::log_error_code(&e).code(),
                    }
                    out
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// (timestamp, offset, leader epoch) for a ListOffsets query; `None` when nothing matches.
// Kafka: UnifiedLog.fetchOffsetByTimestamp.
fn lookup(log: &dyn PartitionLog, wanted: i64) -> Result<Option<(i64, i64, i32)>, LogError> {
    let with_epoch = |(ts, offset)| (ts, offset, LEADER_EPOCH);
    Ok(match wanted {
        LATEST => Some((-1, log.log_end_offset(), LEADER_EPOCH)),
        // No remote storage: the local log start is the log start.
        EARLIEST | EARLIEST_LOCAL => Some((-1, log.log_start_offset(), LEADER_EPOCH)),
        // Without remote storage Kafka answers offset -1 with leader epoch -1.
        LATEST_TIERED => Some((-1, -1, -1)),
        MAX_TIMESTAMP => log.max_timestamp()?.map(|(ts, found)| {
            with_epoch((
                ts,
                exact_offset(&found, |t| t == ts).unwrap_or(found.base_offset),
            ))
        }),
        ts if ts >= 0 => log.find_by_timestamp(ts)?.map(|found| {
            with_epoch(exact_record(&found, ts).unwrap_or_else(|| {
                let b = kmirror_wire::batch::BatchView::parse(&found.bytes, 0);
                (
                    b.map(|b| b.max_timestamp()).unwrap_or(ts),
                    found.base_offset,
                )
            }))
        }),
        _ => None,
    })
}

/// Decodes a batch to find the first record at or after `ts`.
fn exact_record(found: &FoundBatch, ts: i64) -> Option<(i64, i64)> {
    let mut bytes: Bytes = found.bytes.clone();
    let set = RecordBatchDecoder::decode(&mut bytes).ok()?;
    set.records
        .iter()
        .find(|r| r.timestamp >= ts)
        .map(|r| (r.timestamp, r.offset))
}

fn exact_offset(found: &FoundBatch, pred: impl Fn(i64) -> bool) -> Option<i64> {
    let mut bytes: Bytes = found.bytes.clone();
    let set = RecordBatchDecoder::decode(&mut bytes).ok()?;
    set.records
        .iter()
        .find(|r| pred(r.timestamp))
        .map(|r| r.offset)
}
