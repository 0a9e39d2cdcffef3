//! The broker's settings: what the CLI and the embedding daemon pass to [`crate::Broker`].
//!
//! Parsing flags and environment variables is `main.rs`'s job; this module only holds the
//! values and their defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::log::{FlushPolicy, LogConfig};
use crate::versions::KafkaRelease;

/// Everything a broker needs to start.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// `host:port` clients are told to connect to; `None` = the bound address.
    pub advertised_listener: Option<String>,
    /// The first node's id; with `nodes > 1` the others are `node_id + 1 ..`.
    pub node_id: i32,
    /// How many broker nodes this process presents (see [`crate::cluster`]).
    pub nodes: usize,
    /// Listen addresses of nodes other than the first, by node id; a node without one
    /// listens on the first node's port plus its offset (port 0: a free port each).
    pub node_listen: std::collections::BTreeMap<i32, SocketAddr>,
    /// The HTTP node control (`GET /nodes`, `POST /nodes/{id}/stop|start`); `None` = off.
    pub admin_listen: Option<SocketAddr>,
    pub cluster_id: String,
    /// Where logs, topic metadata, group offsets and producer state live; `None` keeps
    /// everything in memory (tests only).
    pub data_dir: Option<PathBuf>,
    /// Partitions of auto-created topics and of CreateTopics with `num_partitions = -1`.
    pub default_partitions: i32,
    /// Create topics on Metadata requests for unknown topics.
    pub auto_create_topics: bool,
    pub flush: FlushPolicy,
    /// Frames larger than this close the connection.
    pub max_frame_bytes: usize,
    pub max_connections: usize,
    /// Broker defaults for topic configs.
    pub log_defaults: LogConfig,
    /// `message.max.bytes`: default for the topic config `max.message.bytes`.
    pub max_message_bytes: i32,
    /// `log.message.timestamp.before.max.ms`: default for the topic config
    /// `message.timestamp.before.max.ms`.
    pub timestamp_before_max_ms: i64,
    /// `log.message.timestamp.after.max.ms`: default for the topic config
    /// `message.timestamp.after.max.ms`.
    pub timestamp_after_max_ms: i64,
    pub retention_check_interval: Duration,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay: Duration,
    /// `offsets.retention.minutes`: committed offsets of an Empty group expire this long
    /// after it became Empty (Kafka's default: 7 days).
    pub offsets_retention: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// The Kafka release whose API versions this broker advertises (capped at what it
    /// implements): clients then speak to it as to a broker of that release.
    pub emulate_kafka: KafkaRelease,
    /// Every listener speaks TLS with this config (Kafka's SSL security protocol);
    /// `None`: plaintext.
    pub tls: Option<Arc<kmirror_wire::tls::TlsServerConfig>>,
    /// Every listener requires SASL authentication (Kafka's SASL_SSL, or SASL_PLAINTEXT
    /// without `tls`) against the stored SCRAM credentials ([`crate::credentials`]); these
    /// users bootstrap the store: those without stored credentials get them at start.
    /// `None`: no authentication.
    pub sasl: Option<crate::sasl::SaslUsers>,
    /// Allow SASL/PLAIN without TLS (passwords in clear on the network).
    pub sasl_plain_without_tls: bool,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised_listener: None,
            node_id: 0,
            nodes: 1,
            node_listen: Default::default(),
            admin_listen: None,
            cluster_id: "kmirror-local-cluster".into(),
            data_dir: None,
            default_partitions: 1,
            auto_create_topics: true,
            flush: FlushPolicy::Never,
            max_frame_bytes: kmirror_wire::frame::DEFAULT_MAX_FRAME_BYTES,
            max_connections: 1024,
            log_defaults: LogConfig::default(),
            max_message_bytes: 1_048_588,
            timestamp_before_max_ms: crate::topic_config::DEFAULT_TIMESTAMP_BEFORE_MAX_MS,
            timestamp_after_max_ms: crate::topic_config::DEFAULT_TIMESTAMP_AFTER_MAX_MS,
            retention_check_interval: Duration::from_secs(30),
            group_initial_rebalance_delay: Duration::from_millis(3000),
            offsets_retention: crate::groups::DEFAULT_OFFSETS_RETENTION,
            shutdown_grace: Duration::from_secs(10),
            emulate_kafka: KafkaRelease::default(),
            tls: None,
            sasl: None,
            sasl_plain_without_tls: false,
        }
    }
}

impl BrokerConfig {
    /// (node id, listen address) of every node, the first at [`Self::listen`].
    pub fn node_addrs(&self) -> Vec<(i32, SocketAddr)> {
        (0..self.nodes.max(1))
            .map(|k| {
                let id = self.node_id + k as i32;
                let addr = match self.node_listen.get(&id) {
                    Some(a) => *a,
                    None if k == 0 || self.listen.port() == 0 => self.listen,
                    None => {
                        let mut a = self.listen;
                        a.set_port(self.listen.port().saturating_add(k as u16));
                        a
                    }
                };
                (id, addr)
            })
            .collect()
    }

    /// The broker-level defaults of topic configs, before run-time overrides.
    pub fn topic_defaults(&self) -> crate::topic_config::BrokerDefaults {
        crate::topic_config::BrokerDefaults {
            log: self.log_defaults,
            max_message_bytes: self.max_message_bytes,
            timestamp_before_max_ms: self.timestamp_before_max_ms,
            timestamp_after_max_ms: self.timestamp_after_max_ms,
        }
    }
}
