//! Produce: validate each partition's batches (framing, magic 2, CRC, record count,
//! `max.message.bytes`), append them as received — compressed batches are never
//! decompressed — and answer with the base offset. With `flush = always` the answer waits
//! for the group commit that covers the append. Problems are per-partition error codes:
//! UNKNOWN_TOPIC_OR_PARTITION, CORRUPT_MESSAGE, INVALID_RECORD, MESSAGE_TOO_LARGE,
//! KAFKA_STORAGE_ERROR.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kmirror_wire::batch::{self, BatchError, BatchView, Batches};

use super::message;
use crate::log::AppendInfo;
use crate::producers::Check;
use crate::state::{now_ms, Broker};
use crate::topics::Topic;

type PartitionFailure = (ResponseError, String);

struct Appended {
    info: AppendInfo,
    log_start_offset: i64,
    log_append_time_ms: i64,
    sync: Option<Arc<std::fs::File>>,
}

pub async fn handle(broker: &Broker, req: ProduceRequest, version: i16) -> ProduceResponse {
    let now = now_ms();
    let mut any_appended = false;
    let mut results: Vec<(usize, usize, Result<Appended, PartitionFailure>)> = Vec::new();
    for (ti, t) in req.topic_data.iter().enumerate() {
        let topic = broker.topics.get(t.name.as_str());
        for (pi, p) in t.partition_data.iter().enumerate() {
            let r = match &topic {
                None => Err((
                    ResponseError::UnknownTopicOrPartition,
                    format!("Topic {} does not exist.", t.name.as_str()),
                )),
                Some(topic) => append(broker, topic, p.index, p.records.as_ref(), now),
            };
            any_appended |= r.is_ok();
            results.push((ti, pi, r));
        }
    }
    if any_appended {
        broker.appended.notify_waiters();
    }
    if let (Some(gc), true) = (&broker.group_commit, req.acks != 0) {
        let files: Vec<_> = results
            .iter()
            .filter_map(|(_, _, r)| r.as_ref().ok().and_then(|a| a.sync.clone()))
            .collect();
        if !files.is_empty() {
            if let Err(e) = gc.sync(files).await {
                tracing::error!(error = %e, "Group commit fsync failed; failing the produce.");
                for (_, _, r) in results.iter_mut() {
                    if r.is_ok() {
                        *r = Err((
                            ResponseError::KafkaStorageError,
                            format!("fsync failed: {e}"),
                        ));
                    }
                }
            }
        }
    }
    let mut responses: Vec<TopicProduceResponse> = req
        .topic_data
        .iter()
        .map(|t| TopicProduceResponse::default().with_name(t.name.clone()))
        .collect();
    for (ti, pi, r) in results {
        let index = req.topic_data[ti].partition_data[pi].index;
        let mut pr = PartitionProduceResponse::default().with_index(index);
        match r {
            Ok(a) => {
                pr.base_offset = a.info.base_offset;
                pr.log_append_time_ms = a.log_append_time_ms;
                if version >= 5 {
                    pr.log_start_offset = a.log_start_offset;
                }
            }
            Err((code, msg)) => {
                pr.error_code = code.code();
                pr.base_offset = -1;
                if version >= 8 {
                    pr.error_message = message(msg);
                }
            }
        }
        responses[ti].partition_responses.push(pr);
    }
    let mut resp = ProduceResponse::default().with_responses(responses);
    crate::cluster::hints::produce(broker, &mut resp, version);
    resp
}

