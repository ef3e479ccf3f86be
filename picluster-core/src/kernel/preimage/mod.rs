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

use crate::kernel::sha256d::batch::{Batch, BATCH};
use crate::kernel::sha256d::portable::IV;
use crate::kernel::sha256d::Sha256dImpl;
use crate::kernel::{SearchKernel, Solution, SolutionDetail};
use sha2::{Digest, Sha256};
use std::ops::Range;
use std::sync::Arc;

/// Longest candidate: one SHA-256 block holds at most 55 message bytes.
pub const MAX_CANDIDATE_LEN: usize = 55;
/// Most target digests per job (a job travels with every chunk of it).
pub const MAX_TARGETS: usize = 4096;

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";
const SYMBOLS: &[u8] = b" !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// Why a mask or a preimage job was rejected; the input must change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PreimageError {
    /// `?` followed by a character that names no charset.
    #[error(
        "mask position {position}: unknown charset ?{ch} (known: ?l ?u ?d ?h ?H ?s ?a ?b ?1-?4 ??)"
    )]
    UnknownCharset {
        /// Byte offset in the mask.
        position: usize,
        /// The character after `?`.
        ch: char,
    },
    /// A mask ending in a lone `?`.
    #[error("mask ends with a lone '?' (write ?? for a literal question mark)")]
    TrailingQuestionMark,
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

/// A parsed mask: the charset of each candidate position, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mask {
    positions: Vec<Vec<u8>>,
}

impl Mask {
    /// Parses a mask with up to four custom charsets (`?1`..`?4`).
    pub fn parse(mask: &str, custom: &[Option<&str>; 4]) -> Result<Mask, PreimageError> {
        let mut sets: [Option<Vec<u8>>; 4] = Default::default();
        for (i, def) in custom.iter().enumerate() {
            let n = i as u8 + 1;
            if let Some(def) = def {
                let mut set = Vec::new();
                for pos in parse_positions(def, None)? {
                    for b in pos {
                        if !set.contains(&b) {
                            set.push(b);
                        }
                    }
                }
                if set.is_empty() {
                    return Err(PreimageError::EmptyCustom(n));
                }
                sets[i] = Some(set);
            }
        }
        let positions = parse_positions(mask, Some(&sets))?;
        Mask::from_positions(positions)
    }

    /// A mask from explicit per-position charsets (as carried on the wire).
    pub fn from_positions(positions: Vec<Vec<u8>>) -> Result<Mask, PreimageError> {
        if positions.is_empty() {
            return Err(PreimageError::EmptyMask);
        }
        if positions.len() > MAX_CANDIDATE_LEN {
            return Err(PreimageError::TooLong(positions.len()));
        }
        let mut keyspace: u64 = 1;
        for (i, set) in positions.iter().enumerate() {
            if set.is_empty() {
                return Err(PreimageError::EmptyPosition(i));
            }
            let mut seen = [false; 256];
            for b in set {
                if std::mem::replace(&mut seen[*b as usize], true) {
                    return Err(PreimageError::DuplicateInPosition(i));
                }
            }
            keyspace = keyspace
                .checked_mul(set.len() as u64)
                .ok_or(PreimageError::KeyspaceOverflow)?;
        }
        Ok(Mask { positions })
    }

    /// The charset of each position.
    pub fn positions(&self) -> &[Vec<u8>] {
        &self.positions
    }

    /// Candidate length in bytes.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether the mask has no positions (never true for a parsed mask).
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Number of candidates.
    pub fn keyspace(&self) -> u64 {
        self.positions.iter().map(|s| s.len() as u64).product()
    }

    /// Candidate `index` (which must be below the keyspace).
    pub fn candidate(&self, index: u64) -> Vec<u8> {
        let mut out = vec![0u8; self.positions.len()];
        let mut rest = index;
        for (slot, set) in out.iter_mut().zip(&self.positions).rev() {
            let radix = set.len() as u64;
            *slot = set[(rest % radix) as usize];
            rest /= radix;
        }
        out
    }
}

