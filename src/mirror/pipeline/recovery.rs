//! What a partition's pipeline does when a Produce fails: a retriable error lets the
//! window's requests finish and resends every unacknowledged one in order, with the same
//! sequences (the target drops the copies it has); a lost producer session is replaced and
//! the window restamped; a batch the target refuses as corrupt is checked against its own
//! CRC to tell a corrupt source from damage on the way.

use std::collections::VecDeque;

use bytes::BytesMut;
use kmirror_wire::backoff::Backoff;
use kmirror_wire::errors::{ErrorClass, ResponseError};

use super::in_flight::InFlight;
use super::{Ended, Pipeline};
use crate::client::produce::{self, ProducerSession};
use crate::client::ClientError;
use crate::mirror::batching::ShapeError;
use crate::mirror::rebuilds;
use crate::mirror::source_runs::part_offsets;

impl Pipeline {
    /// After a failed request: waits out the window, then resends it in order.
    pub(super) async fn recover(
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
        // Batches withdrawn because this owner's lease lapsed are not a failure of the
        // target's: its ownership member says what happened, once.
        let withdrawn = matches!(
            &error,
            ClientError::Request {
                source: kmirror_wire::messenger::RequestError::Withdrawn { .. },
                ..
            }
        );
        if !withdrawn {
            self.flow_stats
                .produce_retry(class_name(error.class()), &error);
            self.stats.error(format!("produce: {error}"));
        }
        wait_out(window).await;
        let delay = backoff
            .next_delay()
            .unwrap_or(std::time::Duration::from_secs(1));
        if withdrawn {
            tracing::debug!(flow = %self.flow, topic = %self.source.topic, partition = self.source.partition, error = %error, resend = window.len(), "Batches withdrawn: the flow's ownership lapsed; they are sent once it holds again.");
        } else {
            tracing::warn!(flow = %self.flow, topic = %self.source.topic, partition = self.source.partition, error = %error, retry_in_ms = delay.as_millis() as u64, resend = window.len(), "Produce failed; resending in order.");
        }
        tokio::time::sleep(delay).await;
        if error.class() == ErrorClass::RetryRefreshMetadata {
            let _ = self.target.refresh_metadata().await;
        }
        if session_lost {
            self.renew_session().await?;
            for e in window.iter_mut().filter(|e| !e.stamped.is_empty()) {
                let mut buf = BytesMut::from(&e.stamped[..]);
                let records = produce::stamp_in_place(&mut buf, self.session, self.next_sequence);
                let stamped = buf.freeze();
                self.next_sequence = produce::next_sequence(self.next_sequence, records);
                e.stamped = stamped;
            }
            tracing::info!(flow = %self.flow, producer_id = self.session.producer_id, "New producer session after the target lost the old one.");
        }
        self.resend(window).await;
        Ok(())
    }

    /// A producer session of this pipeline's own, its sequences from 0.
    pub(super) async fn renew_session(&mut self) -> Result<(), ClientError> {
        self.session = self
            .target
            .retry("InitProducerId", None, || self.target.init_producer())
            .await?;
        self.next_sequence = 0;
        self.session_acked = false;
        Ok(())
    }

    /// Sends the window's unacknowledged batches again, in order, as many as
    /// [`Pipeline::window_limit`] allows; any beyond go as the first are acknowledged.
    pub(super) async fn resend(&mut self, window: &mut VecDeque<InFlight>) {
        for i in 0..window.len().min(self.window_limit()) {
            if !window[i].stamped.is_empty() && window[i].pending.is_none() {
                let mut e = window.remove(i).expect("index in range");
                self.send(&mut e).await;
                window.insert(i, e);
            }
        }
    }

