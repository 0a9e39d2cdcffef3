//! The group coordinator: classic consumer groups (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, DescribeGroups, ListGroups, DeleteGroups) and committed offsets
//! (OffsetCommit, OffsetFetch, OffsetDelete), persisted across restarts.
//!
//! [`GroupCoordinator`] is the async, `Clone`-able (one shared state) API the request
//! handlers call with decoded kafka-protocol requests and their API version; it returns
//! the response to encode at that version. Behind one mutex it holds the pure per-group
//! state machines ([`state::Group`]), the offsets table, the store and the waiting
//! JoinGroup/SyncGroup requests (oneshot senders keyed by [`state::ResponderId`]). A timer
//! task sleeps until the earliest group deadline (re-armed through a `Notify` after every
//! call) and fires it; every call also fires its group's overdue timers first, so answers
//! never depend on the timer task's punctuality.
//!
//! Offset expiry (`offsets.retention.minutes`) lives in [`expiry`].
//!
//! Transactional offset commits wait for their transaction's end ([`txn_offsets`]).
//!
//! Not here: FindCoordinator (the broker answers itself), KIP-848 consumer groups.

mod admin;
pub mod expiry;
pub mod offsets;
mod responses;
pub mod state;
pub mod store;
mod timers;
mod txn_offsets;
mod waiters;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};
use tokio::sync::Notify;
use tokio::time::Instant;

use offsets::OffsetsTable;
use state::{Group, JoinResult, Outcome, ResponderId, SyncResult};
pub use state::{GroupConfig, StatesFilter};
pub use store::StoreError;
use store::{OffsetStore, StoreConfig};
use timers::run_timers;
use waiters::Waiter;

/// Answers whether a topic partition exists (for OffsetCommit/OffsetDelete validation).
pub trait PartitionLookup: Send + Sync + 'static {
    fn partition_exists(&self, topic: &str, partition: i32) -> bool;
}

impl<F> PartitionLookup for F
where
    F: Fn(&str, i32) -> bool + Send + Sync + 'static,
{
    fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        self(topic, partition)
    }
}

/// Settings of the coordinator.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Directory of `__consumer_offsets.log`; `None` keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    /// fsync the store before answering (otherwise writes reach the page cache only).
    pub fsync: bool,
    /// Rewrite the store on open once it is larger than this.
    pub compact_threshold_bytes: u64,
    /// `offset.metadata.max.bytes`, which Kafka counts in characters (UTF-16 code units).
    pub max_offset_metadata_bytes: usize,
    /// Session timeout bounds and initial rebalance delay.
    pub group: GroupConfig,
    /// `offsets.retention.minutes`: how long offsets of an Empty group are kept.
    pub offsets_retention: Duration,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval: Duration,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            data_dir: None,
            fsync: false,
            compact_threshold_bytes: StoreConfig::default().compact_threshold_bytes,
            max_offset_metadata_bytes: 4096,
            group: GroupConfig::default(),
            offsets_retention: DEFAULT_OFFSETS_RETENTION,
            offsets_retention_check_interval: expiry::DEFAULT_CHECK_INTERVAL,
        }
    }
}

/// Kafka's default `offsets.retention.minutes` (7 days; GroupCoordinatorConfig).
pub const DEFAULT_OFFSETS_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Everything behind the coordinator's mutex.
struct Inner {
    config: CoordinatorConfig,
    partitions: Arc<dyn PartitionLookup>,
    groups: BTreeMap<String, Group>,
    offsets: OffsetsTable,
    store: OffsetStore,
    waiters: HashMap<ResponderId, Waiter>,
    next_responder: ResponderId,
    clock: expiry::Clock,
    next_expiry_check: Instant,
    /// Offsets of open transactions, by producer id ([`txn_offsets`]).
    pending_txn_offsets: HashMap<i64, Vec<txn_offsets::PendingOffset>>,
    /// Orders pending offsets as Kafka's log orders their records.
    pending_seq: u64,
}

struct Shared {
    inner: Mutex<Inner>,
    notify: Arc<Notify>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Wake the timer task so it notices that the coordinator is gone.
        self.notify.notify_one();
    }
}

/// The group coordinator. Cloning shares the same coordinator.
#[derive(Clone)]
pub struct GroupCoordinator {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator").finish_non_exhaustive()
    }
}

