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
    /// Replicas of auto-created topics and of CreateTopics with `replication_factor = -1`
    /// (Kafka's `default.replication.factor`, 1 unless set).
    pub default_replication_factor: usize,
    /// Create topics on Metadata requests for unknown topics.
    pub auto_create_topics: bool,
    pub flush: FlushPolicy,
    /// Frames larger than this close the connection.
    pub max_frame_bytes: usize,
    pub max_connections: usize,
    /// `connections.max.idle.ms`: a connection that sends no request for this long is
    /// closed (Kafka's default: 10 minutes).
    pub connections_max_idle: Duration,
    /// Broker defaults for topic configs.
    pub log_defaults: LogConfig,
    /// `message.max.bytes`: default for the topic config `max.message.bytes`.
    pub max_message_bytes: i32,
    /// `log.message.timestamp.before.max.ms`: default for the topic config
    /// `message.timestamp.before.max.ms`.
    pub timestamp_before_max_ms: i64,
    /// `log.message.timestamp.after.max.ms`: default for the topic config
    /// `message.timestamp.after.max.ms`; `None`: the emulated release's default.
    pub timestamp_after_max_ms: Option<i64>,
    pub retention_check_interval: Duration,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay: Duration,
    /// How long an acks=all Produce is answered after its append, standing in for a leader
    /// waiting on its followers (zero: at once, as this broker has none).
    pub follower_wait: Duration,
    /// How long after the broker starts its group coordinator answers group requests
    /// COORDINATOR_LOAD_IN_PROGRESS, as Kafka's does while it loads `__consumer_offsets`
    /// (zero: never).
    pub coordinator_load: Duration,
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
    /// Enable SASL/PLAIN on listeners without TLS (passwords in clear on the network);
    /// otherwise SASL_PLAINTEXT listeners offer SCRAM only.
    pub sasl_plain_without_tls: bool,
    /// Kafka-style listeners (`--listeners`), each with its security protocol; empty: one
    /// listener at [`Self::listen`], SSL when `tls` is set, SASL when `sasl` is.
    pub listeners: Vec<ListenerConfig>,
    /// `--authorizer acl`: Kafka's ACLs are enforced, these principals (`User:admin`) are
    /// allowed everything; `None`: no authorizer, every client may do everything.
    pub acl_super_users: Option<Vec<String>>,
}

/// Kafka's security protocols (`SecurityProtocol.java`); a listener's name is its protocol's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub const ALL: [Self; 4] = [
        Self::Plaintext,
        Self::Ssl,
        Self::SaslPlaintext,
        Self::SaslSsl,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    pub fn tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    pub fn sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl std::fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One listener: where it binds, what it speaks, and what Metadata tells clients that
/// arrived on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    pub protocol: SecurityProtocol,
    pub listen: SocketAddr,
    /// `host:port` advertised for this listener; `None`: the bound address.
    pub advertised: Option<String>,
}

/// Why a `--listeners` or `--advertised-listeners` value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenerError {
    #[error("{0:?} is not PROTOCOL://HOST:PORT")]
    Syntax(String),
    #[error(
        "unknown security protocol {0:?}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )]
    Protocol(String),
    #[error("listener {0} is named twice")]
    Duplicate(SecurityProtocol),
    #[error("{0}: {1}")]
    Address(String, String),
    #[error("advertised listener {0} has no listener in --listeners")]
    NoSuchListener(SecurityProtocol),
}

/// Parses Kafka's `listeners` syntax: `PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9094`
/// (host `[::1]` for IPv6).
fn parse_listener_list(value: &str) -> Result<Vec<(SecurityProtocol, String, u16)>, ListenerError> {
    let mut out: Vec<(SecurityProtocol, String, u16)> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, rest) = item
            .split_once("://")
            .ok_or_else(|| ListenerError::Syntax(item.into()))?;
        let protocol = SecurityProtocol::from_name(&name.to_ascii_uppercase())
            .ok_or_else(|| ListenerError::Protocol(name.into()))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| ListenerError::Syntax(item.into()))?;
        let port = port
            .parse()
            .map_err(|e| ListenerError::Address(item.into(), format!("port: {e}")))?;
        if out.iter().any(|(p, _, _)| *p == protocol) {
            return Err(ListenerError::Duplicate(protocol));
        }
        out.push((protocol, host.trim_matches(['[', ']']).to_string(), port));
    }
    if out.is_empty() {
        return Err(ListenerError::Syntax(value.into()));
    }
    Ok(out)
}

