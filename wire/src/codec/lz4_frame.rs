//! LZ4 frames read as Kafka reads them (Lz4BlockInputStream), decompressed block by block
//! straight into the caller's buffer with liblz4's `LZ4_decompress_safe`.
//!
//! Kafka's rules, which this module follows: magic 0x184D2204; FLG with reserved bits 0,
//! version 1 and independent blocks ("Dependent block stream is unsupported"); BD with
//! reserved bits 0 and a block size id of 4-7; the header checksum byte; every block at
//! most the declared block size and present in full; a block's checksum verified when FLG
//! sets the block-checksum bit, compressed or not; the end mark. The content checksum is
//! read but not verified ("TODO: verify this content checksum"), so it costs nothing; the
//! batch CRC covers the bytes. One check is stricter than Kafka, as liblz4's frame decoder
//! was before: a declared content size must match what the blocks decompress to.
//!
//! Frames are written as Kafka's Java client (Lz4BlockOutputStream) and librdkafka write
//! them: independent 64 KiB blocks compressed by liblz4's fast compressor, no block or
//! content checksum, a block that does not shrink stored as it is. Each block is compressed
//! straight from the caller's bytes, with no frame context to set up and no input buffered.
//! The caller picks liblz4's acceleration: 1 as those clients, or more for fewer CPU
//! seconds per byte at a slightly lower ratio (see [`FAST_ACCELERATION`]).

use std::os::raw::{c_char, c_int, c_void};

use bytes::BufMut;
use lz4::liblz4::{LZ4_compressBound, LZ4_compress_fast, LZ4_decompress_safe};

use super::{CodecError, MAX_DECOMPRESSED_BYTES};

/// Kafka: Lz4BlockOutputStream.MAGIC (read little-endian).
const MAGIC: u32 = 0x184D_2204;
/// Kafka: Lz4BlockOutputStream.LZ4_FRAME_INCOMPRESSIBLE_MASK.
const INCOMPRESSIBLE: u32 = 0x8000_0000;
const FLG_CONTENT_CHECKSUM: u8 = 1 << 2;
const FLG_CONTENT_SIZE: u8 = 1 << 3;
const FLG_BLOCK_CHECKSUM: u8 = 1 << 4;
const FLG_INDEPENDENT: u8 = 1 << 5;

extern "C" {
    /// XXH32 of the xxHash copy liblz4 bundles (lz4-sys compiles and links `xxhash.c`, it
    /// only declares no binding for it); the checksum the frame format specifies.
    fn XXH32(input: *const c_void, length: usize, seed: u32) -> u32;
}

fn xxh32(data: &[u8]) -> u32 {
    // SAFETY: XXH32 reads exactly `data.len()` bytes from `data`, which is valid for them.
    unsafe { XXH32(data.as_ptr().cast(), data.len(), 0) }
}

fn corrupt(msg: &str) -> CodecError {
    CodecError::Corrupt(format!("lz4 frame: {msg}"))
}

/// Kafka: Lz4BlockInputStream.PREMATURE_EOS.
fn premature() -> CodecError {
    CodecError::Truncated("lz4 frame: stream ended prematurely".into())
}

/// Splits `n` bytes off the front of `input`, or fails as a premature end.
fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], CodecError> {
    if input.len() < n {
        return Err(premature());
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().expect("4 bytes"))
}

