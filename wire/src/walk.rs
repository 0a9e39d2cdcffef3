//! Walks the (uncompressed) records section of a v2 batch by the records' varint lengths,
//! without building `Record`s or allocating, checking the structure Kafka's
//! `DefaultRecord.readFrom` checks, and rewrites records with new offset and timestamp
//! deltas for a rebuilt batch. Keys, values and headers are copied as bytes, never decoded,
//! so duplicate header keys and every other byte of a record survive a rebuild. What a
//! record *means* to a topic (keys on compacted topics, timestamps) is for its callers:
//! the broker's produce validator and the daemon's batch rebuild.

use crate::batch::put_varlong;

/// Why a records section is malformed. Kafka answers all of these with INVALID_RECORD.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Kafka: DefaultRecordBatch.RecordIterator ("premature EOF reached").
    #[error("incorrect declared batch size: the records end after {found} of {declared} records")]
    PrematureEnd { declared: i32, found: i32 },
    /// Kafka: DefaultRecordBatch.RecordIterator ("records still remaining").
    #[error("incorrect declared batch size: bytes remain after {declared} records")]
    BytesRemaining { declared: i32 },
    /// Kafka: DefaultRecord.readFrom ("Invalid record size" / "invalid record structure").
    #[error("record {index} has an invalid structure: {reason}")]
    Structure { index: i32, reason: &'static str },
}

/// One record, borrowed from a records section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    pub attributes: u8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    /// Kafka's `hasKey`: a key length >= 0.
    pub has_key: bool,
    /// The record from its key length to its end (key, value, headers), as bytes.
    pub tail: &'a [u8],
}

impl RawRecord<'_> {
    /// The key's and the value's lengths as the record gives them, -1 for a null one
    /// (Kafka: PartialDefaultRecord's keySize and valueSize).
    pub fn key_value_bytes(&self) -> (i32, i32) {
        let mut at = 0;
        let key = skip_bytes(self.tail, &mut at).unwrap_or(-1);
        let value = skip_bytes(self.tail, &mut at).unwrap_or(-1);
        (key, value)
    }
}

/// Reads the raw bits of a varint of at most `max_bytes` bytes (Kafka: ByteUtils.readVarint
/// allows 5, readVarlong 10; a longer one makes the record invalid).
fn raw_varint(buf: &[u8], at: &mut usize, max_bytes: usize) -> Option<u64> {
    let mut raw: u64 = 0;
    for i in 0..max_bytes {
        let b = *buf.get(*at)?;
        *at += 1;
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(raw);
        }
    }
    None
}

fn varlong(buf: &[u8], at: &mut usize) -> Option<i64> {
    let raw = raw_varint(buf, at, 10)?;
    Some((raw >> 1) as i64 ^ -((raw & 1) as i64))
}

/// Like Java's readVarint, bits beyond 32 are dropped.
fn varint(buf: &[u8], at: &mut usize) -> Option<i32> {
    let raw = raw_varint(buf, at, 5)? as u32;
    Some((raw >> 1) as i32 ^ -((raw & 1) as i32))
}

/// Skips a length-prefixed field; a negative length is null and takes no bytes.
fn skip_bytes(buf: &[u8], at: &mut usize) -> Option<i32> {
    let len = varint(buf, at)?;
    if len > 0 {
        *at = at
            .checked_add(len as usize)
            .filter(|end| *end <= buf.len())?;
    }
    Some(len)
}

/// Iterates over exactly `count` records of a records section; yields an error and stops
/// on the first malformed record, on fewer records than declared, or on bytes left over.
pub struct RecordWalker<'a> {
    buf: &'a [u8],
    at: usize,
    index: i32,
    count: i32,
    done: bool,
}

impl<'a> RecordWalker<'a> {
    pub fn new(records: &'a [u8], count: i32) -> Self {
        Self {
            buf: records,
            at: 0,
            index: 0,
            count,
            done: false,
        }
    }

