//! What the coordinator counts for monitoring, and the snapshot it hands the metrics
//! endpoint (`crate::service::metrics` encodes it for Prometheus). Counters are per
//! worker name and cumulative since the coordinator started, so that a worker that
//! reconnects keeps its series; labels are the worker's name and the job's kind, never
//! a job id.

use crate::wire::{JobState, WorkerState};
use std::collections::BTreeMap;

/// Cumulative counts for one worker name (this coordinator run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerTotals {
    /// Keyspace indices it committed.
    pub indices: u64,
    /// Chunks (leases) it was given.
    pub chunks: u64,
    /// Its leases that expired (it went silent or stopped moving).
    pub expired: u64,
    /// Its leases cut short to give their tail to an idle worker.
    pub stolen: u64,
    /// Its leases returned to the queue because its connection ended.
    pub lost: u64,
    /// Verified solutions it found.
    pub solutions: u64,
    /// Its claims refused as false (a solution or share that does not verify, or
    /// too few shares): each quarantines it.
    pub rejected: u64,
}

/// One worker as the metrics show it.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerMetrics {
    /// Its certificate name.
    pub name: String,
    /// Its state now (`None`: not connected).
    pub state: Option<WorkerState>,
    /// Its measured rate, per second (its benchmark until measured).
    pub rate: f64,
    /// The kind of job that rate is measured on (`sha256d` when idle).
    pub kind: String,
    /// Compute threads.
    pub threads: u32,
    /// Cumulative counts.
    pub totals: WorkerTotals,
}

/// Live jobs of one kind: how far they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KindProgress {
    /// Indices committed of the live jobs of this kind.
    pub done: u64,
    /// Their keyspaces, summed.
    pub total: u64,
}

/// Everything the metrics endpoint shows of the coordinator, at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Every worker name seen this run, connected or not.
    pub workers: Vec<WorkerMetrics>,
    /// Jobs kept, by state.
    pub jobs: BTreeMap<&'static str, u64>,
    /// Live jobs' progress, by kind.
    pub progress: BTreeMap<String, KindProgress>,
    /// Connected peers by role: `worker`, `client` (admins included), `joining`.
    pub connections: BTreeMap<&'static str, u64>,
    /// The coordinator's own counters.
    pub stats: super::CoordinatorStats,
    /// Jobs submitted this run.
    pub submitted: u64,
}

impl MetricsSnapshot {
    /// Every job state, so that a state with no job shows as 0.
    pub const JOB_STATES: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Completed,
        JobState::Cancelled,
        JobState::Failed,
    ];
}
