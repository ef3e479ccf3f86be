//! SHA-256d (Bitcoin proof of work): block headers, targets, the keyspace of a nonce
//! search with optional BIP 320 version rolling, and the midstate scan kernel.
//!
//! Owns the meaning of an index: index `i` of a job's keyspace is version slot
//! `i / nonce_count` and nonce `nonce_start + i % nonce_count`. Version slot `k` rolls
//! the header's version by XOR with the `k`-th pattern of the mask bits, so slot 0 is
//! the header's own version. Does not own scheduling or threads: a scan is a plain
//! loop over one range; the worker runs many of them in parallel.
//!
//! Implementations of the scan ([`Sha256dImpl`]) are chosen once per process, each a
//! whole scan loop, never a per-call dispatch. `portable` (in `portable.rs`) is the
//! plain-Rust reference; `sha2` wraps the `sha2` crate's compression function, which
//! uses SHA-NI or the ARMv8 SHA2 instructions when the CPU has them. The same
//! choice runs the preimage and hashcash kernels' compressions ([`batch`]).
//!
//! # Layout
//! - this file: headers, targets, the job's keyspace, [`Sha256dImpl`] and the kernel.
//! - `portable`: the plain-Rust scan, the reference every other one matches.
//! - `shani`, `armsha2`: the SHA-NI and ARMv8 SHA2 scans (interleaved streams).
//! - `lanes`: one nonce per 32-bit lane (AVX2, NEON, NEON on 32-bit ARM, plain
//!   arrays); `avx512`: sixteen lanes.
//! - `blocks`: the lane-by-lane layout of a batch, shared by the implementations.
//! - `batch`: many compressions at once with the chosen implementation.

#[cfg(target_arch = "aarch64")]
mod armsha2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub(crate) mod batch;
mod blocks;
mod lanes;
pub(crate) mod portable;
#[cfg(target_arch = "x86_64")]
pub(crate) mod shani;

use crate::hex::{self, HexError};
use crate::kernel::{SearchKernel, Solution, SolutionDetail};
use sha2::block_api::compress256;
use sha2::{Digest, Sha256};
use std::ops::Range;
use std::sync::atomic::{AtomicU8, Ordering};

/// Length of a serialized Bitcoin block header.
pub const HEADER_LEN: usize = 80;
/// The version bits BIP 320 leaves free for rolling.
pub const BIP320_MASK: u32 = 0x1fff_e000;
/// One past the largest nonce.
pub const NONCE_SPACE: u64 = 1 << 32;

/// Why a SHA-256d job description was rejected. None of these are helped by retrying:
/// the input itself must change.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Sha256dError {
    /// The header was not valid hex.
    #[error("header: {0}")]
    HeaderHex(HexError),
    /// The header had the wrong length.
    #[error("header is {0} bytes, expected 80")]
    HeaderLength(usize),
    /// The target was not valid hex.
    #[error("target: {0}")]
    TargetHex(HexError),
    /// The target had the wrong length.
    #[error("target is {0} bytes, expected 32 (64 hex digits, most significant first)")]
    TargetLength(usize),
    /// A target of zero can never be met.
    #[error("target is zero: no hash can meet it")]
    ZeroTarget,
    /// The header's nBits field does not encode a usable target.
    #[error("header's nBits 0x{0:08x} does not encode a valid target")]
    BadCompactTarget(u32),
    /// The nonce range is empty, reversed or beyond 2^32.
    #[error(
        "nonce range {start}..{end} is invalid: it must be non-empty and within 0..4294967296"
    )]
    BadNonceRange {
        /// First nonce.
        start: u64,
        /// One past the last nonce.
        end: u64,
    },
    /// The version mask has bits outside BIP 320's.
    #[error("version mask 0x{0:08x} has bits outside BIP 320's 0x1fffe000")]
    BadVersionMask(u32),
}

/// An 80-byte block header as serialized (little-endian fields).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader(pub [u8; HEADER_LEN]);

impl std::fmt::Debug for BlockHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlockHeader({})", hex::encode(&self.0))
    }
}

