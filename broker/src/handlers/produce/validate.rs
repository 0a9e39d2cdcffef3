//! The checks Kafka makes on a partition's `records` before it looks inside the batch:
//! the request-level rules of `ProduceRequest.validateRecords`, the framing of
//! `ByteBufferLogInputStream`, `UnifiedLog.analyzeAndValidateRecords` (base offset, size,
//! CRC) and the header half of `LogValidator.validateBatch`. The result is the one batch
//! to append; a truncated partial batch after it is dropped, as Kafka's `trimInvalidBytes`
//! does. Records inside the batch are checked by [`super::validator`].

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kmirror_wire::batch::{BatchError, BatchView, LOG_OVERHEAD};

use super::codec;

/// Why a partition's batch is refused: Kafka's error code, its message, the records at
/// fault as `(batch index, message)` (KIP-467 `record_errors`, Produce v8+) when a record
/// check refused it, and whether the message is answered (Produce v8+; Kafka:
/// LogAppendResult.hasCustomErrorMessage, set for record checks and the transaction
/// verification, every other refusal answers a null message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(
    pub ResponseError,
    pub String,
    pub Vec<(i32, String)>,
    pub bool,
);

impl From<(ResponseError, String)> for Failure {
    fn from((code, message): (ResponseError, String)) -> Self {
        Self(code, message, Vec::new(), false)
    }
}

impl Failure {
    /// A refusal whose message is answered.
    pub fn told(code: ResponseError, message: String) -> Self {
        Self(code, message, Vec::new(), true)
    }
}

/// `LegacyRecord.RECORD_OVERHEAD_V0`: the smallest size a batch may claim.
const MIN_BATCH_SIZE: i32 = 14;
/// Bytes up to and including the magic byte.
const HEADER_SIZE_UP_TO_MAGIC: usize = 17;

fn invalid(msg: String) -> Failure {
    (ResponseError::InvalidRecord, msg).into()
}

/// The size of the batch at the start of `buf`, or `None` if `buf` ends inside it.
/// Kafka: ByteBufferLogInputStream.nextBatchSize / nextBatch.
fn next_batch_size(buf: &[u8]) -> Result<Option<usize>, Failure> {
    if buf.len() < LOG_OVERHEAD {
        return Ok(None);
    }
    let size = i32::from_be_bytes(buf[8..12].try_into().expect("4 bytes"));
    if size < MIN_BATCH_SIZE {
        return Err((
            ResponseError::CorruptMessage,
            format!(
                "Record size {size} is less than the minimum record overhead ({MIN_BATCH_SIZE})."
            ),
        )
            .into());
    }
    if buf.len() < HEADER_SIZE_UP_TO_MAGIC {
        return Ok(None);
    }
    let magic = buf[16] as i8;
    if !(0..=2).contains(&magic) {
        return Err((
            ResponseError::CorruptMessage,
            format!("Invalid magic found in record: {magic}."),
        )
            .into());
    }
    let total = LOG_OVERHEAD + size as usize;
    Ok((buf.len() >= total).then_some(total))
}

/// The low byte of the attributes of the first batch of `records`, if it is a v2 batch:
/// transactional (0x10, Kafka: RequestUtils.hasTransactionalRecords) and codec (0x07).
pub fn first_batch_attributes(records: Option<&Bytes>) -> Option<u8> {
    records
        .filter(|r| r.len() >= 23 && r[16] == 2)
        .map(|r| r[22])
}

/// The partition's one batch (a truncated partial batch after it is dropped), checked as
/// Kafka: ProduceRequest.validateRecords.
pub fn request_batch(records: Option<&Bytes>, version: i16) -> Result<&[u8], Failure> {
    let records: &[u8] = records.map_or(&[], |r| r.as_ref());
    let Some(size) = next_batch_size(records)? else {
        return Err(invalid(format!(
            "Produce requests with version {version} must have at least one record batch per partition."
        )));
    };
    let first = &records[..size];
    if first[16] != 2 {
        return Err(invalid(format!(
            "Produce requests with version {version} are only allowed to contain record batches with magic version 2."
        )));
    }
    let codec = i16::from_be_bytes([first[21], first[22]]) & 0x07;
    if version < 7 && codec == codec::ZSTD {
        return Err((
            ResponseError::UnsupportedCompressionType,
            format!("Produce requests with version {version} are not allowed to use ZStandard compression."),
        ).into());
    }
    if next_batch_size(&records[size..])?.is_some() {
        return Err(invalid(format!(
            "Produce requests with version {version} are only allowed to contain exactly one record batch per partition."
        )));
    }
    Ok(first)
}

/// The checks of Kafka's UnifiedLog.analyzeAndValidateRecords (base offset, size, CRC) and
/// the header half of LogValidator.validateBatch, on the batch from [`request_batch`].
pub fn log_batch(first: &[u8], max_message_bytes: i64) -> Result<BatchView<'_>, Failure> {
    let size = first.len();
    let base_offset = i64::from_be_bytes(first[..8].try_into().expect("8 bytes"));
    if base_offset != 0 {
        return Err(invalid(format!(
            "The baseOffset of the record batch should be 0, but it is {base_offset}."
        )));
    }
    if size as i64 > max_message_bytes {
        return Err((
            ResponseError::MessageTooLarge,
            format!("The record batch size is {size} bytes which exceeds the maximum configured value of {max_message_bytes}."),
        ).into());
    }
    let corrupt = |e: BatchError| {
        (
            ResponseError::CorruptMessage,
            format!("Record is corrupt: {e}."),
        )
    };
    let batch = BatchView::parse(first, 0).map_err(corrupt)?;
    batch.verify_crc().map_err(corrupt)?;
    validate_batch(&batch)?;
    Ok(batch)
}

/// The header checks of Kafka's LogValidator.validateBatch for a client's v2 batch.
fn validate_batch(batch: &BatchView<'_>) -> Result<(), Failure> {
    let count_from_offsets = i64::from(batch.last_offset_delta()) + 1;
    if count_from_offsets <= 0 {
        return Err(invalid(format!(
            "Batch has an invalid offset range: [0, {}].",
            batch.last_offset_delta()
        )));
    }
    let count = batch.record_count();
    if count <= 0 {
        return Err(invalid(format!(
            "Invalid reported count for record batch: {count}."
        )));
    }
    if count_from_offsets != i64::from(count) {
        return Err(invalid(format!(
            "Inconsistent batch offset range [0, {}] and count of records {count}.",
            batch.last_offset_delta()
        )));
    }
    if batch.is_control() {
        return Err(invalid(
            "Clients are not allowed to write control records.".into(),
        ));
    }
    if batch.producer_id() >= 0 && batch.base_sequence() < 0 {
        return Err(invalid(format!(
            "Invalid sequence number {} in record batch with producerId {}.",
            batch.base_sequence(),
            batch.producer_id()
        )));
    }
    Ok(())
}
