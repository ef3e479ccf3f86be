//! The coordinator's decisions as a synchronous state machine: connected peers, the
//! job table, leases, chunk sizing (calibration, speed-proportional shares, adaptive
//! prefetch), which job gets the next chunk (priority, then fairness between clients),
//! work stealing, drain, verification of claimed solutions, lease expiry, and how long
//! finished jobs are kept. It never reads a clock or touches a socket: time comes in as
//! `now`, effects go out as [`Transmit`] values. The async driver (`crate::service`, in
//! the IO half) owns one `Coordinator` and does the IO; tests and the simulation
//! (`picluster_suite::sim`) drive it directly.
//!
//! Driving order: after any `handle_*` call, drain [`Coordinator::poll_transmit`] (with
//! the current time) until it returns `None`, then sleep until
//! [`Coordinator::poll_timeout`] (or the next input) and call
//! [`Coordinator::handle_timeout`] when it passes. Scheduling is requested by the
//! handlers and runs once, at the first `poll_transmit` after a batch. When a peer's
//! outgoing queue is full, the driver asks [`Transmit::overflow`] what to do: skip the
//! message, or cut the peer off through [`Coordinator::handle_backlogged`].
//!
//! Every index of a job is committed exactly once: leases cover disjoint ranges, a
//! lease advances only through its worker's reports, and whatever a lost, expired or
//! released lease had not reached returns to the job's queue. A steal takes effect only
//! when the owner has said where it stops (`Trimmed`). Reports naming a lease that no
//! longer exists are stale and ignored (counted in [`CoordinatorStats`]).
//!
//! A worker's claims are bounded by what it does: its leases expire when it falls
//! silent or when its work stops moving for a lease timeout (custom jobs excepted),
//! a trim it does not answer in time, or answers keeping more than its threads can
//! have begun, takes the lease back, and its rate on a job is what it reports doing
//! once it has reported (its benchmark only sizes its first share).
//!
//! # Layout
//! - this file: [`Coordinator`] (`handle_*`, `poll_*`, dispatch of each message).
//! - `config`: [`CoordinatorConfig`].
//! - `jobs`, `leases`, `workers`, `clients`: the tables, each owning its data and
//!   its indexes; a job's durable record is apart from its session state.
//! - `schedule`, `steal`: decisions as pure functions over the tables.
//! - `report`: progress, listings, reports and status built from the tables.
//! - `metrics`: per-worker totals and the snapshot the metrics endpoint encodes.
//! - `violation`: [`ProtocolViolation`] and [`CloseReason`].
//! - `shares`: shares, vardiff and the test that catches workers claiming work
//!   they did not do.
//! - `credentials`: revoked names, join tokens, enrolled names, connected
//!   certificates.

mod clients;
mod config;
mod credentials;
mod jobs;
mod journal;
mod leases;
mod metrics;
mod report;
mod schedule;
mod shares;
mod steal;
mod violation;
mod workers;

pub use config::CoordinatorConfig;
pub use credentials::{MAX_TOKENS, MAX_TOKEN_TTL_S, MAX_TOKEN_USES};
pub use journal::{
    Record, Snapshot, StoredJob, StoredLease, StoredToken, UnixMillis, JOURNAL_FORMAT,
};
pub use metrics::{KindProgress, MetricsSnapshot, WorkerMetrics, WorkerTotals};
pub use shares::{
    poisson_cdf, FALSE_ALARM, INITIAL_SHARE_BITS, MAX_SHARE_BITS, MIN_SHARE_BITS, RETARGET_AFTER,
    RETARGET_SHARES, SHARE_SECONDS, WINDOW_SHARES,
};
pub use violation::{CloseReason, ProtocolViolation};

use crate::identity::{PeerIdentity, Role};
use crate::ids::{ConnId, JobId, LeaseId, RequestId};
use crate::wire::{
    negotiate_minor, Assign, ChunkOutput, ClientHello, ClientToCoord, ClientWelcome, ClusterStatus,
    CoordToClient, CoordToJoin, CoordToWorker, Drain, Found, FrameError, HeldLease, Holding,
    JobDetail, JobFailure, JobReport, JobRequest, JobState, JobSummary, JoinRefusal, JoinRequest,
    Output, Progress, Refusal, Rejected, Released, Renew, Revocation, ShareTarget, Stop, Submit,
    TokenRequest, Trim, Trimmed, WorkerHello, WorkerRequest, WorkerStatus, WorkerToCoord,
    WorkerWelcome, MAX_HELD_FOUND, MAX_HELD_LEASES, MAX_JOB_OUTPUT_BYTES, MAX_LISTED_JOBS,
    MAX_OUTPUT_BATCH_BYTES, MAX_REASON_LEN, MAX_SOLUTIONS, MINOR_CLIENT_REPORTS, MINOR_HOLDING,
    MINOR_SHARES, PROTOCOL_MINOR,
};
use clients::ClientTable;
use credentials::Credentials;
use jobs::JobTable;
use leases::{Lease, LeaseTable, LEASE_ID_GAP};
use report::{millis, Reporter};
use schedule::{Decision, RateCache, View};
use shares::ShareAccount;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Range;
use std::time::Instant;
use workers::WorkerTable;

/// A decoded message from a peer.
#[derive(Clone, Debug)]
pub enum Inbound {
    /// From a worker connection.
    Worker(WorkerToCoord),
    /// From a client connection.
    Client(ClientToCoord),
    /// From a joining connection (no certificate): its enrollment request, and what
    /// the driver found wrong with its certificate request (its signature is checked
    /// there, before the request may spend a token).
    Join(JoinRequest, Result<(), String>),
}

/// A certificate for the driver to sign with the cluster CA (the state machine holds
/// no key): the public key of `csr`, bound to `role` and `name`, its serial number
/// saying it was issued at `issued_ms`. The driver answers the connection with
/// [`CoordToJoin::Enrolled`] (a join) or [`CoordToWorker::Renewed`] (a renewal), or
/// with a refusal if it cannot sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// The role the certificate carries.
    pub role: Role,
    /// The name it carries.
    pub name: String,
    /// The PKCS#10 request (DER) whose key it certifies.
    pub csr: Vec<u8>,
    /// Its issuing time (Unix milliseconds), after any revocation it must survive.
    pub issued_ms: UnixMillis,
    /// A working worker's renewal (`true`) or a join.
    pub renewal: bool,
}

/// An effect for the driver to carry out, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Send a message to a worker.
    ToWorker(ConnId, CoordToWorker),
    /// Send a message to a client.
    ToClient(ConnId, CoordToClient),
    /// Close a connection (after sending what was queued for it before).
    Close(ConnId, CloseReason),
    /// Send a message to a joining connection.
    ToJoiner(ConnId, CoordToJoin),
    /// Sign a certificate and send it to the connection.
    Issue(ConnId, Issue),
}

/// What the driver does with a message whose peer's outgoing queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Drop it: a later message supersedes it (a progress push).
    Skip,
    /// The peer must get it or nothing more: call
    /// [`Coordinator::handle_backlogged`], which cuts the peer off.
    CutOff,
}

impl Transmit {
    /// The connection the effect concerns.
    pub fn conn(&self) -> ConnId {
        match self {
            Transmit::ToWorker(conn, _)
            | Transmit::ToClient(conn, _)
            | Transmit::Close(conn, _)
            | Transmit::ToJoiner(conn, _)
            | Transmit::Issue(conn, _) => *conn,
        }
    }

    /// What to do with this message when its peer's outgoing queue is full.
    pub fn overflow(&self) -> Overflow {
        match self {
            Transmit::ToClient(_, CoordToClient::Progress(_)) => Overflow::Skip,
            _ => Overflow::CutOff,
        }
    }
}

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
    /// Shares verified.
    pub shares: u64,
}

/// The coordinator state machine. See the module docs for the driving order.
pub struct Coordinator {
    config: CoordinatorConfig,
    jobs: JobTable,
    leases: LeaseTable,
    workers: WorkerTable,
    clients: ClientTable,
    rates: RateCache,
    outbox: VecDeque<Transmit>,
    schedule_requested: bool,
    next_push: Option<Instant>,
    /// Trims sent, by the time their answer is due.
    trim_deadlines: BTreeSet<(Instant, LeaseId)>,
    /// Cumulative counts per worker name (this run), for the metrics.
    totals: BTreeMap<String, WorkerTotals>,
    /// Jobs submitted this run.
    submitted: u64,
    /// Worker connections whose name was connected when they arrived, until their
    /// hello decides between them and the connected one.
    clashing: BTreeMap<ConnId, String>,
    /// Connections without a certificate, which may only join; `true` once their
    /// request is answered.
    joiners: BTreeMap<ConnId, bool>,
    credentials: Credentials,
    stats: CoordinatorStats,
    /// `None` without a store: nothing is recorded and no reply waits.
    journal: Option<Journal>,
    /// The wall clock at an instant, for the times on records.
    clock: (Instant, UnixMillis),
    /// After a restart, until when the previous run's leases are held for their
    /// workers to claim (`None` once none is left).
    adopt_until: Option<Instant>,
}

/// Records not yet taken by the driver, and client messages waiting for theirs.
struct Journal {
    records: Vec<Record>,
    /// Sequence number of the last record emitted (records are numbered from 1).
    last: u64,
    /// Every record up to this one is durable.
    durable: u64,
    /// Client messages, each with the record it must wait for, in order.
    held: VecDeque<(u64, Transmit)>,
    /// Live jobs that progressed since their last row was written.
    dirty: BTreeSet<JobId>,
    next_checkpoint: Option<Instant>,
    /// The lease id last recorded as `NextLease`.
    next_lease: u64,
}

/// Why a store's contents could not be recovered. The store must be repaired or set
/// aside; starting over it would lose or contradict what it holds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecoverError {
    /// A stored job does not describe a valid job.
    #[error("stored job {job} is not a valid job: {source}")]
    InvalidJob {
        /// The job.
        job: JobId,
        /// Why.
        source: crate::job::SpecError,
    },
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("workers", &self.workers.iter().count())
            .field("jobs", &self.jobs.all().count())
            .field("leases", &self.leases.len())
            .field("stats", &self.stats)
            .finish()
    }
}

type Handled = Result<(), ProtocolViolation>;

impl Coordinator {
    /// A coordinator with no peers and no jobs.
    pub fn new(config: CoordinatorConfig) -> Self {
        Coordinator {
            jobs: JobTable::new(),
            leases: LeaseTable::new(),
            workers: WorkerTable::new(config.lease_timeout),
            clients: ClientTable::default(),
            rates: RateCache::default(),
            outbox: VecDeque::new(),
            schedule_requested: false,
            next_push: None,
            trim_deadlines: BTreeSet::new(),
            totals: BTreeMap::new(),
            submitted: 0,
            clashing: BTreeMap::new(),
            joiners: BTreeMap::new(),
            credentials: Credentials::default(),
            stats: CoordinatorStats::default(),
            journal: None,
            clock: (Instant::now(), 0),
            adopt_until: None,
            config,
        }
    }

