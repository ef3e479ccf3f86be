//! Small helpers for state shared between threads.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering from poisoning: the maps and counters picluster keeps behind
/// mutexes are left consistent by every operation, so a panic elsewhere while the lock
/// was held does not make them unusable.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
