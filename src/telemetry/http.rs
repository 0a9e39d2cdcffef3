//! The telemetry listener (HTTP/1.1, hyper): `GET /` (the status page, `page.html`),
//! `GET /metrics` (Prometheus text format),
//! `GET /healthz` (the process is up), `GET /readyz` (200 only while every flow is
//! connected and making progress or caught up; 503 with the reasons otherwise) and
//! `GET /status` (JSON: flows, partitions, positions, lag, latency percentiles, last
//! errors, topics not mirrored) and `GET /offsets` (offset translation, [`super::offsets_http`]). Anything else
//! is 404; a method other than GET or HEAD is 405.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use super::stats::{now_ms, FlowStats, Flows, PartitionState, FAILING_GRACE_MS};

/// The status page: one self-contained file (no build step, nothing fetched but /status).
const PAGE: &str = include_str!("page.html");

/// A flow with records to mirror and no acknowledgement for this long is not ready, and so
/// is one with a partition behind whose position did not move for as long.
const STALLED_MS: i64 = 60_000;

/// A flow whose progress writes have failed for this long is not ready.
const PROGRESS_FAILING_MS: i64 = 30_000;

/// Quantiles `/status` reports.
const QUANTILES: [f64; 3] = [0.5, 0.99, 0.999];

/// What the listener serves.
pub struct Served {
    pub flows: Arc<Flows>,
    pub metrics: Metrics,
}

/// Binds `listen`; the error names the address.
pub async fn bind(listen: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen} for telemetry: {e}"))
}

/// Serves connections until `stop`.
pub async fn serve(listener: TcpListener, served: Arc<Served>, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "Telemetry listener cannot accept a connection.");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let served = served.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let served = served.clone();
                async move {
                    Ok::<_, Infallible>(if req.uri().path() == "/offsets" {
                        super::offsets_http::answer(&served.flows, req.uri().query()).await
                    } else {
                        answer(&served, &req)
                    })
                }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "Telemetry connection ended with an error.");
            }
        });
    }
}

fn answer<B>(served: &Served, req: &Request<B>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n".into());
    }
    match req.uri().path() {
        "/metrics" => match served.metrics.encode() {
            Ok(body) => with_type(
                text(StatusCode::OK, body),
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        },
        "/" => {
            let mut r = text(StatusCode::OK, PAGE.to_string());
            r.headers_mut().insert(
                hyper::header::CACHE_CONTROL,
                hyper::header::HeaderValue::from_static("no-store"),
            );
            with_type(r, "text/html; charset=utf-8")
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => {
            let reasons = not_ready(&served.flows.all(), now_ms());
            if reasons.is_empty() {
                text(StatusCode::OK, "ready\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready:\n{}\n", reasons.join("\n")),
                )
            }
        }
        "/status" => with_type(
            text(StatusCode::OK, status(&served.flows.all()).to_string()),
            "application/json",
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /, /metrics, /healthz, /readyz, /status or /offsets\n".into(),
        ),
    }
}

pub(super) fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    with_type(r, "text/plain; charset=utf-8")
}

