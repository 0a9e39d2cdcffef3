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
