//! The coordinator's decisions as a synchronous state machine: connected peers, the
//! job table, leases, chunk sizing (calibration, speed-proportional shares, adaptive
//! prefetch), which job gets the next chunk (priority, then fairness between clients),
//! work stealing, drain, verification of claimed solutions, lease expiry. It never
//! reads a clock or touches a socket: time comes in as `now`, effects go out as
//! [`Transmit`] values. The async driver (`crate::service`, in the IO half) owns one `Coordinator`
//! and does the IO; tests and the simulation (`tests/sim.rs`) drive it directly.
//!
//! Driving order: after any `handle_*` call, drain [`Coordinator::poll_transmit`] (with
//! the current time) until it returns `None`, then sleep until
//! [`Coordinator::poll_timeout`] (or the next input) and call
//! [`Coordinator::handle_timeout`] when it passes. Scheduling is requested by the
//! handlers and runs once, at the first `poll_transmit` after a batch.
//!
//! Every index of a job is committed exactly once: leases cover disjoint ranges, a
//! lease advances only through its worker's reports, and whatever a lost, expired or
//! released lease had not reached returns to the job's queue. A steal takes effect only
//! when the owner has said where it stops (`Trimmed`). Reports naming a lease that no
//! longer exists are stale and ignored (counted in [`CoordinatorStats`]).

use crate::identity::{PeerIdentity, Role};
use crate::ids::{ConnId, JobId, LeaseId, RequestId, WorkerId};
use crate::job::{JobKind, JobSpec, SearchMode};
use crate::kernel::{SearchKernel, Solution};
use crate::wire::{
    negotiate_minor, Assign, ChunkOutput, ClientHello, ClientToCoord, ClientWelcome, CloseCode,
    ClusterStatus, Contribution, CoordToClient, CoordToWorker, Drain, Found, JobProgress,
    JobReport, JobRequest, JobState, JobSummary, Output, Progress, Refusal, Rejected, Released,
    Stop, Submit, Trim, Trimmed, WorkSpec, WorkerHello, WorkerState, WorkerStatus, WorkerToCoord,
    WorkerWelcome, MAX_JOB_OUTPUT_BYTES, MAX_LISTED_JOBS, MAX_OUTPUT_BATCH_BYTES, MAX_SOLUTIONS,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tunables of the coordinator.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// A chunk is sized to take about this long on the worker it goes to.
    pub chunk_time: Duration,
    /// Until a worker's rate is measured from its reports, its chunks are sized for
    /// this long at its benchmarked rate: small, to calibrate.
    pub calibration_time: Duration,
    /// Smallest chunk handed out (except a job's last remainder).
    pub min_chunk: u64,
    /// Largest chunk handed out.
    pub max_chunk: u64,
    /// Leases a worker holds at once: the one it works on plus queued ones, so it
    /// never waits a round trip between chunks.
    pub leases_per_worker: usize,
    /// When a worker's chunks take less than a progress interval (tiny jobs, a job's
    /// tail, no-op chunks), two leases cannot cover a round trip: it may then hold up
    /// to this many.
    pub max_prefetch: usize,
    /// How often workers report progress, and how often watchers get progress.
    pub progress_interval: Duration,
    /// A worker silent for this long loses its leases (the unfinished parts return to
    /// the queue). Independent of QUIC's idle timeout.
    pub lease_timeout: Duration,
    /// Smallest range worth stealing: below this a split costs more than it saves.
    pub min_steal: u64,
    /// Steal only when the lease that ends last would end at least this much later
    /// than the thief becomes free.
    pub steal_gap: Duration,
    /// Work stealing on (the default); off only to compare against it.
    pub steal: bool,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            chunk_time: Duration::from_secs(2),
            calibration_time: Duration::from_millis(500),
            min_chunk: 1 << 16,
            max_chunk: 1 << 32,
            leases_per_worker: 2,
            max_prefetch: 16,
            progress_interval: Duration::from_millis(250),
            lease_timeout: Duration::from_secs(5),
            min_steal: 1 << 16,
            steal_gap: Duration::from_millis(50),
            steal: true,
        }
    }
}

/// A decoded message from a peer.
#[derive(Clone, Debug)]
pub enum Inbound {
    /// From a worker connection.
    Worker(WorkerToCoord),
    /// From a client connection.
    Client(ClientToCoord),
}

/// An effect for the driver to carry out, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Send a message to a worker.
    ToWorker(ConnId, CoordToWorker),
    /// Send a message to a client.
    ToClient(ConnId, CoordToClient),
    /// Close a connection (after sending what was queued for it before).
    Close(ConnId, CloseCode, String),
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
}

struct Job {
    spec: JobSpec,
    priority: i32,
    /// The submitting client's certificate name: fairness is between clients.
    client: String,
    /// The kernel that verifies claimed solutions; `None` for a custom job.
    kernel: Option<Arc<dyn SearchKernel>>,
    work: WorkSpec,
    keyspace: u64,
    /// Unassigned ranges, disjoint and sorted by index.
    pending: VecDeque<Range<u64>>,
    leases: BTreeSet<LeaseId>,
    state: JobState,
    hashes: u64,
    solutions: BTreeMap<u64, Solution>,
    /// Solutions beyond `MAX_SOLUTIONS` were dropped.
    truncated: bool,
    contributions: BTreeMap<String, u64>,
    /// A custom job's results, in the order they were committed.
    outputs: Vec<ChunkOutput>,
    output_bytes: u64,
    /// Why the job failed.
    error: Option<String>,
    submitted: Instant,
    finished: Option<Instant>,
    watchers: BTreeSet<ConnId>,
    /// Progress changed since watchers were last told.
    dirty: bool,
}

struct Lease {
    job: JobId,
    worker: ConnId,
    position: u64,
    end: u64,
    /// When `position` was reported, or the worker started on the lease (as far as
    /// the coordinator can tell: when it got it while idle, or finished the one before).
    reported_at: Instant,
    /// A trim sent and not yet acknowledged: the requested end and the worker that
    /// gets the rest.
    trim: Option<(u64, ConnId)>,
}

struct Worker {
    id: WorkerId,
    name: String,
    hello: Option<WorkerHello>,
    leases: BTreeSet<LeaseId>,
    leaving: bool,
    /// Lost its leases for silence: gets no new work until it is heard from again.
    suspect: bool,
    connected: Instant,
    /// When the worker was last heard from, or given work while it held none: its
    /// leases expire `lease_timeout` after this.
    last_heard: Instant,
    /// This worker's entry in `Coordinator::deadlines`, if it holds leases.
    deadline: Option<Instant>,
    hashes: u64,
    /// The last measured rate, of whatever job: shown in the status.
    rate_hps: f64,
    /// Measured rate per job: kernels differ in cost, so a rate holds for one job.
    rates: BTreeMap<JobId, Rate>,
}