    /// A coordinator with a journal, rebuilt from what a store held (an empty
    /// [`Snapshot`] for a new store): live jobs resume from their committed ranges,
    /// finished ones keep their reports, job ids continue. The leases the previous run
    /// had given are held for their workers to claim ([`WorkerToCoord::Holding`])
    /// until a lease timeout from `now`, then return to the queue. `now` and
    /// `unix_ms` anchor the wall clock on records ([`Coordinator::handle_wall_clock`]
    /// moves it).
    pub fn recover(
        config: CoordinatorConfig,
        snapshot: Snapshot,
        now: Instant,
        unix_ms: UnixMillis,
    ) -> Result<Self, RecoverError> {
        let mut core = Coordinator::new(config);
        core.clock = (now, unix_ms);
        core.journal = Some(Journal {
            records: Vec::new(),
            last: 0,
            durable: 0,
            held: VecDeque::new(),
            dirty: BTreeSet::new(),
            next_checkpoint: None,
            next_lease: 0,
        });
        let Snapshot {
            next_job,
            next_lease,
            jobs,
            mut solutions,
            mut outputs,
            drained,
            quarantined,
            revoked,
            tokens,
            enrolled,
            mut finders,
            drain_reasons,
        } = snapshot;
        core.credentials.restore(revoked, tokens, enrolled);
        let mut finished = Vec::new();
        for (id, stored) in jobs {
            let mut job = core.restore_job(
                id,
                stored,
                solutions.remove(&id).unwrap_or_default(),
                outputs.remove(&id).unwrap_or_default(),
            )?;
            job.record.found_by = finders.remove(&id).unwrap_or_default();
            match job.session.finished {
                Some(ended) => finished.push((ended, id, job)),
                None => core.jobs.restore(id, job),
            }
        }
        finished.sort_by_key(|(ended, id, _)| (*ended, *id));
        for (_, id, job) in finished {
            core.jobs.restore(id, job);
        }
        core.jobs.reserve(next_job);
        if next_job > 0 || next_lease > 0 {
            // Leases given since the last recorded id must not be given again.
            let next = next_lease.max(1).saturating_add(LEASE_ID_GAP);
            core.leases.reserve(next);
            core.record(Record::NextLease(next));
            if let Some(j) = core.journal.as_mut() {
                j.next_lease = next;
            }
        }
        // A job whose end was not durable yet, though what made it end was (its
        // report may have gone out): it ends again, with the same answer.
        let done: Vec<JobId> = core
            .jobs
            .live()
            .filter(|(_, job)| job.found_enough() || job.searched_all())
            .map(|(id, _)| id)
            .collect();
        for id in done {
            core.end_job(now, id, JobState::Completed);
            core.record_job(id);
        }
        let orphans = core
            .jobs
            .live()
            .any(|(_, job)| !job.session.orphans.is_empty());
        if orphans {
            core.adopt_until = Some(now + core.config.lease_timeout);
        }
        for name in drained {
            core.workers.restore_drained(name);
        }
        for (name, reason) in drain_reasons {
            core.workers.restore_drain_reason(name, reason);
        }
        for name in quarantined {
            core.workers.quarantine(&name);
        }
        core.schedule_requested = true;
        Ok(core)
    }

    /// The coordinator is stopping: every job that progressed since its last row gets
    /// one now, so a restart redoes nothing (drain [`Coordinator::poll_records`]).
    pub fn handle_shutdown(&mut self, now: Instant) {
        if let Some(j) = self.journal.as_mut() {
            j.next_checkpoint = Some(now);
        }
        self.checkpoint(now);
    }

    /// The wall clock reads `unix_ms` at `now`: times on records follow it.
    pub fn handle_wall_clock(&mut self, now: Instant, unix_ms: UnixMillis) {
        self.clock = (now, unix_ms);
    }

    /// Every record emitted since the last call, and the sequence number of the last
    /// one: write them in one transaction, then call
    /// [`Coordinator::handle_durable`] with that number. `None` when there is
    /// nothing to write (or no journal).
    pub fn poll_records(&mut self) -> Option<(u64, Vec<Record>)> {
        let journal = self.journal.as_mut()?;
        if journal.records.is_empty() {
            return None;
        }
        Some((journal.last, std::mem::take(&mut journal.records)))
    }

    /// Every record up to `seq` is durable: the client messages waiting for them go
    /// out (drain [`Coordinator::poll_transmit`]).
    pub fn handle_durable(&mut self, _now: Instant, seq: u64) {
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        journal.durable = journal.durable.max(seq);
        while journal
            .held
            .front()
            .is_some_and(|(need, _)| *need <= journal.durable)
        {
            if let Some((_, t)) = journal.held.pop_front() {
                self.outbox.push_back(t);
            }
        }
    }

    fn unix_ms(&self, t: Instant) -> UnixMillis {
        report::wall_clock(self.clock, t)
    }

    fn instant_of(&self, ms: UnixMillis) -> Instant {
        let (at, now_ms) = self.clock;
        let ago = std::time::Duration::from_millis(now_ms.saturating_sub(ms));
        at.checked_sub(ago).unwrap_or(at)
    }

    /// Queues an effect. With a journal, a client's messages wait (in order) until
    /// the records they depend on are durable ([`Coordinator::depends_on`]).
    fn send(&mut self, t: Transmit) {
        let for_client = match &t {
            Transmit::ToClient(..) | Transmit::ToJoiner(..) | Transmit::Issue(..) => true,
            Transmit::Close(conn, _) => {
                self.clients.contains(*conn) || self.joiners.contains_key(conn)
            }
            Transmit::ToWorker(..) => false,
        };
        let need = self.depends_on(&t);
        match self.journal.as_mut() {
            Some(j) if for_client && (need > j.durable || !j.held.is_empty()) => {
                j.held.push_back((need, t));
            }
            _ => self.outbox.push_back(t),
        }
    }

    /// The sequence number of the last record a client message depends on:
    /// - acknowledgements of changes (a submission, cancel, drain, removal), results,
    ///   the end of a cancelled or failed job, a close: every record before them;
    /// - a completed job's report and progress: the job's submission, solutions and
    ///   results only; its final row may follow (if a crash loses it, the restarted
    ///   coordinator completes the job again from what is durable, with the same
    ///   answer);
    /// - replies that change nothing (welcome, listings, watch, refusals): nothing.
    ///
    /// Messages to clients still leave in the order they were sent.
    fn depends_on(&self, t: &Transmit) -> u64 {
        let Some(j) = self.journal.as_ref() else {
            return 0;
        };
        let content = |job: JobId| {
            self.jobs
                .get(job)
                .map_or(j.last, |job| job.session.content_seq)
        };
        match t {
            Transmit::ToClient(_, CoordToClient::Progress(p)) => content(p.job),
            Transmit::ToClient(_, CoordToClient::Finished(r)) if r.state == JobState::Completed => {
                content(r.job)
            }
            Transmit::ToClient(
                _,
                CoordToClient::Welcome(_)
                | CoordToClient::Watching(..)
                | CoordToClient::Jobs(..)
                | CoordToClient::Status(..)
                | CoordToClient::Credentials(..)
                | CoordToClient::Tokens(..)
                | CoordToClient::Refused(..),
            ) => 0,
            Transmit::Issue(_, issue) if issue.renewal => 0,
            _ => j.last,
        }
    }

    /// The job's report now depends on every record emitted so far.
    fn note_content(&mut self, id: JobId) {
        let Some(last) = self.journal.as_ref().map(|j| j.last) else {
            return;
        };
        if let Some(job) = self.jobs.get_mut(id) {
            job.session.content_seq = last;
        }
    }

    fn record(&mut self, record: Record) {
        if let Some(j) = self.journal.as_mut() {
            j.last += 1;
            j.records.push(record);
        }
    }

    /// The job's row as it stands now.
    fn stored(&self, id: JobId) -> Option<StoredJob> {
        let job = self.jobs.get(id)?;
        let record = &job.record;
        let mut uncommitted: Vec<Range<u64>> = record.pending.iter().cloned().collect();
        let mut leases = Vec::new();
        for lease in &job.session.leases {
            if let Some(l) = self.leases.get(*lease) {
                uncommitted.push(l.position..l.end);
                if let Some(w) = self.workers.get(l.worker) {
                    leases.push(StoredLease {
                        lease: lease.0,
                        worker: w.name.clone(),
                        position: l.position,
                        end: l.end,
                    });
                }
            }
        }
        for (lease, o) in &job.session.orphans {
            uncommitted.push(o.position..o.end);
            leases.push(StoredLease {
                lease: lease.0,
                worker: o.worker.clone(),
                position: o.position,
                end: o.end,
            });
        }
        Some(StoredJob {
            work: (*job.session.work).clone(),
            mode: record.spec.mode,
            priority: record.priority,
            client: record.client.clone(),
            state: record.state,
            failure: record.failure.clone(),
            committed: journal::complement(record.keyspace, &mut uncommitted),
            hashes: record.hashes,
            contributions: record
                .contributions
                .iter()
                .map(|(name, n)| (name.clone(), *n))
                .collect(),
            truncated: record.truncated,
            submitted: self.unix_ms(job.session.submitted),
            finished: job.session.finished.map(|t| self.unix_ms(t)),
            leases: if record.state.is_final() {
                Vec::new()
            } else {
                leases
            },
        })
    }

    fn record_job(&mut self, id: JobId) {
        if self.journal.is_some() {
            if let Some(row) = self.stored(id) {
                self.record(Record::Job(id, row));
            }
            if let Some(j) = self.journal.as_mut() {
                j.dirty.remove(&id);
            }
        }
    }

    /// A job progressed (or completed): its row is written at the next checkpoint.
    fn mark_dirty(&mut self, now: Instant, id: JobId) {
        let interval = self.config.checkpoint_interval;
        if let Some(j) = self.journal.as_mut() {
            j.dirty.insert(id);
            j.next_checkpoint.get_or_insert(now + interval);
        }
    }

    fn checkpoint(&mut self, now: Instant) {
        let due = self
            .journal
            .as_ref()
            .and_then(|j| j.next_checkpoint)
            .is_some_and(|t| now >= t);
        if !due {
            return;
        }
        let dirty: Vec<JobId> = self
            .journal
            .as_mut()
            .map(|j| {
                j.next_checkpoint = None;
                std::mem::take(&mut j.dirty).into_iter().collect()
            })
            .unwrap_or_default();
        for id in dirty {
            self.record_job(id);
        }
        let next = self.leases.next_id();
        if self.journal.as_ref().is_some_and(|j| j.next_lease < next) {
            self.record(Record::NextLease(next));
            if let Some(j) = self.journal.as_mut() {
                j.next_lease = next;
            }
        }
    }

