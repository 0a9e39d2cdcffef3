//! Fetch: long poll honouring `max_wait_ms` and `min_bytes`, woken by appends to its own
//! partitions (not by a timer loop, [`crate::fetch_waiters`]); `max_bytes` (at most Kafka's default `fetch.max.bytes`, 55 MiB) and
//! per-partition max bytes with KIP-74 (the first non-empty
//! partition always returns at least one whole batch); a partition named twice is read
//! once, with its later entry's position; a fetch offset inside a batch
//! returns that whole batch; empty records are sent as empty bytes, never null; fetch
//! sessions are declined (session id 0, full fetches; one continuing a session gets
//! FETCH_SESSION_ID_NOT_FOUND); what it reads is also held to the room left for responses
//! in memory ([`crate::response_memory`]); OFFSET_OUT_OF_RANGE below the log start or above the log
//! end. After the first partition with data, a partition whose next batch exceeds its
//! limit or the room left sends nothing. A fetch with nothing to read, or a diverging
//! epoch, is answered at once; a long poll is woken by appends and by leadership moves.
//! read_committed reads whole batches below the last stable offset and names the aborted
//! transactions the data overlaps. v13+ name topics by id only (UNKNOWN_TOPIC_ID for an id no topic
//! has); below v10 a topic configured `compression.type=zstd` answers
//! UNSUPPORTED_COMPRESSION_TYPE. A v12+ fetch with a `last_fetched_epoch` whose end on this
//! leader lies before the fetch offset gets the diverging epoch instead of records
//! (KIP-320, [`diverging_epoch`]). KIP-951 leader hints (v16+) are filled by
//! [`crate::cluster::hints::fetch`], which a caller that answers NOT_LEADER_OR_FOLLOWER or
//! FENCED_LEADER_EPOCH uses; one node never does.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId};

use crate::fetch_waiters::Watch;
use crate::log::LogError;
use crate::response_memory::Held;
use crate::state::Broker;
use crate::topics::Topic;

/// Kafka's `fetch.max.bytes` default: no Fetch response carries more, whatever its
/// `max_bytes` (55 MiB).
pub const FETCH_MAX_BYTES: usize = 55 << 20;

/// Kafka: FetchManager.newContext — a request that continues a session (an epoch other
/// than 0, which starts one, and -1, which asks for none) names a session this broker never
/// handed out: FETCH_SESSION_ID_NOT_FOUND, session id 0, no topics, before authorization.
pub fn session_error(req: &FetchRequest, version: i16) -> Option<FetchResponse> {
    (version >= 7 && req.session_epoch != 0 && req.session_epoch != -1).then(|| {
        FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code())
            .with_session_id(0)
    })
}

