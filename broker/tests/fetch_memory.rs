//! The memory Fetch responses hold over all connections is bounded
//! (`kmirror_broker::response_memory`): clients that ask for 36 MiB each and read nothing
//! hold at most the limit between them, besides one batch each; each still gets at least
//! its first batch (KIP-74), and once the answers are read the room comes back. (Its own
//! test binary: the count is the process's.)

mod common;

use std::time::Duration;

use common::*;
use kmirror_broker::response_memory::LIMIT_BYTES;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends a Fetch of all of "big" on a new connection and reads the answer's length only.
async fn fetch_unread(b: &kmirror_broker::RunningBroker) -> (TcpStream, usize) {
    let mut s = TcpStream::connect(b.local_addr).await.unwrap();
    s.write_all(&fetch_all_of_big(1)).await.unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    (s, i32::from_be_bytes(len) as usize)
}

#[tokio::test]
async fn unread_fetch_answers_hold_at_most_the_limit_between_them() {
    const CONNECTIONS: usize = 12;
    const BATCH_BYTES: usize = 900 << 10;
    let dir = tempfile::tempdir().unwrap();
    let (b, _m) = broker_with_36_mib(dir.path(), Duration::from_secs(600)).await;
    let mut held = Vec::new();
    for _ in 0..CONNECTIONS {
        held.push(fetch_unread(&b).await);
    }
    let sizes: Vec<usize> = held.iter().map(|(_, len)| *len).collect();
    let total: usize = sizes.iter().sum();
    assert!(
        total <= LIMIT_BYTES + CONNECTIONS * (BATCH_BYTES + (64 << 10)),
        "{total} bytes of answers held: {sizes:?}"
    );
    assert!(
        sizes.iter().all(|&len| len > BATCH_BYTES),
        "every fetch gets its first batch at least: {sizes:?}"
    );
    assert!(sizes[0] > 30 << 20, "the first gets all of it: {sizes:?}");
    // Read, the answers give their room back: the next fetch gets all of it again.
    for (mut s, len) in held {
        let mut rest = vec![0u8; len];
        s.read_exact(&mut rest).await.unwrap();
    }
    let (_s, len) = fetch_unread(&b).await;
    assert_eq!(len, sizes[0], "{sizes:?}");
}
