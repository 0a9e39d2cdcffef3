//! Per-flow rate limits with governor: bytes per second and records per second.
//!
//! The bucket starts empty, so mirroring N bytes takes at least N / limit seconds. The
//! burst is a tenth of a second's worth but never below 1 MiB (or 1,000 records), so one
//! large batch always fits; a request larger than the burst is waited for in burst-sized
//! parts rather than rejected — governor's "insufficient capacity" is handled, never ignored.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::DefaultClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

/// How often a wait for the limits is told while it lasts ([`Throttle::acquire_observed`]).
const WAIT_REPORT: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Bucket {
    limiter: Limiter,
    burst: NonZeroU32,
}

impl Bucket {
    fn new(per_sec: u64, min_burst: u32) -> Self {
        let rate = NonZeroU32::new(per_sec.clamp(1, u64::from(u32::MAX)) as u32).expect("non-zero");
        let burst = (per_sec / 10).clamp(u64::from(min_burst), u64::from(u32::MAX)) as u32;
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
}

impl Throttle {
    pub fn new(bytes_per_sec: Option<u64>, records_per_sec: Option<u64>) -> Self {
        Self {
            bytes: bytes_per_sec.map(|b| Bucket::new(b, 1 << 20)),
            records: records_per_sec.map(|r| Bucket::new(r, 1000)),
        }
    }

    /// Whether a rate is set, so that [`Self::acquire`] may wait.
    pub fn is_limited(&self) -> bool {
        self.bytes.is_some() || self.records.is_some()
    }

    /// Waits until `bytes` and `records` may pass.
    pub async fn acquire(&self, bytes: u64, records: u64) {
        if let Some(b) = &self.bytes {
            b.take(bytes).await;
        }
        if let Some(r) = &self.records {
            r.take(records).await;
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
    ) {
        let started = Instant::now();
        let mut told = Duration::ZERO;
        let acquire = self.acquire(bytes, records);
        tokio::pin!(acquire);
        loop {
            tokio::select! {
                () = &mut acquire => break,
                () = tokio::time::sleep(WAIT_REPORT) => {
                    let now = started.elapsed();
                    waited(now - told);
                    told = now;
                }
            }
        }
        waited(started.elapsed().saturating_sub(told));
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
        t.acquire_observed(0, 250, |slice| slices.push((start.elapsed(), slice)))
            .await;
        let total = start.elapsed();
        assert!(total >= Duration::from_millis(2_400), "{total:?}");
        assert!(slices.len() >= 3, "{slices:?}");
        assert!(
            slices[0].0 < total - Duration::from_millis(1_000),
            "the first slice is told a second in, long before the end: {slices:?}"
        );
        let told: Duration = slices.iter().map(|s| s.1).sum();
        assert!(
            total - told < Duration::from_millis(50),
            "{told:?} of {total:?}"
        );
    }

    #[tokio::test]
    async fn unlimited_never_waits_and_large_requests_are_split_not_refused() {
        let t = Throttle::new(None, None);
        assert!(!t.is_limited());
        t.acquire(u64::MAX, u64::MAX).await;
        // 3 MiB at 20 MiB/s with a 2 MiB burst: split in parts, and it completes.
        let t = Throttle::new(Some(20 << 20), None);
        assert!(t.is_limited());
        let start = Instant::now();
        t.acquire(3 << 20, 1).await;
        assert!(
            start.elapsed().as_millis() >= 100,
            "the bucket starts empty"
        );
    }
}
