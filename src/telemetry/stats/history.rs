//! A flow's recent history: its counters sampled every few seconds, kept for the status
//! page's charts.

use super::FlowStats;

/// How long the history of each flow reaches back, and how often it is sampled.
pub const HISTORY_SECONDS: i64 = 15 * 60;
pub const SAMPLE_SECONDS: u64 = 5;

/// One point of a flow's history (for the status page's charts).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Sample {
    pub at_unix_ms: i64,
    pub records: u64,
    pub bytes: u64,
    pub lag_records: u64,
}

impl FlowStats {
    /// Adds a point to the history, dropping those older than [`HISTORY_SECONDS`].
    pub fn sample(&self, at_unix_ms: i64) {
        let point = Sample {
            at_unix_ms,
            records: self.records(),
            bytes: self.bytes(),
            lag_records: self.lag_records(),
        };
        let mut h = self.history.lock().expect("history lock");
        while h
            .front()
            .is_some_and(|p| at_unix_ms - p.at_unix_ms > HISTORY_SECONDS * 1000)
        {
            h.pop_front();
        }
        h.push_back(point);
    }

    pub fn history(&self) -> Vec<Sample> {
        self.history
            .lock()
            .expect("history lock")
            .iter()
            .copied()
            .collect()
    }
}
