//! The job table: every job the coordinator knows, split into what must outlive the
//! process ([`JobRecord`], what the journal persists) and what belongs to this
//! session ([`JobSession`]: leases, watchers, the verifying kernel, times). Live jobs
//! (queued or running) are indexed apart from finished ones, so that scheduling and
//! progress pushes cost what the live jobs cost; finished jobs are kept for listings,
//! `wait` and late watchers until the retention limits drop them.

use super::CoordinatorConfig;
use crate::ids::{ConnId, JobId, LeaseId};
use crate::job::JobSpec;
use crate::kernel::{SearchKernel, Solution};
use crate::wire::{ChunkOutput, JobFailure, JobState, WorkSpec};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

/// What must survive a restart of the coordinator: the job, who asked for it, what is
/// done and what it found.
pub(super) struct JobRecord {
    pub(super) spec: JobSpec,
    pub(super) priority: i32,
    /// The submitting client's certificate name: fairness is between clients.
    pub(super) client: String,
    pub(super) keyspace: u64,
    /// Unassigned ranges, disjoint and sorted by index.
    pub(super) pending: VecDeque<Range<u64>>,
    pub(super) state: JobState,
    /// Indices committed (each counted once).
    pub(super) hashes: u64,
    pub(super) solutions: BTreeMap<u64, Solution>,
    /// The worker that found each solution, by index (missing for solutions recovered
    /// from a store written before finders were kept).
    pub(super) found_by: BTreeMap<u64, String>,
    /// Solutions beyond `MAX_SOLUTIONS` were dropped.
    pub(super) truncated: bool,
    /// The indices of the solutions dropped beyond `MAX_SOLUTIONS` (each counted
    /// once, however often it is reported), at most [`MAX_COUNTED_BEYOND`]: a
    /// report's `others` in all mode. The store keeps every solution; a restart
    /// rebuilds this from it.
    pub(super) beyond: BTreeSet<u64>,
    /// Indices committed by each worker, by name.
    pub(super) contributions: BTreeMap<String, u64>,
    /// A custom job's results, in the order they were committed.
    pub(super) outputs: Vec<ChunkOutput>,
    pub(super) output_bytes: u64,
    pub(super) failure: Option<JobFailure>,
    /// The ranges each worker committed in this session (not made durable): what is
    /// searched again if the worker turns out to lie.
    pub(super) committed_by: BTreeMap<String, Vec<Range<u64>>>,
    /// How many of each worker's ranges above came before its last verified share
    /// (vouched for by it).
    pub(super) vouched: BTreeMap<String, usize>,
}

impl JobRecord {
    /// Worker `name` committed `range`.
    pub(super) fn note_committed(&mut self, name: &str, range: Range<u64>) {
        let vouched = self.vouched.get(name).copied().unwrap_or(0);
        let ranges = self.committed_by.entry(name.to_string()).or_default();
        // A vouched range is not extended by work that came after the share.
        let open = ranges.len() > vouched;
        match ranges.last_mut() {
            Some(last) if open && last.end == range.start => last.end = range.end,
            _ => ranges.push(range),
        }
    }

    /// A share of worker `name` verified: what it committed so far is vouched for.
    pub(super) fn vouch(&mut self, name: &str) {
        let n = self.committed_by.get(name).map_or(0, Vec::len);
        self.vouched.insert(name.to_string(), n);
    }

    /// Uncommits what worker `name` committed in this session (`all`), or since its
    /// last verified share: those ranges return to the queue and leave the job's and
    /// the worker's counts. Returns how many indices.
    pub(super) fn uncommit(&mut self, name: &str, all: bool) -> u64 {
        let mut ranges = self.committed_by.remove(name).unwrap_or_default();
        let vouched = self.vouched.remove(name).unwrap_or(0);
        if !all && vouched > 0 {
            let suspect = ranges.split_off(vouched.min(ranges.len()));
            self.committed_by.insert(name.to_string(), ranges);
            self.vouched.insert(name.to_string(), vouched);
            ranges = suspect;
        }
        let mut total = 0;
        for r in ranges {
            total += r.end - r.start;
            self.requeue(r);
        }
        self.hashes = self.hashes.saturating_sub(total);
        if let Some(n) = self.contributions.get_mut(name) {
            *n = n.saturating_sub(total);
            if *n == 0 {
                self.contributions.remove(name);
            }
        }
        total
    }
    /// Indices not yet handed out.
    pub(super) fn unassigned(&self) -> u64 {
        self.pending.iter().map(|r| r.end - r.start).sum()
    }

