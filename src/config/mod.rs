//! The mirror topology: loading a YAML file into a validated, typed [`Topology`].
//!
//! Pipeline: text → serde structs with unknown keys rejected and `${VAR}` substituted in
//! each value as it is read ([`raw`], [`interpolate`]) → validation that collects every
//! error with its file, line, column and field path ([`validate`], [`graph`]) → [`Topology`].
//! Every error is reported at once: `topology.yaml:12:5: flows[0].topics.include[1]:
//! invalid regex "orders(": unclosed group`. Secrets are held in [`Secret`], which never
//! prints its value, and interpolated values are redacted from error messages.
//!
//! This module does not connect to clusters or start embedded brokers; it only describes
//! what the daemon should do.

mod diagnostics;
pub mod graph;
pub mod interpolate;
pub mod locate;
pub mod names;
pub mod raw;
pub mod units;
pub mod validate;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use names::{NameFilter, Pattern, RenameTemplate};

/// Reads and validates the topology at `path`; `${VAR}` comes from the process environment.
pub fn load(path: &Path) -> Result<Topology, ConfigErrors> {
    let file_name = path.display().to_string();
    let error = |line: usize, column: usize, message: String| ConfigErrors {
        errors: vec![ConfigError {
            file: file_name.clone(),
            line,
            column,
            path: String::new(),
            message,
        }],
    };
    let bytes = std::fs::read(path)
        .map_err(|e| error(0, 0, format!("cannot read the topology file: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        // Where the first byte that is not UTF-8 is.
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count()
            + 1;
        error(line, column, "the topology file is not UTF-8 text".into())
    })?;
    parse(&text, &file_name, &|name| std::env::var(name).ok())
}

/// Validates topology `text`; `file_name` is used in error messages and `env` resolves
/// `${VAR}` references (injectable for tests).
pub fn parse(
    text: &str,
    file_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Topology, ConfigErrors> {
    // A byte order mark, as some editors write one, is not part of the YAML.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    validate::parse(text, file_name, env)
}

/// A validated mirror topology.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Clusters by name.
    pub clusters: BTreeMap<String, Cluster>,
    /// Flows in file order; names are unique.
    pub flows: Vec<Flow>,
    pub telemetry: Option<Telemetry>,
}

impl Topology {
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.get(name)
    }

    pub fn flow(&self, name: &str) -> Option<&Flow> {
        self.flows.iter().find(|flow| flow.name == name)
    }

    /// The target topic name for `topic` mirrored by `flow` (same as [`Flow::rename`]).
    pub fn rename(&self, flow: &Flow, topic: &str) -> String {
        flow.rename(topic)
    }
}

/// A Kafka cluster the daemon reads from or writes to.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub name: String,
    /// Kafka `client.id` for the daemon's connections (default "kmirror").
    pub client_id: String,
    /// Deadline for one request (default 30s).
    pub request_timeout: Duration,
    /// Deadline for establishing a connection (default 10s).
    pub connect_timeout: Duration,
    /// Replication factor of the topics kmirror creates on this cluster (mirrored topics,
    /// its progress topic, MirrorMaker 2's checkpoints); `None`: the cluster's
    /// `default.replication.factor`.
    pub replication_factor: Option<i16>,
    pub connection: Connection,
}

/// How to reach a cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    /// An existing cluster, reached through its bootstrap brokers.
    Remote(Remote),
    /// A kmirror-broker the daemon starts in-process.
    Embedded(Embedded),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Remote {
    pub bootstrap: Vec<BrokerAddress>,
    /// Connect with TLS (Kafka's SSL security protocol); `None`: plaintext.
    pub tls: Option<Tls>,
    /// Authenticate with SASL (SASL_SSL with `tls`); `None`: no authentication.
    pub sasl: Option<Sasl>,
}

/// SASL credentials of a remote cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sasl {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: Secret,
}

/// TLS settings of a remote cluster: PEM files (relative paths are relative to the
/// daemon's working directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// CAs to trust; `None`: the system's.
    pub ca: Option<PathBuf>,
    /// Client certificate and key, for clusters that require one (mTLS).
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
    /// The name the brokers' certificates must carry; `None`: each broker's host.
    pub server_name: Option<String>,
}

impl Tls {
    /// The client side of these settings (reads and checks the files).
    pub fn client(&self) -> Result<kmirror_wire::tls::ClientTls, kmirror_wire::tls::TlsError> {
        kmirror_wire::tls::ClientTls::new(
            self.ca.as_deref(),
            self.cert_and_key
                .as_ref()
                .map(|(cert, key)| (cert.as_path(), key.as_path())),
            self.server_name.clone(),
        )
    }
}

