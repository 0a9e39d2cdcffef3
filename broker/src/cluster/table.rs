//! [`Cluster`]: the nodes, which of them are live, and the leadership table behind one
//! lock, persisted in `<data_dir>/leaders.json` (written atomically) after each change.
//!
//! CreateTopics, CreatePartitions and auto-creation place new partitions
//! ([`Cluster::assign`]); a partition without an entry (a table written by an earlier
//! build, which placed every partition on every node and wrote only what changed) gets
//! one on first use from [`leadership::placement`], with as many replicas as the topic's
//! other partitions, else one per node. A topic that was deleted and created
//! again is recognised by its new topic id and starts over.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::leadership::{self, PartitionLeadership};
use super::{LeaderError, NodeEndpoint, PartitionView};
use crate::topics::{Topic, TopicRegistry};

const LEADERS_FILE: &str = "leaders.json";

#[derive(Debug, Default)]
struct State {
    live: BTreeSet<i32>,
    partitions: BTreeMap<(String, i32), PartitionLeadership>,
    /// Changed since the last write.
    dirty: bool,
}

#[derive(Serialize, Deserialize)]
struct Record {
    topic: String,
    partition: i32,
    #[serde(flatten)]
    leadership: PartitionLeadership,
}

/// The nodes and the leadership of every partition.
#[derive(Debug)]
pub struct Cluster {
    /// Woken whenever a partition's leadership may have changed (or a topic left), so
    /// that long polls waiting on this node re-check it (Kafka: ReplicaManager
    /// .completeDelayedOperationsWhenNotPartitionLeader).
    changed: tokio::sync::Notify,
    nodes: Vec<NodeEndpoint>,
    /// Replicas of a partition placed without a count (`default.replication.factor`).
    default_replication_factor: usize,
    path: Option<PathBuf>,
    state: Mutex<State>,
}

