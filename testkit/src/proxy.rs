//! A TCP proxy that adds round-trip time without capping bandwidth, to play a target
//! across a WAN or a replicated cluster's acks=all latency: every chunk read from one side
//! is written to the other half the round trip later, so many chunks are in the air at
//! once, like on a long fat link. It neither drops nor reorders; its memory is bounded by
//! what the client keeps in flight. [`Cutter::cut`] breaks every connection through it at
//! once, wherever a frame is, as a network blip or a load balancer's reset does. It
//! counts the Kafka frames each way on each connection, so a test can read how many
//! requests a client had in flight at most, and Produce requests per topic
//! ([`Cutter::most_produce_in_flight`]). Plain threads,
//! so tests and benches need no runtime.

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
                let frames = Arc::new(InFlight::default());
                live.1.lock().expect("frames lock").push(frames.clone());
                let half = self.rtt / 2;
                let pairs = [
                    (client.try_clone(), server.try_clone(), Way::Request),
                    (server.try_clone(), client.try_clone(), Way::Response),
                ];
                for (from, to, way) in pairs {
                    if let (Ok(from), Ok(to)) = (from, to) {
                        pipe(from, to, half, (frames.clone(), way));
                    }
                }
            }
        });
        cutter
    }
}

/// Breaks the connections through a [`DelayProxy`], and reads their frame counts.
#[derive(Clone, Default)]
pub struct Cutter(
    Arc<Mutex<Vec<[TcpStream; 2]>>>,
    Arc<Mutex<Vec<Arc<InFlight>>>>,
);

/// Which way a pipe carries frames.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    Request,
    Response,
}

/// One connection's requests waiting for their response, in order (Kafka answers a
/// connection's requests in the order they came): for each, the topic a Produce request
/// names first (`None` for other requests); and the most there were at once, of any kind
/// and per topic.
#[derive(Default)]
pub struct InFlight(Mutex<Waiting>);

#[derive(Default)]
struct Waiting {
    requests: std::collections::VecDeque<Option<String>>,
    most: u64,
    produce: std::collections::BTreeMap<String, (u64, u64)>,
    /// By topic, the most partitions of it one Produce request carried.
    partitions: std::collections::BTreeMap<String, u64>,
}

impl InFlight {
    fn sent(&self, heads: Vec<Vec<u8>>) {
        let mut w = self.0.lock().expect("in flight lock");
        for head in heads {
            let first = produce_topic(&head);
            if let Some((t, partitions)) = &first {
                let (now, most) = w.produce.entry(t.clone()).or_default();
                *now += 1;
                *most = (*most).max(*now);
                let most = w.partitions.entry(t.clone()).or_default();
                *most = (*most).max(*partitions);
            }
            w.requests.push_back(first.map(|(t, _)| t));
        }
        w.most = w.most.max(w.requests.len() as u64);
    }

    fn answered(&self, responses: usize) {
        let mut w = self.0.lock().expect("in flight lock");
        for _ in 0..responses {
            if let Some(Some(t)) = w.requests.pop_front() {
                if let Some((now, _)) = w.produce.get_mut(&t) {
                    *now -= 1;
                }
            }
        }
    }
}

/// The first topic a Produce request (v3 and later) names, from the start of its frame: its
/// name, or from v13 its topic id (lower-case hex, as `Uuid::simple` prints it), and how
/// many of its partitions the request carries; `None` for any other request.
fn produce_topic(head: &[u8]) -> Option<(String, u64)> {
    let r = &mut &head[..];
    let key = i16::from_be_bytes(take(r, 2)?.try_into().ok()?);
    let version = i16::from_be_bytes(take(r, 2)?.try_into().ok()?);
    if key != 0 || version < 3 {
        return None;
    }
    take(r, 4)?; // correlation id
    let client_id = i16::from_be_bytes(take(r, 2)?.try_into().ok()?);
    take(r, client_id.max(0) as usize)?;
    let name = if version >= 9 {
        // Flexible: header tagged fields, then compact strings and arrays (unsigned
        // varint lengths, plus one).
        let tagged = uvarint(r)?;
        for _ in 0..tagged {
            uvarint(r)?; // tag
            let size = uvarint(r)?;
            take(r, usize::try_from(size).ok()?)?;
        }
        let id = usize::try_from(uvarint(r)?).ok()?;
        take(r, id.saturating_sub(1) + 6)?; // transactional id, acks, timeout
        uvarint(r)?; // topics
        if version >= 13 {
            let id = take(r, 16)?;
            let partitions = uvarint(r)?.checked_sub(1)?;
            return Some((id.iter().map(|b| format!("{b:02x}")).collect(), partitions));
        }
        let len = usize::try_from(uvarint(r)?).ok()?.checked_sub(1)?;
        let name = take(r, len)?;
        (name, uvarint(r)?.checked_sub(1)?)
    } else {
        let id = i16::from_be_bytes(take(r, 2)?.try_into().ok()?);
        take(r, id.max(0) as usize + 6 + 4)?; // transactional id, acks, timeout, topics
        let len = i16::from_be_bytes(take(r, 2)?.try_into().ok()?);
        let name = take(r, len.max(0) as usize)?;
        let partitions = i32::from_be_bytes(take(r, 4)?.try_into().ok()?);
        (name, u64::try_from(partitions).ok()?)
    };
    let (name, partitions) = name;
    Some((String::from_utf8(name.to_vec()).ok()?, partitions))
}

