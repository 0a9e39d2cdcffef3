//! Validation of `flows`: each flow's clusters, topic filters, rename, config sync, limits
//! and group translation, then the checks across flows ([`graph`]).

use super::{check_name, duration, size, DEFAULT_DISCOVERY_INTERVAL, DEFAULT_GROUPS_INTERVAL};
use crate::config::diagnostics::Diagnostics;
use crate::config::graph::{self, CycleGuard, FlowEdge};
use crate::config::locate::{self, FieldPath, Target};
use crate::config::names::{NameFilter, Pattern, RenameTemplate};
use crate::config::raw::{RawFlow, RawGroups, RawLimits, RawSyncConfigs, Text, Typed};
use crate::config::{Delivery, Flow, Groups, Limits, PartitionPolicy, StartFrom, SyncConfigs};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub(super) fn resolve_flows(
    diagnostics: &mut Diagnostics<'_>,
    count: usize,
    known_clusters: &BTreeSet<&str>,
) -> Vec<Flow> {
    let flows_path = FieldPath::root().key("flows");
    // (index in the file, flow) for the flows that resolved.
    let mut resolved: Vec<(usize, Flow)> = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for index in 0..count {
        let path = flows_path.index(index);
        let raw = match locate::deserialize_at::<RawFlow>(diagnostics.text(), &path) {
            Ok(Some(raw)) => raw,
            Ok(None) => continue,
            Err(error) => {
                diagnostics.serde(&error, &path);
                continue;
            }
        };
        let duplicate = names.get(&raw.name.0).copied();
        if let Some(first) = duplicate {
            diagnostics.at(
                &path.key("name"),
                format!("duplicate flow name `{}` (also flows[{first}])", raw.name.0),
            );
        } else {
            names.insert(raw.name.0.clone(), index);
        }
        // A flow named twice is checked for its own errors, but not against the others
        // (a rename collision with its namesake would only repeat the error above).
        if let Some(flow) = resolve_flow(diagnostics, &path, raw, known_clusters) {
            if duplicate.is_none() {
                resolved.push((index, flow));
            }
        }
    }
    let edges: Arc<[FlowEdge]> = resolved
        .iter()
        .map(|(_, flow)| FlowEdge {
            source: flow.source.clone(),
            target: flow.target.clone(),
            rename: flow.rename.clone(),
        })
        .collect();
    let (indices, mut flows): (Vec<usize>, Vec<Flow>) = resolved.into_iter().unzip();
    for flow in &mut flows {
        flow.cycle_guard = CycleGuard::new(Arc::clone(&edges));
    }
    let findings = graph::identity_cycles(&flows)
        .into_iter()
        .chain(graph::rename_collisions(&flows));
    for finding in findings {
        diagnostics.at(
            &flows_path
                .index(indices[finding.flow_index])
                .key(finding.field),
            finding.message,
        );
    }
    flows
}

