//! The worker's protocol agent: a synchronous state machine that turns coordinator
//! messages and compute events into compute commands and messages for the
//! coordinator. It never reads a clock or touches a socket or thread; the daemon
//! drives it and tests can drive it directly.
//!
//! Driving order: after each `handle_*` call, drain [`Agent::poll_compute`] (commands
//! for the compute engine) and then [`Agent::poll_transmit`] (messages for the
//! coordinator). One agent lives for the whole process; a lost connection is
//! [`Agent::handle_disconnected`], a new one starts with [`Agent::hello`].
//!
//! A lost connection does not stop the work: the leases of built-in kernels keep
//! running (their positions and solutions remembered), and after the next welcome the
//! agent reports them in one [`WorkerToCoord::Holding`]; the coordinator adopts what
//! it can (after its own restart it has held those ranges back for them) and stops
//! the rest. A custom kernel's lease stops at once: its results since the last
//! report could not be sent later without keeping them all.

use crate::compute::{ComputeEvent, TaskId, Work, MAX_TASKS};
use crate::registry::Registry;
use picluster_core::ids::{JobId, LeaseId};
use picluster_core::job::JobKind;
use picluster_core::kernel::{digest_zero_bits, SearchKernel};
use picluster_core::wire::{
    Assign, CoordToWorker, Found, Health, HeldLease, Holding, Output, Progress, RateChange,
    Rejected, Released, Stop, Trim, Trimmed, WorkSpec, WorkerHello, WorkerToCoord, WorkerWelcome,
    MAX_HELD_FOUND, MAX_HELD_LEASES, MINOR_HOLDING, MINOR_RATE, PROTOCOL_MINOR,
};
use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// What the agent tells the compute engine.
#[derive(Clone)]
pub enum ComputeCommand {
    /// Queue a task.
    Run {
        /// The task.
        task: TaskId,
        /// What to compute.
        work: Work,
        /// Which indices.
        range: Range<u64>,
        /// How often to report progress.
        progress_interval: Duration,
    },
    /// Stop a task.
    Stop(TaskId),
    /// End a task early, at `end` or later.
    Trim(TaskId, u64),
}

impl std::fmt::Debug for ComputeCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComputeCommand::Run { task, range, .. } => {
                write!(f, "Run({task:?}, {range:?})")
            }
            ComputeCommand::Stop(task) => write!(f, "Stop({task:?})"),
            ComputeCommand::Trim(task, end) => write!(f, "Trim({task:?}, {end})"),
        }
    }
}

/// The coordinator broke the protocol; the daemon closes the connection. Retrying
/// with the same coordinator software is unlikely to help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// A welcome arrived in the middle of a session.
    #[error("unexpected welcome in an established session")]
    UnexpectedWelcome,
    /// An assignment described work this worker cannot validate.
    #[error("lease {lease}: invalid work: {reason}")]
    InvalidWork {
        /// The lease.
        lease: LeaseId,
        /// What was wrong (the job model's validation error, as text).
        reason: String,
    },
    /// The coordinator answered the hello with something else than a welcome.
    #[error("the coordinator did not answer with a welcome")]
    ExpectedWelcome,
    /// An assignment whose range is empty or outside the job's keyspace.
    #[error("lease {lease}: range {start}..{end} is outside the keyspace of {keyspace}")]
    BadRange {
        /// The lease.
        lease: LeaseId,
        /// First index.
        start: u64,
        /// One past the last.
        end: u64,
        /// The job's keyspace.
        keyspace: u64,
    },
}

/// What this worker is, as told in its hello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Compute threads.
    pub threads: u32,
    /// Kernel implementation name.
    pub kernel_impl: String,
    /// Benchmarked rate, hashes per second.
    pub bench_hps: u64,
}

/// Jobs' kernels as built for the engine: every lease of a job carries the job's
/// whole description, and building its kernel can cost (a preimage job sorts its
/// targets and builds a filter), so the last few jobs' kernels are kept.
#[derive(Default)]
struct KernelCache {
    /// Most recently used last.
    entries: VecDeque<CachedKernel>,
}

