//! Many independent SHA-256 compressions at once, with each implementation's
//! instructions: what the preimage and hashcash kernels are built on. A kernel fills a
//! [`Batch`] of [`BATCH`] blocks (candidates, or counters appended to data) with their
//! starting states, and [`Batch::compress`] runs them the way the chosen
//! [`Sha256dImpl`] runs its nonces: interleaved streams with SHA-NI (two) or the ARMv8
//! SHA2 instructions (four), one block per 32-bit lane with AVX-512, AVX2 and NEON.
//! The batch is one call into a function compiled for the instructions, so nothing
//! dispatches per hash. The lane implementations also stop after round 60 when only
//! the digest's word 7 is asked for, and fold constant message words.

pub(crate) use super::blocks::{Blocks, States, BATCH};
use super::lanes::Op;
use super::portable::{self, IV};
use super::Sha256dImpl;

/// [`BATCH`] blocks and the states they are compressed into.
#[derive(Clone, Debug)]
pub(crate) struct Batch {
    /// The states: set them (or use [`Batch::compress_from`]), read the results.
    pub(crate) states: States,
    /// The message blocks.
    pub(crate) blocks: Blocks,
    /// Words `zero_from..15` of every block are zero (15, the default: no promise).
    /// Lane implementations then leave them out of the rounds and the schedule.
    pub(crate) zero_from: usize,
}

impl Batch {
    /// A batch of zeros.
    pub(crate) fn new() -> Batch {
        Batch {
            states: [[0; BATCH]; 8],
            blocks: [[0; BATCH]; 16],
            zero_from: 15,
        }
    }

    /// State `j` as eight words.
    pub(crate) fn state(&self, j: usize) -> [u32; 8] {
        std::array::from_fn(|i| self.states[i][j])
    }

    /// Compresses every block into its state with `imp`.
    pub(crate) fn compress(&mut self, imp: Sha256dImpl) {
        self.run(imp, None);
    }

    /// Compresses every block from `state` with `imp`, into the states: the common
    /// starting state is laid out once for the whole batch.
    pub(crate) fn compress_from(&mut self, imp: Sha256dImpl, state: &[u32; 8]) {
        self.run(imp, Some(state));
    }

    fn run(&mut self, imp: Sha256dImpl, from: Option<&[u32; 8]>) {
        let (states, blocks) = (&mut self.states, &self.blocks);
        if let Some(run) = lanes(imp) {
            return run(Op::Compress {
                from,
                states,
                blocks,
                zero_from: self.zero_from,
            });
        }
        match imp {
            #[cfg(target_arch = "x86_64")]
            Sha256dImpl::ShaNi => super::shani::compress(from, states, blocks),
            #[cfg(target_arch = "aarch64")]
            Sha256dImpl::ArmSha2 => super::armsha2::compress(from, states, blocks),
            #[cfg(target_arch = "arm")]
            Sha256dImpl::Neon32 => super::lanes::neon32::compress(from, states, blocks),
            Sha256dImpl::Sha2 => {
                for j in 0..BATCH {
                    let mut bytes = [0u8; 64];
                    for (t, b) in bytes.chunks_exact_mut(4).enumerate() {
                        b.copy_from_slice(&blocks[t][j].to_be_bytes());
                    }
                    let mut state = match from {
                        Some(from) => *from,
                        None => std::array::from_fn(|i| states[i][j]),
                    };
                    sha2::block_api::compress256(&mut state, &[bytes]);
                    for (i, word) in state.into_iter().enumerate() {
                        states[i][j] = word;
                    }
                }
            }
            _ => {
                for j in 0..BATCH {
                    let block = std::array::from_fn(|t| blocks[t][j]);
                    let state = match from {
                        Some(from) => *from,
                        None => std::array::from_fn(|i| states[i][j]),
                    };
                    let state = portable::compress_words(state, &block);
                    for (i, word) in state.into_iter().enumerate() {
                        states[i][j] = word;
                    }
                }
            }
        }
    }