fn resolve_flow(
    diagnostics: &mut Diagnostics<'_>,
    path: &FieldPath,
    raw: RawFlow,
    known_clusters: &BTreeSet<&str>,
) -> Option<Flow> {
    let errors_before = diagnostics.error_count();
    let name = raw.name.0;
    check_name(diagnostics, &path.key("name"), Target::Value, "flow", &name);
    let (source, target) = (raw.source.0, raw.target.0);
    for (key, cluster) in [("source", &source), ("target", &target)] {
        if !known_clusters.contains(cluster.as_str()) {
            let defined: Vec<&str> = known_clusters.iter().copied().collect();
            diagnostics.at(
                &path.key(key),
                format!(
                    "unknown cluster `{cluster}` (defined clusters: {})",
                    defined.join(", ")
                ),
            );
        }
    }
    if source == target {
        diagnostics.at(
            &path.key("target"),
            format!("source and target are the same cluster `{source}`; a flow copies between two clusters"),
        );
    }
    let topics_path = path.key("topics");
    if raw.topics.include.is_empty() {
        diagnostics.at(
            &topics_path.key("include"),
            "topics.include must list at least one regex (\".*\" mirrors every topic)",
        );
    }
    let topics = NameFilter {
        include: patterns(
            diagnostics,
            &topics_path.key("include"),
            &raw.topics.include,
        ),
        exclude: patterns(
            diagnostics,
            &topics_path.key("exclude"),
            &raw.topics.exclude,
        ),
    };
    let rename_text = raw
        .rename
        .map_or_else(|| RenameTemplate::DEFAULT.to_string(), |text| text.0);
    let rename = RenameTemplate::parse(&rename_text)
        .map_err(|message| diagnostics.at(&path.key("rename"), message));
    let sync_configs =
        resolve_sync_configs(diagnostics, &path.key("sync_configs"), raw.sync_configs);
    let discovery_interval = duration(
        diagnostics,
        &path.key("discovery_interval"),
        raw.discovery_interval.as_ref(),
        DEFAULT_DISCOVERY_INTERVAL,
    );
    let delivery = raw.delivery.map_or(Delivery::AtLeastOnce, |value| value.0);
    if delivery == Delivery::ExactlyOnce {
        diagnostics.at(
            &path.key("delivery"),
            "delivery `exactly_once` is not supported yet; use `at_least_once` (the default)",
        );
    }
    let limits = resolve_limits(diagnostics, &path.key("limits"), raw.limits);
    let mm2_compat = raw.mm2_compat.is_some_and(|value| value.0);
    // MM2 checkpoints need translated groups: MM2's default group filter when unset.
    let raw_groups = match raw.groups {
        None if mm2_compat => Some(RawGroups::default()),
        // A selection nothing uses would do nothing, silently: no sync, no checkpoints, and
        // no source offsets kept for a failover while the source is down.
        Some(groups) if !mm2_compat && !groups.sync_offsets.as_ref().is_some_and(|v| v.0) => {
            diagnostics.at(
                &path.key("groups"),
                "`groups` selects consumer groups, but nothing uses them: add `sync_offsets: true` to commit their translated offsets on the target (and keep their source offsets for `kmirror failover`), or `mm2_compat: true` for MirrorMaker 2 checkpoints; or remove `groups`",
            );
            None
        }
        other => other,
    };
    let groups = raw_groups.map(|groups| resolve_groups(diagnostics, &path.key("groups"), groups));
    if diagnostics.error_count() > errors_before {
        return None;
    }
    Some(Flow {
        name,
        source,
        target,
        topics,
        rename: rename.ok()?,
        partitions: raw
            .partitions
            .map_or(PartitionPolicy::Preserve, |value| value.0),
        create_topics: raw.create_topics.is_none_or(|value| value.0),
        sync_configs,
        start_from: raw.start_from.map_or(StartFrom::Earliest, |value| value.0),
        discovery_interval: discovery_interval?,
        delivery,
        limits: limits?,
        groups: groups.flatten(),
        mm2_compat,
        sync_acls: raw.sync_acls.is_some_and(|value| value.0),
        exclusive: raw.exclusive.is_some_and(|value| value.0),
        cycle_guard: CycleGuard::default(),
    })
}

/// Compiles a list of regexes, reporting each bad one at its own index.
fn patterns(diagnostics: &mut Diagnostics<'_>, path: &FieldPath, texts: &[Text]) -> Vec<Pattern> {
    let mut compiled = Vec::new();
    for (index, text) in texts.iter().enumerate() {
        match Pattern::new(&text.0) {
            Ok(pattern) => compiled.push(pattern),
            Err(message) => diagnostics.at(&path.index(index), message),
        }
    }
    compiled
}

/// Default patterns (known to compile) followed by the configured ones.
fn with_defaults(
    diagnostics: &mut Diagnostics<'_>,
    path: &FieldPath,
    use_defaults: bool,
    defaults: &[&str],
    configured: &[Text],
) -> Vec<Pattern> {
    let mut patterns: Vec<Pattern> = if use_defaults {
        defaults
            .iter()
            .map(|text| Pattern::new(text).expect("built-in pattern compiles"))
            .collect()
    } else {
        Vec::new()
    };
    patterns.extend(self::patterns(diagnostics, path, configured));
    patterns
}

