//! The replication engine: starts the telemetry and embedded clusters, builds one client
//! per cluster, and runs every flow until shutdown.

pub mod acl_sync;
pub mod batching;
pub mod engine;
pub mod flow;
pub mod memory;
pub mod ownership;
pub mod pipeline;
pub mod progress;
pub mod rebuilds;
pub mod route;
pub mod selection;
pub mod source_runs;

use std::collections::BTreeMap;
use std::time::Duration;

use kmirror_wire::backoff::BackoffConfig;
use kmirror_wire::messenger::{MessengerConfig, SaslCredentials};
use kmirror_wire::scram;
use tokio_util::sync::CancellationToken;

use crate::client::{ClientConfig, ClusterClient};
use crate::config::{Cluster, Connection, SaslMechanism, Topology};

/// How a stopping flow drains: in-flight produces and the final progress write share
/// `--drain-timeout`, counted from the drain's first step, so a stop takes about that long
/// at most (systemd's TimeoutStopSec= is set above it), unless the drain is abandoned (an
/// owner that lost its flow to another daemon, [`ownership`]): then what is still
/// unacknowledged is dropped at once.
#[derive(Debug, Clone)]
pub struct Drain {
    deadline: Duration,
    abandoned: CancellationToken,
    /// When the drain began: its first step.
    started: std::sync::Arc<std::sync::OnceLock<tokio::time::Instant>>,
}

impl Drain {
    pub fn new(deadline: Duration) -> Self {
        Self {
            deadline,
            abandoned: CancellationToken::new(),
            started: std::sync::Arc::default(),
        }
    }

    /// When the drain's time is up (its clock starts at the first call).
    fn ends(&self) -> tokio::time::Instant {
        *self.started.get_or_init(tokio::time::Instant::now) + self.deadline
    }

    /// Ends the drain now, also one under way.
    pub fn abandon(&self) {
        self.abandoned.cancel();
    }

    /// What is left of the drain's time: none once abandoned.
    pub fn remaining(&self) -> Duration {
        if self.abandoned.is_cancelled() {
            Duration::ZERO
        } else {
            self.ends()
                .saturating_duration_since(tokio::time::Instant::now())
        }
    }

    /// `fut`'s output, unless the drain's time is up or it is abandoned first.
    pub async fn within<T>(&self, fut: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            _ = self.abandoned.cancelled() => None,
            out = tokio::time::timeout_at(self.ends(), fut) => out.ok(),
        }
    }
}

#[cfg(test)]
mod drain_tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_drain_and_what_follows_share_one_deadline() {
        let drain = Drain::new(Duration::from_millis(200));
        // The drain's clock starts at its first step, not when it was made...
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(drain.remaining(), Duration::from_millis(200));
        // ...a step that ends early leaves the rest to the next (the final progress write)...
        let step = drain.within(tokio::time::sleep(Duration::from_millis(150)));
        assert_eq!(step.await, Some(()));
        assert_eq!(drain.remaining(), Duration::from_millis(50));
        // ...and in-flight batches that never finish use the whole drain: none is left.
        assert!(drain.within(std::future::pending::<()>()).await.is_none());
        assert_eq!(drain.remaining(), Duration::ZERO);
        let abandoned = Drain::new(Duration::from_secs(60));
        abandoned.abandon();
        assert_eq!(abandoned.remaining(), Duration::ZERO);
        assert!(abandoned
            .within(std::future::pending::<()>())
            .await
            .is_none());
    }
}

/// Errors starting the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot start embedded cluster {cluster}: {source}")]
    Embedded {
        cluster: String,
        #[source]
        source: kmirror_broker::ServerError,
    },
    #[error("cannot start embedded cluster {cluster}: its TLS settings cannot be used: {reason}")]
    EmbeddedTls { cluster: String, reason: String },
    #[error("{0}")]
    Telemetry(String),
}

/// Embedded brokers the engine started; stopped on drop of the engine run.
pub struct Embedded {
    brokers: Vec<(String, kmirror_broker::RunningBroker)>,
}

