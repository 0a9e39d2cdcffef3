//! Produce, validated as Apache Kafka 4.x validates it, then appended.
//!
//! Request level ([`handle`], Kafka: KafkaApis.handleProduceRequest and
//! ReplicaManager.appendRecords): transactional batches without a transactional id fail
//! the whole request; topics are named (v3-12) or addressed by id (v13); acks outside
//! {-1, 0, 1} fail every partition that got that far. Per partition: [`validate`] (one v2
//! batch, framing, base offset, size, CRC, header counts), [`validator`] (the records:
//! structure, keys on compacted topics, timestamps, LogAppendTime, recompression and
//! offset-delta rewrites), then the idempotent-producer check and the append. With
//! `flush = always` the answer waits for the group commit that covers the append.
//! A partition listed more than once is appended once and answered once ([`keyed`]).
//! A request with compressed batches is validated and appended with the runtime worker's
//! other tasks handed on, so decompression does not stall other connections.
//! Transactional batches must belong to the producer's open transaction in that partition
//! ([`transactional`]).

use kmirror_wire::codec;
pub mod keyed;
mod transactional;
mod validate;
mod validator;

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::TopicProduceData;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kmirror_wire::batch::BatchView;

use super::message;
use crate::log::AppendInfo;
use crate::producers::Check;
use crate::state::{now_ms, Broker};
use crate::topics::Topic;
use transactional::{one_transactional_producer, transaction_state, verify_transaction};
use validate::Failure;
use validator::TopicRules;

/// The first Produce version that names topics by id.
const TOPIC_ID_VERSION: i16 = 13;

struct Appended {
    info: AppendInfo,
    log_start_offset: i64,
    log_append_time_ms: i64,
    sync: Option<Arc<std::fs::File>>,
}

/// A partition's refusal and the log start offset it is answered with.
type Refused = (Failure, i64);

/// What a partition of the request got: (its first topic entry, its index, the outcome).
type Outcome = (usize, i32, Result<Appended, Refused>);

/// The log start offset a refusal is answered with. Kafka: ReplicaManager.appendToLocalLog
/// answers the partition's (processFailedRecord) for every exception of the append but
/// the six it expects (unknown partition, not leader, record or batch too large, corrupt,
/// storage), which get -1 as refusals before the append do (UNKNOWN_LOG_APPEND_INFO).
fn refused_by_append(failure: Failure, partition: &crate::topics::Partition) -> Refused {
    use ResponseError::*;
    let expected = matches!(
        failure.0,
        UnknownTopicOrPartition
            | NotLeaderOrFollower
            | MessageTooLarge
            | RecordListTooLarge
            | CorruptMessage
            | KafkaStorageError
    );
    let log_start_offset = if expected {
        -1
    } else {
        partition.log.lock().expect("log lock").log_start_offset()
    };
    (failure, log_start_offset)
}

/// Kafka: KafkaApis.handleProduceRequest — topic by name (v3-12) or by id (v13).
fn resolve(broker: &Broker, t: &TopicProduceData, version: i16) -> Result<Arc<Topic>, Failure> {
    if version >= TOPIC_ID_VERSION {
        return broker.topics.get_by_id(t.topic_id).ok_or_else(|| {
            (
                ResponseError::UnknownTopicId,
                format!("Topic id {} does not exist.", t.topic_id),
            )
                .into()
        });
    }
    broker.topics.get(t.name.as_str()).ok_or_else(|| {
        (
            ResponseError::UnknownTopicOrPartition,
            format!("Topic {} does not exist.", t.name.as_str()),
        )
            .into()
    })
}

fn rules_of(broker: &Broker, topic: &Topic) -> TopicRules {
    let configs = topic.configs();
    let d = broker.topics.defaults();
    TopicRules {
        compacted: d.compacted(&configs),
        log_append_time: d.log_append_time(&configs),
        timestamp_before_max_ms: d.timestamp_before_max_ms(&configs),
        timestamp_after_max_ms: d.timestamp_after_max_ms(&configs),
        compression_type: d.compression_type(&configs),
        max_message_bytes: d.max_message_bytes(&configs),
        segment_bytes: d.log_config(&configs).segment_bytes as i64,
        min_insync_replicas: d.min_insync_replicas(&configs),
    }
}

