//! Connection handling as Kafka's SocketServer and SaslServerAuthenticator do it: a
//! connection idle past `connections.max.idle.ms` is closed, frames before SASL
//! authentication are held to `sasl.server.max.receive.size` (512 KiB), and a second
//! SaslHandshake, or an ApiVersions after the handshake, gets ILLEGAL_SASL_STATE before the
//! close; a second ApiVersions before it is closed at once. One request is handled at a time:
//! the next waits until the answer before it is written, as SocketServer mutes the channel.
//! A client that resets its connection is logged at debug, not as a warning.

mod common;

use std::time::Duration;

use common::*;
use kafka_protocol::messages::SaslHandshakeRequest;
use kafka_protocol::protocol::{Encodable, StrBytes};
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
    // (Long beside the 100 ms between requests: a test thread stalled on a busy machine
    // must not make the busy connection idle.)
    c.connections_max_idle = Duration::from_secs(1);
    let b = kmirror_broker::start(c).await.unwrap();
    // A client that keeps asking stays connected past the idle time.
    let busy = connect(&b).await;
    for _ in 0..16 {
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
    // Two answers: the handshake's, then the second's error.
    let answers = answers_until_closed(&b, &[handshake_frame(1), handshake_frame(2)]).await;
    assert_eq!(answers, vec![(1, 0), (2, 34)], "ILLEGAL_SASL_STATE is 34");
}

/// Reads one response frame, its length included.
async fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut frame = vec![0u8; 4];
    s.read_exact(&mut frame).await.unwrap();
    let len = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    frame.resize(4 + len, 0);
    s.read_exact(&mut frame[4..]).await.unwrap();
    frame
}

/// Reads one response frame; its correlation id.
async fn read_answer(s: &mut TcpStream) -> i32 {
    i32::from_be_bytes(read_frame(s).await[4..8].try_into().unwrap())
}

#[tokio::test]
async fn the_next_request_waits_until_the_answer_before_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (b, m) = broker_with_36_mib(dir.path(), Duration::from_secs(600)).await;
    // One connection asks for all of it, then produces to "small", and reads nothing.
    let mut reader = TcpStream::connect(b.local_addr).await.unwrap();
    reader.write_all(&fetch_all_of_big(1)).await.unwrap();
    let produce_small = produce_request("small", 0, batch(1, 1_000), 1);
    reader
        .write_all(&raw_frame(0, 3, 2, &produce_small))
        .await
        .unwrap();
    // Kafka handles the produce only once the fetch answer is written, which it cannot
    // be while the client reads nothing: "small" stays empty. (An absence can only be
    // watched for a while; a broker that reads ahead appends within milliseconds.)
    for _ in 0..20 {
        assert_eq!(fetch_hw(&m, "small").await, 0, "the produce ran early");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Reading the answers lets it through, in order.
    assert_eq!(read_answer(&mut reader).await, 1);
    assert_eq!(read_answer(&mut reader).await, 2);
    assert_eq!(fetch_hw(&m, "small").await, 1);
}

async fn fetch_hw(m: &kmirror_wire::messenger::Messenger, topic: &str) -> i64 {
    fetch(m, topic, 0, 0).await.high_watermark
}

/// Every answer in `seen` (ApiVersions or SaslHandshake, both with the error code first):
/// its correlation id and error code.
fn answers_of(seen: &[u8]) -> Vec<(i32, i16)> {
    let mut rest = seen;
    let mut out = Vec::new();
    while rest.len() >= 4 {
        let n = i32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let body = &rest[4..4 + n];
        rest = &rest[4 + n..];
        out.push((
            i32::from_be_bytes(body[..4].try_into().unwrap()),
            i16::from_be_bytes(body[4..6].try_into().unwrap()),
        ));
    }
    out
}

/// Sends `frames` on a new connection: every answer (as [`answers_of`]) until the close.
async fn answers_until_closed(
    b: &kmirror_broker::RunningBroker,
    frames: &[Vec<u8>],
) -> Vec<(i32, i16)> {
    let mut s = TcpStream::connect(b.local_addr).await.unwrap();
    for f in frames {
        s.write_all(f).await.unwrap();
    }
    answers_of(&read_until_closed(&mut s, Duration::from_secs(10)).await)
}

fn api_versions_frame(version: i16, correlation_id: i32) -> Vec<u8> {
    raw_frame(
        18,
        version,
        correlation_id,
        &kafka_protocol::messages::ApiVersionsRequest::default(),
    )
}

#[tokio::test]
async fn api_versions_is_answered_once_before_the_sasl_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let b = sasl_broker(dir.path()).await;
    // Unsupported, retried lower, then the handshake: all answered, the connection stays.
    let mut s = TcpStream::connect(b.local_addr).await.unwrap();
    // v99's body is unknown to both sides: the header alone.
    let mut unsupported = api_versions_frame(2, 1);
    unsupported[6..8].copy_from_slice(&99i16.to_be_bytes());
    s.write_all(&unsupported).await.unwrap();
    s.write_all(&api_versions_frame(2, 2)).await.unwrap();
    s.write_all(&handshake_frame(3)).await.unwrap();
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.extend(answers_of(&read_frame(&mut s).await));
    }
    assert_eq!(
        answers,
        vec![(1, 35), (2, 0), (3, 0)],
        "UNSUPPORTED_VERSION is 35"
    );
    // A second ApiVersions once one was answered: Kafka closes the connection.
    let frames = [api_versions_frame(2, 1), api_versions_frame(2, 2)];
    assert_eq!(answers_until_closed(&b, &frames).await, vec![(1, 0)]);
}

