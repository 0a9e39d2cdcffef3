//! The broker's state, handed to every request handler: one [`Broker`] per node, each
//! a view (its own node id and advertised address) of state all nodes share through
//! `Arc`s (topics, groups, producer ids, the cluster's leadership table).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::acl::Authorizer;
use crate::cluster::{Cluster, LeaderError, NodeEndpoint};
use crate::config::{BrokerConfig, ListenerConfig, SecurityProtocol};
use crate::credentials::CredentialStore;
use crate::dispatch::VersionTable;
use crate::fetch_waiters::FetchWaiters;
use crate::groups::{CoordinatorConfig, GroupConfig, GroupCoordinator, StatesFilter};
use crate::log::flush::GroupCommit;
use crate::log::FlushPolicy;
use crate::producers::ProducerIdManager;
use crate::topic_config::BrokerDefaults;
use crate::topics::{Topic, TopicError, TopicRegistry};
use crate::versions::KafkaRelease;

/// Everything handlers share; `config.node_id` is the node this view serves.
#[derive(Debug, Clone)]
pub struct Broker {
    pub config: BrokerConfig,
    /// `host:port` advertised in Metadata.
    pub advertised_host: String,
    pub advertised_port: i32,
    pub topics: Arc<TopicRegistry>,
    pub groups: Arc<GroupCoordinator>,
    /// Group commit for `FlushPolicy::Always`.
    pub group_commit: Option<Arc<GroupCommit>>,
    /// The long-polling fetches, woken by appends to the partitions they read.
    pub fetch_waiters: Arc<FetchWaiters>,
    pub producer_ids: Arc<ProducerIdManager>,
    /// The transaction coordinator (every node's: the lowest live node answers).
    pub transactions: Arc<crate::transactions::Coordinator>,
    /// Broker configs changed at run time for the broker (persisted in
    /// `broker-configs.json`; shared by every node of this process) and as cluster-wide
    /// defaults (resource name "", persisted in `broker-default-configs.json`), as Kafka's
    /// DynamicBrokerConfig keeps them.
    broker_overrides: Arc<RwLock<BTreeMap<String, String>>>,
    default_overrides: Arc<RwLock<BTreeMap<String, String>>>,
    /// The API versions this broker advertises (its emulated Kafka release).
    pub versions: VersionTable,
    /// The nodes and who leads which partition.
    pub cluster: Arc<Cluster>,
    /// Every listener and its advertised address on every node.
    pub listeners: Arc<Listeners>,
    /// The listener this view serves (an index into `listeners`).
    pub listener: usize,
    /// Kafka's ACL authorizer (`--authorizer acl`); `None`: everything is allowed.
    pub authorizer: Option<Arc<Authorizer>>,
    /// SCRAM credentials of SASL users (persisted in `scram-credentials.json`; shared by
    /// every node of this process), bootstrapped from `config.sasl`.
    pub credentials: Arc<CredentialStore>,
    /// Client quotas (persisted in `client-quotas.json`; shared by every node of this
    /// process, each measuring its own clients).
    pub quotas: Arc<crate::quotas::ClientQuotas>,
    /// Until when group requests are answered COORDINATOR_LOAD_IN_PROGRESS
    /// (`config.coordinator_load` after start).
    pub groups_loading_until: std::time::Instant,
}

/// The process's listeners and what each advertises for each node.
#[derive(Debug, Default)]
pub struct Listeners {
    pub configs: Vec<ListenerConfig>,
    /// `advertised[listener][node id]`: `(host, port)`.
    advertised: Vec<BTreeMap<i32, (String, i32)>>,
}

impl Listeners {
    /// `node` at its address on listener number `listener`.
    fn advertise(&self, listener: usize, mut node: NodeEndpoint) -> NodeEndpoint {
        if let Some((host, port)) = self
            .advertised
            .get(listener)
            .and_then(|n| n.get(&node.node_id))
        {
            node.host = host.clone();
            node.port = *port;
        }
        node
    }

