//! The wire protocol: every message exchanged between coordinator, workers and
//! clients, and the frame codec. Nothing else in the workspace defines wire types.
//!
//! Each connection carries one bidirectional QUIC stream, opened by the dialling peer
//! (worker or client), holding a sequence of frames: a little-endian `u32` body
//! length, then a postcard body of at most [`MAX_FRAME_LEN`] bytes. The first frame in
//! each direction is the hello/welcome pair, which negotiates the minor version; the
//! major version is the ALPN string, so a peer of another major version fails the TLS
//! handshake.
//!
//! postcard is not self-describing: the order of enum variants is the tag. Enums here
//! are append-only within a major version, and the golden-byte tests fail on any
//! accidental change. No `usize`, `Instant` or `SystemTime` crosses the wire.

use crate::custom::CustomJob;
use crate::hashcash::HashcashJob;
use crate::ids::{JobId, LeaseId, RequestId, WorkerId};
use crate::kernel::{JobKind, JobSpec, SearchMode, Solution, SpecError};
use crate::preimage::{Mask, PreimageHash, PreimageJob};
use crate::sha256d::{BlockHeader, Sha256dJob, Target};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// ALPN protocol id: the major version.
pub const ALPN: &[u8] = b"picluster/1";
/// Highest minor version this build speaks.
pub const PROTOCOL_MINOR: u16 = 0;
/// The minor version both sides speak: the lower of the two.
#[allow(
    clippy::unnecessary_min_or_max,
    reason = "PROTOCOL_MINOR is 0 today; the comparison matters from minor 1 on"
)]
pub fn negotiate_minor(peer: u16) -> u16 {
    peer.min(PROTOCOL_MINOR)
}

/// Most solutions a job keeps (its lowest indices), so that its report fits in one
/// frame whatever the target.
pub const MAX_SOLUTIONS: usize = 10_000;
/// Most jobs a listing shows (the newest), so that it fits in one frame.
pub const MAX_LISTED_JOBS: usize = 4096;
/// Most bytes of results a custom job may accumulate at the coordinator; beyond
/// them the job fails (its kernel's results are meant to be summaries).
pub const MAX_JOB_OUTPUT_BYTES: u64 = 256 << 20;
/// Largest batch of results in one [`CoordToClient::Outputs`] frame.
pub const MAX_OUTPUT_BATCH_BYTES: usize = 512 << 10;

/// Largest frame body accepted.
pub const MAX_FRAME_LEN: usize = 1 << 20;
/// Length of the frame header.
pub const FRAME_HEADER_LEN: usize = 4;

// ---------------------------------------------------------------------------------
// Worker <-> coordinator
// ---------------------------------------------------------------------------------

/// Messages from a worker to the coordinator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerToCoord {
    /// First frame: who the worker is and what it can do.
    Hello(WorkerHello),
    /// The worker has searched its lease up to `position` (exclusive). Also its
    /// heartbeat. A position equal to the lease's end completes the lease.
    Progress(Progress),
    /// Solutions found in a lease, sent before any progress report passing them.
    Found(Found),
    /// The worker stopped a lease at `position` and hands the rest back.
    Released(Released),
    /// The worker is shutting down: it takes no more work and has released its leases.
    Leaving,
    /// Reply to [`CoordToWorker::Trim`]: where the lease now ends.
    Trimmed(Trimmed),
    /// Progress of a custom job's lease with the result of the indices it commits;
    /// for custom jobs it replaces `Progress` (which may then not advance).
    Output(Output),
    /// The worker cannot run this lease's job (a custom kernel's parameters do not
    /// decode, its result does not encode): the job fails with the reason.
    Rejected(Rejected),
}

/// The result of a custom job's indices from the lease's last position to
/// `position`, which the lease advances to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// The lease.
    pub lease: LeaseId,
    /// Every index below this one (and at or above the lease start) is searched.
    pub position: u64,
    /// The postcard-encoded `Kernel::Output` of the newly committed indices.
    pub data: Vec<u8>,
}

/// A lease the worker cannot run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// The lease.
    pub lease: LeaseId,
    /// Why.
    pub reason: String,
}

