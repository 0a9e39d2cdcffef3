//! Producing raw record batches: the idempotent producer session (InitProducerId) and a
//! Produce request for one partition whose batches are forwarded as bytes, with producer
//! id, epoch and base sequence rewritten (and the CRC recomputed) but records untouched.

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kmirror_wire::batch;
use kmirror_wire::messenger::{Messenger, RequestError};
use uuid::Uuid;

use super::{ClientError, ClusterClient};

/// An idempotent producer identity on a target cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSession {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

impl ClusterClient {
    /// Obtains a new producer id (InitProducerId without a transactional id).
    pub async fn init_producer(&self) -> Result<ProducerSession, ClientError> {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let m = self.any_broker().await?;
        let (resp, _) = m.send(&req).await.map_err(|source| ClientError::Request {
            cluster: self.name().to_string(),
            source,
        })?;
        if let Some(e) =
            ClientError::from_code(self.name(), "InitProducerId", resp.error_code, None)
        {
            return Err(e);
        }
        Ok(ProducerSession {
            producer_id: resp.producer_id.0,
            producer_epoch: resp.producer_epoch,
        })
    }
}

/// Stamps the whole v2 batches laid end to end in `buf`, in place, with the session and
/// consecutive sequences from `base_sequence`, base offset 0 (Kafka refuses any other from
/// a client: UnifiedLog.analyzeAndValidateRecords), clearing the transactional bit (the
/// target sees plain idempotent batches) and the source cleaner's delete horizon
/// ([`batch::set_producer`]), and updating each CRC from its old value (the
/// fetch path verified it). Returns the number of records.
pub fn stamp_in_place(buf: &mut [u8], session: ProducerSession, base_sequence: i32) -> i32 {
    let mut sequence = base_sequence;
    let mut records = 0i32;
    let mut at = 0;
    while at + batch::HEADER_LEN <= buf.len() {
        let length = i32::from_be_bytes(buf[at + 8..at + 12].try_into().expect("4 bytes"));
        let end = (at + batch::LOG_OVERHEAD + usize::try_from(length).unwrap_or(0)).min(buf.len());
        let raw = &mut buf[at..end];
        let count = i32::from_be_bytes(raw[57..61].try_into().expect("4 bytes"));
        batch::set_base_offset(raw, 0);
        batch::set_producer(raw, session.producer_id, session.producer_epoch, sequence);
        sequence = next_sequence(sequence, count);
        records += count;
        at = end;
    }
    records
}

/// The sequence after `count` records from `sequence`; sequences wrap from `i32::MAX` to 0.
pub fn next_sequence(sequence: i32, count: i32) -> i32 {
    ((i64::from(sequence) + i64::from(count)) % (i64::from(i32::MAX) + 1)) as i32
}

/// The `timeout_ms` of the daemon's Produce requests.
pub const PRODUCE_TIMEOUT_MS: i32 = 30_000;

/// The outcome of producing to one partition.
#[derive(Debug, Clone)]
pub struct ProduceOutcome {
    pub error_code: i16,
    pub base_offset: i64,
    pub error_message: Option<String>,
    /// The response's `throttle_time_ms` (KIP-219: send nothing more to that broker until
    /// it has passed).
    pub throttle_time_ms: i32,
}

/// The partition a Produce writes to: the topic by name and, when the cluster reported
/// one, by id (Produce v13, Kafka 4.1+, names topics by id only).
#[derive(Debug, Clone)]
pub struct ProduceTarget {
    /// Shared, not copied, by every request that carries a batch for it.
    pub topic: StrBytes,
    pub topic_id: Option<Uuid>,
    pub partition: i32,
}

/// One Produce request (acks=all) carrying `batches`, one batch per partition, grouped by
/// topic; topics carry their ids too, for v13.
pub fn request(
    batches: impl IntoIterator<Item = (ProduceTarget, Bytes)>,
    timeout_ms: i32,
) -> ProduceRequest {
    let batches = batches.into_iter();
    // Room for every partition in its topic's list (a request usually holds one topic).
    let partitions = batches.size_hint().0;
    let mut topics: Vec<TopicProduceData> = Vec::with_capacity(1);
    for (target, records) in batches {
        let data = PartitionProduceData::default()
            .with_index(target.partition)
            .with_records(Some(records));
        match topics.iter_mut().find(|t| t.name.0 == target.topic) {
            Some(t) => t.partition_data.push(data),
            None => {
                let mut partition_data = Vec::with_capacity(partitions.max(1));
                partition_data.push(data);
                topics.push(
                    TopicProduceData::default()
                        .with_name(TopicName(target.topic))
                        .with_topic_id(target.topic_id.unwrap_or_default())
                        .with_partition_data(partition_data),
                );
            }
        }
    }
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(topics)
}

