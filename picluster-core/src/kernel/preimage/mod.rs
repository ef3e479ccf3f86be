//! Preimage search over a mask, as password-recovery tools do it: a mask of character
//! classes defines a keyspace of short candidates, and the search looks for the ones
//! whose SHA-256 (or double SHA-256) is one of a set of target digests.
//!
//! Owns the mask syntax and the meaning of an index: candidate `i` is `i` written in
//! the mixed radix of the positions' charset sizes, the last position varying
//! fastest, so candidates come in the order of their charsets and chunks are plain
//! index ranges. A scan computes the first candidate of its range from the index, then
//! keeps the candidate as message words. The mask's fastest-varying positions are
//! tabulated (`Tail`): sixteen candidates with the same earlier positions are those
//! positions' words ORed with a slice of the table, and the earlier positions step
//! like an odometer. Each candidate costs one compression (two for SHA-256d) from the
//! IV, run sixteen at a time with the selected SHA-256d implementation's instructions
//! ([`crate::kernel::sha256d::batch`]: AVX-512 sixteen lanes, AVX2 eight, NEON four,
//! SHA-NI and ARMv8 SHA2 interleaved streams); the words after the padding are zero,
//! which the lane implementations fold away. A filter on the digest's word 7, which
//! the lane implementations know after round 60, rejects almost every candidate; the
//! rest are hashed again in full and looked up in the sorted targets.
//!
//! Mask syntax (hashcat's): `?l` a-z, `?u` A-Z, `?d` 0-9, `?h` 0-9a-f, `?H` 0-9A-F,
//! `?s` the 33 printable ASCII symbols and space, `?a` = `?l?u?d?s`, `?b` any byte,
//! `?1`..`?4` custom charsets, `??` a literal `?`; any other character stands for
//! itself. Custom charsets use the same syntax (without `?1`..`?4`).
//!
//! # Layout
//! - this file: the job ([`PreimageJob`]), its errors and [`PreimageKernel`].
//! - `mask`: the mask syntax and the index-to-candidate order ([`Mask`]).
//! - `candidates`: candidates as message words, sixteen at a time.

mod candidates;
mod mask;

pub use mask::Mask;

use crate::kernel::sha256d::batch::{Batch, BATCH};
use crate::kernel::sha256d::portable::IV;
use crate::kernel::sha256d::Sha256dImpl;
use crate::kernel::{SearchKernel, Solution, SolutionDetail};
use candidates::{Candidates, Tail};
use sha2::{Digest, Sha256};
use std::ops::Range;
use std::sync::Arc;

/// Longest candidate: one SHA-256 block holds at most 55 message bytes.
pub const MAX_CANDIDATE_LEN: usize = 55;
/// Most target digests per job (a job travels with every chunk of it).
pub const MAX_TARGETS: usize = 4096;

/// Why a mask or a preimage job was rejected; the input must change.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PreimageError {
    /// `?` followed by a character that names no charset.
    #[error(
        "position {position}: unknown charset ?{ch} (known: ?l ?u ?d ?h ?H ?s ?a ?b ?1-?4 ??)"
    )]
    UnknownCharset {
        /// Byte offset in the mask.
        position: usize,
        /// The character after `?`.
        ch: char,
    },
    /// A mask ending in a lone `?`.
    #[error("it ends with a lone '?' (write ?? for a literal question mark)")]
    TrailingQuestionMark,
    /// A custom charset's definition is invalid (not the mask itself).
    #[error("custom charset {charset}: {reason}")]
    InCustomCharset {
        /// Which (1-4).
        charset: u8,
        /// What is wrong with its definition.
        reason: Box<PreimageError>,
    },
    /// `?N` used without defining custom charset N.
    #[error("mask uses ?{0} but custom charset {0} is not defined")]
    UndefinedCustom(u8),
    /// A custom charset that refers to a custom charset.
    #[error("custom charset {0} may not use ?1-?4")]
    NestedCustom(u8),
    /// An empty custom charset.
    #[error("custom charset {0} is empty")]
    EmptyCustom(u8),
    /// A mask with no positions.
    #[error("the mask is empty")]
    EmptyMask,
    /// A mask whose candidates are longer than one block allows.
    #[error("the mask makes {0}-byte candidates; at most {MAX_CANDIDATE_LEN} are supported")]
    TooLong(usize),
    /// A position with no characters (on the wire).
    #[error("position {0} has an empty charset")]
    EmptyPosition(usize),
    /// A position listing a byte twice (on the wire): candidates would repeat.
    #[error("position {0} lists a character twice")]
    DuplicateInPosition(usize),
    /// More candidates than a 64-bit index can number.
    #[error("the mask's keyspace exceeds 2^64 candidates")]
    KeyspaceOverflow,
    /// No targets.
    #[error("no target digests given")]
    NoTargets,
    /// Too many targets.
    #[error("{0} target digests given; at most {MAX_TARGETS} are supported")]
    TooManyTargets(usize),
    /// A target that is not 32 bytes.
    #[error("target {index}: {reason}")]
    BadTarget {
        /// Which target (0-based).
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A skip/limit that leaves no candidates.
    #[error("candidate range {start}..{end} is empty or beyond the mask's {keyspace} candidates")]
    BadRange {
        /// First index.
        start: u64,
        /// One past the last.
        end: u64,
        /// The mask's keyspace.
        keyspace: u64,
    },
}

