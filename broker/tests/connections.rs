//! Connection handling as Kafka's SocketServer and SaslServerAuthenticator do it: a
//! connection idle past `connections.max.idle.ms` is closed, frames before SASL
//! authentication are held to `sasl.server.max.receive.size` (512 KiB), and a second
//! SaslHandshake gets ILLEGAL_SASL_STATE before the close.

mod common;

use std::time::Duration;

use common::*;
use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kmirror_broker::sasl::SaslUsers;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the peer closes; the bytes seen. Fails the test when it does not close.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(within, s.read_to_end(&mut out))
        .await
        .expect("the broker did not close the connection")
        .ok();
    out
}

/// A SaslHandshake v1 frame for PLAIN with `correlation_id`.
fn handshake_frame(correlation_id: i32) -> Vec<u8> {
    let mut body = bytes::BytesMut::new();
    // Request header v1: api key 17, version 1, correlation id, client id "t".
    body.extend_from_slice(&17i16.to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&correlation_id.to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(b"t");
    SaslHandshakeRequest::default()
        .with_mechanism(StrBytes::from_static_str("PLAIN"))
        .encode(&mut body, 1)
        .unwrap();
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

async fn sasl_broker(dir: &std::path::Path) -> kmirror_broker::RunningBroker {
    let mut c = config(Some(dir));
    c.sasl = Some(SaslUsers::from_passwords([("alice", "alice-secret")]));
    c.sasl_plain_without_tls = true;
    kmirror_broker::start(c).await.unwrap()
}

#[tokio::test]
async fn an_idle_connection_is_closed_and_a_busy_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(Some(dir.path()));
    c.connections_max_idle = Duration::from_millis(300);
    let b = kmirror_broker::start(c).await.unwrap();
    // A client that keeps asking stays connected past the idle time.
    let busy = connect(&b).await;
    for _ in 0..8 {
        busy.send(&kafka_protocol::messages::ApiVersionsRequest::default())
            .await
            .expect("a busy connection stays open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut idle = TcpStream::connect(b.local_addr).await.unwrap();
    let seen = read_until_closed(&mut idle, Duration::from_secs(10)).await;
    assert!(seen.is_empty(), "{seen:?}");
}

#[tokio::test]
async fn frames_before_sasl_authentication_are_held_to_512_kib() {
    let dir = tempfile::tempdir().unwrap();
    let b = sasl_broker(dir.path()).await;
    // A frame announcing 600 KiB before authentication: closed without reading it all.
    let mut s = TcpStream::connect(b.local_addr).await.unwrap();
    let announced = 600i32 << 10;
    s.write_all(&announced.to_be_bytes()).await.unwrap();
    let _ = s.write_all(&vec![0u8; 64 << 10]).await;
    let seen = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(seen.is_empty(), "{seen:?}");
    // A small handshake on another connection is still answered.
    let mut ok = TcpStream::connect(b.local_addr).await.unwrap();
    ok.write_all(&handshake_frame(1)).await.unwrap();
    let mut len = [0u8; 4];
    ok.read_exact(&mut len).await.unwrap();
    assert!(i32::from_be_bytes(len) > 0);
}

#[tokio::test]
async fn a_second_sasl_handshake_gets_illegal_sasl_state_then_the_close() {
    let dir = tempfile::tempdir().unwrap();
    let b = sasl_broker(dir.path()).await;
    let mut s = TcpStream::connect(b.local_addr).await.unwrap();
    s.write_all(&handshake_frame(1)).await.unwrap();
    s.write_all(&handshake_frame(2)).await.unwrap();
    let seen = read_until_closed(&mut s, Duration::from_secs(10)).await;
    // Two answers: the handshake's, then the second's error.
    let mut rest = &seen[..];
    let mut answers = Vec::new();
    while rest.len() >= 4 {
        let n = i32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let mut body = bytes::Bytes::copy_from_slice(&rest[4..4 + n]);
        rest = &rest[4 + n..];
        let correlation_id = i32::from_be_bytes(body[..4].try_into().unwrap());
        let _ = body.split_to(4);
        let r = SaslHandshakeResponse::decode(&mut body, 1).unwrap();
        answers.push((correlation_id, r.error_code));
    }
    assert_eq!(answers, vec![(1, 0), (2, 34)], "ILLEGAL_SASL_STATE is 34");
}