impl Embedded {
    /// Starts every `embedded:` cluster of the topology.
    pub async fn start(
        topology: &Topology,
    ) -> Result<(Self, BTreeMap<String, String>), EngineError> {
        let mut brokers = Vec::new();
        let mut addrs = BTreeMap::new();
        for (name, cluster) in &topology.clusters {
            if let Connection::Embedded(e) = &cluster.connection {
                // Checked by validation; files changed since then fail the start.
                let tls = match e.tls.as_ref().and_then(|t| t.cert_and_key.as_ref()) {
                    Some((cert, key)) => Some(
                        kmirror_wire::tls::server_config(cert, key, None).map_err(|e| {
                            EngineError::EmbeddedTls {
                                cluster: name.clone(),
                                reason: e.to_string(),
                            }
                        })?,
                    ),
                    None => None,
                };
                let config = kmirror_broker::BrokerConfig {
                    listen: e.listen,
                    data_dir: Some(e.data_dir.clone()),
                    default_partitions: e.partitions as i32,
                    cluster_id: format!("kmirror-embedded-{name}"),
                    tls,
                    ..kmirror_broker::BrokerConfig::default()
                };
                let running = kmirror_broker::start(config).await.map_err(|source| {
                    EngineError::Embedded {
                        cluster: name.clone(),
                        source,
                    }
                })?;
                tracing::info!(cluster = %name, bootstrap = %running.bootstrap(), "Embedded cluster started.");
                addrs.insert(name.clone(), running.bootstrap());
                brokers.push((name.clone(), running));
            }
        }
        Ok((Self { brokers }, addrs))
    }

    pub async fn stop(self) {
        for (name, b) in self.brokers {
            if let Err(e) = b.shutdown().await {
                tracing::warn!(cluster = %name, error = %e, "Embedded cluster did not stop cleanly.");
            }
        }
    }
}

/// A client for `cluster`; `embedded` holds the addresses of started embedded brokers.
pub fn client_for(cluster: &Cluster, embedded: &BTreeMap<String, String>) -> ClusterClient {
    let (bootstrap, tls) = match &cluster.connection {
        Connection::Remote(r) => (
            r.bootstrap.iter().map(|b| b.to_string()).collect(),
            // Checked by validation; files changed since then fail every connect with
            // the reason, and never fall back to plaintext.
            r.tls
                .as_ref()
                .map(|t| t.client().map_err(|e| e.to_string())),
        ),
        Connection::Embedded(e) => (
            embedded.get(&cluster.name).cloned().into_iter().collect(),
            e.tls
                .as_ref()
                .map(|t| t.client().map_err(|e| e.to_string())),
        ),
    };
    ClusterClient::new(ClientConfig {
        cluster: cluster.name.clone(),
        bootstrap,
        messenger: MessengerConfig {
            client_id: cluster.client_id.clone(),
            request_timeout: cluster.request_timeout,
            connect_timeout: cluster.connect_timeout,
            tls,
            sasl: match &cluster.connection {
                Connection::Remote(r) => r.sasl.as_ref().map(|s| SaslCredentials {
                    scram: match s.mechanism {
                        SaslMechanism::Plain => None,
                        SaslMechanism::ScramSha256 => Some(scram::Mechanism::Sha256),
                        SaslMechanism::ScramSha512 => Some(scram::Mechanism::Sha512),
                    },
                    username: s.username.clone(),
                    password: s.password.expose().to_string(),
                }),
                Connection::Embedded(_) => None,
            },
            ..MessengerConfig::default()
        },
        backoff: BackoffConfig::default(),
        replication_factor: cluster.replication_factor,
    })
}

/// Runs every flow of `topology` until `stop` is cancelled, then drains them; applies each
/// topology that arrives on `reloads` ([`engine`]).
pub async fn run(
    topology: Topology,
    stop: CancellationToken,
    drain_deadline: Duration,
    mut reloads: tokio::sync::mpsc::Receiver<engine::Reload>,
) -> Result<(), EngineError> {
    let telemetry = crate::telemetry::Telemetry::start(topology.telemetry.as_ref(), stop.clone())
        .await
        .map_err(EngineError::Telemetry)?;
    let (embedded, addrs) = Embedded::start(&topology).await?;
    let mut engine =
        engine::Engine::start(topology, addrs, telemetry, stop.clone(), drain_deadline);
    let mut started = std::pin::pin!(crate::service::flows_started(engine.telemetry().flows()));
    let mut ready = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = &mut started, if !ready => {
                ready = true;
                tracing::info!("Every flow started; ready.");
                crate::service::notify(sd_notify::NotifyState::Ready);
                // systemd watches from the end of the start-up on.
                tokio::spawn(crate::service::watchdog(
                    engine.telemetry().flows(),
                    stop.clone(),
                ));
            }
            Some(reload) = reloads.recv() => {
                engine.reload(reload).await;
                // Before the first READY=1, the reload's waits for the flows too.
                if ready {
                    crate::service::notify(sd_notify::NotifyState::Ready);
                }
            }
        }
    }
    crate::service::notify(sd_notify::NotifyState::Stopping);
    engine.stop().await;
    embedded.stop().await;
    Ok(())
}
