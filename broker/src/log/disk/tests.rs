//! Tests of the disk log against real files in temporary directories.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use super::*;
use crate::log::test_support::{base_offsets, batch, first};

const NOW: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        segment_ms: 3_600_000,
        retention_ms: -1,
        retention_bytes: -1,
        index_interval_bytes: 256,
    }
}

fn open(dir: &Path, config: LogConfig) -> DiskLog {
    DiskLog::open(dir, config, NOW).unwrap()
}

/// Appends `n` batches of `count` records each, one append per batch.
fn fill(log: &mut DiskLog, n: usize, count: i32, value_len: usize) {
    for i in 0..n {
        let ts = NOW + i as i64;
        log.append(&mut batch(count, ts, value_len), 1, NOW)
            .unwrap();
    }
}

fn log_file(log: &DiskLog, base: i64, ext: &str) -> PathBuf {
    segment::segment_path(log.dir(), base, ext)
}

/// Reads everything from `from` to the log end, fetch by fetch.
fn read_all(log: &DiskLog, from: i64, max_bytes: usize) -> Vec<i64> {
    let mut offset = from;
    let mut bases = Vec::new();
    while offset < log.log_end_offset() {
        let got = log.read(offset, max_bytes).unwrap();
        assert!(!got.is_empty(), "empty read at {offset}");
        for b in kmirror_wire::batch::Batches::new(&got) {
            let b = b.unwrap();
            b.verify_crc().unwrap();
            bases.push(b.base_offset());
            offset = b.next_offset();
        }
    }
    bases
}

#[test]
fn assigns_offsets_and_reads_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert!(log.read(0, 100).unwrap().is_empty());

    let mut two = batch(3, NOW, 10);
    two.extend(batch(2, NOW + 5, 10));
    let info = log.append(&mut two, 7, NOW).unwrap();
    assert_eq!(
        info,
        AppendInfo {
            base_offset: 0,
            last_offset: 4,
            max_timestamp: NOW + 5 + 1
        }
    );
    assert_eq!(
        base_offsets(&two),
        vec![0, 3],
        "offsets patched in the caller's buffer"
    );
    let info = log.append(&mut batch(4, NOW + 9, 10), 8, NOW).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (5, 8));
    assert_eq!(log.log_end_offset(), 9);

    // At a base offset, inside a batch, at the last offset.
    for (offset, base) in [(0, 0), (2, 0), (3, 3), (4, 3), (5, 5), (8, 5)] {
        let got = log.read(offset, 1).unwrap();
        let b = first(&got);
        assert_eq!(b.base_offset(), base, "read at {offset}");
        assert_eq!(got.len(), b.size_bytes());
        b.verify_crc().unwrap();
    }
    assert_eq!(first(&log.read(0, 1).unwrap()).partition_leader_epoch(), 7);
    assert_eq!(first(&log.read(5, 1).unwrap()).partition_leader_epoch(), 8);
    assert!(log.read(9, 1000).unwrap().is_empty(), "at the log end");
    for bad in [-1, 10] {
        match log.read(bad, 1000) {
            Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: 0,
                log_end_offset: 9,
            }) => {
                assert_eq!(offset, bad)
            }
            other => panic!("read at {bad}: {other:?}"),
        }
    }
}

#[test]
fn max_bytes_limits_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    fill(&mut log, 10, 2, 100);
    let one = log.read(0, 1).unwrap().len();
    assert_eq!(log.read(0, 0).unwrap().len(), one, "at least one batch");
    assert_eq!(base_offsets(&log.read(0, one * 3).unwrap()), vec![0, 2, 4]);
    assert_eq!(base_offsets(&log.read(3, one * 3 - 1).unwrap()), vec![2, 4]);
    assert_eq!(log.read(0, 1 << 20).unwrap().len(), one * 10);
    assert_eq!(log.size_bytes(), (one * 10) as u64);
}

#[test]
fn rejects_badly_framed_appends_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    let mut b = batch(2, NOW, 10);
    b.truncate(b.len() - 1);
    assert!(matches!(
        log.append(&mut b, 0, NOW),
        Err(LogError::Corrupt(_))
    ));
    let mut b = batch(2, NOW, 10);
    b[16] = 1;
    assert!(matches!(
        log.append(&mut b, 0, NOW),
        Err(LogError::Corrupt(_))
    ));
    assert_eq!((log.log_end_offset(), log.size_bytes()), (0, 0));
    let info = log.append(&mut [], 0, NOW).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, -1));
}