impl BlockHeader {
    /// Parses the header from raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Sha256dError> {
        let array: [u8; HEADER_LEN] = bytes
            .try_into()
            .map_err(|_| Sha256dError::HeaderLength(bytes.len()))?;
        Ok(BlockHeader(array))
    }

    /// Parses the header from hex, as serialized on the wire.
    pub fn from_hex(s: &str) -> Result<Self, Sha256dError> {
        Self::from_bytes(&hex::decode(s.trim()).map_err(Sha256dError::HeaderHex)?)
    }

    /// The version field.
    pub fn version(&self) -> u32 {
        u32::from_le_bytes([self.0[0], self.0[1], self.0[2], self.0[3]])
    }

    /// The compact target (nBits) field.
    pub fn bits(&self) -> u32 {
        u32::from_le_bytes([self.0[72], self.0[73], self.0[74], self.0[75]])
    }

    /// The nonce field.
    pub fn nonce(&self) -> u32 {
        u32::from_le_bytes([self.0[76], self.0[77], self.0[78], self.0[79]])
    }

    /// The same header with another version and nonce.
    pub fn with(&self, version: u32, nonce: u32) -> BlockHeader {
        let mut h = self.0;
        h[0..4].copy_from_slice(&version.to_le_bytes());
        h[76..80].copy_from_slice(&nonce.to_le_bytes());
        BlockHeader(h)
    }

    /// SHA-256d of the header in internal byte order (what is compared to the target
    /// as a little-endian number).
    pub fn hash(&self) -> [u8; 32] {
        sha256d(&self.0)
    }
}

/// Bitcoin blocks 0, 1 and 2: (nonce, header hex), for self-tests on any machine.
pub const KNOWN_BLOCKS: [(u32, &str); 3] = [
    (2_083_236_893, "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c"),
    (2_573_394_689, "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e36299"),
    (1_639_830_024, "010000004860eb18bf1b1620e37e9490fc8a427514416fd75159ab86688e9a8300000000d5fdcc541e25de1c7a5addedf24858b8bb665c9f36ef744ee42c316022c90f9bb0bc6649ffff001d08d2bd61"),
];

/// SHA-256(data) through the `sha2` crate: what a preimage job's SHA-256 targets are
/// made with.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// SHA-256(SHA-256(data)) through the `sha2` crate's streaming API: the reference the
/// kernels are checked against, and what a preimage job's SHA-256d targets are made
/// with.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(data)).into()
}

/// Checks in full, against the reference, a nonce whose top word could meet the target
/// (rare: the SIMD and SHA-instruction scans reject the rest themselves), and records
/// its keyspace index if it is a solution.
fn confirm(header: &[u8; 80], target: &Target, nonce: u64, index: u64, hits: &mut Vec<u64>) {
    let mut h = *header;
    h[76..80].copy_from_slice(&(nonce as u32).to_le_bytes());
    if target.is_met_by(&sha256d(&h)) {
        hits.push(index);
    }
}

/// A hash in display order: the usual reversed hex of block explorers.
pub fn display_order(hash: &[u8; 32]) -> [u8; 32] {
    let mut out = *hash;
    out.reverse();
    out
}

/// A 256-bit target, stored most significant byte first (display order). A hash meets
/// it when the hash, read as a little-endian number, is at most the target.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target(pub [u8; 32]);

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({})", hex::encode(&self.0))
    }
}

impl Target {
    /// Parses 64 hex digits, most significant first.
    pub fn from_hex(s: &str) -> Result<Self, Sha256dError> {
        let bytes = hex::decode(s.trim()).map_err(Sha256dError::TargetHex)?;
        Self::from_be_bytes(&bytes)
    }

