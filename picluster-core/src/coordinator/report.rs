//! What the coordinator tells clients about jobs and workers, built from the tables:
//! progress, listings, reports, a job's detail, why a job waits, and the cluster
//! status.

use super::jobs::{Job, JobTable};
use super::journal::UnixMillis;
use super::leases::LeaseTable;
use super::tables::Tables;
use super::workers::WorkerTable;
use crate::ids::{JobId, WorkerId};
use crate::job::SearchMode;
use crate::wire::{
    ClusterStatus, Contribution, JobDetail, JobProgress, JobReport, JobState, JobSummary, JobTimes,
    JobWorker, WorkerState, WorkerStatus, MAX_LISTED_JOBS, MAX_LISTED_SOLUTIONS,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

pub(super) fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// Builds reports at one instant, with the wall clock to date them and the worker
/// table to say who holds what.
pub(super) struct Reporter<'a> {
    pub(super) now: Instant,
    /// The wall clock's anchor: `UnixMillis` at an instant.
    pub(super) clock: (Instant, UnixMillis),
    pub(super) workers: &'a WorkerTable,
    pub(super) jobs: &'a JobTable,
    pub(super) leases: &'a LeaseTable,
}

/// The wall clock at `t`, from an anchor: `UnixMillis` at an instant.
pub(super) fn wall_clock(clock: (Instant, UnixMillis), t: Instant) -> UnixMillis {
    let (at, ms) = clock;
    if t >= at {
        ms.saturating_add(millis(t - at))
    } else {
        ms.saturating_sub(millis(at - t))
    }
}

/// A worker listed though not connected (quarantined, drained, or just drained).
pub(super) fn absent_worker(
    name: &str,
    state: WorkerState,
    drain_reason: Option<String>,
) -> WorkerStatus {
    WorkerStatus {
        name: name.to_string(),
        worker: WorkerId(0),
        state,
        threads: 0,
        arch: String::new(),
        kernel_impl: String::new(),
        rate_hps: 0,
        hashes: 0,
        leases: 0,
        connected_ms: 0,
        kernels: Vec::new(),
        drain_reason,
        jobs: Vec::new(),
        millicelsius: None,
        throttled: None,
        silent_ms: 0,
    }
}

/// Who found each of `solutions`: an index into `slot`'s list (`u32::MAX` if
/// unknown).
fn finders(
    job: &Job,
    solutions: &[crate::kernel::Solution],
    slot: &BTreeMap<&str, u32>,
) -> Vec<u32> {
    solutions
        .iter()
        .map(|s| {
            job.record
                .found_by
                .get(&s.index)
                .and_then(|w| slot.get(w.as_str()))
                .copied()
                .unwrap_or(u32::MAX)
        })
        .collect()
}

