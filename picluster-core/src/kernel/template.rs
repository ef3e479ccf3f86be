//! Block templates: the work a mining pool hands out over Stratum V1, as one search.
//!
//! Owns the meaning of an index of a template job: index `i` is extranonce2
//! `extranonce2_start + i / per_extranonce2`; within it, the nonces go in blocks of
//! [`NONCE_BLOCK`], each block through every version slot before the next block
//! (`within = (hi × versions + slot) × NONCE_BLOCK + lo`, nonce `hi × NONCE_BLOCK +
//! lo`), so that the version bits roll from the first seconds of a job, as a pool's
//! miners roll them, rather than after 2^32 nonces. Version slot `k` XORs the
//! template's version with the `k`-th pattern of the mask bits (see
//! [`crate::kernel::sha256d`]). A header is built as a pool says: the coinbase is
//! coinbase1 ‖ extranonce1 ‖ extranonce2 ‖ coinbase2, the merkle root folds SHA-256d
//! over the branch starting from the coinbase's hash, and the header is version,
//! previous block hash, merkle root, ntime, nBits and nonce. Extranonce2 is written
//! little-endian in its `extranonce2_size` bytes (as cgminer and cpuminer-opt count
//! it).
//!
//! The scan builds the coinbase and merkle root once per extranonce2 and hands the
//! header to the SHA-256d kernels, which take the midstate once per version: the
//! cost of a template index is a plain header's. Does not own Stratum itself (the
//! messages, the session, the pool connection are the bridge's, in
//! `picluster-client`).

use crate::kernel::sha256d::{
    display_order, sha256d, BlockHeader, Sha256dError, Sha256dImpl, Sha256dJob, Target,
    BIP320_MASK, NONCE_SPACE,
};
use crate::kernel::{SearchKernel, Solution, SolutionDetail};
use std::ops::Range;
use std::sync::Arc;

/// The longest coinbase part accepted, in bytes (a block's coinbase transaction is
/// far smaller; this bounds what a job carries).
pub const MAX_COINBASE_PART: usize = 64 * 1024;
/// The longest merkle branch accepted (a block of 2^32 transactions has 32).
pub const MAX_MERKLE_BRANCH: usize = 32;
/// The longest extranonce1 accepted, in bytes.
pub const MAX_EXTRANONCE1: usize = 32;
/// Nonces searched in one version before the next version (2^20).
pub const NONCE_BLOCK: u64 = 1 << 20;

/// Why a block template job was rejected. None of these are helped by retrying.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The extranonce2 size is not 1 to 8 bytes.
    #[error("extranonce2 size {0} is invalid: it must be 1 to 8 bytes")]
    Extranonce2Size(u8),
    /// The extranonce2 range is empty or does not fit the extranonce2 size.
    #[error(
        "extranonce2 range {start}+{count} is invalid: it must be non-empty and fit in {size} bytes"
    )]
    Extranonce2Range {
        /// First extranonce2.
        start: u64,
        /// How many.
        count: u64,
        /// The extranonce2 size in bytes.
        size: u8,
    },
    /// The keyspace, extranonce2 values × versions × 2^32 nonces, passes 2^64.
    #[error("{count} extranonce2 values with {versions} versions each are more than 2^64 headers")]
    TooLarge {
        /// Extranonce2 values.
        count: u64,
        /// Versions per extranonce2.
        versions: u64,
    },
    /// A part of the coinbase or the merkle branch is too long.
    #[error("{what} is {len} long, more than the {max} accepted")]
    TooLong {
        /// Which part.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The version mask has bits outside BIP 320's, or the target is zero.
    #[error(transparent)]
    Header(#[from] Sha256dError),
}

crate::debug_as_display!(TemplateError);

/// A block template search: one pool job, one range of extranonce2 values.
#[derive(Clone, PartialEq, Eq)]
pub struct TemplateJob {
    parts: TemplateParts,
    version_mask: u32,
    extranonce2: Range<u64>,
    target: Target,
}

impl std::fmt::Debug for TemplateJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateJob")
            .field("version", &format_args!("{:08x}", self.parts.version))
            .field("prevhash", &crate::hex::encode(&self.parts.prevhash))
            .field("ntime", &self.parts.ntime)
            .field("bits", &format_args!("{:08x}", self.parts.bits))
            .field("extranonce2", &self.extranonce2)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The parts of a block template, as a pool's job gives them (prevhash in the
/// header's own byte order: a Stratum notify's word-swapped form is the bridge's to
/// undo).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TemplateParts {
    /// The header's version before rolling.
    pub version: u32,
    /// The previous block's hash as the header holds it.
    pub prevhash: [u8; 32],
    /// The coinbase transaction before extranonce1.
    pub coinbase1: Vec<u8>,
    /// The pool's extranonce1 for this connection.
    pub extranonce1: Vec<u8>,
    /// Bytes of extranonce2 (1 to 8).
    pub extranonce2_size: u8,
    /// The coinbase transaction after extranonce2.
    pub coinbase2: Vec<u8>,
    /// The merkle branch, each hash as SHA-256d outputs it.
    pub merkle_branch: Vec<[u8; 32]>,
    /// The header's time.
    pub ntime: u32,
    /// The header's nBits.
    pub bits: u32,
}

