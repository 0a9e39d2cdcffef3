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

/// A single-node Kafka-compatible broker for local development, tests and CI.
#[derive(Debug, Parser)]
#[command(name = "kmirror-broker", version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "KMIRROR_BROKER_LISTEN", default_value = "127.0.0.1:9092")]
    listen: SocketAddr,
    /// Directory holding logs, topic metadata, group offsets and producer state.
    #[arg(long, env = "KMIRROR_BROKER_DATA_DIR")]
    data_dir: PathBuf,
    /// host:port advertised to clients in Metadata (defaults to the bound address).
    #[arg(long, env = "KMIRROR_BROKER_ADVERTISED_LISTENER")]
    advertised_listener: Option<String>,
    /// This broker's node id.
    #[arg(long, env = "KMIRROR_BROKER_NODE_ID", default_value_t = 0)]
    node_id: i32,
    /// Cluster id reported in Metadata and DescribeCluster.
    #[arg(
        long,
        env = "KMIRROR_BROKER_CLUSTER_ID",
        default_value = "kmirror-local-cluster"
    )]
    cluster_id: String,
    /// Partitions of auto-created topics and of CreateTopics without a count.
    #[arg(long, env = "KMIRROR_BROKER_DEFAULT_PARTITIONS", default_value_t = 1)]
    default_partitions: i32,
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
    /// Broker default for the topic config segment.bytes.
    #[arg(long, env = "KMIRROR_BROKER_SEGMENT_BYTES", default_value_t = 1 << 30)]
    segment_bytes: u64,
    /// Broker default for the topic config retention.ms (-1: keep forever).
    #[arg(long, env = "KMIRROR_BROKER_RETENTION_MS", default_value_t = 7 * 24 * 3600 * 1000)]
    retention_ms: i64,
    /// Broker default for the topic config retention.bytes (-1: no limit).
    #[arg(long, env = "KMIRROR_BROKER_RETENTION_BYTES", default_value_t = -1)]
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
    /// Advertise the API versions of this Kafka release (2.8, 3.0, 3.6, 3.9, 4.0, 4.1),
    /// capped at what the broker implements; APIs the release lacked are not offered.
    #[arg(long, env = "KMIRROR_BROKER_EMULATE_KAFKA", default_value = "4.1")]
    emulate_kafka: KafkaRelease,
    /// Log filter, e.g. info, debug, kmirror_broker=debug.
    #[arg(long, env = "KMIRROR_BROKER_LOG_LEVEL", default_value = "info")]
    log_level: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log_level)?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = BrokerConfig {
        listen: args.listen,
        advertised_listener: args.advertised_listener,
        node_id: args.node_id,
        cluster_id: args.cluster_id,
        data_dir: Some(args.data_dir),
        default_partitions: args.default_partitions.max(1),
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
        log_defaults: LogConfig {
            segment_bytes: args.segment_bytes,
            retention_ms: args.retention_ms,
            retention_bytes: args.retention_bytes,
            ..LogConfig::default()
        },
        retention_check_interval: Duration::from_millis(args.retention_check_interval_ms.max(100)),
        group_initial_rebalance_delay: Duration::from_millis(args.group_initial_rebalance_delay_ms),
        emulate_kafka: args.emulate_kafka,
        ..BrokerConfig::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let running = kmirror_broker::start(config).await?;
        wait_for_signal().await?;
        tracing::info!("Shutting down.");
        running.shutdown().await?;
        Ok(())
    })
}

async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
