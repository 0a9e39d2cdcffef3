//! A TCP proxy that adds round-trip time without capping bandwidth: every chunk read from
//! one side is stamped and written to the other side RTT/2 later, so many chunks are in
//! the air at once, like on a long fat link. It neither drops nor reorders; its memory is
//! bounded by what the client keeps in flight.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

const READ_BYTES: usize = 256 << 10;

/// Accepts on `listener` forever, forwarding each connection to `upstream` with `rtt`
/// added to every round trip.
pub async fn serve(listener: TcpListener, upstream: String, rtt: Duration) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                return;
            };
            for s in [&client, &server] {
                let _ = s.set_nodelay(true);
            }
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pipe(client_read, server_write, rtt / 2));
            tokio::spawn(pipe(server_read, client_write, rtt / 2));
        });
    }
}

/// One direction: reads chunks as they come and releases each `delay` after it arrived.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Bytes)>();
    tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(READ_BYTES);
        loop {
            buf.reserve(READ_BYTES);
            match from.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if tx
                        .send((Instant::now() + delay, buf.split().freeze()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    while let Some((due, chunk)) = rx.recv().await {
        tokio::time::sleep_until(due).await;
        if to.write_all(&chunk).await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}
