//! Transactions (KIP-98, transaction.version 0/1): the coordinator of every transactional
//! id ([`coordinator`]), the markers that end a transaction in its partitions
//! ([`markers`]), and the steps that join the two: ending a transaction, fencing one at
//! InitProducerId, the timeout sweep and, at start, recovering what the last process
//! left.
//!
//! The partitions' side (open transactions, the last stable offset, aborted ranges) is
//! [`crate::producers::txn`]. The coordinator's state is kept in the data directory, so a
//! restarted broker goes on with its transactions ([`recover`]); the offsets transactions
//! hold for groups are not kept (Kafka keeps them in `__consumer_offsets`), so an open
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

/// How long markers that could not be written wait before they are written again (Kafka:
/// TransactionMarkerChannelManager retries them until they are written).
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
        let left = unwritten.len();
        b.transactions.complete(&markers, unwritten, now_ms());
        if left == 0 {
            tracing::debug!(transactional_id = %markers.transactional_id, producer_id = markers.producer_id, commit = markers.commit, partitions = markers.partitions.len(), "Transaction ended.");
        } else {
            tracing::warn!(transactional_id = %markers.transactional_id, producer_id = markers.producer_id, commit = markers.commit, unwritten = left, "Transaction markers left unwritten; written again in {} s.", MARKER_RETRY_MS / 1000);
        }
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

/// At start, what the last process left (Kafka: TransactionStateManager loads the
/// transaction log and TransactionCoordinator sends the markers of prepared transactions
/// again): markers of ending transactions are written again; an open transaction that
/// committed offsets for groups is aborted (those offsets were held in memory and are
/// gone; one that was committing them commits without them, logged as an error); and a
/// transaction a partition holds open that the coordinator has not open is ended as the
/// coordinator last knew it (committed if it completed a commit, else aborted, as Kafka's
/// coordinator would at the latest at its timeout).
pub async fn recover(broker: &Broker) {
    let now = now_ms();
    let all = broker.transactions.all();
    for (id, meta) in &all {
        let groups = meta.groups.len();
        if groups == 0 {
            continue;
        }
        if meta.state == TxnState::Ongoing {
            tracing::warn!(transactional_id = %id, groups, "Aborting an open transaction whose group offsets were lost with the last run.");
            if let Some(markers) = broker.transactions.fence_open(id, now) {
                finish(broker, markers).await;
            }
        } else if meta.state == TxnState::PrepareCommit {
            tracing::error!(transactional_id = %id, groups, "A transaction committing offsets for groups was interrupted by the restart: it commits without them.");
        }
    }
    for markers in broker.transactions.unfinished(now, 0) {
        tracing::info!(transactional_id = %markers.transactional_id, commit = markers.commit, partitions = markers.partitions.len(), "Writing the markers of a transaction the last run was ending.");
        finish(broker, markers).await;
    }
    let open_elsewhere: std::collections::HashSet<i64> = all
        .iter()
        .filter(|(_, m)| {
            matches!(
                m.state,
                TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
            )
        })
        .map(|(_, m)| m.producer_id)
        .collect();
    let committed: std::collections::HashMap<i64, i16> = all
        .iter()
        .filter(|(_, m)| m.state == TxnState::CompleteCommit)
        .map(|(_, m)| (m.producer_id, m.producer_epoch))
        .collect();
    for partition in broker.topics.all_partitions() {
        let open: Vec<(i64, i64, i16)> = {
            let producers = partition.producers.lock().expect("producers lock");
            producers
                .txns
                .ongoing()
                .into_iter()
                .map(|(pid, first)| {
                    let epoch = producers
                        .entries()
                        .find(|(p, _)| *p == pid)
                        .map_or(0, |(_, e)| e.epoch);
                    (pid, first, epoch.max(0))
                })
                .collect()
        };
        for (producer_id, first_offset, epoch) in open {
            if open_elsewhere.contains(&producer_id) {
                continue;
            }
            let commit = committed.get(&producer_id) == Some(&epoch);
            tracing::warn!(topic = %partition.topic, partition = partition.index, producer_id, first_offset, commit, "Ending a transaction the last run left open in a partition.");
            let markers = Markers {
                transactional_id: format!("(producer {producer_id})"),
                producer_id,
                producer_epoch: committed
                    .get(&producer_id)
                    .copied()
                    .unwrap_or(epoch)
                    .max(epoch),
                commit,
                partitions: [(partition.topic.clone(), partition.index)].into(),
                groups: Default::default(),
            };
            if !markers::write(broker, &markers).await.is_empty() {
                tracing::error!(topic = %partition.topic, partition = partition.index, "Cannot end a transaction left open.");
            }
        }
    }
}
