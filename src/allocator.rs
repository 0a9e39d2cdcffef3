//! The C allocator's handling of freed memory (glibc). By default glibc gives freed memory
//! back to the kernel as soon as more than a little is free at the top of its heap, and
//! serves each allocation larger than anything freed before with a fresh mapping; either
//! way the next buffer of that size is faulted in and zero-filled page by page again. The
//! daemon's buffers (fetch responses, batches) come and go at the rate of its traffic, so
//! that was 10,000-70,000 page faults per GB mirrored, and on a virtual machine whose host
//! takes back freed memory each fault can cost microseconds (benches/catchup: large
//! batches' CPU followed the fault count, 0.32-0.71 CPU s per copy). Kept instead: memory
//! up to the flows' `max_in_flight_bytes`, which bounds what the daemon holds anyway, and
//! set again from the new flows at a reload (SIGHUP).

use std::sync::atomic::{AtomicBool, Ordering};

/// glibc's largest mmap threshold on 64-bit targets: allocations up to it come from the
/// heap, whose freed memory is kept (below the trim threshold) for the next buffers.
const MMAP_THRESHOLD_BYTES: u64 = 32 << 20;

/// The freed memory the daemon keeps with `threads` worker threads and flows of
/// `budgets_bytes` (their `max_in_flight_bytes`): their sum with one thread, `None` with
/// more. Each thread that allocates much gets its own glibc arena, which would keep as much
/// again (a two-thread runtime went over the memory bound with it).
pub fn bytes_to_keep(threads: usize, budgets_bytes: impl IntoIterator<Item = u64>) -> Option<u64> {
    (threads == 1).then(|| budgets_bytes.into_iter().fold(0, u64::saturating_add))
}

/// Whether [`keep_freed_memory`] took effect, so that a reload sets the amount again.
static KEEPING: AtomicBool = AtomicBool::new(false);

/// Keeps up to `budget_bytes` of freed memory for reuse, and serves allocations up to
/// [`MMAP_THRESHOLD_BYTES`] from the heap. Returns whether the allocator took the settings.
pub fn keep_freed_memory(budget_bytes: u64) -> bool {
    let kept = set_thresholds(MMAP_THRESHOLD_BYTES, trim_threshold_bytes(budget_bytes));
    KEEPING.store(kept, Ordering::Relaxed);
    kept
}

/// A reload changed the flows to ones of `budgets_bytes`: while freed memory is kept, the
/// amount follows them (a lower budget must not keep the old, larger amount resident).
/// Returns the new trim threshold, or `None` when nothing is kept (more threads, another C
/// library).
pub fn flows_changed(budgets_bytes: impl IntoIterator<Item = u64>) -> Option<u64> {
    if !KEEPING.load(Ordering::Relaxed) {
        return None;
    }
    let budget_bytes = budgets_bytes.into_iter().fold(0, u64::saturating_add);
    keep_freed_memory(budget_bytes).then(|| trim_threshold_bytes(budget_bytes))
}

/// The trim threshold for a budget: the budget, at least the mmap threshold (the heap keeps
/// one buffer of any size it serves), at most what `mallopt` takes (an `int`).
fn trim_threshold_bytes(budget_bytes: u64) -> u64 {
    budget_bytes.clamp(MMAP_THRESHOLD_BYTES, i32::MAX as u64)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_thresholds(mmap_bytes: u64, trim_bytes: u64) -> bool {
    let set = |param, bytes: u64| {
        i32::try_from(bytes).is_ok_and(|value| {
            // SAFETY: mallopt only changes the allocator's tuning; a value it does not
            // take is refused (0), never acted on.
            unsafe { libc::mallopt(param, value) == 1 }
        })
    };
    set(libc::M_MMAP_THRESHOLD, mmap_bytes) && set(libc::M_TRIM_THRESHOLD, trim_bytes)
}

/// Other C libraries have no such settings.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_thresholds(_mmap_bytes: u64, _trim_bytes: u64) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_thread_keeps_its_flows_budgets_more_threads_nothing() {
        assert_eq!(bytes_to_keep(1, [16 << 20, 8 << 20]), Some(24 << 20));
        assert_eq!(bytes_to_keep(1, [u64::MAX, 1]), Some(u64::MAX));
        assert_eq!(bytes_to_keep(2, [16 << 20]), None);
    }

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

    /// Once freed memory is kept, a reload's new budgets set the amount again (the old one
    /// is not kept for a smaller topology); the test binary's allocator is the process's.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_reload_sets_the_amount_from_the_new_flows() {
        assert!(keep_freed_memory(256 << 20));
        assert_eq!(flows_changed([48 << 20, 16 << 20]), Some(64 << 20));
        assert_eq!(flows_changed([1 << 20]), Some(MMAP_THRESHOLD_BYTES));
    }
}
