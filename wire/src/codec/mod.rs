//! The codecs of a batch's records section, shared by the broker (Produce validation, a
//! topic's `compression.type`) and the daemon (merged and rebuilt batches): decompress into
//! a buffer the caller reuses (no allocation per record, and none per batch once the
//! buffer has grown), and compress raw records bytes.
//!
//! Decompression uses the codec crates kafka-protocol uses (lz4 frames read as Kafka reads
//! them by [`lz4_frame`], gzip, xerial-framed or raw snappy, zstd) directly, because
//! kafka-protocol's `Decompressor` copies into a fresh buffer for every batch. Compression
//! writes gzip and zstd with those crates too, at the level [`Effort`] asks for
//! (kafka-protocol's `Compressor`s have one fixed level and copy the input and the output
//! once more); snappy goes through kafka-protocol's; lz4 is [`lz4_frame::compress`]:
//! kafka-protocol writes LZ4 HC frames with block and content checksums, several times
//! slower to write and to read than the fast-level frames without checksums Kafka's Java
//! client and librdkafka write. Nothing here parses records; see [`crate::walk`].

pub mod lz4_frame;

use std::io::{Read, Write};

use bytes::{BufMut, BytesMut};
use kafka_protocol::compression::{self as cmpr, Compressor};

/// Codec ids of the batch attributes.
pub const NONE: i16 = 0;
pub const GZIP: i16 = 1;
pub const SNAPPY: i16 = 2;
pub const LZ4: i16 = 3;
pub const ZSTD: i16 = 4;

/// The most one batch may decompress to (kafka-protocol's bound, see
/// vendor/kafka-protocol/KMIRROR-PATCH.md). Kafka has no such bound; a batch beyond it is
/// refused rather than allowed to exhaust memory.
pub const MAX_DECOMPRESSED_BYTES: usize = cmpr::MAX_DECOMPRESSED_BYTES as usize;

/// Why a records section could not be (de)compressed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("unknown compression codec {0}")]
    UnknownCodec(i16),
    /// The compressed stream ended early (Kafka: "premature EOF", INVALID_RECORD).
    #[error("the compressed records end early: {0}")]
    Truncated(String),
    #[error("cannot decompress the records: {0}")]
    Corrupt(String),
    #[error("the records decompress to more than {MAX_DECOMPRESSED_BYTES} bytes")]
    TooLarge,
    #[error("cannot compress the records: {0}")]
    Compress(String),
}

impl From<std::io::Error> for CodecError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            CodecError::Truncated(e.to_string())
        } else {
            CodecError::Corrupt(e.to_string())
        }
    }
}

/// The codec a topic's `compression.type` asks for; `producer` keeps the batch's codec
/// `source`. Kafka: BrokerCompressionType.targetCompression.
pub fn target(compression_type: &str, source: i16) -> i16 {
    match compression_type {
        "uncompressed" => NONE,
        "gzip" => GZIP,
        "snappy" => SNAPPY,
        "lz4" => LZ4,
        "zstd" => ZSTD,
        _ => source,
    }
}

fn read_capped(reader: impl Read, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let start = out.len();
    reader
        .take(MAX_DECOMPRESSED_BYTES as u64 + 1)
        .read_to_end(out)?;
    if out.len() - start > MAX_DECOMPRESSED_BYTES {
        return Err(CodecError::TooLarge);
    }
    Ok(())
}

const SNAPPY_XERIAL_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

/// The most a raw snappy block of `block_bytes` can decompress to. Every element of the
/// format writes at most 64/3 bytes per byte it takes (a literal writes its own bytes; a
/// copy of at most 64 bytes takes 2, 3 or 5 bytes, writing at most 11 with 2), and a
/// block must decompress to exactly the length it claims.
fn snappy_max_len(block_bytes: usize) -> usize {
    block_bytes.saturating_mul(64).div_ceil(3)
}

fn snappy_block(block: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    let len = snap::raw::decompress_len(block).map_err(|e| CodecError::Corrupt(e.to_string()))?;
    let start = out.len();
    // Refused before the output is zero-filled: 69 bytes must not cost a 127 MiB memset.
    if len > snappy_max_len(block.len()) {
        return Err(CodecError::Corrupt(format!(
            "a snappy block of {} bytes claims {len} bytes",
            block.len()
        )));
    }
    if start + len > MAX_DECOMPRESSED_BYTES {
        return Err(CodecError::TooLarge);
    }
    out.resize(start + len, 0);
    snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| CodecError::Corrupt(e.to_string()))?;
    Ok(())
}