/// `--listeners` and `--advertised-listeners` (matched by protocol name) as listeners.
pub fn parse_listeners(
    listeners: &str,
    advertised: Option<&str>,
) -> Result<Vec<ListenerConfig>, ListenerError> {
    let mut out = Vec::new();
    for (protocol, host, port) in parse_listener_list(listeners)? {
        let ip: std::net::IpAddr = host.parse().map_err(|_| {
            ListenerError::Address(
                format!("{protocol}://{host}:{port}"),
                "a listener binds to an IP address".into(),
            )
        })?;
        out.push(ListenerConfig {
            protocol,
            listen: SocketAddr::new(ip, port),
            advertised: None,
        });
    }
    if let Some(advertised) = advertised {
        for (protocol, host, port) in parse_listener_list(advertised)? {
            let listener = out
                .iter_mut()
                .find(|l| l.protocol == protocol)
                .ok_or(ListenerError::NoSuchListener(protocol))?;
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            listener.advertised = Some(format!("{host}:{port}"));
        }
    }
    Ok(out)
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
            cluster_id: crate::meta::LEGACY_CLUSTER_ID.into(),
            data_dir: None,
            default_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics: true,
            flush: FlushPolicy::Never,
            max_frame_bytes: kmirror_wire::frame::DEFAULT_MAX_FRAME_BYTES,
            max_connections: 1024,
            connections_max_idle: Duration::from_secs(600),
            log_defaults: LogConfig::default(),
            max_message_bytes: 1_048_588,
            timestamp_before_max_ms: crate::topic_config::DEFAULT_TIMESTAMP_BEFORE_MAX_MS,
            timestamp_after_max_ms: None,
            retention_check_interval: Duration::from_secs(30),
            group_initial_rebalance_delay: Duration::from_millis(3000),
            follower_wait: Duration::ZERO,
            coordinator_load: Duration::ZERO,
            offsets_retention: crate::groups::DEFAULT_OFFSETS_RETENTION,
            shutdown_grace: Duration::from_secs(10),
            emulate_kafka: KafkaRelease::default(),
            tls: None,
            sasl: None,
            sasl_plain_without_tls: false,
            listeners: Vec::new(),
            acl_super_users: None,
        }
    }
}

impl BrokerConfig {
    /// Every listener: [`Self::listeners`], or the one that `listen`, `tls` and `sasl`
    /// describe.
    pub fn effective_listeners(&self) -> Vec<ListenerConfig> {
        if !self.listeners.is_empty() {
            return self.listeners.clone();
        }
        let protocol = match (self.tls.is_some(), self.sasl.is_some()) {
            (true, true) => SecurityProtocol::SaslSsl,
            (true, false) => SecurityProtocol::Ssl,
            (false, true) => SecurityProtocol::SaslPlaintext,
            (false, false) => SecurityProtocol::Plaintext,
        };
        vec![ListenerConfig {
            protocol,
            listen: self.listen,
            advertised: self.advertised_listener.clone(),
        }]
    }

    /// (node id, listen address) of every node on `listener`: node k listens on the
    /// listener's port + k, or (first listener only) where `node_listen` says.
    pub fn node_addrs(&self, listener: &ListenerConfig, first: bool) -> Vec<(i32, SocketAddr)> {
        (0..self.nodes.max(1))
            .map(|k| {
                let id = self.node_id + k as i32;
                let base = listener.listen;
                let addr = match self.node_listen.get(&id) {
                    Some(a) if first => *a,
                    _ if k == 0 || base.port() == 0 => base,
                    _ => {
                        let mut a = base;
                        a.set_port(base.port().saturating_add(k as u16));
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
            // Kafka 4's 1 hour (KIP-1030); before 4.0 no limit (3.6-3.9: Long.MAX_VALUE;
            // 2.8-3.5: message.timestamp.difference.max.ms, Long.MAX_VALUE).
            timestamp_after_max_ms: self.timestamp_after_max_ms.unwrap_or(
                if self.emulate_kafka >= KafkaRelease::V4_0 {
                    crate::topic_config::DEFAULT_TIMESTAMP_AFTER_MAX_MS
                } else {
                    i64::MAX
                },
            ),
            release: self.emulate_kafka,
            dynamic: Default::default(),
        }
    }
}
