//! Classic group rules: what KafkaApis checks before the coordinator (SyncGroup's
//! mandatory protocol fields, DeleteGroups' repeated names), what the coordinator refuses
//! before a group exists (a session timeout out of range), and how members and JoinGroup
//! answers read (member ids, client hosts, the protocol name by version).

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kmirror_broker::BrokerConfig;

use crate::admin::{check, row, s};
use crate::common;
use crate::harness::{code_or_closed, Ctx, Got, Row};

const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const INVALID_GROUP_ID: i16 = 24;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const MEMBER_ID_REQUIRED: i16 = 79;
const LOAD: i16 = 14;
const UNSUPPORTED_VERSION: i16 = 35;

/// Rebalances complete as soon as every member joined (no initial delay).
fn no_rebalance_delay(c: &mut BrokerConfig) {
    c.group_initial_rebalance_delay = std::time::Duration::ZERO;
}

/// Two nodes, the second of which coordinates no group.
fn two_nodes(c: &mut BrokerConfig) {
    c.nodes = 2;
}

/// A coordinator still loading its groups (`--emulate-coordinator-load-ms`).
fn loading(c: &mut BrokerConfig) {
    c.coordinator_load = std::time::Duration::from_secs(600);
}

const COORDINATOR_NOT_AVAILABLE: i16 = 15;

/// FindCoordinator `req` at `version`, asked again while the answer is
/// COORDINATOR_NOT_AVAILABLE: a cluster's first FindCoordinator of a kind creates the
/// kind's internal topic and gets that answer (KafkaApis.getCoordinator).
pub(crate) async fn find_coordinator_at(
    m: &kmirror_wire::messenger::Messenger,
    req: &FindCoordinatorRequest,
    version: i16,
) -> Result<FindCoordinatorResponse, kmirror_wire::messenger::RequestError> {
    let mut asked = 0;
    loop {
        let resp = m.send_at(req, version).await?;
        let code = if version >= 4 {
            resp.coordinators.first().map_or(0, |c| c.error_code)
        } else {
            resp.error_code
        };
        asked += 1;
        if code != COORDINATOR_NOT_AVAILABLE || asked == 20 {
            return Ok(resp);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A new cluster's first FindCoordinator: COORDINATOR_NOT_AVAILABLE, while
/// `__consumer_offsets` is created with Kafka's 50 partitions, compacted; the next names the
/// coordinator. (A Metadata request naming `__transaction_state` makes it the same way.)
async fn first_find_coordinator(ctx: Ctx) -> Got {
    let find = FindCoordinatorRequest::default().with_key(s("g"));
    let Ok(first) = ctx.m.send_at(&find, 3).await else {
        return Got::Closed;
    };
    if first.error_code != COORDINATOR_NOT_AVAILABLE {
        return Got::Answer(format!(
            "the first answer was {}, not COORDINATOR_NOT_AVAILABLE",
            first.error_code
        ));
    }
    let Ok(then) = ctx.m.send_at(&find, 3).await else {
        return Got::Closed;
    };
    let partitions = |topic: &'static str| {
        let m = &ctx.m;
        async move {
            let req = MetadataRequest::default().with_topics(None);
            let md = m.send_at(&req, 12).await.expect("metadata");
            md.topics
                .iter()
                .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
                .map(|t| (t.is_internal, t.partitions.len()))
        }
    };
    let offsets = partitions("__consumer_offsets").await;
    let described = ctx
        .m
        .send_at(
            &DescribeConfigsRequest::default().with_resources(vec![
                kafka_protocol::messages::describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("__consumer_offsets")),
            ]),
            4,
        )
        .await
        .expect("describe configs");
    let policy = described.results[0]
        .configs
        .iter()
        .find(|c| c.name.as_str() == "cleanup.policy")
        .and_then(|c| c.value.as_ref().map(|v| v.to_string()));
    // Auto-created by name, the transaction topic is made as Kafka makes it too.
    let by_name = MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_name(Some(common::name("__transaction_state"))),
    ]));
    ctx.m.send_at(&by_name, 12).await.expect("metadata");
    let transactions = partitions("__transaction_state").await;
    let text = |m: &Option<kafka_protocol::protocol::StrBytes>| m.as_ref().map(|m| m.to_string());
    check(
        "(first's message, then, its message, __consumer_offsets (internal, partitions), its cleanup.policy, __transaction_state)",
        (
            text(&first.error_message),
            then.error_code,
            text(&then.error_message),
            offsets,
            policy,
            transactions,
        ),
        (
            Some("The coordinator is not available.".to_string()),
            0,
            // Errors.NONE.message() (FindCoordinatorResponse v1-3).
            Some("NONE".to_string()),
            Some((true, 50)),
            Some("compact".to_string()),
            Some((true, 50)),
        ),
    )
}

