//! The transaction coordinator's state machine (transaction.version 0/1, before KIP-890's
//! second part): one [`TxnMeta`] per transactional id, moved by InitProducerId,
//! AddPartitionsToTxn, EndTxn and the timeout sweep. Writing markers is the caller's: a
//! step that needs them answers a [`Markers`], the caller appends them to the partitions
//! and then calls [`Coordinator::complete`]. No lock of this module is held while markers
//! are written, so a produce may consult it under its partition lock.
//!
//! Every change is written to the data directory before it is answered
//! ([`super::persist`]).
//!
//! Kafka: TransactionCoordinator (handleInitProducerId, handleAddPartitionsToTransaction,
//! handleEndTransaction, abortTimedOutTransactions) and TransactionMetadata.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};

pub use super::persist::FILE_NAME;

/// Kafka's default `transaction.max.timeout.ms` (15 minutes).
pub const MAX_TIMEOUT_MS: i32 = 900_000;

/// A transaction's state (Kafka: TransactionState; PrepareEpochFence and Dead are not
/// reached here: fencing an open transaction goes straight to PrepareAbort).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

/// One transactional id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMeta {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump asked for with the producer's own id and epoch
    /// (KIP-360), so a retry of that bump is recognised; -1 otherwise.
    pub last_producer_epoch: i16,
    /// The id before the last rotation (an exhausted epoch); -1 if none.
    pub previous_producer_id: i64,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// The partitions (topic, index) written in the open transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// The groups whose offsets the open transaction commits (AddOffsetsToTxn).
    pub groups: BTreeSet<String>,
    /// When the open (or last) transaction began (its first AddPartitionsToTxn); -1 before
    /// the first.
    pub start_ms: i64,
    /// When the state last moved (for retrying markers left unwritten, and expiring the id).
    pub updated_ms: i64,
    /// Its markers are being written (by one task; the retry sweep leaves it alone).
    #[serde(skip)]
    pub writing: bool,
}

/// Markers a step needs written before [`Coordinator::complete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Markers {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: BTreeSet<(String, i32)>,
    /// Groups whose pending offsets the transaction's end commits or drops.
    pub groups: BTreeSet<String>,
}

/// What InitProducerId leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Init {
    /// Answer with this id and epoch.
    Ready {
        producer_id: i64,
        producer_epoch: i16,
    },
    /// The open transaction was fenced: write these abort markers, complete, and answer
    /// CONCURRENT_TRANSACTIONS (the client asks again and gets the next epoch).
    Fenced(Markers),
}

/// What EndTxn leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Nothing to write: a retry of an ended transaction.
    Done,
    Write(Markers),
}

/// What the producer named in a request must match.
#[derive(Debug, Clone, Copy)]
pub struct Producer<'a> {
    pub transactional_id: &'a str,
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// Every transactional id of the process (all nodes share it, as they share storage).
#[derive(Debug, Default)]
pub struct Coordinator {
    pub(super) txns: Mutex<HashMap<String, TxnMeta>>,
    /// Where the state is kept ([`super::persist`]); `None`: in memory only.
    pub(super) path: Option<PathBuf>,
}

pub(super) type Txns = HashMap<String, TxnMeta>;

impl Coordinator {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Txns> {
        self.txns.lock().expect("transactions lock")
    }

    /// Every transactional id with a copy of its state.
    pub fn all(&self) -> Vec<(String, TxnMeta)> {
        self.lock()
            .iter()
            .map(|(id, m)| (id.clone(), m.clone()))
            .collect()
    }

    /// Fences and aborts the open transaction of `transactional_id` (at start, when what
    /// it committed for groups was lost with the last process).
    pub fn fence_open(&self, transactional_id: &str, now_ms: i64) -> Option<Markers> {
        let mut txns = self.lock();
        let before = txns.clone();
        let meta = txns
            .get_mut(transactional_id)
            .filter(|m| m.state == TxnState::Ongoing)?;
        let markers = fence(transactional_id, meta, now_ms);
        self.save_or_undo(&mut txns, before).then_some(markers)
    }

