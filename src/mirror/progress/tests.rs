//! Progress's positions, markers and the entries a write takes.

use super::fixtures::{pos, sp};
use super::writer::Taken;
use super::*;

fn progress() -> Progress {
    Progress::new("f", codec::Loaded::default(), 1 << 20)
}

fn positions(taken: &Taken<'_>) -> Vec<(SourcePartition, Position)> {
    let mut out: Vec<_> = taken
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Position(sp, p) => Some((sp.clone(), *p)),
            _ => None,
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A progress record too large for the topic's limit is the daemon's own finding: an
/// error that names the topic and the limit, not a MESSAGE_TOO_LARGE the broker never
/// sent.
#[tokio::test]
async fn a_record_over_the_limit_is_refused_not_blamed_on_the_broker() {
    let (broker, client) = crate::client::local_cluster("target").await;
    let p = Progress::new("f", codec::Loaded::default(), 64);
    p.advance(&sp(0), pos(5));
    let e = p.write(&client).await.unwrap_err();
    assert!(
        matches!(&e, ClientError::Refused { what, .. }
            if what.contains(PROGRESS_TOPIC) && what.contains("max.message.bytes = 64")),
        "{e:?}"
    );
    assert_eq!(e.class(), ErrorClass::Fatal);
    let _ = broker.shutdown().await;
}

#[test]
fn positions_never_move_backwards() {
    let p = progress();
    p.advance(&sp(0), pos(5));
    p.advance(&sp(0), pos(10));
    p.advance(&sp(0), pos(7));
    assert_eq!(p.get(&sp(0)), Some(pos(10)));
}

/// Finding 16: a write that fails after a newer one succeeded must not put its stale
/// position back; the partition is written again with its current position.
#[test]
fn a_failed_older_write_does_not_bring_back_a_stale_position() {
    let p = progress();
    p.advance(&sp(0), pos(5));
    let older = p.take();
    assert_eq!(positions(&older), [(sp(0), pos(5))]);
    p.advance(&sp(0), pos(10));
    let mut newer = p.take();
    assert_eq!(positions(&newer), [(sp(0), pos(10))]);
    newer.written = newer.entries.len();
    drop(newer); // succeeded
    drop(older); // failed: nothing written
    assert_eq!(positions(&p.take()), [(sp(0), pos(10))]);
}

/// A write cut short (failure after some batches, or cancellation) marks exactly the
/// unwritten entries dirty again, marker included.
#[test]
fn unwritten_entries_stay_dirty_and_the_marker_goes_last() {
    let p = progress();
    assert!(!p.is_initialised());
    p.advance(&sp(0), pos(1));
    p.advance(&sp(1), pos(2));
    p.mark_initialised();
    assert!(p.is_initialised());
    let mut taken = p.take();
    assert_eq!(taken.entries.len(), 3);
    assert_eq!(taken.entries.last(), Some(&Entry::Marker(Vec::new())));
    taken.written = 1;
    let first = match &taken.entries[0] {
        Entry::Position(sp, _) => sp.clone(),
        _ => unreachable!(),
    };
    drop(taken);
    let again = p.take();
    assert_eq!(again.entries.len(), 2);
    assert!(!positions(&again).iter().any(|(sp, _)| *sp == first));
    assert_eq!(again.entries.last(), Some(&Entry::Marker(Vec::new())));
}

/// Progress written before markers existed means the flow did start before.
#[test]
fn stored_positions_without_a_marker_count_as_initialised() {
    let mut loaded = codec::Loaded::default();
    loaded.positions.insert(sp(0), pos(3));
    let p = Progress::new("f", loaded, 1 << 20);
    assert!(p.is_initialised());
    assert_eq!(p.take().entries, [Entry::Marker(Vec::new())]);
    let fresh = progress();
    assert!(!fresh.is_initialised());
    assert!(fresh.take().entries.is_empty());
}
