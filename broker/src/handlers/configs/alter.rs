//! AlterConfigs and IncrementalAlterConfigs: each resource's changes validated as a
//! whole, then applied at once (topics) or to the broker's dynamic defaults.

use super::*;

/// One requested change: set, delete, append to a list, subtract from a list.
enum Op {
    Set(String),
    Delete,
    Append(String),
    Subtract(String),
}

/// `current` with `ops` applied; APPEND and SUBTRACT only to keys of type LIST
/// (`is_list`), else INVALID_CONFIG (INVALID_REQUEST from a ZooKeeper-mode 2.8).
// Kafka: ConfigurationControlManager.incrementalAlterConfigResource (isSplittable); 2.8:
// ZkAdminManager.prepareIncrementalConfigs
fn apply_ops(
    current: &TopicConfigs,
    ops: Vec<(String, Op)>,
    current_value: impl Fn(&str) -> Option<String>,
    (is_list, zookeeper): (impl Fn(&str) -> bool, bool),
) -> Result<TopicConfigs, Failure> {
    let mut next = current.clone();
    for (name, op) in ops {
        let op_name = match op {
            Op::Append(_) => "APPEND",
            Op::Subtract(_) => "SUBTRACT",
            Op::Set(_) | Op::Delete => "",
        };
        if !op_name.is_empty() && !is_list(&name) {
            return Err(if zookeeper {
                (
                    ResponseError::InvalidRequest,
                    format!(
                        "Config value {} is not allowed for config key: {name}",
                        op_name.to_ascii_lowercase()
                    ),
                )
            } else {
                (
                    ResponseError::InvalidConfig,
                    format!("Can't {op_name} to key {name} because its type is not LIST."),
                )
            });
        }
        match op {
            Op::Set(v) => {
                next.insert(name, v);
            }
            Op::Delete => {
                next.remove(&name);
            }
            Op::Append(v) => {
                let mut items: Vec<String> = list(&current_value(&name).unwrap_or_default());
                for item in list(&v) {
                    if !items.contains(&item) {
                        items.push(item);
                    }
                }
                next.insert(name, items.join(","));
            }
            Op::Subtract(v) => {
                let remove = list(&v);
                let items: Vec<String> = list(&current_value(&name).unwrap_or_default())
                    .into_iter()
                    .filter(|i| !remove.contains(i))
                    .collect();
                next.insert(name, items.join(","));
            }
        }
    }
    Ok(next)
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(String::from)
        .collect()
}

/// Validates and (unless `validate_only`) applies new configs to one resource.
fn alter_resource(
    broker: &Broker,
    kind: i8,
    name: &str,
    ops: Vec<(String, Op)>,
    replace: bool,
    validate_only: bool,
) -> Result<(), Failure> {
    match kind {
        TOPIC => {
            // Kafka: ConfigurationControlManager.incrementalAlterConfigResource (APPEND and
            // SUBTRACT on LIST keys only), then validateAlterConfig — the name, the values
            // (ControllerConfigurationValidator.validate), and only then whether the topic
            // exists (QuorumController.ConfigResourceExistenceChecker).
            // A ZooKeeper-mode 2.8 looks for the topic before the name and the values
            // (ZkAdminManager.alterTopicConfigs), and answers a value that does not parse
            // INVALID_REQUEST (its catch of ConfigException).
            let zookeeper = broker.versions.zookeeper();
            let topic = broker.topics.get(name);
            let base = match &topic {
                Some(topic) if !replace => topic.configs(),
                _ => TopicConfigs::new(),
            };
            let defaults = broker.topics.defaults();
            let is_list =
                |k: &str| topic_config::lookup(k).is_some_and(|key| key.kind == ConfigType::List);
            let mut next = apply_ops(
                &base,
                ops,
                |k| defaults.effective(&base, k).map(|(v, _)| v),
                (is_list, zookeeper),
            )?;
            let unknown = || {
                (
                    ResponseError::UnknownTopicOrPartition,
                    format!("The topic '{name}' does not exist."),
                )
            };
            if zookeeper && topic.is_none() {
                return Err(unknown());
            }
            if name.is_empty() {
                return Err((
                    ResponseError::InvalidRequest,
                    "Default topic resources are not allowed.".into(),
                ));
            }
            crate::topics::validate_name(name)
                .map_err(|e| (ResponseError::InvalidTopicException, e.to_string()))?;
            for (k, v) in next.iter_mut() {
                *v = topic_config::validate_in(k, v, defaults.release).map_err(|e| match e {
                    topic_config::ConfigError::InvalidValue { .. } if zookeeper => (
                        ResponseError::InvalidRequest,
                        format!("Invalid config value for resource ConfigResource(type=TOPIC, name='{name}'): {e}"),
                    ),
                    e => (ResponseError::InvalidConfig, e.to_string()),
                })?;
            }
            defaults
                .validate_values(&next)
                .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
            if topic.is_none() {
                return Err(unknown());
            }
            if validate_only {
                return Ok(());
            }
            broker
                .topics
                .set_configs(name, next)
                .map_err(|e| (crate::handlers::topic_error_code(&e), e.to_string()))?;
            // Changes such as a lower retention.ms take effect now, not at the next check.
            if let Some(topic) = broker.topics.get(name) {
                for p in topic.partitions.read().expect("partitions lock").iter() {
                    if let Err(e) = p.apply_retention(now_ms()) {
                        tracing::warn!(topic = name, partition = p.index, error = %e, "Retention failed.");
                    }
                }
            }
            Ok(())
        }
        // Kafka: ConfigAdminManager / DynamicBrokerConfig (resource "" = cluster-wide
        // dynamic default, the broker id = this broker only; this broker's values win)
        BROKER if is_this_broker(broker, name) => {
            let cluster_default = name.is_empty();
            let base = if replace {
                TopicConfigs::new()
            } else {
                broker.broker_overrides(cluster_default)
            };
            let current = |k: &str| {
                broker_chain(broker, k)
                    .into_iter()
                    .next()
                    .map(|s| s.value)
                    .or_else(|| static_value(broker, k))
            };
            let is_list = |k: &str| broker_key(k).is_some_and(|key| key.kind == ConfigType::List);
            let zookeeper = broker.versions.zookeeper();
            let next = apply_ops(&base, ops, current, (is_list, zookeeper))?;
            let mut defaults = broker.config.topic_defaults();
            let other = broker.broker_overrides(!cluster_default);
            let (low, high) = if cluster_default {
                (&next, &other)
            } else {
                (&other, &next)
            };
            for (k, v) in low.iter().chain(high.iter()) {
                let Some(key) = broker_key(k).filter(|key| key.known_in(defaults.release)) else {
                    return Err((
                        ResponseError::InvalidConfig,
                        format!("Unknown broker config {k}."),
                    ));
                };
                // Kafka: ConfigAdminManager.validateBrokerConfigChange answers a broker
                // config that fails validation INVALID_REQUEST, not INVALID_CONFIG
                // (KAFKA-13609), with DynamicBrokerConfig's or ConfigDef's message.
                if !key.dynamic {
                    return Err((
                        ResponseError::InvalidRequest,
                        format!("Cannot update these configs dynamically: Set({k})"),
                    ));
                }
                let refused = |reason: String| {
                    let refused = topic_config::ConfigError::InvalidValue {
                        name: k.clone(),
                        value: v.clone(),
                        reason,
                    };
                    (ResponseError::InvalidRequest, refused.to_string())
                };
                defaults.set_broker_value(k, v).map_err(refused)?;
            }
            if validate_only {
                return Ok(());
            }
            broker
                .set_broker_overrides(cluster_default, next, defaults)
                .map_err(|e| (ResponseError::KafkaStorageError, e.to_string()))?;
            crate::server::apply_retention(broker);
            Ok(())
        }
        // Kafka: ConfigAdminManager.validateResourceNameIsCurrentNodeId
        BROKER => Err((
            ResponseError::InvalidRequest,
            other_broker(broker, name, false),
        )),
        _ => Err((
            ResponseError::InvalidRequest,
            "Unsupported resource type or unknown broker id.".into(),
        )),
    }
}

