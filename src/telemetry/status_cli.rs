//! `kmirror status`: reads a running daemon's `/status` (HTTP/1.1 through hyper's client)
//! and prints it as a table a person takes in at a glance: one line per flow, then the
//! topics a flow does not mirror and the partitions that lag most.

use std::fmt::Write as _;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// How long the whole exchange may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Partitions listed under the flows.
const MOST_LAGGING: usize = 10;

/// `host:port` of a `http://host:port[/...]` or `host:port` address.
pub fn authority(url: &str) -> Result<String, String> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    if url.starts_with("https://") {
        return Err(format!("{url}: the telemetry listener speaks plain HTTP"));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || !authority.contains(':') {
        return Err(format!("{url}: expected http://HOST:PORT"));
    }
    Ok(authority.to_string())
}

/// GETs `/status` from `authority`.
pub async fn fetch(authority: &str) -> Result<Value, String> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let request = hyper::Request::get("/status")
            .header(hyper::header::HOST, authority)
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("GET /status answered {status}"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("/status is not JSON: {e}"))
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{authority} did not answer within {TIMEOUT:?}"))?
}

fn seconds(v: &Value) -> String {
    match v.as_f64() {
        None => "-".into(),
        Some(s) if s < 1.0 => format!("{:.0}ms", s * 1000.0),
        Some(s) if s < 120.0 => format!("{s:.1}s"),
        Some(s) => format!("{:.0}m", s / 60.0),
    }
}

/// A flow's lag: the known part, and `+?` when some partition's lag is unknown.
fn flow_lag(f: &Value) -> String {
    let known = count(&f["lag_records"]);
    match f["lag_unknown_partitions"].as_u64() {
        Some(n) if n > 0 => format!("{known}+?"),
        _ => known,
    }
}