    /// From 32 bytes, most significant first. Rejects zero.
    pub fn from_be_bytes(bytes: &[u8]) -> Result<Self, Sha256dError> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Sha256dError::TargetLength(bytes.len()))?;
        if array == [0; 32] {
            return Err(Sha256dError::ZeroTarget);
        }
        Ok(Target(array))
    }

    /// Decodes Bitcoin's compact representation (the header's nBits).
    pub fn from_compact(bits: u32) -> Result<Self, Sha256dError> {
        let exponent = (bits >> 24) as i32;
        let mantissa = bits & 0x007f_ffff;
        if bits & 0x0080_0000 != 0 && mantissa != 0 {
            return Err(Sha256dError::BadCompactTarget(bits)); // negative
        }
        let mut le = [0u8; 32];
        for k in 0..3i32 {
            let byte = ((mantissa >> (8 * k)) & 0xff) as u8;
            let position = k + exponent - 3;
            if position >= 32 && byte != 0 {
                return Err(Sha256dError::BadCompactTarget(bits)); // overflow
            }
            if (0..32).contains(&position) {
                le[position as usize] = byte;
            }
        }
        le.reverse();
        Self::from_be_bytes(&le).map_err(|_| Sha256dError::BadCompactTarget(bits))
    }

    /// Whether `hash` (internal byte order) meets this target.
    pub fn is_met_by(&self, hash: &[u8; 32]) -> bool {
        display_order(hash) <= self.0
    }

    /// The target every hash with at least `bits` leading zero bits meets: a
    /// share's (2^(256 - bits) - 1).
    pub fn of_zero_bits(bits: u32) -> Target {
        let mut share = [0xffu8; 32];
        for (k, byte) in share.iter_mut().enumerate() {
            let bit = k as u32 * 8;
            if bit + 8 <= bits {
                *byte = 0;
            } else if bit < bits {
                *byte = 0xff >> (bits - bit);
            }
        }
        Target(share)
    }

    /// The easier (larger) of two targets.
    pub fn easier(self, other: Target) -> Target {
        Target(self.0.max(other.0))
    }

    /// The top 32 bits, for the kernel's early rejection.
    fn top_word(&self) -> u32 {
        u32::from_be_bytes([self.0[0], self.0[1], self.0[2], self.0[3]])
    }
}

/// A SHA-256d nonce search: what to hash, what counts as a solution, and where to look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sha256dJob {
    /// The header; its own nonce field is ignored.
    pub header: BlockHeader,
    /// The target a solution's hash must meet.
    pub target: Target,
    /// First nonce searched.
    pub nonce_start: u32,
    /// One past the last nonce searched (at most 2^32).
    pub nonce_end: u64,
    /// Version bits to roll (a subset of [`BIP320_MASK`]); zero for none.
    pub version_mask: u32,
}

impl Sha256dJob {
    /// Validates and builds a job. `target` defaults to the header's nBits.
    pub fn new(
        header: BlockHeader,
        target: Option<Target>,
        nonces: Range<u64>,
        version_mask: u32,
    ) -> Result<Self, Sha256dError> {
        let target = match target {
            Some(t) => t,
            None => Target::from_compact(header.bits())?,
        };
        if nonces.start >= nonces.end || nonces.end > NONCE_SPACE {
            return Err(Sha256dError::BadNonceRange {
                start: nonces.start,
                end: nonces.end,
            });
        }
        if version_mask & !BIP320_MASK != 0 {
            return Err(Sha256dError::BadVersionMask(version_mask));
        }
        Ok(Sha256dJob {
            header,
            target,
            nonce_start: nonces.start as u32,
            nonce_end: nonces.end,
            version_mask,
        })
    }

    /// Number of nonces per version.
    pub fn nonce_count(&self) -> u64 {
        self.nonce_end - u64::from(self.nonce_start)
    }

    /// Number of header versions searched (2^popcount(mask)).
    pub fn version_count(&self) -> u64 {
        1u64 << self.version_mask.count_ones()
    }

    /// Total number of candidate headers. At most 2^48, so it never overflows.
    pub fn keyspace(&self) -> u64 {
        self.nonce_count() * self.version_count()
    }

    /// The version of version slot `slot`.
    pub fn version_of_slot(&self, slot: u64) -> u32 {
        self.header.version() ^ deposit(slot as u32, self.version_mask)
    }

    /// The (version, nonce) of keyspace index `index`. `index` must be in the keyspace.
    pub fn locate(&self, index: u64) -> (u32, u32) {
        let n = self.nonce_count();
        let version = self.version_of_slot(index / n);
        let nonce = (u64::from(self.nonce_start) + index % n) as u32;
        (version, nonce)
    }

    /// The scan kernel for this job, with the process's selected implementation.
    pub fn kernel(&self) -> Sha256dKernel {
        self.kernel_with(Sha256dImpl::selected())
    }

    /// The scan kernel for this job with implementation `imp`.
    pub fn kernel_with(&self, imp: Sha256dImpl) -> Sha256dKernel {
        Sha256dKernel { job: *self, imp }
    }
}

/// Scatters the low bits of `value` into the set bits of `mask` (software PDEP).
pub(crate) fn deposit(mut value: u32, mask: u32) -> u32 {
    let mut out = 0;
    let mut m = mask;
    while m != 0 {
        let lowest = m & m.wrapping_neg();
        if value & 1 != 0 {
            out |= lowest;
        }
        value >>= 1;
        m &= m - 1;
    }
    out
}