    /// Returns `range` to the queue, keeping it in index order (so work is searched
    /// in order).
    pub(super) fn requeue(&mut self, range: Range<u64>) {
        let at = self.pending.partition_point(|r| r.start < range.start);
        self.pending.insert(at, range);
    }

    /// Takes `range` out of the queue if every index of it is queued (it may span
    /// adjacent queued ranges); `false`, changing nothing, otherwise.
    pub(super) fn take_exact(&mut self, range: &Range<u64>) -> bool {
        if range.start >= range.end {
            return true;
        }
        let mut at = range.start;
        for r in self.pending.iter() {
            if r.end <= at {
                continue;
            }
            if r.start > at {
                break;
            }
            at = r.end;
            if at >= range.end {
                break;
            }
        }
        if at < range.end {
            return false;
        }
        let mut kept = VecDeque::with_capacity(self.pending.len() + 1);
        for r in self.pending.drain(..) {
            if r.end <= range.start || r.start >= range.end {
                kept.push_back(r);
                continue;
            }
            if r.start < range.start {
                kept.push_back(r.start..range.start);
            }
            if r.end > range.end {
                kept.push_back(range.end..r.end);
            }
        }
        self.pending = kept;
        true
    }

    /// Takes `range`, which starts the first pending range, out of the queue.
    pub(super) fn take_front(&mut self, range: &Range<u64>) {
        let Some(front) = self.pending.pop_front() else {
            return;
        };
        debug_assert!(front.start == range.start && range.end <= front.end);
        if range.end < front.end {
            self.pending.push_front(range.end..front.end);
        }
    }
}

/// What belongs to this coordinator session only.
pub(super) struct JobSession {
    /// The kernel that verifies claimed solutions; `None` for a custom job.
    pub(super) kernel: Option<Arc<dyn SearchKernel>>,
    /// The job as every `Assign` carries it, shared rather than copied per chunk.
    pub(super) work: Arc<WorkSpec>,
    /// `work`'s digest, which a worker's claim of a lease must match.
    pub(super) digest: [u8; 32],
    /// After a restart: the leases the previous run had given, held back (out of
    /// the queue) for their workers to claim until the adoption deadline.
    pub(super) orphans: BTreeMap<LeaseId, Orphan>,
    /// Leases of this run taken back from a worker that was lost (disconnected or
    /// silent), at most [`MAX_LOST_LEASES`], the oldest forgotten first: who may adopt
    /// the rest, and at what share target.
    pub(super) lost: BTreeMap<LeaseId, LostLease>,
    pub(super) leases: BTreeSet<LeaseId>,
    pub(super) watchers: BTreeSet<ConnId>,
    /// Progress changed since watchers were last told.
    pub(super) dirty: bool,
    /// The journal's sequence number of the job's last record that its report
    /// depends on (its submission, solutions, results): a `Completed` report and
    /// progress wait for it, not for the job's checkpoint rows.
    pub(super) content_seq: u64,
    pub(super) submitted: Instant,
    /// When a worker first got a chunk of it (this session).
    pub(super) started: Option<Instant>,
    pub(super) finished: Option<Instant>,
    /// Chunks given to each worker, by name (this session).
    pub(super) chunks_by: BTreeMap<String, u64>,
    /// Chunks returned to the queue before their end (their worker left, went
    /// silent, lost its connection or was drained).
    pub(super) reassigned: u64,
    /// Chunks split for an idle worker.
    pub(super) steals: u64,
    /// How solutions found this session are logged: one line each for the first
    /// [`LOGGED_SOLUTIONS`], then a count at most every [`SOLUTION_SUMMARY_EVERY`].
    pub(super) solution_log: SolutionLog,
    /// Committed ranges chosen for an audit and not yet given to an auditor (this
    /// session; the job does not end before they are searched, or dropped for want
    /// of a worker other than their subject).
    pub(super) audits: VecDeque<AuditSample>,
    /// Indices searched again by audits (this session): work done, not committed.
    pub(super) audited: u64,
}