/// A worker's introduction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerHello {
    /// Highest minor protocol version the worker speaks.
    pub minor: u16,
    /// The worker agent's version string.
    pub agent_version: String,
    /// Compute threads the worker runs.
    pub threads: u32,
    /// CPU architecture (`aarch64`, `arm`, `x86_64`, ...).
    pub arch: String,
    /// The kernel implementation it uses.
    pub kernel_impl: String,
    /// Benchmarked rate with all threads, hashes per second.
    pub bench_hps: u64,
    /// Names of the custom kernels it has registered.
    pub kernels: Vec<String>,
}

/// Position reached in a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The lease.
    pub lease: LeaseId,
    /// Every index below this one (and at or above the lease start) is searched.
    pub position: u64,
}

/// Keyspace indices claimed as solutions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    /// The lease they were found in.
    pub lease: LeaseId,
    /// The indices; the coordinator verifies each.
    pub indices: Vec<u64>,
}

/// A lease handed back unfinished.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    /// The lease.
    pub lease: LeaseId,
    /// Searched up to here; the rest returns to the queue.
    pub position: u64,
}

/// Messages from the coordinator to a worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoordToWorker {
    /// Reply to the hello.
    Welcome(WorkerWelcome),
    /// A new lease to work on after the ones already held.
    Assign(Assign),
    /// Stop working on a lease now and do not report it further (job solved or
    /// cancelled, or the lease expired).
    Stop(Stop),
    /// End a lease early, at `end` or as soon after it as the work already under way
    /// allows (work stealing); answered by [`WorkerToCoord::Trimmed`].
    Trim(Trim),
}

/// The coordinator's reply to a worker hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerWelcome {
    /// The negotiated minor version.
    pub minor: u16,
    /// This session's worker id.
    pub worker: WorkerId,
    /// How often to report progress, in milliseconds.
    pub progress_interval_ms: u32,
}

/// A lease: search `start..end` of `work`'s keyspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assign {
    /// The lease id.
    pub lease: LeaseId,
    /// The job it belongs to.
    pub job: JobId,
    /// What to compute (self-contained: workers keep no job table).
    pub work: WorkSpec,
    /// First index.
    pub start: u64,
    /// One past the last index.
    pub end: u64,
}

/// Shorten a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trim {
    /// The lease.
    pub lease: LeaseId,
    /// The requested new end.
    pub end: u64,
}

/// A lease's new end after a trim: at or after the requested end, and never beyond
/// the old one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trimmed {
    /// The lease.
    pub lease: LeaseId,
    /// Where the worker will stop.
    pub end: u64,
}

/// Stop a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stop {
    /// The lease.
    pub lease: LeaseId,
}

/// What to compute, as sent on the wire; converts to and from [`JobKind`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkSpec {
    /// SHA-256d nonce search.
    Sha256d(Sha256dWork),
    /// No-op chunks over this many indices (scheduler benchmarks).
    Noop(u64),
    /// Hashcash proof of work.
    Hashcash(HashcashWork),
    /// Preimage search over a mask.
    Preimage(PreimageWork),
    /// A user-defined kernel.
    Custom(CustomWork),
}

/// A hashcash search on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashcashWork {
    /// The data the counter is appended to.
    pub data: Vec<u8>,
    /// Leading zero bits required.
    pub bits: u32,
    /// First counter.
    pub counter_start: u64,
    /// One past the last counter.
    pub counter_end: u64,
}

/// A preimage search on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreimageWork {
    /// Each candidate position's characters, in order (the parsed mask).
    pub positions: Vec<Vec<u8>>,
    /// SHA-256d instead of SHA-256.
    pub double: bool,
    /// The digests sought.
    pub targets: Vec<[u8; 32]>,
    /// First mask index searched.
    pub start: u64,
    /// One past the last mask index searched.
    pub end: u64,
}

/// A custom-kernel job on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomWork {
    /// The kernel's name.
    pub kernel: String,
    /// Its postcard-encoded parameters.
    pub params: Vec<u8>,
    /// Number of indices.
    pub keyspace: u64,
    /// Indices per block.
    pub block: u64,
}

