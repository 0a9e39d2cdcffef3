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
//! restamped. A fatal error (e.g. MESSAGE_TOO_LARGE) stops this partition, reported once
//! at ERROR; progress stays where it is, so nothing is skipped.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use kmirror_wire::backoff::{Backoff, BackoffConfig};
use kmirror_wire::errors::{ErrorClass, ResponseError};
use tokio::sync::{mpsc, oneshot};

pub use super::batching::Chunk;
use super::batching::{Batcher, Ready, ShapeError, MERGE_ROUND_TRIP};
use super::memory::Share;
use super::progress::{Position, Progress, SourcePartition};
use super::route::RouteCache;
use crate::client::produce::{self, ProducerSession};
use crate::client::produce_lane::Answer;
use crate::client::{ClientError, ClusterClient};
use crate::telemetry::stats::{FlowStats, PartitionStats};
use crate::throttle::Throttle;

/// Produce requests on the wire per partition (Kafka's idempotence limit is 5).
pub const MAX_IN_FLIGHT: usize = 5;

struct InFlight {
    first_source_offset: i64,
    next_source_offset: i64,
    /// The source partition leader epoch of the last batch below `next_source_offset`.
    leader_epoch: Option<i32>,
    /// The stamped batch; empty for an entry that only moves the position.
    stamped: Bytes,
    records: i32,
    /// Its records' source offsets as `(first offset, count)` runs, for the offset map;
    /// empty when they are `records` offsets from `first_source_offset` on.
    source_runs: Vec<(i64, i64)>,
    /// The batch's first and newest record timestamps (ms), for telemetry.
    timestamps_ms: (i64, i64),
    /// The answer, once the request is on the wire (polled by the pipeline itself: no task
    /// per batch).
    pending: Option<Pending>,
    /// The memory this batch holds until it is acknowledged.
    _permits: Vec<Arc<Share>>,
}

/// A request's answer, as the pipeline waits for it.
enum Pending {
    /// The request is on the wire; its lane answers here.
    Sent(oneshot::Receiver<Answer>),
    /// The request could not be put on the wire; the error is taken when first polled.
    Unsent(Option<ClientError>),
}

impl Future for Pending {
    /// The lane's answer, or why there is none.
    type Output = Result<Answer, ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Pending::Sent(rx) => Pin::new(rx).poll(cx).map(|answer| {
                answer.map_err(|_| ClientError::Internal {
                    what: "the produce lane dropped an answer".into(),
                })
            }),
            Pending::Unsent(error) => {
                Poll::Ready(Err(error.take().unwrap_or_else(|| ClientError::Internal {
                    what: "a failed send was awaited twice".into(),
                })))
            }
        }
    }
}

/// How the pipeline ended.
#[derive(Debug)]
pub enum Ended {
    /// Its input closed and everything was acknowledged.
    Drained,
    /// A fatal error; the partition needs an operator.
    Failed(ClientError),
    /// The source batch at `offset` is corrupt (its CRC does not match); nothing from it
    /// on is produced.
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
    pub next_target_offset: i64,
    /// Largest batch small batches are merged into.
    pub batch_bytes: usize,
    /// The source offset this pipeline starts at; records below it are never produced.
    pub start_offset: i64,
    /// The partition's connection lane to its target leader: fixed, so its requests stay
    /// in order ([`ClusterClient::assign_produce_lane`]).
    pub lane: usize,
    pub flow_stats: Arc<FlowStats>,
    pub stats: Arc<PartitionStats>,
    /// The way to the target leader the last batch took ([`RouteCache`]).
    pub route: RouteCache,
}