struct CachedKernel {
    job: JobId,
    /// The description it was built from: a job id alone could name another job
    /// after the coordinator restarts.
    spec: Arc<WorkSpec>,
    /// The spec's digest, which names the job's work when leases are re-adopted.
    digest: [u8; 32],
    keyspace: u64,
    /// The kernel, or why this worker cannot run the job.
    work: Result<Work, String>,
}

/// What the cache gives for a lease's job.
struct Built {
    keyspace: u64,
    digest: [u8; 32],
    work: Result<Work, String>,
}

/// Jobs whose kernels are kept: the job being run, the next one queued, and a few
/// more for interleaved jobs.
const KERNEL_CACHE: usize = 4;

impl KernelCache {
    /// The keyspace and kernel of `job` as described by `spec`, built on first use.
    fn get_or_build(
        &mut self,
        job: JobId,
        spec: &Arc<WorkSpec>,
        registry: &Registry,
        lease: LeaseId,
    ) -> Result<Built, AgentError> {
        let hit = self
            .entries
            .iter()
            .position(|e| e.job == job && (Arc::ptr_eq(&e.spec, spec) || *e.spec == **spec));
        let entry = match hit {
            Some(i) => self.entries.remove(i).expect("found above"),
            None => {
                let kind = JobKind::try_from(&**spec).map_err(|e| AgentError::InvalidWork {
                    lease,
                    reason: e.to_string(),
                })?;
                let work = match (&kind, kind.search_kernel()) {
                    (_, Some(kernel)) => Ok(Work::Search(kernel)),
                    (JobKind::Custom(custom), None) => registry
                        .bind(custom)
                        .map(Work::Map)
                        .map_err(|e| e.to_string()),
                    (_, None) => unreachable!("every built-in kind has a search kernel"),
                };
                CachedKernel {
                    job,
                    spec: spec.clone(),
                    digest: spec.digest(),
                    keyspace: kind.keyspace(),
                    work,
                }
            }
        };
        let result = Built {
            keyspace: entry.keyspace,
            digest: entry.digest,
            work: entry.work.clone(),
        };
        self.entries.push_back(entry);
        if self.entries.len() > KERNEL_CACHE {
            self.entries.pop_front();
        }
        Ok(result)
    }
}

/// How many finished leases the agent remembers having reported on a connection.
/// The coordinator checkpoints every few seconds and QUIC notices a dead peer only
/// after its idle timeout, so the leases finished in that time may be known to a
/// restarted coordinator as out; at the chunk lengths the scheduler aims for, this
/// covers far more than those seconds.
const REMEMBERED_REPORTS: usize = 128;

struct Held {
    lease: LeaseId,
    job: JobId,
    digest: [u8; 32],
    start: u64,
    /// The last position the engine reported.
    position: u64,
    end: u64,
    /// Every solution found so far, for a report after a lost connection; `None`
    /// once there are more than [`MAX_HELD_FOUND`] (the lease is then not kept).
    found: Option<Vec<u64>>,
    /// A custom kernel's lease (not kept through a lost connection).
    custom: bool,
    /// With shares: the job's own kernel (to tell solutions from shares among the
    /// hits of the share-reporting scan) and the share target.
    shares: Option<(Arc<dyn SearchKernel>, u8)>,
    /// The engine is done with it (only kept while detached, to be reported).
    done: bool,
    standing: Standing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    /// Ours: report progress, solutions and the end.
    Running,
    /// The coordinator said stop: report nothing but the final position, which
    /// acknowledges the stop (and tells a coordinator that took the lease back for
    /// silence that we are alive).
    Stopping,
    /// The connection it was assigned on is gone and the task stops: report nothing.
    Orphaned,
    /// The connection it was assigned on is gone but the task runs on, to be reported
    /// (and adopted) after the next welcome.
    Detached,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Working,
    Leaving,
    Left,
}

