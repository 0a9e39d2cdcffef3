//! Unit tests of leader placement, elections, reassignments, epoch history and the
//! persisted table.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::leadership::{placement, ElectionError, EpochEntry, PartitionLeadership, NO_LEADER};
use super::{check, Cluster, LeaderError, NodeEndpoint};

fn live(ids: &[i32]) -> BTreeSet<i32> {
    ids.iter().copied().collect()
}

fn three() -> PartitionLeadership {
    PartitionLeadership::new(Uuid::nil(), vec![0, 1, 2], &live(&[0, 1, 2]))
}

fn epochs(pl: &PartitionLeadership) -> Vec<(i32, i64)> {
    pl.epochs
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}

#[test]
fn placement_spreads_leaders_and_lists_every_node_once() {
    let nodes = [0, 1, 2];
    let all = live(&nodes);
    let place = |p| placement("orders", p, &nodes, &all, 3);
    let leaders: BTreeSet<i32> = (0..6).map(|p| place(p)[0]).collect();
    assert_eq!(leaders, live(&[0, 1, 2]), "6 partitions over 3 nodes");
    for p in 0..6 {
        let mut r = place(p);
        assert_eq!(r.len(), 3);
        r.sort();
        assert_eq!(r, vec![0, 1, 2]);
    }
    // Stable between runs, and consecutive partitions have consecutive leaders.
    assert_eq!(place(1), place(1));
    let l0 = place(0)[0];
    assert_eq!(place(1)[0], (l0 + 1) % 3);
    assert_eq!(placement("t", 0, &[7], &live(&[7]), 1), vec![7]);
}

#[test]
fn placement_takes_as_many_replicas_as_asked_live_nodes_first() {
    let nodes = [0, 1, 2];
    let all = live(&nodes);
    let one: Vec<i32> = (0..6)
        .map(|p| {
            let r = placement("orders", p, &nodes, &all, 1);
            assert_eq!(r.len(), 1);
            r[0]
        })
        .collect();
    assert_eq!(one.iter().copied().collect::<BTreeSet<_>>(), all);
    for p in 0..6 {
        let two = placement("orders", p, &nodes, &all, 2);
        assert_eq!(
            two[0], one[p as usize],
            "the same leader as with one replica"
        );
        assert_eq!(two.len(), 2);
        assert_ne!(two[0], two[1]);
        // Node 1 stopped: it is never the first replica and comes last.
        let degraded = placement("orders", p, &nodes, &live(&[0, 2]), 3);
        assert_ne!(degraded[0], 1);
        assert_eq!(degraded[2], 1);
        assert!(!placement("orders", p, &nodes, &live(&[0, 2]), 2).contains(&1));
    }
}

#[test]
fn a_new_partition_skips_stopped_nodes() {
    let pl = PartitionLeadership::new(Uuid::nil(), vec![1, 2, 0], &live(&[0, 2]));
    assert_eq!((pl.leader, pl.leader_epoch), (2, 0));
    assert_eq!(pl.isr(&live(&[0, 2])), vec![2, 0]);
}

#[test]
fn preferred_election_moves_to_the_first_replica_and_bumps_the_epoch() {
    let mut pl = three();
    assert_eq!(
        pl.elect_preferred(&live(&[0, 1, 2]), 5),
        Err(ElectionError::NotNeeded)
    );
    assert_eq!(pl.leader_epoch, 0, "no election, no bump");
    pl.reassign(vec![1, 0, 2], &[0, 1, 2], &live(&[0, 1, 2]), 5)
        .unwrap();
    assert_eq!(
        (pl.leader, pl.leader_epoch),
        (0, 0),
        "a reorder moves no leader"
    );
    pl.elect_preferred(&live(&[0, 1, 2]), 5).unwrap();
    assert_eq!((pl.leader, pl.leader_epoch), (1, 1));
    assert_eq!(epochs(&pl), vec![(0, 0), (1, 5)]);
    // Preferred replica stopped: not available.
    pl.reassign(vec![2, 0, 1], &[0, 1, 2], &live(&[0, 1]), 9)
        .unwrap();
    assert_eq!(
        pl.elect_preferred(&live(&[0, 1]), 9),
        Err(ElectionError::PreferredNotAvailable(2))
    );
    assert_eq!(
        pl.elect_unclean(&live(&[0, 1]), 9),
        Err(ElectionError::NotNeeded)
    );
}