    /// When the target refused the window's first batch as too large and it holds more
    /// than one record: splits it and resends the window, as Kafka's producer does
    /// (`Sender.completeBatch`: a MESSAGE_TOO_LARGE batch of several records is split and
    /// sent again; kmirror splits on RECORD_LIST_TOO_LARGE too). A source batch may be
    /// larger than the target topic's `max.message.bytes` or `segment.bytes`, where the
    /// source topic allows more. Every batch of the window
    /// as large as the smallest refused one (`refused_before` or this one) is split into
    /// parts of about half that, the refused one in two at least; records keep their
    /// sequences, so the other batches keep their stamps. The size of the refused batch,
    /// or `None` when there is nothing to split. The first split of a partition is logged
    /// at WARN, later ones at DEBUG (a source whose every batch is too large would flood
    /// the log).
    pub(super) async fn split_too_large(
        &mut self,
        window: &mut VecDeque<InFlight>,
        error: &ClientError,
        refused_before: Option<usize>,
    ) -> Result<Option<usize>, ClientError> {
        // Kafka: MESSAGE_TOO_LARGE for a batch over the topic's max.message.bytes
        // (UnifiedLog.analyzeAndValidateRecords), RECORD_LIST_TOO_LARGE for one over its
        // segment.bytes (UnifiedLog.append).
        let limit_name = match error {
            ClientError::Broker {
                error: ResponseError::MessageTooLarge,
                ..
            } => "max.message.bytes",
            ClientError::Broker {
                error: ResponseError::RecordListTooLarge,
                ..
            } => "segment.bytes",
            _ => return Ok(None),
        };
        let Some(front) = window.front().filter(|f| f.records >= 2) else {
            return Ok(None);
        };
        let (bytes, records) = (front.stamped.len(), front.records);
        let source_offset = front.first_source_offset;
        let limit = refused_before.map_or(bytes, |r| r.min(bytes));
        wait_out(window).await;
        let mut i = 0;
        let mut parts_sent = 0;
        while i < window.len() {
            let len = window[i].stamped.len();
            if (i > 0 && len < limit) || window[i].records < 2 {
                i += 1;
                continue;
            }
            let parts = len.div_ceil((limit / 2).max(1)).max(2);
            let whole = window.remove(i).expect("index in range");
            let split = self.split_entry(whole, parts).await?;
            let n = split.len();
            for (k, e) in split.into_iter().enumerate() {
                window.insert(i + k, e);
            }
            parts_sent += n;
            i += n;
        }
        if self.splits == 0 {
            tracing::warn!(flow = %self.flow, topic = %self.source.topic, partition = self.source.partition, source_offset, bytes, records, parts = parts_sent, target_limit = limit_name, "The target refused a batch as too large (it is over the target topic's {limit_name}); sending it as two or more; for the next 10 minutes batches of its size or more are split before they are sent, and small ones merged only up to half its size; then one is tried whole again. Later splits of this partition are logged at DEBUG.");
        } else {
            tracing::debug!(flow = %self.flow, topic = %self.source.topic, partition = self.source.partition, source_offset, bytes, records, parts = parts_sent, splits = self.splits, "Split another batch the target refused as too large.");
        }
        self.splits += 1;
        self.stats
            .error(format!("produce: {error}; the batch is split"));
        self.resend(window).await;
        Ok(Some(bytes))
    }

    /// When the target refused the window's first batch for some of its records and it
    /// holds more than one: splits it in two and resends the window, so that the records
    /// before the first refused one are written and the partition stops exactly at it.
    /// Kafka refuses a whole batch for one record (INVALID_TIMESTAMP outside the topic's
    /// timestamp limits: LogValidator.validateTimestamp; INVALID_RECORD, e.g. a record
    /// without a key on a compacted topic: LogValidator.validateKey), so a source batch,
    /// or small ones kmirror merged, would otherwise hold back records the target takes.
    /// Each refusal halves the first batch until the refused record is alone, which then
    /// stops the partition ([`Pipeline::recover`]). Whether it split.
    pub(super) async fn split_refused_records(
        &mut self,
        window: &mut VecDeque<InFlight>,
        error: &ClientError,
    ) -> Result<bool, ClientError> {
        let refused = matches!(
            error,
            ClientError::Broker {
                error: ResponseError::InvalidTimestamp | ResponseError::InvalidRecord,
                ..
            }
        );
        let Some(front) = window.front().filter(|f| refused && f.records >= 2) else {
            return Ok(false);
        };
        let (source_offset, records) = (front.first_source_offset, front.records);
        wait_out(window).await;
        let whole = window.pop_front().expect("non-empty");
        for (k, e) in self.split_entry(whole, 2).await?.into_iter().enumerate() {
            window.insert(k, e);
        }
        tracing::debug!(flow = %self.flow, topic = %self.source.topic, partition = self.source.partition, source_offset, records, %error, "The target refused records of a batch; sending it in two parts, so that the records before the refused one are written.");
        self.resend(window).await;
        Ok(true)
    }

    /// Splits one unacknowledged batch ([`split_stamped`]).
    async fn split_entry(
        &self,
        whole: InFlight,
        parts: usize,
    ) -> Result<Vec<InFlight>, ClientError> {
        split_stamped(whole, parts, self.session)
            .await
            .map_err(|reason| ClientError::Source {
                what: format!("{} partition {}", self.source.topic, self.source.partition),
                reason: format!("splitting a batch the target refused: {reason}"),
            })
    }
}