/// The worker protocol state machine.
pub struct Agent {
    info: WorkerInfo,
    registry: Arc<Registry>,
    phase: Phase,
    progress_interval: Duration,
    held: BTreeMap<TaskId, Held>,
    /// Leases finished and reported on this connection, most recent last, at most
    /// [`REMEMBERED_REPORTS`]: a coordinator that died before its next checkpoint
    /// (or before the report reached it) knows them only as leases out, so they are
    /// offered again after the next welcome, with the leases still held.
    reported: VecDeque<HeldLease>,
    kernels: KernelCache,
    next_task: u64,
    compute: VecDeque<ComputeCommand>,
    outbox: VecDeque<WorkerToCoord>,
    /// The share target for leases assigned from now on (this connection).
    share_bits: Option<u8>,
    /// Threads that run now (fewer than `info.threads` while the board is hot).
    active: u32,
    /// The minor version of this connection, while connected.
    minor: Option<u16>,
    /// The board's heat as last read, and as last told this connection.
    health: Option<Health>,
    health_sent: Option<Health>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("phase", &self.phase)
            .field("held", &self.held.len())
            .finish()
    }
}

impl Agent {
    /// A new agent, running the built-in kernels and those in `registry`.
    pub fn new(info: WorkerInfo, registry: Arc<Registry>) -> Agent {
        Agent {
            active: info.threads.max(1),
            minor: None,
            health: None,
            health_sent: None,
            info,
            registry,
            phase: Phase::Working,
            progress_interval: Duration::from_millis(250),
            held: BTreeMap::new(),
            reported: VecDeque::new(),
            kernels: KernelCache::default(),
            next_task: 1,
            compute: VecDeque::new(),
            outbox: VecDeque::new(),
            share_bits: None,
        }
    }

    /// The thermal governor runs `active` of the worker's threads now: the
    /// coordinator is told the rate that follows (minor 3 on), and the next hello
    /// says it.
    pub fn handle_active_threads(&mut self, active: u32) {
        let active = active.clamp(1, self.info.threads.max(1));
        if active == self.active {
            return;
        }
        self.active = active;
        if self.minor.is_some_and(|m| m >= MINOR_RATE) {
            self.outbox.push_back(WorkerToCoord::Rate(RateChange {
                threads: active,
                bench_hps: self.rate_now(),
            }));
        }
    }

    /// The board's temperature and throttling flags were read: the coordinator is
    /// told when they changed (minor 3 on).
    pub fn handle_health(&mut self, health: Health) {
        self.health = Some(health);
        if self.minor.is_some_and(|m| m >= MINOR_RATE) && self.health_sent != Some(health) {
            self.health_sent = Some(health);
            self.outbox.push_back(WorkerToCoord::Health(health));
        }
    }

    /// The benchmark scaled to the threads that run now.
    fn rate_now(&self) -> u64 {
        let threads = u64::from(self.info.threads.max(1));
        self.info.bench_hps.saturating_mul(u64::from(self.active)) / threads
    }

    /// The hello that opens a session.
    pub fn hello(&self) -> WorkerToCoord {
        WorkerToCoord::Hello(WorkerHello {
            minor: PROTOCOL_MINOR,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            threads: self.active,
            arch: std::env::consts::ARCH.to_string(),
            kernel_impl: self.info.kernel_impl.clone(),
            bench_hps: self.rate_now(),
            kernels: self.registry.names(),
        })
    }

