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

/// `telemetry.log_interval`, or its default.
fn log_interval(config: Option<&crate::config::Telemetry>) -> Duration {
    config.map_or(crate::config::DEFAULT_LOG_INTERVAL, |t| t.log_interval)
}

/// How long stopping waits for the last OTLP push (its HTTP client gives up after 10 s).
const LAST_PUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The running telemetry of one process.
pub struct Telemetry {
    served: Arc<http::Served>,
    /// Ends everything at the process's stop.
    stop: CancellationToken,
    /// The listener's configured address, and what ends its serving.
    listener: Option<(SocketAddr, CancellationToken)>,
    /// The progress lines' interval, and what ends them.
    report: (Duration, CancellationToken),
    /// The OTLP push the metrics were built with: it changes only at a start.
    otlp: Option<crate::config::Otlp>,
}

impl Telemetry {
    /// Starts the listener on `listen` (if any) and the progress lines; both end at `stop`.
    pub async fn start(
        config: Option<&crate::config::Telemetry>,
        stop: CancellationToken,
    ) -> Result<Self, String> {
        let otlp = config.and_then(|t| t.otlp.clone());
        let flows = Arc::new(Flows::default());
        let served = Arc::new(http::Served {
            metrics: metrics::Metrics::new(flows.clone(), otlp.as_ref())?,
            flows,
        });
        tokio::spawn(report::sample(served.flows.clone(), stop.clone()));
        let mut telemetry = Self {
            served,
            report: (Duration::ZERO, CancellationToken::new()),
            listener: None,
            otlp,
            stop,
        };
        if let Some(addr) = config.and_then(|t| t.listen) {
            telemetry.listen(addr).await?;
        }
        telemetry.report_every(log_interval(config));
        Ok(telemetry)
    }

    /// Applies a reloaded telemetry block: the listener moves (bound anew before the old
    /// one closes; if the new address cannot be bound, the old one stays and the error is
    /// returned), and the progress lines follow the new interval. An OTLP push that
    /// changed applies at the next start, and the warning says so.
    pub async fn apply(&mut self, config: Option<&crate::config::Telemetry>) -> Result<(), String> {
        if config.and_then(|t| t.otlp.as_ref()) != self.otlp.as_ref() {
            // (Said at every reload while the file differs from what runs: each reload
            // is told what it does not apply.)
            tracing::warn!("telemetry.otlp differs from the OTLP push this process runs (started with); it applies at the next start.");
        }
        let interval = log_interval(config);
        if interval != self.report.0 {
            self.report_every(interval);
        }
        let listen = config.and_then(|t| t.listen);
        if listen == self.listener.as_ref().map(|(addr, _)| *addr) {
            return Ok(());
        }
        let old = self.listener.take();
        let result = match listen {
            Some(addr) => self.listen(addr).await,
            None => Ok(()),
        };
        match (result, old) {
            (Ok(()), Some((addr, serving))) => {
                serving.cancel();
                tracing::info!(listen = %addr, "Telemetry no longer listening there.");
                Ok(())
            }
            (Err(e), old) => {
                self.listener = old;
                Err(e)
            }
            (Ok(()), None) => Ok(()),
        }
    }

    /// Binds `addr` and serves on it until the process stops or the listener moves.
    async fn listen(&mut self, addr: SocketAddr) -> Result<(), String> {
        let listener = http::bind(addr).await?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        let serving = self.stop.child_token();
        tokio::spawn(http::serve(listener, self.served.clone(), serving.clone()));
        tracing::info!(status_page = %format!("http://{bound}/"), metrics = %format!("http://{bound}/metrics"), "Telemetry listening.");
        self.listener = Some((addr, serving));
        Ok(())
    }

    /// (Re)starts the progress lines every `interval`.
    fn report_every(&mut self, interval: Duration) {
        self.report.1.cancel();
        let lines = self.stop.child_token();
        tokio::spawn(report::run(
            self.served.flows.clone(),
            interval,
            lines.clone(),
        ));
        self.report = (interval, lines);
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