/// A SHA-256d search on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sha256dWork {
    /// The 80-byte header.
    pub header: Vec<u8>,
    /// Target, most significant byte first.
    pub target: [u8; 32],
    /// First nonce.
    pub nonce_start: u32,
    /// One past the last nonce (at most 2^32).
    pub nonce_end: u64,
    /// BIP 320 version bits to roll.
    pub version_mask: u32,
}

impl From<&JobKind> for WorkSpec {
    fn from(kind: &JobKind) -> Self {
        match kind {
            JobKind::Sha256d(job) => WorkSpec::Sha256d(Sha256dWork {
                header: job.header.0.to_vec(),
                target: job.target.0,
                nonce_start: job.nonce_start,
                nonce_end: job.nonce_end,
                version_mask: job.version_mask,
            }),
            JobKind::Noop { keyspace } => WorkSpec::Noop(*keyspace),
            JobKind::Hashcash(job) => WorkSpec::Hashcash(HashcashWork {
                data: job.data().to_vec(),
                bits: job.bits(),
                counter_start: job.counters().start,
                counter_end: job.counters().end,
            }),
            JobKind::Preimage(job) => WorkSpec::Preimage(PreimageWork {
                positions: job.mask().positions().to_vec(),
                double: job.hash() == PreimageHash::Sha256d,
                targets: job.targets().to_vec(),
                start: job.range().start,
                end: job.range().end,
            }),
            JobKind::Custom(job) => WorkSpec::Custom(CustomWork {
                kernel: job.kernel.clone(),
                params: job.params.to_vec(),
                keyspace: job.keyspace,
                block: job.block,
            }),
        }
    }
}

impl TryFrom<&WorkSpec> for JobKind {
    type Error = SpecError;
    fn try_from(spec: &WorkSpec) -> Result<Self, Self::Error> {
        match spec {
            WorkSpec::Sha256d(w) => Ok(JobKind::Sha256d(Sha256dJob::new(
                BlockHeader::from_bytes(&w.header)?,
                Some(Target::from_be_bytes(&w.target)?),
                u64::from(w.nonce_start)..w.nonce_end,
                w.version_mask,
            )?)),
            WorkSpec::Noop(0) => Err(SpecError::EmptyKeyspace),
            WorkSpec::Noop(keyspace) => Ok(JobKind::Noop {
                keyspace: *keyspace,
            }),
            WorkSpec::Hashcash(w) => Ok(JobKind::Hashcash(HashcashJob::new(
                &w.data,
                w.bits,
                w.counter_start..w.counter_end,
            )?)),
            WorkSpec::Preimage(w) => Ok(JobKind::Preimage(PreimageJob::new(
                Mask::from_positions(w.positions.clone())?,
                if w.double {
                    PreimageHash::Sha256d
                } else {
                    PreimageHash::Sha256
                },
                &w.targets,
                Some(w.start..w.end),
            )?)),
            WorkSpec::Custom(w) => Ok(JobKind::Custom(CustomJob::new(
                &w.kernel, &w.params, w.keyspace, w.block,
            )?)),
        }
    }
}

// ---------------------------------------------------------------------------------
// Client <-> coordinator
// ---------------------------------------------------------------------------------

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
    /// List all jobs.
    ListJobs(RequestId),
    /// Workers and jobs.
    Status(RequestId),
    /// Stop giving a worker work (it finishes its current chunk), or start again.
    Drain(Drain),
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

/// Why a client request was refused. Retrying the same request cannot help.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// No job with this id exists.
    #[error("no job {0}")]
    UnknownJob(JobId),
    /// The submitted job is not valid; the text says why.
    #[error("invalid job: {0}")]
    InvalidJob(String),
    /// No connected worker has this name.
    #[error("no connected worker is named {0}")]
    UnknownWorker(String),
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
}

/// The final report of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReport {
    /// The job.
    pub job: JobId,
    /// Final state.
    pub state: JobState,
    /// Verified solutions, by index: the lowest [`MAX_SOLUTIONS`] of them.
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
    /// Why the job failed (state `Failed`).
    pub error: Option<String>,
}