#[test]
fn rolls_by_size_and_time_and_reads_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(1, 0, 200).len() as u64;
    let cfg = LogConfig {
        segment_bytes: size * 3,
        ..config()
    };
    let mut log = open(dir.path(), cfg);
    fill(&mut log, 7, 1, 200);
    assert_eq!(log.segment_base_offsets(), vec![0, 3, 6]);
    assert!(log_file(&log, 3, "log").exists());
    assert!(
        log_file(&log, 0, "index").exists(),
        "indexes written at roll"
    );
    // A read at the end of a rolled segment moves on; max_bytes never crosses a segment.
    assert_eq!(base_offsets(&log.read(2, 1 << 20).unwrap()), vec![2]);
    assert_eq!(base_offsets(&log.read(3, 1 << 20).unwrap()), vec![3, 4, 5]);
    assert_eq!(read_all(&log, 0, 1 << 20), (0..7).collect::<Vec<_>>());

    // By time: the active segment is rolled once its first append is segment.ms old.
    let later = NOW + cfg.segment_ms;
    log.append(&mut batch(1, later, 1), 0, later - 1).unwrap();
    assert_eq!(log.segment_count(), 3);
    log.append(&mut batch(1, later, 1), 0, later).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 3, 6, 8]);
    assert_eq!(read_all(&log, 0, 100), (0..9).collect::<Vec<_>>());
}

#[test]
fn index_lookups_find_the_right_batch_in_a_large_log() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        index_interval_bytes: 300,
        segment_bytes: 256 << 10,
        ..config()
    };
    let mut log = open(dir.path(), cfg);
    // 10k batches of 1..=3 records, of varying sizes.
    let mut starts = Vec::new();
    for i in 0..10_000usize {
        let count = 1 + (i % 3) as i32;
        let info = log
            .append(&mut batch(count, NOW + i as i64, 7 * (i % 13)), 0, NOW)
            .unwrap();
        starts.push(info.base_offset);
    }
    assert!(log.segment_count() > 3);
    assert!(log.segments.values().next().unwrap().offset_index.len() > 100);
    let check = |log: &DiskLog| {
        let leo = log.log_end_offset();
        let mut offset = 0;
        while offset < leo {
            let got = log.read(offset, 1).unwrap();
            let b = first(&got);
            let want = starts[starts.partition_point(|&s| s <= offset) - 1];
            assert_eq!(b.base_offset(), want, "offset {offset}");
            assert!(b.base_offset() <= offset && offset <= b.last_offset());
            offset += 7;
        }
    };
    check(&log);
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), cfg);
    check(&log);
    assert_eq!(read_all(&log, 0, 64 << 10).len(), 10_000);
}

#[test]
fn reopen_after_close_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 2000,
        ..config()
    };
    let mut log = open(dir.path(), cfg);
    fill(&mut log, 30, 3, 50);
    let before = (
        log.log_end_offset(),
        log.size_bytes(),
        log.segment_base_offsets(),
    );
    let active_index = log.active().offset_index.clone();
    log.close().unwrap();
    assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    drop(log);

    let mut log = open(dir.path(), cfg);
    assert!(
        !dir.path().join(CLEAN_SHUTDOWN_FILE).exists(),
        "marker removed on open"
    );
    assert_eq!(
        (
            log.log_end_offset(),
            log.size_bytes(),
            log.segment_base_offsets()
        ),
        before
    );
    assert_eq!(log.active().offset_index, active_index);
    assert_eq!(read_all(&log, 0, 500).len(), 30);
    let info = log.append(&mut batch(1, NOW, 1), 0, NOW).unwrap();
    assert_eq!(info.base_offset, 90);
}

#[test]
fn reopen_without_close_recovers_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 2000,
        ..config()
    };
    let mut log = open(dir.path(), cfg);
    fill(&mut log, 30, 3, 50);
    let before = (
        log.log_end_offset(),
        log.size_bytes(),
        log.segment_base_offsets(),
    );
    let max_ts = log.max_timestamp().unwrap().unwrap().0;
    drop(log); // a crash: no close
    let log = open(dir.path(), cfg);
    assert_eq!(
        (
            log.log_end_offset(),
            log.size_bytes(),
            log.segment_base_offsets()
        ),
        before
    );
    assert_eq!(log.max_timestamp().unwrap().unwrap().0, max_ts);
    assert_eq!(read_all(&log, 0, 500).len(), 30);
}