impl GroupCoordinator {
    /// Opens the store (replaying it), rebuilds the groups and starts the timer task.
    /// Must be called inside a tokio runtime.
    pub fn open(
        config: CoordinatorConfig,
        partitions: Arc<dyn PartitionLookup>,
    ) -> Result<Self, StoreError> {
        let (store, snapshot) = OffsetStore::open(&StoreConfig {
            dir: config.data_dir.clone(),
            fsync: config.fsync,
            compact_threshold_bytes: config.compact_threshold_bytes,
        })?;
        let now = Instant::now();
        let mut groups = BTreeMap::new();
        for (name, record) in &snapshot.groups {
            groups.insert(
                name.clone(),
                Group::from_record(record, config.group.clone(), now),
            );
        }
        for name in snapshot.offsets.keys() {
            groups
                .entry(name.clone())
                .or_insert_with(|| Group::new(name.clone(), config.group.clone()));
        }
        // Kafka: GroupCoordinatorShard schedules the first cleanup one interval after load.
        let first_expiry_check = now + config.offsets_retention_check_interval;
        let inner = Inner {
            offsets: OffsetsTable::from_snapshot(snapshot.offsets),
            config,
            partitions,
            groups,
            store,
            waiters: HashMap::new(),
            next_responder: 1,
            clock: expiry::Clock::new(now),
            next_expiry_check: first_expiry_check,
            pending_txn_offsets: HashMap::new(),
            pending_seq: 0,
        };
        let notify = Arc::new(Notify::new());
        let shared = Arc::new(Shared {
            inner: Mutex::new(inner),
            notify: notify.clone(),
        });
        tokio::spawn(run_timers(Arc::downgrade(&shared), notify));
        Ok(Self { shared })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// [`Self::lock`] after running the offset expiry check if it is due at `now`.
    fn lock_expired(&self, now: Instant) -> MutexGuard<'_, Inner> {
        let mut inner = self.lock();
        inner.expire_offsets_if_due(now);
        inner
    }

    /// Re-arms the timer task after a call that may have moved a deadline.
    fn rearm(&self) {
        self.shared.notify.notify_one();
    }

    /// JoinGroup; waits until the rebalance completes (or the request fails).
    pub async fn join_group(
        &self,
        req: JoinGroupRequest,
        version: i16,
        client_id: &str,
    ) -> JoinGroupResponse {
        self.join_group_from(req, version, client_id, "").await
    }

    /// The answer to a JoinGroup that is refused before its group is looked for, on any
    /// node (see [`join_refusal`]); `None` when it is not.
    pub fn refuse_join(&self, req: &JoinGroupRequest, version: i16) -> Option<JoinGroupResponse> {
        let code = join_refusal(&self.lock().config.group, req)?;
        Some(responses::join_response(
            JoinResult::error(req.member_id.as_str(), code),
            version,
        ))
    }

    /// JoinGroup with the client's host (shown by DescribeGroups, e.g. "/127.0.0.1").
    pub async fn join_group_from(
        &self,
        req: JoinGroupRequest,
        version: i16,
        client_id: &str,
        client_host: &str,
    ) -> JoinGroupResponse {
        let group_id = req.group_id.to_string();
        let member_id = req.member_id.to_string();
        let rx = {
            let mut inner = self.lock();
            let (responder, rx) = inner.register_join(version);
            let now = Instant::now();
            let refused = join_refusal(&inner.config.group, &req);
            let params = responses::join_params(req, version, client_id, client_host);
            let outcomes = if let Some(code) = refused {
                vec![Outcome::Join(
                    responder,
                    JoinResult::error(&member_id, code),
                )]
            } else if !inner.groups.contains_key(&group_id) && !member_id.is_empty() {
                vec![Outcome::Join(
                    responder,
                    JoinResult::error(&member_id, ResponseError::UnknownMemberId),
                )]
            } else {
                let config = inner.config.group.clone();
                inner
                    .groups
                    .entry(group_id.clone())
                    .or_insert_with(|| Group::new(group_id.clone(), config));
                inner.on_group(now, &group_id, |g| g.join(now, params, responder))
            };
            inner.dispatch(outcomes);
            rx
        };
        self.rearm();
        rx.await.unwrap_or_else(|_| {
            responses::join_response(
                JoinResult::error(&member_id, ResponseError::CoordinatorNotAvailable),
                version,
            )
        })
    }

    /// SyncGroup; a follower waits until the leader's assignment arrives.
    pub async fn sync_group(&self, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
        let group_id = req.group_id.to_string();
        let rx = {
            let mut inner = self.lock();
            let (responder, rx) = inner.register_sync(version);
            let now = Instant::now();
            let params = responses::sync_params(req);
            let outcomes = if group_id.is_empty() {
                vec![Outcome::Sync(
                    responder,
                    SyncResult::error(ResponseError::InvalidGroupId),
                )]
            } else if !inner.groups.contains_key(&group_id) {
                vec![Outcome::Sync(
                    responder,
                    SyncResult::error(ResponseError::UnknownMemberId),
                )]
            } else {
                inner.on_group(now, &group_id, |g| g.sync(now, params, responder))
            };
            inner.dispatch(outcomes);
            rx
        };
        self.rearm();
        rx.await.unwrap_or_else(|_| {
            responses::sync_response(
                SyncResult::error(ResponseError::CoordinatorNotAvailable),
                version,
            )
        })
    }

