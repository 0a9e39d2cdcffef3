//! Benchmark data shared by the broker and daemon benchmarks: lz4 batches of JSON-like
//! records (random ids and repeated field names; lz4 ratio about 2), each with a key and,
//! optionally, a header.
#![allow(dead_code)]

use bytes::Bytes;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record};

/// One lz4 batch of `count` records of `record_bytes` bytes each.
pub fn lz4_batch(seed: u64, count: usize, record_bytes: usize, with_header: bool) -> Bytes {
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let records: Vec<Record> = (0..count as i64)
        .map(|i| {
            let mut value = String::with_capacity(record_bytes + 64);
            while value.len() < record_bytes {
                value.push_str(&format!(
                    "{{\"id\":\"{:016x}\",\"status\":\"ok\",\"n\":{}}}",
                    next(),
                    next() % 1000
                ));
            }
            value.truncate(record_bytes);
            let key = Some(Bytes::from(format!("key-{}", next() % 100_000)));
            let mut r = kmirror_wire::records::record(
                i,
                1_700_000_000_000 + i,
                key,
                Some(Bytes::from(value)),
            );
            if with_header {
                r.headers.insert(
                    StrBytes::from_static_str("trace"),
                    Some(Bytes::from(format!("{:x}", next()))),
                );
            }
            r
        })
        .collect();
    kmirror_wire::records::encode(&records, Compression::Lz4).expect("lz4 batch encodes")
}
