//! A source log holding a pre-v2 message (magic 1), as a cluster keeps one that was written
//! under a `message.format.version` older than 0.11 and never rewritten. Kafka serves such
//! a log as it is, and a v2 batch cannot carry its records: the daemon mirrors what comes
//! before it, then stops that partition with an ERROR naming topic, partition, offset and
//! the magic, never skipping it and never fetching it in a silent loop; other topics keep
//! flowing. kmirror-broker cannot take a magic-1 message from a producer (it keeps
//! Kafka 4's rule), so the test writes one on the source's disk in place of a v2 batch of
//! the same size, in the same framing (offset, size, then the message), while the broker
//! runs; kcat (librdkafka) reads it from the broker as from Kafka. At Kafka 4.1 versions
//! and with `--emulate-kafka 2.8`.

mod support;

use std::time::{Duration, Instant};

use kmirror_wire::batch::Batches;
use support::topics::{admin, flow, wait_records};
use support::*;

/// CRC-32 (IEEE), which a magic-0/1 message carries (v2 batches carry CRC-32C).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One uncompressed magic-1 message at `offset`, `size` bytes in all with its offset and
/// size fields: offset | size | crc | magic 1 | attributes | timestamp | key -1 | value.
fn magic_1_message(offset: i64, size: usize) -> Vec<u8> {
    const FRAMING: usize = 8 + 4 + 4 + 1 + 1 + 8 + 4 + 4;
    let value = vec![b'o'; size - FRAMING];
    let mut body = vec![1u8, 0];
    body.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    body.extend_from_slice(&(-1i32).to_be_bytes());
    body.extend_from_slice(&(value.len() as i32).to_be_bytes());
    body.extend_from_slice(&value);
    let mut message = offset.to_be_bytes().to_vec();
    message.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    message.extend_from_slice(&crc32(&body).to_be_bytes());
    message.extend_from_slice(&body);
    assert_eq!(message.len(), size);
    message
}

/// Writes `topic` (one partition, three batches of five records) on `source`, then puts a
/// magic-1 message in place of its second batch; returns that batch's base offset, where
/// the daemon's Fetch finds the message, and its last, the message's own.
fn legacy_message_in_place_of_a_batch(source: &BrokerProcess, topic: &str) -> (i64, i64) {
    admin(&source.addr(), &["create", topic, "1"]);
    for round in ["a", "b", "c"] {
        admin(&source.addr(), &["produce", topic, round, "5"]);
    }
    let log = source
        .data_dir
        .join(format!("{topic}-0"))
        .join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&log).unwrap();
    let batches: Vec<(i64, usize)> = Batches::new(&bytes)
        .map(|b| b.map(|b| (b.base_offset(), b.size_bytes())).unwrap())
        .collect();
    assert!(batches.len() >= 3, "{topic}: {batches:?}");
    let (base, size) = batches[1];
    let last = batches[2].0 - 1;
    let at = batches[0].1;
    // A magic-1 message set names each message's own offset; one message standing for the
    // batch's offsets takes its last.
    bytes[at..at + size].copy_from_slice(&magic_1_message(last, size));
    std::fs::write(&log, &bytes).unwrap();
    (base, last)
}

fn pre_v2_message(broker_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), broker_args);
    let target = BrokerProcess::start(&dir.path().join("target"), broker_args);
    let (offset, last) = legacy_message_in_place_of_a_batch(&source, "legacy");
    // The broker serves the log as Kafka does: librdkafka reads the v2 batches and the
    // magic-1 message between them.
    let out = kcat()
        .args(["-b", &source.addr(), "-C", "-t", "legacy", "-e", "-q"])
        .args(["-f", "%o %s\n"])
        .output()
        .unwrap();
    let read = String::from_utf8_lossy(&out.stdout);
    let offsets: Vec<&str> = read.lines().filter_map(|l| l.split(' ').next()).collect();
    // The records before the message, the message, and the 15 - (last + 1) after it.
    let records = (offset + 1 + 15 - (last + 1)) as usize;
    assert!(
        out.status.success()
            && offsets.len() == records
            && offsets.contains(&last.to_string().as_str())
            && read.contains(&"o".repeat(8)),
        "kcat read: {read}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    admin(&source.addr(), &["create", "healthy", "1"]);
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        &flow("legacy|healthy"),
    );
    let daemon = DaemonProcess::start(&config);
    let stopped = || -> Vec<String> {
        let mut lines = daemon.log.lines_containing("Partition stopped");
        lines.retain(|l| l.contains("topic=legacy "));
        lines
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while stopped().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let lines = stopped();
    let line = lines
        .first()
        .unwrap_or_else(|| panic!("legacy not stopped:\n{}", daemon.log.tail(40)));
    assert!(
        line.contains("ERROR")
            && line.contains("partition=0")
            && line.contains(&format!("offset={offset}"))
            && line.contains("magic 1"),
        "{line}"
    );
    // The v2 batch before it is mirrored; nothing from it on.
    let got = wait_records(&target.addr(), "legacy", offset as usize, &daemon);
    assert_eq!(
        got["0"].as_array().map(Vec::len),
        Some(offset as usize),
        "only the batch before the message: {got}"
    );
    admin(&source.addr(), &["produce", "healthy", "h", "7"]);
    wait_records(&target.addr(), "healthy", 7, &daemon);
    assert_eq!(
        stopped().len(),
        1,
        "reported once:\n{}",
        daemon.log.tail(20)
    );
}

#[test]
fn a_pre_v2_source_message_stops_its_partition_with_an_error_at_kafka_4_1_versions() {
    pre_v2_message(&[]);
}

#[test]
fn a_pre_v2_source_message_stops_its_partition_with_an_error_emulating_kafka_2_8() {
    pre_v2_message(&["--emulate-kafka", "2.8"]);
}
