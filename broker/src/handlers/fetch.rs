//! Fetch: long poll honouring `max_wait_ms` and `min_bytes`, woken by appends (not by a
//! timer loop); `max_bytes` and per-partition max bytes with KIP-74 (the first non-empty
//! partition always returns at least one whole batch); a fetch offset inside a batch
//! returns that whole batch; empty records are sent as empty bytes, never null; fetch
//! sessions are declined (session id 0, full fetches); OFFSET_OUT_OF_RANGE below the log
//! start or above the log end. There are no transactions, so the last stable offset is
//! the high watermark.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};

use crate::log::LogError;
use crate::state::Broker;

pub async fn handle(broker: &Broker, req: FetchRequest, version: i16) -> FetchResponse {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    loop {
        // Register for wake-ups before reading, so an append between the read and the
        // wait is not missed.
        let appended = broker.appended.notified();
        tokio::pin!(appended);
        appended.as_mut().enable();
        let (resp, bytes, errors) = read_once(broker, &req, version);
        if bytes >= i64::from(req.min_bytes) || errors || tokio::time::Instant::now() >= deadline {
            return crate::cluster::hints::fetch(broker, resp, version);
        }
        tokio::select! {
            _ = appended => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

fn read_once(broker: &Broker, req: &FetchRequest, version: i16) -> (FetchResponse, i64, bool) {
    let mut remaining = if version >= 3 {
        req.max_bytes.max(0) as usize
    } else {
        usize::MAX
    };
    let mut total: i64 = 0;
    let mut first_non_empty = true;
    let mut any_error = false;
    let responses = req
        .topics
        .iter()
        .map(|t| {
            let topic = broker.topics.get(t.topic.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut out = PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_records(Some(Bytes::new()));
                    if version >= 4 {
                        out.last_stable_offset = -1;
                    }
                    out.high_watermark = -1;
                    out.log_start_offset = -1;
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition)) else {
                        out.error_code = ResponseError::UnknownTopicOrPartition.code();
                        any_error = true;
                        return out;
                    };
                    // Partition.fetchRecords; FetchParams.fetchOnlyLeader: consumers v11+ may read from followers.
                    let current = (version >= 9 && p.current_leader_epoch >= 0).then_some(p.current_leader_epoch);
                    let only_leader = version <= 10 || req.replica_id.0 >= 0;
                    if let Some(Err(e)) = topic.as_deref().map(|t| broker.check_leader(t, p.partition, current, only_leader)) {
                        out.error_code = e.code().code();
                        any_error = true;
                        return out;
                    }
                    let log = partition.log.lock().expect("log lock");
                    out.high_watermark = log.log_end_offset();
                    out.log_start_offset = log.log_start_offset();
                    if version >= 4 {
                        out.last_stable_offset = out.high_watermark;
                    }
                    let budget = (p.partition_max_bytes.max(0) as usize).min(remaining);
                    if budget == 0 && !first_non_empty {
                        return out;
                    }
                    match log.read(p.fetch_offset, budget.max(1)) {
                        Ok(data) => {
                            if !data.is_empty() {
                                if !first_non_empty && data.len() > remaining {
                                    return out; // Does not fit; the client asks again.
                                }
                                first_non_empty = false;
                                remaining = remaining.saturating_sub(data.len());
                                total += data.len() as i64;
                                out.records = Some(data);
                            }
                        }
                        Err(e @ LogError::OffsetOutOfRange { .. }) => {
                            tracing::debug!(topic = %t.topic.as_str(), partition = p.partition, error = %e, "Fetch out of range.");
                            out.error_code = ResponseError::OffsetOutOfRange.code();
                            any_error = true;
                        }
                        Err(e) => {
                            tracing::warn!(topic = %t.topic.as_str(), partition = p.partition, error = %e, "Fetch read failed.");
                            out.error_code = super::log_error_code(&e).code();
                            any_error = true;
                        }
                    }
                    out
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    (
        FetchResponse::default().with_responses(responses),
        total,
        any_error,
    )
}