/// A worker's rate on one job, an exponentially weighted average of samples of at
/// least 0.2 s.
struct Rate {
    /// Indices per second; zero until the first sample.
    hps: f64,
    /// (time, indices of the job committed by the worker) when the sample began.
    sample: (Instant, u64),
    /// Indices of the job committed by the worker.
    done: u64,
}

impl Worker {
    /// Starts a new rate sample of `job` at `now` (the worker starts on it after
    /// being idle or on another job).
    fn restart_sample(&mut self, job: JobId, now: Instant) {
        if let Some(rate) = self.rates.get_mut(&job) {
            rate.sample = (now, rate.done);
        }
    }

    /// The measured rate on `job`, if any.
    fn measured(&self, job: JobId) -> Option<f64> {
        self.rates.get(&job).map(|r| r.hps).filter(|hps| *hps > 0.0)
    }
}

struct Client {
    name: String,
    hello: bool,
}

enum Peer {
    Worker(Box<Worker>),
    Client(Client),
}

/// Why a peer's message broke the protocol: the connection is closed with this text.
type Violation = (CloseCode, String);

/// The coordinator state machine. See the module docs for the driving order.
pub struct Coordinator {
    config: CoordinatorConfig,
    peers: BTreeMap<ConnId, Peer>,
    jobs: BTreeMap<JobId, Job>,
    leases: BTreeMap<LeaseId, Lease>,
    next_job: u64,
    next_lease: u64,
    next_worker: u64,
    outbox: VecDeque<Transmit>,
    schedule_requested: bool,
    next_push: Option<Instant>,
    /// Names of drained workers.
    drained: BTreeSet<String>,
    /// When each worker holding leases expires, ordered: timeouts without a scan.
    deadlines: BTreeSet<(Instant, ConnId)>,
    /// Workers that may have room for another lease: the scheduler visits only these
    /// (a worker enters when it frees a slot or becomes ready, and leaves when full).
    wanting: BTreeSet<ConnId>,
    /// The ready workers' total rate on each job and when it was summed: refreshed
    /// once a progress interval, or when the set of ready workers changes.
    total_rate: BTreeMap<JobId, (Instant, f64)>,
    stats: CoordinatorStats,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("peers", &self.peers.len())
            .field("jobs", &self.jobs.len())
            .field("leases", &self.leases.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Coordinator {
    /// A coordinator with no peers and no jobs.
    pub fn new(config: CoordinatorConfig) -> Self {
        Coordinator {
            config,
            peers: BTreeMap::new(),
            jobs: BTreeMap::new(),
            leases: BTreeMap::new(),
            next_job: 1,
            next_lease: 1,
            next_worker: 1,
            outbox: VecDeque::new(),
            schedule_requested: false,
            next_push: None,
            drained: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            wanting: BTreeSet::new(),
            total_rate: BTreeMap::new(),
            stats: CoordinatorStats::default(),
        }
    }

    /// Counters of stale reports, expiries and violations.
    pub fn stats(&self) -> CoordinatorStats {
        self.stats
    }

    /// The configuration in force.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// A peer completed the TLS handshake; `identity` comes from its certificate.
    /// A worker connecting under a name that is already connected replaces the older
    /// connection, whose leases return to the queue (a Pi that lost its network and
    /// came back should not wait for its ghost to time out).
    pub fn handle_connected(&mut self, now: Instant, conn: ConnId, identity: PeerIdentity) {
        let peer = match identity.role {
            Role::Worker => {
                let ghost = self.peers.iter().find_map(|(c, p)| match p {
                    Peer::Worker(w) if w.name == identity.name => Some(*c),
                    _ => None,
                });
                if let Some(ghost) = ghost {
                    self.drop_peer(ghost, CloseCode::Replaced, "replaced by a newer connection");
                }
                let id = WorkerId(self.next_worker);
                self.next_worker += 1;
                Peer::Worker(Box::new(Worker {
                    id,
                    name: identity.name,
                    hello: None,
                    leases: BTreeSet::new(),
                    leaving: false,
                    suspect: false,
                    connected: now,
                    last_heard: now,
                    deadline: None,
                    hashes: 0,
                    rate_hps: 0.0,
                    rates: BTreeMap::new(),
                }))
            }
            Role::Client | Role::Admin => Peer::Client(Client {
                name: identity.name,
                hello: false,
            }),
            Role::Coordinator => {
                self.stats.violations += 1;
                self.outbox.push_back(Transmit::Close(
                    conn,
                    CloseCode::Unauthorized,
                    "a coordinator certificate may not connect as a peer".to_string(),
                ));
                return;
            }
        };
        self.peers.insert(conn, peer);
    }

    /// A connection ended (closed by either side, or lost). Its leases return to the
    /// queue from the last reported position.
    pub fn handle_disconnected(&mut self, _now: Instant, conn: ConnId) {
        if let Some(peer) = self.peers.remove(&conn) {
            self.forget_peer(conn, peer);
        }
    }

    /// A message arrived from `conn`.
    pub fn handle_inbound(&mut self, now: Instant, conn: ConnId, message: Inbound) {
        let result = match (self.peers.get(&conn), message) {
            (None, _) => Ok(()), // already closed; late frames are harmless
            (Some(Peer::Worker(_)), Inbound::Worker(m)) => {
                let result = self.on_worker(now, conn, m);
                self.refresh_deadline(conn);
                result
            }
            (Some(Peer::Client(_)), Inbound::Client(m)) => self.on_client(now, conn, m),
            (Some(_), _) => Err((
                CloseCode::Unauthorized,
                "message for another role than the certificate's".to_string(),
            )),
        };
        if let Err((code, reason)) = result {
            self.stats.violations += 1;
            self.drop_peer(conn, code, &reason);
        }
    }

    /// `conn` sent bytes that are not a valid frame: it is closed.
    pub fn handle_bad_frame(&mut self, _now: Instant, conn: ConnId, reason: String) {
        if self.peers.contains_key(&conn) {
            self.stats.violations += 1;
            self.drop_peer(conn, CloseCode::BadFrame, &reason);
        }
    }

    /// Time passed: expire leases of silent workers and push progress to watchers.
    pub fn handle_timeout(&mut self, now: Instant) {
        let silent: Vec<ConnId> = self
            .deadlines
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .map(|(_, conn)| *conn)
            .collect();
        for conn in silent {
            let leases = match self.peers.get_mut(&conn) {
                Some(Peer::Worker(w)) => {
                    w.suspect = true;
                    self.total_rate.clear();
                    std::mem::take(&mut w.leases)
                }
                _ => {
                    // Never left behind by the code above; if it were, it would fire forever.
                    self.deadlines.retain(|(_, c)| *c != conn);
                    continue;
                }
            };
            for lease in leases {
                self.stats.expired_leases += 1;
                self.requeue(lease);
                // The worker may be alive but cut off; tell it in case it comes back.
                self.outbox.push_back(Transmit::ToWorker(
                    conn,
                    CoordToWorker::Stop(Stop { lease }),
                ));
            }
            self.refresh_deadline(conn);
            self.schedule_requested = true;
        }
        if self.next_push.is_some_and(|t| now >= t) {
            self.next_push = None;
            let mut pushes = Vec::new();
            for (id, job) in self.jobs.iter_mut() {
                if job.dirty && !job.state.is_final() && !job.watchers.is_empty() {
                    job.dirty = false;
                    let progress = progress_of(*id, job, now);
                    pushes.extend(job.watchers.iter().map(|c| (*c, progress)));
                }
            }
            for (conn, progress) in pushes {
                self.outbox
                    .push_back(Transmit::ToClient(conn, CoordToClient::Progress(progress)));
            }
            self.arm_push(now);
        }
    }

    /// The next time [`Coordinator::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let expiry = self.deadlines.first().map(|(deadline, _)| *deadline);
        [expiry, self.next_push].into_iter().flatten().min()
    }

    /// Re-indexes a worker's lease deadline after its leases or `last_heard` changed.
    fn refresh_deadline(&mut self, conn: ConnId) {
        let Some(Peer::Worker(w)) = self.peers.get_mut(&conn) else {
            return;
        };
        let wanted = (!w.leases.is_empty()).then(|| w.last_heard + self.config.lease_timeout);
        if wanted != w.deadline {
            if let Some(old) = w.deadline {
                self.deadlines.remove(&(old, conn));
            }
            if let Some(new) = wanted {
                self.deadlines.insert((new, conn));
            }
            w.deadline = wanted;
        }
    }

    /// The next effect to carry out. Runs the scheduler first if any input asked for it.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.schedule_requested {
            self.schedule_requested = false;
            self.schedule(now);
        }
        self.outbox.pop_front()
    }

    /// Progress of the newest [`MAX_LISTED_JOBS`] jobs, by id.
    pub fn jobs(&self, now: Instant) -> Vec<JobSummary> {
        let skip = self.jobs.len().saturating_sub(MAX_LISTED_JOBS);
        self.jobs
            .iter()
            .skip(skip)
            .map(|(id, job)| summary_of(*id, job, now))
            .collect()
    }

    /// The report of a job (final or not).
    pub fn report(&self, job: JobId, now: Instant) -> Option<JobReport> {
        self.jobs.get(&job).map(|j| report_of(job, j, now))
    }

    /// Connected workers (by name) and all jobs.
    pub fn status(&self, now: Instant) -> ClusterStatus {
        let mut workers = self
            .peers
            .values()
            .filter_map(|p| match p {
                Peer::Worker(w) => w.hello.as_ref().map(|h| WorkerStatus {
                    name: w.name.clone(),
                    worker: w.id,
                    state: if w.leaving {
                        WorkerState::Leaving
                    } else if w.suspect {
                        WorkerState::Unresponsive
                    } else if self.drained.contains(&w.name) {
                        WorkerState::Draining
                    } else if w.leases.is_empty() {
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
                    leases: w.leases.len() as u32,
                    connected_ms: millis(now.saturating_duration_since(w.connected)),
                }),
                Peer::Client(_) => None,
            })
            .collect::<Vec<_>>();
        workers.sort_by(|a, b| a.name.cmp(&b.name));
        ClusterStatus {
            workers,
            jobs: self.jobs(now),
        }
    }

    // -----------------------------------------------------------------------------
    // Workers
    // -----------------------------------------------------------------------------

    fn on_worker(
        &mut self,
        now: Instant,
        conn: ConnId,
        message: WorkerToCoord,
    ) -> Result<(), Violation> {
        let progress_interval_ms = millis(self.config.progress_interval) as u32;
        let worker = self.worker_mut(conn);
        worker.last_heard = now;
        let revived = std::mem::take(&mut worker.suspect);
        let greeted = worker.hello.is_some();
        if revived {
            self.schedule_requested = true;
            self.wanting.insert(conn);
            self.total_rate.clear();
        }
        match message {
            WorkerToCoord::Hello(hello) if !greeted => {
                let worker = self.worker_mut(conn);
                let welcome = WorkerWelcome {
                    minor: negotiate_minor(hello.minor),
                    worker: worker.id,
                    progress_interval_ms,
                };
                worker.hello = Some(hello);
                self.wanting.insert(conn);
                self.total_rate.clear();
                self.outbox
                    .push_back(Transmit::ToWorker(conn, CoordToWorker::Welcome(welcome)));
                self.schedule_requested = true;
                Ok(())
            }
            WorkerToCoord::Hello(_) => Err(protocol("a second hello")),
            _ if !greeted => Err(protocol("a message before the hello")),
            WorkerToCoord::Progress(Progress { lease, position }) => {
                let Some(lease_ref) = self.own_lease(conn, lease)? else {
                    return Ok(());
                };
                let end = lease_ref.end;
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
                let Some(lease_ref) = self.own_lease(conn, lease)? else {
                    return Ok(());
                };
                let job = lease_ref.job;
                let name = self.worker_mut(conn).name.clone();
                self.fail_job(now, job, format!("worker {name} cannot run it: {reason}"));
                Ok(())
            }
            WorkerToCoord::Found(Found { lease, indices }) => {
                self.on_found(now, conn, lease, indices)
            }
            WorkerToCoord::Released(Released { lease, position }) => {
                if self.released_lease(conn, lease)?.is_none() {
                    return Ok(());
                }
                self.check_output_free(lease, position)?;
                self.advance(now, lease, position)?;
                self.requeue(lease);
                Ok(())
            }
            WorkerToCoord::Trimmed(Trimmed { lease, end }) => {
                self.on_trimmed(now, conn, lease, end)
            }
            WorkerToCoord::Leaving => {
                self.drop_peer(conn, CloseCode::Normal, "worker left");
                Ok(())
            }
        }
    }

    fn worker_mut(&mut self, conn: ConnId) -> &mut Worker {
        match self.peers.get_mut(&conn) {
            Some(Peer::Worker(w)) => w,
            _ => unreachable!("on_worker is only called for worker peers"),
        }
    }

    /// The lease if it is live and `conn`'s; `None` if stale; a violation if it
    /// belongs to someone else.
    fn own_lease(&mut self, conn: ConnId, lease: LeaseId) -> Result<Option<&Lease>, Violation> {
        match self.leases.get(&lease) {
            None => {
                self.stats.stale_reports += 1;
                Ok(None)
            }
            Some(l) if l.worker != conn => Err(protocol(&format!("lease {lease} is not yours"))),
            Some(l) => Ok(Some(l)),
        }
    }

    /// Like `own_lease`, for a release: releasing a lease we already took back is how
    /// a worker acknowledges `Stop`, not a stale report.
    fn released_lease(&self, conn: ConnId, lease: LeaseId) -> Result<Option<&Lease>, Violation> {
        match self.leases.get(&lease) {
            None => Ok(None),
            Some(l) if l.worker != conn => Err(protocol(&format!("lease {lease} is not yours"))),
            Some(l) => Ok(Some(l)),
        }
    }

    /// A custom job's indices are committed only with their result (`Output`): a
    /// `Progress` or `Released` for one may not move the lease forward.
    fn check_output_free(&self, lease_id: LeaseId, position: u64) -> Result<(), Violation> {
        let lease = &self.leases[&lease_id];
        let custom = self
            .jobs
            .get(&lease.job)
            .is_some_and(|j| j.kernel.is_none());
        if custom && position > lease.position {
            return Err(protocol(&format!(
                "lease {lease_id} of a custom job advanced without its output"
            )));
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
    ) -> Result<(), Violation> {
        let Some(lease) = self.own_lease(conn, lease_id)? else {
            return Ok(());
        };
        let (job_id, start, end) = (lease.job, lease.position, lease.end);
        let job = self.jobs.get_mut(&job_id).expect("a live lease has a job");
        if job.kernel.is_some() {
            return Err(protocol(&format!(
                "output for lease {lease_id}, which is not of a custom job"
            )));
        }
        if position <= start || position > end {
            return Err(protocol(&format!(
                "output up to {position} outside the unsearched part {start}..{end} of lease {lease_id}"
            )));
        }
        job.output_bytes += data.len() as u64;
        if job.output_bytes > MAX_JOB_OUTPUT_BYTES {
            self.fail_job(
                now,
                job_id,
                format!(
                    "its results exceed the coordinator's limit of {MAX_JOB_OUTPUT_BYTES} bytes"
                ),
            );
            return Ok(());
        }
        let output = ChunkOutput {
            start,
            end: position,
            data,
        };
        for conn in &job.watchers {
            self.outbox.push_back(Transmit::ToClient(
                *conn,
                CoordToClient::Outputs(job_id, vec![output.clone()]),
            ));
        }
        job.outputs.push(output);
        self.advance(now, lease_id, position)?;
        if position == end {
            self.finish_lease(now, lease_id);
        }
        Ok(())
    }

    /// Moves a lease's position forward, committing the indices in between.
    fn advance(&mut self, now: Instant, lease_id: LeaseId, position: u64) -> Result<(), Violation> {
        let lease = self
            .leases
            .get_mut(&lease_id)
            .expect("checked by own_lease");
        if position < lease.position || position > lease.end {
            return Err(protocol(&format!(
                "position {position} outside the unsearched part {}..{} of lease {lease_id}",
                lease.position, lease.end
            )));
        }
        let delta = position - lease.position;
        let since = lease.reported_at;
        lease.position = position;
        lease.reported_at = now;
        let (job_id, conn) = (lease.job, lease.worker);
        let Some(Peer::Worker(worker)) = self.peers.get_mut(&conn) else {
            return Ok(());
        };
        worker.hashes += delta;
        // A worker's first report on a job: its first sample began with the lease.
        let rate = worker.rates.entry(job_id).or_insert(Rate {
            hps: 0.0,
            sample: (since, 0),
            done: 0,
        });
        rate.done += delta;
        let (t0, d0) = rate.sample;
        let dt = now.saturating_duration_since(t0).as_secs_f64();
        if dt >= 0.2 {
            let sample = (rate.done - d0) as f64 / dt;
            rate.hps = if rate.hps == 0.0 {
                sample
            } else {
                0.7 * rate.hps + 0.3 * sample
            };
            rate.sample = (now, rate.done);
            worker.rate_hps = rate.hps;
        }
        let name = worker.name.clone();
        if let Some(job) = self.jobs.get_mut(&job_id) {
            job.hashes += delta;
            *job.contributions.entry(name).or_default() += delta;
            job.dirty = true;
            // In a job's tail, fresh positions may make a steal worth it.
            self.schedule_requested |= job.pending.is_empty();
        }
        Ok(())
    }

    fn on_found(
        &mut self,
        now: Instant,
        conn: ConnId,
        lease_id: LeaseId,
        indices: Vec<u64>,
    ) -> Result<(), Violation> {
        let Some(lease) = self.own_lease(conn, lease_id)? else {
            return Ok(());
        };
        let (job_id, start, end) = (lease.job, lease.position, lease.end);
        let job = self.jobs.get_mut(&job_id).expect("a live lease has a job");
        let Some(kernel) = job.kernel.clone() else {
            return Err(protocol(&format!(
                "solutions claimed in lease {lease_id} of a custom job"
            )));
        };
        for index in indices {
            // A claim below the lease position would refer to already committed work.
            let solution = (start..end)
                .contains(&index)
                .then(|| kernel.verify(index))
                .flatten();
            let Some(solution) = solution else {
                return Err((
                    CloseCode::BadResult,
                    format!("index {index} claimed in lease {lease_id} is not a solution"),
                ));
            };
            job.solutions.insert(index, solution);
            if job.solutions.len() > MAX_SOLUTIONS {
                job.solutions.pop_last();
                job.truncated = true;
            }
            job.dirty = true;
        }
        let all_found = kernel
            .max_solutions()
            .is_some_and(|max| job.solutions.len() as u64 >= max);
        if (job.spec.mode == SearchMode::First && !job.solutions.is_empty()) || all_found {
            self.end_job(now, job_id, JobState::Completed);
        }
        Ok(())
    }

    /// A lease reached its end. The job completes when that was its last searched
    /// range.
    fn finish_lease(&mut self, now: Instant, lease_id: LeaseId) {
        let Some(lease) = self.detach_lease(lease_id) else {
            return;
        };
        // The worker moves straight on to its next lease: that one's clock starts now,
        // and so does its job's rate sample if the worker was on another job.
        if let Some(Peer::Worker(w)) = self.peers.get_mut(&lease.worker) {
            if let Some(next) = w.leases.first().and_then(|id| self.leases.get_mut(id)) {
                next.reported_at = now;
                if next.job != lease.job {
                    w.restart_sample(next.job, now);
                }
            }
        }
        if let Some(job) = self.jobs.get_mut(&lease.job) {
            if !job.state.is_final() && job.pending.is_empty() && job.leases.is_empty() {
                debug_assert_eq!(job.hashes, job.keyspace);
                self.end_job(now, lease.job, JobState::Completed);
            }
        }
        self.schedule_requested = true;
    }

    /// Removes a lease from the lease table, its worker and its job.
    fn detach_lease(&mut self, lease_id: LeaseId) -> Option<Lease> {
        let lease = self.leases.remove(&lease_id)?;
        if let Some(Peer::Worker(w)) = self.peers.get_mut(&lease.worker) {
            w.leases.remove(&lease_id);
            self.wanting.insert(lease.worker);
        }
        self.refresh_deadline(lease.worker);
        if let Some(job) = self.jobs.get_mut(&lease.job) {
            job.leases.remove(&lease_id);
        }
        Some(lease)
    }

    /// Returns the unsearched part of a lease to its job's queue.
    fn requeue(&mut self, lease_id: LeaseId) {
        let Some(lease) = self.detach_lease(lease_id) else {
            return;
        };
        if let Some(job) = self.jobs.get_mut(&lease.job) {
            if !job.state.is_final() && lease.position < lease.end {
                // Keep the queue in index order, so work is searched in order.
                let at = job.pending.partition_point(|r| r.start < lease.position);
                job.pending.insert(at, lease.position..lease.end);
            }
        }
        self.schedule_requested = true;
    }

    // -----------------------------------------------------------------------------
    // Clients
    // -----------------------------------------------------------------------------

    fn on_client(
        &mut self,
        now: Instant,
        conn: ConnId,
        message: ClientToCoord,
    ) -> Result<(), Violation> {
        let Some(Peer::Client(client)) = self.peers.get_mut(&conn) else {
            unreachable!("on_client is only called for client peers");
        };
        let greeted = client.hello;
        let reply = match message {
            ClientToCoord::Hello(ClientHello { minor, .. }) if !greeted => {
                client.hello = true;
                CoordToClient::Welcome(ClientWelcome {
                    minor: negotiate_minor(minor),
                })
            }
            ClientToCoord::Hello(_) => return Err(protocol("a second hello")),
            _ if !greeted => return Err(protocol("a message before the hello")),
            ClientToCoord::Submit(submit) => self.submit(now, conn, &submit),
            ClientToCoord::Drain(Drain {
                request,
                worker,
                drain,
            }) => match self.drain(now, &worker, drain) {
                Some(status) => CoordToClient::Drained(request, status),
                None => CoordToClient::Refused(request, Refusal::UnknownWorker(worker)),
            },
            ClientToCoord::Watch(JobRequest { request, job }) => {
                let Some(j) = self.jobs.get_mut(&job) else {
                    self.refuse(conn, request, Refusal::UnknownJob(job));
                    return Ok(());
                };
                j.watchers.insert(conn);
                let progress = progress_of(job, j, now);
                self.outbox.push_back(Transmit::ToClient(
                    conn,
                    CoordToClient::Watching(request, progress),
                ));
                // Everything so far, in frames of bounded size.
                let mut batch = Vec::new();
                let mut bytes = 0;
                for output in &j.outputs {
                    if bytes + output.data.len() > MAX_OUTPUT_BATCH_BYTES && !batch.is_empty() {
                        self.outbox.push_back(Transmit::ToClient(
                            conn,
                            CoordToClient::Outputs(job, std::mem::take(&mut batch)),
                        ));
                        bytes = 0;
                    }
                    bytes += output.data.len();
                    batch.push(output.clone());
                }
                if !batch.is_empty() {
                    self.outbox
                        .push_back(Transmit::ToClient(conn, CoordToClient::Outputs(job, batch)));
                }
                if j.state.is_final() {
                    let report = report_of(job, j, now);
                    self.outbox
                        .push_back(Transmit::ToClient(conn, CoordToClient::Finished(report)));
                } else {
                    self.arm_push(now);
                }
                return Ok(());
            }
            ClientToCoord::Cancel(JobRequest { request, job }) => {
                let Some(j) = self.jobs.get(&job) else {
                    self.refuse(conn, request, Refusal::UnknownJob(job));
                    return Ok(());
                };
                if !j.state.is_final() {
                    self.end_job(now, job, JobState::Cancelled);
                }
                let j = &self.jobs[&job];
                CoordToClient::Cancelled(request, summary_of(job, j, now))
            }
            ClientToCoord::ListJobs(request) => CoordToClient::Jobs(request, self.jobs(now)),
            ClientToCoord::Status(request) => CoordToClient::Status(request, self.status(now)),
        };
        self.outbox.push_back(Transmit::ToClient(conn, reply));
        Ok(())
    }

    fn refuse(&mut self, conn: ConnId, request: RequestId, refusal: Refusal) {
        self.outbox.push_back(Transmit::ToClient(
            conn,
            CoordToClient::Refused(request, refusal),
        ));
    }

    fn submit(&mut self, now: Instant, conn: ConnId, submit: &Submit) -> CoordToClient {
        let client = match self.peers.get(&conn) {
            Some(Peer::Client(c)) => c.name.clone(),
            _ => String::new(),
        };
        let spec = match submit.spec() {
            Ok(spec) => spec,
            Err(e) => {
                return CoordToClient::Refused(submit.request, Refusal::InvalidJob(e.to_string()))
            }
        };
        let id = JobId(self.next_job);
        self.next_job += 1;
        let kernel = spec.kind.search_kernel();
        let keyspace = spec.kind.keyspace();
        self.jobs.insert(
            id,
            Job {
                work: WorkSpec::from(&spec.kind),
                spec,
                priority: submit.priority,
                client,
                kernel,
                keyspace,
                pending: std::iter::once(0..keyspace).collect(),
                leases: BTreeSet::new(),
                state: JobState::Queued,
                hashes: 0,
                solutions: BTreeMap::new(),
                truncated: false,
                contributions: BTreeMap::new(),
                outputs: Vec::new(),
                output_bytes: 0,
                error: None,
                submitted: now,
                finished: None,
                watchers: BTreeSet::new(),
                dirty: false,
            },
        );
        self.schedule_requested = true;
        CoordToClient::Submitted(JobRequest {
            request: submit.request,
            job: id,
        })
    }

    /// Ends a job as failed, with the reason in its report.
    fn fail_job(&mut self, now: Instant, job_id: JobId, reason: String) {
        if let Some(job) = self.jobs.get_mut(&job_id) {
            if job.state.is_final() {
                return;
            }
            tracing::warn!(job = %job_id, %reason, "job failed");
            job.error = Some(reason);
        }
        self.end_job(now, job_id, JobState::Failed);
    }

    /// Ends a job: its leases are stopped, its watchers get the report.
    fn end_job(&mut self, now: Instant, job_id: JobId, state: JobState) {
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return;
        };
        job.state = state;
        job.finished = Some(now);
        job.pending.clear();
        let leases: Vec<LeaseId> = job.leases.iter().copied().collect();
        for lease_id in leases {
            if let Some(lease) = self.detach_lease(lease_id) {
                self.outbox.push_back(Transmit::ToWorker(
                    lease.worker,
                    CoordToWorker::Stop(Stop { lease: lease_id }),
                ));
            }
        }
        for peer in self.peers.values_mut() {
            if let Peer::Worker(w) = peer {
                w.rates.remove(&job_id);
            }
        }
        self.total_rate.remove(&job_id);
        let job = &self.jobs[&job_id];
        let report = report_of(job_id, job, now);
        for conn in &job.watchers {
            self.outbox.push_back(Transmit::ToClient(
                *conn,
                CoordToClient::Finished(report.clone()),
            ));
        }
        self.schedule_requested = true;
    }

    // -----------------------------------------------------------------------------
    // Scheduling
    // -----------------------------------------------------------------------------

    /// Hands out leases round-robin, one per worker per pass, until every worker holds
    /// `leases_per_worker` or no job has unassigned work. Jobs are served in order of
    /// submission.
    fn schedule(&mut self, now: Instant) {
        // A job with less unassigned work than the cluster eats in one round of
        // chunks is shared out in proportion to speed instead, measured from what
        // each job had left when this pass began; otherwise the first worker takes a
        // full chunk and the rest get slivers, or nothing.
        let mut left_at_start: BTreeMap<JobId, u64> = BTreeMap::new();
        let mut steal = false;
        loop {
            let mut assigned = false;
            let wanting: Vec<ConnId> = self.wanting.iter().copied().collect();
            for conn in wanting {
                if !self.is_ready(conn) {
                    // It comes back when it is ready again.
                    self.wanting.remove(&conn);
                    continue;
                }
                let Some(job_id) = self.next_job_to_serve(conn) else {
                    // Nothing this worker can run is queued: a steal may help. It
                    // stays wanting, for the next job submitted.
                    steal = true;
                    continue;
                };
                let room = matches!(self.peers.get(&conn),
                    Some(Peer::Worker(w)) if w.leases.len() < self.prefetch(conn, job_id));
                if !room {
                    // Full: it comes back when it frees a slot.
                    self.wanting.remove(&conn);
                    continue;
                }
                let total_rate = self.total_rate(now, job_id);
                let left = *left_at_start.entry(job_id).or_insert_with(|| {
                    self.jobs[&job_id]
                        .pending
                        .iter()
                        .map(|r| r.end - r.start)
                        .sum()
                });
                let share = (left as f64 * self.rate(conn, job_id) / total_rate).ceil() as u64;
                let min_chunk = self.min_chunk(job_id);
                let chunk = self.chunk_size(conn, job_id).min(share.max(min_chunk));
                let job = self.jobs.get_mut(&job_id).expect("found above");
                let front = job.pending.pop_front().expect("non-empty");
                // A remainder of at most 1.2 chunks goes whole: splitting it would
                // leave a sliver that costs a round trip for little work.
                let range = if front.end - front.start <= chunk + chunk / 5 {
                    front
                } else {
                    job.pending.push_front(front.start + chunk..front.end);
                    front.start..front.start + chunk
                };
                self.assign(now, conn, job_id, range);
                assigned = true;
            }
            if !assigned {
                break;
            }
        }
        if steal {
            self.steal(now);
        }
    }

    /// The ready workers' total rate on a job (those that can run it), cached for a
    /// progress interval.
    fn total_rate(&mut self, now: Instant, job_id: JobId) -> f64 {
        if let Some((at, rate)) = self.total_rate.get(&job_id) {
            if now < *at + self.config.progress_interval {
                return *rate;
            }
        }
        let rate = self
            .peers
            .keys()
            .filter(|conn| self.is_ready(**conn) && self.can_run(**conn, job_id))
            .map(|conn| self.rate(*conn, job_id))
            .sum::<f64>()
            .max(1.0);
        self.total_rate.insert(job_id, (now, rate));
        rate
    }

    /// Whether worker `conn` can run job `job_id`: every worker runs the built-in
    /// kinds; a custom job needs its kernel registered.
    fn can_run(&self, conn: ConnId, job_id: JobId) -> bool {
        let Some(job) = self.jobs.get(&job_id) else {
            return false;
        };
        match job.spec.kind.custom_kernel() {
            None => true,
            Some(name) => matches!(self.peers.get(&conn),
                Some(Peer::Worker(w)) if w.hello.as_ref().is_some_and(|h| h.kernels.iter().any(|k| k == name))),
        }
    }

    /// The job the next chunk for worker `conn` goes to: among the jobs it can run
    /// with unassigned work, the highest priority; among equals, the job of the
    /// client with the least hash rate working for it now, so clients share the
    /// cluster fairly; then the oldest.
    fn next_job_to_serve(&self, conn: ConnId) -> Option<JobId> {
        let candidates = || {
            self.jobs.iter().filter(move |(id, j)| {
                !j.state.is_final() && !j.pending.is_empty() && self.can_run(conn, **id)
            })
        };
        let top = candidates().map(|(_, j)| j.priority).max()?;
        let mut clients = candidates()
            .filter(|(_, j)| j.priority == top)
            .map(|(_, j)| j.client.as_str());
        let first_client = clients.next();
        if clients.all(|c| Some(c) == first_client) {
            // One client at the top priority: its oldest job, no shares to weigh.
            return candidates()
                .find(|(_, j)| j.priority == top)
                .map(|(id, _)| *id);
        }
        let mut at_work: BTreeMap<&str, f64> = BTreeMap::new();
        for lease in self.leases.values() {
            if let Some(job) = self.jobs.get(&lease.job) {
                *at_work.entry(job.client.as_str()).or_default() +=
                    self.rate(lease.worker, lease.job);
            }
        }
        let share = |job: &Job| at_work.get(job.client.as_str()).copied().unwrap_or(0.0);
        candidates()
            .min_by(|(a_id, a), (b_id, b)| {
                b.priority
                    .cmp(&a.priority)
                    .then(share(a).total_cmp(&share(b)))
                    .then(a_id.cmp(b_id))
            })
            .map(|(id, _)| *id)
    }

    /// Drains (or undrains) the connected worker named `name`: a drained worker
    /// finishes the chunk it is on and gets nothing new; its queued chunks go back
    /// to the queue. The mark outlives reconnections. `None` if no such worker is
    /// connected.
    fn drain(&mut self, now: Instant, name: &str, drain: bool) -> Option<WorkerStatus> {
        let conn = self.peers.iter().find_map(|(c, p)| match p {
            Peer::Worker(w) if w.name == name && w.hello.is_some() => Some(*c),
            _ => None,
        })?;
        if drain {
            self.drained.insert(name.to_string());
            let queued: Vec<LeaseId> = match self.peers.get(&conn) {
                Some(Peer::Worker(w)) => w.leases.iter().skip(1).copied().collect(),
                _ => Vec::new(),
            };
            for lease in queued {
                self.requeue(lease);
                self.outbox.push_back(Transmit::ToWorker(
                    conn,
                    CoordToWorker::Stop(Stop { lease }),
                ));
            }
        } else {
            self.drained.remove(name);
            self.wanting.insert(conn);
        }
        self.total_rate.clear();
        self.schedule_requested = true;
        self.status(now)
            .workers
            .into_iter()
            .find(|w| w.name == name)
    }

    /// Creates a lease of `range` of `job_id` for worker `conn` and sends it.
    fn assign(&mut self, now: Instant, conn: ConnId, job_id: JobId, range: Range<u64>) {
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return;
        };
        let lease = LeaseId(self.next_lease);
        self.next_lease += 1;
        job.state = JobState::Running;
        job.leases.insert(lease);
        let assign = Assign {
            lease,
            job: job_id,
            work: job.work.clone(),
            start: range.start,
            end: range.end,
        };
        self.leases.insert(
            lease,
            Lease {
                job: job_id,
                worker: conn,
                position: range.start,
                end: range.end,
                reported_at: now,
                trim: None,
            },
        );
        if let Some(Peer::Worker(w)) = self.peers.get_mut(&conn) {
            if w.leases.is_empty() {
                // An idle worker owes no reports: the lease clock starts now, and the
                // job's rate sample leaves out the idle time.
                w.last_heard = now;
                w.restart_sample(job_id, now);
            }
            w.leases.insert(lease);
        }
        self.refresh_deadline(conn);
        self.outbox
            .push_back(Transmit::ToWorker(conn, CoordToWorker::Assign(assign)));
    }

    /// Whether a worker may be given work.
    fn is_ready(&self, conn: ConnId) -> bool {
        matches!(self.peers.get(&conn),
            Some(Peer::Worker(w)) if w.hello.is_some() && !w.leaving && !w.suspect
                && !self.drained.contains(&w.name))
    }

    /// Work stealing, when no job has unassigned work: the worker that will be free
    /// soonest takes the back part of the lease that will end last, split so that
    /// both end together. One steal per thief at a time; each waits for the owner's
    /// `Trimmed`, which says where the owner really stops, before anything is handed
    /// out, so no index is ever searched under two live leases.
    fn steal(&mut self, now: Instant) {
        if !self.config.steal {
            return;
        }
        loop {
            // Seconds until each worker has done everything it holds, and until each
            // lease is done (a worker runs its leases in the order it got them). The
            // lease a worker is on has moved on since its last report: extrapolate.
            let mut free_at: BTreeMap<ConnId, f64> = BTreeMap::new();
            let mut lease_done_at: BTreeMap<LeaseId, f64> = BTreeMap::new();
            let mut estimated: BTreeMap<LeaseId, u64> = BTreeMap::new();
            let mut started: BTreeSet<LeaseId> = BTreeSet::new();
            for (conn, peer) in &self.peers {
                let Peer::Worker(w) = peer else { continue };
                let mut t = 0.0;
                for (i, lease_id) in w.leases.iter().enumerate() {
                    if let Some(l) = self.leases.get(lease_id) {
                        let rate = self.rate(*conn, l.job);
                        if i == 0 {
                            started.insert(*lease_id);
                        }
                        let position = if i == 0 {
                            let moved =
                                now.saturating_duration_since(l.reported_at).as_secs_f64() * rate;
                            (l.position + moved as u64).min(l.end)
                        } else {
                            l.position
                        };
                        estimated.insert(*lease_id, position);
                        t += (l.end - position) as f64 / rate;
                        lease_done_at.insert(*lease_id, t);
                    }
                }
                free_at.insert(*conn, t);
            }
            let busy_thieves: BTreeSet<ConnId> = self
                .leases
                .values()
                .filter_map(|l| l.trim.map(|(_, thief)| thief))
                .collect();
            let thief = free_at
                .iter()
                .filter(|(conn, _)| {
                    self.is_ready(**conn)
                        && !busy_thieves.contains(conn)
                        && matches!(self.peers.get(conn),
                            Some(Peer::Worker(w)) if w.leases.len() < self.config.leases_per_worker)
                        && self.next_job_to_serve(**conn).is_none()
                })
                .min_by(|a, b| a.1.total_cmp(b.1))
                .map(|(conn, t)| (*conn, *t));
            let Some((thief, thief_free)) = thief else {
                return;
            };
            let victim = self
                .leases
                .iter()
                // Splitting a running lease is only worth it for a big enough piece; a
                // queued one can move whole, however small (one stolen down to nothing
                // just waits for its worker to reach it).
                .filter(|(id, l)| {
                    let left = l.end - estimated.get(id).copied().unwrap_or(l.position);
                    l.trim.is_none()
                        && l.worker != thief
                        && left > 0
                        && (left >= self.min_steal(l.job) || !started.contains(id))
                        && self.can_run(thief, l.job)
                })
                .filter(|(_, l)| self.jobs.get(&l.job).is_some_and(|j| !j.state.is_final()))
                .filter_map(|(id, l)| lease_done_at.get(id).map(|t| (*id, l, *t)))
                .max_by(|a, b| a.2.total_cmp(&b.2));
            let Some((victim, lease, victim_done)) = victim else {
                return;
            };
            let gap = victim_done - thief_free;
            if gap <= self.config.steal_gap.as_secs_f64() {
                return;
            }
            let (owner, owner_rate, thief_rate) = (
                lease.worker,
                self.rate(lease.worker, lease.job),
                self.rate(thief, lease.job),
            );
            let min_steal = self.min_steal(lease.job);
            // Both end together: thief_free + p / thief_rate = victim_done - p / owner_rate.
            let share = gap * owner_rate * thief_rate / (owner_rate + thief_rate);
            let left = lease.end - estimated.get(&victim).copied().unwrap_or(lease.position);
            let stolen = (share as u64).min(left);
            let worth = if started.contains(&victim) {
                min_steal
            } else {
                min_steal.min(left)
            };
            if stolen < worth {
                return;
            }
            let at = lease.end - stolen;
            if let Some(l) = self.leases.get_mut(&victim) {
                l.trim = Some((at, thief));
            }
            self.outbox.push_back(Transmit::ToWorker(
                owner,
                CoordToWorker::Trim(Trim {
                    lease: victim,
                    end: at,
                }),
            ));
        }
    }

    /// The owner acknowledged a trim: the lease now ends at `end`, and the rest goes
    /// to the thief (or back to the queue if the thief can no longer take it).
    fn on_trimmed(
        &mut self,
        now: Instant,
        conn: ConnId,
        lease_id: LeaseId,
        end: u64,
    ) -> Result<(), Violation> {
        let Some(lease) = self.released_lease(conn, lease_id)? else {
            return Ok(()); // taken back or finished meanwhile
        };
        let Some((requested, thief)) = lease.trim else {
            return Err(protocol(&format!(
                "lease {lease_id} trimmed without being asked"
            )));
        };
        if end < requested || end > lease.end || end < lease.position {
            return Err(protocol(&format!(
                "lease {lease_id} trimmed to {end}, outside {}..={} (asked for {requested})",
                lease.position.max(requested),
                lease.end
            )));
        }
        let (job_id, old_end) = (lease.job, lease.end);
        if let Some(l) = self.leases.get_mut(&lease_id) {
            l.end = end;
            l.trim = None;
        }
        if end < old_end {
            self.stats.steals += 1;
            if self.is_ready(thief) {
                self.assign(now, thief, job_id, end..old_end);
            } else if let Some(job) = self.jobs.get_mut(&job_id) {
                let at = job.pending.partition_point(|r| r.start < end);
                job.pending.insert(at, end..old_end);
            }
        }
        self.schedule_requested = true;
        Ok(())
    }

    /// A chunk of `job_id` that takes about `chunk_time` at the worker's measured
    /// rate, or `calibration_time` at its estimated rate until it has been measured.
    fn chunk_size(&self, conn: ConnId, job_id: JobId) -> u64 {
        let measured =
            matches!(self.peers.get(&conn), Some(Peer::Worker(w)) if w.measured(job_id).is_some());
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
    fn min_steal(&self, job_id: JobId) -> u64 {
        match self.jobs.get(&job_id).map(|j| &j.spec.kind) {
            Some(JobKind::Custom(c)) => c.block.min(self.config.min_steal),
            _ => self.config.min_steal,
        }
    }

    /// Smallest chunk of a job: `min_chunk`, or one block of a custom kernel (whose
    /// indices may each cost far more than a hash).
    fn min_chunk(&self, job_id: JobId) -> u64 {
        match self.jobs.get(&job_id).map(|j| &j.spec.kind) {
            Some(JobKind::Custom(c)) => c.block.min(self.config.min_chunk),
            _ => self.config.min_chunk,
        }
    }

    /// How many leases a worker may hold: `leases_per_worker`, or up to
    /// `max_prefetch` when its chunks are shorter than a progress interval.
    fn prefetch(&self, conn: ConnId, job_id: JobId) -> usize {
        let chunk_seconds = self.chunk_size(conn, job_id) as f64 / self.rate(conn, job_id);
        if chunk_seconds < self.config.progress_interval.as_secs_f64() {
            self.config.max_prefetch.max(self.config.leases_per_worker)
        } else {
            self.config.leases_per_worker
        }
    }

    /// A worker's rate on a job in indices per second, at least 1: measured; else its
    /// SHA-256d benchmark scaled by the kind's relative cost; else (a custom kernel)
    /// one block per thread in a calibration time.
    fn rate(&self, conn: ConnId, job_id: JobId) -> f64 {
        let rate = match self.peers.get(&conn) {
            Some(Peer::Worker(w)) => match (w.measured(job_id), &w.hello) {
                (Some(hps), _) => hps,
                (None, Some(h)) => match self.jobs.get(&job_id).map(|j| &j.spec.kind) {
                    Some(JobKind::Custom(c)) => {
                        (c.block * u64::from(h.threads.max(1))) as f64
                            / self.config.calibration_time.as_secs_f64()
                    }
                    Some(kind) => h.bench_hps as f64 / kind.relative_cost().unwrap_or(1.0),
                    None => h.bench_hps as f64,
                },
                (None, None) => 0.0,
            },
            _ => 0.0,
        };
        rate.max(1.0)
    }

    // -----------------------------------------------------------------------------
    // Peers
    // -----------------------------------------------------------------------------

    fn drop_peer(&mut self, conn: ConnId, code: CloseCode, reason: &str) {
        if let Some(peer) = self.peers.remove(&conn) {
            self.outbox
                .push_back(Transmit::Close(conn, code, reason.to_string()));
            self.forget_peer(conn, peer);
        }
    }

    fn forget_peer(&mut self, conn: ConnId, peer: Peer) {
        match peer {
            Peer::Worker(w) => {
                self.wanting.remove(&conn);
                self.total_rate.clear();
                if let Some(deadline) = w.deadline {
                    self.deadlines.remove(&(deadline, conn));
                }
                for lease in w.leases {
                    self.stats.lost_leases += 1;
                    self.requeue(lease);
                }
            }
            Peer::Client(_) => {
                for job in self.jobs.values_mut() {
                    job.watchers.remove(&conn);
                }
            }
        }
    }

    fn arm_push(&mut self, now: Instant) {
        let watched = self
            .jobs
            .values()
            .any(|j| !j.state.is_final() && !j.watchers.is_empty());
        if watched && self.next_push.is_none() {
            self.next_push = Some(now + self.config.progress_interval);
        }
    }
}

