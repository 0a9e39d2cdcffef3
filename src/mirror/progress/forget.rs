//! `kmirror forget`: deleting what a flow stored for one source topic (its partitions'
//! positions, their offset-map chunks and the topic's id) with tombstones in the progress
//! topic, so that the flow's next start mirrors the topic as a new one. The way on for a
//! source topic deleted and re-created, which the daemon stops because the progress it
//! stored belongs to the old topic.
//!
//! Every chunk stored for a partition is deleted, not only those a load would use: a map
//! started again at chunk 0 must not be joined to an old chunk of a higher index.

use std::time::Duration;

use super::codec::{self, Entry};
use super::{store, ClientError, ClusterClient, PROGRESS_TOPIC};

/// What was deleted for a topic.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Forgotten {
    pub positions: usize,
    pub map_chunks: usize,
    pub topic_id: bool,
}

/// Deletes what `flow` stored for source `topic` on `target` (see the module docs); gives
/// up reading and checking the progress topic after `deadline` each. Nothing is written when nothing is stored.
pub async fn forget_topic(
    flow: &str,
    topic: &str,
    target: &ClusterClient,
    deadline: Duration,
) -> Result<Forgotten, ClientError> {
    let metadata = target.refresh_metadata().await?;
    if metadata.partition_count(PROGRESS_TOPIC).is_none() {
        return Ok(Forgotten::default());
    }
    let loaded = super::read_stored(flow, target, deadline).await?;
    let mut forgotten = Forgotten::default();
    let mut entries = Vec::new();
    for (sp, chunks) in loaded.maps.iter().filter(|(sp, _)| sp.topic == topic) {
        for index in chunks.keys() {
            entries.push(Entry::MapChunk(sp.clone(), *index, None));
            forgotten.map_chunks += 1;
        }
    }
    for sp in loaded.positions.keys().filter(|sp| sp.topic == topic) {
        entries.push(Entry::Forget(codec::key(flow, sp)));
        forgotten.positions += 1;
    }
    if loaded.source_topics.contains_key(topic) {
        entries.push(Entry::Forget(codec::source_topic_key(flow, topic)));
        forgotten.topic_id = true;
    }
    if entries.is_empty() {
        return Ok(forgotten);
    }
    let limit = store::ensure_topic(target, Some(deadline))
        .await
        .map_err(|e| ClientError::Refused {
            cluster: target.name().to_string(),
            what: e.to_string(),
        })?;
    let batches =
        codec::encode(flow, &entries, crate::telemetry::stats::now_ms(), limit).map_err(|e| {
            ClientError::Refused {
                cluster: target.name().to_string(),
                what: format!("writing {PROGRESS_TOPIC}: {e}"),
            }
        })?;
    for batch in batches {
        store::send_batch(target, batch.bytes).await?;
    }
    Ok(forgotten)
}

/// `kmirror forget --flow FLOW --topic TOPIC`: what was deleted, or why nothing could be.
pub async fn command(
    topology: &crate::config::Topology,
    flow: &str,
    topic: &str,
) -> Result<String, String> {
    let flow = crate::offsets::cli::find_flow(topology, flow)?;
    let cluster = &topology.clusters[&flow.target];
    if matches!(cluster.connection, crate::config::Connection::Embedded(_)) {
        return Err(format!(
            "flow {} writes to the embedded cluster {}, which exists only while `kmirror run` runs",
            flow.name, cluster.name
        ));
    }
    let target = crate::mirror::client_for(cluster, &Default::default());
    if let Some(running) = running_elsewhere(topology, flow, &target).await {
        return Err(format!(
            "flow {} is running ({running}): stop the daemon first. A daemon that runs the flow keeps the positions it loaded: it would write those of a busy topic again (undoing this), and after an idle one was forgotten its next start would mirror the whole topic again",
            flow.name
        ));
    }
    let forgotten = forget_topic(&flow.name, topic, &target, Duration::from_secs(30))
        .await
        .map_err(|e| format!("flow {}: {e}", flow.name))?;
    if forgotten == Forgotten::default() {
        return Ok(format!(
            "flow {}: nothing stored for source topic {topic} in {PROGRESS_TOPIC} on cluster {}; nothing deleted\n",
            flow.name, cluster.name
        ));
    }
    Ok(format!(
        "flow {}: deleted what was stored for source topic {topic} in {PROGRESS_TOPIC} on cluster {}: {} partition positions, {} offset-map chunks{}.\nThe flow's next start mirrors {topic} as a new topic, from the source's log start, into the target topic it has now. Restart the daemon: one that runs the flow keeps what it loaded, and would write the positions of a topic it still mirrors again.\n",
        flow.name,
        cluster.name,
        forgotten.positions,
        forgotten.map_chunks,
        if forgotten.topic_id { ", its topic id" } else { "" },
    ))
}

