//! Reading length-prefixed response frames so that a large frame owns its allocation.
//!
//! A codec that reads into one shared buffer hands out frames that share that buffer's
//! allocation with the frames read after them, so no frame can ever be turned back into a
//! uniquely owned, writable buffer. The daemon stamps fetched record batches in place
//! (producer id, sequence, CRC), and a Fetch response that carries one partition can be
//! handed to that partition as it is, without a copy, only if its frame is the sole owner
//! of its memory. So a frame of [`OWN_ALLOCATION_BYTES`] or more is read into an allocation
//! of exactly its size (what was already buffered is copied, at most one read buffer);
//! smaller frames (Produce answers, metadata) are cut from the read buffer as before.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Frames this large or larger get an allocation of their own.
pub const OWN_ALLOCATION_BYTES: usize = 64 << 10;

/// Bytes read from the socket at once for small frames.
const READ_BUFFER_BYTES: usize = 64 << 10;

/// Why no frame could be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {len_bytes} bytes is over the limit of {max_bytes}")]
    TooLarge { len_bytes: usize, max_bytes: usize },
    /// A length prefix below zero (Kafka's sizes are signed 32-bit integers).
    #[error("invalid frame size {size} (negative)")]
    NegativeSize { size: i32 },
    /// The peer's first bytes are not a Kafka frame but another protocol's.
    #[error("{0}")]
    NotKafka(&'static str),
    #[error("connection closed in the middle of a frame")]
    Truncated,
}

/// What a length prefix over the limit says when it is another protocol's first bytes:
/// a TLS record (content type 20-23, major version 3) from a broker whose listener speaks
/// SSL, or an HTTP response from something that is not a broker at all.
fn other_protocol(prefix: [u8; 4]) -> Option<&'static str> {
    match prefix {
        [20..=23, 3, 0..=4, _] => Some(
            "the broker answered with TLS: its listener speaks SSL or SASL_SSL; \
             configure `tls` for this cluster",
        ),
        [b'H', b'T', b'T', b'P'] => Some("the peer answered with HTTP: it is not a Kafka broker"),
        _ => None,
    }
}

/// Reads frames (without their 4-byte length) from one stream.
pub struct FrameReader<R> {
    read: R,
    buffer: BytesMut,
    max_frame_bytes: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(read: R, max_frame_bytes: usize) -> Self {
        Self {
            read,
            buffer: BytesMut::with_capacity(READ_BUFFER_BYTES),
            max_frame_bytes,
        }
    }

    /// The next frame; `Ok(None)` when the stream ended between frames.
    pub async fn next(&mut self) -> Result<Option<Bytes>, ReadError> {
        while self.buffer.len() < 4 {
            if !self.fill().await? {
                if self.buffer.is_empty() {
                    return Ok(None);
                }
                return Err(ReadError::Truncated);
            }
        }
        let prefix: [u8; 4] = self.buffer[..4].try_into().expect("4 bytes");
        let len = u32::from_be_bytes(prefix) as usize;
        if len > self.max_frame_bytes {
            if let Some(protocol) = other_protocol(prefix) {
                return Err(ReadError::NotKafka(protocol));
            }
            let size = i32::from_be_bytes(prefix);
            if size < 0 {
                return Err(ReadError::NegativeSize { size });
            }
            return Err(ReadError::TooLarge {
                len_bytes: len,
                max_bytes: self.max_frame_bytes,
            });
        }
        self.buffer.advance(4);
        if len < OWN_ALLOCATION_BYTES {
            while self.buffer.len() < len {
                if !self.fill().await? {
                    return Err(ReadError::Truncated);
                }
            }
            return Ok(Some(self.buffer.split_to(len).freeze()));
        }
        let mut frame = BytesMut::with_capacity(len);
        let buffered = self.buffer.len().min(len);
        frame.extend_from_slice(&self.buffer[..buffered]);
        self.buffer.advance(buffered);
        while frame.len() < len {
            let want = len - frame.len();
            if self.read.read_buf(&mut (&mut frame).limit(want)).await? == 0 {
                return Err(ReadError::Truncated);
            }
        }
        Ok(Some(frame.freeze()))
    }

