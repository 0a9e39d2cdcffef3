//! Building record batches with kafka-protocol's record codec, for data kmirror writes
//! itself (progress records) and for tests and benchmarks. Mirrored data never goes
//! through here: it is forwarded as raw batches (see [`crate::batch`]).

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// A plain (non-idempotent, non-transactional) record. Its sequence follows its offset so
/// that the encoder keeps consecutive records in one batch.
pub fn record(offset: i64, timestamp: i64, key: Option<Bytes>, value: Option<Bytes>) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: (offset - 1) as i32,
        timestamp,
        key,
        value,
        headers: Default::default(),
    }
}

/// Encodes `records` as v2 batches.
pub fn encode(records: &[Record], compression: Compression) -> Result<Bytes, anyhow::Error> {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_records_make_one_batch() {
        let records: Vec<Record> = (0..10)
            .map(|i| record(i, 5, None, Some(Bytes::from_static(b"v"))))
            .collect();
        let bytes = encode(&records, Compression::None).unwrap();
        let batches: Vec<_> = crate::batch::Batches::new(&bytes).collect();
        assert_eq!(batches.len(), 1);
        let b = batches[0].as_ref().unwrap();
        assert_eq!(
            (b.record_count(), b.producer_id(), b.base_sequence()),
            (10, -1, -1)
        );
    }
}