/// The group APIs' answers while the coordinator loads: (FindCoordinator, JoinGroup,
/// OffsetFetch v8's group, DescribeGroups' group, ListGroups, ListGroups' group count).
async fn while_loading(ctx: Ctx) -> Got {
    let find = FindCoordinatorRequest::default().with_key(s("g"));
    let describe = DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]);
    let fetch = OffsetFetchRequest::default().with_groups(vec![
        kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s("g"))),
    ]);
    let (Ok(f), Ok(j), Ok(o), Ok(d), Ok(l)) = (
        find_coordinator_at(&ctx.m, &find, 3).await,
        ctx.m.send_at(&join_request("g", 10_000), 5).await,
        ctx.m.send_at(&fetch, 8).await,
        ctx.m.send_at(&describe, 5).await,
        ctx.m.send_at(&ListGroupsRequest::default(), 4).await,
    ) else {
        return Got::Closed;
    };
    check(
        "(find, join, offset fetch, describe, list, groups listed)",
        (
            f.error_code,
            j.error_code,
            o.groups[0].error_code,
            d.groups[0].error_code,
            l.error_code,
            l.groups.len(),
        ),
        (0, LOAD, LOAD, LOAD, LOAD, 0),
    )
}

/// A consumer's JoinGroup of `group` (protocol `range`), without a member id.
pub fn join_request(group: &str, session_timeout_ms: i32) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(session_timeout_ms)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default().with_name(s("range"))
        ])
}

/// DescribeGroups v5 of `group`: (state, [(member id, client id, client host)]).
async fn describe(ctx: &Ctx, group: &str) -> Result<(String, Vec<[String; 3]>), Got> {
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    let r = ctx.m.send_at(&req, 5).await.map_err(|_| Got::Closed)?;
    let g = &r.groups[0];
    let members = g
        .members
        .iter()
        .map(|m| {
            [
                m.member_id.to_string(),
                m.client_id.to_string(),
                m.client_host.to_string(),
            ]
        })
        .collect();
    Ok((g.group_state.to_string(), members))
}

/// A static member joins (v5, instance id `inst-1`): its id, and how DescribeGroups shows it.
async fn static_member(ctx: Ctx) -> Got {
    let group = ctx.topic("static");
    let req = join_request(&group, 10_000).with_group_instance_id(Some(s("inst-1")));
    let joined = match ctx.m.send_at(&req, 5).await {
        Ok(r) if r.error_code == 0 => r,
        Ok(r) => return Got::Code(r.error_code),
        Err(_) => return Got::Closed,
    };
    let (_, members) = match describe(&ctx, &group).await {
        Ok(d) => d,
        Err(g) => return g,
    };
    // The harness's connections use the default settings.
    let client_id = kmirror_wire::messenger::MessengerConfig::default().client_id;
    check(
        "(member id starts with the instance id, members as described)",
        (joined.member_id.starts_with("inst-1-"), members),
        (
            true,
            vec![[
                joined.member_id.to_string(),
                client_id,
                "/127.0.0.1".to_string(),
            ]],
        ),
    )
}

/// JoinGroup with a session timeout below group.min.session.timeout.ms (6 s): its error,
/// and the group's state afterwards (Dead: no group was made).
async fn short_session(ctx: Ctx, member_id: &str) -> Got {
    let group = ctx.topic("short");
    let req = join_request(&group, 1_000).with_member_id(s(member_id));
    let code = match ctx.m.send_at(&req, 5).await {
        Ok(r) => r.error_code,
        Err(_) => return Got::Closed,
    };
    match describe(&ctx, &group).await {
        Ok((state, _)) => check(
            "(error, group state)",
            (code, state.as_str()),
            (INVALID_SESSION_TIMEOUT, "Dead"),
        ),
        Err(g) => g,
    }
}

