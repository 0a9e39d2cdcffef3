//! Tests of the async coordinator: requests in, responses out (encodable at their
//! version), concurrency of waiting joins, offsets and persistence across reopen.

use std::path::Path;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{GroupId, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::*;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

fn encodes<T: Encodable>(msg: &T, version: i16) {
    let mut buf = BytesMut::new();
    if let Err(e) = msg.encode(&mut buf, version) {
        panic!(
            "{} does not encode at v{version}: {e}",
            std::any::type_name::<T>()
        );
    }
}

fn partitions_exist() -> Arc<dyn PartitionLookup> {
    Arc::new(|topic: &str, partition: i32| topic != "missing" && (0..4).contains(&partition))
}

fn config(dir: Option<&Path>, initial_delay_ms: u64) -> CoordinatorConfig {
    CoordinatorConfig {
        data_dir: dir.map(Path::to_path_buf),
        group: GroupConfig {
            initial_rebalance_delay_ms: initial_delay_ms,
            ..GroupConfig::default()
        },
        ..CoordinatorConfig::default()
    }
}

fn coordinator(dir: Option<&Path>, initial_delay_ms: u64) -> GroupCoordinator {
    GroupCoordinator::open(config(dir, initial_delay_ms), partitions_exist()).unwrap()
}

fn join_req(group: &str, member_id: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(5_000)
        .with_member_id(s(member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"md"))])
}

/// Joins like a modern client: retries once with the id from MEMBER_ID_REQUIRED.
async fn join(c: &GroupCoordinator, group: &str, version: i16, client: &str) -> JoinGroupResponse {
    let mut member_id = String::new();
    loop {
        let resp = c
            .join_group(join_req(group, &member_id), version, client)
            .await;
        encodes(&resp, version);
        if resp.error_code == ResponseError::MemberIdRequired.code() {
            member_id = resp.member_id.to_string();
            continue;
        }
        return resp;
    }
}

fn sync_req(
    group: &str,
    member: &str,
    generation: i32,
    assign: &[(&str, &str)],
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member))
        .with_generation_id(generation)
        .with_assignments(
            assign
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(Bytes::from(a.to_string()))
                })
                .collect(),
        )
}

/// A Stable group "g" with one member; returns (member id, generation).
async fn stable_member(c: &GroupCoordinator, group: &str) -> (String, i32) {
    let j = join(c, group, 5, "solo").await;
    assert_eq!(j.error_code, 0);
    let member = j.member_id.to_string();
    let resp = c
        .sync_group(
            sync_req(group, &member, j.generation_id, &[(&member, "A")]),
            3,
        )
        .await;
    assert_eq!(resp.error_code, 0);
    (member, j.generation_id)
}

fn commit_req(
    group: &str,
    member: &str,
    generation: i32,
    parts: &[(&str, i32, i64)],
) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (topic, p, offset) in parts {
        let part = OffsetCommitRequestPartition::default()
            .with_partition_index(*p)
            .with_committed_offset(*offset)
            .with_committed_metadata(Some(s("meta")));
        match topics.iter_mut().find(|t| t.name.as_str() == *topic) {
            Some(t) => t.partitions.push(part),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![part]),
            ),
        }
    }
    OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member))
        .with_generation_id_or_member_epoch(generation)
        .with_topics(topics)
}

fn commit_errors(resp: &OffsetCommitResponse) -> Vec<i16> {
    resp.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

/// (topic, partition, offset) rows of a v1-7 OffsetFetch response.
fn fetched(resp: &OffsetFetchResponse) -> Vec<(String, i32, i64)> {
    resp.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.committed_offset))
        })
        .collect()
}

fn fetch_v7(group: &str, topics: Option<&[(&str, &[i32])]>) -> OffsetFetchRequest {
    OffsetFetchRequest::default()
        .with_group_id(gid(group))
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partition_indexes(ps.to_vec())
                })
                .collect()
        }))
}

