//! Where the daemon's and the broker's logs go: standard error, losing what cannot be
//! written instead of failing.
//!
//! tracing-subscriber reports a failed write with `eprintln!`, which panics when standard
//! error itself is what failed (a pipe whose reader exited: a log shipper that died, a
//! `| head`). The panic lands in whichever task logged: the signal handler's "Stopping"
//! line took SIGTERM handling with it, and a flow's first line kept the flow from ever
//! starting. As with log4j, a log line that cannot be written is dropped and the process
//! carries on.

use std::io::{self, Write};

/// Standard error, each write reported as done whether or not it was.
pub struct LossyStderr;

impl Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// For `tracing_subscriber::fmt().with_writer(lossy_stderr)`.
pub fn lossy_stderr() -> LossyStderr {
    LossyStderr
}