/// One worker's share of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    /// The worker's name (from its certificate).
    pub worker: String,
    /// Indices it searched.
    pub hashes: u64,
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
        }
    }
}

// ---------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------

/// Why a frame could not be encoded or decoded. A peer that sends such a frame is
/// disconnected; retrying the same bytes cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix exceeds [`MAX_FRAME_LEN`].
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    TooLarge(u64),
    /// The body is not a valid message of the expected kind (unknown variant,
    /// truncated field, invalid value).
    #[error("malformed message: {0}")]
    Malformed(postcard::Error),
    /// The body holds a valid message followed by extra bytes.
    #[error("{0} unexpected bytes after the message")]
    TrailingBytes(usize),
}

/// Encodes `message` as one frame (length prefix and body).
pub fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let mut frame = vec![0u8; FRAME_HEADER_LEN];
    let mut frame =
        postcard::to_extend(message, std::mem::take(&mut frame)).map_err(FrameError::Malformed)?;
    let len = frame.len() - FRAME_HEADER_LEN;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len as u64));
    }
    frame[..FRAME_HEADER_LEN].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(frame)
}

/// Reads the body length from a frame header, rejecting oversized frames before any
/// body is read.
pub fn frame_body_len(header: [u8; FRAME_HEADER_LEN]) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(header);
    if len as usize > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(u64::from(len)));
    }
    Ok(len as usize)
}

/// Decodes a frame body; the whole body must be one message.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    let (message, rest) = postcard::take_from_bytes(body).map_err(FrameError::Malformed)?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes(rest.len()));
    }
    Ok(message)
}

/// Decodes one complete frame (header and body), as a test or tool would hold it.
pub fn decode_frame<T: DeserializeOwned>(frame: &[u8]) -> Result<T, FrameError> {
    let header: [u8; FRAME_HEADER_LEN] = frame
        .get(..FRAME_HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(FrameError::Malformed(
            postcard::Error::DeserializeUnexpectedEnd,
        ))?;
    let len = frame_body_len(header)?;
    let body = &frame[FRAME_HEADER_LEN..];
    match body.len().cmp(&len) {
        std::cmp::Ordering::Less => Err(FrameError::Malformed(
            postcard::Error::DeserializeUnexpectedEnd,
        )),
        std::cmp::Ordering::Greater => Err(FrameError::TrailingBytes(body.len() - len)),
        std::cmp::Ordering::Equal => decode_body(body),
    }
}

/// Application close codes on a QUIC connection. The close frame's reason text says
/// more; the code tells a program what kind of end it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum CloseCode {
    /// A normal end (a worker left, a client finished).
    Normal = 0,
    /// The peer broke the protocol (unexpected message, a lease that is not its own,
    /// a position outside its lease). Reconnecting with the same software won't help.
    Protocol = 1,
    /// The peer sent a frame that does not decode or is too large.
    BadFrame = 2,
    /// A newer connection with the same certificate name replaced this one.
    Replaced = 3,
    /// The coordinator (or worker) is shutting down; reconnecting later can succeed.
    ShuttingDown = 4,
    /// The certificate is valid but its role may not do this (e.g. a coordinator
    /// certificate used to connect as a worker).
    Unauthorized = 5,
    /// A worker claimed a solution that does not verify.
    BadResult = 6,
}

impl CloseCode {
    /// The code for a number received in a close frame.
    pub fn from_u32(code: u32) -> Option<CloseCode> {
        [
            CloseCode::Normal,
            CloseCode::Protocol,
            CloseCode::BadFrame,
            CloseCode::Replaced,
            CloseCode::ShuttingDown,
            CloseCode::Unauthorized,
            CloseCode::BadResult,
        ]
        .into_iter()
        .find(|c| *c as u32 == code)
    }
}

impl Submit {
    /// The validated job this submission asks for (its priority aside).
    pub fn spec(&self) -> Result<JobSpec, SpecError> {
        Ok(JobSpec {
            kind: JobKind::try_from(&self.work)?,
            mode: self.mode,
        })
    }
}
