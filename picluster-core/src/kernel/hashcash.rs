//! Hashcash-style proof of work over arbitrary data: find counters `c` such that
//! SHA-256(data || c) has at least `bits` leading zero bits.
//!
//! Owns the meaning of an index: index `i` of a job's keyspace is counter
//! `counter_start + i`, appended to the data as 8 bytes, big-endian. The data's full
//! 64-byte blocks are compressed once per job (the midstate), and the tail, counter
//! and padding are kept as message words, of which a counter rewrites at most three.
//! Each counter costs the one or two compressions of those blocks, run sixteen
//! counters at a time with the selected SHA-256d implementation's instructions
//! ([`crate::kernel::sha256d::batch`]), and the first digest word rejects almost every
//! counter before a full count.

use crate::kernel::sha256d::batch::{Batch, BATCH};
use crate::kernel::sha256d::portable::IV;
use crate::kernel::sha256d::Sha256dImpl;
use crate::kernel::{SearchKernel, Solution, SolutionDetail};
use sha2::block_api::compress256;
use sha2::{Digest, Sha256};
use std::ops::Range;
use std::sync::Arc;

/// Largest data accepted: a job travels with every chunk of it.
pub const MAX_DATA_LEN: usize = 64 * 1024;
/// Length of the counter appended to the data.
pub const COUNTER_LEN: usize = 8;

/// Why a hashcash job was rejected; the input must change.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashcashError {
    /// Too much data.
    #[error("data is {0} bytes; at most {MAX_DATA_LEN} are accepted")]
    DataTooLong(usize),
    /// A difficulty outside 1..=256 bits.
    #[error("difficulty of {0} bits is outside 1..=256")]
    BadBits(u32),
    /// An empty or reversed counter range.
    #[error("counter range {start}..{end} is empty")]
    BadCounterRange {
        /// First counter.
        start: u64,
        /// One past the last counter.
        end: u64,
    },
}

/// A hashcash search: the data, the difficulty and the counters to try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashcashJob {
    data: Arc<[u8]>,
    bits: u32,
    counters: Range<u64>,
}

impl HashcashJob {
    /// Validates and builds a job.
    pub fn new(data: &[u8], bits: u32, counters: Range<u64>) -> Result<Self, HashcashError> {
        if data.len() > MAX_DATA_LEN {
            return Err(HashcashError::DataTooLong(data.len()));
        }
        if !(1..=256).contains(&bits) {
            return Err(HashcashError::BadBits(bits));
        }
        if counters.start >= counters.end {
            return Err(HashcashError::BadCounterRange {
                start: counters.start,
                end: counters.end,
            });
        }
        Ok(HashcashJob {
            data: data.into(),
            bits,
            counters,
        })
    }

    /// The data the counter is appended to.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Leading zero bits required.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The counters searched.
    pub fn counters(&self) -> Range<u64> {
        self.counters.clone()
    }

    /// Number of counters.
    pub fn keyspace(&self) -> u64 {
        self.counters.end - self.counters.start
    }

    /// The counter of keyspace index `index`.
    pub fn counter(&self, index: u64) -> u64 {
        self.counters.start + index
    }

    /// Compressions per candidate after the midstate (1 or 2).
    pub fn blocks_per_candidate(&self) -> u32 {
        let tail = self.data.len() % 64 + COUNTER_LEN;
        if tail + 9 <= 64 {
            1
        } else {
            2
        }
    }