    /// Reads more into the buffer; `false` at the end of the stream.
    async fn fill(&mut self) -> Result<bool, ReadError> {
        self.buffer.reserve(READ_BUFFER_BYTES);
        Ok(self.read.read_buf(&mut self.buffer).await? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn framed(bodies: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for b in bodies {
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.extend_from_slice(b);
        }
        out
    }

    /// Writes `bytes` in pieces of `step`, so frames straddle reads.
    async fn reader_over(bytes: Vec<u8>, step: usize) -> FrameReader<tokio::io::DuplexStream> {
        let (mut w, r) = tokio::io::duplex(8 << 10);
        tokio::spawn(async move {
            for piece in bytes.chunks(step) {
                w.write_all(piece).await.unwrap();
            }
        });
        FrameReader::new(r, 1 << 20)
    }

    /// A TLS alert or an HTTP response where a frame should be is named for what it is,
    /// not reported as a frame of 352 MB; a plain oversized prefix stays TooLarge.
    #[tokio::test]
    async fn another_protocols_answer_is_named() {
        let tls_alert = vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46];
        let http = b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec();
        let huge = vec![0x7f, 0x00, 0x00, 0x00];
        for (bytes, want) in [
            (tls_alert, "the broker answered with TLS"),
            (http, "answered with HTTP"),
            (huge, "over the limit"),
        ] {
            let error = reader_over(bytes, 64).await.next().await.unwrap_err();
            assert!(error.to_string().contains(want), "{error}");
        }
    }

    #[tokio::test]
    async fn small_and_large_frames_come_back_whole_and_a_large_one_owns_its_memory() {
        let bodies = vec![
            vec![1u8; 10],
            (0..200_000u32).map(|i| i as u8).collect::<Vec<u8>>(),
            vec![],
            vec![7u8; OWN_ALLOCATION_BYTES],
            vec![3u8; 5],
        ];
        for step in [1, 1000, 70_000] {
            let mut r = reader_over(framed(&bodies), step).await;
            for b in &bodies {
                let frame = r.next().await.unwrap().expect("a frame");
                assert_eq!(&frame[..], &b[..], "step {step}");
                if b.len() >= OWN_ALLOCATION_BYTES {
                    // The only owner of its allocation: writable without a copy.
                    let ptr = frame.as_ptr();
                    let mine = frame.try_into_mut().expect("unique");
                    assert_eq!(mine.as_ptr(), ptr);
                }
            }
            assert!(r.next().await.unwrap().is_none(), "clean end");
        }
    }

    #[tokio::test]
    async fn a_frame_over_the_limit_and_a_cut_frame_are_errors() {
        let mut r = reader_over(framed(&[vec![0u8; (1 << 20) + 1]]), 4096).await;
        assert!(matches!(r.next().await, Err(ReadError::TooLarge { .. })));
        let mut r = reader_over((-7i32).to_be_bytes().to_vec(), 4096).await;
        let e = r.next().await.unwrap_err();
        assert!(matches!(e, ReadError::NegativeSize { size: -7 }), "{e}");
        assert_eq!(e.to_string(), "invalid frame size -7 (negative)");
        for cut in [2, 4 + 10, 4 + OWN_ALLOCATION_BYTES + 10] {
            let mut bytes = framed(&[vec![5u8; OWN_ALLOCATION_BYTES * 2]]);
            bytes.truncate(cut);
            let mut r = reader_over(bytes, 4096).await;
            assert!(
                matches!(r.next().await, Err(ReadError::Truncated)),
                "cut at {cut}"
            );
        }
        let mut small = framed(&[vec![1u8; 100]]);
        small.truncate(50);
        let mut r = reader_over(small, 7).await;
        assert!(matches!(r.next().await, Err(ReadError::Truncated)));
    }
}
