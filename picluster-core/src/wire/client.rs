//! Messages between a client (the `picluster` tool or a program) and the
//! coordinator, and the reports and listings they carry.

use super::{
    CreateToken, CredentialReport, Refusal, Revocation, TokenInfo, TokenRequest, WorkSpec,
};
use crate::ids::{JobId, RequestId, WorkerId};
use crate::job::SearchMode;
use crate::kernel::Solution;
use serde::{Deserialize, Serialize};

/// Messages from a client (the `picluster` tool or a program) to the coordinator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientToCoord {
    /// First frame.
    Hello(ClientHello),
    /// Submit a job.
    Submit(Submit),
    /// Receive progress and the final report of a job.
    Watch(JobRequest),
    /// Cancel a job.
    Cancel(JobRequest),
    /// List the jobs kept: every live one, and the newest finished ones up to
    /// [`MAX_LISTED_JOBS`](super::MAX_LISTED_JOBS) in all.
    ListJobs(RequestId),
    /// Workers and jobs.
    Status(RequestId),
    /// Stop giving a worker work (it finishes its current chunk), or start again.
    Drain(Drain),
    /// Remove a finished job (its report, solutions and results) now, rather than
    /// when the retention limits drop it; answered by `Forgotten`.
    Forget(JobRequest),
    /// Remove every finished job now; answered by `Pruned`.
    Prune(RequestId),
    /// Let a quarantined worker (it claimed a false solution) connect again;
    /// answered by `ReleasedWorker`.
    Release(WorkerRequest),
    /// Revoke every certificate of a name issued up to now (admin); answered by
    /// `Revoked`. Its live connections close at once.
    Revoke(WorkerRequest),
    /// The certificates of connected peers and the revoked names; answered by
    /// `Credentials`.
    Credentials(RequestId),
    /// Make a join token (admin); answered by `TokenCreated`.
    CreateToken(CreateToken),
    /// List the join tokens (admin); answered by `Tokens`.
    ListTokens(RequestId),
    /// Withdraw a join token (admin); answered by `TokenRevoked`.
    RevokeToken(TokenRequest),
    /// One job in detail while it runs or after (minor 3); answered by `Detail`.
    Show(JobRequest),
    /// A mining bridge's pool statistics (minor 6), kept with this connection;
    /// answered by `MinerNoted`.
    Miner(RequestId, Box<super::MinerReport>),
    /// The mining bridges' last reports (minor 6): every one for an admin, a
    /// client's own otherwise; answered by `Miners`.
    Miners(RequestId),
}

/// A request about one worker, by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRequest {
    /// Echoed in the reply.
    pub request: RequestId,
    /// The worker's certificate name.
    pub worker: String,
}

/// A client's introduction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello {
    /// Highest minor protocol version the client speaks.
    pub minor: u16,
    /// The client library's version string.
    pub client_version: String,
}

/// A job submission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submit {
    /// Echoed in the reply.
    pub request: RequestId,
    /// What to compute.
    pub work: WorkSpec,
    /// When to stop.
    pub mode: SearchMode,
    /// Higher runs first; jobs of equal priority share the cluster fairly among
    /// clients.
    pub priority: i32,
}

/// Drain or undrain a worker, by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drain {
    /// Echoed in the reply.
    pub request: RequestId,
    /// The worker's certificate name.
    pub worker: String,
    /// True to drain, false to undrain.
    pub drain: bool,
    /// Why (shown by `status`; minor 3). Ignored when undraining.
    pub reason: Option<String>,
}

/// A request about one job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRequest {
    /// Echoed in the reply.
    pub request: RequestId,
    /// The job.
    pub job: JobId,
}

/// Messages from the coordinator to a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoordToClient {
    /// Reply to the hello.
    Welcome(ClientWelcome),
    /// The job was accepted.
    Submitted(JobRequest),
    /// Reply to a watch: the job's state now. Progress and the report follow.
    Watching(RequestId, JobProgress),
    /// Pushed to watchers while a job runs.
    Progress(JobProgress),
    /// Pushed to watchers when a job ends.
    Finished(JobReport),
    /// Reply to a cancel: the job's state after it.
    Cancelled(RequestId, JobSummary),
    /// Reply to a job listing.
    Jobs(RequestId, Vec<JobSummary>),
    /// Reply to a status request.
    Status(RequestId, ClusterStatus),
    /// A request was refused.
    Refused(RequestId, Refusal),
    /// Reply to a drain or undrain: the worker now.
    Drained(RequestId, WorkerStatus),
    /// Pushed to watchers of a custom job: results of committed ranges, in the order
    /// they were committed (not index order). A new watcher first gets every result
    /// so far. All of them come before `Finished`.
    Outputs(JobId, Vec<ChunkOutput>),
    /// Reply to a forget: the job is gone, for good once its removal is durable.
    Forgotten(JobRequest),
    /// Reply to a prune: how many finished jobs were removed.
    Pruned(RequestId, u64),
    /// Reply to a release: the worker may connect again.
    ReleasedWorker(RequestId, String),
    /// Reply to a revoke.
    Revoked(RequestId, Revocation),
    /// Reply to a credentials request.
    Credentials(RequestId, CredentialReport),
    /// Reply to a token creation.
    TokenCreated(RequestId, TokenInfo),
    /// Reply to a token listing.
    Tokens(RequestId, Vec<TokenInfo>),
    /// Reply to a token withdrawal: its id.
    TokenRevoked(RequestId, String),
    /// Reply to a show (minor 3).
    Detail(RequestId, Box<JobDetail>),
    /// Pushed to watchers of minor 6 and above as a job's solutions are verified,
    /// once each (a new watcher first gets those kept so far): what a mining bridge
    /// forwards to its pool as shares.
    Solutions(JobId, Vec<crate::kernel::Solution>),
    /// Reply to `Miner`.
    MinerNoted(RequestId),
    /// Reply to `Miners`.
    Miners(RequestId, Vec<super::MinerStatus>),
}

