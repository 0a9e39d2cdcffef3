//! Produce rules (LogValidator, UnifiedLog, ProduceRequest, KafkaApis.handleProduceRequest,
//! ReplicaManager.appendRecords). Batches are built byte by byte ([`Spec`]) so that each
//! row can break exactly one rule.

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{self as cmpr, Compressor, Decompressor};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{CreateTopicsRequest, FindCoordinatorRequest, ProduceRequest};
use kafka_protocol::protocol::StrBytes;
use kmirror_wire::batch::{self, put_varlong as varint, BatchHeader, BatchView};

use crate::common;
use crate::harness::{code_or_closed, Ctx, Got, Row};

const INVALID_RECORD: Got = Got::Code(87);
const INVALID_TIMESTAMP: Got = Got::Code(32);
const OK: Got = Got::Code(0);
const LZ4: i16 = 3;
const ZSTD: i16 = 4;

fn now_ms() -> i64 {
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
struct Spec {
    records: i32,
    /// Header `recordCount` (default: `records`) and `lastOffsetDelta` (default: count-1).
    count: Option<i32>,
    last_offset_delta: Option<i32>,
    offset_deltas: fn(i32) -> i32,
    timestamp_ms: i64,
    key: bool,
    /// Two headers with the same key on every record.
    duplicate_headers: bool,
    codec: i16,
    log_append_time: bool,
    transactional: bool,
    producer_id: i64,
    base_sequence: i32,
    base_offset: i64,
    magic: u8,
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

    fn bytes(&self) -> Bytes {
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

async fn create(ctx: &Ctx, configs: &[(&'static str, &'static str)]) -> String {
    let topic = ctx.topic("t");
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str(k))
                .with_value(Some(StrBytes::from_static_str(v)))
        })
        .collect();
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

async fn send(ctx: &Ctx, req: &ProduceRequest, version: i16) -> Got {
    code_or_closed(ctx.m.send_at(req, version).await, |r| {
        r.responses[0].partition_responses[0].error_code
    })
}

/// Produces `records` to a fresh topic with `configs` at `version` with acks=all.
async fn produce_to(
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

async fn produce_at(ctx: &Ctx, records: Bytes, version: i16) -> Got {
    produce_to(ctx, &[], records, version).await
}

/// Produces `spec` to a fresh topic with `configs`; if accepted, fetches the stored batch
/// and answers `Code(0)` only if `check` holds for it (else `Code(-1)`).
async fn stored(
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
fn same_records(b: &BatchView<'_>, spec: &Spec) -> bool {
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

fn spec(f: impl FnOnce(&mut Spec)) -> Spec {
    let mut s = Spec::default();
    f(&mut s);
    s
}

macro_rules! row {
    ($rule:expr, $kafka:expr, $expect:expr, |$ctx:ident| $body:expr) => {
        row!($rule, $kafka, $expect, None, |$ctx| $body)
    };
    ($rule:expr, $kafka:expr, $expect:expr, $config:expr, |$ctx:ident| $body:expr) => {
        Row {
            rule: $rule,
            kafka: $kafka,
            expect: $expect,
            config: $config,
            run: |$ctx| Box::pin(async move { $body }),
        }
    };
}

pub fn rows() -> Vec<Row> {
    let mut rows = batch_rows();
    rows.extend(record_rows());
    rows.extend(request_rows());
    rows
}

fn batch_rows() -> Vec<Row> {
    vec![
        row!(
            "Produce: one v2 batch with base offset 0 is accepted",
            "UnifiedLog.analyzeAndValidateRecords",
            OK,
            |ctx| produce_at(&ctx, common::batch(3, 1_000), 9).await
        ),
        row!(
            "Produce v3+: two batches for one partition",
            "ProduceRequest.validateRecords",
            INVALID_RECORD,
            |ctx| produce_at(
                &ctx,
                [Spec::default().bytes(), Spec::default().bytes()]
                    .concat()
                    .into(),
                9
            )
            .await
        ),
        row!(
            "Produce v3+: magic 1 batch",
            "ProduceRequest.validateRecords",
            INVALID_RECORD,
            |ctx| produce_at(&ctx, spec(|s| s.magic = 1).bytes(), 9).await
        ),
        row!(
            "Produce: client batch with base offset 5",
            "UnifiedLog.analyzeAndValidateRecords",
            INVALID_RECORD,
            |ctx| produce_at(&ctx, spec(|s| s.base_offset = 5).bytes(), 9).await
        ),
        row!(
            "Produce: a truncated partial batch after a whole one is trimmed",
            "UnifiedLog.trimInvalidBytes",
            OK,
            |ctx| {
                let whole = Spec::default().bytes();
                produce_at(&ctx, [whole.clone(), whole.slice(..30)].concat().into(), 9).await
            }
        ),
        row!(
            "Produce: only a truncated batch",
            "ProduceRequest.validateRecords",
            INVALID_RECORD,
            |ctx| {
                let b = Spec::default().bytes();
                produce_at(&ctx, b.slice(..b.len() - 3), 9).await
            }
        ),
        row!(
            "Produce: header count 0",
            "LogValidator.validateBatch",
            INVALID_RECORD,
            |ctx| produce_at(&ctx, spec(|s| s.count = Some(0)).bytes(), 9).await
        ),
        row!(
            "Produce: count and lastOffsetDelta disagree",
            "LogValidator.validateBatch",
            INVALID_RECORD,
            |ctx| produce_at(&ctx, spec(|s| s.last_offset_delta = Some(5)).bytes(), 9).await
        ),
        row!(
            "Produce: header count above the records in the batch",
            "DefaultRecordBatch.RecordIterator",
            INVALID_RECORD,
            |ctx| produce_at(&ctx, spec(|s| s.count = Some(4)).bytes(), 9).await
        ),
        row!(
            "Produce: lz4 batch whose count is below its records",
            "LogValidator.validateMessagesAndAssignOffsetsCompressed",
            INVALID_RECORD,
            |ctx| produce_at(
                &ctx,
                spec(|s| {
                    s.codec = LZ4;
                    s.count = Some(2)
                })
                .bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: lz4 batch with matching count",
            "LogValidator.validateMessagesAndAssignOffsetsCompressed",
            OK,
            |ctx| produce_at(&ctx, spec(|s| s.codec = LZ4).bytes(), 9).await
        ),
        row!(
            "Produce: lz4 inner offsets 0,2,4 are rewritten to 0,1,2, not refused",
            "LogValidator.validateMessagesAndAssignOffsetsCompressed",
            OK,
            |ctx| stored(
                &ctx,
                &[],
                spec(|s| {
                    s.codec = LZ4;
                    s.offset_deltas = |i| 2 * i
                }),
                same_records
            )
            .await
        ),
        row!(
            "Produce: producer id with baseSequence -1",
            "LogValidator.validateBatch",
            INVALID_RECORD,
            |ctx| produce_at(&ctx, spec(|s| s.producer_id = 1_000).bytes(), 9).await
        ),
        row!(
            "Produce: producer id with baseSequence 0",
            "LogValidator.validateBatch",
            OK,
            |ctx| produce_at(
                &ctx,
                spec(|s| {
                    s.producer_id = 1_000;
                    s.base_sequence = 0
                })
                .bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce v6: zstd batch",
            "ProduceRequest.validateRecords",
            Got::Code(76),
            |ctx| produce_at(&ctx, spec(|s| s.codec = ZSTD).bytes(), 6).await
        ),
        row!(
            "Produce v7: zstd batch",
            "ProduceRequest.validateRecords",
            OK,
            |ctx| produce_at(&ctx, spec(|s| s.codec = ZSTD).bytes(), 7).await
        ),
    ]
}

fn record_rows() -> Vec<Row> {
    vec![
        row!(
            "Produce: CreateTime 1 min ahead after IncrementalAlterConfigs sets the broker's log.message.timestamp.after.max.ms=1000",
            "LogValidator.validateTimestamp",
            INVALID_TIMESTAMP,
            Some(|_| {}),
            |ctx| {
                alter_broker(&ctx, "log.message.timestamp.after.max.ms", "1000").await;
                produce_at(&ctx, spec(|s| s.timestamp_ms = now_ms() + 60_000).bytes(), 9).await
            }
        ),
        row!(
            "Produce: CreateTime 2 h ahead (after.max.ms default 1 h, KIP-1030)",
            "LogValidator.validateTimestamp",
            INVALID_TIMESTAMP,
            |ctx| produce_at(
                &ctx,
                spec(|s| s.timestamp_ms = now_ms() + 7_200_000).bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: CreateTime 30 min ahead",
            "LogValidator.validateTimestamp",
            OK,
            |ctx| produce_at(
                &ctx,
                spec(|s| s.timestamp_ms = now_ms() + 1_800_000).bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: CreateTime 1 h old, topic before.max.ms=60000",
            "LogValidator.validateTimestamp",
            INVALID_TIMESTAMP,
            |ctx| produce_to(
                &ctx,
                &[("message.timestamp.before.max.ms", "60000")],
                spec(|s| s.timestamp_ms = now_ms() - 3_600_000).bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: CreateTime now, topic before.max.ms=60000",
            "LogValidator.validateTimestamp",
            OK,
            |ctx| produce_to(
                &ctx,
                &[("message.timestamp.before.max.ms", "60000")],
                Spec::default().bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: CreateTime 1 min ahead, broker after.max.ms=1000",
            "LogValidator.validateTimestamp",
            INVALID_TIMESTAMP,
            Some(|c| c.timestamp_after_max_ms = 1_000),
            |ctx| produce_at(
                &ctx,
                spec(|s| s.timestamp_ms = now_ms() + 60_000).bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: client LogAppendTime batch to a LogAppendTime topic",
            "LogValidator.validateTimestamp",
            INVALID_TIMESTAMP,
            |ctx| produce_to(
                &ctx,
                &[("message.timestamp.type", "LogAppendTime")],
                spec(|s| s.log_append_time = true).bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: CreateTime batch to a LogAppendTime topic is stamped",
            "LogValidator.assignOffsetsNonCompressed",
            OK,
            |ctx| stored(
                &ctx,
                &[("message.timestamp.type", "LogAppendTime")],
                spec(|s| s.timestamp_ms = 1_000),
                |b, _| b.is_log_append_time() && b.max_timestamp() > 1_000_000
            )
            .await
        ),
        row!(
            "Produce: client LogAppendTime batch to a CreateTime topic becomes CreateTime",
            "DefaultRecordBatch.setMaxTimestamp",
            OK,
            |ctx| stored(&ctx, &[], spec(|s| s.log_append_time = true), |b, _| !b
                .is_log_append_time())
            .await
        ),
        row!(
            "Produce: record without key to a compacted topic",
            "LogValidator.validateKey",
            INVALID_RECORD,
            |ctx| produce_to(
                &ctx,
                &[("cleanup.policy", "compact")],
                spec(|s| s.key = false).bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: keyed records to a compacted topic",
            "LogValidator.validateKey",
            OK,
            |ctx| produce_to(
                &ctx,
                &[("cleanup.policy", "delete,compact")],
                Spec::default().bytes(),
                9
            )
            .await
        ),
        row!(
            "Produce: compression.type=lz4 recompresses, duplicate header keys survive",
            "UnifiedLog.append / BrokerCompressionType",
            OK,
            |ctx| stored(
                &ctx,
                &[("compression.type", "lz4")],
                spec(|s| s.duplicate_headers = true),
                |b, s| b.compression() == LZ4 && same_records(b, s) && dup_headers_kept(b)
            )
            .await
        ),
        row!(
            "Produce: compression.type=uncompressed stores lz4 batches uncompressed",
            "UnifiedLog.append / BrokerCompressionType",
            OK,
            |ctx| stored(
                &ctx,
                &[("compression.type", "uncompressed")],
                spec(|s| {
                    s.codec = LZ4;
                    s.duplicate_headers = true
                }),
                |b, s| b.compression() == 0 && same_records(b, s) && dup_headers_kept(b)
            )
            .await
        ),
        row!(
            "Produce: compression.type=producer keeps the batch as sent",
            "BrokerCompressionType.targetCompression",
            OK,
            |ctx| stored(&ctx, &[], spec(|s| s.codec = LZ4), |b, s| b.records_bytes()
                == &s.bytes()[61..])
            .await
        ),
    ]
}

/// Sets one dynamic broker config (resource type 4, broker "0").
async fn alter_broker(ctx: &Ctx, name: &'static str, value: &'static str) {
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
fn dup_headers_kept(b: &BatchView<'_>) -> bool {
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

fn request_rows() -> Vec<Row> {
    vec![
        row!(
            "Produce: acks=2",
            "ReplicaManager.appendRecords",
            Got::Code(21),
            |ctx| {
                let t = create(&ctx, &[]).await;
                send(
                    &ctx,
                    &common::produce_request(&t, 0, Spec::default().bytes(), 2),
                    9,
                )
                .await
            }
        ),
        row!(
            "Produce: acks=1",
            "ReplicaManager.appendRecords",
            OK,
            |ctx| {
                let t = create(&ctx, &[]).await;
                send(
                    &ctx,
                    &common::produce_request(&t, 0, Spec::default().bytes(), 1),
                    9,
                )
                .await
            }
        ),
        row!(
            "Produce acks=0 that fails closes the connection",
            "KafkaApis.handleProduceRequest",
            Got::Closed,
            |ctx| acks_zero(&ctx, "missing-topic").await
        ),
        row!(
            "Produce acks=0 that succeeds keeps the connection",
            "KafkaApis.handleProduceRequest",
            OK,
            |ctx| {
                let t = create(&ctx, &[]).await;
                acks_zero(&ctx, &t).await
            }
        ),
        row!(
            "Produce: transactional batch without a transactional id",
            "KafkaApis.handleProduceRequest",
            Got::Code(53),
            |ctx| produce_at(
                &ctx,
                spec(|s| {
                    s.transactional = true;
                    s.producer_id = 7;
                    s.base_sequence = 0
                })
                .bytes(),
                9
            )
            .await
        ),
        row!(
            "FindCoordinator v3: key type TRANSACTION fails fatally",
            "KafkaApis.handleFindCoordinatorRequest",
            Got::Code(53),
            |ctx| find_coordinator(&ctx, 1, 3).await
        ),
        row!(
            "FindCoordinator v4: key type TRANSACTION fails fatally",
            "KafkaApis.handleFindCoordinatorRequest",
            Got::Code(53),
            |ctx| find_coordinator(&ctx, 1, 4).await
        ),
        row!(
            "FindCoordinator v4: key type GROUP",
            "KafkaApis.handleFindCoordinatorRequest",
            OK,
            |ctx| find_coordinator(&ctx, 0, 4).await
        ),
        row!(
            "Produce v13: topic by id",
            "KafkaApis.handleProduceRequest",
            OK,
            |ctx| by_id(&ctx, true).await
        ),
        row!(
            "Produce v13: unknown topic id",
            "KafkaApis.handleProduceRequest",
            Got::Code(100),
            |ctx| by_id(&ctx, false).await
        ),
    ]
}

/// Sends an acks=0 produce, then a Metadata request on the same connection.
async fn acks_zero(ctx: &Ctx, topic: &str) -> Got {
    let req = common::produce_request(topic, 0, Spec::default().bytes(), 0);
    if ctx.m.send_no_response(&req, 9).await.is_err() {
        return Got::Closed;
    }
    let md = kafka_protocol::messages::MetadataRequest::default().with_topics(Some(vec![]));
    code_or_closed(ctx.m.send_at(&md, 9).await, |_| 0)
}

async fn find_coordinator(ctx: &Ctx, key_type: i8, version: i16) -> Got {
    let key = StrBytes::from_static_str("some-id");
    let req = FindCoordinatorRequest::default().with_key_type(key_type);
    let req = if version >= 4 {
        req.with_coordinator_keys(vec![key])
    } else {
        req.with_key(key)
    };
    code_or_closed(ctx.m.send_at(&req, version).await, |r| {
        if version >= 4 {
            r.coordinators[0].error_code
        } else {
            r.error_code
        }
    })
}

async fn by_id(ctx: &Ctx, known: bool) -> Got {
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
