//! The transaction coordinator's state machine (transaction.version 0/1, before KIP-890's
//! second part): one [`TxnMeta`] per transactional id, moved by InitProducerId,
//! AddPartitionsToTxn, EndTxn and the timeout sweep. Writing markers is the caller's: a
//! step that needs them answers a [`Markers`], the caller appends them to the partitions
//! and then calls [`Coordinator::complete`]. No lock of this module is held while markers
//! are written, so a produce may consult it under its partition lock.
//!
//! Kafka: TransactionCoordinator (handleInitProducerId, handleAddPartitionsToTransaction,
//! handleEndTransaction, abortTimedOutTransactions) and TransactionMetadata.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use kafka_protocol::error::ResponseError;

/// Kafka's default `transaction.max.timeout.ms` (15 minutes).
pub const MAX_TIMEOUT_MS: i32 = 900_000;

/// A transaction's state (Kafka: TransactionState; PrepareEpochFence and Dead are not
/// reached here: fencing an open transaction goes straight to PrepareAbort).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    /// Kafka's name (DescribeTransactions, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Ongoing => "Ongoing",
            Self::PrepareCommit => "PrepareCommit",
            Self::PrepareAbort => "PrepareAbort",
            Self::CompleteCommit => "CompleteCommit",
            Self::CompleteAbort => "CompleteAbort",
        }
    }
}

/// One transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMeta {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// The partitions (topic, index) written in the open transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// The groups whose offsets the open transaction commits (AddOffsetsToTxn).
    pub groups: BTreeSet<String>,
    /// When the open transaction began (its first AddPartitionsToTxn).
    pub start_ms: i64,
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
    txns: Mutex<HashMap<String, TxnMeta>>,
}

impl Coordinator {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TxnMeta>> {
        self.txns.lock().expect("transactions lock")
    }

    /// A copy of one transactional id's state.
    pub fn get(&self, transactional_id: &str) -> Option<TxnMeta> {
        self.lock().get(transactional_id).cloned()
    }

