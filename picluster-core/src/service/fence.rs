//! The leader's deadline ([`Fence`]), shared between the thread that renews the
//! leadership and the coordinator's event loop, which reads it with its own clock
//! before it carries out anything.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The leader's deadline, shared between the election thread and the coordinator's
/// event loop: past it (or while not leading) the coordinator must not act.
#[derive(Clone, Debug)]
pub struct Fence {
    base: Instant,
    /// Nanoseconds after `base`; 0: not leading.
    deadline: Arc<AtomicU64>,
}

impl Fence {
    /// A closed fence (nothing may be done until a deadline is set).
    pub fn new() -> Fence {
        Fence {
            base: Instant::now(),
            deadline: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn set(&self, deadline: Option<Instant>) {
        let nanos = deadline.map_or(0, |d| {
            (d.saturating_duration_since(self.base).as_nanos() as u64).max(1)
        });
        self.deadline.store(nanos, Ordering::Release);
    }

    /// The deadline, if leading.
    pub fn deadline(&self) -> Option<Instant> {
        match self.deadline.load(Ordering::Acquire) {
            0 => None,
            n => Some(self.base + Duration::from_nanos(n)),
        }
    }

    /// Whether the leader may act at `now`.
    pub fn is_open(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now < d)
    }
}

impl Default for Fence {
    fn default() -> Fence {
        Fence::new()
    }
}
