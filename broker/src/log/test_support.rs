//! Test helpers: builds valid v2 record batches (CRC-32C included) without a producer.
//! Not compiled outside tests.

use kmirror_wire::batch::{put_varlong as varint, BatchView, HEADER_LEN, LOG_OVERHEAD};

/// An uncompressed v2 batch of `count` records, base offset 0, record `i` stamped
/// `timestamp_ms + i` with a value of `value_len` bytes and no key or headers.
pub(crate) fn batch(count: i32, timestamp_ms: i64, value_len: usize) -> Vec<u8> {
    let mut records = Vec::new();
    for i in 0..count {
        let mut body = vec![0u8]; // attributes
        varint(&mut body, i64::from(i)); // timestamp delta
        varint(&mut body, i64::from(i)); // offset delta
        varint(&mut body, -1); // key
        varint(&mut body, value_len as i64);
        body.resize(body.len() + value_len, b'a' + (i % 26) as u8);
        varint(&mut body, 0); // headers
        varint(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let mut b = Vec::with_capacity(HEADER_LEN + records.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + records.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, below
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&(count - 1).to_be_bytes());
    b.extend_from_slice(&timestamp_ms.to_be_bytes());
    b.extend_from_slice(&(timestamp_ms + i64::from(count) - 1).to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&records);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Base offsets of the batches in `buf`.
pub(crate) fn base_offsets(buf: &[u8]) -> Vec<i64> {
    kmirror_wire::batch::Batches::new(buf)
        .map(|b| b.expect("well-framed").base_offset())
        .collect()
}

/// The first batch of `buf`.
pub(crate) fn first(buf: &[u8]) -> BatchView<'_> {
    BatchView::parse(buf, 0).expect("a batch")
}

#[test]
fn helper_batches_decode_with_kafka_protocol() {
    use kafka_protocol::records::RecordBatchDecoder;
    let mut buf = batch(3, 1_000, 5);
    buf.extend(batch(1, 2_000, 0));
    let mut bytes = bytes::Bytes::from(buf);
    let records = RecordBatchDecoder::decode(&mut bytes)
        .expect("decodes")
        .records;
    assert_eq!(records.len(), 3);
    assert_eq!(records[2].offset, 2);
    assert_eq!(records[2].timestamp, 1_002);
    assert_eq!(records[2].value.as_deref(), Some(&b"ccccc"[..]));
}
