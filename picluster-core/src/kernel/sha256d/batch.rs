//! Many independent SHA-256 compressions at once, with each implementation's
//! instructions: what the preimage and hashcash kernels are built on. A kernel fills a
//! [`Batch`] of [`BATCH`] blocks (candidates, or counters appended to data) with their
//! starting states, and [`Batch::compress`] runs them the way the chosen
//! [`Sha256dImpl`] runs its nonces: two interleaved streams with SHA-NI or the ARMv8
//! SHA2 instructions, one block per 32-bit lane with AVX-512, AVX2 and NEON. The
//! batch is one call into a function compiled for the instructions, so nothing
//! dispatches per hash.

use super::portable::{self, IV};
use super::Sha256dImpl;

/// Blocks per batch: a multiple of every implementation's width (2, 4, 8).
pub(crate) const BATCH: usize = 16;

/// [`BATCH`] blocks and the states they are compressed into.
#[derive(Clone, Debug)]
pub(crate) struct Batch {
    /// The states: set them before [`Batch::compress`], read the results after.
    pub(crate) states: [[u32; 8]; BATCH],
    /// The message blocks as words (big-endian reads of the bytes).
    pub(crate) blocks: [[u32; 16]; BATCH],
}

impl Batch {
    /// A batch whose states are `state` and blocks zero.
    pub(crate) fn new(state: [u32; 8]) -> Batch {
        Batch {
            states: [state; BATCH],
            blocks: [[0; 16]; BATCH],
        }
    }

    /// Compresses every block into its state with `imp` (see [`route`]).
    pub(crate) fn compress(&mut self, imp: Sha256dImpl) {
        self.run(imp, None);
    }

    /// Compresses every block from `state` with `imp`, into the states: the common
    /// starting state is laid out once for the whole batch.
    pub(crate) fn compress_from(&mut self, imp: Sha256dImpl, state: &[u32; 8]) {
        self.run(imp, Some(state));
    }

    fn run(&mut self, imp: Sha256dImpl, from: Option<&[u32; 8]>) {
        let (states, blocks) = (&mut self.states[..], &self.blocks[..]);
        match route(imp) {
            #[cfg(target_arch = "x86_64")]
            Sha256dImpl::Avx512 => super::avx512::compress(from, states, blocks),
            #[cfg(target_arch = "x86_64")]
            Sha256dImpl::ShaNi => super::shani::compress(from, states, blocks),
            #[cfg(target_arch = "x86_64")]
            Sha256dImpl::Avx2 => super::lanes::avx2::compress(from, states, blocks),
            #[cfg(target_arch = "aarch64")]
            Sha256dImpl::ArmSha2 => super::armsha2::compress(from, states, blocks),
            #[cfg(target_arch = "aarch64")]
            Sha256dImpl::Neon => super::lanes::neon::compress(from, states, blocks),
            #[cfg(target_arch = "arm")]
            Sha256dImpl::Neon32 => super::lanes::neon32::compress(from, states, blocks),
            Sha256dImpl::Sha2 => {
                for (state, block) in states.iter_mut().zip(blocks) {
                    let mut bytes = [0u8; 64];
                    for (b, w) in bytes.chunks_exact_mut(4).zip(block) {
                        b.copy_from_slice(&w.to_be_bytes());
                    }
                    if let Some(from) = from {
                        *state = *from;
                    }
                    sha2::block_api::compress256(state, &[bytes]);
                }
            }
            _ => {
                for (state, block) in states.iter_mut().zip(blocks) {
                    *state = portable::compress_words(*from.unwrap_or(state), block);
                }
            }
        }
    }

    /// The second hash of SHA-256d: SHA-256 of each state's digest (one block, 32
    /// bytes and padding), into the states.
    pub(crate) fn rehash_digests(&mut self, imp: Sha256dImpl) {
        for (state, block) in self.states.iter().zip(&mut self.blocks) {
            block[..8].copy_from_slice(state);
            block[8] = 0x8000_0000;
            block[9..15].fill(0);
            block[15] = 256;
        }
        self.compress_from(imp, &IV);
    }
}

/// The implementation a batch runs for kernels set to `imp`: `imp` itself (kept as a
/// function so that a kernel reports the path it takes).
pub(crate) fn route(imp: Sha256dImpl) -> Sha256dImpl {
    imp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_batch(seed: u64) -> Batch {
        let mut x = seed;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u32
        };
        let mut batch = Batch::new(IV);
        for (state, block) in batch.states.iter_mut().zip(&mut batch.blocks) {
            *state = std::array::from_fn(|_| next());
            *block = std::array::from_fn(|_| next());
        }
        batch
    }

    /// Every available implementation, and the generic lanes on plain arrays, give
    /// the `sha2` crate's compression of every block from every state.
    #[test]
    fn every_implementation_compresses_like_the_sha2_crate() {
        for seed in 1..20 {
            let input = random_batch(seed);
            let mut want = input.states;
            for (state, block) in want.iter_mut().zip(&input.blocks) {
                let mut bytes = [0u8; 64];
                for (b, w) in bytes.chunks_exact_mut(4).zip(block) {
                    b.copy_from_slice(&w.to_be_bytes());
                }
                sha2::block_api::compress256(state, &[bytes]);
            }
            // And from one state for all.
            let from = input.states[5];
            let mut want_from = [from; BATCH];
            for (state, block) in want_from.iter_mut().zip(&input.blocks) {
                *state = portable::compress_words(*state, block);
            }
            for imp in Sha256dImpl::available() {
                let mut batch = input.clone();
                batch.compress(imp);
                assert_eq!(batch.states, want, "{}", imp.name());
                let mut batch = input.clone();
                batch.compress_from(imp, &from);
                assert_eq!(batch.states, want_from, "{} from one state", imp.name());
            }
            let mut states = input.states;
            super::super::lanes::compress_arrays(None, &mut states, &input.blocks);
            assert_eq!(states, want, "generic lanes");
            super::super::lanes::compress_arrays(Some(&from), &mut states, &input.blocks);
            assert_eq!(states, want_from, "generic lanes from one state");
        }
    }

    #[test]
    fn rehash_gives_sha256_of_the_digest() {
        let mut batch = Batch::new(IV);
        batch.blocks[3][0] = 0x6162_6380; // "abc", padded
        batch.blocks[3][15] = 24;
        batch.compress(Sha256dImpl::Portable);
        batch.rehash_digests(Sha256dImpl::Portable);
        let once = <sha2::Sha256 as sha2::Digest>::digest(b"abc");
        let twice = <sha2::Sha256 as sha2::Digest>::digest(once);
        let words: Vec<u8> = batch.states[3]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(words, twice.to_vec());
    }
}
