//! One entry of a partition's produce window: a stamped batch (or a position-only entry),
//! the source offsets it covers, the memory it holds until acknowledged, and the lane's
//! answer, awaited by the pipeline itself rather than by a task per batch; and the batch
//! a partition stopped at, as an operator finds it.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::client::produce_lane::Answer;
use crate::client::ClientError;
use crate::mirror::batching::Permits;

/// One Produce request of the window, in source order.
pub(super) struct InFlight {
    pub(super) first_source_offset: i64,
    pub(super) next_source_offset: i64,
    /// The source partition leader epoch of the last batch below `next_source_offset`.
    pub(super) leader_epoch: Option<i32>,
    /// The stamped batch; empty for an entry that only moves the position.
    pub(super) stamped: Bytes,
    pub(super) records: i32,
    /// Its records' source offsets as `(first offset, count)` runs, for the offset map;
    /// empty when they are `records` offsets from `first_source_offset` on.
    pub(super) source_runs: Vec<(i64, i64)>,
    /// The batch's first and newest record timestamps (ms), for telemetry.
    pub(super) timestamps_ms: (i64, i64),
    /// The answer, once the batch is handed to its lane (polled by the pipeline itself: no
    /// task per batch).
    pub(super) pending: Option<Pending>,
    /// The memory this batch holds until it is acknowledged.
    pub(super) _permits: Permits,
}

/// A batch's oldest and newest record timestamps (ms) as telemetry shows them: the base
/// timestamp is the first record's, except where the source's cleaner set a delete horizon
/// there (KIP-534: later than every record), and the newest then stands in. `(0, 0)` for
/// bytes that are not a batch.
pub(super) fn timestamps_ms(batch: &[u8]) -> (i64, i64) {
    kmirror_wire::batch::BatchView::parse(batch, 0).map_or((0, 0), |b| {
        (b.base_timestamp().min(b.max_timestamp()), b.max_timestamp())
    })
}

/// A request's answer, as the pipeline waits for it.
pub(super) enum Pending {
    /// The batch is in its lane's hands; the lane answers here.
    Sent(oneshot::Receiver<Answer>),
    /// The batch could not be handed to a lane; the error is taken when first polled.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delete_horizon_in_the_base_timestamp_is_not_taken_for_a_record() {
        let records: Vec<_> = [1_000, 1_010]
            .iter()
            .enumerate()
            .map(|(i, &t)| kmirror_wire::records::record(i as i64, t, None, Some(Bytes::from("v"))))
            .collect();
        let plain =
            kmirror_wire::records::encode(&records, kafka_protocol::records::Compression::None)
                .unwrap();
        assert_eq!(timestamps_ms(&plain), (1_000, 1_010));
        // Kafka's cleaner writes the horizon over the base timestamp (batch bytes 27..35).
        let mut horizon = plain.to_vec();
        horizon[27..35].copy_from_slice(&90_000i64.to_be_bytes());
        assert_eq!(timestamps_ms(&horizon), (1_010, 1_010));
        assert_eq!(timestamps_ms(b"not a batch"), (0, 0));
    }

    #[tokio::test]
    async fn a_sent_request_yields_its_lanes_answer_or_an_error_when_the_lane_drops_it() {
        let (tx, rx) = oneshot::channel::<Answer>();
        tx.send(Ok(None)).unwrap();
        assert!(matches!(Pending::Sent(rx).await, Ok(Ok(None))));

        let (tx, rx) = oneshot::channel::<Answer>();
        drop(tx);
        let dropped = Pending::Sent(rx).await;
        assert!(
            matches!(&dropped, Err(ClientError::Internal { what }) if what.contains("dropped")),
            "{dropped:?}"
        );
    }

    #[tokio::test]
    async fn an_unsent_request_yields_why_it_was_not_sent_once() {
        let mut pending = Pending::Unsent(Some(ClientError::Internal {
            what: "no leader".into(),
        }));
        let first = (&mut pending).await;
        assert!(matches!(&first, Err(ClientError::Internal { what }) if what == "no leader"));
        let again = pending.await;
        assert!(
            matches!(&again, Err(ClientError::Internal { what }) if what.contains("twice")),
            "{again:?}"
        );
    }
}

/// The batch a partition stopped at: its source offsets (`first_offset` up to, not
/// including, `next_offset`), records and bytes as sent, so an operator can find it.
#[derive(Debug, Clone, Copy)]
pub struct RefusedBatch {
    pub first_offset: i64,
    pub next_offset: i64,
    pub records: i32,
    pub bytes: usize,
}

impl std::fmt::Display for RefusedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = if self.records == 1 { "" } else { "s" };
        write!(
            f,
            "the refused batch holds source offsets {} to {} ({} record{plural}, {} bytes)",
            self.first_offset,
            self.next_offset - 1,
            self.records,
            self.bytes
        )
    }
}

/// The first batch of the window, which the target refused, as an operator finds it.
pub(super) fn refused(window: &VecDeque<InFlight>) -> Option<RefusedBatch> {
    window.front().map(|b| RefusedBatch {
        first_offset: b.first_source_offset,
        next_offset: b.next_source_offset,
        records: b.records,
        bytes: b.stamped.len(),
    })
}
