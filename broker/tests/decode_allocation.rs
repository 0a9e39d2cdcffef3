//! Decoding reserves memory for what a frame holds, not for what it claims: an array, a
//! record batch or a record's headers announcing 2^31-1 elements in a frame of 1 MiB must
//! not reserve more than about that 1 MiB (the vendored kafka-protocol patch, see
//! vendor/kafka-protocol/KMIRROR-PATCH.md). Each element takes a byte or more on the wire
//! but 50-130 bytes in memory, so a bound in elements is not enough: a 100 MiB frame would
//! still reserve 13 GB and abort the broker where memory is limited.
//!
//! Its own test binary, because it installs an allocator that records the largest
//! allocation made on the calling thread while [`largest_allocation_in`] runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{AlterUserScramCredentialsRequest, MetadataRequest};
use kafka_protocol::protocol::Decodable;
use kafka_protocol::records::RecordBatchDecoder;

struct Watching;

thread_local! {
    /// The largest allocation seen on this thread, while watching.
    static LARGEST_BYTES: Cell<Option<usize>> = const { Cell::new(None) };
}

fn note(size: usize) {
    let _ = LARGEST_BYTES.try_with(|l| {
        if let Some(largest) = l.get() {
            l.set(Some(largest.max(size)));
        }
    });
}

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// The size of the largest allocation `f` makes on this thread.
fn largest_allocation_in(f: impl FnOnce()) -> usize {
    LARGEST_BYTES.with(|l| l.set(Some(0)));
    f();
    LARGEST_BYTES.with(|l| l.replace(None)).expect("watching")
}

/// Bytes after the claim: enough that "at most one element per byte left" is still far
/// too much memory.
const FILLER_BYTES: usize = 1 << 20;

fn with_filler(head: &[u8]) -> Bytes {
    let mut b = BytesMut::from(head);
    b.put_bytes(0, FILLER_BYTES);
    b.freeze()
}

/// Decodes `input` with `decode`, which must fail, and says what went wrong if it
/// succeeded or reserved more than `input`'s size.
fn refused_within_its_size(
    what: &str,
    input: Bytes,
    decode: impl FnOnce(&mut Bytes) -> bool,
) -> Option<String> {
    let size = input.len();
    let mut buf = input;
    let mut failed = false;
    let largest = largest_allocation_in(|| failed = decode(&mut buf));
    if !failed {
        return Some(format!(
            "{what}: decoded a frame that lies about its length"
        ));
    }
    (largest > size).then(|| {
        format!("{what}: reserved {largest} bytes in one allocation for a frame of {size} bytes")
    })
}

/// A record batch v2 around `records`, claiming `record_count` records, CRC included.
fn batch(record_count: i32, records: &[u8]) -> Bytes {
    let mut after_crc = BytesMut::new();
    after_crc.put_i16(0); // attributes: no compression
    after_crc.put_i32(0); // last offset delta
    after_crc.put_i64(0); // base timestamp
    after_crc.put_i64(0); // max timestamp
    after_crc.put_i64(-1); // producer id
    after_crc.put_i16(-1); // producer epoch
    after_crc.put_i32(-1); // base sequence
    after_crc.put_i32(record_count);
    after_crc.put_slice(records);
    let mut b = BytesMut::new();
    b.put_i64(0); // base offset
    b.put_i32((4 + 1 + 4 + after_crc.len()) as i32); // batch length
    b.put_i32(-1); // partition leader epoch
    b.put_i8(2); // magic
    b.put_u32(crc32c::crc32c(&after_crc));
    b.put_slice(&after_crc);
    b.freeze()
}

#[test]
fn a_claimed_element_count_reserves_no_more_than_the_bytes_that_follow() {
    let mut wrong = Vec::new();
    // Metadata v0: topics is an INT32-counted array; 2^31-1 topics, the first one's name
    // of length -2 (an error), then 1 MiB.
    let mut head = i32::MAX.to_be_bytes().to_vec();
    head.extend_from_slice(&(-2i16).to_be_bytes());
    wrong.extend(refused_within_its_size(
        "Metadata v0 topics",
        with_filler(&head),
        |b| MetadataRequest::decode(b, 0).is_err(),
    ));

    // AlterUserScramCredentials v0 (flexible): no deletions, then a compact array of
    // 2^32-2 upsertions whose first name is null.
    let head = [0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    wrong.extend(refused_within_its_size(
        "AlterUserScramCredentials upsertions",
        with_filler(&head),
        |b| AlterUserScramCredentialsRequest::decode(b, 0).is_err(),
    ));

    // A record batch claiming 2^31-1 records; the first one's size is -1.
    let input = batch(i32::MAX, &with_filler(&[0x01]));
    wrong.extend(refused_within_its_size(
        "record batch records",
        input,
        |b| RecordBatchDecoder::decode(b).is_err(),
    ));

    // One record claiming 2^31-1 headers; the first key's length is -3.
    let mut record = vec![0x00, 0x00, 0x00, 0x01, 0x01]; // attributes, deltas, no key/value
    record.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0x0f, 0x05]); // headers, key length
    record.resize(record.len() + FILLER_BYTES, 0);
    let mut records = Vec::new();
    let mut size = (record.len() as u64) << 1; // zigzag varint of a positive i32
    while size >= 0x80 {
        records.push((size as u8) | 0x80);
        size >>= 7;
    }
    records.push(size as u8);
    records.extend_from_slice(&record);
    wrong.extend(refused_within_its_size(
        "record headers",
        batch(1, &records),
        |b| RecordBatchDecoder::decode(b).is_err(),
    ));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn arrays_that_hold_what_they_claim_still_decode() {
    let req = MetadataRequest::default().with_topics(Some(
        (0..1000)
            .map(|i| {
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(kafka_protocol::messages::TopicName(
                        kafka_protocol::protocol::StrBytes::from_string(format!("t{i}")),
                    )))
            })
            .collect(),
    ));
    for version in [0, 12] {
        let mut buf = BytesMut::new();
        kafka_protocol::protocol::Encodable::encode(&req, &mut buf, version).unwrap();
        let back = MetadataRequest::decode(&mut buf.freeze(), version).unwrap();
        assert_eq!(back.topics, req.topics, "v{version}");
    }
}