fn append(
    broker: &Broker,
    topic: &Topic,
    index: i32,
    records: Option<&Bytes>,
    now: i64,
) -> Result<Appended, PartitionFailure> {
    let partition = topic.partition(index).ok_or_else(|| {
        (
            ResponseError::UnknownTopicOrPartition,
            format!("Partition {index} of topic {} does not exist.", topic.name),
        )
    })?;
    let records = records.filter(|r| !r.is_empty()).ok_or_else(|| {
        (
            ResponseError::InvalidRecord,
            "The produce request holds no record batches.".to_string(),
        )
    })?;
    let not_leader = |e: crate::cluster::LeaderError| (e.code(), e.to_string());
    // ReplicaManager.appendRecordsToLeader -> Partition.appendRecordsToLeader: leader only.
    broker
        .check_leader(topic, index, None, true)
        .map_err(not_leader)?;
    let configs = topic.configs();
    let defaults = broker.topics.defaults();
    let max_message_bytes = defaults.max_message_bytes(&configs);
    validate(records, max_message_bytes)?;
    let mut owned = records.to_vec();
    let log_append_time = defaults.log_append_time(&configs);
    if log_append_time {
        let mut start = 0;
        while start < owned.len() {
            let size = batch::BatchView::parse(&owned[start..], start)
                .map_err(corrupt)?
                .size_bytes();
            batch::set_log_append_time(&mut owned[start..start + size], now);
            start += size;
        }
    }
    // Idempotence: check every batch against the producer state, append all or nothing,
    // then record (see crate::producers for the contract).
    let mut producers = partition.producers.lock().expect("producers lock");
    let views: Vec<BatchView<'_>> = Batches::new(&owned).filter_map(Result::ok).collect();
    let check = producers.check_batches(&views, now).map_err(|code| {
        let err = ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError);
        (
            err,
            format!("Producer sequence check failed for partition {index}: {err}."),
        )
    })?;
    let mut log = partition.log.lock().expect("log lock");
    if let Check::Duplicate {
        base_offset,
        last_offset,
        timestamp,
    } = check
    {
        return Ok(Appended {
            info: AppendInfo {
                base_offset,
                last_offset,
                max_timestamp: timestamp,
            },
            log_start_offset: log.log_start_offset(),
            log_append_time_ms: if log_append_time { timestamp } else { -1 },
            sync: broker.group_commit.as_ref().and_then(|_| log.sync_handle()),
        });
    }
    drop(views);
    // Checked again under the log lock, so no batch of an old epoch follows a new epoch.
    let leader_epoch = broker
        .check_leader(topic, index, None, true)
        .map_err(not_leader)?;
    let info = log.append(&mut owned, leader_epoch, now).map_err(|e| {
        tracing::warn!(topic = %topic.name, partition = index, error = %e, "Append failed.");
        (super::log_error_code(&e), e.to_string())
    })?;
    for view in Batches::new(&owned).filter_map(Result::ok) {
        producers.record(&view, now);
    }
    Ok(Appended {
        info,
        log_start_offset: log.log_start_offset(),
        log_append_time_ms: if log_append_time { now } else { -1 },
        sync: broker.group_commit.as_ref().and_then(|_| log.sync_handle()),
    })
}

fn corrupt(e: BatchError) -> PartitionFailure {
    (ResponseError::CorruptMessage, e.to_string())
}

fn validate(records: &[u8], max_message_bytes: i64) -> Result<(), PartitionFailure> {
    let mut batches = Batches::new(records);
    for b in batches.by_ref() {
        let b = b.map_err(corrupt)?;
        if b.size_bytes() as i64 > max_message_bytes {
            return Err((
                ResponseError::MessageTooLarge,
                format!(
                    "The batch is {} bytes, larger than max.message.bytes ({max_message_bytes}).",
                    b.size_bytes()
                ),
            ));
        }
        match b.validate_for_append() {
            Ok(()) => {}
            Err(e @ BatchError::InconsistentCount { .. }) => {
                return Err((ResponseError::InvalidRecord, e.to_string()))
            }
            Err(e) => return Err(corrupt(e)),
        }
        if b.is_control() {
            return Err((
                ResponseError::InvalidRecord,
                "Clients may not write control batches.".to_string(),
            ));
        }
    }
    if batches.truncated_tail() {
        return Err((
            ResponseError::CorruptMessage,
            "The last record batch is truncated.".to_string(),
        ));
    }
    Ok(())
}