#[test]
fn stopping_the_leader_elects_the_next_live_replica_and_starting_restores_a_leaderless_one() {
    let mut pl = three();
    assert!(
        !pl.on_node_stopped(2, &live(&[0, 1]), 3),
        "a follower stop changes nothing"
    );
    assert!(pl.on_node_stopped(0, &live(&[1]), 4));
    assert_eq!((pl.leader, pl.leader_epoch), (1, 1));
    assert!(pl.on_node_stopped(1, &live(&[]), 6));
    assert_eq!((pl.leader, pl.leader_epoch), (NO_LEADER, 2));
    assert!(pl.on_node_started(2, &live(&[2]), 6));
    assert_eq!((pl.leader, pl.leader_epoch), (2, 3));
    assert!(
        !pl.on_node_started(0, &live(&[0, 2]), 6),
        "no automatic move back"
    );
    // Epochs 2 and 3 both start at 6; only the later stays (non-monotonic entries go).
    assert_eq!(epochs(&pl), vec![(0, 0), (1, 4), (3, 6)]);
}

#[test]
fn reassignment_completes_when_added_replicas_are_live_and_bumps_on_removal() {
    let all = [0, 1, 2, 3];
    let mut pl = PartitionLeadership::new(Uuid::nil(), vec![0, 1], &live(&[0, 1, 2, 3]));
    // Moving away from the leader: new leader, epoch+1.
    pl.reassign(vec![2, 3], &all, &live(&[0, 1, 2, 3]), 10)
        .unwrap();
    assert_eq!(pl.replicas, vec![2, 3]);
    assert!(!pl.reassigning());
    assert_eq!((pl.leader, pl.leader_epoch), (2, 1));
    // Removing a follower keeps the leader but bumps the epoch.
    pl.reassign(vec![2], &all, &live(&[0, 1, 2, 3]), 12)
        .unwrap();
    assert_eq!((pl.leader, pl.leader_epoch), (2, 2));
    // Adding a stopped node waits; the leader stays.
    pl.reassign(vec![2, 1], &all, &live(&[0, 2, 3]), 12)
        .unwrap();
    assert!(pl.reassigning());
    assert_eq!((pl.adding.clone(), pl.removing.clone()), (vec![1], vec![]));
    assert_eq!((pl.leader, pl.leader_epoch), (2, 2));
    assert!(pl.on_node_started(1, &live(&[0, 1, 2, 3]), 12));
    assert!(!pl.reassigning());
    assert_eq!(pl.replicas, vec![2, 1]);
    // Cancel with nothing in progress.
    assert_eq!(
        pl.cancel_reassignment(&live(&[0, 1, 2]), 12),
        Err(ElectionError::NoReassignment)
    );
}

#[test]
fn cancelling_a_waiting_reassignment_restores_the_old_replicas() {
    let mut pl = three();
    pl.reassign(vec![0, 1, 2, 3], &[0, 1, 2, 3], &live(&[0, 1, 2]), 4)
        .unwrap();
    assert_eq!(pl.adding, vec![3]);
    pl.cancel_reassignment(&live(&[0, 1, 2]), 4).unwrap();
    assert_eq!(pl.replicas, vec![0, 1, 2]);
    assert!(!pl.reassigning());
    assert_eq!(pl.leader, 0);
}

#[test]
fn invalid_assignments_are_refused() {
    let mut pl = three();
    let nodes = [0, 1, 2];
    for target in [vec![], vec![0, 0], vec![0, 5]] {
        let r = pl.reassign(target.clone(), &nodes, &live(&nodes), 0);
        assert!(
            matches!(r, Err(ElectionError::InvalidAssignment(_))),
            "{target:?}: {r:?}"
        );
    }
    assert_eq!(pl, three(), "refused changes leave the partition alone");
}

