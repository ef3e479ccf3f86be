//! Why the coordinator refuses a request, as sent: [`Refusal`] for a client's
//! request, with the typed causes appended in minor 4: a request the certificate's
//! role does not allow ([`NotPermitted`]: the action and what it needs), a job that
//! is not valid ([`InvalidJob`]: the spec error's kind), a token request out of
//! bounds ([`TokenRequestError`]), and in minor 5 a limit the request would pass
//! ([`LimitReached`]: which limit, the limit, the use so far). [`Refusal::for_minor`]
//! renders them as the text variants an older client decodes; the text is the same
//! either way.

use super::MINOR_TEMPLATES;
use crate::identity::Role;
use crate::ids::JobId;
use serde::{Deserialize, Serialize};

/// The first minor version with typed refusals ([`Refusal::Forbidden`],
/// [`Refusal::BadJob`], [`Refusal::BadToken`],
/// [`JoinRefusal::BadCsr`](super::JoinRefusal::BadCsr)).
pub const MINOR_TYPED_REFUSALS: u16 = 4;

/// The first minor version with [`Refusal::OverLimit`].
pub const MINOR_LIMITS: u16 = 5;

/// Why a client request was refused. Retrying the same request at once cannot help
/// ([`Refusal::OverLimit`] may pass later, when the use it counts has fallen).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No job with this id exists.
    #[error("no job {0}")]
    UnknownJob(JobId),
    /// The submitted job is not valid; the text says why.
    #[error("invalid job: {0}")]
    InvalidJob(String),
    /// No connected worker has this name.
    #[error("no worker named {0} is connected or has ever connected")]
    UnknownWorker(String),
    /// Only a finished job can be forgotten.
    #[error("job {0} has not finished: cancel it first")]
    NotFinished(JobId),
    /// No worker of this name is quarantined.
    #[error("worker {0} is not quarantined")]
    NotQuarantined(String),
    /// The client's certificate does not allow this request; the text says what and
    /// which role would.
    #[error("not permitted: {0}")]
    NotPermitted(String),
    /// No join token has this id.
    #[error("no join token {0}")]
    UnknownToken(String),
    /// A token request out of bounds (lifetime, uses, role, id); the text says which.
    #[error("invalid token request: {0}")]
    InvalidToken(String),
    /// Not a valid worker or client name.
    #[error("invalid name `{0}`: use 1-63 characters from A-Z a-z 0-9 . _ -")]
    InvalidName(String),
    /// The client's certificate does not allow this request: what it asked and what
    /// that takes (minor 4; `NotPermitted` before).
    #[error("not permitted: {0}")]
    Forbidden(NotPermitted),
    /// The submitted job is not valid, and why (minor 4; `InvalidJob` before).
    #[error("invalid job: {0}")]
    BadJob(InvalidJob),
    /// A token request out of bounds (minor 4; `InvalidToken` before).
    #[error("invalid token request: {0}")]
    BadToken(TokenRequestError),
    /// The request would pass a limit: which, the limit and the use so far (minor 5;
    /// `NotPermitted` with the same text before).
    #[error("{0}")]
    OverLimit(LimitReached),
}

impl Refusal {
    /// The refusal as a client speaking `minor` decodes it: the typed variants of
    /// minor 4 become the text variants they replace, with the same text.
    pub fn for_minor(self, minor: u16) -> Refusal {
        match self {
            Refusal::OverLimit(l) if minor < MINOR_LIMITS => Refusal::NotPermitted(l.to_string()),
            Refusal::BadJob(InvalidJob {
                kind: JobErrorKind::Template,
                reason,
            }) if minor < MINOR_TEMPLATES => Refusal::BadJob(InvalidJob {
                kind: JobErrorKind::Sha256d,
                reason,
            })
            .for_minor(minor),
            _ if minor >= MINOR_TYPED_REFUSALS => self,
            Refusal::Forbidden(n) => Refusal::NotPermitted(n.to_string()),
            Refusal::BadJob(e) => Refusal::InvalidJob(e.to_string()),
            Refusal::BadToken(e) => Refusal::InvalidToken(e.to_string()),
            other => other,
        }
    }

    /// Whether the request itself is wrong (a job, name or token request that is not
    /// valid), rather than not allowed or about something that does not exist.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Refusal::InvalidJob(_)
                | Refusal::InvalidName(_)
                | Refusal::InvalidToken(_)
                | Refusal::BadJob(_)
                | Refusal::BadToken(_)
        )
    }
}

/// A limit on what one client may have or use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Limit {
    /// Jobs queued or running at once (the coordinator's
    /// `max_live_jobs_per_client`).
    LiveJobs,
}

/// A request refused because it would pass a limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitReached {
    /// The client (certificate name) the limit applies to.
    pub client: String,
    /// Which limit.
    pub limit: Limit,
    /// The limit.
    pub allowed: u64,
    /// The use so far.
    pub used: u64,
}

impl std::fmt::Display for LimitReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let LimitReached {
            client,
            limit,
            allowed,
            used,
        } = self;
        match limit {
            Limit::LiveJobs => write!(
                f,
                "client {client} has {used} jobs queued or running, and {allowed} is the most one client may have: wait for some to finish or cancel some, then submit again"
            ),
        }
    }
}