    /// Word 7 of each block's compression from `state`, into `top`: all a kernel needs
    /// to reject almost every candidate. The lane implementations stop after round
    /// 60 (word 7 is then known); the others compress in full, into the states.
    pub(crate) fn compress_top(
        &mut self,
        imp: Sha256dImpl,
        state: &[u32; 8],
        top: &mut [u32; BATCH],
    ) {
        match lanes(imp) {
            Some(run) => run(Op::CompressTop {
                from: state,
                blocks: &self.blocks,
                zero_from: self.zero_from,
                top,
            }),
            None => {
                self.compress_from(imp, state);
                *top = self.states[7];
            }
        }
    }

    /// The second hash of SHA-256d: SHA-256 of each of these states' digests (one
    /// block, 32 bytes and padding), into `second`'s states (its blocks are
    /// overwritten; these are left as they are).
    pub(crate) fn rehash_into(&self, imp: Sha256dImpl, second: &mut Batch) {
        match lanes(imp) {
            Some(run) => run(Op::Rehash {
                digests: &self.states,
                out: Some(&mut second.states),
                top: &mut [0; BATCH],
            }),
            None => {
                second.blocks[..8].copy_from_slice(&self.states);
                second.blocks[8] = [0x8000_0000; BATCH];
                second.blocks[9..15].fill([0; BATCH]);
                second.blocks[15] = [256; BATCH];
                second.compress_from(imp, &IV);
            }
        }
    }

    /// Word 7 of [`Batch::rehash_into`]'s results, into `top`; the lane
    /// implementations stop after round 60, the others go through `second`.
    pub(crate) fn rehash_top(&self, imp: Sha256dImpl, second: &mut Batch, top: &mut [u32; BATCH]) {
        match lanes(imp) {
            Some(run) => run(Op::Rehash {
                digests: &self.states,
                out: None,
                top,
            }),
            None => {
                self.rehash_into(imp, second);
                *top = second.states[7];
            }
        }
    }
}