#[test]
fn end_offset_for_follows_the_leader_epoch_file_cache() {
    let mut pl = three();
    pl.epochs = vec![
        EpochEntry {
            epoch: 1,
            start_offset: 10,
        },
        EpochEntry {
            epoch: 3,
            start_offset: 25,
        },
        EpochEntry {
            epoch: 4,
            start_offset: 40,
        },
    ];
    pl.leader_epoch = 4;
    assert_eq!(pl.end_offset_for(-1, 50, 0), (-1, -1), "undefined epoch");
    assert_eq!(
        pl.end_offset_for(4, 50, 0),
        (4, 50),
        "latest epoch: the log end"
    );
    assert_eq!(pl.end_offset_for(3, 50, 0), (3, 40));
    assert_eq!(
        pl.end_offset_for(2, 50, 0),
        (1, 25),
        "between epochs: the floor epoch"
    );
    assert_eq!(
        pl.end_offset_for(0, 50, 0),
        (0, 10),
        "below the first epoch"
    );
    assert_eq!(
        pl.end_offset_for(9, 50, 0),
        (-1, -1),
        "above the latest epoch"
    );
    assert_eq!(pl.epoch_for_offset(24), Some(1));
    assert_eq!(pl.epoch_for_offset(25), Some(3));
    assert_eq!(pl.epoch_for_offset(5), None);
}

#[test]
fn the_history_is_trimmed_from_the_log_start_as_the_leader_epoch_file_cache_is() {
    let entry = |epoch, start_offset| EpochEntry {
        epoch,
        start_offset,
    };
    let mut pl = three();
    pl.epochs = vec![entry(0, 0), entry(1, 5), entry(3, 9)];
    // Read as trimmed, without trimming: what the trimmed history answers.
    assert_eq!(pl.end_offset_for(0, 20, 7), (0, 7));
    assert_eq!(pl.end_offset_for(1, 20, 7), (1, 9));
    assert_eq!(pl.end_offset_for(1, 20, 10), (1, 10));
    assert_eq!(pl.epochs, [entry(0, 0), entry(1, 5), entry(3, 9)]);
    pl.truncate_from_start(0);
    assert_eq!(pl.epochs, [entry(0, 0), entry(1, 5), entry(3, 9)]);
    pl.truncate_from_start(3);
    assert_eq!(pl.epochs, [entry(0, 3), entry(1, 5), entry(3, 9)]);
    pl.truncate_from_start(7);
    assert_eq!(pl.epochs, [entry(1, 7), entry(3, 9)]);
    // An epoch below the first kept one now ends where the kept history starts.
    assert_eq!(pl.end_offset_for(0, 20, 7), (0, 7));
    pl.truncate_from_start(9);
    assert_eq!(pl.epochs, [entry(3, 9)]);
    pl.truncate_from_start(15);
    assert_eq!(pl.epochs, [entry(3, 15)]);
}

#[test]
fn check_orders_epoch_before_leadership_as_partition_get_local_log() {
    let mut pl = three();
    pl.on_node_stopped(0, &live(&[1, 2]), 0);
    assert_eq!((pl.leader, pl.leader_epoch), (1, 1));
    assert_eq!(check(&pl, 1, "t", 0, None, true), Ok(1));
    assert_eq!(check(&pl, 1, "t", 0, Some(1), true), Ok(1));
    let code = |r: Result<i32, LeaderError>| r.unwrap_err().code();
    use kafka_protocol::error::ResponseError as E;
    assert_eq!(
        code(check(&pl, 1, "t", 0, Some(0), true)),
        E::FencedLeaderEpoch
    );
    assert_eq!(
        code(check(&pl, 1, "t", 0, Some(2), true)),
        E::UnknownLeaderEpoch
    );
    assert_eq!(
        code(check(&pl, 2, "t", 0, None, true)),
        E::NotLeaderOrFollower
    );
    // A follower checks the epoch first, and may serve when the leader is not required.
    assert_eq!(
        code(check(&pl, 2, "t", 0, Some(0), true)),
        E::FencedLeaderEpoch
    );
    assert_eq!(check(&pl, 2, "t", 0, Some(1), false), Ok(1));
    // Not a replica at all: NOT_LEADER_OR_FOLLOWER whatever the epoch.
    pl.reassign(vec![1], &[0, 1, 2], &live(&[1, 2]), 0).unwrap();
    assert_eq!(
        code(check(&pl, 2, "t", 0, Some(0), false)),
        E::NotLeaderOrFollower
    );
}

fn registry(dir: &std::path::Path) -> crate::topics::TopicRegistry {
    let defaults = crate::BrokerConfig::default().topic_defaults();
    crate::topics::TopicRegistry::open(Some(dir.to_path_buf()), defaults).unwrap()
}