#[tokio::test]
async fn two_consumers_join_concurrently_and_share_a_generation() {
    // The joins complete only when the initial-rebalance delay fires: the timer task.
    let c = coordinator(None, 100);
    let (a, b) = tokio::join!(join(&c, "g", 5, "ca"), join(&c, "g", 5, "cb"));
    assert_eq!((a.error_code, b.error_code), (0, 0));
    assert_eq!(a.generation_id, 1);
    assert_eq!(a.generation_id, b.generation_id);
    assert_eq!(a.leader, b.leader);
    assert_eq!(a.protocol_name.as_deref(), Some("range"));
    let (leader, follower) = if a.leader == a.member_id {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(leader.members.len(), 2);
    assert!(follower.members.is_empty());
    assert!(follower.member_id.starts_with("c"));

    let generation = leader.generation_id;
    let (l, f) = (leader.member_id.to_string(), follower.member_id.to_string());
    let assignments = [(l.as_str(), "to-leader"), (f.as_str(), "to-follower")];
    let (fs, ls) = tokio::join!(c.sync_group(sync_req("g", &f, generation, &[]), 5), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        c.sync_group(sync_req("g", &l, generation, &assignments), 5)
            .await
    });
    encodes(&fs, 5);
    assert_eq!(fs.assignment, Bytes::from("to-follower"));
    assert_eq!(ls.assignment, Bytes::from("to-leader"));
    assert_eq!(fs.protocol_name.as_deref(), Some("range"));
    let hb = c.heartbeat(
        HeartbeatRequest::default()
            .with_group_id(gid("g"))
            .with_member_id(s(&f))
            .with_generation_id(generation),
        4,
    );
    assert_eq!(hb.error_code, 0);
}

#[tokio::test]
async fn join_versions_and_errors_encode() {
    let c = coordinator(None, 0);
    for version in 0..=9 {
        let group = format!("g{version}");
        let first = c.join_group(join_req(&group, ""), version, "cl").await;
        encodes(&first, version);
        if version >= 4 {
            assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
        } else {
            assert_eq!(first.error_code, 0, "v{version}");
            assert_eq!(first.members.len(), 1);
        }
    }
    let bad = c.join_group(join_req("", ""), 3, "cl").await;
    assert_eq!(bad.error_code, ResponseError::InvalidGroupId.code());
    let unknown = c.join_group(join_req("nope", "someone"), 3, "cl").await;
    assert_eq!(unknown.error_code, ResponseError::UnknownMemberId.code());
    encodes(&unknown, 7);
    let sync = c.sync_group(sync_req("nope", "x", 1, &[]), 0).await;
    assert_eq!(sync.error_code, ResponseError::UnknownMemberId.code());
    for v in 0..=5 {
        encodes(&sync, v);
    }
}

#[tokio::test]
async fn leave_group_v0_and_batched_v3() {
    let c = coordinator(None, 0);
    let (m, _) = stable_member(&c, "g").await;
    let v0 = c.leave_group(
        LeaveGroupRequest::default()
            .with_group_id(gid("g"))
            .with_member_id(s("ghost")),
        0,
    );
    assert_eq!(v0.error_code, ResponseError::UnknownMemberId.code());
    encodes(&v0, 0);
    let v3 = c.leave_group(
        LeaveGroupRequest::default()
            .with_group_id(gid("g"))
            .with_members(vec![
                MemberIdentity::default().with_member_id(s(&m)),
                MemberIdentity::default().with_member_id(s("ghost")),
            ]),
        3,
    );
    encodes(&v3, 3);
    assert_eq!(v3.error_code, 0);
    let errors: Vec<i16> = v3.members.iter().map(|r| r.error_code).collect();
    assert_eq!(errors, [0, ResponseError::UnknownMemberId.code()]);
    let d = c.describe_groups(
        DescribeGroupsRequest::default().with_groups(vec![gid("g")]),
        5,
    );
    assert_eq!(d.groups[0].group_state.as_str(), "Empty");
}