/// Damages the active segment's file with `damage`, reopens without a clean shutdown, and
/// checks that the log ends at its last whole valid batch and continues from there.
fn check_tail_recovery(damage: impl FnOnce(&std::fs::File, u64, u64)) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    fill(&mut log, 5, 2, 40);
    let good_len = log.size_bytes();
    log.append(&mut batch(2, NOW, 40), 0, NOW).unwrap();
    let path = log_file(&log, 0, "log");
    drop(log);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let full_len = f.metadata().unwrap().len();
    damage(&f, good_len, full_len);
    let damaged_len = f.metadata().unwrap().len();
    drop(f);

    let mut log = open(dir.path(), config());
    assert_eq!(log.truncated_bytes_at_open(), damaged_len - good_len);
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(log.size_bytes(), good_len);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        good_len,
        "file truncated"
    );
    assert_eq!(read_all(&log, 0, 1 << 20), vec![0, 2, 4, 6, 8]);
    let info = log.append(&mut batch(1, NOW, 1), 0, NOW).unwrap();
    assert_eq!(info.base_offset, 10);
    assert_eq!(read_all(&log, 8, 1 << 20), vec![8, 10]);
}

#[test]
fn torn_last_batch_is_cut_off() {
    check_tail_recovery(|f, good, full| f.set_len(good + (full - good) / 2).unwrap());
}

#[test]
fn garbage_after_the_last_batch_is_cut_off() {
    check_tail_recovery(|f, good, full| {
        f.set_len(good).unwrap();
        f.write_all_at(&vec![0xab; (full - good) as usize + 17], good)
            .unwrap();
    });
}

#[test]
fn a_flipped_byte_in_the_last_batch_is_cut_off() {
    check_tail_recovery(|f, _good, full| {
        let mut b = [0u8];
        f.read_exact_at(&mut b, full - 3).unwrap();
        f.write_all_at(&[b[0] ^ 0x40], full - 3).unwrap();
    });
}

#[test]
fn missing_or_corrupt_index_files_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 8000,
        index_interval_bytes: 100,
        ..config()
    };
    let mut log = open(dir.path(), cfg);
    fill(&mut log, 200, 2, 30);
    log.close().unwrap();
    let bases = log.segment_base_offsets();
    let indexes: Vec<_> = log
        .segments
        .values()
        .map(|s| s.offset_index.clone())
        .collect();
    let times: Vec<_> = log
        .segments
        .values()
        .map(|s| s.time_index.clone())
        .collect();
    drop(log);
    std::fs::remove_file(segment::segment_path(dir.path(), bases[0], "index")).unwrap();
    std::fs::remove_file(segment::segment_path(dir.path(), bases[1], "timeindex")).unwrap();
    std::fs::write(
        segment::segment_path(dir.path(), bases[2], "index"),
        b"garbage",
    )
    .unwrap();

    let log = open(dir.path(), cfg);
    let again: Vec<_> = log
        .segments
        .values()
        .map(|s| s.offset_index.clone())
        .collect();
    let again_times: Vec<_> = log
        .segments
        .values()
        .map(|s| s.time_index.clone())
        .collect();
    assert_eq!(again, indexes);
    assert_eq!(again_times, times);
    assert!(
        segment::segment_path(dir.path(), bases[0], "index").exists(),
        "rewritten"
    );
    for offset in (0..400).step_by(3) {
        let got = log.read(offset, 1).unwrap();
        assert_eq!(first(&got).base_offset(), offset - offset % 2);
    }
}

