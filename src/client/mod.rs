//! The daemon's Kafka client, built on `kmirror-wire`: bootstrap, a metadata cache,
//! one connection per broker, leader routing, and the one retry loop whose decisions come
//! from [`kmirror_wire::errors::classify`].
//!
//! It speaks to any Kafka 2.8+ cluster: every request goes out at the highest version both
//! sides support (negotiated per connection with ApiVersions). A broker can be reached over
//! several connections ("lanes"): Kafka handles one request at a time per connection, so
//! produces of different partitions on different lanes run concurrently, while one
//! partition always uses one lane and its requests keep their order. Connections are
//! opened without holding a lock across the connect ([`connections`]), over TLS and with
//! SASL (PLAIN, SCRAM) when the cluster's settings ask for them (the messenger's).

pub mod acls;
pub mod admin;
mod connections;
pub mod fetch;
pub mod groups;
pub mod list_offsets;
pub mod membership;
pub mod metadata;
pub mod produce;
mod produce_combiner;
pub mod produce_lane;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kmirror_wire::backoff::{Backoff, BackoffConfig};
use kmirror_wire::errors::{classify, ErrorClass, ResponseError};
use kmirror_wire::messenger::{Messenger, MessengerConfig, RequestError};

use connections::{Connections, Endpoint, Opening};

pub use metadata::{MetadataSnapshot, PartitionMeta, TopicMeta};

/// Errors of the client layer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("cluster {cluster}: {source}")]
    Request {
        cluster: String,
        #[source]
        source: RequestError,
    },
    #[error("cluster {cluster}: {what} failed with {error}{}", .message.as_deref().filter(|m| !m.is_empty()).map(|m| format!(": {m}")).unwrap_or_default())]
    Broker {
        cluster: String,
        what: String,
        error: ResponseError,
        message: Option<String>,
    },
    #[error("cluster {cluster}: the {what} response does not mention topic {topic} partition {partition}")]
    MissingPartition {
        cluster: String,
        what: String,
        topic: String,
        partition: i32,
    },
    #[error("source data of {what} cannot be mirrored: {reason}")]
    Source { what: String, reason: String },
    /// The topology cannot be carried out on this cluster as it is (an operator decides).
    #[error("cluster {cluster}: {what}")]
    Refused { cluster: String, what: String },
    /// A failure inside the daemon itself (a task that panicked or was cancelled).
    #[error("{what}")]
    Internal { what: String },
    /// An answer without the data asked for (e.g. an empty, quota-throttled Fetch
    /// response, or a leader that has not caught up yet): worth asking again.
    #[error("cluster {cluster}: {what}")]
    Incomplete { cluster: String, what: String },
    /// No broker to send to: `reason` says why (every bootstrap address's error).
    #[error("cluster {cluster}: no reachable bootstrap broker ({reason})")]
    NoBroker { cluster: String, reason: String },
    #[error("cluster {cluster}: topic {topic} partition {partition} has no leader")]
    NoLeader {
        cluster: String,
        topic: String,
        partition: i32,
    },
    #[error("cluster {cluster}: {what} did not succeed within {deadline_secs} s: {last}")]
    GaveUp {
        cluster: String,
        what: String,
        deadline_secs: u64,
        last: Box<ClientError>,
    },
}

impl ClientError {
    /// What a caller should do about this error; the one retry classifier.
    pub fn class(&self) -> ErrorClass {
        match self {
            ClientError::Request { source, .. } => match source {
                RequestError::Version(_) | RequestError::Frame(_) => ErrorClass::Fatal,
                RequestError::Withdrawn { .. } => ErrorClass::Retry,
                _ => ErrorClass::RetryRefreshMetadata,
            },
            ClientError::Broker { error, .. } => classify(error.code()),
            ClientError::NoBroker { .. }
            | ClientError::NoLeader { .. }
            | ClientError::MissingPartition { .. } => ErrorClass::RetryRefreshMetadata,
            ClientError::Incomplete { .. } => ErrorClass::Retry,
            ClientError::GaveUp { .. }
            | ClientError::Source { .. }
            | ClientError::Refused { .. }
            | ClientError::Internal { .. } => ErrorClass::Fatal,
        }
    }

    /// Wraps a broker error code, if it is one.
    pub fn from_code(cluster: &str, what: &str, code: i16, message: Option<&str>) -> Option<Self> {
        ResponseError::try_from_code(code).map(|error| ClientError::Broker {
            cluster: cluster.to_string(),
            what: what.to_string(),
            error,
            message: message.map(str::to_string),
        })
    }
}