impl Pipeline {
    pub async fn run(mut self, mut input: mpsc::Receiver<Chunk>) -> Ended {
        let mut window: VecDeque<InFlight> = VecDeque::new();
        let mut batcher = Batcher::new(self.batch_bytes, self.start_offset);
        let mut input_open = true;
        let mut backoff = Backoff::new(BackoffConfig::default());
        let mut merging = false;
        loop {
            let merge = self.round_trip_limits();
            if merge != merging {
                merging = merge;
                tracing::debug!(flow = %self.flow, topic = %self.source.topic, partition = self.source.partition, round_trip_us = self.route.round_trip().map(|r| r.as_micros() as u64), merge, "Small batches waiting behind a full window are merged only while the target's round trip limits the partition.");
            }
            // Fill the window; what does not fit waits, and is merged when small.
            while window.len() < MAX_IN_FLIGHT {
                let ready = match batcher.next_batch(merge) {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) => return self.unshapeable(e),
                };
                self.enqueue(&mut window, ready).await;
            }
            // Entries without a request complete as soon as they are first.
            while window
                .front()
                .is_some_and(|f| f.pending.is_none() && f.stamped.is_empty())
            {
                let e = window.pop_front().expect("non-empty");
                self.advance(e.next_source_offset, e.leader_epoch);
            }
            if !input_open && window.is_empty() && batcher.is_empty() {
                return Ended::Drained;
            }
            let want_input = input_open && batcher.waiting_bytes() < self.batch_bytes;
            tokio::select! {
                biased;
                done = async { window.front_mut().expect("non-empty").pending.as_mut().expect("sent").await }, if window.front().is_some_and(|f| f.pending.is_some()) => {
                    // The future is finished: never poll it again.
                    window.front_mut().expect("non-empty").pending = None;
                    match self.settle(done) {
                        Ok(base_offset) => {
                            let done = window.pop_front().expect("non-empty");
                            self.acknowledged(&done, base_offset, &window);
                            backoff.reset();
                        }
                        Err(e) => {
                            if let Some(corrupt) = corrupt_source(&e, window.front().expect("non-empty")) {
                                return corrupt;
                            }
                            if let Err(fatal) = self.recover(&mut window, e, &mut backoff).await {
                                return Ended::Failed(fatal);
                            }
                        }
                    }
                }
                chunk = input.recv(), if want_input => {
                    let Some(chunk) = chunk else {
                        input_open = false;
                        continue;
                    };
                    if let Err(e) = batcher.push(chunk) {
                        return self.unshapeable(e);
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
            None => Ended::Failed(ClientError::Source {
                what: format!("{} partition {}", self.source.topic, self.source.partition),
                reason: e.to_string(),
            }),
        }
    }

    /// Stamps one batch and puts it on the wire, or queues a position-only entry.
    async fn enqueue(&mut self, window: &mut VecDeque<InFlight>, ready: Ready) {
        let Ready {
            mut data,
            records,
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
        let waited = std::time::Instant::now();
        self.throttle
            .acquire(data.len() as u64, records.max(0) as u64)
            .await;
        self.flow_stats
            .throttled(waited.elapsed().as_micros() as u64);
        let timestamps_ms = kmirror_wire::batch::BatchView::parse(&data, 0)
            .map_or((0, 0), |b| (b.base_timestamp(), b.max_timestamp()));
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

    /// Whether the target's round trip, not CPU, limits this partition, so small batches
    /// are worth merging.
    fn round_trip_limits(&self) -> bool {
        self.route
            .round_trip()
            .is_some_and(|r| r >= MERGE_ROUND_TRIP)
    }

    /// Puts one request on the wire now (so requests stay in order) and spawns the wait.
    ///
    /// A request that cannot be put on the wire (no known leader, no connection) is retried
    /// here, with metadata refreshes, until it is: later requests must not reach the target
    /// before it. A target that does not know the producer yet takes any sequence as its
    /// start, so a later request arriving first would be written ahead of this one, and
    /// this one then refused as out of order.
    async fn send(&self, entry: &mut InFlight) {
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
                        .submit(route.target.clone(), entry.stamped.clone())
                        .await
                        .map_err(|e| ClientError::Request {
                            cluster: self.target.name().to_string(),
                            source: e,
                        })
                },
                |e| self.flow_stats.produce_retry(class_name(e.class()), e),
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
            self.next_target_offset = base_offset + i64::from(done.records);
            Some((base_offset, runs))
        } else {
            None
        };
        self.stats.advanced(done.next_source_offset);
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
        );
        self.stats.holding(
            window
                .iter()
                .find(|e| !e.stamped.is_empty())
                .map(|e| e.timestamps_ms.0),
        );
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

    /// After a failed request: waits out the window, then resends it in order.
    async fn recover(
        &mut self,
        window: &mut VecDeque<InFlight>,
        error: ClientError,
        backoff: &mut Backoff,
    ) -> Result<(), ClientError> {
        let session_lost = matches!(
            &error,
            ClientError::Broker {
                error: ResponseError::OutOfOrderSequenceNumber
                    | ResponseError::UnknownProducerId
                    | ResponseError::InvalidProducerEpoch,
                ..
            }
        );
        if error.class() == ErrorClass::Fatal && !session_lost {
            return Err(error);
        }
        self.flow_stats
            .produce_retry(class_name(error.class()), &error);
        self.stats.error(format!("produce: {error}"));
        // Later requests may have succeeded or failed; either way they are resent, and the
        // target deduplicates the ones it already has.
        for e in window.iter_mut() {
            if let Some(p) = e.pending.take() {
                let _ = p.await;
            }
        }
        let delay = backoff
            .next_delay()
            .unwrap_or(std::time::Duration::from_secs(1));
        tracing::warn!(flow = %self.flow, topic = %self.source.topic, partition = self.source.partition, error = %error, retry_in_ms = delay.as_millis() as u64, resend = window.len(), "Produce failed; resending in order.");
        tokio::time::sleep(delay).await;
        if error.class() == ErrorClass::RetryRefreshMetadata {
            let _ = self.target.refresh_metadata().await;
        }
        if session_lost {
            self.session = self
                .target
                .retry("InitProducerId", None, || self.target.init_producer())
                .await?;
            self.next_sequence = 0;
            for e in window.iter_mut().filter(|e| !e.stamped.is_empty()) {
                let mut buf = BytesMut::from(&e.stamped[..]);
                let records = produce::stamp_in_place(&mut buf, self.session, self.next_sequence);
                let stamped = buf.freeze();
                self.next_sequence = produce::next_sequence(self.next_sequence, records);
                e.stamped = stamped;
            }
            tracing::info!(flow = %self.flow, producer_id = self.session.producer_id, "New producer session after the target lost the old one.");
        }
        for i in 0..window.len() {
            if !window[i].stamped.is_empty() {
                let mut e = window.remove(i).expect("index in range");
                self.send(&mut e).await;
                window.insert(i, e);
            }
        }
        Ok(())
    }
}

/// The `class` label of an error's retry decision.
pub fn class_name(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Ok => "ok",
        ErrorClass::RetryRefreshMetadata => "stale_metadata",
        ErrorClass::Retry => "retriable",
        ErrorClass::Fatal => "fatal",
    }
}

/// When the target refused a batch as corrupt and the batch indeed fails its CRC, the
/// source batch was corrupt (its CRC was patched, never recomputed, so a wrong one stayed
/// wrong): that ends the partition, naming the source offset. A batch that verifies was
/// damaged on the way and is retried like any CORRUPT_MESSAGE.
fn corrupt_source(error: &ClientError, refused: &InFlight) -> Option<Ended> {
    if !matches!(
        error,
        ClientError::Broker {
            error: ResponseError::CorruptMessage,
            ..
        }
    ) {
        return None;
    }
    let corrupt = kmirror_wire::batch::Batches::new(&refused.stamped)
        .any(|b| b.is_err() || b.is_ok_and(|b| b.verify_crc().is_err()));
    corrupt.then(|| Ended::Corrupt {
        offset: refused.first_source_offset,
        error: "the target refused it as corrupt (CORRUPT_MESSAGE) and its CRC does not match its bytes".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::Compression;

    fn batch(base_offset: i64, count: i64) -> Bytes {
        let records: Vec<_> = (0..count)
            .map(|i| {
                kmirror_wire::records::record(
                    base_offset + i,
                    0,
                    None,
                    Some(Bytes::from(vec![b'x'; 10])),
                )
            })
            .collect();
        kmirror_wire::records::encode(&records, Compression::None).unwrap()
    }

    #[test]
    fn restamping_a_stamped_buffer_equals_stamping_the_original() {
        let mut original = BytesMut::new();
        original.extend_from_slice(&batch(0, 3));
        original.extend_from_slice(&batch(3, 2));
        let old = ProducerSession {
            producer_id: 1,
            producer_epoch: 0,
        };
        let new = ProducerSession {
            producer_id: 2,
            producer_epoch: 0,
        };
        let mut fresh = original.clone();
        assert_eq!(produce::stamp_in_place(&mut fresh, new, 0), 5);
        let mut stamped = original.clone();
        assert_eq!(produce::stamp_in_place(&mut stamped, old, 7), 5);
        assert_ne!(stamped, fresh);
        assert_eq!(produce::stamp_in_place(&mut stamped, new, 0), 5);
        assert_eq!(stamped, fresh, "every batch was restamped");
        for b in kmirror_wire::batch::Batches::new(&stamped) {
            let b = b.unwrap();
            b.verify_crc().unwrap();
            assert_eq!(b.producer_id(), 2);
        }
    }
}