/// The hash a preimage job inverts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreimageHash {
    /// SHA-256(candidate).
    Sha256,
    /// SHA-256(SHA-256(candidate)).
    Sha256d,
}

impl PreimageHash {
    /// Lower-case name (`sha256`, `sha256d`).
    pub fn name(self) -> &'static str {
        match self {
            PreimageHash::Sha256 => "sha256",
            PreimageHash::Sha256d => "sha256d",
        }
    }
}

/// A preimage search: the mask, the hash, the digests sought and the index range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreimageJob {
    mask: Arc<Mask>,
    hash: PreimageHash,
    /// Sorted, without duplicates.
    targets: Arc<[[u8; 32]]>,
    range: Range<u64>,
}

impl PreimageJob {
    /// Validates and builds a job over candidates `range` of `mask` (`None`: all).
    /// Duplicate targets are merged.
    pub fn new(
        mask: Mask,
        hash: PreimageHash,
        targets: &[[u8; 32]],
        range: Option<Range<u64>>,
    ) -> Result<Self, PreimageError> {
        if targets.is_empty() {
            return Err(PreimageError::NoTargets);
        }
        if targets.len() > MAX_TARGETS {
            return Err(PreimageError::TooManyTargets(targets.len()));
        }
        let keyspace = mask.keyspace();
        let range = range.unwrap_or(0..keyspace);
        if range.start >= range.end || range.end > keyspace {
            return Err(PreimageError::BadRange {
                start: range.start,
                end: range.end,
                keyspace,
            });
        }
        let mut sorted = targets.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        Ok(PreimageJob {
            mask: Arc::new(mask),
            hash,
            targets: sorted.into(),
            range,
        })
    }

    /// The mask.
    pub fn mask(&self) -> &Mask {
        &self.mask
    }

    /// The hash inverted.
    pub fn hash(&self) -> PreimageHash {
        self.hash
    }

    /// The target digests, sorted, without duplicates.
    pub fn targets(&self) -> &[[u8; 32]] {
        &self.targets
    }

    /// The mask indices searched.
    pub fn range(&self) -> Range<u64> {
        self.range.clone()
    }

    /// Number of candidates searched.
    pub fn keyspace(&self) -> u64 {
        self.range.end - self.range.start
    }

    /// The candidate of keyspace index `index`.
    pub fn candidate(&self, index: u64) -> Vec<u8> {
        self.mask.candidate(self.range.start + index)
    }

    /// The digest of `candidate` through the `sha2` crate's streaming API: the
    /// reference the kernel is checked against.
    pub fn digest(&self, candidate: &[u8]) -> [u8; 32] {
        let once: [u8; 32] = Sha256::digest(candidate).into();
        match self.hash {
            PreimageHash::Sha256 => once,
            PreimageHash::Sha256d => Sha256::digest(once).into(),
        }
    }

    /// The digest (as words) of a candidate given as its one padded block's words.
    fn hash_block(&self, block: &[u32; 16]) -> [u32; 8] {
        use crate::kernel::sha256d::portable::compress_words;
        let once = compress_words(IV, block);
        match self.hash {
            PreimageHash::Sha256 => once,
            PreimageHash::Sha256d => {
                let mut second = [0u32; 16];
                second[..8].copy_from_slice(&once);
                second[8] = 0x8000_0000;
                second[15] = 256;
                compress_words(IV, &second)
            }
        }
    }

