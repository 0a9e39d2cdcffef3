//! `kmirror offsets`: a group's committed source offsets (or one offset) translated through
//! a flow's stored offset map, read from the target cluster without a running daemon.

use std::sync::Arc;
use std::time::Duration;

use crate::client::metadata::MetadataSnapshot;
use crate::client::ClusterClient;
use crate::config::{Connection, Flow, Topology};
use crate::mirror::client_for;
use crate::mirror::progress::{other_source, Progress, PROGRESS_TOPIC};
use crate::offsets::report::{self, FlowOffsets, PartitionOffsets, Reverse};

/// How long reading a flow's stored progress may take.
const READ_DEADLINE: Duration = Duration::from_secs(30);

/// How long the source may take to tell its cluster id.
const CLUSTER_ID_DEADLINE: Duration = Duration::from_secs(10);

/// What to translate.
pub enum Query {
    Group(String),
    One {
        topic: String,
        partition: i32,
        offset: i64,
    },
}

impl Query {
    /// One source offset to translate. A negative one is refused: Kafka gives -1, -2 and
    /// -1001 meanings of their own (latest, earliest, no committed offset), and a consumer's
    /// "no committed offset" passed on must not come back as a position to seek to.
    pub fn one(topic: String, partition: i32, offset: i64) -> Result<Query, String> {
        if offset < 0 {
            return Err(format!("offset {offset} is not a record offset (Kafka's -1, -2 and -1001 mean latest, earliest and no committed offset): give the source offset of a record, 0 or more"));
        }
        Ok(Query::One {
            topic,
            partition,
            offset,
        })
    }
}

/// The flow named `name`, or an error listing the flows there are.
pub fn find_flow<'a>(topology: &'a Topology, name: &str) -> Result<&'a Flow, String> {
    topology.flow(name).ok_or_else(|| {
        let names: Vec<&str> = topology.flows.iter().map(|f| f.name.as_str()).collect();
        format!("no flow {name:?}; the topology has {}", names.join(", "))
    })
}

/// Connects to the flow's clusters and reads its stored progress and offset maps.
pub async fn flow_offsets(topology: &Topology, flow: &Flow) -> Result<FlowOffsets, String> {
    let clusters = [&flow.source, &flow.target].map(|name| &topology.clusters[name]);
    if let Some(embedded) = clusters
        .iter()
        .find(|c| matches!(c.connection, Connection::Embedded(_)))
    {
        return Err(format!(
            "flow {} uses the embedded cluster {}, which exists only while `kmirror run` runs; ask the daemon: GET /offsets?flow={}&group=GROUP on its telemetry listener",
            flow.name, embedded.name, flow.name
        ));
    }
    let none = Default::default();
    let source = Arc::new(client_for(clusters[0], &none));
    let target = Arc::new(client_for(clusters[1], &none));
    let progress = Progress::read(&flow.name, &target, READ_DEADLINE)
        .await
        .map_err(|e| format!("cannot read the progress of flow {}: {e}", flow.name))?;
    if let Some((stored, id)) = other_source_cluster(&progress, &source).await {
        return Err(format!(
            "{}; nothing is translated",
            other_source(&flow.name, &flow.source, &stored, &id)
        ));
    }
    // Flows the other way keep their progress on this flow's source.
    let mut reverse = Vec::new();
    for back in topology
        .flows
        .iter()
        .filter(|f| f.source == flow.target && f.target == flow.source)
    {
        match Progress::read(&back.name, &source, READ_DEADLINE).await {
            Ok(progress) => {
                if let Some((stored, id)) = other_source_cluster(&progress, &target).await {
                    eprintln!("note: no failback translation through flow {}: its progress was written for source cluster id {stored}, but {} is cluster id {id}", back.name, back.source);
                    continue;
                }
                reverse.push(Reverse {
                    flow: back.clone(),
                    progress,
                })
            }
            Err(e) => eprintln!(
                "note: no failback translation through flow {}: cannot read its progress: {e}",
                back.name
            ),
        }
    }
    Ok(FlowOffsets {
        flow: flow.clone(),
        progress,
        source,
        target,
        reverse,
    })
}