/// The batch entry point of `imp` if it is a lane implementation (one block per
/// 32-bit lane, and the only kind that can stop after round 60).
fn lanes(imp: Sha256dImpl) -> Option<fn(Op<'_>)> {
    match imp {
        #[cfg(target_arch = "x86_64")]
        Sha256dImpl::Avx512 => Some(super::avx512::run),
        #[cfg(target_arch = "x86_64")]
        Sha256dImpl::Avx2 => Some(super::lanes::avx2::run),
        #[cfg(target_arch = "aarch64")]
        Sha256dImpl::Neon => Some(super::lanes::neon::run),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::lanes::run_arrays;
    use super::*;

    fn random_batch(seed: u64) -> Batch {
        let mut x = seed;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u32
        };
        let mut batch = Batch::new();
        for row in batch.states.iter_mut() {
            *row = std::array::from_fn(|_| next());
        }
        for row in batch.blocks.iter_mut() {
            *row = std::array::from_fn(|_| next());
        }
        batch
    }

    /// The `sha2` crate's compression of every block from `state(j)`.
    fn reference(batch: &Batch, state: impl Fn(usize) -> [u32; 8]) -> Vec<[u32; 8]> {
        (0..BATCH)
            .map(|j| {
                let mut bytes = [0u8; 64];
                for (t, b) in bytes.chunks_exact_mut(4).enumerate() {
                    b.copy_from_slice(&batch.blocks[t][j].to_be_bytes());
                }
                let mut s = state(j);
                sha2::block_api::compress256(&mut s, &[bytes]);
                s
            })
            .collect()
    }

    fn states(batch: &Batch) -> Vec<[u32; 8]> {
        (0..BATCH).map(|j| batch.state(j)).collect()
    }

    /// Every available implementation, and the generic lanes on plain arrays, give
    /// the `sha2` crate's compression of every block from every state, and from one
    /// state for all.
    #[test]
    fn every_implementation_compresses_like_the_sha2_crate() {
        for seed in 1..20 {
            let input = random_batch(seed);
            let want = reference(&input, |j| input.state(j));
            let from = input.state(5);
            let want_from = reference(&input, |_| from);
            for imp in Sha256dImpl::available() {
                let mut batch = input.clone();
                batch.compress(imp);
                assert_eq!(states(&batch), want, "{}", imp.name());
                let mut batch = input.clone();
                batch.compress_from(imp, &from);
                assert_eq!(states(&batch), want_from, "{} from one state", imp.name());
            }
            let mut batch = input.clone();
            run_arrays(Op::Compress {
                from: None,
                states: &mut batch.states,
                blocks: &batch.blocks,
                zero_from: 15,
            });
            assert_eq!(states(&batch), want, "generic lanes");
            let mut batch = input.clone();
            run_arrays(Op::Compress {
                from: Some(&from),
                states: &mut batch.states,
                blocks: &batch.blocks,
                zero_from: 15,
            });
            assert_eq!(states(&batch), want_from, "generic lanes from one state");
            // Word 7 alone, stopping after round 60.
            let want_top: Vec<u32> = want_from.iter().map(|s| s[7]).collect();
            for imp in Sha256dImpl::available() {
                let mut batch = input.clone();
                let mut top = [0; BATCH];
                batch.compress_top(imp, &from, &mut top);
                assert_eq!(top.to_vec(), want_top, "{} top word", imp.name());
            }
            let mut top = [0; BATCH];
            run_arrays(Op::CompressTop {
                from: &from,
                blocks: &input.blocks,
                zero_from: 15,
                top: &mut top,
            });
            assert_eq!(top.to_vec(), want_top, "generic lanes, top word");
            // Blocks whose words 3-14 (then 7-14) are zero, as the batch promises.
            for zero_from in [3, 7] {
                let mut input = input.clone();
                input.blocks[zero_from..15].fill([0; BATCH]);
                let want = reference(&input, |j| input.state(j));
                let want_from = reference(&input, |_| from);
                let want_top: Vec<u32> = want_from.iter().map(|s| s[7]).collect();
                input.zero_from = zero_from;
                for imp in Sha256dImpl::available() {
                    let mut batch = input.clone();
                    batch.compress(imp);
                    assert_eq!(
                        states(&batch),
                        want,
                        "{} zeros from {zero_from}",
                        imp.name()
                    );
                    let mut top = [0; BATCH];
                    batch.compress_top(imp, &from, &mut top);
                    assert_eq!(top.to_vec(), want_top, "{} top word, zeros", imp.name());
                }
                let mut batch = input.clone();
                run_arrays(Op::Compress {
                    from: None,
                    states: &mut batch.states,
                    blocks: &batch.blocks,
                    zero_from,
                });
                assert_eq!(
                    states(&batch),
                    want,
                    "generic lanes, zeros from {zero_from}"
                );
            }
        }
    }

    #[test]
    fn rehash_gives_sha256_of_the_digest() {
        for imp in Sha256dImpl::available() {
            let mut batch = Batch::new();
            batch.blocks[0][3] = 0x6162_6380; // "abc", padded, in lane 3
            batch.blocks[15][3] = 24;
            batch.compress_from(imp, &IV);
            let mut second = Batch::new();
            batch.rehash_into(imp, &mut second);
            let once = <sha2::Sha256 as sha2::Digest>::digest(b"abc");
            let twice = <sha2::Sha256 as sha2::Digest>::digest(once);
            let mut top = [0; BATCH];
            batch.rehash_top(imp, &mut Batch::new(), &mut top);
            assert_eq!(top, second.states[7], "{} top word", imp.name());
            if imp == Sha256dImpl::Portable {
                let mut generic = Batch::new();
                let mut generic_top = [0; BATCH];
                run_arrays(Op::Rehash {
                    digests: &batch.states,
                    out: Some(&mut generic.states),
                    top: &mut generic_top,
                });
                assert_eq!(generic.states, second.states, "generic lanes");
                run_arrays(Op::Rehash {
                    digests: &batch.states,
                    out: None,
                    top: &mut generic_top,
                });
                assert_eq!(generic_top, second.states[7], "generic lanes, top word");
            }
            let words: Vec<u8> = second
                .state(3)
                .iter()
                .flat_map(|w| w.to_be_bytes())
                .collect();
            assert_eq!(words, twice.to_vec(), "{}", imp.name());
        }
    }
}