    /// The scan kernel, with the process's SHA-256 implementation
    /// ([`Sha256dImpl::selected`]).
    pub fn kernel(&self) -> PreimageKernel {
        self.kernel_with(Sha256dImpl::selected())
    }

    /// The scan kernel, compressing with `imp` (which must be available).
    pub fn kernel_with(&self, imp: Sha256dImpl) -> PreimageKernel {
        let words: Vec<[u32; 8]> = self.targets.iter().map(to_words).collect();
        // About one candidate in 4096 gets past the filter per target, at most one
        // in 1024 (for 4096 targets, a 512 KiB filter).
        let bits = (usize::BITS - words.len().leading_zeros() + 12).clamp(16, 22);
        let filter_shift = 32 - bits;
        let mut filter = vec![0u64; (1 << bits) / 64];
        for w in &words {
            let bit = (w[7] >> filter_shift) as usize;
            filter[bit / 64] |= 1 << (bit % 64);
        }
        PreimageKernel {
            job: self.clone(),
            words: words.into(),
            filter: filter.into(),
            filter_shift,
            share_bits: 0,
            imp,
            tail: Arc::new(Tail::new(self.mask.positions())),
        }
    }
}

fn to_words(digest: &[u8; 32]) -> [u32; 8] {
    let mut w = [0u32; 8];
    for (w, c) in w.iter_mut().zip(digest.chunks_exact(4)) {
        *w = u32::from_be_bytes(c.try_into().expect("4 bytes"));
    }
    w
}

/// The preimage scan kernel (see the module docs).
#[derive(Clone, Debug)]
pub struct PreimageKernel {
    job: PreimageJob,
    /// The targets as big-endian words, sorted (the same order as the bytes).
    words: Arc<[[u32; 8]]>,
    /// One bit per value of the top bits of a digest's word 7 (the last four bytes):
    /// is any target there?
    filter: Arc<[u64]>,
    /// Word 7 shifted right by this gives the filter's bit.
    filter_shift: u32,
    /// Also report digests with at least this many leading zero bits (0: none).
    share_bits: u32,
    /// Whose instructions compress.
    imp: Sha256dImpl,
    /// The mask's fastest-varying positions, tabulated.
    tail: Arc<Tail>,
}

impl PreimageKernel {
    fn is_share(&self, state: &[u32; 8]) -> bool {
        self.share_bits > 0
            && state[0].leading_zeros() >= self.share_bits.min(32)
            && crate::kernel::hashcash::leading_zero_bits(state) >= self.share_bits
    }

    /// Whether any target's word 7 has the top bits of `top` (the filter's test).
    fn maybe_target(&self, top: u32) -> bool {
        let bit = (top >> self.filter_shift) as usize;
        self.filter[bit / 64] & (1 << (bit % 64)) != 0
    }

    fn is_target(&self, state: &[u32; 8]) -> bool {
        self.maybe_target(state[7]) && self.words.binary_search(state).is_ok()
    }
}

impl SearchKernel for PreimageKernel {
    fn keyspace(&self) -> u64 {
        self.job.keyspace()
    }

