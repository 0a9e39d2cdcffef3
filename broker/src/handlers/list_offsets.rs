//! ListOffsets: latest (-1, the log end offset), earliest (-2, the log start offset), max
//! timestamp (-3, v7+), earliest local (-4, v8+, same as earliest here), latest tiered (-5,
//! v9+: offset -1 and leader epoch -1, as Kafka answers without tiered storage); any other
//! negative timestamp, or one older than its version, is UNSUPPORTED_VERSION (Kafka 3.9+;
//! emulating an older release, the values it does not know are searched as timestamps and
//! no version is checked, see [`wanted`]). By timestamp: the first
//! record at or above the log start whose timestamp is at or after the wanted one (after a
//! DeleteRecords into a batch, never one of its deleted records), found exactly inside the batch (a
//! compressed batch is decompressed for this, as Kafka does; decompression is capped, and a
//! batch that cannot be decoded is answered with its first offset). Every record of a
//! LogAppendTime batch carries the batch's append time (its max timestamp), so such a
//! batch answers with its first offset and that time, without being decoded. Only the
//! leader answers, except to the debugging replica id; the leader epoch of the answer
//! comes from the partition's epoch history or the found batch. A partition named twice is
//! answered once, INVALID_REQUEST.

use std::collections::HashSet;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::records::RecordBatchDecoder;

use kmirror_wire::batch::BatchView;

use crate::log::{FoundBatch, LogError, PartitionLog};
use crate::state::Broker;
use crate::versions::KafkaRelease;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

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

/// What a request's timestamp asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    /// A special value the release knows (LATEST, EARLIEST, ...).
    Special(i64),
    /// The first record whose timestamp is at or after this one.
    Search(i64),
    /// UNSUPPORTED_VERSION.
    Unsupported,
}

/// How the emulated `release` reads `timestamp` at `version`. Kafka 3.9 refuses a special
/// value it does not know or that is newer than the version (KAFKA-17331); earlier
/// releases check nothing and search any negative value they do not know as a timestamp
/// (2.8 knows LATEST and EARLIEST, 3.0 MAX_TIMESTAMP, 3.4 EARLIEST_LOCAL).
// Kafka: UnifiedLog.fetchOffsetByTimestamp (2.8: Log.fetchOffsetByTimestamp).
fn wanted(timestamp: i64, version: i16, release: KafkaRelease) -> Wanted {
    if release >= KafkaRelease::V3_9 {
        return match timestamp {
            t if timestamp_unsupported(t, version) => Wanted::Unsupported,
            t if t >= 0 => Wanted::Search(t),
            t => Wanted::Special(t),
        };
    }
    let known = match timestamp {
        LATEST | EARLIEST => true,
        MAX_TIMESTAMP => release >= KafkaRelease::V3_0,
        EARLIEST_LOCAL => release >= KafkaRelease::V3_6,
        _ => false,
    };
    if known {
        Wanted::Special(timestamp)
    } else {
        Wanted::Search(timestamp)
    }
}

