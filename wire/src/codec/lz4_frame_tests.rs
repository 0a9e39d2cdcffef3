use std::io::{Read, Write};

use lz4::{BlockMode, BlockSize, ContentChecksum, EncoderBuilder};

use super::*;
use lz4::liblz4::BlockChecksum;

/// JSON-like text: compresses, so liblz4 stores compressed blocks.
fn text(len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while v.len() < len {
        v.extend_from_slice(format!("{{\"id\":{i},\"status\":\"ok\"}}").as_bytes());
        i += 1;
    }
    v.truncate(len);
    v
}

/// Random bytes: do not compress, so liblz4 stores uncompressed blocks.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A frame as liblz4 writes it with these settings.
fn frame(
    data: &[u8],
    size: BlockSize,
    mode: BlockMode,
    block_checksum: bool,
    content_checksum: bool,
) -> Vec<u8> {
    let mut e = EncoderBuilder::new()
        .block_size(size)
        .block_mode(mode)
        .block_checksum(if block_checksum {
            BlockChecksum::BlockChecksumEnabled
        } else {
            BlockChecksum::NoBlockChecksum
        })
        .checksum(if content_checksum {
            ContentChecksum::ChecksumEnabled
        } else {
            ContentChecksum::NoChecksum
        })
        .build(Vec::new())
        .unwrap();
    e.write_all(data).unwrap();
    let (out, result) = e.finish();
    result.unwrap();
    out
}

fn simple(data: &[u8], block_checksum: bool, content_checksum: bool) -> Vec<u8> {
    let mode = BlockMode::Independent;
    frame(
        data,
        BlockSize::Max64KB,
        mode,
        block_checksum,
        content_checksum,
    )
}

fn run(input: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut out = b"kept".to_vec();
    decompress(input, &mut out)?;
    assert_eq!(&out[..4], b"kept", "appends, never overwrites");
    Ok(out.split_off(4))
}

fn err(input: &[u8]) -> String {
    run(input).expect_err("refused").to_string()
}

/// Header length of a frame without a content size: magic, FLG, BD, HC.
const HEADER: usize = 7;

/// The header checksum byte for a descriptor (FLG..content size).
fn hc(descriptor: &[u8]) -> u8 {
    (xxh32(descriptor) >> 8) as u8
}

#[test]
fn frames_liblz4_writes_decompress_whatever_the_settings() {
    for data in [text(300_000), noise(200_000), Vec::new()] {
        for size in [BlockSize::Max64KB, BlockSize::Max256KB, BlockSize::Max4MB] {
            for (bc, cc) in [(false, false), (true, false), (false, true), (true, true)] {
                let f = frame(&data, size.clone(), BlockMode::Independent, bc, cc);
                assert_eq!(run(&f).unwrap(), data, "{size:?} block {bc} content {cc}");
            }
        }
    }
}

#[test]
fn a_corrupted_block_is_refused_when_the_frame_has_block_checksums() {
    // Compressed blocks (text) and uncompressed ones (noise), as Kafka checks both.
    for (data, stored_as_is) in [(text(200_000), false), (noise(200_000), true)] {
        let good = simple(&data, true, false);
        let word = le32(&good[HEADER..HEADER + 4]);
        assert_eq!(
            word & INCOMPRESSIBLE != 0,
            stored_as_is,
            "the intended block kind"
        );
        let mut damaged = good.clone();
        damaged[HEADER + 4 + 100] ^= 0x01;
        assert!(err(&damaged).contains("block checksum mismatch"));
        let mut bad_sum = good.clone();
        let sum_at = HEADER + 4 + (word & !INCOMPRESSIBLE) as usize;
        bad_sum[sum_at] ^= 0x01;
        assert!(err(&bad_sum).contains("block checksum mismatch"));
        assert_eq!(run(&good).unwrap(), data);
    }
}

#[test]
fn a_wrong_content_checksum_is_accepted_as_kafka_accepts_it() {
    for block_checksum in [false, true] {
        let data = text(150_000);
        let mut f = simple(&data, block_checksum, true);
        let last = f.len() - 1;
        f[last] ^= 0xff;
        assert_eq!(run(&f).unwrap(), data, "block checksums {block_checksum}");
    }
}

#[test]
fn dependent_blocks_are_refused_as_kafka_refuses_them() {
    let data = text(200_000);
    let linked = frame(&data, BlockSize::Max64KB, BlockMode::Linked, false, false);
    assert!(err(&linked).contains("dependent block stream is unsupported"));
}

#[test]
fn header_rules_follow_kafka() {
    let good = simple(&text(1000), false, false);
    // Changes one header byte and fixes the header checksum, so only the rule is hit.
    let with = |at: usize, value: u8| {
        let mut f = good.clone();
        f[at] = value;
        f[6] = hc(&f[4..6]);
        f
    };
    let (flg, bd) = (good[4], good[5]);
    assert!(err(&with(4, flg | 0b01)).contains("reserved bits"));
    assert!(err(&with(4, flg & 0x3f)).contains("version 0"));
    assert!(err(&with(5, bd | 0x01)).contains("reserved BD bits"));
    assert!(err(&with(5, bd | 0x80)).contains("reserved BD bits"));
    assert!(err(&with(5, 0x30)).contains("between 4 and 7"));
    let mut bad_hc = good.clone();
    bad_hc[6] ^= 0xff;
    assert!(err(&bad_hc).contains("descriptor corrupted"));
    let mut bad_magic = good.clone();
    bad_magic[0] = 0x50; // a skippable frame's magic
    assert!(err(&bad_magic).contains("invalid magic"));
}