    /// SHA-256(data || counter) through the `sha2` crate's streaming API: the
    /// reference the kernel is checked against.
    pub fn digest(&self, counter: u64) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(&self.data);
        h.update(counter.to_be_bytes());
        h.finalize().into()
    }

    /// The scan kernel, with the process's SHA-256 implementation
    /// ([`Sha256dImpl::selected`]).
    pub fn kernel(&self) -> HashcashKernel {
        self.kernel_with(Sha256dImpl::selected())
    }

    /// The scan kernel, compressing with `imp` (which must be available).
    pub fn kernel_with(&self, imp: Sha256dImpl) -> HashcashKernel {
        let full = self.data.len() / 64 * 64;
        let mut midstate = IV;
        for block in self.data[..full].chunks_exact(64) {
            compress256(&mut midstate, &[block.try_into().expect("64 bytes")]);
        }
        let tail_len = self.data.len() - full;
        let blocks = self.blocks_per_candidate() as usize;
        let mut template = [0u8; 128];
        template[..tail_len].copy_from_slice(&self.data[full..]);
        template[tail_len + COUNTER_LEN] = 0x80;
        let bit_len = (self.data.len() as u64 + COUNTER_LEN as u64) * 8;
        template[blocks * 64 - 8..blocks * 64].copy_from_slice(&bit_len.to_be_bytes());
        HashcashKernel {
            job: self.clone(),
            midstate,
            template,
            counter_at: tail_len,
            blocks,
            imp,
        }
    }
}

/// Number of leading zero bits of a digest given as big-endian words.
pub fn leading_zero_bits(words: &[u32; 8]) -> u32 {
    let mut n = 0;
    for w in words {
        n += w.leading_zeros();
        if *w != 0 {
            break;
        }
    }
    n
}

/// The hashcash scan kernel (see the module docs).
#[derive(Clone, Debug)]
pub struct HashcashKernel {
    job: HashcashJob,
    midstate: [u32; 8],
    template: [u8; 128],
    counter_at: usize,
    blocks: usize,
    /// Whose instructions compress.
    imp: Sha256dImpl,
}

impl SearchKernel for HashcashKernel {
    fn keyspace(&self) -> u64 {
        self.job.keyspace()
    }