fn resolve_sync_configs(
    diagnostics: &mut Diagnostics<'_>,
    path: &FieldPath,
    raw: Option<RawSyncConfigs>,
) -> SyncConfigs {
    let raw = raw.unwrap_or(RawSyncConfigs {
        enabled: None,
        exclude: Vec::new(),
        default_exclude: None,
    });
    SyncConfigs {
        enabled: raw.enabled.is_none_or(|value| value.0),
        exclude: with_defaults(
            diagnostics,
            &path.key("exclude"),
            raw.default_exclude.is_none_or(|value| value.0),
            SyncConfigs::DEFAULT_EXCLUDE,
            &raw.exclude,
        ),
    }
}

fn resolve_limits(
    diagnostics: &mut Diagnostics<'_>,
    path: &FieldPath,
    raw: Option<RawLimits>,
) -> Option<Limits> {
    let Some(raw) = raw else {
        return Some(Limits {
            bytes_per_sec: None,
            records_per_sec: None,
            max_in_flight_bytes: Limits::DEFAULT_MAX_IN_FLIGHT_BYTES,
            batch_bytes: Limits::DEFAULT_BATCH_BYTES,
        });
    };
    let errors_before = diagnostics.error_count();
    let bytes_per_sec = raw
        .bytes_per_sec
        .as_ref()
        .map(|text| size(diagnostics, &path.key("bytes_per_sec"), text));
    if raw.records_per_sec == Some(Typed(0)) {
        diagnostics.at(
            &path.key("records_per_sec"),
            "records_per_sec must be positive",
        );
    }
    let max_in_flight_bytes = match &raw.max_in_flight_bytes {
        Some(text) => size(diagnostics, &path.key("max_in_flight_bytes"), text).filter(|m| {
            let enough = *m >= Limits::MIN_MAX_IN_FLIGHT_BYTES;
            if !enough {
                diagnostics.at(
                    &path.key("max_in_flight_bytes"),
                    format!("max_in_flight_bytes must be at least 128KiB (a Fetch reserves 64KiB, twice when its response is shared), got {m}"),
                );
            }
            enough
        }),
        None => Some(Limits::DEFAULT_MAX_IN_FLIGHT_BYTES),
    };
    // Unset, it is the default or the budget, whichever is less.
    let batch_bytes = match &raw.batch_bytes {
        Some(text) => size(diagnostics, &path.key("batch_bytes"), text),
        None => max_in_flight_bytes.map(|m| Limits::DEFAULT_BATCH_BYTES.min(m)),
    };
    if let (Some(b), Some(m)) = (batch_bytes, max_in_flight_bytes) {
        if b < Limits::MIN_BATCH_BYTES || b > m {
            diagnostics.at(
                &path.key("batch_bytes"),
                format!(
                    "batch_bytes must be between 16KiB and max_in_flight_bytes ({m} bytes), got {b}"
                ),
            );
        }
    }
    if diagnostics.error_count() > errors_before {
        return None;
    }
    Some(Limits {
        bytes_per_sec: bytes_per_sec.flatten(),
        records_per_sec: raw.records_per_sec.map(|rate| rate.0),
        max_in_flight_bytes: max_in_flight_bytes?,
        batch_bytes: batch_bytes?,
    })
}

fn resolve_groups(
    diagnostics: &mut Diagnostics<'_>,
    path: &FieldPath,
    raw: RawGroups,
) -> Option<Groups> {
    let include_texts = raw.include.unwrap_or_else(|| vec![Text(".*".to_string())]);
    if include_texts.is_empty() {
        diagnostics.at(
            &path.key("include"),
            "groups.include must list at least one regex (or be left out for \".*\")",
        );
    }
    let include = patterns(diagnostics, &path.key("include"), &include_texts);
    let exclude = with_defaults(
        diagnostics,
        &path.key("exclude"),
        raw.default_exclude.is_none_or(|value| value.0),
        Groups::DEFAULT_EXCLUDE,
        &raw.exclude,
    );
    let interval = duration(
        diagnostics,
        &path.key("interval"),
        raw.interval.as_ref(),
        DEFAULT_GROUPS_INTERVAL,
    );
    Some(Groups {
        filter: NameFilter { include, exclude },
        sync_offsets: raw.sync_offsets.is_some_and(|value| value.0),
        interval: interval?,
    })
}
