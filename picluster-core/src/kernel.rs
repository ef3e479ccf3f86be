//! The `SearchKernel` trait: what the worker runs on a range of keyspace indices, and
//! what the coordinator uses to re-verify a claimed solution with one hash. Also the
//! job model shared by coordinator, worker and client (`JobSpec`), which turns into a
//! kernel. Does not own threading (the worker's compute module), the wire format, or
//! user-defined kernels ([`crate::custom`]).

use crate::custom::CustomJob;
use crate::hashcash::HashcashJob;
use crate::preimage::PreimageJob;
use crate::sha256d::Sha256dJob;
use std::ops::Range;
use std::sync::Arc;

/// A verified solution of a search job.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Solution {
    /// Index in the job's keyspace.
    pub index: u64,
    /// The hash that makes it a solution: for SHA-256d the block hash in display
    /// order (most significant byte first), otherwise the digest as computed.
    pub hash: [u8; 32],
    /// What the index stands for.
    pub detail: SolutionDetail,
}

/// What a solution's index stands for, by kind of job.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SolutionDetail {
    /// A block header.
    Sha256d {
        /// The header nonce.
        nonce: u32,
        /// The header version (differs from the submitted one only with version
        /// rolling).
        version: u32,
    },
    /// A hashcash counter.
    Hashcash {
        /// The counter appended to the data.
        counter: u64,
    },
    /// A preimage.
    Preimage {
        /// The candidate whose digest is a target.
        candidate: Vec<u8>,
    },
}

impl Solution {
    /// The header nonce of a SHA-256d solution.
    pub fn nonce(&self) -> Option<u32> {
        match self.detail {
            SolutionDetail::Sha256d { nonce, .. } => Some(nonce),
            _ => None,
        }
    }

    /// The header version of a SHA-256d solution.
    pub fn version(&self) -> Option<u32> {
        match self.detail {
            SolutionDetail::Sha256d { version, .. } => Some(version),
            _ => None,
        }
    }
}

/// A search kernel over a keyspace of indices `0..keyspace()`: the built-in kernels
/// (SHA-256d, hashcash, preimage), whose solutions the coordinator verifies itself.
///
/// `scan` must be a pure function of the range: the worker splits ranges into blocks,
/// runs them on several threads, and may run a range twice after a failure.
pub trait SearchKernel: Send + Sync + 'static {
    /// Number of indices in the keyspace.
    fn keyspace(&self) -> u64;
    /// Name of the implementation in use (reported in `picluster status`).
    fn implementation(&self) -> &'static str;
    /// Appends to `hits` every index in `range` that is a solution, in increasing order.
    fn scan(&self, range: Range<u64>, hits: &mut Vec<u64>);
    /// Checks one index independently of `scan`: `Some` exactly when it is a solution.
    fn verify(&self, index: u64) -> Option<Solution>;
    /// Once this many solutions are found, no more can be (each of a preimage
    /// job's targets has one preimage): an exhaustive search may stop there.
    fn max_solutions(&self) -> Option<u64> {
        None
    }
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobKind {
    /// Bitcoin-style SHA-256d nonce search.
    Sha256d(Sha256dJob),
    /// Hashcash-style proof of work over arbitrary data.
    Hashcash(HashcashJob),
    /// Preimage search over a mask.
    Preimage(PreimageJob),
    /// A user-defined kernel, run only by workers that registered it.
    Custom(CustomJob),
    /// Chunks that do no work, over `keyspace` indices: measures the scheduler itself
    /// (like HyperQueue's zero-worker mode).
    Noop {
        /// Number of indices.
        keyspace: u64,
    },
}

impl JobKind {
    /// Short name of the kind (`sha256d`, `hashcash`, `preimage`, `custom`, `noop`).
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::Sha256d(_) => "sha256d",
            JobKind::Hashcash(_) => "hashcash",
            JobKind::Preimage(_) => "preimage",
            JobKind::Custom(_) => "custom",
            JobKind::Noop { .. } => "noop",
        }
    }

    /// Number of indices in the job's keyspace.
    pub fn keyspace(&self) -> u64 {
        match self {
            JobKind::Sha256d(job) => job.keyspace(),
            JobKind::Hashcash(job) => job.keyspace(),
            JobKind::Preimage(job) => job.keyspace(),
            JobKind::Custom(job) => job.keyspace,
            JobKind::Noop { keyspace } => *keyspace,
        }
    }

    /// The search kernel of a built-in job; `None` for a custom job, which only the
    /// workers that registered it can run.
    pub fn search_kernel(&self) -> Option<Arc<dyn SearchKernel>> {
        Some(match self {
            JobKind::Sha256d(job) => Arc::new(job.kernel()),
            JobKind::Hashcash(job) => Arc::new(job.kernel()),
            JobKind::Preimage(job) => Arc::new(job.kernel()),
            JobKind::Custom(_) => return None,
            JobKind::Noop { keyspace } => Arc::new(NoopKernel {
                keyspace: *keyspace,
            }),
        })
    }

    /// The custom kernel's name, for a custom job.
    pub fn custom_kernel(&self) -> Option<&str> {
        match self {
            JobKind::Custom(job) => Some(&job.kernel),
            _ => None,
        }
    }

    /// Roughly how many SHA-256d nonces one index costs, to size a worker's first
    /// chunks of a job from its SHA-256d benchmark; `None` when unknown (custom).
    pub fn relative_cost(&self) -> Option<f64> {
        match self {
            JobKind::Sha256d(_) | JobKind::Noop { .. } => Some(1.0),
            // One or two compressions, against SHA-256d's two.
            JobKind::Hashcash(job) => Some(f64::from(job.blocks_per_candidate()) / 2.0),
            JobKind::Preimage(job) => Some(match job.hash() {
                crate::preimage::PreimageHash::Sha256 => 0.5,
                crate::preimage::PreimageHash::Sha256d => 1.0,
            }),
            JobKind::Custom(_) => None,
        }
    }
}

/// Why a job description was rejected; the input must change, retrying cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// An invalid SHA-256d job.
    #[error(transparent)]
    Sha256d(#[from] crate::sha256d::Sha256dError),
    /// An invalid hashcash job.
    #[error(transparent)]
    Hashcash(#[from] crate::hashcash::HashcashError),
    /// An invalid preimage job.
    #[error(transparent)]
    Preimage(#[from] crate::preimage::PreimageError),
    /// An invalid custom job.
    #[error(transparent)]
    Custom(#[from] crate::custom::CustomError),
    /// A job over no indices at all.
    #[error("the keyspace is empty")]
    EmptyKeyspace,
}

/// A validated job: what to compute and when to stop.
#[derive(Clone, Debug, PartialEq, Eq)]
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

impl SearchKernel for NoopKernel {
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
