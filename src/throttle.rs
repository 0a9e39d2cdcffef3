//! Per-flow rate limits with governor: bytes per second and records per second.
//!
//! The bucket starts empty, so mirroring N bytes takes at least N / limit seconds. The
//! burst, what the bucket holds again after a pause, is a tenth of a second's worth (at
//! least one byte or record), so after a pause N bytes still take N / limit seconds less
//! a tenth of a second: a low limit that protects a link holds after a quiet spell too. A
//! request larger than the burst (a batch) is waited for in burst-sized parts rather than
//! rejected — governor's "insufficient capacity" is handled, never ignored.
//!
//! Waiters take turns, first come first served, so partitions with a backlog share the
//! rate instead of one taking it all until it is done; and a drain closes the throttle,
//! so that what is still waiting for it is not sent ([`Throttle::close`]).

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::DefaultClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

/// How often a wait for the limits is told while it lasts ([`Throttle::acquire_observed`]).
const WAIT_REPORT: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Bucket {
    limiter: Limiter,
    burst: NonZeroU32,
}

impl Bucket {
    fn new(per_sec: u64) -> Self {
        let rate = NonZeroU32::new(per_sec.clamp(1, u64::from(u32::MAX)) as u32).expect("non-zero");
        let burst = (per_sec / 10).clamp(1, u64::from(u32::MAX)) as u32;
        let burst = NonZeroU32::new(burst).expect("non-zero");
        let limiter = RateLimiter::direct(Quota::per_second(rate).allow_burst(burst));
        // Start empty: the first bytes wait like every later byte.
        let _ = limiter.check_n(burst);
        Self { limiter, burst }
    }

    async fn take(&self, mut amount: u64) {
        while amount > 0 {
            let part = amount.min(u64::from(self.burst.get())) as u32;
            let n = NonZeroU32::new(part).expect("non-zero part");
            if self.limiter.until_n_ready(n).await.is_err() {
                // Cannot happen: `part` never exceeds the burst. Do not spin if it does.
                tracing::error!(
                    part,
                    burst = self.burst.get(),
                    "Rate limiter refused a request within its burst."
                );
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            amount -= u64::from(part);
        }
    }
}

/// The limits of one flow.
#[derive(Debug)]
pub struct Throttle {
    bytes: Option<Bucket>,
    records: Option<Bucket>,
    /// Held by the waiter whose turn it is; tokio's mutex queues the others in order.
    turn: tokio::sync::Mutex<()>,
    closed: CancellationToken,
}

impl Throttle {
    pub fn new(bytes_per_sec: Option<u64>, records_per_sec: Option<u64>) -> Self {
        Self {
            bytes: bytes_per_sec.map(Bucket::new),
            records: records_per_sec.map(Bucket::new),
            turn: tokio::sync::Mutex::new(()),
            closed: CancellationToken::new(),
        }
    }

    /// Whether a rate is set, so that [`Self::acquire`] may wait.
    pub fn is_limited(&self) -> bool {
        self.bytes.is_some() || self.records.is_some()
    }

    /// Closes the throttle: every wait under way and every later one ends refused. A flow
    /// draining for shutdown sends nothing more that waits for its limits.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Waits, in turn after the waiters before, until `bytes` and `records` may pass:
    /// true then, false if the throttle was closed first.
    pub async fn acquire(&self, bytes: u64, records: u64) -> bool {
        let take = async {
            let _turn = self.turn.lock().await;
            if let Some(b) = &self.bytes {
                b.take(bytes).await;
            }
            if let Some(r) = &self.records {
                r.take(records).await;
            }
        };
        tokio::select! {
            biased;
            () = self.closed.cancelled() => false,
            () = take => true,
        }
    }