    /// `advertised[listener][k]` is the k-th node's address on that listener (node ids are
    /// given when the broker opens).
    pub fn new(configs: Vec<ListenerConfig>, advertised: Vec<Vec<(String, i32)>>) -> Self {
        let advertised = advertised
            .into_iter()
            .map(|nodes| (0..).zip(nodes).collect())
            .collect();
        Self {
            configs,
            advertised,
        }
    }
}

impl Broker {
    /// Opens the data directory and recovers logs. `advertised` is `host:port`.
    pub fn open(config: BrokerConfig, advertised: (String, i32)) -> Result<Self, TopicError> {
        let listeners = config.effective_listeners().into_iter().take(1).collect();
        Self::open_nodes(config, Listeners::new(listeners, vec![vec![advertised]]))
    }

    /// [`Self::open`] for every node of `listeners`, ids from `config.node_id` on; the
    /// returned view is the first node's on the first listener, whose addresses the
    /// leadership table keeps.
    pub fn open_nodes(config: BrokerConfig, mut listeners: Listeners) -> Result<Self, TopicError> {
        let advertised: Vec<(String, i32)> = listeners
            .advertised
            .first()
            .map(|nodes| nodes.values().cloned().collect())
            .unwrap_or_default();
        for nodes in &mut listeners.advertised {
            *nodes = std::mem::take(nodes)
                .into_values()
                .enumerate()
                .map(|(k, a)| (config.node_id + k as i32, a))
                .collect();
        }
        if let Some(dir) = &config.data_dir {
            std::fs::create_dir_all(dir).map_err(|source| TopicError::Persist {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let topics = Arc::new(TopicRegistry::open(
            config.data_dir.clone(),
            config.topic_defaults(),
        )?);
        let lookup_topics = topics.clone();
        let lookup = move |topic: &str, partition: i32| {
            lookup_topics
                .get(topic)
                .is_some_and(|t| partition >= 0 && partition < t.partition_count())
        };
        let groups = GroupCoordinator::open(
            CoordinatorConfig {
                data_dir: config.data_dir.clone(),
                fsync: config.flush == FlushPolicy::Always,
                group: GroupConfig {
                    initial_rebalance_delay_ms: config.group_initial_rebalance_delay.as_millis()
                        as u64,
                    assignments_while_rebalancing: config.emulate_kafka >= KafkaRelease::V4_0,
                    empty_group_dies_with_its_offsets: config.emulate_kafka < KafkaRelease::V4_0,
                    states_filter: match config.emulate_kafka {
                        r if r >= KafkaRelease::V4_0 => StatesFilter::IgnoreCaseTrimmed,
                        KafkaRelease::V3_9 => StatesFilter::IgnoreCase,
                        _ => StatesFilter::Exact,
                    },
                    ..GroupConfig::default()
                },
                offsets_retention: config.offsets_retention,
                ..CoordinatorConfig::default()
            },
            Arc::new(lookup),
        )
        .map_err(|e| TopicError::Persist {
            path: "__consumer_offsets.log".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let producer_ids = match &config.data_dir {
            Some(dir) => ProducerIdManager::open(dir).map_err(|source| TopicError::Persist {
                path: dir.join(ProducerIdManager::FILE_NAME).display().to_string(),
                source,
            })?,
            None => ProducerIdManager::in_memory(),
        };
        let transactions = crate::transactions::Coordinator::open(config.data_dir.as_deref())
            .map_err(|source| TopicError::Persist {
                path: config.data_dir.as_ref().map_or_else(
                    || crate::transactions::coordinator::FILE_NAME.into(),
                    |d| {
                        d.join(crate::transactions::coordinator::FILE_NAME)
                            .display()
                            .to_string()
                    },
                ),
                source,
            })?;
        let read_overrides = |file: &str| -> BTreeMap<String, String> {
            config
                .data_dir
                .as_ref()
                .and_then(|d| std::fs::read(d.join(file)).ok())
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default()
        };
        let broker_overrides = read_overrides(BROKER_CONFIGS_FILE);
        let default_overrides = read_overrides(BROKER_DEFAULT_CONFIGS_FILE);
        let nodes: Vec<NodeEndpoint> = advertised
            .iter()
            .enumerate()
            .map(|(k, (host, port))| NodeEndpoint {
                node_id: config.node_id + k as i32,
                host: host.clone(),
                port: *port,
            })
            .collect();
        let cluster = Cluster::open(
            nodes,
            config.data_dir.as_deref(),
            config.default_replication_factor,
        )
        .map_err(|source| TopicError::Persist {
            path: "leaders.json".into(),
            source,
        })?;
        let credentials = CredentialStore::open(config.data_dir.as_deref(), config.sasl.as_ref())
            .map_err(|e| TopicError::Persist {
            path: crate::credentials::CREDENTIALS_FILE.into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let quotas =
            crate::quotas::ClientQuotas::open(config.data_dir.as_deref()).map_err(|source| {
                TopicError::Persist {
                    path: crate::quotas::QUOTAS_FILE.into(),
                    source,
                }
            })?;
        let advertised = advertised.into_iter().next().unwrap_or_default();
        let authorizer = match &config.acl_super_users {
            Some(super_users) => Some(Arc::new(
                Authorizer::open(super_users.clone(), config.data_dir.as_deref()).map_err(|e| {
                    TopicError::Persist {
                        path: "acls.json".into(),
                        source: std::io::Error::other(e.to_string()),
                    }
                })?,
            )),
            None => None,
        };
        let group_commit = match config.flush {
            FlushPolicy::Always if config.data_dir.is_some() => Some(GroupCommit::spawn()),
            _ => None,
        };
        let config_coordinator_load = config.coordinator_load;
        Ok(Self {
            versions: VersionTable::new(config.emulate_kafka),
            advertised_host: advertised.0,
            advertised_port: advertised.1,
            config,
            topics,
            groups: Arc::new(groups),
            group_commit,
            fetch_waiters: Arc::default(),
            producer_ids: Arc::new(producer_ids),
            transactions: Arc::new(transactions),
            broker_overrides: Arc::new(RwLock::new(BTreeMap::new())),
            default_overrides: Arc::new(RwLock::new(default_overrides)),
            cluster: Arc::new(cluster),
            listeners: Arc::new(listeners),
            listener: 0,
            authorizer,
            credentials: Arc::new(credentials),
            quotas: Arc::new(quotas),
            groups_loading_until: std::time::Instant::now() + config_coordinator_load,
        }
        .with_overrides(broker_overrides))
    }

    fn with_overrides(self, overrides: BTreeMap<String, String>) -> Self {
        let mut defaults = self.topics.defaults();
        // Cluster-wide defaults first; this broker's own values win.
        let cluster = self.broker_overrides(true);
        for (k, v) in cluster.iter().chain(&overrides) {
            // Stored values were checked when they were set.
            let _ = defaults.set_broker_value(k, v);
        }
        self.topics.set_defaults(defaults);
        *self.broker_overrides.write().expect("overrides lock") = overrides;
        self
    }

    /// The view of node `node_id` on listener `listener`: same shared state, that node's
    /// id and address.
    pub fn node_view(&self, node_id: i32, listener: usize) -> Broker {
        let mut view = self.clone();
        view.config.node_id = node_id;
        view.listener = listener;
        if let Some((host, port)) = self
            .listeners
            .advertised
            .get(listener)
            .and_then(|n| n.get(&node_id))
        {
            view.advertised_host = host.clone();
            view.advertised_port = *port;
        }
        view
    }

    /// Kafka's `advertised.listeners` of this view's node: `PROTOCOL://host:port,...`.
    pub fn advertised_listeners(&self) -> String {
        let node = NodeEndpoint {
            node_id: self.config.node_id,
            host: self.advertised_host.clone(),
            port: self.advertised_port,
        };
        self.listeners
            .configs
            .iter()
            .enumerate()
            .map(|(index, l)| {
                let n = self.listeners.advertise(index, node.clone());
                format!("{}://{}:{}", l.protocol, n.host, n.port)
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The security protocol of the listener this view serves.
    pub fn protocol(&self) -> SecurityProtocol {
        self.listeners
            .configs
            .get(self.listener)
            .map(|l| l.protocol)
            .unwrap_or(SecurityProtocol::Plaintext)
    }

    /// `node` as clients on this view's listener must reach it (Kafka:
    /// KafkaApis.handleTopicMetadataRequest, `getAliveBrokerNodes(request.context.listenerName)`).
    pub fn advertise(&self, node: NodeEndpoint) -> NodeEndpoint {
        self.listeners.advertise(self.listener, node)
    }

    /// Whether this node may serve a request for a partition, and the current leader
    /// epoch if so. `require_leader` is false only where Kafka lets followers answer
    /// (consumer Fetch v11+, ListOffsets from the debugging replica id).
    pub fn check_leader(
        &self,
        topic: &Topic,
        partition: i32,
        current_leader_epoch: Option<i32>,
        require_leader: bool,
    ) -> Result<i32, LeaderError> {
        self.cluster.check(
            self.config.node_id,
            topic,
            partition,
            current_leader_epoch,
            require_leader,
        )
    }

    fn overrides_of(&self, cluster_default: bool) -> &RwLock<BTreeMap<String, String>> {
        if cluster_default {
            &self.default_overrides
        } else {
            &self.broker_overrides
        }
    }

    /// Broker configs changed at run time: this broker's, or the cluster-wide defaults.
    pub fn broker_overrides(&self, cluster_default: bool) -> BTreeMap<String, String> {
        self.overrides_of(cluster_default)
            .read()
            .expect("overrides lock")
            .clone()
    }

    /// Persists and applies new broker config overrides of one scope; `defaults` are the
    /// effective topic defaults with both scopes applied.
    pub fn set_broker_overrides(
        &self,
        cluster_default: bool,
        overrides: BTreeMap<String, String>,
        defaults: BrokerDefaults,
    ) -> std::io::Result<()> {
        if let Some(dir) = &self.config.data_dir {
            let file = if cluster_default {
                BROKER_DEFAULT_CONFIGS_FILE
            } else {
                BROKER_CONFIGS_FILE
            };
            let bytes = serde_json::to_vec_pretty(&overrides).expect("configs serialise");
            crate::fsutil::write_atomic(&dir.join(file), &bytes)?;
        }
        self.topics.set_defaults(defaults);
        *self
            .overrides_of(cluster_default)
            .write()
            .expect("overrides lock") = overrides;
        Ok(())
    }
}

const BROKER_CONFIGS_FILE: &str = "broker-configs.json";
const BROKER_DEFAULT_CONFIGS_FILE: &str = "broker-default-configs.json";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker_dirs_in_temp() -> std::collections::BTreeSet<std::ffi::OsString> {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .filter(|n| n.to_string_lossy().starts_with("kmirror-broker-"))
            .collect()
    }

    #[tokio::test]
    async fn an_in_memory_broker_writes_nothing_to_disk_and_still_hands_out_producer_ids() {
        let before = broker_dirs_in_temp();
        let broker = Broker::open(BrokerConfig::default(), ("127.0.0.1".into(), 9092)).unwrap();
        let first = broker.producer_ids.allocate().unwrap();
        let second = broker.producer_ids.allocate().unwrap();
        assert!(second > first);
        let created: Vec<_> = broker_dirs_in_temp().difference(&before).cloned().collect();
        assert!(created.is_empty(), "left behind: {created:?}");
    }
}