/// A range one worker committed, chosen to be searched again by another.
#[derive(Clone, Debug)]
pub(super) struct AuditSample {
    pub(super) range: Range<u64>,
    /// The worker that committed it, by name.
    pub(super) subject: String,
    /// The share target its lease had, and the shares it reported in the range
    /// (verified): an honest search by anyone finds the same ones.
    pub(super) share_bits: Option<u8>,
    pub(super) shares: BTreeSet<u64>,
}

impl AuditSample {
    /// Cuts the sample at `at` (within its range): it keeps the front (which may
    /// be left empty), and the back is returned with its shares.
    pub(super) fn split_off(&mut self, at: u64) -> AuditSample {
        debug_assert!(self.range.start <= at && at < self.range.end);
        let back = AuditSample {
            range: at..self.range.end,
            subject: self.subject.clone(),
            share_bits: self.share_bits,
            shares: self.shares.split_off(&at),
        };
        self.range.end = at;
        back
    }
}

/// Solutions of a job logged one line each; the rest are counted.
pub(super) const LOGGED_SOLUTIONS: u64 = 10;
/// How often the count of solutions found since the last line is logged.
pub(super) const SOLUTION_SUMMARY_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// What the log has said of a job's solutions (this session).
#[derive(Clone, Debug, Default)]
pub(super) struct SolutionLog {
    /// Solutions found this session.
    pub(super) found: u64,
    /// Found since the last summary line, not yet logged.
    pub(super) unsaid: u64,
    /// When the last summary line was logged.
    pub(super) said_at: Option<Instant>,
}

/// Solutions beyond the kept ones that a job counts one by one; past it the count
/// stops growing (a report's `others` is then a lower bound).
pub(super) const MAX_COUNTED_BEYOND: usize = 1_000_000;

/// How many lost leases a job remembers for adoption.
pub(super) const MAX_LOST_LEASES: usize = 4096;

/// A lease taken back from a lost worker, as adoption needs it.
#[derive(Clone, Debug)]
pub(super) struct LostLease {
    /// The worker it was given to: only it may adopt the rest.
    pub(super) worker: String,
    /// Its share target, which the worker keeps for it.
    pub(super) share_bits: Option<u8>,
    /// The shares verified in it: still counted once after adoption.
    pub(super) shares: BTreeSet<u64>,
}

/// A lease of the coordinator's previous run, waiting for its worker to claim it.
#[derive(Clone, Debug)]
pub(super) struct Orphan {
    /// Its worker's name.
    pub(super) worker: String,
    /// Everything below is committed.
    pub(super) position: u64,
    pub(super) end: u64,
    /// Its share target, if it had one.
    pub(super) share_bits: Option<u8>,
    /// The shares verified in it (at or past its position) when its row was
    /// written: sent again, each is a repeat.
    pub(super) shares: BTreeSet<u64>,
}

impl JobSession {
    /// A session for a job submitted (or recovered) with `submitted` as its start.
    pub(super) fn new(spec: &JobSpec, submitted: Instant) -> JobSession {
        let work = WorkSpec::from(&spec.kind);
        JobSession {
            kernel: spec.kind.search_kernel(),
            digest: work.digest(),
            orphans: BTreeMap::new(),
            lost: BTreeMap::new(),
            work: Arc::new(work),
            leases: BTreeSet::new(),
            watchers: BTreeSet::new(),
            dirty: false,
            content_seq: 0,
            submitted,
            started: None,
            finished: None,
            chunks_by: BTreeMap::new(),
            solution_log: SolutionLog::default(),
            reassigned: 0,
            steals: 0,
            audits: VecDeque::new(),
            audited: 0,
        }
    }

    /// The first queued audit that worker `name` may run (not its own work).
    pub(super) fn audit_for(&self, name: &str) -> Option<usize> {
        self.audits.iter().position(|s| s.subject != name)
    }

    /// Remembers a lease taken back from a lost worker (the oldest is forgotten past
    /// [`MAX_LOST_LEASES`]).
    pub(super) fn remember_lost(&mut self, lease: LeaseId, lost: LostLease) {
        self.lost.insert(lease, lost);
        while self.lost.len() > MAX_LOST_LEASES {
            self.lost.pop_first();
        }
    }
}