/// JoinGroup at `version` with no member id: (error, protocol name) of the answer.
async fn member_id_required(ctx: Ctx, version: i16, want: Option<&str>) -> Got {
    let req = join_request(&ctx.topic("required"), 10_000);
    match ctx.m.send_at(&req, version).await {
        Ok(r) => check(
            "(error, protocol name)",
            (
                r.error_code,
                r.protocol_name.as_ref().map(|n| n.to_string()),
            ),
            (MEMBER_ID_REQUIRED, want.map(str::to_string)),
        ),
        Err(_) => Got::Closed,
    }
}

/// No rebalance delay, and Kafka 3.9's GroupCoordinator.
fn kafka_3_9(c: &mut BrokerConfig) {
    no_rebalance_delay(c);
    c.emulate_kafka = kmirror_broker::KafkaRelease::V3_9;
}

/// A lone member joins and syncs with the assignment "abc", then joins again: the leader's
/// JoinGroup rebalances a Stable group, and with no one else to wait for the group is in
/// CompletingRebalance at once. DescribeGroups' (state, the member's assignment) then.
async fn assignment_while_rebalancing(ctx: Ctx, want: &[u8]) -> Got {
    let group = ctx.topic("rebalancing");
    let join = |member: &str| join_request(&group, 10_000).with_member_id(s(member));
    let member = match ctx.m.send_at(&join(""), 5).await {
        Ok(r) if r.error_code == MEMBER_ID_REQUIRED => r.member_id.to_string(),
        Ok(r) => return Got::Code(r.error_code),
        Err(_) => return Got::Closed,
    };
    let generation = match ctx.m.send_at(&join(&member), 5).await {
        Ok(r) if r.error_code == 0 => r.generation_id,
        Ok(r) => return Got::Code(r.error_code),
        Err(_) => return Got::Closed,
    };
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s(&group)))
        .with_generation_id(generation)
        .with_member_id(s(&member))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(vec![
            kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(s(&member))
                .with_assignment(bytes::Bytes::from_static(b"abc")),
        ]);
    match ctx.m.send_at(&sync, 5).await {
        Ok(r) if r.error_code == 0 => {}
        Ok(r) => return Got::Code(r.error_code),
        Err(_) => return Got::Closed,
    }
    if ctx.m.send_at(&join(&member), 5).await.is_err() {
        return Got::Closed;
    }
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(&group))]);
    match ctx.m.send_at(&req, 5).await {
        Ok(r) => {
            let g = &r.groups[0];
            check(
                "(state, assignment)",
                (
                    g.group_state.to_string(),
                    g.members
                        .iter()
                        .map(|m| m.member_assignment.to_vec())
                        .collect::<Vec<_>>(),
                ),
                ("CompletingRebalance".to_string(), vec![want.to_vec()]),
            )
        }
        Err(_) => Got::Closed,
    }
}

/// A group holding one committed offset (a simple consumer's commit, generation -1).
async fn committed_group(ctx: &Ctx, group: &str) -> Result<(), Got> {
    let topic = ctx.topic("t");
    common::create_topic(&ctx.m, &topic, 1).await;
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(common::name(&topic))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(1)])]);
    match ctx.m.send_at(&req, 8).await {
        Ok(r) if r.topics[0].partitions[0].error_code == 0 => Ok(()),
        Ok(r) => Err(Got::Code(r.topics[0].partitions[0].error_code)),
        Err(_) => Err(Got::Closed),
    }
}

async fn delete_twice(ctx: Ctx) -> Got {
    let group = ctx.topic("twice");
    if let Err(g) = committed_group(&ctx, &group).await {
        return g;
    }
    let req = DeleteGroupsRequest::default()
        .with_groups_names(vec![GroupId(s(&group)), GroupId(s(&group))]);
    match ctx.m.send_at(&req, 2).await {
        Ok(r) => {
            let results: Vec<(String, i16)> = r
                .results
                .iter()
                .map(|g| (g.group_id.to_string(), g.error_code))
                .collect();
            check("results", results, vec![(group, 0)])
        }
        Err(_) => Got::Closed,
    }
}

/// Kafka 2.8's GroupCoordinator.
fn kafka_2_8(c: &mut BrokerConfig) {
    no_rebalance_delay(c);
    c.emulate_kafka = kmirror_broker::KafkaRelease::V2_8;
}

