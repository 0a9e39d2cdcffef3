//! Hostile and broken input sent as raw bytes: each gets the proper Kafka answer or a
//! closed connection — never a panic, a hang, or harm to other connections.

mod common;

use std::time::Duration;

use common::*;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, MetadataRequest};
use kafka_protocol::protocol::Decodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn raw(b: &kmirror_broker::RunningBroker) -> TcpStream {
    TcpStream::connect(b.local_addr).await.unwrap()
}

/// Reads until the peer closes; returns the bytes seen. Fails the test on a hang.
async fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("broker did not close the connection")
        .ok();
    out
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// A healthy request on a fresh connection: the broker is still serving.
async fn still_serving(b: &kmirror_broker::RunningBroker) {
    let m = connect(b).await;
    m.send(&MetadataRequest::default().with_topics(None))
        .await
        .unwrap();
}

#[tokio::test]
async fn malformed_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(Some(dir.path()));
    config.max_frame_bytes = 1024 * 1024;
    let b = kmirror_broker::start(config).await.unwrap();
    let bystander = connect(&b).await;

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("frame shorter than a header", frame(&[0, 3, 0])),
        (
            "unknown API key",
            frame(&[0x7f, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]),
        ),
        // Metadata v99.
        (
            "unsupported version",
            frame(&[0, 3, 0, 99, 0, 0, 0, 1, 0, 0]),
        ),
        // An API the broker does not implement (EndTxn, key 26).
        ("unimplemented API", frame(&[0, 26, 0, 1, 0, 0, 0, 1, 0, 0])),
        // Metadata v12 header followed by garbage.
        (
            "garbage body",
            frame(&[
                0, 3, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff,
            ]),
        ),
        // Length prefix over the limit: refused before the body is read.
        (
            "oversized frame",
            (64 * 1024 * 1024i32).to_be_bytes().to_vec(),
        ),
        ("negative length", (-5i32).to_be_bytes().to_vec()),
    ];
    // A body claiming a huge array (Metadata v0 with 2^31-1 topics): must not allocate it.
    let mut huge = vec![0, 3, 0, 0, 0, 0, 0, 9, 0xff, 0xff];
    huge.extend_from_slice(&i32::MAX.to_be_bytes());
    cases.push(("huge array count", frame(&huge)));
    for (what, bytes) in cases {
        let mut s = raw(&b).await;
        s.write_all(&bytes).await.unwrap();
        let _ = read_until_closed(&mut s).await;
        still_serving(&b).await;
        // The bystander's connection was not harmed.
        bystander
            .send(&MetadataRequest::default().with_topics(None))
            .await
            .unwrap_or_else(|e| panic!("after {what}: {e}"));
    }
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn truncated_request_then_eof_is_handled() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path()).await;
    let mut s = raw(&b).await;
    // Claims 100 bytes, sends 10, then half-closes.
    s.write_all(&100i32.to_be_bytes()).await.unwrap();
    s.write_all(&[0, 3, 0, 1, 0, 0, 0, 1, 0, 0]).await.unwrap();
    s.shutdown().await.unwrap();
    let _ = read_until_closed(&mut s).await;
    still_serving(&b).await;
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn api_versions_at_an_unknown_version_gets_the_kip511_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path()).await;
    let mut s = raw(&b).await;
    // ApiVersions v127, header v2 (client id null, no tags), body unknown.
    s.write_all(&frame(&[
        0, 18, 0, 127, 0, 0, 0, 42, 0xff, 0xff, 0, 1, 2, 3,
    ]))
    .await
    .unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.unwrap();
    assert_eq!(&body[..4], &42i32.to_be_bytes());
    let mut rest = bytes::Bytes::from(body[4..].to_vec());
    let resp = ApiVersionsResponse::decode(&mut rest, 0).unwrap();
    assert_eq!(resp.error_code, 35);
    assert_eq!(resp.api_keys.len(), 1);
    assert_eq!(resp.api_keys[0].api_key, 18);
    assert!(resp.api_keys[0].max_version >= 3);
    // The connection stays usable: a v0 request now works.
    let req = kmirror_wire::frame::encode_request(
        43,
        0,
        &kafka_protocol::protocol::StrBytes::from_static_str("raw"),
        &ApiVersionsRequest::default(),
    )
    .unwrap();
    s.write_all(&frame(&req)).await.unwrap();
    s.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.unwrap();
    let mut rest = bytes::Bytes::from(body[4..].to_vec());
    let resp = ApiVersionsResponse::decode(&mut rest, 0).unwrap();
    assert_eq!(resp.error_code, 0);
    assert!(resp.api_keys.len() > 5);
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn connection_limit_refuses_extra_connections() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(Some(dir.path()));
    config.max_connections = 2;
    let b = kmirror_broker::start(config).await.unwrap();
    let m1 = connect(&b).await;
    let m2 = connect(&b).await;
    let mut third = raw(&b).await;
    let _ = read_until_closed(&mut third).await;
    m1.send(&MetadataRequest::default().with_topics(None))
        .await
        .unwrap();
    drop(m2);
    // A freed slot is usable again (the permit is released when the task ends).
    let mut ok = false;
    for _ in 0..50 {
        if let Ok(m) = kmirror_wire::messenger::Messenger::connect(
            &b.local_addr.to_string(),
            Default::default(),
        )
        .await
        {
            ok = m
                .send(&MetadataRequest::default().with_topics(None))
                .await
                .is_ok();
            if ok {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "a slot freed by a closed connection was not reused");
    b.shutdown().await.unwrap();
}

/// One zstd batch claiming one record whose records section decompresses to 129 MiB of
/// zeros: past the 128 MiB cap, so refused, but only once decompressed that far.
fn decompression_bomb() -> bytes::Bytes {
    use kmirror_wire::batch::{attributes, update_crc, BatchHeader};
    let records = zstd::bulk::compress(&vec![0u8; 129 << 20], 1).unwrap();
    let mut out = Vec::new();
    BatchHeader {
        base_offset: 0,
        partition_leader_epoch: -1,
        attributes: attributes(4, false, false),
        last_offset_delta: 0,
        base_timestamp: 1_000,
        max_timestamp: 1_000,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        record_count: 1,
    }
    .write(&mut out, records.len());
    out.extend_from_slice(&records);
    update_crc(&mut out);
    out.into()
}

// One runtime thread for the broker and the test alike: a handler that holds it up
// holds up everything, as two such requests would on a 2-core broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_produce_of_decompression_bombs_does_not_hold_up_other_connections() {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::ProduceRequest;
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path()).await;
    let m = connect(&b).await;
    let partitions = 40;
    create_topic(&m, "bombs", partitions).await;
    let bomb = decompression_bomb();
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("bombs"))
            .with_partition_data(
                (0..partitions)
                    .map(|p| {
                        PartitionProduceData::default()
                            .with_index(p)
                            .with_records(Some(bomb.clone()))
                    })
                    .collect(),
            )]);
    // Decompressing 40 x 128 MiB takes seconds; meanwhile another connection is served.
    let bombing = tokio::spawn(async move { m.send_at(&req, 9).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let other = connect(&b).await;
    let (versions, _) = other
        .send(&kmirror_wire::messenger::api_versions_request())
        .await
        .unwrap();
    assert_eq!(versions.error_code, 0);
    assert!(
        !bombing.is_finished(),
        "the other connection was served only after the bombs"
    );
    let answer = bombing.await.unwrap().unwrap();
    let codes: Vec<i16> = answer.responses[0]
        .partition_responses
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, vec![87; partitions as usize], "INVALID_RECORD is 87");
}