pub async fn handle(broker: &Broker, req: FetchRequest, version: i16) -> FetchResponse {
    let req = without_repeats(req);
    // Kafka: KafkaApis.handleFetchRequest (`interesting.isEmpty`: nothing left to read,
    // every partition refused or none named, is answered at once).
    if req.topics.iter().all(|t| t.partitions.is_empty()) {
        return read_once(broker, &req, version, 0).resp;
    }
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    // The partitions' watch for appends (crate::fetch_waiters), once a read came short.
    let mut watch: Option<Watch> = None;
    loop {
        // Register for leadership moves: a fetch from a node that no longer leads is answered
        // at once (Kafka: DelayedFetch.tryComplete, cases A and E).
        let moved = broker.cluster.leadership_changed();
        tokio::pin!(moved);
        moved.as_mut().enable();
        // At most the room left for responses in memory (crate::response_memory).
        let reserved = Held::reserve_up_to(max_bytes(&req, version));
        let read = read_once(broker, &req, version, reserved.bytes());
        // Kafka: KafkaApis.handleFetchRequest (fetchMinBytes = min(minBytes, fetchMaxBytes));
        // ReplicaManager.fetchMessages answers at once with enough bytes read, and
        // DelayedFetch.tryComplete, run at once too, with enough bytes available.
        let min_bytes = i64::from(req.min_bytes).min(max_bytes(&req, version) as i64);
        if read.bytes >= min_bytes
            || read.available >= min_bytes
            || read.answer_now
            || tokio::time::Instant::now() >= deadline
        {
            return crate::cluster::hints::fetch(broker, read.resp, version);
        }
        // Not enough yet: let go of the read buffers, and the room they took, while
        // waiting (crate::buffers).
        drop(read);
        drop(reserved);
        // Kafka: DelayedOperationPurgatory.tryCompleteElseWatch: watched only once a read
        // came short, then read again, so an append between that read and the watch is
        // not missed; a fetch answered at once costs no watch.
        let Some(watching) = watch.as_ref() else {
            watch = Some(watch_partitions(broker, &req, version));
            continue;
        };
        tokio::select! {
            _ = watching.appended() => {}
            _ = moved => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Watches the partitions of the fetch's known topics for appends. Kafka:
/// ReplicaManager.fetchMessages (the delayed fetch is watched under each partition it
/// reads).
fn watch_partitions(broker: &Broker, req: &FetchRequest, version: i16) -> Watch {
    let topics: Vec<_> = req
        .topics
        .iter()
        .filter_map(|t| resolve(broker, t, version).0.map(|topic| (topic, t)))
        .collect();
    broker
        .fetch_waiters
        .watch(topics.iter().flat_map(|(topic, t)| {
            t.partitions
                .iter()
                .map(|p| (topic.name.as_str(), p.partition))
        }))
}

/// The most a response carries. Kafka: KafkaApis.handleFetchRequest (fetchMaxBytes =
/// min(maxBytes, fetch.max.bytes); below v3 the request has no max_bytes).
fn max_bytes(req: &FetchRequest, version: i16) -> usize {
    if version >= 3 {
        (req.max_bytes.max(0) as usize).min(FETCH_MAX_BYTES)
    } else {
        FETCH_MAX_BYTES
    }
}

/// One pass over a fetch's partitions.
struct Read {
    resp: FetchResponse,
    /// Record bytes in `resp`.
    bytes: i64,
    /// The bytes readable, each partition's counted up to its limit, also where none were
    /// sent (Kafka: DelayedFetch.tryComplete, min(positionDiff, maxBytes)); a lower bound
    /// here, from what the read saw.
    available: i64,
    /// A read failed or found a diverging epoch: answer without waiting (Kafka:
    /// ReplicaManager.fetchMessages, errorReadingData and hasDivergingEpoch). Partitions
    /// refused before the read (unknown topic or partition) do not count, as in Kafka.
    answer_now: bool,
}

/// `room`: the response bytes it may read beyond the first batch, at most `max_bytes`.
fn read_once(broker: &Broker, req: &FetchRequest, version: i16, room: usize) -> Read {
    let mut remaining = max_bytes(req, version).min(room);
    let mut total: i64 = 0;
    let mut available: i64 = 0;
    let mut first_non_empty = true;
    let mut any_error = false;
    // Kafka: FetchRequest.replicaId (from v15 in the replica state).
    let replica_id = if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    let responses = req
        .topics
        .iter()
        // Kafka answers per partition: a topic entry naming none has no answer.
        .filter(|t| !t.partitions.is_empty())
        .map(|t| {
            let (topic, unknown_topic) = resolve(broker, t, version);
            // Kafka: KafkaApis.handleFetchRequest (maybeConvertFetchedData): a fetch below
            // v10 from a topic whose compression.type is zstd gets UNSUPPORTED_COMPRESSION_TYPE.
            let zstd_refused =
                version < 10 && topic.as_ref().is_some_and(|t| is_zstd_topic(broker, t));
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut out = error_partition(p.partition, 0);
                    let Some(topic) = topic.as_ref() else {
                        // Kafka: KafkaApis.handleFetchRequest: an id no topic has -> UNKNOWN_TOPIC_ID.
                        out.error_code = unknown_topic.code();
                        return out;
                    };
                    let Some(partition) = topic.partition(p.partition) else {
                        out.error_code = ResponseError::UnknownTopicOrPartition.code();
                        return out;
                    };
                    let out = 'read: {
                        // Kafka: Partition.fetchRecords; FetchParams.fetchOnlyLeader: consumers
                        // v11+ may read from followers.
                        let current = (version >= 9 && p.current_leader_epoch >= 0)
                            .then_some(p.current_leader_epoch);
                        let only_leader = version <= 10 || replica_id >= 0;
                        if let Err(e) = broker.check_leader(topic, p.partition, current, only_leader) {
                            any_error = true;
                            break 'read read_error(p.partition, e.code());
                        }
                        // The producers' lock first (the produce path's order), for the
                        // last stable offset and aborted transactions as of this read.
                        let producers = partition.producers.lock().expect("producers lock");
                        let log = partition.log.lock().expect("log lock");
                        out.high_watermark = log.log_end_offset();
                        out.log_start_offset = log.log_start_offset();
                        // Kafka: UnifiedLog.maybeIncrementFirstUnstableOffset (not below the
                        // log start).
                        let last_stable = producers
                            .txns
                            .last_stable_offset(out.high_watermark)
                            .max(out.log_start_offset);
                        if version >= 4 {
                            out.last_stable_offset = last_stable;
                        }
                        // Kafka: Partition.fetchRecords (FetchIsolation: read_committed
                        // reads up to the last stable offset) and LocalLog.read (aborted
                        // transactions only for read_committed, an empty list if none).
                        let committed = req.isolation_level == 1;
                        let candidates = if committed {
                            producers.txns.aborted_in(p.fetch_offset, last_stable)
                        } else {
                            Vec::new()
                        };
                        drop(producers);
                        out.aborted_transactions = committed.then(Vec::new);
                        if version >= 12 && p.last_fetched_epoch >= 0 {
                            // The end of the fetcher's last fetched epoch on this leader,
                            // read under the log lock (the cluster module's lock order).
                            let epoch_end = broker.cluster.read(topic, p.partition, |pl, _| {
                                pl.end_offset_for(
                                    p.last_fetched_epoch,
                                    out.high_watermark,
                                    out.log_start_offset,
                                )
                            });
                            match diverging_epoch(epoch_end, p, out.log_start_offset) {
                                Ok(None) => {}
                                Ok(Some(diverging)) => {
                                    out.diverging_epoch = diverging;
                                    // Kafka: FetchDataInfo.empty (no aborted transactions).
                                    out.aborted_transactions = None;
                                    // Kafka: ReplicaManager.fetchMessages (hasDivergingEpoch
                                    // answers at once).
                                    any_error = true;
                                    break 'read out;
                                }
                                Err(error) => {
                                    any_error = true;
                                    break 'read read_error(p.partition, error);
                                }
                            }
                        }
                        let budget = (p.partition_max_bytes.max(0) as usize).min(remaining);
                        if budget == 0 && !first_non_empty {
                            break 'read out;
                        }
                        let read = if committed && p.fetch_offset >= last_stable && p.fetch_offset <= out.high_watermark {
                            Ok(Bytes::new())
                        } else {
                            log.read(p.fetch_offset, budget.max(1))
                        };
                        match read {
                            Ok(data) => {
                                // Only with a transaction open does the log hold
                                // batches past the last stable offset.
                                let data = if committed && last_stable < out.high_watermark {
                                    below(data, last_stable)
                                } else {
                                    data
                                };
                                let limit = p.partition_max_bytes.max(0) as usize;
                                available += data.len().min(limit) as i64;
                                if !data.is_empty() {
                                    // Kafka: ReplicaManager.readFromLog (checkFetchDataInfo:
                                    // after the first partition with data, a batch larger
                                    // than the partition's limit or the room left is not
                                    // sent, firstEntryIncomplete); the client asks again.
                                    if !first_non_empty && data.len() > budget {
                                        // Kafka: a FetchDataInfo of MemoryRecords.EMPTY,
                                        // without aborted transactions.
                                        out.aborted_transactions = None;
                                        break 'read out;
                                    }
                                    first_non_empty = false;
                                    remaining = remaining.saturating_sub(data.len());
                                    total += data.len() as i64;
                                    if committed && !candidates.is_empty() {
                                        // Kafka: UnifiedLog.collectAbortedTransactions, up to
                                        // the end of the data read.
                                        let upper = end_offset(&data);
                                        out.aborted_transactions = Some(
                                            candidates
                                                .iter()
                                                .filter(|a| a.first_offset < upper)
                                                .map(|a| {
                                                    AbortedTransaction::default()
                                                        .with_producer_id(ProducerId(a.producer_id))
                                                        .with_first_offset(a.first_offset)
                                                })
                                                .collect(),
                                        );
                                    }
                                    out.records = Some(data);
                                }
                            }
                            Err(e @ LogError::OffsetOutOfRange { .. }) => {
                                tracing::debug!(topic = %topic.name, partition = p.partition, error = %e, "Fetch out of range.");
                                any_error = true;
                                break 'read read_error(p.partition, ResponseError::OffsetOutOfRange);
                            }
                            Err(e) => {
                                tracing::warn!(topic = %topic.name, partition = p.partition, error = %e, "Fetch read failed.");
                                any_error = true;
                                break 'read read_error(p.partition, super::log_error_code(&e));
                            }
                        }
                        out
                    };
                    // The read above still counts towards min/max bytes, as in Kafka, where
                    // the conversion happens after ReplicaManager.fetchMessages.
                    if zstd_refused {
                        return error_partition(p.partition, ResponseError::UnsupportedCompressionType.code());
                    }
                    out
                })
                .collect();
            let answer = FetchableTopicResponse::default().with_partitions(partitions);
            // v13+ carry only the id, older versions only the name.
            if version >= 13 {
                answer.with_topic_id(t.topic_id)
            } else {
                answer.with_topic(t.topic.clone())
            }
        })
        .collect();
    Read {
        resp: FetchResponse::default().with_responses(responses),
        bytes: total,
        available,
        answer_now: any_error,
    }
}

