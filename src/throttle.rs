//! Per-flow rate limits with governor: bytes per second and records per second.
//!
//! The bucket starts empty, so mirroring N bytes takes at least N / limit seconds. The
//! burst is a tenth of a second's worth but never below 1 MiB (or 1,000 records), so one
//! large batch always fits; a request larger than the burst is waited for in burst-sized
//! parts rather than rejected — governor's "insufficient capacity" is handled, never ignored.

use std::num::NonZeroU32;

use governor::clock::DefaultClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

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
