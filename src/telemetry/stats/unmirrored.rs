//! The topics a flow matches and does not mirror (its target topic is missing with
//! `create_topics: false`, has fewer partitions than the source, or the target refused to
//! create it), each with its reason: listed on `/status` and counted once per topic as an
//! error of class `topic_not_mirrored`. Discovery keeps the list; this module does not
//! decide what is mirrored.

use std::collections::BTreeSet;

use super::{now_ms, FlowStats};

/// The error class a topic not mirrored is counted under.
const CLASS: &str = "topic_not_mirrored";

/// A topic the flow matches and does not mirror.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnmirroredTopic {
    pub topic: String,
    pub target_topic: String,
    pub reason: String,
    /// Since when it is not mirrored (ms since the epoch).
    pub since_unix_ms: i64,
}

impl FlowStats {
    /// `topic` (to `target_topic`) is not mirrored for `error`: listed (its reason
    /// updated), and when it was not listed yet, counted with `error` as the flow's last
    /// error. Whether it was not listed yet.
    pub fn topic_not_mirrored(
        &self,
        topic: &str,
        target_topic: &str,
        error: &dyn std::fmt::Display,
    ) -> bool {
        let reason = error.to_string();
        let mut listed = self.unmirrored.lock().expect("unmirrored lock");
        if let Some(known) = listed.get_mut(topic) {
            known.reason = reason;
            return false;
        }
        let now = now_ms();
        listed.insert(
            topic.to_string(),
            UnmirroredTopic {
                topic: topic.to_string(),
                target_topic: target_topic.to_string(),
                reason: reason.clone(),
                since_unix_ms: now,
            },
        );
        drop(listed);
        self.count_error(CLASS);
        *self.last_error.lock().expect("error lock") =
            Some((now, format!("topic {topic} not mirrored: {reason}")));
        true
    }

    /// `topic` is mirrored (again); whether it was listed.
    pub fn topic_mirrored(&self, topic: &str) -> bool {
        self.unmirrored
            .lock()
            .expect("unmirrored lock")
            .remove(topic)
            .is_some()
    }

    /// Keeps only the listed topics of `matched`: those the flow matches now, or none when
    /// it starts again (a flow restarted by a reload keeps its stats).
    pub fn retain_unmirrored(&self, matched: &BTreeSet<&str>) {
        self.unmirrored
            .lock()
            .expect("unmirrored lock")
            .retain(|topic, _| matched.contains(topic.as_str()));
    }

    /// The topics not mirrored, by name.
    pub fn unmirrored_topics(&self) -> Vec<UnmirroredTopic> {
        self.unmirrored
            .lock()
            .expect("unmirrored lock")
            .values()
            .cloned()
            .collect()
    }

    /// How many topics are not mirrored.
    pub fn unmirrored_count(&self) -> u64 {
        self.unmirrored.lock().expect("unmirrored lock").len() as u64
    }
}