/// `req` with each partition once: a partition named again takes the later entry's fetch
/// position and limits, in the place of its first entry; topic entries left with no
/// partitions go.
// Kafka: FetchRequest.fetchData (a LinkedHashMap keyed by topic and partition)
fn without_repeats(mut req: FetchRequest) -> FetchRequest {
    use std::collections::HashMap;
    // (topic index, partition index) of each partition's first entry.
    let mut first: HashMap<(kafka_protocol::messages::TopicName, uuid::Uuid, i32), (usize, usize)> =
        HashMap::new();
    let mut repeats = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        for (pi, p) in t.partitions.iter().enumerate() {
            let key = (t.topic.clone(), t.topic_id, p.partition);
            if let Some(&at) = first.get(&key) {
                repeats.push((at, (ti, pi)));
            } else {
                first.insert(key, (ti, pi));
            }
        }
    }
    if repeats.is_empty() {
        return req;
    }
    let mut drop: Vec<Vec<bool>> = req
        .topics
        .iter()
        .map(|t| vec![false; t.partitions.len()])
        .collect();
    for ((ft, fp), (rt, rp)) in repeats {
        req.topics[ft].partitions[fp] = req.topics[rt].partitions[rp].clone();
        drop[rt][rp] = true;
    }
    for (t, dropped) in req.topics.iter_mut().zip(&drop) {
        let mut keep = dropped.iter().map(|d| !d);
        t.partitions.retain(|_| keep.next().unwrap_or(true));
    }
    req.topics.retain(|t| !t.partitions.is_empty());
    req
}

