//! The C allocator's handling of freed memory (glibc). By default glibc gives freed memory
//! back to the kernel as soon as more than a little is free at the top of its heap, and
//! serves each allocation larger than anything freed before with a fresh mapping; either
//! way the next buffer of that size is faulted in and zero-filled page by page again. The
//! daemon's buffers (fetch responses, batches) come and go at the rate of its traffic, so
//! that was 10,000-70,000 page faults per GB mirrored, and on a virtual machine whose host
//! takes back freed memory each fault can cost microseconds (benches/catchup: large
//! batches' CPU followed the fault count, 0.32-0.71 CPU s per copy). Kept instead: memory
//! up to the flows' `max_in_flight_bytes`, which bounds what the daemon holds anyway.

/// glibc's largest mmap threshold on 64-bit targets: allocations up to it come from the
/// heap, whose freed memory is kept (below the trim threshold) for the next buffers.
const MMAP_THRESHOLD_BYTES: u64 = 32 << 20;

/// Keeps up to `budget_bytes` of freed memory for reuse, and serves allocations up to
/// [`MMAP_THRESHOLD_BYTES`] from the heap. Only for one thread: each thread that allocates
/// much gets its own glibc arena, which would keep as much again (a two-thread runtime
/// went over the memory bound with it). Returns whether the allocator took the settings.
pub fn keep_freed_memory(budget_bytes: u64) -> bool {
    let trim = trim_threshold_bytes(budget_bytes);
    set(libc_params::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        && set(libc_params::M_TRIM_THRESHOLD, trim)
}

/// The trim threshold for a budget: the budget, at least the mmap threshold (the heap keeps
/// one buffer of any size it serves), at most what `mallopt` takes (an `int`).
fn trim_threshold_bytes(budget_bytes: u64) -> u64 {
    budget_bytes.clamp(MMAP_THRESHOLD_BYTES, i32::MAX as u64)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod libc_params {
    pub use libc::{M_MMAP_THRESHOLD, M_TRIM_THRESHOLD};
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod libc_params {
    pub const M_MMAP_THRESHOLD: i32 = 0;
    pub const M_TRIM_THRESHOLD: i32 = 0;
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set(param: i32, bytes: u64) -> bool {
    let Ok(value) = i32::try_from(bytes) else {
        return false;
    };
    // SAFETY: mallopt only changes the allocator's tuning; any value is accepted or refused.
    unsafe { libc::mallopt(param, value) == 1 }
}

/// Other C libraries have no such settings.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set(_param: i32, _bytes: u64) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trim_threshold_is_the_budget_within_what_glibc_takes() {
        assert_eq!(trim_threshold_bytes(16 << 20), MMAP_THRESHOLD_BYTES);
        assert_eq!(trim_threshold_bytes(64 << 20), 64 << 20);
        assert_eq!(trim_threshold_bytes(u64::MAX), i32::MAX as u64);
    }

    /// glibc takes both settings (a refused one returns 0 from mallopt).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_the_settings() {
        assert!(keep_freed_memory(64 << 20));
    }
}