/// Why `kmirror run` would refuse `flow`, whose source's metadata is `source_md`: its
/// progress on `target` was written for another source cluster; `None` when it was not, or
/// when no progress is stored or it cannot be read (said on stderr).
pub async fn other_source_refusal(
    flow: &Flow,
    target: &ClusterClient,
    source_md: &MetadataSnapshot,
) -> Option<String> {
    let (Some(id), Some(_)) = (
        &source_md.cluster_id,
        target.metadata().partition_count(PROGRESS_TOPIC),
    ) else {
        return None;
    };
    let progress = match Progress::read(&flow.name, target, READ_DEADLINE).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "note: the stored progress of flow {} is not checked: {e}",
                flow.name
            );
            return None;
        }
    };
    let stored = progress.source_cluster().filter(|stored| stored != id)?;
    Some(format!(
        "{} (`kmirror run` refuses to start the flow)",
        other_source(&flow.name, &flow.source, &stored, id)
    ))
}

/// The stored and the actual source cluster id when `progress` was written for another
/// cluster than `source` is. A source that does not answer within [`CLUSTER_ID_DEADLINE`]
/// is not checked: translating while the source is down is what failover is for.
async fn other_source_cluster(
    progress: &Progress,
    source: &ClusterClient,
) -> Option<(String, String)> {
    let stored = progress.source_cluster()?;
    match tokio::time::timeout(CLUSTER_ID_DEADLINE, source.refresh_metadata()).await {
        Ok(Ok(metadata)) => metadata
            .cluster_id
            .clone()
            .filter(|id| *id != stored)
            .map(|id| (stored, id)),
        Ok(Err(e)) => {
            eprintln!("note: the source cluster id of the stored progress is not checked: cannot read the metadata of {}: {e}", source.name());
            None
        }
        Err(_) => {
            eprintln!("note: the source cluster id of the stored progress is not checked: {} did not answer within {} s", source.name(), CLUSTER_ID_DEADLINE.as_secs());
            None
        }
    }
}

/// Runs `query` against `offsets`.
pub async fn translate(
    offsets: &FlowOffsets,
    query: &Query,
) -> Result<Vec<PartitionOffsets>, String> {
    let flow = &offsets.flow.name;
    match query {
        Query::Group(group) => {
            let rows = offsets
                .group(group)
                .await
                .map_err(|e| format!("cannot read the offsets of group {group}: {e}"))?;
            if rows.is_empty() {
                return Err(format!(
                    "group {group} has no committed offsets on the topics flow {flow} mirrors"
                ));
            }
            Ok(rows)
        }
        Query::One {
            topic,
            partition,
            offset,
        } => offsets
            .one(topic, *partition, *offset, true)
            .await
            .map(|row| vec![row])
            .ok_or_else(|| format!("flow {flow} has no position for {topic} partition {partition}: it does not mirror it (yet)")),
    }
}

/// `kmirror offsets`: the text (table or JSON) to print, or the error.
pub async fn offsets(
    topology: &Topology,
    flow: &str,
    query: Query,
    json: bool,
) -> Result<String, String> {
    let flow = find_flow(topology, flow)?;
    let offsets = flow_offsets(topology, flow).await?;
    let rows = translate(&offsets, &query).await?;
    if json {
        let group = match &query {
            Query::Group(g) => Some(g.as_str()),
            Query::One { .. } => None,
        };
        let value = serde_json::json!({ "flow": flow.name, "group": group, "partitions": rows });
        return Ok(format!("{value:#}\n"));
    }
    Ok(report::render(&rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_negative_offset_is_refused_as_kafkas_special_value() {
        for offset in [-1, -2, -1001, -5] {
            let refused = Query::one("t".into(), 0, offset).err().expect("refused");
            assert!(refused.contains("not a record offset"), "{refused}");
        }
        assert!(matches!(
            Query::one("t".into(), 0, 0),
            Ok(Query::One { offset: 0, .. })
        ));
    }
}
