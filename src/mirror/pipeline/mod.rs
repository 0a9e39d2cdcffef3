//! One source partition's produce side: batches fetched for it arrive as [`Chunk`]s and are
//! shaped by the [`Batcher`] into one batch per Produce request, as Kafka requires; each
//! batch is rate-limited, stamped with the idempotent producer session and the partition's
//! next sequence, and produced to the same partition of the target topic with acks=all. Up
//! to [`MAX_IN_FLIGHT`] requests are on the wire at once, all through the partition's one
//! connection lane to its leader (so they reach the target in order), whose combiner
//! carries batches of many partitions in one request ([`crate::client::produce_lane`]);
//! acks are taken strictly in source order, and only then does the partition's progress
//! advance.
//!
//! Retries keep order and lose nothing: on a retriable error the pipeline lets the
//! in-flight requests finish, then sends every unacknowledged request again, in order,
//! with the same sequences, so the target drops the copies it already has. A producer
//! session the target no longer knows is replaced and the unacknowledged batches are
//! restamped. A batch of several records the target refuses as too large is split and
//! sent again, as Kafka's producer does; one refused for some of its records (e.g. a
//! timestamp out of the target topic's range) is halved until the records before the
//! first refused one are written. A fatal error (e.g. MESSAGE_TOO_LARGE for one
//! record) stops this partition, reported once at ERROR; progress stays where it is, so
//! nothing is skipped (`recovery.rs`).

mod in_flight;
#[cfg(test)]
mod lease_tests;
mod recovery;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kmirror_wire::backoff::{Backoff, BackoffConfig};
use tokio::sync::mpsc;

pub use super::batching::Chunk;
use super::batching::{Batcher, Next, Ready, ShapeError, MERGE_ROUND_TRIP};
use super::progress::{Position, Progress, SourcePartition};
use super::rebuilds;
use super::route::RouteCache;
use crate::client::produce::{self, ProducerSession};
use crate::client::produce_lane::Answer;
use crate::client::{ClientError, ClusterClient};
use crate::telemetry::stats::{FlowStats, PartitionStats};
use crate::throttle::Throttle;
pub use in_flight::RefusedBatch;
use in_flight::{refused, InFlight, Pending};
use recovery::{class_name, corrupt_source};

/// Produce requests on the wire per partition (Kafka's idempotence limit is 5).
pub const MAX_IN_FLIGHT: usize = 5;

/// On a target that answers within [`BURST_ROUND_TRIP`], a partition with more than this
/// many requests in flight waits for answers before it refills its window, and then hands
/// its lane several batches at once, which the lane writes as several requests in one
/// write. Refilled one batch per answer, every answer cost a write of one request and a
/// wake-up of the broker: small/direct in benches/catchup wrote 30% fewer times and took
/// 8% less CPU per GB (12 copies each way, alternating). A partition with one request or
/// none in flight sends at once, so a trickle waits for nothing.
const BURST_REFILL_AT: usize = 1;

/// The round trip under which windows refill in bursts. Refilled in bursts, a window
/// holds three requests on average instead of five, which costs nothing while the
/// daemon's CPU, not the answers, limits a partition (a local broker answers within
/// 0.1-0.3 ms), but would cost speed where the answers do: an acks=all target a
/// millisecond or two away, or a distant one, keeps its window full.
const BURST_ROUND_TRIP: Duration = Duration::from_micros(500);

/// Whether a partition with `in_flight` window entries sends more now; `bursts` when its
/// target answers within [`BURST_ROUND_TRIP`].
fn refills(in_flight: usize, bursts: bool) -> bool {
    !bursts || in_flight <= BURST_REFILL_AT
}

/// A batch's wait for the flow's rate limits: true once it may be sent, false when the
/// flow drains first ([`Throttle::close`]).
type Admission = std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>;

/// How the pipeline ended.
#[derive(Debug)]
pub enum Ended {
    /// Its input closed and everything was acknowledged.
    Drained,
    /// A fatal error; the partition needs an operator. With the batch the target refused,
    /// when a batch was refused.
    Failed(ClientError, Option<RefusedBatch>),
    /// The source batch at `offset` is corrupt (its CRC does not match); nothing from it
    /// on is produced, and everything before it is acknowledged (the flow fetches it
    /// again from the acknowledged position, or stops the partition).
    Corrupt { offset: i64, error: String },
}

