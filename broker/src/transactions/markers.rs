//! Transaction markers: the control batch that ends a producer's transaction in a
//! partition, built with kafka-protocol's record encoder, and its append to every
//! partition of the transaction.
//!
//! Kafka: EndTransactionMarker (key: version 0, type; value: version 0, coordinator
//! epoch), MemoryRecords.withEndTransactionMarker (no sequence, uncompressed) and
//! ReplicaManager.appendRecords with AppendOrigin.COORDINATOR (no client validation).

use std::collections::BTreeSet;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kmirror_wire::batch::BatchView;

use super::coordinator::Markers;
use crate::producers::txn::{ABORT, COMMIT};
use crate::state::{now_ms, Broker};

/// A marker batch of type `kind` ([`ABORT`] or [`COMMIT`]) for the producer, at offset 0.
pub fn marker_batch(producer_id: i64, producer_epoch: i16, kind: i16, timestamp_ms: i64) -> Bytes {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    // The coordinator epoch: this coordinator never moves.
    value.extend_from_slice(&0i32.to_be_bytes());
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: timestamp_ms,
        key: Some(Bytes::from(key)),
        value: Some(Bytes::from(value)),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("an uncompressed one-record batch encodes");
    buf.freeze()
}

/// Appends the markers to every partition of the transaction that still exists, waking
/// the fetches waiting on each (a marker moves the last stable offset). Returns the
/// partitions whose append failed (disk full), to be written again later.
pub async fn write(broker: &Broker, markers: &Markers) -> BTreeSet<(String, i32)> {
    let kind = if markers.commit { COMMIT } else { ABORT };
    let now = now_ms();
    let mut files = Vec::new();
    let mut unwritten = BTreeSet::new();
    let mut written = Vec::new();
    for (topic_name, index) in &markers.partitions {
        let Some(topic) = broker.topics.get(topic_name) else {
            continue;
        };
        let Some(partition) = topic.partition(*index) else {
            continue;
        };
        let mut batch =
            marker_batch(markers.producer_id, markers.producer_epoch, kind, now).to_vec();
        let mut producers = partition.producers.lock().expect("producers lock");
        let mut log = partition.log.lock().expect("log lock");
        let leader_epoch = broker.cluster.view(&topic, *index).leader_epoch;
        match log.append(&mut batch, leader_epoch, now) {
            Ok(_) => {
                written.push((topic_name, *index));
                if let Ok(view) = BatchView::parse(&batch, 0) {
                    producers.record(&view, now);
                }
                if broker.group_commit.is_some() {
                    files.extend(log.sync_handle());
                }
            }
            Err(e) => {
                tracing::error!(transactional_id = %markers.transactional_id, topic = %topic_name, partition = index, error = %e, "Cannot write a transaction marker; it is written again later.");
                unwritten.insert((topic_name.clone(), *index));
            }
        }
    }
    // Woken once the partitions' locks are let go.
    for (topic_name, index) in written {
        broker.fetch_waiters.appended(topic_name, index);
    }
    if let (Some(gc), false) = (&broker.group_commit, files.is_empty()) {
        if let Err(e) = gc.sync(files).await {
            // Kafka answers a failed append of a marker as retriable: write them all again.
            tracing::error!(transactional_id = %markers.transactional_id, error = %e, "Cannot sync transaction markers; they are written again later.");
            return markers.partitions.clone();
        }
    }
    unwritten
}