/// Whether ListGroups v4 asked for the states `asked` lists an Empty group (one holding a
/// simple consumer's commit).
async fn listed_by_state(ctx: Ctx, asked: &str, want: bool) -> Got {
    let group = ctx.topic("idle");
    if let Err(g) = committed_group(&ctx, &group).await {
        return g;
    }
    let req = ListGroupsRequest::default().with_states_filter(vec![s(asked)]);
    match ctx.m.send_at(&req, 4).await {
        Ok(r) => check(
            "listed",
            r.groups.iter().any(|g| g.group_id.as_str() == group),
            want,
        ),
        Err(_) => Got::Closed,
    }
}

/// A broker of its own: a new cluster.
fn new_cluster(_: &mut BrokerConfig) {}

pub fn rows() -> Vec<Row> {
    vec![
        row!("FindCoordinator on a new cluster: COORDINATOR_NOT_AVAILABLE while __consumer_offsets is created (50 partitions, compacted); then the coordinator",
            "KafkaApis.getCoordinator; AutoTopicCreationManager.creatableTopic",
            Got::Code(0), Some(new_cluster), |ctx| first_find_coordinator(ctx).await),
        row!("SyncGroup v5 without a protocol type: INCONSISTENT_GROUP_PROTOCOL, before the group is looked up",
            "KafkaApis.handleSyncGroupRequest (areMandatoryProtocolTypeAndNamePresent)",
            Got::Code(INCONSISTENT_GROUP_PROTOCOL), |ctx| {
                let req = SyncGroupRequest::default()
                    .with_group_id(GroupId(s(&ctx.topic("nosuch"))))
                    .with_generation_id(1)
                    .with_member_id(s("m"))
                    .with_protocol_type(None)
                    .with_protocol_name(Some(s("range")));
                code_or_closed(ctx.m.send_at(&req, 5).await, |r| r.error_code)
            }),
        row!("SyncGroup v4 without a protocol type (the field is v5+): the group is looked up",
            "SyncGroupRequest.areMandatoryProtocolTypeAndNamePresent (v5+)",
            Got::Code(25), |ctx| {
                let req = SyncGroupRequest::default()
                    .with_group_id(GroupId(s(&ctx.topic("nosuch"))))
                    .with_generation_id(1)
                    .with_member_id(s("m"));
                code_or_closed(ctx.m.send_at(&req, 4).await, |r| r.error_code)
            }),
        row!("Group requests while the coordinator loads its groups: COORDINATOR_LOAD_IN_PROGRESS (FindCoordinator answered)",
            "GroupCoordinator.validateGroupStatus (isCoordinatorLoadInProgress); GroupCoordinatorService.listGroups",
            Got::Code(0), Some(loading), |ctx| while_loading(ctx).await),
        row!("KIP-848's ConsumerGroupHeartbeat and ConsumerGroupDescribe without group.version: UNSUPPORTED_VERSION, each group named",
            "KafkaApis.handleConsumerGroupHeartbeat / handleConsumerGroupDescribe (!isConsumerGroupProtocolEnabled)",
            Got::Code(0), |ctx| consumer_protocol(ctx).await),
        row!("JoinGroup v5 answers with a protocol name of \"\" where it has none (not nullable below v7)",
            "JoinGroupResponse (version < 7: null becomes \"\")", Got::Code(0),
            |ctx| member_id_required(ctx, 5, Some("")).await),
        row!("JoinGroup v7 answers with a null protocol name where it has none",
            "JoinGroupResponse (version >= 7: \"\" becomes null)", Got::Code(0),
            |ctx| member_id_required(ctx, 7, None).await),
        row!("JoinGroup with a session timeout out of range: INVALID_SESSION_TIMEOUT, and no group is made",
            "GroupCoordinatorService.joinGroup (before the group is created)", Got::Code(0),
            |ctx| short_session(ctx, "").await),
        row!("JoinGroup with a member id, a group that does not exist and a session timeout out of range: INVALID_SESSION_TIMEOUT first",
            "GroupCoordinatorService.joinGroup (before UNKNOWN_MEMBER_ID)", Got::Code(0),
            |ctx| short_session(ctx, "someone").await),
        row!("A static member's id starts with its instance id; DescribeGroups shows its host as Java does (\"/127.0.0.1\")",
            "ClassicGroup.generateMemberId; ClassicGroupMember clientHost (InetAddress.toString)",
            Got::Code(0), Some(no_rebalance_delay), |ctx| static_member(ctx).await),
        row!("DescribeGroups while a group rebalances keeps the members' assignments (Kafka 4's group coordinator), without their metadata",
            "GroupMetadataManager.describeGroups (ClassicGroupMember.describeNoMetadata keeps the assignment)",
            Got::Code(0), Some(no_rebalance_delay), |ctx| assignment_while_rebalancing(ctx, b"abc").await),
        row!("DescribeGroups while a group rebalances, emulating 3.9: no assignments",
            "GroupMetadata.summary (MemberMetadata.summaryNoMetadata: no metadata, no assignment)",
            Got::Code(0), Some(kafka_3_9), |ctx| assignment_while_rebalancing(ctx, b"").await),
        row!("ListGroups' states filter is matched as written, emulating 2.8: \"empty\" lists no Empty group",
            "GroupCoordinator.handleListGroups (2.8: states.contains(g.summary.state))",
            Got::Code(0), Some(kafka_2_8), |ctx| listed_by_state(ctx, "empty", false).await),
        row!("ListGroups' states filter emulating 2.8: \"Empty\" lists an Empty group",
            "GroupCoordinator.handleListGroups (2.8)",
            Got::Code(0), Some(kafka_2_8), |ctx| listed_by_state(ctx, "Empty", true).await),
        row!("ListGroups' states filter ignores case and surrounding blanks (Kafka 4)",
            "GroupMetadataManager.listGroups (toLowerCase, trim)",
            Got::Code(0), |ctx| listed_by_state(ctx, " EMPTY ", true).await),
        row!("DeleteGroups naming a group twice: deleted and answered once",
            "KafkaApis.handleDeleteGroupsRequest (distinct)", Got::Code(0),
            |ctx| delete_twice(ctx).await),
        row!("JoinGroup with a session timeout out of range at a node that is not the coordinator: INVALID_SESSION_TIMEOUT, not NOT_COORDINATOR",
            "GroupCoordinatorService.joinGroup (before the coordinator's shard is looked for)",
            Got::Code(INVALID_SESSION_TIMEOUT), Some(two_nodes), |ctx| {
                let m = crate::authz::other_node(&ctx).await;
                let req = join_request(&ctx.topic("short"), 1_000);
                code_or_closed(m.send_at(&req, 5).await, |r| r.error_code)
            }),
        row!("OffsetDelete for the empty group id at a node that is not the coordinator: INVALID_GROUP_ID",
            "GroupCoordinatorService.deleteOffsets (isGroupIdNotEmpty first)",
            Got::Code(INVALID_GROUP_ID), Some(two_nodes), |ctx| {
                let m = crate::authz::other_node(&ctx).await;
                let req = OffsetDeleteRequest::default().with_group_id(GroupId(s("")));
                code_or_closed(m.send_at(&req, 0).await, |r| r.error_code)
            }),
        row!("OffsetDelete for the empty group id: INVALID_GROUP_ID",
            "GroupCoordinatorService.deleteOffsets (isGroupIdNotEmpty)", Got::Code(INVALID_GROUP_ID),
            |ctx| {
                let req = OffsetDeleteRequest::default().with_group_id(GroupId(s("")));
                code_or_closed(ctx.m.send_at(&req, 0).await, |r| r.error_code)
            }),
    ]
}

/// KIP-848's APIs on a broker without the consumer protocol: (heartbeat's error, describe's
/// groups and their errors).
async fn consumer_protocol(ctx: Ctx) -> Got {
    let heartbeat = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(10_000)
        .with_subscribed_topic_names(Some(vec![TopicName(s("t"))]));
    let describe = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(s("g")), GroupId(s("h"))]);
    let (Ok(h), Ok(d)) = (
        ctx.m.send_at(&heartbeat, 1).await,
        ctx.m.send_at(&describe, 1).await,
    ) else {
        return Got::Closed;
    };
    let described: Vec<_> = d
        .groups
        .iter()
        .map(|g| (g.group_id.0.to_string(), g.error_code))
        .collect();
    check(
        "(heartbeat, described groups)",
        (h.error_code, described),
        (
            UNSUPPORTED_VERSION,
            vec![
                ("g".into(), UNSUPPORTED_VERSION),
                ("h".into(), UNSUPPORTED_VERSION),
            ],
        ),
    )
}
