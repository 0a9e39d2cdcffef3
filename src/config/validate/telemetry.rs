//! Validation of the `telemetry` block: the listen address, the log interval and the
//! OTLP push.

use super::clusters::parse_listen;
use super::duration;
use crate::config::diagnostics::Diagnostics;
use crate::config::locate::{self, FieldPath};
use crate::config::raw::RawTelemetry;
use crate::config::{Cluster, Connection, Telemetry};
use std::collections::BTreeMap;
use std::time::Duration;

pub(super) fn resolve_telemetry(
    diagnostics: &mut Diagnostics<'_>,
    clusters: &BTreeMap<String, Cluster>,
) -> Option<Telemetry> {
    let path = FieldPath::root().key("telemetry");
    let raw = match locate::deserialize_at::<RawTelemetry>(diagnostics.text(), &path) {
        Ok(raw) => raw?,
        Err(error) => {
            diagnostics.serde(&error, &path);
            return None;
        }
    };
    let log_interval = duration(
        diagnostics,
        &path.key("log_interval"),
        raw.log_interval.as_ref(),
        super::DEFAULT_LOG_INTERVAL,
    );
    // Every part is checked, so that `validate` reports all their errors at once.
    let listen_path = path.key("listen");
    let listen = match &raw.listen {
        Some(text) => parse_listen(diagnostics, &listen_path, text).map(Some),
        None => Some(None),
    };
    let mut listen_clashes = false;
    for (name, cluster) in clusters {
        if let (Connection::Embedded(embedded), Some(Some(listen))) = (&cluster.connection, listen)
        {
            if listen.port() != 0 && embedded.listen == listen {
                diagnostics.at(
                    &listen_path,
                    format!("telemetry listen address {listen} is also the listen address of embedded cluster `{name}`"),
                );
                listen_clashes = true;
                break;
            }
        }
    }
    let otlp = match &raw.otlp {
        None => Some(None),
        Some(o) => resolve_otlp(diagnostics, &path.key("otlp"), o).map(Some),
    };
    if listen_clashes {
        return None;
    }
    Some(Telemetry {
        listen: listen?,
        log_interval: log_interval?,
        otlp: otlp?,
    })
}

/// `telemetry.otlp`: an `http://` endpoint (to which `/v1/metrics` is added when it has
/// no path) and the push interval.
fn resolve_otlp(
    diagnostics: &mut Diagnostics<'_>,
    path: &FieldPath,
    raw: &super::raw::RawOtlp,
) -> Option<super::Otlp> {
    let interval = duration(
        diagnostics,
        &path.key("interval"),
        raw.interval.as_ref(),
        Duration::from_secs(10),
    );
    let text = raw.endpoint.0.trim();
    let Some(rest) = text.strip_prefix("http://") else {
        let why = if text.starts_with("https://") {
            "https endpoints need TLS, which kmirror does not have yet; use a local collector over http"
        } else {
            "expected http://HOST:PORT[/PATH]"
        };
        diagnostics.at(
            &path.key("endpoint"),
            format!("invalid OTLP endpoint {text:?}: {why}"),
        );
        return None;
    };
    let endpoint = if rest.trim_end_matches('/').contains('/') {
        text.to_string()
    } else {
        format!("http://{}/v1/metrics", rest.trim_end_matches('/'))
    };
    Some(super::Otlp {
        endpoint,
        interval: interval?,
    })
}
