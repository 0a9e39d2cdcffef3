//! What Kafka refuses in AlterConfigs and IncrementalAlterConfigs before it looks at a
//! resource's configs: a resource named twice (both get INVALID_REQUEST), a key given
//! twice in one resource, and a null value (except in an incremental DELETE).

use std::collections::{HashMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_request::AlterConfigsResource as LegacyResource;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as LegacyAnswer;
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource as IncrementalResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalAnswer;
use kafka_protocol::messages::{AlterConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;

/// A refusal: the error code and its message.
pub type Failure = (ResponseError, String);

/// The positions of resources whose (type, name) appears more than once.
// Kafka: ConfigAdminManager.preprocess ("Each resource must appear at most once.")
fn repeated<'a>(resources: impl Iterator<Item = (i8, &'a str)>) -> HashSet<usize> {
    let mut seen: HashMap<(i8, &str), Vec<usize>> = HashMap::new();
    for (i, key) in resources.enumerate() {
        seen.entry(key).or_default().push(i);
    }
    seen.into_values()
        .filter(|at| at.len() > 1)
        .flatten()
        .collect()
}

/// Checks one resource: `repeated` from [`repeated`], and its configs as (name, whether
/// its value is a null that the operation does not allow).
// Kafka: ConfigAdminManager.preprocess (containsDuplicates, nullUpdates)
fn resource<'a>(
    repeated: bool,
    configs: impl Iterator<Item = (&'a str, bool)> + Clone,
) -> Result<(), Failure> {
    let invalid = |msg: String| Err((ResponseError::InvalidRequest, msg));
    if repeated {
        return invalid("Each resource must appear at most once.".into());
    }
    let mut keys = HashSet::new();
    if !configs.clone().all(|(name, _)| keys.insert(name)) {
        return invalid("Error due to duplicate config keys".into());
    }
    let nulls: Vec<&str> = configs.filter(|(_, null)| *null).map(|(n, _)| n).collect();
    if !nulls.is_empty() {
        return invalid(format!(
            "Null value not supported for : {}",
            nulls.join(", ")
        ));
    }
    Ok(())
}

/// Splits `resources` into those that pass the checks above and those refused, with why.
/// `configs(r)`: (name, whether its value is a refused null) per config.
fn split<R>(
    resources: Vec<R>,
    key: impl Fn(&R) -> (i8, String),
    configs: impl Fn(&R) -> Vec<(String, bool)>,
) -> (Vec<R>, Vec<(R, Failure)>) {
    let keys: Vec<(i8, String)> = resources.iter().map(&key).collect();
    let twice = repeated(keys.iter().map(|(t, n)| (*t, n.as_str())));
    let mut kept = Vec::new();
    let mut refused = Vec::new();
    for (i, r) in resources.into_iter().enumerate() {
        let listed = configs(&r);
        let checked = resource(
            twice.contains(&i),
            listed.iter().map(|(n, null)| (n.as_str(), *null)),
        );
        match checked {
            Ok(()) => kept.push(r),
            Err(failure) => refused.push((r, failure)),
        }
    }
    (kept, refused)
}

/// Takes out of an AlterConfigs request the resources Kafka refuses (any null value).
pub fn take_refused_legacy(req: &mut AlterConfigsRequest) -> Vec<(LegacyResource, Failure)> {
    let (kept, refused) = split(
        std::mem::take(&mut req.resources),
        |r| (r.resource_type, r.resource_name.to_string()),
        |r| {
            r.configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.is_none()))
                .collect()
        },
    );
    req.resources = kept;
    refused
}

/// Takes out of an IncrementalAlterConfigs request the resources Kafka refuses (a null
/// value other than a DELETE's).
pub fn take_refused_incremental(
    req: &mut IncrementalAlterConfigsRequest,
) -> Vec<(IncrementalResource, Failure)> {
    let (kept, refused) = split(
        std::mem::take(&mut req.resources),
        |r| (r.resource_type, r.resource_name.to_string()),
        |r| {
            r.configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.value.is_none() && c.config_operation != 1,
                    )
                })
                .collect()
        },
    );
    req.resources = kept;
    refused
}

/// The AlterConfigs answer to a refused resource.
pub fn legacy_answer(r: LegacyResource, code: i16, msg: Option<StrBytes>) -> LegacyAnswer {
    LegacyAnswer::default()
        .with_error_code(code)
        .with_error_message(msg)
        .with_resource_type(r.resource_type)
        .with_resource_name(r.resource_name)
}

/// The IncrementalAlterConfigs answer to a refused resource (the same shape as
/// AlterConfigs', its own type in kafka-protocol).
pub fn incremental_answer(
    r: IncrementalResource,
    code: i16,
    msg: Option<StrBytes>,
) -> IncrementalAnswer {
    IncrementalAnswer::default()
        .with_error_code(code)
        .with_error_message(msg)
        .with_resource_type(r.resource_type)
        .with_resource_name(r.resource_name)
}

/// The AlterConfigs answers to what [`take_refused_legacy`] took.
pub fn legacy_answers(refused: Vec<(LegacyResource, Failure)>) -> Vec<LegacyAnswer> {
    refused
        .into_iter()
        .map(|(r, (code, msg))| legacy_answer(r, code.code(), super::message(msg)))
        .collect()
}

/// The IncrementalAlterConfigs answers to what [`take_refused_incremental`] took.
pub fn incremental_answers(refused: Vec<(IncrementalResource, Failure)>) -> Vec<IncrementalAnswer> {
    refused
        .into_iter()
        .map(|(r, (code, msg))| incremental_answer(r, code.code(), super::message(msg)))
        .collect()
}
