//! Where rebuilds run. A merge of small batches, a batch Kafka would refuse from a
//! client, or a batch the target refused as too large and split into parts
//! (`pipeline/recovery.rs`) is decompressed and compressed again. With gzip or zstd that takes longer than
//! a near target's round trip (about 20 ms per MiB with gzip, 4 ms with zstd): run on the
//! scheduler's thread, it would hold up every other partition's acknowledgements, fetches
//! and sends meanwhile, so a large one runs on a blocking thread beside it, one per CPU
//! beyond the first, in buffers kept for the next ([`Rebuilder`]). Lz4 and snappy (about
//! 2 ms per MiB) and small runs are rebuilt in place: the hand-off then costs more than it
//! frees (lz4 merges off the thread took 20% more CPU and 16% more time in
//! benches/catchup's small batches behind 50 ms, on 2 cores).

use std::sync::{Mutex, OnceLock, PoisonError};

use kmirror_wire::rebuild::Rebuilder;
use tokio::sync::Semaphore;

use super::batching::{Rebuild, Rebuilt, ShapeError};

/// Runs of fewer source bytes are rebuilt on the scheduler's thread.
pub const OFF_THREAD_FROM_BYTES: usize = 64 << 10;

/// Kafka's codec numbers of gzip and zstd (record batch attribute bits 0-2).
const SLOW_CODECS: [i16; 2] = [1, 4];

/// The rebuilds running off the scheduler's thread, and their buffers.
struct Pool {
    running: Semaphore,
    rebuilders: Mutex<Vec<Rebuilder>>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        running: Semaphore::new(concurrent_rebuilds()),
        rebuilders: Mutex::new(Vec::new()),
    })
}

/// One rebuild at a time per CPU beyond the first (at least one): the scheduler's thread
/// keeps a CPU of its own for the network.
fn concurrent_rebuilds() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

thread_local! {
    /// The buffers rebuilds on the scheduler's thread work in, kept between them: per
    /// thread, not per partition.
    static HERE: std::cell::RefCell<Rebuilder> = std::cell::RefCell::default();
}

/// Runs `work` in this thread's [`Rebuilder`].
fn here<R>(work: impl FnOnce(&mut Rebuilder) -> R) -> R {
    HERE.with_borrow_mut(work)
}

/// Runs `work`, which rebuilds `bytes` of batches compressed with `codec` (Kafka's number),
/// in a [`Rebuilder`]: off the scheduler's thread when that is large and slow to compress,
/// else [`here`]. `None` when the runtime shut down before it ran.
pub async fn run<R, F>(codec: i16, bytes: usize, work: F) -> Option<R>
where
    F: FnOnce(&mut Rebuilder) -> R + Send + 'static,
    R: Send + 'static,
{
    if !SLOW_CODECS.contains(&codec) || bytes < OFF_THREAD_FROM_BYTES {
        return Some(here(work));
    }
    let pool = pool();
    let _running = pool
        .running
        .acquire()
        .await
        .expect("the semaphore is never closed");
    let handle = tokio::task::spawn_blocking(move || {
        let taken = pool
            .rebuilders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut rebuilder = taken.unwrap_or_default();
        let done = work(&mut rebuilder);
        pool.rebuilders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(rebuilder);
        done
    });
    match handle.await {
        Ok(done) => Some(done),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => None,
    }
}

/// Rebuilds `job` ([`run`]).
pub async fn rebuild(job: Rebuild) -> Result<Rebuilt, ShapeError> {
    run(job.codec(), job.source_bytes(), move |r| job.run(r))
        .await
        .unwrap_or(Err(ShapeError::Cancelled))
}

/// What tests of work off the scheduler's thread share.
#[cfg(test)]
pub mod testing {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use bytes::Bytes;
    use kafka_protocol::records::Record;

    /// `count` records from `first_offset` on, of 100 bytes that barely compress.
    pub fn noise_records(first_offset: i64, count: i64, seed: &mut u64) -> Vec<Record> {
        (0..count)
            .map(|i| {
                let value: Vec<u8> = (0..100)
                    .map(|_| {
                        *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        (*seed >> 56) as u8
                    })
                    .collect();
                kmirror_wire::records::record(
                    first_offset + i,
                    1_000,
                    None,
                    Some(Bytes::from(value)),
                )
            })
            .collect()
    }

    /// Counts how often a task on this thread runs until dropped.
    pub fn ticker() -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
        let ticks = Arc::new(AtomicU64::new(0));
        let counting = ticks.clone();
        let task = tokio::spawn(async move {
            loop {
                counting.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        });
        (ticks, task)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use bytes::BytesMut;
    use kafka_protocol::records::Compression;

    use super::testing::{noise_records, ticker};
    use super::*;
    use crate::mirror::batching::{Batcher, Chunk, Next};

    /// `count` gzip batches of 100 records each, values that barely compress.
    fn gzip_chunk(count: i64) -> Chunk {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut data = BytesMut::new();
        for b in 0..count {
            let records = noise_records(b * 100, 100, &mut seed);
            data.extend_from_slice(
                &kmirror_wire::records::encode(&records, Compression::Gzip).unwrap(),
            );
        }
        Chunk {
            records: count * 100,
            data,
            next_source_offset: count * 100,
            last_epoch: None,
            permit: None,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_large_merge_leaves_the_schedulers_thread_to_other_tasks() {
        let mut batcher = Batcher::new(1 << 20, 0);
        batcher.push(gzip_chunk(60)).unwrap();
        let Next::Rebuild(job) = batcher.next(true).unwrap() else {
            panic!("small batches waiting together are merged");
        };
        assert!(job.source_bytes() >= OFF_THREAD_FROM_BYTES);
        let (ticks, task) = ticker();
        tokio::task::yield_now().await;
        let before = ticks.load(Ordering::Relaxed);
        let rebuilt = rebuild(job).await.unwrap();
        let during = ticks.load(Ordering::Relaxed) - before;
        task.abort();
        let Next::Ready(ready) = batcher.rebuilt(rebuilt) else {
            panic!("one merged batch");
        };
        assert_eq!(ready.records, 6_000);
        // Recompressing 600 KB of gzip takes milliseconds; a task yielding in a loop runs
        // thousands of times meanwhile when the merge is off this thread, never when on it.
        assert!(
            during > 100,
            "the other task ran {during} times during the merge"
        );
    }
}