/// The portable midstate kernel: the first 64 header bytes are compressed once per
/// version, each nonce costs one compression for the header's tail and one for the
/// second hash, and the top word of the result rejects almost every nonce before a
/// full 256-bit comparison.
#[derive(Clone, Copy, Debug)]
pub struct Sha256dKernel {
    job: Sha256dJob,
    imp: Sha256dImpl,
}

/// The implementations of the SHA-256d nonce scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sha256dImpl {
    /// x86-64 AVX-512F, 16 nonces per vector.
    Avx512,
    /// x86-64 SHA extensions, two hashes in flight (the second hash of one nonce beside
    /// the first of the next).
    ShaNi,
    /// x86-64 AVX2, 8 nonces per vector.
    Avx2,
    /// aarch64 ARMv8 SHA2 instructions (Raspberry Pi 5), four nonces interleaved.
    ArmSha2,
    /// aarch64 NEON, 4 nonces per vector (Raspberry Pi 3 and 4).
    Neon,
    /// 32-bit ARM NEON, 4 nonces per vector (32-bit Raspberry Pi OS).
    Neon32,
    /// picluster's midstate loop around the `sha2` crate's compression function (which
    /// uses SHA-NI or the ARMv8 SHA2 instructions when present).
    Sha2,
    /// Plain Rust with every scan trick and no CPU features: the reference.
    Portable,
}

/// A requested implementation this CPU cannot run, or does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no SHA-256d implementation `{0}` on this CPU (available: {1})")]
pub struct UnknownImpl(String, String);

impl UnknownImpl {
    fn for_name(name: &str) -> UnknownImpl {
        let names: Vec<&str> = Sha256dImpl::available().iter().map(|i| i.name()).collect();
        UnknownImpl(name.to_string(), names.join(", "))
    }
}

/// The process's choice: 0 until set, then `1 + index in ALL`.
static SELECTED: AtomicU8 = AtomicU8::new(0);

impl Sha256dImpl {
    /// Every implementation, fastest first.
    pub const ALL: [Sha256dImpl; 8] = [
        Sha256dImpl::Avx512,
        Sha256dImpl::ShaNi,
        Sha256dImpl::Avx2,
        Sha256dImpl::ArmSha2,
        Sha256dImpl::Neon,
        Sha256dImpl::Neon32,
        Sha256dImpl::Sha2,
        Sha256dImpl::Portable,
    ];

    /// The name used by `--impl`.
    pub fn name(self) -> &'static str {
        match self {
            Sha256dImpl::Avx512 => "avx512",
            Sha256dImpl::ShaNi => "shani",
            Sha256dImpl::Avx2 => "avx2",
            Sha256dImpl::ArmSha2 => "armsha2",
            Sha256dImpl::Neon => "neon",
            Sha256dImpl::Neon32 => "neon32",
            Sha256dImpl::Sha2 => "sha2",
            Sha256dImpl::Portable => "portable",
        }
    }

    /// The name with the CPU path it takes (what a worker reports).
    pub fn label(self) -> &'static str {
        match self {
            Sha256dImpl::Avx512 => "avx512-x16",
            Sha256dImpl::ShaNi => "shani-x2",
            Sha256dImpl::Avx2 => "avx2-x8",
            Sha256dImpl::ArmSha2 => "armsha2-x4",
            Sha256dImpl::Neon => "neon-x4",
            Sha256dImpl::Neon32 => "neon32-x4",
            Sha256dImpl::Sha2 => crate::kernel::sha2_backend(),
            Sha256dImpl::Portable => "portable",
        }
    }

    /// Whether this CPU can run it.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Sha256dImpl::ShaNi => shani::available(),
            #[cfg(target_arch = "x86_64")]
            Sha256dImpl::Avx512 => avx512::available(),
            #[cfg(target_arch = "x86_64")]
            Sha256dImpl::Avx2 => lanes::avx2::available(),
            #[cfg(not(target_arch = "x86_64"))]
            Sha256dImpl::ShaNi | Sha256dImpl::Avx512 | Sha256dImpl::Avx2 => false,
            #[cfg(target_arch = "aarch64")]
            Sha256dImpl::ArmSha2 => armsha2::available(),
            #[cfg(target_arch = "aarch64")]
            Sha256dImpl::Neon => true,
            #[cfg(not(target_arch = "aarch64"))]
            Sha256dImpl::ArmSha2 | Sha256dImpl::Neon => false,
            #[cfg(target_arch = "arm")]
            Sha256dImpl::Neon32 => lanes::neon32::available(),
            #[cfg(not(target_arch = "arm"))]
            Sha256dImpl::Neon32 => false,
            Sha256dImpl::Sha2 | Sha256dImpl::Portable => true,
        }
    }

    /// The implementations this CPU can run, fastest first.
    pub fn available() -> Vec<Sha256dImpl> {
        Self::ALL.into_iter().filter(|i| i.is_available()).collect()
    }

    /// The implementation called `name`, if this CPU can run it.
    pub fn from_name(name: &str) -> Result<Sha256dImpl, UnknownImpl> {
        Self::available()
            .into_iter()
            .find(|i| i.name() == name || i.label() == name)
            .ok_or_else(|| UnknownImpl::for_name(name))
    }

    /// The implementation kernels use in this process: the fastest available unless
    /// [`Sha256dImpl::select`] chose another.
    pub fn selected() -> Sha256dImpl {
        match SELECTED.load(Ordering::Relaxed) {
            0 => Self::available()[0],
            n => Self::ALL[usize::from(n - 1)],
        }
    }

    /// Makes `self` the implementation of every kernel created afterwards; refused if
    /// this CPU cannot run it.
    pub fn select(self) -> Result<(), UnknownImpl> {
        if !self.is_available() {
            return Err(UnknownImpl::for_name(self.name()));
        }
        let index = Self::ALL.iter().position(|i| *i == self).unwrap_or(0);
        SELECTED.store(index as u8 + 1, Ordering::Relaxed);
        Ok(())
    }
}

