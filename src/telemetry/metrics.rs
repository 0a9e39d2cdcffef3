//! The flows' metrics through the OpenTelemetry SDK, read by a Prometheus exporter into a
//! registry that `GET /metrics` encodes in Prometheus text format. Counters and gauges are
//! observed from [`super::stats`] at scrape time (nothing on the hot path). The replication
//! latency histogram of `/metrics` is read at scrape time from each flow's hdrhistogram
//! (which `/status` reads percentiles from), recorded per acknowledged batch.
//!
//! With `telemetry.otlp`, the same instruments are also pushed over OTLP/HTTP (protobuf)
//! every `interval`, through hyper on the daemon's runtime, from a provider of their own;
//! there the latency histogram is an SDK instrument, recorded per batch only then (it
//! cost 2% of the daemon's CPU on small batches).
//!
//! Latency buckets: from 1 ms to 1 hour, each bound 25% above the previous one (a
//! percentile read from them is within 25% of the truth); `/status` reads exact
//! percentiles (1%) from each flow's hdrhistogram.

use std::collections::BTreeMap;
use std::sync::Arc;

use opentelemetry::metrics::{Histogram, Meter, MeterProvider};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, TextEncoder};

use super::stats::{now_ms, FlowStats, Flows};

/// The name and description of the latency histogram.
const LATENCY: (&str, &str) = (
    "kmirror_replication_latency_seconds",
    "Target acknowledgement time minus the record timestamp, per batch (its newest record)",
);

/// The metrics of one process: the SDK's providers and the registry `/metrics` reads.
pub struct Metrics {
    registry: prometheus::Registry,
    /// The Prometheus exporter's provider; it owns its instruments and reader.
    provider: SdkMeterProvider,
    /// With `telemetry.otlp`: the OTLP push's provider and its meter.
    otlp: Option<(SdkMeterProvider, Meter)>,
    /// The flows exported now: series of flows removed since are left out ([`Metrics::encode`]).
    flows: Arc<Flows>,
}

/// Latency bucket bounds in seconds: 1 ms to 1 h, each 25% above the one before.
fn latency_bounds() -> Vec<f64> {
    std::iter::successors(Some(0.001_f64), |b| Some(b * 1.25))
        .take_while(|b| *b <= 3600.0)
        .collect()
}

/// The OTLP push reader for `otlp` (its endpoint and interval).
fn otlp_reader(
    otlp: &crate::config::Otlp,
) -> Result<impl opentelemetry_sdk::metrics::reader::MetricReader, String> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let client = opentelemetry_http::hyper::HyperClient::new(
        hyper_util::client::legacy::connect::HttpConnector::new(),
        std::time::Duration::from_secs(10),
        None,
    );
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(otlp.endpoint.clone())
        .build()
        .map_err(|e| format!("cannot build the OTLP exporter for {}: {e}", otlp.endpoint))?;
    Ok(
        opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .with_interval(otlp.interval)
        .build(),
    )
}

impl Metrics {
    pub fn new(flows: Arc<Flows>, otlp: Option<&crate::config::Otlp>) -> Result<Self, String> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_target_info()
            .scope_info_enabled(false)
            .without_units()
            .build()
            .map_err(|e| format!("cannot build the Prometheus exporter: {e}"))?;
        let provider = SdkMeterProvider::builder().with_reader(exporter).build();
        register(&provider.meter("kmirror"), flows.clone());
        let otlp = match otlp {
            Some(otlp) => {
                let pushed = SdkMeterProvider::builder()
                    .with_reader(otlp_reader(otlp)?)
                    .build();
                let meter = pushed.meter("kmirror");
                register(&meter, flows.clone());
                tracing::info!(endpoint = %otlp.endpoint, interval_ms = otlp.interval.as_millis() as u64, "Pushing metrics over OTLP/HTTP.");
                Some((pushed, meter))
            }
            None => None,
        };
        Ok(Self {
            registry,
            provider,
            otlp,
            flows,
        })
    }

    /// The per-batch replication latency instrument of the OTLP push, which flows record
    /// into; `None` without `telemetry.otlp`.
    pub fn latency(&self) -> Option<Histogram<f64>> {
        let (_, meter) = self.otlp.as_ref()?;
        Some(
            meter
                .f64_histogram(LATENCY.0)
                .with_description(LATENCY.1)
                .with_boundaries(latency_bounds())
                .build(),
        )
    }

    /// Pushes what is left over OTLP and stops the readers.
    pub fn shutdown(&self) {
        let _ = self.provider.shutdown();
        if let Some((pushed, _)) = &self.otlp {
            let _ = pushed.shutdown();
        }
    }

    /// Every metric in Prometheus text format, with the latency histogram of each flow
    /// that has acknowledged a batch.
    pub fn encode(&self) -> Result<String, String> {
        let mut families = self.registry.gather();
        families.push(latency_family(&self.flows.all()));
        families.retain(|f| !f.get_metric().is_empty());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
            .map_err(|e| e.to_string())?;
        String::from_utf8(out).map_err(|e| e.to_string())
    }
}