#[tokio::test]
async fn offset_commit_generation_checks_and_simple_commits() {
    let c = coordinator(None, 0);
    // Simple commit to a group that does not exist (yet).
    let r = c.offset_commit(
        commit_req(
            "simple",
            "",
            -1,
            &[("t", 0, 5), ("missing", 0, 1), ("t", 9, 1)],
        ),
        2,
    );
    assert_eq!(commit_errors(&r), [0, 3, 3]);
    for v in 2..=9 {
        encodes(&r, v);
    }
    // A generation >= 0 for an unknown group is an old generation below v9, an unknown
    // group from v9 on.
    let r = c.offset_commit(commit_req("other", "", 3, &[("t", 0, 5)]), 8);
    assert_eq!(commit_errors(&r), [ResponseError::IllegalGeneration.code()]);
    let r = c.offset_commit(commit_req("other", "", 3, &[("t", 0, 5)]), 9);
    assert_eq!(commit_errors(&r), [ResponseError::GroupIdNotFound.code()]);

    let (m, generation) = stable_member(&c, "g").await;
    let ok = c.offset_commit(
        commit_req("g", &m, generation, &[("t", 0, 10), ("t", 1, 11)]),
        8,
    );
    assert_eq!(commit_errors(&ok), [0, 0]);
    let r = c.offset_commit(commit_req("g", &m, generation + 1, &[("t", 0, 12)]), 8);
    assert_eq!(commit_errors(&r), [ResponseError::IllegalGeneration.code()]);
    let r = c.offset_commit(commit_req("g", "stranger", generation, &[("t", 0, 12)]), 8);
    assert_eq!(commit_errors(&r), [ResponseError::UnknownMemberId.code()]);
    let r = c.offset_commit(commit_req("g", "", -1, &[("t", 0, 12)]), 8);
    assert_eq!(commit_errors(&r), [ResponseError::UnknownMemberId.code()]);
    let mut big = commit_req("g", &m, generation, &[("t", 0, 12)]);
    big.topics[0].partitions[0].committed_metadata = Some(StrBytes::from_string("x".repeat(4097)));
    let r = c.offset_commit(big, 8);
    assert_eq!(
        commit_errors(&r),
        [ResponseError::OffsetMetadataTooLarge.code()]
    );
    // The group's verdict comes first, for every partition; only a commit the group takes
    // is checked for its metadata (Kafka: OffsetMetadataManager.commitOffset).
    for (member, gen, error) in [
        (m.as_str(), generation + 1, ResponseError::IllegalGeneration),
        ("stranger", generation, ResponseError::UnknownMemberId),
    ] {
        let mut big = commit_req("g", member, gen, &[("t", 0, 12)]);
        big.topics[0].partitions[0].committed_metadata =
            Some(StrBytes::from_string("x".repeat(4097)));
        assert_eq!(commit_errors(&c.offset_commit(big, 8)), [error.code()]);
    }
    let mut big = commit_req("gone", "", 3, &[("t", 0, 12)]);
    big.topics[0].partitions[0].committed_metadata = Some(StrBytes::from_string("x".repeat(4097)));
    assert_eq!(
        commit_errors(&c.offset_commit(big, 9)),
        [ResponseError::GroupIdNotFound.code()]
    );
    // The limit counts characters as Java does (UTF-16 code units), not bytes: 4096
    // two-byte characters fit.
    // (At the offset already committed, which the fetch below expects.)
    let mut wide = commit_req("g", &m, generation, &[("t", 0, 10)]);
    wide.topics[0].partitions[0].committed_metadata = Some(StrBytes::from_string("é".repeat(4096)));
    assert_eq!(commit_errors(&c.offset_commit(wide, 8)), [0]);

    let f = c.offset_fetch(fetch_v7("g", Some(&[("t", &[0, 1, 2])])), 7);
    assert_eq!(
        fetched(&f),
        [
            ("t".into(), 0, 10),
            ("t".into(), 1, 11),
            ("t".into(), 2, -1)
        ]
    );
    let f = c.offset_fetch(fetch_v7("simple", None), 7);
    assert_eq!(fetched(&f), [("t".into(), 0, 5)]);
}