impl Sha256dKernel {
    /// The job this kernel scans.
    pub fn job(&self) -> &Sha256dJob {
        &self.job
    }

    /// Scans `nonces` (u64 so that the range can end at 2^32) of one version, pushing
    /// the keyspace index of each hit; `index_base` is the index of `nonces.start`.
    fn scan_version(&self, version: u32, nonces: Range<u64>, index_base: u64, hits: &mut Vec<u64>) {
        let header = self.job.header.with(version, 0).0;
        if self.imp != Sha256dImpl::Sha2 {
            // Every implementation but `sha2` shares the per-version precomputation.
            let prepared = portable::Prepared::new(&header);
            let scan = portable::Scan {
                prepared: &prepared,
                header: &header,
                target: &self.job.target,
                nonces,
                index_base,
            };
            match self.imp {
                #[cfg(target_arch = "x86_64")]
                Sha256dImpl::ShaNi => shani::scan(&scan, hits),
                #[cfg(target_arch = "x86_64")]
                Sha256dImpl::Avx512 => avx512::scan(&scan, hits),
                #[cfg(target_arch = "x86_64")]
                Sha256dImpl::Avx2 => lanes::avx2::scan(&scan, hits),
                #[cfg(target_arch = "aarch64")]
                Sha256dImpl::ArmSha2 => armsha2::scan(&scan, hits),
                #[cfg(target_arch = "aarch64")]
                Sha256dImpl::Neon => lanes::neon::scan(&scan, hits),
                #[cfg(target_arch = "arm")]
                Sha256dImpl::Neon32 => lanes::neon32::scan(&scan, hits),
                _ => portable::scan(&scan, hits),
            }
            return;
        }
        let mut midstate = portable::IV;
        let mut first = [0u8; 64];
        first.copy_from_slice(&header[..64]);
        compress256(&mut midstate, &[first]);

        // Second block of the first hash: header bytes 64..80 (nonce at 12..16), then
        // padding for an 80-byte message.
        let mut tail = [0u8; 64];
        tail[..16].copy_from_slice(&header[64..80]);
        tail[16] = 0x80;
        tail[62] = 0x02;
        tail[63] = 0x80;
        // The only block of the second hash: the 32-byte digest, then padding for a
        // 32-byte message.
        let mut second = [0u8; 64];
        second[32] = 0x80;
        second[62] = 0x01;

        let top = self.job.target.top_word();
        for nonce in nonces.clone() {
            tail[12..16].copy_from_slice(&(nonce as u32).to_le_bytes());
            let mut state = midstate;
            compress256(&mut state, &[tail]);
            for (chunk, word) in second[..32].chunks_exact_mut(4).zip(state) {
                chunk.copy_from_slice(&word.to_be_bytes());
            }
            let mut out = portable::IV;
            compress256(&mut out, &[second]);
            // The hash's most significant 32 bits (as a little-endian number) are the
            // last four digest bytes, i.e. word 7 byte-swapped.
            let high = out[7].swap_bytes();
            if high > top {
                continue;
            }
            let mut digest = [0u8; 32];
            for (chunk, word) in digest.chunks_exact_mut(4).zip(out) {
                chunk.copy_from_slice(&word.to_be_bytes());
            }
            if self.job.target.is_met_by(&digest) {
                hits.push(index_base + (nonce - nonces.start));
            }
        }
    }
}