/// Snappy as Kafka writes it (xerial framing: magic, then `[u32 length][block]`...), or a
/// raw snappy block, as kafka-protocol's decoder accepts both.
fn snappy(input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    let Some(mut rest) = input.strip_prefix(SNAPPY_XERIAL_MAGIC.as_slice()) else {
        return snappy_block(input, out);
    };
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(CodecError::Truncated("snappy block length".into()));
        };
        let len = u32::from_be_bytes(*len) as usize;
        if tail.len() < len {
            return Err(CodecError::Truncated("snappy block".into()));
        }
        snappy_block(&tail[..len], out)?;
        rest = &tail[len..];
    }
    Ok(())
}

/// Replaces `out`'s contents with the decompressed `input`.
pub fn decompress_into(codec: i16, input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    out.clear();
    match codec {
        NONE => out.extend_from_slice(input),
        GZIP => read_capped(flate2::read::GzDecoder::new(input), out)?,
        SNAPPY => snappy(input, out)?,
        LZ4 => lz4_frame::decompress(input, out)?,
        ZSTD => read_capped(zstd::stream::read::Decoder::new(input)?, out)?,
        other => return Err(CodecError::UnknownCodec(other)),
    }
    Ok(())
}

/// How much CPU compression spends per byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    /// As Kafka's producer at each codec's default level.
    Kafka,
    /// Less where a faster setting exists, for a lower ratio: lz4
    /// [`lz4_frame::FAST_ACCELERATION`], gzip [`GZIP_LEVEL_FAST`], zstd [`ZSTD_LEVEL_FAST`];
    /// snappy has one setting. For merges: one compression context for many small batches
    /// still beats them compressed one by one at Kafka's level.
    Fast,
}

impl Effort {
    /// The codec setting for this effort: `kafka`'s or `fast`.
    fn pick<T>(self, kafka: T, fast: T) -> T {
        match self {
            Effort::Kafka => kafka,
            Effort::Fast => fast,
        }
    }
}

/// Kafka's producer's gzip level (`compression.gzip.level`: `Deflater.DEFAULT_COMPRESSION`,
/// CompressionType.java).
pub const GZIP_LEVEL_KAFKA: u32 = 6;
/// 3.5x faster than level 6 here; 1 MiB of JSON-like records at 3.34x, as small (16 KiB)
/// batches at level 6 give (3.33x), where level 6 merged gives 3.77x.
pub const GZIP_LEVEL_FAST: u32 = 3;
/// Kafka's producer's zstd level (`compression.zstd.level`, CompressionType.java).
pub const ZSTD_LEVEL_KAFKA: i32 = 3;
/// 1.4x faster than level 3; 1 MiB of JSON-like records at 3.63x (level 3: 3.73x; 16 KiB
/// batches at level 3: 3.18x).
pub const ZSTD_LEVEL_FAST: i32 = 1;

