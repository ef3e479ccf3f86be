//! Scheduling decisions as pure functions over the tables: a worker's rate on a job,
//! chunk sizes (calibration, speed-proportional shares of a small remainder, the
//! 1.2-chunk tail rule), adaptive prefetch, and which job the next chunk goes to
//! (priority, then fairness between clients, then age). [`decide`] returns what to do
//! for one worker; `Coordinator::schedule` carries it out (through `leasing`), so
//! nothing here mutates a table.

use super::jobs::JobTable;
use super::leases::LeaseTable;
use super::workers::WorkerTable;
use super::CoordinatorConfig;
use crate::ids::{ConnId, JobId};
use crate::job::JobKind;
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Instant;

/// The tables a decision reads.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    pub(super) config: &'a CoordinatorConfig,
    pub(super) jobs: &'a JobTable,
    pub(super) leases: &'a LeaseTable,
    pub(super) workers: &'a WorkerTable,
}

/// What to do for one worker that may want work.
pub(super) enum Decision {
    /// It cannot be given work now; it comes back when it is ready again.
    NotReady,
    /// It holds all the leases it may; it comes back when it frees a slot.
    Full,
    /// Nothing it can run is queued: a steal may help. It stays wanting, for the
    /// next job submitted.
    NothingToRun,
    /// Give it `range` of `job` (the front of the job's queue).
    Assign {
        /// The job.
        job: JobId,
        /// The range.
        range: Range<u64>,
    },
    /// Give it the front of the job's queued audit at `index` (another worker's
    /// range), at most `size` indices: the rest stays queued for the next worker.
    Audit {
        /// The job.
        job: JobId,
        /// Its place in the job's audit queue.
        index: usize,
        /// The most it may take: a chunk at its rate.
        size: u64,
    },
}

/// The next chunk for worker `conn`. `left_at_start` remembers, per job, what was
/// unassigned when the current scheduling pass began: a job with less unassigned work
/// than the cluster eats in one round of chunks is shared out in proportion to speed
/// from that, rather than the first worker taking a full chunk and the rest slivers.
pub(super) fn decide(
    view: View<'_>,
    rates: &mut RateCache,
    left_at_start: &mut BTreeMap<JobId, u64>,
    now: Instant,
    conn: ConnId,
) -> Decision {
    if !view.workers.is_ready(conn) {
        return Decision::NotReady;
    }
    let Some(job_id) = view.next_job_to_serve(conn) else {
        return Decision::NothingToRun;
    };
    let held = view.workers.get(conn).map_or(0, |w| w.leases().len());
    if held >= view.prefetch(conn, job_id) {
        return Decision::Full;
    }
    let Some(job) = view.jobs.get(job_id) else {
        return Decision::NothingToRun;
    };
    let total_rate = rates.total_rate(view, now, job_id);
    // Audits first: they are few, and the job cannot end before them. A piece is at
    // most a chunk of the auditor's and, once nothing else of the job is queued, its
    // share of the sample by speed: the job's end does not wait on one slow
    // auditor.
    if let Some(index) = view
        .workers
        .get(conn)
        .and_then(|w| job.session.audit_for(&w.name))
    {
        let mut size = view.chunk_size(conn, job_id);
        if job.record.pending.is_empty() {
            let sample =
                job.session.audits[index].range.end - job.session.audits[index].range.start;
            let share = (sample as f64 * view.rate(conn, job_id) / total_rate).ceil() as u64;
            size = size.min(share.max(view.min_chunk(job_id)));
        }
        return Decision::Audit {
            job: job_id,
            index,
            size,
        };
    }
    let left = *left_at_start
        .entry(job_id)
        .or_insert_with(|| job.record.unassigned());
    let share = (left as f64 * view.rate(conn, job_id) / total_rate).ceil() as u64;
    let chunk = view
        .chunk_size(conn, job_id)
        .min(share.max(view.min_chunk(job_id)));
    let Some(front) = job.record.pending.front().cloned() else {
        return Decision::NothingToRun;
    };
    // A remainder of at most 1.2 chunks goes whole: splitting it would leave a
    // sliver that costs a round trip for little work.
    let range = if front.end - front.start <= chunk + chunk / 5 {
        front
    } else {
        front.start..front.start + chunk
    };
    Decision::Assign { job: job_id, range }
}

