//! What a flow mirrors and what it changes on the target, decided in one place for both
//! the engine (`kmirror run`) and `kmirror plan`: the source topics a flow selects, the
//! action each needs on the target, and the topic-config changes config sync makes.
//!
//! Nothing here talks to a cluster; callers bring the metadata and configs.

use std::collections::HashMap;

use super::progress::PROGRESS_TOPIC;
use crate::client::{MetadataSnapshot, TopicMeta};
use crate::config::Flow;

/// The source topics `flow` mirrors, by name: those its patterns match, never a cluster's
/// internal topics and never kmirror's own progress topic.
pub fn mirrored_topics<'a>(
    flow: &Flow,
    source: &'a MetadataSnapshot,
) -> Vec<(&'a String, &'a TopicMeta)> {
    let mut topics: Vec<_> = source
        .topics
        .iter()
        .filter(|(name, meta)| {
            !meta.is_internal && name.as_str() != PROGRESS_TOPIC && flow.matches(name)
        })
        .collect();
    topics.sort_by_key(|(name, _)| name.as_str());
    topics
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
/// target's default, as MirrorMaker 2 does). Excluded configs are the target's business.
pub fn config_changes(
    flow: &Flow,
    source: &[(String, String)],
    target: &[(String, String)],
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
        .filter(|(k, _)| flow.sync_configs.syncs(k) && !source.iter().any(|(s, _)| s == k))
        .map(|(k, _)| k.clone())
        .collect();
    (changed, removed)
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
        let names: Vec<&str> = mirrored_topics(&flow(".*"), &md)
            .into_iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, vec!["audit", "orders"]);
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
