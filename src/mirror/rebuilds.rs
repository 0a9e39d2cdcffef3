//! Where rebuilds run. A merge of small batches, or a batch Kafka would refuse from a
//! client, is decompressed and compressed again. With gzip or zstd that takes longer than
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

use super::batching::{self, Rebuild, Rebuilt, ShapeError};

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

/// Rebuilds `job`, off the scheduler's thread when it is large and slow to compress.
pub async fn rebuild(job: Rebuild) -> Result<Rebuilt, ShapeError> {
    if !SLOW_CODECS.contains(&job.codec()) || job.source_bytes() < OFF_THREAD_FROM_BYTES {
        return batching::rebuild_here(job);
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
        let rebuilt = job.run(&mut rebuilder);
        pool.rebuilders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(rebuilder);
        rebuilt
    });
    match handle.await {
        Ok(rebuilt) => rebuilt,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(ShapeError::Cancelled),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::Compression;

    use super::*;
    use crate::mirror::batching::{Batcher, Chunk, Next};

    /// `count` gzip batches of 100 records each, values that barely compress.
    fn gzip_chunk(count: i64) -> Chunk {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut data = BytesMut::new();
        for b in 0..count {
            let records: Vec<_> = (0..100)
                .map(|i| {
                    let value: Vec<u8> = (0..100)
                        .map(|_| {
                            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                            (seed >> 56) as u8
                        })
                        .collect();
                    kmirror_wire::records::record(
                        b * 100 + i,
                        1_000,
                        None,
                        Some(Bytes::from(value)),
                    )
                })
                .collect();
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

    /// Counts how often a task on this thread runs until dropped.
    fn ticker() -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
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
