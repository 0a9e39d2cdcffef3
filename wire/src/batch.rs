//! A zero-copy view of Kafka v2 record batches.
//!
//! Walks the batches in a Produce or Fetch `records` payload without decompressing them,
//! verifies and recomputes CRC-32C, and rewrites the header fields a broker or a mirror
//! owns (base offset, partition leader epoch, producer id/epoch/base sequence). Records
//! inside a batch are never touched here; when a feature needs the records themselves it
//! decodes them with `kafka-protocol`.
//!
//! Layout of the 61-byte header (offsets in bytes):
//! `0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8 |
//! 17 crc u32 | 21 attributes i16 | 23 lastOffsetDelta i32 | 27 baseTimestamp i64 |
//! 35 maxTimestamp i64 | 43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32 |
//! 57 recordCount i32`. The CRC covers bytes 21 to the end, so base offset and leader epoch
//! can be patched without recomputing it.

use bytes::Bytes;

/// Bytes before `batchLength` counts: baseOffset (8) + batchLength (4).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the v2 batch header.
pub const HEADER_LEN: usize = 61;
const CRC_START: usize = 21;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;
const ATTR_DELETE_HORIZON: i16 = 0x40;

/// Why a batch cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch at byte {position} has length {batch_length}, below the v2 header size")]
    LengthTooSmall { position: usize, batch_length: i32 },
    #[error("batch at byte {position} has magic {magic}; only v2 batches are supported")]
    UnsupportedMagic { position: usize, magic: i8 },
    #[error("batch at byte {position} is truncated: needs {needed_bytes}, has {available_bytes}")]
    Truncated {
        position: usize,
        needed_bytes: usize,
        available_bytes: usize,
    },
    #[error("batch with base offset {base_offset} failed its CRC check (stored {stored:#010x}, computed {computed:#010x})")]
    CrcMismatch {
        base_offset: i64,
        stored: u32,
        computed: u32,
    },
    #[error("batch with base offset {base_offset} has {record_count} records but lastOffsetDelta {last_offset_delta}")]
    InconsistentCount {
        base_offset: i64,
        record_count: i32,
        last_offset_delta: i32,
    },
}

/// One v2 record batch, borrowed from a larger buffer.
#[derive(Debug, Clone, Copy)]
pub struct BatchView<'a> {
    bytes: &'a [u8],
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl<'a> BatchView<'a> {
    /// Reads one batch from the start of `buf`. Returns the batch and its total size.
    /// Checks the framing (length, magic) but not the CRC.
    pub fn parse(buf: &'a [u8], position: usize) -> Result<Self, BatchError> {
        if buf.len() < LOG_OVERHEAD + 5 {
            return Err(BatchError::Truncated {
                position,
                needed_bytes: LOG_OVERHEAD + 5,
                available_bytes: buf.len(),
            });
        }
        let batch_length = be_i32(buf, 8);
        let magic = buf[16] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic { position, magic });
        }
        if batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::LengthTooSmall {
                position,
                batch_length,
            });
        }
        let total = LOG_OVERHEAD + batch_length as usize;
        if buf.len() < total {
            return Err(BatchError::Truncated {
                position,
                needed_bytes: total,
                available_bytes: buf.len(),
            });
        }
        Ok(Self {
            bytes: &buf[..total],
        })
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
    pub fn size_bytes(&self) -> usize {
        self.bytes.len()
    }
    pub fn base_offset(&self) -> i64 {
        be_i64(self.bytes, 0)
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.bytes, 12)
    }
    pub fn crc(&self) -> u32 {
        be_i32(self.bytes, 17) as u32
    }
    pub fn attributes(&self) -> i16 {
        be_i16(self.bytes, 21)
    }
    /// Compression codec id: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> i16 {
        self.attributes() & ATTR_COMPRESSION_MASK
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & ATTR_TIMESTAMP_TYPE != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & ATTR_CONTROL != 0
    }
    /// Whether Kafka's log cleaner set a delete horizon (KIP-534): the base timestamp is
    /// then the time after which the cleaner drops the batch's tombstones and markers.
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes() & ATTR_DELETE_HORIZON != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.bytes, 23)
    }
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.bytes, 27)
    }
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.bytes, 35)
    }
    pub fn producer_id(&self) -> i64 {
        be_i64(self.bytes, 43)
    }
    pub fn producer_epoch(&self) -> i16 {
        be_i16(self.bytes, 51)
    }
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.bytes, 53)
    }
    pub fn record_count(&self) -> i32 {
        be_i32(self.bytes, 57)
    }
    /// Offset of the last record: base offset + lastOffsetDelta.
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + i64::from(self.last_offset_delta())
    }
    /// The offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// The records section (compressed or not): everything after the 61-byte header.
    pub fn records_bytes(&self) -> &'a [u8] {
        &self.bytes[HEADER_LEN..]
    }

    pub fn computed_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[CRC_START..])
    }

    /// Verifies the CRC-32C over attributes..end.
    pub fn verify_crc(&self) -> Result<(), BatchError> {
        let computed = self.computed_crc();
        if computed != self.crc() {
            return Err(BatchError::CrcMismatch {
                base_offset: self.base_offset(),
                stored: self.crc(),
                computed,
            });
        }
        Ok(())
    }

    /// Checks what a broker must check before accepting a batch from a producer: CRC, and a
    /// record count consistent with lastOffsetDelta.
    pub fn validate_for_append(&self) -> Result<(), BatchError> {
        self.verify_crc()?;
        let count = self.record_count();
        if count <= 0 || self.last_offset_delta() != count - 1 {
            return Err(BatchError::InconsistentCount {
                base_offset: self.base_offset(),
                record_count: count,
                last_offset_delta: self.last_offset_delta(),
            });
        }
        Ok(())
    }
}

