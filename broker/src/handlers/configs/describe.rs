//! DescribeConfigs: a topic's or the broker's keys with their values, sources, synonyms
//! and types, as Kafka's ConfigHelper describes them.

use super::*;

fn entry(
    name: &str,
    value: Option<String>,
    chain: Vec<Synonym>,
    include_synonyms: bool,
    kind: ConfigType,
    read_only: bool,
    version: i16,
) -> DescribeConfigsResourceResult {
    let (source, synonyms) = source_and_synonyms(chain, include_synonyms && version >= 1);
    let mut e = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(value.map(StrBytes::from_string))
        .with_read_only(read_only)
        .with_synonyms(synonyms);
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
    let include_synonyms = req.include_synonyms;
    let include_documentation = req.include_documentation;
    let mut results: Vec<DescribeConfigsResult> = req
        .resources
        .into_iter()
        .map(|r| {
            let mut out = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            // Kafka: ConfigHelper.createResponseConfig (null or empty keys = every key)
            let wanted = |name: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == name))
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
                                let (value, _) = defaults.effective(&set, k.name)?;
                                let chain = topic_chain(broker, &set, k.name);
                                Some(entry(
                                    k.name,
                                    Some(value),
                                    chain,
                                    include_synonyms,
                                    k.kind,
                                    false,
                                    version,
                                ))
                            })
                            .collect();
                    }
                    // Kafka: ConfigHelper.describeConfigs (Topic.validate, then the
                    // metadata cache: UNKNOWN_TOPIC_OR_PARTITION without a message).
                    None => match crate::topics::validate_name(r.resource_name.as_str()) {
                        Err(e) => {
                            out.error_code = ResponseError::InvalidTopicException.code();
                            out.error_message = message(e.to_string());
                        }
                        Ok(()) => out.error_code = ResponseError::UnknownTopicOrPartition.code(),
                    },
                },
                // Kafka: ConfigHelper.describeConfigs ("" lists only the cluster-wide
                // dynamic defaults; the broker's id lists everything)
                BROKER if is_this_broker(broker, r.resource_name.as_str()) => {
                    let cluster_default = r.resource_name.is_empty();
                    let set = broker.broker_overrides(true);
                    let release = broker.versions.release();
                    out.configs = broker_keys()
                        .iter()
                        .filter(|k| k.known_in(release) && wanted(k.name))
                        .filter(|k| !cluster_default || set.contains_key(k.name))
                        .filter_map(|k| {
                            // Kafka: ConfigHelper.createBrokerConfigEntry
                            let chain: Vec<Synonym> = broker_chain(broker, k.name)
                                .into_iter()
                                .filter(|s| {
                                    !cluster_default || s.source == DYNAMIC_DEFAULT_BROKER_CONFIG
                                })
                                .collect();
                            // A key with no value of its own and no default (e.g.
                            // log.retention.ms unset) is described null (Kafka:
                            // ConfigDef.convertToString of its null value).
                            let value = match chain.first() {
                                Some(head) => Some(head.value.clone()),
                                None if k.topic_key.is_some() => None,
                                None => static_value(broker, k.name).map(|_| None)?,
                            };
                            Some(entry(
                                k.name,
                                value,
                                chain,
                                include_synonyms,
                                k.kind,
                                !k.dynamic,
                                version,
                            ))
                        })
                        .collect();
                }
                // Kafka: ConfigHelper.describeConfigs (resourceNameToBrokerId)
                BROKER => {
                    out.error_code = ResponseError::InvalidRequest.code();
                    out.error_message =
                        message(other_broker(broker, r.resource_name.as_str(), true));
                }
                _ => {
                    out.error_code = ResponseError::InvalidRequest.code();
                    out.error_message = message("Unsupported resource type or unknown broker id.");
                }
            }
            out
        })
        .collect();
    // Kafka: ConfigHelper.createTopicConfigEntry (documentation null unless asked for; when
    // asked, Kafka sends each key's text, which this broker does not have: "").
    if !include_documentation {
        for e in results.iter_mut().flat_map(|r| r.configs.iter_mut()) {
            e.documentation = None;
        }
    }
    DescribeConfigsResponse::default().with_results(results)
}
