//! Source logs written by hand into a stopped broker's data directory: what Kafka's log
//! cleaner leaves (batches with offset gaps, empty batches), which the broker, like a
//! client, cannot produce.

use std::path::Path;

use bytes::Bytes;
use kafka_protocol::records::Compression;

/// A v2 batch as Kafka's log cleaner leaves it: base offset `base`, lastOffsetDelta
/// `span - 1`, only the records at `keep` (none: an empty batch), values `c-<offset>`.
pub fn compacted_batch(base: i64, span: i32, keep: &[i64]) -> Vec<u8> {
    let offsets: Vec<i64> = if keep.is_empty() {
        vec![base]
    } else {
        keep.to_vec()
    };
    let records: Vec<_> = offsets
        .iter()
        .map(|&o| {
            kmirror_wire::records::record(
                o,
                1_700_000_000_000 + o,
                Some(Bytes::from(format!("key-{o}"))),
                Some(Bytes::from(format!("c-{o}"))),
            )
        })
        .collect();
    let mut raw = kmirror_wire::records::encode(&records, Compression::Lz4)
        .unwrap()
        .to_vec();
    raw[0..8].copy_from_slice(&base.to_be_bytes());
    raw[23..27].copy_from_slice(&(span - 1).to_be_bytes());
    if keep.is_empty() {
        raw.truncate(kmirror_wire::batch::HEADER_LEN);
        raw[57..61].copy_from_slice(&0i32.to_be_bytes());
        raw[21..23].copy_from_slice(&0i16.to_be_bytes()); // uncompressed, as the cleaner writes it
        let len = (raw.len() - 12) as i32;
        raw[8..12].copy_from_slice(&len.to_be_bytes());
    }
    let crc = crc32c::crc32c(&raw[21..]);
    raw[17..21].copy_from_slice(&crc.to_be_bytes());
    raw
}

/// Replaces partition 0's log of `topic` in a stopped broker's data dir with `batches`;
/// the broker rebuilds its indexes from the log at the next start.
pub fn write_log(data_dir: &Path, topic: &str, batches: &[Vec<u8>]) {
    let dir = data_dir.join(format!("{topic}-0"));
    for entry in std::fs::read_dir(&dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    std::fs::write(dir.join(format!("{:020}.log", 0)), batches.concat()).unwrap();
}
