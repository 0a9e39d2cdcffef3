//! Discovery: the source topics a flow mirrors, their target topics (created, grown and
//! config-synced), and source topics deleted and re-created (stopped, never re-mirrored
//! silently).

use std::sync::Arc;

use uuid::Uuid;

use super::FlowRunner;
use crate::client::produce::ProducerSession;
use crate::client::ClientError;
use crate::mirror::progress::{Progress, SourcePartition};
use crate::mirror::selection::{config_changes, mirrored_topics, target_action, TargetAction};

impl FlowRunner {
    /// Finds matching topics and starts their partitions; an error here (storing the
    /// first positions failed for good) stops the flow.
    pub(super) async fn discover(
        &mut self,
        progress: &Arc<Progress>,
        session: ProducerSession,
    ) -> Result<(), ClientError> {
        let (source_md, target_md) = match (
            self.source.refresh_metadata().await,
            self.target.refresh_metadata().await,
        ) {
            (Ok(s), Ok(t)) => (s, t),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(flow = %self.flow.name, error = %e, "Discovery failed; retrying at the next interval.");
                return Ok(());
            }
        };
        let topics: Vec<(&String, i32, Uuid)> = mirrored_topics(&self.flow, &source_md)
            .into_iter()
            .map(|(name, meta)| (name, meta.partitions.len() as i32, meta.topic_id))
            .collect();
        for (topic, count, topic_id) in topics {
            if self.recreated.contains(topic) {
                continue;
            }
            match self.topic_ids.get(topic) {
                Some(known) if !known.is_nil() && !topic_id.is_nil() && *known != topic_id => {
                    self.stop_recreated(topic, *known, topic_id);
                    continue;
                }
                Some(_) => {}
                None => {
                    self.topic_ids.insert(topic.clone(), topic_id);
                }
            }
            let target_topic = self.flow.rename(topic);
            match self
                .ensure_target(
                    topic,
                    &target_topic,
                    count,
                    target_md.partition_count(&target_topic),
                )
                .await
            {
                Ok(()) => {
                    self.blocked.remove(topic);
                }
                Err(e) => {
                    if self.blocked.insert(topic.clone()) {
                        tracing::error!(flow = %self.flow.name, topic = %topic, target_topic = %target_topic, error = %e, "Topic not mirrored.");
                    }
                    continue;
                }
            }
            for partition in 0..count {
                let sp = SourcePartition {
                    topic: topic.clone(),
                    partition,
                };
                if !self.partitions.contains_key(&sp) {
                    self.start_partition(sp, &target_topic, progress, session)
                        .await;
                }
            }
        }
        if !progress.is_initialised() {
            // The flow's first start: the positions `start_from` chose and the marker that
            // ends it are stored before anything is mirrored (the first Fetch comes after
            // this returns), so a restart never applies `start_from` again.
            progress.mark_initialised();
            let stored = self
                .target
                .retry("writing the first positions", None, || {
                    progress.write(&self.target)
                })
                .await;
            return stored.map(|_| ());
        }
        // Start positions chosen just now are written at once, so a crash right after
        // discovery restarts new partitions from the same place.
        if let Err(e) = progress.write(&self.target).await {
            tracing::warn!(flow = %self.flow.name, error = %e, "Cannot write start positions yet; the progress writer retries.");
        }
        Ok(())
    }

    /// Stops every partition of a source topic whose id changed: it was deleted and
    /// re-created, so its offsets start again and the progress kept for the old topic
    /// means nothing for the new one. Mirroring it again is an operator's decision.
    fn stop_recreated(&mut self, topic: &str, old_id: Uuid, new_id: Uuid) {
        self.recreated.insert(topic.to_string());
        let mut stopped = 0;
        for (sp, r) in self.partitions.iter_mut() {
            if sp.topic == topic {
                r.stop();
                stopped += 1;
            }
        }
        tracing::error!(flow = %self.flow.name, topic, %old_id, %new_id, partitions = stopped, "Source topic was deleted and re-created (its topic id changed); its mirroring is stopped. Other topics keep flowing. To mirror the new topic, remove its progress entries or rename it, then restart.");
    }

    /// Makes sure the target topic exists with at least `count` partitions and the
    /// source's synced configs.
    async fn ensure_target(
        &self,
        topic: &str,
        target_topic: &str,
        count: i32,
        target_count: Option<i32>,
    ) -> Result<(), ClientError> {
        let configs = if self.flow.sync_configs.enabled {
            let mut c = self.source.topic_configs(topic).await?;
            c.retain(|(k, _)| self.flow.sync_configs.syncs(k));
            c
        } else {
            Vec::new()
        };
        let refuse = |reason: String| ClientError::Refused {
            cluster: self.target.name().to_string(),
            what: reason,
        };
        match target_action(&self.flow, count, target_count) {
            TargetAction::Create { partitions } => {
                self.target
                    .create_topic(target_topic, partitions, &configs)
                    .await?;
                tracing::info!(flow = %self.flow.name, topic = %target_topic, partitions, configs = configs.len(), "Created target topic.");
                return Ok(());
            }
            TargetAction::Missing => {
                return Err(refuse(format!(
                    "target topic {target_topic} does not exist and create_topics is off"
                )))
            }
            TargetAction::AddPartitions { from, to } => {
                self.target.create_partitions(target_topic, to).await?;
                tracing::info!(flow = %self.flow.name, topic = %target_topic, from, to, "Added partitions to target topic.");
            }
            TargetAction::Blocked { target, source } => {
                return Err(refuse(format!("target topic {target_topic} has {target} partitions, fewer than the source's {source}; partitions are kept, not remapped")));
            }
            TargetAction::Exists => {}
        }
        if self.flow.sync_configs.enabled {
            let current = self.target.topic_configs(target_topic).await?;
            let (changed, removed) = config_changes(&self.flow, &configs, &current);
            if !changed.is_empty() || !removed.is_empty() {
                self.target
                    .alter_topic_configs(target_topic, &changed, &removed)
                    .await?;
                tracing::info!(flow = %self.flow.name, topic = %target_topic, changed = changed.len(), removed = removed.len(), "Synced topic configs.");
            }
        }
        Ok(())
    }
}
