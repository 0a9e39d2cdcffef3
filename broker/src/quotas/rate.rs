//! A byte rate measured as Kafka's quota sensors measure it: `quota.window.num` (11)
//! samples of `quota.window.size.seconds` (1 s), the rate being their sum over the time
//! they span but never less than `samples - 1` windows (one more sample is kept, for one
//! that began before the window but had events within it); a value over the quota is
//! throttled for `(rate - quota) / quota * window` (Kafka: SampledStat, Rate.windowSize,
//! QuotaUtils.throttleTime).

/// Kafka's `quota.window.num` default.
pub const SAMPLES: usize = 11;
/// Kafka's `quota.window.size.seconds` default, in milliseconds.
pub const SAMPLE_WINDOW_MS: u64 = 1_000;

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// When the sample's window began, and its last event.
    start_ms: u64,
    last_event_ms: u64,
    value: f64,
}

impl Sample {
    fn new(now_ms: u64) -> Self {
        Self {
            start_ms: now_ms,
            last_event_ms: now_ms,
            value: 0.0,
        }
    }
}

/// One sensor's samples.
#[derive(Debug, Clone)]
pub struct Rate {
    samples: Vec<Sample>,
    current: usize,
}

impl Rate {
    pub fn new(now_ms: u64) -> Self {
        Self {
            samples: vec![Sample::new(now_ms)],
            current: 0,
        }
    }

    /// Adds `value` at `now_ms` (Kafka: SampledStat.record, which moves to the next
    /// sample once the current one's window has passed).
    pub fn record(&mut self, value: f64, now_ms: u64) {
        let sample = self.samples[self.current];
        if now_ms.saturating_sub(sample.start_ms) >= SAMPLE_WINDOW_MS {
            self.current = (self.current + 1) % (SAMPLES + 1);
            let fresh = Sample::new(now_ms);
            if self.current >= self.samples.len() {
                self.samples.push(fresh);
            } else {
                self.samples[self.current] = fresh;
            }
        }
        let current = &mut self.samples[self.current];
        current.value += value;
        current.last_event_ms = now_ms;
    }

    /// Forgets samples without an event within every window together (Kafka:
    /// SampledStat.purgeObsoleteSamples).
    fn purge(&mut self, now_ms: u64) {
        let expire_ms = SAMPLES as u64 * SAMPLE_WINDOW_MS;
        for s in &mut self.samples {
            if now_ms.saturating_sub(s.last_event_ms) >= expire_ms {
                *s = Sample::new(now_ms);
            }
        }
    }

    /// The time the rate is taken over (Kafka: Rate.windowSize).
    fn window_ms(&mut self, now_ms: u64) -> u64 {
        self.purge(now_ms);
        let oldest = self
            .samples
            .iter()
            .map(|s| s.start_ms)
            .min()
            .unwrap_or(now_ms);
        let mut elapsed = now_ms.saturating_sub(oldest);
        let full = elapsed / SAMPLE_WINDOW_MS;
        let least_full = SAMPLES as u64 - 1;
        if full < least_full {
            elapsed += (least_full - full) * SAMPLE_WINDOW_MS;
        }
        elapsed.max(1)
    }

    /// Per second, at `now_ms`, with the window it was taken over.
    pub fn measure(&mut self, now_ms: u64) -> (f64, u64) {
        let window_ms = self.window_ms(now_ms);
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        (total / (window_ms as f64 / 1_000.0), window_ms)
    }

    /// How long a client over `quota` (per second) is throttled: 0 within it (Kafka:
    /// QuotaUtils.throttleTime).
    pub fn throttle_ms(&mut self, quota: f64, now_ms: u64) -> u64 {
        let (rate, window_ms) = self.measure(now_ms);
        if rate <= quota {
            return 0;
        }
        ((rate - quota) / quota * window_ms as f64).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_rate_is_taken_over_ten_windows() {
        let mut r = Rate::new(0);
        r.record(10_000.0, 0);
        // 10,000 bytes over at least 10 s, and the time the current window has run.
        assert_eq!(r.measure(0), (1_000.0, 10_000));
        assert_eq!(r.measure(500).1, 10_500);
        assert_eq!(r.throttle_ms(1_000.0, 0), 0);
        r.record(10_000.0, 0);
        // 2,000/s against 1,000/s: (2,000 - 1,000) / 1,000 * 10 s.
        assert_eq!(r.throttle_ms(1_000.0, 0), 10_000);
    }

    #[test]
    fn old_samples_leave_the_window() {
        let mut r = Rate::new(0);
        r.record(50_000.0, 0);
        // Its last event 10.9 s ago: still within the window.
        r.record(0.0, 10_900);
        assert!(r.measure(10_900).0 > 0.0);
        for t in 11..=12 {
            r.record(0.0, t * SAMPLE_WINDOW_MS);
        }
        assert_eq!(r.measure(12 * SAMPLE_WINDOW_MS).0, 0.0);
        assert_eq!(r.throttle_ms(1.0, 12 * SAMPLE_WINDOW_MS), 0);
    }
}