fn protocol(what: &str) -> Violation {
    (CloseCode::Protocol, format!("protocol violation: {what}"))
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

fn progress_of(id: JobId, job: &Job, now: Instant) -> JobProgress {
    let end = job.finished.unwrap_or(now);
    JobProgress {
        job: id,
        state: job.state,
        hashes: job.hashes,
        keyspace: job.keyspace,
        elapsed_ms: millis(end.saturating_duration_since(job.submitted)),
        solutions: job.solutions.len() as u32,
    }
}

fn summary_of(id: JobId, job: &Job, now: Instant) -> JobSummary {
    JobSummary {
        progress: progress_of(id, job, now),
        kind: match job.spec.kind.custom_kernel() {
            Some(name) => format!("custom:{name}"),
            None => job.spec.kind.name().to_string(),
        },
        mode: job.spec.mode,
        priority: job.priority,
        client: job.client.clone(),
    }
}

fn report_of(id: JobId, job: &Job, now: Instant) -> JobReport {
    let progress = progress_of(id, job, now);
    JobReport {
        job: id,
        state: job.state,
        solutions: job.solutions.values().cloned().collect(),
        truncated: job.truncated,
        hashes: job.hashes,
        keyspace: job.keyspace,
        elapsed_ms: progress.elapsed_ms,
        contributions: job
            .contributions
            .iter()
            .map(|(worker, hashes)| Contribution {
                worker: worker.clone(),
                hashes: *hashes,
            })
            .collect(),
        error: job.error.clone(),
    }
}