/// Iterates over the whole batches in a buffer. A truncated final batch (legal at the end
/// of a Fetch response) ends the iteration without an error; [`Batches::truncated_tail`]
/// tells whether that happened. Any other framing problem is returned once, then iteration
/// stops.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    buf: &'a [u8],
    position: usize,
    truncated_tail: bool,
    failed: bool,
}

impl<'a> Batches<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            position: 0,
            truncated_tail: false,
            failed: false,
        }
    }
    /// Whether the buffer ended inside a batch.
    pub fn truncated_tail(&self) -> bool {
        self.truncated_tail
    }
    /// Bytes consumed by the whole batches returned so far.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<BatchView<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.buf.len() {
            return None;
        }
        match BatchView::parse(&self.buf[self.position..], self.position) {
            Ok(b) => {
                self.position += b.size_bytes();
                Some(Ok(b))
            }
            Err(BatchError::Truncated { .. }) => {
                self.truncated_tail = true;
                self.failed = true;
                None
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Writes a new base offset into a batch (outside the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Writes the partition leader epoch into a batch (outside the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[12..16].copy_from_slice(&epoch.to_be_bytes());
}

/// Rewrites producer id, epoch and base sequence and clears the transactional and
/// delete-horizon attribute bits, then patches the CRC from the old one without reading
/// the records (see [`patch_crc`]): the new CRC is valid exactly when the old one was, so a
/// corrupt batch stays detectably corrupt. The records, compressed or not, are untouched.
///
/// The delete horizon (KIP-534) is the source cleaner's: kept, the target's cleaner would
/// drop the batch's tombstones at the source's horizon (LogCleaner.scala,
/// `shouldRetainRecord`) instead of after the target topic's `delete.retention.ms`. Without
/// the flag the base timestamp (the horizon) is read as a plain base, and each record's
/// timestamp stays base + delta, as before.
pub fn set_producer(batch: &mut [u8], producer_id: i64, producer_epoch: i16, base_sequence: i32) {
    let old = crc_header(batch);
    let attrs = be_i16(batch, 21) & !(ATTR_TRANSACTIONAL | ATTR_DELETE_HORIZON);
    batch[21..23].copy_from_slice(&attrs.to_be_bytes());
    batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
    batch[51..53].copy_from_slice(&producer_epoch.to_be_bytes());
    batch[53..57].copy_from_slice(&base_sequence.to_be_bytes());
    patch_crc(batch, &old);
}

/// The header bytes the CRC covers (attributes to record count).
type CrcHeader = [u8; HEADER_LEN - CRC_START];

fn crc_header(batch: &[u8]) -> CrcHeader {
    batch[CRC_START..HEADER_LEN]
        .try_into()
        .expect("a batch holds a whole header")
}

/// Updates the CRC of a batch whose CRC-covered header bytes were `old` and have changed,
/// in time independent of its size. CRC-32C is affine: for inputs of equal length,
/// crc(new) = crc(old) ^ g(old ^ new), with g the CRC without initial and final xor. The
/// difference is zero past the header, so g of it is g(header difference) carried over the
/// record bytes as a run of zeros ([`crate::crc_shift::append_zeros`]).
fn patch_crc(batch: &mut [u8], old: &CrcHeader) {
    let mut delta = crc_header(batch);
    for (d, o) in delta.iter_mut().zip(old) {
        *d ^= o;
    }
    let head = crc32c::crc32c(&delta) ^ crc32c::crc32c(&[0u8; HEADER_LEN - CRC_START]);
    let difference = crate::crc_shift::append_zeros(head, (batch.len() - HEADER_LEN) as u64);
    let crc = u32::from_be_bytes(batch[17..21].try_into().expect("4 bytes")) ^ difference;
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Sets the timestamp type to LogAppendTime with `max_timestamp = now_ms` and recomputes the
/// CRC, as a broker does for topics with `message.timestamp.type=LogAppendTime`.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    set_max_timestamp(batch, true, now_ms);
}

/// Sets the timestamp type (LogAppendTime or CreateTime) and the max timestamp, and
/// recomputes the CRC if either changed (Kafka's `DefaultRecordBatch.setMaxTimestamp`).
/// Returns whether the batch changed.
pub fn set_max_timestamp(batch: &mut [u8], log_append_time: bool, max_timestamp_ms: i64) -> bool {
    let old = be_i16(batch, 21);
    let attrs = if log_append_time {
        old | ATTR_TIMESTAMP_TYPE
    } else {
        old & !ATTR_TIMESTAMP_TYPE
    };
    if attrs == old && be_i64(batch, 35) == max_timestamp_ms {
        return false;
    }
    batch[21..23].copy_from_slice(&attrs.to_be_bytes());
    batch[35..43].copy_from_slice(&max_timestamp_ms.to_be_bytes());
    update_crc(batch);
    true
}

/// Recomputes and stores the CRC-32C of a whole batch.
pub fn update_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// The batch attributes for a codec id (0-4), timestamp type and transactional flag.
pub fn attributes(compression: i16, log_append_time: bool, transactional: bool) -> i16 {
    let mut a = compression & ATTR_COMPRESSION_MASK;
    if log_append_time {
        a |= ATTR_TIMESTAMP_TYPE;
    }
    if transactional {
        a |= ATTR_TRANSACTIONAL;
    }
    a
}

/// The header of a v2 batch, for writing one from scratch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Appends the 61-byte header for a records section of `records_bytes` bytes, with a
    /// zero CRC: write the records after it, then call [`update_crc`] on the whole batch.
    pub fn write(&self, out: &mut Vec<u8>, records_bytes: usize) {
        let batch_length = (HEADER_LEN - LOG_OVERHEAD + records_bytes) as i32;
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out.push(2);
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&self.attributes.to_be_bytes());
        out.extend_from_slice(&self.last_offset_delta.to_be_bytes());
        out.extend_from_slice(&self.base_timestamp.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&self.record_count.to_be_bytes());
    }
}

/// Appends `v` as a zig-zag varint (Kafka's `ByteUtils.writeVarlong`; for values that fit
/// an i32 the bytes equal `writeVarint`'s), as record fields are encoded.
pub fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// Splits `records` into owned batches (cheap `Bytes` slices).
pub fn split(records: &Bytes) -> Result<Vec<Bytes>, BatchError> {
    let mut out = Vec::new();
    let mut start = 0;
    for b in Batches::new(records) {
        let size = b?.size_bytes();
        out.push(records.slice(start..start + size));
        start += size;
    }
    Ok(out)
}

#[cfg(test)]
#[path = "batch_tests.rs"]
pub(crate) mod tests;