impl TemplateJob {
    /// Validates and builds a job over `extranonce2` (a range of values that fit
    /// `extranonce2_size` bytes), rolling `version_mask` (within BIP 320's), finding
    /// every header whose hash meets `target` (the pool's share target).
    pub fn new(
        parts: TemplateParts,
        extranonce2: Range<u64>,
        version_mask: u32,
        target: Target,
    ) -> Result<Self, TemplateError> {
        let extranonce2_size = parts.extranonce2_size;
        if !(1..=8).contains(&extranonce2_size) {
            return Err(TemplateError::Extranonce2Size(extranonce2_size));
        }
        let limit = if extranonce2_size == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * u32::from(extranonce2_size))) - 1
        };
        if extranonce2.start >= extranonce2.end || extranonce2.end - 1 > limit {
            return Err(TemplateError::Extranonce2Range {
                start: extranonce2.start,
                count: extranonce2.end.saturating_sub(extranonce2.start),
                size: extranonce2_size,
            });
        }
        for (what, len, max) in [
            ("coinbase1", parts.coinbase1.len(), MAX_COINBASE_PART),
            ("coinbase2", parts.coinbase2.len(), MAX_COINBASE_PART),
            ("extranonce1", parts.extranonce1.len(), MAX_EXTRANONCE1),
            (
                "the merkle branch",
                parts.merkle_branch.len(),
                MAX_MERKLE_BRANCH,
            ),
        ] {
            if len > max {
                return Err(TemplateError::TooLong { what, len, max });
            }
        }
        if version_mask & !BIP320_MASK != 0 {
            return Err(Sha256dError::BadVersionMask(version_mask).into());
        }
        if target.0 == [0; 32] {
            return Err(Sha256dError::ZeroTarget.into());
        }
        let versions = 1u64 << version_mask.count_ones();
        let count = extranonce2.end - extranonce2.start;
        if count
            .checked_mul(versions)
            .and_then(|h| h.checked_mul(NONCE_SPACE))
            .is_none()
        {
            return Err(TemplateError::TooLarge { count, versions });
        }
        Ok(TemplateJob {
            parts,
            version_mask,
            extranonce2,
            target,
        })
    }

    /// The parts the job was built from.
    pub fn parts(&self) -> &TemplateParts {
        &self.parts
    }

    /// The extranonce2 values searched.
    pub fn extranonce2_range(&self) -> Range<u64> {
        self.extranonce2.clone()
    }

    /// The version bits rolled.
    pub fn version_mask(&self) -> u32 {
        self.version_mask
    }

    /// The share target: every header whose hash meets it is a solution.
    pub fn target(&self) -> Target {
        self.target
    }

    /// The header's time.
    pub fn ntime(&self) -> u32 {
        self.parts.ntime
    }

    /// Headers per extranonce2 value: versions × 2^32 nonces.
    pub fn per_extranonce2(&self) -> u64 {
        (1u64 << self.version_mask.count_ones()) * NONCE_SPACE
    }

    /// Number of headers searched. Fits in a u64 (checked when built).
    pub fn keyspace(&self) -> u64 {
        (self.extranonce2.end - self.extranonce2.start) * self.per_extranonce2()
    }

    /// Extranonce2 `value` as the bytes written into the coinbase (little-endian, in
    /// `extranonce2_size` bytes).
    pub fn extranonce2_bytes(&self, value: u64) -> Vec<u8> {
        value.to_le_bytes()[..usize::from(self.parts.extranonce2_size)].to_vec()
    }

    /// The coinbase transaction with extranonce2 `value`.
    pub fn coinbase(&self, value: u64) -> Vec<u8> {
        let p = &self.parts;
        let mut tx = Vec::with_capacity(
            p.coinbase1.len()
                + p.extranonce1.len()
                + usize::from(p.extranonce2_size)
                + p.coinbase2.len(),
        );
        tx.extend_from_slice(&p.coinbase1);
        tx.extend_from_slice(&p.extranonce1);
        tx.extend_from_slice(&self.extranonce2_bytes(value));
        tx.extend_from_slice(&p.coinbase2);
        tx
    }

    /// The merkle root with extranonce2 `value`, as the header holds it.
    pub fn merkle_root(&self, value: u64) -> [u8; 32] {
        let mut root = sha256d(&self.coinbase(value));
        let mut pair = [0u8; 64];
        for branch in &self.parts.merkle_branch {
            pair[..32].copy_from_slice(&root);
            pair[32..].copy_from_slice(branch);
            root = sha256d(&pair);
        }
        root
    }

    /// The header with extranonce2 `value`, the template's version and nonce 0.
    pub fn header(&self, value: u64) -> BlockHeader {
        let mut h = [0u8; 80];
        h[0..4].copy_from_slice(&self.parts.version.to_le_bytes());
        h[4..36].copy_from_slice(&self.parts.prevhash);
        h[36..68].copy_from_slice(&self.merkle_root(value));
        h[68..72].copy_from_slice(&self.parts.ntime.to_le_bytes());
        h[72..76].copy_from_slice(&self.parts.bits.to_le_bytes());
        BlockHeader(h)
    }

    /// The version of version slot `slot`.
    fn version_of_slot(&self, slot: u64) -> u32 {
        self.parts.version ^ crate::kernel::sha256d::deposit(slot as u32, self.version_mask)
    }

    /// (extranonce2, version slot, first nonce) of the nonce block that holds keyspace
    /// index `index`, and the index's offset in it.
    fn block_of(&self, index: u64) -> (u64, u64, u64, u64) {
        let per = self.per_extranonce2();
        let versions = 1u64 << self.version_mask.count_ones();
        let value = self.extranonce2.start + index / per;
        let within = index % per;
        let block = within / NONCE_BLOCK;
        let (hi, slot) = (block / versions, block % versions);
        (value, slot, hi * NONCE_BLOCK, within % NONCE_BLOCK)
    }

    /// (extranonce2, version, nonce) of keyspace index `index`, which must be in the
    /// keyspace.
    pub fn locate(&self, index: u64) -> (u64, u32, u32) {
        let (value, slot, first, offset) = self.block_of(index);
        (value, self.version_of_slot(slot), (first + offset) as u32)
    }

    /// Whether a header hash (as computed) meets the block's own target (nBits): a
    /// block, not only a share.
    pub fn is_block(&self, hash: &[u8; 32]) -> bool {
        Target::from_compact(self.parts.bits).is_ok_and(|t| t.is_met_by(hash))
    }

    /// The scan kernel, with the process's selected SHA-256d implementation.
    pub fn kernel(&self) -> TemplateKernel {
        self.kernel_with(Sha256dImpl::selected())
    }

    /// The scan kernel with SHA-256d implementation `imp`.
    pub fn kernel_with(&self, imp: Sha256dImpl) -> TemplateKernel {
        TemplateKernel {
            job: Arc::new(self.clone()),
            imp,
            target: self.target,
        }
    }
}

