//! ApiVersions: the APIs and versions this broker advertises (see
//! [`crate::dispatch::advertised`]). Default-valued tagged fields are not sent, which
//! older librdkafka (Debian's kcat) needs.

use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

pub fn handle(_req: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(crate::dispatch::advertised().to_vec())
}