pub(super) fn with_type(
    mut r: Response<Full<Bytes>>,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

/// Why the flows are not ready; empty when they are: a flow outside its ownership group
/// (`exclusive: true`) or that has not finished starting, whose source Fetches or target
/// Produces fail, with a failed partition, that is behind with nothing acknowledged for
/// [`STALLED_MS`], or that acknowledged nothing for as long while a running partition had
/// no Fetch answered (its lag unknown, not 0: a flow that cannot fetch at all), with a
/// partition behind whose position did not move for as long, or whose progress writes
/// failed for [`PROGRESS_FAILING_MS`].
pub fn not_ready(flows: &[Arc<FlowStats>], now_ms: i64) -> Vec<String> {
    let mut reasons = Vec::new();
    for f in flows {
        // A standby is ready: it stands by, as asked (`exclusive: true`).
        if f.is_standby() {
            continue;
        }
        if let Some(why) = f.joining() {
            reasons.push(format!("flow {}: {why}", f.name));
            continue;
        }
        if !f.is_started() {
            reasons.push(match f.start_error() {
                Some(error) => format!("flow {}: not started: {error}", f.name),
                None => format!("flow {}: not started (connecting to its clusters)", f.name),
            });
            continue;
        }
        let failing = [
            ("source", &f.source, f.source_failing_since_ms()),
            ("target", &f.target, f.target_failing_since_ms()),
        ];
        for (side, cluster, since) in failing {
            if let Some(since) = since.filter(|since| now_ms - since >= FAILING_GRACE_MS) {
                // That side's own error, not the flow's last (the other side's, maybe).
                let error = f.side_error(side == "source");
                reasons.push(format!(
                    "flow {}: {side} {cluster} failing for {} s: {error}",
                    f.name,
                    (now_ms - since) / 1000
                ));
            }
        }
        let idle = now_ms - f.last_ack_or_started_ms() > STALLED_MS;
        // Under its rate limits a flow's partitions take turns: one may wait a minute.
        let rate_limited = now_ms - f.throttled_ms() < STALLED_MS;
        for (sp, p) in f.partitions() {
            // Waiting for its deleted source topic: nothing the daemon could mirror.
            if p.is_source_deleted() && p.state() == PartitionState::Running {
                continue;
            }
            // Since its last Fetch answer (its Fetches fail now), or since it or the flow
            // started when none answered yet.
            let counted_ms = p
                .created_ms()
                .max(f.started_ms())
                .max(p.last_fetched_ms().unwrap_or(i64::MIN));
            if idle
                && p.state() == PartitionState::Running
                && p.high_watermark().is_none()
                && now_ms - counted_ms > STALLED_MS
            {
                reasons.push(format!(
                    "flow {}: partition {}-{}: no Fetch answered for it in {} s (its lag is unknown)",
                    f.name,
                    sp.topic,
                    sp.partition,
                    (now_ms - counted_ms) / 1000
                ));
            }
            // One partition stuck while the others go on (its target leader is gone, say):
            // the flow acknowledges, so only the partition's own position tells.
            let behind = p.lag_records().filter(|lag| *lag > 0);
            let still_ms = now_ms - p.moving_or_caught_up_ms().max(f.started_ms());
            if let Some(lag) = behind.filter(|_| !idle && !rate_limited && still_ms > STALLED_MS) {
                if p.state() == PartitionState::Running {
                    reasons.push(format!(
                        "flow {}: partition {}-{}: {lag} records behind and not advanced for {} s: {}",
                        f.name,
                        sp.topic,
                        sp.partition,
                        still_ms / 1000,
                        p.last_error().unwrap_or_default()
                    ));
                }
            }
            if let Some(since) = p
                .leaderless_since_ms()
                .filter(|since| p.state() == PartitionState::Running && now_ms - since > STALLED_MS)
            {
                reasons.push(format!(
                    "flow {}: partition {}-{}: the source partition has had no leader for {} s",
                    f.name,
                    sp.topic,
                    sp.partition,
                    (now_ms - since) / 1000
                ));
            }
            if p.state() == PartitionState::Running && !p.has_started() {
                reasons.push(format!(
                    "flow {}: partition {}-{}: not started: {}",
                    f.name,
                    sp.topic,
                    sp.partition,
                    p.last_error().unwrap_or_default()
                ));
            }
            if p.state() == PartitionState::Failed {
                reasons.push(format!(
                    "flow {}: partition {}-{} failed: {}",
                    f.name,
                    sp.topic,
                    sp.partition,
                    p.last_error().unwrap_or_default()
                ));
            }
        }
        // A restart would mirror again what was acknowledged since the last write.
        if let Some((since, error)) = f.offsets().and_then(|o| o.progress.write_failing()) {
            if now_ms - since > PROGRESS_FAILING_MS {
                reasons.push(format!(
                    "flow {}: mirror progress not written for {} s: {error}",
                    f.name,
                    (now_ms - since) / 1000
                ));
            }
        }
        let lag = f.lag_records();
        if lag > 0 && now_ms - f.last_ack_or_started_ms() > STALLED_MS {
            reasons.push(format!(
                "flow {}: {lag} records behind and nothing acknowledged for over {} s",
                f.name,
                STALLED_MS / 1000
            ));
        }
    }
    reasons
}

/// The `/status` document.
pub fn status(flows: &[Arc<FlowStats>]) -> serde_json::Value {
    let now = now_ms();
    let flows: Vec<_> = flows
        .iter()
        .map(|f| {
            let partitions: Vec<_> = f
                .partitions()
                .iter()
                .map(|(sp, p)| {
                    serde_json::json!({
                        "topic": sp.topic,
                        "partition": sp.partition,
                        "state": p.state().name(),
                        "position": p.position(),
                        "high_watermark": p.high_watermark(),
                        "last_stable_offset": p.last_stable_offset(),
                        "lag_records": p.lag_records(),
                        "lag_seconds": p.lag_seconds(now),
                        "last_error": p.last_error(),
                    })
                })
                .collect();
            let latency = f.latency_percentiles(&QUANTILES).map(|v| {
                serde_json::json!({ "p50": v[0], "p99": v[1], "p999": v[2], "batches": f.latency_batches() })
            });
            let reasons = not_ready(std::slice::from_ref(f), now);
            let lag_known = f.is_started() || !partitions.is_empty();
            serde_json::json!({
                "name": f.name,
                "source": f.source,
                "target": f.target,
                "ready": reasons.is_empty(),
                "standby": f.is_standby(),
                "not_ready": reasons,
                "mirrored_records": f.records(),
                "mirrored_bytes": f.bytes(),
                "fetched_bytes": f.fetched_bytes(),
                "mirrored_again_records": f.mirrored_again_records(),
                "fetch_requests": f.fetch_requests(),
                // Unknown (null), not 0, until the flow has started and found its partitions.
                "lag_records": lag_known.then(|| f.lag_records()),
                "lag_seconds": lag_known.then(|| f.lag_seconds(now)),
                "lag_unknown_partitions": f.lag_unknown_partitions(),
                "in_flight_bytes": f.in_flight_bytes(),
                "throttle_wait_seconds": f.throttle_wait_seconds(),
                "retries": f.retries(),
                "errors": f.errors(),
                "latency_seconds": latency,
                "last_error": f.last_error().map(|(at, e)| serde_json::json!({ "at_unix_ms": at, "error": e })),
                "partitions": partitions,
                "unmirrored_topics": f.unmirrored_topics(),
                "groups": f.groups().into_iter().map(|(group, g)| serde_json::json!({
                    "group": group,
                    "last_synced_unix_ms": g.last_synced_unix_ms,
                    "partitions": g.partitions,
                    "skipped": g.skipped,
                })).collect::<Vec<_>>(),
                "history": f.history(),
            })
        })
        .collect();
    serde_json::json!({ "now_unix_ms": now, "sample_seconds": super::stats::SAMPLE_SECONDS, "flows": flows })
}
