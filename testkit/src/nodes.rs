//! A three-node `kmirror-broker --nodes 3` process and its HTTP node control, which stops
//! and starts one node at a time.

use std::path::Path;

use crate::{free_port_span, http_request, BrokerProcess};

/// A three-node broker: node 0 on the process's port, nodes 1 and 2 on ports of their own,
/// and the node control on `admin`.
pub struct ThreeNodes {
    pub broker: BrokerProcess,
    pub admin: String,
}

impl ThreeNodes {
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> Self {
        // Below the ephemeral range, where concurrent tests' client connections cannot
        // take them between choosing and binding (free_port's ports can be).
        let base = free_port_span(3);
        let admin = format!("127.0.0.1:{base}");
        let n1 = format!("1=127.0.0.1:{}", base + 1);
        let n2 = format!("2=127.0.0.1:{}", base + 2);
        let mut args = vec![
            "--nodes",
            "3",
            "--admin-listen",
            &admin,
            "--node-listen",
            &n1,
            "--node-listen",
            &n2,
        ];
        // Replicated as a production cluster is, unless `extra_args` say otherwise: a topic
        // created without a replication factor (the daemon's target topics) gets a
        // replica on every node.
        if !extra_args.contains(&"--default-replication-factor") {
            args.extend(["--default-replication-factor", "3"]);
        }
        args.extend_from_slice(extra_args);
        let broker = BrokerProcess::start(data_dir, &args);
        Self { broker, admin }
    }

    pub fn addr(&self) -> String {
        self.broker.addr()
    }

    /// POSTs to the node control (`/nodes/{id}/stop` or `/start`); panics unless 200.
    pub fn node(&self, id: i32, action: &str) {
        node_control(&self.admin, id, action);
    }
}

/// POSTs `/nodes/{id}/{action}` (`stop` or `start`) to the node control on `admin`
/// (`--admin-listen`); panics unless it answers 200.
pub fn node_control(admin: &str, id: i32, action: &str) {
    let answer = http_request(admin, "POST", &format!("/nodes/{id}/{action}"));
    assert!(
        answer.as_ref().is_some_and(|(status, _)| *status == 200),
        "node {id} {action}: {answer:?}"
    );
}
