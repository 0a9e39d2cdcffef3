use super::*;

fn flow() -> FlowStats {
    let meter = opentelemetry::metrics::MeterProvider::meter(
        &opentelemetry_sdk::metrics::SdkMeterProvider::default(),
        "test",
    );
    FlowStats::new("f", ("a", "b"), meter.f64_histogram("l").build())
}

#[test]
fn lag_is_high_watermark_minus_position_and_its_age_that_of_the_oldest_held_batch() {
    let f = flow();
    let sp = SourcePartition {
        topic: "t".into(),
        partition: 0,
    };
    let p = f.partition(&sp, 10);
    assert_eq!(p.lag_records(), 0, "no Fetch answered yet");
    p.fetched(25);
    assert_eq!(p.lag_records(), 15);
    p.holding(Some(1_000));
    assert_eq!(p.lag_seconds(3_500), 2.5);
    f.acknowledged(&p, 15, 100, 2_000);
    p.advanced(25);
    p.holding(None);
    assert_eq!((p.lag_records(), p.lag_seconds(9_000)), (0, 0.0));
    p.fetched(30);
    assert_eq!(
        p.lag_seconds(9_000),
        7.0,
        "not read yet: the last mirrored record's age"
    );
    assert_eq!(f.records(), 15);
    assert_eq!(f.latency_batches(), 1);
}