    fn implementation(&self) -> &'static str {
        self.imp.label()
    }

    fn scan(&self, range: Range<u64>, hits: &mut Vec<u64>) {
        let end = range.end.min(self.keyspace());
        if range.start >= end {
            return;
        }
        let mut candidates = Candidates::new(
            self.job.mask.positions(),
            &self.tail,
            self.job.range.start + range.start,
        );
        let mut batch = Batch::new();
        // After the word with the padding's 0x80, zeros up to the length word.
        batch.zero_from = self.job.mask.len() / 4 + 1;
        let mut second = Batch::new();
        let mut index = range.start;
        while index < end {
            // A short last batch repeats its last candidate; the repeats are not
            // reported.
            let count = (end - index).min(BATCH as u64) as usize;
            candidates.fill(&mut batch, count);
            let sha256d = self.job.hash == PreimageHash::Sha256d;
            if self.share_bits == 0 {
                // Word 7 of the digest rejects almost every candidate, and the lane
                // implementations know it after round 60 of the last compression.
                let mut top = [0; BATCH];
                if sha256d {
                    batch.compress_from(self.imp, &IV);
                    batch.rehash_top(self.imp, &mut second, &mut top);
                } else {
                    batch.compress_top(self.imp, &IV, &mut top);
                }
                for (j, top) in top.iter().enumerate().take(count) {
                    if self.maybe_target(*top) {
                        let block = std::array::from_fn(|t| batch.blocks[t][j]);
                        if self.is_target(&self.job.hash_block(&block)) {
                            hits.push(index + j as u64);
                        }
                    }
                }
            } else {
                batch.compress_from(self.imp, &IV);
                let last = if sha256d {
                    batch.rehash_into(self.imp, &mut second);
                    &second
                } else {
                    &batch
                };
                for j in 0..count {
                    let (first, top) = (last.states[0][j], last.states[7][j]);
                    if self.maybe_target(top) || first.leading_zeros() >= self.share_bits.min(32) {
                        let state = last.state(j);
                        if self.is_target(&state) || self.is_share(&state) {
                            hits.push(index + j as u64);
                        }
                    }
                }
            }
            index += count as u64;
        }
    }

    fn digest(&self, index: u64) -> Option<[u8; 32]> {
        (index < self.keyspace()).then(|| self.job.digest(&self.job.candidate(index)))
    }

    fn with_shares(&self, bits: u32) -> Option<Arc<dyn SearchKernel>> {
        let mut kernel = self.clone();
        kernel.share_bits = bits.max(1);
        Some(Arc::new(kernel))
    }

    fn verify(&self, index: u64) -> Option<Solution> {
        if index >= self.keyspace() {
            return None;
        }
        let candidate = self.job.candidate(index);
        let hash = self.job.digest(&candidate);
        self.job
            .targets
            .binary_search(&hash)
            .is_ok()
            .then_some(Solution {
                index,
                hash,
                detail: SolutionDetail::Preimage { candidate },
            })
    }

    fn max_solutions(&self) -> Option<u64> {
        Some(self.job.targets.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_custom() -> [Option<&'static str>; 4] {
        [None; 4]
    }

    #[test]
    fn mask_syntax() {
        let m = Mask::parse("a?d?l??", &no_custom()).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m.keyspace(), 260);
        assert_eq!(m.candidate(0), b"a0a?");
        assert_eq!(m.candidate(1), b"a0b?");
        assert_eq!(m.candidate(26), b"a1a?");
        assert_eq!(m.candidate(259), b"a9z?");
        assert_eq!(Mask::parse("?a", &no_custom()).unwrap().keyspace(), 95);
        assert_eq!(Mask::parse("?s", &no_custom()).unwrap().keyspace(), 33);
        let m = Mask::parse("?1?2", &[Some("?dab"), Some("xy"), None, None]).unwrap();
        assert_eq!(m.keyspace(), 24);
        assert_eq!(m.candidate(23), b"by");
    }

    #[test]
    fn bad_masks_name_the_problem() {
        let e = |m: &str| Mask::parse(m, &no_custom()).unwrap_err();
        assert_eq!(
            e("ab?x"),
            PreimageError::UnknownCharset {
                position: 2,
                ch: 'x'
            }
        );
        assert_eq!(e("ab?"), PreimageError::TrailingQuestionMark);
        assert_eq!(e("?3"), PreimageError::UndefinedCustom(3));
        assert_eq!(e(""), PreimageError::EmptyMask);
        assert_eq!(e(&"?d".repeat(56)), PreimageError::TooLong(56));
        assert_eq!(e(&"?b".repeat(9)), PreimageError::KeyspaceOverflow);
        // A custom charset's faults name it: the one defined, not the one it uses.
        assert_eq!(
            Mask::parse("?1", &[Some("?2"), None, None, None]).unwrap_err(),
            PreimageError::NestedCustom(1)
        );
        assert_eq!(
            Mask::parse("?1", &[Some("ab?"), None, None, None])
                .unwrap_err()
                .to_string(),
            "custom charset 1: it ends with a lone '?' (write ?? for a literal question mark)"
        );
        assert_eq!(
            Mask::from_positions(vec![b"aa".to_vec()]).unwrap_err(),
            PreimageError::DuplicateInPosition(0)
        );
    }

    #[test]
    fn kernel_finds_exactly_the_planted_preimages() {
        let mask = Mask::parse("?u?d?l?s", &no_custom()).unwrap();
        for hash in [PreimageHash::Sha256, PreimageHash::Sha256d] {
            let probe = PreimageJob::new(mask.clone(), hash, &[[0; 32]], None).unwrap();
            let planted = [7u64, 26 * 10 * 26 * 33 - 1, 123_456];
            let targets: Vec<[u8; 32]> = planted
                .iter()
                .map(|i| probe.digest(&mask.candidate(*i)))
                .chain([[0xab; 32]])
                .collect();
            let job = PreimageJob::new(mask.clone(), hash, &targets, None).unwrap();
            let kernel = job.kernel();
            let mut hits = Vec::new();
            // Several ranges, so that the odometer starts mid-way.
            for r in [0..1000, 1000..123_457, 123_457..job.keyspace()] {
                kernel.scan(r, &mut hits);
            }
            let mut want = planted.to_vec();
            want.sort_unstable();
            assert_eq!(hits, want, "{hash:?}");
            let s = kernel.verify(123_456).unwrap();
            assert_eq!(
                s.detail,
                SolutionDetail::Preimage {
                    candidate: mask.candidate(123_456)
                }
            );
            assert!(kernel.verify(123_455).is_none());
            assert_eq!(kernel.max_solutions(), Some(4));
        }
    }

    /// Every candidate of every range, odd lengths and starts included, against the
    /// `sha2` crate's digests, for both hashes, with shares and with every available
    /// implementation: full batches, short last batches and their repeated tail
    /// candidate.
    #[test]
    fn every_range_agrees_with_the_sha2_digests_of_its_candidates() {
        // Tails (see `Tail`) of one word and a head; across two words; the whole
        // mask; and radix 8, less than a batch, so every batch steps the head.
        for (mask, tail_radix) in [
            ("?d?l?d", 260),
            ("?d?d?d?l?d", 260),
            ("x?d?d?d", 1000),
            ("?d?b?1?1?1", 8),
        ] {
            let mask = Mask::parse(mask, &[Some("ab"), None, None, None]).unwrap();
            assert_eq!(Tail::new(mask.positions()).radix, tail_radix);
            agrees_with_the_sha2_digests(&mask);
        }
    }

    fn agrees_with_the_sha2_digests(mask: &Mask) {
        for hash in [PreimageHash::Sha256, PreimageHash::Sha256d] {
            let probe = PreimageJob::new(mask.clone(), hash, &[[0; 32]], None).unwrap();
            let targets: Vec<[u8; 32]> = (0..mask.keyspace().min(2600))
                .step_by(37)
                .map(|i| probe.digest(&mask.candidate(i)))
                .collect();
            let end = mask.keyspace().min(2600);
            let job = PreimageJob::new(mask.clone(), hash, &targets, Some(3..end)).unwrap();
            let keyspace = job.keyspace();
            let mask = mask.positions().len();
            for imp in Sha256dImpl::available() {
                let kernel = job.kernel_with(imp);
                let shares = kernel.with_shares(6).unwrap();
                for range in [
                    0..1,
                    0..2,
                    1..4,
                    5..6,
                    0..16,
                    0..17,
                    15..33,
                    7..300,
                    300..301,
                    301..2597,
                    0..2597,
                ]
                .map(|r| r.start.min(keyspace)..r.end.min(keyspace))
                {
                    let want: Vec<u64> = range
                        .clone()
                        .filter(|&i| targets.contains(&job.digest(&job.candidate(i))))
                        .collect();
                    let mut hits = Vec::new();
                    kernel.scan(range.clone(), &mut hits);
                    assert_eq!(hits, want, "{mask} {hash:?} {range:?} {}", imp.name());
                    let want: Vec<u64> = range
                        .clone()
                        .filter(|&i| {
                            let digest = job.digest(&job.candidate(i));
                            targets.contains(&digest) || to_words(&digest)[0].leading_zeros() >= 6
                        })
                        .collect();
                    let mut hits = Vec::new();
                    shares.scan(range.clone(), &mut hits);
                    assert_eq!(
                        hits,
                        want,
                        "{mask} shares, {hash:?} {range:?} {}",
                        imp.name()
                    );
                }
            }
        }
    }

    #[test]
    fn a_sub_range_of_the_mask_indexes_from_its_start() {
        let mask = Mask::parse("?d?d?d", &no_custom()).unwrap();
        let probe = PreimageJob::new(mask.clone(), PreimageHash::Sha256, &[[0; 32]], None).unwrap();
        let target = probe.digest(b"512");
        let job = PreimageJob::new(mask, PreimageHash::Sha256, &[target], Some(500..600)).unwrap();
        let mut hits = Vec::new();
        job.kernel().scan(0..100, &mut hits);
        assert_eq!(hits, vec![12]);
        assert_eq!(job.candidate(12), b"512");
    }
}

crate::debug_as_display!(PreimageError);
