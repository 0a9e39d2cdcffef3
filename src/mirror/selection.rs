//! What a flow mirrors and what it changes on the target, decided in one place for both
//! the engine (`kmirror run`) and `kmirror plan`: the source topics a flow selects, the
//! action each needs on the target, and the topic-config changes config sync makes.
//!
//! Nothing here talks to a cluster; callers bring the metadata and configs.

use std::collections::{HashMap, HashSet};

use super::progress::PROGRESS_TOPIC;
use crate::client::{MetadataSnapshot, TopicMeta};
use crate::config::Flow;

/// The source topics `flow` mirrors, by name: those its patterns match, never a cluster's
/// internal topics and never kmirror's own progress topic. When source and target are one
/// cluster (`one_cluster`, from [`same_cluster`]), never a topic the flow writes to either:
/// its copies would be copied again, `a.orders` to `a.a.orders` and on, one topic more per
/// discovery round.
pub fn mirrored_topics<'a>(
    flow: &Flow,
    source: &'a MetadataSnapshot,
    one_cluster: bool,
) -> Vec<(&'a String, &'a TopicMeta)> {
    let mut topics: Vec<_> = source
        .topics
        .iter()
        .filter(|(name, meta)| {
            !meta.is_internal && name.as_str() != PROGRESS_TOPIC && flow.matches(name)
        })
        .collect();
    if one_cluster {
        let written: std::collections::HashSet<String> =
            topics.iter().map(|(name, _)| flow.rename(name)).collect();
        topics.retain(|(name, _)| !written.contains(name.as_str()));
    }
    topics.sort_by_key(|(name, _)| name.as_str());
    topics
}

/// Whether two clusters' metadata are of one cluster, as when a topology names one cluster
/// twice (`localhost:9092` and `127.0.0.1:9092`): the same cluster id and a broker with
/// the same id at the same advertised address. One shared broker is enough: two answers
/// of one cluster list different live brokers while it restarts them one by one. A copy
/// of another cluster's data directory has its cluster id, not its brokers' addresses.
pub fn same_cluster(a: &MetadataSnapshot, b: &MetadataSnapshot) -> bool {
    a.cluster_id.is_some()
        && a.cluster_id == b.cluster_id
        && a.brokers
            .iter()
            .any(|(id, at)| b.brokers.get(id) == Some(at))
}

/// What the target needs for a source topic with `count` partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetAction {
    Create {
        partitions: i32,
    },
    AddPartitions {
        from: i32,
        to: i32,
    },
    /// The target topic is missing and `create_topics` is off.
    Missing,
    /// The target has fewer partitions and `create_topics` is off; partitions are never
    /// remapped.
    Blocked {
        target: i32,
        source: i32,
    },
    Exists,
}

pub fn target_action(flow: &Flow, count: i32, target_count: Option<i32>) -> TargetAction {
    match target_count {
        None if flow.create_topics => TargetAction::Create { partitions: count },
        None => TargetAction::Missing,
        Some(n) if n < count && flow.create_topics => {
            TargetAction::AddPartitions { from: n, to: count }
        }
        Some(n) if n < count => TargetAction::Blocked {
            target: n,
            source: count,
        },
        Some(_) => TargetAction::Exists,
    }
}

/// Config sync: the synced source configs that differ on the target (to set), and the
/// synced configs the target has but the source no longer sets (to remove, back to the
/// target's default, as MirrorMaker 2 does). Excluded configs are the target's business,
/// and so are keys not in `source_known` (every key the source's DescribeConfigs lists,
/// but those whose value comes from its brokers' static files, which MirrorMaker 2 leaves
/// alone): a 2.8 source has no `message.timestamp.after.max.ms`, which an operator may
/// have to set on a 4.x target.
pub fn config_changes(
    flow: &Flow,
    source: &[(String, String)],
    target: &[(String, String)],
    source_known: &HashSet<String>,
) -> (Vec<(String, String)>, Vec<String>) {
    let current: HashMap<&str, &str> = target
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let changed = source
        .iter()
        .filter(|(k, v)| flow.sync_configs.syncs(k) && current.get(k.as_str()) != Some(&v.as_str()))
        .cloned()
        .collect();
    let removed = target
        .iter()
        .filter(|(k, _)| {
            flow.sync_configs.syncs(k)
                && source_known.contains(k)
                && !source.iter().any(|(s, _)| s == k)
        })
        .map(|(k, _)| k.clone())
        .collect();
    (changed, removed)
}