/// Reads one response frame; returns its correlation id.
async fn read_correlation_id(s: &mut TcpStream) -> i32 {
    let mut len = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut len))
        .await
        .expect("no response")
        .expect("connection closed instead of a response");
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.unwrap();
    i32::from_be_bytes(body[..4].try_into().unwrap())
}

/// A request header v1: API key, version, correlation id 7, client id null.
fn header_v1(api_key: i16, version: i16) -> Vec<u8> {
    let mut h = api_key.to_be_bytes().to_vec();
    h.extend_from_slice(&version.to_be_bytes());
    h.extend_from_slice(&7i32.to_be_bytes());
    h.extend_from_slice(&[0xff, 0xff]);
    h
}

#[tokio::test]
async fn a_null_the_schema_forbids_at_the_version_closes_the_connection_as_in_kafka() {
    // Kafka's generated read refuses these ("non-nullable field topics was serialized as
    // null"): the request does not parse and the connection closes, with no answer.
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path()).await;
    let null_array = [0xffu8, 0xff, 0xff, 0xff];
    let null_string = [0xffu8, 0xff];
    let group_g = [0u8, 1, b'g'];
    let one_topic_named_null: Vec<u8> = [&[0u8, 0, 0, 1][..], &null_string].concat();
    // (what, request body, answered): where the schema allows the null, it means "all".
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "Metadata v0, topics null",
            [header_v1(3, 0), null_array.to_vec()].concat(),
            false,
        ),
        (
            "Metadata v1, a topic named null",
            [header_v1(3, 1), one_topic_named_null].concat(),
            false,
        ),
        (
            "OffsetFetch v1, topics null",
            [header_v1(9, 1), group_g.to_vec(), null_array.to_vec()].concat(),
            false,
        ),
        (
            "Metadata v1, topics null",
            [header_v1(3, 1), null_array.to_vec()].concat(),
            true,
        ),
        (
            "OffsetFetch v2, topics null",
            [header_v1(9, 2), group_g.to_vec(), null_array.to_vec()].concat(),
            true,
        ),
    ];
    for (what, body, answered) in cases {
        let mut s = raw(&b).await;
        s.write_all(&frame(&body)).await.unwrap();
        if answered {
            assert_eq!(read_correlation_id(&mut s).await, 7, "{what}");
        } else {
            let seen = read_until_closed(&mut s).await;
            assert!(seen.is_empty(), "{what}: answered {} bytes", seen.len());
        }
    }
    b.shutdown().await.unwrap();
}
