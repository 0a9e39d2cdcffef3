//! Helpers for the Produce rows: [`Spec`] builds a v2 batch byte by byte so that a row can
//! break exactly one rule; the rest create topics, send requests and look at what was
//! stored.

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{self as cmpr, Compressor, Decompressor};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, FindCoordinatorRequest, ProduceRequest};
use kafka_protocol::protocol::StrBytes;
use kmirror_wire::batch::{self, put_varlong as varint, BatchHeader, BatchView};

use crate::common;
use crate::harness::{code_or_closed, Ctx, Got};

pub const LZ4: i16 = 3;
pub const ZSTD: i16 = 4;
const OK: Got = Got::Code(0);

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn field(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => varint(out, -1),
        Some(b) => {
            varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// One v2 batch, every header field and record property chosen by the row.
#[derive(Clone)]
pub struct Spec {
    pub records: i32,
    /// Header `recordCount` (default: `records`) and `lastOffsetDelta` (default: count-1).
    pub count: Option<i32>,
    pub last_offset_delta: Option<i32>,
    pub offset_deltas: fn(i32) -> i32,
    pub timestamp_ms: i64,
    pub key: bool,
    /// Two headers with the same key on every record.
    pub duplicate_headers: bool,
    pub codec: i16,
    pub log_append_time: bool,
    pub transactional: bool,
    pub producer_id: i64,
    pub base_sequence: i32,
    pub base_offset: i64,
    pub magic: u8,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            records: 3,
            count: None,
            last_offset_delta: None,
            offset_deltas: |i| i,
            timestamp_ms: now_ms(),
            key: true,
            duplicate_headers: false,
            codec: 0,
            log_append_time: false,
            transactional: false,
            producer_id: -1,
            base_sequence: -1,
            base_offset: 0,
            magic: 2,
        }
    }
}

impl Spec {
    fn raw_records(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..self.records {
            let mut body = vec![0u8];
            varint(&mut body, i64::from(i)); // timestamp delta
            varint(&mut body, i64::from((self.offset_deltas)(i)));
            field(&mut body, self.key.then_some(format!("k{i}").as_bytes()));
            field(&mut body, Some(format!("value-{i}").as_bytes()));
            let headers: &[(&[u8], &[u8])] = if self.duplicate_headers {
                &[(b"h", b"first"), (b"h", b"second")]
            } else {
                &[]
            };
            varint(&mut body, headers.len() as i64);
            for (k, v) in headers {
                field(&mut body, Some(k));
                field(&mut body, Some(v));
            }
            varint(&mut out, body.len() as i64);
            out.extend_from_slice(&body);
        }
        out
    }

    pub fn bytes(&self) -> Bytes {
        let raw = self.raw_records();
        let mut compressed = BytesMut::new();
        let fill = |tmp: &mut BytesMut| {
            tmp.extend_from_slice(&raw);
            Ok(())
        };
        match self.codec {
            0 => compressed.extend_from_slice(&raw),
            LZ4 => cmpr::Lz4::compress(&mut compressed, fill).unwrap(),
            ZSTD => cmpr::Zstd::compress(&mut compressed, fill).unwrap(),
            c => panic!("codec {c} not used by these rows"),
        }
        let count = self.count.unwrap_or(self.records);
        let header = BatchHeader {
            base_offset: self.base_offset,
            partition_leader_epoch: -1,
            attributes: batch::attributes(self.codec, self.log_append_time, self.transactional),
            last_offset_delta: self.last_offset_delta.unwrap_or(count - 1),
            base_timestamp: self.timestamp_ms,
            max_timestamp: self.timestamp_ms + i64::from(self.records) - 1,
            producer_id: self.producer_id,
            producer_epoch: if self.producer_id >= 0 { 0 } else { -1 },
            base_sequence: self.base_sequence,
            record_count: count,
        };
        let mut out = Vec::new();
        header.write(&mut out, compressed.len());
        out.extend_from_slice(&compressed);
        out[16] = self.magic;
        batch::update_crc(&mut out);
        out.into()
    }
}

pub async fn create(ctx: &Ctx, configs: &[(&'static str, &'static str)]) -> String {
    let topic = ctx.topic("t");
    let configs = common::topic_configs(configs);
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(common::name(&topic))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(configs)]);
    let (resp, _) = ctx.m.send(&req).await.expect("create topic");
    assert_eq!(
        resp.topics[0].error_code, 0,
        "{:?}",
        resp.topics[0].error_message
    );
    topic
}

pub async fn send(ctx: &Ctx, req: &ProduceRequest, version: i16) -> Got {
    code_or_closed(ctx.m.send_at(req, version).await, |r| {
        r.responses[0].partition_responses[0].error_code
    })
}

/// Produces `records` to a fresh topic with `configs` at `version` with acks=all.
pub async fn produce_to(
    ctx: &Ctx,
    configs: &[(&'static str, &'static str)],
    records: Bytes,
    version: i16,
) -> Got {
    let topic = create(ctx, configs).await;
    send(
        ctx,
        &common::produce_request(&topic, 0, records, -1),
        version,
    )
    .await
}