/// Of the synced `configs`, those whose keys the target knows (`known`: every key its
/// DescribeConfigs lists), and the names of the others: an older Kafka's (2.8 has no
/// compression levels), or another vendor's (a Confluent Server's `confluent.*`), which the
/// target would refuse, and with them the topic's whole creation or config sync. An empty
/// `known` (not learnt) keeps every config: the target then decides.
pub fn known_to_target(
    configs: Vec<(String, String)>,
    known: &HashSet<String>,
) -> (Vec<(String, String)>, Vec<String>) {
    if known.is_empty() {
        return (configs, Vec::new());
    }
    let (kept, unknown): (Vec<_>, Vec<_>) =
        configs.into_iter().partition(|(k, _)| known.contains(k));
    (kept, unknown.into_iter().map(|(k, _)| k).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(include: &str) -> Flow {
        let text = format!(
            "clusters:\n  a: {{ bootstrap: [\"a:9092\"] }}\n  b: {{ bootstrap: [\"b:9092\"] }}\nflows:\n  - name: f\n    source: a\n    target: b\n    topics: {{ include: [\"{include}\"] }}\n"
        );
        let topology = crate::config::parse(&text, "t.yaml", &|_| None).expect("valid topology");
        topology.flows[0].clone()
    }

    fn topic(internal: bool) -> TopicMeta {
        TopicMeta {
            topic_id: uuid::Uuid::nil(),
            partitions: Vec::new(),
            is_internal: internal,
        }
    }

    #[test]
    fn never_selects_internal_topics_or_the_progress_topic() {
        let mut md = MetadataSnapshot::default();
        for (name, internal) in [
            ("orders", false),
            ("__consumer_offsets", true),
            (PROGRESS_TOPIC, false),
            ("audit", false),
        ] {
            md.topics.insert(name.to_string(), topic(internal));
        }
        let names: Vec<&str> = mirrored_topics(&flow(".*"), &md, false)
            .into_iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, vec!["audit", "orders"]);
    }

    #[test]
    fn on_one_cluster_named_twice_the_flows_own_copies_are_not_selected() {
        let cluster = |port: u16| {
            let mut md = MetadataSnapshot {
                cluster_id: Some("c1".into()),
                ..MetadataSnapshot::default()
            };
            md.brokers.insert(0, format!("h:{port}"));
            for name in ["loop", "a.loop", "a.a.loop"] {
                md.topics.insert(name.to_string(), topic(false));
            }
            md
        };
        let names = |source: &MetadataSnapshot, target: &MetadataSnapshot| -> Vec<String> {
            mirrored_topics(&flow(".*"), source, same_cluster(source, target))
                .into_iter()
                .map(|(n, _)| n.clone())
                .collect()
        };
        let (source, same, other) = (cluster(1), cluster(1), cluster(2));
        assert!(same_cluster(&source, &same));
        assert_eq!(names(&source, &same), ["loop"]);
        // One cluster restarting its brokers one by one: the answers list other live ones.
        let mut restarting = cluster(1);
        restarting.brokers.insert(1, "h:7".into());
        assert!(same_cluster(&source, &restarting));
        // Another cluster (other brokers): every match is mirrored.
        assert!(!same_cluster(&source, &other));
        assert_eq!(names(&source, &other), ["a.a.loop", "a.loop", "loop"]);
    }

    #[test]
    fn configs_the_target_does_not_know_are_not_synced() {
        let configs = vec![
            ("compression.zstd.level".to_string(), "5".to_string()),
            ("retention.ms".to_string(), "1000".to_string()),
        ];
        let known: HashSet<String> = ["retention.ms", "cleanup.policy"]
            .into_iter()
            .map(String::from)
            .collect();
        let (kept, unknown) = known_to_target(configs.clone(), &known);
        assert_eq!(kept, vec![("retention.ms".to_string(), "1000".to_string())]);
        assert_eq!(unknown, vec!["compression.zstd.level".to_string()]);
        // Keys not learnt: the target decides.
        assert_eq!(known_to_target(configs.clone(), &HashSet::new()).0, configs);
    }

    #[test]
    fn target_actions_follow_create_topics() {
        let f = flow(".*");
        assert_eq!(
            target_action(&f, 3, None),
            TargetAction::Create { partitions: 3 }
        );
        assert_eq!(
            target_action(&f, 3, Some(2)),
            TargetAction::AddPartitions { from: 2, to: 3 }
        );
        assert_eq!(target_action(&f, 3, Some(4)), TargetAction::Exists);
    }
}
