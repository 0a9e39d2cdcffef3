//! The node control over HTTP (`--admin-listen`), tokio only: `GET /nodes` lists the
//! nodes, `POST /nodes/{id}/stop` and `POST /nodes/{id}/start` stop and start one. One
//! request per connection, answered with JSON and closed. For tests and local use: no
//! authentication, so bind it to a loopback address.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::listeners::Nodes;
use super::NodeError;

/// Largest request head accepted.
const MAX_REQUEST_BYTES: usize = 8192;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the control until shutdown.
pub async fn serve(listener: TcpListener, nodes: Arc<Nodes>, shutdown: CancellationToken) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "Admin accept failed.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let nodes = nodes.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &nodes).await {
                tracing::debug!(%peer, error = %e, "Admin connection failed.");
            }
        });
    }
}

async fn handle(mut stream: TcpStream, nodes: &Nodes) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let head = tokio::time::timeout(READ_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                return Some(String::from_utf8_lossy(&buf[..end]).into_owned());
            }
            if buf.len() > MAX_REQUEST_BYTES {
                return None;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .ok()
    .flatten();
    let (status, body) = match head {
        None => (400, serde_json::json!({"error": "unreadable request"})),
        Some(head) => {
            let line = head.lines().next().unwrap_or("");
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or("");
            let path = parts.next().unwrap_or("");
            route(nodes, method, path).await
        }
    };
    let body = body.to_string();
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        _ => "Internal Server Error",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

async fn route(nodes: &Nodes, method: &str, path: &str) -> (u16, serde_json::Value) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("GET", ["nodes"]) => (200, list(nodes).await),
        ("POST", ["nodes", id, action @ ("stop" | "start")]) => {
            let Ok(id) = id.parse::<i32>() else {
                return (
                    400,
                    serde_json::json!({"error": "the node id is not a number"}),
                );
            };
            let result = if *action == "stop" {
                nodes.stop(id).await
            } else {
                nodes.start(id).await
            };
            match result {
                Ok(()) => (200, list(nodes).await),
                Err(e) => {
                    let status = match e {
                        NodeError::Unknown(_) => 404,
                        NodeError::LastLive(_) | NodeError::AlreadyInState(..) => 409,
                        NodeError::Bind { .. } => 500,
                    };
                    (status, serde_json::json!({"error": e.to_string()}))
                }
            }
        }
        (_, ["nodes"] | ["nodes", _, "stop" | "start"]) => {
            (405, serde_json::json!({"error": "method not allowed"}))
        }
        _ => (404, serde_json::json!({"error": "no such resource"})),
    }
}

async fn list(nodes: &Nodes) -> serde_json::Value {
    let list: Vec<serde_json::Value> = nodes
        .status()
        .await
        .into_iter()
        .map(|s| {
            serde_json::json!({
                "id": s.endpoint.node_id,
                "host": s.endpoint.host,
                "port": s.endpoint.port,
                "listen": s.listen.to_string(),
                "live": s.live,
            })
        })
        .collect();
    serde_json::json!({ "nodes": list })
}