#[tokio::test]
async fn offset_fetch_shapes_v1_to_v9() {
    let c = coordinator(None, 0);
    let r = c.offset_commit(
        commit_req("g", "", -1, &[("a", 1, 7), ("a", 0, 6), ("b", 2, 8)]),
        7,
    );
    assert_eq!(commit_errors(&r), [0, 0, 0]);
    for v in 1..=7 {
        let f = c.offset_fetch(fetch_v7("g", Some(&[("a", &[0, 3]), ("zz", &[0])])), v);
        encodes(&f, v);
        assert_eq!(
            fetched(&f),
            [
                ("a".into(), 0, 6),
                ("a".into(), 3, -1),
                ("zz".into(), 0, -1)
            ],
            "v{v}"
        );
        assert_eq!(f.topics[0].partitions[0].metadata.as_deref(), Some("meta"));
        if v >= 2 {
            // Null topics: every committed partition of the group, ordered.
            let all = c.offset_fetch(fetch_v7("g", None), v);
            encodes(&all, v);
            assert_eq!(
                fetched(&all),
                [("a".into(), 0, 6), ("a".into(), 1, 7), ("b".into(), 2, 8)]
            );
        }
    }
    for v in 8..=9 {
        let req = OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(gid("g"))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(TopicName(s("b")))
                    .with_partition_indexes(vec![2, 0])])),
            OffsetFetchRequestGroup::default()
                .with_group_id(gid("g"))
                .with_topics(None),
            OffsetFetchRequestGroup::default()
                .with_group_id(gid("unknown"))
                .with_topics(None),
        ]);
        let f = c.offset_fetch(req, v);
        encodes(&f, v);
        assert!(f.topics.is_empty());
        assert_eq!(f.groups.len(), 3);
        let rows = |g: &OffsetFetchResponseGroup| -> Vec<(String, i32, i64)> {
            g.topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (t.name.to_string(), p.partition_index, p.committed_offset))
                })
                .collect()
        };
        assert_eq!(
            rows(&f.groups[0]),
            [("b".into(), 2, 8), ("b".into(), 0, -1)]
        );
        assert_eq!(rows(&f.groups[1]).len(), 3);
        assert!(rows(&f.groups[2]).is_empty());
        assert_eq!(f.groups[2].error_code, 0);
    }
}

#[tokio::test]
async fn persistence_across_reopen_including_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (member, generation) = {
        let c = coordinator(Some(dir.path()), 0);
        let (member, generation) = stable_member(&c, "g").await;
        let r = c.offset_commit(
            commit_req("g", &member, generation, &[("t", 0, 42), ("t", 1, 43)]),
            8,
        );
        assert_eq!(commit_errors(&r), [0, 0]);
        let r = c.offset_commit(commit_req("simple", "", -1, &[("t", 3, 1)]), 8);
        assert_eq!(commit_errors(&r), [0]);
        (member, generation)
    };
    // A crash in the middle of a write leaves a torn frame behind.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(store::FILE_NAME))
            .unwrap();
        f.write_all(&[0, 0, 1, 0, 9, 9, 9]).unwrap();
    }
    let c = coordinator(Some(dir.path()), 0);
    let f = c.offset_fetch(fetch_v7("g", None), 7);
    assert_eq!(fetched(&f), [("t".into(), 0, 42), ("t".into(), 1, 43)]);
    assert_eq!(
        fetched(&c.offset_fetch(fetch_v7("simple", None), 7)),
        [("t".into(), 3, 1)]
    );
    // The group is back, Stable, with its member and generation: no rebalance needed.
    let d = c.describe_groups(
        DescribeGroupsRequest::default().with_groups(vec![gid("g")]),
        5,
    );
    assert_eq!(d.groups[0].group_state.as_str(), "Stable");
    assert_eq!(d.groups[0].members[0].member_id.as_str(), member);
    assert_eq!(d.groups[0].members[0].member_assignment, Bytes::from("A"));
    let hb = c.heartbeat(
        HeartbeatRequest::default()
            .with_group_id(gid("g"))
            .with_member_id(s(&member))
            .with_generation_id(generation),
        4,
    );
    assert_eq!(hb.error_code, 0);
    // Appends after the truncated tail survive another reopen; generations keep rising.
    let r = c.offset_commit(commit_req("g", &member, generation, &[("t", 0, 50)]), 8);
    assert_eq!(commit_errors(&r), [0]);
    let left = c.leave_group(
        LeaveGroupRequest::default()
            .with_group_id(gid("g"))
            .with_members(vec![MemberIdentity::default().with_member_id(s(&member))]),
        4,
    );
    assert_eq!(left.members[0].error_code, 0);
    drop(c);
    let c = coordinator(Some(dir.path()), 0);
    let f = c.offset_fetch(fetch_v7("g", Some(&[("t", &[0])])), 7);
    assert_eq!(fetched(&f), [("t".into(), 0, 50)]);
    let j = join(&c, "g", 5, "again").await;
    assert_eq!(j.generation_id, generation + 2);
}

