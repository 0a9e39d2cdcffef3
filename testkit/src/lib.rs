//! One process harness for the end-to-end tests and benchmarks of `kmirror` and
//! `kmirror-broker`: brokers and daemons as real processes on 127.0.0.1 (started, killed
//! with -9, stopped with SIGTERM, paused with SIGSTOP, restarted on the same port and data
//! directory), their captured logs, daemon readiness from `READY=1` on a notify socket,
//! third-party clients (kcat, the Python clients) run with timeouts, a TCP proxy that
//! adds round-trip time, and a GET for the daemon's telemetry listener.

mod binaries;
mod broker;
mod clients;
mod daemon;
mod http;
mod log;
mod nodes;
mod notify;
mod process;
mod proxy;
mod running;

pub use binaries::{broker_binary, daemon_binary};
pub use broker::BrokerProcess;
pub use clients::{kcat, python, python_command, run, run_ok, run_python, run_script_ok};
pub use daemon::{
    add_telemetry, add_telemetry_listener, kmirror_ok, write_topology, DaemonProcess,
};
pub use http::{http_get, http_request, metric, metric_sum};
pub use log::Log;
pub use nodes::{node_control, ThreeNodes};
pub use process::{free_port, free_port_span, Process, Unlogged};
pub use proxy::{Cutter, DelayProxy};
pub use running::Running;
