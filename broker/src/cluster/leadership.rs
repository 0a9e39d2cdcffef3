//! The leadership of one partition: its replicas, its leader and leader epoch, an ongoing
//! reassignment, and the leader-epoch history (epoch -> start offset) that
//! OffsetForLeaderEpoch answers from.
//!
//! Pure state transitions, no locks and no I/O: callers pass the set of live nodes and
//! the partition's log end offset (read under the log lock, so that no batch of an old
//! epoch can land after the start offset of a new one). Storage is shared by all nodes,
//! so every live replica is in sync: the ISR is "the live replicas".

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// No leader (every replica is stopped).
pub const NO_LEADER: i32 = -1;

/// One entry of the leader-epoch history: `epoch` started at `start_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// Why an election or reassignment was refused; the handlers map these to Kafka codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElectionError {
    /// ELECTION_NOT_NEEDED.
    #[error("the partition already has the desired leader")]
    NotNeeded,
    /// PREFERRED_LEADER_NOT_AVAILABLE.
    #[error("the preferred leader {0} is not in the ISR")]
    PreferredNotAvailable(i32),
    /// INVALID_REPLICA_ASSIGNMENT.
    #[error("{0}")]
    InvalidAssignment(String),
    /// NO_REASSIGNMENT_IN_PROGRESS.
    #[error("no reassignment is in progress")]
    NoReassignment,
}

/// Leader, epoch, replicas and epoch history of one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionLeadership {
    /// Entries of a deleted and recreated topic are recognised by its new id.
    pub topic_id: Uuid,
    /// Replica order; the first is the preferred leader. During a reassignment this is
    /// the target followed by the replicas being removed.
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub epochs: Vec<EpochEntry>,
}

/// A stable 32-bit FNV-1a hash, so placement does not change between runs.
fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Replicas of a new partition: `replication_factor` nodes, starting at a per-topic offset
/// plus the partition index, so leaders spread over the nodes (as Kafka's rack-unaware
/// placement does from a random start index), live nodes before stopped ones, so the
/// first replica, the leader, is live whenever a node is.
// Kafka: StripedReplicaPlacer.place (unfenced brokers first, then fenced ones)
pub fn placement(
    topic: &str,
    partition: i32,
    nodes: &[i32],
    live: &BTreeSet<i32>,
    replication_factor: usize,
) -> Vec<i32> {
    let n = nodes.len().max(1);
    let start = fnv1a(topic) as usize % n + partition.max(0) as usize;
    let rotated = (0..nodes.len()).map(|k| nodes[(start + k) % n]);
    let (mut replicas, stopped): (Vec<i32>, Vec<i32>) = rotated.partition(|r| live.contains(r));
    replicas.extend(stopped);
    replicas.truncate(replication_factor);
    replicas
}

impl PartitionLeadership {
    /// A new partition at epoch 0, led by its first live replica.
    pub fn new(topic_id: Uuid, replicas: Vec<i32>, live: &BTreeSet<i32>) -> Self {
        let leader = first_live(&replicas, live);
        Self {
            topic_id,
            replicas,
            adding: Vec::new(),
            removing: Vec::new(),
            leader,
            leader_epoch: 0,
            epochs: vec![EpochEntry {
                epoch: 0,
                start_offset: 0,
            }],
        }
    }

