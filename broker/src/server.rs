//! The TCP server: one accept loop per node with a connection limit shared by all nodes,
//! one task per connection ([`crate::connection`]), background maintenance
//! (retention, interval flush), and graceful shutdown (stop accepting, finish in-flight
//! requests, flush, close logs). Stopping and starting single nodes is
//! [`crate::cluster::listeners`]'s job.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cluster::listeners::Nodes;
use crate::config::{BrokerConfig, ListenerConfig, SecurityProtocol};
use crate::log::FlushPolicy;
use crate::state::{now_ms, Broker, Listeners};
use crate::topics::TopicError;

/// Errors starting or stopping the broker.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] TopicError),
    #[error("{0}")]
    Listener(String),
}

/// A running broker.
#[derive(Debug)]
pub struct RunningBroker {
    /// The first node's address on the first listener.
    pub local_addr: SocketAddr,
    /// The first node's address on each listener.
    pub listen_addrs: Vec<(SecurityProtocol, SocketAddr)>,
    /// The first node's view.
    pub broker: Arc<Broker>,
    /// Every node's listener: addresses, stop and start (`--nodes`).
    pub nodes: Arc<Nodes>,
    /// The HTTP node control's address, when `admin_listen` is set.
    pub admin_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl RunningBroker {
    /// `host:port` clients should bootstrap from.
    pub fn bootstrap(&self) -> String {
        format!(
            "{}:{}",
            self.broker.advertised_host, self.broker.advertised_port
        )
    }

    /// Stops accepting, lets in-flight requests finish (up to the grace period), flushes
    /// and closes every log.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.shutdown.cancel();
        match self.task.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "Broker task failed.");
                Ok(())
            }
        }
    }
}

/// Binds every node's listeners (and the admin listener), recovers storage and starts
/// serving in the background.
pub async fn start(config: BrokerConfig) -> Result<RunningBroker, ServerError> {
    let configs = config.effective_listeners();
    check_listeners(&config, &configs)?;
    let mut sockets = Vec::new();
    let mut advertised = Vec::new();
    let mut listen_addrs = Vec::new();
    for (index, listener) in configs.iter().enumerate() {
        let first_advertised = listener.advertised.as_deref().and_then(split_host_port);
        let mut nodes = Vec::new();
        for (k, (node_id, addr)) in config
            .node_addrs(listener, index == 0)
            .into_iter()
            .enumerate()
        {
            let socket = TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind { addr, source })?;
            let local = socket
                .local_addr()
                .map_err(|source| ServerError::Bind { addr, source })?;
            nodes.push(match (&first_advertised, k) {
                (Some(a), 0) => a.clone(),
                // Other nodes: the advertised host with their own port.
                (Some((host, _)), _) => (host.clone(), local.port() as i32),
                (None, _) => (local.ip().to_string(), local.port() as i32),
            });
            if k == 0 {
                listen_addrs.push((listener.protocol, local));
            }
            sockets.push((node_id, index, local, socket));
        }
        advertised.push(nodes);
    }
    let admin = match config.admin_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind { addr, source })?,
        ),
        None => None,
    };
    let local_addr = listen_addrs[0].1;
    let advertised = Listeners::new(configs, advertised);
    let data_dir = config.data_dir.clone();
    let broker = Arc::new(
        tokio::task::spawn_blocking(move || Broker::open_nodes(config, advertised))
            .await
            .expect("open task")?,
    );
    crate::transactions::recover(&broker).await;
    let shutdown = CancellationToken::new();
    let nodes = Arc::new(Nodes::new(broker.clone(), shutdown.clone()));
    for (node_id, index, local, socket) in sockets {
        nodes.serve(node_id, index, local, socket).await;
    }
    let admin_addr = match admin {
        Some(l) => {
            let addr = l.local_addr().ok();
            tokio::spawn(crate::cluster::admin::serve(
                l,
                nodes.clone(),
                shutdown.clone(),
            ));
            tracing::info!(admin = ?addr, "Node control is listening (HTTP).");
            addr
        }
        None => None,
    };
    tracing::info!(
        listen = %local_addr,
        advertised = %format!("{}:{}", broker.advertised_host, broker.advertised_port),
        data_dir = ?data_dir,
        node_id = broker.config.node_id,
        nodes = broker.cluster.nodes().len(),
        emulate_kafka = %broker.versions.release(),
        listeners = %listen_addrs
            .iter()
            .map(|(p, a)| format!("{p}://{a}"))
            .collect::<Vec<_>>()
            .join(","),
        "kmirror-broker is accepting connections."
    );
    let task = tokio::spawn(run(broker.clone(), nodes.clone(), shutdown.clone()));
    Ok(RunningBroker {
        local_addr,
        listen_addrs,
        broker,
        nodes,
        admin_addr,
        shutdown,
        task,
    })
}

