//! The memory Fetch responses hold, over every connection of the process: at most
//! [`LIMIT_BYTES`] besides one batch per response.
//!
//! Kafka sends a Fetch response's records from the log files (zero-copy), so a client that
//! asks for 55 MiB and reads nothing costs the broker no memory. This broker builds each
//! response in memory and keeps it until the client has read it, which is one response
//! per connection (the next request is read only once the answer is written): without a
//! bound, clients that fetch much and read slowly, or not at all, would hold 55 MiB each,
//! gigabytes over a thousand connections. A Fetch therefore reads at most the room left
//! under the limit (counting responses being written and reads under way), and with none
//! left it still gets its first partition's first batch (KIP-74), as a fetch of a small
//! `max_bytes` would: the client gets less per request, never an error.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes of Fetch responses held at once, over all connections.
pub const LIMIT_BYTES: usize = 256 << 20;

/// Responses smaller than this are not counted: their total is bounded by the connection
/// limit many times under [`LIMIT_BYTES`].
pub const COUNTED_MIN_BYTES: usize = 64 << 10;

static HELD_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Bytes counted as held until this is dropped.
#[derive(Debug)]
pub struct Held(usize);

impl Held {
    /// Counts `bytes` (a response being written) whatever the room left.
    pub fn count(bytes: usize) -> Self {
        if bytes < COUNTED_MIN_BYTES {
            return Self(0);
        }
        HELD_BYTES.fetch_add(bytes, Ordering::AcqRel);
        Self(bytes)
    }

    /// Takes up to `want` bytes of the room left under [`LIMIT_BYTES`] (maybe none).
    pub fn reserve_up_to(want: usize) -> Self {
        let mut held = HELD_BYTES.load(Ordering::Acquire);
        loop {
            let granted = want.min(LIMIT_BYTES.saturating_sub(held));
            match HELD_BYTES.compare_exchange_weak(
                held,
                held + granted,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Self(granted),
                Err(now) => held = now,
            }
        }
    }

    pub fn bytes(&self) -> usize {
        self.0
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.0 > 0 {
            HELD_BYTES.fetch_sub(self.0, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: the count is the process's.
    #[test]
    fn reservations_take_the_room_left_and_give_it_back() {
        let writing = Held::count(LIMIT_BYTES - (10 << 20));
        let first = Held::reserve_up_to(55 << 20);
        assert_eq!(first.bytes(), 10 << 20, "what is left under the limit");
        assert_eq!(Held::reserve_up_to(1 << 20).bytes(), 0, "nothing left");
        drop(first);
        drop(writing);
        assert_eq!(Held::reserve_up_to(55 << 20).bytes(), 55 << 20);
        assert_eq!(
            Held::count(100).bytes(),
            0,
            "small responses are not counted"
        );
        assert_eq!(HELD_BYTES.load(Ordering::Acquire), 0);
    }
}
