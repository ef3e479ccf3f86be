//! Why a client operation failed: [`ClientError`] (with whether retrying can help)
//! and [`KernelError`] for a custom kernel's job or results.

use picluster_core::ids::JobId;
use picluster_core::kernel::custom::BindError;
use picluster_core::net::NetError;
use picluster_core::trust::ClusterError;
use picluster_core::wire::Refusal;

/// Why a client operation failed. [`ClientError::is_retryable`] says whether trying
/// again (after reconnecting) can help.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Connecting or talking to the coordinator failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The cluster directory or bundle is unusable.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The coordinator refused the request.
    #[error("{0}")]
    Refused(Refusal),
    /// The connection ended while waiting for an answer.
    #[error("the connection to the coordinator was lost")]
    Disconnected,
    /// The coordinator runs an older protocol that lacks this request.
    #[error("the coordinator speaks protocol minor {coordinator}; this request needs {needed}: upgrade the coordinator")]
    CoordinatorTooOld {
        /// The minor version negotiated.
        coordinator: u16,
        /// The minor version the request needs.
        needed: u16,
    },
    /// The coordinator answered with a reply of the wrong kind.
    #[error("unexpected reply from the coordinator: {0}")]
    UnexpectedReply(&'static str),
    /// A custom kernel's parameters or results could not be encoded or decoded, or
    /// the results of a completed job do not cover its keyspace exactly.
    #[error("custom kernel: {0}")]
    Kernel(#[from] KernelError),
    /// The bundle holds a worker's credential, which may not use the client
    /// protocol.
    #[error("the bundle holds the credential of worker {0}, which may only take work: a client needs a client or admin credential (the cluster directory's admin.bundle, or a bundle from `picluster add-client NAME`)")]
    WorkerCredential(String),
    /// The blocking client was called on a thread that runs an async runtime.
    #[error("picluster_client::blocking::Client was called inside an async runtime, where it would block the runtime's thread: use picluster_client::Client with .await there (or call the blocking client from tokio::task::spawn_blocking)")]
    InsideRuntime,
}

impl ClientError {
    /// Whether retrying (after reconnecting) can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Net(e) => e.is_retryable(),
            ClientError::Disconnected => true,
            ClientError::Cluster(_)
            | ClientError::Refused(_)
            | ClientError::CoordinatorTooOld { .. }
            | ClientError::UnexpectedReply(_)
            | ClientError::Kernel(_)
            | ClientError::WorkerCredential(_)
            | ClientError::InsideRuntime => false,
        }
    }
}

/// Why a custom kernel's job or results could not be used. Not helped by retrying.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// The parameters do not make a valid job.
    #[error(transparent)]
    Job(#[from] BindError),
    /// A range's result does not decode as the kernel's output.
    #[error("{start}..{end}: {source}")]
    Decode {
        /// First index of the range.
        start: u64,
        /// One past its last.
        end: u64,
        /// Why.
        source: BindError,
    },
    /// Two results overlap, or one covers nothing.
    #[error("results overlap or are empty at {start}..{end}")]
    Overlap {
        /// First index of the offending range.
        start: u64,
        /// One past its last.
        end: u64,
    },
    /// The merged result has no JSON form (a map with keys that are not strings).
    #[error("the merged result cannot be shown as JSON: {0}")]
    Json(String),
    /// A completed job's results do not cover its keyspace exactly.
    #[error("the results of completed job {job} cover {covered} of its {keyspace} indices")]
    Coverage {
        /// The job.
        job: JobId,
        /// Indices covered.
        covered: u64,
        /// Its keyspace.
        keyspace: u64,
    },
}

picluster_core::debug_as_display!(ClientError);

picluster_core::debug_as_display!(KernelError);