    /// The in-sync replicas: the live ones (storage is shared, so none lags).
    pub fn isr(&self, live: &BTreeSet<i32>) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| live.contains(r))
            .collect()
    }

    pub fn reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// A new leader epoch starting at `log_end_offset`; the leader assigns the epoch's
    /// start offset when it becomes leader (Partition.makeLeader ->
    /// maybeAssignEpochStartOffset).
    fn bump(&mut self, leader: i32, log_end_offset: i64) {
        self.leader = leader;
        self.leader_epoch += 1;
        let entry = EpochEntry {
            epoch: self.leader_epoch,
            start_offset: log_end_offset,
        };
        // LeaderEpochFileCache.maybeTruncateNonMonotonicEntries: later entries go.
        self.epochs
            .retain(|e| e.epoch < entry.epoch && e.start_offset < entry.start_offset);
        self.epochs.push(entry);
    }

    /// Preferred election (ReplicationControlManager.electLeader): the first replica
    /// becomes leader if it is in the ISR.
    pub fn elect_preferred(
        &mut self,
        live: &BTreeSet<i32>,
        log_end_offset: i64,
    ) -> Result<(), ElectionError> {
        let preferred = self.replicas.first().copied().unwrap_or(NO_LEADER);
        if self.leader == preferred {
            return Err(ElectionError::NotNeeded);
        }
        if !live.contains(&preferred) {
            return Err(ElectionError::PreferredNotAvailable(preferred));
        }
        self.bump(preferred, log_end_offset);
        Ok(())
    }

    /// Unclean election (ReplicationControlManager.electLeader): only for a partition
    /// without a leader.
    pub fn elect_unclean(
        &mut self,
        live: &BTreeSet<i32>,
        log_end_offset: i64,
    ) -> Result<(), ElectionError> {
        if self.leader != NO_LEADER {
            return Err(ElectionError::NotNeeded);
        }
        match first_live(&self.replicas, live) {
            NO_LEADER => Err(ElectionError::PreferredNotAvailable(NO_LEADER)),
            leader => {
                self.bump(leader, log_end_offset);
                Ok(())
            }
        }
    }

    /// A node stopped: if it led, the first live replica leads with epoch+1, or nobody
    /// (PartitionChangeBuilder.electLeader). Returns whether anything changed.
    pub fn on_node_stopped(
        &mut self,
        node: i32,
        live: &BTreeSet<i32>,
        log_end_offset: i64,
    ) -> bool {
        if self.leader != node {
            return false;
        }
        let leader = first_live(&self.replicas, live);
        self.bump(leader, log_end_offset);
        true
    }

    /// A node started: a leaderless partition it replicates gets it as leader, and a
    /// reassignment waiting for it completes. Returns whether anything changed.
    pub fn on_node_started(
        &mut self,
        node: i32,
        live: &BTreeSet<i32>,
        log_end_offset: i64,
    ) -> bool {
        let mut changed = false;
        if self.leader == NO_LEADER && self.replicas.contains(&node) {
            self.bump(first_live(&self.replicas, live), log_end_offset);
            changed = true;
        }
        changed | self.maybe_complete_reassignment(live, log_end_offset)
    }

    /// AlterPartitionReassignments with a target (ReplicationControlManager
    /// .changePartitionReassignment). `nodes` are the registered node ids.
    pub fn reassign(
        &mut self,
        target: Vec<i32>,
        nodes: &[i32],
        live: &BTreeSet<i32>,
        log_end_offset: i64,
    ) -> Result<(), ElectionError> {
        validate_assignment(&target, nodes)?;
        // The replicas before any ongoing reassignment.
        let current: Vec<i32> = self
            .replicas
            .iter()
            .copied()
            .filter(|r| !self.adding.contains(r))
            .collect();
        // PartitionReassignmentReplicas: target first, then the replicas being removed.
        self.removing = current
            .iter()
            .copied()
            .filter(|r| !target.contains(r))
            .collect();
        self.adding = target
            .iter()
            .copied()
            .filter(|r| !current.contains(r))
            .collect();
        let before = self.replicas.clone();
        self.replicas = target.iter().chain(&self.removing).copied().collect();
        if !self.maybe_complete_reassignment(live, log_end_offset) && before != self.replicas {
            self.bump_if_replicas_removed(&before, log_end_offset);
        }
        Ok(())
    }

    /// AlterPartitionReassignments with null replicas (cancelPartitionReassignment): back
    /// to the replicas before the reassignment.
    pub fn cancel_reassignment(
        &mut self,
        live: &BTreeSet<i32>,
        log_end_offset: i64,
    ) -> Result<(), ElectionError> {
        if !self.reassigning() {
            return Err(ElectionError::NoReassignment);
        }
        let before = self.replicas.clone();
        self.replicas.retain(|r| !self.adding.contains(r));
        self.adding.clear();
        self.removing.clear();
        self.settle_leader(&before, live, log_end_offset);
        Ok(())
    }

    /// Completes a reassignment once every added replica, and at least one target
    /// replica, is in the ISR.
    fn maybe_complete_reassignment(&mut self, live: &BTreeSet<i32>, log_end_offset: i64) -> bool {
        let target_live = self
            .replicas
            .iter()
            .any(|r| !self.removing.contains(r) && live.contains(r));
        if !self.reassigning() || !self.adding.iter().all(|r| live.contains(r)) || !target_live {
            return false;
        }
        let before = self.replicas.clone();
        self.replicas.retain(|r| !self.removing.contains(r));
        self.adding.clear();
        self.removing.clear();
        self.settle_leader(&before, live, log_end_offset);
        true
    }

    /// After a replica change: a leader that is no longer a live replica is replaced;
    /// otherwise removing replicas still bumps the epoch
    /// (PartitionChangeBuilder.triggerLeaderEpochBumpForReplicaReassignmentIfNeeded).
    fn settle_leader(&mut self, before: &[i32], live: &BTreeSet<i32>, log_end_offset: i64) {
        if !self.replicas.contains(&self.leader) || !live.contains(&self.leader) {
            let leader = first_live(&self.replicas, live);
            self.bump(leader, log_end_offset);
        } else {
            self.bump_if_replicas_removed(before, log_end_offset);
        }
    }

    fn bump_if_replicas_removed(&mut self, before: &[i32], log_end_offset: i64) {
        if !before.iter().all(|r| self.replicas.contains(r)) {
            self.bump(self.leader, log_end_offset);
        }
    }

    /// LeaderEpochFileCache.endOffsetFor: (epoch, end offset) for a requested epoch;
    /// (-1, -1) when unknown. Read on the history as [`Self::truncate_from_start`] would
    /// leave it at `log_start_offset`, without changing it.
    pub fn end_offset_for(
        &self,
        requested_epoch: i32,
        log_end_offset: i64,
        log_start_offset: i64,
    ) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (-1, -1);
        if requested_epoch == -1 {
            return UNDEFINED;
        }
        let epochs = self.trimmed(log_start_offset);
        if epochs.clone().next_back().map(|e| e.epoch) == Some(requested_epoch) {
            return (requested_epoch, log_end_offset);
        }
        let Some(higher) = epochs.clone().find(|e| e.epoch > requested_epoch) else {
            return UNDEFINED;
        };
        match epochs.rev().find(|e| e.epoch <= requested_epoch) {
            None => (requested_epoch, higher.start_offset),
            Some(floor) => (floor.epoch, higher.start_offset),
        }
    }

    /// The history as [`Self::truncate_from_start`] would leave it, as a view.
    fn trimmed(
        &self,
        log_start_offset: i64,
    ) -> impl DoubleEndedIterator<Item = EpochEntry> + Clone + '_ {
        let removed = self
            .epochs
            .iter()
            .take_while(|e| e.start_offset <= log_start_offset)
            .count();
        let first = removed.checked_sub(1).map(|last| EpochEntry {
            epoch: self.epochs[last].epoch,
            start_offset: log_start_offset,
        });
        first
            .into_iter()
            .chain(self.epochs[removed..].iter().copied())
    }

    /// LeaderEpochFileCache.truncateFromStart: entries that start at or below the log
    /// start offset go, except the last of them, which now starts at the log start.
    pub fn truncate_from_start(&mut self, log_start_offset: i64) {
        self.epochs = self.trimmed(log_start_offset).collect();
    }

    /// LeaderEpochFileCache.epochForOffset: the epoch that wrote `offset`.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.epochs
            .iter()
            .rev()
            .find(|e| e.start_offset <= offset)
            .map(|e| e.epoch)
    }
}

fn first_live(replicas: &[i32], live: &BTreeSet<i32>) -> i32 {
    replicas
        .iter()
        .copied()
        .find(|r| live.contains(r))
        .unwrap_or(NO_LEADER)
}

/// ReplicationControlManager.validateManualPartitionAssignment: not empty, registered
/// nodes only, no duplicates.
pub(crate) fn validate_assignment(target: &[i32], nodes: &[i32]) -> Result<(), ElectionError> {
    if target.is_empty() {
        return Err(ElectionError::InvalidAssignment(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    // Kafka walks the replicas sorted.
    let mut sorted = target.to_vec();
    sorted.sort();
    let mut seen = BTreeSet::new();
    for r in &sorted {
        if !nodes.contains(r) {
            return Err(ElectionError::InvalidAssignment(format!(
                "The manual partition assignment includes broker {r}, but no such broker is registered."
            )));
        }
        if !seen.insert(*r) {
            return Err(ElectionError::InvalidAssignment(format!(
                "The manual partition assignment includes the broker {r} more than once."
            )));
        }
    }
    Ok(())
}
