//! What the coordinator counts for monitoring, and the snapshot it hands the metrics
//! endpoint (`crate::service::metrics` encodes it for Prometheus). Counters are per
//! worker name and cumulative since the coordinator started, so that a worker that
//! reconnects keeps its series; labels are the worker's name and the job's kind, never
//! a job id.

use super::journal::UnixMillis;
use super::report::{self, Reporter};
use super::tables::Tables;
use crate::ids::JobId;
use crate::wire::{JobState, WorkerState};
use std::collections::BTreeMap;
use std::time::Instant;

/// Counters for what the coordinator noticed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoordinatorStats {
    /// Reports naming a lease that had expired, been revoked or completed.
    pub stale_reports: u64,
    /// Leases taken back from silent workers.
    pub expired_leases: u64,
    /// Leases taken back because their worker disconnected.
    pub lost_leases: u64,
    /// Connections closed for breaking the protocol or claiming false solutions.
    pub violations: u64,
    /// Ranges stolen from one worker's lease for another.
    pub steals: u64,
    /// Connections cut off because they did not read what they were sent.
    pub backlogged: u64,
    /// Leases a reconnected worker claimed and kept (after a restart or a lost
    /// connection).
    pub adopted_leases: u64,
    /// Leases taken back because their worker did not honour a trim: no answer
    /// within the lease timeout, or an answer that kept more than it could have
    /// begun.
    pub unhonoured_trims: u64,
    /// Leases taken back because they moved far slower than their worker has shown
    /// it can (a worker that creeps to hold work).
    pub stalled_leases: u64,
    /// Shares verified.
    pub shares: u64,
    /// Audits whose auditor found what their subject reported.
    pub audits_passed: u64,
    /// Audits that caught a worker: the subject (a solution or share it did not
    /// report) or the auditor (one it missed).
    pub audits_failed: u64,
    /// Audits dropped: their job ended first, or no worker but their subject was
    /// left to run them.
    pub audits_dropped: u64,
    /// Indices searched again by audits.
    pub audited_indices: u64,
}

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
    /// Indices it searched again for audits of other workers' ranges (not in
    /// `indices`: audits commit nothing).
    pub audited: u64,
}

/// One worker as the metrics show it.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerMetrics {
    /// Its certificate name.
    pub name: String,
    /// Whether it is connected.
    pub connected: bool,
    /// Its state now: a connected worker's, or `Quarantined` for one refused until
    /// an admin releases it (`None`: not connected, nothing to say).
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
    pub done: u128,
    /// Their keyspaces, summed (two default hashcash jobs pass 2^64).
    pub total: u128,
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
    pub stats: CoordinatorStats,
    /// Jobs submitted this run.
    pub submitted: u64,
    /// Connected mining bridges' last reports, by client name.
    pub miners: Vec<(String, crate::wire::MinerReport)>,
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

/// The metrics at `now`: every worker name seen this run with its state, rate and
/// totals; jobs by state; live jobs' progress by kind; connected peers by role; the
/// coordinator's counters.
pub(super) fn snapshot(
    t: &Tables,
    totals: &BTreeMap<String, WorkerTotals>,
    stats: CoordinatorStats,
    submitted: u64,
    clock: (Instant, UnixMillis),
    now: Instant,
) -> MetricsSnapshot {
    let status = Reporter::new(t, now, clock).workers_status();
    let kinds: BTreeMap<JobId, String> = t
        .jobs
        .live()
        .map(|(id, job)| (id, report::kind_name(job)))
        .collect();
    let mut workers: BTreeMap<String, WorkerMetrics> = BTreeMap::new();
    for w in &status {
        let kind = w
            .jobs
            .first()
            .and_then(|j| kinds.get(j))
            .cloned()
            .unwrap_or_else(|| "sha256d".to_string());
        workers.insert(
            w.name.clone(),
            WorkerMetrics {
                name: w.name.clone(),
                connected: w.worker.0 != 0,
                state: (w.worker.0 != 0 || w.state == WorkerState::Quarantined).then_some(w.state),
                rate: w.rate_hps as f64,
                kind,
                threads: w.threads,
                totals: totals.get(&w.name).copied().unwrap_or_default(),
            },
        );
    }
    for (name, totals) in totals {
        workers
            .entry(name.clone())
            .or_insert_with(|| WorkerMetrics {
                name: name.clone(),
                connected: false,
                state: None,
                rate: 0.0,
                kind: "sha256d".to_string(),
                threads: 0,
                totals: *totals,
            });
    }
    let mut jobs: BTreeMap<&'static str, u64> = MetricsSnapshot::JOB_STATES
        .iter()
        .map(|s| (s.as_str(), 0))
        .collect();
    // The built-in kinds always have a series (0 when none is live).
    let mut progress: BTreeMap<String, KindProgress> = ["sha256d", "hashcash", "preimage"]
        .into_iter()
        .map(|k| (k.to_string(), KindProgress::default()))
        .collect();
    for (id, job) in t.jobs.all() {
        *jobs.entry(job.record.state.as_str()).or_default() += 1;
        if let Some(kind) = kinds.get(&id) {
            let p = progress.entry(kind.clone()).or_default();
            p.done += u128::from(job.record.hashes);
            p.total += u128::from(job.record.keyspace);
        }
    }
    let greeted = t
        .workers
        .iter()
        .filter(|(_, w)| w.hello().is_some())
        .count() as u64;
    let connections = BTreeMap::from([
        ("worker", greeted),
        ("client", t.conns.clients() as u64),
        ("joining", t.conns.joining() as u64),
    ]);
    MetricsSnapshot {
        workers: workers.into_values().collect(),
        jobs,
        progress,
        connections,
        stats,
        submitted,
        miners: t
            .conns
            .miners(None)
            .map(|(client, report, _)| (client.to_string(), report.clone()))
            .collect(),
    }
}