impl Cluster {
    /// All `nodes` start live; the table is read from `data_dir` if it holds one. Entries
    /// that name nodes this run does not have (fewer `--nodes` than last time) drop them.
    pub fn open(
        nodes: Vec<NodeEndpoint>,
        data_dir: Option<&Path>,
        default_replication_factor: usize,
    ) -> std::io::Result<Self> {
        let path = data_dir.map(|d| d.join(LEADERS_FILE));
        let ids: Vec<i32> = nodes.iter().map(|n| n.node_id).collect();
        let mut partitions = BTreeMap::new();
        if let Some(p) = &path {
            match std::fs::read(p) {
                Ok(bytes) => {
                    let records: Vec<Record> = serde_json::from_slice(&bytes)
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                    for r in records {
                        partitions.insert((r.topic, r.partition), r.leadership);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let mut dirty = false;
        for ((topic, partition), pl) in partitions.iter_mut() {
            if pl.replicas.iter().all(|r| ids.contains(r)) {
                continue;
            }
            let replication_factor = pl.replicas.len().min(ids.len());
            pl.replicas.retain(|r| ids.contains(r));
            pl.adding.clear();
            pl.removing.clear();
            if pl.replicas.is_empty() {
                let all = ids.iter().copied().collect();
                pl.replicas =
                    leadership::placement(topic, *partition, &ids, &all, replication_factor);
            }
            if !pl.replicas.contains(&pl.leader) {
                // The epoch history keeps its last entry: no data was written since.
                pl.leader = pl.replicas[0];
                pl.leader_epoch += 1;
                let start = pl.epochs.last().map_or(0, |e| e.start_offset);
                pl.epochs.push(leadership::EpochEntry {
                    epoch: pl.leader_epoch,
                    start_offset: start,
                });
            }
            dirty = true;
        }
        Ok(Self {
            path,
            state: Mutex::new(State {
                live: ids.into_iter().collect(),
                partitions,
                dirty,
            }),
            nodes,
            default_replication_factor: default_replication_factor.max(1),
            changed: tokio::sync::Notify::new(),
        })
    }

    /// A wake-up for the next leadership change; enable it before reading the table.
    pub fn leadership_changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    pub fn nodes(&self) -> &[NodeEndpoint] {
        &self.nodes
    }

    pub fn node_ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|n| n.node_id).collect()
    }

    pub fn endpoint(&self, node_id: i32) -> Option<&NodeEndpoint> {
        self.nodes.iter().find(|n| n.node_id == node_id)
    }

    pub fn live(&self) -> BTreeSet<i32> {
        self.state.lock().expect("cluster lock").live.clone()
    }

    pub fn is_live(&self, node_id: i32) -> bool {
        self.state
            .lock()
            .expect("cluster lock")
            .live
            .contains(&node_id)
    }

    /// The live nodes, in id order: what Metadata and DescribeCluster list.
    pub fn live_nodes(&self) -> Vec<NodeEndpoint> {
        let live = self.live();
        self.nodes
            .iter()
            .filter(|n| live.contains(&n.node_id))
            .cloned()
            .collect()
    }

    /// The group coordinator and the controller clients are shown: the lowest live node.
    pub fn coordinator(&self) -> NodeEndpoint {
        self.live_nodes()
            .into_iter()
            .next()
            .unwrap_or_else(|| self.nodes[0].clone())
    }

    /// Runs `f` on a partition's entry (created from the placement on first use).
    pub fn with<R>(
        &self,
        topic: &Topic,
        partition: i32,
        f: impl FnOnce(&mut PartitionLeadership, &BTreeSet<i32>) -> R,
    ) -> R {
        let mut guard = self.state.lock().expect("cluster lock");
        let state = &mut *guard;
        let placed = state
            .partitions
            .get(&(topic.name.clone(), partition))
            .is_some_and(|e| e.topic_id == topic.id && !e.replicas.is_empty());
        if !placed {
            let replication_factor = self.replication_factor_of(state, topic);
            let replicas = leadership::placement(
                &topic.name,
                partition,
                &self.node_ids(),
                &state.live,
                replication_factor,
            );
            let entry = PartitionLeadership::new(topic.id, replicas, &state.live);
            state
                .partitions
                .insert((topic.name.clone(), partition), entry);
            // Placed while a node is down, or on fewer than every node: kept across a
            // restart.
            state.dirty |=
                state.live.len() < self.nodes.len() || replication_factor < self.nodes.len();
        }
        let entry = state
            .partitions
            .get_mut(&(topic.name.clone(), partition))
            .expect("placed above");
        let before = entry.clone();
        let r = f(entry, &state.live);
        state.dirty |= *entry != before;
        r
    }

    /// Replicas for a partition of `topic` placed without a count: as many as its other
    /// partitions have (Kafka: ReplicationControlManager.createPartitions takes the first
    /// partition's), else every node, as builds before this one placed every partition
    /// (CreateTopics, CreatePartitions and auto-creation now place theirs explicitly).
    fn replication_factor_of(&self, state: &State, topic: &Topic) -> usize {
        let name = topic.name.clone();
        state
            .partitions
            .range((name.clone(), i32::MIN)..=(name, i32::MAX))
            .map(|(_, e)| e)
            .find(|e| e.topic_id == topic.id && !e.replicas.is_empty())
            .map_or(self.nodes.len(), |e| e.replicas.len())
            .clamp(1, self.nodes.len().max(1))
    }

    /// The replication factor of `topic`: its first partition's replica count.
    pub fn replication_factor(&self, topic: &Topic) -> usize {
        self.read(topic, 0, |pl, _| pl.replicas.len())
    }

    /// Gives partitions `first..` of a new `topic` (or new partitions of it) their
    /// `replicas`, the first the leader, and writes the table. With one node there is
    /// nothing to choose: its partitions are placed on first use and no table is written.
    pub fn assign(
        &self,
        topic: &Topic,
        first: i32,
        replicas: Vec<Vec<i32>>,
    ) -> std::io::Result<()> {
        if self.nodes.len() == 1 {
            return Ok(());
        }
        {
            let mut state = self.state.lock().expect("cluster lock");
            for (partition, replicas) in (first..).zip(replicas) {
                let entry = PartitionLeadership::new(topic.id, replicas, &state.live);
                state
                    .partitions
                    .insert((topic.name.clone(), partition), entry);
            }
            state.dirty = true;
        }
        self.persist()
    }

    /// The new partitions' replicas for `replication_factor`, or why they cannot be
    /// placed. Kafka counts stopped (fenced) nodes as registered, but needs a live one.
    // Kafka: StripedReplicaPlacer.place (throwInvalidReplicationFactorIfZero,
    // throwInvalidReplicationFactorIfTooFewBrokers)
    pub fn place(
        &self,
        topic: &str,
        partitions: std::ops::Range<i32>,
        replication_factor: i32,
    ) -> Result<Vec<Vec<i32>>, String> {
        let nodes = self.node_ids();
        let live = self.live();
        let cannot = |why: String| {
            format!("Unable to replicate the partition {replication_factor} time(s): {why}")
        };
        if live.is_empty() {
            return Err(cannot("All brokers are currently fenced.".into()));
        }
        if replication_factor as usize > nodes.len() {
            return Err(cannot(format!(
                "The target replication factor of {replication_factor} cannot be reached \
                 because only {} broker(s) are registered.",
                nodes.len()
            )));
        }
        Ok(partitions
            .map(|p| leadership::placement(topic, p, &nodes, &live, replication_factor as usize))
            .collect())
    }

    /// Forgets every partition of a deleted topic, so the table does not keep it.
    pub fn forget(&self, topic: &str) -> std::io::Result<()> {
        {
            let mut state = self.state.lock().expect("cluster lock");
            let before = state.partitions.len();
            state.partitions.retain(|(t, _), _| t != topic);
            state.dirty |= state.partitions.len() != before;
        }
        self.changed.notify_waiters();
        self.persist()
    }

    /// The default replication factor (`default.replication.factor`).
    pub fn default_replication_factor(&self) -> usize {
        self.default_replication_factor
    }

    /// Runs a read-only `f` on a partition's entry: no copy and no write, unless the entry
    /// must first be created from the placement (then as [`Self::with`]).
    pub fn read<R>(
        &self,
        topic: &Topic,
        partition: i32,
        f: impl FnOnce(&PartitionLeadership, &BTreeSet<i32>) -> R,
    ) -> R {
        {
            let state = self.state.lock().expect("cluster lock");
            let placed = state
                .partitions
                .get(&(topic.name.clone(), partition))
                .filter(|e| e.topic_id == topic.id && !e.replicas.is_empty());
            if let Some(entry) = placed {
                return f(entry, &state.live);
            }
        }
        self.with(topic, partition, |pl, live| f(pl, live))
    }

    /// Runs a change that needs the log end offset: takes the partition's log lock first,
    /// then the table lock (the module's lock order). `None` if the partition is unknown.
    pub fn change<R>(
        &self,
        topic: &Topic,
        partition: i32,
        f: impl FnOnce(&mut PartitionLeadership, &BTreeSet<i32>, i64) -> R,
    ) -> Option<R> {
        let p = topic.partition(partition)?;
        let log = p.log.lock().expect("log lock");
        let log_end_offset = log.log_end_offset();
        let log_start_offset = log.log_start_offset();
        let r = self.with(topic, partition, |pl, live| {
            // Kafka trims the history whenever the log start moves (UnifiedLog.
            // maybeIncrementLogStartOffset); trimming before every use is the same.
            pl.truncate_from_start(log_start_offset);
            f(pl, live, log_end_offset)
        });
        drop(log);
        self.changed.notify_waiters();
        Some(r)
    }

    /// The leader check of [`super::check`] for `node_id`.
    pub fn check(
        &self,
        node_id: i32,
        topic: &Topic,
        partition: i32,
        current_leader_epoch: Option<i32>,
        require_leader: bool,
    ) -> Result<i32, LeaderError> {
        self.read(topic, partition, |pl, _| {
            super::check(
                pl,
                node_id,
                &topic.name,
                partition,
                current_leader_epoch,
                require_leader,
            )
        })
    }

    pub fn view(&self, topic: &Topic, partition: i32) -> PartitionView {
        self.read(topic, partition, super::view)
    }

    /// Marks a node live or stopped and moves leadership accordingly: a stopped node's
    /// partitions get the first live replica as leader with epoch+1; a started node
    /// leads partitions that had no leader and completes reassignments waiting for it.
    pub fn set_live(
        &self,
        node_id: i32,
        live: bool,
        topics: &TopicRegistry,
    ) -> std::io::Result<()> {
        {
            let mut state = self.state.lock().expect("cluster lock");
            if live {
                state.live.insert(node_id);
            } else {
                state.live.remove(&node_id);
            }
        }
        let mut moved = 0;
        for topic in topics.all() {
            for i in 0..topic.partition_count() {
                let changed = self.change(&topic, i, |pl, live_set, leo| {
                    if live {
                        pl.on_node_started(node_id, live_set, leo)
                    } else {
                        pl.on_node_stopped(node_id, live_set, leo)
                    }
                });
                moved += usize::from(changed == Some(true));
            }
        }
        tracing::info!(
            node_id,
            live,
            partitions_changed = moved,
            "Node state changed."
        );
        self.persist()
    }

    /// Writes the table if it changed since the last write.
    pub fn persist(&self) -> std::io::Result<()> {
        let mut state = self.state.lock().expect("cluster lock");
        let Some(path) = &self.path else {
            state.dirty = false;
            return Ok(());
        };
        if !state.dirty {
            return Ok(());
        }
        let records: Vec<Record> = state
            .partitions
            .iter()
            .map(|((topic, partition), pl)| Record {
                topic: topic.clone(),
                partition: *partition,
                leadership: pl.clone(),
            })
            .collect();
        let bytes = serde_json::to_vec(&records).map_err(std::io::Error::other)?;
        crate::fsutil::write_atomic(path, &bytes)?;
        state.dirty = false;
        Ok(())
    }

    /// Every partition with a reassignment in progress: (topic, partition, entry).
    pub fn reassignments(&self) -> Vec<(String, i32, PartitionLeadership)> {
        let state = self.state.lock().expect("cluster lock");
        state
            .partitions
            .iter()
            .filter(|(_, pl)| pl.reassigning())
            .map(|((t, p), pl)| (t.clone(), *p, pl.clone()))
            .collect()
    }
}