tokio::task_local! {
    /// Told of each error a retry loop retries, within [`report_retries`].
    static RETRY_REPORT: Arc<dyn Fn(&ClientError) + Send + Sync>;
}

/// Runs `fut`, telling `report` of every error that a [`ClusterClient::retry`] inside it
/// (of any client, at any depth, in this task) is about to retry, so a caller waiting on
/// requests retried deep below it (a flow's setup) can show why it still waits. Only
/// reports: what is retried is still decided by the retry loop alone.
pub async fn report_retries<F: Future>(
    report: impl Fn(&ClientError) + Send + Sync + 'static,
    fut: F,
) -> F::Output {
    RETRY_REPORT.scope(Arc::new(report), fut).await
}

/// Connection settings of one cluster.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub cluster: String,
    pub bootstrap: Vec<String>,
    pub messenger: MessengerConfig,
    pub backoff: BackoffConfig,
    /// Replication factor of the topics this client creates; `None`: the cluster's
    /// `default.replication.factor` (-1 on the wire).
    pub replication_factor: Option<i16>,
}

/// How long to honour a broker's `throttle_time_ms` (KIP-219): as asked, at most a minute.
pub fn throttle_wait(throttle_time_ms: i32) -> Duration {
    Duration::from_millis(throttle_time_ms.clamp(0, 60_000) as u64)
}

/// A client for one cluster, shared by every flow that uses it.
#[derive(Debug)]
pub struct ClusterClient {
    config: ClientConfig,
    connections: Connections,
    produce_lanes: produce_lane::Lanes,
    metadata: Mutex<Arc<MetadataSnapshot>>,
}

