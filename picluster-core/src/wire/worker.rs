//! Messages between a worker and the coordinator.

use super::WorkSpec;
use crate::ids::{JobId, LeaseId, WorkerId};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

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
    /// Sent right after the welcome (minor 1 on): the leases this worker kept
    /// working on while it had no connection (the coordinator restarted, or the
    /// network failed). The coordinator adopts each one it can and stops the others
    /// (`Stop`); adopted leases carry on under their ids.
    Holding(Holding),
    /// A certificate request for the worker's own name (minor 2): answered by
    /// [`CoordToWorker::Renewed`] or [`CoordToWorker::RenewRefused`].
    Renew(super::Renew),
    /// Shares found in a lease (minor 2): indices whose digest has at least the
    /// share target's leading zero bits ([`CoordToWorker::ShareTarget`]).
    Shares(Found),
    /// The worker now runs a different number of threads (its thermal governor
    /// throttles it while the board is hot, minor 3): chunk sizes follow the rate.
    Rate(RateChange),
    /// The CPU's temperature and the firmware's throttling flags, when they change
    /// (minor 3); `status` shows them.
    Health(Health),
}

/// What a worker knows of its board's heat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// The CPU's temperature in millidegrees Celsius, if readable.
    pub millicelsius: Option<i32>,
    /// The Raspberry Pi firmware's throttling flags (`vcgencmd get_throttled`), if
    /// known.
    pub throttled: Option<u32>,
}

/// A worker's new thread count and the rate it expects from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateChange {
    /// Threads that run now.
    pub threads: u32,
    /// Its benchmarked rate scaled to them, hashes per second.
    pub bench_hps: u64,
}

/// Leases a worker kept through a lost connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    /// The leases, at most [`MAX_HELD_LEASES`](super::MAX_HELD_LEASES).
    pub leases: Vec<HeldLease>,
}

/// One lease a worker kept through a lost connection, and how far it got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldLease {
    /// The lease, as assigned.
    pub lease: LeaseId,
    /// Its job.
    pub job: JobId,
    /// [`WorkSpec::digest`] of the job's work as assigned: a coordinator that
    /// started over on another store may give the same job id to another job.
    pub work: [u8; 32],
    /// The lease's first index.
    pub start: u64,
    /// Every index from `start` up to here is searched.
    pub position: u64,
    /// Where the lease ends now (after any trim); `position == end` when the worker
    /// finished it while disconnected.
    pub end: u64,
    /// Every solution found in `start..position` since the lease began (sent before
    /// or not: the coordinator may have lost them with its unsynced records), at most
    /// [`MAX_HELD_FOUND`](super::MAX_HELD_FOUND).
    pub found: Vec<u64>,
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
    /// A renewed certificate (minor 2).
    Renewed(super::Renewed),
    /// A renewal was refused (minor 2); the worker goes on with its certificate.
    RenewRefused(super::JoinRefusal),
    /// The share target for the leases assigned from now on (minor 2): report as
    /// shares the indices whose digest has at least `bits` leading zero bits.
    ShareTarget(ShareTarget),
}

/// A share target: leading zero bits of the digest (mining pools' difficulty).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareTarget {
    /// Leading zero bits a share's digest has.
    pub bits: u8,
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
    /// What to compute (self-contained: workers keep no job table). Shared, not
    /// copied, by every lease of a job; encoded like a plain `WorkSpec`.
    pub work: Arc<WorkSpec>,
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
