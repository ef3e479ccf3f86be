//! What to compute, as sent on the wire, and its conversion to and from the job
//! model ([`JobKind`]), which validates it.

use crate::job::{JobKind, JobSpec, SpecError};
use crate::kernel::custom::CustomJob;
use crate::kernel::hashcash::HashcashJob;
use crate::kernel::preimage::{Mask, PreimageHash, PreimageJob};
use crate::kernel::sha256d::{BlockHeader, Sha256dJob, Target};
use crate::kernel::template::{TemplateJob, TemplateParts};
use serde::{Deserialize, Serialize};

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
    /// A mining pool's block template (minor 6).
    Template(Box<TemplateWork>),
}

/// A block template search on the wire (see
/// [`TemplateJob`](crate::kernel::template::TemplateJob)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateWork {
    /// The pool's job.
    pub parts: TemplateParts,
    /// BIP 320 version bits to roll.
    pub version_mask: u32,
    /// First extranonce2 searched.
    pub extranonce2_start: u64,
    /// One past the last extranonce2 searched.
    pub extranonce2_end: u64,
    /// The share target, most significant byte first.
    pub target: [u8; 32],
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
            JobKind::Template(job) => {
                let extranonce2 = job.extranonce2_range();
                WorkSpec::Template(Box::new(TemplateWork {
                    parts: job.parts().clone(),
                    version_mask: job.version_mask(),
                    extranonce2_start: extranonce2.start,
                    extranonce2_end: extranonce2.end,
                    target: job.target().0,
                }))
            }
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
            WorkSpec::Template(w) => Ok(JobKind::Template(Box::new(TemplateJob::new(
                w.parts.clone(),
                w.extranonce2_start..w.extranonce2_end,
                w.version_mask,
                Target(w.target),
            )?))),
            WorkSpec::Custom(w) => Ok(JobKind::Custom(CustomJob::new(
                &w.kernel, &w.params, w.keyspace, w.block,
            )?)),
        }
    }
}

impl super::Submit {
    /// The validated job this submission asks for (its priority aside).
    pub fn spec(&self) -> Result<JobSpec, SpecError> {
        Ok(JobSpec {
            kind: JobKind::try_from(&self.work)?,
            mode: self.mode,
        })
    }
}

impl WorkSpec {
    /// SHA-256 of the work's encoding: names one job's work across connections and
    /// restarts (see [`HeldLease::work`](super::HeldLease::work)).
    pub fn digest(&self) -> [u8; 32] {
        use sha2::Digest;
        // A work description always encodes: plain data, bounded by the frame it came in.
        let bytes = postcard::to_stdvec(self).unwrap_or_default();
        sha2::Sha256::digest(bytes).into()
    }
}
