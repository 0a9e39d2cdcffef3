//! What discovery says of the topics it cannot mirror as they are: a source topic gone
//! from the source cluster, and a target topic that cannot be made ready (listed as not
//! mirrored; partitions of a mirrored topic it cannot take listed as not started).

use super::*;

impl Discovery {
    /// Says once when a topic whose partitions the flow mirrors is gone from the source
    /// (deleted): its partitions wait for it, and their fetches fail with
    /// UNKNOWN_TOPIC_ID or UNKNOWN_TOPIC_OR_PARTITION meanwhile; and when it is back.
    pub(super) fn report_missing(&mut self, source_md: &MetadataSnapshot) {
        let started: BTreeSet<&str> = self.started.iter().map(|sp| sp.topic.as_str()).collect();
        for topic in started {
            let gone = source_md.partition_count(topic).is_none();
            if gone && !self.recreated.contains(topic) && self.missing.insert(topic.to_string()) {
                self.stats.source_topic_deleted(topic, true);
                tracing::warn!(flow = %self.flow.name, topic = %topic, "The source topic is gone from the source cluster (deleted?): its partitions wait for it. Created again, it is another topic, which the flow stops with an ERROR instead of mirroring it on from the old offsets (`kmirror forget` then lets it be mirrored as new).");
            } else if !gone && self.missing.remove(topic) {
                self.stats.source_topic_deleted(topic, false);
                tracing::info!(flow = %self.flow.name, topic = %topic, "The source topic is in the source cluster's metadata again.");
            }
        }
    }

    /// The target topic of `topic` could not be made ready this round. Refused (it would
    /// take an operator): listed as not mirrored, at ERROR. A transient failure (a broken
    /// connection, a leader moving) is tried again next round: a topic already mirroring
    /// keeps mirroring, said at DEBUG; one not started yet is listed with the reason, at
    /// WARN.
    ///
    /// Returns the partitions of a topic refused so whose other partitions are mirroring
    /// (it grew past its target topic, which cannot grow): they are listed as not started,
    /// with the reason, so that they count against readiness instead of in no lag. `None`
    /// after a transient failure: what is listed of the topic stays as it is.
    pub(super) fn target_not_ready(
        &self,
        topic: &str,
        target_topic: &str,
        count: i32,
        e: &ClientError,
    ) -> Option<Vec<(SourcePartition, String)>> {
        let flow = &self.flow.name;
        let partitions = (0..count).map(|partition| SourcePartition {
            topic: topic.to_string(),
            partition,
        });
        let mirroring = partitions.clone().any(|sp| self.started.contains(&sp));
        if e.class() == ErrorClass::Fatal {
            if self.stats.topic_not_mirrored(topic, target_topic, e) {
                tracing::error!(%flow, topic = %topic, target_topic = %target_topic, error = %e, "Topic not mirrored.");
            }
            if !mirroring {
                return Some(Vec::new());
            }
            return Some(
                partitions
                    .filter(|sp| !self.started.contains(sp))
                    .map(|sp| (sp, format!("not mirrored: {e}")))
                    .collect(),
            );
        }
        if mirroring {
            tracing::debug!(%flow, topic = %topic, target_topic = %target_topic, error = %e, "Cannot check the target topic this round; its partitions keep mirroring, and it is checked again next round.");
        } else if self.stats.topic_not_mirrored(topic, target_topic, e) {
            tracing::warn!(%flow, topic = %topic, target_topic = %target_topic, error = %e, "Topic not mirrored yet: its target topic cannot be made ready now; tried again every discovery round.");
        }
        None
    }
}
