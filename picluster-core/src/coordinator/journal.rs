//! What the coordinator makes durable, as the raft-rs `Ready` pattern has it: the
//! state machine emits [`Record`]s, the driver writes each batch in one transaction
//! and reports how far it got ([`Coordinator::handle_durable`](super::Coordinator::handle_durable)),
//! and replies to clients that depend on a record wait until it is durable. A store
//! holds the folded result, a [`Snapshot`]: rows are replaced, not appended, so the
//! store does not grow with the number of progress reports. [`Snapshot::apply`] is
//! the meaning of every record; a store must give back what it would.
//!
//! A job's committed ranges are checkpointed with the job's row at most once per
//! `checkpoint_interval` (a crash can cost that much rework); solutions and results
//! are written when they are found, so a range is never recorded as done before the
//! solutions in it are durable. A completion is checkpointed the same way: a
//! recovered job whose durable solutions or ranges say it is done ends at once, and
//! one that is not done resumes (its report, if it went out, comes again the same).
//! Submissions, cancellations, failures, removals and drains are written at once,
//! and their acknowledgements wait for them.

use crate::identity::Role;
use crate::ids::JobId;
use crate::job::SearchMode;
use crate::kernel::Solution;
use crate::wire::{ChunkOutput, JobFailure, JobState, WorkSpec};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

/// Milliseconds since the Unix epoch (UTC).
pub type UnixMillis = u64;

/// Version of the records' encoding; a store written by a newer version is refused.
pub const JOURNAL_FORMAT: u32 = 2;

/// One change to the durable state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The next job id to give: ids never repeat, even across restarts.
    NextJob(u64),
    /// A job's row: inserted on submission, replaced at checkpoints and at its end.
    Job(JobId, StoredJob),
    /// A verified solution of a job.
    Solution(JobId, Solution),
    /// A custom job's result for a committed range; the number orders them.
    Output(JobId, u64, ChunkOutput),
    /// The job is gone (retention): its row, solutions and results with it.
    Forget(JobId),
    /// A worker name drained (`true`) or undrained.
    Drained(String, bool),
    /// Lease ids below this one may have been given (written at checkpoints): a
    /// restarted coordinator gives new ones well above it.
    NextLease(u64),
    /// A worker name quarantined (`true`: it claimed a false solution) or released.
    Quarantined(String, bool),
    /// Every certificate of a name issued up to this time is revoked.
    Revoked(String, UnixMillis),
    /// A join token made, or its uses left changed.
    Token(String, StoredToken),
    /// A join token withdrawn, used up or expired.
    TokenGone(String),
    /// A name is enrolled in a role: a later join may not take it unless its token
    /// may replace it (and is for the same role).
    Enrolled(String, Role),
    /// The worker (by name) that found a job's solution at an index.
    Finder(JobId, u64, String),
    /// Why a worker name was drained (follows its `Drained(name, true)`; an undrain
    /// removes it).
    DrainReason(String, String),
    /// A name's certificate was renewed: the renewed certificate was issued at this
    /// time. Older certificates of the name may not renew, and are retired (revoked)
    /// when the renewed one is first used.
    Renewed(String, UnixMillis),
    /// How many false claims a worker name has made in all (its
    /// `picluster_worker_rejected_claims_total`, kept across restarts).
    Rejected(String, u64),
    /// The share targets (bits) of a job's leases as its row lists them, written
    /// with the row: a lease adopted after a restart keeps its target, so claims on
    /// it are still judged. Empty: none.
    ShareBits(JobId, Vec<(u64, u8)>),
    /// The shares verified in a job's leases as its row lists them (those not
    /// below a lease's position), written with the row's `ShareBits`: one sent
    /// again to a lease adopted after a restart is a repeat, as it would have been
    /// before. Empty: none.
    LeaseShares(JobId, Vec<(u64, Vec<u64>)>),
    /// A job's first chunk was handed out at this time (its report's `started_ms`,
    /// kept across restarts).
    Started(JobId, UnixMillis),
}

/// A join token as stored: the SHA-256 of its secret, never the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredToken {
    /// The role of the certificates it enrolls.
    pub role: Role,
    /// SHA-256 of the secret.
    pub secret_sha256: [u8; 32],
    /// The admin that made it.
    pub created_by: String,
    /// When it was made.
    pub created_ms: UnixMillis,
    /// When it expires.
    pub expires_ms: UnixMillis,
    /// Enrollments left.
    pub uses_left: u32,
    /// Whether it may enroll a name that is enrolled already.
    pub replace: bool,
}

/// A job's row: everything durable about it but its solutions and results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredJob {
    /// What it computes, as submitted.
    pub work: WorkSpec,
    /// When it stops.
    pub mode: SearchMode,
    /// Its priority.
    pub priority: i32,
    /// The submitting client's name.
    pub client: String,
    /// Its state when the row was written.
    pub state: JobState,
    /// Why it failed.
    pub failure: Option<JobFailure>,
    /// Committed ranges, sorted and disjoint.
    pub committed: Vec<(u64, u64)>,
    /// Indices committed (the sum of `committed`).
    pub hashes: u64,
    /// Indices committed by each worker, by name.
    pub contributions: Vec<(String, u64)>,
    /// Solutions beyond the kept maximum were dropped.
    pub truncated: bool,
    /// When it was submitted.
    pub submitted: UnixMillis,
    /// When it ended.
    pub finished: Option<UnixMillis>,
    /// Its leases when the row was written: after a restart, their ranges are held
    /// for their workers to claim (for a lease timeout) rather than handed out again.
    pub leases: Vec<StoredLease>,
}

