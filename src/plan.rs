//! `kmirror plan`: per flow, the source topics it matches, their target names and what
//! `run` would create or change on the target (partitions, configs, kmirror's own
//! topics), by the same selection policy as the engine; changes nothing.

use std::process::ExitCode;

use kmirror::config::{self, Connection};
use kmirror::mirror::selection::{self, TargetAction};

use crate::emit;

/// Prints the plan of every flow; fails if a flow's clusters cannot be reached or its
/// target belongs to another source.
pub(crate) async fn plan(topology: config::Topology) -> ExitCode {
    let mut failed = false;
    let no_embedded = Default::default();
    for flow in &topology.flows {
        outln!("flow {} ({} -> {})", flow.name, flow.source, flow.target);
        let clusters = [
            &topology.clusters[&flow.source],
            &topology.clusters[&flow.target],
        ];
        if clusters
            .iter()
            .any(|c| matches!(c.connection, Connection::Embedded(_)))
        {
            outln!("  an embedded cluster is started by `kmirror run`; plan does not start it");
            continue;
        }
        let source = kmirror::mirror::client_for(clusters[0], &no_embedded);
        let target = kmirror::mirror::client_for(clusters[1], &no_embedded);
        let (source_md, target_md) = match (
            source.refresh_metadata().await,
            target.refresh_metadata().await,
        ) {
            (Ok(s), Ok(t)) => (s, t),
            (Err(e), _) | (_, Err(e)) => {
                outln!("  cannot connect: {e}");
                failed = true;
                continue;
            }
        };
        // As `run` (discovery), which refuses to start such a flow.
        if let Some(refusal) =
            kmirror::offsets::cli::other_source_refusal(flow, &target, &source_md).await
        {
            outln!("  REFUSED: {refusal}");
            failed = true;
            continue;
        }
        let one_cluster = selection::same_cluster(&source_md, &target_md);
        if one_cluster {
            outln!("  source and target are one cluster (same cluster id and brokers): the topics this flow writes are not mirrored again");
        }
        let topics = selection::mirrored_topics(flow, &source_md, one_cluster);
        if topics.is_empty() {
            outln!("  no source topic matches");
        }
        for (name, meta) in topics {
            let target_name = flow.rename(name);
            let count = meta.partitions.len() as i32;
            let action = match selection::target_action(
                flow,
                count,
                target_md.partition_count(&target_name),
            ) {
                TargetAction::Create { partitions } => match clusters[1].replication_factor {
                    Some(rf) => {
                        format!("create with {partitions} partitions, replication factor {rf}")
                    }
                    None => format!("create with {partitions} partitions"),
                },
                TargetAction::Missing => {
                    "MISSING (create_topics is off): would not be mirrored".to_string()
                }
                TargetAction::AddPartitions { from, to } => {
                    format!("add partitions {from} -> {to}")
                }
                TargetAction::Blocked { target, source } => {
                    format!("BLOCKED: target has {target} partitions, source {source}")
                }
                TargetAction::Exists => "exists".to_string(),
            };
            let mut configs = Vec::new();
            if flow.sync_configs.enabled {
                if let Ok((mut source_configs, source_known)) =
                    source.synced_configs_and_keys(name).await
                {
                    source_configs.retain(|(k, _)| flow.sync_configs.syncs(k));
                    // As the engine: the keys the target knows, from the target topic or,
                    // before it exists, from the progress topic.
                    let (current, known) = target
                        .configs_and_known_keys(
                            &target_name,
                            kmirror::mirror::progress::PROGRESS_TOPIC,
                        )
                        .await
                        .unwrap_or_default();
                    let (source_configs, unknown) =
                        selection::known_to_target(source_configs, &known);
                    let (changed, removed) =
                        selection::config_changes(flow, &source_configs, &current, &source_known);
                    configs.extend(changed.iter().map(|(k, v)| format!("set {k}={v}")));
                    configs.extend(removed.iter().map(|k| format!("remove {k}")));
                    configs.extend(
                        unknown
                            .iter()
                            .map(|k| format!("skip {k} (the target does not know it)")),
                    );
                }
            }
            let configs = if configs.is_empty() {
                String::new()
            } else {
                format!("; {}", configs.join(", "))
            };
            outln!("  {name} -> {target_name}: {action}{configs}");
        }
        // The topics `run` creates on the target for the flow itself.
        let mut own = vec![kmirror::mirror::progress::PROGRESS_TOPIC.to_string()];
        if flow.mm2_compat {
            own.push(kmirror::offsets::mm2::HEARTBEATS_TOPIC.to_string());
            own.push(kmirror::offsets::mm2::checkpoints_topic(&flow.source));
        }
        for topic in own {
            let action = if target_md.topics.contains_key(&topic) {
                "exists"
            } else {
                "create (kmirror's own)"
            };
            outln!("  {topic} (on {}): {action}", flow.target);
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