/// The encoded result of a custom job's indices `start..end`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkOutput {
    /// First index.
    pub start: u64,
    /// One past the last index.
    pub end: u64,
    /// The postcard-encoded `Kernel::Output`.
    pub data: Vec<u8>,
}

/// The coordinator's reply to a client hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientWelcome {
    /// The negotiated minor version.
    pub minor: u16,
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    /// Accepted; no worker has started on it.
    Queued,
    /// Workers are searching.
    Running,
    /// Done: a solution was found (first mode) or the keyspace is exhausted.
    Completed,
    /// Cancelled by a client.
    Cancelled,
    /// A worker could not run it, or its results outgrew the coordinator's limit; the
    /// report's `error` says why.
    Failed,
}

impl JobState {
    /// Lower-case name, as in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Cancelled => "cancelled",
            JobState::Failed => "failed",
        }
    }

    /// Whether the job has ended.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Cancelled | JobState::Failed
        )
    }
}

/// A running job's progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobProgress {
    /// The job.
    pub job: JobId,
    /// Its state.
    pub state: JobState,
    /// Indices searched so far (each counted once).
    pub hashes: u64,
    /// Size of the keyspace.
    pub keyspace: u64,
    /// Milliseconds since submission.
    pub elapsed_ms: u64,
    /// Verified solutions so far.
    pub solutions: u32,
    /// Workers holding a chunk of it now (minor 3).
    pub workers: u32,
}

/// When a job was submitted, started and ended (Unix milliseconds, the
/// coordinator's clock; minor 3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTimes {
    /// When it was accepted.
    pub submitted_ms: u64,
    /// When a worker first got a chunk of it.
    pub started_ms: Option<u64>,
    /// When it ended.
    pub ended_ms: Option<u64>,
}

/// The final report of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReport {
    /// The job.
    pub job: JobId,
    /// Final state.
    pub state: JobState,
    /// Verified solutions, by index: the lowest [`MAX_SOLUTIONS`](super::MAX_SOLUTIONS) of them.
    pub solutions: Vec<Solution>,
    /// More solutions were found than `solutions` lists.
    pub truncated: bool,
    /// Indices searched (each counted once; equals `keyspace` for a completed
    /// exhaustive job).
    pub hashes: u64,
    /// Size of the keyspace.
    pub keyspace: u64,
    /// Milliseconds from submission to the end.
    pub elapsed_ms: u64,
    /// What each worker searched, by worker name.
    pub contributions: Vec<Contribution>,
    /// Why the job failed (state `Failed`), as text: `failure` rendered, so that
    /// listings and JSON output need not know every kind of failure.
    pub error: Option<String>,
    /// Why the job failed (state `Failed`). Appended in minor version 0 before the
    /// protocol's first release.
    pub failure: Option<JobFailure>,
    /// The kind of job, as in [`JobSummary::kind`] (minor 3).
    pub kind: String,
    /// Who found each of `solutions`, in the same order: an index into
    /// `contributions` (compact, so that the largest report fits in a frame;
    /// [`JobReport::finder`] resolves it; minor 3).
    pub found_by: Vec<u32>,
    /// First mode: solutions the cluster found beyond the one reported (several
    /// workers, or one batch, may hold more than one; minor 3). All mode: solutions
    /// found beyond the [`MAX_SOLUTIONS`](super::MAX_SOLUTIONS) listed when
    /// `truncated` (each counted once, up to 1,000,000).
    pub others: u64,
    /// When it was submitted, started and ended (minor 3).
    pub times: JobTimes,
}

impl JobReport {
    /// The name of the worker that found `solution` (one of
    /// [`JobReport::solutions`]), if known.
    pub fn finder(&self, solution: &Solution) -> Option<&str> {
        let at = self
            .solutions
            .iter()
            .position(|s| s.index == solution.index)?;
        let worker = *self.found_by.get(at)? as usize;
        self.contributions.get(worker).map(|c| c.worker.as_str())
    }
}

