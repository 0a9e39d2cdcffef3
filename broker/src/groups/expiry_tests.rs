//! Offset expiry on the coordinator's clock: calls are made with explicit `now` instants,
//! so days pass without waiting.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    GroupId, JoinGroupRequest, OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use super::super::state::{GroupState, LeaveMember};
use super::super::{CoordinatorConfig, GroupCoordinator};

const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
const HOUR: Duration = Duration::from_secs(3600);

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn coordinator(dir: Option<&Path>) -> GroupCoordinator {
    let config = CoordinatorConfig {
        data_dir: dir.map(Path::to_path_buf),
        group: super::super::GroupConfig {
            initial_rebalance_delay_ms: 0,
            ..Default::default()
        },
        ..CoordinatorConfig::default()
    };
    GroupCoordinator::open(config, Arc::new(|_: &str, _: i32| true)).unwrap()
}

fn commit_req(
    group: &str,
    member: &str,
    generation: i32,
    retention_ms: i64,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_generation_id_or_member_epoch(generation)
        .with_retention_time_ms(retention_ms)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s("t")))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(42)])])
}

/// Commits offset 42 of t-0 at `at`; asserts it was accepted.
fn commit_at(c: &GroupCoordinator, at: Instant, req: OffsetCommitRequest, version: i16) {
    let r = c.lock().offset_commit(at, req, version);
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
}

/// The committed offset of t-0 after the expiry check at `at` (-1: none).
fn offset_after_check(c: &GroupCoordinator, group: &str, at: Instant) -> i64 {
    let mut inner = c.lock();
    inner.next_expiry_check = at;
    inner.expire_offsets_if_due(at);
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s("t")))
            .with_partition_indexes(vec![0])]));
    inner.offset_fetch(req, 7).topics[0].partitions[0].committed_offset
}

/// Group "g" Stable with one "consumer" member whose protocol "range" carries `metadata`;
/// its member id and generation.
async fn stable_consumer(c: &GroupCoordinator, metadata: bytes::Bytes) -> (String, i32) {
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(metadata)]);
    let j = c.join_group(join, 3, "client").await;
    assert_eq!(j.error_code, 0, "v3 joins without MEMBER_ID_REQUIRED");
    let member = j.member_id.to_string();
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_generation_id(j.generation_id)
        .with_member_id(s(&member));
    assert_eq!(c.sync_group(sync, 3).await.error_code, 0);
    (member, j.generation_id)
}

fn group_exists(c: &GroupCoordinator, group: &str) -> bool {
    c.lock().groups.contains_key(group)
}

#[tokio::test]
async fn simple_group_offsets_expire_a_retention_after_the_commit() {
    let c = coordinator(None);
    let t0 = Instant::now();
    commit_at(&c, t0, commit_req("simple", "", -1, -1), 8);
    assert_eq!(offset_after_check(&c, "simple", t0 + RETENTION - HOUR), 42);
    assert!(group_exists(&c, "simple"));
    assert_eq!(offset_after_check(&c, "simple", t0 + RETENTION), -1);
    assert!(
        !group_exists(&c, "simple"),
        "an Empty group without offsets is deleted"
    );
}

#[tokio::test]
async fn the_check_runs_only_every_check_interval() {
    let c = coordinator(None);
    let t0 = Instant::now();
    commit_at(&c, t0, commit_req("simple", "", -1, -1), 8);
    {
        let mut inner = c.lock();
        inner.next_expiry_check = t0 + RETENTION + Duration::from_secs(1);
        inner.expire_offsets_if_due(t0 + RETENTION);
        assert!(inner.offsets.get("simple", "t", 0).is_some(), "not due yet");
        inner.expire_offsets_if_due(t0 + RETENTION + Duration::from_secs(1));
        assert!(inner.offsets.get("simple", "t", 0).is_none());
        assert_eq!(
            inner.next_expiry_check,
            t0 + RETENTION + Duration::from_secs(601)
        );
    }
}

#[tokio::test]
async fn v2_to_v4_retention_time_ms_sets_its_own_expiry_and_v5_has_none() {
    let c = coordinator(None);
    let t0 = Instant::now();
    commit_at(&c, t0, commit_req("old", "", -1, 3_600_000), 2);
    assert_eq!(
        offset_after_check(&c, "old", t0 + HOUR - Duration::from_millis(1)),
        42
    );
    assert_eq!(offset_after_check(&c, "old", t0 + HOUR), -1);
    // v5+ has no retention_time_ms: the broker's retention applies.
    let mut req = commit_req("new", "", -1, -1);
    req.retention_time_ms = -1;
    commit_at(&c, t0, req, 5);
    assert_eq!(offset_after_check(&c, "new", t0 + 2 * HOUR), 42);
}

