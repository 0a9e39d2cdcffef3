//! Writing frames to a connection: each behind its 4-byte length, as many as are queued in
//! one round of system calls.
//!
//! Frames come as parts ([`crate::parts`]): the encoded pieces of a message and the
//! record batches it references. Where the stream takes vectored writes (plain TCP, TLS),
//! a round is one `writev` per `MAX_IOV` entries: pieces under `GATHER_FROM_BYTES`
//! gathered into one buffer, larger parts in place, so a batch is copied once, by the
//! kernel. A round ends at 64 frames or 64 KiB copied, so the buffer stays small. Other
//! streams go through a 64 KiB buffer. [`write_frame`] writes one frame on its own, for a
//! peer that reads nothing more until its answer is out.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::parts::FrameParts;

/// Writes every frame received on `rx` to `write`, each behind its 4-byte length, and
/// flushes once the queue is empty. Each frame (and whatever it carries) is dropped once
/// the round it went out in is written. Where the stream takes vectored writes, frames
/// queued together go out in one gather: small pieces copied into one buffer, parts of
/// `GATHER_FROM_BYTES` and up referenced in place; otherwise through a 64 KiB buffer.
pub async fn write_frames<W: AsyncWrite + Unpin, F: FrameParts>(
    write: W,
    rx: mpsc::Receiver<F>,
) -> std::io::Result<()> {
    if write.is_write_vectored() {
        write_gathered(write, rx).await
    } else {
        write_buffered(write, rx).await
    }
}

/// Writes one frame behind its 4-byte length and flushes: for a peer that handles one
/// frame at a time and reads nothing more until it is out (Kafka's muted channel).
pub async fn write_frame<W: AsyncWrite + Unpin, F: FrameParts>(
    write: &mut W,
    frame: &F,
) -> std::io::Result<()> {
    let parts = frame.parts();
    let mut slices = Vec::with_capacity(parts.len() + 1);
    slices.push(Bytes::copy_from_slice(&frame_len(parts)?.to_be_bytes()));
    slices.extend(parts.iter().filter(|p| !p.is_empty()).cloned());
    write_all_slices(write, &mut slices).await?;
    write.flush().await
}

/// Parts this long and longer are written in place rather than copied.
const GATHER_FROM_BYTES: usize = 4096;
/// I/O vector entries per `writev`.
const MAX_IOV: usize = 256;
/// Frames gathered into one round of writes.
const MAX_FRAMES_PER_ROUND: usize = 64;
/// A round takes no more frames once it has copied this much.
const MAX_COPIED_PER_ROUND_BYTES: usize = 64 << 10;
/// Room the gather buffer takes at the start of a round: a Produce request's pieces
/// between its batches are a few dozen bytes per partition.
const ROUND_COPY_BYTES: usize = 8 << 10;
/// What the gather buffer and its list of parts keep between rounds; a larger round (a
/// frame of many small parts) gives back the rest once written.
const KEEP_COPY_BYTES: usize = 2 * MAX_COPIED_PER_ROUND_BYTES;
const KEEP_SLICES: usize = 4 * MAX_IOV;

async fn write_gathered<W: AsyncWrite + Unpin, F: FrameParts>(
    mut write: W,
    mut rx: mpsc::Receiver<F>,
) -> std::io::Result<()> {
    let mut held: Vec<F> = Vec::new();
    let mut slices: Vec<Bytes> = Vec::new();
    let mut small = BytesMut::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut copied = 0;
        while let Some(frame) = next.take() {
            if held.is_empty() {
                // Room for a round's copies in one allocation, reclaimed from the last
                // round (whose pieces are written and dropped) rather than a new one
                // each time a piece is split off ahead of a part written in place.
                small.reserve(ROUND_COPY_BYTES);
            }
            copied += gather(frame.parts(), &mut small, &mut slices)?;
            held.push(frame);
            next = rx.try_recv().ok();
            if next.is_some()
                && held.len() < MAX_FRAMES_PER_ROUND
                && copied < MAX_COPIED_PER_ROUND_BYTES
            {
                continue;
            }
            if !small.is_empty() {
                slices.push(small.split().freeze());
            }
            write_all_slices(&mut write, &mut slices).await?;
            held.clear();
            copied = 0;
            if small.capacity() > KEEP_COPY_BYTES {
                small = BytesMut::new();
            }
            slices.shrink_to(KEEP_SLICES);
        }
        write.flush().await?;
    }
    Ok(())
}