/// The latency histogram of `flows` (those that have acknowledged a batch), read from
/// their hdrhistograms.
fn latency_family(flows: &[Arc<FlowStats>]) -> prometheus::proto::MetricFamily {
    use prometheus::proto::{Bucket, LabelPair, Metric, MetricFamily, MetricType};
    let bounds_s = latency_bounds();
    let bounds_ms: Vec<f64> = bounds_s.iter().map(|b| b * 1000.0).collect();
    let mut family = MetricFamily::default();
    family.set_name(LATENCY.0.to_string());
    family.set_help(LATENCY.1.to_string());
    family.set_field_type(MetricType::HISTOGRAM);
    let mut metrics = Vec::new();
    for flow in flows {
        let Some((cumulative, count, sum_s)) = flow.latency_buckets(&bounds_ms) else {
            continue;
        };
        let mut histogram = prometheus::proto::Histogram::default();
        histogram.set_sample_count(count);
        histogram.set_sample_sum(sum_s);
        histogram.set_bucket(
            bounds_s
                .iter()
                .zip(cumulative)
                .map(|(bound, n)| {
                    let mut bucket = Bucket::default();
                    bucket.set_upper_bound(*bound);
                    bucket.set_cumulative_count(n);
                    bucket
                })
                .collect(),
        );
        let mut label = LabelPair::default();
        label.set_name("flow".to_string());
        label.set_value(flow.name.clone());
        let mut metric = Metric::from_label(vec![label]);
        metric.set_histogram(histogram);
        metrics.push(metric);
    }
    family.set_metric(metrics);
    family
}

