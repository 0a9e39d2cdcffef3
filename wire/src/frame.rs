//! Length-prefixed Kafka frames and the request/response headers around message bodies.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes. The codec enforces a
//! maximum frame size *before* allocating the body, so an oversized or hostile length prefix
//! costs nothing. This module knows headers, not bodies: bodies are encoded and decoded by
//! `kafka-protocol` at the version the caller chose.

use bytes::{Buf, Bytes, BytesMut};

use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio_util::codec::LengthDelimitedCodec;

use crate::parts::{Frame, SharingBuf};

/// Kafka's `socket.request.max.bytes` default: 100 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// Errors from encoding or decoding frames and headers.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len_bytes} bytes is shorter than a request header")]
    TooShort { len_bytes: usize },
    #[error("unknown API key {api_key}")]
    UnknownApiKey { api_key: i16 },
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        source: anyhow::Error,
    },
    #[error("cannot decode {what}: {source}")]
    Decode {
        what: &'static str,
        source: anyhow::Error,
    },
}

/// A codec for length-prefixed frames, refusing frames over `max_frame_bytes`.
pub fn codec(max_frame_bytes: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(max_frame_bytes)
        .new_codec()
}

/// The first fields of a request frame, read without decoding the header or body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPrefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

impl RequestPrefix {
    /// Reads api key, version and correlation id from the first 8 bytes of a request frame.
    pub fn peek(frame: &[u8]) -> Result<Self, FrameError> {
        if frame.len() < 8 {
            return Err(FrameError::TooShort {
                len_bytes: frame.len(),
            });
        }
        Ok(Self {
            api_key: i16::from_be_bytes([frame[0], frame[1]]),
            api_version: i16::from_be_bytes([frame[2], frame[3]]),
            correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
        })
    }
}

/// Decodes the request header (v1 or v2, chosen from key and version) and leaves `frame`
/// positioned at the body. Never panics on short input.
pub fn decode_request_header(frame: &mut Bytes) -> Result<RequestHeader, FrameError> {
    let prefix = RequestPrefix::peek(frame)?;
    let key = ApiKey::try_from(prefix.api_key).map_err(|_| FrameError::UnknownApiKey {
        api_key: prefix.api_key,
    })?;
    let header_version = key.request_header_version(prefix.api_version);
    RequestHeader::decode(frame, header_version).map_err(|source| FrameError::Decode {
        what: "request header",
        source,
    })
}

/// Encodes a response frame body (without the length prefix): header then body.
pub fn encode_response<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    body: &R,
) -> Result<Bytes, FrameError> {
    let mut buf = BytesMut::with_capacity(64);
    encode_response_into(&mut buf, correlation_id, version, body)?;
    Ok(buf.freeze())
}

/// Like [`encode_response`], appending to `buf`.
pub fn encode_response_into<R: Encodable + HeaderVersion>(
    buf: &mut BytesMut,
    correlation_id: i32,
    version: i16,
    body: &R,
) -> Result<(), FrameError> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(buf, R::header_version(version))
        .map_err(|source| FrameError::Encode {
            what: "response header",
            source,
        })?;
    if let Ok(size) = body.compute_size(version) {
        buf.reserve(size);
    }
    body.encode(buf, version)
        .map_err(|source| FrameError::Encode {
            what: "response body",
            source,
        })
}

/// Encodes a request frame body (without the length prefix): header then body.
pub fn encode_request<R: Request>(
    correlation_id: i32,
    version: i16,
    client_id: &StrBytes,
    body: &R,
) -> Result<Bytes, FrameError> {
    let mut buf = BytesMut::with_capacity(body.compute_size(version).unwrap_or(64) + 32);
    encode_request_into(&mut buf, correlation_id, version, client_id, body)?;
    Ok(buf.freeze())
}

/// Request header, then body, into `buf`.
fn encode_request_into<B: ByteBufMut, R: Request>(
    buf: &mut B,
    correlation_id: i32,
    version: i16,
    client_id: &StrBytes,
    body: &R,
) -> Result<(), FrameError> {
    request_header(correlation_id, version, client_id, R::KEY)
        .encode(buf, R::header_version(version))
        .map_err(|source| FrameError::Encode {
            what: "request header",
            source,
        })?;
    body.encode(buf, version)
        .map_err(|source| FrameError::Encode {
            what: "request body",
            source,
        })
}