/// Appends `raw` (uncompressed records) compressed with `codec` to `out`.
pub fn compress_into<B: BufMut>(
    codec: i16,
    raw: &[u8],
    effort: Effort,
    out: &mut B,
) -> Result<(), CodecError> {
    if codec == NONE {
        out.put_slice(raw);
        return Ok(());
    }
    let failed = |e: std::io::Error| CodecError::Compress(e.to_string());
    match codec {
        LZ4 => {
            let acceleration =
                effort.pick(lz4_frame::KAFKA_ACCELERATION, lz4_frame::FAST_ACCELERATION);
            lz4_frame::compress(raw, acceleration, out)
        }
        GZIP => {
            let level = effort.pick(GZIP_LEVEL_KAFKA, GZIP_LEVEL_FAST);
            let mut e =
                flate2::write::GzEncoder::new(out.writer(), flate2::Compression::new(level));
            e.write_all(raw).map_err(failed)?;
            e.finish().map_err(failed)?;
            Ok(())
        }
        ZSTD => {
            let level = effort.pick(ZSTD_LEVEL_KAFKA, ZSTD_LEVEL_FAST);
            zstd::stream::copy_encode(raw, out.writer(), level).map_err(failed)
        }
        SNAPPY => {
            let mut buf = BytesMut::with_capacity(raw.len() / 2 + 64);
            cmpr::Snappy::compress(&mut buf, |tmp: &mut BytesMut| {
                tmp.put_slice(raw);
                Ok(())
            })
            .map_err(|e| CodecError::Compress(e.to_string()))?;
            out.put_slice(&buf);
            Ok(())
        }
        other => Err(CodecError::UnknownCodec(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips_into_a_reused_buffer() {
        let raw: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect();
        let mut out = Vec::new();
        for codec in [NONE, GZIP, SNAPPY, LZ4, ZSTD] {
            for effort in [Effort::Kafka, Effort::Fast] {
                let mut compressed = Vec::new();
                compress_into(codec, &raw, effort, &mut compressed).unwrap();
                decompress_into(codec, &compressed, &mut out).unwrap();
                assert_eq!(out, raw, "codec {codec} {effort:?}");
            }
        }
    }

    #[test]
    fn fast_effort_is_another_level_where_the_codec_has_levels() {
        // Text-like records: levels differ in what they find.
        let raw: Vec<u8> = (0..40_000u32)
            .flat_map(|i| format!("{{\"id\":{i},\"v\":\"w{} x{}\"}}", i % 97, i % 13).into_bytes())
            .collect();
        for codec in [GZIP, LZ4, ZSTD] {
            let size = |effort| {
                let mut compressed = Vec::new();
                compress_into(codec, &raw, effort, &mut compressed).unwrap();
                compressed.len()
            };
            let (kafka, fast) = (size(Effort::Kafka), size(Effort::Fast));
            assert!(
                fast > kafka,
                "codec {codec}: {fast} vs {kafka} bytes: same level?"
            );
            assert!(
                fast < raw.len() / 2,
                "codec {codec}: {fast} of {}",
                raw.len()
            );
        }
    }

    #[test]
    fn raw_snappy_and_garbage_are_told_apart() {
        let raw = b"hello hello hello hello".repeat(10);
        let block = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        let mut out = Vec::new();
        decompress_into(SNAPPY, &block, &mut out).unwrap();
        assert_eq!(out, raw);
        assert!(decompress_into(LZ4, b"not lz4 at all", &mut out).is_err());
        assert!(matches!(
            decompress_into(7, b"", &mut out),
            Err(CodecError::UnknownCodec(7))
        ));
    }

    #[test]
    fn a_snappy_block_claiming_more_than_it_can_hold_is_refused_before_any_allocation() {
        let mut out = Vec::new();
        // 126 MiB claimed (varint), then 4 bytes.
        let block = [0x80, 0x80, 0x80, 0x3f, 0, 0, 0, 0];
        assert!(matches!(
            decompress_into(SNAPPY, &block, &mut out),
            Err(CodecError::Corrupt(_))
        ));
        assert!(out.capacity() < 1 << 20, "{} bytes", out.capacity());
        // The densest block snap writes (runs of zeros: 64 bytes per 3-byte copy) still
        // decodes, raw and framed as Kafka writes it.
        let zeros = vec![0u8; 4 << 20];
        let block = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
        decompress_into(SNAPPY, &block, &mut out).unwrap();
        assert_eq!(out, zeros);
        let mut framed = Vec::new();
        compress_into(SNAPPY, &zeros, Effort::Kafka, &mut framed).unwrap();
        decompress_into(SNAPPY, &framed, &mut out).unwrap();
        assert_eq!(out, zeros);
    }

    #[test]
    fn a_cut_or_damaged_stream_is_an_error_and_the_next_one_still_works() {
        let raw: Vec<u8> = (0..200_000u32).map(|i| (i % 7) as u8).collect();
        let mut out = Vec::new();
        for codec in [GZIP, LZ4, ZSTD] {
            let mut compressed = Vec::new();
            compress_into(codec, &raw, Effort::Kafka, &mut compressed).unwrap();
            let cut = &compressed[..compressed.len() / 2];
            assert!(
                decompress_into(codec, cut, &mut out).is_err(),
                "codec {codec}"
            );
            let mut damaged = compressed.clone();
            damaged[20] ^= 0xff;
            damaged[30] ^= 0xff;
            let _ = decompress_into(codec, &damaged, &mut out);
            decompress_into(codec, &compressed, &mut out).unwrap();
            assert_eq!(out, raw, "codec {codec} after an error");
        }
    }
}
