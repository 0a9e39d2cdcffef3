//! A TCP proxy that adds round-trip time without capping bandwidth, to play a target
//! across a WAN or a replicated cluster's acks=all latency: every chunk read from one side
//! is written to the other half the round trip later, so many chunks are in the air at
//! once, like on a long fat link. It neither drops nor reorders; its memory is bounded by
//! what the client keeps in flight. [`Cutter::cut`] breaks every connection through it at
//! once, wherever a frame is, as a network blip or a load balancer's reset does. Plain
//! threads, so tests and benches need no runtime.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const READ_BYTES: usize = 256 << 10;

/// A listening proxy; it forwards once told where to ([`DelayProxy::forward_to`]), so a
/// broker can be started advertising the proxy's address first.
pub struct DelayProxy {
    listener: TcpListener,
    rtt: Duration,
}

impl DelayProxy {
    /// Listens on a free port of 127.0.0.1.
    pub fn bind(rtt: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("the proxy listens");
        Self { listener, rtt }
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn addr(&self) -> String {
        self.listener
            .local_addr()
            .expect("a bound listener")
            .to_string()
    }

    /// Forwards every connection, from now on and for the life of the process, to
    /// `upstream` with the round trip added; the [`Cutter`] breaks the live ones.
    pub fn forward_to(self, upstream: &str) -> Cutter {
        let upstream = upstream.to_string();
        let cutter = Cutter::default();
        let live = cutter.clone();
        thread::spawn(move || {
            for client in self.listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                for s in [&client, &server] {
                    let _ = s.set_nodelay(true);
                }
                if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                    live.0.lock().expect("live lock").push([c, s]);
                }
                let half = self.rtt / 2;
                let pairs = [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ];
                for (from, to) in pairs {
                    if let (Ok(from), Ok(to)) = (from, to) {
                        pipe(from, to, half);
                    }
                }
            }
        });
        cutter
    }
}

/// Breaks the connections through a [`DelayProxy`].
#[derive(Clone, Default)]
pub struct Cutter(Arc<Mutex<Vec<[TcpStream; 2]>>>);

impl Cutter {
    /// Shuts down both ends of every connection made so far (its peers see the stream end
    /// in the middle of whatever they were reading); returns how many there were.
    pub fn cut(&self) -> usize {
        let pairs = std::mem::take(&mut *self.0.lock().expect("live lock"));
        for pair in &pairs {
            for s in pair {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        pairs.len()
    }
}

/// One direction: a reader that stamps chunks as they come and a writer that releases
/// each `delay` after it arrived.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    thread::spawn(move || {
        let mut buf = vec![0u8; READ_BYTES];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    thread::spawn(move || {
        while let Ok((due, chunk)) = rx.recv() {
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                return;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
