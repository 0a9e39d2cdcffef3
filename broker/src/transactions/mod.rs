//! Transactions (KIP-98, transaction.version 0/1): the coordinator of every transactional
//! id ([`coordinator`]), the markers that end a transaction in its partitions
//! ([`markers`]), and the steps that join the two: ending a transaction, fencing one at
//! InitProducerId, the timeout sweep and, at start, recovering what the last process
//! left.
//!
//! The partitions' side (open transactions, the last stable offset, aborted ranges) is
//! [`crate::producers::txn`]. The coordinator's state is kept in the data directory, so a
//! restarted broker goes on with its transactions ([`recover`]); the offsets transactions
//! hold for groups are not kept (Kafka keeps them in `__consumer_offsets`), so a
//! transaction that had some is aborted at a restart. Not here: transaction.version 2
//! (KIP-890's second part), which ApiVersions does not finalize.

pub mod coordinator;
pub mod markers;
mod persist;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use coordinator::{Coordinator, End, Init, Markers, Producer, TxnState};

use crate::state::{now_ms, Broker};

/// How often open transactions are checked against their timeout (Kafka:
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms`, 10 s).
pub const TIMEOUT_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// How long markers that could not be written wait before they are written again.
const MARKER_RETRY_MS: i64 = 10_000;

/// Writes a step's markers and completes the transaction, in a task of its own: a
/// connection closed meanwhile, or a node stopped, cannot leave it half done.
pub async fn finish(broker: &Broker, markers: Markers) {
    let b = broker.clone();
    let task = tokio::spawn(async move {
        let unwritten = markers::write(&b, &markers).await;
        if !markers.groups.is_empty() {
            b.groups
                .complete_txn_offsets(markers.producer_id, markers.commit);
        }
        b.transactions.complete(&markers, unwritten, now_ms());
        tracing::debug!(transactional_id = %markers.transactional_id, producer_id = markers.producer_id, commit = markers.commit, partitions = markers.partitions.len(), "Transaction ended.");
    });
    if let Err(e) = task.await {
        tracing::error!(error = %e, "The task ending a transaction failed.");
    }
}

/// Every `interval` until shutdown: aborts open transactions older than their timeout,
/// and writes again the markers that could not be written.
pub async fn sweep_timeouts(broker: &Broker, interval: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                let now = now_ms();
                for markers in broker.transactions.expire(now) {
                    tracing::info!(transactional_id = %markers.transactional_id, producer_id = markers.producer_id, "Aborting a transaction past its timeout.");
                    finish(broker, markers).await;
                }
                for markers in broker.transactions.unfinished(now, MARKER_RETRY_MS) {
                    tracing::info!(transactional_id = %markers.transactional_id, partitions = markers.partitions.len(), "Writing transaction markers again.");
                    finish(broker, markers).await;
                }
            }
        }
    }
}

/// At start, what the last process left: markers of ending transactions are written
/// again; an open transaction that committed offsets for groups is aborted (those offsets
/// were held in memory and are gone); and a transaction a partition holds open that the
/// coordinator does not know (its state file lost) is aborted, as Kafka's coordinator
/// would end it at the latest at its timeout.
pub async fn recover(broker: &Broker) {
    let now = now_ms();
    let known = broker.transactions.open_transactions();
    for markers in broker.transactions.unfinished(now, 0) {
        finish(broker, markers).await;
    }
    for (id, state, _) in &known {
        let with_groups = broker
            .transactions
            .get(id)
            .is_some_and(|m| !m.groups.is_empty());
        if *state != TxnState::Ongoing || !with_groups {
            continue;
        }
        tracing::warn!(transactional_id = %id, "Aborting an open transaction whose group offsets were lost with the last run.");
        if let Some(markers) = broker.transactions.fence_open(id, now) {
            finish(broker, markers).await;
        }
    }
    let known_pids: std::collections::HashSet<i64> = known.iter().map(|(_, _, pid)| *pid).collect();
    for partition in broker.topics.all_partitions() {
        let open = partition
            .producers
            .lock()
            .expect("producers lock")
            .txns
            .ongoing();
        for (producer_id, first_offset) in open {
            if known_pids.contains(&producer_id) {
                continue;
            }
            let epoch = partition
                .producers
                .lock()
                .expect("producers lock")
                .entries()
                .find(|(pid, _)| *pid == producer_id)
                .map_or(0, |(_, e)| e.epoch)
                .max(0);
            tracing::warn!(topic = %partition.topic, partition = partition.index, producer_id, first_offset, "Aborting a transaction no coordinator knows (left open by the last run).");
            let markers = Markers {
                transactional_id: format!("(unknown, producer {producer_id})"),
                producer_id,
                producer_epoch: epoch,
                commit: false,
                partitions: [(partition.topic.clone(), partition.index)].into(),
                groups: Default::default(),
            };
            if !markers::write(broker, &markers).await.is_empty() {
                tracing::error!(topic = %partition.topic, partition = partition.index, "Cannot abort a transaction left open.");
            }
        }
    }
}