    /// The session was established: the leases kept through the lost connection
    /// are reported (a coordinator too old to adopt them gets them stopped).
    pub fn handle_welcome(&mut self, welcome: WorkerWelcome) {
        // A share target is per connection: this one's comes after the welcome.
        self.share_bits = None;
        self.minor = Some(welcome.minor);
        self.health_sent = None;
        self.progress_interval =
            Duration::from_millis(u64::from(welcome.progress_interval_ms.max(10)));
        let adopts = welcome.minor >= MINOR_HOLDING;
        let mut leases = Vec::new();
        let mut gone = Vec::new();
        for (task, held) in &mut self.held {
            if held.standing != Standing::Detached {
                continue;
            }
            if !adopts {
                held.standing = Standing::Orphaned;
                if held.done {
                    gone.push(*task);
                } else {
                    self.compute.push_back(ComputeCommand::Stop(*task));
                }
                continue;
            }
            leases.push(HeldLease {
                lease: held.lease,
                job: held.job,
                work: held.digest,
                start: held.start,
                position: held.position,
                // A task the engine ended early ends where it stopped.
                end: if held.done { held.position } else { held.end },
                found: held.found.clone().unwrap_or_default(),
            });
            held.standing = Standing::Running;
            if held.done {
                gone.push(*task);
            }
        }
        for task in gone {
            self.held.remove(&task);
        }
        // Those finished on the last connection, as many as the report may carry.
        let room = MAX_HELD_LEASES.saturating_sub(leases.len());
        let skip = self.reported.len().saturating_sub(room);
        let reported = std::mem::take(&mut self.reported);
        if adopts {
            leases.extend(reported.into_iter().skip(skip));
            self.outbox
                .push_back(WorkerToCoord::Holding(Holding { leases }));
        }
        // After the held leases: the board's heat as last read.
        if let Some(health) = self.health {
            self.handle_health(health);
        }
    }

    /// A message from the coordinator.
    pub fn handle_message(&mut self, message: CoordToWorker) -> Result<(), AgentError> {
        match message {
            CoordToWorker::Welcome(_) => Err(AgentError::UnexpectedWelcome),
            // Certificates are the daemon's business (it holds the credential).
            CoordToWorker::Renewed(_) | CoordToWorker::RenewRefused(_) => Ok(()),
            CoordToWorker::ShareTarget(target) => {
                self.share_bits = Some(target.bits);
                Ok(())
            }
            CoordToWorker::Assign(assign) => self.assign(assign),
            CoordToWorker::Trim(Trim { lease, end }) => {
                // A lease we no longer run (finished, stopped) cannot be trimmed: the
                // coordinator learns that from its end or release.
                let task = self
                    .held
                    .iter()
                    .find(|(_, h)| h.lease == lease && h.standing == Standing::Running);
                if let Some((task, _)) = task {
                    self.compute.push_back(ComputeCommand::Trim(*task, end));
                }
                Ok(())
            }
            CoordToWorker::Stop(Stop { lease }) => {
                let task = self
                    .held
                    .iter_mut()
                    .find(|(_, h)| h.lease == lease && h.standing == Standing::Running);
                if let Some((task, held)) = task {
                    held.standing = Standing::Stopping;
                    self.compute.push_back(ComputeCommand::Stop(*task));
                }
                Ok(())
            }
        }
    }

    fn assign(&mut self, assign: Assign) -> Result<(), AgentError> {
        let Assign {
            lease,
            job,
            work,
            start,
            end,
        } = assign;
        let Built {
            keyspace,
            digest,
            work: built,
        } = self
            .kernels
            .get_or_build(job, &work, &self.registry, lease)?;
        if start >= end || end > keyspace {
            return Err(AgentError::BadRange {
                lease,
                start,
                end,
                keyspace,
            });
        }
        let work = match built {
            Ok(work) => work,
            Err(reason) => {
                // The job's fault, not the coordinator's: it fails the job.
                self.outbox
                    .push_back(WorkerToCoord::Rejected(Rejected { lease, reason }));
                return Ok(());
            }
        };
        if self.phase != Phase::Working || self.held.len() >= MAX_TASKS {
            // Crossed our release in flight, or more than the engine queues (the
            // coordinator prefetches far fewer): hand it straight back.
            self.outbox.push_back(WorkerToCoord::Released(Released {
                lease,
                position: start,
            }));
            return Ok(());
        }
        // With a share target, the scan also reports shares; the job's own kernel
        // tells its solutions apart.
        let (work, shares) = match (&work, self.share_bits) {
            (Work::Search(kernel), Some(bits)) => match kernel.with_shares(u32::from(bits)) {
                Some(sharing) => (Work::Search(sharing), Some((kernel.clone(), bits))),
                None => (work, None),
            },
            _ => (work, None),
        };
        let task = TaskId(self.next_task);
        self.next_task += 1;
        self.held.insert(
            task,
            Held {
                lease,
                job,
                digest,
                start,
                position: start,
                end,
                found: Some(Vec::new()),
                custom: matches!(work, Work::Map(_)),
                shares,
                done: false,
                standing: Standing::Running,
            },
        );
        self.compute.push_back(ComputeCommand::Run {
            task,
            work,
            range: start..end,
            progress_interval: self.progress_interval,
        });
        Ok(())
    }

