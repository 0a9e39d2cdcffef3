//! The running topology: one client per cluster, one task per flow, and live reload. A
//! reload compares the new topology with the running one: flows that were removed drain
//! and stop, flows whose settings changed (or whose clusters did) drain and start again,
//! new flows start, and unchanged flows keep running on the same clients and connections,
//! untouched. A topology that fails validation changes nothing; embedded clusters start
//! only with the process, and a reload that changes them is refused. The telemetry
//! listener moves and the progress lines follow their new interval; an OTLP push that
//! changed applies at the next start (reported).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{client_for, flow, ownership, Drain};
use crate::client::ClusterClient;
use crate::config::{Cluster, Connection, Flow, Topology};
use crate::telemetry::Telemetry;

/// A new topology to apply, or why the file could not be used.
pub type Reload = Result<Topology, String>;

struct RunningFlow {
    key: String,
    /// The flow's source and target cluster settings when it started.
    clusters: (Cluster, Cluster),
    stop: CancellationToken,
    task: JoinHandle<()>,
}

pub struct Engine {
    topology: Topology,
    /// Addresses of the embedded clusters started for this process.
    embedded: BTreeMap<String, String>,
    clients: BTreeMap<String, (Cluster, Arc<ClusterClient>)>,
    flows: BTreeMap<String, RunningFlow>,
    telemetry: Telemetry,
    stop: CancellationToken,
    drain_deadline: Duration,
}

impl Engine {
    /// Starts every flow of `topology`.
    pub fn start(
        topology: Topology,
        embedded: BTreeMap<String, String>,
        telemetry: Telemetry,
        stop: CancellationToken,
        drain_deadline: Duration,
    ) -> Self {
        let mut engine = Self {
            topology: topology.clone(),
            embedded,
            clients: BTreeMap::new(),
            flows: BTreeMap::new(),
            telemetry,
            stop,
            drain_deadline,
        };
        engine.update_clients(&topology);
        for f in &topology.flows {
            engine.start_flow(f, &topology);
        }
        engine
    }

    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Clients for the clusters of `topology`: the running one where a cluster's settings
    /// did not change (so its connections stay), a new one otherwise.
    fn update_clients(&mut self, topology: &Topology) {
        let mut clients = BTreeMap::new();
        for (name, cluster) in &topology.clusters {
            let client = match self.clients.remove(name) {
                Some((old, client)) if old == *cluster => client,
                _ => Arc::new(client_for(cluster, &self.embedded)),
            };
            clients.insert(name.clone(), (cluster.clone(), client));
        }
        self.clients = clients;
    }

    fn start_flow(&mut self, f: &Flow, topology: &Topology) {
        let (source, target) = (&self.clients[&f.source].1, &self.clients[&f.target].1);
        let stats = self.telemetry.flow(&f.name, &f.source, &f.target);
        let stop = self.stop.child_token();
        let task = if f.exclusive {
            tokio::spawn(ownership::run_exclusive(
                f.clone(),
                (source.clone(), target.clone()),
                stats,
                stop.clone(),
                self.drain_deadline,
            ))
        } else {
            let runner = flow::FlowRunner::new(f.clone(), source.clone(), target.clone(), stats);
            tokio::spawn(runner.run(stop.clone(), Drain::new(self.drain_deadline)))
        };
        self.flows.insert(
            f.name.clone(),
            RunningFlow {
                key: f.settings_key(),
                clusters: (
                    topology.clusters[&f.source].clone(),
                    topology.clusters[&f.target].clone(),
                ),
                stop,
                task,
            },
        );
    }

    /// Applies a reload (see the module docs); returns whether the topology changed.
    pub async fn reload(&mut self, reload: Reload) -> bool {
        let topology = match reload {
            Ok(t) => t,
            Err(errors) => {
                for line in errors.lines() {
                    tracing::error!(error = %line, "Reload refused: the topology is invalid; the running topology stays.");
                }
                return false;
            }
        };
        let embedded = |t: &Topology| -> BTreeMap<String, Cluster> {
            t.clusters
                .iter()
                .filter(|(_, c)| matches!(c.connection, Connection::Embedded(_)))
                .map(|(n, c)| (n.clone(), c.clone()))
                .collect()
        };
        if embedded(&topology) != embedded(&self.topology) {
            tracing::error!("Reload refused: embedded clusters changed, and they start and stop only with the process; the running topology stays. Restart kmirror to apply it.");
            return false;
        }
        if let Err(e) = self.telemetry.apply(topology.telemetry.as_ref()).await {
            tracing::error!(error = %e, "The telemetry listener stays where it was; the rest of the topology is applied now.");
        }
        let mut outcome: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        let mut stopping = Vec::new();
        let names: Vec<String> = self.flows.keys().cloned().collect();
        for name in names {
            let kept = topology
                .flows
                .iter()
                .find(|f| f.name == name)
                .is_some_and(|f| {
                    let running = &self.flows[&name];
                    running.key == f.settings_key()
                        && running.clusters
                            == (
                                topology.clusters[&f.source].clone(),
                                topology.clusters[&f.target].clone(),
                            )
                });
            if kept {
                outcome.entry("unchanged").or_default().push(name);
                continue;
            }
            stopping.push(self.flows.remove(&name).expect("running flow"));
            if !topology.flows.iter().any(|f| f.name == name) {
                self.telemetry.remove_flow(&name);
                outcome.entry("removed").or_default().push(name);
            }
        }
        // The flows to stop drain side by side, each within the drain deadline.
        drain(stopping).await;
        self.update_clients(&topology);
        for f in &topology.flows {
            if self.flows.contains_key(&f.name) {
                continue;
            }
            let what = if self.topology.flows.iter().any(|o| o.name == f.name) {
                "restarted"
            } else {
                "added"
            };
            outcome.entry(what).or_default().push(f.name.clone());
            self.start_flow(f, &topology);
        }
        self.topology = topology;
        // The freed memory kept for reuse follows the new flows' budgets (0: none is kept).
        let keeps_freed_bytes = crate::allocator::flows_changed(
            self.topology
                .flows
                .iter()
                .map(|f| f.limits.max_in_flight_bytes),
        )
        .unwrap_or(0);
        let list = |k| outcome.get(k).map(|v| v.join(",")).unwrap_or_default();
        tracing::info!(
            added = %list("added"),
            removed = %list("removed"),
            restarted = %list("restarted"),
            unchanged = %list("unchanged"),
            keeps_freed_bytes,
            "Topology reloaded."
        );
        true
    }

    /// Drains and stops every flow (the stop token was cancelled), then pushes the last
    /// metrics.
    pub async fn stop(mut self) {
        drain(std::mem::take(&mut self.flows).into_values().collect()).await;
        self.telemetry.shutdown().await;
    }
}

/// Cancels `flows` and waits until all of them drained.
async fn drain(flows: Vec<RunningFlow>) {
    for f in &flows {
        f.stop.cancel();
    }
    futures::future::join_all(flows.into_iter().map(|f| f.task)).await;
}