    fn read(&mut self) -> Result<RawRecord<'a>, RecordError> {
        let index = self.index;
        let bad = |reason| RecordError::Structure { index, reason };
        let mut at = self.at;
        let size = varint(self.buf, &mut at).ok_or(bad("bad length varint"))?;
        if size < 0 {
            return Err(bad("negative record size"));
        }
        let end = at
            .checked_add(size as usize)
            .filter(|end| *end <= self.buf.len())
            .ok_or(bad("record size beyond the records"))?;
        let body = &self.buf[..end];
        let attributes = *body.get(at).ok_or(bad("no attributes"))?;
        at += 1;
        let timestamp_delta = varlong(body, &mut at).ok_or(bad("bad timestamp delta"))?;
        let offset_delta = varint(body, &mut at).ok_or(bad("bad offset delta"))?;
        let tail_start = at;
        let key_len = skip_bytes(body, &mut at).ok_or(bad("bad key"))?;
        skip_bytes(body, &mut at).ok_or(bad("bad value"))?;
        let headers = varint(body, &mut at).ok_or(bad("bad header count"))?;
        if headers < 0 {
            return Err(bad("negative header count")); // Kafka: DefaultRecord.readFrom
        }
        for _ in 0..headers {
            let key = skip_bytes(body, &mut at).ok_or(bad("bad header key"))?;
            if key < 0 {
                return Err(bad("null header key")); // Kafka: DefaultRecord.readHeaders
            }
            skip_bytes(body, &mut at).ok_or(bad("bad header value"))?;
        }
        if at != end {
            return Err(bad("record size does not match its fields"));
        }
        self.at = end;
        Ok(RawRecord {
            attributes,
            timestamp_delta,
            offset_delta,
            has_key: key_len >= 0,
            tail: &self.buf[tail_start..end],
        })
    }
}

impl<'a> Iterator for RecordWalker<'a> {
    type Item = Result<RawRecord<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.index >= self.count {
            self.done = true;
            return (self.at != self.buf.len()).then_some(Err(RecordError::BytesRemaining {
                declared: self.count,
            }));
        }
        if self.at >= self.buf.len() {
            self.done = true;
            return Some(Err(RecordError::PrematureEnd {
                declared: self.count,
                found: self.index,
            }));
        }
        let r = self.read();
        self.index += 1;
        if r.is_err() {
            self.done = true;
        }
        Some(r)
    }
}

fn varlong_len(v: i64) -> usize {
    let raw = ((v << 1) ^ (v >> 63)) as u64;
    (64 - raw.leading_zeros() as usize).max(1).div_ceil(7)
}

/// Appends `record` to `out` with new deltas; the key, value and headers are copied as
/// they are (Kafka: MemoryRecordsBuilder.appendWithOffset in LogValidator's rebuild).
pub fn write_record(
    out: &mut Vec<u8>,
    record: &RawRecord<'_>,
    timestamp_delta: i64,
    offset_delta: i32,
) {
    let body_len =
        1 + varlong_len(timestamp_delta) + varlong_len(i64::from(offset_delta)) + record.tail.len();
    put_varlong(out, body_len as i64);
    out.push(record.attributes);
    put_varlong(out, timestamp_delta);
    put_varlong(out, i64::from(offset_delta));
    out.extend_from_slice(record.tail);
}

