//! Why the coordinator closes a connection: a peer's protocol violation, typed, with
//! the close code it earns; the text is made only where the close is sent.

use crate::ids::{JobId, LeaseId};
use crate::wire::{CloseCode, FrameError};

/// A peer broke the protocol. Its connection is closed with
/// [`ProtocolViolation::close_code`]; the rest of the cluster carries on. Reconnecting
/// with the same software will break it again, so none of these is worth retrying.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolViolation {
    /// A frame that does not decode, or is too large.
    #[error("{0}")]
    BadFrame(FrameError),
    /// A message of the other role's protocol.
    #[error("a message of another role's protocol than the certificate's: a worker certificate may only take work, and a client or admin certificate may not (use the credential made for the job: `picluster add-worker` or `add-client`)")]
    WrongRole,
    /// A hello after the first.
    #[error("protocol violation: a second hello")]
    SecondHello,
    /// Anything before the hello.
    #[error("protocol violation: a message before the hello")]
    BeforeHello,
    /// A report about another worker's lease.
    #[error("protocol violation: lease {0} is not yours")]
    NotYourLease(LeaseId),
    /// A position before the lease's last one or beyond its end.
    #[error("protocol violation: position {position} outside the unsearched part {start}..{end} of lease {lease}")]
    PositionOutside {
        /// The lease.
        lease: LeaseId,
        /// The position claimed.
        position: u64,
        /// The lease's last position.
        start: u64,
        /// Its end.
        end: u64,
    },
    /// A custom job's result for no new index, or beyond the lease's end.
    #[error("protocol violation: output up to {position} outside the unsearched part {start}..{end} of lease {lease}")]
    OutputOutside {
        /// The lease.
        lease: LeaseId,
        /// The position claimed.
        position: u64,
        /// The lease's last position.
        start: u64,
        /// Its end.
        end: u64,
    },
    /// A custom job's indices committed by a plain progress report or release.
    #[error("protocol violation: lease {0} of a custom job advanced without its output")]
    AdvancedWithoutOutput(LeaseId),
    /// A result for a built-in job's lease.
    #[error("protocol violation: output for lease {0}, which is not of a custom job")]
    OutputForBuiltIn(LeaseId),
    /// Solutions claimed in a custom job, which has none.
    #[error("protocol violation: solutions claimed in lease {0} of a custom job")]
    SolutionsForCustom(LeaseId),
    /// A trim answered that was never asked for.
    #[error("protocol violation: lease {0} trimmed without being asked")]
    UnaskedTrim(LeaseId),
    /// A trim answered with an end outside what was asked and what is left.
    #[error("protocol violation: lease {lease} trimmed to {end}, outside {min}..={max} (asked for {requested})")]
    TrimOutside {
        /// The lease.
        lease: LeaseId,
        /// The end given.
        end: u64,
        /// The smallest end allowed.
        min: u64,
        /// The largest end allowed.
        max: u64,
        /// The end asked for.
        requested: u64,
    },
    /// A report of held leases beyond [`MAX_HELD_LEASES`](crate::wire::MAX_HELD_LEASES),
    /// or one lease's solutions beyond [`MAX_HELD_FOUND`](crate::wire::MAX_HELD_FOUND).
    #[error("protocol violation: a report of {0} held leases or solutions, beyond the limit")]
    TooManyHeld(usize),
    /// A held lease whose position lies outside its range.
    #[error(
        "protocol violation: held lease {lease} at {position}, outside its range {start}..{end}"
    )]
    HeldOutside {
        /// The lease.
        lease: LeaseId,
        /// Its first index.
        start: u64,
        /// The position claimed.
        position: u64,
        /// Its end.
        end: u64,
    },
    /// A claimed solution that does not verify, or lies outside the lease's
    /// unsearched part.
    #[error("index {index} claimed in lease {lease} is not a solution")]
    FalseSolution {
        /// The lease.
        lease: LeaseId,
        /// The index claimed.
        index: u64,
    },
    /// A peer without a certificate sent something other than one join request.
    #[error("no certificate was presented: such a connection may only send one join request (`picluster-worker --join TOKEN`, `picluster join TOKEN`)")]
    NotEnrolled,
    /// An index reported as a share does not meet the share target.
    #[error("index {index} reported as a share in lease {lease} does not meet the share target")]
    FalseShare {
        /// The lease.
        lease: LeaseId,
        /// The index reported.
        index: u64,
    },
    /// A share reported again in the same lease: it was counted once already.
    #[error("index {index} reported as a share of lease {lease} a second time")]
    RepeatedShare {
        /// The lease.
        lease: LeaseId,
        /// The index reported again.
        index: u64,
    },
    /// Far fewer shares than the progress claimed implies: the work was not done.
    #[error("{observed} shares where the progress claimed implies {expected:.1} (probability below 1e-9 for a worker that does the work)")]
    TooFewShares {
        /// Shares the claimed progress implies.
        expected: u64,
        /// Shares received.
        observed: u32,
    },
    /// An audit (another worker searching a range this one committed again) found
    /// a solution in it that this worker did not report.
    #[error("an audit of a range it reported as searched found solution {index} of job {job}, which it did not report")]
    HiddenSolution {
        /// The job.
        job: JobId,
        /// The solution's index.
        index: u64,
    },
    /// An audit found a share that this worker did not report, in a range it
    /// committed (it did not search all of it), or this worker, auditing, missed
    /// one the range's worker reported.
    #[error("an audit of job {job} found share {index} in a range this worker reported as searched, and it did not report it: it did not search all it claimed")]
    MissedShare {
        /// The job.
        job: JobId,
        /// The share's index.
        index: u64,
    },
    /// Auditing another worker's range, this worker missed a solution that was
    /// reported there.
    #[error("auditing job {job}, it did not report solution {index} in a range it claims to have searched")]
    MissedSolution {
        /// The job.
        job: JobId,
        /// The solution's index.
        index: u64,
    },
}

