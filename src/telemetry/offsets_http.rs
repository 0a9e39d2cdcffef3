//! `GET /offsets` on the telemetry listener: offset translation over HTTP, so applications
//! in any language can translate without a JVM library.
//!
//! - `/offsets?flow=F&group=G`: the group's committed source offsets, translated;
//! - `/offsets?flow=F&topic=T&partition=P&offset=O`: one source offset.
//!
//! The answer is JSON: `{"flow", "group", "partitions": [{"topic", "partition",
//! "target_topic", "source_offset", "state", "target_offset" | "mirrored_through" |
//! "log_start" | "map_start"}]}`; errors are `{"error": "..."}` with 400 (bad query), 404
//! (unknown flow or partition), 503 (flow not started) or 502 (the source did not answer).

use std::collections::HashMap;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};

use super::http::{text, with_type};
use super::stats::Flows;
use crate::offsets::cli::Query;
use crate::offsets::report::{FlowOffsets, Reverse};

fn json(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    with_type(text(status, format!("{value}\n")), "application/json")
}

fn error(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    json(status, serde_json::json!({ "error": message }))
}

/// Answers `GET /offsets?query`.
pub async fn answer(flows: &Flows, query: Option<&str>) -> Response<Full<Bytes>> {
    let params: HashMap<String, String> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let Some(flow_name) = params.get("flow") else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing flow: /offsets?flow=F&group=G or /offsets?flow=F&topic=T&partition=P&offset=O"
                .into(),
        );
    };
    let number = |name: &str| params.get(name).and_then(|v| v.parse::<i64>().ok());
    let query = match (params.get("group"), params.get("topic")) {
        (Some(group), None) => Query::Group(group.clone()),
        (None, Some(topic)) => match (number("partition"), number("offset")) {
            (Some(partition), Some(offset)) if i32::try_from(partition).is_ok() => {
                match Query::one(topic.clone(), partition as i32, offset) {
                    Ok(query) => query,
                    Err(message) => return error(StatusCode::BAD_REQUEST, message),
                }
            }
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "topic needs partition and offset as integers".into(),
                )
            }
        },
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "give either group, or topic with partition and offset".into(),
            )
        }
    };
    let Some(stats) = flows.get(flow_name) else {
        return error(StatusCode::NOT_FOUND, format!("no flow {flow_name:?}"));
    };
    let Some(offsets) = stats.offsets() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("flow {flow_name} has not loaded its progress yet"),
        );
    };
    // Flows the other way running in this daemon translate failback topics back.
    let reverse = flows
        .all()
        .iter()
        .filter_map(|f| f.offsets())
        .filter(|o| o.flow.source == offsets.flow.target && o.flow.target == offsets.flow.source)
        .map(|o| Reverse {
            flow: o.flow.clone(),
            progress: o.progress.clone(),
        })
        .collect();
    let offsets = FlowOffsets {
        flow: offsets.flow.clone(),
        progress: offsets.progress.clone(),
        source: offsets.source.clone(),
        target: offsets.target.clone(),
        reverse,
    };
    match crate::offsets::cli::translate(&offsets, &query).await {
        Ok(rows) => {
            let group = match &query {
                Query::Group(g) => Some(g.as_str()),
                Query::One { .. } => None,
            };
            json(
                StatusCode::OK,
                serde_json::json!({ "flow": flow_name, "group": group, "partitions": rows }),
            )
        }
        Err(message) => {
            let status = match query {
                Query::One { .. } => StatusCode::NOT_FOUND,
                Query::Group(_) if message.contains("cannot read") => StatusCode::BAD_GATEWAY,
                Query::Group(_) => StatusCode::NOT_FOUND,
            };
            error(status, message)
        }
    }
}
