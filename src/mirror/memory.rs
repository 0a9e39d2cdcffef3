//! A flow's memory budget: `max_in_flight_bytes` is the bound on the bytes of record data
//! the flow holds. It covers a Fetch response from before it is sent (its `max_bytes` is
//! reserved) until it is sliced, and then each partition's batches until the target
//! acknowledged them. Produce requests reference those batches rather than copying them
//! ([`kmirror_wire::parts`]), so they add only their few bytes of headers.
//!
//! A response shared by several partitions is split by copying each partition's batches
//! out of it while it is still allocated, so such a Fetch reserves twice what it asks for
//! (the response and its copies) and asks for no more than 1 MiB (at most half the budget,
//! [`Memory::split_headroom_bytes`]); what the copies do not take is released after the
//! split. A partition with more data is fetched alone, and its response is handed to it
//! without a copy, so that Fetch reserves only what it asks for.
//!
//! A partition may hold at most its share of the fetch pool before it is left out of fetches,
//! so partitions stuck on the target keep only their share and the others go on. What is
//! not counted is fixed overhead: code, runtime, connection buffers and per-partition
//! state.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// The most a shared response may bring (at most half the budget): its split needs as
/// much again.
const SPLIT_HEADROOM_BYTES: usize = 1 << 20;

/// The budget of one flow.
#[derive(Debug, Clone)]
pub struct Memory {
    fetch: Arc<Semaphore>,
    fetch_bytes: usize,
    headroom_bytes: usize,
    /// Woken whenever a partition's share is released (its batches were acknowledged).
    released: Arc<Notify>,
}

impl Memory {
    pub fn new(max_in_flight_bytes: usize) -> Self {
        let total = max_in_flight_bytes.min(Semaphore::MAX_PERMITS);
        let headroom = SPLIT_HEADROOM_BYTES.min(total / 2);
        let fetch_bytes = total;
        Self {
            fetch: Arc::new(Semaphore::new(fetch_bytes)),
            fetch_bytes,
            headroom_bytes: headroom,
            released: Arc::new(Notify::new()),
        }
    }

    /// Waits until some partition releases memory (or returns at once if one did since
    /// the last wait).
    pub async fn released(&self) {
        self.released.notified().await;
    }

    pub fn fetch_pool_bytes(&self) -> usize {
        self.fetch_bytes
    }

    /// The most a response shared by several partitions may bring (its Fetch reserves as
    /// much again for the split).
    pub fn split_headroom_bytes(&self) -> usize {
        self.headroom_bytes
    }

    /// Fetch-pool bytes free now.
    pub fn fetch_available(&self) -> usize {
        self.fetch.available_permits()
    }

    /// Reserves `bytes` of the fetch pool now, or `None` if they are not free.
    pub fn try_reserve_fetch(&self, bytes: usize) -> Option<Reservation> {
        let bytes = bytes.min(self.fetch_bytes);
        let permit = self
            .fetch
            .clone()
            .try_acquire_many_owned(u32::try_from(bytes).ok()?)
            .ok()?;
        Some(Reservation { permit, bytes })
    }

    /// Waits until at least `bytes` of the fetch pool are free (without taking them).
    pub async fn wait_fetch(&self, bytes: usize) {
        let bytes = u32::try_from(bytes.min(self.fetch_bytes)).unwrap_or(u32::MAX);
        if let Ok(p) = self.fetch.acquire_many(bytes).await {
            drop(p);
        }
    }
}

/// Reserved fetch-pool bytes, handed out to partitions piece by piece.
#[derive(Debug)]
pub struct Reservation {
    permit: OwnedSemaphorePermit,
    bytes: usize,
}

impl Reservation {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds more reserved bytes.
    pub fn merge(&mut self, other: Reservation) {
        self.permit.merge(other.permit);
        self.bytes += other.bytes;
    }

    /// Moves `bytes` of this reservation to a partition's share; `released` is woken when
    /// the share is dropped.
    pub fn take(&mut self, bytes: usize, partition: &Held, memory: &Memory) -> Option<Share> {
        let bytes = bytes.min(self.bytes);
        let permit = self.permit.split(bytes)?;
        self.bytes -= bytes;
        partition.0.fetch_add(bytes, Ordering::Relaxed);
        Some(Share {
            permit,
            bytes,
            held: partition.clone(),
            released: memory.released.clone(),
        })
    }
}

/// The bytes one partition holds.
#[derive(Debug, Clone, Default)]
pub struct Held(Arc<AtomicUsize>);

impl Held {
    pub fn bytes(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Memory a partition holds until its batches are acknowledged.
#[derive(Debug)]
pub struct Share {
    permit: OwnedSemaphorePermit,
    bytes: usize,
    held: Held,
    released: Arc<Notify>,
}

impl Share {
    /// Releases all but `bytes` of this share now (the memory it stands for shrank).
    pub fn shrink_to(&mut self, bytes: usize) {
        let Some(freed) = self.bytes.checked_sub(bytes).filter(|n| *n > 0) else {
            return;
        };
        if let Some(permit) = self.permit.split(freed) {
            drop(permit);
            self.bytes = bytes;
            self.held.0.fetch_sub(freed, Ordering::Relaxed);
            self.released.notify_one();
        }
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.held.0.fetch_sub(self.bytes, Ordering::Relaxed);
        self.released.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_budget_is_the_fetch_pool_and_shared_responses_fit_twice() {
        for total in [1 << 20, 4 << 20, 64 << 20, 1 << 30] {
            let m = Memory::new(total);
            assert_eq!(m.fetch_pool_bytes(), total);
            assert_eq!(m.split_headroom_bytes(), (1 << 20).min(total / 2));
            assert!(2 * m.split_headroom_bytes() <= m.fetch_pool_bytes());
        }
    }

    #[tokio::test]
    async fn a_share_counts_against_its_partition_until_dropped() {
        let m = Memory::new(8 << 20);
        let mut r = m.try_reserve_fetch(1 << 20).expect("free");
        let p = Held::default();
        let a = r.take(300_000, &p, &m).unwrap();
        let b = r.take(200_000, &p, &m).unwrap();
        assert_eq!(p.bytes(), 500_000);
        assert_eq!(r.bytes(), (1 << 20) - 500_000);
        drop(r);
        assert_eq!(m.fetch_available(), m.fetch_pool_bytes() - 500_000);
        drop(a);
        assert_eq!(p.bytes(), 200_000);
        drop(b);
        assert_eq!(m.fetch_available(), m.fetch_pool_bytes());
    }

    #[tokio::test]
    async fn a_shrunk_share_releases_the_difference_at_once() {
        let m = Memory::new(8 << 20);
        let mut r = m.try_reserve_fetch(1 << 20).expect("free");
        let p = Held::default();
        let mut a = r.take(1 << 20, &p, &m).unwrap();
        a.shrink_to(300_000);
        assert_eq!(p.bytes(), 300_000);
        assert_eq!(m.fetch_available(), m.fetch_pool_bytes() - 300_000);
        a.shrink_to(400_000);
        assert_eq!(p.bytes(), 300_000, "a share never grows");
        drop(a);
        assert_eq!(p.bytes(), 0);
        assert_eq!(m.fetch_available(), m.fetch_pool_bytes());
    }

    #[test]
    fn a_reservation_beyond_the_free_bytes_is_refused() {
        let m = Memory::new(8 << 20);
        let all = m.try_reserve_fetch(m.fetch_pool_bytes()).unwrap();
        assert!(m.try_reserve_fetch(1).is_none());
        drop(all);
        assert!(m.try_reserve_fetch(1).is_some());
    }
}