/// An unsigned varint (7 bits a byte, low first, at most 5 bytes), taken from `r`.
fn uvarint(r: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..5 {
        let b = take(r, 1)?[0];
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The next `n` bytes of `r`, taken from it.
fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (a, b) = (r.get(..n)?, r.get(n..)?);
    *r = b;
    Some(a)
}

/// The bytes of a frame [`FrameEnds`] keeps: enough for a Produce request's first topic
/// (a client id and a transactional id of up to 32,767 bytes each, a name of 249).
const HEAD_BYTES: usize = 2 + 2 + 4 + 2 + 2 * 32_767 + 16 + 256;

/// Finds where Kafka frames (a 4-byte size, then that many bytes) end in a byte stream,
/// with the first [`HEAD_BYTES`] of each.
#[derive(Default)]
struct FrameEnds {
    size: Vec<u8>,
    head: Vec<u8>,
    left: usize,
}

impl FrameEnds {
    /// The frames `bytes` completes, each one's head.
    fn feed(&mut self, mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut ended = Vec::new();
        while !bytes.is_empty() {
            if self.left == 0 {
                let take = (4 - self.size.len()).min(bytes.len());
                self.size.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if self.size.len() == 4 {
                    let size = i32::from_be_bytes(self.size[..].try_into().expect("4 bytes"));
                    self.size.clear();
                    self.head.clear();
                    // A negative size is no Kafka frame: counting after it would be
                    // out of step with the stream, so a test must not go on.
                    assert!(size >= 0, "the proxy read a negative frame size ({size})");
                    self.left = size as usize;
                    if self.left == 0 {
                        ended.push(Vec::new());
                    }
                }
                continue;
            }
            let take = self.left.min(bytes.len());
            let head = HEAD_BYTES.saturating_sub(self.head.len()).min(take);
            self.head.extend_from_slice(&bytes[..head]);
            self.left -= take;
            bytes = &bytes[take..];
            if self.left == 0 {
                ended.push(std::mem::take(&mut self.head));
            }
        }
        ended
    }
}

impl Cutter {
    /// For each connection made so far, the most requests its client had sent that it had
    /// not yet been handed a response for (a Kafka client's requests in flight; a Produce
    /// with acks=0, which has none, would count for good).
    pub fn most_in_flight(&self) -> Vec<u64> {
        let frames = self.1.lock().expect("frames lock");
        frames
            .iter()
            .map(|f| f.0.lock().expect("in flight lock").most)
            .collect()
    }

    /// The most Produce requests whose first topic is `topic` (its name, or for Produce v13
    /// and later its id in lower-case hex) any connection had in flight at once.
    pub fn most_produce_in_flight(&self, topic: &str) -> u64 {
        self.most(|w| w.produce.get(topic).map(|(_, most)| *most))
    }

    /// The most `of` gives over the connections made so far.
    fn most(&self, of: impl Fn(&Waiting) -> Option<u64>) -> u64 {
        let frames = self.1.lock().expect("frames lock");
        frames
            .iter()
            .filter_map(|f| of(&f.0.lock().expect("in flight lock")))
            .max()
            .unwrap_or(0)
    }

    /// The most partitions of `topic` (named as for [`Self::most_produce_in_flight`]) one
    /// Produce request carried, when it was the request's first topic.
    pub fn most_partitions_in_one_produce(&self, topic: &str) -> u64 {
        self.most(|w| w.partitions.get(topic).copied())
    }

    /// How many connections carried a Produce request whose first topic is one of `names`
    /// (a topic by name and by id).
    pub fn connections_producing(&self, names: &[String]) -> usize {
        let frames = self.1.lock().expect("frames lock");
        frames
            .iter()
            .filter(|f| {
                let w = f.0.lock().expect("in flight lock");
                names.iter().any(|n| w.produce.contains_key(n))
            })
            .count()
    }

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
/// Requests are counted as the client sends them, responses as they are handed to it.
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    delay: Duration,
    (frames, way): (Arc<InFlight>, Way),
) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let counted = frames.clone();
    thread::spawn(move || {
        let mut buf = vec![0u8; READ_BYTES];
        let mut ends = FrameEnds::default();
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if way == Way::Request {
                        counted.sent(ends.feed(&buf[..n]));
                    }
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
        let mut ends = FrameEnds::default();
        while let Ok((due, chunk)) = rx.recv() {
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            // Counted before it is handed over: the client may answer a response with a
            // new request before this thread runs again.
            if way == Way::Response {
                frames.answered(ends.feed(&chunk).len());
            }
            if to.write_all(&chunk).is_err() {
                return;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
