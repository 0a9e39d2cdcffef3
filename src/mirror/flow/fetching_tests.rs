//! Unit tests of the Fetch sizing rules (`ask_bytes`, `partition_limit`) and of the order
//! partitions are asked in (`rotated`).

use super::*;

/// Large batches are asked for whole: at least one, however little is left of the
/// share; as many as fit of the partition's limit; the first by its exact size when
/// known, and, from a near leader, one of a quarter of the limit or more alone, with
/// the 12 bytes that tell the next one's size. Small ones ask for what is left of the
/// share.
#[test]
fn large_batches_are_asked_for_whole() {
    const KB: usize = 1000;
    const NEAR: bool = true;
    const DISTANT: bool = false;
    const MIB: usize = PARTITION_FETCH_BYTES as usize;
    let per = 490 * KB + 490 * KB / 64;
    for near in [NEAR, DISTANT] {
        assert_eq!(ask_bytes(600 * KB, 8 * KB, false, near, MIB), 600 * KB);
        assert_eq!(ask_bytes(100 * KB, 490 * KB, false, near, MIB), per);
        assert_eq!(ask_bytes(2_000 * KB, 490 * KB, false, near, MIB), 2 * per);
    }
    assert_eq!(
        ask_bytes(100 * KB, 490 * KB, true, NEAR, MIB),
        490 * KB + LOG_OVERHEAD
    );
    assert_eq!(
        ask_bytes(2_000 * KB, 490 * KB, true, NEAR, MIB),
        490 * KB + LOG_OVERHEAD
    );
    // From a distant leader, as many as fit of the partition's limit.
    assert_eq!(ask_bytes(100 * KB, 490 * KB, true, DISTANT, MIB), 490 * KB);
    assert_eq!(
        ask_bytes(2_000 * KB, 490 * KB, true, DISTANT, MIB),
        490 * KB + per
    );
    let per = 100 * KB + 100 * KB / 64;
    for near in [NEAR, DISTANT] {
        assert_eq!(
            ask_bytes(600 * KB, 100 * KB, true, near, MIB),
            100 * KB + 4 * per
        );
        assert_eq!(ask_bytes(600 * KB, 100 * KB, false, near, MIB), 5 * per);
    }
    assert_eq!(
        ask_bytes(2_000 * KB, 3_000 * KB, true, NEAR, MIB),
        3_000 * KB + LOG_OVERHEAD
    );
    assert_eq!(
        ask_bytes(2_000 * KB, 3_000 * KB, true, DISTANT, MIB),
        3_000 * KB
    );
    // With a larger limit (a distant leader's), as many as fit of it and of the share.
    let per = 490 * KB + 490 * KB / 64;
    assert_eq!(
        ask_bytes(4 * MIB, 490 * KB, true, DISTANT, 4 * MIB),
        490 * KB + 7 * per
    );
    assert_eq!(
        ask_bytes(2 * MIB, 490 * KB, false, DISTANT, 4 * MIB),
        4 * per
    );
    assert_eq!(ask_bytes(3 * MIB, 8 * KB, false, DISTANT, 4 * MIB), 3 * MIB);
    assert_eq!(ask_bytes(3 * MIB, 8 * KB, false, NEAR, MIB), MIB);
}

/// Kafka's consumer default of 1 MiB per partition, but a response's part of the pool for
/// a partition fetched alone from a distant leader.
#[test]
fn only_a_lone_partition_from_a_distant_leader_asks_beyond_one_mib() {
    const MIB: usize = PARTITION_FETCH_BYTES as usize;
    assert_eq!(partition_limit(Kind::Alone, false, 4 * MIB), 4 * MIB);
    assert_eq!(partition_limit(Kind::Alone, false, MIB / 2), MIB);
    assert_eq!(partition_limit(Kind::Alone, true, 4 * MIB), MIB);
    for kind in [Kind::HasData, Kind::CaughtUp] {
        assert_eq!(partition_limit(kind, false, 4 * MIB), MIB);
    }
}

/// Every partition leads a Fetch, and each once, in as many rounds as there are partitions;
/// each round asks for all of them once.
#[test]
fn each_partition_is_first_in_turn() {
    let partitions = ["a-0", "a-1", "b-0", "c-0", "c-1"];
    let firsts: Vec<&str> = (7..7 + partitions.len())
        .map(|round| {
            let order: Vec<&str> = rotated(&partitions, round).copied().collect();
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, partitions, "round {round}: {order:?}");
            order[0]
        })
        .collect();
    let mut distinct = firsts.clone();
    distinct.sort();
    assert_eq!(distinct, partitions, "{firsts:?}");
    assert_eq!(rotated::<&str>(&[], 3).count(), 0);
}
