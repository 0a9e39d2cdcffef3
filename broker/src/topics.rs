//! The topic registry: names, stable topic ids, partition counts and topic configs, and
//! the partition logs behind them.
//!
//! Topic metadata persists in `<data_dir>/topics.json` (written atomically: temp file,
//! fsync, rename); partition logs live in `<data_dir>/<topic>-<partition>/`. Without a data
//! directory everything is in memory. This module knows nothing about the wire protocol.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::log::{LogConfig, LogError};
use crate::partition::partition_dir;
pub use crate::partition::Partition;
use crate::topic_config::{BrokerDefaults, TopicConfigs};

/// Errors of topic operations; the handlers map them to Kafka error codes.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    // Kafka: Topic.validate.
    #[error("Topic name is invalid: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("topic {0} already exists")]
    AlreadyExists(String),
    #[error("Topic '{name}' collides with existing topic: {existing}")]
    Collides { name: String, existing: String },
    #[error("topic {0} does not exist")]
    Unknown(String),
    // Kafka: ReplicationControlManager.createPartitions' messages.
    #[error("{}", not_an_increase(topic, *requested, *current))]
    InvalidPartitions {
        topic: String,
        requested: i32,
        current: i32,
    },
    #[error("adding {requested} partitions to topic {topic} would write more than the {most} partition records one request may write")]
    TooManyNewPartitions {
        topic: String,
        requested: i64,
        most: i64,
    },
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("cannot persist topic metadata to {path}: {source}")]
    Persist {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Why `requested` partitions are not a new count for `topic`, which has `current`.
fn not_an_increase(topic: &str, requested: i32, current: i32) -> String {
    if current == 0 {
        // A topic being created (Kafka: ReplicationControlManager.createTopic).
        "Number of partitions was set to an invalid non-positive value.".into()
    } else if requested == current {
        format!("Topic already has {current} partition(s).")
    } else {
        format!(
            "The topic {topic} currently has {current} partition(s); {requested} would not be an increase."
        )
    }
}

/// Whether `name` is one of Kafka's internal topics (Topic.isInternal): clients may not
/// append to them, and Metadata marks them internal.
pub fn is_internal(name: &str) -> bool {
    matches!(
        name,
        "__consumer_offsets" | "__transaction_state" | "__share_group_state"
    )
}

/// Checks a topic name the way Kafka does.
pub fn validate_name(name: &str) -> Result<(), TopicError> {
    let bad = |reason| {
        Err(TopicError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    // Kafka: Topic.detectInvalidTopic.
    if name.is_empty() {
        return bad("the empty string is not allowed".into());
    }
    if name == "." || name == ".." {
        return bad(format!("'{name}' is not allowed"));
    }
    // Java's String.length(): UTF-16 units, not bytes.
    if name.encode_utf16().count() > 249 {
        return bad(format!(
            "the length of '{name}' is longer than the max allowed length 249"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad(format!(
            "'{name}' contains one or more characters other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// One topic.
#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub configs: RwLock<TopicConfigs>,
    pub partitions: RwLock<Vec<Arc<Partition>>>,
}

impl Topic {
    fn new(name: &str, id: Uuid, configs: TopicConfigs, partitions: Vec<Arc<Partition>>) -> Self {
        Topic {
            name: name.to_string(),
            id,
            configs: RwLock::new(configs),
            partitions: RwLock::new(partitions),
        }
    }
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let parts = self.partitions.read().expect("partitions lock");
        usize::try_from(index)
            .ok()
            .and_then(|i| parts.get(i).cloned())
    }
    pub fn partition_count(&self) -> i32 {
        self.partitions.read().expect("partitions lock").len() as i32
    }
    pub fn configs(&self) -> TopicConfigs {
        self.configs.read().expect("configs lock").clone()
    }
}

#[derive(Serialize, Deserialize)]
struct TopicRecord {
    name: String,
    id: Uuid,
    partitions: i32,
    configs: TopicConfigs,
}

/// All topics of the broker.
#[derive(Debug)]
pub struct TopicRegistry {
    data_dir: Option<PathBuf>,
    defaults: RwLock<BrokerDefaults>,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises create/delete/alter so persistence sees a consistent set.
    admin: Mutex<()>,
}

impl TopicRegistry {
    /// Opens the registry, reopening (and recovering) every persisted partition log.
    pub fn open(data_dir: Option<PathBuf>, defaults: BrokerDefaults) -> Result<Self, TopicError> {
        let reg = Self {
            data_dir,
            defaults: RwLock::new(defaults),
            topics: RwLock::new(BTreeMap::new()),
            admin: Mutex::new(()),
        };
        if let Some(path) = reg.metadata_path() {
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let records: Vec<TopicRecord> =
                        serde_json::from_slice(&bytes).map_err(|e| TopicError::Persist {
                            path: path.display().to_string(),
                            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                        })?;
                    let mut topics = reg.topics.write().expect("topics lock");
                    for r in records {
                        let configs = crate::topic_config::parsed(r.configs);
                        let topic = reg.build_topic(&r.name, r.id, r.partitions, configs)?;
                        topics.insert(r.name, Arc::new(topic));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(TopicError::Persist {
                        path: path.display().to_string(),
                        source,
                    })
                }
            }
        }
        Ok(reg)
    }

    fn metadata_path(&self) -> Option<PathBuf> {
        self.data_dir.as_ref().map(|d| d.join("topics.json"))
    }

    pub fn defaults(&self) -> BrokerDefaults {
        self.defaults.read().expect("defaults lock").clone()
    }

    /// The log settings of a topic with these configs.
    pub fn log_config(&self, configs: &TopicConfigs) -> LogConfig {
        self.defaults().log_config(configs)
    }

    fn open_partition(
        &self,
        topic: &str,
        index: i32,
        config: LogConfig,
    ) -> Result<Partition, TopicError> {
        Ok(Partition::open(
            self.data_dir.as_deref(),
            topic,
            index,
            config,
        )?)
    }

    fn build_topic(
        &self,
        name: &str,
        id: Uuid,
        partitions: i32,
        configs: TopicConfigs,
    ) -> Result<Topic, TopicError> {
        let config = self.log_config(&configs);
        let parts = (0..partitions)
            .map(|i| self.open_partition(name, i, config).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Topic::new(name, id, configs, parts))
    }

    /// Opens partitions `indexes` of a topic being created or grown. If one cannot be
    /// opened, the ones opened so far and the failing one's directory are removed again,
    /// so that a failed CreateTopics or CreatePartitions leaves nothing on disk.
    fn open_new_partitions(
        &self,
        topic: &str,
        indexes: std::ops::Range<i32>,
        config: LogConfig,
    ) -> Result<Vec<Arc<Partition>>, TopicError> {
        let mut opened = Vec::new();
        for index in indexes {
            match self.open_partition(topic, index, config) {
                Ok(p) => opened.push(Arc::new(p)),
                Err(e) => {
                    tracing::warn!(topic, partition = index, error = %e, "Cannot open a new partition; removing the partitions opened before it.");
                    discard(topic, opened);
                    if let Some(dir) = &self.data_dir {
                        let dir = partition_dir(dir, topic, index);
                        if dir.is_dir() {
                            if let Err(e) = std::fs::remove_dir_all(&dir) {
                                tracing::warn!(path = %dir.display(), error = %e, "Cannot remove a partition directory.");
                            }
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(opened)
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().expect("topics lock").get(name).cloned()
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .expect("topics lock")
            .values()
            .find(|t| t.id == id)
            .cloned()
    }

    /// Every topic, by name.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .expect("topics lock")
            .values()
            .cloned()
            .collect()
    }

    /// Every partition of every topic.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.all()
            .iter()
            .flat_map(|t| t.partitions.read().expect("partitions lock").clone())
            .collect()
    }

    /// Creates a topic. Configs must already be validated. `same_request`: topics created
    /// by the same request, which a name may collide with (see [`Self::colliding`]).
    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        configs: TopicConfigs,
        same_request: &[String],
    ) -> Result<Arc<Topic>, TopicError> {
        self.create_placed(name, partitions, configs, same_request, |_| Ok(()))
    }

    /// [`Self::create`], with `place` run on the new topic before anyone can see it (the
    /// cluster places its replicas there); its error undoes the creation.
    pub fn create_placed<E: From<TopicError>>(
        &self,
        name: &str,
        partitions: i32,
        configs: TopicConfigs,
        same_request: &[String],
        place: impl FnOnce(&Topic) -> Result<(), E>,
    ) -> Result<Arc<Topic>, E> {
        validate_name(name)?;
        if partitions < 1 {
            return Err(TopicError::InvalidPartitions {
                topic: name.to_string(),
                requested: partitions,
                current: 0,
            }
            .into());
        }
        let _admin = self.admin.lock().expect("admin lock");
        if self.get(name).is_some() {
            return Err(TopicError::AlreadyExists(name.to_string()).into());
        }
        if let Some(existing) = self.colliding(name, same_request) {
            return Err(TopicError::Collides {
                name: name.to_string(),
                existing,
            }
            .into());
        }
        let parts = self.open_new_partitions(name, 0..partitions, self.log_config(&configs))?;
        let topic = Arc::new(Topic::new(name, Uuid::new_v4(), configs, parts));
        if let Err(e) = place(&topic) {
            discard(
                name,
                std::mem::take(&mut *topic.partitions.write().expect("partitions lock")),
            );
            return Err(e);
        }
        self.topics
            .write()
            .expect("topics lock")
            .insert(name.to_string(), topic.clone());
        if let Err(e) = self.persist() {
            self.topics.write().expect("topics lock").remove(name);
            discard(
                name,
                std::mem::take(&mut *topic.partitions.write().expect("partitions lock")),
            );
            return Err(e.into());
        }
        tracing::info!(topic = name, partitions, "Created topic.");
        Ok(topic)
    }

    /// An existing topic whose name differs from `name` only in '.' against '_' (their
    /// metric names would be the same), other than those in `same_request`: Kafka checks a
    /// request's names against the topics that existed before it, not against each other.
    // Kafka: ReplicationControlManager.validateNewTopicNames (Topic.hasCollisionChars,
    // Topic.unifyCollisionChars; topicsWithCollisionChars changes on replay, after the request)
    pub fn colliding(&self, name: &str, same_request: &[String]) -> Option<String> {
        let unify = |n: &str| n.replace('.', "_");
        if !name.contains(['.', '_']) {
            return None;
        }
        let unified = unify(name);
        self.topics
            .read()
            .expect("topics lock")
            .keys()
            .find(|t| {
                t.as_str() != name
                    && t.contains(['.', '_'])
                    && unify(t) == unified
                    && !same_request.contains(t)
            })
            .cloned()
    }

    /// Deletes a topic and its logs.
    pub fn delete(&self, name: &str) -> Result<(), TopicError> {
        let _admin = self.admin.lock().expect("admin lock");
        let topic = self
            .topics
            .write()
            .expect("topics lock")
            .remove(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        self.persist()?;
        let parts = std::mem::take(&mut *topic.partitions.write().expect("partitions lock"));
        for p in parts {
            p.delete_log()?;
        }
        tracing::info!(topic = name, "Deleted topic.");
        Ok(())
    }

    /// Grows a topic to `count` partitions, adding at most `most_added` (also when only
    /// validating); returns how many it added (or would add). `place` runs under the
    /// registry's lock with the topic and its partition count before the change, also when
    /// only validating, and before anyone can see the new partitions; its error stops it.
    pub fn add_partitions<E: From<TopicError>>(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
        most_added: i64,
        place: impl FnOnce(&Topic, i32) -> Result<(), E>,
    ) -> Result<i64, E> {
        let _admin = self.admin.lock().expect("admin lock");
        let topic = self
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let current = topic.partition_count();
        if count <= current {
            return Err(TopicError::InvalidPartitions {
                topic: name.to_string(),
                requested: count,
                current,
            }
            .into());
        }
        let adding = i64::from(count) - i64::from(current);
        if adding > most_added {
            return Err(TopicError::TooManyNewPartitions {
                topic: name.to_string(),
                requested: adding,
                most: most_added,
            }
            .into());
        }
        place(&topic, current)?;
        if validate_only {
            return Ok(adding);
        }
        let config = self.log_config(&topic.configs());
        let added = self.open_new_partitions(name, current..count, config)?;
        topic
            .partitions
            .write()
            .expect("partitions lock")
            .extend(added);
        if let Err(e) = self.persist() {
            let added = topic
                .partitions
                .write()
                .expect("partitions lock")
                .split_off(current as usize);
            discard(name, added);
            return Err(e.into());
        }
        tracing::info!(
            topic = name,
            from = current,
            to = count,
            "Added partitions."
        );
        Ok(adding)
    }

    /// Replaces a topic's configs (already validated) and applies them to its logs.
    pub fn set_configs(&self, name: &str, configs: TopicConfigs) -> Result<(), TopicError> {
        let _admin = self.admin.lock().expect("admin lock");
        let topic = self
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let config = self.log_config(&configs);
        *topic.configs.write().expect("configs lock") = configs;
        for p in topic.partitions.read().expect("partitions lock").iter() {
            p.log.lock().expect("log lock").set_config(config);
        }
        self.persist()
    }

    /// Replaces the broker defaults and applies them to every log.
    pub fn set_defaults(&self, defaults: BrokerDefaults) {
        *self.defaults.write().expect("defaults lock") = defaults;
        for t in self.all() {
            let config = self.log_config(&t.configs());
            for p in t.partitions.read().expect("partitions lock").iter() {
                p.log.lock().expect("log lock").set_config(config);
            }
        }
    }

    fn persist(&self) -> Result<(), TopicError> {
        let Some(path) = self.metadata_path() else {
            return Ok(());
        };
        let records: Vec<TopicRecord> = self
            .all()
            .iter()
            .map(|t| TopicRecord {
                name: t.name.clone(),
                id: t.id,
                partitions: t.partition_count(),
                configs: t.configs(),
            })
            .collect();
        let bytes = serde_json::to_vec_pretty(&records).expect("topic records serialise");
        crate::fsutil::write_atomic(&path, &bytes).map_err(|source| TopicError::Persist {
            path: path.display().to_string(),
            source,
        })
    }

    /// Flushes and closes every log (clean shutdown).
    pub fn close(&self) -> Result<(), TopicError> {
        for p in self.all_partitions() {
            p.close()?;
        }
        Ok(())
    }
}

/// Deletes the logs of partitions that a failed create or grow opened (best effort: a
/// partition that cannot be deleted is logged and the others still go).
fn discard(topic: &str, parts: Vec<Arc<Partition>>) {
    for p in parts {
        if let Err(e) = p.delete_log() {
            tracing::warn!(topic, partition = p.index, error = %e, "Cannot remove a partition of a failed create.");
        }
    }
}

#[cfg(test)]
#[path = "topics_tests.rs"]
mod tests;