pub async fn handle(broker: &Broker, req: ProduceRequest, version: i16) -> ProduceResponse {
    let now = now_ms();
    let attributes = req
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .filter_map(|p| validate::first_batch_attributes(p.records.as_ref()))
        .fold(0u8, |all, a| all | a);
    let transactional = attributes & 0x10 != 0;
    let compressed = attributes & 0x07 != 0;
    let partitions = keyed::by_partition(&req.topic_data);
    let results = if let Some(failure) = one_transactional_producer(&req) {
        partitions
            .iter()
            .map(|p| (p.topic, p.index, Err((failure.clone(), -1))))
            .collect()
    } else if transactional && req.transactional_id.is_none() {
        // Kafka: KafkaApis.handleProduceRequest (the whole request fails,
        // ProduceRequest.getErrorResponse answers each partition once).
        let failure: Failure = (
            ResponseError::TransactionalIdAuthorizationFailed,
            "Transactional records need a transactional id.".into(),
        )
            .into();
        partitions
            .iter()
            .map(|p| (p.topic, p.index, Err((failure.clone(), -1))))
            .collect()
    } else {
        off_the_workers(compressed, || {
            append_all(broker, &req, &partitions, version, now)
        })
    };
    respond(broker, &req, version, results).await
}

/// Validates and appends each partition's batch: its answer, in request order.
fn append_all(
    broker: &Broker,
    req: &ProduceRequest,
    partitions: &[keyed::KeyedPartition],
    version: i16,
    now: i64,
) -> Vec<Outcome> {
    let resolved: Vec<_> = req
        .topic_data
        .iter()
        .map(|t| {
            let topic = resolve(broker, t, version);
            let rules = topic.as_ref().ok().map(|topic| rules_of(broker, topic));
            (topic, rules)
        })
        .collect();
    let mut results: Vec<Outcome> = Vec::new();
    for p in partitions {
        let (topic, rules) = &resolved[p.topic];
        let r = partition_of(topic, p.index).and_then(|(topic, partition)| {
            let (last_valid, last_invalid) = entries_checked(req, p, version);
            let appended = last_valid.map(|batch| {
                // Kafka: ReplicaManager.appendRecords (isValidRequiredAcks).
                if !matches!(req.acks, -1..=1) {
                    let acks = format!("Invalid required acks {}.", req.acks);
                    return Err(((ResponseError::InvalidRequiredAcks, acks).into(), -1));
                }
                let rules = rules.as_ref().expect("rules exist for a resolved topic");
                let transactional_id = req.transactional_id.as_ref().map(|t| t.0.as_str());
                verify_transaction(
                    broker,
                    (&topic, &partition),
                    batch,
                    (transactional_id, version),
                )
                .map_err(|f| (f, -1))?;
                // Kafka: ReplicaManager.appendToLocalLog (internal topics take appends from
                // their coordinators; Kafka's own `__admin_client` id is not let through here).
                if crate::topics::is_internal(&topic.name) {
                    let why = format!("Cannot append to internal topic {}", topic.name);
                    return Err(((ResponseError::InvalidTopicException, why).into(), -1));
                }
                let appended = append(
                    broker,
                    (&topic, &partition),
                    rules,
                    (batch, req.acks, transactional_id),
                    now,
                )
                .map_err(|f| refused_by_append(f, &partition))?;
                broker.fetch_waiters.appended(&topic.name, p.index);
                Ok(appended)
            });
            match (last_invalid, appended) {
                (Some(failure), _) => Err((failure, -1)),
                (None, Some(appended)) => appended,
                (None, None) => unreachable!("a partition has at least one entry"),
            }
        });
        results.push((p.topic, p.index, r));
    }
    results
}

/// The partition `index` of a resolved topic; refusals before the append answer log start
/// offset -1.
fn partition_of(
    topic: &Result<Arc<Topic>, Failure>,
    index: i32,
) -> Result<(Arc<Topic>, Arc<crate::topics::Partition>), Refused> {
    let topic = topic.clone().map_err(|f| (f, -1))?;
    let Some(partition) = topic.partition(index) else {
        let unknown = format!("Partition {index} of topic {} does not exist.", topic.name);
        return Err(((ResponseError::UnknownTopicOrPartition, unknown).into(), -1));
    };
    Ok((topic, partition))
}