#[tokio::test]
async fn delete_groups_only_when_empty() {
    let c = coordinator(None, 0);
    stable_member(&c, "busy").await;
    c.offset_commit(commit_req("idle", "", -1, &[("t", 0, 1)]), 8);
    let r = c.delete_groups(
        DeleteGroupsRequest::default().with_groups_names(vec![
            gid("busy"),
            gid("idle"),
            gid("none"),
        ]),
        2,
    );
    encodes(&r, 2);
    let errors: Vec<i16> = r.results.iter().map(|g| g.error_code).collect();
    assert_eq!(
        errors,
        [
            ResponseError::NonEmptyGroup.code(),
            0,
            ResponseError::GroupIdNotFound.code()
        ]
    );
    assert!(fetched(&c.offset_fetch(fetch_v7("idle", None), 7)).is_empty());
    let l = c.list_groups(ListGroupsRequest::default(), 3);
    let ids: Vec<&str> = l.groups.iter().map(|g| g.group_id.as_str()).collect();
    assert_eq!(ids, ["busy"]);
}

/// ListGroups' states filter as each Kafka release matches it: as written up to 3.7,
/// case aside in 3.8/3.9, case and blanks aside in 4.
#[tokio::test]
async fn list_groups_states_filter_per_release() {
    for (filter, listed) in [
        (StatesFilter::Exact, [true, false, false]),
        (StatesFilter::IgnoreCase, [true, true, false]),
        (StatesFilter::IgnoreCaseTrimmed, [true, true, true]),
    ] {
        let mut config = config(None, 0);
        config.group.states_filter = filter;
        let c = GroupCoordinator::open(config, partitions_exist()).unwrap();
        stable_member(&c, "g").await;
        for (asked, listed) in ["Stable", "STABLE", " stable "].into_iter().zip(listed) {
            let l = c.list_groups(
                ListGroupsRequest::default().with_states_filter(vec![s(asked)]),
                4,
            );
            assert_eq!(l.groups.len(), usize::from(listed), "{filter:?} {asked:?}");
        }
    }
}

#[tokio::test]
async fn list_groups_state_filter_and_describe() {
    let c = coordinator(None, 0);
    stable_member(&c, "stable").await;
    c.offset_commit(commit_req("empty", "", -1, &[("t", 0, 1)]), 8);
    let all = c.list_groups(ListGroupsRequest::default(), 4);
    assert_eq!(all.groups.len(), 2);
    for v in 0..=5 {
        encodes(&c.list_groups(ListGroupsRequest::default(), v), v);
    }
    let only_stable = c.list_groups(
        ListGroupsRequest::default().with_states_filter(vec![s("stable")]),
        4,
    );
    let ids: Vec<&str> = only_stable
        .groups
        .iter()
        .map(|g| g.group_id.as_str())
        .collect();
    assert_eq!(ids, ["stable"]);
    assert_eq!(only_stable.groups[0].group_state.as_str(), "Stable");
    assert_eq!(only_stable.groups[0].protocol_type.as_str(), "consumer");
    let only_empty = c.list_groups(
        ListGroupsRequest::default()
            .with_states_filter(vec![s("Empty")])
            .with_types_filter(vec![s("classic")]),
        5,
    );
    assert_eq!(only_empty.groups.len(), 1);
    assert_eq!(only_empty.groups[0].group_type.as_str(), "classic");
    let consumer_only = c.list_groups(
        ListGroupsRequest::default().with_types_filter(vec![s("consumer")]),
        5,
    );
    assert!(consumer_only.groups.is_empty());

    let d = c.describe_groups(
        DescribeGroupsRequest::default().with_groups(vec![gid("stable"), gid("nope")]),
        5,
    );
    for v in 0..=5 {
        encodes(&d, v);
    }
    assert_eq!(d.groups[0].protocol_data.as_str(), "range");
    assert_eq!(
        d.groups[0].members[0].member_metadata,
        Bytes::from_static(b"md")
    );
    assert_eq!(
        (d.groups[1].error_code, d.groups[1].group_state.as_str()),
        (0, "Dead")
    );
    let d6 = c.describe_groups(
        DescribeGroupsRequest::default().with_groups(vec![gid("nope")]),
        6,
    );
    encodes(&d6, 6);
    assert_eq!(
        d6.groups[0].error_code,
        ResponseError::GroupIdNotFound.code()
    );
}

