//! The broker's shared state, handed to every request handler.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use tokio::sync::Notify;

use crate::config::BrokerConfig;
use crate::groups::{CoordinatorConfig, GroupConfig, GroupCoordinator};
use crate::log::flush::GroupCommit;
use crate::log::FlushPolicy;
use crate::producers::ProducerIdManager;
use crate::topic_config::BrokerDefaults;
use crate::topics::{TopicError, TopicRegistry};

/// Everything handlers share.
#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    /// `host:port` advertised in Metadata.
    pub advertised_host: String,
    pub advertised_port: i32,
    pub topics: Arc<TopicRegistry>,
    pub groups: GroupCoordinator,
    /// Group commit for `FlushPolicy::Always`.
    pub group_commit: Option<Arc<GroupCommit>>,
    /// Woken on every append, so long-polling fetches return as soon as data arrives.
    pub appended: Notify,
    pub producer_ids: ProducerIdManager,
    /// Broker configs changed at run time (persisted in `broker-configs.json`).
    broker_overrides: RwLock<BTreeMap<String, String>>,
}

impl Broker {
    /// Opens the data directory and recovers logs. `advertised` is `host:port`.
    pub fn open(config: BrokerConfig, advertised: (String, i32)) -> Result<Self, TopicError> {
        if let Some(dir) = &config.data_dir {
            std::fs::create_dir_all(dir).map_err(|source| TopicError::Persist {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let topics = Arc::new(TopicRegistry::open(
            config.data_dir.clone(),
            config.topic_defaults(),
        )?);
        let lookup_topics = topics.clone();
        let lookup = move |topic: &str, partition: i32| {
            lookup_topics
                .get(topic)
                .is_some_and(|t| partition >= 0 && partition < t.partition_count())
        };
        let groups = GroupCoordinator::open(
            CoordinatorConfig {
                data_dir: config.data_dir.clone(),
                fsync: config.flush == FlushPolicy::Always,
                group: GroupConfig {
                    initial_rebalance_delay_ms: config.group_initial_rebalance_delay.as_millis()
                        as u64,
                    ..GroupConfig::default()
                },
                ..CoordinatorConfig::default()
            },
            Arc::new(lookup),
        )
        .map_err(|e| TopicError::Persist {
            path: "__consumer_offsets.log".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let ids_dir = state_dir(&config);
        let producer_ids =
            ProducerIdManager::open(&ids_dir).map_err(|source| TopicError::Persist {
                path: ids_dir.display().to_string(),
                source,
            })?;
        let overrides_path = config
            .data_dir
            .as_ref()
            .map(|d| d.join(BROKER_CONFIGS_FILE));
        let broker_overrides: BTreeMap<String, String> = overrides_path
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let group_commit = match config.flush {
            FlushPolicy::Always if config.data_dir.is_some() => Some(GroupCommit::spawn()),
            _ => None,
        };
        Ok(Self {
            advertised_host: advertised.0,
            advertised_port: advertised.1,
            config,
            topics,
            groups,
            group_commit,
            appended: Notify::new(),
            producer_ids,
            broker_overrides: RwLock::new(BTreeMap::new()),
        }
        .with_overrides(broker_overrides))
    }

    fn with_overrides(self, overrides: BTreeMap<String, String>) -> Self {
        let mut defaults = self.topics.defaults();
        for (k, v) in &overrides {
            let Ok(n) = v.parse::<i64>() else { continue };
            defaults.set_broker_config(k, n);
        }
        self.topics.set_defaults(defaults);
        *self.broker_overrides.write().expect("overrides lock") = overrides;
        self
    }

    /// Broker configs changed at run time.
    pub fn broker_overrides(&self) -> BTreeMap<String, String> {
        self.broker_overrides
            .read()
            .expect("overrides lock")
            .clone()
    }

    /// Persists and applies new broker config overrides.
    pub fn set_broker_overrides(
        &self,
        overrides: BTreeMap<String, String>,
        defaults: BrokerDefaults,
    ) -> std::io::Result<()> {
        if let Some(dir) = &self.config.data_dir {
            let bytes = serde_json::to_vec_pretty(&overrides).expect("configs serialise");
            crate::fsutil::write_atomic(&dir.join(BROKER_CONFIGS_FILE), &bytes)?;
        }
        self.topics.set_defaults(defaults);
        *self.broker_overrides.write().expect("overrides lock") = overrides;
        Ok(())
    }
}

const BROKER_CONFIGS_FILE: &str = "broker-configs.json";

/// Where broker-wide state files live: the data directory, or a private temporary
/// directory for an in-memory broker.
fn state_dir(config: &BrokerConfig) -> std::path::PathBuf {
    config.data_dir.clone().unwrap_or_else(|| {
        let dir = std::env::temp_dir().join(format!("kmirror-broker-{}", uuid::Uuid::new_v4()));
        let _ = std::fs::create_dir_all(&dir);
        dir
    })
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