/// How a daemon running `flow` shows itself, if one does: the topology's telemetry listener
/// answering `/status` with the flow (a daemon of this file on this host), or, for an
/// exclusive flow, members in its ownership group (a daemon anywhere). Neither shows a
/// daemon of another file without a listener running a flow that is not exclusive.
async fn running_elsewhere(
    topology: &crate::config::Topology,
    flow: &crate::config::Flow,
    target: &ClusterClient,
) -> Option<String> {
    const ASK_WITHIN: Duration = Duration::from_secs(3);
    if let Some(listen) = topology.telemetry.as_ref().and_then(|t| t.listen) {
        let authority = listen.to_string();
        let status =
            tokio::time::timeout(ASK_WITHIN, crate::telemetry::status_cli::fetch(&authority)).await;
        if let Ok(Ok(status)) = status {
            let listed = status["flows"]
                .as_array()
                .is_some_and(|flows| flows.iter().any(|f| f["name"] == flow.name.as_str()));
            if listed {
                return Some(format!(
                    "the daemon whose /status answers at {authority} lists it"
                ));
            }
        }
    }
    if flow.exclusive {
        let group = crate::mirror::ownership::group_id(&flow.name);
        let state = tokio::time::timeout(ASK_WITHIN, target.group_state(&group)).await;
        if let Ok(Ok(state)) = state {
            if state.members > 0 {
                return Some(format!(
                    "its ownership group {group} has {} member(s)",
                    state.members
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{pos, sp_of};
    use super::super::{load, Progress};
    use super::*;

    /// A flow's positions, map chunks and id of one topic are deleted; its other topics,
    /// its marker and another flow's records of that topic are kept; a second run finds
    /// nothing.
    #[tokio::test]
    async fn forgets_one_topic_of_one_flow() {
        let (broker, target) = crate::client::local_cluster("target").await;
        store::ensure_topic(&target, None).await.unwrap();
        let deadline = Duration::from_secs(30);
        for flow in ["f", "g"] {
            let p = Progress::fresh(flow);
            for sp in [sp_of("t", 0), sp_of("t", 1), sp_of("u", 0)] {
                p.acknowledged(&sp, pos(10), Some((0, &[(0, 10)])));
            }
            p.note_source_topic_id("t", uuid::Uuid::from_u128(1));
            p.note_source_topic_id("u", uuid::Uuid::from_u128(2));
            p.mark_initialised();
            p.write(&target).await.unwrap();
        }
        let forgotten = forget_topic("f", "t", &target, deadline).await.unwrap();
        assert_eq!(
            forgotten,
            Forgotten {
                positions: 2,
                map_chunks: 2,
                topic_id: true
            }
        );
        let log = store::TargetLog { target: &target };
        let loaded = load::read_all("f", &log, &target).await.unwrap();
        let topics = |keys: Vec<&super::super::SourcePartition>| -> Vec<String> {
            keys.into_iter().map(|sp| sp.topic.clone()).collect()
        };
        assert_eq!(topics(loaded.positions.keys().collect()), ["u"]);
        let with_chunks = loaded.maps.iter().filter(|(_, chunks)| !chunks.is_empty());
        assert_eq!(
            topics(with_chunks.map(|(sp, _)| sp).collect()),
            ["u"],
            "no chunk of t left"
        );
        assert_eq!(
            loaded.source_topics.keys().collect::<Vec<_>>(),
            ["u"],
            "no id of t left"
        );
        assert!(loaded.marker, "the marker is kept");
        let g = Progress::read("g", &target, deadline).await.unwrap();
        assert_eq!(g.get(&sp_of("t", 0)), Some(pos(10)));
        assert_eq!(g.source_topic_id("t"), Some(uuid::Uuid::from_u128(1)));
        let again = forget_topic("f", "t", &target, deadline).await.unwrap();
        assert_eq!(again, Forgotten::default());
        let _ = broker.shutdown().await;
    }
}