impl ProtocolViolation {
    /// Whether the worker claimed work it did not do: it is quarantined and what it
    /// committed is searched again.
    pub fn is_false_claim(&self) -> bool {
        matches!(
            self,
            ProtocolViolation::FalseSolution { .. }
                | ProtocolViolation::FalseShare { .. }
                | ProtocolViolation::RepeatedShare { .. }
                | ProtocolViolation::TooFewShares { .. }
                | ProtocolViolation::HiddenSolution { .. }
                | ProtocolViolation::MissedShare { .. }
                | ProtocolViolation::MissedSolution { .. }
        )
    }
}

impl ProtocolViolation {
    /// The close code this violation earns.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolViolation::BadFrame(_) => CloseCode::BadFrame,
            ProtocolViolation::WrongRole | ProtocolViolation::NotEnrolled => {
                CloseCode::Unauthorized
            }
            ProtocolViolation::FalseSolution { .. }
            | ProtocolViolation::FalseShare { .. }
            | ProtocolViolation::RepeatedShare { .. }
            | ProtocolViolation::TooFewShares { .. }
            | ProtocolViolation::HiddenSolution { .. }
            | ProtocolViolation::MissedShare { .. }
            | ProtocolViolation::MissedSolution { .. } => CloseCode::BadResult,
            _ => CloseCode::Protocol,
        }
    }
}

/// Why the coordinator closes a connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer broke the protocol.
    #[error(transparent)]
    Violation(#[from] ProtocolViolation),
    /// The worker claimed a false solution: it is quarantined, and what it committed
    /// is searched again.
    #[error("{violation}: worker {name} is quarantined until an admin checks it and releases it (`picluster release {name}`)")]
    Quarantined {
        /// The worker.
        name: String,
        /// What it did.
        violation: ProtocolViolation,
    },
    /// A quarantined worker tried to connect.
    #[error("worker {0} is quarantined after claiming work it did not do (a false solution or share, too few shares, or a failed audit): an admin must check it and release it (`picluster release {0}`)")]
    QuarantinedName(String),
    /// A newer connection of the same worker replaced this one.
    #[error("replaced by a newer connection")]
    Replaced,
    /// A worker of this name is connected and working: this newer connection is
    /// refused.
    #[error("worker {0} is already connected and working: is the same credential in use on two machines? Give each machine its own (`picluster add-worker NAME`)")]
    NameInUse(String),
    /// The worker said it is leaving.
    #[error("worker left")]
    WorkerLeft,
    /// The certificate is revoked (`picluster revoke NAME`).
    #[error("the certificate of {0} is revoked: ask the cluster's admin for a new credential")]
    Revoked(String),
    /// A peer presented the coordinator's own certificate.
    #[error("a coordinator certificate may not connect as a peer")]
    CoordinatorCertificate,
    /// The peer does not read what it is sent: its queue reached its limit.
    #[error("too far behind: the peer does not read what it is sent")]
    Backlogged,
    /// A message for the peer could not be encoded (a limit the coordinator should
    /// have kept); the peer would otherwise wait for it forever.
    #[error("internal error: a reply could not be encoded: {0}")]
    Unsendable(FrameError),
    /// A client certificate has as many sessions open as one may.
    #[error("client {name} already has {limit} sessions open, the most one certificate may have: close some (each running `picluster` command and each program's Client holds one)")]
    TooManySessions {
        /// The certificate name.
        name: String,
        /// The limit.
        limit: usize,
    },
    /// Client certificates hold as many sessions as the coordinator keeps for them.
    #[error("the coordinator holds {0} client sessions, the most it keeps for clients (the rest is for workers and admins): try again later")]
    ClientsFull(usize),
    /// A client session asked nothing and watched nothing for this long.
    #[error("idle for {0:?}: nothing asked or watched (a client reconnects when it next asks)")]
    Idle(std::time::Duration),
    /// A client speaks a minor version whose client messages this coordinator
    /// cannot send.
    #[error("this coordinator speaks client protocol minor {ours} and the client {theirs}: upgrade the picluster client (or program) to this coordinator's version")]
    OldClient {
        /// The client's minor version.
        theirs: u16,
        /// The coordinator's.
        ours: u16,
    },
}

impl CloseReason {
    /// The close code sent with this reason.
    pub fn code(&self) -> CloseCode {
        match self {
            CloseReason::Violation(v) => v.close_code(),
            CloseReason::Replaced => CloseCode::Replaced,
            CloseReason::Quarantined { .. } | CloseReason::QuarantinedName(_) => {
                CloseCode::BadResult
            }
            CloseReason::NameInUse(_) => CloseCode::NameInUse,
            CloseReason::WorkerLeft => CloseCode::Normal,
            CloseReason::CoordinatorCertificate => CloseCode::Unauthorized,
            CloseReason::Revoked(_) => CloseCode::Revoked,
            // Not an error of the protocol: a new session starts with an empty queue.
            CloseReason::Backlogged => CloseCode::Normal,
            // Not errors: limits on sessions, and an idle session's end.
            CloseReason::TooManySessions { .. }
            | CloseReason::ClientsFull(_)
            | CloseReason::Idle(_) => CloseCode::Normal,
            // The protocol cannot carry what the peer asked for.
            CloseReason::Unsendable(_) | CloseReason::OldClient { .. } => CloseCode::Protocol,
        }
    }
}