/// The observed instruments; each callback reads the flows at collection time.
fn register(meter: &Meter, flows: Arc<Flows>) {
    per_flow(
        meter,
        &flows,
        (Kind::Counter, "kmirror_mirrored_records"),
        "Records acknowledged by the target",
        FlowStats::records,
    );
    per_flow(
        meter,
        &flows,
        (Kind::Counter, "kmirror_mirrored_bytes"),
        "Record batch bytes acknowledged by the target",
        FlowStats::bytes,
    );
    per_flow(
        meter,
        &flows,
        (Kind::Counter, "kmirror_fetched_bytes"),
        "Record bytes read from the source: above kmirror_mirrored_bytes by what was read twice or left out (aborted transactions, transaction markers)",
        FlowStats::fetched_bytes,
    );
    per_flow(
        meter,
        &flows,
        (Kind::Counter, "kmirror_mirrored_again_records"),
        "Records found on the target past the position stored for their partition: mirrored before an unclean stop and mirrored again (duplicates), or written by another producer",
        FlowStats::mirrored_again_records,
    );
    per_flow(
        meter,
        &flows,
        (Kind::Counter, "kmirror_fetch_requests"),
        "Fetch requests the source answered (Kafka's consumer: fetch-total)",
        FlowStats::fetch_requests,
    );
    by_class(
        meter,
        &flows,
        "kmirror_retries",
        "Produce requests retried, by error class",
        FlowStats::retries,
    );
    by_class(
        meter,
        &flows,
        "kmirror_errors",
        "Errors that stopped a partition, a topic or a flow, and failed discovery rounds, by error class",
        FlowStats::errors,
    );
    per_flow(
        meter,
        &flows,
        (Kind::Gauge, "kmirror_unmirrored_topics"),
        "Topics the flow matches and does not mirror (listed on /status)",
        FlowStats::unmirrored_count,
    );
    per_flow(
        meter,
        &flows,
        (Kind::Gauge, "kmirror_lag_unknown_partitions"),
        "Partitions whose lag is unknown: no Fetch or ListOffsets answered for them yet",
        |f| f.lag_unknown_partitions() as u64,
    );
    let f = flows.clone();
    meter
        .u64_observable_gauge("kmirror_partition_lag_records")
        .with_description("Source last stable offset (the high watermark unless a transaction is open) minus the mirrored position")
        .with_callback(move |o| {
            for flow in f.all() {
                // An unknown lag has no point (absent, not 0).
                for (sp, p) in flow.partitions() {
                    if let Some(lag) = p.lag_records() {
                        o.observe(lag, &partition_attributes(&flow.attribute, &sp));
                    }
                }
            }
        })
        .build();
    let f = flows.clone();
    meter
        .f64_observable_gauge("kmirror_partition_lag_seconds")
        .with_description("Age of the oldest record not mirrored yet; 0 when caught up")
        .with_callback(move |o| {
            let now = now_ms();
            for flow in f.all() {
                for (sp, p) in flow.partitions() {
                    if let Some(age) = p.lag_seconds(now) {
                        o.observe(age, &partition_attributes(&flow.attribute, &sp));
                    }
                }
            }
        })
        .build();
    let f = flows.clone();
    meter
        .f64_observable_counter("kmirror_throttle_wait_seconds")
        .with_description("Time batches waited for the flow's rate limits")
        .with_callback(move |o| {
            for flow in f.all() {
                o.observe(
                    flow.throttle_wait_seconds(),
                    std::slice::from_ref(&flow.attribute),
                );
            }
        })
        .build();
    per_flow(
        meter,
        &flows,
        (Kind::Gauge, "kmirror_in_flight_bytes"),
        "Bytes the flow holds: fetched or reserved, not yet acknowledged",
        FlowStats::in_flight_bytes,
    );
    meter
        .u64_observable_gauge("kmirror_partitions")
        .with_description("Source partitions of the flow, by state")
        .with_callback(move |o| {
            for flow in flows.all() {
                for (state, n) in flow.partition_states() {
                    o.observe(
                        n,
                        &[flow.attribute.clone(), KeyValue::new("state", state.name())],
                    );
                }
            }
        })
        .build();
}