/// Runs `f`, the validation and appends of a request, where decompression cannot hold up
/// other connections: a compressed batch may decompress to 128 MiB per partition, so on a
/// multi-threaded runtime the worker hands its other tasks on while `f` runs.
/// Kafka: KafkaRequestHandler (appends run on the I/O threads, not the network threads)
fn off_the_workers<R>(compressed: bool, f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi_threaded =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if compressed && multi_threaded {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// The batch of the last entry for `p` that passes ProduceRequest.validateRecords, and
/// the failure of the last one that does not. Kafka: KafkaApis.handleProduceRequest files
/// each entry under its partition in one map or the other (a later entry replaces an
/// earlier one); the valid one is appended, and the failure, merged last, answers.
fn entries_checked<'a>(
    req: &'a ProduceRequest,
    p: &keyed::KeyedPartition,
    version: i16,
) -> (Option<&'a [u8]>, Option<Failure>) {
    let mut last_valid = None;
    let mut last_invalid = None;
    for &(ti, pi) in &p.entries {
        let records = req.topic_data[ti].partition_data[pi].records.as_ref();
        match validate::request_batch(records, version) {
            Ok(batch) => last_valid = Some(batch),
            Err(failure) => last_invalid = Some(failure),
        }
    }
    (last_valid, last_invalid)
}

async fn respond(
    broker: &Broker,
    req: &ProduceRequest,
    version: i16,
    mut results: Vec<Outcome>,
) -> ProduceResponse {
    // Kafka: ReplicaManager.appendRecords parks an acks=all produce in the purgatory until
    // the followers have it; the connection stays muted meanwhile (SocketServer).
    let appended = results.iter().any(|(_, _, r)| r.is_ok());
    if req.acks == -1 && appended && !broker.config.follower_wait.is_zero() {
        tokio::time::sleep(broker.config.follower_wait).await;
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
                        let failed = format!("fsync failed: {e}");
                        *r = Err(((ResponseError::KafkaStorageError, failed).into(), -1));
                    }
                }
            }
        }
    }
    let answers = results.into_iter().map(|(topic, index, r)| {
        let mut pr = PartitionProduceResponse::default().with_index(index);
        match r {
            Ok(a) => {
                pr.base_offset = a.info.base_offset;
                pr.log_append_time_ms = a.log_append_time_ms;
                if version >= 5 {
                    pr.log_start_offset = a.log_start_offset;
                }
            }
            Err((Failure(code, msg, record_errors, told), log_start_offset)) => {
                pr.error_code = code.code();
                pr.base_offset = -1;
                if version >= 5 {
                    pr.log_start_offset = log_start_offset;
                }
                let name = &req.topic_data[topic].name;
                tracing::debug!(topic = %name.as_str(), partition = index, error = ?code, reason = %msg, "Produce refused.");
                // Kafka: ReplicaManager.appendToLocalLog — only a refusal of records
                // (RecordValidationException) or of the transaction verification carries
                // its message; every other error is answered with a null message
                // (LogAppendResult.errorMessage).
                if version >= 8 && told {
                    pr.error_message = message(msg);
                    pr.record_errors = record_errors
                        .into_iter()
                        .map(|(index, msg)| {
                            BatchIndexAndErrorMessage::default()
                                .with_batch_index(index)
                                .with_batch_index_error_message(message(msg))
                        })
                        .collect();
                }
            }
        }
        (topic, pr)
    });
    let mut resp =
        ProduceResponse::default().with_responses(keyed::respond(&req.topic_data, answers));
    crate::cluster::hints::produce(broker, &mut resp, version);
    resp
}

