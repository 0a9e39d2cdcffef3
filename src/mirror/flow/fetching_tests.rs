//! Unit tests of the Fetch sizing rules (`ask_bytes`).

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
    let per = 490 * KB + 490 * KB / 64;
    for near in [NEAR, DISTANT] {
        assert_eq!(ask_bytes(600 * KB, 8 * KB, false, near), 600 * KB);
        assert_eq!(ask_bytes(100 * KB, 490 * KB, false, near), per);
        assert_eq!(ask_bytes(2_000 * KB, 490 * KB, false, near), 2 * per);
    }
    assert_eq!(
        ask_bytes(100 * KB, 490 * KB, true, NEAR),
        490 * KB + LOG_OVERHEAD
    );
    assert_eq!(
        ask_bytes(2_000 * KB, 490 * KB, true, NEAR),
        490 * KB + LOG_OVERHEAD
    );
    // From a distant leader, as many as fit of the partition's limit.
    assert_eq!(ask_bytes(100 * KB, 490 * KB, true, DISTANT), 490 * KB);
    assert_eq!(
        ask_bytes(2_000 * KB, 490 * KB, true, DISTANT),
        490 * KB + per
    );
    let per = 100 * KB + 100 * KB / 64;
    for near in [NEAR, DISTANT] {
        assert_eq!(
            ask_bytes(600 * KB, 100 * KB, true, near),
            100 * KB + 4 * per
        );
        assert_eq!(ask_bytes(600 * KB, 100 * KB, false, near), 5 * per);
    }
    assert_eq!(
        ask_bytes(2_000 * KB, 3_000 * KB, true, NEAR),
        3_000 * KB + LOG_OVERHEAD
    );
    assert_eq!(ask_bytes(2_000 * KB, 3_000 * KB, true, DISTANT), 3_000 * KB);
}