/// Encodes one record as Kafka does; `headers` may repeat keys.
pub fn encode_record(
    out: &mut Vec<u8>,
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&[u8]>,
    value: &[u8],
    headers: &[(&[u8], &[u8])],
) {
    let mut tail = Vec::new();
    let field = |t: &mut Vec<u8>, b: Option<&[u8]>| match b {
        None => put_varlong(t, -1),
        Some(b) => {
            put_varlong(t, b.len() as i64);
            t.extend_from_slice(b);
        }
    };
    field(&mut tail, key);
    field(&mut tail, Some(value));
    put_varlong(&mut tail, headers.len() as i64);
    for (k, v) in headers {
        field(&mut tail, Some(k));
        field(&mut tail, Some(v));
    }
    let r = RawRecord {
        attributes: 0,
        timestamp_delta: 0,
        offset_delta: 0,
        has_key: key.is_some(),
        tail: &tail,
    };
    write_record(out, &r, timestamp_delta, offset_delta);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_value_sizes_are_read_from_the_record() {
        let mut b = Vec::new();
        encode_record(&mut b, 0, 0, Some(b"key"), b"value!", &[(b"h", b"1")]);
        encode_record(&mut b, 0, 1, None, b"", &[]);
        let sizes: Vec<(i32, i32)> = RecordWalker::new(&b, 2)
            .map(|r| r.unwrap().key_value_bytes())
            .collect();
        assert_eq!(sizes, [(3, 6), (-1, 0)]);
    }

    fn three() -> Vec<u8> {
        let mut b = Vec::new();
        encode_record(
            &mut b,
            0,
            0,
            Some(b"k0"),
            b"v0",
            &[(b"h", b"1"), (b"h", b"2")],
        );
        encode_record(&mut b, 5, 1, None, b"v1", &[]);
        encode_record(&mut b, 300_000, 2, Some(b""), &[9u8; 300], &[]);
        b
    }

    #[test]
    fn walks_records_by_their_lengths() {
        let b = three();
        let got: Vec<_> = RecordWalker::new(&b, 3).map(Result::unwrap).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(
            got.iter()
                .map(|r| (r.timestamp_delta, r.offset_delta, r.has_key))
                .collect::<Vec<_>>(),
            vec![(0, 0, true), (5, 1, false), (300_000, 2, true)]
        );
    }

    #[test]
    fn a_count_that_does_not_match_the_records_is_refused() {
        let b = three();
        let short: Vec<_> = RecordWalker::new(&b, 4).collect();
        assert_eq!(
            short.last().unwrap(),
            &Err(RecordError::PrematureEnd {
                declared: 4,
                found: 3
            })
        );
        let long: Vec<_> = RecordWalker::new(&b, 2).collect();
        assert_eq!(
            long.last().unwrap(),
            &Err(RecordError::BytesRemaining { declared: 2 })
        );
    }

    #[test]
    fn truncated_and_inconsistent_records_are_refused() {
        let b = three();
        let cut = &b[..b.len() - 10];
        assert!(matches!(
            RecordWalker::new(cut, 3).last().unwrap(),
            Err(RecordError::Structure { index: 2, .. })
        ));
        // A record whose length claims one byte more than its fields use.
        let mut r = Vec::new();
        encode_record(&mut r, 0, 0, None, b"v", &[]);
        r[0] += 2; // zigzag: length + 1
        r.push(0);
        assert!(matches!(
            RecordWalker::new(&r, 1).next().unwrap(),
            Err(RecordError::Structure { index: 0, .. })
        ));
        // A negative header count.
        let mut r = Vec::new();
        encode_record(&mut r, 0, 0, None, b"v", &[]);
        let last = r.len() - 1;
        r[last] = 1; // zigzag -1
        assert!(RecordWalker::new(&r, 1).next().unwrap().is_err());
    }

    #[test]
    fn rewritten_records_keep_their_bytes_and_take_new_deltas() {
        let b = three();
        let mut out = Vec::new();
        for (i, r) in RecordWalker::new(&b, 3).enumerate() {
            let r = r.unwrap();
            write_record(&mut out, &r, r.timestamp_delta - 5, 10 + i as i32);
        }
        let again: Vec<_> = RecordWalker::new(&out, 3).map(Result::unwrap).collect();
        let before: Vec<_> = RecordWalker::new(&b, 3).map(Result::unwrap).collect();
        for (a, o) in again.iter().zip(&before) {
            assert_eq!(a.tail, o.tail);
            assert_eq!(a.timestamp_delta, o.timestamp_delta - 5);
        }
        assert_eq!(again[2].offset_delta, 12);
    }

    #[test]
    fn varlong_lengths_match_the_encoder() {
        for v in [0i64, 1, -1, 63, 64, -65, 1 << 20, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            assert_eq!(out.len(), varlong_len(v), "{v}");
            let mut at = 0;
            assert_eq!(varlong(&out, &mut at), Some(v));
        }
    }
}