#[tokio::test]
async fn offsets_of_a_group_with_members_are_kept_until_it_has_been_empty_a_retention() {
    let c = coordinator(None);
    let t0 = Instant::now();
    let (member, generation) = stable_consumer(&c, bytes::Bytes::new()).await;
    commit_at(&c, t0, commit_req("g", &member, generation, -1), 8);
    // Stable (a member that heartbeats): nothing expires, however old the commit.
    {
        let mut inner = c.lock();
        let group = inner.groups.get("g").unwrap();
        assert_eq!(group.state(), GroupState::Stable);
        inner.expire_offsets(t0 + RETENTION + HOUR);
        assert!(
            inner.offsets.get("g", "t", 0).is_some(),
            "kept while Stable"
        );
    }
    // The member leaves 10 s later, within its session: Empty since then.
    let t_leave = t0 + Duration::from_secs(10);
    {
        let mut inner = c.lock();
        let leaving = [LeaveMember {
            member_id: member.clone(),
            group_instance_id: None,
        }];
        let outcomes = inner.on_group(t_leave, "g", |g| g.leave(t_leave, &leaving).1);
        inner.dispatch(outcomes);
        assert_eq!(inner.groups["g"].state(), GroupState::Empty);
    }
    // A retention after the commit, but not yet after the group became Empty.
    assert_eq!(
        offset_after_check(&c, "g", t0 + RETENTION + Duration::from_secs(5)),
        42
    );
    assert_eq!(offset_after_check(&c, "g", t_leave + RETENTION), -1);
    assert!(!group_exists(&c, "g"));
}

#[tokio::test]
async fn expired_offsets_stay_expired_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    {
        let c = coordinator(Some(dir.path()));
        commit_at(&c, t0, commit_req("kept", "", -1, -1), 8);
        commit_at(&c, t0, commit_req("gone", "", -1, 1_000), 3);
        assert_eq!(offset_after_check(&c, "gone", t0 + HOUR), -1);
    }
    let c = coordinator(Some(dir.path()));
    let inner = c.lock();
    assert!(inner.offsets.get("gone", "t", 0).is_none());
    assert!(!inner.groups.contains_key("gone"));
    assert_eq!(
        inner.offsets.get("kept", "t", 0).map(|o| o.offset),
        Some(42)
    );
    assert_eq!(
        inner
            .offsets
            .get("kept", "t", 0)
            .and_then(|o| o.expire_timestamp_ms),
        None
    );
}

/// A Stable consumer group keeps the offsets of the topics its members subscribe to, and
/// its offsets of other topics expire a retention after their commit (Kafka:
/// ClassicGroup.offsetExpirationCondition, OffsetMetadataManager.cleanupExpiredOffsets).
#[tokio::test]
async fn a_stable_consumer_group_loses_only_offsets_of_topics_it_does_not_subscribe_to() {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::Encodable;
    let c = coordinator(None);
    let t0 = Instant::now();
    let mut metadata = bytes::BytesMut::new();
    metadata.extend_from_slice(&1i16.to_be_bytes());
    ConsumerProtocolSubscription::default()
        .with_topics(vec![s("orders")])
        .encode(&mut metadata, 1)
        .unwrap();
    let (member, generation) = stable_consumer(&c, metadata.freeze()).await;
    let mut orders = commit_req("g", &member, generation, -1);
    orders.topics[0].name = TopicName(s("orders"));
    commit_at(&c, t0, orders, 8);
    commit_at(&c, t0, commit_req("g", &member, generation, -1), 8);
    let mut inner = c.lock();
    assert_eq!(inner.groups["g"].state(), GroupState::Stable);
    inner.expire_offsets(t0 + RETENTION - HOUR);
    assert!(
        inner.offsets.get("g", "t", 0).is_some(),
        "not yet a retention"
    );
    inner.expire_offsets(t0 + RETENTION);
    assert!(
        inner.offsets.get("g", "t", 0).is_none(),
        "not subscribed: expired"
    );
    assert!(
        inner.offsets.get("g", "orders", 0).is_some(),
        "subscribed: kept"
    );
    assert!(inner.groups.contains_key("g"));
}