pub struct Pipeline {
    pub flow: String,
    pub source: SourcePartition,
    pub target_topic: String,
    pub target: Arc<ClusterClient>,
    pub throttle: Arc<Throttle>,
    pub progress: Arc<Progress>,
    pub session: ProducerSession,
    pub next_sequence: i32,
    /// Whether the target has acknowledged a batch of this producer session on this
    /// partition ([`Pipeline::window_limit`]).
    pub session_acked: bool,
    /// Batches split because the target refused them as too large.
    pub splits: u64,
    pub next_target_offset: i64,
    /// Whether records found on the target past `next_target_offset` were reported at
    /// WARN yet ([`Pipeline::mirrored_again`]): once per pipeline, later at DEBUG.
    pub reported_mirrored_again: bool,
    /// Largest batch small batches are merged into.
    pub batch_bytes: usize,
    /// The source offset this pipeline starts at; records below it are never produced.
    pub start_offset: i64,
    /// The ticket naming the partition's connection lane to its target leader: fixed, so
    /// its requests stay in order ([`ClusterClient::assign_produce_lane`]).
    pub lane: usize,
    pub flow_stats: Arc<FlowStats>,
    pub stats: Arc<PartitionStats>,
    /// The way to the target leader the last batch took ([`RouteCache`]).
    pub route: RouteCache,
    /// Start with a producer session of its own: this partition was written with the
    /// flow's session already (it restarts after a bad source batch), and a sequence
    /// started again at 0 on that session could be taken for a duplicate of an early batch.
    pub renew_session: bool,
}

