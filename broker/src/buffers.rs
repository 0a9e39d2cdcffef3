//! Buffers that Fetch reuses from one request to the next: the segment reads and the
//! encoded responses. A fresh multi-MiB buffer per read or response cost more than the
//! copy it holds: glibc served it with fresh pages (or gave them back to the kernel when it
//! was freed), so every request paid for zeroing and faulting them in again.
//!
//! A buffer is handed out again only once nothing refers to it any more (every `Bytes` cut
//! from it has been dropped: sent, or copied into a response and forgotten). The broker
//! keeps at most [`KEEP_BUFFERS`] buffers and [`KEEP_BYTES`] of each kind, whatever the
//! number of threads and connections; beyond that, and below [`POOLED_MIN`], buffers are
//! allocated and freed per request as before.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};

/// Bytes of read buffers, and of response buffers, kept for reuse: enough for the reads
/// behind, and the encoding of, a few concurrent 16 MiB Fetch responses.
pub const KEEP_BYTES: usize = 64 << 20;
/// Read buffers, and response buffers, kept for reuse.
pub const KEEP_BUFFERS: usize = 16;
/// Smaller reads and responses are left to the allocator.
pub const POOLED_MIN: usize = 64 << 10;
/// Read buffers grow in steps of this, so reads of slightly different sizes share them.
const READ_STEP: usize = 256 << 10;

static READS: ReadBuffers = ReadBuffers(Pool::new());
static RESPONSES: ResponseBuffers = ResponseBuffers(Pool::new());

/// Reads `len` bytes at `position` of `file`, into a reused buffer when `len` is large.
pub fn read_at(file: &File, position: u64, len: usize) -> io::Result<Bytes> {
    READS.read_at(file, position, len)
}

