//! The job model shared by coordinator, worker and client: what a job computes
//! ([`JobKind`], which names every kind of kernel), when it stops ([`SearchMode`]),
//! and why a description is rejected ([`SpecError`]). A job turns into its kernel
//! here; the kernels themselves live in [`crate::kernel`] and know nothing of jobs.

use crate::kernel::custom::CustomJob;
use crate::kernel::hashcash::HashcashJob;
use crate::kernel::preimage::{PreimageHash, PreimageJob};
use crate::kernel::sha256d::Sha256dJob;
use crate::kernel::template::TemplateJob;
use crate::kernel::{NoopKernel, SearchKernel};
use std::sync::Arc;

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
    /// A mining pool's block template (Stratum V1): extranonce2, version, nonce.
    Template(Box<TemplateJob>),
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
            JobKind::Template(_) => "template",
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
            JobKind::Template(job) => job.keyspace(),
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
            JobKind::Template(job) => Arc::new(job.kernel()),
            JobKind::Custom(_) => return None,
            JobKind::Noop { keyspace } => Arc::new(NoopKernel::new(*keyspace)),
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
            JobKind::Sha256d(_) | JobKind::Template(_) | JobKind::Noop { .. } => Some(1.0),
            // One or two compressions, against SHA-256d's two.
            JobKind::Hashcash(job) => Some(f64::from(job.blocks_per_candidate()) / 2.0),
            JobKind::Preimage(job) => Some(match job.hash() {
                PreimageHash::Sha256 => 0.5,
                PreimageHash::Sha256d => 1.0,
            }),
            JobKind::Custom(_) => None,
        }
    }
}

/// Why a job description was rejected; the input must change, retrying cannot help.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// An invalid SHA-256d job.
    #[error(transparent)]
    Sha256d(#[from] crate::kernel::sha256d::Sha256dError),
    /// An invalid hashcash job.
    #[error(transparent)]
    Hashcash(#[from] crate::kernel::hashcash::HashcashError),
    /// An invalid preimage job.
    #[error(transparent)]
    Preimage(#[from] crate::kernel::preimage::PreimageError),
    /// An invalid custom job.
    #[error(transparent)]
    Custom(#[from] crate::kernel::custom::CustomError),
    /// An invalid block template job.
    #[error(transparent)]
    Template(#[from] crate::kernel::template::TemplateError),
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

crate::debug_as_display!(SpecError);
