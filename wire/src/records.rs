//! Building record batches with kafka-protocol's record codec, for data kmirror writes
//! itself (progress records) and for tests and benchmarks. Mirrored data never goes
//! through here: it is forwarded as raw batches (see [`crate::batch`]).

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::codec;

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

/// Every codec a v2 batch can have, for tests that go through them all.
#[cfg(test)]
pub(crate) const EVERY_COMPRESSION: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// Encodes `records` as v2 batches, compressed as Kafka's Java producer and librdkafka
/// compress them (for lz4: fast-level frames without checksums, where kafka-protocol's own
/// encoder writes LZ4 HC frames with block and content checksums).
pub fn encode(records: &[Record], compression: Compression) -> Result<Bytes, anyhow::Error> {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode_with_custom_compression(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
        Some(|raw: &mut BytesMut, out: &mut BytesMut, c: Compression| {
            let codec = match c {
                Compression::None => codec::NONE,
                Compression::Gzip => codec::GZIP,
                Compression::Snappy => codec::SNAPPY,
                Compression::Lz4 => codec::LZ4,
                Compression::Zstd => codec::ZSTD,
            };
            Ok(codec::compress_into(codec, raw, codec::Effort::Kafka, out)?)
        }),
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

    #[test]
    fn every_codec_encodes_as_kafkas_producer_and_decodes_with_kafka_protocol() {
        let records: Vec<Record> = (0..100)
            .map(|i| {
                record(
                    i,
                    5,
                    None,
                    Some(Bytes::from(format!("value {i}").repeat(20))),
                )
            })
            .collect();
        for c in EVERY_COMPRESSION {
            let bytes = encode(&records, c).unwrap();
            let decoded =
                kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes.clone()).unwrap();
            assert_eq!(decoded.records.len(), 100, "{c:?}");
            assert_eq!(decoded.records[7].value, records[7].value, "{c:?}");
            if c == Compression::Lz4 {
                let b = crate::batch::BatchView::parse(&bytes, 0).unwrap();
                // Lz4BlockOutputStream's FLG: version 1, independent blocks, no checksums.
                assert_eq!(b.records_bytes()[4], 0x60, "lz4 FLG");
            }
        }
    }
}
