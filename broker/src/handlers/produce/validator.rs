//! Kafka's LogValidator for one client batch that passed [`super::validate`]: decompress
//! the records (into a reused per-thread buffer), walk them, check keys on compacted
//! topics and timestamps, then either keep the batch (patching its timestamp type and max
//! timestamp, as `setMaxTimestamp` does) or rebuild it when Kafka rebuilds: inner offset
//! deltas that are not 0, 1, 2, ... in a compressed batch, or a topic `compression.type`
//! other than the batch's codec. A rebuild rewrites the records' deltas and copies their
//! keys, values and headers as bytes. Offsets, leader epoch and idempotence are not done
//! here.

use std::cell::{RefCell, RefMut};
use std::thread::LocalKey;

use kafka_protocol::error::ResponseError;
use kmirror_wire::batch::{self, BatchHeader, BatchView};

use super::codec::{self, CodecError};
use super::validate::Failure;
use kmirror_wire::walk::{write_record, RawRecord, RecordWalker};

/// `RecordBatch.NO_TIMESTAMP`.
const NO_TIMESTAMP: i64 = -1;
/// Per-thread buffers above this size are dropped after use rather than kept.
const KEEP_BUFFER_BYTES: usize = 8 << 20;

thread_local! {
    static DECOMPRESSED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static REBUILT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A borrowed per-thread buffer that gives its memory back when dropped if it grew past
/// [`KEEP_BUFFER_BYTES`]: on every way out, a failed batch (`?`) or a panic included.
struct Borrowed<'a>(RefMut<'a, Vec<u8>>);

impl Drop for Borrowed<'_> {
    fn drop(&mut self) {
        if self.0.capacity() > KEEP_BUFFER_BYTES {
            *self.0 = Vec::new();
        }
    }
}

/// Runs `f` with this thread's `buffer` (see [`Borrowed`]).
fn with_buffer<R>(
    buffer: &'static LocalKey<RefCell<Vec<u8>>>,
    f: impl FnOnce(&mut Vec<u8>) -> R,
) -> R {
    buffer.with(|cell| f(&mut Borrowed(cell.borrow_mut()).0))
}

/// A topic's settings that LogValidator applies.
#[derive(Debug, Clone)]
pub struct TopicRules {
    /// `cleanup.policy` contains `compact`.
    pub compacted: bool,
    /// `message.timestamp.type=LogAppendTime`.
    pub log_append_time: bool,
    /// `message.timestamp.before.max.ms`.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`.
    pub timestamp_after_max_ms: i64,
    /// `compression.type` (`producer` keeps the batch's codec).
    pub compression_type: String,
    /// `max.message.bytes`, checked again after a rebuild.
    pub max_message_bytes: i64,
    /// `segment.bytes`: no append may be larger than one segment.
    pub segment_bytes: i64,
    /// `min.insync.replicas`: acks=all needs as many in-sync replicas (at most all).
    pub min_insync_replicas: i64,
}

fn codec_failure(e: CodecError) -> Failure {
    match e {
        // Kafka: DefaultRecordBatch.StreamRecordIterator ("premature EOF"), INVALID_RECORD.
        CodecError::Truncated(_) | CodecError::TooLarge => {
            (ResponseError::InvalidRecord, e.to_string()).into()
        }
        // Kafka: "Failed to decompress record stream" is a KafkaException.
        _ => (ResponseError::UnknownServerError, e.to_string()).into(),
    }
}

/// How Kafka's validator reads the records, which shows in how its messages name one.
#[derive(Clone, Copy)]
enum RecordIterator {
    /// The whole record (DefaultRecord).
    Full,
    /// Offsets and timestamps only, the codec kept: LogValidator's skipKeyValueIterator
    /// (PartialDefaultRecord).
    SkipKeyValue,
}