/// A count, or `?` for a null (an unknown lag).
fn count(v: &Value) -> String {
    if v.is_null() {
        return "?".into();
    }
    let n = v.as_u64().unwrap_or(0);
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// The table.
pub fn render(status: &Value) -> String {
    render_at(status, super::stats::now_ms())
}

/// How long ago `at_ms` was, `now_ms` being now: `12s`, `5m`, `3h`, `2d`.
fn ago(at_ms: i64, now_ms: i64) -> String {
    let s = (now_ms - at_ms).max(0) / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// [`render`] at `now_ms` (the last error's age is counted from it).
fn render_at(status: &Value, now_ms: i64) -> String {
    let mut out = String::new();
    let flows = status["flows"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(
        out,
        "{:<24} {:<9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}  LAST ERROR",
        "FLOW", "STATE", "RECORDS", "LAG", "LAG AGE", "P50", "P99", "P999"
    );
    let mut lagging = Vec::new();
    let mut unmirrored = Vec::new();
    for f in &flows {
        // A standby (`exclusive: true`) is ready: it waits for its turn, as asked.
        let state = match (f["ready"] == true, f["standby"] == true) {
            (true, true) => "standby",
            (true, false) => "ready",
            (false, _) => "NOT READY",
        };
        let latency = &f["latency_seconds"];
        // Why the flow is not ready, or else its last error and how long ago it was (it
        // may be long over).
        let error = match f["not_ready"].as_array().and_then(|r| r.first()) {
            Some(reason) => reason.as_str().unwrap_or("").to_string(),
            None => match (
                f["last_error"]["error"].as_str(),
                f["last_error"]["at_unix_ms"].as_i64(),
            ) {
                (Some(e), Some(at)) => format!("{e} ({} ago)", ago(at, now_ms)),
                (Some(e), None) => e.to_string(),
                _ => String::new(),
            },
        };
        let _ = writeln!(
            out,
            "{:<24} {:<9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}  {}",
            f["name"].as_str().unwrap_or("?"),
            state,
            count(&f["mirrored_records"]),
            flow_lag(f),
            seconds(&f["lag_seconds"]),
            seconds(&latency["p50"]),
            seconds(&latency["p99"]),
            seconds(&latency["p999"]),
            error
        );
        for p in f["partitions"].as_array().into_iter().flatten() {
            lagging.push((f["name"].as_str().unwrap_or("?").to_string(), p.clone()));
        }
        for u in f["unmirrored_topics"].as_array().into_iter().flatten() {
            unmirrored.push((f["name"].as_str().unwrap_or("?").to_string(), u.clone()));
        }
    }
    if !unmirrored.is_empty() {
        let _ = writeln!(out, "\n{:<24} {:<32} REASON", "FLOW", "TOPIC NOT MIRRORED");
        for (flow, u) in &unmirrored {
            let _ = writeln!(
                out,
                "{:<24} {:<32} {}",
                flow,
                u["topic"].as_str().unwrap_or("?"),
                u["reason"].as_str().unwrap_or("")
            );
        }
    }
    // Unknown lags (null) first: nothing says how far behind those are.
    lagging.sort_by_key(|(_, p)| std::cmp::Reverse(p["lag_records"].as_u64().unwrap_or(u64::MAX)));
    lagging.retain(|(_, p)| p["lag_records"].as_u64() != Some(0) || p["state"] != "running");
    if !lagging.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<24} {:<32} {:<8} {:>12} {:>9} {:>8}",
            "FLOW", "PARTITION", "STATE", "POSITION", "LAG", "LAG AGE"
        );
        for (flow, p) in lagging.iter().take(MOST_LAGGING) {
            let _ = writeln!(
                out,
                "{:<24} {:<32} {:<8} {:>12} {:>9} {:>8}",
                flow,
                format!("{}-{}", p["topic"].as_str().unwrap_or("?"), p["partition"]),
                p["state"].as_str().unwrap_or("?"),
                // A JSON value's Display ignores the width: its text does not.
                p["position"].to_string(),
                count(&p["lag_records"]),
                seconds(&p["lag_seconds"])
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_flows_last_error_shows_its_age() {
        let status = serde_json::json!({ "flows": [{
            "name": "f", "ready": true,
            "last_error": { "at_unix_ms": 1_000_000, "error": "connection refused" },
        }]});
        let flow = render_at(&status, 1_000_000 + 125_000);
        assert!(flow.contains("connection refused (2m ago)"), "{flow}");
        assert_eq!(ago(0, 59_999), "59s");
        assert_eq!(ago(0, 7_200_000), "2h");
        assert_eq!(ago(0, 3 * 86_400_000), "3d");
    }

    #[test]
    fn a_standby_flow_says_so() {
        let status = serde_json::json!({ "flows": [
            { "name": "waits", "ready": true, "standby": true },
            { "name": "runs", "ready": true, "standby": false },
        ]});
        let table = render_at(&status, 0);
        let line = |name: &str| {
            table
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no line for {name}: {table}"))
                .to_string()
        };
        assert!(line("waits").contains("standby"), "{table}");
        assert!(line("runs").contains("ready"), "{table}");
    }

    #[test]
    fn addresses_are_host_and_port() {
        assert_eq!(
            authority("http://127.0.0.1:9644/").unwrap(),
            "127.0.0.1:9644"
        );
        assert_eq!(authority("127.0.0.1:9644").unwrap(), "127.0.0.1:9644");
        assert!(authority("https://127.0.0.1:9644").is_err());
        assert!(authority("http://localhost").is_err());
    }

    #[test]
    fn the_table_has_a_line_per_flow_and_lists_lagging_partitions() {
        let status = serde_json::json!({ "flows": [{
            "name": "east-to-west", "ready": false, "not_ready": ["flow east-to-west: target west failing for 12 s: connection refused"],
            "mirrored_records": 1_250_000, "lag_records": 400, "lag_seconds": 12.5,
            "lag_unknown_partitions": 1,
            "latency_seconds": { "p50": 0.004, "p99": 0.25, "p999": 1.5 },
            "partitions": [
                { "topic": "orders", "partition": 0, "state": "running", "position": 10, "lag_records": 400, "lag_seconds": 12.5 },
                { "topic": "orders", "partition": 1, "state": "running", "position": 20, "lag_records": 0, "lag_seconds": 0.0 },
                { "topic": "orders", "partition": 2, "state": "running", "position": 0, "lag_records": null, "lag_seconds": null }
            ],
            "unmirrored_topics": [{ "topic": "audit", "reason": "cluster west: target topic east.audit does not exist and create_topics is off" }]
        }]});
        let table = render(&status);
        let flow = table.lines().nth(1).unwrap();
        for cell in [
            "east-to-west",
            "NOT READY",
            "1.2M",
            "400+?",
            "12.5s",
            "4ms",
            "250ms",
            "1.5s",
            "target west failing",
        ] {
            assert!(flow.contains(cell), "{cell} not in {flow:?}");
        }
        assert!(table.contains("orders-0"), "{table}");
        let header = table.lines().find(|l| l.contains("POSITION")).unwrap();
        let row = table.lines().find(|l| l.contains("orders-0")).unwrap();
        let end = |line: &str, cell: &str| line.find(cell).map(|i| i + cell.len());
        assert_eq!(
            end(row, " 10"),
            end(header, "POSITION"),
            "POSITION not right-aligned under its header:\n{header}\n{row}"
        );
        assert!(
            table.lines().any(|l| l.starts_with("east-to-west")
                && l.contains("audit")
                && l.contains("does not exist")),
            "the topic not mirrored is listed: {table}"
        );
        assert!(
            !table.contains("orders-1"),
            "a caught-up partition is not listed: {table}"
        );
        let lagging: Vec<_> = table
            .lines()
            .skip_while(|l| !l.contains("POSITION"))
            .collect();
        assert!(
            lagging[1].contains("orders-2") && lagging[1].contains(" ?"),
            "a partition whose lag is unknown is listed first, its lag `?`: {table}"
        );
    }
}