/// The topic a request entry names (by id at v13+, by name below), and the error for an
/// entry that names no topic.
fn resolve(broker: &Broker, t: &FetchTopic, version: i16) -> (Option<Arc<Topic>>, ResponseError) {
    if version >= 13 {
        (
            broker.topics.get_by_id(t.topic_id),
            ResponseError::UnknownTopicId,
        )
    } else {
        (
            broker.topics.get(t.topic.as_str()),
            ResponseError::UnknownTopicOrPartition,
        )
    }
}

fn is_zstd_topic(broker: &Broker, topic: &Topic) -> bool {
    broker.topics.defaults().compression_type(&topic.configs()) == "zstd"
}

/// Kafka: Partition.readRecords with a `lastFetchedEpoch` (Fetch v12+, KIP-320): the end of
/// that epoch on this leader (`epoch_end`, LeaderEpochFileCache.endOffsetFor) decides.
/// Undefined, or a fetch offset below the log start: OFFSET_OUT_OF_RANGE. An earlier epoch
/// or an end below the fetch offset: the log diverged from what the fetcher read, and it
/// gets that epoch and end offset instead of records. Otherwise the read goes on.
fn diverging_epoch(
    (epoch, end_offset): (i32, i64),
    p: &FetchPartition,
    log_start_offset: i64,
) -> Result<Option<EpochEndOffset>, ResponseError> {
    if epoch < 0 || end_offset < 0 {
        return Err(ResponseError::OffsetOutOfRange);
    }
    if p.fetch_offset < log_start_offset {
        return Err(ResponseError::OffsetOutOfRange);
    }
    if epoch < p.last_fetched_epoch || end_offset < p.fetch_offset {
        return Ok(Some(
            EpochEndOffset::default()
                .with_epoch(epoch)
                .with_end_offset(end_offset),
        ));
    }
    Ok(None)
}

/// A partition whose read failed (not leader, out of range, a storage error). Kafka:
/// ReplicaManager.readFromLog (createLogReadResult: offsets -1, no aborted transactions).
fn read_error(index: i32, error: ResponseError) -> PartitionData {
    error_partition(index, error.code()).with_aborted_transactions(None)
}

/// A partition answer without data. Kafka: FetchResponse.partitionResponse (high
/// watermark, last stable offset and log start offset -1).
fn error_partition(index: i32, error_code: i16) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(error_code)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_records(Some(Bytes::new()))
}

/// The batches of `data` that start below `offset`, the last of them perhaps cut by the
/// read's limit (a read_committed read stops at the last stable offset, which is always a
/// batch's first offset: Kafka's maxPosition there).
fn below(data: Bytes, offset: i64) -> Bytes {
    let mut end = 0;
    let mut batches = kmirror_wire::batch::Batches::new(&data);
    for batch in batches.by_ref() {
        match batch {
            Ok(b) if b.base_offset() < offset => end += b.size_bytes(),
            _ => break,
        }
    }
    let tail = &data[end..];
    if batches.truncated_tail()
        && tail.len() >= 8
        && i64::from_be_bytes(tail[..8].try_into().expect("8 bytes")) < offset
    {
        end = data.len();
    }
    if end == data.len() {
        data
    } else {
        data.slice(..end)
    }
}

/// The offset after the last whole batch of `data`.
fn end_offset(data: &Bytes) -> i64 {
    kmirror_wire::batch::Batches::new(data)
        .map_while(Result::ok)
        .last()
        .map_or(i64::MIN, |b| b.next_offset())
}