fn endpoints(n: i32) -> Vec<NodeEndpoint> {
    (0..n)
        .map(|id| NodeEndpoint {
            node_id: id,
            host: "127.0.0.1".into(),
            port: 9092 + id,
        })
        .collect()
}

#[test]
fn the_table_persists_epochs_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let topics = registry(dir.path());
    let topic = topics.create("t", 2, Default::default(), &[]).unwrap();
    let cluster = Cluster::open(endpoints(3), Some(dir.path()), 3).unwrap();
    let before = cluster.view(&topic, 0);
    cluster.set_live(before.leader, false, &topics).unwrap();
    let moved = cluster.view(&topic, 0);
    assert_ne!(moved.leader, before.leader);
    assert_eq!(moved.leader_epoch, 1);
    assert_eq!(moved.offline, vec![before.leader]);
    assert!(cluster.coordinator().node_id != before.leader);
    drop(cluster);
    let reopened = Cluster::open(endpoints(3), Some(dir.path()), 3).unwrap();
    let after = reopened.view(&topic, 0);
    assert_eq!((after.leader, after.leader_epoch), (moved.leader, 1));
    // Fewer nodes next time: replicas on missing nodes go, the epoch still grows.
    let smaller = Cluster::open(endpoints(1), Some(dir.path()), 1).unwrap();
    let v = smaller.view(&topic, 0);
    assert_eq!(v.replicas, vec![0]);
    assert_eq!(v.leader, 0);
    assert!(v.leader_epoch >= 1);
    // A recreated topic starts over at epoch 0.
    topics.delete("t").unwrap();
    let again = topics.create("t", 1, Default::default(), &[]).unwrap();
    assert_eq!(reopened.view(&again, 0).leader_epoch, 0);
}

#[test]
fn one_node_writes_no_table_and_leads_everything_at_epoch_0() {
    let dir = tempfile::tempdir().unwrap();
    let topics = registry(dir.path());
    let topic = topics.create("t", 3, Default::default(), &[]).unwrap();
    let cluster = Cluster::open(endpoints(1), Some(dir.path()), 1).unwrap();
    for p in 0..3 {
        let v = cluster.view(&topic, p);
        assert_eq!((v.leader, v.leader_epoch, v.isr), (0, 0, vec![0]));
    }
    cluster.persist().unwrap();
    assert!(!dir.path().join("leaders.json").exists());
}

#[test]
fn a_partition_placed_on_first_use_gets_as_many_replicas_as_the_topics_others() {
    let dir = tempfile::tempdir().unwrap();
    let topics = registry(dir.path());
    let topic = topics.create("t", 3, Default::default(), &[]).unwrap();
    let cluster = Cluster::open(endpoints(3), Some(dir.path()), 1).unwrap();
    cluster
        .assign(&topic, 0, vec![vec![2, 0]])
        .expect("written");
    assert_eq!(cluster.view(&topic, 0).replicas, vec![2, 0]);
    assert_eq!(cluster.replication_factor(&topic), 2);
    assert_eq!(cluster.view(&topic, 1).replicas.len(), 2);
    // A topic with no placed partition (from a table of an earlier build) gets every node,
    // as earlier builds placed it.
    let other = topics.create("u", 1, Default::default(), &[]).unwrap();
    assert_eq!(cluster.view(&other, 0).replicas.len(), 3);
    // Assigned replicas survive a restart.
    drop(cluster);
    let reopened = Cluster::open(endpoints(3), Some(dir.path()), 1).unwrap();
    assert_eq!(reopened.view(&topic, 0).replicas, vec![2, 0]);
    assert_eq!(
        reopened.place("v", 0..1, 4),
        Err(
            "Unable to replicate the partition 4 time(s): The target replication factor of 4 \
             cannot be reached because only 3 broker(s) are registered."
                .into()
        )
    );
}

#[test]
fn a_deleted_topic_leaves_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let topics = registry(dir.path());
    let topic = topics.create("gone", 2, Default::default(), &[]).unwrap();
    let cluster = Cluster::open(endpoints(3), Some(dir.path()), 1).unwrap();
    cluster.assign(&topic, 0, vec![vec![1], vec![2]]).unwrap();
    let table = || std::fs::read_to_string(dir.path().join("leaders.json")).unwrap();
    assert!(table().contains("\"gone\""), "{}", table());
    cluster.forget("gone").unwrap();
    assert!(!table().contains("\"gone\""), "{}", table());
}
