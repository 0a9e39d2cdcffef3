//! The coordinator's state machine, its retries and its file, without a broker.

use std::collections::BTreeSet;

use super::*;

const ID: &str = "tx";

fn ready(c: &Coordinator, expected: (i64, i16)) -> (i64, i16) {
    let mut next = 100;
    match c.init(ID, 60_000, expected, 0, || {
        next += 1;
        Ok(next)
    }) {
        Ok(Init::Ready {
            producer_id,
            producer_epoch,
        }) => (producer_id, producer_epoch),
        other => panic!("not ready: {other:?}"),
    }
}

fn producer(pid: i64, epoch: i16) -> Producer<'static> {
    Producer {
        transactional_id: ID,
        producer_id: pid,
        producer_epoch: epoch,
    }
}

fn partitions() -> Vec<(String, i32)> {
    vec![("t".to_string(), 0), ("t".to_string(), 1)]
}

#[test]
fn a_new_id_starts_at_epoch_0_and_each_init_bumps_it() {
    let c = Coordinator::default();
    assert_eq!(ready(&c, (-1, -1)), (101, 0));
    assert_eq!(ready(&c, (-1, -1)), (101, 1));
    // KIP-360: naming the current id and epoch bumps it; naming it again (a retry whose
    // answer was lost) answers the same; an older epoch or another id is fenced.
    assert_eq!(ready(&c, (101, 1)), (101, 2));
    assert_eq!(ready(&c, (101, 1)), (101, 2));
    assert_eq!(
        c.init(ID, 60_000, (101, 0), 0, || Ok(7)),
        Err(ResponseError::ProducerFenced)
    );
    assert_eq!(
        c.init(ID, 60_000, (55, 2), 0, || Ok(7)),
        Err(ResponseError::ProducerFenced)
    );
}

#[test]
fn timeouts_above_the_maximum_and_empty_ids_are_refused() {
    let c = Coordinator::default();
    for timeout in [0, -1, MAX_TIMEOUT_MS + 1] {
        assert_eq!(
            c.init(ID, timeout, (-1, -1), 0, || Ok(1)),
            Err(ResponseError::InvalidTransactionTimeout)
        );
    }
    assert_eq!(
        c.init("", 1_000, (-1, -1), 0, || Ok(1)),
        Err(ResponseError::InvalidRequest)
    );
}

#[test]
fn a_transaction_runs_from_its_first_partition_to_its_markers() {
    let c = Coordinator::default();
    let (pid, epoch) = ready(&c, (-1, -1));
    let p = producer(pid, epoch);
    assert_eq!(
        c.verify(p, ("t", 0)),
        Err(ResponseError::TransactionAbortable)
    );
    c.add_partitions(p, partitions(), 5).unwrap();
    assert_eq!(c.verify(p, ("t", 0)), Ok(()));
    assert_eq!(
        c.verify(p, ("t", 2)),
        Err(ResponseError::TransactionAbortable)
    );
    let End::Write(markers) = c.end(p, true, 0).unwrap() else {
        panic!("no markers")
    };
    assert!(markers.commit);
    assert_eq!(markers.partitions.len(), 2);
    // While the markers are written: no writes, no new partitions, no other result.
    assert_eq!(
        c.verify(p, ("t", 0)),
        Err(ResponseError::ConcurrentTransactions)
    );
    assert_eq!(
        c.add_partitions(p, partitions(), 6),
        Err(ResponseError::ConcurrentTransactions)
    );
    assert_eq!(
        c.end(p, true, 0),
        Err(ResponseError::ConcurrentTransactions)
    );
    assert_eq!(c.end(p, false, 0), Err(ResponseError::InvalidTxnState));
    c.complete(&markers, BTreeSet::new(), 0);
    // A retried commit succeeds; an abort of the committed transaction does not.
    assert_eq!(c.end(p, true, 0), Ok(End::Done));
    assert_eq!(c.end(p, false, 0), Err(ResponseError::InvalidTxnState));
    assert_eq!(c.get(ID).unwrap().state, TxnState::CompleteCommit);
}

#[test]
fn ending_without_a_transaction_or_with_a_stale_producer_is_refused() {
    let c = Coordinator::default();
    let (pid, epoch) = ready(&c, (-1, -1));
    assert_eq!(
        c.end(producer(pid, epoch), true, 0),
        Err(ResponseError::InvalidTxnState)
    );
    assert_eq!(
        c.end(producer(pid + 1, epoch), true, 0),
        Err(ResponseError::InvalidProducerIdMapping)
    );
    assert_eq!(
        c.end(producer(pid, epoch + 1), false, 0),
        Err(ResponseError::ProducerFenced)
    );
    let other = Producer {
        transactional_id: "unknown",
        producer_id: pid,
        producer_epoch: epoch,
    };
    assert_eq!(
        c.add_partitions(other, partitions(), 0),
        Err(ResponseError::InvalidProducerIdMapping)
    );
}