    fn restore_job(
        &self,
        id: JobId,
        stored: StoredJob,
        solutions: BTreeMap<u64, crate::kernel::Solution>,
        outputs: BTreeMap<u64, ChunkOutput>,
    ) -> Result<jobs::Job, RecoverError> {
        let kind = crate::job::JobKind::try_from(&stored.work)
            .map_err(|source| RecoverError::InvalidJob { job: id, source })?;
        let spec = crate::job::JobSpec {
            kind,
            mode: stored.mode,
        };
        let keyspace = spec.kind.keyspace();
        let committed: Vec<Range<u64>> = stored
            .committed
            .iter()
            .map(|&(a, b)| a.min(keyspace)..b.min(keyspace))
            .collect();
        let final_state = stored.state.is_final();
        let mut orphans = BTreeMap::new();
        if !final_state {
            for l in &stored.leases {
                let (position, end) = (l.position.min(keyspace), l.end.min(keyspace));
                // A lease whose range overlaps what is committed or another lease's is
                // not held (the row says otherwise): its range is simply queued.
                let clear = position < end
                    && !committed.iter().any(|c| c.start < end && position < c.end)
                    && !orphans
                        .values()
                        .any(|o: &jobs::Orphan| o.position < end && position < o.end);
                if clear {
                    orphans.insert(
                        LeaseId(l.lease),
                        jobs::Orphan {
                            worker: l.worker.clone(),
                            position,
                            end,
                        },
                    );
                }
            }
        }
        let pending = if final_state {
            VecDeque::new()
        } else {
            let mut held: Vec<Range<u64>> = committed.clone();
            held.extend(orphans.values().map(|o| o.position..o.end));
            journal::complement(keyspace, &mut held)
                .into_iter()
                .map(|(a, b)| a..b)
                .collect()
        };
        let mut session = jobs::JobSession::new(&spec, self.instant_of(stored.submitted));
        session.orphans = orphans;
        session.finished = stored.finished.map(|ms| self.instant_of(ms));
        let outputs: Vec<ChunkOutput> = outputs.into_values().collect();
        let output_bytes = outputs.iter().map(|o| o.data.len() as u64).sum();
        let mut solutions = solutions;
        let mut truncated = stored.truncated;
        while solutions.len() > MAX_SOLUTIONS {
            solutions.pop_last();
            truncated = true;
        }
        let record = jobs::JobRecord {
            spec,
            priority: stored.priority,
            client: stored.client,
            keyspace,
            pending,
            // A live job starts over from the queue: nothing holds a lease of it.
            state: if final_state {
                stored.state
            } else {
                JobState::Queued
            },
            hashes: stored.hashes,
            solutions,
            found_by: BTreeMap::new(),
            truncated,
            contributions: stored.contributions.into_iter().collect(),
            outputs,
            output_bytes,
            failure: stored.failure,
            committed_by: BTreeMap::new(),
            vouched: BTreeMap::new(),
        };
        Ok(jobs::Job { record, session })
    }

    /// Counters of stale reports, expiries and violations.
    pub fn stats(&self) -> CoordinatorStats {
        self.stats
    }

