//! The `Kernel` trait: what the worker runs on a range of keyspace indices, and what
//! the coordinator uses to re-verify a claimed solution with one hash. Also the job
//! model shared by coordinator, worker and client (`JobSpec`), which turns into a
//! kernel. Does not own threading (the worker's compute module) or the wire format.

use crate::sha256d::Sha256dJob;
use std::ops::Range;
use std::sync::Arc;

/// A verified solution of a SHA-256d job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Solution {
    /// Index in the job's keyspace.
    pub index: u64,
    /// The header nonce.
    pub nonce: u32,
    /// The header version (differs from the submitted one only with version rolling).
    pub version: u32,
    /// The block hash in display order (most significant byte first).
    pub hash: [u8; 32],
}

/// A compute kernel over a keyspace of indices `0..keyspace()`.
///
/// `scan` must be a pure function of the range: the worker splits ranges into blocks,
/// runs them on several threads, and may run a range twice after a failure.
pub trait Kernel: Send + Sync + 'static {
    /// Number of indices in the keyspace.
    fn keyspace(&self) -> u64;
    /// Name of the implementation in use (reported in `picluster status`).
    fn implementation(&self) -> &'static str;
    /// Appends to `hits` every index in `range` that is a solution, in increasing order.
    fn scan(&self, range: Range<u64>, hits: &mut Vec<u64>);
    /// Checks one index independently of `scan`: `Some` exactly when it is a solution.
    fn verify(&self, index: u64) -> Option<Solution>;
}

/// Stop at the first verified solution, or search the whole keyspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SearchMode {
    /// The job completes at the first verified solution.
    First,
    /// The job completes when every index has been searched.
    All,
}

/// What a job computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKind {
    /// Bitcoin-style SHA-256d nonce search.
    Sha256d(Sha256dJob),
    /// Chunks that do no work, over `keyspace` indices: measures the scheduler itself
    /// (like HyperQueue's zero-worker mode).
    Noop {
        /// Number of indices.
        keyspace: u64,
    },
}

impl JobKind {
    /// Short name of the kind (`sha256d`).
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::Sha256d(_) => "sha256d",
            JobKind::Noop { .. } => "noop",
        }
    }

    /// The kernel that scans this job.
    pub fn kernel(&self) -> Arc<dyn Kernel> {
        match self {
            JobKind::Sha256d(job) => Arc::new(job.kernel()),
            JobKind::Noop { keyspace } => Arc::new(NoopKernel {
                keyspace: *keyspace,
            }),
        }
    }
}

/// Why a job description was rejected; the input must change, retrying cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// An invalid SHA-256d job.
    #[error(transparent)]
    Sha256d(#[from] crate::sha256d::Sha256dError),
    /// A job over no indices at all.
    #[error("the keyspace is empty")]
    EmptyKeyspace,
}

/// A validated job: what to compute and when to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobSpec {
    /// What to compute.
    pub kind: JobKind,
    /// When the job is done.
    pub mode: SearchMode,
}

/// The kernel of [`JobKind::Noop`]: searches nothing, finds nothing.
#[derive(Clone, Copy, Debug)]
pub struct NoopKernel {
    keyspace: u64,
}

impl Kernel for NoopKernel {
    fn keyspace(&self) -> u64 {
        self.keyspace
    }

    fn implementation(&self) -> &'static str {
        "noop"
    }

    fn scan(&self, _range: Range<u64>, _hits: &mut Vec<u64>) {}

    fn verify(&self, _index: u64) -> Option<Solution> {
        None
    }
}

/// Which backend the `sha2` crate selects on this CPU (it detects at run time).
pub fn sha2_backend() -> &'static str {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        if std::arch::is_x86_feature_detected!("sha") {
            return "sha2-shani";
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("sha2") {
            return "sha2-armv8";
        }
    }
    "sha2-soft"
}
