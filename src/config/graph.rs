//! Checks across flows: replication cycles and rename collisions, and the runtime cycle
//! guard that flows use to skip topics that would go back where they came from.
//!
//! Clusters are nodes and flows are edges (source → target). Three cases:
//! - A cycle whose flows all keep topic names (`rename: "{topic}"`) copies a topic round
//!   and round: nothing in the name says where it came from. It is an error unless the
//!   flows' topic filters are provably disjoint (see [`names::provably_disjoint`]).
//! - A cycle with at least one renaming flow (e.g. `"{source}.{topic}"`) is accepted:
//!   like MirrorMaker 2's `isCycle`, [`CycleGuard`] reads a topic's origin from its name
//!   and [`super::Flow::matches`] refuses topics that came from the flow's target.
//! - Two flows writing to the same target cluster collide when their renamed topic names
//!   can coincide; that is an error unless provably impossible.
//!
//! All reasoning is about names and patterns in the file, never about existing topics,
//! and errs on the side of reporting: "provably disjoint" needs literal prefixes or
//! suffixes that differ, or an exclude of the form `prefix.*`.

use super::names::{self, RenameTemplate, RenamedTopics};
use super::Flow;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Upper bound on cycles examined, so a pathological topology cannot stall validation.
const MAX_CYCLES: usize = 256;

/// A flow as an edge of the cluster graph.
#[derive(Debug, Clone)]
pub struct FlowEdge {
    pub source: String,
    pub target: String,
    pub rename: RenameTemplate,
}

/// Tells whether a topic on a cluster is a mirror of a topic from another cluster, by
/// undoing the rename templates of the flows that write to that cluster.
#[derive(Clone, Default)]
pub(crate) struct CycleGuard {
    edges: Arc<[FlowEdge]>,
}

impl std::fmt::Debug for CycleGuard {
    // Every flow holds all edges; printing them per flow would drown a Topology's Debug.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CycleGuard {{ flows: {} }}", self.edges.len())
    }
}

impl CycleGuard {
    pub(crate) fn new(edges: Arc<[FlowEdge]>) -> Self {
        Self { edges }
    }

    /// Whether `topic` on `cluster` was (by its name) mirrored from `origin`, directly or
    /// through a chain of flows. Identity renames give no evidence and are skipped.
    /// The edges whose renames decide what comes from upstream of `cluster`: those writing
    /// to it and, transitively, to their sources; as text, sorted.
    pub(crate) fn upstream_of(&self, cluster: &str) -> Vec<String> {
        let mut clusters = vec![cluster.to_string()];
        let mut edges = Vec::new();
        let mut i = 0;
        while i < clusters.len() {
            let cluster = clusters[i].clone();
            for e in self.edges.iter().filter(|e| e.target == cluster) {
                edges.push(format!("{e:?}"));
                if !clusters.contains(&e.source) {
                    clusters.push(e.source.clone());
                }
            }
            i += 1;
        }
        edges.sort();
        edges.dedup();
        edges
    }

    pub(crate) fn came_from(&self, cluster: &str, topic: &str, origin: &str) -> bool {
        self.came_from_within(cluster, topic, origin, self.edges.len())
    }

    fn came_from_within(&self, cluster: &str, topic: &str, origin: &str, hops_left: usize) -> bool {
        self.edges
            .iter()
            .filter(|edge| edge.target == cluster && !edge.rename.is_identity())
            .any(|edge| {
                match edge
                    .rename
                    .original_topic(&edge.source, &edge.target, topic)
                {
                    None => false,
                    Some(_) if edge.source == origin => true,
                    // Each undone rename shortens the name, so this terminates; the hop
                    // budget is an explicit bound on top.
                    Some(upstream) => {
                        hops_left > 0
                            && self.came_from_within(&edge.source, upstream, origin, hops_left - 1)
                    }
                }
            })
    }
}

/// A cross-flow problem, reported on `field` of flow `flow_index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub flow_index: usize,
    pub field: &'static str,
    pub message: String,
}