#[test]
fn retention_by_time_deletes_old_segments_and_can_empty_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(1, 0, 100).len() as u64;
    let cfg = LogConfig {
        segment_bytes: size * 2,
        retention_ms: 1000,
        ..config()
    };
    let mut log = open(dir.path(), cfg);
    for i in 0..6 {
        log.append(&mut batch(1, NOW + i * 100, 100), 0, NOW)
            .unwrap();
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 2, 4]);
    // Segment 0 ends at NOW+100, segment 2 at NOW+300, segment 4 at NOW+500.
    assert_eq!(log.apply_retention(NOW + 1000).unwrap(), 0);
    assert_eq!(log.apply_retention(NOW + 1101).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 2);
    assert!(!log_file(&log, 0, "log").exists());
    assert!(matches!(
        log.read(1, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log, 2, 1 << 20), vec![2, 3, 4, 5]);
    // Everything expired, including the active segment: rolled, then deleted.
    assert_eq!(log.apply_retention(NOW + 10_000).unwrap(), 2);
    assert_eq!(log.segment_base_offsets(), vec![6]);
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.size_bytes()
        ),
        (6, 6, 0)
    );
    assert!(log.read(6, 100).unwrap().is_empty());
    drop(log);
    let mut log = open(dir.path(), cfg);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (6, 6));
    assert_eq!(
        log.append(&mut batch(1, NOW, 1), 0, NOW)
            .unwrap()
            .base_offset,
        6
    );
}

#[test]
fn retention_by_bytes_keeps_at_least_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(1, 0, 100).len() as u64;
    let cfg = LogConfig {
        segment_bytes: size * 2,
        ..config()
    };
    let mut log = open(dir.path(), cfg);
    fill(&mut log, 7, 1, 100);
    assert_eq!(log.segment_base_offsets(), vec![0, 2, 4, 6]);
    log.set_config(LogConfig {
        retention_bytes: (size * 3) as i64,
        ..cfg
    });
    assert_eq!(log.apply_retention(NOW).unwrap(), 2);
    assert_eq!(log.segment_base_offsets(), vec![4, 6]);
    assert_eq!(log.log_start_offset(), 4);
    assert_eq!(log.size_bytes(), size * 3);
    log.set_config(LogConfig {
        retention_bytes: 0,
        ..cfg
    });
    assert_eq!(
        log.apply_retention(NOW).unwrap(),
        1,
        "never the active segment"
    );
    assert_eq!(log.segment_base_offsets(), vec![6]);
}

#[test]
fn delete_records_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(2, 0, 50).len() as u64;
    let cfg = LogConfig {
        segment_bytes: size * 2,
        ..config()
    };
    let mut log = open(dir.path(), cfg);
    fill(&mut log, 6, 2, 50);
    assert_eq!(log.segment_base_offsets(), vec![0, 4, 8]);
    assert_eq!(log.delete_records_before(5).unwrap(), 5);
    assert_eq!(log.segment_base_offsets(), vec![4, 8]);
    assert!(matches!(
        log.read(4, 10),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        first(&log.read(5, 10).unwrap()).base_offset(),
        4,
        "whole batch"
    );
    assert_eq!(
        log.delete_records_before(3).unwrap(),
        5,
        "below the start: no-op"
    );
    assert!(log.delete_records_before(-2).is_err(), "negative");
    assert!(log.delete_records_before(13).is_err(), "past the end");
    let mut seen = Vec::new();
    log.scan(0, &mut |b| {
        seen.push(b.base_offset());
        true
    })
    .unwrap();
    assert_eq!(seen, vec![4, 6, 8, 10]);
    drop(log);
    let mut log = open(dir.path(), cfg);
    assert_eq!(log.log_start_offset(), 5);
    assert_eq!(log.delete_records_before(12).unwrap(), 12);
    assert_eq!(
        log.segment_base_offsets(),
        vec![8],
        "the active segment stays"
    );
    assert!(log.read(12, 10).unwrap().is_empty());
}