impl View<'_> {
    /// A worker's rate on a job in indices per second, at least 1: measured; else its
    /// SHA-256d benchmark scaled by the kind's relative cost; else (a custom kernel)
    /// one block per thread in a calibration time.
    pub(super) fn rate(&self, conn: ConnId, job_id: JobId) -> f64 {
        let Some(w) = self.workers.get(conn) else {
            return 1.0;
        };
        let rate = match (w.measured(job_id), w.hello()) {
            (Some(hps), _) => hps,
            (None, Some(h)) => match self.jobs.get(job_id).map(|j| &j.record.spec.kind) {
                Some(JobKind::Custom(c)) => {
                    c.block as f64 * f64::from(h.threads.max(1))
                        / self.config.calibration_time.as_secs_f64()
                }
                Some(kind) => self.claimed(conn, h) / kind.relative_cost().unwrap_or(1.0),
                None => self.claimed(conn, h),
            },
            (None, None) => 0.0,
        };
        rate.max(1.0)
    }

    /// A worker's claimed benchmark, bounded by its peers' (see
    /// [`WorkerTable::bench_ceiling`](super::workers::WorkerTable::bench_ceiling)).
    fn claimed(&self, conn: ConnId, hello: &crate::wire::WorkerHello) -> f64 {
        let claim = hello.bench_hps as f64;
        self.workers
            .bench_ceiling(conn)
            .map_or(claim, |ceiling| claim.min(ceiling))
    }

    /// A chunk of `job_id` that takes about `chunk_time` at the worker's measured
    /// rate, or `calibration_time` at its estimated rate until it has been measured.
    pub(super) fn chunk_size(&self, conn: ConnId, job_id: JobId) -> u64 {
        let measured = self
            .workers
            .get(conn)
            .is_some_and(|w| w.measured(job_id).is_some());
        let time = if measured {
            self.config.chunk_time
        } else {
            self.config.calibration_time
        };
        let raw = (self.rate(conn, job_id) * time.as_secs_f64()) as u64;
        // Not clamp(): a configuration with min above max must not panic; max wins.
        raw.max(self.min_chunk(job_id)).min(self.config.max_chunk)
    }

    /// Smallest range of a job worth stealing: `min_steal`, or one block of a custom
    /// kernel.
    pub(super) fn min_steal(&self, job_id: JobId) -> u64 {
        match self.jobs.get(job_id).map(|j| &j.record.spec.kind) {
            Some(JobKind::Custom(c)) => c.block.min(self.config.min_steal),
            _ => self.config.min_steal,
        }
    }

    /// Smallest chunk of a job: `min_chunk`, or one block of a custom kernel (whose
    /// indices may each cost far more than a hash).
    pub(super) fn min_chunk(&self, job_id: JobId) -> u64 {
        match self.jobs.get(job_id).map(|j| &j.record.spec.kind) {
            Some(JobKind::Custom(c)) => c.block.min(self.config.min_chunk),
            _ => self.config.min_chunk,
        }
    }

    /// How many leases a worker may hold: `leases_per_worker`, or up to
    /// `max_prefetch` when its chunks are shorter than a progress interval.
    pub(super) fn prefetch(&self, conn: ConnId, job_id: JobId) -> usize {
        let chunk_seconds = self.chunk_size(conn, job_id) as f64 / self.rate(conn, job_id);
        if chunk_seconds < self.config.progress_interval.as_secs_f64() {
            self.config.max_prefetch.max(self.config.leases_per_worker)
        } else {
            self.config.leases_per_worker
        }
    }

    /// Whether worker `conn` can run job `job_id`: every worker runs the built-in
    /// kinds (template jobs those of minor 6 and above); a custom job needs its
    /// kernel registered; a worker that stalled on the
    /// job gets none of it again this session.
    pub(super) fn can_run(&self, conn: ConnId, job_id: JobId) -> bool {
        let Some(job) = self.jobs.get(job_id) else {
            return false;
        };
        if self
            .workers
            .get(conn)
            .is_some_and(|w| w.stalled_on.contains(&job_id))
        {
            return false;
        }
        if matches!(job.record.spec.kind, crate::job::JobKind::Template(_)) {
            // Only workers that know the kind decode it.
            return self
                .workers
                .get(conn)
                .and_then(|w| w.hello())
                .is_some_and(|h| h.minor >= crate::wire::MINOR_TEMPLATES);
        }
        match job.record.spec.kind.custom_kernel() {
            None => true,
            Some(name) => self
                .workers
                .get(conn)
                .and_then(|w| w.hello())
                .is_some_and(|h| h.kernels.iter().any(|k| k == name)),
        }
    }

    /// The job the next chunk for worker `conn` goes to: among the live jobs it can
    /// run with unassigned work (or an audit it may run), the highest priority; among equals, the job of the
    /// client with the least hash rate working for it now, so clients share the
    /// cluster fairly; then the oldest.
    pub(super) fn next_job_to_serve(&self, conn: ConnId) -> Option<JobId> {
        let name = self.workers.get(conn).map_or("", |w| w.name.as_str());
        let candidates = || {
            self.jobs.live().filter(move |(id, j)| {
                (!j.record.pending.is_empty() || j.session.audit_for(name).is_some())
                    && self.can_run(conn, *id)
            })
        };
        let top = candidates().map(|(_, j)| j.record.priority).max()?;
        let mut clients = candidates()
            .filter(|(_, j)| j.record.priority == top)
            .map(|(_, j)| j.record.client.as_str());
        let first_client = clients.next();
        if clients.all(|c| Some(c) == first_client) {
            // One client at the top priority: its oldest job, no shares to weigh.
            return candidates()
                .find(|(_, j)| j.record.priority == top)
                .map(|(id, _)| id);
        }
        let mut at_work: BTreeMap<&str, f64> = BTreeMap::new();
        for (_, lease) in self.leases.iter() {
            if let Some(job) = self.jobs.get(lease.job) {
                *at_work.entry(job.record.client.as_str()).or_default() +=
                    self.rate(lease.worker, lease.job);
            }
        }
        let share = |client: &str| at_work.get(client).copied().unwrap_or(0.0);
        candidates()
            .min_by(|(a_id, a), (b_id, b)| {
                b.record
                    .priority
                    .cmp(&a.record.priority)
                    .then(share(&a.record.client).total_cmp(&share(&b.record.client)))
                    .then(a_id.cmp(b_id))
            })
            .map(|(id, _)| id)
    }
}

/// The ready workers' total rate on each job, summed at most once a progress interval
/// and again whenever the set of ready workers changes.
#[derive(Default)]
pub(super) struct RateCache {
    /// Per job: when it was summed, the worker table's generation then, the sum.
    sums: BTreeMap<JobId, (Instant, u64, f64)>,
}

impl RateCache {
    /// The total rate on `job_id` of the ready workers that can run it.
    pub(super) fn total_rate(&mut self, view: View<'_>, now: Instant, job_id: JobId) -> f64 {
        let generation = view.workers.generation();
        if let Some((at, seen, rate)) = self.sums.get(&job_id) {
            if *seen == generation && now < *at + view.config.progress_interval {
                return *rate;
            }
        }
        let rate = view
            .workers
            .iter()
            .filter(|(conn, _)| view.workers.is_ready(*conn) && view.can_run(*conn, job_id))
            .map(|(conn, _)| view.rate(conn, job_id))
            .sum::<f64>()
            .max(1.0);
        self.sums.insert(job_id, (now, generation, rate));
        rate
    }

    /// Forgets an ended job's sum.
    pub(super) fn forget(&mut self, job_id: JobId) {
        self.sums.remove(&job_id);
    }
}