/// The scan kernel of a template job.
#[derive(Clone, Debug)]
pub struct TemplateKernel {
    job: Arc<TemplateJob>,
    imp: Sha256dImpl,
    /// What the scan reports: the job's target, or an easier one with shares.
    target: Target,
}

impl SearchKernel for TemplateKernel {
    fn keyspace(&self) -> u64 {
        self.job.keyspace()
    }

    fn implementation(&self) -> &'static str {
        self.imp.label()
    }

    fn scan(&self, range: Range<u64>, hits: &mut Vec<u64>) {
        let end = range.end.min(self.keyspace());
        let mut index = range.start;
        // The header (coinbase and merkle root) of the extranonce2 at hand.
        let mut header: Option<(u64, BlockHeader)> = None;
        while index < end {
            let (value, slot, first, offset) = self.job.block_of(index);
            let segment_end = end.min(index - offset + NONCE_BLOCK);
            let header = match header {
                Some((v, h)) if v == value => h,
                _ => {
                    let h = self.job.header(value);
                    header = Some((value, h));
                    h
                }
            };
            let job = Sha256dJob {
                header: header.with(self.job.version_of_slot(slot), 0),
                target: self.target,
                nonce_start: first as u32,
                nonce_end: first + NONCE_BLOCK,
                version_mask: 0,
            };
            let base = index - offset;
            let at = hits.len();
            job.kernel_with(self.imp)
                .scan(offset..segment_end - base, hits);
            for hit in &mut hits[at..] {
                *hit += base;
            }
            index = segment_end;
        }
    }

    fn digest(&self, index: u64) -> Option<[u8; 32]> {
        if index >= self.keyspace() {
            return None;
        }
        let (value, version, nonce) = self.job.locate(index);
        Some(display_order(
            &self.job.header(value).with(version, nonce).hash(),
        ))
    }

    fn with_shares(&self, bits: u32) -> Option<Arc<dyn SearchKernel>> {
        Some(Arc::new(TemplateKernel {
            job: self.job.clone(),
            imp: self.imp,
            target: self.target.easier(Target::of_zero_bits(bits)),
        }))
    }

    fn verify(&self, index: u64) -> Option<Solution> {
        if index >= self.keyspace() {
            return None;
        }
        let (value, version, nonce) = self.job.locate(index);
        let hash = self.job.header(value).with(version, nonce).hash();
        self.job.target.is_met_by(&hash).then(|| Solution {
            index,
            hash: display_order(&hash),
            detail: SolutionDetail::Template {
                extranonce2: self.job.extranonce2_bytes(value),
                ntime: self.job.parts.ntime,
                version,
                nonce,
                block: self.job.is_block(&hash),
            },
        })
    }
}