/// The frame descriptor: FLG, the maximum block size and the declared content size.
/// Kafka: Lz4BlockInputStream.readHeader, FLG.validate, BD.validate.
fn header(input: &mut &[u8]) -> Result<(u8, usize, Option<u64>), CodecError> {
    if input.len() < 6 {
        return Err(premature());
    }
    if le32(take(input, 4)?) != MAGIC {
        return Err(corrupt("stream unsupported (invalid magic bytes)"));
    }
    let descriptor_start = *input;
    let d = take(input, 2)?;
    let (flg, bd) = (d[0], d[1]);
    if flg & 0b11 != 0 {
        return Err(corrupt("reserved bits must be 0"));
    }
    if flg & FLG_INDEPENDENT == 0 {
        return Err(corrupt("dependent block stream is unsupported"));
    }
    if flg >> 6 != 1 {
        return Err(corrupt(&format!("version {} is unsupported", flg >> 6)));
    }
    if bd & 0x0f != 0 || bd & 0x80 != 0 {
        return Err(corrupt("reserved BD bits must be 0"));
    }
    let size_id = (bd >> 4) & 0x07;
    if !(4..=7).contains(&size_id) {
        return Err(corrupt("block size value must be between 4 and 7"));
    }
    let max_block = 1usize << (2 * size_id + 8);
    let content_size = if flg & FLG_CONTENT_SIZE != 0 {
        let b = take(input, 8)?;
        Some(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    } else {
        None
    };
    let descriptor = &descriptor_start[..descriptor_start.len() - input.len()];
    let hc = take(input, 1)?[0];
    if hc != (xxh32(descriptor) >> 8) as u8 {
        return Err(corrupt("stream frame descriptor corrupted"));
    }
    Ok((flg, max_block, content_size))
}

/// Block size of written frames: Kafka's Lz4BlockOutputStream.BLOCKSIZE_64KB.
const WRITE_BLOCK_BYTES: usize = 64 << 10;
/// FLG of written frames: version 1, independent blocks, nothing else.
const WRITE_FLG: u8 = (1 << 6) | FLG_INDEPENDENT;
/// BD of written frames: block size id 4 (64 KiB).
const WRITE_BD: u8 = 4 << 4;

/// liblz4's acceleration in Kafka's Java client (lz4-java's fastCompressor) and librdkafka.
pub const KAFKA_ACCELERATION: i32 = 1;
/// liblz4's acceleration where CPU rather than bytes limits. On JSON-like records (the
/// catch-up bench's, 2 MiB at a time) against acceleration 1: 4 compresses 1.4 times as
/// fast for 4% more bytes, 6 1.5 times for 4.4%, 8 1.6 times for 12.5%: past 6 the ratio
/// falls off faster than the speed rises.
pub const FAST_ACCELERATION: i32 = 6;

/// Appends `raw` as one lz4 frame to `out`, its blocks compressed at liblz4's
/// `acceleration` (1 or more).
pub fn compress<B: BufMut>(raw: &[u8], acceleration: i32, out: &mut B) -> Result<(), CodecError> {
    out.put_u32_le(MAGIC);
    out.put_u8(WRITE_FLG);
    out.put_u8(WRITE_BD);
    out.put_u8((xxh32(&[WRITE_FLG, WRITE_BD]) >> 8) as u8);
    // SAFETY: LZ4_compressBound only computes a size.
    let bound = unsafe { LZ4_compressBound(WRITE_BLOCK_BYTES as c_int) } as usize;
    // One block's output at a time (not zeroed: liblz4 only writes it).
    let mut block: Vec<u8> = Vec::with_capacity(bound);
    for piece in raw.chunks(WRITE_BLOCK_BYTES) {
        // SAFETY: `piece` is readable for its length and `block`'s capacity writable for
        // `bound` bytes, the most LZ4_compress_fast writes for an input of at most
        // WRITE_BLOCK_BYTES; both fit in a c_int. It returns 0 when the output does not
        // fit, which cannot happen with a bound-sized destination (an acceleration below 1
        // counts as 1).
        let n = unsafe {
            LZ4_compress_fast(
                piece.as_ptr().cast::<c_char>(),
                block.as_mut_ptr().cast::<c_char>(),
                piece.len() as c_int,
                bound as c_int,
                acceleration as c_int,
            )
        };
        let n = usize::try_from(n).unwrap_or(0);
        // SAFETY: LZ4_compress_fast initialised the first `n` (<= bound) bytes.
        unsafe { block.set_len(n) };
        // Kafka: Lz4BlockOutputStream.writeBlock stores a block that does not shrink as it is.
        if n == 0 || n >= piece.len() {
            out.put_u32_le(piece.len() as u32 | INCOMPRESSIBLE);
            out.put_slice(piece);
        } else {
            out.put_u32_le(n as u32);
            out.put_slice(&block);
        }
    }
    out.put_u32_le(0);
    Ok(())
}

/// Decompresses one compressed block of at most `max_block` bytes onto the end of `out`.
fn decompress_block(block: &[u8], max_block: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
    out.reserve(max_block);
    let spare = out.spare_capacity_mut();
    // SAFETY: `block` is readable for `block.len()` bytes and `spare` writable for at
    // least `max_block` (reserved above); both lengths fit in a c_int (a block is at most
    // 4 MiB). LZ4_decompress_safe reads no more than the first and writes no more than the
    // second, whatever the input, and returns a negative number for malformed input.
    let n = unsafe {
        LZ4_decompress_safe(
            block.as_ptr().cast::<c_char>(),
            spare.as_mut_ptr().cast::<c_char>(),
            block.len() as c_int,
            max_block as c_int,
        )
    };
    let Ok(n) = usize::try_from(n) else {
        return Err(corrupt("malformed compressed block"));
    };
    // SAFETY: LZ4_decompress_safe initialised the first `n` (<= max_block) spare bytes.
    unsafe { out.set_len(out.len() + n) };
    Ok(())
}

/// Appends the decompressed first frame of `input` to `out`; bytes after the frame's end
/// mark are ignored, as Kafka ignores them.
pub fn decompress(input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    let mut input = input;
    let (flg, max_block, content_size) = header(&mut input)?;
    let start = out.len();
    loop {
        let word = le32(take(&mut input, 4)?);
        let size = (word & !INCOMPRESSIBLE) as usize;
        if size == 0 {
            if flg & FLG_CONTENT_CHECKSUM != 0 {
                take(&mut input, 4)?; // Kafka: "TODO: verify this content checksum"
            }
            break;
        }
        if size > max_block {
            return Err(corrupt(&format!(
                "block size {size} exceeded max: {max_block}"
            )));
        }
        let block = take(&mut input, size)?;
        if flg & FLG_BLOCK_CHECKSUM != 0 {
            let stored = le32(take(&mut input, 4)?);
            if xxh32(block) != stored {
                return Err(corrupt("block checksum mismatch"));
            }
        }
        if word & INCOMPRESSIBLE != 0 {
            out.extend_from_slice(block);
        } else {
            decompress_block(block, max_block, out)?;
        }
        if out.len() - start > MAX_DECOMPRESSED_BYTES {
            return Err(CodecError::TooLarge);
        }
    }
    if content_size.is_some_and(|n| n != (out.len() - start) as u64) {
        return Err(corrupt("the blocks do not match the declared content size"));
    }
    Ok(())
}

#[cfg(test)]
#[path = "lz4_frame_tests.rs"]
mod tests;
