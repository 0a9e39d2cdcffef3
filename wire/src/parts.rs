//! Frames written as parts, so that large payloads already in memory (the record batches
//! of a Produce request) reach the socket without being copied into the encoded frame.
//!
//! [`SharingBuf`] is the buffer `kafka-protocol` encodes a message into: every field is
//! encoded by the crate as usual, but when it writes a slice that lies inside one of the
//! `Bytes` the caller named as shared, the buffer keeps a reference to those bytes instead
//! of copying them. The result is a [`Frame`]: encoded pieces and shared payloads, in
//! order, written by [`crate::frame_writer`] without copying the shared payloads again.

use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// Slices shorter than this are copied even when shared: a reference costs an I/O vector
/// entry, more than copying a few bytes.
const SHARE_FROM_BYTES: usize = 1024;

/// An encoded frame body (without its length prefix) as parts written back to back.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    parts: Vec<Bytes>,
}

impl Frame {
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// Length in bytes of all parts.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame in one buffer (a copy unless it has a single part).
    pub fn to_bytes(&self) -> Bytes {
        match self.parts.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut out = BytesMut::with_capacity(self.len());
                for p in many {
                    out.extend_from_slice(p);
                }
                out.freeze()
            }
        }
    }
}

impl From<Vec<Bytes>> for Frame {
    fn from(parts: Vec<Bytes>) -> Self {
        Self { parts }
    }
}

impl From<Bytes> for Frame {
    fn from(b: Bytes) -> Self {
        Self { parts: vec![b] }
    }
}

/// What [`crate::frame_writer::write_frames`] writes: a frame as its parts.
pub trait FrameParts {
    fn parts(&self) -> &[Bytes];
}

impl FrameParts for Bytes {
    fn parts(&self) -> &[Bytes] {
        std::slice::from_ref(self)
    }
}

impl FrameParts for Frame {
    fn parts(&self) -> &[Bytes] {
        &self.parts
    }
}

/// An encoding buffer that references slices of `shared` instead of copying them.
pub struct SharingBuf<'a> {
    /// Finished parts, in order.
    parts: Vec<Bytes>,
    /// Bytes in `parts`.
    parts_len: usize,
    /// Encoded bytes after the last part.
    tail: BytesMut,
    shared: &'a [Bytes],
    /// Where the next lookup in `shared` starts: the encoder writes payloads in the order
    /// they were given, so the next one is almost always found there.
    next_shared: usize,
}

impl<'a> SharingBuf<'a> {
    /// `capacity` is a hint for the encoded (non-shared) bytes.
    pub fn new(capacity: usize, shared: &'a [Bytes]) -> Self {
        Self {
            // Each shared payload, the piece before it, and the tail.
            parts: Vec::with_capacity(2 * shared.len() + 1),
            parts_len: 0,
            tail: BytesMut::with_capacity(capacity),
            shared,
            next_shared: 0,
        }
    }

    pub fn finish(mut self) -> Frame {
        if !self.tail.is_empty() || self.parts.is_empty() {
            self.parts.push(self.tail.freeze());
        }
        Frame { parts: self.parts }
    }

    /// The shared `Bytes` that `src` lies in, sliced to exactly `src`; the search starts
    /// after the last one found.
    fn find_shared(&mut self, src: &[u8]) -> Option<Bytes> {
        let start = src.as_ptr() as usize;
        let end = start + src.len();
        let n = self.shared.len();
        let from = self.next_shared;
        let i = (0..n).map(|k| (from + k) % n).find(|&i| {
            let b_start = self.shared[i].as_ptr() as usize;
            b_start <= start && end <= b_start + self.shared[i].len()
        })?;
        self.next_shared = i + 1;
        let b_start = self.shared[i].as_ptr() as usize;
        Some(self.shared[i].slice(start - b_start..end - b_start))
    }

    fn push_part(&mut self, part: Bytes) {
        if !self.tail.is_empty() {
            let tail = self.tail.split().freeze();
            self.parts_len += tail.len();
            self.parts.push(tail);
        }
        self.parts_len += part.len();
        self.parts.push(part);
    }