    /// The configuration in force.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    fn view(&self) -> View<'_> {
        View {
            config: &self.config,
            jobs: &self.jobs,
            leases: &self.leases,
            workers: &self.workers,
        }
    }

    // -----------------------------------------------------------------------------
    // Inputs
    // -----------------------------------------------------------------------------

    /// A peer completed the TLS handshake; `identity` comes from its certificate.
    /// A worker connecting under a name that is already connected waits for its
    /// hello, which decides: if the connected one has gone silent (its leases expired,
    /// or it holds some and has not reported for two progress intervals) it is a
    /// ghost and is replaced, its leases returning to the queue; otherwise the newer
    /// connection is refused ([`CloseReason::NameInUse`]) and the working one kept, so
    /// a copied credential cannot evict a live worker. A peer presenting the
    /// coordinator's own certificate is closed.
    pub fn handle_connected(&mut self, now: Instant, conn: ConnId, identity: PeerIdentity) {
        if self.credentials.is_revoked(&identity) {
            self.stats.violations += 1;
            self.outbox
                .push_back(Transmit::Close(conn, CloseReason::Revoked(identity.name)));
            return;
        }
        if identity.role != Role::Coordinator {
            self.credentials.connected(conn, identity.clone());
            if self.credentials.enroll(&identity.name, identity.role) {
                self.record(Record::Enrolled(identity.name.clone(), identity.role));
            }
        }
        match identity.role {
            Role::Worker => {
                if self.workers.is_quarantined(&identity.name) {
                    self.stats.violations += 1;
                    self.outbox.push_back(Transmit::Close(
                        conn,
                        CloseReason::QuarantinedName(identity.name),
                    ));
                } else if self.workers.named(&identity.name).is_some() {
                    self.clashing.insert(conn, identity.name);
                } else {
                    self.workers.insert(conn, identity.name, now);
                }
            }
            Role::Client | Role::Admin => {
                self.clients
                    .insert(conn, identity.name, identity.role == Role::Admin)
            }
            Role::Coordinator => {
                self.stats.violations += 1;
                self.outbox
                    .push_back(Transmit::Close(conn, CloseReason::CoordinatorCertificate));
            }
        }
    }

    /// A connection ended (closed by either side, or lost). Its leases return to the
    /// queue from the last reported position.
    pub fn handle_disconnected(&mut self, _now: Instant, conn: ConnId) {
        self.clashing.remove(&conn);
        self.joiners.remove(&conn);
        self.credentials.disconnected(conn);
        self.forget_peer(conn);
    }

    /// A peer without a certificate completed the TLS handshake: it may send one
    /// join request ([`Inbound::Join`]) and nothing else.
    pub fn handle_joining(&mut self, _now: Instant, conn: ConnId) {
        self.joiners.insert(conn, false);
    }

    /// A message arrived from `conn`.
    pub fn handle_inbound(&mut self, now: Instant, conn: ConnId, message: Inbound) {
        if let Some(answered) = self.joiners.get(&conn).copied() {
            match message {
                Inbound::Join(request, checked) if !answered => {
                    self.on_join(now, conn, request, checked);
                }
                _ => {
                    self.stats.violations += 1;
                    self.joiners.remove(&conn);
                    self.outbox.push_back(Transmit::Close(
                        conn,
                        CloseReason::Violation(ProtocolViolation::NotEnrolled),
                    ));
                }
            }
            return;
        }
        if let Some(name) = self.clashing.remove(&conn) {
            match message {
                Inbound::Worker(WorkerToCoord::Hello(hello)) => {
                    self.resolve_clash(now, conn, name, hello);
                }
                _ => {
                    self.stats.violations += 1;
                    self.outbox.push_back(Transmit::Close(
                        conn,
                        CloseReason::Violation(ProtocolViolation::BeforeHello),
                    ));
                }
            }
            return;
        }
        let result = match message {
            Inbound::Worker(m) if self.workers.contains(conn) => self.on_worker(now, conn, m),
            Inbound::Client(m) if self.clients.contains(conn) => self.on_client(now, conn, m),
            _ if self.workers.contains(conn) || self.clients.contains(conn) => {
                Err(ProtocolViolation::WrongRole)
            }
            _ => Ok(()), // already closed; late frames are harmless
        };
        if let Err(violation) = result {
            self.violation(conn, violation);
        }
    }

    /// `conn` sent bytes that are not a valid frame: it is closed.
    pub fn handle_bad_frame(&mut self, _now: Instant, conn: ConnId, error: FrameError) {
        if self.joiners.remove(&conn).is_some() {
            self.stats.violations += 1;
            self.outbox.push_back(Transmit::Close(
                conn,
                CloseReason::Violation(ProtocolViolation::NotEnrolled),
            ));
            return;
        }
        if self.clashing.remove(&conn).is_some() {
            self.stats.violations += 1;
            self.outbox.push_back(Transmit::Close(
                conn,
                CloseReason::Violation(ProtocolViolation::BadFrame(error)),
            ));
            return;
        }
        if self.workers.contains(conn) || self.clients.contains(conn) {
            self.violation(conn, ProtocolViolation::BadFrame(error));
        }
    }

    /// The driver could not queue a message that `conn` must get (its queue is full:
    /// it does not read what it is sent). It is cut off; a worker's leases return to
    /// the queue.
    pub fn handle_backlogged(&mut self, _now: Instant, conn: ConnId) {
        if self.workers.contains(conn) || self.clients.contains(conn) {
            self.stats.backlogged += 1;
            self.drop_peer(conn, CloseReason::Backlogged);
        }
    }

    /// A message for `conn` could not be encoded: it is closed rather than left
    /// waiting for a reply that will never come.
    pub fn handle_unsendable(&mut self, _now: Instant, conn: ConnId, error: FrameError) {
        self.drop_peer(conn, CloseReason::Unsendable(error));
    }

    /// Time passed: expire leases of silent workers, push progress to watchers, drop
    /// finished jobs past their retention.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.adopt_until.is_some_and(|t| now >= t) {
            self.adopt_until = None;
            self.release_orphans(None);
        }
        while let Some(&(due, lease)) = self.trim_deadlines.first() {
            if due > now {
                break;
            }
            self.trim_deadlines.pop_first();
            if self.leases.get(lease).is_some_and(|l| l.trim.is_some()) {
                self.take_back(lease);
            }
        }
        for conn in self.workers.silent(now) {
            let expired = self.workers.expire(conn);
            if let Some(w) = self.workers.get(conn) {
                tracing::info!(worker = %w.name, leases_reclaimed = expired.len(), "worker unresponsive: its chunks go to others");
                self.totals.entry(w.name.clone()).or_default().expired += expired.len() as u64;
            }
            for lease in expired {
                if let Some(l) = self.leases.get(lease) {
                    tracing::info!(job = %l.job, lease = %lease, position = l.position, end = l.end, "lease reclaimed");
                }
                self.stats.expired_leases += 1;
                self.requeue(lease);
                // The worker may be alive but cut off; tell it in case it comes back.
                self.outbox.push_back(Transmit::ToWorker(
                    conn,
                    CoordToWorker::Stop(Stop { lease }),
                ));
            }
            self.schedule_requested = true;
        }
        if self.next_push.is_some_and(|t| now >= t) {
            self.next_push = None;
            let mut due = Vec::new();
            for id in self.jobs.live_ids().collect::<Vec<_>>() {
                let Some(job) = self.jobs.get_mut(id) else {
                    continue;
                };
                if job.session.dirty && !job.session.watchers.is_empty() {
                    job.session.dirty = false;
                    due.push(id);
                }
            }
            let mut pushes = Vec::new();
            let reporter = self.reporter(now);
            for id in due {
                if let Some(job) = self.jobs.get(id) {
                    let progress = reporter.progress(id, job);
                    pushes.extend(job.session.watchers.iter().map(|c| (*c, progress)));
                }
            }
            for (conn, progress) in pushes {
                self.send(Transmit::ToClient(conn, CoordToClient::Progress(progress)));
            }
            self.arm_push(now);
        }
        for dropped in self.jobs.expire(now, &self.config) {
            self.record(Record::Forget(dropped));
        }
        self.checkpoint(now);
    }

    // -----------------------------------------------------------------------------
    // Outputs
    // -----------------------------------------------------------------------------

    /// The next time [`Coordinator::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.workers.next_deadline(),
            self.next_push,
            self.jobs.next_expiry(&self.config),
            self.journal.as_ref().and_then(|j| j.next_checkpoint),
            self.adopt_until,
            self.trim_deadlines.first().map(|(t, _)| *t),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next effect to carry out. Runs the scheduler first if any input asked for it.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.schedule_requested {
            self.schedule_requested = false;
            self.schedule(now);
        }
        self.outbox.pop_front()
    }

    /// The jobs kept, by id: every live one, then the newest finished ones, up to
    /// [`MAX_LISTED_JOBS`] in all.
    pub fn jobs(&self, now: Instant) -> Vec<JobSummary> {
        let reporter = self.reporter(now);
        let mut listed: Vec<JobSummary> = self
            .jobs
            .live()
            .take(MAX_LISTED_JOBS)
            .map(|(id, job)| reporter.summary(id, job))
            .collect();
        let room = MAX_LISTED_JOBS - listed.len();
        listed.extend(
            self.jobs
                .all()
                .rev()
                .filter(|(_, job)| job.record.state.is_final())
                .take(room)
                .map(|(id, job)| reporter.summary(id, job)),
        );
        listed.sort_by_key(|s| s.progress.job);
        listed
    }

    /// The report of a job (final or not), while it is kept.
    pub fn report(&self, job: JobId, now: Instant) -> Option<JobReport> {
        self.jobs
            .get(job)
            .map(|j| self.reporter(now).report(job, j))
    }

    /// One job in detail (workers, chunks, reassignments, solutions so far), while
    /// it is kept.
    pub fn detail(&self, job: JobId, now: Instant) -> Option<JobDetail> {
        self.jobs
            .get(job)
            .map(|j| self.reporter(now).detail(job, j))
    }

    /// What the metrics endpoint shows: every worker name seen this run with its
    /// state, rate and totals; jobs by state; live jobs' progress by kind; connected
    /// peers by role; the coordinator's counters.
    pub fn metrics(&self, now: Instant) -> MetricsSnapshot {
        let status = self.reporter(now).workers_status();
        let kinds: BTreeMap<JobId, String> = self
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
                    state: (w.worker.0 != 0).then_some(w.state),
                    rate: w.rate_hps as f64,
                    kind,
                    threads: w.threads,
                    totals: self.totals.get(&w.name).copied().unwrap_or_default(),
                },
            );
        }
        for (name, totals) in &self.totals {
            workers
                .entry(name.clone())
                .or_insert_with(|| WorkerMetrics {
                    name: name.clone(),
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
        for (id, job) in self.jobs.all() {
            *jobs.entry(job.record.state.as_str()).or_default() += 1;
            if let Some(kind) = kinds.get(&id) {
                let p = progress.entry(kind.clone()).or_default();
                p.done += job.record.hashes;
                p.total += job.record.keyspace;
            }
        }
        let greeted = self
            .workers
            .iter()
            .filter(|(_, w)| w.hello().is_some())
            .count() as u64;
        let connections = BTreeMap::from([
            ("worker", greeted),
            ("client", self.clients.len() as u64),
            ("joining", self.joiners.len() as u64),
        ]);
        MetricsSnapshot {
            workers: workers.into_values().collect(),
            jobs,
            progress,
            connections,
            stats: self.stats,
            submitted: self.submitted,
        }
    }

    fn reporter(&self, now: Instant) -> Reporter<'_> {
        Reporter {
            now,
            clock: self.clock,
            workers: &self.workers,
            jobs: &self.jobs,
            leases: &self.leases,
        }
    }

    /// Connected workers (by name) and the jobs kept.
    pub fn status(&self, now: Instant) -> ClusterStatus {
        ClusterStatus {
            workers: self.reporter(now).workers_status(),
            jobs: self.jobs(now),
        }
    }

    // -----------------------------------------------------------------------------
    // Peers
    // -----------------------------------------------------------------------------

    fn violation(&mut self, conn: ConnId, violation: ProtocolViolation) {
        self.stats.violations += 1;
        let liar = match (&violation, self.workers.get(conn)) {
            (v, Some(w)) if v.is_false_claim() => Some(w.name.clone()),
            _ => None,
        };
        let Some(name) = liar else {
            self.drop_peer(conn, CloseReason::Violation(violation));
            return;
        };
        // A worker that lies once may have lied before: what it committed since its
        // last verified share (a false solution or share), or in this whole session
        // (too few shares: its claims are what is in doubt), is searched again, and it
        // gets nothing until an admin releases it.
        let all = matches!(violation, ProtocolViolation::TooFewShares { .. });
        self.totals.entry(name.clone()).or_default().rejected += 1;
        self.workers.quarantine(&name);
        self.record(Record::Quarantined(name.clone(), true));
        let mut redo = 0;
        // The checkpoint timer only needs a recent instant: the wall clock's anchor.
        let now = self.clock.0;
        for id in self.jobs.live_ids().collect::<Vec<_>>() {
            if let Some(job) = self.jobs.get_mut(id) {
                let n = job.record.uncommit(&name, all);
                if n > 0 {
                    redo += n;
                    job.session.dirty = true;
                    self.mark_dirty(now, id);
                }
            }
        }
        tracing::warn!(worker = %name, %violation, indices_to_search_again = redo, "worker quarantined: it claimed work it did not do");
        self.schedule_requested = true;
        self.drop_peer(conn, CloseReason::Quarantined { name, violation });
    }

    fn drop_peer(&mut self, conn: ConnId, reason: CloseReason) {
        if self.workers.contains(conn) || self.clients.contains(conn) {
            self.send(Transmit::Close(conn, reason));
            self.forget_peer(conn);
        }
    }

    fn forget_peer(&mut self, conn: ConnId) {
        if let Some(w) = self.workers.remove(conn) {
            if w.hello().is_some() {
                tracing::info!(worker = %w.name, leases_requeued = w.leases().len(), indices = w.hashes, "worker left");
                self.totals.entry(w.name.clone()).or_default().lost += w.leases().len() as u64;
            }
            for lease in w.leases().iter().copied() {
                self.stats.lost_leases += 1;
                self.requeue(lease);
            }
        } else if let Some(client) = self.clients.remove(conn) {
            for job in client.watching {
                if let Some(j) = self.jobs.get_mut(job) {
                    j.session.watchers.remove(&conn);
                }
            }
        }
    }

    fn arm_push(&mut self, now: Instant) {
        let watched = self
            .jobs
            .live()
            .any(|(_, j)| !j.session.watchers.is_empty());
        if watched && self.next_push.is_none() {
            self.next_push = Some(now + self.config.progress_interval);
        }
    }

    // -----------------------------------------------------------------------------
    // Workers
    // -----------------------------------------------------------------------------

    fn on_worker(&mut self, now: Instant, conn: ConnId, message: WorkerToCoord) -> Handled {
        if self.workers.heard_from(conn, now) {
            self.schedule_requested = true;
        }
        let greeted = self.workers.get(conn).is_some_and(|w| w.hello().is_some());
        match message {
            WorkerToCoord::Hello(hello) if !greeted => {
                self.greet_worker(conn, hello);
                Ok(())
            }
            WorkerToCoord::Hello(_) => Err(ProtocolViolation::SecondHello),
            _ if !greeted => Err(ProtocolViolation::BeforeHello),
            WorkerToCoord::Renew(Renew { csr }) => {
                self.renew(now, conn, csr);
                Ok(())
            }
            WorkerToCoord::Progress(Progress { lease, position }) => {
                let Some(end) = self.own_lease(conn, lease)?.map(|l| l.end) else {
                    return Ok(());
                };
                self.check_output_free(lease, position)?;
                self.advance(now, lease, position)?;
                if position == end {
                    self.finish_lease(now, lease);
                }
                Ok(())
            }
            WorkerToCoord::Output(Output {
                lease,
                position,
                data,
            }) => self.on_output(now, conn, lease, position, data),
            WorkerToCoord::Rejected(Rejected { lease, reason }) => {
                let Some(job) = self.own_lease(conn, lease)?.map(|l| l.job) else {
                    return Ok(());
                };
                let worker = self
                    .workers
                    .get(conn)
                    .map(|w| w.name.clone())
                    .unwrap_or_default();
                self.fail_job(now, job, JobFailure::Rejected { worker, reason });
                Ok(())
            }
            WorkerToCoord::Found(Found { lease, indices }) => {
                self.on_found(now, conn, lease, indices)
            }
            WorkerToCoord::Shares(Found { lease, indices }) => {
                self.on_shares(now, conn, lease, &indices)
            }
            WorkerToCoord::Health(health) => {
                if let Some(w) = self.workers.worker_mut(conn) {
                    w.health = Some(health);
                }
                Ok(())
            }
            WorkerToCoord::Rate(change) => {
                if let Some((name, before)) = self.workers.rescale(conn, change, now) {
                    tracing::info!(worker = %name, threads = change.threads, from = before, to = change.threads, "worker changed its threads: chunk sizes follow");
                    self.schedule_requested = true;
                }
                Ok(())
            }
            WorkerToCoord::Released(Released { lease, position }) => {
                if self.released_lease(conn, lease)?.is_none() {
                    return Ok(());
                }
                self.check_output_free(lease, position)?;
                self.advance(now, lease, position)?;
                self.requeue(lease);
                // Its next lease starts now.
                self.workers.moved(conn, now);
                Ok(())
            }
            WorkerToCoord::Trimmed(Trimmed { lease, end }) => {
                self.on_trimmed(now, conn, lease, end)
            }
            WorkerToCoord::Leaving => {
                self.drop_peer(conn, CloseReason::WorkerLeft);
                Ok(())
            }
            WorkerToCoord::Holding(Holding { leases }) => self.on_holding(now, conn, leases),
        }
    }

    /// A reconnected worker's leases from before: each is adopted if its range is
    /// still its (held back since a restart) or still queued, and stopped otherwise.
    /// The worker's other held-back leases return to the queue.
    fn on_holding(&mut self, now: Instant, conn: ConnId, leases: Vec<HeldLease>) -> Handled {
        if leases.len() > MAX_HELD_LEASES {
            return Err(ProtocolViolation::TooManyHeld(leases.len()));
        }
        for held in &leases {
            if held.found.len() > MAX_HELD_FOUND {
                return Err(ProtocolViolation::TooManyHeld(held.found.len()));
            }
            if held.start > held.position || held.position > held.end {
                return Err(ProtocolViolation::HeldOutside {
                    lease: held.lease,
                    start: held.start,
                    position: held.position,
                    end: held.end,
                });
            }
        }
        let Some(name) = self.workers.get(conn).map(|w| w.name.clone()) else {
            return Ok(());
        };
        let (count, mut adopted) = (leases.len(), 0);
        for held in leases {
            if self.adopt(now, conn, &name, &held)? {
                adopted += 1;
            } else if held.position < held.end {
                self.outbox.push_back(Transmit::ToWorker(
                    conn,
                    CoordToWorker::Stop(Stop { lease: held.lease }),
                ));
            }
        }
        if count > 0 {
            tracing::info!(
                worker = %name,
                held = count,
                adopted,
                "worker back with the leases it held through the lost connection"
            );
        }
        self.release_orphans(Some(&name));
        Ok(())
    }

    /// Adopts one held lease; `false` if it cannot be (the worker is told to stop).
    fn adopt(
        &mut self,
        now: Instant,
        conn: ConnId,
        name: &str,
        held: &HeldLease,
    ) -> Result<bool, ProtocolViolation> {
        let id = held.lease;
        if let Some(live) = self.leases.get(id) {
            // Ours already (a duplicate claim) is harmless; another's is not ours to give.
            return Ok(live.worker == conn);
        }
        let Some(job) = self.jobs.get_mut(held.job) else {
            return Ok(false);
        };
        if job.record.state.is_final() || job.session.digest != held.work {
            return Ok(false);
        }
        let orphan = job.session.orphans.get(&id).cloned();
        let adopted_from = match orphan {
            Some(o) => {
                job.session.orphans.remove(&id);
                let fits = o.worker == name
                    && held.start <= o.position
                    && o.position <= held.position
                    && held.end <= o.end;
                if !fits {
                    job.record.requeue(o.position..o.end);
                    self.schedule_requested = true;
                    return Ok(false);
                }
                if held.end < o.end {
                    job.record.requeue(held.end..o.end);
                }
                // What the worker searched since the row was written commits below.
                o.position
            }
            None if id.0 < self.leases.next_id()
                && job.record.take_exact(&(held.position..held.end)) =>
            {
                // A lease of this run, taken back when the connection was lost and
                // still queued: the rest of it carries on (what was searched since the
                // last report is searched again).
                held.position
            }
            None => {
                self.record_found(now, held.job, id, held.start..held.end, &held.found, name)?;
                return Ok(false);
            }
        };
        self.record_found(now, held.job, id, held.start..held.end, &held.found, name)?;
        let Some(job) = self.jobs.get_mut(held.job) else {
            return Ok(true);
        };
        if job.record.state.is_final() {
            // A held solution completed it.
            return Ok(true);
        }
        self.leases
            .insert(now, id, held.job, conn, adopted_from..held.end);
        job.record.state = JobState::Running;
        job.session.leases.insert(id);
        let exempt = job.session.kernel.is_none();
        if self.workers.add_lease(conn, id, now, exempt) {
            if let Some(w) = self.workers.worker_mut(conn) {
                w.restart_sample(held.job, now);
            }
        }
        self.stats.adopted_leases += 1;
        self.advance(now, id, held.position)?;
        if held.position == held.end {
            self.finish_lease(now, id);
        }
        self.mark_dirty(now, held.job);
        self.schedule_requested = true;
        Ok(true)
    }

    /// Verifies claimed solutions in `range` of a lease and records the new ones (a
    /// worker back from a lost connection reports again those the coordinator may
    /// have lost with unsynced records); the job completes when it has what it asked.
    fn record_found(
        &mut self,
        now: Instant,
        job_id: JobId,
        lease: LeaseId,
        range: Range<u64>,
        found: &[u64],
        finder: &str,
    ) -> Handled {
        let Some(job) = self.jobs.get_mut(job_id) else {
            return Ok(());
        };
        let Some(kernel) = job.session.kernel.clone() else {
            return if found.is_empty() {
                Ok(())
            } else {
                Err(ProtocolViolation::SolutionsForCustom(lease))
            };
        };
        let mut new = Vec::new();
        for &index in found {
            let solution = range
                .contains(&index)
                .then(|| kernel.verify(index))
                .flatten();
            let Some(solution) = solution else {
                return Err(ProtocolViolation::FalseSolution { lease, index });
            };
            if job.record.solutions.contains_key(&index) {
                continue;
            }
            new.push(solution);
        }
        if new.is_empty() {
            return Ok(());
        }
        let record = &mut job.record;
        for solution in &new {
            record.solutions.insert(solution.index, solution.clone());
            record.found_by.insert(solution.index, finder.to_string());
            if record.solutions.len() > MAX_SOLUTIONS {
                if let Some((dropped, _)) = record.solutions.pop_last() {
                    record.found_by.remove(&dropped);
                }
                record.truncated = true;
            }
        }
        job.session.dirty = true;
        let done = job.found_enough();
        let first = job.record.spec.mode == crate::job::SearchMode::First;
        self.totals.entry(finder.to_string()).or_default().solutions += new.len() as u64;
        for solution in new {
            tracing::info!(job = %job_id, worker = %finder, index = solution.index, "solution found");
            let index = solution.index;
            self.record(Record::Solution(job_id, solution));
            self.record(Record::Finder(job_id, index, finder.to_string()));
        }
        self.note_content(job_id);
        if done {
            if first {
                // The lease was searched up to its solutions (a worker reports what it
                // found in a block only once the block is done): that counts as
                // searched, though the job stops before the worker's next report.
                if let Some(top) = found.iter().copied().filter(|i| range.contains(i)).max() {
                    self.count_searched(now, lease, top + 1);
                }
            }
            self.end_job(now, job_id, JobState::Completed);
        }
        Ok(())
    }

    /// A first-mode job found what it asked for in `lease`, searched up to `upto`:
    /// the lease's part below it counts as searched by its worker (the job ends
    /// next; nothing else of it is committed later).
    fn count_searched(&mut self, now: Instant, lease_id: LeaseId, upto: u64) {
        let Some(lease) = self.leases.get(lease_id) else {
            return;
        };
        if upto <= lease.position || upto > lease.end {
            return;
        }
        // An honest report within the lease: `advance` cannot refuse it.
        let _ = self.advance(now, lease_id, upto);
    }

    /// Returns held-back leases of the previous run to their jobs' queues: those of
    /// worker `name` (it reconnected without claiming them), or all (the deadline
    /// passed).
    fn release_orphans(&mut self, name: Option<&str>) {
        let mut left = false;
        for id in self.jobs.live_ids().collect::<Vec<_>>() {
            let Some(job) = self.jobs.get_mut(id) else {
                continue;
            };
            let released: Vec<LeaseId> = job
                .session
                .orphans
                .iter()
                .filter(|(_, o)| name.is_none_or(|n| o.worker == n))
                .map(|(l, _)| *l)
                .collect();
            for lease in released {
                if let Some(o) = job.session.orphans.remove(&lease) {
                    job.record.requeue(o.position..o.end);
                    self.schedule_requested = true;
                }
            }
            left |= !job.session.orphans.is_empty();
        }
        if !left {
            self.adopt_until = None;
        }
    }

    /// The hello of a connection whose worker name was already connected: the
    /// connected one is replaced if it has gone silent, else this one is refused.
    fn resolve_clash(&mut self, now: Instant, conn: ConnId, name: String, hello: WorkerHello) {
        if let Some(live) = self.workers.named(&name) {
            let silent = self.workers.get(live).is_none_or(|w| {
                w.hello().is_none()
                    || w.is_suspect()
                    || (!w.leases().is_empty()
                        && now.saturating_duration_since(w.last_heard())
                            > 2 * self.config.progress_interval)
            });
            if !silent {
                tracing::warn!(worker = %name, "refused a second connection of a connected worker");
                self.outbox
                    .push_back(Transmit::Close(conn, CloseReason::NameInUse(name)));
                return;
            }
            self.drop_peer(live, CloseReason::Replaced);
        }
        self.workers.insert(conn, name, now);
        self.workers.heard_from(conn, now);
        self.greet_worker(conn, hello);
    }

    fn greet_worker(&mut self, conn: ConnId, hello: WorkerHello) {
        let Some(id) = self.workers.get(conn).map(|w| w.id) else {
            return;
        };
        let welcome = WorkerWelcome {
            minor: negotiate_minor(hello.minor),
            worker: id,
            progress_interval_ms: millis(self.config.progress_interval) as u32,
        };
        let adopts = welcome.minor >= MINOR_HOLDING;
        let shares = welcome.minor >= MINOR_SHARES;
        if let Some(w) = self.workers.get(conn) {
            tracing::info!(
                worker = %w.name,
                threads = hello.threads,
                arch = %hello.arch,
                kernel = %hello.kernel_impl,
                mhs = format_args!("{:.2}", hello.bench_hps as f64 / 1e6),
                version = %hello.agent_version,
                drained = self.workers.is_drained(&w.name),
                "worker joined"
            );
        }
        self.workers.greet(conn, hello);
        self.outbox
            .push_back(Transmit::ToWorker(conn, CoordToWorker::Welcome(welcome)));
        if shares {
            if let Some(w) = self.workers.worker_mut(conn) {
                let account = ShareAccount::new(self.clock.0);
                self.outbox.push_back(Transmit::ToWorker(
                    conn,
                    CoordToWorker::ShareTarget(ShareTarget { bits: account.bits }),
                ));
                w.shares = Some(account);
            }
        }
        if !adopts {
            // It will not claim anything: what it held before goes back to the queue.
            if let Some(name) = self.workers.get(conn).map(|w| w.name.clone()) {
                self.release_orphans(Some(&name));
            }
        }
        self.schedule_requested = true;
    }

    /// The lease if it is live and `conn`'s; `None` if stale; a violation if it
    /// belongs to someone else.
    fn own_lease(
        &mut self,
        conn: ConnId,
        lease: LeaseId,
    ) -> Result<Option<&Lease>, ProtocolViolation> {
        match self.leases.get(lease) {
            None => {
                self.stats.stale_reports += 1;
                Ok(None)
            }
            Some(l) if l.worker != conn => Err(ProtocolViolation::NotYourLease(lease)),
            Some(l) => Ok(Some(l)),
        }
    }

    /// The job and unsearched part of a lease, as `own_lease` judges the report.
    fn own_span(
        &mut self,
        conn: ConnId,
        lease: LeaseId,
    ) -> Result<Option<(JobId, u64, u64)>, ProtocolViolation> {
        Ok(self
            .own_lease(conn, lease)?
            .map(|l| (l.job, l.position, l.end)))
    }

    /// Like `own_lease`, for a release: releasing a lease we already took back is how
    /// a worker acknowledges `Stop`, not a stale report.
    fn released_lease(
        &self,
        conn: ConnId,
        lease: LeaseId,
    ) -> Result<Option<&Lease>, ProtocolViolation> {
        match self.leases.get(lease) {
            None => Ok(None),
            Some(l) if l.worker != conn => Err(ProtocolViolation::NotYourLease(lease)),
            Some(l) => Ok(Some(l)),
        }
    }

    /// A custom job's indices are committed only with their result (`Output`): a
    /// `Progress` or `Released` for one may not move the lease forward.
    fn check_output_free(&self, lease_id: LeaseId, position: u64) -> Handled {
        let Some(lease) = self.leases.get(lease_id) else {
            return Ok(());
        };
        let custom = self
            .jobs
            .get(lease.job)
            .is_some_and(|j| j.session.kernel.is_none());
        if custom && position > lease.position {
            return Err(ProtocolViolation::AdvancedWithoutOutput(lease_id));
        }
        Ok(())
    }

    /// A custom job's result for a lease's indices up to `position`: stored, passed
    /// to the job's watchers, and committed like progress.
    fn on_output(
        &mut self,
        now: Instant,
        conn: ConnId,
        lease_id: LeaseId,
        position: u64,
        data: Vec<u8>,
    ) -> Handled {
        let Some((job_id, start, end)) = self.own_span(conn, lease_id)? else {
            return Ok(());
        };
        let Some(job) = self.jobs.get_mut(job_id) else {
            return Ok(());
        };
        if job.session.kernel.is_some() {
            return Err(ProtocolViolation::OutputForBuiltIn(lease_id));
        }
        if position <= start || position > end {
            return Err(ProtocolViolation::OutputOutside {
                lease: lease_id,
                position,
                start,
                end,
            });
        }
        job.record.output_bytes += data.len() as u64;
        if job.record.output_bytes > MAX_JOB_OUTPUT_BYTES {
            self.fail_job(
                now,
                job_id,
                JobFailure::OutputLimit {
                    limit: MAX_JOB_OUTPUT_BYTES,
                },
            );
            return Ok(());
        }
        let output = ChunkOutput {
            start,
            end: position,
            data,
        };
        let watchers: Vec<ConnId> = job.session.watchers.iter().copied().collect();
        let n = job.record.outputs.len() as u64;
        job.record.outputs.push(output.clone());
        // Recorded first: watchers get the result once it is durable.
        if self.journal.is_some() {
            self.record(Record::Output(job_id, n, output.clone()));
            self.note_content(job_id);
        }
        for conn in watchers {
            self.send(Transmit::ToClient(
                conn,
                CoordToClient::Outputs(job_id, vec![output.clone()]),
            ));
        }
        self.advance(now, lease_id, position)?;
        if position == end {
            self.finish_lease(now, lease_id);
        }
        Ok(())
    }

    /// Moves a lease's position forward, committing the indices in between.
    fn advance(&mut self, now: Instant, lease_id: LeaseId, position: u64) -> Handled {
        let Some(lease) = self.leases.get_mut(lease_id) else {
            return Ok(());
        };
        if position < lease.position || position > lease.end {
            return Err(ProtocolViolation::PositionOutside {
                lease: lease_id,
                position,
                start: lease.position,
                end: lease.end,
            });
        }
        let delta = position - lease.position;
        let since = lease.reported_at;
        lease.position = position;
        lease.reported_at = now;
        let (job_id, conn, share_bits) = (lease.job, lease.worker, lease.share_bits);
        let committed = position - delta..position;
        if delta > 0 {
            self.workers.moved(conn, now);
        }
        let Some(worker) = self.workers.worker_mut(conn) else {
            return Ok(());
        };
        worker.record_progress(job_id, delta, since, now);
        let name = worker.name.clone();
        self.totals.entry(name.clone()).or_default().indices += delta;
        if let Some(job) = self.jobs.get_mut(job_id) {
            job.record.hashes += delta;
            if delta > 0 {
                job.record.note_committed(&name, committed);
            }
            *job.record.contributions.entry(name).or_default() += delta;
            job.session.dirty = true;
            // In a job's tail, fresh positions may make a steal worth it.
            self.schedule_requested |= job.record.pending.is_empty();
            self.mark_dirty(now, job_id);
        }
        // Judged once the claim is committed: if it is false, the quarantine takes
        // it back with the rest of the worker's work.
        self.account_shares(now, conn, delta, share_bits)
    }

    /// Claimed progress at `bits` adds to the shares expected of `conn`'s worker;
    /// a full window with far too few is a false claim. Vardiff may retarget.
    fn account_shares(
        &mut self,
        now: Instant,
        conn: ConnId,
        claimed: u64,
        bits: Option<u8>,
    ) -> Handled {
        let Some(account) = self
            .workers
            .worker_mut(conn)
            .and_then(|w| w.shares.as_mut())
        else {
            return Ok(());
        };
        if let Some(bits) = bits {
            account.claimed(claimed, bits);
            if let Err(too_few) = account.judge() {
                return Err(ProtocolViolation::TooFewShares {
                    expected: too_few.expected.round() as u64,
                    observed: too_few.observed,
                });
            }
        }
        if let Some(bits) = account.retarget(now) {
            self.outbox.push_back(Transmit::ToWorker(
                conn,
                CoordToWorker::ShareTarget(ShareTarget { bits }),
            ));
        }
        Ok(())
    }

    /// Shares of a lease: each must meet the lease's share target.
    fn on_shares(
        &mut self,
        now: Instant,
        conn: ConnId,
        lease_id: LeaseId,
        indices: &[u64],
    ) -> Handled {
        let Some(lease) = self.own_lease(conn, lease_id)? else {
            return Ok(()); // stale
        };
        let (job_id, start, end) = (lease.job, lease.position, lease.end);
        let Some(bits) = lease.share_bits else {
            return Ok(()); // an adopted lease, or one from before the target: not counted
        };
        let Some(kernel) = self.jobs.get(job_id).and_then(|j| j.session.kernel.clone()) else {
            return Ok(());
        };
        for &index in indices {
            let meets = (start..end).contains(&index)
                && kernel
                    .digest(index)
                    .is_some_and(|d| crate::kernel::digest_zero_bits(&d) >= u32::from(bits));
            if !meets {
                return Err(ProtocolViolation::FalseShare {
                    lease: lease_id,
                    index,
                });
            }
            self.stats.shares += 1;
            if let Some(account) = self
                .workers
                .worker_mut(conn)
                .and_then(|w| w.shares.as_mut())
            {
                account.verified();
            }
        }
        if !indices.is_empty() {
            let name = self.workers.get(conn).map(|w| w.name.clone());
            if let (Some(name), Some(job)) = (name, self.jobs.get_mut(job_id)) {
                job.record.vouch(&name);
            }
        }
        self.account_shares(now, conn, 0, None)
    }

    fn on_found(
        &mut self,
        now: Instant,
        conn: ConnId,
        lease_id: LeaseId,
        indices: Vec<u64>,
    ) -> Handled {
        let Some((job_id, start, end)) = self.own_span(conn, lease_id)? else {
            return Ok(());
        };
        // A claim below the lease position would refer to already committed work.
        let name = self
            .workers
            .get(conn)
            .map(|w| w.name.clone())
            .unwrap_or_default();
        self.record_found(now, job_id, lease_id, start..end, &indices, &name)
    }

    /// The owner acknowledged a trim: the lease now ends at `end`, and the rest goes
    /// to the thief (or back to the queue if the thief can no longer take it).
    fn on_trimmed(&mut self, now: Instant, conn: ConnId, lease_id: LeaseId, end: u64) -> Handled {
        let Some(lease) = self.released_lease(conn, lease_id)? else {
            return Ok(()); // taken back or finished meanwhile
        };
        let Some((requested, thief)) = lease.trim else {
            return Err(ProtocolViolation::UnaskedTrim(lease_id));
        };
        if end < requested || end > lease.end || end < lease.position {
            return Err(ProtocolViolation::TrimOutside {
                lease: lease_id,
                end,
                min: lease.position.max(requested),
                max: lease.end,
                requested,
            });
        }
        let (job_id, old_end, position) = (lease.job, lease.end, lease.position);
        if end == old_end && requested < old_end {
            // Nothing given up: honest only if its threads have already begun every
            // block left (a worker cannot have begun more than one per thread beyond
            // its position).
            let threads = self
                .workers
                .get(conn)
                .and_then(|w| w.hello())
                .map_or(1, |h| u64::from(h.threads.clamp(1, 1024)));
            let block = match self.jobs.get(job_id).map(|j| &j.record.spec.kind) {
                Some(crate::job::JobKind::Custom(c)) => c.block.max(1),
                _ => crate::wire::SEARCH_BLOCK,
            };
            if old_end - position > (threads + 1).saturating_mul(block) {
                self.take_back(lease_id);
                return Ok(());
            }
        }
        if let Some(l) = self.leases.get_mut(lease_id) {
            l.end = end;
            l.trim = None;
        }
        if end < old_end {
            self.stats.steals += 1;
            if let Some(w) = self.workers.get(conn) {
                self.totals.entry(w.name.clone()).or_default().stolen += 1;
            }
            if let Some(job) = self.jobs.get_mut(job_id) {
                job.session.steals += 1;
            }
            if self.workers.is_ready(thief) {
                self.assign(now, thief, job_id, end..old_end);
            } else if let Some(job) = self.jobs.get_mut(job_id) {
                job.record.requeue(end..old_end);
            }
        }
        self.schedule_requested = true;
        Ok(())
    }

    /// A lease reached its end. The job completes when that was its last searched
    /// range.
    fn finish_lease(&mut self, now: Instant, lease_id: LeaseId) {
        let Some(lease) = self.detach_lease(lease_id) else {
            return;
        };
        self.workers.moved(lease.worker, now);
        // The worker moves straight on to its next lease: that one's clock starts now,
        // and so does its job's rate sample if the worker was on another job.
        let next = self
            .workers
            .get(lease.worker)
            .and_then(|w| w.leases().first().copied());
        if let Some(next) = next.and_then(|id| self.leases.get_mut(id)) {
            next.reported_at = now;
            let next_job = next.job;
            if next_job != lease.job {
                if let Some(w) = self.workers.worker_mut(lease.worker) {
                    w.restart_sample(next_job, now);
                }
            }
        }
        if let Some(job) = self.jobs.get(lease.job) {
            if !job.record.state.is_final() && job.searched_all() {
                debug_assert_eq!(job.record.hashes, job.record.keyspace);
                self.end_job(now, lease.job, JobState::Completed);
            }
        }
        self.schedule_requested = true;
    }

    /// Takes back a lease whose worker did not honour a trim: the unsearched part
    /// returns to the queue (the thief, idle, gets it at once) and the worker is told
    /// to stop.
    fn take_back(&mut self, lease_id: LeaseId) {
        let Some(owner) = self.leases.get(lease_id).map(|l| l.worker) else {
            return;
        };
        let name = self
            .workers
            .get(owner)
            .map(|w| w.name.clone())
            .unwrap_or_default();
        tracing::warn!(worker = %name, lease = %lease_id, "lease taken back: its worker did not honour a trim");
        self.stats.unhonoured_trims += 1;
        self.requeue(lease_id);
        self.outbox.push_back(Transmit::ToWorker(
            owner,
            CoordToWorker::Stop(Stop { lease: lease_id }),
        ));
    }

    /// Removes a lease from the lease table, its worker and its job.
    fn detach_lease(&mut self, lease_id: LeaseId) -> Option<Lease> {
        let lease = self.leases.remove(lease_id)?;
        self.workers.remove_lease(lease.worker, lease_id);
        if let Some(job) = self.jobs.get_mut(lease.job) {
            job.session.leases.remove(&lease_id);
        }
        Some(lease)
    }

    /// Returns the unsearched part of a lease to its job's queue.
    fn requeue(&mut self, lease_id: LeaseId) {
        let Some(lease) = self.detach_lease(lease_id) else {
            return;
        };
        if let Some(job) = self.jobs.get_mut(lease.job) {
            if !job.record.state.is_final() && lease.position < lease.end {
                job.record.requeue(lease.position..lease.end);
                job.session.reassigned += 1;
            }
        }
        self.schedule_requested = true;
    }

    /// Creates a lease of `range` of `job_id` for worker `conn` and sends it.
    fn assign(&mut self, now: Instant, conn: ConnId, job_id: JobId, range: Range<u64>) {
        let Some(job) = self.jobs.get_mut(job_id) else {
            return;
        };
        let lease = self.leases.create(now, job_id, conn, range.clone());
        job.record.state = JobState::Running;
        job.session.leases.insert(lease);
        let name = self
            .workers
            .get(conn)
            .map(|w| w.name.clone())
            .unwrap_or_default();
        if job.session.started.is_none() {
            job.session.started = Some(now);
            tracing::info!(job = %job_id, worker = %name, "job started");
        }
        *job.session.chunks_by.entry(name.clone()).or_default() += 1;
        self.totals.entry(name).or_default().chunks += 1;
        let assign = Assign {
            lease,
            job: job_id,
            work: job.session.work.clone(),
            start: range.start,
            end: range.end,
        };
        let exempt = job.session.kernel.is_none();
        let sharing = job
            .session
            .kernel
            .as_ref()
            .is_some_and(|k| k.digest(range.start).is_some());
        let share_bits = self
            .workers
            .get(conn)
            .and_then(|w| w.shares.as_ref())
            .filter(|_| sharing)
            .map(|s| s.bits);
        if let Some(l) = self.leases.get_mut(lease) {
            l.share_bits = share_bits;
        }
        if self.workers.add_lease(conn, lease, now, exempt) {
            // An idle worker owes no reports: its job's rate sample leaves out the
            // idle time.
            if let Some(w) = self.workers.worker_mut(conn) {
                w.restart_sample(job_id, now);
            }
        }
        self.outbox
            .push_back(Transmit::ToWorker(conn, CoordToWorker::Assign(assign)));
    }

    // -----------------------------------------------------------------------------
    // Clients
    // -----------------------------------------------------------------------------

    fn on_client(&mut self, now: Instant, conn: ConnId, message: ClientToCoord) -> Handled {
        let Some(greeted) = self.clients.get(conn).map(|c| c.greeted) else {
            return Ok(());
        };
        // A greeted client's request its certificate does not allow is refused here,
        // before anything acts on it (a hello is always allowed).
        if let Some((request, refusal)) = greeted.then(|| self.refusal(conn, &message)).flatten() {
            self.send(Transmit::ToClient(
                conn,
                CoordToClient::Refused(request, refusal),
            ));
            return Ok(());
        }
        let reply = match message {
            ClientToCoord::Hello(ClientHello { minor, .. }) if !greeted => {
                if minor < MINOR_CLIENT_REPORTS {
                    self.drop_peer(
                        conn,
                        CloseReason::OldClient {
                            theirs: minor,
                            ours: PROTOCOL_MINOR,
                        },
                    );
                    return Ok(());
                }
                if let Some(client) = self.clients.get_mut(conn) {
                    client.greeted = true;
                }
                CoordToClient::Welcome(ClientWelcome {
                    minor: negotiate_minor(minor),
                })
            }
            ClientToCoord::Hello(_) => return Err(ProtocolViolation::SecondHello),
            _ if !greeted => return Err(ProtocolViolation::BeforeHello),
            ClientToCoord::Submit(submit) => self.submit(now, conn, &submit),
            ClientToCoord::Drain(Drain {
                request,
                worker,
                drain,
                reason,
            }) => match self.drain(now, &worker, drain, reason) {
                Some(status) => CoordToClient::Drained(request, status),
                None => CoordToClient::Refused(request, Refusal::UnknownWorker(worker)),
            },
            ClientToCoord::Show(JobRequest { request, job }) => match self.detail(job, now) {
                Some(detail) => CoordToClient::Detail(request, Box::new(detail)),
                None => CoordToClient::Refused(request, Refusal::UnknownJob(job)),
            },
            ClientToCoord::Watch(JobRequest { request, job }) => {
                self.watch(now, conn, request, job);
                return Ok(());
            }
            ClientToCoord::Cancel(JobRequest { request, job }) => match self.cancel(now, job) {
                Some(summary) => CoordToClient::Cancelled(request, summary),
                None => CoordToClient::Refused(request, Refusal::UnknownJob(job)),
            },
            ClientToCoord::ListJobs(request) => {
                CoordToClient::Jobs(request, self.jobs_for(conn, now))
            }
            ClientToCoord::Forget(JobRequest { request, job }) => match self.jobs.forget(job) {
                Ok(()) => {
                    self.record(Record::Forget(job));
                    CoordToClient::Forgotten(JobRequest { request, job })
                }
                Err(true) => CoordToClient::Refused(request, Refusal::NotFinished(job)),
                Err(false) => CoordToClient::Refused(request, Refusal::UnknownJob(job)),
            },
            ClientToCoord::Release(WorkerRequest { request, worker }) => {
                if self.workers.release(&worker) {
                    self.record(Record::Quarantined(worker.clone(), false));
                    CoordToClient::ReleasedWorker(request, worker)
                } else {
                    CoordToClient::Refused(request, Refusal::NotQuarantined(worker))
                }
            }
            ClientToCoord::Prune(request) => {
                let dropped = self.jobs.prune();
                let count = dropped.len() as u64;
                for id in dropped {
                    self.record(Record::Forget(id));
                }
                CoordToClient::Pruned(request, count)
            }
            ClientToCoord::Status(request) => {
                let mut status = self.status(now);
                status.jobs = self.jobs_for(conn, now);
                CoordToClient::Status(request, status)
            }
            ClientToCoord::Revoke(WorkerRequest { request, worker }) => {
                if !crate::identity::is_valid_name(&worker) {
                    CoordToClient::Refused(request, Refusal::InvalidName(worker))
                } else if self
                    .credentials
                    .identity(conn)
                    .is_some_and(|me| me.name == worker)
                {
                    CoordToClient::Refused(
                        request,
                        Refusal::NotPermitted(format!(
                            "{worker} is the credential making this request: revoking it would lock you out"
                        )),
                    )
                } else {
                    CoordToClient::Revoked(request, self.revoke(now, &worker))
                }
            }
            ClientToCoord::Credentials(request) => {
                CoordToClient::Credentials(request, self.credentials.report())
            }
            ClientToCoord::CreateToken(create) => {
                self.purge_tokens(now);
                let by = self
                    .clients
                    .get(conn)
                    .map(|c| c.name.clone())
                    .unwrap_or_default();
                match self.credentials.new_token(&create, &by, self.unix_ms(now)) {
                    Ok(token) => {
                        self.credentials.insert_token(&create.id, token.clone());
                        self.record(Record::Token(create.id.clone(), token));
                        let info = self.credentials.token_info(&create.id);
                        match info {
                            Some(info) => CoordToClient::TokenCreated(create.request, info),
                            None => CoordToClient::Refused(
                                create.request,
                                Refusal::UnknownToken(create.id),
                            ),
                        }
                    }
                    Err(why) => CoordToClient::Refused(create.request, Refusal::InvalidToken(why)),
                }
            }
            ClientToCoord::ListTokens(request) => {
                self.purge_tokens(now);
                CoordToClient::Tokens(request, self.credentials.tokens())
            }
            ClientToCoord::RevokeToken(TokenRequest { request, id }) => {
                if self.credentials.remove_token(&id) {
                    self.record(Record::TokenGone(id.clone()));
                    CoordToClient::TokenRevoked(request, id)
                } else {
                    CoordToClient::Refused(request, Refusal::UnknownToken(id))
                }
            }
        };
        self.send(Transmit::ToClient(conn, reply));
        Ok(())
    }

    /// Why `conn` may not make this request, from its certificate alone: a client
    /// submits, sees the cluster's status and lists, watches, cancels and forgets its
    /// own jobs; everything else (drain, release, prune, other clients' jobs) takes an
    /// admin certificate.
    fn refusal(&self, conn: ConnId, message: &ClientToCoord) -> Option<(RequestId, Refusal)> {
        let client = self.clients.get(conn)?;
        if client.admin {
            return None;
        }
        let admin_only = |request: RequestId, what: &str| {
            Some((
                request,
                Refusal::NotPermitted(format!(
                    "client {} may not {what}: that takes an admin credential",
                    client.name
                )),
            ))
        };
        let own = |request: RequestId, job: JobId, verb: &str| {
            let owner = &self.jobs.get(job)?.record.client;
            (*owner != client.name).then(|| {
                (
                    request,
                    Refusal::NotPermitted(format!(
                        "job {job} belongs to another client: client {} may not {verb} it (an admin credential may)",
                        client.name
                    )),
                )
            })
        };
        match message {
            ClientToCoord::Drain(d) => admin_only(d.request, "drain or undrain workers"),
            ClientToCoord::Release(r) => admin_only(r.request, "release quarantined workers"),
            ClientToCoord::Prune(request) => admin_only(*request, "remove every finished job"),
            ClientToCoord::Revoke(r) => admin_only(r.request, "revoke certificates"),
            ClientToCoord::CreateToken(t) => admin_only(t.request, "make join tokens"),
            ClientToCoord::ListTokens(request) => admin_only(*request, "list join tokens"),
            ClientToCoord::RevokeToken(t) => admin_only(t.request, "withdraw join tokens"),
            ClientToCoord::Watch(r) => own(r.request, r.job, "watch"),
            ClientToCoord::Cancel(r) => own(r.request, r.job, "cancel"),
            ClientToCoord::Forget(r) => own(r.request, r.job, "forget"),
            ClientToCoord::Show(r) => own(r.request, r.job, "show"),
            ClientToCoord::Hello(_)
            | ClientToCoord::Submit(_)
            | ClientToCoord::ListJobs(_)
            | ClientToCoord::Status(_)
            | ClientToCoord::Credentials(_) => None,
        }
    }

    // -----------------------------------------------------------------------------
    // Credentials
    // -----------------------------------------------------------------------------

    /// Revokes every certificate of `name` issued up to now: its live connections
    /// close at once (a worker's leases return to the queue) and later handshakes
    /// with those certificates are refused.
    fn revoke(&mut self, now: Instant, name: &str) -> Revocation {
        let at = self.unix_ms(now);
        self.credentials.revoke(name, at);
        self.record(Record::Revoked(name.to_string(), at));
        let covered = self.credentials.covered(name, at);
        for &conn in &covered {
            self.credentials.disconnected(conn);
            if self.clashing.remove(&conn).is_some() {
                self.outbox.push_back(Transmit::Close(
                    conn,
                    CloseReason::Revoked(name.to_string()),
                ));
            } else {
                self.drop_peer(conn, CloseReason::Revoked(name.to_string()));
            }
        }
        self.schedule_requested = true;
        Revocation {
            name: name.to_string(),
            revoked_ms: at,
            closed: u32::try_from(covered.len()).unwrap_or(u32::MAX),
        }
    }

    /// Drops the tokens past their expiry.
    fn purge_tokens(&mut self, now: Instant) {
        for id in self.credentials.expired_tokens(self.unix_ms(now)) {
            self.credentials.remove_token(&id);
            self.record(Record::TokenGone(id));
        }
    }

    /// A join request: a valid token spends a use, the name is enrolled (replacing,
    /// if the token allows it, the certificates it had: they are revoked), and the
    /// driver signs the request once that is durable. Anything else is refused with
    /// its reason; a token is never spent on a refusal.
    fn on_join(
        &mut self,
        now: Instant,
        conn: ConnId,
        request: JoinRequest,
        checked: Result<(), String>,
    ) {
        self.joiners.insert(conn, true);
        let at = self.unix_ms(now);
        let reserved = matches!(request.name.as_str(), "admin" | "coordinator");
        let in_use = reserved
            || self.workers.named(&request.name).is_some()
            || self.credentials.is_enrolled(&request.name);
        let decision = checked
            .map_err(JoinRefusal::BadRequest)
            .and_then(|()| {
                self.credentials.admit(
                    &request.token,
                    &request.secret,
                    &request.name,
                    request.role,
                    in_use,
                    at,
                )
            })
            .and_then(|admitted| {
                let other_role = self
                    .credentials
                    .enrolled_role(&request.name)
                    .is_some_and(|role| role != admitted.role);
                if reserved || (admitted.replaces && other_role) {
                    // A worker token may not take over a client's name, nor anyone the
                    // admin's.
                    Err(JoinRefusal::NameTaken(request.name.clone()))
                } else {
                    Ok(admitted)
                }
            });
        match decision {
            Err(refusal) => {
                self.stats.violations += 1;
                // The joiner closes once it has read the answer (a close from here
                // could overtake it); one that does not is closed by its idle timeout.
                self.send(Transmit::ToJoiner(conn, CoordToJoin::Refused(refusal)));
            }
            Ok(admitted) => {
                self.credentials
                    .insert_token(&request.token, admitted.token.clone());
                self.record(Record::Token(request.token.clone(), admitted.token));
                let mut issued_ms = at;
                if admitted.replaces {
                    self.revoke(now, &request.name);
                    issued_ms = at + 1;
                }
                if self.credentials.enroll(&request.name, admitted.role) {
                    self.record(Record::Enrolled(request.name.clone(), admitted.role));
                }
                self.send(Transmit::Issue(
                    conn,
                    Issue {
                        role: admitted.role,
                        name: request.name,
                        csr: request.csr,
                        issued_ms,
                        renewal: false,
                    },
                ));
            }
        }
    }

    /// A worker asks for a new certificate for its own name: once per connection.
    fn renew(&mut self, now: Instant, conn: ConnId, csr: Vec<u8>) {
        let Some(name) = self.workers.get(conn).map(|w| w.name.clone()) else {
            return;
        };
        if !self.workers.note_renewal(conn) {
            self.outbox.push_back(Transmit::ToWorker(
                conn,
                CoordToWorker::RenewRefused(JoinRefusal::BadRequest(
                    "one renewal per connection".into(),
                )),
            ));
            return;
        }
        let issued_ms = self.unix_ms(now);
        self.send(Transmit::Issue(
            conn,
            Issue {
                role: Role::Worker,
                name,
                csr,
                issued_ms,
                renewal: true,
            },
        ));
    }

    /// The jobs `conn` may see: every job for an admin, its own for a client.
    fn jobs_for(&self, conn: ConnId, now: Instant) -> Vec<JobSummary> {
        let mut jobs = self.jobs(now);
        if let Some(client) = self.clients.get(conn).filter(|c| !c.admin) {
            jobs.retain(|j| j.client == client.name);
        }
        jobs
    }

    fn submit(&mut self, now: Instant, conn: ConnId, submit: &Submit) -> CoordToClient {
        let client = self
            .clients
            .get_mut(conn)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let spec = match submit.spec() {
            Ok(spec) => spec,
            Err(e) => {
                return CoordToClient::Refused(submit.request, Refusal::InvalidJob(e.to_string()))
            }
        };
        let (kind, keyspace, mode) = (
            spec.kind
                .custom_kernel()
                .map_or_else(|| spec.kind.name().to_string(), |k| format!("custom:{k}")),
            spec.kind.keyspace(),
            spec.mode,
        );
        let id = self.jobs.submit(now, spec, submit.priority, client.clone());
        self.submitted += 1;
        tracing::info!(job = %id, %client, %kind, keyspace, ?mode, priority = submit.priority, "job submitted");
        self.record(Record::NextJob(self.jobs.next_id()));
        self.record_job(id);
        self.note_content(id);
        self.schedule_requested = true;
        CoordToClient::Submitted(JobRequest {
            request: submit.request,
            job: id,
        })
    }

    /// Starts sending `conn` a job's progress: its state now, every result so far (in
    /// frames of bounded size), then pushes until the report; a finished job's report
    /// at once.
    fn watch(&mut self, now: Instant, conn: ConnId, request: RequestId, job_id: JobId) {
        let Some(job) = self.jobs.get_mut(job_id) else {
            self.send(Transmit::ToClient(
                conn,
                CoordToClient::Refused(request, Refusal::UnknownJob(job_id)),
            ));
            return;
        };
        let live = !job.record.state.is_final();
        if live {
            job.session.watchers.insert(conn);
        }
        let reporter = self.reporter(now);
        let Some(job) = self.jobs.get(job_id) else {
            return;
        };
        let mut messages = vec![CoordToClient::Watching(
            request,
            reporter.progress(job_id, job),
        )];
        let mut batch = Vec::new();
        let mut bytes = 0;
        for output in &job.record.outputs {
            if bytes + output.data.len() > MAX_OUTPUT_BATCH_BYTES && !batch.is_empty() {
                messages.push(CoordToClient::Outputs(job_id, std::mem::take(&mut batch)));
                bytes = 0;
            }
            bytes += output.data.len();
            batch.push(output.clone());
        }
        if !batch.is_empty() {
            messages.push(CoordToClient::Outputs(job_id, batch));
        }
        if !live {
            messages.push(CoordToClient::Finished(reporter.report(job_id, job)));
        }
        for message in messages {
            self.send(Transmit::ToClient(conn, message));
        }
        if live {
            if let Some(client) = self.clients.get_mut(conn) {
                client.watching.insert(job_id);
            }
            self.arm_push(now);
        }
    }

    /// Cancels a live job; the job's summary afterwards (a finished job keeps its
    /// final state). `None` if no such job is kept.
    fn cancel(&mut self, now: Instant, job_id: JobId) -> Option<JobSummary> {
        let live = !self.jobs.get(job_id)?.record.state.is_final();
        if live {
            self.end_job(now, job_id, JobState::Cancelled);
        }
        Some(self.reporter(now).summary(job_id, self.jobs.get(job_id)?))
    }

    /// Ends a job as failed, with the reason in its report.
    fn fail_job(&mut self, now: Instant, job_id: JobId, failure: JobFailure) {
        let Some(job) = self.jobs.get_mut(job_id) else {
            return;
        };
        if job.record.state.is_final() {
            return;
        }
        tracing::warn!(job = %job_id, reason = %failure, "job failed");
        job.record.failure = Some(failure);
        self.end_job(now, job_id, JobState::Failed);
    }

    /// Ends a job: its leases are stopped, its watchers get the report, and it leaves
    /// the live set for the finished jobs kept.
    fn end_job(&mut self, now: Instant, job_id: JobId, state: JobState) {
        let Some(job) = self.jobs.get_mut(job_id) else {
            return;
        };
        job.record.state = state;
        job.session.finished = Some(now);
        let seconds = now
            .saturating_duration_since(job.session.submitted)
            .as_secs_f64();
        tracing::info!(
            job = %job_id,
            state = state.as_str(),
            searched = job.record.hashes,
            keyspace = job.record.keyspace,
            solutions = job.record.solutions.len(),
            seconds = format_args!("{seconds:.3}"),
            "job {}", state.as_str()
        );
        if state == JobState::Completed {
            // What made it complete (its solutions, its committed ranges) is durable
            // or on its way; the row saying so goes with the next checkpoint, so a
            // finished job costs no commit of its own (a crash before it costs the
            // rework of the job's tail, as any checkpoint does).
            self.mark_dirty(now, job_id);
        } else {
            self.record_job(job_id);
        }
        let Some(job) = self.jobs.get_mut(job_id) else {
            return;
        };
        job.record.pending.clear();
        job.session.orphans.clear();
        let leases: Vec<LeaseId> = job.session.leases.iter().copied().collect();
        for lease_id in leases {
            if let Some(lease) = self.detach_lease(lease_id) {
                self.outbox.push_back(Transmit::ToWorker(
                    lease.worker,
                    CoordToWorker::Stop(Stop { lease: lease_id }),
                ));
            }
        }
        self.workers.forget_job(job_id);
        self.rates.forget(job_id);
        if let Some(job) = self.jobs.get(job_id) {
            let report = self.reporter(now).report(job_id, job);
            for conn in job.session.watchers.iter().copied().collect::<Vec<_>>() {
                self.send(Transmit::ToClient(
                    conn,
                    CoordToClient::Finished(report.clone()),
                ));
                self.clients.unwatch(conn, job_id);
            }
        }
        for dropped in self.jobs.finish(job_id, now, &self.config) {
            self.record(Record::Forget(dropped));
        }
        self.schedule_requested = true;
    }

    /// Drains (or undrains) the worker named `name`: a drained worker finishes the
    /// chunk it is on and gets nothing new; its queued chunks go back to the queue.
    /// The mark outlives reconnections, and a worker that is not connected may be
    /// drained (it takes no work when it comes back). `None` if no worker of that
    /// name is connected or was ever enrolled.
    fn drain(
        &mut self,
        now: Instant,
        name: &str,
        drain: bool,
        reason: Option<String>,
    ) -> Option<WorkerStatus> {
        let known = self.workers.named(name).is_some()
            || self.credentials.enrolled_role(name) == Some(Role::Worker)
            || self.workers.is_drained(name);
        if !known {
            return None;
        }
        let reason = reason
            .map(|r| truncate_text(r.trim(), MAX_REASON_LEN))
            .filter(|r| !r.is_empty() && drain);
        let conn = self.workers.set_drained(name, drain, reason.clone());
        self.record(Record::Drained(name.to_string(), drain));
        if let Some(reason) = &reason {
            self.record(Record::DrainReason(name.to_string(), reason.clone()));
        }
        if drain {
            tracing::info!(worker = %name, reason = reason.as_deref().unwrap_or(""), connected = conn.is_some(), "worker drained");
        } else {
            tracing::info!(worker = %name, "worker undrained");
        }
        if let (true, Some(conn)) = (drain, conn) {
            let queued: Vec<LeaseId> = self
                .workers
                .get(conn)
                .map(|w| w.leases().iter().skip(1).copied().collect())
                .unwrap_or_default();
            for lease in queued {
                self.requeue(lease);
                self.outbox.push_back(Transmit::ToWorker(
                    conn,
                    CoordToWorker::Stop(Stop { lease }),
                ));
            }
        }
        self.schedule_requested = true;
        let found = self
            .reporter(now)
            .workers_status()
            .into_iter()
            .find(|w| w.name == name);
        // Undrained and away: not listed, but known.
        Some(
            found.unwrap_or_else(|| {
                report::absent_worker(name, crate::wire::WorkerState::Idle, None)
            }),
        )
    }

    // -----------------------------------------------------------------------------
    // Scheduling
    // -----------------------------------------------------------------------------

    /// Hands out leases round-robin, one per worker per pass, until every worker holds
    /// what it may or no live job has unassigned work; then, if a worker found nothing
    /// to run, steals.
    fn schedule(&mut self, now: Instant) {
        let mut left_at_start: BTreeMap<JobId, u64> = BTreeMap::new();
        let mut steal = false;
        loop {
            let mut assigned = false;
            for conn in self.workers.wanting() {
                let view = View {
                    config: &self.config,
                    jobs: &self.jobs,
                    leases: &self.leases,
                    workers: &self.workers,
                };
                match schedule::decide(view, &mut self.rates, &mut left_at_start, now, conn) {
                    Decision::NotReady | Decision::Full => self.workers.unwant(conn),
                    Decision::NothingToRun => steal = true,
                    Decision::Assign { job, range } => {
                        if let Some(j) = self.jobs.get_mut(job) {
                            j.record.take_front(&range);
                        }
                        self.assign(now, conn, job, range);
                        assigned = true;
                    }
                }
            }
            if !assigned {
                break;
            }
        }
        if steal {
            while let Some(s) = steal::next_steal(self.view(), now) {
                if let Some(l) = self.leases.get_mut(s.victim) {
                    l.trim = Some((s.at, s.thief));
                }
                self.trim_deadlines
                    .insert((now + self.config.lease_timeout, s.victim));
                self.outbox.push_back(Transmit::ToWorker(
                    s.owner,
                    CoordToWorker::Trim(Trim {
                        lease: s.victim,
                        end: s.at,
                    }),
                ));
            }
        }
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncate_text(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
