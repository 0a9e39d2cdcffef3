//! Translation reports, shared by `kmirror offsets`, `kmirror failover` and `GET /offsets`:
//! a group's committed source offsets, or one offset, with their target offsets and states.
//! For failback, a source topic that is the copy of a flow the other way translates back
//! through that flow's map to its original topic.

use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

use crate::client::{ClientError, ClusterClient};
use crate::config::Flow;
use crate::mirror::progress::{Progress, SourcePartition};
use crate::offsets::Translation;

/// What a flow needs to translate: its settings, its progress and offset maps, its source
/// cluster (for committed offsets and log start offsets) and its target cluster.
pub struct FlowOffsets {
    pub flow: Flow,
    pub progress: Arc<Progress>,
    pub source: Arc<ClusterClient>,
    pub target: Arc<ClusterClient>,
    /// Flows the other way (from this flow's target to its source), for failback: a topic
    /// on this flow's source that is another flow's mirrored copy translates back through
    /// that flow's map to its original topic on this flow's target.
    pub reverse: Vec<Reverse>,
}

/// A flow in the opposite direction and its progress.
pub struct Reverse {
    pub flow: Flow,
    pub progress: Arc<Progress>,
}

impl std::fmt::Debug for FlowOffsets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowOffsets")
            .field("flow", &self.flow.name)
            .finish_non_exhaustive()
    }
}

/// One source partition's offset and what it translates to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionOffsets {
    pub topic: String,
    pub partition: i32,
    pub target_topic: String,
    pub source_offset: i64,
    #[serde(flatten)]
    pub translation: Translation,
}

impl FlowOffsets {
    /// The source log start offset of `topic`/`partition`, if the source answers.
    async fn log_start(&self, topic: &str, partition: i32) -> Option<i64> {
        self.source.log_start(topic, partition).await
    }

    /// `translation`, unless its target offset lies below the log start of the target
    /// partition (`topic`/`partition` on the target): then the target's log start
    /// ([`Translation::BelowTargetLogStart`]). A target that does not answer leaves it as
    /// it is.
    async fn within_target_log(
        &self,
        topic: &str,
        partition: i32,
        translation: Translation,
    ) -> Translation {
        let Some(translated) = translation.target_offset() else {
            return translation;
        };
        match self.target.log_start(topic, partition).await {
            Some(target_log_start) if target_log_start > translated => {
                Translation::BelowTargetLogStart {
                    target_offset: target_log_start,
                    translated,
                }
            }
            _ => translation,
        }
    }

    /// Whether `topic`/`partition` translates: the flow mirrors it, or it is a flow's copy
    /// the other way.
    pub fn mirrors(&self, topic: &str, partition: i32) -> bool {
        self.forward(topic, partition).is_some() || self.reverse_of(topic, partition).is_some()
    }

    /// `topic`/`partition` as this flow's source partition, when the flow mirrors it: it has
    /// progress and the flow's topic patterns still select it (a topic dropped from them
    /// keeps its stored progress, but is no longer mirrored: a failover must not wait for it).
    fn forward(&self, topic: &str, partition: i32) -> Option<SourcePartition> {
        let sp = SourcePartition {
            topic: topic.to_string(),
            partition,
        };
        (self.flow.matches(topic) && self.progress.get(&sp).is_some()).then_some(sp)
    }

    /// The opposite flow whose copy `topic` is, and its source partition.
    fn reverse_of(&self, topic: &str, partition: i32) -> Option<(&Reverse, SourcePartition)> {
        self.reverse.iter().find_map(|r| {
            let original = r
                .progress
                .topics()
                .into_iter()
                .find(|t| r.flow.rename(t) == topic && r.flow.matches(t))?;
            let sp = SourcePartition {
                topic: original,
                partition,
            };
            r.progress.get(&sp).map(|_| (r, sp))
        })
    }

    /// `offset` of `topic`/`partition` translated; `None` if the flow does not mirror
    /// that partition. `with_log_start`: ask the source for its log start (to report
    /// offsets below it); off when the source is known to be down.
    pub async fn one(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        with_log_start: bool,
    ) -> Option<PartitionOffsets> {
        let Some(sp) = self.forward(topic, partition) else {
            let (reverse, original) = self.reverse_of(topic, partition)?;
            let translation = reverse.progress.translate_back(&original, offset)?;
            // The original topic is on this flow's target: it may have deleted there too.
            let translation = self
                .within_target_log(&original.topic, partition, translation)
                .await;
            return Some(PartitionOffsets {
                topic: topic.to_string(),
                partition,
                target_topic: original.topic.clone(),
                source_offset: offset,
                translation,
            });
        };
        let log_start = if with_log_start {
            self.log_start(topic, partition).await
        } else {
            None
        };
        if let Some(log_start) = log_start {
            self.progress.source_log_start(&sp, log_start);
        }
        let translation = self.progress.translate(&sp, offset, log_start)?;
        // The map's own topic: after the flow's rename changed, its records are still where
        // it was written, until the daemon next runs and starts a map for the new name.
        let renamed = self.flow.rename(topic);
        let target_topic = match self.progress.map_target(&sp) {
            Some(stored) if stored.name != renamed => {
                tracing::info!(flow = %self.flow.name, topic, partition, target_topic = %stored.name, rename = %renamed, "The offset map of this partition is for the target topic the flow mirrored it to, not the one its rename names now: translated into that topic.");
                stored.name
            }
            _ => renamed,
        };
        let translation = self
            .within_target_log(&target_topic, partition, translation)
            .await;
        Some(PartitionOffsets {
            topic: topic.to_string(),
            partition,
            target_topic,
            source_offset: offset,
            translation,
        })
    }

