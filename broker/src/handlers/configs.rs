//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics and the broker.
//!
//! Topic keys are validated against [`crate::topic_config`]: unknown keys and bad values
//! get INVALID_CONFIG, and accepted changes take effect at once (a lower `retention.ms`
//! deletes old segments right away). The broker resource exposes its settings; the log
//! defaults (`log.retention.ms`, `log.retention.bytes`, `log.segment.bytes`,
//! `message.max.bytes`, `log.message.timestamp.before.max.ms`,
//! `log.message.timestamp.after.max.ms`) can be changed at run time like Kafka's dynamic broker configs;
//! the rest are read-only.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::message;
use crate::state::{now_ms, Broker};
use crate::topic_config::{self, ConfigType, TopicConfigs, TOPIC_KEYS};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

type Failure = (ResponseError, String);

/// (key, type, dynamically alterable)
const BROKER_KEYS: &[(&str, ConfigType, bool)] = &[
    ("log.retention.ms", ConfigType::Long, true),
    ("log.retention.bytes", ConfigType::Long, true),
    ("log.segment.bytes", ConfigType::Int, true),
    ("message.max.bytes", ConfigType::Int, true),
    (
        "log.message.timestamp.before.max.ms",
        ConfigType::Long,
        true,
    ),
    ("log.message.timestamp.after.max.ms", ConfigType::Long, true),
    ("broker.id", ConfigType::Int, false),
    ("num.partitions", ConfigType::Int, false),
    ("auto.create.topics.enable", ConfigType::Boolean, false),
    ("log.dirs", ConfigType::String, false),
    ("advertised.listeners", ConfigType::String, false),
    ("group.initial.rebalance.delay.ms", ConfigType::Int, false),
    ("socket.request.max.bytes", ConfigType::Int, false),
];

fn broker_value(broker: &Broker, name: &str) -> Option<String> {
    let d = broker.topics.defaults();
    let c = &broker.config;
    Some(match name {
        "log.retention.ms" => d.log.retention_ms.to_string(),
        "log.retention.bytes" => d.log.retention_bytes.to_string(),
        "log.segment.bytes" => d.log.segment_bytes.to_string(),
        "message.max.bytes" => d.max_message_bytes.to_string(),
        "log.message.timestamp.before.max.ms" => d.timestamp_before_max_ms.to_string(),
        "log.message.timestamp.after.max.ms" => d.timestamp_after_max_ms.to_string(),
        "broker.id" => c.node_id.to_string(),
        "num.partitions" => c.default_partitions.to_string(),
        "auto.create.topics.enable" => c.auto_create_topics.to_string(),
        "log.dirs" => c
            .data_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        "advertised.listeners" => format!(
            "PLAINTEXT://{}:{}",
            broker.advertised_host, broker.advertised_port
        ),
        "group.initial.rebalance.delay.ms" => {
            c.group_initial_rebalance_delay.as_millis().to_string()
        }
        "socket.request.max.bytes" => c.max_frame_bytes.to_string(),
        _ => return None,
    })
}

fn entry(
    name: &str,
    value: String,
    source: i8,
    kind: ConfigType,
    read_only: bool,
    version: i16,
) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(Some(StrBytes::from_string(value)))
        .with_read_only(read_only);
    e.config_source = source;
    if version >= 3 {
        e.config_type = kind.code();
    }
    e
}

