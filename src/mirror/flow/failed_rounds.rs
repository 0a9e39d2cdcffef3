//! Discovery rounds failing in a row (a cluster down): said at WARN at the first, then
//! once a minute with the count, each at DEBUG, and at INFO when a round reads both
//! clusters again. Every round was a WARN: two flows at a 2 s interval wrote 30 lines in
//! 30 s of a source outage.

use std::time::{Duration, Instant};

use crate::client::ClientError;

/// How often rounds that keep failing are said again.
const REPORT_AGAIN: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub(super) struct FailedRounds {
    /// Since when rounds fail, when last said at WARN, and how many failed.
    failing: Option<(Instant, Option<Instant>, u64)>,
}

impl FailedRounds {
    pub(super) fn failed(&mut self, flow: &str, e: &ClientError) {
        let now = Instant::now();
        let (_, reported, count) = self.failing.get_or_insert((now, None, 0));
        *count += 1;
        if reported.is_some_and(|r| now.duration_since(r) < REPORT_AGAIN) {
            tracing::debug!(flow, error = %e, failed_rounds = *count, "Discovery failed; retrying at the next interval.");
            return;
        }
        *reported = Some(now);
        tracing::warn!(flow, error = %e, failed_rounds = *count, "Discovery failed; retrying at the next interval (said again every minute while it fails).");
    }

    pub(super) fn succeeded(&mut self, flow: &str) {
        if let Some((since, _, count)) = self.failing.take() {
            tracing::info!(
                flow,
                failed_rounds = count,
                failing_for_s = since.elapsed().as_secs(),
                "Discovery reads both clusters again."
            );
        }
    }
}