/// A job: its durable record and its session state.
pub(super) struct Job {
    pub(super) record: JobRecord,
    pub(super) session: JobSession,
}

impl Job {
    /// Every index is committed: nothing queued, leased or held for a worker, and
    /// no audit waits.
    pub(super) fn searched_all(&self) -> bool {
        self.record.pending.is_empty()
            && self.session.leases.is_empty()
            && self.session.orphans.is_empty()
            && self.session.audits.is_empty()
    }

    /// It has what it asked for: a solution in first mode, or every solution its
    /// kernel can have.
    pub(super) fn found_enough(&self) -> bool {
        let solutions = &self.record.solutions;
        let all = self
            .session
            .kernel
            .as_ref()
            .and_then(|k| k.max_solutions())
            .is_some_and(|max| solutions.len() as u64 >= max);
        all || (self.record.spec.mode == crate::job::SearchMode::First && !solutions.is_empty())
    }
}

/// Every job the coordinator knows, by id.
#[derive(Default)]
pub(super) struct JobTable {
    jobs: BTreeMap<JobId, Job>,
    /// Jobs that are queued or running.
    live: BTreeSet<JobId>,
    /// The live jobs of each client (no entry for none): what bounds one client's
    /// queue, and what a client's listing reads.
    live_by_client: BTreeMap<String, BTreeSet<JobId>>,
    /// The live jobs by priority: what says how many jobs are ahead of one.
    by_priority: BTreeMap<i32, BTreeSet<JobId>>,
    /// Finished jobs, oldest end first: the order retention drops them in.
    finished: VecDeque<JobId>,
    next_job: u64,
}

impl JobTable {
    pub(super) fn new() -> JobTable {
        JobTable {
            next_job: 1,
            ..JobTable::default()
        }
    }

    /// Adds a new job, queued over its whole keyspace.
    pub(super) fn submit(
        &mut self,
        now: Instant,
        spec: JobSpec,
        priority: i32,
        client: String,
    ) -> JobId {
        let id = JobId(self.next_job);
        self.next_job += 1;
        let keyspace = spec.kind.keyspace();
        let session = JobSession::new(&spec, now);
        let record = JobRecord {
            spec,
            priority,
            client,
            keyspace,
            pending: std::iter::once(0..keyspace).collect(),
            state: JobState::Queued,
            hashes: 0,
            solutions: BTreeMap::new(),
            found_by: BTreeMap::new(),
            truncated: false,
            beyond: BTreeSet::new(),
            contributions: BTreeMap::new(),
            outputs: Vec::new(),
            output_bytes: 0,
            failure: None,
            committed_by: BTreeMap::new(),
            vouched: BTreeMap::new(),
        };
        self.index(id, &record);
        self.jobs.insert(id, Job { record, session });
        self.live.insert(id);
        id
    }

    /// Adds live job `id` to the indexes by client and by priority.
    fn index(&mut self, id: JobId, record: &JobRecord) {
        self.live_by_client
            .entry(record.client.clone())
            .or_default()
            .insert(id);
        self.by_priority
            .entry(record.priority)
            .or_default()
            .insert(id);
    }

    /// Puts back a job recovered from the store. Finished ones must come in the order
    /// they ended.
    pub(super) fn restore(&mut self, id: JobId, job: Job) {
        if job.record.state.is_final() {
            self.finished.push_back(id);
        } else if self.live.insert(id) {
            self.index(id, &job.record);
        }
        self.jobs.insert(id, job);
        self.next_job = self.next_job.max(id.0 + 1);
    }

    /// The next id to give is at least `next`.
    pub(super) fn reserve(&mut self, next: u64) {
        self.next_job = self.next_job.max(next);
    }

    /// The id the next job will get.
    pub(super) fn next_id(&self) -> u64 {
        self.next_job
    }

    pub(super) fn get(&self, id: JobId) -> Option<&Job> {
        self.jobs.get(&id)
    }

    pub(super) fn get_mut(&mut self, id: JobId) -> Option<&mut Job> {
        self.jobs.get_mut(&id)
    }

    /// Queued and running jobs, by id.
    pub(super) fn live(&self) -> impl Iterator<Item = (JobId, &Job)> {
        self.live.iter().map(|id| (*id, &self.jobs[id]))
    }

