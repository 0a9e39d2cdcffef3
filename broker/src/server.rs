//! The TCP server: accept loop with a connection limit, one task per connection answering
//! pipelined requests in order, background maintenance (retention, interval flush), and
//! graceful shutdown (stop accepting, finish in-flight requests, flush, close logs).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::config::BrokerConfig;
use crate::dispatch::{self, Outcome};
use crate::log::FlushPolicy;
use crate::state::{now_ms, Broker};
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
}

/// A running broker.
#[derive(Debug)]
pub struct RunningBroker {
    pub local_addr: SocketAddr,
    pub broker: Arc<Broker>,
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

/// Binds, recovers storage and starts serving in the background.
pub async fn start(config: BrokerConfig) -> Result<RunningBroker, ServerError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;
    let advertised = match &config.advertised_listener {
        Some(a) => {
            split_host_port(a).unwrap_or((local_addr.ip().to_string(), local_addr.port() as i32))
        }
        None => (local_addr.ip().to_string(), local_addr.port() as i32),
    };
    let data_dir = config.data_dir.clone();
    let broker = Arc::new(
        tokio::task::spawn_blocking(move || Broker::open(config, advertised))
            .await
            .expect("open task")?,
    );
    tracing::info!(
        listen = %local_addr,
        advertised = %format!("{}:{}", broker.advertised_host, broker.advertised_port),
        data_dir = ?data_dir,
        node_id = broker.config.node_id,
        emulate_kafka = %broker.versions.release(),
        "kmirror-broker is accepting connections."
    );
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(listener, broker.clone(), shutdown.clone()));
    Ok(RunningBroker {
        local_addr,
        broker,
        shutdown,
        task,
    })
}

fn split_host_port(s: &str) -> Option<(String, i32)> {
    let (host, port) = s.rsplit_once(':')?;
    Some((
        host.trim_matches(['[', ']']).to_string(),
        port.parse().ok()?,
    ))
}

async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let limit = Arc::new(Semaphore::new(broker.config.max_connections));
    let mut connections = JoinSet::new();
    let maintenance = tokio::spawn(maintain(broker.clone(), shutdown.clone()));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
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
                let shutdown = shutdown.clone();
                connections.spawn(async move {
                    serve_connection(stream, peer, broker, shutdown).await;
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
            remaining = connections.len(),
            "Shutdown grace period over; closing connections."
        );
        connections.abort_all();
    }
    maintenance.abort();
    let b = broker.clone();
    tokio::task::spawn_blocking(move || b.topics.close())
        .await
        .expect("close task")?;
    tracing::info!("kmirror-broker stopped.");
    Ok(())
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let mut frames = FramedRead::new(
        read,
        kmirror_wire::frame::codec(broker.config.max_frame_bytes),
    );
    // Responses go to a writer task so the next request is read while one is written.
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let writer = tokio::spawn(kmirror_wire::frame::write_frames(write, rx));
    loop {
        let frame = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            f = frames.next() => f,
        };
        let frame = match frame {
            None => break,
            Some(Ok(f)) => f.freeze(),
            Some(Err(e)) => {
                tracing::warn!(%peer, error = %e, "Closing connection: unreadable frame.");
                break;
            }
        };
        match dispatch::handle(&broker, peer, frame).await {
            Outcome::Respond(bytes) => {
                if tx.send(bytes).await.is_err() {
                    break;
                }
            }
            Outcome::NoResponse => {}
            Outcome::Close(reason) => {
                tracing::warn!(%peer, %reason, "Closing connection.");
                break;
            }
        }
    }
    drop(tx);
    let _ = writer.await;
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