/// Kafka: LogValidator.validateTimestamp, for `record` at `offset`. `None` = valid.
fn timestamp_error(
    rules: &TopicRules,
    batch: &BatchView<'_>,
    (record, ts, offset): (&RawRecord<'_>, i64, i64),
    (iterator, now_ms): (RecordIterator, i64),
) -> Option<String> {
    if !rules.log_append_time && ts != NO_TIMESTAMP {
        // Kafka: LogValidator.recordHasInvalidTimestamp, in Java's longs, which wrap: a
        // timestamp near Long.MIN_VALUE passes an unlimited after.max.ms (and 2.8's
        // math.abs of the difference, one limit both ways, agrees).
        let diff = now_ms.wrapping_sub(ts);
        if diff > rules.timestamp_before_max_ms
            || diff.wrapping_neg() > rules.timestamp_after_max_ms
        {
            return Some(format!(
                "Timestamp {ts} of message with offset {offset} is out of range. The timestamp should be within [{}, {}]",
                now_ms.wrapping_sub(rules.timestamp_before_max_ms),
                now_ms.wrapping_add(rules.timestamp_after_max_ms)
            ));
        }
    } else if batch.is_log_append_time() {
        // The record as DefaultRecord.toString (a null key or value: 0 bytes) or
        // PartialDefaultRecord.toString (-1) shows it.
        let (key, value) = record.key_value_bytes();
        let (kind, key, value) = match iterator {
            RecordIterator::Full => ("DefaultRecord", key.max(0), value.max(0)),
            RecordIterator::SkipKeyValue => ("PartialDefaultRecord", key, value),
        };
        return Some(format!(
            "Invalid timestamp type in message {kind}(offset={offset}, timestamp={ts}, key={key} bytes, value={value} bytes). Producer should not set timestamp type to LogAppendTime."
        ));
    }
    None
}

/// The refusal of a batch whose records failed their checks, as `(batch index, message)`.
/// Kafka: LogValidator.processRecordErrors (any invalid timestamp makes it
/// INVALID_TIMESTAMP; otherwise INVALID_RECORD naming the first three).
fn record_errors_failure(timestamp_invalid: bool, errors: Vec<(i32, String)>) -> Failure {
    if timestamp_invalid {
        return Failure(
            ResponseError::InvalidTimestamp,
            "One or more records have been rejected due to invalid timestamp".into(),
            errors,
            true,
        );
    }
    let shown: Vec<String> = errors
        .iter()
        .take(3)
        .map(|(index, message)| format!("RecordError(batchIndex={index}, message='{message}')"))
        .collect();
    Failure(
        ResponseError::InvalidRecord,
        format!(
            "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
            errors.len(),
            shown.join(", ")
        ),
        errors,
        true,
    )
}

/// The timestamp of a record as Kafka reads it: a LogAppendTime batch gives every record
/// its max timestamp (Kafka: DefaultRecordBatch.RecordIterator).
fn record_timestamp(batch: &BatchView<'_>, r: &RawRecord<'_>) -> i64 {
    if batch.is_log_append_time() {
        batch.max_timestamp()
    } else {
        batch.base_timestamp().wrapping_add(r.timestamp_delta)
    }
}

/// Validates `batch` and appends the batch to store to `out` (which must be empty).
/// Kafka: LogValidator.validateMessagesAndAssignOffsets.
/// `tp` (topic, partition) names the partition in record errors.
pub fn validate_records(
    batch: &BatchView<'_>,
    rules: &TopicRules,
    tp: (&str, i32),
    now_ms: i64,
    out: &mut Vec<u8>,
) -> Result<(), Failure> {
    let source = batch.compression();
    let target = codec::target(&rules.compression_type, source);
    with_buffer(&DECOMPRESSED, |buf| {
        let records: &[u8] = if source == codec::NONE {
            batch.records_bytes()
        } else {
            codec::decompress_into(source, batch.records_bytes(), buf).map_err(codec_failure)?;
            buf
        };
        check_and_store(batch, records, (source, target), (rules, tp), now_ms, out)
    })
}

fn check_and_store(
    batch: &BatchView<'_>,
    records: &[u8],
    (source, target): (i16, i16),
    (rules, tp): (&TopicRules, (&str, i32)),
    now_ms: i64,
    out: &mut Vec<u8>,
) -> Result<(), Failure> {
    // Kafka: uncompressed in and out is assignOffsetsNonCompressed, which never looks at
    // the inner offsets; otherwise validateMessagesAndAssignOffsetsCompressed.
    let compressed_path = source != codec::NONE || target != codec::NONE;
    let mut in_place = source == target;
    // Kafka: validateMessagesAndAssignOffsetsCompressed reads an in-place batch with
    // skipKeyValueIterator.
    let iterator = if compressed_path && in_place {
        RecordIterator::SkipKeyValue
    } else {
        RecordIterator::Full
    };
    let mut max_timestamp = NO_TIMESTAMP;
    let mut record_errors: Vec<(i32, String)> = Vec::new();
    let mut timestamp_invalid = false;
    for (index, r) in RecordWalker::new(records, batch.record_count()).enumerate() {
        // Kafka: DefaultRecord.readFrom / RecordIterator, INVALID_RECORD.
        let r = r.map_err(|e| (ResponseError::InvalidRecord, e.to_string()))?;
        let ts = record_timestamp(batch, &r);
        // Kafka: LogValidator.validateKey, then validateTimestamp.
        if rules.compacted && !r.has_key {
            record_errors.push((
                index as i32,
                format!(
                    "Compacted topic cannot accept message without key in topic partition {}-{}",
                    tp.0, tp.1
                ),
            ));
            continue;
        }
        let offset = batch.base_offset().wrapping_add(i64::from(r.offset_delta));
        if let Some(msg) = timestamp_error(rules, batch, (&r, ts, offset), (iterator, now_ms)) {
            timestamp_invalid = true;
            record_errors.push((index as i32, msg));
            continue;
        }
        max_timestamp = max_timestamp.max(ts);
        if compressed_path && i64::from(r.offset_delta) != index as i64 {
            in_place = false;
        }
    }
    if !record_errors.is_empty() {
        return Err(record_errors_failure(timestamp_invalid, record_errors));
    }
    let stored_max_timestamp = if rules.log_append_time {
        now_ms
    } else {
        max_timestamp
    };
    if !compressed_path || in_place {
        out.extend_from_slice(batch.as_bytes());
        batch::set_max_timestamp(out, rules.log_append_time, stored_max_timestamp);
        return Ok(());
    }
    rebuild(
        batch,
        records,
        target,
        rules.log_append_time,
        stored_max_timestamp,
        out,
    )?;
    // Kafka: UnifiedLog.append re-checks the size when the batch may have changed.
    if out.len() as i64 > rules.max_message_bytes {
        return Err((
            ResponseError::MessageTooLarge,
            format!(
                "Message batch size is {} bytes which exceeds the maximum configured size of {}.",
                out.len(),
                rules.max_message_bytes
            ),
        )
            .into());
    }
    Ok(())
}

/// Kafka: LogValidator.buildRecordsAndAssignOffsets — a new batch with offset deltas
/// 0, 1, 2, ..., the topic's codec and timestamp type, and the first batch's producer
/// fields.
fn rebuild(
    batch: &BatchView<'_>,
    records: &[u8],
    target: i16,
    log_append_time: bool,
    max_timestamp: i64,
    out: &mut Vec<u8>,
) -> Result<(), Failure> {
    with_buffer(&REBUILT, |raw| {
        raw.clear();
        let mut base_timestamp = None;
        for (index, r) in RecordWalker::new(records, batch.record_count()).enumerate() {
            let r = r.map_err(|e| (ResponseError::InvalidRecord, e.to_string()))?;
            let ts = record_timestamp(batch, &r);
            let base = *base_timestamp.get_or_insert(ts);
            write_record(raw, &r, ts.wrapping_sub(base), index as i32);
        }
        let header = BatchHeader {
            base_offset: 0,
            partition_leader_epoch: batch.partition_leader_epoch(),
            attributes: batch::attributes(target, log_append_time, batch.is_transactional()),
            last_offset_delta: batch.record_count() - 1,
            base_timestamp: base_timestamp.unwrap_or(NO_TIMESTAMP),
            max_timestamp,
            producer_id: batch.producer_id(),
            producer_epoch: batch.producer_epoch(),
            base_sequence: batch.base_sequence(),
            record_count: batch.record_count(),
        };
        let mut compressed = Vec::new();
        codec::compress_into(target, raw, codec::Effort::Kafka, &mut compressed)
            .map_err(|e| (ResponseError::UnknownServerError, e.to_string()))?;
        header.write(out, compressed.len());
        out.extend_from_slice(&compressed);
        batch::update_crc(out);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmirror_wire::walk::encode_record as encode;

    const NOW: i64 = 1_700_000_000_000;

    fn rules(compression_type: &str) -> TopicRules {
        TopicRules {
            compacted: false,
            log_append_time: false,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            compression_type: compression_type.into(),
            max_message_bytes: 1 << 20,
            segment_bytes: 1 << 30,
            min_insync_replicas: 1,
        }
    }

    /// A batch of 3 records with offset deltas `deltas`, compressed with `codec`.
    fn batch_with(codec: i16, deltas: [i32; 3], count: i32) -> Vec<u8> {
        let mut raw = Vec::new();
        for (i, d) in deltas.iter().enumerate() {
            let key = format!("k{i}");
            encode(
                &mut raw,
                i as i64,
                *d,
                Some(key.as_bytes()),
                b"v",
                &[(b"h", b"1"), (b"h", b"2")],
            );
        }
        let mut records = Vec::new();
        codec::compress_into(codec, &raw, codec::Effort::Kafka, &mut records).unwrap();
        batch_of(codec, &records, count)
    }

    /// A batch of `count` records whose records section is `records`, as is.
    fn batch_of(codec: i16, records: &[u8], count: i32) -> Vec<u8> {
        let mut out = Vec::new();
        BatchHeader {
            base_offset: 0,
            partition_leader_epoch: -1,
            attributes: batch::attributes(codec, false, false),
            last_offset_delta: count - 1,
            base_timestamp: NOW,
            max_timestamp: NOW + 2,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            record_count: count,
        }
        .write(&mut out, records.len());
        out.extend_from_slice(records);
        batch::update_crc(&mut out);
        out
    }

    fn deltas_of(stored: &[u8]) -> Vec<i32> {
        let b = BatchView::parse(stored, 0).unwrap();
        b.verify_crc().unwrap();
        let mut raw = Vec::new();
        codec::decompress_into(b.compression(), b.records_bytes(), &mut raw).unwrap();
        RecordWalker::new(&raw, b.record_count())
            .map(|r| r.unwrap().offset_delta)
            .collect()
    }

    fn run(raw: &[u8], rules: &TopicRules) -> Result<Vec<u8>, Failure> {
        let b = BatchView::parse(raw, 0).unwrap();
        let mut out = Vec::new();
        validate_records(&b, rules, ("t", 0), NOW, &mut out).map(|()| out)
    }

    #[test]
    fn every_codec_is_walked_and_non_consecutive_deltas_are_rewritten() {
        for c in [codec::GZIP, codec::SNAPPY, codec::LZ4, codec::ZSTD] {
            let good = batch_with(c, [0, 1, 2], 3);
            assert_eq!(
                run(&good, &rules("producer")).unwrap(),
                good,
                "codec {c} in place"
            );
            let gaps = batch_with(c, [0, 2, 4], 3);
            let stored = run(&gaps, &rules("producer")).unwrap();
            assert_eq!(deltas_of(&stored), [0, 1, 2], "codec {c}");
            assert_eq!(BatchView::parse(&stored, 0).unwrap().compression(), c);
            let short = batch_with(c, [0, 1, 2], 2);
            assert_eq!(
                run(&short, &rules("producer")).unwrap_err().0,
                ResponseError::InvalidRecord
            );
        }
    }

    #[test]
    fn a_batch_failing_to_decompress_leaves_no_large_buffer_behind() {
        // 16 MiB of records, cut short: decompression fails after filling the buffer.
        let mut whole = Vec::new();
        let raw = vec![0u8; 16 << 20];
        codec::compress_into(codec::ZSTD, &raw, codec::Effort::Kafka, &mut whole).unwrap();
        let cut = batch_of(codec::ZSTD, &whole[..whole.len() - 8], 1);
        assert!(run(&cut, &rules("producer")).is_err());
        let kept = DECOMPRESSED.with(|b| b.borrow().capacity());
        assert!(kept <= KEEP_BUFFER_BYTES, "{kept} bytes kept");
    }

    #[test]
    fn uncompressed_batches_keep_their_deltas_as_kafka_does() {
        // Kafka: assignOffsetsNonCompressed never looks at inner offsets.
        let gaps = batch_with(codec::NONE, [0, 2, 4], 3);
        assert_eq!(run(&gaps, &rules("producer")).unwrap(), gaps);
    }

    #[test]
    fn recompression_changes_the_codec_and_keeps_every_record_byte() {
        let raw = batch_with(codec::NONE, [0, 1, 2], 3);
        let stored = run(&raw, &rules("zstd")).unwrap();
        let b = BatchView::parse(&stored, 0).unwrap();
        assert_eq!(b.compression(), codec::ZSTD);
        let mut records = Vec::new();
        codec::decompress_into(codec::ZSTD, b.records_bytes(), &mut records).unwrap();
        assert_eq!(records, BatchView::parse(&raw, 0).unwrap().records_bytes());
    }

    #[test]
    fn timestamps_outside_the_limits_are_invalid_timestamp() {
        let raw = batch_with(codec::LZ4, [0, 1, 2], 3);
        // Records are stamped NOW, NOW+1, NOW+2: with after.max.ms=1 the last one is out.
        let mut r = rules("producer");
        r.timestamp_after_max_ms = 2;
        assert!(run(&raw, &r).is_ok());
        r.timestamp_after_max_ms = 1;
        assert_eq!(
            run(&raw, &r).unwrap_err().0,
            ResponseError::InvalidTimestamp
        );
        let mut r = rules("producer");
        r.compacted = true;
        assert!(run(&raw, &r).is_ok(), "every record has a key");
    }
}
