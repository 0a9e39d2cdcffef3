//! Allocator tuning for the data path. Fetch responses and the batches copied out of them
//! are buffers of up to a few MiB, allocated and freed many times a second. With glibc's
//! defaults, each free of such a buffer may hand its pages back to the kernel (`munmap`,
//! or trimming the top of a heap), and the next allocation faults them in again: one page
//! fault per 4 KiB, measured at 10-15% of the daemon's CPU in the catch-up bench.
//!
//! The flows' `max_in_flight_bytes` already bounds the memory the data path holds at once,
//! so the allocator is told to keep up to that much freed memory for reuse instead of
//! returning it. RSS stays within the same bound (it is a peak either way); it only no
//! longer falls back between bursts. Other allocators (musl, other platforms): nothing.

/// Keeps up to `in_flight_bytes` of freed memory for reuse (see the module docs).
pub fn keep_freed_memory(in_flight_bytes: u64) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc refuses an mmap threshold above 32 MiB on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX).
        const MMAP_THRESHOLD_MAX: u64 = 32 << 20;
        let keep = c_int(in_flight_bytes);
        let settings = [
            // Buffers up to 32 MiB come from the heaps, not from mmap each time.
            (libc::M_MMAP_THRESHOLD, c_int(MMAP_THRESHOLD_MAX)),
            // A heap's free top is trimmed only beyond what the flows may hold at once.
            (libc::M_TRIM_THRESHOLD, keep),
            // A heap grows in steps large enough for a few responses at a time.
            (libc::M_TOP_PAD, c_int(in_flight_bytes / 4)),
        ];
        for (param, value) in settings {
            // SAFETY: mallopt only changes allocator parameters; it is called before any
            // other thread exists, and a refused value leaves the default in place.
            let ok = unsafe { libc::mallopt(param, value) };
            if ok == 0 {
                tracing::debug!(
                    param,
                    value,
                    "The allocator refused a setting; its default stays."
                );
            }
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = in_flight_bytes;
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn c_int(bytes: u64) -> libc::c_int {
    libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX)
}
