//! Unit tests of the group state machine; time is driven explicitly, nothing sleeps.

use super::*;

const NO_DELAY: u64 = 0;
const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

fn group(initial_delay_ms: u64) -> Group {
    Group::new(
        "g",
        GroupConfig {
            initial_rebalance_delay_ms: initial_delay_ms,
            ..GroupConfig::default()
        },
    )
}

fn protos(names: &[&str]) -> Vec<(String, Bytes)> {
    names
        .iter()
        .map(|n| (n.to_string(), Bytes::from(format!("md-{n}"))))
        .collect()
}

fn jp(version: i16, member_id: &str, new_id: &str, names: &[&str]) -> JoinParams {
    JoinParams {
        version,
        member_id: member_id.into(),
        new_member_id: new_id.into(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: protos(names),
    }
}

fn static_jp(member_id: &str, new_id: &str, instance: &str) -> JoinParams {
    JoinParams {
        group_instance_id: Some(instance.into()),
        ..jp(5, member_id, new_id, &["range"])
    }
}

fn join_of(out: &[Outcome], r: ResponderId) -> Option<&JoinResult> {
    out.iter().find_map(|o| match o {
        Outcome::Join(id, res) if *id == r => Some(res),
        _ => None,
    })
}

fn sync_of(out: &[Outcome], r: ResponderId) -> Option<&SyncResult> {
    out.iter().find_map(|o| match o {
        Outcome::Sync(id, res) if *id == r => Some(res),
        _ => None,
    })
}

fn sp(member: &str, generation: i32, assignments: &[(&str, &str)]) -> SyncParams {
    SyncParams {
        member_id: member.into(),
        generation_id: generation,
        assignments: assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
            .collect(),
        ..SyncParams::default()
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Builds a Stable group of dynamic members `ids` (v3 joins, no initial delay) at `t0`;
/// the first id leads and assigns "a-<id>" to everyone.
fn stable_group(t0: Instant, ids: &[&str]) -> Group {
    let mut g = group(NO_DELAY);
    // Join all members while a rebalance is pending: the first completes alone, then
    // everybody rejoins together.
    let mut responder = 100;
    for id in ids {
        responder += 1;
        g.join(t0, jp(3, "", id, &["range"]), responder);
    }
    if g.state() == GroupState::PreparingRebalance {
        for id in ids {
            responder += 1;
            g.join(t0, jp(3, id, "", &["range"]), responder);
        }
    }
    assert_eq!(g.state(), GroupState::CompletingRebalance, "{g:?}");
    let generation = g.generation();
    let assignments: Vec<(String, String)> = ids
        .iter()
        .map(|id| (id.to_string(), format!("a-{id}")))
        .collect();
    let assignments: Vec<(&str, &str)> = assignments
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    for id in &ids[1..] {
        responder += 1;
        g.sync(t0, sp(id, generation, &[]), responder);
    }
    let leader = g.leader().unwrap().to_string();
    g.sync(t0, sp(&leader, generation, &assignments), 999);
    assert_eq!(g.state(), GroupState::Stable);
    g
}

#[test]
fn single_member_join_and_sync() {
    let t0 = Instant::now();
    let mut g = group(NO_DELAY);
    let out = g.join(t0, jp(3, "", "m1", &["range"]), 1);
    let r = join_of(&out, 1).expect("answered at once");
    assert_eq!(r.error, 0);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.member_id, "m1");
    assert_eq!(r.leader, "m1");
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(r.members.len(), 1);
    assert_eq!(r.members[0].metadata, Bytes::from("md-range"));
    assert_eq!(g.state(), GroupState::CompletingRebalance);

    let out = g.sync(t0, sp("m1", 1, &[("m1", "assign")]), 2);
    let s = sync_of(&out, 2).unwrap();
    assert_eq!(s.error, 0);
    assert_eq!(s.assignment, Bytes::from("assign"));
    assert_eq!(g.state(), GroupState::Stable);
    assert!(g.take_dirty());
    assert_eq!(g.heartbeat(t0 + ms(1000), "m1", None, 1), 0);
}

#[test]
fn three_members_initial_delay_leader_gets_metadata() {
    let t0 = Instant::now();
    let mut g = group(3_000);
    assert!(g.join(t0, jp(3, "", "m1", &["range"]), 1).is_empty());
    assert_eq!(g.next_deadline(), Some(t0 + ms(3_000)));
    assert!(g
        .join(t0 + ms(1_000), jp(3, "", "m2", &["range"]), 2)
        .is_empty());
    assert!(g
        .join(t0 + ms(2_000), jp(3, "", "m3", &["range"]), 3)
        .is_empty());
    // New members arrived during the delay: it is extended once more.
    assert!(g.tick(t0 + ms(3_000)).is_empty());
    assert_eq!(g.next_deadline(), Some(t0 + ms(6_000)));
    let out = g.tick(t0 + ms(6_000));
    assert_eq!(out.len(), 3);
    let leader = join_of(&out, 1).unwrap();
    assert_eq!(leader.leader, "m1");
    assert_eq!(leader.generation_id, 1);
    let ids: Vec<&str> = leader
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert_eq!(ids, ["m1", "m2", "m3"]);
    for r in [2, 3] {
        let f = join_of(&out, r).unwrap();
        assert_eq!(f.leader, "m1");
        assert_eq!(f.generation_id, 1);
        assert!(f.members.is_empty());
    }
    // Followers wait for the leader's assignment.
    assert!(g.sync(t0 + ms(6_001), sp("m2", 1, &[]), 12).is_empty());
    assert!(g.sync(t0 + ms(6_001), sp("m3", 1, &[]), 13).is_empty());
    let out = g.sync(t0 + ms(6_002), sp("m1", 1, &[("m1", "x"), ("m2", "y")]), 11);
    assert_eq!(sync_of(&out, 11).unwrap().assignment, Bytes::from("x"));
    assert_eq!(sync_of(&out, 12).unwrap().assignment, Bytes::from("y"));
    let m3 = sync_of(&out, 13).unwrap();
    assert_eq!((m3.error, m3.assignment.len()), (0, 0));
    assert_eq!(g.state(), GroupState::Stable);
}

#[test]
fn protocol_selection_and_inconsistent_protocols() {
    let t0 = Instant::now();
    let mut g = group(1_000);
    g.join(t0, jp(3, "", "m1", &["range", "roundrobin"]), 1);
    g.join(t0, jp(3, "", "m2", &["roundrobin", "range"]), 2);
    g.join(t0, jp(3, "", "m3", &["roundrobin", "range"]), 3);
    let out = g.join(t0, jp(3, "", "m4", &["sticky"]), 4);
    assert_eq!(join_of(&out, 4).unwrap().error, 23);
    let mut other_type = jp(3, "", "m5", &["range"]);
    other_type.protocol_type = "connect".into();
    let out = g.join(t0, other_type, 5);
    assert_eq!(join_of(&out, 5).unwrap().error, 23);
    // m2 and m3 arrived during the initial delay, which is therefore extended once.
    assert!(g.tick(t0 + ms(1_000)).is_empty());
    let out = g.tick(t0 + ms(2_000));
    // Two votes for roundrobin, one for range.
    assert_eq!(
        join_of(&out, 1).unwrap().protocol_name.as_deref(),
        Some("roundrobin")
    );

    // Only protocols every member supports are candidates.
    let mut g = group(1_000);
    g.join(t0, jp(3, "", "m1", &["range", "roundrobin"]), 1);
    g.join(t0, jp(3, "", "m2", &["range", "roundrobin"]), 2);
    g.join(t0, jp(3, "", "m3", &["roundrobin"]), 3);
    let out = g.tick(t0 + ms(2_000));
    let r = join_of(&out, 1).unwrap();
    assert_eq!(r.protocol_name.as_deref(), Some("roundrobin"));
    assert_eq!(r.members[0].metadata, Bytes::from("md-roundrobin"));
}

#[test]
fn member_id_required_at_v4_but_not_v3() {
    let t0 = Instant::now();
    let mut g = group(NO_DELAY);
    let out = g.join(t0, jp(4, "", "c-1", &["range"]), 1);
    let r = join_of(&out, 1).unwrap();
    assert_eq!(r.error, 79);
    assert_eq!(r.member_id, "c-1");
    assert_eq!(g.state(), GroupState::Empty);
    assert!(g.member_ids().is_empty());
    // The pending id expires after the session timeout if never used...
    assert_eq!(g.next_deadline(), Some(t0 + ms(SESSION_MS as u64)));
    // ...but here it comes back at once and is admitted.
    let out = g.join(t0, jp(4, "c-1", "unused", &["range"]), 2);
    let r = join_of(&out, 2).unwrap();
    assert_eq!(
        (r.error, r.generation_id, r.member_id.as_str()),
        (0, 1, "c-1")
    );

    let mut g = group(NO_DELAY);
    let out = g.join(t0, jp(3, "", "c-2", &["range"]), 1);
    let r = join_of(&out, 1).unwrap();
    assert_eq!((r.error, r.member_id.as_str()), (0, "c-2"));

    // A static member (v5+ with an instance id) is never asked for a member id.
    let mut g = group(NO_DELAY);
    let out = g.join(t0, static_jp("", "s-1", "i1"), 1);
    assert_eq!(join_of(&out, 1).unwrap().error, 0);
}

#[test]
fn pending_member_blocks_join_until_it_expires() {
    let t0 = Instant::now();
    let mut g = stable_group(t0, &["m1"]);
    // m2 is told its id but never comes back; m1's rejoin must not wait forever.
    let out = g.join(t0, jp(4, "", "m2", &["range"]), 1);
    assert_eq!(join_of(&out, 1).unwrap().error, 79);
    assert_eq!(g.state(), GroupState::Stable);
    // The leader rejoins (e.g. metadata change): waits for the pending member.
    assert!(g.join(t0, jp(4, "m1", "", &["range"]), 2).is_empty());
    let out = g.tick(t0 + ms(SESSION_MS as u64));
    let r = join_of(&out, 2).unwrap();
    assert_eq!((r.error, r.generation_id), (0, 2));
}

#[test]
fn invalid_session_timeout() {
    let t0 = Instant::now();
    let mut g = group(NO_DELAY);
    for timeout in [5_999, 1_800_001] {
        let mut p = jp(3, "", "m1", &["range"]);
        p.session_timeout_ms = timeout;
        let out = g.join(t0, p, 1);
        assert_eq!(join_of(&out, 1).unwrap().error, 26);
    }
    assert_eq!(g.state(), GroupState::Empty);
}

#[test]
fn heartbeat_during_rebalance_and_errors() {
    let t0 = Instant::now();
    let mut g = stable_group(t0, &["m1"]);
    assert_eq!(g.heartbeat(t0, "m1", None, 1), 0);
    assert_eq!(g.heartbeat(t0, "m1", None, 0), 22);
    assert_eq!(g.heartbeat(t0, "nobody", None, 1), 25);
    assert!(g.join(t0, jp(3, "", "m2", &["range"]), 1).is_empty());
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(g.heartbeat(t0, "m1", None, 1), 27);
    let out = g.join(t0, jp(3, "m1", "", &["range"]), 2);
    assert_eq!(join_of(&out, 1).unwrap().generation_id, 2);
    assert_eq!(join_of(&out, 2).unwrap().generation_id, 2);
    // Completing: heartbeats are fine (the member got its join response).
    assert_eq!(g.heartbeat(t0, "m2", None, 2), 0);
}

#[test]
fn session_timeout_evicts_and_rebalances() {
    let t0 = Instant::now();
    let mut g = stable_group(t0, &["m1", "m2"]);
    assert_eq!(g.generation(), 2);
    let mut t = t0;
    for _ in 0..2 {
        t += ms(4_000);
        assert!(g.tick(t).is_empty());
        assert_eq!(g.heartbeat(t, "m1", None, 2), 0);
    }
    t += ms(4_000);
    assert!(g.tick(t).is_empty());
    // m2 stayed silent since t0: it expired at t0 + 10 s.
    assert_eq!(g.member_ids(), ["m1"]);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(g.heartbeat(t, "m1", None, 2), 27);
    assert_eq!(g.heartbeat(t, "m2", None, 2), 25);
    let out = g.join(t, jp(3, "m1", "", &["range"]), 1);
    let r = join_of(&out, 1).unwrap();
    assert_eq!((r.generation_id, r.members.len()), (3, 1));
}

#[test]
fn rebalance_timeout_evicts_members_that_do_not_rejoin() {
    let t0 = Instant::now();
    let mut g = stable_group(t0, &["m1", "m2"]);
    assert!(g.join(t0, jp(3, "", "m3", &["range"]), 1).is_empty());
    assert!(g.join(t0, jp(3, "m1", "", &["range"]), 2).is_empty());
    // m2 heartbeats (so its session never expires) but never rejoins.
    let mut t = t0;
    while t + ms(5_000) < t0 + ms(REBALANCE_MS as u64) {
        t += ms(5_000);
        assert!(g.tick(t).is_empty());
        assert_eq!(g.heartbeat(t, "m2", None, 2), 27);
    }
    let out = g.tick(t0 + ms(REBALANCE_MS as u64));
    assert_eq!(out.len(), 2);
    let leader = join_of(&out, 2).unwrap();
    assert_eq!(leader.generation_id, 3);
    assert_eq!(leader.leader, "m1");
    assert_eq!(leader.members.len(), 2);
    assert_eq!(g.member_ids(), ["m1", "m3"]);
    assert_eq!(g.heartbeat(t0 + ms(REBALANCE_MS as u64), "m2", None, 2), 25);
}

#[test]
fn late_tick_behaves_like_punctual_ticks() {
    let t0 = Instant::now();
    let mut a = stable_group(t0, &["m1", "m2"]);
    let mut b = a.clone();
    let mut punctual = Vec::new();
    while let Some(d) = a.next_deadline().filter(|d| *d <= t0 + ms(100_000)) {
        punctual.extend(a.tick(d));
    }
    let late = b.tick(t0 + ms(100_000));
    assert_eq!(punctual, late);
    assert_eq!(a.state(), b.state());
    assert_eq!(b.state(), GroupState::Empty);
    assert_eq!(b.generation(), 3);
}

#[test]
fn leader_leaves_while_completing_rebalance() {
    let t0 = Instant::now();
    let mut g = group(1_000);
    g.join(t0, jp(3, "", "m1", &["range"]), 1);
    g.join(t0, jp(3, "", "m2", &["range"]), 2);
    g.join(t0, jp(3, "", "m3", &["range"]), 3);
    let out = g.tick(t0 + ms(2_000));
    assert_eq!(join_of(&out, 1).unwrap().leader, "m1");
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert!(g.sync(t0, sp("m2", 1, &[]), 12).is_empty());
    assert!(g.sync(t0, sp("m3", 1, &[]), 13).is_empty());
    let (errors, out) = g.leave(
        t0,
        &[LeaveMember {
            member_id: "m1".into(),
            group_instance_id: None,
        }],
    );
    assert_eq!(errors, [0]);
    assert_eq!(sync_of(&out, 12).unwrap().error, 27);
    assert_eq!(sync_of(&out, 13).unwrap().error, 27);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(g.leader(), Some("m2"));
    assert!(g.join(t0, jp(3, "m3", "", &["range"]), 23).is_empty());
    let out = g.join(t0, jp(3, "m2", "", &["range"]), 22);
    let r = join_of(&out, 22).unwrap();
    assert_eq!((r.generation_id, r.leader.as_str()), (2, "m2"));
    assert_eq!(r.members.len(), 2);
    assert!(join_of(&out, 23).unwrap().members.is_empty());
}

#[test]
fn pending_sync_expiry_evicts_members_that_never_sync() {
    let t0 = Instant::now();
    let mut g = group(NO_DELAY);
    g.join(t0, jp(3, "", "m1", &["range"]), 1);
    g.join(t0, jp(3, "", "m2", &["range"]), 2);
    g.join(t0, jp(3, "m1", "", &["range"]), 3);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    // m2 keeps heartbeating but never syncs; the leader does.
    g.sync(t0, sp("m1", g.generation(), &[]), 4);
    let mut t = t0;
    while t + ms(5_000) < t0 + ms(REBALANCE_MS as u64) {
        t += ms(5_000);
        g.tick(t);
        assert_eq!(g.heartbeat(t, "m1", None, 2), 0);
        assert_eq!(g.heartbeat(t, "m2", None, 2), 0);
    }
    g.tick(t0 + ms(REBALANCE_MS as u64));
    assert_eq!(g.member_ids(), ["m1"]);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn sync_errors() {
    let t0 = Instant::now();
    let mut g = stable_group(t0, &["m1"]);
    let out = g.sync(t0, sp("m1", 0, &[]), 1);
    assert_eq!(sync_of(&out, 1).unwrap().error, 22);
    let out = g.sync(t0, sp("x", 1, &[]), 2);
    assert_eq!(sync_of(&out, 2).unwrap().error, 25);
    let mut p = sp("m1", 1, &[]);
    p.protocol_name = Some("roundrobin".into());
    let out = g.sync(t0, p, 3);
    assert_eq!(sync_of(&out, 3).unwrap().error, 23);
    // Stable: a (re)sync returns the member's assignment at once.
    let out = g.sync(t0, sp("m1", 1, &[]), 4);
    assert_eq!(sync_of(&out, 4).unwrap().assignment, Bytes::from("a-m1"));
    g.join(t0, jp(3, "", "m2", &["range"]), 5);
    let out = g.sync(t0, sp("m1", 1, &[]), 6);
    assert_eq!(sync_of(&out, 6).unwrap().error, 27);
}

#[test]
fn stable_follower_rejoin_gets_current_generation_leader_rejoin_rebalances() {
    let t0 = Instant::now();
    let mut g = stable_group(t0, &["m1", "m2"]);
    let out = g.join(t0, jp(3, "m2", "", &["range"]), 1);
    let r = join_of(&out, 1).unwrap();
    assert_eq!((r.error, r.generation_id, r.leader.as_str()), (0, 2, "m1"));
    assert_eq!(g.state(), GroupState::Stable);
    assert!(g.join(t0, jp(3, "m1", "", &["range"]), 2).is_empty());
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn static_member_rejoin_fences_old_id_without_rebalance() {
    let t0 = Instant::now();
    let mut g = group(NO_DELAY);
    g.join(t0, static_jp("", "s1", "i1"), 1);
    g.join(t0, jp(3, "", "m2", &["range"]), 2);
    g.join(t0, static_jp("s1", "", "i1"), 3);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    let generation = g.generation();
    g.sync(t0, sp("m2", generation, &[]), 4);
    g.sync(t0, sp("s1", generation, &[("s1", "A"), ("m2", "B")]), 5);
    assert_eq!(g.state(), GroupState::Stable);
    g.take_dirty();

    // The static member restarts: unknown (empty) member id, known instance id.
    let out = g.join(t0 + ms(100), static_jp("", "s1-new", "i1"), 6);
    let r = join_of(&out, 6).unwrap();
    assert_eq!(r.error, 0);
    assert_eq!(r.member_id, "s1-new");
    assert_eq!(r.generation_id, generation);
    // The old leader id is returned so that the replaced leader does not reassign.
    assert_eq!(r.leader, "s1");
    assert!(r.members.is_empty());
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(g.generation(), generation);
    assert!(g.take_dirty());
    assert_eq!(g.static_member("i1"), Some("s1-new"));
    assert_eq!(g.leader(), Some("s1-new"));

    assert_eq!(g.heartbeat(t0, "s1", Some("i1"), generation), 82);
    assert_eq!(g.heartbeat(t0, "s1-new", Some("i1"), generation), 0);
    let out = g.join(t0, static_jp("s1", "", "i1"), 7);
    assert_eq!(join_of(&out, 7).unwrap().error, 82);
    let mut p = sp("s1-new", generation, &[]);
    p.group_instance_id = Some("i1".into());
    let out = g.sync(t0, p, 8);
    assert_eq!(sync_of(&out, 8).unwrap().assignment, Bytes::from("A"));
    let mut p = sp("s1", generation, &[]);
    p.group_instance_id = Some("i1".into());
    assert_eq!(sync_of(&g.sync(t0, p, 9), 9).unwrap().error, 82);

    // v9: the static leader learns it leads but may skip the assignment.
    let mut p = static_jp("", "s1-v9", "i1");
    p.version = 9;
    let out = g.join(t0, p, 10);
    let r = join_of(&out, 10).unwrap();
    assert!(r.skip_assignment);
    assert_eq!(r.leader, "s1-v9");
    assert_eq!(r.members.len(), 2);
    assert_eq!(g.state(), GroupState::Stable);
}

#[test]
fn static_member_replaced_while_waiting_gets_fenced() {
    let t0 = Instant::now();
    let mut g = stable_group(t0, &["m1"]);
    g.join(t0, static_jp("", "s1", "i1"), 1);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    // A second process with the same instance id: the first one's join is fenced.
    let out = g.join(t0, static_jp("", "s1b", "i1"), 2);
    let fenced = join_of(&out, 1).unwrap();
    assert_eq!((fenced.error, fenced.member_id.as_str()), (82, "s1"));
    let out = g.join(t0, jp(3, "m1", "", &["range"]), 3);
    assert_eq!(join_of(&out, 2).unwrap().member_id, "s1b");
    assert_eq!(join_of(&out, 3).unwrap().members.len(), 2);
}

#[test]
fn batched_leave_with_per_member_errors() {
    let t0 = Instant::now();
    let mut g = group(NO_DELAY);
    g.join(t0, jp(3, "", "m1", &["range"]), 1);
    g.join(t0, jp(3, "", "m2", &["range"]), 2);
    g.join(t0, static_jp("", "s3", "i3"), 3);
    g.join(t0, jp(3, "m1", "", &["range"]), 4);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    let (errors, out) = g.leave(
        t0,
        &[
            LeaveMember {
                member_id: "m1".into(),
                group_instance_id: None,
            },
            LeaveMember {
                member_id: "ghost".into(),
                group_instance_id: None,
            },
            LeaveMember {
                member_id: "".into(),
                group_instance_id: Some("i3".into()),
            },
            LeaveMember {
                member_id: "wrong".into(),
                group_instance_id: Some("i9".into()),
            },
        ],
    );
    assert_eq!(errors, [0, 25, 0, 25]);
    assert!(out.is_empty());
    assert_eq!(g.member_ids(), ["m2"]);
    assert_eq!(g.static_member("i3"), None);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    let out = g.join(t0, jp(3, "m2", "", &["range"]), 5);
    let r = join_of(&out, 5).unwrap();
    assert_eq!((r.leader.as_str(), r.members.len()), ("m2", 1));

    // Fenced: an instance id mapped to another member.
    let mut g = group(NO_DELAY);
    g.join(t0, static_jp("", "s1", "i1"), 1);
    let (errors, _) = g.leave(
        t0,
        &[LeaveMember {
            member_id: "other".into(),
            group_instance_id: Some("i1".into()),
        }],
    );
    assert_eq!(errors, [82]);
    // The last member leaving empties the group.
    let (errors, _) = g.leave(
        t0,
        &[LeaveMember {
            member_id: "s1".into(),
            group_instance_id: Some("i1".into()),
        }],
    );
    assert_eq!(errors, [0]);
    assert_eq!(g.state(), GroupState::Empty);
    assert_eq!(g.generation(), 2);
}

#[test]
fn leaving_member_waiting_in_join_is_answered() {
    let t0 = Instant::now();
    let mut g = stable_group(t0, &["m1", "m2"]);
    g.join(t0, jp(3, "m1", "", &["range"]), 1);
    let (errors, out) = g.leave(
        t0,
        &[LeaveMember {
            member_id: "m1".into(),
            group_instance_id: None,
        }],
    );
    assert_eq!(errors, [0]);
    assert_eq!(join_of(&out, 1).unwrap().error, 25);
    assert_eq!(g.leader(), Some("m2"));
}

#[test]
fn offset_commit_validation() {
    let t0 = Instant::now();
    let mut g = stable_group(t0, &["m1"]);
    assert_eq!(g.validate_offset_commit(t0, 1, "m1", None), Ok(()));
    assert_eq!(g.validate_offset_commit(t0, 0, "m1", None), Err(22));
    assert_eq!(g.validate_offset_commit(t0, 1, "x", None), Err(25));
    assert_eq!(g.validate_offset_commit(t0, -1, "", None), Err(25));
    g.join(t0, jp(3, "", "m2", &["range"]), 1);
    // PreparingRebalance: commits of the old generation are still accepted.
    assert_eq!(g.validate_offset_commit(t0, 1, "m1", None), Ok(()));
    g.join(t0, jp(3, "m1", "", &["range"]), 2);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(g.validate_offset_commit(t0, 2, "m1", None), Err(27));

    let mut empty = group(NO_DELAY);
    assert_eq!(empty.validate_offset_commit(t0, -1, "", None), Ok(()));
    // Kafka: ClassicGroup.validateOffsetCommit checks `generation < 0 && EMPTY` first.
    assert_eq!(empty.validate_offset_commit(t0, -1, "m1", None), Ok(()));
    assert_eq!(
        empty.validate_offset_commit(t0, -1, "", Some("static-1")),
        Ok(())
    );
    assert_eq!(empty.validate_offset_commit(t0, 0, "", None), Err(25));
}

#[test]
fn record_round_trip_restores_stable_group() {
    let t0 = Instant::now();
    let mut g = group(NO_DELAY);
    g.join(t0, static_jp("", "s1", "i1"), 1);
    g.sync(t0, sp("s1", 1, &[("s1", "A")]), 2);
    let record = g.to_record();
    assert_eq!(record.members.len(), 1);
    let t1 = t0 + ms(60_000);
    let mut back = Group::from_record(&record, GroupConfig::default(), t1);
    assert_eq!(back.state(), GroupState::Stable);
    assert_eq!(back.generation(), 1);
    assert_eq!(back.static_member("i1"), Some("s1"));
    assert_eq!(back.leader(), Some("s1"));
    assert_eq!(back.heartbeat(t1, "s1", Some("i1"), 1), 0);
    let out = back.sync(t1, sp("s1", 1, &[]), 3);
    assert_eq!(sync_of(&out, 3).unwrap().assignment, Bytes::from("A"));
    assert_eq!(back.next_deadline(), Some(t1 + ms(SESSION_MS as u64)));

    // A generation whose assignment was never known restores as Empty, same generation.
    let mut c = group(NO_DELAY);
    c.join(t0, jp(3, "", "m1", &["range"]), 1);
    let record = c.to_record();
    assert!(record.members.is_empty());
    let back = Group::from_record(&record, GroupConfig::default(), t1);
    assert_eq!((back.state(), back.generation()), (GroupState::Empty, 1));
}

#[test]
fn subscribed_topics_from_consumer_metadata() {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let t0 = Instant::now();
    let sub = ConsumerProtocolSubscription::default()
        .with_topics(vec![StrBytes::from_static_str("orders")]);
    let mut md = bytes::BytesMut::new();
    md.extend_from_slice(&1i16.to_be_bytes());
    sub.encode(&mut md, 1).unwrap();
    let mut p = jp(3, "", "m1", &[]);
    p.protocols = vec![("range".into(), md.freeze())];
    let mut g = group(NO_DELAY);
    g.join(t0, p, 1);
    let topics = g.subscribed_topics().unwrap();
    assert_eq!(topics.into_iter().collect::<Vec<_>>(), ["orders"]);
    let mut g = group(NO_DELAY);
    g.join(t0, jp(3, "", "m1", &["range"]), 1);
    assert_eq!(g.subscribed_topics(), None);
}