#[tokio::test]
async fn offset_delete_and_topic_removal() {
    let c = coordinator(None, 0);
    c.offset_commit(commit_req("g", "", -1, &[("t", 0, 1), ("u", 0, 2)]), 8);
    let req = |topic: &str| {
        OffsetDeleteRequest::default()
            .with_group_id(gid("g"))
            .with_topics(vec![OffsetDeleteRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0)
                ])])
    };
    let r = c.offset_delete(req("t"), 0);
    encodes(&r, 0);
    assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 0));
    assert_eq!(
        fetched(&c.offset_fetch(fetch_v7("g", None), 7)),
        [("u".into(), 0, 2)]
    );
    let r = c.offset_delete(OffsetDeleteRequest::default().with_group_id(gid("none")), 0);
    assert_eq!(r.error_code, ResponseError::GroupIdNotFound.code());
    // A non-empty group whose subscription is unknown protects every topic.
    let (_, _) = stable_member(&c, "busy").await;
    c.offset_commit(commit_req("busy", "", -1, &[("t", 0, 1)]), 8);
    let r = c.offset_delete(
        OffsetDeleteRequest::default()
            .with_group_id(gid("busy"))
            .with_topics(req("t").topics),
        0,
    );
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::GroupSubscribedToTopic.code()
    );

    c.remove_topic_offsets("u");
    assert!(fetched(&c.offset_fetch(fetch_v7("g", None), 7)).is_empty());
}

/// OffsetDelete of an Empty group's last offset: the group is gone at once up to Kafka 3.9
/// (GroupMetadataManager.cleanupGroupMetadata turns it Dead), and stays, Empty, in Kafka 4
/// until its periodic cleanup.
#[tokio::test]
async fn offset_delete_of_an_empty_groups_last_offset_per_release() {
    for dies in [true, false] {
        let mut config = config(None, 0);
        config.group.empty_group_dies_with_its_offsets = dies;
        let c = GroupCoordinator::open(config, partitions_exist()).unwrap();
        c.offset_commit(commit_req("lone", "", -1, &[("t", 0, 1)]), 8);
        let r = c.offset_delete(
            OffsetDeleteRequest::default()
                .with_group_id(gid("lone"))
                .with_topics(vec![OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![
                        OffsetDeleteRequestPartition::default().with_partition_index(0)
                    ])]),
            0,
        );
        assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 0));
        let listed = c.list_groups(ListGroupsRequest::default(), 4).groups.len();
        assert_eq!(listed, usize::from(!dies), "dies: {dies}");
        let d = c.delete_groups(
            DeleteGroupsRequest::default().with_groups_names(vec![gid("lone")]),
            2,
        );
        let expected = if dies {
            ResponseError::GroupIdNotFound.code()
        } else {
            0
        };
        assert_eq!(d.results[0].error_code, expected, "dies: {dies}");
    }
}

/// A member that joins again keeps the client id and host of its first join (Kafka:
/// ClassicGroup.updateMember changes its protocols and timeouts only).
#[tokio::test]
async fn a_rejoining_member_keeps_its_client_id_and_host() {
    let c = coordinator(None, 0);
    let (member, _) = stable_member(&c, "g").await;
    let again = c
        .join_group_from(join_req("g", &member), 5, "renamed", "/10.0.0.9")
        .await;
    assert_eq!(again.error_code, 0);
    let d = c.describe_groups(
        DescribeGroupsRequest::default().with_groups(vec![gid("g")]),
        5,
    );
    let m = &d.groups[0].members[0];
    assert_eq!((m.client_id.as_str(), m.client_host.as_str()), ("solo", ""));
}
