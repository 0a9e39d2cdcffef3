//! The nodes' listeners: each node serves on its own address with its own view of the
//! broker; a node can be stopped (leadership moves first, then its listener and its
//! connections close) and started again on the same address. The request handling
//! itself is [`crate::server`]'s.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{NodeEndpoint, NodeError};
use crate::state::Broker;

#[derive(Debug)]
struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// One node's listener (a node has one per entry of `--listeners`).
#[derive(Debug)]
struct Slot {
    node_id: i32,
    /// Index of the listener in the broker's listeners.
    listener: usize,
    addr: SocketAddr,
    running: Option<Running>,
}

/// What `GET /nodes` reports about one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub endpoint: NodeEndpoint,
    pub listen: SocketAddr,
    pub live: bool,
}

/// Every node's listener.
#[derive(Debug)]
pub struct Nodes {
    broker: Arc<Broker>,
    limit: Arc<Semaphore>,
    shutdown: CancellationToken,
    /// One lock for all slots: stops and starts run one at a time.
    slots: Mutex<Vec<Slot>>,
}

impl Nodes {
    pub fn new(broker: Arc<Broker>, shutdown: CancellationToken) -> Self {
        Self {
            limit: Arc::new(Semaphore::new(broker.config.max_connections)),
            broker,
            shutdown,
            slots: Mutex::new(Vec::new()),
        }
    }

    /// Starts serving node `node_id`'s listener number `listener` on a bound socket.
    pub(crate) async fn serve(
        &self,
        node_id: i32,
        listener: usize,
        addr: SocketAddr,
        socket: TcpListener,
    ) {
        let running = self.spawn(node_id, listener, socket);
        let mut slots = self.slots.lock().await;
        match slots
            .iter_mut()
            .find(|s| s.node_id == node_id && s.listener == listener)
        {
            Some(s) => s.running = Some(running),
            None => slots.push(Slot {
                node_id,
                listener,
                addr,
                running: Some(running),
            }),
        }
        tracing::debug!(node_id, listen = %addr, listener, "Node is listening.");
    }

    fn spawn(&self, node_id: i32, listener: usize, socket: TcpListener) -> Running {
        let stop = self.shutdown.child_token();
        let view = Arc::new(self.broker.node_view(node_id, listener));
        let task = tokio::spawn(crate::server::serve_listener(
            socket,
            view,
            self.limit.clone(),
            stop.clone(),
        ));
        Running { stop, task }
    }

    /// (node id, listen address) of every node on the first listener, live or not.
    pub async fn addrs(&self) -> Vec<(i32, SocketAddr)> {
        let slots = self.slots.lock().await;
        slots
            .iter()
            .filter(|s| s.listener == 0)
            .map(|s| (s.node_id, s.addr))
            .collect()
    }

    pub async fn status(&self) -> Vec<NodeStatus> {
        let slots = self.slots.lock().await;
        slots
            .iter()
            .filter(|s| s.listener == 0)
            .filter_map(|s| {
                Some(NodeStatus {
                    endpoint: self.broker.cluster.endpoint(s.node_id)?.clone(),
                    listen: s.addr,
                    live: s.running.is_some(),
                })
            })
            .collect()
    }

    /// Stops a node: its partitions get new leaders (epoch+1), then its listeners close
    /// and its connections end after their in-flight requests.
    pub async fn stop(&self, node_id: i32) -> Result<(), NodeError> {
        let mut slots = self.slots.lock().await;
        let live = slots
            .iter()
            .filter(|s| s.listener == 0 && s.running.is_some())
            .count();
        let first = slots
            .iter()
            .find(|s| s.node_id == node_id)
            .ok_or(NodeError::Unknown(node_id))?;
        if first.running.is_none() {
            return Err(NodeError::AlreadyInState(node_id, "stopped"));
        }
        if live <= 1 {
            return Err(NodeError::LastLive(node_id));
        }
        self.set_live(node_id, false).await;
        let running: Vec<Running> = slots
            .iter_mut()
            .filter(|s| s.node_id == node_id)
            .filter_map(|s| s.running.take())
            .collect();
        stop_and_wait(running).await;
        tracing::info!(node_id, "Node stopped.");
        Ok(())
    }

    /// Starts a stopped node on its addresses again; it leads partitions that had no
    /// leader, and completes reassignments that waited for it.
    pub async fn start(&self, node_id: i32) -> Result<(), NodeError> {
        let mut slots = self.slots.lock().await;
        let first = slots
            .iter()
            .find(|s| s.node_id == node_id)
            .ok_or(NodeError::Unknown(node_id))?;
        if first.running.is_some() {
            return Err(NodeError::AlreadyInState(node_id, "running"));
        }
        let mut sockets = Vec::new();
        for slot in slots.iter().filter(|s| s.node_id == node_id) {
            let socket = TcpListener::bind(slot.addr)
                .await
                .map_err(|source| NodeError::Bind {
                    node_id,
                    addr: slot.addr,
                    source,
                })?;
            sockets.push(socket);
        }
        self.set_live(node_id, true).await;
        for (slot, socket) in slots
            .iter_mut()
            .filter(|s| s.node_id == node_id)
            .zip(sockets)
        {
            slot.running = Some(self.spawn(node_id, slot.listener, socket));
            tracing::info!(node_id, listen = %slot.addr, "Node started.");
        }
        Ok(())
    }

    async fn set_live(&self, node_id: i32, live: bool) {
        let b = self.broker.clone();
        let r = tokio::task::spawn_blocking(move || b.cluster.set_live(node_id, live, &b.topics))
            .await
            .expect("leadership task");
        if let Err(e) = r {
            tracing::warn!(node_id, error = %e, "Cannot persist the leadership table.");
        }
    }

    /// Closes every node (process shutdown); leadership stays as it is.
    pub(crate) async fn stop_all(&self) {
        let mut slots = self.slots.lock().await;
        let running: Vec<Running> = slots.iter_mut().filter_map(|s| s.running.take()).collect();
        stop_and_wait(running).await;
    }
}

/// Cancels every listener first, then waits for each to finish.
async fn stop_and_wait(running: Vec<Running>) {
    for r in &running {
        r.stop.cancel();
    }
    for r in running {
        let _ = r.task.await;
    }
}
