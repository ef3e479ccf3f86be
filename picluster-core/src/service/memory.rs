//! Giving freed memory back to the operating system. glibc's allocator keeps what a
//! flood of connections freed (their frames and QUIC buffers, interleaved with live
//! allocations) in its heap, where it still counts in the process's resident set: a
//! coordinator that took 93 MiB through a flood stayed at 61 MiB once every attacking
//! connection was gone, and a `malloc_trim` brought it to 23 MiB. So a while after
//! connections close, the accept loop asks for one trim: a burst of closes costs one.
//! Elsewhere than on glibc this does nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long after a connection closes the heap is trimmed: long enough for a burst
/// of closes (a flood timing out) to finish first.
const TRIM_AFTER: Duration = Duration::from_secs(5);

/// Trims the heap once, [`TRIM_AFTER`] the first close since the last trim.
#[derive(Clone, Default)]
pub(super) struct Trimmer {
    pending: Arc<AtomicBool>,
}

impl Trimmer {
    /// A connection closed.
    pub(super) fn closed(&self) {
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let pending = self.pending.clone();
        tokio::spawn(async move {
            tokio::time::sleep(TRIM_AFTER).await;
            pending.store(false, Ordering::Release);
            // It walks the heap: not on the runtime's threads.
            let _ = tokio::task::spawn_blocking(trim).await;
        });
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only releases free memory of the allocator's own heap; it
    // takes the allocator's locks and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
