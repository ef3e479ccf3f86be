//! What the coordinator tells clients about jobs and workers, built from the tables:
//! progress, listings, reports and the cluster status.

use super::jobs::Job;
use super::workers::WorkerTable;
use crate::ids::{JobId, WorkerId};
use crate::wire::{Contribution, JobProgress, JobReport, JobSummary, WorkerState, WorkerStatus};
use std::time::{Duration, Instant};

pub(super) fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

pub(super) fn progress_of(id: JobId, job: &Job, now: Instant) -> JobProgress {
    let end = job.session.finished.unwrap_or(now);
    JobProgress {
        job: id,
        state: job.record.state,
        hashes: job.record.hashes,
        keyspace: job.record.keyspace,
        elapsed_ms: millis(end.saturating_duration_since(job.session.submitted)),
        solutions: job.record.solutions.len() as u32,
    }
}

pub(super) fn summary_of(id: JobId, job: &Job, now: Instant) -> JobSummary {
    let kind = &job.record.spec.kind;
    JobSummary {
        progress: progress_of(id, job, now),
        kind: match kind.custom_kernel() {
            Some(name) => format!("custom:{name}"),
            None => kind.name().to_string(),
        },
        mode: job.record.spec.mode,
        priority: job.record.priority,
        client: job.record.client.clone(),
    }
}

pub(super) fn report_of(id: JobId, job: &Job, now: Instant) -> JobReport {
    let record = &job.record;
    JobReport {
        job: id,
        state: record.state,
        solutions: record.solutions.values().cloned().collect(),
        truncated: record.truncated,
        hashes: record.hashes,
        keyspace: record.keyspace,
        elapsed_ms: progress_of(id, job, now).elapsed_ms,
        contributions: record
            .contributions
            .iter()
            .map(|(worker, hashes)| Contribution {
                worker: worker.clone(),
                hashes: *hashes,
            })
            .collect(),
        error: record.failure.as_ref().map(ToString::to_string),
        failure: record.failure.clone(),
    }
}

/// Every greeted worker, by name.
pub(super) fn workers_status(workers: &WorkerTable, now: Instant) -> Vec<WorkerStatus> {
    let mut list: Vec<WorkerStatus> = workers
        .iter()
        .filter_map(|(_, w)| {
            w.hello().map(|h| WorkerStatus {
                name: w.name.clone(),
                worker: w.id,
                state: if w.is_suspect() {
                    WorkerState::Unresponsive
                } else if workers.is_drained(&w.name) {
                    WorkerState::Draining
                } else if w.leases().is_empty() {
                    WorkerState::Idle
                } else {
                    WorkerState::Busy
                },
                threads: h.threads,
                arch: h.arch.clone(),
                kernel_impl: h.kernel_impl.clone(),
                rate_hps: if w.rate_hps > 0.0 {
                    w.rate_hps as u64
                } else {
                    h.bench_hps
                },
                hashes: w.hashes,
                leases: w.leases().len() as u32,
                connected_ms: millis(now.saturating_duration_since(w.connected)),
            })
        })
        .collect();
    // Quarantined workers cannot connect; they are listed so that an admin sees them.
    list.extend(workers.quarantined().map(|name| WorkerStatus {
        name: name.to_string(),
        worker: WorkerId(0),
        state: WorkerState::Quarantined,
        threads: 0,
        arch: String::new(),
        kernel_impl: String::new(),
        rate_hps: 0,
        hashes: 0,
        leases: 0,
        connected_ms: 0,
    }));
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}
