//! What the metrics callbacks, `/status`, `/readyz` and the periodic line read of a flow:
//! its counters, latency percentiles and buckets, lag and partition states.

use super::*;

impl FlowStats {
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn throttle_wait_seconds(&self) -> f64 {
        self.throttle_wait_us.load(Ordering::Relaxed) as f64 / 1e6
    }

    pub fn in_flight_bytes(&self) -> u64 {
        self.in_flight_bytes.load(Ordering::Relaxed)
    }

    pub fn retries(&self) -> BTreeMap<&'static str, u64> {
        self.retries.lock().expect("retries lock").clone()
    }

    pub fn errors(&self) -> BTreeMap<&'static str, u64> {
        self.errors.lock().expect("errors lock").clone()
    }

    pub fn errors_total(&self) -> u64 {
        self.errors().values().sum::<u64>() + self.retries().values().sum::<u64>()
    }

    pub fn last_error(&self) -> Option<(i64, String)> {
        self.last_error.lock().expect("error lock").clone()
    }

    /// Since when (Unix ms) the target has been failing, if it is.
    pub fn target_failing_since_ms(&self) -> Option<i64> {
        Some(self.target_failing_since_ms.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    pub fn last_ack_ms(&self) -> Option<i64> {
        Some(self.last_ack_ms.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    /// Unix ms of the last acknowledged batch or of the flow's last start, whichever is
    /// later: what "nothing acknowledged for so long" counts from.
    /// When the flow last finished starting (ms since the epoch; 0 before).
    pub fn started_ms(&self) -> i64 {
        self.started_ms.load(Ordering::Relaxed)
    }

    pub fn last_ack_or_started_ms(&self) -> i64 {
        let started_ms = self.started_ms.load(Ordering::Relaxed);
        self.last_ack_ms().unwrap_or(0).max(started_ms)
    }

    /// Replication latency percentiles in seconds (`None` before the first batch).
    pub fn latency_percentiles(&self, quantiles: &[f64]) -> Option<Vec<f64>> {
        let h = self.latency_ms.lock().expect("latency lock");
        (!h.is_empty()).then(|| {
            quantiles
                .iter()
                .map(|q| h.value_at_quantile(*q) as f64 / 1000.0)
                .collect()
        })
    }

    /// The latency histogram in buckets with upper bounds `bounds_ms` (ascending):
    /// cumulative counts (a batch in the first bucket whose bound is at least its latency,
    /// within the histogram's 1%), the count of batches and the sum of their latencies in
    /// seconds. `None` before the first batch.
    pub fn latency_buckets(&self, bounds_ms: &[f64]) -> Option<(Vec<u64>, u64, f64)> {
        let h = self.latency_ms.lock().expect("latency lock");
        if h.is_empty() {
            return None;
        }
        let mut cumulative = vec![0u64; bounds_ms.len()];
        for v in h.iter_recorded() {
            let value = v.value_iterated_to() as f64;
            if let Some(n) = cumulative.get_mut(bounds_ms.partition_point(|b| *b < value)) {
                *n += v.count_at_value();
            }
        }
        let mut total = 0;
        for n in &mut cumulative {
            total += *n;
            *n = total;
        }
        let sum_s = self.latency_sum_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        Some((cumulative, h.len(), sum_s))
    }

    pub fn latency_batches(&self) -> u64 {
        self.latency_ms.lock().expect("latency lock").len()
    }

    /// Records behind the source, over the partitions whose lag is known.
    pub fn lag_records(&self) -> u64 {
        self.partitions()
            .iter()
            .filter_map(|(_, p)| p.lag_records())
            .sum()
    }

    /// Partitions whose lag is unknown: no Fetch or ListOffsets has answered for them.
    pub fn lag_unknown_partitions(&self) -> usize {
        self.partitions()
            .iter()
            .filter(|(_, p)| p.lag_records().is_none())
            .count()
    }

    /// The age of the oldest record not mirrored yet, over the partitions where it is known.
    pub fn lag_seconds(&self, now_ms: i64) -> f64 {
        self.partitions()
            .iter()
            .filter_map(|(_, p)| p.lag_seconds(now_ms))
            .fold(0.0, f64::max)
    }

    /// Partitions per state.
    pub fn partition_states(&self) -> [(PartitionState, u64); 3] {
        let parts = self.partitions();
        PartitionState::ALL.map(|s| {
            (
                s,
                parts.iter().filter(|(_, p)| p.state() == s).count() as u64,
            )
        })
    }
}
