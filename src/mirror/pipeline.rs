//! One source partition's produce side: batches fetched for it arrive as [`Chunk`]s; each
//! is rate-limited, stamped with the idempotent producer session and the partition's next
//! sequence, and produced to the same partition of the target topic with acks=all. Up to
//! [`MAX_IN_FLIGHT`] requests are on the wire at once; acks are taken strictly in source
//! order, and only then does the partition's progress advance.
//!
//! Retries keep order and lose nothing: on a retriable error the pipeline lets the
//! in-flight requests finish, then sends every unacknowledged request again, in order,
//! with the same sequences, so the target drops the copies it already has. A producer
//! session the target no longer knows is replaced and the unacknowledged batches are
//! restamped. A fatal error (e.g. MESSAGE_TOO_LARGE) stops this partition, reported once
//! at ERROR; progress stays where it is, so nothing is skipped.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ProduceRequest;
use kmirror_wire::backoff::{Backoff, BackoffConfig};
use kmirror_wire::errors::{ErrorClass, ResponseError};
use kmirror_wire::messenger::Pending;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::progress::{Position, Progress, SourcePartition};
use crate::client::produce::{self, ProduceOutcome, ProducerSession};
use crate::client::{ClientError, ClusterClient};
use crate::throttle::Throttle;

/// Produce requests on the wire per partition (Kafka's idempotence limit is 5).
pub const MAX_IN_FLIGHT: usize = 5;

/// Batches of one source partition, in order, and the memory they hold.
#[derive(Debug)]
pub struct Chunk {
    /// Whole v2 batches laid end to end, owned (stamped in place before producing).
    pub data: BytesMut,
    pub records: i64,
    /// The source offset after the last batch of this chunk.
    pub next_source_offset: i64,
    pub permit: Option<OwnedSemaphorePermit>,
}

struct InFlight {
    chunk: Chunk,
    stamped: Bytes,
    records: i32,
    pending: Option<tokio::task::JoinHandle<Result<ProduceOutcome, ClientError>>>,
}

/// How the pipeline ended.
#[derive(Debug)]
pub enum Ended {
    /// Its input closed and everything was acknowledged.
    Drained,
    /// A fatal error; the partition needs an operator.
    Failed(ClientError),
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
}

impl Pipeline {
    pub async fn run(mut self, mut input: mpsc::Receiver<Chunk>) -> Ended {
        let mut window: VecDeque<InFlight> = VecDeque::new();
        let mut input_open = true;
        let mut backoff = Backoff::new(BackoffConfig::default());
        loop {
            if !input_open && window.is_empty() {
                return Ended::Drained;
            }
            tokio::select! {
                biased;
                done = async { window.front_mut().expect("non-empty").pending.as_mut().expect("sent").await }, if window.front().is_some_and(|f| f.pending.is_some()) => {
                    // The handle is finished: never poll it again.
                    window.front_mut().expect("non-empty").pending = None;
                    let result = done.unwrap_or_else(|e| Err(ClientError::Broker {
                        cluster: self.target.name().to_string(),
                        what: format!("produce task: {e}"),
                        error: ResponseError::UnknownServerError,
                        message: None,
                    }));
                    match self.settle(result) {
                        Ok(base_offset) => {
                            let done = window.pop_front().expect("non-empty");
                            self.acknowledged(&done, base_offset);
                            backoff.reset();
                        }
                        Err(e) => {
                            if let Err(fatal) = self.recover(&mut window, e, &mut backoff).await {
                                return Ended::Failed(fatal);
                            }
                        }
                    }
                }
                chunk = input.recv(), if input_open && window.len() < MAX_IN_FLIGHT => {
                    let Some(chunk) = chunk else {
                        input_open = false;
                        continue;
                    };
                    if chunk.data.is_empty() {
                        // Only control or aborted batches: progress moves once all before it are acked.
                        if window.is_empty() {
                            self.advance(chunk.next_source_offset);
                        } else {
                            window.push_back(InFlight { chunk, stamped: Bytes::new(), records: 0, pending: None });
                        }
                        continue;
                    }
                    let mut chunk = chunk;
                    self.throttle.acquire(chunk.data.len() as u64, chunk.records as u64).await;
                    let records = produce::stamp_in_place(&mut chunk.data, self.session, self.next_sequence);
                    let stamped = std::mem::take(&mut chunk.data).freeze();
                    self.next_sequence = produce::next_sequence(self.next_sequence, records);
                    let mut entry = InFlight { chunk, stamped, records, pending: None };
                    self.send(&mut entry).await;
                    window.push_back(entry);
                }
            }
            // Entries without a request (empty chunks) complete as soon as they are first.
            while window
                .front()
                .is_some_and(|f| f.pending.is_none() && f.stamped.is_empty())
            {
                let e = window.pop_front().expect("non-empty");
                self.advance(e.chunk.next_source_offset);
            }
        }
    }

    /// Puts one request on the wire now (so requests stay in order) and spawns the wait.
    ///
    /// A request that cannot be put on the wire (no known leader, no connection) is retried
    /// here, with metadata refreshes, until it is: later requests must not reach the target
    /// before it. A target that does not know the producer yet takes any sequence as its
    /// start, so a later request arriving first would be written ahead of this one, and
    /// this one then refused as out of order.
    async fn send(&self, entry: &mut InFlight) {
        let started: Result<Pending<ProduceRequest>, ClientError> = self
            .target
            .retry("sending Produce", None, || async {
                let m = self
                    .target
                    .leader(&self.target_topic, self.source.partition)
                    .await?;
                produce::start(
                    &m,
                    &self.target_topic,
                    self.source.partition,
                    entry.stamped.clone(),
                    30_000,
                )
                .await
                .map_err(|e| ClientError::Request {
                    cluster: self.target.name().to_string(),
                    source: e,
                })
            })
            .await;
        let cluster = self.target.name().to_string();
        entry.pending = Some(tokio::spawn(async move {
            produce::outcome(started?)
                .await
                .map_err(|e| ClientError::Request { cluster, source: e })
        }));
    }

    /// The target base offset of a successful produce, or the error.
    fn settle(&self, result: Result<ProduceOutcome, ClientError>) -> Result<i64, ClientError> {
        let out = result?;
        let what = format!(
            "producing to {} partition {}",
            self.target_topic, self.source.partition
        );
        match ClientError::from_code(
            self.target.name(),
            &what,
            out.error_code,
            out.error_message.as_deref(),
        ) {
            Some(e) => Err(e),
            None => Ok(out.base_offset),
        }
    }

    fn acknowledged(&mut self, done: &InFlight, base_offset: i64) {
        if base_offset >= 0 {
            self.next_target_offset = base_offset + i64::from(done.records);
        }
        self.advance(done.chunk.next_source_offset);
    }

    fn advance(&self, next_source_offset: i64) {
        self.progress.advance(
            &self.source,
            Position {
                next_source_offset,
                next_target_offset: self.next_target_offset,
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
            tracing::error!(flow = %self.flow, topic = %self.source.topic, partition = self.source.partition, error = %error, "Partition stopped: the target refused its data. Mirroring of this partition needs operator action; progress is kept.");
            return Err(error);
        }
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
