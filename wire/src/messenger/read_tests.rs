//! The read loop keeps the connection in step: a response matches a request on the wire,
//! or the connection is broken at once.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsResponse, MetadataRequest, MetadataResponse};

use super::{Messenger, MessengerConfig};
use crate::frame::{self, RequestPrefix};

type Frames =
    tokio_util::codec::Framed<tokio::io::DuplexStream, tokio_util::codec::LengthDelimitedCodec>;

/// The peer's side of a connection, once it answered the messenger's ApiVersions (Metadata
/// up to v12).
async fn answered_api_versions(peer: tokio::io::DuplexStream) -> Frames {
    let mut frames = tokio_util::codec::Framed::new(peer, frame::codec(1 << 20));
    let request = frames.next().await.unwrap().unwrap();
    let prefix = RequestPrefix::peek(&request).unwrap();
    let versions = ApiVersionsResponse::default().with_api_keys(vec![
        ApiVersion::default().with_api_key(18).with_max_version(3),
        ApiVersion::default().with_api_key(3).with_max_version(12),
    ]);
    let body = frame::encode_response(prefix.correlation_id, prefix.api_version, &versions);
    frames.send(body.unwrap()).await.unwrap();
    frames
}

/// A response whose correlation id no request has (a broken peer or proxy) breaks the
/// connection at once, as Kafka's NetworkClient does, instead of leaving the request to
/// its timeout and matching later responses to the wrong requests.
#[tokio::test]
async fn a_response_no_request_awaits_breaks_the_connection_at_once() {
    let (client, peer) = tokio::io::duplex(1 << 16);
    let (read, write) = tokio::io::split(client);
    let peer = tokio::spawn(async move {
        let mut frames = answered_api_versions(peer).await;
        // Metadata, answered with another request's id.
        let request = frames.next().await.unwrap().unwrap();
        let prefix = RequestPrefix::peek(&request).unwrap();
        let body = frame::encode_response(
            prefix.correlation_id + 1000,
            prefix.api_version,
            &MetadataResponse::default(),
        );
        frames.send(body.unwrap()).await.unwrap();
        // Open, and silent, from here on.
        std::future::pending::<()>().await;
    });
    let config = MessengerConfig {
        request_timeout: Duration::from_secs(120),
        ..MessengerConfig::default()
    };
    let m = Messenger::over("peer".into(), read, write, config)
        .await
        .expect("set up");
    let got = tokio::time::timeout(
        Duration::from_secs(30),
        m.send_at(&MetadataRequest::default(), 12),
    )
    .await
    .expect("failed at once, not after its request timeout");
    let error = got.expect_err("no response of its own").to_string();
    assert!(error.contains("correlation id"), "{error}");
    assert!(m.is_poisoned());
    peer.abort();
}

/// A request held by a throttle (KIP-219) fails as soon as the connection breaks, not when
/// the throttle would have passed.
#[tokio::test]
async fn a_request_held_by_a_throttle_fails_when_the_connection_breaks() {
    let (client, peer) = tokio::io::duplex(1 << 16);
    let (read, write) = tokio::io::split(client);
    let (close_tx, close_rx) = tokio::sync::oneshot::channel::<()>();
    let peer = tokio::spawn(async move {
        let frames = answered_api_versions(peer).await;
        // Then the connection goes away.
        let _ = close_rx.await;
        drop(frames);
    });
    let m = Messenger::over("peer".into(), read, write, MessengerConfig::default())
        .await
        .expect("set up");
    m.throttle(Duration::from_secs(60));
    let request = MetadataRequest::default();
    let held = m.send_at(&request, 12);
    tokio::pin!(held);
    // Held: nothing is sent while the throttle lasts.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), held.as_mut())
            .await
            .is_err(),
        "sent during the throttle"
    );
    close_tx.send(()).unwrap();
    let got = tokio::time::timeout(Duration::from_secs(30), held)
        .await
        .expect("failed once the connection broke, not after the throttle");
    assert!(got.is_err());
    assert!(m.is_poisoned());
    peer.await.unwrap();
}