/// Why a job failed. Retrying the same job cannot help; the job or the workers must
/// change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum JobFailure {
    /// A worker that took the job could not run it (a custom kernel whose parameters
    /// do not decode, or whose result does not encode).
    #[error("worker {worker} cannot run it: {reason}")]
    Rejected {
        /// The worker's name.
        worker: String,
        /// The worker's own account of why.
        reason: String,
    },
    /// A custom job's results outgrew what the coordinator keeps of one job.
    #[error("its results exceed the coordinator's limit of {limit} bytes")]
    OutputLimit {
        /// The limit, in bytes.
        limit: u64,
    },
}

/// One worker's share of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    /// The worker's name (from its certificate).
    pub worker: String,
    /// Indices it searched.
    pub hashes: u64,
    /// Chunks (leases) it was given (this coordinator session; minor 3).
    pub chunks: u64,
}

/// A line of the job list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    /// Progress and state.
    pub progress: JobProgress,
    /// The kind of job (`sha256d`, `hashcash`, `preimage`, `custom:NAME`, `noop`).
    pub kind: String,
    /// When the job stops.
    pub mode: SearchMode,
    /// Its priority.
    pub priority: i32,
    /// The client that submitted it (its certificate name).
    pub client: String,
    /// When it was submitted, started and ended (minor 3).
    pub times: JobTimes,
    /// Why a queued job is not running, e.g. `no connected worker has kernel
    /// \"x\"` (minor 3).
    pub waiting: Option<String>,
}

/// One job in detail: what `picluster show` prints (minor 3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDetail {
    /// The job's line of the list.
    pub summary: JobSummary,
    /// What it computes, as submitted.
    pub work: WorkSpec,
    /// Every worker that searched part of it or holds a chunk of it now, by name.
    pub workers: Vec<JobWorker>,
    /// Chunks given back to the queue before they were searched to their end (a
    /// worker left, went silent or lost its connection; this coordinator session).
    pub reassigned: u64,
    /// Chunks split to give their tail to an idle worker (this session).
    pub steals: u64,
    /// Indices queued, not yet given to any worker.
    pub unassigned: u64,
    /// Verified solutions so far, by index (at most
    /// [`MAX_LISTED_SOLUTIONS`](super::MAX_LISTED_SOLUTIONS)).
    pub solutions: Vec<Solution>,
    /// Who found each of `solutions`, in the same order: an index into `workers`.
    pub found_by: Vec<u32>,
}

/// One worker's part in a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobWorker {
    /// The worker's name.
    pub worker: String,
    /// Indices it searched (committed).
    pub hashes: u64,
    /// Chunks it was given (this session).
    pub chunks: u64,
    /// Chunks it holds now.
    pub leases: u32,
    /// Solutions it found.
    pub solutions: u32,
}

/// What `picluster status` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// Connected workers.
    pub workers: Vec<WorkerStatus>,
    /// All jobs.
    pub jobs: Vec<JobSummary>,
}

/// A connected worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// Name from its certificate.
    pub name: String,
    /// This session's id.
    pub worker: WorkerId,
    /// What it is doing.
    pub state: WorkerState,
    /// Compute threads.
    pub threads: u32,
    /// CPU architecture.
    pub arch: String,
    /// Kernel implementation.
    pub kernel_impl: String,
    /// Rate measured from its progress reports (benchmark until the first reports),
    /// hashes per second.
    pub rate_hps: u64,
    /// Indices searched this session.
    pub hashes: u64,
    /// Leases held.
    pub leases: u32,
    /// Milliseconds since it connected.
    pub connected_ms: u64,
    /// The custom kernels it has registered (minor 3).
    pub kernels: Vec<String>,
    /// Why it was drained, if it is (minor 3).
    pub drain_reason: Option<String>,
    /// The jobs it holds chunks of (minor 3).
    pub jobs: Vec<JobId>,
    /// Its CPU's temperature, millidegrees Celsius, as it last said (minor 3).
    pub millicelsius: Option<i32>,
    /// Its firmware's throttling flags, as it last said (minor 3).
    pub throttled: Option<u32>,
    /// Milliseconds since it was last heard from (minor 3).
    pub silent_ms: u64,
}

/// What a worker is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerState {
    /// Connected, holding no lease.
    Idle,
    /// Holding at least one lease.
    Busy,
    /// Shutting down.
    Leaving,
    /// Drained: finishing what it holds, taking nothing new.
    Draining,
    /// Silent past the lease timeout: its work went to others; it gets none until it
    /// is heard from again (or its connection times out).
    Unresponsive,
    /// It claimed a false solution: refused until an admin releases it (listed
    /// though not connected).
    Quarantined,
    /// Drained and holding nothing: it takes no work until undrained (minor 3;
    /// listed even when not connected).
    Drained,
}

impl WorkerState {
    /// Lower-case name, as in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Idle => "idle",
            WorkerState::Busy => "busy",
            WorkerState::Leaving => "leaving",
            WorkerState::Draining => "draining",
            WorkerState::Unresponsive => "unresponsive",
            WorkerState::Quarantined => "quarantined",
            WorkerState::Drained => "drained",
        }
    }
}