/// Splits one unacknowledged batch into `parts` batches stamped with its records'
/// sequences, its source offsets and memory shared among them; off the scheduler's thread
/// when large and slow to compress ([`rebuilds::run`]).
async fn split_stamped(
    whole: InFlight,
    parts: usize,
    session: ProducerSession,
) -> Result<Vec<InFlight>, ShapeError> {
    let (codec, mut sequence) = kmirror_wire::batch::BatchView::parse(&whole.stamped, 0)
        .map(|b| (b.compression(), b.base_sequence()))?;
    let stamped = whole.stamped.clone();
    let pieces = rebuilds::run(codec, stamped.len(), move |r| r.split(&stamped, parts))
        .await
        .ok_or(ShapeError::Cancelled)??;
    let runs = if whole.source_runs.is_empty() {
        vec![(whole.first_source_offset, i64::from(whole.records))]
    } else {
        whole.source_runs.clone()
    };
    let records: Vec<i32> = pieces.iter().map(|p| p.records).collect();
    let offsets = part_offsets(runs, &records, whole.next_source_offset);
    let mut out = Vec::with_capacity(pieces.len());
    for (mut piece, at) in pieces.into_iter().zip(offsets) {
        let records = produce::stamp_in_place(&mut piece.bytes, session, sequence);
        sequence = produce::next_sequence(sequence, records);
        out.push(InFlight {
            first_source_offset: at.first_source_offset,
            next_source_offset: at.next_source_offset,
            leader_epoch: whole.leader_epoch,
            timestamps_ms: super::in_flight::timestamps_ms(&piece.bytes),
            stamped: piece.bytes.freeze(),
            records,
            source_runs: at.source_runs,
            pending: None,
            _permits: whole._permits.clone(),
        });
    }
    Ok(out)
}

/// Waits for every request of the window to finish: later requests may have succeeded or
/// failed; either way they are resent, and the target drops the copies it already has.
async fn wait_out(window: &mut VecDeque<InFlight>) {
    for e in window.iter_mut() {
        if let Some(p) = e.pending.take() {
            let _ = p.await;
        }
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
pub(super) fn corrupt_source(error: &ClientError, refused: &InFlight) -> Option<Ended> {
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
    use bytes::Bytes;
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

    /// A stamped gzip batch of 6,000 records from source offset 1,000 on (one merged from
    /// two runs, 1,000-3,999 and 5,000-7,999), its sequences from 40 on.
    fn stamped_gzip(session: ProducerSession) -> InFlight {
        let mut seed = 7;
        let records = rebuilds::testing::noise_records(0, 6_000, &mut seed);
        let encoded = kmirror_wire::records::encode(&records, Compression::Gzip).unwrap();
        let mut buf = BytesMut::from(&encoded[..]);
        assert_eq!(produce::stamp_in_place(&mut buf, session, 40), 6_000);
        InFlight {
            first_source_offset: 1_000,
            next_source_offset: 8_000,
            leader_epoch: Some(3),
            timestamps_ms: (1_000, 1_000),
            stamped: buf.freeze(),
            records: 6_000,
            source_runs: vec![(1_000, 3_000), (5_000, 3_000)],
            pending: None,
            _permits: crate::mirror::batching::Permits::new(),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_refused_gzip_batch_is_split_off_the_schedulers_thread_and_keeps_its_sequences() {
        use std::sync::atomic::Ordering;
        let session = ProducerSession {
            producer_id: 9,
            producer_epoch: 1,
        };
        let whole = stamped_gzip(session);
        assert!(whole.stamped.len() >= rebuilds::OFF_THREAD_FROM_BYTES);
        let (ticks, task) = rebuilds::testing::ticker();
        tokio::task::yield_now().await;
        let before = ticks.load(Ordering::Relaxed);
        let parts = split_stamped(whole, 3, session).await.unwrap();
        let during = ticks.load(Ordering::Relaxed) - before;
        task.abort();
        // Splitting 600 KB of gzip takes milliseconds; a task yielding in a loop runs
        // thousands of times meanwhile when the split is off this thread, never when on it.
        assert!(
            during > 100,
            "the other task ran {during} times during the split"
        );
        let shape: Vec<_> = parts
            .iter()
            .map(|p| {
                let b = kmirror_wire::batch::BatchView::parse(&p.stamped, 0).unwrap();
                b.verify_crc().unwrap();
                assert_eq!((b.producer_id(), b.base_offset()), (9, 0));
                (
                    b.base_sequence(),
                    p.records,
                    p.first_source_offset,
                    p.next_source_offset,
                    p.source_runs.clone(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                (40, 2_000, 1_000, 3_000, vec![]),
                (
                    2_040,
                    2_000,
                    3_000,
                    6_000,
                    vec![(3_000, 1_000), (5_000, 1_000)]
                ),
                (4_040, 2_000, 6_000, 8_000, vec![]),
            ]
        );
    }
}
