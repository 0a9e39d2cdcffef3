//! The broker's shared state, handed to every request handler.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::BrokerConfig;
use crate::log::flush::GroupCommit;
use crate::log::FlushPolicy;
use crate::topic_config::BrokerDefaults;
use crate::topics::{TopicError, TopicRegistry};

/// Everything handlers share.
#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    /// `host:port` advertised in Metadata.
    pub advertised_host: String,
    pub advertised_port: i32,
    pub topics: TopicRegistry,
    /// Group commit for `FlushPolicy::Always`.
    pub group_commit: Option<Arc<GroupCommit>>,
    /// Woken on every append, so long-polling fetches return as soon as data arrives.
    pub appended: Notify,
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
        let topics = TopicRegistry::open(
            config.data_dir.clone(),
            BrokerDefaults {
                log: config.log_defaults,
                max_message_bytes: config.max_message_bytes,
            },
        )?;
        let group_commit = match config.flush {
            FlushPolicy::Always if config.data_dir.is_some() => Some(GroupCommit::spawn()),
            _ => None,
        };
        Ok(Self {
            advertised_host: advertised.0,
            advertised_port: advertised.1,
            config,
            topics,
            group_commit,
            appended: Notify::new(),
        })
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
