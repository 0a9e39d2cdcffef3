//! Topic config sync for discovery: the source topic's synced configs go with a target
//! topic's creation and are kept in step on every round after.
//!
//! A config the target refuses (a 3.x `segment.bytes` below 4.x's 1 MiB floor, a value a
//! create or alter policy rejects) is the one config not synced: Kafka refuses an alter or
//! a creation as a whole, so after a refusal each key is sent on its own, the refused ones
//! are reported (WARN once per reason, and the flow's `config_sync` errors), and the rest
//! are synced. Config sync never keeps a topic's partitions from being mirrored: only a
//! target topic that cannot be created or grown does.

use std::collections::{HashMap, HashSet};

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

/// Configs that decide which records the target keeps: a topic is never created without
/// them (with the target's defaults it could delete mirrored records the source keeps).
const KEEPS_RECORDS: [&str; 8] = [
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "delete.retention.ms",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
    "local.retention.ms",
    "local.retention.bytes",
];

/// What one round's sync of a target topic's configs came to, per refused key.
pub(super) type Refused = Vec<(String, ClientError)>;

impl Discovery {
    /// The source topic's configs that the flow syncs (none with `sync_configs` off), and
    /// every topic config key the source knows.
    pub(super) async fn synced_source_configs(
        &self,
        topic: &str,
    ) -> Result<(Vec<(String, String)>, HashSet<String>), ClientError> {
        if !self.flow.sync_configs.enabled {
            return Ok(Default::default());
        }
        let (mut c, known) = self.source.synced_configs_and_keys(topic).await?;
        c.retain(|(k, _)| self.flow.sync_configs.syncs(k));
        Ok((c, known))
    }

    /// Creates `target_topic` with `configs`; if the target refuses the configs, creates
    /// it with only those that decide which records it keeps ([`KEEPS_RECORDS`]; refused
    /// too, the topic is not created and the first refusal is returned) and then syncs
    /// each of the others on its own (the refused ones reported). Whether this call
    /// created it.
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
                let (kept, rest): (Vec<_>, Vec<_>) = configs
                    .iter()
                    .cloned()
                    .partition(|(k, _)| KEEPS_RECORDS.contains(&k.as_str()));
                if rest.is_empty() {
                    return Err(e);
                }
                let created = match self
                    .target
                    .create_topic(target_topic, partitions, &kept)
                    .await
                {
                    Ok(created) => created,
                    Err(again) if refused_configs(&again) => return Err(e),
                    Err(again) => return Err(again),
                };
                tracing::warn!(flow = %self.flow.name, topic = %target_topic, error = %e, "The target refused the topic with all of the source's configs: created with those that decide which records it keeps, the others synced each on its own.");
                let refused = self.alter_each(target_topic, &rest, &[]).await;
                self.report_config_sync(target_topic, refused);
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
            let (configs, source_known) = self.synced_source_configs(topic).await?;
            let (current, known) = self.target.topic_configs_and_keys(target_topic).await?;
            let configs = self.known_to_target(configs, &known, target_topic);
            let (changed, removed) = config_changes(&self.flow, &configs, &current, &source_known);
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
                    self.alter_each(target_topic, &changed, &removed).await
                }
                Err(e) => Err(e),
            }
        };
        let result = synced.await;
        self.report_config_sync(target_topic, result);
    }

    /// Sets each of `set` and deletes each of `delete` in a request of its own; the keys
    /// the target refused, with its answer. A failure that is not a refusal (the target
    /// gone for a moment) stops there and is returned: the next round tries again.
    async fn alter_each(
        &self,
        target_topic: &str,
        set: &[(String, String)],
        delete: &[String],
    ) -> Result<Refused, ClientError> {
        let mut refused = Vec::new();
        let mut synced = 0usize;
        let ops = set
            .iter()
            .map(|(k, v)| (k, Some(v)))
            .chain(delete.iter().map(|k| (k, None)));
        for (key, value) in ops {
            let result = match value {
                Some(v) => {
                    let one = [(key.clone(), v.clone())];
                    self.target
                        .alter_topic_configs(target_topic, &one, &[])
                        .await
                }
                None => {
                    let one = [key.clone()];
                    self.target
                        .alter_topic_configs(target_topic, &[], &one)
                        .await
                }
            };
            match result {
                Ok(()) => synced += 1,
                Err(e) if refused_configs(&e) => refused.push((key.clone(), e)),
                Err(e) => return Err(e),
            }
        }
        if synced > 0 {
            tracing::info!(flow = %self.flow.name, topic = %target_topic, synced, refused = refused.len(), "Synced topic configs one by one.");
        }
        Ok(refused)
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
        // A round that could not be tried keeps what the last ones refused: a target
        // back after a moment's failure does not get its refusals said again.
        let now: HashMap<String, String> = match &result {
            Err(_) => before
                .iter()
                .filter(|(key, _)| !key.is_empty())
                .map(|(k, r)| (k.clone(), r.clone()))
                .chain(now)
                .collect(),
            Ok(_) => now,
        };
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