/// Refuses listeners whose security the flags do not provide, and security flags no
/// listener uses: a user who asked for TLS must never get plaintext.
fn check_listeners(config: &BrokerConfig, listeners: &[ListenerConfig]) -> Result<(), ServerError> {
    for l in listeners {
        if l.protocol.tls() && config.tls.is_none() {
            return Err(ServerError::Listener(format!(
                "listener {} needs a certificate: give --tls-cert and --tls-key",
                l.protocol
            )));
        }
        if l.protocol.sasl() && config.sasl.is_none() {
            return Err(ServerError::Listener(format!(
                "listener {} needs users: give --sasl-users",
                l.protocol
            )));
        }
        if l.protocol == SecurityProtocol::SaslPlaintext && !config.sasl_plain_without_tls {
            tracing::info!(listener = %l.protocol, "PLAIN is disabled on this listener (it would send passwords in clear): SCRAM only; --sasl-plain-without-tls enables it.");
        }
    }
    if config.tls.is_some() && !listeners.iter().any(|l| l.protocol.tls()) {
        return Err(ServerError::Listener(
            "--tls-cert is given but no listener is SSL or SASL_SSL".into(),
        ));
    }
    if config.sasl.is_some() && !listeners.iter().any(|l| l.protocol.sasl()) {
        return Err(ServerError::Listener(
            "--sasl-users is given but no listener is SASL_PLAINTEXT or SASL_SSL".into(),
        ));
    }
    Ok(())
}

fn split_host_port(s: &str) -> Option<(String, i32)> {
    let (host, port) = s.rsplit_once(':')?;
    Some((
        host.trim_matches(['[', ']']).to_string(),
        port.parse().ok()?,
    ))
}

/// Background maintenance until shutdown; then every node stops and the logs close.
async fn run(
    broker: Arc<Broker>,
    nodes: Arc<Nodes>,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let maintenance = tokio::spawn(maintain(broker.clone(), shutdown.clone()));
    let b = broker.clone();
    let stop = shutdown.clone();
    let timeouts = tokio::spawn(async move {
        let interval = crate::transactions::TIMEOUT_CHECK_INTERVAL;
        crate::transactions::sweep_timeouts(&b, interval, stop).await
    });
    shutdown.cancelled().await;
    nodes.stop_all().await;
    maintenance.abort();
    timeouts.abort();
    let b = broker.clone();
    tokio::task::spawn_blocking(move || b.topics.close())
        .await
        .expect("close task")?;
    tracing::info!("kmirror-broker stopped.");
    Ok(())
}

/// One node's accept loop, until `stop`; then its connections get the grace period to
/// finish in-flight requests.
pub(crate) async fn serve_listener(
    listener: TcpListener,
    broker: Arc<Broker>,
    limit: Arc<Semaphore>,
    stop: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "Accept failed.");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, max_connections = broker.config.max_connections, "Connection refused: limit reached.");
                    drop(stream);
                    continue;
                };
                let broker = broker.clone();
                let stop = stop.clone();
                connections.spawn(async move {
                    crate::connection::serve(stream, peer, broker, stop).await;
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    let grace = broker.config.shutdown_grace;
    if tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!(
            node_id = broker.config.node_id,
            remaining = connections.len(),
            "Shutdown grace period over; closing connections."
        );
        connections.abort_all();
    }
}

/// Retention checks and interval flushing, until shutdown.
async fn maintain(broker: Arc<Broker>, shutdown: CancellationToken) {
    // Like Kafka, the first check comes one interval after start, not at once.
    let period = broker.config.retention_check_interval;
    let mut retention = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let flush_every = match broker.config.flush {
        FlushPolicy::Interval { interval_ms } => Some(Duration::from_millis(interval_ms.max(1))),
        _ => None,
    };
    let mut flush = tokio::time::interval(flush_every.unwrap_or(Duration::from_secs(3600)));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = retention.tick() => {
                let b = broker.clone();
                let _ = tokio::task::spawn_blocking(move || apply_retention(&b)).await;
            }
            _ = flush.tick(), if flush_every.is_some() => {
                let b = broker.clone();
                let _ = tokio::task::spawn_blocking(move || flush_all(&b)).await;
            }
        }
    }
}

/// Applies retention to every partition now.
pub fn apply_retention(broker: &Broker) {
    let now = now_ms();
    for p in broker.topics.all_partitions() {
        let result = p.apply_retention(now);
        match result {
            Ok(0) => {}
            Ok(deleted) => {
                tracing::info!(topic = %p.topic, partition = p.index, deleted, "Retention deleted segments.")
            }
            Err(e) => {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "Retention failed.")
            }
        }
    }
}

fn flush_all(broker: &Broker) {
    for p in broker.topics.all_partitions() {
        let handle = p.log.lock().expect("log lock").sync_handle();
        if let Some(file) = handle {
            if let Err(e) = file.sync_data() {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "Flush failed.");
            }
        }
    }
}