#[test]
fn init_fences_an_open_transaction_by_aborting_it_at_a_new_epoch() {
    let c = Coordinator::default();
    let (pid, epoch) = ready(&c, (-1, -1));
    c.add_partitions(producer(pid, epoch), partitions(), 0)
        .unwrap();
    let Ok(Init::Fenced(markers)) = c.init(ID, 60_000, (-1, -1), 1, || Ok(9)) else {
        panic!("not fenced")
    };
    assert!(!markers.commit);
    assert_eq!(markers.producer_epoch, epoch + 1);
    // The old producer is fenced from now on.
    assert_eq!(
        c.end(producer(pid, epoch), true, 0),
        Err(ResponseError::ProducerFenced)
    );
    // Until the abort is written, InitProducerId is asked to come back.
    assert_eq!(
        c.init(ID, 60_000, (-1, -1), 1, || Ok(9)),
        Err(ResponseError::ConcurrentTransactions)
    );
    c.complete(&markers, BTreeSet::new(), 0);
    assert_eq!(ready(&c, (-1, -1)), (pid, epoch + 2));
}

#[test]
fn transactions_past_their_timeout_are_fenced_and_aborted() {
    let c = Coordinator::default();
    let (pid, epoch) = ready(&c, (-1, -1));
    c.add_partitions(producer(pid, epoch), partitions(), 1_000)
        .unwrap();
    assert!(c.expire(61_000).is_empty());
    let expired = c.expire(61_001);
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].producer_epoch, epoch + 1);
    assert!(!expired[0].commit);
    c.complete(&expired[0], BTreeSet::new(), 0);
    assert_eq!(
        c.add_partitions(producer(pid, epoch), partitions(), 62_000),
        Err(ResponseError::ProducerFenced)
    );
}

#[test]
fn markers_left_unwritten_keep_the_transaction_prepared_until_written() {
    let c = Coordinator::default();
    let (pid, epoch) = ready(&c, (-1, -1));
    let p = producer(pid, epoch);
    c.add_partitions(p, partitions(), 0).unwrap();
    let End::Write(markers) = c.end(p, true, 1_000).unwrap() else {
        panic!("no markers")
    };
    let unwritten: BTreeSet<_> = [("t".to_string(), 1)].into();
    c.complete(&markers, unwritten.clone(), 1_000);
    assert_eq!(c.get(ID).unwrap().state, TxnState::PrepareCommit);
    assert_eq!(
        c.end(p, true, 2_000),
        Err(ResponseError::ConcurrentTransactions)
    );
    assert!(c.unfinished(10_999, 10_000).is_empty());
    let again = c.unfinished(11_000, 10_000);
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].commit, &again[0].partitions), (true, &unwritten));
    // Handed out once per retry interval.
    assert!(c.unfinished(11_000, 10_000).is_empty());
    c.complete(&again[0], BTreeSet::new(), 11_500);
    assert_eq!(c.get(ID).unwrap().state, TxnState::CompleteCommit);
    assert_eq!(c.end(p, true, 12_000), Ok(End::Done));
}

#[test]
fn an_empty_transactional_id_is_an_invalid_request() {
    let c = Coordinator::default();
    let p = Producer {
        transactional_id: "",
        producer_id: 1,
        producer_epoch: 0,
    };
    assert_eq!(c.end(p, true, 0), Err(ResponseError::InvalidRequest));
    assert_eq!(
        c.add_partitions(p, partitions(), 0),
        Err(ResponseError::InvalidRequest)
    );
}

#[test]
fn an_exhausted_epoch_gets_a_fresh_producer_id() {
    let c = Coordinator::default();
    ready(&c, (-1, -1));
    c.txns.lock().unwrap().get_mut(ID).unwrap().producer_epoch = i16::MAX - 1;
    assert_eq!(ready(&c, (-1, -1)), (101, 0));
    // The producer that named the exhausted epoch of the old id is not fenced by it.
    c.txns.lock().unwrap().get_mut(ID).unwrap().producer_epoch = i16::MAX - 1;
    let mut next = 200;
    let rotated = c.init(ID, 60_000, (101, i16::MAX - 1), 0, || {
        next += 1;
        Ok(next)
    });
    assert_eq!(
        rotated,
        Ok(Init::Ready {
            producer_id: 201,
            producer_epoch: 0
        })
    );
    assert_eq!(
        ready(&c, (101, i16::MAX - 1)),
        (201, 0),
        "a retry of the rotation"
    );
}

#[test]
fn the_state_is_kept_in_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let c = Coordinator::open(Some(dir.path())).unwrap();
    let (pid, epoch) = ready(&c, (-1, -1));
    c.add_partitions(producer(pid, epoch), partitions(), 7)
        .unwrap();
    let reopened = Coordinator::open(Some(dir.path())).unwrap();
    assert_eq!(reopened.get(ID), c.get(ID));
    assert_eq!(reopened.get(ID).unwrap().state, TxnState::Ongoing);
}

#[test]
fn a_change_that_cannot_be_written_is_undone_and_answered_not_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let c = Coordinator::open(Some(dir.path())).unwrap();
    let (pid, epoch) = ready(&c, (-1, -1));
    // The temporary file cannot be created: every write fails.
    std::fs::create_dir(dir.path().join(format!("{FILE_NAME}.tmp"))).unwrap();
    assert_eq!(
        c.add_partitions(producer(pid, epoch), partitions(), 7),
        Err(ResponseError::NotCoordinator)
    );
    assert_eq!(c.get(ID).unwrap().state, TxnState::Empty);
}