pub async fn produce_at(ctx: &Ctx, records: Bytes, version: i16) -> Got {
    produce_to(ctx, &[], records, version).await
}

/// Produces `spec` to a fresh topic with `configs`; if accepted, fetches the stored batch
/// and answers `Code(0)` only if `check` holds for it (else `Code(-1)`).
pub async fn stored(
    ctx: &Ctx,
    configs: &[(&'static str, &'static str)],
    spec: Spec,
    check: fn(&BatchView<'_>, &Spec) -> bool,
) -> Got {
    let topic = create(ctx, configs).await;
    let got = send(
        ctx,
        &common::produce_request(&topic, 0, spec.bytes(), -1),
        9,
    )
    .await;
    if got != OK {
        return got;
    }
    let p = common::fetch(&ctx.m, &topic, 0, 0).await;
    let bytes = p.records.unwrap_or_default();
    let ok = BatchView::parse(&bytes, 0).is_ok_and(|b| b.verify_crc().is_ok() && check(&b, &spec));
    Got::Code(if ok { 0 } else { -1 })
}

/// The decoded records of a stored batch equal the spec's (offsets 0.., keys, values and
/// both duplicate headers).
pub fn same_records(b: &BatchView<'_>, spec: &Spec) -> bool {
    let mut bytes = Bytes::copy_from_slice(b.as_bytes());
    let Ok(set) = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes) else {
        return false;
    };
    set.records.len() == spec.records as usize
        && set.records.iter().enumerate().all(|(i, r)| {
            r.offset == i as i64
                && r.value.as_deref() == Some(format!("value-{i}").as_bytes())
                && r.key.as_deref() == Some(format!("k{i}").as_bytes())
        })
}

pub fn spec(f: impl FnOnce(&mut Spec)) -> Spec {
    let mut s = Spec::default();
    f(&mut s);
    s
}

/// Sets one dynamic broker config (resource type 4, broker "0").
pub async fn alter_broker(ctx: &Ctx, name: &'static str, value: &'static str) {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let req =
        kafka_protocol::messages::IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(StrBytes::from_static_str("0"))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(StrBytes::from_static_str(name))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_static_str(value)))]),
        ]);
    let (resp, _) = ctx.m.send(&req).await.expect("alter broker config");
    assert_eq!(
        resp.responses[0].error_code, 0,
        "{:?}",
        resp.responses[0].error_message
    );
}

/// Both `h` headers of every record are still in the stored (uncompressed) bytes.
pub fn dup_headers_kept(b: &BatchView<'_>) -> bool {
    let mut bytes = Bytes::copy_from_slice(b.as_bytes());
    let Ok(set) = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes) else {
        return false;
    };
    // kafka-protocol's Record keeps one value per header key (the later one); the raw
    // records section must still hold both values.
    let raw = if b.compression() == 0 {
        b.records_bytes().to_vec()
    } else {
        let mut input = Bytes::copy_from_slice(b.records_bytes());
        cmpr::Lz4::decompress(&mut input, |buf| Ok(buf.to_vec())).unwrap_or_default()
    };
    let count = |needle: &[u8]| raw.windows(needle.len()).filter(|w| *w == needle).count();
    !set.records.is_empty()
        && count(b"first") == set.records.len()
        && count(b"second") == set.records.len()
}

/// Sends an acks=0 produce, then a Metadata request on the same connection.
pub async fn acks_zero(ctx: &Ctx, topic: &str) -> Got {
    let req = common::produce_request(topic, 0, Spec::default().bytes(), 0);
    if ctx.m.send_no_response(&req, 9).await.is_err() {
        return Got::Closed;
    }
    let md = kafka_protocol::messages::MetadataRequest::default().with_topics(Some(vec![]));
    code_or_closed(ctx.m.send_at(&md, 9).await, |_| 0)
}

pub async fn find_coordinator(ctx: &Ctx, key_type: i8, version: i16) -> Got {
    let key = StrBytes::from_static_str("some-id");
    let req = FindCoordinatorRequest::default().with_key_type(key_type);
    let req = if version >= 4 {
        req.with_coordinator_keys(vec![key])
    } else {
        req.with_key(key)
    };
    code_or_closed(
        crate::groups::find_coordinator_at(&ctx.m, &req, version).await,
        |r| {
            if version >= 4 {
                r.coordinators[0].error_code
            } else {
                r.error_code
            }
        },
    )
}

pub async fn by_id(ctx: &Ctx, known: bool) -> Got {
    let topic = create(ctx, &[]).await;
    // Look the id up on another connection, as a client's metadata refresh would.
    let m = ctx.connect().await;
    let md = kafka_protocol::messages::MetadataRequest::default().with_topics(None);
    let (md, _) = m.send(&md).await.expect("metadata");
    let id = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
        .map(|t| t.topic_id)
        .expect("topic listed");
    let id = if known {
        id
    } else {
        uuid::Uuid::from_u128(0x1234)
    };
    let mut req = common::produce_request(&topic, 0, Spec::default().bytes(), -1);
    req.topic_data[0].topic_id = id;
    send(ctx, &req, 13).await
}
