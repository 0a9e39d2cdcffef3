//! Exponential backoff with full jitter and an optional deadline.
//!
//! Used by every retry loop in kmirror; the decision *whether* to retry lives in
//! [`crate::errors::classify`], this module only decides *how long* to wait.

use std::time::{Duration, Instant};

/// Backoff settings.
#[derive(Debug, Clone, Copy)]
pub struct BackoffConfig {
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
    /// Give up once this much time has passed since the first attempt.
    pub deadline: Option<Duration>,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            multiplier: 2.0,
            deadline: None,
        }
    }
}

/// The state of one retry sequence.
#[derive(Debug)]
pub struct Backoff {
    config: BackoffConfig,
    ceiling: Duration,
    /// When the sequence started, kept only with a deadline: a retry loop is set up for
    /// every batch sent, and reading the clock for nothing there showed in profiles.
    started: Option<Instant>,
    /// The jitter's state, seeded at the first wait (0 until then).
    rng: u64,
}

impl Backoff {
    pub fn new(config: BackoffConfig) -> Self {
        Self {
            config,
            ceiling: config.initial,
            started: config.deadline.map(|_| Instant::now()),
            rng: 0,
        }
    }

    /// The next wait, or `None` once the deadline has passed.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if let (Some(deadline), Some(started)) = (self.config.deadline, self.started) {
            if started.elapsed() >= deadline {
                return None;
            }
        }
        if self.rng == 0 {
            self.rng = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x9E37_79B9_7F4A_7C15)
                | 1;
        }
        // xorshift64: jitter needs spread, not cryptographic quality.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let fraction = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        let delay = self.ceiling.mul_f64(0.5 + fraction / 2.0);
        self.ceiling = self
            .ceiling
            .mul_f64(self.config.multiplier)
            .min(self.config.max);
        Some(delay)
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.ceiling = self.config.initial;
        if self.started.is_some() {
            self.started = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_jitters_within_bounds() {
        let mut b = Backoff::new(BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(400),
            multiplier: 2.0,
            deadline: None,
        });
        let caps = [100, 200, 400, 400, 400];
        for cap in caps {
            let d = b.next_delay().unwrap();
            assert!(d <= Duration::from_millis(cap), "{d:?} > {cap}");
            assert!(d >= Duration::from_millis(cap / 2), "{d:?} < {cap}/2");
        }
    }

    #[test]
    fn deadline_ends_the_sequence() {
        let mut b = Backoff::new(BackoffConfig {
            deadline: Some(Duration::ZERO),
            ..BackoffConfig::default()
        });
        assert_eq!(b.next_delay(), None);
    }
}