    /// [`Self::acquire`], telling `waited` each slice of the wait: every [`WAIT_REPORT`]
    /// while it lasts and the rest at its end, so that a long wait (a low limit) shows in
    /// the flow's stats as it goes, not only once it is over.
    pub async fn acquire_observed(
        &self,
        bytes: u64,
        records: u64,
        mut waited: impl FnMut(Duration),
    ) -> bool {
        let started = Instant::now();
        let mut told = Duration::ZERO;
        let acquire = self.acquire(bytes, records);
        tokio::pin!(acquire);
        let admitted = loop {
            tokio::select! {
                admitted = &mut acquire => break admitted,
                () = tokio::time::sleep(WAIT_REPORT) => {
                    let now = started.elapsed();
                    waited(now - told);
                    told = now;
                }
            }
        };
        waited(started.elapsed().saturating_sub(told));
        admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wait of 2.5 s (250 records at 100 per second, the bucket empty) is told in slices
    /// while it lasts, which add up to the whole wait.
    #[tokio::test]
    async fn a_long_wait_is_told_while_it_lasts() {
        let t = Throttle::new(None, Some(100));
        let start = Instant::now();
        let mut slices: Vec<(Duration, Duration)> = Vec::new();
        assert!(
            t.acquire_observed(0, 250, |slice| slices.push((start.elapsed(), slice)))
                .await
        );
        let total = start.elapsed();
        assert!(total >= Duration::from_millis(2_400), "{total:?}");
        assert!(slices.len() >= 3, "{slices:?}");
        assert!(
            slices[0].0 < total - Duration::from_millis(1_000),
            "the first slice is told a second in, long before the end: {slices:?}"
        );
        let told: Duration = slices.iter().map(|s| s.1).sum();
        // (What is not told is the scheduler's: a tenth of the wait on a busy machine.)
        assert!(total - told < total / 10, "{told:?} of {total:?}");
    }

    #[tokio::test]
    async fn unlimited_never_waits_and_large_requests_are_split_not_refused() {
        let t = Throttle::new(None, None);
        assert!(!t.is_limited());
        assert!(t.acquire(u64::MAX, u64::MAX).await);
        // 3 MiB at 20 MiB/s with a 2 MiB burst: split in parts, and it completes.
        // (Real time, not paused: governor reads its own clock.)
        let t = Throttle::new(Some(20 << 20), None);
        assert!(t.is_limited());
        let start = Instant::now();
        assert!(t.acquire(3 << 20, 1).await);
        assert!(
            start.elapsed().as_millis() >= 100,
            "the bucket starts empty"
        );
    }

    /// After a quiet spell the bucket holds a tenth of a second's worth, not more: 1 MiB
    /// at 1 MiB/s, asked for in batches after a pause of over a second, still takes nearly
    /// a second (with a burst of 1 MiB it went through at once).
    #[tokio::test]
    async fn a_pause_lets_through_no_more_than_a_tenth_of_a_second() {
        let t = Throttle::new(Some(1 << 20), None);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let start = Instant::now();
        for _ in 0..16 {
            assert!(t.acquire(64 << 10, 64).await);
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(850),
            "1 MiB at 1 MiB/s after a pause took {took:?}"
        );
    }

    /// Waiters are let through in the order they came, and closing the throttle refuses
    /// the waits under way and later ones.
    #[tokio::test]
    async fn waiters_take_turns_and_a_closed_throttle_refuses() {
        let t = std::sync::Arc::new(Throttle::new(None, Some(1_000)));
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut waits = Vec::new();
        for i in 0..4 {
            let (t, order) = (t.clone(), order.clone());
            waits.push(tokio::spawn(async move {
                if t.acquire(0, 200).await {
                    order.lock().unwrap().push(i);
                }
            }));
            // Each waiter queues before the next one starts.
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
        }
        for w in waits {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
        let waiting = tokio::spawn({
            let t = t.clone();
            async move { t.acquire(0, 5_000).await }
        });
        tokio::task::yield_now().await;
        t.close();
        assert!(!waiting.await.unwrap(), "a wait under way is refused");
        assert!(!t.acquire(0, 1).await, "a later wait is refused");
    }
}