/// Cycles made only of identity-rename flows whose topic filters may overlap.
pub fn identity_cycles(flows: &[Flow]) -> Vec<Finding> {
    let identity: Vec<usize> = (0..flows.len())
        .filter(|&i| flows[i].rename.is_identity())
        .collect();
    let mut cycles = Vec::new();
    for &start in &identity {
        let mut path = vec![start];
        let mut visited = BTreeSet::from([flows[start].source.as_str()]);
        find_cycles(
            flows,
            &identity,
            start,
            &mut path,
            &mut visited,
            &mut cycles,
        );
    }
    cycles
        .into_iter()
        .filter(|cycle| !filters_break_cycle(flows, cycle))
        .map(|cycle| {
            let names: Vec<String> = cycle.iter().map(|&i| format!("`{}`", flows[i].name)).collect();
            let mut route: Vec<&str> = cycle.iter().map(|&i| flows[i].source.as_str()).collect();
            route.push(&flows[cycle[0]].source);
            Finding {
                flow_index: cycle[0],
                field: "rename",
                message: format!(
                    "replication cycle {}: flows {} all keep topic names (rename \"{{topic}}\"), so a topic they all match would be mirrored back to where it came from, forever; give one of them a rename with {{source}} (e.g. \"{}\") or make their topics.include disjoint (different literal prefixes, or an exclude like \"prefix.*\")",
                    route.join(" → "),
                    names.join(", "),
                    RenameTemplate::DEFAULT,
                ),
            }
        })
        .collect()
}

/// Depth-first search for simple cycles through `start`, using only flows with a larger
/// index than `start` so that each cycle is found once.
fn find_cycles<'f>(
    flows: &'f [Flow],
    identity: &[usize],
    start: usize,
    path: &mut Vec<usize>,
    visited: &mut BTreeSet<&'f str>,
    cycles: &mut Vec<Vec<usize>>,
) {
    let last = &flows[*path.last().expect("path starts non-empty")];
    if last.target == flows[start].source {
        if cycles.len() < MAX_CYCLES {
            cycles.push(path.clone());
        }
        return;
    }
    if !visited.insert(last.target.as_str()) {
        return;
    }
    for &next in identity.iter().filter(|&&next| next > start) {
        if flows[next].source == last.target && cycles.len() < MAX_CYCLES {
            path.push(next);
            find_cycles(flows, identity, start, path, visited, cycles);
            path.pop();
        }
    }
    visited.remove(last.target.as_str());
}

/// A topic loops round an identity cycle only if every flow on it matches the same name;
/// two flows with provably disjoint filters break the loop.
fn filters_break_cycle(flows: &[Flow], cycle: &[usize]) -> bool {
    let space = |index: usize| RenamedTopics {
        prefix: "",
        suffix: "",
        filter: &flows[index].topics,
    };
    cycle.iter().enumerate().any(|(position, &a)| {
        cycle[position + 1..]
            .iter()
            .any(|&b| names::provably_disjoint(&space(a), &space(b)))
    })
}

/// Pairs of flows into the same target cluster whose renamed topics may coincide.
pub fn rename_collisions(flows: &[Flow]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (j, later) in flows.iter().enumerate() {
        for earlier in flows[..j]
            .iter()
            .filter(|earlier| earlier.target == later.target)
        {
            let (earlier_prefix, earlier_suffix) =
                earlier.rename.affixes(&earlier.source, &earlier.target);
            let (later_prefix, later_suffix) = later.rename.affixes(&later.source, &later.target);
            let a = RenamedTopics {
                prefix: &earlier_prefix,
                suffix: &earlier_suffix,
                filter: &earlier.topics,
            };
            let b = RenamedTopics {
                prefix: &later_prefix,
                suffix: &later_suffix,
                filter: &later.topics,
            };
            if !names::provably_disjoint(&a, &b) {
                // {source} tells flows of different sources apart, not two of one source.
                let with_source = |f: &Flow| f.rename.as_str().contains("{source}");
                let advice = if earlier.source == later.source {
                    format!("both read cluster `{}`, so {{source}} cannot tell them apart: make their topics.include disjoint, or give one of them a rename of its own (e.g. \"{{source}}.{}.{{topic}}\")", later.source, later.name)
                } else if with_source(earlier) && with_source(later) {
                    format!("their renamed names overlap although both name their source (\"{earlier_prefix}\" and \"{later_prefix}\" before the topic: a cluster name and the start of a topic name make the other cluster's name): make their topics.include disjoint, or give one of them a rename of its own (e.g. \"{{source}}.{}.{{topic}}\")", later.name)
                } else {
                    format!(
                        "use a rename with {{source}} (e.g. \"{}\") or make their topics.include disjoint",
                        RenameTemplate::DEFAULT
                    )
                };
                findings.push(Finding {
                    flow_index: j,
                    field: "rename",
                    message: format!(
                        "rename collision: flows `{}` (rename \"{}\") and `{}` (rename \"{}\") both write to cluster `{}` and can produce the same topic name; {advice}",
                        earlier.name,
                        earlier.rename.as_str(),
                        later.name,
                        later.rename.as_str(),
                        later.target,
                    ),
                });
            }
        }
    }
    findings
}