    /// An event from the compute engine.
    pub fn handle_compute(&mut self, event: ComputeEvent) {
        match event {
            ComputeEvent::Found { task, indices } => {
                let Some(h) = self.held.get_mut(&task) else {
                    return;
                };
                let indices = match &h.shares {
                    None => indices,
                    Some((kernel, bits)) => {
                        let shares: Vec<u64> = indices
                            .iter()
                            .copied()
                            .filter(|&i| {
                                kernel
                                    .digest(i)
                                    .is_some_and(|d| digest_zero_bits(&d) >= u32::from(*bits))
                            })
                            .collect();
                        if !shares.is_empty() && h.standing == Standing::Running {
                            self.outbox.push_back(WorkerToCoord::Shares(Found {
                                lease: h.lease,
                                indices: shares,
                            }));
                        }
                        let solutions: Vec<u64> = indices
                            .into_iter()
                            .filter(|&i| kernel.verify(i).is_some())
                            .collect();
                        if solutions.is_empty() {
                            return;
                        }
                        solutions
                    }
                };
                if let Some(found) = h.found.as_mut() {
                    found.extend_from_slice(&indices);
                    if found.len() > MAX_HELD_FOUND {
                        h.found = None;
                    }
                }
                match h.standing {
                    Standing::Running => self.outbox.push_back(WorkerToCoord::Found(Found {
                        lease: h.lease,
                        indices,
                    })),
                    Standing::Detached if h.found.is_none() => {
                        // Too many to remember: give the lease up.
                        h.standing = Standing::Orphaned;
                        self.compute.push_back(ComputeCommand::Stop(task));
                    }
                    _ => {}
                }
            }
            ComputeEvent::Progress {
                task,
                position,
                output,
            } => {
                if let Some(h) = self.held.get_mut(&task) {
                    h.position = h.position.max(position);
                }
                if let Some(h) = self.running(task) {
                    let lease = h.lease;
                    self.outbox.push_back(match output {
                        Some(data) => WorkerToCoord::Output(Output {
                            lease,
                            position,
                            data,
                        }),
                        None => WorkerToCoord::Progress(Progress { lease, position }),
                    });
                }
            }
            ComputeEvent::Failed { task, reason } => {
                if let Some(h) = self.held.get_mut(&task) {
                    if h.standing == Standing::Running {
                        h.standing = Standing::Stopping;
                        self.outbox.push_back(WorkerToCoord::Rejected(Rejected {
                            lease: h.lease,
                            reason: reason.to_string(),
                        }));
                    }
                }
            }
            ComputeEvent::Trimmed { task, end } => {
                if let Some(h) = self.held.get_mut(&task) {
                    h.end = end;
                    if h.standing == Standing::Running {
                        self.outbox.push_back(WorkerToCoord::Trimmed(Trimmed {
                            lease: h.lease,
                            end,
                        }));
                    }
                }
            }
            ComputeEvent::Finished {
                task,
                position,
                output,
            } => {
                if let Some(h) = self.held.get_mut(&task) {
                    if h.standing == Standing::Detached {
                        // Reported after the next welcome.
                        h.position = h.position.max(position);
                        h.done = true;
                        return;
                    }
                }
                let Some(h) = self.held.remove(&task) else {
                    return;
                };
                let (lease, position) = (h.lease, position);
                if let (Standing::Running, Some(data)) = (h.standing, output) {
                    // A custom kernel's last result commits up to `position` (and
                    // completes the lease there); a release then hands back the rest.
                    self.outbox.push_back(WorkerToCoord::Output(Output {
                        lease,
                        position,
                        data,
                    }));
                    if position < h.end {
                        self.outbox
                            .push_back(WorkerToCoord::Released(Released { lease, position }));
                    }
                    self.maybe_leave();
                    return;
                }
                let report = match h.standing {
                    Standing::Running if position == h.end => {
                        self.remember_reported(&h);
                        Some(WorkerToCoord::Progress(Progress { lease, position }))
                    }
                    Standing::Running | Standing::Stopping => {
                        Some(WorkerToCoord::Released(Released { lease, position }))
                    }
                    Standing::Orphaned | Standing::Detached => None,
                };
                self.outbox.extend(report);
                self.maybe_leave();
            }
        }
    }