/// [`encode_request`] into parts: slices of `shared` (the record batches of a Produce
/// request) are referenced by the frame rather than copied into it.
pub fn encode_request_sharing<R: Request>(
    correlation_id: i32,
    version: i16,
    client_id: &StrBytes,
    body: &R,
    shared: &[Bytes],
) -> Result<Frame, FrameError> {
    let shared_bytes: usize = shared.iter().map(Bytes::len).sum();
    let capacity = body
        .compute_size(version)
        .unwrap_or(64)
        .saturating_sub(shared_bytes)
        + 64;
    let mut buf = SharingBuf::new(capacity, shared);
    encode_request_into(&mut buf, correlation_id, version, client_id, body)?;
    Ok(buf.finish())
}

fn request_header(
    correlation_id: i32,
    version: i16,
    client_id: &StrBytes,
    key: i16,
) -> RequestHeader {
    RequestHeader::default()
        .with_request_api_key(key)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(client_id.clone()))
}

/// Reads the correlation id of a response frame and decodes the response header.
pub fn decode_response_header<R: HeaderVersion>(
    frame: &mut Bytes,
    version: i16,
) -> Result<ResponseHeader, FrameError> {
    if frame.remaining() < 4 {
        return Err(FrameError::TooShort {
            len_bytes: frame.len(),
        });
    }
    ResponseHeader::decode(frame, R::header_version(version)).map_err(|source| FrameError::Decode {
        what: "response header",
        source,
    })
}

/// Decodes a message body at `version`.
pub fn decode_body<M: Decodable>(
    frame: &mut Bytes,
    version: i16,
    what: &'static str,
) -> Result<M, FrameError> {
    M::decode(frame, version).map_err(|source| FrameError::Decode { what, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, MetadataRequest};

    #[test]
    fn a_header_cut_short_is_one_line_of_error() {
        // ApiVersions v3 (header v2) whose client id claims 32767 bytes.
        let mut frame = Bytes::from_static(&[0, 18, 0, 3, 0, 0, 0, 1, 0x7f, 0xff, b'a']);
        let e = decode_request_header(&mut frame).unwrap_err().to_string();
        assert!(e.starts_with("cannot decode request header"), "{e}");
        assert!(!e.contains('\n'), "{e:?}");
    }

    #[test]
    fn short_frames_are_errors_not_panics() {
        for len in 0..8 {
            let mut b = Bytes::from(vec![0u8; len]);
            assert!(matches!(
                decode_request_header(&mut b),
                Err(FrameError::TooShort { .. })
            ));
        }
    }

    #[test]
    fn unknown_api_key_is_reported() {
        let mut b = Bytes::from_static(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert!(matches!(
            decode_request_header(&mut b),
            Err(FrameError::UnknownApiKey { api_key: 0x7f00 })
        ));
    }

    #[test]
    fn request_round_trips_through_header_decode() {
        let id = StrBytes::from_static_str("t");
        let mut frame = encode_request(7, 12, &id, &MetadataRequest::default()).unwrap();
        let h = decode_request_header(&mut frame).unwrap();
        assert_eq!(
            (h.request_api_key, h.request_api_version, h.correlation_id),
            (3, 12, 7)
        );
        let _: MetadataRequest = decode_body(&mut frame, 12, "metadata").unwrap();
        assert!(frame.is_empty());
        let mut frame = encode_request(8, 3, &id, &ApiVersionsRequest::default()).unwrap();
        assert_eq!(decode_request_header(&mut frame).unwrap().correlation_id, 8);
    }

    #[test]
    fn a_sharing_encode_equals_the_copying_one_and_references_the_batches() {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use kafka_protocol::messages::{ProduceRequest, TopicName};
        let batches: Vec<Bytes> = (0..3u8).map(|i| Bytes::from(vec![i; 3000])).collect();
        let req = ProduceRequest::default().with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_data(
                batches
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        PartitionProduceData::default()
                            .with_index(i as i32)
                            .with_records(Some(b.clone()))
                    })
                    .collect(),
            )]);
        let id = StrBytes::from_static_str("c");
        for version in [3, 9, 12] {
            let copied = encode_request(1, version, &id, &req).unwrap();
            let shared = encode_request_sharing(1, version, &id, &req, &batches).unwrap();
            assert_eq!(shared.to_bytes(), copied, "v{version}");
            for b in &batches {
                assert!(
                    shared.parts().iter().any(|p| p.as_ptr() == b.as_ptr()),
                    "v{version}: a batch was copied"
                );
            }
        }
    }

    #[test]
    fn api_versions_response_uses_header_v0() {
        // Kafka requires a v0 response header for ApiVersions at every version: no tagged
        // fields byte after the correlation id.
        let frame = encode_response(5, 3, &ApiVersionsResponse::default()).unwrap();
        assert_eq!(&frame[..4], &5i32.to_be_bytes());
        assert_eq!(&frame[4..6], &0i16.to_be_bytes()); // error_code follows directly
    }
}
