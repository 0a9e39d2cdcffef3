//! Produce and Fetch, measured against the client's quotas ([`crate::quotas`]) as Kafka
//! measures them: a Produce's request size counts against `producer_byte_rate`, and its
//! records are kept whatever the rate; a Fetch's response size against
//! `consumer_byte_rate`, and one over it is answered with no partitions (its bytes not
//! counted). Either way the response goes out at once, at every version, with
//! `throttle_time_ms` where the version has it, and the connection is then muted
//! ([`Outcome::Throttled`]). Kafka: KafkaApis.handleProduceRequest and
//! handleFetchRequest.

use bytes::Bytes;
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProduceRequest};
use kmirror_wire::frame;

use super::{respond, Outcome};
use crate::acl::Caller;
use crate::authz::{self, Guard};
use crate::handlers;
use crate::quotas::Kind;
use crate::state::Broker;

/// Who asked, and the request's header fields the answer needs.
pub(super) struct At<'a> {
    pub broker: &'a Broker,
    pub g: &'a Guard<'a>,
    pub caller: &'a Caller,
    pub client_id: &'a str,
    pub corr: i32,
    pub version: i16,
    /// The request's size, header and body (Kafka: RequestChannel.Request.sizeInBytes).
    pub request_bytes: usize,
}

/// ProduceResponse.json: `throttle_time_ms` from v1 (a v0 client is muted all the same).
const FIRST_PRODUCE_WITH_THROTTLE: i16 = 1;

fn clamp_ms(ms: u64) -> i32 {
    i32::try_from(ms).unwrap_or(i32::MAX)
}

/// The response at once, then the connection muted for the time it says (Kafka:
/// RequestChannel.sendResponse and SocketServer's throttled channel; the version is not
/// looked at).
fn throttled(response: Option<Bytes>, throttle_ms: u64) -> Outcome {
    tracing::debug!(throttle_ms, "Client over its quota; throttled.");
    Outcome::Throttled {
        response,
        throttle: std::time::Duration::from_millis(clamp_ms(throttle_ms) as u64),
    }
}

pub(super) async fn produce(at: At<'_>, mut frame: Bytes) -> Outcome {
    let req: ProduceRequest = match frame::decode_body(&mut frame, at.version, "Produce") {
        Ok(r) => r,
        Err(e) => return Outcome::Close(e.to_string()),
    };
    let acks = req.acks;
    let mut resp = authz::topics::produce(at.g, at.broker, req, at.version).await;
    let throttle_ms = at.broker.quotas.record(
        at.broker.config.node_id,
        Kind::Produce,
        &at.caller.principal,
        at.client_id,
        at.request_bytes,
    );
    if acks == 0 {
        // Kafka: KafkaApis.handleProduceRequest closes the connection when an acks=0
        // request fails, so the producer refreshes its metadata.
        if handlers::produce::has_error(&resp) {
            return Outcome::Close("Produce with acks=0 failed".into());
        }
        if throttle_ms > 0 {
            return throttled(None, throttle_ms);
        }
        return Outcome::NoResponse;
    }
    if throttle_ms == 0 {
        return respond(at.corr, at.version, &resp);
    }
    if at.version >= FIRST_PRODUCE_WITH_THROTTLE {
        resp.throttle_time_ms = clamp_ms(throttle_ms);
    }
    match respond(at.corr, at.version, &resp) {
        Outcome::Respond(b) => throttled(Some(b), throttle_ms),
        other => other,
    }
}

pub(super) async fn fetch(at: At<'_>, mut frame: Bytes) -> Outcome {
    let mut req: FetchRequest = match frame::decode_body(&mut frame, at.version, "Fetch") {
        Ok(r) => r,
        Err(e) => return Outcome::Close(e.to_string()),
    };
    // A follower's Fetch is not a consumer's (KafkaApis.handleFetchRequest,
    // `isFromFollower`): neither capped nor counted.
    let consumer = req.replica_id.0 < 0 && req.replica_state.replica_id.0 < 0;
    // max_bytes and min_bytes capped by what the quota allows in its window.
    let most = consumer
        .then(|| {
            at.broker
                .quotas
                .fetch_bytes_in_window(&at.caller.principal, at.client_id)
        })
        .flatten();
    if let Some(most) = most {
        req.max_bytes = req.max_bytes.min(most);
        req.min_bytes = req.min_bytes.min(req.max_bytes);
    }
    let resp = authz::topics::fetch(at.g, at.broker, req, at.version).await;
    let bytes = match respond(at.corr, at.version, &resp) {
        Outcome::Respond(b) => b,
        other => return other,
    };
    if !consumer {
        return Outcome::Respond(bytes);
    }
    let throttle_ms = at.broker.quotas.record(
        at.broker.config.node_id,
        Kind::Fetch,
        &at.caller.principal,
        at.client_id,
        bytes.len(),
    );
    if throttle_ms == 0 {
        return Outcome::Respond(bytes);
    }
    // FetchContext.getThrottledResponse: no partitions (FetchResponse.json:
    // throttle_time_ms from v1).
    let empty = FetchResponse::default()
        .with_throttle_time_ms(if at.version >= 1 {
            clamp_ms(throttle_ms)
        } else {
            0
        })
        .with_session_id(0);
    match respond(at.corr, at.version, &empty) {
        Outcome::Respond(b) => throttled(Some(b), throttle_ms),
        other => other,
    }
}