/// Adds one frame to the round; returns the bytes it copied.
fn gather(
    parts: &[Bytes],
    small: &mut BytesMut,
    slices: &mut Vec<Bytes>,
) -> std::io::Result<usize> {
    let mut copied = 4;
    small.extend_from_slice(&frame_len(parts)?.to_be_bytes());
    for p in parts {
        if p.len() < GATHER_FROM_BYTES {
            small.extend_from_slice(p);
            copied += p.len();
        } else {
            if !small.is_empty() {
                slices.push(small.split().freeze());
            }
            slices.push(p.clone());
        }
    }
    Ok(copied)
}

/// Writes `slices` whole, `MAX_IOV` at a time, and empties it.
async fn write_all_slices<W: AsyncWrite + Unpin>(
    write: &mut W,
    slices: &mut Vec<Bytes>,
) -> std::io::Result<()> {
    let mut first = 0;
    while first < slices.len() {
        let mut written = {
            let mut iov = [std::io::IoSlice::new(&[]); MAX_IOV];
            let count = MAX_IOV.min(slices.len() - first);
            for (to, from) in iov.iter_mut().zip(&slices[first..first + count]) {
                *to = std::io::IoSlice::new(from);
            }
            write.write_vectored(&iov[..count]).await?
        };
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let len = slices[first].len();
            if written >= len {
                written -= len;
                first += 1;
            } else {
                slices[first].advance(written);
                written = 0;
            }
        }
    }
    slices.clear();
    Ok(())
}

fn frame_len(parts: &[Bytes]) -> std::io::Result<u32> {
    let len: usize = parts.iter().map(Bytes::len).sum();
    u32::try_from(len)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame over 4 GiB"))
}

async fn write_buffered<W: AsyncWrite + Unpin, F: FrameParts>(
    write: W,
    mut rx: mpsc::Receiver<F>,
) -> std::io::Result<()> {
    let mut out = tokio::io::BufWriter::with_capacity(64 * 1024, write);
    while let Some(frame) = rx.recv().await {
        write_one(&mut out, frame.parts()).await?;
        drop(frame);
        while let Ok(next) = rx.try_recv() {
            write_one(&mut out, next.parts()).await?;
        }
        out.flush().await?;
    }
    Ok(())
}