    /// Shut down: stop every task, hand back what is unfinished, then leave.
    pub fn handle_shutdown(&mut self) {
        if self.phase != Phase::Working {
            return;
        }
        self.phase = Phase::Leaving;
        for task in self.held.keys() {
            self.compute.push_back(ComputeCommand::Stop(*task));
        }
        self.maybe_leave();
    }

    /// The connection is gone. Leases of built-in kernels run on, to be reported
    /// after the next welcome; the others stop and are not reported (the coordinator
    /// takes them back itself). Leaving, everything stops.
    pub fn handle_disconnected(&mut self) {
        self.minor = None;
        let leaving = self.phase != Phase::Working;
        for (task, held) in &mut self.held {
            let keep = !leaving && !held.custom && held.found.is_some();
            match held.standing {
                Standing::Running if keep => held.standing = Standing::Detached,
                Standing::Running => {
                    self.compute.push_back(ComputeCommand::Stop(*task));
                    held.standing = Standing::Orphaned;
                }
                Standing::Detached if !keep => {
                    if !held.done {
                        self.compute.push_back(ComputeCommand::Stop(*task));
                    }
                    held.standing = Standing::Orphaned;
                }
                Standing::Detached | Standing::Orphaned => {}
                Standing::Stopping => held.standing = Standing::Orphaned,
            }
        }
        // Orphaned leases the engine is done with need nothing more.
        self.held
            .retain(|_, h| !(h.done && h.standing == Standing::Orphaned));
        self.outbox.clear();
        if self.phase == Phase::Leaving {
            self.phase = Phase::Left;
        }
    }

    /// Leases kept through a lost connection, waiting for the next welcome.
    /// Remembers a lease finished and reported on this connection (see
    /// [`Agent::reported`](Agent)).
    fn remember_reported(&mut self, h: &Held) {
        let Some(found) = &h.found else { return };
        if h.custom {
            return;
        }
        if self.reported.len() == REMEMBERED_REPORTS {
            self.reported.pop_front();
        }
        self.reported.push_back(HeldLease {
            lease: h.lease,
            job: h.job,
            work: h.digest,
            start: h.start,
            position: h.end,
            end: h.end,
            found: found.clone(),
        });
    }

    /// Leases to offer the coordinator after the next welcome: those held through
    /// a lost connection and those finished and reported on it (see
    /// [`Agent::leases_detached`]).
    pub fn leases_to_offer(&self) -> usize {
        self.leases_detached() + self.reported.len()
    }

    pub fn leases_detached(&self) -> usize {
        self.held
            .values()
            .filter(|h| h.standing == Standing::Detached)
            .count()
    }

    fn running(&self, task: TaskId) -> Option<&Held> {
        self.held
            .get(&task)
            .filter(|h| h.standing == Standing::Running)
    }

    fn maybe_leave(&mut self) {
        if self.phase == Phase::Leaving
            && self.held.values().all(|h| h.standing == Standing::Orphaned)
        {
            self.phase = Phase::Left;
            self.outbox.push_back(WorkerToCoord::Leaving);
        }
    }

    /// Whether shutdown is complete (everything released and `Leaving` queued).
    pub fn has_left(&self) -> bool {
        self.phase == Phase::Left
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.phase != Phase::Working
    }

    /// Leases held (including ones being stopped).
    pub fn leases_held(&self) -> usize {
        self.held.len()
    }

    /// The next command for the compute engine.
    pub fn poll_compute(&mut self) -> Option<ComputeCommand> {
        self.compute.pop_front()
    }

    /// The next message for the coordinator.
    pub fn poll_transmit(&mut self) -> Option<WorkerToCoord> {
        self.outbox.pop_front()
    }
}
