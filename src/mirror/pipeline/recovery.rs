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
use crate::client::produce;
use crate::client::ClientError;

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
    use crate::client::produce::ProducerSession;
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
}