/// `host:port` of a bootstrap broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for BrokerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A SASL mechanism `sasl.mechanism` may name (parsed; SASL itself is refused, see
/// [`validate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

/// An in-process kmirror-broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embedded {
    pub listen: SocketAddr,
    /// Relative paths are relative to the daemon's working directory.
    pub data_dir: PathBuf,
    /// Partitions of topics the broker creates automatically (default 1).
    pub partitions: u32,
    /// The broker's listener speaks TLS with `cert` and `key`, and the daemon trusts `ca`
    /// (and checks `server_name`, default the listen IP) when it connects to it.
    pub tls: Option<Tls>,
}

/// A string that must not be logged: `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value, for handing to the authentication code only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Any scalar, taken as written: a password "007" stays "007", not the number 7.
        raw::Text::deserialize(deserializer).map(|text| Secret(text.0))
    }
}

/// One replication flow: topics of `source` mirrored into `target`.
#[derive(Debug, Clone)]
pub struct Flow {
    pub name: String,
    /// Source cluster name.
    pub source: String,
    /// Target cluster name.
    pub target: String,
    /// Which source topics to mirror (whole-name regex matches).
    pub topics: NameFilter,
    pub rename: RenameTemplate,
    pub partitions: PartitionPolicy,
    /// Create missing target topics (default true).
    pub create_topics: bool,
    pub sync_configs: SyncConfigs,
    pub start_from: StartFrom,
    /// How often to look for new topics and partitions (default 10s).
    pub discovery_interval: Duration,
    pub delivery: Delivery,
    pub limits: Limits,
    /// Consumer-group offset translation and sync ([`crate::offsets::sync`]).
    pub groups: Option<Groups>,
    /// Write MirrorMaker 2's checkpoints and heartbeats on the target
    /// ([`crate::offsets::mm2`]); implies `groups` (MM2's default filter) when absent.
    pub mm2_compat: bool,
    /// Copy the source's LITERAL topic ACLs of mirrored topics to their target names with
    /// MirrorMaker 2's rules ([`crate::mirror::acl_sync`]).
    pub sync_acls: bool,
    /// One kmirror at a time mirrors this flow; others running it stand by
    /// ([`crate::mirror::ownership`]).
    pub exclusive: bool,
    pub(crate) cycle_guard: graph::CycleGuard,
}

impl Flow {
    /// The target topic name for source topic `topic`.
    pub fn rename(&self, topic: &str) -> String {
        self.rename.render(&self.source, &self.target, topic)
    }

    /// Everything that decides what this flow does, as text: two flows with the same
    /// settings (its own, and the renames of the flows upstream of its source, which its
    /// cycle detection undoes) have the same key. A reload restarts a flow whose key changed.
    pub fn settings_key(&self) -> String {
        let own = Flow {
            cycle_guard: graph::CycleGuard::default(),
            ..self.clone()
        };
        format!(
            "{own:?} upstream {:?}",
            self.cycle_guard.upstream_of(&self.source)
        )
    }

    /// Whether this flow mirrors source topic `topic`: the topic filter passes it and the
    /// topic did not come from this flow's target cluster through other flows (which
    /// would mirror it back where it came from, like MirrorMaker 2's `isCycle`).
    pub fn matches(&self, topic: &str) -> bool {
        self.topics.matches(topic) && !self.is_cycle(topic)
    }