impl<'a> Reporter<'a> {
    /// A reporter over the tables at `now`, dating with the wall clock anchored at
    /// `clock`.
    pub(super) fn new(t: &'a Tables, now: Instant, clock: (Instant, UnixMillis)) -> Reporter<'a> {
        Reporter {
            now,
            clock,
            workers: &t.workers,
            jobs: &t.jobs,
            leases: &t.leases,
        }
    }

    /// The jobs kept, by id: every live one, then the newest finished ones, up to
    /// [`MAX_LISTED_JOBS`] in all; only `client`'s when given. It costs what it
    /// lists: a client's listing skips other clients' jobs before building anything,
    /// and why each queued job waits comes from one look at the workers and the queue.
    pub(super) fn listing(&self, client: Option<&str>) -> Vec<JobSummary> {
        let theirs = |job: &Job| client.is_none_or(|c| job.record.client == c);
        let queue = Queue::new(self.workers, self.jobs);
        let live: Box<dyn Iterator<Item = (JobId, &Job)>> = match client {
            Some(client) => Box::new(self.jobs.live_of_client(client)),
            None => Box::new(self.jobs.live()),
        };
        let mut listed: Vec<JobSummary> = live
            .take(MAX_LISTED_JOBS)
            .map(|(id, job)| self.summary_in(id, job, &queue))
            .collect();
        let room = MAX_LISTED_JOBS - listed.len();
        listed.extend(
            self.jobs
                .all()
                .rev()
                .filter(|(_, job)| job.record.state.is_final() && theirs(job))
                .take(room)
                .map(|(id, job)| self.summary_in(id, job, &queue)),
        );
        listed.sort_by_key(|s| s.progress.job);
        listed
    }

    /// Connected workers (by name) and the jobs kept; for `client`, its own jobs
    /// only, and of each worker's jobs only its own (the workers themselves, their
    /// names and rates, every client sees).
    pub(super) fn status(&self, client: Option<&str>) -> ClusterStatus {
        let mut workers = self.workers_status();
        if let Some(client) = client {
            for w in &mut workers {
                w.jobs.retain(|id| {
                    self.jobs
                        .get(*id)
                        .is_some_and(|j| j.record.client == client)
                });
            }
        }
        ClusterStatus {
            workers,
            jobs: self.listing(client),
        }
    }

    fn unix_ms(&self, t: Instant) -> UnixMillis {
        wall_clock(self.clock, t)
    }

    fn times(&self, job: &Job) -> JobTimes {
        JobTimes {
            submitted_ms: self.unix_ms(job.session.submitted),
            started_ms: job.session.started.map(|t| self.unix_ms(t)),
            ended_ms: job.session.finished.map(|t| self.unix_ms(t)),
        }
    }

    pub(super) fn progress(&self, id: JobId, job: &Job) -> JobProgress {
        let end = job.session.finished.unwrap_or(self.now);
        let workers: std::collections::BTreeSet<_> = job
            .session
            .leases
            .iter()
            .filter_map(|l| self.leases.get(*l).map(|l| l.worker))
            .collect();
        JobProgress {
            job: id,
            state: job.record.state,
            hashes: job.record.hashes,
            keyspace: job.record.keyspace,
            elapsed_ms: millis(end.saturating_duration_since(job.session.submitted)),
            solutions: job.record.solutions.len() as u32,
            workers: workers.len() as u32,
        }
    }

    pub(super) fn summary(&self, id: JobId, job: &Job) -> JobSummary {
        self.summary_in(id, job, &Queue::new(self.workers, self.jobs))
    }

    fn summary_in(&self, id: JobId, job: &Job, queue: &Queue) -> JobSummary {
        JobSummary {
            progress: self.progress(id, job),
            kind: kind_name(job),
            mode: job.record.spec.mode,
            priority: job.record.priority,
            client: job.record.client.clone(),
            times: self.times(job),
            waiting: queue.waiting(id, job),
        }
    }

    /// The job's report (final or not). In first mode it lists the solution with the
    /// lowest index and counts the others found; in all mode every solution kept.
    pub(super) fn report(&self, id: JobId, job: &Job) -> JobReport {
        let record = &job.record;
        let (contributions, slot) = self.contributions(job);
        let first = record.spec.mode == SearchMode::First;
        let listed: Vec<_> = if first {
            record.solutions.values().take(1).cloned().collect()
        } else {
            record.solutions.values().cloned().collect()
        };
        let found_by = finders(job, &listed, &slot);
        JobReport {
            job: id,
            state: record.state,
            others: if first {
                record.solutions.len().saturating_sub(1) as u64
            } else {
                // Found beyond the kept ones (`truncated`).
                record.beyond.len() as u64
            },
            solutions: listed,
            truncated: record.truncated,
            hashes: record.hashes,
            keyspace: record.keyspace,
            elapsed_ms: self.progress(id, job).elapsed_ms,
            contributions,
            error: record.failure.as_ref().map(ToString::to_string),
            failure: record.failure.clone(),
            kind: kind_name(job),
            found_by,
            times: self.times(job),
        }
    }

    /// Every worker that committed part of the job or found one of its solutions, by
    /// name, and each one's position in that list.
    fn contributions<'j>(&self, job: &'j Job) -> (Vec<Contribution>, BTreeMap<&'j str, u32>) {
        let record = &job.record;
        let mut names: BTreeMap<&str, u64> = record
            .contributions
            .iter()
            .map(|(w, h)| (w.as_str(), *h))
            .collect();
        for w in record.found_by.values() {
            names.entry(w.as_str()).or_insert(0);
        }
        let slot = names
            .keys()
            .enumerate()
            .map(|(i, w)| (*w, i as u32))
            .collect();
        let list = names
            .into_iter()
            .map(|(worker, hashes)| Contribution {
                worker: worker.to_string(),
                hashes,
                chunks: job.session.chunks_by.get(worker).copied().unwrap_or(0),
            })
            .collect();
        (list, slot)
    }

    /// One job in detail.
    pub(super) fn detail(&self, id: JobId, job: &Job) -> JobDetail {
        let record = &job.record;
        let blank = |name: &str| JobWorker {
            worker: name.to_string(),
            hashes: record.contributions.get(name).copied().unwrap_or(0),
            chunks: job.session.chunks_by.get(name).copied().unwrap_or(0),
            leases: 0,
            solutions: record.found_by.values().filter(|f| *f == name).count() as u32,
        };
        let mut workers: BTreeMap<String, JobWorker> = BTreeMap::new();
        let named = record
            .contributions
            .keys()
            .chain(job.session.chunks_by.keys())
            .chain(record.found_by.values());
        for name in named {
            workers.entry(name.clone()).or_insert_with(|| blank(name));
        }
        for lease in &job.session.leases {
            let name = self
                .leases
                .get(*lease)
                .and_then(|l| self.workers.get(l.worker))
                .map(|w| w.name.clone());
            if let Some(name) = name {
                workers
                    .entry(name.clone())
                    .or_insert_with(|| blank(&name))
                    .leases += 1;
            }
        }
        let slot: BTreeMap<&str, u32> = workers
            .keys()
            .enumerate()
            .map(|(i, w)| (w.as_str(), i as u32))
            .collect();
        let solutions: Vec<_> = record
            .solutions
            .values()
            .take(MAX_LISTED_SOLUTIONS)
            .cloned()
            .collect();
        let found_by = finders(job, &solutions, &slot);
        JobDetail {
            summary: self.summary(id, job),
            work: job.session.work.as_ref().clone(),
            workers: workers.into_values().collect(),
            reassigned: job.session.reassigned,
            steals: job.session.steals,
            unassigned: record.unassigned(),
            solutions,
            found_by,
        }
    }