#[tokio::test]
async fn api_versions_after_the_sasl_handshake_gets_illegal_sasl_state_then_the_close() {
    let dir = tempfile::tempdir().unwrap();
    let b = sasl_broker(dir.path()).await;
    let frames = [handshake_frame(1), api_versions_frame(2, 2)];
    assert_eq!(
        answers_until_closed(&b, &frames).await,
        vec![(1, 0), (2, 34)],
        "ILLEGAL_SASL_STATE is 34"
    );
}

#[tokio::test]
async fn a_slow_reader_keeps_its_connection_and_a_stalled_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let idle = Duration::from_secs(1);
    let (b, _m) = broker_with_36_mib(dir.path(), idle).await;
    // 35 MiB read 1 MiB per 100 ms: several idle times in all, none without progress.
    // An ApiVersions behind it is answered after it, on the same connection.
    let mut slow = TcpStream::connect(b.local_addr).await.unwrap();
    slow.write_all(&fetch_all_of_big(1)).await.unwrap();
    slow.write_all(&api_versions_frame(2, 2)).await.unwrap();
    let mut len = [0u8; 4];
    slow.read_exact(&mut len).await.unwrap();
    let mut left = i32::from_be_bytes(len) as usize;
    assert!(left > 35 << 20, "{left} bytes");
    let mut chunk = vec![0u8; 1 << 20];
    while left > 0 {
        let n = chunk.len().min(left);
        slow.read_exact(&mut chunk[..n])
            .await
            .expect("the broker closed a connection that was reading");
        left -= n;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(read_answer(&mut slow).await, 2);
    // A client that stops reading is closed once the answer has not moved for the idle
    // time: the end of the stream comes instead of the rest of the answer.
    let mut stalled = TcpStream::connect(b.local_addr).await.unwrap();
    stalled.write_all(&fetch_all_of_big(1)).await.unwrap();
    tokio::time::sleep(idle * 3).await;
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), stalled.read_to_end(&mut seen))
        .await
        .expect("the broker did not close the stalled connection");
    assert!(seen.len() < 35 << 20, "{} bytes arrived", seen.len());
}

#[test]
fn a_reset_connection_is_not_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let broker = kmirror_testkit::BrokerProcess::start(
        dir.path(),
        &["--log-level", "info,kmirror_broker::connection=debug"],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut s = TcpStream::connect(broker.addr()).await.unwrap();
        // Half a frame, then a reset (SO_LINGER 0) while the broker reads the rest.
        s.write_all(&100i32.to_be_bytes()).await.unwrap();
        s.write_all(&[0, 3, 0, 1]).await.unwrap();
        s.set_zero_linger().unwrap();
    });
    assert!(
        broker
            .log
            .wait_for("Connection closed by the peer.", Duration::from_secs(30)),
        "{}",
        broker.log.tail(20)
    );
    assert!(!broker.log.contains(" WARN "), "{}", broker.log.tail(20));
}

/// A length prefix below zero or over the limit closes the connection with a WARN that
/// gives the size the client sent (Kafka: NetworkReceive.readFrom, "Invalid receive (size =
/// -1)"), each event on one line; a header cut short is one line too.
#[test]
fn a_bad_request_size_is_logged_with_the_size_sent() {
    let dir = tempfile::tempdir().unwrap();
    let broker = kmirror_testkit::BrokerProcess::start(dir.path(), &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let send = |bytes: Vec<u8>| {
        rt.block_on(async {
            let mut s = TcpStream::connect(broker.addr()).await.unwrap();
            s.write_all(&bytes).await.unwrap();
            read_until_closed(&mut s, Duration::from_secs(30)).await
        })
    };
    send((-1i32).to_be_bytes().to_vec());
    send((104_857_601i32).to_be_bytes().to_vec());
    // ApiVersions v3 whose client id claims 32767 bytes of the 1 sent.
    let header = [0, 18, 0, 3, 0, 0, 0, 1, 0x7f, 0xff, b'a'];
    let mut cut = (header.len() as i32).to_be_bytes().to_vec();
    cut.extend_from_slice(&header);
    send(cut);
    for needle in [
        "invalid request size (negative). peer=",
        "size=-1",
        "size=104857601 limit_bytes=104857600",
        "Not enough bytes remaining in buffer!",
    ] {
        assert!(
            broker.log.wait_for(needle, Duration::from_secs(30)),
            "no {needle:?} in:\n{}",
            broker.log.tail(20)
        );
    }
    let lines = broker.log.lines();
    let cut_line = lines
        .iter()
        .position(|l| l.contains("Not enough bytes remaining"))
        .unwrap();
    assert!(
        lines.get(cut_line + 1).is_none_or(|next| !next.is_empty()),
        "an empty line after the event:\n{}",
        broker.log.tail(20)
    );
}

/// The reader of the broker's log goes away (a log shipper that died, a `| head`): log lines
/// are lost, the broker is not: it serves, and SIGTERM stops it with status 0.
#[test]
fn a_closed_log_pipe_loses_log_lines_and_keeps_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", kmirror_testkit::free_port());
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kmirror-broker"));
    command
        .args(["--listen", &addr, "--data-dir"])
        .arg(dir.path());
    let mut broker = kmirror_testkit::Unlogged::spawn(command);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let served = rt.block_on(async {
        for _ in 0..300 {
            if let Ok(m) =
                kmirror_wire::messenger::Messenger::connect(&addr, Default::default()).await
            {
                let topics = m
                    .send(&kafka_protocol::messages::MetadataRequest::default())
                    .await;
                return topics.is_ok();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    });
    assert!(served, "the broker did not answer Metadata");
    let status = broker.terminate();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?} (None: still running 30 s after SIGTERM)"
    );
}