    /// How many queued and running jobs `client` has.
    pub(super) fn live_of(&self, client: &str) -> usize {
        self.live_by_client.get(client).map_or(0, BTreeSet::len)
    }

    /// `client`'s queued and running jobs, by id.
    pub(super) fn live_of_client<'a>(
        &'a self,
        client: &str,
    ) -> impl Iterator<Item = (JobId, &'a Job)> + 'a {
        self.live_by_client
            .get(client)
            .into_iter()
            .flatten()
            .map(|id| (*id, &self.jobs[id]))
    }

    /// How many live jobs come before live job `id` of `priority` in the queue: those
    /// of a higher priority, and those of the same submitted earlier. Costs the
    /// distinct priorities above it plus its place among its own.
    pub(super) fn ahead_of(&self, id: JobId, priority: i32) -> usize {
        use std::ops::Bound::{Excluded, Unbounded};
        let higher: usize = self
            .by_priority
            .range((Excluded(priority), Unbounded))
            .map(|(_, ids)| ids.len())
            .sum();
        let same = self
            .by_priority
            .get(&priority)
            .map_or(0, |ids| ids.range(..id).count());
        higher + same
    }

    /// Ids of the queued and running jobs.
    pub(super) fn live_ids(&self) -> impl Iterator<Item = JobId> + '_ {
        self.live.iter().copied()
    }

    /// Every retained job, by id.
    pub(super) fn all(&self) -> impl DoubleEndedIterator<Item = (JobId, &Job)> {
        self.jobs.iter().map(|(id, job)| (*id, job))
    }

    /// Marks a job finished at `now` (its state already final): it leaves the live set
    /// and is retained until `keep_finished` newer ones have ended or
    /// `keep_finished_for` has passed.
    /// Returns the jobs dropped to make room.
    pub(super) fn finish(
        &mut self,
        id: JobId,
        now: Instant,
        config: &CoordinatorConfig,
    ) -> Vec<JobId> {
        let mut dropped = Vec::new();
        let Some(job) = self.jobs.get_mut(&id) else {
            return dropped;
        };
        job.session.finished = Some(now);
        job.session.watchers.clear();
        if self.live.remove(&id) {
            self.finished.push_back(id);
            let record = &job.record;
            if let Some(ids) = self.live_by_client.get_mut(&record.client) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.live_by_client.remove(&record.client);
                }
            }
            if let Some(ids) = self.by_priority.get_mut(&record.priority) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_priority.remove(&record.priority);
                }
            }
        }
        while self.finished.len() > config.keep_finished.max(1) {
            if let Some(old) = self.finished.pop_front() {
                self.jobs.remove(&old);
                dropped.push(old);
            }
        }
        dropped
    }

    /// Drops a finished job now. `Err(true)` if it is live, `Err(false)` if unknown.
    pub(super) fn forget(&mut self, id: JobId) -> Result<(), bool> {
        if self.live.contains(&id) {
            return Err(true);
        }
        if self.jobs.remove(&id).is_none() {
            return Err(false);
        }
        self.finished.retain(|f| *f != id);
        Ok(())
    }

    /// Drops every finished job now; returns them.
    pub(super) fn prune(&mut self) -> Vec<JobId> {
        let dropped: Vec<JobId> = self.finished.drain(..).collect();
        for id in &dropped {
            self.jobs.remove(id);
        }
        dropped
    }

    /// Drops finished jobs older than `keep_finished_for`; returns them.
    pub(super) fn expire(&mut self, now: Instant, config: &CoordinatorConfig) -> Vec<JobId> {
        let mut dropped = Vec::new();
        while let Some(id) = self.finished.front() {
            let ended = self.jobs.get(id).and_then(|j| j.session.finished);
            if ended.is_some_and(|t| now < t + config.keep_finished_for) {
                break;
            }
            let id = *id;
            self.finished.pop_front();
            self.jobs.remove(&id);
            dropped.push(id);
        }
        dropped
    }

    /// When the oldest retained finished job is due to be dropped.
    pub(super) fn next_expiry(&self, config: &CoordinatorConfig) -> Option<Instant> {
        let id = self.finished.front()?;
        Some(self.jobs.get(id)?.session.finished? + config.keep_finished_for)
    }
}