/// A frame of one uncompressed block, built by hand with a content size field.
fn sized_frame(data: &[u8], declared: u64) -> Vec<u8> {
    let mut f = MAGIC.to_le_bytes().to_vec();
    f.extend_from_slice(&[0x40 | FLG_INDEPENDENT | FLG_CONTENT_SIZE, 0x40]);
    f.extend_from_slice(&declared.to_le_bytes());
    f.push(hc(&f[4..]));
    f.extend_from_slice(&(data.len() as u32 | INCOMPRESSIBLE).to_le_bytes());
    f.extend_from_slice(data);
    f.extend_from_slice(&0u32.to_le_bytes());
    f
}

#[test]
fn a_declared_content_size_must_match() {
    let data = b"a block stored as it is".to_vec();
    assert_eq!(run(&sized_frame(&data, data.len() as u64)).unwrap(), data);
    assert!(err(&sized_frame(&data, data.len() as u64 + 1)).contains("content size"));
}

#[test]
fn block_size_and_framing_errors() {
    let good = simple(&text(100_000), true, true);
    let mut oversized = good.clone();
    oversized[HEADER..HEADER + 4].copy_from_slice(&(65_537u32).to_le_bytes());
    assert!(err(&oversized).contains("exceeded max"));
    // Every cut, down to nothing, is an error (not a panic); a cut before the content
    // checksum too, as Kafka reads it.
    for len in 0..good.len() {
        assert!(run(&good[..len]).is_err(), "cut at {len}");
    }
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"after the end mark");
    assert_eq!(run(&trailing).unwrap(), text(100_000));
}

#[test]
fn a_damaged_compressed_block_without_checksums_is_an_error() {
    let data = text(100_000);
    let mut f = simple(&data, false, false);
    // A match offset far beyond the block start cannot be decoded.
    for b in &mut f[HEADER + 4..HEADER + 40] {
        *b = 0xff;
    }
    assert!(run(&f).is_err());
    assert_eq!(run(&simple(&data, false, false)).unwrap(), data);
}

#[test]
fn written_frames_are_read_by_liblz4_and_by_kafkas_rules() {
    for len in [
        0,
        1,
        1000,
        WRITE_BLOCK_BYTES,
        WRITE_BLOCK_BYTES + 1,
        300_000,
    ] {
        for (kind, data, acceleration) in [
            ("text", text(len), KAFKA_ACCELERATION),
            ("text", text(len), FAST_ACCELERATION),
            ("noise", noise(len), KAFKA_ACCELERATION),
            ("noise", noise(len), FAST_ACCELERATION),
        ] {
            let kind = format!("{kind} at acceleration {acceleration}");
            let mut written = Vec::new();
            compress(&data, acceleration, &mut written).unwrap();
            assert_eq!(run(&written).unwrap(), data, "{kind} {len}: read back here");
            let mut by_liblz4 = Vec::new();
            lz4::Decoder::new(&written[..])
                .unwrap()
                .read_to_end(&mut by_liblz4)
                .unwrap();
            assert_eq!(by_liblz4, data, "{kind} {len}: read back by liblz4");
            assert_eq!(written[4], 0x60, "FLG: version 1, independent blocks only");
            assert_eq!(written[5], 0x40, "BD: 64 KiB blocks");
            if kind.starts_with("text") && len >= 1000 {
                assert!(written.len() < data.len() / 2, "{len}: text compresses");
            }
            if kind.starts_with("noise") && len > 0 {
                let first = u32::from_le_bytes(written[7..11].try_into().unwrap());
                assert_ne!(first & INCOMPRESSIBLE, 0, "{len}: noise is stored as it is");
            }
        }
    }
}

/// Records' values as a producer's JSON: random ids between repeated field names.
fn json_records(len: usize) -> Vec<u8> {
    let mut noise = noise(len).into_iter();
    let mut v = Vec::with_capacity(len + 64);
    while v.len() < len {
        let id: String = noise.by_ref().take(8).map(|b| format!("{b:02x}")).collect();
        v.extend_from_slice(format!("{{\"id\":\"{id}\",\"status\":\"ok\"}}").as_bytes());
    }
    v.truncate(len);
    v
}

#[test]
fn the_fast_acceleration_trades_a_few_bytes_for_cpu() {
    let data = json_records(1 << 20);
    let (mut kafka, mut fast) = (Vec::new(), Vec::new());
    compress(&data, KAFKA_ACCELERATION, &mut kafka).unwrap();
    compress(&data, FAST_ACCELERATION, &mut fast).unwrap();
    assert_ne!(fast, kafka, "the acceleration was not applied");
    assert_eq!(run(&fast).unwrap(), data);
    assert!(
        fast.len() >= kafka.len() && fast.len() <= kafka.len() * 11 / 10,
        "{} bytes at acceleration {FAST_ACCELERATION}, {} at {KAFKA_ACCELERATION}",
        fast.len(),
        kafka.len()
    );
}
