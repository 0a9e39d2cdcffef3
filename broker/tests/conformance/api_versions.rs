//! ApiVersions at a version the broker does not support, above its range or below it
//! (negative): the KIP-511 answer, a v0 response with UNSUPPORTED_VERSION and the
//! ApiVersions range, on a connection that stays open.

use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::protocol::Decodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Ctx, Got, Row};

const API_VERSIONS: i16 = 18;
const UNSUPPORTED_VERSION: i16 = 35;

/// Sends ApiVersions at `version` (header v1, client id "raw", no body) on `s`; the error
/// code of the v0 answer, `Answer` if it does not name the ApiVersions range, `Closed`
/// if the connection closes.
async fn api_versions_raw(s: &mut TcpStream, version: i16, correlation_id: i32) -> Got {
    let mut frame = 13i32.to_be_bytes().to_vec();
    frame.extend_from_slice(&API_VERSIONS.to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.extend_from_slice(&3i16.to_be_bytes());
    frame.extend_from_slice(b"raw");
    if s.write_all(&frame).await.is_err() {
        return Got::Closed;
    }
    let mut len = [0u8; 4];
    if s.read_exact(&mut len).await.is_err() {
        return Got::Closed;
    }
    let mut body = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
    if s.read_exact(&mut body).await.is_err() || body.len() < 4 {
        return Got::Closed;
    }
    if body[..4] != correlation_id.to_be_bytes() {
        return Got::Answer(format!("correlation id {:?}", &body[..4]));
    }
    let mut rest = bytes::Bytes::from(body[4..].to_vec());
    match ApiVersionsResponse::decode(&mut rest, 0) {
        Ok(r) if r.error_code == 0 || r.api_keys.iter().any(|k| k.api_key == API_VERSIONS) => {
            Got::Code(r.error_code)
        }
        Ok(r) => Got::Answer(format!("no ApiVersions range: {r:?}")),
        Err(e) => Got::Answer(format!("not a v0 answer: {e}")),
    }
}

/// ApiVersions at `version`, then at v0 on the same connection: the first answer's code
/// if the second is served, else what the second got.
async fn fallback_then_v0(ctx: Ctx, version: i16) -> Got {
    let Ok(mut s) = TcpStream::connect(&ctx.addr).await else {
        return Got::Answer("cannot connect".into());
    };
    let first = api_versions_raw(&mut s, version, 7).await;
    if first == Got::Closed {
        return first;
    }
    match api_versions_raw(&mut s, 0, 8).await {
        Got::Code(0) => first,
        second => Got::Answer(format!("then v0 got {second:?}")),
    }
}

macro_rules! fallback_row {
    ($rule:expr, $version:expr, $expect:expr) => {
        Row {
            rule: $rule,
            kafka: "RequestContext.isUnsupportedApiVersionsRequest / ApiVersionsRequest.getErrorResponse",
            expect: $expect,
            config: None,
            run: |ctx| Box::pin(fallback_then_v0(ctx, $version)),
        }
    };
}

pub fn rows() -> Vec<Row> {
    vec![
        fallback_row!("ApiVersions v0 is served", 0, Got::Code(0)),
        fallback_row!(
            "ApiVersions v5 (above the range): UNSUPPORTED_VERSION at v0, connection kept",
            5,
            Got::Code(UNSUPPORTED_VERSION)
        ),
        fallback_row!(
            "ApiVersions v-1: UNSUPPORTED_VERSION at v0, connection kept",
            -1,
            Got::Code(UNSUPPORTED_VERSION)
        ),
        fallback_row!(
            "ApiVersions v-32768: UNSUPPORTED_VERSION at v0, connection kept",
            i16::MIN,
            Got::Code(UNSUPPORTED_VERSION)
        ),
    ]
}