fn parse_positions(
    mask: &str,
    custom: Option<&[Option<Vec<u8>>; 4]>,
) -> Result<Vec<Vec<u8>>, PreimageError> {
    let bytes = mask.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'?' {
            out.push(vec![bytes[i]]);
            i += 1;
            continue;
        }
        let Some(&c) = bytes.get(i + 1) else {
            return Err(PreimageError::TrailingQuestionMark);
        };
        let set: Vec<u8> = match c {
            b'l' => LOWER.to_vec(),
            b'u' => UPPER.to_vec(),
            b'd' => DIGITS.to_vec(),
            b'h' => b"0123456789abcdef".to_vec(),
            b'H' => b"0123456789ABCDEF".to_vec(),
            b's' => SYMBOLS.to_vec(),
            b'a' => [LOWER, UPPER, DIGITS, SYMBOLS].concat(),
            b'b' => (0..=255u8).collect(),
            b'?' => vec![b'?'],
            b'1'..=b'4' => {
                let n = c - b'0';
                match custom {
                    None => return Err(PreimageError::NestedCustom(n)),
                    Some(sets) => sets[usize::from(n - 1)]
                        .clone()
                        .ok_or(PreimageError::UndefinedCustom(n))?,
                }
            }
            _ => {
                return Err(PreimageError::UnknownCharset {
                    position: i,
                    ch: mask[i + 1..].chars().next().unwrap_or('?'),
                })
            }
        };
        out.push(set);
        i += 2;
    }
    Ok(out)
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

/// Most combinations of the tail's positions (see [`Tail`]): its table stays small
/// enough for the first-level cache.
const MAX_TAIL_RADIX: usize = 1024;

/// The fastest-varying positions of a mask (its last ones), taken together as one
/// digit of radix up to [`MAX_TAIL_RADIX`], and for each value of that digit the
/// bits it sets in the message words it touches. Sixteen consecutive candidates that
/// share everything before the tail differ only in those words, which are then one
/// OR of the rest's bits with a slice of the table per word.
#[derive(Debug)]
struct Tail {
    /// The first tail position.
    start: usize,
    /// Values of the tail digit.
    radix: usize,
    /// The first message word the tail touches.
    first_word: usize,
    /// Per touched word, the bits of the tail positions.
    masks: Vec<u32>,
    /// Per touched word `k`, `table[k * radix + r]`: the bits of tail value `r`.
    table: Vec<u32>,
}

