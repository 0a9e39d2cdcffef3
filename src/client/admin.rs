//! Admin calls the engine needs on a target cluster: create topics and partitions,
//! describe a topic's explicitly set or effective configs, and set or remove configs
//! incrementally.

use std::collections::HashSet;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kmirror_wire::errors::ResponseError;

use super::{ClientError, ClusterClient};

const TOPIC_RESOURCE: i8 = 2;
/// DescribeConfigs `config_source` of a value set on the topic itself.
const SOURCE_TOPIC: i8 = 1;
/// DescribeConfigs `config_source` of a value a topic inherits from a dynamic config of its
/// broker, or of every broker of the cluster (Kafka's DYNAMIC_BROKER_CONFIG and
/// DYNAMIC_DEFAULT_BROKER_CONFIG).
const SOURCE_DYNAMIC_BROKER: [i8; 2] = [2, 3];
/// DescribeConfigs `config_source` of a value from the brokers' static configuration
/// (`server.properties`: Kafka's STATIC_BROKER_CONFIG).
const SOURCE_STATIC_BROKER: i8 = 4;

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

impl ClusterClient {
    pub(super) fn request(&self, source: kmirror_wire::messenger::RequestError) -> ClientError {
        ClientError::Request {
            cluster: self.name().to_string(),
            source,
        }
    }