    /// Heartbeat.
    pub fn heartbeat(&self, req: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
        let group_id = req.group_id.to_string();
        let error = {
            let mut inner = self.lock();
            let now = Instant::now();
            if group_id.is_empty() {
                ResponseError::InvalidGroupId.code()
            } else if !inner.groups.contains_key(&group_id) {
                ResponseError::UnknownMemberId.code()
            } else {
                let mut error = 0;
                let outcomes = inner.on_group(now, &group_id, |g| {
                    error = g.heartbeat(
                        now,
                        &req.member_id,
                        req.group_instance_id.as_deref(),
                        req.generation_id,
                    );
                    Vec::new()
                });
                inner.dispatch(outcomes);
                error
            }
        };
        self.rearm();
        HeartbeatResponse::default().with_error_code(error)
    }

    /// LeaveGroup: v0-2 one member, v3+ a batch with per-member errors.
    pub fn leave_group(&self, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        let group_id = req.group_id.to_string();
        let leaving = responses::leave_members(&req, version);
        let errors = {
            let mut inner = self.lock();
            let now = Instant::now();
            if group_id.is_empty() {
                Err(ResponseError::InvalidGroupId.code())
            } else if !inner.groups.contains_key(&group_id) {
                Ok(vec![ResponseError::UnknownMemberId.code(); leaving.len()])
            } else {
                let mut errors = Vec::new();
                let outcomes = inner.on_group(now, &group_id, |g| {
                    let (e, outcomes) = g.leave(now, &leaving);
                    errors = e;
                    outcomes
                });
                inner.dispatch(outcomes);
                Ok(errors)
            }
        };
        self.rearm();
        responses::leave_response(&leaving, errors, version)
    }

    /// OffsetCommit (v2-9).
    pub fn offset_commit(&self, req: OffsetCommitRequest, version: i16) -> OffsetCommitResponse {
        let now = Instant::now();
        let resp = self.lock_expired(now).offset_commit(now, req, version);
        self.rearm();
        resp
    }

    /// OffsetFetch: v1-7 single-group shape, v8+ `groups[]` batch shape.
    pub fn offset_fetch(&self, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        self.lock_expired(Instant::now()).offset_fetch(req, version)
    }

    /// OffsetDelete (KIP-496).
    pub fn offset_delete(&self, req: OffsetDeleteRequest, version: i16) -> OffsetDeleteResponse {
        let now = Instant::now();
        let resp = self.lock_expired(now).offset_delete(now, req, version);
        self.rearm();
        resp
    }

    /// DescribeGroups.
    pub fn describe_groups(
        &self,
        req: DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        let now = Instant::now();
        self.lock_expired(now).describe_groups(now, req, version)
    }

    /// ListGroups (v4+ state filter, v5 type filter).
    pub fn list_groups(&self, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
        let now = Instant::now();
        self.lock_expired(now).list_groups(now, req, version)
    }

    /// DeleteGroups: only Empty groups; others get NON_EMPTY_GROUP.
    pub fn delete_groups(&self, req: DeleteGroupsRequest, version: i16) -> DeleteGroupsResponse {
        let now = Instant::now();
        let resp = self.lock_expired(now).delete_groups(now, req, version);
        self.rearm();
        resp
    }

    /// TxnOffsetCommit; `refused` answers a partition refused before the group is asked,
    /// `verify` the transaction coordinator's check of the producer (asked under this
    /// coordinator's lock; see [`txn_offsets`]).
    pub fn txn_offset_commit(
        &self,
        req: &TxnOffsetCommitRequest,
        refused: &dyn Fn(&str, i32) -> Option<i16>,
        verify: &dyn Fn() -> Result<(), i16>,
    ) -> TxnOffsetCommitResponse {
        let now = Instant::now();
        let resp = self
            .lock_expired(now)
            .txn_offset_commit(now, req, refused, verify);
        self.rearm();
        resp
    }

    /// A transaction of `producer_id` ended: its pending offsets are committed or dropped.
    pub fn complete_txn_offsets(&self, producer_id: i64, commit: bool) {
        self.lock().complete_txn_offsets(producer_id, commit);
    }

    /// Forgets every group's committed offsets of a deleted topic.
    pub fn remove_topic_offsets(&self, topic: &str) {
        self.lock().remove_topic_offsets(topic);
    }
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;

/// Kafka: GroupCoordinatorService.joinGroup — an empty group id, then a session timeout
/// out of range, refused before the group is looked up or made (so no group is left
/// behind) and on every node, coordinator or not.
fn join_refusal(config: &GroupConfig, req: &JoinGroupRequest) -> Option<ResponseError> {
    if req.group_id.is_empty() {
        Some(ResponseError::InvalidGroupId)
    } else if !config.session_timeout_allowed(req.session_timeout_ms) {
        Some(ResponseError::InvalidSessionTimeout)
    } else {
        None
    }
}
