//! Test helpers: raw v2 record batches with chosen producer fields.

use kmirror_wire::batch::{BatchView, HEADER_LEN, LOG_OVERHEAD};

/// An uncompressed v2 batch of `count` empty records.
pub(crate) fn batch(
    producer_id: i64,
    epoch: i16,
    base_seq: i32,
    count: i32,
    base_offset: i64,
    timestamp: i64,
) -> Vec<u8> {
    let mut records = Vec::new();
    for i in 0..count {
        // length, attributes, timestampDelta 0, offsetDelta i, key -1, value 0, headers 0
        let mut body = vec![0u8, 0];
        kmirror_wire::batch::put_varlong(&mut body, i64::from(i));
        body.extend_from_slice(&[1, 0, 0]);
        kmirror_wire::batch::put_varlong(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let batch_length = (HEADER_LEN - LOG_OVERHEAD + records.len()) as i32;
    let mut b = Vec::with_capacity(HEADER_LEN + records.len());
    b.extend_from_slice(&base_offset.to_be_bytes());
    b.extend_from_slice(&batch_length.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(count - 1).to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&epoch.to_be_bytes());
    b.extend_from_slice(&base_seq.to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&records);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

pub(crate) fn view(raw: &[u8]) -> BatchView<'_> {
    let v = BatchView::parse(raw, 0).expect("test batch parses");
    v.validate_for_append().expect("test batch is valid");
    v
}