impl ClusterClient {
    pub fn new(config: ClientConfig) -> Self {
        Self {
            config,
            connections: Connections::default(),
            produce_lanes: produce_lane::Lanes::default(),
            metadata: Mutex::new(Arc::new(MetadataSnapshot::default())),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.cluster
    }

    /// A connection for cluster-wide requests, opened if needed: to the first bootstrap
    /// broker that answers, else to the first broker of the last metadata that does
    /// (Kafka's clients use any broker they know of once bootstrapped, so a cluster whose
    /// bootstrap broker is down is still reached); see [`connections`] for why no lock is
    /// held while connecting.
    pub async fn any_broker(&self) -> Result<Arc<Messenger>, ClientError> {
        self.connections
            .get(Endpoint::Bootstrap, || {
                let mut addrs = self.config.bootstrap.clone();
                for addr in self.metadata().brokers.values() {
                    if !addrs.contains(addr) {
                        addrs.push(addr.clone());
                    }
                }
                let config = self.config.messenger.clone();
                let cluster = self.config.cluster.clone();
                let opening: Opening = Box::pin(async move {
                    // Each address's error, not only the last one's: the first may be the
                    // one that tells (a TLS or SASL mismatch, say).
                    let mut errors = Vec::new();
                    for addr in &addrs {
                        match Messenger::connect(addr, config.clone()).await {
                            Ok(m) => return Ok(Arc::new(m)),
                            Err(e) => errors.push(e.to_string()),
                        }
                    }
                    let reason = if errors.is_empty() {
                        "no bootstrap address".to_string()
                    } else {
                        errors.join("; ")
                    };
                    Err(ClientError::NoBroker { cluster, reason })
                });
                Ok(opening)
            })
            .await
    }

    /// The connection to broker `node_id`, opened if needed.
    pub async fn broker(&self, node_id: i32) -> Result<Arc<Messenger>, ClientError> {
        self.broker_lane(node_id, 0).await
    }

    /// Connection number `lane` to broker `node_id`, opened if needed.
    pub async fn broker_lane(
        &self,
        node_id: i32,
        lane: usize,
    ) -> Result<Arc<Messenger>, ClientError> {
        self.connections
            .get(Endpoint::Broker(node_id, lane), || {
                let addr = self
                    .metadata()
                    .brokers
                    .get(&node_id)
                    .cloned()
                    .ok_or_else(|| ClientError::NoBroker {
                        cluster: self.config.cluster.clone(),
                        reason: format!("broker {node_id} is not in the metadata"),
                    })?;
                let config = self.config.messenger.clone();
                let cluster = self.config.cluster.clone();
                let opening: Opening = Box::pin(async move {
                    Messenger::connect(&addr, config)
                        .await
                        .map(Arc::new)
                        .map_err(|source| ClientError::Request { cluster, source })
                });
                Ok(opening)
            })
            .await
    }

    /// The latest metadata seen.
    pub fn metadata(&self) -> Arc<MetadataSnapshot> {
        self.metadata.lock().expect("metadata lock").clone()
    }

    /// Fetches metadata for all topics and caches it.
    pub async fn refresh_metadata(&self) -> Result<Arc<MetadataSnapshot>, ClientError> {
        let m = self.any_broker().await?;
        let snapshot = Arc::new(
            metadata::fetch(&m, &self.config.cluster)
                .await
                .inspect_err(|e| {
                    if let ClientError::Request { .. } = e {
                        // The next attempt reconnects.
                        self.connections.forget(Endpoint::Bootstrap, &m);
                    }
                })?,
        );
        *self.metadata.lock().expect("metadata lock") = snapshot.clone();
        Ok(snapshot)
    }

    /// The connection to the leader of a partition (from cached metadata).
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<Arc<Messenger>, ClientError> {
        self.leader_lane(topic, partition, 0).await
    }

    /// Connection `lane` to the leader of a partition (from cached metadata).
    pub async fn leader_lane(
        &self,
        topic: &str,
        partition: i32,
        lane: usize,
    ) -> Result<Arc<Messenger>, ClientError> {
        self.broker_lane(self.leader_id(topic, partition)?, lane)
            .await
    }

    /// The combiner on the connection lane that `ticket` names to the leader of a
    /// partition, which gathers batches of many partitions into one Produce request
    /// ([`produce_lane`]).
    pub async fn produce_lane(
        &self,
        topic: &str,
        partition: i32,
        ticket: usize,
    ) -> Result<produce_lane::ProduceLane, ClientError> {
        let leader = self.leader_id(topic, partition)?;
        let first = self.broker_lane(leader, 0).await?;
        let lane = ticket % self.produce_lanes.count(leader, &first).await;
        let m = match lane {
            0 => first,
            lane => self.broker_lane(leader, lane).await?,
        };
        Ok(self.produce_lanes.get(leader, lane, m))
    }

    /// Whether this cluster's brokers that take our produces are all near: their first
    /// connection answered within [`produce_lane::NEAR_ROUND_TRIP`].
    pub fn produces_near(&self) -> bool {
        self.produce_lanes.all_near()
    }

    /// The lane ticket of a new partition, for all its life: in turn, so partitions spread
    /// evenly over each broker's lanes, whose number is fixed for the broker once chosen
    /// ([`produce_lane::NEAR_PRODUCE_LANES`]), so a partition's requests stay on one.
    pub fn assign_produce_lane(&self) -> usize {
        self.produce_lanes.assign()
    }

    /// The leader of a partition in cached metadata.
    fn leader_id(&self, topic: &str, partition: i32) -> Result<i32, ClientError> {
        self.metadata()
            .leader(topic, partition)
            .ok_or_else(|| ClientError::NoLeader {
                cluster: self.config.cluster.clone(),
                topic: topic.to_string(),
                partition,
            })
    }

    /// The controller (admin requests), or any broker if none is known.
    pub async fn controller(&self) -> Result<Arc<Messenger>, ClientError> {
        match self.metadata().controller_id {
            id if id >= 0 => self.broker(id).await,
            _ => self.any_broker().await,
        }
    }

    /// Runs `op` until it succeeds, retrying per [`ClientError::class`] with backoff and
    /// refreshing metadata when the error says it is stale. Gives up after `deadline`
    /// (`None`: never; the caller's cancellation ends it) or on a fatal error.
    pub async fn retry<T, F, Fut>(
        &self,
        what: &str,
        deadline: Option<Duration>,
        op: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        self.retry_observed(what, deadline, op, |_| {}).await
    }

    /// [`Self::retry`], calling `on_retry` with each error it is about to retry (not with
    /// the fatal or last one it returns), e.g. to count retries by class.
    pub async fn retry_observed<T, F, Fut>(
        &self,
        what: &str,
        deadline: Option<Duration>,
        mut op: F,
        mut on_retry: impl FnMut(&ClientError),
    ) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        // Made at the first failure, its deadline still counted from now: most calls
        // succeed at once (one per produced batch).
        let started = deadline.map(|_| std::time::Instant::now());
        let mut backoff: Option<Backoff> = None;
        let mut attempts = 0u32;
        loop {
            let err = match op().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            attempts += 1;
            let class = err.class();
            if class == ErrorClass::Fatal {
                return Err(err);
            }
            let backoff = backoff.get_or_insert_with(|| {
                Backoff::new(BackoffConfig {
                    deadline: deadline
                        .zip(started)
                        .map(|(d, s)| d.saturating_sub(s.elapsed())),
                    ..self.config.backoff
                })
            });
            let Some(delay) = backoff.next_delay() else {
                return Err(ClientError::GaveUp {
                    cluster: self.config.cluster.clone(),
                    what: what.to_string(),
                    deadline_secs: deadline.map_or(0, |d| d.as_secs()),
                    last: Box::new(err),
                });
            };
            on_retry(&err);
            let _ = RETRY_REPORT.try_with(|report| report(&err));
            // Report the first failure and then every tenth, not every retry.
            if attempts == 1 || attempts.is_multiple_of(10) {
                tracing::warn!(cluster = %self.config.cluster, what, attempts, error = %err, retry_in_ms = delay.as_millis() as u64, "Request failed; retrying.");
            }
            tokio::time::sleep(delay).await;
            if class == ErrorClass::RetryRefreshMetadata {
                if let Err(e) = self.refresh_metadata().await {
                    tracing::debug!(cluster = %self.config.cluster, error = %e, "Metadata refresh failed.");
                }
            }
        }
    }
}