    /// The committed source offsets of `group` on the flow's partitions, translated.
    pub async fn group(&self, group: &str) -> Result<Vec<PartitionOffsets>, ClientError> {
        let mut out = Vec::new();
        for c in self.source.committed_offsets(group).await? {
            if let Some(row) = self.one(&c.topic, c.partition, c.offset, true).await {
                out.push(row);
            }
        }
        Ok(out)
    }
}

/// The name of a translation's state, as `--json` and `/offsets` spell it.
pub fn state_name(translation: &Translation) -> &'static str {
    match translation {
        Translation::Exact { .. } => "exact",
        Translation::Gap { .. } => "gap",
        Translation::Approximate { .. } => "approximate",
        Translation::NotYet { .. } => "not_yet",
        Translation::BelowLogStart { .. } => "below_log_start",
        Translation::BeforeMap { .. } => "before_map",
        Translation::BelowTargetLogStart { .. } => "below_target_log_start",
    }
}

/// Rows as a table for people.
pub fn render(rows: &[PartitionOffsets]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<32} {:>9} {:>14} {:>14}  STATE",
        "TOPIC", "PARTITION", "SOURCE", "TARGET"
    );
    for r in rows {
        let target = r
            .translation
            .target_offset()
            .map_or_else(|| "-".to_string(), |o| o.to_string());
        let state = match r.translation {
            Translation::NotYet { mirrored_through } => {
                format!("not yet mirrored (mirrored below {mirrored_through})")
            }
            Translation::BelowLogStart { log_start, .. } => {
                format!("below the source log start {log_start}: goes on from there")
            }
            Translation::Approximate { .. } => {
                "approximate: where the map was thinned, at or before the exact offset".to_string()
            }
            Translation::BelowTargetLogStart { translated, .. } => format!(
                "mirrored to {translated}, below the target's log start (the target deleted it): goes on from there"
            ),
            Translation::BeforeMap { map_start } => {
                // Not mirrored (start_from: latest) or mirrored before the map restarted.
                format!("before the offset map, which begins at {map_start}")
            }
            other => state_name(&other).to_string(),
        };
        let topic = if r.topic == r.target_topic {
            r.topic.clone()
        } else {
            format!("{} -> {}", r.topic, r.target_topic)
        };
        let _ = writeln!(
            out,
            "{topic:<32} {:>9} {:>14} {target:>14}  {state}",
            r.partition, r.source_offset
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientConfig;
    use crate::mirror::progress::Position;

    fn flow(include: &str) -> Flow {
        let text = format!(
            "clusters:\n  a: {{ bootstrap: [\"a:9092\"] }}\n  b: {{ bootstrap: [\"b:9092\"] }}\nflows:\n  - name: f\n    source: a\n    target: b\n    rename: \"{{topic}}\"\n    topics: {{ include: [\"{include}\"] }}\n"
        );
        let topology = crate::config::parse(&text, "t.yaml", &|_| None).expect("valid topology");
        topology.flows[0].clone()
    }

    fn client() -> Arc<ClusterClient> {
        Arc::new(ClusterClient::new(ClientConfig {
            cluster: "test".into(),
            bootstrap: Vec::new(),
            messenger: Default::default(),
            backoff: Default::default(),
            replication_factor: None,
        }))
    }

    /// A topic the flow mirrored (it has progress) but whose patterns no longer select it
    /// does not translate: `kmirror failover` would otherwise wait for it for ever.
    #[tokio::test]
    async fn a_topic_dropped_from_the_flow_does_not_translate() {
        let progress = Arc::new(Progress::fresh("f"));
        for topic in ["keep", "dropped"] {
            let sp = SourcePartition {
                topic: topic.into(),
                partition: 0,
            };
            let position = |next_source_offset, next_target_offset| Position {
                next_source_offset,
                next_target_offset,
                leader_epoch: None,
            };
            progress.advance(&sp, position(0, -1));
            progress.acknowledged(&sp, position(10, 10), Some((0, &[(0, 10)])));
        }
        let offsets = FlowOffsets {
            flow: flow("keep"),
            progress,
            source: client(),
            target: client(),
            reverse: Vec::new(),
        };
        assert!(offsets.mirrors("keep", 0));
        assert!(!offsets.mirrors("dropped", 0));
        let kept = offsets
            .one("keep", 0, 5, false)
            .await
            .expect("keep translates");
        assert_eq!(kept.translation, Translation::Exact { target_offset: 5 });
        assert_eq!(offsets.one("dropped", 0, 5, false).await, None);
    }
}
