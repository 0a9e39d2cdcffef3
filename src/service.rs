//! Running under systemd (`Type=notify` units), through the sd-notify crate: `READY=1`
//! once every flow started ([`flows_started`]), `RELOADING=1`, `STOPPING=1`, and
//! `WATCHDOG=1` while the engine turns. Without `$NOTIFY_SOCKET` every call does nothing.
//! This module does not handle signals; `main.rs` does.
//!
//! The watchdog is fed from the engine's own loops, not from a timer that would outlive a
//! hung engine: every flow's fetch loop beats on each turn (at least every 100 ms), and
//! `WATCHDOG=1` goes out only while every running loop beat within the watchdog interval.
//! A runtime blocked by a hung task cannot run the pinger either.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::telemetry::stats::{now_ms, Flows};

/// Sends `state` to systemd, if the process was started by it.
pub fn notify(state: NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!(error = %e, "Cannot notify systemd.");
    }
}

/// How often [`flows_started`] looks at the flows.
const STARTED_POLL: Duration = Duration::from_millis(100);

/// Returns once every flow has started (progress loaded, producer id, a discovery round
/// that read both clusters), stands by (`exclusive: true`) or stopped for good at its
/// start (an ERROR says why; `/readyz` stays 503): when `READY=1` goes out, so that
/// `systemctl start` returns. A cluster that does not answer holds it back until it does.
pub async fn flows_started(flows: Arc<Flows>) {
    while !flows
        .all()
        .iter()
        .all(|f| f.is_started() || f.is_standby() || f.has_given_up())
    {
        tokio::time::sleep(STARTED_POLL).await;
    }
}

/// `RELOADING=1` with the monotonic time systemd 253 and later require beside it; `READY=1`
/// follows once the reload is applied or refused.
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    if let Err(e) = sd_notify::notify(&states) {
        tracing::warn!(error = %e, "Cannot notify systemd.");
    }
}

/// Pings the watchdog at half its interval (`WATCHDOG_USEC`, set by systemd from
/// `WatchdogSec=`) while every running flow loop beats; returns at once without one.
pub async fn watchdog(flows: Arc<Flows>, stop: CancellationToken) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let limit_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
    tracing::info!(watchdog_ms = limit_ms, "systemd watchdog enabled.");
    let mut stalled_reported = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval / 2) => {}
        }
        let now = now_ms();
        let stalled: Vec<String> = flows
            .all()
            .iter()
            .filter_map(|f| {
                let beat = f.loop_beat_ms()?;
                (now - beat > limit_ms).then(|| format!("{} ({} ms)", f.name, now - beat))
            })
            .collect();
        if stalled.is_empty() {
            notify(NotifyState::Watchdog);
            stalled_reported = false;
        } else if !stalled_reported {
            tracing::error!(flows = %stalled.join(", "), watchdog_ms = limit_ms, "Flow loops stopped turning; the systemd watchdog is no longer fed.");
            stalled_reported = true;
        }
    }
}