impl Tail {
    fn new(positions: &[Vec<u8>]) -> Tail {
        let len = positions.len();
        let mut start = len;
        let mut radix = 1;
        while start > 0 && radix * positions[start - 1].len() <= MAX_TAIL_RADIX {
            start -= 1;
            radix *= positions[start].len();
        }
        // A position has at most 256 characters, so the tail has at least one.
        let first_word = start / 4;
        let words = (len - 1) / 4 + 1 - first_word;
        let shift = |p: usize| 24 - 8 * (p % 4);
        let mut masks = vec![0u32; words];
        for p in start..len {
            masks[p / 4 - first_word] |= 0xff << shift(p);
        }
        let mut table = vec![0u32; words * radix];
        for r in 0..radix {
            let mut rest = r;
            for p in (start..len).rev() {
                let set = &positions[p];
                let byte = set[rest % set.len()];
                rest /= set.len();
                table[(p / 4 - first_word) * radix + r] |= u32::from(byte) << shift(p);
            }
        }
        Tail {
            start,
            radix,
            first_word,
            masks,
            table,
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

/// A candidate as a SHA-256 block: each position's digit, set from an index, then
/// stepped like an odometer (the last position fastest).
struct Odometer<'a> {
    positions: &'a [Vec<u8>],
    digits: Vec<usize>,
    /// The candidate, 0x80, zeros, the bit length, as message words.
    words: [u32; 16],
}

impl<'a> Odometer<'a> {
    fn new(positions: &'a [Vec<u8>], first: u64) -> Odometer<'a> {
        let len = positions.len();
        let mut odometer = Odometer {
            positions,
            digits: vec![0; len],
            words: [0; 16],
        };
        odometer.set(len, 0x80);
        odometer.words[14] = ((len as u64 * 8) >> 32) as u32;
        odometer.words[15] = (len as u64 * 8) as u32;
        let mut rest = first;
        for (k, set) in positions.iter().enumerate().rev() {
            odometer.digits[k] = (rest % set.len() as u64) as usize;
            rest /= set.len() as u64;
            odometer.set(k, set[odometer.digits[k]]);
        }
        odometer
    }

    /// Byte `k` of the block.
    fn set(&mut self, k: usize, byte: u8) {
        let shift = 24 - 8 * (k % 4);
        let word = &mut self.words[k / 4];
        *word = (*word & !(0xff << shift)) | u32::from(byte) << shift;
    }

    /// Steps positions `..len` as one odometer (position `len - 1` fastest, carrying
    /// leftwards); the rest stay as they are.
    fn step_prefix(&mut self, len: usize) {
        for k in (0..len).rev() {
            let set = &self.positions[k];
            self.digits[k] += 1;
            if self.digits[k] < set.len() {
                self.set(k, set[self.digits[k]]);
                return;
            }
            self.digits[k] = 0;
            self.set(k, set[0]);
        }
    }
}

/// The candidates of a scan as (head, tail value): `head` holds the words with every
/// position before the tail (the tail's bits cleared), `r` the tail value; a
/// candidate's words are the head's ORed with the tail's table entry.
struct Candidates<'a> {
    head: Odometer<'a>,
    tail: &'a Tail,
    r: usize,
    /// Whether a batch's words before the tail may differ from `head`'s.
    head_changed: bool,
}

impl<'a> Candidates<'a> {
    /// Candidates from mask index `first` on.
    fn new(positions: &'a [Vec<u8>], tail: &'a Tail, first: u64) -> Candidates<'a> {
        let mut head = Odometer::new(positions, first);
        for (k, mask) in tail.masks.iter().enumerate() {
            head.words[tail.first_word + k] &= !mask;
        }
        Candidates {
            head,
            tail,
            r: (first % tail.radix as u64) as usize,
            head_changed: true,
        }
    }

    /// Word `t` of the current candidate.
    fn word(&self, t: usize) -> u32 {
        match t.checked_sub(self.tail.first_word) {
            Some(k) if k < self.tail.masks.len() => {
                self.head.words[t] | self.tail.table[k * self.tail.radix + self.r]
            }
            _ => self.head.words[t],
        }
    }

    /// The next candidate.
    fn step(&mut self) {
        self.r += 1;
        if self.r == self.tail.radix {
            self.r = 0;
            self.head.step_prefix(self.tail.start);
            self.head_changed = true;
        }
    }

    /// Writes the next `count` candidates (at most [`BATCH`]) into `batch`'s lanes;
    /// lanes past `count` repeat the last one. `batch` must be the one of the previous
    /// fill: its words that cannot have changed since are not written again.
    fn fill(&mut self, batch: &mut Batch, count: usize) {
        let tail = self.tail;
        let tail_words = tail.first_word..tail.first_word + tail.masks.len();
        if self.r + BATCH <= tail.radix {
            // The whole batch shares the head: the tail words are the head's bits
            // ORed with sixteen consecutive table entries.
            if self.head_changed {
                for t in (0..tail_words.start).chain(tail_words.end..16) {
                    batch.blocks[t] = [self.head.words[t]; BATCH];
                }
                self.head_changed = false;
            }
            for (k, t) in tail_words.enumerate() {
                let entries = &tail.table[k * tail.radix + self.r..][..BATCH];
                for (lane, entry) in batch.blocks[t].iter_mut().zip(entries) {
                    *lane = self.head.words[t] | entry;
                }
            }
            self.r += BATCH - 1;
            self.step();
        } else {
            // The head steps within the batch: lane by lane, every word.
            for j in 0..BATCH {
                for t in 0..16 {
                    batch.blocks[t][j] = self.word(t);
                }
                if j + 1 < count {
                    self.step();
                }
            }
            self.step();
            self.head_changed = true;
        }
    }
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
        assert_eq!(
            Mask::parse("?1", &[Some("?2"), None, None, None]).unwrap_err(),
            PreimageError::NestedCustom(2)
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