pub fn handle(broker: &Broker, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    // Kafka: ListOffsetsRequest (duplicatePartitions) and ReplicaManager.fetchOffset (its
    // answers keyed by partition): a partition named twice is answered once,
    // INVALID_REQUEST.
    let mut seen = HashSet::new();
    let duplicates: HashSet<(&str, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.as_str(), p.partition_index))
        })
        .filter(|tp| !seen.insert(*tp))
        .collect();
    let mut answered = HashSet::new();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let topic = broker.topics.get(t.name.as_str());
            let partitions = t
                .partitions
                .iter()
                .filter(|p| answered.insert((t.name.as_str(), p.partition_index)))
                .map(|p| {
                    let mut out = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    // Kafka: ReplicaManager.fetchOffset (duplicates, then
                    // isListOffsetsTimestampUnsupported, then the partition).
                    if duplicates.contains(&(t.name.as_str(), p.partition_index)) {
                        out.error_code = ResponseError::InvalidRequest.code();
                        return out;
                    }
                    let wanted = wanted(p.timestamp, version, broker.versions.release());
                    if wanted == Wanted::Unsupported {
                        out.error_code = ResponseError::UnsupportedVersion.code();
                        return out;
                    }
                    let (Some(t), Some(partition)) = (
                        topic.as_ref(),
                        topic.as_ref().and_then(|t| t.partition(p.partition_index)),
                    ) else {
                        out.error_code = ResponseError::UnknownTopicOrPartition.code();
                        return out;
                    };
                    // KafkaApis.handleListOffsetRequest: fetchOnlyFromLeader unless the
                    // debugging replica id (-2); Partition.fetchOffsetForTimestamp checks
                    // the current leader epoch (v4+, -1 = none).
                    let current = (version >= 4 && p.current_leader_epoch != -1)
                        .then_some(p.current_leader_epoch);
                    let only_leader = req.replica_id.0 != DEBUGGING_REPLICA_ID;
                    if let Err(e) = broker.check_leader(t, p.partition_index, current, only_leader)
                    {
                        out.error_code = e.code().code();
                        return out;
                    }
                    // Kafka: Partition.fetchOffsetForTimestamp — read_committed (v2+, from
                    // consumers, replica id -1) sees
                    // up to the last stable offset: LATEST answers it, and a timestamp search
                    // finding an offset at or past it answers nothing.
                    let producers = partition.producers.lock().expect("producers lock");
                    let log = partition.log.lock().expect("log lock");
                    let fetchable =
                        if version >= 2 && req.isolation_level == 1 && req.replica_id.0 == -1 {
                            let end = log.log_end_offset();
                            producers
                                .txns
                                .last_stable_offset(end)
                                .max(log.log_start_offset())
                        } else {
                            log.log_end_offset()
                        };
                    drop(producers);
                    let found = lookup(log.as_ref(), wanted).map(|hit| match (hit, wanted) {
                        (Some(_), Wanted::Special(LATEST)) => Some((-1, fetchable)),
                        (Some((_, offset)), Wanted::Search(_) | Wanted::Special(MAX_TIMESTAMP))
                            if offset >= fetchable =>
                        {
                            None
                        }
                        (hit, _) => hit,
                    });
                    match found {
                        Ok(Some((timestamp, offset))) => {
                            out.timestamp = timestamp;
                            out.offset = offset;
                            if version >= 4 {
                                // Without remote storage Kafka answers -5 with epoch -1.
                                out.leader_epoch = if wanted == Wanted::Special(LATEST_TIERED) {
                                    -1
                                } else {
                                    answer_epoch(
                                        broker,
                                        t,
                                        p.partition_index,
                                        wanted,
                                        offset,
                                        log.as_ref(),
                                    )
                                };
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
        .filter(|t| !t.partitions.is_empty())
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// ListOffsetsRequest.DEBUGGING_REPLICA_ID.
const DEBUGGING_REPLICA_ID: i32 = -2;

/// The leader epoch reported with an answer (UnifiedLog.fetchOffsetByTimestamp): the
/// latest epoch for the log end, the epoch that wrote the offset otherwise (from the
/// batch itself for a timestamp search).
fn answer_epoch(
    broker: &Broker,
    topic: &crate::topics::Topic,
    partition: i32,
    wanted: Wanted,
    offset: i64,
    log: &dyn PartitionLog,
) -> i32 {
    if matches!(wanted, Wanted::Search(_) | Wanted::Special(MAX_TIMESTAMP)) {
        let batch = log.read(offset, 1).ok();
        if let Some(b) = batch.as_deref().and_then(|b| BatchView::parse(b, 0).ok()) {
            if b.partition_leader_epoch() >= 0 {
                return b.partition_leader_epoch();
            }
        }
    }
    broker.cluster.read(topic, partition, |pl, _| {
        if wanted == Wanted::Special(LATEST) {
            pl.epochs.last().map_or(-1, |e| e.epoch)
        } else {
            pl.epoch_for_offset(offset).unwrap_or(-1)
        }
    })
}

/// (timestamp, offset) for a ListOffsets query; `None` when nothing matches.
// Kafka: UnifiedLog.fetchOffsetByTimestamp.
fn lookup(log: &dyn PartitionLog, wanted: Wanted) -> Result<Option<(i64, i64)>, LogError> {
    let special = match wanted {
        Wanted::Search(ts) => return by_timestamp(log, ts),
        Wanted::Unsupported => return Ok(None),
        Wanted::Special(special) => special,
    };
    Ok(match special {
        LATEST => Some((-1, log.log_end_offset())),
        // No remote storage: the local log start is the log start.
        EARLIEST | EARLIEST_LOCAL => Some((-1, log.log_start_offset())),
        // Without remote storage Kafka answers offset -1 (and leader epoch -1).
        LATEST_TIERED => Some((-1, -1)),
        // Kafka: RecordBatch.offsetOfMaxTimestamp (a LogAppendTime batch: its first offset)
        MAX_TIMESTAMP => {
            log.max_timestamp()?
                .map(|(ts, found)| match BatchView::parse(&found.bytes, 0) {
                    Ok(b) if b.is_log_append_time() => (b.max_timestamp(), found.base_offset),
                    _ => match exact_record(&found, |t, _| t == ts) {
                        Some(Ok(hit)) => hit,
                        _ => (ts, found.base_offset),
                    },
                })
        }
        _ => None,
    })
}

/// The first record at or after `ts` and at or above the log start: a batch that the log
/// start cuts into answers only with its records from there on, and one whose records at
/// or after `ts` all lie below it gives way to the next batch.
// Kafka: UnifiedLog.searchOffsetInLocalLog -> FileRecords.searchForTimestamp(ts, position,
// startingOffset = logStartOffset)
fn by_timestamp(log: &dyn PartitionLog, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
    let log_start = log.log_start_offset();
    let mut from = log_start;
    while let Some(found) = log.find_by_timestamp(ts, from)? {
        let Ok(batch) = BatchView::parse(&found.bytes, 0) else {
            return Ok(Some((ts, found.base_offset.max(log_start))));
        };
        if batch.is_log_append_time() {
            // Every record carries the batch's append time (its max timestamp); kafka-protocol's
            // decoder would report create times instead.
            // Kafka: RecordBatch.iterator (DefaultRecordBatch's logAppendTime for each record)
            return Ok(Some((
                batch.max_timestamp(),
                found.base_offset.max(log_start),
            )));
        }
        match exact_record(&found, |t, offset| t >= ts && offset >= log_start) {
            Some(Ok(hit)) => return Ok(Some(hit)),
            Some(Err(())) => {
                return Ok(Some((
                    batch.max_timestamp(),
                    found.base_offset.max(log_start),
                )))
            }
            None => from = batch.last_offset() + 1,
        }
    }
    Ok(None)
}

/// (timestamp, offset) of the first record of the batch that `pred` takes (given its
/// timestamp and offset); `Some(Err(()))` when the batch cannot be decoded.
fn exact_record(
    found: &FoundBatch,
    pred: impl Fn(i64, i64) -> bool,
) -> Option<Result<(i64, i64), ()>> {
    let mut bytes: Bytes = found.bytes.clone();
    let Ok(set) = RecordBatchDecoder::decode(&mut bytes) else {
        return Some(Err(()));
    };
    set.records
        .iter()
        .find(|r| pred(r.timestamp, r.offset))
        .map(|r| Ok((r.timestamp, r.offset)))
}