    /// Copies every part into the tail, so that earlier bytes can be rewritten.
    fn flatten(&mut self) {
        if self.parts.is_empty() {
            return;
        }
        let mut all = BytesMut::with_capacity(self.parts_len + self.tail.len());
        for p in self.parts.drain(..) {
            all.extend_from_slice(&p);
        }
        all.extend_from_slice(&self.tail);
        self.tail = all;
        self.parts_len = 0;
    }
}

// SAFETY: every method delegates to `tail`, a `BytesMut`, whose implementation upholds
// the `BufMut` contract; `put_slice` either delegates too or appends whole parts.
unsafe impl BufMut for SharingBuf<'_> {
    fn remaining_mut(&self) -> usize {
        self.tail.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's guarantee for `cnt` is about `chunk_mut`, which is `tail`'s.
        unsafe { self.tail.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.tail.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= SHARE_FROM_BYTES {
            if let Some(part) = self.find_shared(src) {
                self.push_part(part);
                return;
            }
        }
        self.tail.put_slice(src);
    }
}

impl ByteBufMut for SharingBuf<'_> {
    fn offset(&self) -> usize {
        self.parts_len + self.tail.len()
    }

    fn seek(&mut self, offset: usize) {
        if offset < self.parts_len {
            self.flatten();
        }
        self.tail.resize(offset - self.parts_len, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        if r.start < self.parts_len {
            self.flatten();
        }
        let base = self.parts_len;
        &mut self.tail[r.start - base..r.end - base]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::buf::ByteBufMut;

    fn flat(f: &Frame) -> Vec<u8> {
        f.to_bytes().to_vec()
    }

    #[test]
    fn shared_slices_are_referenced_and_the_rest_copied() {
        let big = Bytes::from(vec![7u8; 4000]);
        let other = Bytes::from(vec![9u8; 5000]);
        let shared = [big.clone()];
        let mut buf = SharingBuf::new(64, &shared);
        buf.put_i32(1);
        buf.put_slice(&big[100..3000]);
        buf.put_slice(&other);
        buf.put_u8(2);
        let frame = buf.finish();
        let mut expected = 1i32.to_be_bytes().to_vec();
        expected.extend_from_slice(&big[100..3000]);
        expected.extend_from_slice(&other);
        expected.push(2);
        assert_eq!(flat(&frame), expected);
        assert_eq!(frame.len(), expected.len());
        // The shared slice is a part of its own, pointing into `big`.
        assert_eq!(frame.parts().len(), 3);
        assert_eq!(frame.parts()[1].as_ptr(), big[100..].as_ptr());
    }

    #[test]
    fn payloads_written_out_of_the_given_order_are_still_referenced() {
        let a = Bytes::from(vec![1u8; 2000]);
        let b = Bytes::from(vec![2u8; 3000]);
        let shared = [a.clone(), b.clone()];
        let mut buf = SharingBuf::new(8, &shared);
        buf.put_slice(&b);
        buf.put_slice(&a);
        buf.put_slice(&b[..1500]);
        let frame = buf.finish();
        let ptrs: Vec<_> = frame.parts().iter().map(|p| p.as_ptr()).collect();
        assert_eq!(ptrs, vec![b.as_ptr(), a.as_ptr(), b.as_ptr()]);
        assert_eq!(frame.len(), 6500);
    }

    #[test]
    fn rewriting_earlier_bytes_flattens_and_keeps_the_content() {
        let big = Bytes::from((0..3000u32).map(|i| i as u8).collect::<Vec<_>>());
        let shared = [big.clone()];
        let mut buf = SharingBuf::new(8, &shared);
        buf.put_u32(0);
        buf.put_slice(&big);
        buf.put_u32(5);
        assert_eq!(buf.offset(), 3008);
        buf.range(0..4).copy_from_slice(&[1, 2, 3, 4]);
        buf.seek(3006);
        buf.put_u16(9);
        let frame = buf.finish();
        let mut expected = vec![1, 2, 3, 4];
        expected.extend_from_slice(&big);
        expected.extend_from_slice(&[0, 0, 0, 9]);
        assert_eq!(flat(&frame), expected);
    }

    #[test]
    fn an_empty_buffer_is_one_empty_part() {
        let frame = SharingBuf::new(0, &[]).finish();
        assert!(frame.is_empty());
        assert_eq!(frame.parts().len(), 1);
    }
}
