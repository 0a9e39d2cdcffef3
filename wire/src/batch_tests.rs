use super::*;

/// Builds a minimal valid uncompressed v2 batch holding `count` records with empty key
/// and value, for tests across the workspace.
pub fn sample_batch(base_offset: i64, count: i32, timestamp_ms: i64) -> Vec<u8> {
    let mut records = Vec::new();
    for i in 0..count {
        // record: length varint, attributes i8, timestampDelta varlong, offsetDelta varint,
        // keyLen varint(-1), valueLen varint(0), headers varint(0)
        let body = [0u8, 0, (i as u8) << 1, 1, 0, 0];
        records.push((body.len() as u8) << 1);
        records.extend_from_slice(&body);
    }
    let batch_length = (HEADER_LEN - LOG_OVERHEAD + records.len()) as i32;
    let mut b = Vec::new();
    b.extend_from_slice(&base_offset.to_be_bytes());
    b.extend_from_slice(&batch_length.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(count - 1).to_be_bytes());
    b.extend_from_slice(&timestamp_ms.to_be_bytes());
    b.extend_from_slice(&timestamp_ms.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&records);
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

#[test]
fn parses_header_fields_and_verifies_crc() {
    let raw = sample_batch(10, 3, 1_000);
    let b = BatchView::parse(&raw, 0).unwrap();
    assert_eq!(b.base_offset(), 10);
    assert_eq!(b.record_count(), 3);
    assert_eq!(b.next_offset(), 13);
    assert_eq!(b.max_timestamp(), 1_000);
    b.validate_for_append().unwrap();
}

#[test]
fn crc_detects_a_flipped_byte_but_not_a_new_base_offset() {
    let mut raw = sample_batch(0, 2, 5);
    set_base_offset(&mut raw, 77);
    set_partition_leader_epoch(&mut raw, 3);
    BatchView::parse(&raw, 0).unwrap().verify_crc().unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 0xff;
    assert!(matches!(
        BatchView::parse(&raw, 0).unwrap().verify_crc(),
        Err(BatchError::CrcMismatch { .. })
    ));
}

#[test]
fn producer_rewrite_keeps_crc_valid() {
    let mut raw = sample_batch(0, 2, 5);
    set_producer(&mut raw, 42, 1, 100);
    let b = BatchView::parse(&raw, 0).unwrap();
    assert_eq!(
        (b.producer_id(), b.producer_epoch(), b.base_sequence()),
        (42, 1, 100)
    );
    b.verify_crc().unwrap();
}

#[test]
fn the_patched_crc_equals_a_full_recomputation_for_every_size() {
    for count in [0, 1, 3, 40, 700, 40_000] {
        let mut raw = sample_batch(0, count, 5);
        let attrs = be_i16(&raw, 21) | ATTR_TRANSACTIONAL;
        raw[21..23].copy_from_slice(&attrs.to_be_bytes());
        update_crc(&mut raw);
        let old = crc_header(&raw);
        raw[21..23].copy_from_slice(&(attrs & !ATTR_TRANSACTIONAL).to_be_bytes());
        raw[43..51].copy_from_slice(&(-7 - count as i64).to_be_bytes());
        raw[53..57].copy_from_slice(&i32::MAX.to_be_bytes());
        patch_crc(&mut raw, &old);
        let mut full = raw.clone();
        update_crc(&mut full);
        assert_eq!(raw, full, "{count} records");
        assert_eq!(be_i16(&raw, 21) & ATTR_TRANSACTIONAL, 0);
    }
}

#[test]
fn the_source_cleaners_delete_horizon_is_cleared_and_the_timestamps_stay() {
    let mut raw = sample_batch(0, 3, 5);
    // As Kafka's cleaner writes it (KIP-534): the flag, and the base timestamp is the
    // horizon, which shifts every record's timestamp (base + delta) by the same amount.
    let attrs = be_i16(&raw, 21) | ATTR_DELETE_HORIZON;
    raw[21..23].copy_from_slice(&attrs.to_be_bytes());
    raw[27..35].copy_from_slice(&86_400_000i64.to_be_bytes());
    update_crc(&mut raw);
    let timestamps = |raw: &[u8]| {
        kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes::Bytes::copy_from_slice(raw))
            .unwrap()
            .records
            .iter()
            .map(|r| r.timestamp)
            .collect::<Vec<_>>()
    };
    let before = timestamps(&raw);
    set_producer(&mut raw, 42, 1, 100);
    let b = BatchView::parse(&raw, 0).unwrap();
    assert!(!b.has_delete_horizon());
    assert_eq!(b.compression(), attrs & ATTR_COMPRESSION_MASK);
    b.verify_crc().unwrap();
    assert_eq!(timestamps(&raw), before);
}

#[test]
fn a_patched_crc_stays_wrong_for_a_corrupt_batch() {
    for count in [2, 40_000] {
        let mut raw = sample_batch(0, count, 5);
        let last = raw.len() - 1;
        raw[last] ^= 1;
        set_producer(&mut raw, 42, 1, 100);
        assert!(matches!(
            BatchView::parse(&raw, 0).unwrap().verify_crc(),
            Err(BatchError::CrcMismatch { .. })
        ));
    }
}

#[test]
fn iteration_stops_quietly_at_a_truncated_tail() {
    let mut buf = sample_batch(0, 2, 5);
    let second = sample_batch(2, 4, 5);
    buf.extend_from_slice(&second[..second.len() - 3]);
    let mut it = Batches::new(&buf);
    assert_eq!(it.next().unwrap().unwrap().base_offset(), 0);
    assert!(it.next().is_none());
    assert!(it.truncated_tail());
}

#[test]
fn written_header_round_trips_and_max_timestamp_rewrites_keep_crc_valid() {
    let raw = sample_batch(0, 3, 7);
    let view = BatchView::parse(&raw, 0).unwrap();
    let h = BatchHeader {
        base_offset: 0,
        partition_leader_epoch: 0,
        attributes: attributes(0, false, true),
        last_offset_delta: 2,
        base_timestamp: 7,
        max_timestamp: 9,
        producer_id: 5,
        producer_epoch: 1,
        base_sequence: 0,
        record_count: 3,
    };
    let mut out = Vec::new();
    h.write(&mut out, view.records_bytes().len());
    out.extend_from_slice(view.records_bytes());
    update_crc(&mut out);
    let b = BatchView::parse(&out, 0).unwrap();
    b.validate_for_append().unwrap();
    assert!(b.is_transactional() && !b.is_log_append_time());
    assert_eq!((b.producer_id(), b.max_timestamp()), (5, 9));
    assert!(!set_max_timestamp(&mut out, false, 9));
    assert!(set_max_timestamp(&mut out, true, 100));
    let b = BatchView::parse(&out, 0).unwrap();
    assert!(b.is_log_append_time() && b.max_timestamp() == 100);
    b.verify_crc().unwrap();
    assert!(set_max_timestamp(&mut out, false, 9));
    assert!(!BatchView::parse(&out, 0).unwrap().is_log_append_time());
}

#[test]
fn bad_magic_and_short_length_are_errors() {
    let mut raw = sample_batch(0, 1, 5);
    raw[16] = 1;
    assert!(matches!(
        Batches::new(&raw).next(),
        Some(Err(BatchError::UnsupportedMagic { magic: 1, .. }))
    ));
    let mut raw = sample_batch(0, 1, 5);
    raw[8..12].copy_from_slice(&3i32.to_be_bytes());
    assert!(matches!(
        Batches::new(&raw).next(),
        Some(Err(BatchError::LengthTooSmall { .. }))
    ));
}
