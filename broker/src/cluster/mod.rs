//! Several broker nodes presented by one process (`--nodes N`): the node list, which
//! nodes are live, and the leadership table (leader, leader epoch, replicas and epoch
//! history per partition), persisted in `<data_dir>/leaders.json` so epochs stay
//! monotonic across restarts.
//!
//! Storage stays one copy per partition, shared by all nodes: this exists to exercise
//! clients' leader routing (NOT_LEADER_OR_FOLLOWER, leader epochs, KIP-951 hints), not
//! replication or durability. With one node every partition is led by it at epoch 0.
//!
//! Lock order: a partition's log lock, then the table lock; the table lock is never held
//! while a log lock is taken, so a leader change and an append cannot interleave.

pub mod admin;
pub mod hints;
pub mod leadership;
pub mod listeners;
mod table;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;

pub use leadership::{ElectionError, PartitionLeadership, NO_LEADER};
pub use table::Cluster;

/// A node's advertised address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEndpoint {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

/// What Metadata reports for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline: Vec<i32>,
}

/// Why a node may not serve a partition request (Partition.getLocalLog).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaderError {
    #[error("node {node_id} is not the leader of {topic}-{partition} (leader: {leader})")]
    NotLeaderOrFollower {
        node_id: i32,
        topic: String,
        partition: i32,
        leader: i32,
    },
    #[error(
        "leader epoch {requested} of {topic}-{partition} is older than the current epoch {current}"
    )]
    FencedLeaderEpoch {
        topic: String,
        partition: i32,
        requested: i32,
        current: i32,
    },
    #[error(
        "leader epoch {requested} of {topic}-{partition} is newer than the current epoch {current}"
    )]
    UnknownLeaderEpoch {
        topic: String,
        partition: i32,
        requested: i32,
        current: i32,
    },
}

impl LeaderError {
    pub fn code(&self) -> ResponseError {
        match self {
            LeaderError::NotLeaderOrFollower { .. } => ResponseError::NotLeaderOrFollower,
            LeaderError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
            LeaderError::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch,
        }
    }
}

/// Errors of the node controls (stop/start).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("there is no node {0}")]
    Unknown(i32),
    #[error("node {0} is the last live node; it cannot be stopped")]
    LastLive(i32),
    #[error("node {0} is already {1}")]
    AlreadyInState(i32, &'static str),
    #[error("node {node_id} cannot listen on {addr}: {source}")]
    Bind {
        node_id: i32,
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Partition.checkCurrentLeaderEpoch then Partition.getLocalLog: the epoch check first
/// (FENCED_LEADER_EPOCH for older, UNKNOWN_LEADER_EPOCH for newer), then, when the
/// request needs the leader, NOT_LEADER_OR_FOLLOWER. A node that is not a replica at
/// all answers NOT_LEADER_OR_FOLLOWER (ReplicaManager: HostedPartition.None).
pub fn check(
    pl: &PartitionLeadership,
    node_id: i32,
    topic: &str,
    partition: i32,
    current_leader_epoch: Option<i32>,
    require_leader: bool,
) -> Result<i32, LeaderError> {
    let not_leader = || LeaderError::NotLeaderOrFollower {
        node_id,
        topic: topic.to_string(),
        partition,
        leader: pl.leader,
    };
    if !pl.replicas.contains(&node_id) {
        return Err(not_leader());
    }
    if let Some(requested) = current_leader_epoch {
        let current = pl.leader_epoch;
        let (topic, partition) = (topic.to_string(), partition);
        if current > requested {
            return Err(LeaderError::FencedLeaderEpoch {
                topic,
                partition,
                requested,
                current,
            });
        }
        if current < requested {
            return Err(LeaderError::UnknownLeaderEpoch {
                topic,
                partition,
                requested,
                current,
            });
        }
    }
    if require_leader && pl.leader != node_id {
        return Err(not_leader());
    }
    Ok(pl.leader_epoch)
}

/// The partition as Metadata shows it.
pub fn view(pl: &PartitionLeadership, live: &BTreeSet<i32>) -> PartitionView {
    PartitionView {
        leader: pl.leader,
        leader_epoch: pl.leader_epoch,
        replicas: pl.replicas.clone(),
        isr: pl.isr(live),
        offline: pl
            .replicas
            .iter()
            .copied()
            .filter(|r| !live.contains(r))
            .collect(),
    }
}