    /// A copy of one transactional id's state.
    pub fn get(&self, transactional_id: &str) -> Option<TxnMeta> {
        self.lock().get(transactional_id).cloned()
    }

    /// InitProducerId with a transactional id. `expected` is the v3+ producer id and epoch
    /// (KIP-360), -1/-1 when absent; `allocate` hands out a fresh producer id.
    /// Kafka: TransactionCoordinator.handleInitProducerId (prepareInitProducerIdTransit,
    /// TransactionMetadata.prepareIncrementProducerEpoch and prepareProducerIdRotation).
    pub fn init(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: (i64, i16),
        now_ms: i64,
        allocate: impl FnOnce() -> Result<i64, ResponseError>,
    ) -> Result<Init, ResponseError> {
        if let Some(e) = init_refusal(transactional_id, timeout_ms) {
            return Err(e);
        }
        self.mutate(transactional_id, |txns| {
            let Some(meta) = txns.get_mut(transactional_id) else {
                let producer_id = allocate()?;
                txns.insert(
                    transactional_id.to_string(),
                    TxnMeta {
                        producer_id,
                        producer_epoch: 0,
                        last_producer_epoch: -1,
                        previous_producer_id: -1,
                        timeout_ms,
                        state: TxnState::Empty,
                        partitions: BTreeSet::new(),
                        groups: BTreeSet::new(),
                        // Kafka: TransactionMetadata (txnStartTimestamp -1 until the
                        // first transaction starts).
                        start_ms: -1,
                        updated_ms: now_ms,
                        writing: false,
                    },
                );
                return Ok(Init::Ready {
                    producer_id,
                    producer_epoch: 0,
                });
            };
            let given = expected.0 >= 0;
            // Kafka: TransactionMetadata.isValidProducerId — the id only; the epoch is the
            // state's to judge.
            if given
                && expected.0 != meta.producer_id
                && !(expected.0 == meta.previous_producer_id && exhausted(expected.1))
            {
                return Err(ResponseError::ProducerFenced);
            }
            match meta.state {
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    Err(ResponseError::ConcurrentTransactions)
                }
                TxnState::Ongoing => {
                    // Fence the open transaction: abort it at a bumped epoch, so the old
                    // producer's next write is refused.
                    Ok(Init::Fenced(fence(transactional_id, meta, now_ms)))
                }
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                    if exhausted(meta.producer_epoch)
                        && (!given || expected.1 == meta.producer_epoch)
                    {
                        meta.last_producer_epoch = if given { meta.producer_epoch } else { -1 };
                        meta.previous_producer_id = meta.producer_id;
                        meta.producer_id = allocate()?;
                        meta.producer_epoch = 0;
                    } else if !given {
                        meta.producer_epoch += 1;
                        meta.last_producer_epoch = -1;
                    } else if expected.1 == meta.producer_epoch {
                        meta.last_producer_epoch = meta.producer_epoch;
                        meta.producer_epoch += 1;
                    } else if expected.1 != meta.last_producer_epoch {
                        return Err(ResponseError::ProducerFenced);
                    }
                    // (The epoch asked for was the last one: a retry, answered as before.)
                    meta.timeout_ms = timeout_ms;
                    meta.state = TxnState::Empty;
                    meta.partitions.clear();
                    meta.groups.clear();
                    meta.updated_ms = now_ms;
                    Ok(Init::Ready {
                        producer_id: meta.producer_id,
                        producer_epoch: meta.producer_epoch,
                    })
                }
            }
        })
    }

    /// The producer id and epoch checks every request after InitProducerId starts with.
    fn current<'a>(txns: &'a mut Txns, p: Producer<'_>) -> Result<&'a mut TxnMeta, ResponseError> {
        // Kafka: TransactionCoordinator.endTransaction and handleAddPartitionsToTransaction
        // start with an empty id: INVALID_REQUEST.
        if p.transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let meta = txns
            .get_mut(p.transactional_id)
            .filter(|m| m.producer_id == p.producer_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if meta.producer_epoch != p.producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        Ok(meta)
    }

    /// AddPartitionsToTxn: the partitions join the open transaction (which begins now if
    /// none is open). Kafka: TransactionCoordinator.handleAddPartitionsToTransaction.
    pub fn add_partitions(
        &self,
        p: Producer<'_>,
        partitions: impl IntoIterator<Item = (String, i32)>,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        self.join(p, now_ms, |meta| meta.partitions.extend(partitions))
    }

    /// AddOffsetsToTxn: the group's offsets join the open transaction (Kafka adds the
    /// group's `__consumer_offsets` partition, with AddPartitionsToTxn's rules).
    pub fn add_group(
        &self,
        p: Producer<'_>,
        group: &str,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        self.join(p, now_ms, |meta| {
            meta.groups.insert(group.to_string());
        })
    }

    fn join(
        &self,
        p: Producer<'_>,
        now_ms: i64,
        add: impl FnOnce(&mut TxnMeta),
    ) -> Result<(), ResponseError> {
        self.mutate(p.transactional_id, |txns| {
            let meta = Self::current(txns, p)?;
            if matches!(meta.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
                return Err(ResponseError::ConcurrentTransactions);
            }
            if meta.state != TxnState::Ongoing {
                meta.start_ms = now_ms;
                meta.state = TxnState::Ongoing;
            }
            add(meta);
            Ok(())
        })
    }

    /// Whether a transactional batch of `p` may be written to `partition`: the partition
    /// must be in the producer's open transaction (KIP-890 verification). Answers the
    /// coordinator's errors (Kafka: TransactionCoordinator.handleVerifyPartitionsInTransaction):
    /// INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED, CONCURRENT_TRANSACTIONS while the
    /// transaction ends, TRANSACTION_ABORTABLE for a partition not in it.
    pub fn verify(&self, p: Producer<'_>, partition: (&str, i32)) -> Result<(), ResponseError> {
        let wanted = (partition.0.to_string(), partition.1);
        self.check_open(p, |meta| meta.partitions.contains(&wanted))
    }

    /// [`Self::verify`] for a TxnOffsetCommit: the group must be in the open transaction.
    pub fn verify_group(&self, p: Producer<'_>, group: &str) -> Result<(), ResponseError> {
        self.check_open(p, |meta| meta.groups.contains(group))
    }

    fn check_open(
        &self,
        p: Producer<'_>,
        added: impl FnOnce(&TxnMeta) -> bool,
    ) -> Result<(), ResponseError> {
        let mut txns = self.lock();
        let meta = Self::current(&mut txns, p)?;
        if matches!(meta.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if meta.state == TxnState::Ongoing && added(meta) {
            Ok(())
        } else {
            Err(ResponseError::TransactionAbortable)
        }
    }

    /// EndTxn. Kafka: TransactionCoordinator.handleEndTransaction (transaction.version < 2).
    pub fn end(&self, p: Producer<'_>, commit: bool, now_ms: i64) -> Result<End, ResponseError> {
        self.mutate(p.transactional_id, |txns| {
            Self::end_in(txns, p, commit, now_ms)
        })
    }

    fn end_in(
        txns: &mut Txns,
        p: Producer<'_>,
        commit: bool,
        now_ms: i64,
    ) -> Result<End, ResponseError> {
        let meta = Self::current(txns, p)?;
        match (meta.state, commit) {
            (TxnState::Ongoing, _) => {
                meta.updated_ms = now_ms;
                meta.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                meta.writing = true;
                Ok(End::Write(markers_of(p.transactional_id, meta, commit)))
            }
            // A retry of the same result.
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(End::Done),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// Ends a transaction whose markers were written, except in `unwritten` (a partition
    /// whose append failed): then it stays prepared with those partitions, and
    /// [`Self::unfinished`] hands them out again. Kafka:
    /// TransactionMarkerRequestCompletionHandler (retriable errors retry the partition;
    /// the transaction completes once every marker is written).
    pub fn complete(&self, markers: &Markers, unwritten: BTreeSet<(String, i32)>, now_ms: i64) {
        let mut txns = self.lock();
        let Some(meta) = txns.get_mut(&markers.transactional_id) else {
            return;
        };
        if meta.producer_id != markers.producer_id
            || !matches!(meta.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
        {
            return;
        }
        meta.groups.clear();
        meta.updated_ms = now_ms;
        meta.writing = false;
        if unwritten.is_empty() {
            meta.state = if markers.commit {
                TxnState::CompleteCommit
            } else {
                TxnState::CompleteAbort
            };
            meta.partitions.clear();
        } else {
            meta.partitions = unwritten;
        }
        self.save_logged(&txns);
    }

    /// Prepared transactions whose markers are still not all written `retry_ms` after the
    /// last attempt, and that no task is writing: their markers, to write again (Kafka:
    /// TransactionMarkerChannelManager retries a marker until it is written).
    pub fn unfinished(&self, now_ms: i64, retry_ms: i64) -> Vec<Markers> {
        let mut txns = self.lock();
        txns.iter_mut()
            .filter(|(_, m)| {
                matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
                    && !m.writing
                    && now_ms.saturating_sub(m.updated_ms) >= retry_ms
            })
            .map(|(id, m)| {
                m.updated_ms = now_ms;
                m.writing = true;
                markers_of(id, m, m.state == TxnState::PrepareCommit)
            })
            .collect()
    }

    /// Open transactions older than their timeout, fenced (epoch bumped) and moved to
    /// PrepareAbort: write their abort markers, then complete them (Kafka:
    /// TransactionCoordinator.abortTimedOutTransactions); and ids idle for
    /// `transactional.id.expiration.ms` without a transaction, forgotten (Kafka:
    /// TransactionStateManager.removeExpiredTransactionalIds). Nothing moves if the state
    /// cannot be written.
    pub fn expire(&self, now_ms: i64) -> Vec<Markers> {
        let mut txns = self.lock();
        let before = txns.clone();
        txns.retain(|_, m| {
            let idle = matches!(
                m.state,
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
            );
            !idle || now_ms.saturating_sub(m.updated_ms) < ID_EXPIRATION_MS
        });
        let expired: Vec<Markers> = txns
            .iter_mut()
            .filter(|(_, m)| {
                m.state == TxnState::Ongoing
                    && now_ms.saturating_sub(m.start_ms) > i64::from(m.timeout_ms)
            })
            .map(|(id, m)| fence(id, m, now_ms))
            .collect();
        if txns.len() == before.len() && expired.is_empty() {
            return expired;
        }
        if self.save_or_undo(&mut txns, before) {
            expired
        } else {
            Vec::new()
        }
    }
}

/// Kafka's default `transactional.id.expiration.ms` (7 days).
pub const ID_EXPIRATION_MS: i64 = 7 * 24 * 3600 * 1000;

/// Kafka: TransactionMetadata.isEpochExhausted.
fn exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// Why InitProducerId is refused before the coordinator is asked (Kafka:
/// TransactionCoordinator.handleInitProducerId checks these first, on any node): an empty
/// id, a timeout out of (0, `transaction.max.timeout.ms`].
pub fn init_refusal(transactional_id: &str, timeout_ms: i32) -> Option<ResponseError> {
    if transactional_id.is_empty() {
        Some(ResponseError::InvalidRequest)
    } else if timeout_ms <= 0 || timeout_ms > MAX_TIMEOUT_MS {
        Some(ResponseError::InvalidTransactionTimeout)
    } else {
        None
    }
}

/// The markers that end `meta`'s transaction.
fn markers_of(transactional_id: &str, meta: &TxnMeta, commit: bool) -> Markers {
    Markers {
        transactional_id: transactional_id.to_string(),
        producer_id: meta.producer_id,
        producer_epoch: meta.producer_epoch,
        commit,
        partitions: meta.partitions.clone(),
        groups: meta.groups.clone(),
    }
}

/// Bumps the epoch of an open transaction and moves it to PrepareAbort (Kafka:
/// TransactionMetadata.prepareFenceProducerEpoch, then the abort).
fn fence(transactional_id: &str, meta: &mut TxnMeta, now_ms: i64) -> Markers {
    meta.producer_epoch = meta.producer_epoch.saturating_add(1);
    meta.last_producer_epoch = -1;
    meta.state = TxnState::PrepareAbort;
    meta.updated_ms = now_ms;
    meta.writing = true;
    markers_of(transactional_id, meta, false)
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