#[test]
fn finds_batches_by_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 3000,
        index_interval_bytes: 200,
        ..config()
    };
    let mut log = open(dir.path(), cfg);
    // Batch i (2 records) has max timestamp 1000 + 10 i + 1, except a late batch 40
    // with a far-future timestamp and batch 41 with an old one.
    for i in 0..100i64 {
        let ts = match i {
            40 => 900_000,
            41 => 5,
            _ => 1000 + 10 * i,
        };
        log.append(&mut batch(2, ts, 30), 0, NOW).unwrap();
    }
    assert!(log.segment_count() > 2);
    let check = |log: &DiskLog| {
        assert!(log.find_by_timestamp(900_002, 0).unwrap().is_none());
        assert_eq!(log.find_by_timestamp(0, 0).unwrap().unwrap().base_offset, 0);
        assert_eq!(
            log.find_by_timestamp(1001, 0).unwrap().unwrap().base_offset,
            0
        );
        assert_eq!(
            log.find_by_timestamp(1002, 0).unwrap().unwrap().base_offset,
            2
        );
        assert_eq!(
            log.find_by_timestamp(1500, 0).unwrap().unwrap().base_offset,
            80
        );
        assert_eq!(
            log.find_by_timestamp(1995, 0).unwrap().unwrap().base_offset,
            80
        );
        let found = log.find_by_timestamp(1401, 0).unwrap().unwrap();
        assert_eq!(found.base_offset, 80, "batch 40 has the late timestamp");
        assert_eq!(first(&found.bytes).base_offset(), 80);
        let (ts, batch) = log.max_timestamp().unwrap().unwrap();
        assert_eq!((ts, batch.base_offset), (900_001, 80));
        for i in [3i64, 17, 39, 42, 55, 99] {
            let want = 1000 + 10 * i;
            let expected = if i < 40 { 2 * i } else { 80 };
            assert_eq!(
                log.find_by_timestamp(want, 0).unwrap().unwrap().base_offset,
                expected
            );
        }
    };
    check(&log);
    log.close().unwrap();
    drop(log);
    let mut log = open(dir.path(), cfg);
    check(&log);
    log.delete_records_before(100).unwrap();
    assert_eq!(
        log.find_by_timestamp(0, 0).unwrap().unwrap().base_offset,
        100
    );
    // The batch with the largest timestamp is gone; the next largest is the last batch.
    let (ts, batch) = log.max_timestamp().unwrap().unwrap();
    assert_eq!((ts, batch.base_offset), (1000 + 10 * 99 + 1, 198));
}

#[test]
fn a_failed_write_leaves_file_and_log_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    fill(&mut log, 3, 2, 40);
    let len = log.size_bytes();
    let path = log_file(&log, 0, "log");
    let mut b = batch(5, NOW, 40);
    log.active_mut().fail_next_write = Some(b.len() / 2);
    match log.append(&mut b, 0, NOW) {
        Err(LogError::Io { path: p, .. }) => assert_eq!(p, path.display().to_string()),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        len,
        "half-write cut back"
    );
    assert_eq!((log.log_end_offset(), log.size_bytes()), (6, len));
    assert!(log.read(6, 100).unwrap().is_empty());
    let info = log.append(&mut batch(1, NOW, 1), 0, NOW).unwrap();
    assert_eq!(info.base_offset, 6);
    assert_eq!(read_all(&log, 0, 1 << 20), vec![0, 2, 4, 6]);
}

#[test]
fn sync_handle_flush_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topic-0");
    let mut log = open(&path, config());
    fill(&mut log, 2, 1, 10);
    let handle = log.sync_handle().unwrap();
    handle.sync_data().unwrap();
    log.flush().unwrap();
    Box::new(log).delete().unwrap();
    assert!(!path.exists());
}
#[test]
fn a_clean_marker_does_not_hide_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    fill(&mut log, 4, 2, 40);
    let good_len = log.size_bytes();
    log.close().unwrap();
    let path = log_file(&log, 0, "log");
    drop(log);
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&batch(2, NOW, 40)[..50], good_len).unwrap();
    drop(f);
    let log = open(dir.path(), config());
    assert_eq!(log.truncated_bytes_at_open(), 50);
    assert_eq!((log.log_end_offset(), log.size_bytes()), (8, good_len));
}

#[test]
fn an_unclean_open_right_after_a_roll_keeps_the_empty_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(1, 0, 10).len() as u64;
    let cfg = LogConfig {
        segment_bytes: size,
        ..config()
    };
    let mut log = open(dir.path(), cfg);
    fill(&mut log, 3, 1, 10);
    // Roll by time with nothing appended yet to the new segment: simulate by retention.
    log.set_config(LogConfig {
        retention_ms: 0,
        ..cfg
    });
    assert_eq!(log.apply_retention(NOW + 1_000_000).unwrap(), 3);
    drop(log);
    let mut log = open(dir.path(), cfg);
    assert_eq!(log.segment_base_offsets(), vec![3]);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (3, 3));
    assert_eq!(
        log.append(&mut batch(1, NOW, 1), 0, NOW)
            .unwrap()
            .base_offset,
        3
    );
}