/// Runs `encode` on an empty buffer with room for `size` bytes (a reused one when `size`
/// is large and one is free) and returns what it wrote.
pub fn encode<E>(
    size: usize,
    encode: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<Bytes, E> {
    RESPONSES.encode(size, encode)
}

/// Buffers kept for reuse, within [`KEEP_BUFFERS`] and [`KEEP_BYTES`].
struct Pool<T>(Mutex<Vec<T>>);

impl<T> Pool<T> {
    const fn new() -> Self {
        Self(Mutex::new(Vec::new()))
    }

    /// Removes and returns the item `pick` chooses.
    fn take(&self, pick: impl FnOnce(&mut [T]) -> Option<usize>) -> Option<T> {
        let mut items = self.0.lock().expect("buffer pool lock");
        pick(&mut items).map(|i| items.swap_remove(i))
    }

    /// Keeps `item`, forgetting the oldest items to stay within the limits (a forgotten
    /// buffer still in use is freed when its last `Bytes` is dropped).
    fn keep(&self, item: T, size: impl Fn(&T) -> usize) {
        if size(&item) > KEEP_BYTES {
            return;
        }
        let mut items = self.0.lock().expect("buffer pool lock");
        let mut total: usize = items.iter().map(&size).sum::<usize>() + size(&item);
        while total > KEEP_BYTES || items.len() >= KEEP_BUFFERS {
            total -= size(&items.remove(0));
        }
        items.push(item);
    }
}

/// Whole read buffers: every byte is initialised (by a read, or zeroed once when the
/// buffer was made or grown), so a reused buffer is read into without zeroing it again.
struct ReadBuffers(Pool<Bytes>);

impl ReadBuffers {
    fn read_at(&self, file: &File, position: u64, len: usize) -> io::Result<Bytes> {
        if len < POOLED_MIN {
            let mut buf = vec![0; len];
            file.read_exact_at(&mut buf, position)?;
            return Ok(buf.into());
        }
        let mut buf = self.take(len);
        let result = file.read_exact_at(&mut buf[..len], position);
        let whole = buf.freeze();
        let out = whole.slice(..len);
        self.0.keep(whole, Bytes::len);
        result.map(|()| out)
    }

    /// The smallest free buffer that holds `len` bytes, else the largest free one grown,
    /// else a new one.
    fn take(&self, len: usize) -> BytesMut {
        let picked = self.0.take(|items| {
            let free = |i: &usize| items[*i].is_unique();
            let fits = (0..items.len())
                .filter(free)
                .filter(|&i| items[i].len() >= len)
                .min_by_key(|&i| items[i].len());
            fits.or_else(|| {
                (0..items.len())
                    .filter(free)
                    .max_by_key(|&i| items[i].len())
            })
        });
        let want = len.div_ceil(READ_STEP) * READ_STEP;
        // A picked buffer is unique: nothing else can clone it while it is in the pool.
        let Some(Ok(mut buf)) = picked.map(Bytes::try_into_mut) else {
            return BytesMut::zeroed(want);
        };
        if buf.len() < len {
            buf.resize(want, 0);
        }
        buf
    }
}

/// A response buffer and the size of the allocation behind it.
struct Slot {
    buf: BytesMut,
    allocated: usize,
}

struct ResponseBuffers(Pool<Slot>);

impl ResponseBuffers {
    fn encode<E>(
        &self,
        size: usize,
        encode: impl FnOnce(&mut BytesMut) -> Result<(), E>,
    ) -> Result<Bytes, E> {
        if size < POOLED_MIN {
            let mut buf = BytesMut::with_capacity(size);
            return encode(&mut buf).map(|()| buf.freeze());
        }
        let reused = self
            .0
            .take(|slots| slots.iter_mut().position(|s| s.buf.try_reclaim(size)));
        let mut slot = reused.unwrap_or_else(|| Slot {
            buf: BytesMut::with_capacity(size),
            allocated: size,
        });
        let result = encode(&mut slot.buf);
        let out = slot.buf.split().freeze();
        // The encoder may have grown the buffer past the size it was given.
        slot.allocated = slot.allocated.max(out.len());
        self.0.keep(slot, |s| s.allocated);
        result.map(|()| out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_reuse_a_buffer_once_its_bytes_are_dropped() {
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&data).unwrap();
        let pool = ReadBuffers(Pool::new());
        let read_at = |at, len| pool.read_at(&file, at, len);
        let first = read_at(10, 500_000).unwrap();
        assert_eq!(&first[..], &data[10..500_010]);
        let address = first.as_ptr();
        // Still in use: the next read gets another buffer.
        let second = read_at(0, 400_000).unwrap();
        assert_ne!(second.as_ptr(), address);
        assert_eq!(&second[..], &data[..400_000]);
        drop(first);
        let third = read_at(500_000, 300_000).unwrap();
        assert_eq!(third.as_ptr(), address, "the free buffer is reused");
        assert_eq!(&third[..], &data[500_000..800_000]);
        // Larger than any free buffer: a free one grows.
        drop((second, third));
        let fourth = read_at(0, 900_000).unwrap();
        assert_eq!(&fourth[..], &data[..900_000]);
        assert!(read_at(900_000, 200_000).is_err(), "past the end");
    }

    #[test]
    fn responses_reuse_a_buffer_once_the_previous_one_is_dropped() {
        let pool = ResponseBuffers(Pool::new());
        let fill = |n: usize, byte: u8| {
            pool.encode::<()>(n, |b| {
                b.extend(std::iter::repeat_n(byte, n));
                Ok(())
            })
            .unwrap()
        };
        let first = fill(1 << 20, 1);
        let address = first.as_ptr();
        let second = fill(1 << 20, 2);
        assert_ne!(second.as_ptr(), address);
        drop(first);
        let third = fill(1 << 20, 3);
        assert_eq!(third.as_ptr(), address, "the free buffer is reclaimed");
        assert!(third.iter().all(|&b| b == 3) && second.iter().all(|&b| b == 2));
        let failed = pool.encode(1 << 20, |b| {
            b.extend_from_slice(b"partial");
            Err("refused")
        });
        assert_eq!(failed, Err("refused"));
    }

    #[test]
    fn at_most_the_limits_are_kept() {
        let pool = ResponseBuffers(Pool::new());
        let kept = || {
            let slots = pool.0 .0.lock().unwrap();
            slots.iter().map(|s| s.allocated).collect::<Vec<_>>()
        };
        let filled = |n: usize| {
            pool.encode::<()>(n, |b| {
                b.resize(n, 0);
                Ok(())
            })
            .unwrap()
        };
        let big: Vec<Bytes> = (0..4).map(|_| filled(KEEP_BYTES / 3)).collect();
        assert_eq!(kept().len(), 3, "three fit in the budget, not four");
        let many: Vec<Bytes> = (0..20).map(|_| filled(POOLED_MIN)).collect();
        assert_eq!(kept().len(), KEEP_BUFFERS);
        drop((big, many));
        let _ = filled(KEEP_BYTES + 1);
        assert!(kept().iter().all(|&n| n <= KEEP_BYTES), "too large to keep");
        let small = pool.encode::<()>(100, |b| {
            b.extend_from_slice(b"left to the allocator");
            Ok(())
        });
        assert_eq!(&small.unwrap()[..], b"left to the allocator");
    }
}