impl SearchKernel for Sha256dKernel {
    fn keyspace(&self) -> u64 {
        self.job.keyspace()
    }

    fn implementation(&self) -> &'static str {
        self.imp.label()
    }

    fn scan(&self, range: Range<u64>, hits: &mut Vec<u64>) {
        let n = self.job.nonce_count();
        let start = u64::from(self.job.nonce_start);
        let end = range.end.min(self.keyspace());
        let mut index = range.start;
        while index < end {
            let slot = index / n;
            let segment_end = end.min((slot + 1) * n);
            let first_nonce = start + index % n;
            let nonces = first_nonce..first_nonce + (segment_end - index);
            self.scan_version(self.job.version_of_slot(slot), nonces, index, hits);
            index = segment_end;
        }
    }

    fn digest(&self, index: u64) -> Option<[u8; 32]> {
        if index >= self.keyspace() {
            return None;
        }
        let (version, nonce) = self.job.locate(index);
        Some(display_order(&self.job.header.with(version, nonce).hash()))
    }

    fn with_shares(&self, bits: u32) -> Option<std::sync::Arc<dyn SearchKernel>> {
        // The scan runs with the easier of the share target and the job's target.
        let mut job = self.job;
        job.target = job.target.easier(Target::of_zero_bits(bits));
        Some(std::sync::Arc::new(Sha256dKernel { job, imp: self.imp }))
    }

    fn verify(&self, index: u64) -> Option<Solution> {
        if index >= self.keyspace() {
            return None;
        }
        let (version, nonce) = self.job.locate(index);
        let hash = self.job.header.with(version, nonce).hash();
        self.job.target.is_met_by(&hash).then(|| Solution {
            index,
            hash: display_order(&hash),
            detail: SolutionDetail::Sha256d { nonce, version },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";

    #[test]
    fn genesis_header_hashes_to_known_block_hash() {
        let header = BlockHeader::from_hex(GENESIS).unwrap();
        assert_eq!(header.nonce(), 2_083_236_893);
        assert_eq!(
            hex::encode(&display_order(&header.hash())),
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
        );
    }

    #[test]
    fn compact_target_decodes_difficulty_one() {
        let t = Target::from_compact(0x1d00_ffff).unwrap();
        assert_eq!(
            hex::encode(&t.0),
            "00000000ffff0000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(
            Target::from_compact(0x0480_0001),
            Err(Sha256dError::BadCompactTarget(0x0480_0001))
        );
        assert_eq!(
            Target::from_compact(0x2301_0000),
            Err(Sha256dError::BadCompactTarget(0x2301_0000))
        );
        assert_eq!(
            Target::from_compact(0x0300_0000),
            Err(Sha256dError::BadCompactTarget(0x0300_0000))
        );
        // Small exponents shift the mantissa right.
        let small = Target::from_compact(0x0212_3456).unwrap();
        assert_eq!(small.0[31], 0x34);
        assert_eq!(small.0[30], 0x12);
    }

    #[test]
    fn kernel_finds_genesis_nonce_at_its_index() {
        let header = BlockHeader::from_hex(GENESIS).unwrap();
        let job = Sha256dJob::new(header, None, 2_083_236_000..2_083_237_000, 0).unwrap();
        let mut hits = Vec::new();
        job.kernel().scan(0..job.keyspace(), &mut hits);
        assert_eq!(hits, vec![893]);
        let solution = job.kernel().verify(893).unwrap();
        assert_eq!(solution.nonce(), Some(2_083_236_893));
        assert_eq!(solution.version(), Some(1));
        assert!(job.kernel().verify(892).is_none());
        assert!(job.kernel().verify(1000).is_none());
    }

    #[test]
    fn kernel_agrees_with_reference_under_easy_target_and_version_rolling() {
        let header = BlockHeader::from_hex(GENESIS).unwrap();
        // Top byte zero: about 1 in 256 hashes meets it.
        let mut t = [0xff; 32];
        t[0] = 0;
        let job = Sha256dJob::new(header, Some(Target(t)), 100..400, 0x0000_6000).unwrap();
        assert_eq!(job.keyspace(), 1200);
        let mut hits = Vec::new();
        job.kernel().scan(0..job.keyspace(), &mut hits);
        let expected: Vec<u64> = (0..job.keyspace())
            .filter(|&i| {
                let (v, n) = job.locate(i);
                job.target.is_met_by(&sha256d(&header.with(v, n).0))
            })
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(hits, expected);
        // Slot 0 is the header's own version; the four slots are distinct.
        let versions: Vec<u32> = (0..4).map(|s| job.version_of_slot(s)).collect();
        assert_eq!(versions, vec![1, 1 ^ 0x2000, 1 ^ 0x4000, 1 ^ 0x6000]);
    }

    #[test]
    fn every_available_implementation_matches_the_sha2_reference() {
        // Seeded headers and targets, so this runs the same under qemu on ARM.
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            seed >> 11
        };
        for round in 0..16 {
            let bytes: Vec<u8> = (0..80).map(|_| next() as u8).collect();
            let header = BlockHeader::from_bytes(&bytes).unwrap();
            let mut t = [0xff; 32];
            t[..4].copy_from_slice(&(u32::MAX >> (5 + round % 6)).to_be_bytes());
            let start = next() % ((1 << 32) - 600);
            let mask = if round % 2 == 0 { 0 } else { 0x6000 };
            // An odd length: the two-nonce kernels' last batch repeats its last nonce.
            let job = Sha256dJob::new(header, Some(Target(t)), start..start + 301, mask).unwrap();
            let expected: Vec<u64> = (0..job.keyspace())
                .filter(|&i| {
                    let (v, n) = job.locate(i);
                    job.target.is_met_by(&sha256d(&header.with(v, n).0))
                })
                .collect();
            for imp in Sha256dImpl::available() {
                let mut hits = Vec::new();
                job.kernel_with(imp).scan(0..job.keyspace(), &mut hits);
                assert_eq!(hits, expected, "{} in round {round}", imp.name());
                // In pieces of 1 to 7 nonces: every range's first and last nonce is
                // a boundary of the kernels' batches and pipelines.
                let mut pieces = Vec::new();
                let (mut at, mut len) = (0, 1);
                while at < job.keyspace() {
                    let end = (at + len).min(job.keyspace());
                    job.kernel_with(imp).scan(at..end, &mut pieces);
                    (at, len) = (end, len % 7 + 1);
                }
                assert_eq!(pieces, expected, "{} in pieces, round {round}", imp.name());
            }
            if mask == 0 {
                // The generic lane-wise scan on plain arrays, as on every SIMD path.
                let bytes = header.with(header.version(), 0).0;
                let prepared = portable::Prepared::new(&bytes);
                let mut hits = Vec::new();
                let scan = portable::Scan {
                    prepared: &prepared,
                    header: &bytes,
                    target: &job.target,
                    nonces: start..start + 301,
                    index_base: 0,
                };
                lanes::scan_arrays(&scan, &mut hits);
                assert_eq!(hits, expected, "generic lanes in round {round}");
            }
        }
        assert!(Sha256dImpl::available().contains(&Sha256dImpl::Portable));
    }

    #[test]
    fn job_validation_names_the_problem() {
        let header = BlockHeader::from_hex(GENESIS).unwrap();
        assert_eq!(
            Sha256dJob::new(header, None, 5..5, 0),
            Err(Sha256dError::BadNonceRange { start: 5, end: 5 })
        );
        assert!(Sha256dJob::new(header, None, 0..NONCE_SPACE + 1, 0).is_err());
        assert_eq!(
            Sha256dJob::new(header, None, 0..10, 0x1),
            Err(Sha256dError::BadVersionMask(1))
        );
        assert_eq!(
            BlockHeader::from_hex("00ff"),
            Err(Sha256dError::HeaderLength(2))
        );
        assert_eq!(
            Sha256dJob::new(header, None, 0..NONCE_SPACE, BIP320_MASK)
                .unwrap()
                .keyspace(),
            1 << 48
        );
    }
}

crate::debug_as_display!(Sha256dError);