pub fn describe(
    broker: &Broker,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let mut out = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let wanted = |name: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
            };
            match r.resource_type {
                TOPIC => match broker.topics.get(r.resource_name.as_str()) {
                    Some(topic) => {
                        let set = topic.configs();
                        let defaults = broker.topics.defaults();
                        out.configs = TOPIC_KEYS
                            .iter()
                            .filter(|k| wanted(k.name))
                            .filter_map(|k| {
                                let (value, source) = defaults.effective(&set, k.name)?;
                                Some(entry(k.name, value, source.code(), k.kind, false, version))
                            })
                            .collect();
                    }
                    None => {
                        out.error_code = ResponseError::UnknownTopicOrPartition.code();
                        out.error_message = message(format!(
                            "Topic {} does not exist.",
                            r.resource_name.as_str()
                        ));
                    }
                },
                BROKER if is_this_broker(broker, r.resource_name.as_str()) => {
                    out.configs = BROKER_KEYS
                        .iter()
                        .filter(|(name, _, _)| wanted(name))
                        .filter_map(|(name, kind, dynamic)| {
                            let value = broker_value(broker, name)?;
                            let source = if broker.broker_overrides().contains_key(*name) {
                                4
                            } else {
                                5
                            };
                            Some(entry(name, value, source, *kind, !dynamic, version))
                        })
                        .collect();
                }
                _ => {
                    out.error_code = ResponseError::InvalidRequest.code();
                    out.error_message = message("Unsupported resource type or unknown broker id.");
                }
            }
            out
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn is_this_broker(broker: &Broker, name: &str) -> bool {
    name.is_empty() || name == broker.config.node_id.to_string()
}

/// One requested change: set, delete, append to a list, subtract from a list.
enum Op {
    Set(String),
    Delete,
    Append(String),
    Subtract(String),
}

fn apply_ops(
    current: &TopicConfigs,
    ops: Vec<(String, Op)>,
    current_value: impl Fn(&str) -> Option<String>,
) -> TopicConfigs {
    let mut next = current.clone();
    for (name, op) in ops {
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
    next
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
            let topic = broker.topics.get(name).ok_or_else(|| {
                (
                    ResponseError::UnknownTopicOrPartition,
                    format!("Topic {name} does not exist."),
                )
            })?;
            let base = if replace {
                TopicConfigs::new()
            } else {
                topic.configs()
            };
            let defaults = broker.topics.defaults();
            let next = apply_ops(&base, ops, |k| defaults.effective(&base, k).map(|(v, _)| v));
            for (k, v) in &next {
                topic_config::validate(k, v)
                    .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
            }
            if validate_only {
                return Ok(());
            }
            broker
                .topics
                .set_configs(name, next)
                .map_err(|e| (super::topic_error_code(&e), e.to_string()))?;
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
        BROKER if is_this_broker(broker, name) => {
            let base = if replace {
                TopicConfigs::new()
            } else {
                broker.broker_overrides()
            };
            let next = apply_ops(&base, ops, |k| broker_value(broker, k));
            let mut defaults = broker.config.topic_defaults();
            for (k, v) in &next {
                let Some((_, _, dynamic)) = BROKER_KEYS.iter().find(|(n, _, _)| n == k) else {
                    return Err((
                        ResponseError::InvalidConfig,
                        format!("Unknown broker config {k}."),
                    ));
                };
                if !dynamic {
                    return Err((
                        ResponseError::InvalidRequest,
                        format!("Broker config {k} cannot be changed at run time."),
                    ));
                }
                let n: i64 = v.parse().map_err(|_| {
                    (
                        ResponseError::InvalidConfig,
                        format!("Invalid value {v:?} for {k}: expected an integer."),
                    )
                })?;
                if !defaults.set_broker_config(k, n) {
                    return Err((
                        ResponseError::InvalidConfig,
                        format!("Invalid value {v} for {k}."),
                    ));
                }
            }
            if validate_only {
                return Ok(());
            }
            broker
                .set_broker_overrides(next, defaults)
                .map_err(|e| (ResponseError::KafkaStorageError, e.to_string()))?;
            crate::server::apply_retention(broker);
            Ok(())
        }
        _ => Err((
            ResponseError::InvalidRequest,
            "Unsupported resource type or unknown broker id.".into(),
        )),
    }
}

pub fn alter(broker: &Broker, req: AlterConfigsRequest, _version: i16) -> AlterConfigsResponse {
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
            let mut out = alter_configs_response::AlterConfigsResourceResponse::default()
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

pub fn incremental_alter(
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
