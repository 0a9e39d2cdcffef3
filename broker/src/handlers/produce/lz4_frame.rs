//! LZ4 frame decompression straight into the caller's buffer, with one decompression
//! context per thread reused across batches. `lz4::Decoder` allocates a context and a
//! 32 KiB staging buffer per batch and copies the input and the output once more; on the
//! produce path (Kafka clients default to lz4) that doubled the broker's CPU per byte.
//! Checksums inside the frame are not verified, as Kafka does not verify the content
//! checksum either (Lz4BlockInputStream: "TODO: verify this content checksum"); the batch
//! CRC covers the bytes. (Kafka does verify block checksums, which its clients do not
//! write.) Only what `super::codec` needs: whole frames, bounded output, errors not panics.

use std::cell::RefCell;
use std::ptr;

use lz4::liblz4::{
    LZ4FDecompressOptions, LZ4FDecompressionContext, LZ4F_createDecompressionContext,
    LZ4F_decompress, LZ4F_freeDecompressionContext, LZ4F_isError, LZ4F_VERSION,
};

use super::codec::{CodecError, MAX_DECOMPRESSED_BYTES};

struct Context(LZ4FDecompressionContext);

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the context was created by LZ4F_createDecompressionContext and is freed once.
        unsafe { LZ4F_freeDecompressionContext(self.0) };
    }
}

thread_local! {
    static CONTEXT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

fn new_context() -> Result<Context, CodecError> {
    let mut c = LZ4FDecompressionContext(ptr::null_mut());
    // SAFETY: `c` is a valid out-pointer; the version is the one lz4-sys was built with.
    let code = unsafe { LZ4F_createDecompressionContext(&mut c, LZ4F_VERSION) };
    // SAFETY: LZ4F_isError only inspects the code.
    if unsafe { LZ4F_isError(code) } != 0 {
        return Err(CodecError::Corrupt("cannot create an lz4 context".into()));
    }
    Ok(Context(c))
}

/// Appends the decompressed first frame of `input` to `out`.
pub fn decompress(input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    CONTEXT.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(new_context()?);
        }
        let ctx = slot.as_ref().map(|c| c.0).expect("context set above");
        let result = run(ctx, input, out);
        if result.is_err() {
            // A context that failed mid-frame keeps its state; start the next one afresh.
            *slot = None;
        }
        result
    })
}

fn run(ctx: LZ4FDecompressionContext, input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    // lz4 1.10's LZ4F_decompressOptions_t is {stableDst, skipChecksums, reserved1,
    // reserved0}; lz4-sys names the last three `reserved`.
    let options = LZ4FDecompressOptions {
        stable_dst: 0,
        reserved: [1, 0, 0],
    };
    let mut src = input;
    out.reserve((input.len() * 4).max(64 << 10));
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.len().max(64 << 10));
        }
        let spare = out.spare_capacity_mut();
        let mut dst_size = spare.len();
        let mut src_size = src.len();
        // SAFETY: `spare` is writable for `dst_size` bytes and `src` readable for
        // `src_size`; LZ4F_decompress writes at most `dst_size` bytes and reports how many
        // it wrote and read through the two size pointers.
        let hint = unsafe {
            LZ4F_decompress(
                ctx,
                spare.as_mut_ptr().cast::<u8>(),
                &mut dst_size,
                src.as_ptr(),
                &mut src_size,
                &options,
            )
        };
        // SAFETY: LZ4F_isError only inspects the code.
        if unsafe { LZ4F_isError(hint) } != 0 {
            return Err(CodecError::Corrupt("invalid lz4 frame".into()));
        }
        // SAFETY: LZ4F_decompress initialised `dst_size` bytes of the spare capacity.
        unsafe { out.set_len(out.len() + dst_size) };
        src = &src[src_size..];
        if out.len() > MAX_DECOMPRESSED_BYTES {
            return Err(CodecError::TooLarge);
        }
        if hint == 0 {
            return Ok(()); // the frame is complete
        }
        if src.is_empty() && dst_size == 0 {
            return Err(CodecError::Truncated("lz4 frame".into()));
        }
    }
}