impl std::error::Error for LimitReached {}

/// What a client asked to do, as a permission names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Action {
    /// Drain or undrain workers.
    DrainWorkers,
    /// Release quarantined workers.
    ReleaseWorkers,
    /// Remove every finished job.
    PruneJobs,
    /// Revoke certificates.
    RevokeCertificates,
    /// Make join tokens.
    MakeTokens,
    /// List join tokens.
    ListTokens,
    /// Withdraw join tokens.
    WithdrawTokens,
    /// Watch a job.
    Watch(JobId),
    /// Cancel a job.
    Cancel(JobId),
    /// Forget a job.
    Forget(JobId),
    /// Show a job in detail.
    Show(JobId),
    /// Revoke the credential making the request (this name).
    RevokeOwn(String),
}

/// What an action takes that the request's certificate lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Needs {
    /// An admin certificate.
    Admin,
    /// The job's own client, or an admin.
    OwnerOrAdmin,
    /// Another credential than the one making the request (it would lock itself
    /// out).
    AnotherCredential,
}

/// A request the client's certificate does not allow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotPermitted {
    /// The client's certificate name.
    pub client: String,
    /// What it asked for.
    pub action: Action,
    /// What that takes.
    pub needs: Needs,
}

impl std::fmt::Display for NotPermitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let client = &self.client;
        let (verb, job) = match &self.action {
            Action::DrainWorkers => ("drain or undrain workers", None),
            Action::ReleaseWorkers => ("release quarantined workers", None),
            Action::PruneJobs => ("remove every finished job", None),
            Action::RevokeCertificates => ("revoke certificates", None),
            Action::MakeTokens => ("make join tokens", None),
            Action::ListTokens => ("list join tokens", None),
            Action::WithdrawTokens => ("withdraw join tokens", None),
            Action::Watch(job) => ("watch", Some(job)),
            Action::Cancel(job) => ("cancel", Some(job)),
            Action::Forget(job) => ("forget", Some(job)),
            Action::Show(job) => ("show", Some(job)),
            Action::RevokeOwn(name) => {
                return write!(
                    f,
                    "{name} is the credential making this request: revoking it would lock you out"
                )
            }
        };
        match job {
            Some(job) => write!(
                f,
                "job {job} belongs to another client: client {client} may not {verb} it (an admin credential may)"
            ),
            None => write!(
                f,
                "client {client} may not {verb}: that takes an admin credential"
            ),
        }
    }
}

impl std::error::Error for NotPermitted {}

/// What kind of job description was not valid (the job model's `SpecError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum JobErrorKind {
    /// A SHA-256d job (header, target, nonce range, version rolling).
    Sha256d,
    /// A hashcash job.
    Hashcash,
    /// A preimage job (mask, targets, range).
    Preimage,
    /// A custom kernel's job.
    Custom,
    /// A job with nothing to search.
    EmptyKeyspace,
    /// A block template job (minor 6; a peer below it gets [`JobErrorKind::Sha256d`]).
    Template,
}

/// A job that is not valid: which kind of problem, and the job model's words for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{reason}")]
pub struct InvalidJob {
    /// The kind of problem.
    pub kind: JobErrorKind,
    /// What is wrong, as the job model says it.
    pub reason: String,
}

impl From<&crate::job::SpecError> for InvalidJob {
    fn from(e: &crate::job::SpecError) -> InvalidJob {
        use crate::job::SpecError as E;
        let kind = match e {
            E::Sha256d(_) => JobErrorKind::Sha256d,
            E::Hashcash(_) => JobErrorKind::Hashcash,
            E::Preimage(_) => JobErrorKind::Preimage,
            E::Custom(_) => JobErrorKind::Custom,
            E::EmptyKeyspace => JobErrorKind::EmptyKeyspace,
            E::Template(_) => JobErrorKind::Template,
        };
        InvalidJob {
            kind,
            reason: e.to_string(),
        }
    }
}

/// Why a join token request was refused. Retrying the same request cannot help.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum TokenRequestError {
    /// The id is not the right number of lower-case hex digits.
    #[error("token id `{id}` is not {digits} lower-case hex digits")]
    BadId {
        /// The id given.
        id: String,
        /// How many digits an id has.
        digits: u32,
    },
    /// A token with this id exists.
    #[error("a token with id {0} exists")]
    Exists(String),
    /// As many tokens exist as the coordinator keeps.
    #[error("{0} tokens exist: revoke some first (`picluster token revoke ID`)")]
    TooMany(u32),
    /// Tokens enroll workers or clients only.
    #[error("a token may enroll workers or clients, not {0}")]
    Role(Role),
    /// The lifetime is 0 or longer than allowed.
    #[error("lifetime {ttl_s} s is outside 1 s ..= {max_s} s (24 h)")]
    Lifetime {
        /// The lifetime asked for.
        ttl_s: u64,
        /// The longest allowed.
        max_s: u64,
    },
    /// The number of uses is 0 or more than allowed.
    #[error("{uses} uses is outside 1 ..= {max}")]
    Uses {
        /// The uses asked for.
        uses: u32,
        /// The most allowed.
        max: u32,
    },
}