    /// Creates a topic; an existing topic is not an error. Metadata is refreshed after.
    /// Whether this call created it (false: it existed already).
    pub async fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
        configs: &[(String, String)],
    ) -> Result<bool, ClientError> {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(self.config.replication_factor.unwrap_or(-1))
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(s(k))
                                .with_value(Some(s(v)))
                        })
                        .collect(),
                )]);
        let m = self.controller().await?;
        let (resp, _) = m.send(&req).await.map_err(|e| self.request(e))?;
        let r = resp
            .topics
            .first()
            .ok_or_else(|| self.omitted("CreateTopics", topic))?;
        if r.error_code == ResponseError::TopicAlreadyExists.code() {
            return Ok(false);
        }
        if let Some(e) = ClientError::from_code(
            self.name(),
            &format!("creating topic {topic}"),
            r.error_code,
            r.error_message.as_deref(),
        ) {
            return Err(e);
        }
        self.learn_new_partitions().await;
        Ok(true)
    }

    /// After partitions were created: their leaders, before the first request needs them.
    async fn learn_new_partitions(&self) {
        if let Err(e) = self.refresh_metadata().await {
            tracing::debug!(cluster = %self.name(), error = %e, "Metadata refresh after creating partitions failed; the next request refreshes it.");
        }
    }

    fn omitted(&self, api: &str, topic: &str) -> ClientError {
        ClientError::Refused {
            cluster: self.name().to_string(),
            what: format!("the {api} response does not mention topic {topic}"),
        }
    }

    /// Grows a topic to `count` partitions, placed by the cluster: `assignments` is null,
    /// as Kafka's admin client sends it; an empty list would ask for no new partition
    /// (Kafka: ReplicationControlManager.createPartitions, INVALID_REPLICA_ASSIGNMENT).
    pub async fn create_partitions(&self, topic: &str, count: i32) -> Result<(), ClientError> {
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(count)
                .with_assignments(None)]);
        let m = self.controller().await?;
        let (resp, _) = m.send(&req).await.map_err(|e| self.request(e))?;
        let r = resp
            .results
            .first()
            .ok_or_else(|| self.omitted("CreatePartitions", topic))?;
        if let Some(e) = ClientError::from_code(
            self.name(),
            &format!("adding partitions to {topic}"),
            r.error_code,
            r.error_message.as_deref(),
        ) {
            return Err(e);
        }
        self.learn_new_partitions().await;
        Ok(())
    }

    /// DescribeConfigs for one topic: `keys`, or every config when `None`.
    async fn describe_topic(
        &self,
        topic: &str,
        keys: Option<&[&str]>,
    ) -> Result<DescribeConfigsResult, ClientError> {
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(s(topic))
                .with_configuration_keys(keys.map(|k| k.iter().map(|k| s(k)).collect())),
        ]);
        let m = self.any_broker().await?;
        let (resp, _) = m.send(&req).await.map_err(|e| self.request(e))?;
        let r = resp
            .results
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Incomplete {
                cluster: self.name().to_string(),
                what: format!("describing configs of {topic}: empty answer"),
            })?;
        match ClientError::from_code(
            self.name(),
            &format!("describing configs of {topic}"),
            r.error_code,
            r.error_message.as_deref(),
        ) {
            Some(e) => Err(e),
            None => Ok(r),
        }
    }

    /// The configs set on the topic itself (not defaults), sorted by name.
    pub async fn topic_configs(&self, topic: &str) -> Result<Vec<(String, String)>, ClientError> {
        Ok(self.topic_configs_and_keys(topic).await?.0)
    }

    /// [`Self::topic_configs`], and the name of every topic config the answering broker
    /// knows: DescribeConfigs without keys lists each one, set on the topic or not.
    pub async fn topic_configs_and_keys(
        &self,
        topic: &str,
    ) -> Result<(Vec<(String, String)>, HashSet<String>), ClientError> {
        self.configs_and_keys(
            topic,
            |c| c.config_source == SOURCE_TOPIC && !c.is_sensitive,
            |_| true,
        )
        .await
    }

    /// The configs of `topic` that `keep` takes, sorted by name, and the names of the
    /// topic configs the answering broker lists that `name` takes.
    async fn configs_and_keys(
        &self,
        topic: &str,
        keep: impl Fn(&DescribeConfigsResourceResult) -> bool,
        name: impl Fn(&DescribeConfigsResourceResult) -> bool,
    ) -> Result<(Vec<(String, String)>, HashSet<String>), ClientError> {
        let r = self.describe_topic(topic, None).await?;
        let mut set: Vec<(String, String)> = r
            .configs
            .iter()
            .filter(|c| keep(c))
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        set.sort();
        let known = r
            .configs
            .iter()
            .filter(|c| name(c))
            .map(|c| c.name.to_string())
            .collect();
        Ok((set, known))
    }

    /// The configs a mirror copies from a source topic, as MirrorMaker 2 picks them
    /// (MirrorSourceConnector.targetConfig): set on the topic, or inherited from a dynamic
    /// broker config (a cluster-wide `log.retention.ms` set at run time, which the target
    /// cluster does not have); not Kafka's defaults, nor the brokers' static files, nor
    /// read-only or sensitive values. With the names of the topic configs the source knows
    /// but for those whose value comes from its brokers' static files, which MirrorMaker 2
    /// leaves alone on the target, neither set nor removed (an operator who matched a
    /// source's `server.properties` retention on the target topic keeps it).
    pub async fn synced_configs_and_keys(
        &self,
        topic: &str,
    ) -> Result<(Vec<(String, String)>, HashSet<String>), ClientError> {
        self.configs_and_keys(
            topic,
            |c| {
                (c.config_source == SOURCE_TOPIC
                    || SOURCE_DYNAMIC_BROKER.contains(&c.config_source))
                    && !c.is_sensitive
                    && !c.read_only
            },
            |c| c.config_source != SOURCE_STATIC_BROKER,
        )
        .await
    }

    /// The effective values (set on the topic or inherited from the broker) of `keys`;
    /// keys the broker does not report are absent.
    pub async fn effective_topic_configs(
        &self,
        topic: &str,
        keys: &[&str],
    ) -> Result<Vec<(String, String)>, ClientError> {
        let r = self.describe_topic(topic, Some(keys)).await?;
        Ok(r.configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect())
    }

    /// [`Self::topic_configs_and_keys`] of `topic`; of a topic that does not exist (yet), no
    /// configs and the keys the answer for `known_from` lists (any topic's lists them all).
    pub async fn configs_and_known_keys(
        &self,
        topic: &str,
        known_from: &str,
    ) -> Result<(Vec<(String, String)>, HashSet<String>), ClientError> {
        match self.topic_configs_and_keys(topic).await {
            Err(ClientError::Broker {
                error: ResponseError::UnknownTopicOrPartition,
                ..
            }) => Ok((Vec::new(), self.topic_configs_and_keys(known_from).await?.1)),
            other => other,
        }
    }

    /// Sets the configs in `set` and removes the topic-level values of those in `delete`
    /// (back to the broker default), in one IncrementalAlterConfigs request.
    pub async fn alter_topic_configs(
        &self,
        topic: &str,
        set: &[(String, String)],
        delete: &[String],
    ) -> Result<(), ClientError> {
        const SET: i8 = 0;
        const DELETE: i8 = 1;
        let ops = set
            .iter()
            .map(|(k, v)| {
                AlterableConfig::default()
                    .with_name(s(k))
                    .with_config_operation(SET)
                    .with_value(Some(s(v)))
            })
            .chain(delete.iter().map(|k| {
                AlterableConfig::default()
                    .with_name(s(k))
                    .with_config_operation(DELETE)
                    .with_value(None)
            }))
            .collect();
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(s(topic))
                .with_configs(ops),
        ]);
        let m = self.any_broker().await?;
        let (resp, _) = m.send(&req).await.map_err(|e| self.request(e))?;
        let r = &resp.responses[0];
        match ClientError::from_code(
            self.name(),
            &format!("altering configs of {topic}"),
            r.error_code,
            r.error_message.as_deref(),
        ) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