/// The Produce version for a request: the highest both sides speak when every topic in
/// it has a known id, else at most v12, the last that names topics.
pub fn request_version(m: &Messenger, by_id: bool) -> Result<i16, RequestError> {
    Ok(m.versions()
        .pick_by_id_or_name::<ProduceRequest>(by_id, LAST_PRODUCE_BY_NAME)?)
}

/// The last Produce version that names topics (v13 uses topic ids only).
const LAST_PRODUCE_BY_NAME: i16 = 12;

/// The answer for `target` in a Produce response, matched by topic id when the response
/// carries ids (v13) and by name otherwise.
pub fn partition_outcome(resp: &ProduceResponse, target: &ProduceTarget) -> Option<ProduceOutcome> {
    let p = resp
        .responses
        .iter()
        .filter(|t| {
            if t.topic_id.is_nil() {
                t.name.0 == target.topic
            } else {
                Some(t.topic_id) == target.topic_id
            }
        })
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == target.partition)?;
    Some(ProduceOutcome {
        error_code: p.error_code,
        base_offset: p.base_offset,
        error_message: outcome_message(p),
        throttle_time_ms: resp.throttle_time_ms,
    })
}

/// A refused partition's message with the first of the records the broker names (KIP-467
/// `record_errors`, Produce v8+): Kafka's own message then only says how many records
/// failed or that a timestamp did.
fn outcome_message(
    p: &kafka_protocol::messages::produce_response::PartitionProduceResponse,
) -> Option<String> {
    let message = p.error_message.as_ref().map(|m| m.to_string());
    let Some(first) = p.record_errors.first() else {
        return message;
    };
    let why = first
        .batch_index_error_message
        .as_ref()
        .map_or("no reason given", |m| m.as_str());
    let mut named = format!("record {} of the batch: {why}", first.batch_index);
    if p.record_errors.len() > 1 {
        named.push_str(&format!(
            " ({} more records refused)",
            p.record_errors.len() - 1
        ));
    }
    Some(match message {
        Some(m) => format!("{m}; {named}"),
        None => named,
    })
}

/// The target base offset of an answered produce to `topic` partition `partition`, or the
/// error it carries. A response that does not mention the partition is an error, never a
/// success. `what` is written out only for an error (an acknowledged batch costs no
/// formatting).
pub fn settle(
    cluster: &str,
    what: impl std::fmt::Display,
    (topic, partition): (&str, i32),
    answer: Option<&ProduceOutcome>,
) -> Result<i64, ClientError> {
    let Some(out) = answer else {
        return Err(ClientError::MissingPartition {
            cluster: cluster.to_string(),
            what: what.to_string(),
            topic: topic.to_string(),
            partition,
        });
    };
    if out.error_code == 0 {
        return Ok(out.base_offset);
    }
    match ClientError::from_code(
        cluster,
        &what.to_string(),
        out.error_code,
        out.error_message.as_deref(),
    ) {
        Some(e) => Err(e),
        None => Ok(out.base_offset),
    }
}

/// Sends one Produce request (acks=all) for one partition and waits for the answer
/// (`None` when the response does not mention the partition: never read as success).
/// Topic ids are used when the broker speaks Produce v13 and the id is known.
pub async fn produce(
    m: &Messenger,
    target: &ProduceTarget,
    records: Bytes,
    timeout_ms: i32,
) -> Result<Option<ProduceOutcome>, RequestError> {
    let version = request_version(m, target.topic_id.is_some())?;
    let req = request([(target.clone(), records)], timeout_ms);
    let resp = m.send_at(&req, version).await?;
    Ok(partition_outcome(&resp, target))
}

/// Request timeout of a single-batch write (acks=all).
const WRITE_TIMEOUT_MS: i32 = 30_000;

impl super::ClusterClient {
    /// Produces one batch (acks=all, not idempotent) to partition `partition` of `topic`
    /// through its leader, for the daemon's own records (progress, MirrorMaker 2
    /// checkpoints and heartbeats); `what` names it in errors.
    pub async fn produce_batch(
        &self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        what: &str,
    ) -> Result<(), ClientError> {
        let m = self.leader(topic, partition).await?;
        let to = ProduceTarget {
            topic: StrBytes::from_string(topic.to_string()),
            topic_id: self.metadata().topic_id(topic),
            partition,
        };
        let answer = produce(&m, &to, batch, WRITE_TIMEOUT_MS)
            .await
            .map_err(|source| ClientError::Request {
                cluster: self.name().to_string(),
                source,
            })?;
        settle(
            self.name(),
            what,
            (to.topic.as_str(), to.partition),
            answer.as_ref(),
        )
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };

    fn target(id: Option<Uuid>) -> ProduceTarget {
        ProduceTarget {
            topic: "orders".into(),
            topic_id: id,
            partition: 3,
        }
    }

    fn response(topic: TopicProduceResponse) -> ProduceResponse {
        ProduceResponse::default().with_responses(vec![topic])
    }

    fn partition(index: i32, base_offset: i64) -> PartitionProduceResponse {
        PartitionProduceResponse::default()
            .with_index(index)
            .with_base_offset(base_offset)
    }

    #[test]
    fn the_first_record_the_broker_refused_is_named_in_the_message() {
        use kafka_protocol::messages::produce_response::BatchIndexAndErrorMessage;
        let refused = |index: i32| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(index)
                .with_batch_index_error_message(Some(StrBytes::from_string(format!(
                    "Timestamp 1000 of message with offset {index} is out of range."
                ))))
        };
        let p = partition(3, -1)
            .with_error_code(32)
            .with_error_message(Some(StrBytes::from_static_str(
                "One or more records have been rejected due to invalid timestamp",
            )))
            .with_record_errors(vec![refused(1), refused(2)]);
        let out = partition_outcome(
            &response(
                TopicProduceResponse::default()
                    .with_name(TopicName(StrBytes::from_static_str("orders")))
                    .with_partition_responses(vec![p]),
            ),
            &target(None),
        )
        .expect("answered");
        assert_eq!(
            out.error_message.as_deref(),
            Some(
                "One or more records have been rejected due to invalid timestamp; record 1 of \
                 the batch: Timestamp 1000 of message with offset 1 is out of range. (1 more \
                 records refused)"
            )
        );
    }

    #[test]
    fn answers_are_matched_by_name_or_by_topic_id() {
        let by_name = response(
            TopicProduceResponse::default()
                .with_name(TopicName(StrBytes::from_static_str("orders")))
                .with_partition_responses(vec![partition(2, 7), partition(3, 40)]),
        );
        let got = partition_outcome(&by_name, &target(None)).unwrap();
        assert_eq!(got.base_offset, 40);
        let id = Uuid::from_u128(9);
        let by_id = response(
            TopicProduceResponse::default()
                .with_topic_id(id)
                .with_partition_responses(vec![partition(3, 41)]),
        );
        assert_eq!(
            partition_outcome(&by_id, &target(Some(id)))
                .unwrap()
                .base_offset,
            41
        );
        assert!(partition_outcome(&by_id, &target(Some(Uuid::from_u128(8)))).is_none());
    }

    #[test]
    fn a_response_without_the_partition_is_an_error_not_a_success() {
        let other = response(
            TopicProduceResponse::default()
                .with_name(TopicName(StrBytes::from_static_str("orders")))
                .with_partition_responses(vec![partition(2, 7)]),
        );
        let t = target(None);
        let answer = partition_outcome(&other, &t);
        assert!(answer.is_none());
        let err = settle(
            "west",
            "producing",
            (t.topic.as_str(), t.partition),
            answer.as_ref(),
        )
        .unwrap_err();
        assert!(
            matches!(err, ClientError::MissingPartition { partition: 3, .. }),
            "{err}"
        );
        assert_ne!(err.class(), kmirror_wire::errors::ErrorClass::Fatal);
    }

    #[test]
    fn base_offset_zero_is_stamped_with_the_session() {
        let records: Vec<_> = (0..3)
            .map(|i| kmirror_wire::records::record(100 + i, 0, None, None))
            .collect();
        let mut buf = bytes::BytesMut::from(
            &kmirror_wire::records::encode(&records, kafka_protocol::records::Compression::None)
                .unwrap()[..],
        );
        let session = ProducerSession {
            producer_id: 5,
            producer_epoch: 1,
        };
        assert_eq!(stamp_in_place(&mut buf, session, 10), 3);
        let v = batch::BatchView::parse(&buf, 0).unwrap();
        assert_eq!(
            (v.base_offset(), v.producer_id(), v.base_sequence()),
            (0, 5, 10)
        );
        v.verify_crc().unwrap();
    }
}
