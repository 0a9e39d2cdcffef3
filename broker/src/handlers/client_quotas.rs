//! DescribeClientQuotas (API 48) and AlterClientQuotas (API 49): the process's
//! [`crate::quotas::ClientQuotas`], with Kafka's filters, checks and messages.
//!
//! Not here: authorization (CLUSTER DESCRIBE_CONFIGS / ALTER_CONFIGS, [`crate::authz`]).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    alter_client_quotas_response, describe_client_quotas_response, AlterClientQuotasRequest,
    AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::quotas::{Entity, Refusal, CLIENT_ID, IP, USER};
use crate::state::Broker;

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

/// A filter: types that must have this name (`None`: `<default>`), and types that must
/// be there with any name.
struct Filter {
    exact: BTreeMap<String, Option<String>>,
    specified: BTreeSet<String>,
    strict: bool,
}

// Kafka: ClientQuotasImage.describe
fn filter(req: &DescribeClientQuotasRequest) -> Result<Filter, (ResponseError, String)> {
    let invalid = |m: String| (ResponseError::InvalidRequest, m);
    let mut f = Filter {
        exact: BTreeMap::new(),
        specified: BTreeSet::new(),
        strict: req.strict,
    };
    for c in &req.components {
        let kind = c.entity_type.to_string();
        if kind.is_empty() {
            return Err(invalid("Invalid empty entity type.".into()));
        }
        if f.exact.contains_key(&kind) || f.specified.contains(&kind) {
            return Err(invalid(format!(
                "Entity type {kind} cannot appear more than once in the filter."
            )));
        }
        if ![IP, USER, CLIENT_ID].contains(&kind.as_str()) {
            return Err((
                ResponseError::UnsupportedVersion,
                format!("Unsupported entity type {kind}"),
            ));
        }
        let name = c._match.as_ref().map(|m| m.to_string());
        match (c.match_type, name) {
            (MATCH_EXACT, Some(n)) => {
                f.exact.insert(kind, Some(n));
            }
            (MATCH_EXACT, None) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                ))
            }
            (MATCH_DEFAULT, None) => {
                f.exact.insert(kind, None);
            }
            (MATCH_DEFAULT, Some(_)) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                        .into(),
                ))
            }
            (MATCH_SPECIFIED, None) => {
                f.specified.insert(kind);
            }
            (MATCH_SPECIFIED, Some(_)) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                        .into(),
                ))
            }
            (other, _) => return Err(invalid(format!("Unknown match type {other}"))),
        }
    }
    let has = |t: &str| f.exact.contains_key(t) || f.specified.contains(t);
    if has(IP) && (has(USER) || has(CLIENT_ID)) {
        return Err(invalid("Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.".into()));
    }
    Ok(f)
}

// Kafka: ClientQuotasImage.matches
fn matches(entity: &Entity, f: &Filter) -> bool {
    if f.strict && entity.len() != f.exact.len() + f.specified.len() {
        return false;
    }
    f.exact.iter().all(|(k, v)| entity.get(k) == Some(v))
        && f.specified.iter().all(|k| entity.contains_key(k))
}

// Kafka: KafkaApis.handleDescribeClientQuotasRequest (KRaftMetadataCache.describeClientQuotas)
pub fn describe(broker: &Broker, req: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse {
    let f = match filter(&req) {
        Ok(f) => f,
        Err((error, message)) => {
            return DescribeClientQuotasResponse::default()
                .with_error_code(error.code())
                .with_error_message(Some(StrBytes::from_string(message)))
                .with_entries(Some(Vec::new()))
        }
    };
    let entries = broker
        .quotas
        .entries()
        .into_iter()
        .filter(|(entity, _)| matches(entity, &f))
        .map(|(entity, values)| {
            describe_client_quotas_response::EntryData::default()
                .with_entity(
                    entity
                        .into_iter()
                        .map(|(kind, name)| {
                            describe_client_quotas_response::EntityData::default()
                                .with_entity_type(StrBytes::from_string(kind))
                                .with_entity_name(name.map(StrBytes::from_string))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .into_iter()
                        .map(|(key, value)| {
                            describe_client_quotas_response::ValueData::default()
                                .with_key(StrBytes::from_string(key))
                                .with_value(value)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

// Kafka: ControllerApis.handleAlterClientQuotas (ClientQuotaControlManager.alterClientQuotas:
// one result per entity; an entity named twice keeps its first alteration and is answered
// "Ignoring duplicate entity")
pub fn alter(broker: &Broker, req: AlterClientQuotasRequest) -> AlterClientQuotasResponse {
    let mut results: Vec<(Entity, Result<(), Refusal>)> = Vec::new();
    for entry in &req.entries {
        let entity: Entity = entry
            .entity
            .iter()
            .map(|e| {
                let name = e.entity_name.as_ref().map(|n| n.to_string());
                (e.entity_type.to_string(), name)
            })
            .collect();
        let ops: BTreeMap<String, Option<f64>> = entry
            .ops
            .iter()
            .map(|op| (op.key.to_string(), (!op.remove).then_some(op.value)))
            .collect();
        // A key named twice fails the entity, and an entity seen before: both are then
        // answered so (Kafka's "Duplicate quota key" is overwritten by it).
        let seen = results.iter().position(|(e, _)| *e == entity);
        let result = if seen.is_some() || ops.len() != entry.ops.len() {
            Err(Refusal::Invalid(format!(
                "Ignoring duplicate entity {}",
                shown(&entity)
            )))
        } else {
            broker.quotas.alter(&entity, &ops, req.validate_only)
        };
        match seen {
            Some(i) => results[i].1 = result,
            None => results.push((entity, result)),
        }
    }
    let entries = results
        .into_iter()
        .map(|(entity, result)| {
            let (code, message) = match result {
                Ok(()) => (0, None),
                Err(Refusal::Invalid(m)) => (ResponseError::InvalidRequest.code(), Some(m)),
                Err(Refusal::Io(m)) => (ResponseError::KafkaStorageError.code(), Some(m)),
            };
            let entity = entity
                .into_iter()
                .map(|(kind, name)| {
                    alter_client_quotas_response::EntityData::default()
                        .with_entity_type(StrBytes::from_string(kind))
                        .with_entity_name(name.map(StrBytes::from_string))
                })
                .collect();
            alter_client_quotas_response::EntryData::default()
                .with_entity(entity)
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string))
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

/// As Kafka's ClientQuotaEntity prints itself.
fn shown(entity: &Entity) -> String {
    let entries: Vec<String> = entity
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("null")))
        .collect();
    format!("ClientQuotaEntity(entries={{{}}})", entries.join(", "))
}