/// A lease as a job's row records it: its unsearched part and who holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredLease {
    /// The lease id its worker knows.
    pub lease: u64,
    /// The worker's name.
    pub worker: String,
    /// Everything below is committed.
    pub position: u64,
    /// Where it ends.
    pub end: u64,
}

/// The durable state: what a store holds and what
/// [`Coordinator::recover`](super::Coordinator::recover) rebuilds from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The next job id to give (0: none given yet).
    pub next_job: u64,
    /// Lease ids below this may have been given (0: none recorded).
    pub next_lease: u64,
    /// Every job kept, by id.
    pub jobs: BTreeMap<JobId, StoredJob>,
    /// Solutions by job and index.
    pub solutions: BTreeMap<JobId, BTreeMap<u64, Solution>>,
    /// Custom results by job, in commit order.
    pub outputs: BTreeMap<JobId, BTreeMap<u64, ChunkOutput>>,
    /// Drained worker names.
    pub drained: BTreeSet<String>,
    /// Quarantined worker names.
    pub quarantined: BTreeSet<String>,
    /// Revoked names, and up to when their certificates are revoked.
    pub revoked: BTreeMap<String, UnixMillis>,
    /// Join tokens, by id.
    pub tokens: BTreeMap<String, StoredToken>,
    /// Enrolled names, with their role.
    pub enrolled: BTreeMap<String, Role>,
    /// Who found each solution, by job and index.
    pub finders: BTreeMap<JobId, BTreeMap<u64, String>>,
    /// Why drained names were drained.
    pub drain_reasons: BTreeMap<String, String>,
    /// Renewed names, and when their newest renewed certificate was issued.
    pub renewed: BTreeMap<String, UnixMillis>,
    /// False claims made, by worker name.
    pub rejected: BTreeMap<String, u64>,
    /// The share targets of jobs' leases, by job and lease id.
    pub share_bits: BTreeMap<JobId, BTreeMap<u64, u8>>,
    /// The shares verified in jobs' leases, by job and lease id.
    pub lease_shares: BTreeMap<JobId, BTreeMap<u64, BTreeSet<u64>>>,
    /// When each job's first chunk was handed out.
    pub started: BTreeMap<JobId, UnixMillis>,
}

impl Snapshot {
    /// Folds one record in.
    pub fn apply(&mut self, record: Record) {
        match record {
            Record::NextJob(next) => self.next_job = self.next_job.max(next),
            Record::NextLease(next) => self.next_lease = self.next_lease.max(next),
            Record::Job(id, job) => {
                self.jobs.insert(id, job);
            }
            Record::Solution(id, solution) => {
                self.solutions
                    .entry(id)
                    .or_default()
                    .insert(solution.index, solution);
            }
            Record::Output(id, n, output) => {
                self.outputs.entry(id).or_default().insert(n, output);
            }
            Record::Forget(id) => {
                self.share_bits.remove(&id);
                self.lease_shares.remove(&id);
                self.started.remove(&id);
                self.jobs.remove(&id);
                self.solutions.remove(&id);
                self.outputs.remove(&id);
                self.finders.remove(&id);
            }
            Record::Drained(name, true) => {
                self.drained.insert(name);
            }
            Record::Drained(name, false) => {
                self.drain_reasons.remove(&name);
                self.drained.remove(&name);
            }
            Record::Quarantined(name, true) => {
                self.quarantined.insert(name);
            }
            Record::Quarantined(name, false) => {
                self.quarantined.remove(&name);
            }
            Record::Revoked(name, at) => {
                self.revoked.insert(name, at);
            }
            Record::Token(id, token) => {
                self.tokens.insert(id, token);
            }
            Record::TokenGone(id) => {
                self.tokens.remove(&id);
            }
            Record::Enrolled(name, role) => {
                self.enrolled.insert(name, role);
            }
            Record::Finder(id, index, worker) => {
                self.finders.entry(id).or_default().insert(index, worker);
            }
            Record::DrainReason(name, reason) => {
                self.drain_reasons.insert(name, reason);
            }
            Record::Renewed(name, at) => {
                self.renewed.insert(name, at);
            }
            Record::Rejected(name, n) => {
                self.rejected.insert(name, n);
            }
            Record::ShareBits(id, bits) if bits.is_empty() => {
                self.share_bits.remove(&id);
            }
            Record::ShareBits(id, bits) => {
                self.share_bits.insert(id, bits.into_iter().collect());
            }
            Record::Started(id, at) => {
                self.started.insert(id, at);
            }
            Record::LeaseShares(id, shares) if shares.is_empty() => {
                self.lease_shares.remove(&id);
            }
            Record::LeaseShares(id, shares) => {
                let by_lease = shares
                    .into_iter()
                    .map(|(lease, indices)| (lease, indices.into_iter().collect()))
                    .collect();
                self.lease_shares.insert(id, by_lease);
            }
        }
    }
}

/// The ranges of `0..keyspace` not in `holes` (sorted or not, possibly
/// overlapping), sorted and merged.
pub(super) fn complement(keyspace: u64, holes: &mut [Range<u64>]) -> Vec<(u64, u64)> {
    holes.sort_by_key(|r| r.start);
    let mut out = Vec::new();
    let mut at = 0;
    for hole in holes.iter() {
        if hole.start > at {
            out.push((at, hole.start.min(keyspace)));
        }
        at = at.max(hole.end);
    }
    if at < keyspace {
        out.push((at, keyspace));
    }
    out
}