/// Kafka: Partition.appendRecordsToLeader — acks=all needs `min.insync.replicas` in-sync
/// replicas, or all of them when the replication factor is lower (effectiveMinIsr).
fn enough_in_sync(
    broker: &Broker,
    topic: &Topic,
    index: i32,
    min_insync_replicas: i64,
) -> Result<(), Failure> {
    let view = broker.cluster.view(topic, index);
    let min_isr = min_insync_replicas.min(view.replicas.len() as i64);
    if (view.isr.len() as i64) < min_isr {
        let isr: Vec<String> = view.isr.iter().map(i32::to_string).collect();
        return Err((
            ResponseError::NotEnoughReplicas,
            format!(
                "The size of the current ISR Set({}) is insufficient to satisfy the min.isr requirement of {min_isr} for partition {}-{index}",
                isr.join(", "),
                topic.name
            ),
        ).into());
    }
    Ok(())
}

/// Whether any partition of a response failed: Kafka closes the connection of an acks=0
/// request then (KafkaApis.handleProduceRequest, `closeConnection`).
pub fn has_error(resp: &ProduceResponse) -> bool {
    resp.responses
        .iter()
        .flat_map(|t| &t.partition_responses)
        .any(|p| p.error_code != 0)
}

fn append(
    broker: &Broker,
    (topic, partition): (&Topic, &crate::topics::Partition),
    rules: &TopicRules,
    (batch, acks, transactional_id): (&[u8], i16, Option<&str>),
    now: i64,
) -> Result<Appended, Failure> {
    let index = partition.index;
    let not_leader = |e: crate::cluster::LeaderError| (e.code(), e.to_string());
    // Kafka: ReplicaManager.appendRecordsToLeader -> Partition.appendRecordsToLeader: the
    // leader only, before the log validates anything.
    broker
        .check_leader(topic, index, None, true)
        .map_err(not_leader)?;
    if acks == -1 {
        enough_in_sync(broker, topic, index, rules.min_insync_replicas)?;
    }
    let batch = validate::log_batch(batch, rules.max_message_bytes)?;
    let mut owned = Vec::with_capacity(batch.size_bytes());
    validator::validate_records(&batch, rules, (&topic.name, index), now, &mut owned)?;
    // Kafka: UnifiedLog.append (RecordBatchTooLargeException), after validation and
    // before the producer state is checked.
    if owned.len() as i64 > rules.segment_bytes {
        return Err((
            ResponseError::RecordListTooLarge,
            format!(
                "Message batch size is {} bytes in append to partition {index}, which exceeds the maximum configured segment size of {}.",
                owned.len(),
                rules.segment_bytes
            ),
        ).into());
    }
    // Idempotence: check the batch against the producer state, append, then record (see
    // crate::producers for the contract).
    let mut producers = partition.producers.lock().expect("producers lock");
    let view =
        BatchView::parse(&owned, 0).map_err(|e| (ResponseError::CorruptMessage, e.to_string()))?;
    let check = producers.check(&view, now).map_err(|code| {
        let err = ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError);
        (
            err,
            format!("Producer sequence check failed for partition {index}: {err}."),
        )
    })?;
    if check == Check::Append {
        transaction_state(
            broker,
            &producers,
            &view,
            transactional_id,
            (&topic.name, index),
        )?;
    }
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
            // Kafka: UnifiedLog.append answers a duplicate with the stored batch's
            // timestamp as its append time, whatever the topic's timestamp type.
            log_append_time_ms: timestamp,
            sync: broker.group_commit.as_ref().and_then(|_| log.sync_handle()),
        });
    }
    // Checked again under the log lock, so no batch of an old epoch follows a new epoch.
    let leader_epoch = broker
        .check_leader(topic, index, None, true)
        .map_err(not_leader)?;
    let info = log.append(&mut owned, leader_epoch, now).map_err(|e| {
        tracing::warn!(topic = %topic.name, partition = index, error = %e, "Append failed.");
        (super::log_error_code(&e), e.to_string())
    })?;
    if let Ok(view) = BatchView::parse(&owned, 0) {
        producers.record(&view, now);
    }
    Ok(Appended {
        info,
        log_start_offset: log.log_start_offset(),
        log_append_time_ms: if rules.log_append_time { now } else { -1 },
        sync: broker.group_commit.as_ref().and_then(|_| log.sync_handle()),
    })
}
