//! One INFO line per flow every `telemetry.log_interval`: records/s, MB/s, records behind,
//! and errors since the line before (a WARN line while partitions are stopped); and each flow's history, sampled every
//! [`SAMPLE_SECONDS`] for the status page.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::stats::{now_ms, Flows, PartitionState, SAMPLE_SECONDS};

/// Samples every flow's history until `stop`.
pub async fn sample(flows: Arc<Flows>, stop: CancellationToken) {
    loop {
        let now = now_ms();
        for f in flows.all() {
            f.sample(now);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(SAMPLE_SECONDS)) => {}
        }
    }
}

pub async fn run(flows: Arc<Flows>, interval: Duration, stop: CancellationToken) {
    // Per flow name: records, bytes and errors at the last line; the first line counts
    // from now (a reload that changes the interval starts this again: counted from zero,
    // the flows' records since their start read as the last interval's).
    let counters = |f: &super::stats::FlowStats| (f.records(), f.bytes(), f.errors_total());
    let mut last: std::collections::HashMap<String, (u64, u64, u64)> = flows
        .all()
        .iter()
        .map(|f| (f.name.clone(), counters(f)))
        .collect();
    let mut at = Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let seconds = at.elapsed().as_secs_f64().max(1e-3);
        at = Instant::now();
        for f in flows.all() {
            let now = counters(&f);
            let before = last.insert(f.name.clone(), now).unwrap_or_default();
            // A standby (exclusive) flow waits for its turn: nothing is wrong with it.
            if !f.is_started() && !f.is_standby() {
                let reason = f.start_error().unwrap_or_else(|| "starting".into());
                tracing::warn!(flow = %f.name, %reason, errors = now.2 - before.2, "Not mirroring: the flow has not started.");
                continue;
            }
            let records_per_sec = ((now.0 - before.0) as f64 / seconds).round() as u64;
            let mb_per_sec = format!("{:.2}", (now.1 - before.1) as f64 / seconds / 1e6);
            let (lag_records, errors) = (f.lag_records(), now.2 - before.2);
            // Stopped partitions need an operator: the line says so, at WARN, each time.
            let failed = f
                .partition_states()
                .into_iter()
                .find(|(s, _)| *s == PartitionState::Failed)
                .map_or(0, |(_, n)| n);
            if failed > 0 {
                tracing::warn!(flow = %f.name, records_per_sec, mb_per_sec, lag_records, errors, failed_partitions = failed, "Mirroring, with partitions stopped (their errors are on /status).");
            } else {
                tracing::info!(flow = %f.name, records_per_sec, mb_per_sec, lag_records, errors, "Mirroring.");
            }
        }
    }
}
