//! A source batch that cannot be mirrored (its CRC does not match its bytes, or its header
//! is not a v2 batch's) is fetched again a few times before its partition stops: damage on
//! the way (a faulty network card, a flipped bit in a buffer) does not come back, a corrupt
//! log does. Kafka's consumer behaves alike: its position stays at the batch, so its next
//! poll fetches it again (`CompletedFetch`, CorruptRecordException). After
//! [`REFETCHES`] more fetches that all brought it bad, the partition stops with an ERROR
//! naming topic, partition and offset.
//!
//! A pipeline that met such a batch has first seen everything before it acknowledged, so
//! the partition starts again from its acknowledged position, with a producer session of
//! its own; a Fetch still on the wire for it is answered first (its data follows the old
//! position).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::partitions::report_bad_source_batch;
use super::FlowRunner;
use crate::client::produce::ProducerSession;
use crate::mirror::progress::{Progress, SourcePartition};
use crate::telemetry::stats::PartitionState;

/// Fetches of a bad batch after the first, before its partition stops.
pub(super) const REFETCHES: u32 = 3;

/// The wait before the first fetch again; doubled for each further one.
const FIRST_REFETCH_DELAY: Duration = Duration::from_secs(1);

/// A partition's pipeline ended at a bad source batch.
#[derive(Debug)]
pub(super) struct BadBatch {
    pub partition: SourcePartition,
    pub target_topic: String,
    pub offset: i64,
    pub error: String,
}

/// Where pipelines report the bad batches they ended at. Unbounded: each pipeline sends at
/// most once, so it holds at most one message per partition.
#[derive(Clone)]
pub(super) struct BadBatchSender(mpsc::UnboundedSender<BadBatch>);

impl BadBatchSender {
    pub fn send(&self, bad: BadBatch) {
        // The flow stopped: the partition starts from its progress at the next run.
        let _ = self.0.send(bad);
    }
}

pub(super) struct BadBatches {
    tx: mpsc::UnboundedSender<BadBatch>,
    rx: mpsc::UnboundedReceiver<BadBatch>,
    /// Per partition: the offset of its last bad batch and how often it came bad.
    seen: HashMap<SourcePartition, (i64, u32)>,
    /// Partitions to start again, with their wait, once their Fetch on the wire answered.
    waiting: Vec<(BadBatch, Duration)>,
}

impl Default for BadBatches {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx,
            seen: HashMap::new(),
            waiting: Vec::new(),
        }
    }
}

impl BadBatches {
    pub fn sender(&self) -> BadBatchSender {
        BadBatchSender(self.tx.clone())
    }

    /// The next bad batch a pipeline ended at.
    pub async fn next(&mut self) -> Option<BadBatch> {
        self.rx.recv().await
    }

    /// Counts one more time the batch at `offset` came bad: the wait before fetching it
    /// again and which fetch again that is (from 1), or `None` when it has been fetched
    /// again [`REFETCHES`] times already.
    pub fn again(&mut self, sp: &SourcePartition, offset: i64) -> Option<(Duration, u32)> {
        let seen = self.seen.entry(sp.clone()).or_insert((offset, 0));
        if seen.0 != offset {
            *seen = (offset, 0);
        }
        seen.1 += 1;
        let attempt = seen.1;
        (attempt <= REFETCHES).then(|| (FIRST_REFETCH_DELAY * (1 << (attempt - 1)), attempt))
    }
}

impl FlowRunner {
    /// A pipeline ended at a bad source batch: its partition starts again from its
    /// acknowledged position after a wait, or stops with an ERROR once the batch came bad
    /// [`REFETCHES`] times after the first.
    pub(super) fn bad_batch(&mut self, bad: BadBatch) {
        // Stopped meanwhile (a re-created topic): it stays stopped.
        if self
            .partitions
            .get(&bad.partition)
            .is_none_or(|r| r.stopped())
        {
            return;
        }
        if let Some(wait) = self.refetch_or_stop(&bad.partition, bad.offset, &bad.error) {
            if let Some(r) = self.partitions.get_mut(&bad.partition) {
                r.stop();
            }
            self.bad_batches.waiting.push((bad, wait));
        }
    }

    /// Whether the next Fetch of a partition whose fetched data held a bad batch at
    /// `offset` waits for `delay` (`Some`), or the partition stops (it was reported).
    pub(super) fn refetch_or_stop(
        &mut self,
        sp: &SourcePartition,
        offset: i64,
        error: &dyn std::fmt::Display,
    ) -> Option<Duration> {
        let again = self.bad_batches.again(sp, offset);
        let r = self.partitions.get_mut(sp)?;
        let flow = &self.flow.name;
        match again {
            Some((wait, attempt)) => {
                tracing::warn!(%flow, topic = %sp.topic, partition = sp.partition, offset, %error, attempt, attempts = REFETCHES, retry_in_ms = wait.as_millis() as u64, "A source batch cannot be mirrored; fetching it again (damage on the way passes, a corrupt log does not).");
                r.stats
                    .error(format!("source batch at offset {offset}: {error}"));
                Some(wait)
            }
            None => {
                report_bad_source_batch(
                    (flow, &sp.topic, sp.partition),
                    offset,
                    error,
                    (&self.stats, &r.stats),
                );
                r.stop();
                None
            }
        }
    }

    /// Starts again the partitions waiting after a bad batch whose Fetch is answered, from
    /// their acknowledged position.
    pub(super) fn restart_after_bad_batches(
        &mut self,
        progress: &Arc<Progress>,
        session: ProducerSession,
    ) {
        if self.bad_batches.waiting.is_empty() {
            return;
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.bad_batches.waiting)
            .into_iter()
            .partition(|(bad, _)| {
                self.partitions
                    .get(&bad.partition)
                    .is_none_or(|r| !r.fetching)
            });
        self.bad_batches.waiting = waiting;
        for (bad, wait) in ready {
            // Stopped meanwhile (a re-created topic): it stays stopped.
            let Some(r) = self
                .partitions
                .get(&bad.partition)
                .filter(|r| r.stats.state() != PartitionState::Failed)
            else {
                continue;
            };
            // Every started partition has a stored position; were it missing, the
            // partition stops with the batch's ERROR rather than waiting silently.
            let Some(position) = progress.get(&bad.partition) else {
                let sp = &bad.partition;
                report_bad_source_batch(
                    (&self.flow.name, &sp.topic, sp.partition),
                    bad.offset,
                    &bad.error,
                    (&self.stats, &r.stats),
                );
                continue;
            };
            let sp = bad.partition.clone();
            self.start_partition(
                bad.partition,
                &bad.target_topic,
                position,
                progress,
                (session, true),
            );
            if let Some(r) = self.partitions.get_mut(&sp) {
                r.not_before = Some(Instant::now() + wait);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_batch_is_fetched_again_three_times_with_longer_waits_then_stops() {
        let mut bad = BadBatches::default();
        let sp = SourcePartition {
            topic: "t".into(),
            partition: 0,
        };
        let waits: Vec<_> = (0..4).map(|_| bad.again(&sp, 7)).collect();
        let s = Duration::from_secs;
        assert_eq!(
            waits,
            [Some((s(1), 1)), Some((s(2), 2)), Some((s(4), 3)), None]
        );
        // A later batch coming bad is counted afresh.
        assert_eq!(bad.again(&sp, 9), Some((s(1), 1)));
    }
}