/// Whether a value only grows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// A value per flow.
fn per_flow(
    meter: &Meter,
    flows: &Arc<Flows>,
    (kind, name): (Kind, &'static str),
    description: &'static str,
    read: fn(&FlowStats) -> u64,
) {
    let flows = flows.clone();
    let callback = move |o: &dyn opentelemetry::metrics::AsyncInstrument<u64>| {
        for flow in flows.all() {
            o.observe(read(&flow), std::slice::from_ref(&flow.attribute));
        }
    };
    if kind == Kind::Gauge {
        meter
            .u64_observable_gauge(name)
            .with_description(description)
            .with_callback(callback)
            .build();
    } else {
        meter
            .u64_observable_counter(name)
            .with_description(description)
            .with_callback(callback)
            .build();
    }
}

/// A counter with one value per flow and error class.
fn by_class(
    meter: &Meter,
    flows: &Arc<Flows>,
    name: &'static str,
    description: &'static str,
    read: fn(&FlowStats) -> BTreeMap<&'static str, u64>,
) {
    let flows = flows.clone();
    meter
        .u64_observable_counter(name)
        .with_description(description)
        .with_callback(move |o| {
            for flow in flows.all() {
                for (class, n) in read(&flow) {
                    o.observe(n, &[flow.attribute.clone(), KeyValue::new("class", class)]);
                }
            }
        })
        .build();
}

fn partition_attributes(
    flow: &KeyValue,
    sp: &crate::mirror::progress::SourcePartition,
) -> [KeyValue; 3] {
    [
        flow.clone(),
        KeyValue::new("topic", sp.topic.clone()),
        KeyValue::new("partition", i64::from(sp.partition)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_the_flows_counters_and_latency_under_their_prometheus_names() {
        let flows = Arc::new(Flows::default());
        let metrics = Metrics::new(flows.clone(), None).unwrap();
        let flow = Arc::new(FlowStats::new(
            "east-to-west",
            ("a", "b"),
            metrics.latency(),
        ));
        flows.add(flow.clone());
        let sp = crate::mirror::progress::SourcePartition {
            topic: "orders".into(),
            partition: 3,
        };
        let p = flow.partition(&sp, 0);
        p.fetched(12, 12);
        flow.acknowledged(&p, 7, 700, now_ms() - 250, now_ms());
        p.advanced(7);
        flow.mirrored_again(3);
        // A partition no Fetch or ListOffsets answered yet: counted, with no lag series.
        let unanswered = crate::mirror::progress::SourcePartition {
            topic: "orders".into(),
            partition: 4,
        };
        flow.partition(&unanswered, 0);
        let text = metrics.encode().unwrap();
        assert!(!text.contains("partition=\"4\""), "{text}");
        for line in [
            "kmirror_lag_unknown_partitions{flow=\"east-to-west\"} 1",
            "kmirror_mirrored_records_total{flow=\"east-to-west\"} 7",
            "kmirror_mirrored_bytes_total{flow=\"east-to-west\"} 700",
            "kmirror_mirrored_again_records_total{flow=\"east-to-west\"} 3",
            "kmirror_partition_lag_records{flow=\"east-to-west\",partition=\"3\",topic=\"orders\"} 5",
            "kmirror_replication_latency_seconds_count{flow=\"east-to-west\"} 1",
            "kmirror_partitions{flow=\"east-to-west\",state=\"running\"} 2",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
        assert!(latency_bounds().len() > 60 && latency_bounds()[0] == 0.001);
    }

    /// The latency histogram read from the flow's hdrhistogram: each batch in the first
    /// bucket whose bound is at least its latency, counts cumulative, the sum exact.
    #[test]
    fn latency_buckets_count_each_batch_under_the_first_bound_above_it() {
        let flows = Arc::new(Flows::default());
        let metrics = Metrics::new(flows.clone(), None).unwrap();
        let flow = Arc::new(FlowStats::new("f", ("a", "b"), metrics.latency()));
        flows.add(flow.clone());
        let sp = crate::mirror::progress::SourcePartition {
            topic: "orders".into(),
            partition: 0,
        };
        let p = flow.partition(&sp, 0);
        // Latencies of 0 (counted as 1 ms), 3, 250 (twice) and 7,200,000 ms (beyond 1 h).
        for latency_ms in [0, 3, 250, 250, 7_200_000] {
            flow.acknowledged(&p, 1, 10, 1_000_000, 1_000_000 + latency_ms);
        }
        let text = metrics.encode().unwrap();
        let mut buckets = Vec::new();
        for line in text.lines() {
            let Some(rest) =
                line.strip_prefix("kmirror_replication_latency_seconds_bucket{flow=\"f\",le=\"")
            else {
                continue;
            };
            let (le, n) = rest.split_once("\"} ").unwrap();
            buckets.push((le.to_string(), n.parse::<u64>().unwrap()));
        }
        assert_eq!(buckets.len(), latency_bounds().len() + 1, "{text}");
        for (le, n) in &buckets {
            let expected = match le.as_str() {
                "+Inf" => 5,
                le if le.parse::<f64>().unwrap() < 0.003 => 1,
                le if le.parse::<f64>().unwrap() < 0.25 => 2,
                _ => 4,
            };
            assert_eq!(*n, expected, "le={le} in\n{text}");
        }
        for line in [
            "kmirror_replication_latency_seconds_count{flow=\"f\"} 5",
            "kmirror_replication_latency_seconds_sum{flow=\"f\"} 7200.503",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
    }

    #[test]
    fn a_removed_flow_leaves_the_latency_histogram() {
        let flows = Arc::new(Flows::default());
        let metrics = Metrics::new(flows.clone(), None).unwrap();
        let stats = |name: &str| {
            let flow = Arc::new(FlowStats::new(name, ("a", "b"), metrics.latency()));
            flows.add(flow.clone());
            let sp = crate::mirror::progress::SourcePartition {
                topic: "orders".into(),
                partition: 0,
            };
            let p = flow.partition(&sp, 0);
            flow.acknowledged(&p, 1, 100, now_ms() - 10, now_ms());
        };
        stats("kept");
        stats("removed");
        let count =
            |name: &str| format!("kmirror_replication_latency_seconds_count{{flow=\"{name}\"}} 1");
        let text = metrics.encode().unwrap();
        assert!(text.contains(&count("removed")), "{text}");
        flows.remove("removed");
        let text = metrics.encode().unwrap();
        assert!(text.contains(&count("kept")), "{text}");
        assert!(!text.contains("flow=\"removed\""), "{text}");
    }
}