    /// Whether `topic` on the source cluster is, judging by its name and the topology's
    /// rename templates, a mirror of a topic from this flow's target cluster.
    /// Identity (`"{topic}"`) renames carry no origin and are never counted.
    pub fn is_cycle(&self, topic: &str) -> bool {
        self.cycle_guard
            .came_from(&self.source, topic, &self.target)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionPolicy {
    /// Source partition N goes to target partition N.
    Preserve,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartFrom {
    /// Partitions without progress are mirrored from their log start offset (default).
    Earliest,
    /// Partitions that exist at the daemon's first discovery and have no progress start at
    /// their high watermark. Topics and partitions that appear later are always mirrored
    /// from their start, so nothing written to them is skipped.
    Latest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    AtLeastOnce,
    /// Parsed so that the error can say "not yet", refused by validation.
    ExactlyOnce,
}

/// Topic config sync from source to target topics.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncConfigs {
    /// Default true.
    pub enabled: bool,
    /// Config names never synced: MirrorMaker 2's defaults plus the configured ones.
    pub exclude: Vec<Pattern>,
}

impl SyncConfigs {
    /// MirrorMaker 2's `DefaultConfigPropertyFilter` exclusions (as regexes), and two keys
    /// that would keep a source topic from being mirrored at all: `remote.storage.enable`
    /// (tiered storage belongs to a cluster, and Kafka refuses the key on a cluster without
    /// it: LogConfig.validateRemoteStorageOnlyIfSystemEnabled) and `message.format.version`
    /// (a no-op since Kafka 3.0, removed in 4.0, whose brokers refuse it as an unknown topic
    /// config: KIP-724, KAFKA-17393; topics of 2.x and 3.x clusters often still carry it).
    pub const DEFAULT_EXCLUDE: &'static [&'static str] = &[
        "follower\\.replication\\.throttled\\.replicas",
        "leader\\.replication\\.throttled\\.replicas",
        "message\\.timestamp\\.difference\\.max\\.ms",
        "message\\.timestamp\\.type",
        "unclean\\.leader\\.election\\.enable",
        "min\\.insync\\.replicas",
        "remote\\.storage\\.enable",
        "message\\.format\\.version",
    ];

    /// Whether topic config `name` is copied to the target.
    pub fn syncs(&self, name: &str) -> bool {
        self.enabled && !self.exclude.iter().any(|pattern| pattern.matches(name))
    }
}

/// Per-flow rate and memory limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub bytes_per_sec: Option<u64>,
    pub records_per_sec: Option<u64>,
    /// Bytes fetched but not yet acknowledged by the target (default 64MiB).
    pub max_in_flight_bytes: u64,
    /// Largest batch that runs of small source batches are merged into (default 1MiB);
    /// keep it at or below the target topics' `max.message.bytes`: a merged batch the
    /// target refuses as too large is split in halves and sent again, which costs a
    /// refused request and a recompression each time.
    pub batch_bytes: u64,
}

impl Limits {
    pub const DEFAULT_MAX_IN_FLIGHT_BYTES: u64 = 64 << 20;
    pub const DEFAULT_BATCH_BYTES: u64 = 1 << 20;
    /// Smaller merged batches would cost more requests than they save.
    pub const MIN_BATCH_BYTES: u64 = 16 << 10;
    /// The least budget a flow runs with: a Fetch reserves at least 64 KiB, twice over
    /// when its response is split among partitions (`crate::mirror::memory`); below it no
    /// Fetch would ever be sent.
    pub const MIN_MAX_IN_FLIGHT_BYTES: u64 = 128 << 10;
}

/// Consumer-group offset sync settings (parsed now, used by a later engine).
#[derive(Debug, Clone, PartialEq)]
pub struct Groups {
    /// Group ids to translate; excludes start with MirrorMaker 2's defaults.
    pub filter: NameFilter,
    /// Write translated offsets to target groups (default false, like MirrorMaker 2).
    pub sync_offsets: bool,
    /// How often offsets are translated (default 5s).
    pub interval: Duration,
}

impl Groups {
    /// MirrorMaker 2's `DefaultGroupFilter` exclusions.
    pub const DEFAULT_EXCLUDE: &'static [&'static str] =
        &["console-consumer-.*", "connect-.*", "__.*"];
}

/// The daemon's metrics and health endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Telemetry {
    /// Where `/metrics`, `/healthz`, `/readyz` and `/status` are served; none without it.
    pub listen: Option<SocketAddr>,
    /// How often each flow logs its progress line.
    pub log_interval: Duration,
    /// Where metrics are pushed over OTLP/HTTP, if anywhere.
    pub otlp: Option<Otlp>,
}

/// OTLP/HTTP (protobuf) metrics push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Otlp {
    /// The collector's metrics URL, e.g. `http://collector:4318/v1/metrics`.
    pub endpoint: String,
    /// How often metrics are pushed (default 10 s).
    pub interval: Duration,
}

/// `telemetry.log_interval` when not given.
pub const DEFAULT_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// One problem in a topology file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the problem has no position (e.g. the file cannot be read).
    pub line: usize,
    /// 1-based, in characters; 0 when unknown.
    pub column: usize,
    /// Field path such as `flows[0].topics.include[1]`; empty for the whole document.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a topology file, in file order; `Display` prints one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", display_lines(.errors))]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
}

fn display_lines(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests;