async fn write_one<W: AsyncWrite + Unpin>(
    out: &mut tokio::io::BufWriter<W>,
    parts: &[Bytes],
) -> std::io::Result<()> {
    out.write_all(&frame_len(parts)?.to_be_bytes()).await?;
    for p in parts {
        out.write_all(p).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::codec;
    use crate::parts::Frame;

    #[tokio::test]
    async fn frames_of_many_parts_arrive_whole_through_a_narrow_pipe() {
        use futures::StreamExt;
        // A 7-byte pipe: every write is cut short, mostly inside a part.
        let (w, r) = tokio::io::duplex(7);
        let (tx, rx) = mpsc::channel::<Frame>(4);
        let writer = tokio::spawn(write_frames(w, rx));
        let big = Bytes::from((0..5000u32).map(|i| i as u8).collect::<Vec<_>>());
        let frames: Vec<Frame> = vec![
            vec![
                Bytes::from_static(b"head"),
                big.clone(),
                Bytes::from_static(b"tail"),
            ]
            .into(),
            Bytes::new().into(),
            vec![big.slice(10..20), Bytes::new(), big.slice(4000..)].into(),
            Bytes::from_static(b"x").into(),
        ];
        let expected: Vec<Bytes> = frames.iter().map(Frame::to_bytes).collect();
        let sender = tokio::spawn(async move {
            for f in frames {
                tx.send(f).await.unwrap();
            }
        });
        let mut read = tokio_util::codec::FramedRead::new(r, codec(1 << 20));
        for want in &expected {
            let got = read.next().await.unwrap().unwrap();
            assert_eq!(&got[..], &want[..]);
        }
        sender.await.unwrap();
        writer.await.unwrap().unwrap();
        assert!(read.next().await.is_none(), "nothing after the last frame");
    }

    /// A stream taking at most `limit` bytes per call, that records what it was given.
    struct NarrowGather {
        limit: usize,
        /// What `is_write_vectored` says.
        vectored: bool,
        out: Vec<u8>,
        /// Addresses of the I/O vector entries seen.
        seen: Vec<usize>,
        calls: usize,
        /// Whether a flush came after the last write (a TLS stream sends nothing without).
        flushed: bool,
    }

    impl NarrowGather {
        fn new(limit: usize, vectored: bool) -> Self {
            Self {
                limit,
                vectored,
                out: Vec::new(),
                seen: Vec::new(),
                calls: 0,
                flushed: false,
            }
        }
    }

    /// Each frame behind its length, as the reader expects them.
    fn expected_bytes(frames: &[Frame]) -> Vec<u8> {
        let mut expected = Vec::new();
        for f in frames {
            expected.extend_from_slice(&(f.len() as u32).to_be_bytes());
            expected.extend_from_slice(&f.to_bytes());
        }
        expected
    }

    /// Runs the writer over `frames`, all queued before it starts.
    async fn write_queued(frames: &[Frame], w: &mut NarrowGather) {
        let (tx, rx) = mpsc::channel::<Frame>(frames.len());
        for f in frames {
            tx.try_send(f.clone()).unwrap();
        }
        drop(tx);
        write_frames(w, rx).await.unwrap();
    }

    impl AsyncWrite for NarrowGather {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.poll_write_vectored(cx, &[std::io::IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> std::task::Poll<std::io::Result<usize>> {
            assert!(bufs.len() <= MAX_IOV, "{} entries", bufs.len());
            let me = &mut *self;
            me.calls += 1;
            me.flushed = false;
            let mut taken = 0;
            for b in bufs {
                me.seen.push(b.as_ptr() as usize);
                let n = b.len().min(me.limit - taken);
                me.out.extend_from_slice(&b[..n]);
                taken += n;
                if taken == me.limit {
                    break;
                }
            }
            std::task::Poll::Ready(Ok(taken))
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            self.flushed = true;
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn gathered_writes_send_every_byte_in_order_and_large_parts_in_place() {
        let big = Bytes::from((0..5000u32).map(|i| i as u8).collect::<Vec<_>>());
        // Far more parts than one I/O vector takes, small pieces between them.
        let mut frames: Vec<Frame> = (0..150)
            .map(|i| {
                vec![
                    Bytes::from(vec![i as u8; i % 7]),
                    big.clone(),
                    big.slice(..9),
                ]
                .into()
            })
            .collect();
        frames.push(Bytes::new().into());
        let expected = expected_bytes(&frames);
        for limit in [7, 4999, 5001, 1 << 20] {
            let mut w = NarrowGather::new(limit, true);
            write_queued(&frames, &mut w).await;
            assert!(w.out == expected, "limit {limit}: bytes differ");
            assert!(w.flushed, "limit {limit}: not flushed after the last write");
            assert!(
                w.seen.contains(&(big.as_ptr() as usize)),
                "limit {limit}: the large part was copied"
            );
            if limit == 1 << 20 {
                // Each large part in place, the small pieces between two of them gathered
                // into one entry (a length, 0-6 bytes, 9 bytes): two entries per frame
                // and one per round, not four per frame.
                let rounds = frames.len().div_ceil(MAX_FRAMES_PER_ROUND);
                assert!(
                    w.seen.len() <= 2 * frames.len() + rounds,
                    "{} entries",
                    w.seen.len()
                );
                assert_eq!(w.calls, rounds);
            }
        }
    }

    #[tokio::test]
    async fn a_stream_without_vectored_writes_gets_every_byte_through_the_buffer() {
        let big = Bytes::from((0..70_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let mid = Bytes::from((0..6000u32).map(|i| (i / 3) as u8).collect::<Vec<_>>());
        let frames: Vec<Frame> = (0..20)
            .map(|i| {
                vec![
                    Bytes::from(vec![i as u8; i]),
                    mid.slice(..5000 + i),
                    big.clone(),
                ]
                .into()
            })
            .collect();
        let expected = expected_bytes(&frames);
        for limit in [7, 65_536, 1 << 20] {
            let mut w = NarrowGather::new(limit, false);
            write_queued(&frames, &mut w).await;
            assert!(w.out == expected, "limit {limit}: bytes differ");
            assert!(w.flushed, "limit {limit}: not flushed after the last write");
            // The 70,000-byte part, over the buffer's 64 KiB, reaches the stream in place;
            // the 5,000-byte ones, which a gather would reference, are copied.
            assert!(w.seen.contains(&(big.as_ptr() as usize)), "limit {limit}");
            assert!(
                !w.seen.contains(&(mid.as_ptr() as usize)),
                "limit {limit}: a part under 64 KiB was not buffered"
            );
        }
    }

    #[tokio::test]
    async fn a_round_copies_at_most_64_kib_of_small_parts() {
        // 10 frames of 100 parts of 1 KiB: each copies 100 KiB, so each is its own round
        // (one call each with room for all), rather than one round of 1 MB.
        let piece = Bytes::from(vec![7u8; 1024]);
        let frames: Vec<Frame> = (0..10).map(|_| vec![piece.clone(); 100].into()).collect();
        let mut w = NarrowGather::new(1 << 30, true);
        write_queued(&frames, &mut w).await;
        assert!(w.out == expected_bytes(&frames), "bytes differ");
        assert_eq!(w.calls, 10);
    }
}