    /// Every greeted worker, by name, then the quarantined and the drained ones that
    /// are not connected.
    pub(super) fn workers_status(&self) -> Vec<WorkerStatus> {
        let workers = self.workers;
        let mut list: Vec<WorkerStatus> = workers
            .iter()
            .filter_map(|(_, w)| {
                w.hello().map(|h| {
                    let mut jobs: Vec<JobId> = w
                        .leases()
                        .iter()
                        .filter_map(|l| self.leases.get(*l).map(|l| l.job))
                        .collect();
                    jobs.dedup();
                    WorkerStatus {
                        name: w.name.clone(),
                        worker: w.id,
                        state: if w.is_suspect() {
                            WorkerState::Unresponsive
                        } else if workers.is_drained(&w.name) {
                            if w.leases().is_empty() {
                                WorkerState::Drained
                            } else {
                                WorkerState::Draining
                            }
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
                        connected_ms: millis(self.now.saturating_duration_since(w.connected)),
                        kernels: h.kernels.clone(),
                        drain_reason: workers.drain_reason(&w.name).map(str::to_string),
                        jobs,
                        millicelsius: w.health.and_then(|h| h.millicelsius),
                        throttled: w.health.and_then(|h| h.throttled),
                        silent_ms: millis(self.now.saturating_duration_since(w.last_heard())),
                    }
                })
            })
            .collect();
        let absent = |name: &str, state| {
            absent_worker(name, state, workers.drain_reason(name).map(str::to_string))
        };
        // Quarantined workers cannot connect, and drained ones may be away; they are
        // listed so that an admin sees them.
        list.extend(
            workers
                .quarantined()
                .map(|name| absent(name, WorkerState::Quarantined)),
        );
        let connected: std::collections::BTreeSet<String> =
            list.iter().map(|w| w.name.clone()).collect();
        list.extend(
            workers
                .drained()
                .filter(|name| !connected.contains(*name))
                .map(|name| absent(name, WorkerState::Drained)),
        );
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }
}

/// What says why queued jobs wait, looked at once for a listing: which kernels the
/// greeted and the usable (not drained, not unresponsive) workers have, and the
/// queue.
struct Queue<'a> {
    greeted: bool,
    usable: bool,
    /// Custom kernels some greeted worker has...
    greeted_kernels: BTreeSet<&'a str>,
    /// ...and some usable worker has.
    usable_kernels: BTreeSet<&'a str>,
    jobs: &'a JobTable,
}

impl<'a> Queue<'a> {
    fn new(workers: &'a WorkerTable, jobs: &'a JobTable) -> Queue<'a> {
        let mut queue = Queue {
            greeted: false,
            usable: false,
            greeted_kernels: BTreeSet::new(),
            usable_kernels: BTreeSet::new(),
            jobs,
        };
        for (_, w) in workers.iter() {
            let Some(hello) = w.hello() else { continue };
            let usable = !w.is_suspect() && !workers.is_drained(&w.name);
            queue.greeted = true;
            queue.usable |= usable;
            for kernel in &hello.kernels {
                queue.greeted_kernels.insert(kernel);
                if usable {
                    queue.usable_kernels.insert(kernel);
                }
            }
        }
        queue
    }

    /// Why a queued job is not running; `None` if it is not waiting.
    fn waiting(&self, id: JobId, job: &Job) -> Option<String> {
        if job.record.state != JobState::Queued {
            return None;
        }
        if !job.session.orphans.is_empty() {
            return Some("holding its chunks for their workers to reclaim after a restart".into());
        }
        if !self.greeted {
            return Some("no workers connected".into());
        }
        let usable = match job.record.spec.kind.custom_kernel() {
            None => self.usable,
            Some(name) if !self.greeted_kernels.contains(name) => {
                return Some(format!("no connected worker has kernel \"{name}\""));
            }
            Some(name) => self.usable_kernels.contains(name),
        };
        if !usable {
            return Some("every worker that can run it is drained or unresponsive".into());
        }
        let ahead = self.jobs.ahead_of(id, job.record.priority);
        Some(if ahead > 0 {
            format!(
                "workers busy: {ahead} job{} ahead of it",
                if ahead == 1 { "" } else { "s" }
            )
        } else {
            "waiting for a worker to ask for work".into()
        })
    }
}

/// `sha256d`, `hashcash`, `preimage`, `custom:NAME`.
pub(super) fn kind_name(job: &Job) -> String {
    let kind = &job.record.spec.kind;
    match kind.custom_kernel() {
        Some(name) => format!("custom:{name}"),
        None => kind.name().to_string(),
    }
}