    /// InitProducerId with a transactional id. `expected` is the v3+ producer id and epoch
    /// (KIP-360), -1/-1 when absent; `allocate` hands out a fresh producer id.
    /// Kafka: TransactionCoordinator.handleInitProducerId.
    pub fn init(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: (i64, i16),
        now_ms: i64,
        allocate: impl FnOnce() -> Result<i64, ResponseError>,
    ) -> Result<Init, ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > MAX_TIMEOUT_MS {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        let mut txns = self.lock();
        let Some(meta) = txns.get_mut(transactional_id) else {
            let producer_id = allocate()?;
            txns.insert(
                transactional_id.to_string(),
                TxnMeta {
                    producer_id,
                    producer_epoch: 0,
                    timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    groups: BTreeSet::new(),
                    start_ms: now_ms,
                },
            );
            return Ok(Init::Ready {
                producer_id,
                producer_epoch: 0,
            });
        };
        // KIP-360: a producer bumping its own epoch must name the current one.
        if expected.0 >= 0 && (expected.0 != meta.producer_id || expected.1 != meta.producer_epoch)
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
                let markers = fence(transactional_id, meta);
                Ok(Init::Fenced(markers))
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                // TransactionMetadata.prepareIncrementProducerEpoch: a fresh id once the
                // epoch is exhausted.
                if meta.producer_epoch >= i16::MAX - 1 {
                    meta.producer_id = allocate()?;
                    meta.producer_epoch = 0;
                } else {
                    meta.producer_epoch += 1;
                }
                meta.timeout_ms = timeout_ms;
                meta.state = TxnState::Empty;
                meta.partitions.clear();
                meta.groups.clear();
                Ok(Init::Ready {
                    producer_id: meta.producer_id,
                    producer_epoch: meta.producer_epoch,
                })
            }
        }
    }

    /// The producer id and epoch checks every request after InitProducerId starts with.
    fn current<'a>(
        txns: &'a mut HashMap<String, TxnMeta>,
        p: Producer<'_>,
    ) -> Result<&'a mut TxnMeta, ResponseError> {
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
        let mut txns = self.lock();
        let meta = Self::current(&mut txns, p)?;
        if matches!(meta.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if meta.state != TxnState::Ongoing {
            meta.start_ms = now_ms;
            meta.state = TxnState::Ongoing;
        }
        add(meta);
        Ok(())
    }

    /// Whether a transactional batch of `p` may be written to `partition`: the partition
    /// must be in the producer's open transaction (KIP-890 verification). Answers the
    /// coordinator's errors (Kafka: TransactionCoordinator.handleVerifyPartitionsInTransaction):
    /// INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED, CONCURRENT_TRANSACTIONS while the
    /// transaction ends, TRANSACTION_ABORTABLE for a partition not in it.
    pub fn verify(&self, p: Producer<'_>, partition: (&str, i32)) -> Result<(), ResponseError> {
        let mut txns = self.lock();
        let meta = Self::current(&mut txns, p)?;
        if matches!(meta.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        let added = meta.state == TxnState::Ongoing
            && meta
                .partitions
                .contains(&(partition.0.to_string(), partition.1));
        if added {
            Ok(())
        } else {
            Err(ResponseError::TransactionAbortable)
        }
    }

    /// [`Self::verify`] for a TxnOffsetCommit: the group must be in the open transaction.
    pub fn verify_group(&self, p: Producer<'_>, group: &str) -> Result<(), ResponseError> {
        let mut txns = self.lock();
        let meta = Self::current(&mut txns, p)?;
        if matches!(meta.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if meta.state == TxnState::Ongoing && meta.groups.contains(group) {
            Ok(())
        } else {
            Err(ResponseError::TransactionAbortable)
        }
    }

    /// EndTxn. Kafka: TransactionCoordinator.handleEndTransaction (transaction.version < 2).
    pub fn end(&self, p: Producer<'_>, commit: bool) -> Result<End, ResponseError> {
        let mut txns = self.lock();
        let meta = Self::current(&mut txns, p)?;
        match (meta.state, commit) {
            (TxnState::Ongoing, _) => {
                meta.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                Ok(End::Write(Markers {
                    transactional_id: p.transactional_id.to_string(),
                    producer_id: meta.producer_id,
                    producer_epoch: meta.producer_epoch,
                    commit,
                    partitions: meta.partitions.clone(),
                    groups: meta.groups.clone(),
                }))
            }
            // A retry of the same result.
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(End::Done),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// Marks a transaction whose markers were written as complete.
    pub fn complete(&self, markers: &Markers) {
        let mut txns = self.lock();
        if let Some(meta) = txns.get_mut(&markers.transactional_id) {
            if meta.producer_id == markers.producer_id {
                meta.state = if markers.commit {
                    TxnState::CompleteCommit
                } else {
                    TxnState::CompleteAbort
                };
                meta.partitions.clear();
                meta.groups.clear();
            }
        }
    }

    /// Open transactions older than their timeout, fenced (epoch bumped) and moved to
    /// PrepareAbort: write their abort markers, then complete them.
    /// Kafka: TransactionCoordinator.abortTimedOutTransactions.
    pub fn expire(&self, now_ms: i64) -> Vec<Markers> {
        let mut txns = self.lock();
        txns.iter_mut()
            .filter(|(_, m)| {
                m.state == TxnState::Ongoing
                    && now_ms.saturating_sub(m.start_ms) > i64::from(m.timeout_ms)
            })
            .map(|(id, m)| fence(id, m))
            .collect()
    }
}

/// Bumps the epoch of an open transaction and moves it to PrepareAbort (Kafka:
/// TransactionMetadata.prepareFenceProducerEpoch, then the abort).
fn fence(transactional_id: &str, meta: &mut TxnMeta) -> Markers {
    meta.producer_epoch = meta.producer_epoch.saturating_add(1);
    meta.state = TxnState::PrepareAbort;
    Markers {
        transactional_id: transactional_id.to_string(),
        producer_id: meta.producer_id,
        producer_epoch: meta.producer_epoch,
        commit: false,
        partitions: meta.partitions.clone(),
        groups: meta.groups.clone(),
    }
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
