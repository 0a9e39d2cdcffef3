//! The receiving end of the systemd notification protocol: a Unix datagram socket the
//! daemon finds in `$NOTIFY_SOCKET` and sends `READY=1` / `STOPPING=1` to.

use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A bound notify socket and the states received on it so far.
pub(crate) struct NotifySocket {
    socket: UnixDatagram,
    states: Mutex<Vec<String>>,
}

impl NotifySocket {
    pub(crate) fn bind(path: &Path) -> Self {
        let socket = UnixDatagram::bind(path)
            .unwrap_or_else(|e| panic!("cannot bind {}: {e}", path.display()));
        Self {
            socket,
            states: Mutex::new(Vec::new()),
        }
    }

    /// The states received so far, in order (read by [`wait_for`](Self::wait_for)).
    pub(crate) fn states(&self) -> Vec<String> {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until a datagram holding the line `state` (e.g. `READY=1`) arrived; with a
    /// zero `timeout`, whether one already did.
    pub(crate) fn wait_for(&self, state: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let mut buf = [0u8; 4096];
        loop {
            if states.iter().any(|s| s == state) {
                return true;
            }
            // At least a moment: datagrams already queued are read even after the deadline.
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            self.socket.set_read_timeout(Some(left)).unwrap();
            match self.socket.recv(&mut buf) {
                Ok(n) => states.extend(
                    String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .map(str::to_string),
                ),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return false
                }
                Err(e) => panic!("reading the notify socket: {e}"),
            }
        }
    }
}
