//! What Kafka refuses in AlterConfigs and IncrementalAlterConfigs before it looks at a
//! resource's configs: a resource named twice (both get INVALID_REQUEST), a key given
//! twice in one resource, and a null value (except in an incremental DELETE).

use std::collections::{HashMap, HashSet};

use kafka_protocol::error::ResponseError;

/// A refusal: the error code and its message.
pub type Failure = (ResponseError, String);

/// The positions of resources whose (type, name) appears more than once.
// Kafka: ConfigAdminManager.preprocess ("Each resource must appear at most once.")
pub fn repeated<'a>(resources: impl Iterator<Item = (i8, &'a str)>) -> HashSet<usize> {
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
pub fn resource<'a>(
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

/// Splits `resources` into those that pass the checks above and those refused, with why:
/// for the authorizer's wrappers, which answer these before any authorization as Kafka
/// does (its `preprocess` runs first). `configs(r)`: (name, refused null) per config.
pub fn split<R>(
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