/// A kmirror-broker on a free 127.0.0.1 port and a client of it, for unit tests.
#[cfg(test)]
pub(crate) async fn local_cluster(cluster: &str) -> (kmirror_broker::RunningBroker, ClusterClient) {
    local_cluster_at(cluster, kmirror_broker::KafkaRelease::default()).await
}

/// [`local_cluster`] with the broker emulating `release`.
#[cfg(test)]
pub(crate) async fn local_cluster_at(
    cluster: &str,
    release: kmirror_broker::KafkaRelease,
) -> (kmirror_broker::RunningBroker, ClusterClient) {
    let broker = kmirror_broker::start(kmirror_broker::BrokerConfig {
        listen: "127.0.0.1:0".parse().expect("an address"),
        emulate_kafka: release,
        ..kmirror_broker::BrokerConfig::default()
    })
    .await
    .expect("the broker starts");
    let client = ClusterClient::new(ClientConfig {
        cluster: cluster.into(),
        bootstrap: vec![broker.bootstrap()],
        messenger: MessengerConfig::default(),
        backoff: BackoffConfig::default(),
        replication_factor: None,
    });
    (broker, client)
}

/// [`local_cluster`] with `topic` created (`partitions` partitions) and the client's
/// metadata naming it.
#[cfg(test)]
pub(crate) async fn local_cluster_with_topic(
    cluster: &str,
    topic: &str,
    partitions: i32,
) -> (kmirror_broker::RunningBroker, ClusterClient) {
    let (broker, client) = local_cluster(cluster).await;
    client.refresh_metadata().await.expect("metadata");
    client
        .create_topic(topic, partitions, &[])
        .await
        .expect("the topic is created");
    client.refresh_metadata().await.expect("metadata");
    (broker, client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn live_broker() -> kmirror_broker::RunningBroker {
        kmirror_broker::start(kmirror_broker::BrokerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..kmirror_broker::BrokerConfig::default()
        })
        .await
        .unwrap()
    }

    fn client(request_timeout: Duration) -> ClusterClient {
        ClusterClient::new(ClientConfig {
            cluster: "test".into(),
            bootstrap: Vec::new(),
            messenger: MessengerConfig {
                request_timeout,
                ..MessengerConfig::default()
            },
            backoff: BackoffConfig::default(),
            replication_factor: None,
        })
    }

    /// SASL asked of a listener without it: the error says so, not that the mechanism is
    /// missing from an empty list.
    #[tokio::test]
    async fn sasl_against_a_listener_without_it_says_so() {
        let broker = live_broker().await;
        let client = ClusterClient::new(ClientConfig {
            cluster: "plain".into(),
            bootstrap: vec![broker.bootstrap()],
            messenger: MessengerConfig {
                sasl: Some(kmirror_wire::messenger::SaslCredentials {
                    scram: None,
                    username: "alice".into(),
                    password: "secret".into(),
                }),
                ..MessengerConfig::default()
            },
            backoff: BackoffConfig::default(),
            replication_factor: None,
        });
        let error = client.refresh_metadata().await.unwrap_err().to_string();
        assert!(error.contains("does not use SASL"), "{error}");
        let _ = broker.shutdown().await;
    }

    /// Finding 18: a broker that accepts TCP but never answers ApiVersions must not stall
    /// connections to the other brokers of the cluster while the attempt is under way.
    #[tokio::test]
    async fn a_broker_that_never_answers_does_not_stall_the_others() {
        let live = live_broker().await;
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_addr = silent.local_addr().unwrap().to_string();
        let (accepted_tx, accepted) = tokio::sync::oneshot::channel();
        let hold = tokio::spawn(async move {
            let (socket, _) = silent.accept().await.unwrap();
            let _ = accepted_tx.send(());
            // Keep the socket open and never answer.
            std::future::pending::<()>().await;
            drop(socket);
        });
        let client = Arc::new(client(Duration::from_secs(120)));
        *client.metadata.lock().unwrap() = Arc::new(MetadataSnapshot {
            brokers: [(1, silent_addr), (2, live.bootstrap())].into(),
            ..MetadataSnapshot::default()
        });
        let stuck = tokio::spawn({
            let client = client.clone();
            async move { client.broker(1).await }
        });
        accepted.await.unwrap();
        let m = client.broker(2).await.expect("the live broker connects");
        assert!(!m.is_poisoned());
        assert!(
            !stuck.is_finished(),
            "the live broker was reached only after the silent one gave up"
        );
        stuck.abort();
        hold.abort();
        let _ = live.shutdown().await;
    }

    /// A bootstrap address that accepts connections and never answers costs the connect
    /// timeout (which covers ApiVersions), not the request timeout, before the next
    /// address is tried: here 2 s, where the request timeout is two minutes (the live
    /// broker's connection must be set up within the same 2 s on a busy machine).
    #[tokio::test]
    async fn a_silent_bootstrap_broker_costs_the_connect_timeout_only() {
        let live = live_broker().await;
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_addr = silent.local_addr().unwrap().to_string();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                held.push(socket);
            }
        });
        let client = ClusterClient::new(ClientConfig {
            cluster: "test".into(),
            bootstrap: vec![silent_addr, live.bootstrap()],
            messenger: MessengerConfig {
                request_timeout: Duration::from_secs(120),
                connect_timeout: Duration::from_secs(2),
                ..MessengerConfig::default()
            },
            backoff: BackoffConfig::default(),
            replication_factor: None,
        });
        let md = tokio::time::timeout(Duration::from_secs(60), client.refresh_metadata())
            .await
            .expect("the silent broker held the client for its request timeout")
            .expect("the live bootstrap broker answers");
        assert!(!md.brokers.is_empty());
        hold.abort();
        let _ = live.shutdown().await;
    }

    /// A cluster none of whose bootstrap addresses answers names each of them, not only
    /// the last one tried.
    #[tokio::test]
    async fn an_unreachable_cluster_names_every_bootstrap_address() {
        // Bound and closed again: nothing listens there.
        let closed: Vec<String> = (0..2)
            .map(|_| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().to_string()
            })
            .collect();
        let client = ClusterClient::new(ClientConfig {
            bootstrap: closed.clone(),
            ..client(Duration::from_secs(5)).config.clone()
        });
        let e = client.any_broker().await.unwrap_err().to_string();
        assert!(closed.iter().all(|a| e.contains(a.as_str())), "{e}");
    }

    /// Once bootstrapped, a cluster whose bootstrap broker is down is reached through
    /// the brokers its metadata named, as Kafka's clients do.
    #[tokio::test]
    async fn a_cluster_whose_bootstrap_broker_is_down_is_reached_through_the_others() {
        let live = live_broker().await;
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let client = ClusterClient::new(ClientConfig {
            bootstrap: vec![closed],
            ..client(Duration::from_secs(5)).config.clone()
        });
        *client.metadata.lock().unwrap() = Arc::new(MetadataSnapshot {
            brokers: [(2, live.bootstrap())].into(),
            ..MetadataSnapshot::default()
        });
        let md = client
            .refresh_metadata()
            .await
            .expect("the known broker answers");
        assert!(!md.brokers.is_empty());
        let _ = live.shutdown().await;
    }

    /// Callers for the same broker share one attempt and its outcome.
    #[tokio::test]
    async fn concurrent_callers_share_one_connection() {
        let live = live_broker().await;
        let client = client(Duration::from_secs(30));
        *client.metadata.lock().unwrap() = Arc::new(MetadataSnapshot {
            brokers: [(2, live.bootstrap())].into(),
            ..MetadataSnapshot::default()
        });
        let (a, b) = tokio::join!(client.broker(2), client.broker(2));
        assert!(Arc::ptr_eq(&a.unwrap(), &b.unwrap()));
        let missing = client.broker(3).await.unwrap_err();
        assert!(matches!(missing, ClientError::NoBroker { .. }), "{missing}");
        let _ = live.shutdown().await;
    }
}
