//! Unit tests of segment headers.

use super::*;

/// A magic-1 message kept from an old message format is framed like a v2 batch and
/// found by its offset; a header that is neither is refused.
#[test]
fn a_legacy_message_header_is_read_by_its_offset() {
    let mut m = 41i64.to_be_bytes().to_vec();
    let body_len: i32 = 4 + 1 + 1 + 8 + 4 + 4 + 3;
    m.extend_from_slice(&body_len.to_be_bytes());
    m.extend_from_slice(&[0; 4]); // crc
    m.extend_from_slice(&[1, 0]); // magic 1, attributes
    m.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    m.extend_from_slice(&(-1i32).to_be_bytes());
    m.extend_from_slice(&3i32.to_be_bytes());
    m.extend_from_slice(b"old");
    let h = Header::parse(&m).unwrap();
    assert_eq!(
        h,
        Header {
            base_offset: 41,
            size: m.len() as u64,
            last_offset: 41,
            max_timestamp: 1_700_000_000_000,
        }
    );
    m[16] = 7;
    assert!(Header::parse(&m).is_err());
}

/// A magic-0 message of a few bytes, shorter than a v2 batch header, is read too.
#[test]
fn a_short_magic_0_message_is_read() {
    let mut m = 7i64.to_be_bytes().to_vec();
    m.extend_from_slice(&(4 + 1 + 1 + 4 + 4 + 1i32).to_be_bytes());
    m.extend_from_slice(&[0; 4]); // crc
    m.extend_from_slice(&[0, 0]); // magic 0, attributes
    m.extend_from_slice(&(-1i32).to_be_bytes());
    m.extend_from_slice(&1i32.to_be_bytes());
    m.push(b'x');
    assert!(m.len() < HEADER_LEN);
    let h = Header::parse(&m).unwrap();
    assert_eq!(
        (h.base_offset, h.last_offset, h.size),
        (7, 7, m.len() as u64)
    );
    assert_eq!(h.max_timestamp, -1);
}

/// A v2 batch whose magic byte was damaged to 0 or 1 is not read as an old message: its
/// other bytes do not add up to one.
#[test]
fn a_v2_batch_with_a_damaged_magic_is_not_an_old_message() {
    let good = crate::log::test_support::batch(5, 1_700_000_000_000, 20);
    let h = Header::parse(&good[..HEADER_LEN]).unwrap();
    assert_eq!((h.base_offset, h.last_offset), (0, 4));
    for magic in [0u8, 1] {
        let mut bad = good.clone();
        bad[16] = magic;
        assert!(Header::parse(&bad[..HEADER_LEN]).is_err(), "magic {magic}");
    }
}