    fn implementation(&self) -> &'static str {
        self.imp.label()
    }

    fn scan(&self, range: Range<u64>, hits: &mut Vec<u64>) {
        let end = range.end.min(self.keyspace());
        let bits = self.job.bits;
        let at = self.counter_at;
        // The words a counter's bytes fall in.
        let touched = at / 4..(at + COUNTER_LEN).div_ceil(4);
        let mut bytes = self.template;
        let word = |bytes: &[u8; 128], i: usize| {
            u32::from_be_bytes(bytes[4 * i..4 * i + 4].try_into().expect("4 bytes"))
        };
        // Every lane starts as the template; a counter rewrites only its own words.
        let mut first = Batch::new();
        let mut second = Batch::new();
        for t in 0..16 {
            first.blocks[t] = [word(&bytes, t); BATCH];
            second.blocks[t] = [word(&bytes, 16 + t); BATCH];
        }
        let mut index = range.start;
        while index < end {
            // A short last batch hashes its last counter again; not reported twice.
            let count = (end - index).min(BATCH as u64) as usize;
            for j in 0..BATCH {
                let counter = self.job.counter(index + j.min(count - 1) as u64);
                bytes[at..at + COUNTER_LEN].copy_from_slice(&counter.to_be_bytes());
                for i in touched.clone() {
                    if i < 16 {
                        first.blocks[i][j] = word(&bytes, i);
                    } else {
                        second.blocks[i - 16][j] = word(&bytes, i);
                    }
                }
            }
            first.compress_from(self.imp, &self.midstate);
            let last = if self.blocks == 2 {
                second.states = first.states;
                second.compress(self.imp);
                &second
            } else {
                &first
            };
            for j in 0..count {
                // Almost every candidate fails on the first word.
                if last.states[0][j].leading_zeros() >= bits.min(32)
                    && leading_zero_bits(&last.state(j)) >= bits
                {
                    hits.push(index + j as u64);
                }
            }
            index += count as u64;
        }
    }

    fn digest(&self, index: u64) -> Option<[u8; 32]> {
        (index < self.keyspace()).then(|| self.job.digest(self.job.counter(index)))
    }

    fn with_shares(&self, bits: u32) -> Option<std::sync::Arc<dyn SearchKernel>> {
        let mut kernel = self.clone();
        kernel.job.bits = kernel.job.bits.min(bits.max(1));
        Some(std::sync::Arc::new(kernel))
    }

    fn verify(&self, index: u64) -> Option<Solution> {
        if index >= self.keyspace() {
            return None;
        }
        let counter = self.job.counter(index);
        let hash = self.job.digest(counter);
        let mut words = [0u32; 8];
        for (w, c) in words.iter_mut().zip(hash.chunks_exact(4)) {
            *w = u32::from_be_bytes(c.try_into().expect("4 bytes"));
        }
        (leading_zero_bits(&words) >= self.job.bits).then_some(Solution {
            index,
            hash,
            detail: SolutionDetail::Hashcash { counter },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(job: &HashcashJob, range: Range<u64>) -> Vec<u64> {
        range
            .filter(|i| job.kernel().verify(*i).is_some())
            .collect()
    }

    #[test]
    fn kernel_matches_the_streaming_reference_for_every_tail_length() {
        // Tail lengths 0..=63 cover one- and two-block candidates and a counter that
        // straddles the block boundary.
        for len in [
            0usize, 1, 47, 48, 55, 56, 57, 63, 64, 100, 119, 120, 121, 200,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let job = HashcashJob::new(&data, 6, 1_000..3_000).unwrap();
            let want = reference(&job, 0..job.keyspace());
            assert!(
                !want.is_empty(),
                "6 bits in 2000 tries: expected hits at len {len}"
            );
            for imp in Sha256dImpl::available() {
                let kernel = job.kernel_with(imp);
                let mut hits = Vec::new();
                kernel.scan(0..job.keyspace(), &mut hits);
                assert_eq!(hits, want, "len {len}, {}", imp.name());
                // Ranges that end mid-batch, one counter long, and past the end.
                let mut hits = Vec::new();
                for r in [0..7, 7..8, 8..25, 25..1_999, 1_999..5_000] {
                    kernel.scan(r, &mut hits);
                }
                assert_eq!(hits, want, "len {len}, {}, in pieces", imp.name());
            }
        }
    }

    #[test]
    fn leading_zero_bits_counts_across_words() {
        assert_eq!(leading_zero_bits(&[0, 0, 1, 0, 0, 0, 0, 0]), 95);
        assert_eq!(leading_zero_bits(&[0; 8]), 256);
        assert_eq!(leading_zero_bits(&[0x8000_0000, 0, 0, 0, 0, 0, 0, 0]), 0);
    }

    #[test]
    fn known_counter() {
        // SHA-256("picluster" || 8-byte big-endian counter): the first counter with
        // 16 leading zero bits, found by a plain loop over the sha2 crate.
        let job = HashcashJob::new(b"picluster", 16, 0..1 << 20).unwrap();
        let first = (0..job.keyspace())
            .find(|c| {
                let h = job.digest(*c);
                h[0] == 0 && h[1] == 0
            })
            .unwrap();
        let mut hits = Vec::new();
        job.kernel().scan(0..first + 1, &mut hits);
        assert_eq!(hits, vec![first]);
        let s = job.kernel().verify(first).unwrap();
        assert_eq!(s.detail, SolutionDetail::Hashcash { counter: first });
        assert_eq!(&s.hash[..2], &[0, 0]);
    }

    #[test]
    fn bad_jobs_are_rejected() {
        assert_eq!(
            HashcashJob::new(b"x", 0, 0..1),
            Err(HashcashError::BadBits(0))
        );
        assert_eq!(
            HashcashJob::new(b"x", 257, 0..1),
            Err(HashcashError::BadBits(257))
        );
        assert_eq!(
            HashcashJob::new(b"x", 8, 5..5),
            Err(HashcashError::BadCounterRange { start: 5, end: 5 })
        );
        assert_eq!(
            HashcashJob::new(&vec![0; MAX_DATA_LEN + 1], 8, 0..1),
            Err(HashcashError::DataTooLong(MAX_DATA_LEN + 1))
        );
    }
}

crate::debug_as_display!(HashcashError);
