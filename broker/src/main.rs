//! The `kmirror-broker` binary: flags (each also read from the environment), logging,
//! signals. SIGTERM/SIGINT stop accepting, finish in-flight requests, flush and exit 0.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use kmirror_broker::log::{FlushPolicy, LogConfig};
use kmirror_broker::{BrokerConfig, KafkaRelease};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Flush {
    /// Leave flushing to the OS page cache (Kafka's default): survives a process crash.
    Never,
    /// fsync every --flush-interval-ms in the background.
    Interval,
    /// fsync before acknowledging a produce (group commit).
    Always,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AuthorizerKind {
    /// Kafka's ACLs (StandardAuthorizer rules).
    Acl,
}

/// A Kafka-compatible broker for local development, tests and CI.
///
/// With --nodes N one process presents broker ids NODE_ID..NODE_ID+N-1, each on its own
/// port, with partition leaders spread over them. Leaders move through ElectLeaders and
/// AlterPartitionReassignments, or when a node is stopped (to another live replica: see
/// --default-replication-factor) through the node control
/// (--admin-listen): `curl -X POST http://ADDR/nodes/1/stop`, `.../nodes/1/start`,
/// `curl http://ADDR/nodes`. Storage stays one copy per partition: the nodes exist to
/// exercise clients' leader routing, not durability.
#[derive(Debug, Parser)]
#[command(name = "kmirror-broker", version, about, long_about)]
struct Args {
    /// Address to listen on (port 0 picks a free port): the shorthand for one listener,
    /// PLAINTEXT, SSL with --tls-cert, SASL_PLAINTEXT with --sasl-users, or SASL_SSL.
    #[arg(long, env = "KMIRROR_BROKER_LISTEN", default_value = "127.0.0.1:9092")]
    listen: SocketAddr,
    /// Listeners as Kafka names them, e.g.
    /// PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9094 (PLAINTEXT, SSL, SASL_PLAINTEXT,
    /// SASL_SSL; each at most once). With --nodes, node k listens on each port + k.
    #[arg(long, env = "KMIRROR_BROKER_LISTENERS", conflicts_with_all = ["listen", "advertised_listener"])]
    listeners: Option<String>,
    /// What Metadata tells clients on each listener, e.g.
    /// PLAINTEXT://broker-a:9092,SASL_SSL://broker-a.example.com:9094 (defaults to the
    /// bound addresses).
    #[arg(
        long,
        env = "KMIRROR_BROKER_ADVERTISED_LISTENERS",
        requires = "listeners"
    )]
    advertised_listeners: Option<String>,
    /// Directory holding logs, topic metadata, group offsets and producer state.
    #[arg(long, env = "KMIRROR_BROKER_DATA_DIR")]
    data_dir: PathBuf,
    /// host:port advertised to clients in Metadata (defaults to the bound address).
    #[arg(long, env = "KMIRROR_BROKER_ADVERTISED_LISTENER")]
    advertised_listener: Option<String>,
    /// This broker's node id (with --nodes: the first node's).
    #[arg(long, env = "KMIRROR_BROKER_NODE_ID", default_value_t = 0)]
    node_id: i32,
    /// How many broker nodes to present; node k listens on --listen's port + k unless
    /// --node-listen names its address.
    #[arg(long, env = "KMIRROR_BROKER_NODES", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    nodes: u16,
    /// Listen address of one node other than the first, as ID=HOST:PORT (repeatable).
    #[arg(long, value_parser = parse_node_listen)]
    node_listen: Vec<(i32, SocketAddr)>,
    /// Address of the HTTP node control: GET /nodes, POST /nodes/{id}/stop,
    /// POST /nodes/{id}/start. Off unless set; it has no authentication.
    #[arg(long, env = "KMIRROR_BROKER_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// Cluster id reported in Metadata and DescribeCluster. Default: the one in the data
    /// directory's meta.properties, generated at random when the directory is new (each
    /// cluster has its own, as Kafka's do).
    #[arg(long, env = "KMIRROR_BROKER_CLUSTER_ID")]
    cluster_id: Option<String>,
    /// Partitions of auto-created topics and of CreateTopics without a count.
    #[arg(long, env = "KMIRROR_BROKER_DEFAULT_PARTITIONS", default_value_t = 1)]
    default_partitions: i32,
    /// Replicas of auto-created topics and of CreateTopics without a replication factor
    /// (Kafka's `default.replication.factor`); above `--nodes`, such topics are refused
    /// with INVALID_REPLICATION_FACTOR, as Kafka refuses them.
    #[arg(long, env = "KMIRROR_BROKER_DEFAULT_REPLICATION_FACTOR", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    default_replication_factor: u16,
    /// Create unknown topics when a client asks for their metadata.
    #[arg(long, env = "KMIRROR_BROKER_AUTO_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    auto_create_topics: bool,
    /// When appended data is fsynced.
    #[arg(
        long,
        env = "KMIRROR_BROKER_FLUSH",
        value_enum,
        default_value = "never"
    )]
    flush: Flush,
    /// Interval for --flush interval.
    #[arg(long, env = "KMIRROR_BROKER_FLUSH_INTERVAL_MS", default_value_t = 1000)]
    flush_interval_ms: u64,
    /// Largest request frame accepted; larger ones close the connection.
    #[arg(long, env = "KMIRROR_BROKER_MAX_FRAME_BYTES", default_value_t = 100 * 1024 * 1024)]
    max_frame_bytes: usize,
    /// Most client connections at once; more are refused.
    #[arg(long, env = "KMIRROR_BROKER_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// Close a connection that sends no request for this long (Kafka's
    /// connections.max.idle.ms).
    #[arg(
        long,
        env = "KMIRROR_BROKER_CONNECTIONS_MAX_IDLE_MS",
        default_value_t = 600_000
    )]
    connections_max_idle_ms: u64,
    /// Broker default for the topic config segment.bytes (log.segment.bytes; at least 1 MiB
    /// as in Kafka 4.0, KIP-1030; at least 14 bytes with --emulate-kafka before 4.0).
    #[arg(long, env = "KMIRROR_BROKER_SEGMENT_BYTES", default_value_t = 1 << 30,
          value_parser = clap::value_parser!(u64).range(14..=i32::MAX as u64))]
    segment_bytes: u64,
    /// Broker default for the topic config retention.ms (-1: keep forever).
    #[arg(long, env = "KMIRROR_BROKER_RETENTION_MS", default_value_t = 7 * 24 * 3600 * 1000,
          allow_negative_numbers = true)]
    retention_ms: i64,
    /// Broker default for the topic config retention.bytes (-1: no limit).
    #[arg(long, env = "KMIRROR_BROKER_RETENTION_BYTES", default_value_t = -1,
          allow_negative_numbers = true)]
    retention_bytes: i64,
    /// How often retention is applied.
    #[arg(
        long,
        env = "KMIRROR_BROKER_RETENTION_CHECK_INTERVAL_MS",
        default_value_t = 30_000
    )]
    retention_check_interval_ms: u64,
    /// group.initial.rebalance.delay.ms: how long a new group waits for more members.
    #[arg(
        long,
        env = "KMIRROR_BROKER_GROUP_INITIAL_REBALANCE_DELAY_MS",
        default_value_t = 3000
    )]
    group_initial_rebalance_delay_ms: u64,
    /// Answer acks=all Produce requests this long after appending, as a leader waiting for
    /// its followers would (a stand-in for a replicated cluster in tests and benches; the
    /// connection reads no other request meanwhile, as in Kafka). 0: at once.
    #[arg(
        long,
        env = "KMIRROR_BROKER_EMULATE_FOLLOWER_WAIT_MS",
        default_value_t = 0
    )]
    emulate_follower_wait_ms: u64,
    /// For this long after start, group requests are answered COORDINATOR_LOAD_IN_PROGRESS,
    /// as a Kafka coordinator answers them while it loads its groups after a restart.
    #[arg(
        long,
        env = "KMIRROR_BROKER_EMULATE_COORDINATOR_LOAD_MS",
        default_value_t = 0
    )]
    emulate_coordinator_load_ms: u64,
    /// offsets.retention.minutes: committed offsets of an Empty group expire this long after
    /// it became Empty (at least 1, as in Kafka).
    #[arg(
        long,
        env = "KMIRROR_BROKER_OFFSETS_RETENTION_MINUTES",
        default_value_t = 7 * 24 * 60,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    offsets_retention_minutes: u64,
    /// Advertise the API versions of this Kafka release (2.8, 3.0, 3.6, 3.9, 4.0, 4.1),
    /// capped at what the broker implements; APIs the release lacked are not offered.
    #[arg(long, env = "KMIRROR_BROKER_EMULATE_KAFKA", default_value = "4.1")]
    emulate_kafka: KafkaRelease,
    /// PEM certificate chain: every listener then speaks TLS (Kafka's SSL protocol).
    #[arg(long, env = "KMIRROR_BROKER_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "KMIRROR_BROKER_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA: clients must present a certificate that chains to it (mTLS).
    #[arg(long, env = "KMIRROR_BROKER_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// `name:password` lines (mode 600): every listener then requires SASL authentication
    /// (PLAIN, SCRAM-SHA-256/512; SASL_SSL with --tls-cert). A bootstrap: at start, each user
    /// of the file without stored credentials gets SCRAM credentials (salted, 4096
    /// iterations) stored in the data directory (scram-credentials.json, no password); users
    /// already stored keep theirs, managed with AlterUserScramCredentials
    /// (kafka-configs.sh --alter --entity-type users) from then on.
    #[arg(long, env = "KMIRROR_BROKER_SASL_USERS")]
    sasl_users: Option<PathBuf>,
    /// Enable SASL/PLAIN on listeners without TLS (passwords in clear); otherwise a
    /// SASL_PLAINTEXT listener offers SCRAM only.
    #[arg(long, env = "KMIRROR_BROKER_SASL_PLAIN_WITHOUT_TLS")]
    sasl_plain_without_tls: bool,
    /// `acl`: enforce Kafka's ACLs (DescribeAcls, CreateAcls, DeleteAcls manage them; they
    /// persist in the data directory); a resource without ACLs is denied to all but the
    /// super users. Unset: no authorizer, every client may do everything.
    #[arg(
        long,
        env = "KMIRROR_BROKER_AUTHORIZER",
        value_enum,
        requires = "super_users"
    )]
    authorizer: Option<AuthorizerKind>,
    /// Principals allowed everything with --authorizer acl, e.g. User:admin;User:CN=ops,O=example
    /// (`;`-separated as Kafka's super.users; `,` also separates before a `User:`).
    #[arg(long, env = "KMIRROR_BROKER_SUPER_USERS", requires = "authorizer")]
    super_users: Option<String>,
    /// Log filter, e.g. info, debug, kmirror_broker=debug.
    #[arg(long, env = "KMIRROR_BROKER_LOG_LEVEL", default_value = "info")]
    log_level: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let segment_bytes_min = kmirror_broker::topic_config::segment_bytes_min(args.emulate_kafka);
    if (args.segment_bytes as i64) < segment_bytes_min {
        anyhow::bail!(
            "--segment-bytes {} is below {segment_bytes_min}, the smallest log.segment.bytes Kafka {} accepts",
            args.segment_bytes,
            args.emulate_kafka
        );
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log_level)?)
        .with_writer(kmirror_wire::log_writer::lossy_stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let listeners = match &args.listeners {
        Some(l) => {
            kmirror_broker::config::parse_listeners(l, args.advertised_listeners.as_deref())?
        }
        None => Vec::new(),
    };
    let config = BrokerConfig {
        listen: listeners.first().map_or(args.listen, |l| l.listen),
        listeners,
        advertised_listener: args.advertised_listener,
        node_id: args.node_id,
        nodes: usize::from(args.nodes),
        node_listen: args.node_listen.into_iter().collect(),
        admin_listen: args.admin_listen,
        cluster_id: match args.cluster_id {
            Some(id) => id,
            None => kmirror_broker::meta::cluster_id(&args.data_dir).map_err(|e| {
                anyhow::anyhow!(
                    "cannot read or write {}: {e}",
                    args.data_dir
                        .join(kmirror_broker::meta::FILE_NAME)
                        .display()
                )
            })?,
        },
        data_dir: Some(args.data_dir),
        default_partitions: args.default_partitions.max(1),
        default_replication_factor: usize::from(args.default_replication_factor),
        auto_create_topics: args.auto_create_topics,
        flush: match args.flush {
            Flush::Never => FlushPolicy::Never,
            Flush::Interval => FlushPolicy::Interval {
                interval_ms: args.flush_interval_ms,
            },
            Flush::Always => FlushPolicy::Always,
        },
        max_frame_bytes: args.max_frame_bytes,
        max_connections: args.max_connections,
        connections_max_idle: Duration::from_millis(args.connections_max_idle_ms),
        log_defaults: LogConfig {
            segment_bytes: args.segment_bytes,
            retention_ms: args.retention_ms,
            retention_bytes: args.retention_bytes,
            ..LogConfig::default()
        },
        retention_check_interval: Duration::from_millis(args.retention_check_interval_ms.max(100)),
        group_initial_rebalance_delay: Duration::from_millis(args.group_initial_rebalance_delay_ms),
        follower_wait: Duration::from_millis(args.emulate_follower_wait_ms),
        coordinator_load: Duration::from_millis(args.emulate_coordinator_load_ms),
        offsets_retention: Duration::from_secs(args.offsets_retention_minutes * 60),
        emulate_kafka: args.emulate_kafka,
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(kmirror_wire::tls::server_config(
                cert,
                key,
                args.tls_client_ca.as_deref(),
            )?),
            _ => None,
        },
        sasl: match &args.sasl_users {
            Some(path) => {
                Some(kmirror_broker::sasl::SaslUsers::from_file(path).map_err(anyhow::Error::msg)?)
            }
            None => None,
        },
        sasl_plain_without_tls: args.sasl_plain_without_tls,
        acl_super_users: match (args.authorizer, &args.super_users) {
            (Some(AuthorizerKind::Acl), Some(users)) => Some(
                kmirror_broker::acl::parse_super_users(users)
                    .map_err(|e| anyhow::anyhow!("--super-users: {e}"))?,
            ),
            _ => None,
        },
        ..BrokerConfig::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        // Installed before the listener accepts: a SIGTERM once it does must shut down.
        let signals = Signals::install()?;
        let running = kmirror_broker::start(config).await?;
        signals.wait().await;
        tracing::info!("Shutting down.");
        running.shutdown().await?;
        Ok(())
    })
}

fn parse_node_listen(s: &str) -> Result<(i32, SocketAddr), String> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not ID=HOST:PORT"))?;
    let id = id.parse().map_err(|e| format!("node id {id:?}: {e}"))?;
    let addr = addr.parse().map_err(|e| format!("address {addr:?}: {e}"))?;
    Ok((id, addr))
}

/// SIGTERM and SIGINT, handled from when they are installed.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `-1` as `--help` documents it ("keep forever", "no limit"), written as its own
    /// argument, not only as `--retention-ms=-1`.
    #[test]
    fn retention_takes_minus_one_as_its_own_argument() {
        let args = Args::try_parse_from([
            "kmirror-broker",
            "--data-dir",
            "d",
            "--retention-ms",
            "-1",
            "--retention-bytes",
            "-1",
        ])
        .expect("parsed");
        assert_eq!((args.retention_ms, args.retention_bytes), (-1, -1));
    }
}