impl Pipeline {
    pub async fn run(mut self, mut input: mpsc::Receiver<Chunk>) -> Ended {
        let mut window: VecDeque<InFlight> = VecDeque::new();
        let mut batcher = Batcher::new(self.batch_bytes, self.start_offset);
        let mut input_open = true;
        let mut backoff = Backoff::new(BackoffConfig::default());
        let mut merging = false;
        // The next batch while it waits for the flow's rate limits: acknowledgements are
        // taken meanwhile. Refused (the flow drains), it and the rest are not sent.
        let mut held: Option<(Ready, Admission)> = None;
        let mut draining = false;
        // A source batch that cannot be mirrored was met while shaping: what came before
        // it is sent and acknowledged (so a restart from the acknowledged position repeats
        // nothing), then the pipeline ends with this.
        let mut bad_batch: Option<Ended> = None;
        if self.renew_session {
            if let Err(e) = self.renew_session().await {
                return Ended::Failed(e, None);
            }
        }
        loop {
            // One read of the route's round trip per turn decides both merging and bursts.
            let round_trip = self.route.round_trip();
            // Whether the target's round trip, not CPU, limits this partition, so small
            // batches are worth merging.
            let merge = round_trip.is_some_and(|r| r >= MERGE_ROUND_TRIP);
            if merge != merging {
                merging = merge;
                tracing::debug!(flow = %self.flow, topic = %self.source.topic, partition = self.source.partition, round_trip_us = round_trip.map(|r| r.as_micros() as u64), merge, "Small batches waiting behind a full window are merged only while the target's round trip limits the partition.");
            }
            // Fill the window; what does not fit waits, and is merged when small.
            let bursts = round_trip.is_some_and(|r| r < BURST_ROUND_TRIP);
            let refill = refills(window.len(), bursts);
            while refill && held.is_none() && !draining && window.len() < self.window_limit() {
                let ready = match next_batch(&mut batcher, merge).await {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) => {
                        bad_batch = Some(self.unshapeable(e));
                        draining = true;
                        break;
                    }
                };
                if !ready.data.is_empty() && self.throttle.is_limited() {
                    held = Some(self.admission(ready, &window));
                    break;
                }
                self.enqueue(&mut window, ready).await;
            }
            // Batches held back after a split go out as the window makes room.
            if window
                .iter()
                .take(self.window_limit())
                .any(|e| e.pending.is_none() && !e.stamped.is_empty())
            {
                self.resend(&mut window).await;
            }
            // Entries without a request complete as soon as they are first.
            while window
                .front()
                .is_some_and(|f| f.pending.is_none() && f.stamped.is_empty())
            {
                let e = window.pop_front().expect("non-empty");
                self.advance(e.next_source_offset, e.leader_epoch);
            }
            let nothing_held = held.is_none() && batcher.is_empty();
            if window.is_empty() && (draining || (!input_open && nothing_held)) {
                return bad_batch.unwrap_or(Ended::Drained);
            }
            let want_input = input_open && !draining && batcher.waiting_bytes() < self.batch_bytes;
            tokio::select! {
                biased;
                done = async { window.front_mut().expect("non-empty").pending.as_mut().expect("sent").await }, if window.front().is_some_and(|f| f.pending.is_some()) => {
                    // The future is finished: never poll it again.
                    window.front_mut().expect("non-empty").pending = None;
                    match self.settle(done) {
                        Ok(base_offset) => {
                            let done = window.pop_front().expect("non-empty");
                            tracing::trace!(topic = %self.target_topic, partition = self.source.partition, next_source_offset = done.next_source_offset, "Batch acknowledged.");
                            self.session_acked = true;
                            self.acknowledged(&done, base_offset, &window);
                            backoff.reset();
                        }
                        Err(e) => {
                            if let Some(corrupt) = corrupt_source(&e, window.front().expect("non-empty")) {
                                return corrupt;
                            }
                            // The window's first batch is named only when the error is
                            // the target's answer to it (not a producer id refused, say).
                            let answer = e.to_string();
                            let named = |fatal: ClientError, window: &VecDeque<InFlight>| {
                                let batch = (fatal.to_string() == answer).then(|| refused(window)).flatten();
                                Ended::Failed(fatal, batch)
                            };
                            match self.split_too_large(&mut window, &e, batcher.refused_bytes()).await {
                                Ok(Some(refused_bytes)) => {
                                    batcher.target_refused(refused_bytes);
                                    continue;
                                }
                                Ok(None) => {}
                                Err(fatal) => return named(fatal, &window),
                            }
                            match self.split_refused_records(&mut window, &e).await {
                                Ok(true) => continue,
                                Ok(false) => {}
                                Err(fatal) => return named(fatal, &window),
                            }
                            if let Err(fatal) = self.recover(&mut window, e, &mut backoff).await {
                                return named(fatal, &window);
                            }
                        }
                    }
                }
                admitted = async { held.as_mut().expect("held").1.as_mut().await }, if held.is_some() => {
                    let (ready, _) = held.take().expect("held");
                    if admitted {
                        self.enqueue(&mut window, ready).await;
                    } else {
                        tracing::debug!(flow = %self.flow, topic = %self.source.topic, partition = self.source.partition, next_source_offset = ready.first_source_offset, "Draining: batches still waiting for the rate limits are not sent.");
                        draining = true;
                    }
                }
                chunk = input.recv(), if want_input => {
                    let Some(chunk) = chunk else {
                        input_open = false;
                        continue;
                    };
                    if let Err(e) = batcher.push(chunk) {
                        bad_batch = Some(self.unshapeable(e));
                        draining = true;
                    }
                }
            }
        }
    }

    /// How the partition ends when its source batches cannot be shaped for produce.
    fn unshapeable(&self, e: ShapeError) -> Ended {
        match e.corrupt_offset() {
            Some(offset) => Ended::Corrupt {
                offset,
                error: e.to_string(),
            },
            None => Ended::Failed(
                ClientError::Source {
                    what: format!("{} partition {}", self.source.topic, self.source.partition),
                    reason: e.to_string(),
                },
                None,
            ),
        }
    }

    /// Stamps one batch and puts it on the wire, or queues a position-only entry.
    async fn enqueue(&mut self, window: &mut VecDeque<InFlight>, ready: Ready) {
        let Ready {
            mut data,
            records: _,
            first_source_offset,
            next_source_offset,
            leader_epoch,
            source_runs,
            permits,
        } = ready;
        if data.is_empty() {
            window.push_back(InFlight {
                first_source_offset,
                next_source_offset,
                leader_epoch,
                stamped: Bytes::new(),
                records: 0,
                source_runs,
                timestamps_ms: (0, 0),
                pending: None,
                _permits: permits,
            });
            return;
        }
        let timestamps_ms = in_flight::timestamps_ms(&data);
        let records = produce::stamp_in_place(&mut data, self.session, self.next_sequence);
        self.next_sequence = produce::next_sequence(self.next_sequence, records);
        let mut entry = InFlight {
            first_source_offset,
            next_source_offset,
            leader_epoch,
            stamped: data.freeze(),
            records,
            source_runs,
            timestamps_ms,
            pending: None,
            _permits: permits,
        };
        self.send(&mut entry).await;
        if window.iter().all(|e| e.stamped.is_empty()) {
            self.stats.holding(Some(timestamps_ms.0));
        }
        window.push_back(entry);
    }

    /// `ready` with the wait for the flow's rate limits to let it pass ([`Admission`]);
    /// its records count as held from now, for the partition's lag age, when nothing of
    /// the partition is in flight before them.
    fn admission(&self, ready: Ready, window: &VecDeque<InFlight>) -> (Ready, Admission) {
        if window.iter().all(|e| e.stamped.is_empty()) {
            self.stats
                .holding(Some(in_flight::timestamps_ms(&ready.data).0));
        }
        let (throttle, stats) = (self.throttle.clone(), self.flow_stats.clone());
        let (bytes, records) = (ready.data.len() as u64, ready.records.max(0) as u64);
        let admitted = async move {
            throttle
                .acquire_observed(bytes, records, |waited| {
                    stats.throttled(waited.as_micros() as u64)
                })
                .await
        };
        (ready, Box::pin(admitted))
    }

    /// How many requests may be in flight: [`MAX_IN_FLIGHT`], but one until the target has
    /// acknowledged a batch of this producer session here. A target that does not know
    /// the producer takes any sequence as its start (Kafka: ProducerAppendInfo.checkSequence
    /// for a new producer epoch), so were the first batch refused (too large, corrupt) a
    /// later one would be written ahead of it, and resending it would then duplicate that.
    fn window_limit(&self) -> usize {
        if self.session_acked {
            MAX_IN_FLIGHT
        } else {
            1
        }
    }

    /// Hands one batch to its lane now (the lane sends a partition's batches in the order
    /// it was handed them); the entry keeps the lane's answer, which [`Pipeline::run`]
    /// awaits in window order.
    ///
    /// A batch that cannot be handed to a lane (no known leader, no connection) is retried
    /// here, with metadata refreshes, until it is: later batches must not reach the target
    /// before it. A target that does not know the producer yet takes any sequence as its
    /// start, so a later request arriving first would be written ahead of this one, and
    /// this one then refused as out of order.
    async fn send(&self, entry: &mut InFlight) {
        // An exclusive flow's owner sends only while its lease holds: one that ran again
        // after a pause past its session (SIGSTOP, a stalled host) would otherwise send
        // what it held before its member noticed that another daemon owns the flow, and
        // each batch would duplicate one that daemon mirrored. Its flow ends this wait.
        self.progress.wait_owned().await;
        let queued = self
            .target
            .retry_observed(
                "sending Produce",
                None,
                || async {
                    let route = self
                        .route
                        .get(
                            &self.target,
                            &self.target_topic,
                            self.source.partition,
                            self.lane,
                        )
                        .await?;
                    route
                        .lane
                        .submit(
                            route.target.clone(),
                            entry.stamped.clone(),
                            self.progress.send_gate(),
                        )
                        .await
                        .map_err(|e| ClientError::Request {
                            cluster: self.target.name().to_string(),
                            source: e,
                        })
                },
                |e| {
                    self.flow_stats.produce_retry(class_name(e.class()), e);
                    // The partition's own reason (e.g. no leader), for /status and /readyz.
                    self.stats.error(format!("produce: {e}"));
                },
            )
            .await;
        tracing::trace!(topic = %self.target_topic, partition = self.source.partition, lane = self.lane, queued = queued.is_ok(), "Batch handed to its lane.");
        entry.pending = Some(match queued {
            Ok(rx) => Pending::Sent(rx),
            Err(e) => Pending::Unsent(Some(e)),
        });
    }

    /// The target base offset of a successful produce, or the error.
    fn settle(&mut self, result: Result<Answer, ClientError>) -> Result<i64, ClientError> {
        let answer = result?.map_err(|e| ClientError::Request {
            cluster: self.target.name().to_string(),
            source: e,
        })?;
        produce::settle(
            self.target.name(),
            format_args!(
                "producing to {} partition {}",
                self.target_topic, self.source.partition
            ),
            (&self.target_topic, self.source.partition),
            answer.as_ref(),
        )
    }

    fn acknowledged(&mut self, done: &InFlight, base_offset: i64, window: &VecDeque<InFlight>) {
        let one_run = [(done.first_source_offset, i64::from(done.records))];
        let runs = if done.source_runs.is_empty() {
            &one_run[..]
        } else {
            &done.source_runs[..]
        };
        let target_base = if base_offset >= 0 && done.records > 0 {
            if self.next_target_offset >= 0 && base_offset > self.next_target_offset {
                self.mirrored_again(done, base_offset);
            }
            self.next_target_offset = base_offset + i64::from(done.records);
            Some((base_offset, runs))
        } else {
            None
        };
        // One clock read per acknowledged batch, for the partition's and the flow's stats.
        let now_ms = crate::telemetry::stats::now_ms();
        self.stats.advanced_at(done.next_source_offset, now_ms);
        self.progress.acknowledged(
            &self.source,
            Position {
                next_source_offset: done.next_source_offset,
                next_target_offset: self.next_target_offset,
                leader_epoch: done.leader_epoch,
            },
            target_base,
        );
        self.flow_stats.acknowledged(
            &self.stats,
            done.records.max(0) as u64,
            done.stamped.len() as u64,
            done.timestamps_ms.1,
            now_ms,
        );
        self.stats.holding(
            window
                .iter()
                .find(|e| !e.stamped.is_empty())
                .map(|e| e.timestamps_ms.0),
        );
    }

    /// The target wrote `done` at `base_offset`, past where this partition's last
    /// acknowledged record went: the target partition holds records this flow did not
    /// acknowledge. After a start from stored progress they were mirrored by a process
    /// stopped uncleanly (kill, crash, ownership lost) before its progress covered them,
    /// and are now mirrored again: at-least-once, duplicates on the target. Within a run
    /// the same follows a producer session the target lost while batches were in
    /// flight; or another producer writes to the target partition. Counted, reported.
    fn mirrored_again(&mut self, done: &InFlight, base_offset: i64) {
        let records = base_offset - self.next_target_offset;
        self.flow_stats.mirrored_again(records as u64);
        let first = !std::mem::replace(&mut self.reported_mirrored_again, true);
        let expected = self.next_target_offset;
        macro_rules! report {
            ($level:ident) => {
                tracing::$level!(flow = %self.flow, topic = %self.source.topic, partition = self.source.partition, target_topic = %self.target_topic, source_offset = done.first_source_offset, expected_target_offset = expected, target_offset = base_offset, records, "The target partition held records past the position stored for it: mirrored before an unclean stop (kill, crash, ownership lost) whose progress did not cover them yet, and mirrored again now (duplicates on the target, counted in kmirror_mirrored_again_records), or written there by another producer.")
            };
        }
        if first {
            report!(warn);
        } else {
            report!(debug);
        }
    }

    fn advance(&self, next_source_offset: i64, leader_epoch: Option<i32>) {
        self.stats.advanced(next_source_offset);
        self.progress.advance(
            &self.source,
            Position {
                next_source_offset,
                next_target_offset: self.next_target_offset,
                leader_epoch,
            },
        );
    }
}

/// The partition's next batch, as [`Batcher::next`] chooses it, rebuilt off the scheduler's
/// thread when large ([`rebuilds`]).
pub(crate) async fn next_batch(
    batcher: &mut Batcher,
    merge_small: bool,
) -> Result<Option<Ready>, ShapeError> {
    let mut next = batcher.next(merge_small)?;
    loop {
        next = match next {
            Next::Empty => return Ok(None),
            Next::Ready(ready) => return Ok(Some(ready)),
            Next::Rebuild(job) => batcher.rebuilt(rebuilds::rebuild(job).await?),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quick_targets_window_refills_in_bursts_and_a_slower_ones_stays_full() {
        // Quick: sends with one request or none in flight, then waits for answers.
        let quick: Vec<bool> = (0..=MAX_IN_FLIGHT).map(|n| refills(n, true)).collect();
        assert_eq!(quick, [true, true, false, false, false, false]);
        // Answers slower than that: every free slot is filled at once.
        assert!((0..=MAX_IN_FLIGHT).all(|n| refills(n, false)));
    }
}