/// AlterConfigs: what Kafka's `preprocess` refuses is answered first ([`alter_checks`]).
pub fn alter(broker: &Broker, mut req: AlterConfigsRequest, version: i16) -> AlterConfigsResponse {
    let refused = alter_checks::take_refused_legacy(&mut req);
    let mut resp = alter_checked(broker, req, version);
    resp.responses.extend(alter_checks::legacy_answers(refused));
    resp
}

/// AlterConfigs of resources that passed [`alter_checks`] (the authorizer's wrapper calls
/// this after its own checks).
pub fn alter_checked(
    broker: &Broker,
    req: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let ops = r
                .configs
                .into_iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.value.map_or(Op::Delete, |v| Op::Set(v.to_string())),
                    )
                })
                .collect();
            // Kafka: ApiError.NONE's message is null.
            let mut out = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_message(None)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            if let Err((code, msg)) = alter_resource(
                broker,
                r.resource_type,
                r.resource_name.as_str(),
                ops,
                true,
                req.validate_only,
            ) {
                out.error_code = code.code();
                out.error_message = message(msg);
            }
            out
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs: what Kafka's `preprocess` refuses is answered first
/// ([`alter_checks`]).
pub fn incremental_alter(
    broker: &Broker,
    mut req: IncrementalAlterConfigsRequest,
    version: i16,
) -> IncrementalAlterConfigsResponse {
    let refused = alter_checks::take_refused_incremental(&mut req);
    let mut resp = incremental_alter_checked(broker, req, version);
    resp.responses
        .extend(alter_checks::incremental_answers(refused));
    resp
}

/// IncrementalAlterConfigs of resources that passed [`alter_checks`].
pub fn incremental_alter_checked(
    broker: &Broker,
    req: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let mut out =
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_error_message(None)
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone());
            let ops: Result<Vec<(String, Op)>, Failure> = r
                .configs
                .into_iter()
                .map(|c| {
                    let value = c.value.map(|v| v.to_string()).unwrap_or_default();
                    let op = match c.config_operation {
                        0 => Op::Set(value),
                        1 => Op::Delete,
                        2 => Op::Append(value),
                        3 => Op::Subtract(value),
                        other => {
                            return Err((
                                ResponseError::InvalidRequest,
                                format!("Unknown config operation {other}."),
                            ))
                        }
                    };
                    Ok((c.name.to_string(), op))
                })
                .collect();
            let result = ops.and_then(|ops| {
                alter_resource(
                    broker,
                    r.resource_type,
                    r.resource_name.as_str(),
                    ops,
                    false,
                    req.validate_only,
                )
            });
            if let Err((code, msg)) = result {
                out.error_code = code.code();
                out.error_message = message(msg);
            }
            out
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
