//! Validation: from the text to a [`Topology`], collecting every error.
//!
//! Each cluster, flow and the `telemetry` block is deserialized separately (see
//! [`locate::deserialize_at`](super::locate::deserialize_at)), so a type error in one
//! does not hide problems in the others; then every value is checked and every
//! cross-reference resolved, and each problem is recorded with its position (found by
//! [`locate`](super::locate)) instead of returned.
//! Defaults are applied here. Cross-flow checks live in [`super::graph`].
//!
//! Split by concern: `clusters` (connections, TLS, SASL, embedded brokers), `flows`
//! (topics, renames, config sync, limits, groups), `telemetry` (the `telemetry` block);
//! this module holds the entry point and the checks they share.

mod clusters;
mod flows;
mod telemetry;

use super::diagnostics::Diagnostics;
use super::interpolate;
use super::locate::{FieldPath, Target};
use super::names::is_topic_char;
use super::raw::{self, Skeleton, Text};
use super::units::{parse_duration, parse_size};
use super::{ConfigErrors, Topology};
// For `super::Otlp` and `super::DEFAULT_LOG_INTERVAL` in `telemetry`.
use super::{Otlp, DEFAULT_LOG_INTERVAL};
use clusters::resolve_clusters;
use flows::resolve_flows;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use telemetry::resolve_telemetry;

/// Longest cluster or flow name accepted (names end up in topic names and metric labels).
const MAX_NAME_LEN: usize = 64;
const DEFAULT_CLIENT_ID: &str = "kmirror";
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_GROUPS_INTERVAL: Duration = Duration::from_secs(5);

/// Entry point behind [`super::parse`].
pub(super) fn parse(
    text: &str,
    file_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Topology, ConfigErrors> {
    let mut diagnostics = Diagnostics::new(file_name, text);
    let (topology, substitutions) =
        interpolate::with_environment(text, env, || resolve(&mut diagnostics));
    diagnostics.finish(topology, &substitutions)
}

/// Reads the whole document, reporting into `diagnostics`; `None` if it is unusable.
fn resolve(diagnostics: &mut Diagnostics<'_>) -> Option<Topology> {
    let root = FieldPath::root();
    let skeleton: Skeleton = match serde_yaml::from_str(diagnostics.text()) {
        Ok(skeleton) => skeleton,
        Err(error) => {
            diagnostics.serde(&error, &root);
            return None;
        }
    };
    check_top_level_keys(diagnostics, &skeleton);
    let cluster_names = skeleton.cluster_names.clone().unwrap_or_else(|| {
        diagnostics.at(&root, "missing field `clusters`");
        Vec::new()
    });
    let flow_count = skeleton.flow_count.unwrap_or_else(|| {
        diagnostics.at(&root, "missing field `flows`");
        0
    });
    if skeleton.cluster_names.as_ref().is_some_and(Vec::is_empty) {
        diagnostics.at(&root.key("clusters"), "no clusters defined");
    }
    if skeleton.flow_count == Some(0) {
        diagnostics.at(
            &root.key("flows"),
            "no flows defined; a topology needs at least one flow",
        );
    }
    let clusters = resolve_clusters(diagnostics, &cluster_names);
    let known_clusters: BTreeSet<&str> = cluster_names.iter().map(String::as_str).collect();
    let flows = resolve_flows(diagnostics, flow_count, &known_clusters);
    let telemetry = if skeleton.keys.iter().any(|key| key == "telemetry") {
        resolve_telemetry(diagnostics, &clusters)
    } else {
        None
    };
    Some(Topology {
        clusters,
        flows,
        telemetry,
    })
}

fn check_top_level_keys(diagnostics: &mut Diagnostics<'_>, skeleton: &Skeleton) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for key in &skeleton.keys {
        let occurrence = seen.entry(key.as_str()).or_default();
        let path = FieldPath::root().key(key.as_str());
        if !raw::TOP_LEVEL_KEYS.contains(&key.as_str()) {
            diagnostics.at_key(
                &path,
                *occurrence,
                format!("unknown field `{key}`, expected one of `clusters`, `flows`, `telemetry`"),
            );
        } else if *occurrence > 0 {
            diagnostics.at_key(&path, *occurrence, format!("duplicate key `{key}`"));
        }
        *occurrence += 1;
    }
}

/// `name_ms: 30000` or `name: 30s` (not both), positive.
fn timeout(
    diagnostics: &mut Diagnostics<'_>,
    cluster_path: &FieldPath,
    name: &str,
    millis: Option<u64>,
    human: Option<&Text>,
    default: Duration,
) -> Option<Duration> {
    let millis_key = format!("{name}_ms");
    match (millis, human) {
        (Some(_), Some(_)) => {
            diagnostics.at(
                &cluster_path.key(name),
                format!("set either `{millis_key}` or `{name}`, not both"),
            );
            None
        }
        (Some(0), None) => {
            diagnostics.at(
                &cluster_path.key(millis_key),
                format!("`{name}_ms` must be positive"),
            );
            None
        }
        (Some(millis), None) => Some(Duration::from_millis(millis)),
        (None, human) => duration(diagnostics, &cluster_path.key(name), human, default),
    }
}

/// A positive duration such as "10s", or `default` when absent.
fn duration(
    diagnostics: &mut Diagnostics<'_>,
    path: &FieldPath,
    text: Option<&Text>,
    default: Duration,
) -> Option<Duration> {
    let Some(text) = text else {
        return Some(default);
    };
    match parse_duration(&text.0) {
        Ok(value) if value.is_zero() => {
            diagnostics.at(path, format!("duration {:?} must be positive", text.0));
            None
        }
        Ok(value) => Some(value),
        Err(message) => {
            diagnostics.at(path, message);
            None
        }
    }
}

/// A positive byte size such as "50MiB".
fn size(diagnostics: &mut Diagnostics<'_>, path: &FieldPath, text: &Text) -> Option<u64> {
    match parse_size(&text.0) {
        Ok(0) => {
            diagnostics.at(path, format!("size {:?} must be positive", text.0));
            None
        }
        Ok(bytes) => Some(bytes),
        Err(message) => {
            diagnostics.at(path, message);
            None
        }
    }
}

/// Cluster and flow names: non-empty, short, and legal inside a topic name.
fn check_name(
    diagnostics: &mut Diagnostics<'_>,
    path: &FieldPath,
    target: Target,
    kind: &str,
    name: &str,
) {
    let problem = if name.is_empty() {
        Some(format!("{kind} name must not be empty"))
    } else if name.chars().count() > MAX_NAME_LEN {
        Some(format!(
            "{kind} name `{name}` is longer than {MAX_NAME_LEN} characters"
        ))
    } else if !name.chars().all(is_topic_char) {
        Some(format!(
            "{kind} name `{name}` may only contain letters, digits, '.', '_' and '-'"
        ))
    } else {
        None
    };
    if let Some(message) = problem {
        diagnostics.located(path, target, message);
    }
}
