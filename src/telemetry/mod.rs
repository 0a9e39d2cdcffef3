//! Telemetry: what each flow has done and how far behind it is ([`stats`]), exported as
//! OpenTelemetry metrics in Prometheus text format ([`metrics`]) and as JSON on the
//! telemetry listener ([`http`]), and one progress line per flow every
//! `telemetry.log_interval` ([`report`]); `kmirror status` reads `/status` ([`status_cli`]).

pub mod http;
pub mod metrics;
mod offsets_http;
mod report;
pub mod stats;
pub mod status_cli;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use stats::{FlowStats, Flows};

/// How long stopping waits for the last OTLP push (its HTTP client gives up after 10 s).
const LAST_PUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The running telemetry of one process.
pub struct Telemetry {
    served: Arc<http::Served>,
}

impl Telemetry {
    /// Starts the listener on `listen` (if any) and the progress lines; both end at `stop`.
    pub async fn start(
        config: Option<&crate::config::Telemetry>,
        stop: CancellationToken,
    ) -> Result<Self, String> {
        let listen: Option<SocketAddr> = config.and_then(|t| t.listen);
        let log_interval: Duration =
            config.map_or(crate::config::DEFAULT_LOG_INTERVAL, |t| t.log_interval);
        let flows = Arc::new(Flows::default());
        let served = Arc::new(http::Served {
            metrics: metrics::Metrics::new(flows.clone(), config.and_then(|t| t.otlp.as_ref()))?,
            flows,
        });
        if let Some(addr) = listen {
            let listener = http::bind(addr).await?;
            let bound = listener.local_addr().map_err(|e| e.to_string())?;
            tokio::spawn(http::serve(listener, served.clone(), stop.clone()));
            tracing::info!(status_page = %format!("http://{bound}/"), metrics = %format!("http://{bound}/metrics"), "Telemetry listening.");
        }
        tokio::spawn(report::sample(served.flows.clone(), stop.clone()));
        tokio::spawn(report::run(served.flows.clone(), log_interval, stop));
        Ok(Self { served })
    }

    /// Pushes the last metrics over OTLP, if configured. The SDK's shutdown blocks its
    /// thread until the reader's task, which runs on this runtime, has pushed; called on a
    /// blocking thread, it leaves the runtime's thread (the only one, by default) free to
    /// run that task.
    pub async fn shutdown(&self) {
        let served = self.served.clone();
        let push = tokio::task::spawn_blocking(move || served.metrics.shutdown());
        match tokio::time::timeout(LAST_PUSH_TIMEOUT, push).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "The last metrics push did not finish."),
            // A collector that accepts and never answers must not hold the exit up.
            Err(_) => tracing::warn!(
                timeout_ms = LAST_PUSH_TIMEOUT.as_millis() as u64,
                "The last metrics push did not finish in time; exiting without it."
            ),
        }
    }

    /// Every flow's stats.
    pub fn flows(&self) -> Arc<Flows> {
        self.served.flows.clone()
    }

    /// Stops exporting a flow that was removed.
    pub fn remove_flow(&self, name: &str) {
        self.served.flows.remove(name);
    }

    /// The stats of a flow, exported from now on; a flow restarted by a reload keeps its
    /// counters when its clusters stay the same.
    pub fn flow(&self, name: &str, source: &str, target: &str) -> Arc<FlowStats> {
        if let Some(f) = self.served.flows.get(name) {
            if f.source == source && f.target == target {
                return f;
            }
            self.served.flows.remove(name);
        }
        let f = Arc::new(FlowStats::new(
            name,
            (source, target),
            self.served.metrics.latency(),
        ));
        self.served.flows.add(f.clone());
        f
    }
}
