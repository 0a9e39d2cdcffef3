//! Topic config sync for discovery: the source topic's synced configs go with a target
//! topic's creation and are kept in step on every round after.
//!
//! A config the target refuses (a 3.x `segment.bytes` below 4.x's 1 MiB floor, a value a
//! create or alter policy rejects) is the one config not synced: Kafka refuses an alter or
//! a creation as a whole, so after a refusal each key is sent on its own, the refused ones
//! are reported (WARN once per reason, and the flow's `config_sync` errors), and the rest
//! are synced. Config sync never keeps a topic's partitions from being mirrored: only a
//! target topic that cannot be created or grown does.

use std::collections::HashMap;

use kmirror_wire::errors::ResponseError;

use super::Discovery;
use crate::client::ClientError;
use crate::mirror::selection::config_changes;

/// Whether the target refused configs, not the topic or the request: the refusal that
/// sending each key on its own gets past.
fn refused_configs(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Broker {
            error: ResponseError::InvalidConfig | ResponseError::PolicyViolation,
            ..
        }
    )
}

/// What one round's sync of a target topic's configs came to, per refused key.
pub(super) type Refused = Vec<(String, ClientError)>;

impl Discovery {
    /// The source topic's configs that the flow syncs (none with `sync_configs` off).
    pub(super) async fn synced_source_configs(
        &self,
        topic: &str,
    ) -> Result<Vec<(String, String)>, ClientError> {
        if !self.flow.sync_configs.enabled {
            return Ok(Vec::new());
        }
        let mut c = self.source.topic_configs(topic).await?;
        c.retain(|(k, _)| self.flow.sync_configs.syncs(k));
        Ok(c)
    }

    /// Creates `target_topic` with `configs`; if the target refuses the configs, creates
    /// it without them and then syncs each on its own (the refused ones reported). Whether
    /// this call created it.
    pub(super) async fn create_with_configs(
        &self,
        target_topic: &str,
        partitions: i32,
        configs: &[(String, String)],
    ) -> Result<bool, ClientError> {
        match self
            .target
            .create_topic(target_topic, partitions, configs)
            .await
        {
            Err(e) if !configs.is_empty() && refused_configs(&e) => {
                tracing::warn!(flow = %self.flow.name, topic = %target_topic, error = %e, "The target refused the topic with the source's configs; creating it without them, then syncing each config on its own.");
                let created = self
                    .target
                    .create_topic(target_topic, partitions, &[])
                    .await?;
                let refused = self.alter_each(target_topic, configs, &[]).await;
                self.report_config_sync(target_topic, Ok(refused));
                Ok(created)
            }
            other => other,
        }
    }

    /// Brings an existing target topic's configs in step with the source topic's, and
    /// reports how that went. Never an error for the caller: partitions are mirrored
    /// whatever became of their topic's configs.
    pub(super) async fn sync_configs(&self, topic: &str, target_topic: &str) {
        if !self.flow.sync_configs.enabled {
            return;
        }
        let synced = async {
            let configs = self.synced_source_configs(topic).await?;
            let (current, known) = self.target.topic_configs_and_keys(target_topic).await?;
            let configs = self.known_to_target(configs, &known, target_topic);
            let (changed, removed) = config_changes(&self.flow, &configs, &current);
            if changed.is_empty() && removed.is_empty() {
                return Ok(Vec::new());
            }
            match self
                .target
                .alter_topic_configs(target_topic, &changed, &removed)
                .await
            {
                Ok(()) => {
                    tracing::info!(flow = %self.flow.name, topic = %target_topic, changed = changed.len(), removed = removed.len(), "Synced topic configs.");
                    Ok(Vec::new())
                }
                Err(e) if refused_configs(&e) => {
                    Ok(self.alter_each(target_topic, &changed, &removed).await)
                }
                Err(e) => Err(e),
            }
        };
        let result = synced.await;
        self.report_config_sync(target_topic, result);
    }

    /// Sets each of `set` and deletes each of `delete` in a request of its own; the keys
    /// the target refused, with its answer. (A failure that is not a refusal, the target
    /// gone for a moment, is returned for its key too: the next round tries again.)
    async fn alter_each(
        &self,
        target_topic: &str,
        set: &[(String, String)],
        delete: &[String],
    ) -> Refused {
        let mut refused = Vec::new();
        let mut synced = 0usize;
        for (key, value) in set {
            let one = [(key.clone(), value.clone())];
            match self
                .target
                .alter_topic_configs(target_topic, &one, &[])
                .await
            {
                Ok(()) => synced += 1,
                Err(e) => refused.push((key.clone(), e)),
            }
        }
        for key in delete {
            let one = [key.clone()];
            match self
                .target
                .alter_topic_configs(target_topic, &[], &one)
                .await
            {
                Ok(()) => synced += 1,
                Err(e) => refused.push((key.clone(), e)),
            }
        }
        if synced > 0 {
            tracing::info!(flow = %self.flow.name, topic = %target_topic, synced, refused = refused.len(), "Synced topic configs one by one.");
        }
        refused
    }

    /// Says what became of a target topic's config sync: each refused key at WARN once
    /// per reason (and counted as a `config_sync` error), a sync that could not be tried
    /// at WARN once per reason, and an INFO once it all syncs again.
    pub(super) fn report_config_sync(
        &self,
        target_topic: &str,
        result: Result<Refused, ClientError>,
    ) {
        let mut reported = self.config_sync_reported.lock().expect("config sync lock");
        let now: HashMap<String, String> = match &result {
            Ok(refused) => refused
                .iter()
                .map(|(key, e)| (key.clone(), e.to_string()))
                .collect(),
            Err(e) => HashMap::from([(String::new(), e.to_string())]),
        };
        let before = reported.remove(target_topic).unwrap_or_default();
        if now.is_empty() {
            if !before.is_empty() {
                tracing::info!(flow = %self.flow.name, topic = %target_topic, "Topic configs are in sync again.");
            }
            return;
        }
        for (key, reason) in &now {
            if before.get(key) == Some(reason) {
                continue;
            }
            let e: &dyn std::fmt::Display = reason;
            self.stats.failed("config_sync", e);
            if key.is_empty() {
                tracing::warn!(flow = %self.flow.name, topic = %target_topic, error = %reason, "Cannot sync the topic's configs this round; its partitions are mirrored meanwhile, and the sync is tried again every discovery round.");
            } else {
                tracing::warn!(flow = %self.flow.name, topic = %target_topic, config = %key, error = %reason, "The target refuses this topic config: it is not synced (the topic's other configs are, and its partitions are mirrored). Fix it on the source or the target, or add it to sync_configs.exclude.");
            }
        }
        reported.insert(target_topic.to_string(), now);
    }
}
