//! The kernels: what a worker runs on a range of keyspace indices, and what the
//! coordinator uses to re-verify a claimed solution with one hash. Owns the
//! [`SearchKernel`] trait and its output ([`Solution`]), every built-in kernel and the
//! typed trait of user-defined ones, and is the only home of `unsafe` in the crate
//! (the SIMD and SHA-extension code in [`sha256d`]). Does not own the job model that
//! names the kernels ([`crate::job`]), threading (the worker's engine) or the wire
//! format.
//!
//! # Layout
//! - [`sha256d`]: block headers, targets, version rolling, the SHA-256d scan kernels.
//! - [`hashcash`]: proof of work over arbitrary data (leading zero bits).
//! - [`preimage`]: masks and the SHA-256/SHA-256d preimage search kernel.
//! - [`template`]: block templates as a mining pool gives them (coinbase, merkle
//!   branch, extranonce2), searched with the SHA-256d kernels.
//! - [`custom`]: the typed `Kernel` trait for user-defined kernels, and its
//!   type-erased form that workers run.

pub mod custom;
pub mod hashcash;

/// The optimisation level this crate was compiled at (`0` in a plain debug build of
/// a crate that depends on picluster).
pub const OPT_LEVEL: &str = env!("PICLUSTER_CORE_OPT_LEVEL");

/// What to add to a dependent crate's `Cargo.toml` so that the kernels are optimised
/// in its debug builds too.
pub const OPTIMISE_IN_DEBUG: &str = "[profile.dev.package.picluster-core]\nopt-level = 3";

/// Says once, as a warning (on stderr if no `tracing` subscriber is set), that the
/// kernels were compiled without optimisation, and the profile lines that fix it.
pub fn warn_if_unoptimized() {
    static SAID: std::sync::Once = std::sync::Once::new();
    if OPT_LEVEL != "0" {
        return;
    }
    SAID.call_once(|| {
        let text = format!(
            "picluster's kernels were compiled without optimisation (opt-level 0): they hash about 100 times slower. Add to your Cargo.toml:\n{OPTIMISE_IN_DEBUG}"
        );
        if tracing::dispatcher::has_been_set() {
            tracing::warn!("{text}");
        } else {
            eprintln!("warning: {text}");
        }
    });
}
pub mod preimage;
pub mod sha256d;
pub mod template;

use std::ops::Range;
use std::sync::Arc;

/// Leading zero bits of a digest, most significant byte first: what a share is
/// judged by (mining pools' "difficulty").
pub fn digest_zero_bits(digest: &[u8; 32]) -> u32 {
    let mut n = 0;
    for b in digest {
        n += b.leading_zeros();
        if *b != 0 {
            break;
        }
    }
    n
}

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

/// What a solution's index stands for, by kind of job. Under `Debug`, a preimage
/// candidate that is UTF-8 shows as text.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// A header of a block template: what a pool's `mining.submit` carries.
    Template {
        /// The extranonce2 bytes written into the coinbase.
        extranonce2: Vec<u8>,
        /// The header time.
        ntime: u32,
        /// The header version (rolled within the job's mask).
        version: u32,
        /// The header nonce.
        nonce: u32,
        /// Whether the hash also meets the block's own target (nBits).
        block: bool,
    },
}

impl std::fmt::Debug for SolutionDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SolutionDetail::Sha256d { nonce, version } => f
                .debug_struct("Sha256d")
                .field("nonce", nonce)
                .field("version", version)
                .finish(),
            SolutionDetail::Hashcash { counter } => f
                .debug_struct("Hashcash")
                .field("counter", counter)
                .finish(),
            SolutionDetail::Template {
                extranonce2,
                ntime,
                version,
                nonce,
                block,
            } => f
                .debug_struct("Template")
                .field("extranonce2", &crate::hex::encode(extranonce2))
                .field("ntime", ntime)
                .field("version", version)
                .field("nonce", nonce)
                .field("block", block)
                .finish(),
            SolutionDetail::Preimage { candidate } => {
                let mut s = f.debug_struct("Preimage");
                match std::str::from_utf8(candidate) {
                    Ok(text) => s.field("candidate", &text),
                    Err(_) => s.field("candidate", candidate),
                };
                s.finish()
            }
        }
    }
}

impl Solution {
    /// The counter of a hashcash solution.
    pub fn counter(&self) -> Option<u64> {
        match self.detail {
            SolutionDetail::Hashcash { counter } => Some(counter),
            _ => None,
        }
    }

    /// The candidate of a preimage solution (its bytes; [`Solution::candidate_text`]
    /// for text).
    pub fn candidate(&self) -> Option<&[u8]> {
        match &self.detail {
            SolutionDetail::Preimage { candidate } => Some(candidate),
            _ => None,
        }
    }

    /// The candidate of a preimage solution as text, if it is UTF-8.
    pub fn candidate_text(&self) -> Option<&str> {
        self.candidate().and_then(|c| std::str::from_utf8(c).ok())
    }

    /// The header nonce of a SHA-256d or template solution.
    pub fn nonce(&self) -> Option<u32> {
        match self.detail {
            SolutionDetail::Sha256d { nonce, .. } | SolutionDetail::Template { nonce, .. } => {
                Some(nonce)
            }
            _ => None,
        }
    }

    /// The header version of a SHA-256d or template solution.
    pub fn version(&self) -> Option<u32> {
        match self.detail {
            SolutionDetail::Sha256d { version, .. } | SolutionDetail::Template { version, .. } => {
                Some(version)
            }
            _ => None,
        }
    }

    /// The extranonce2 bytes of a template solution.
    pub fn extranonce2(&self) -> Option<&[u8]> {
        match &self.detail {
            SolutionDetail::Template { extranonce2, .. } => Some(extranonce2),
            _ => None,
        }
    }

    /// Whether a template solution is also a block (meets the template's nBits).
    pub fn is_block(&self) -> bool {
        matches!(self.detail, SolutionDetail::Template { block: true, .. })
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
    /// The digest of `index` that shares are judged by, most significant byte first
    /// (for SHA-256d the block hash in display order). `None`: no shares.
    fn digest(&self, _index: u64) -> Option<[u8; 32]> {
        None
    }
    /// The same kernel, its `scan` also reporting every index whose digest has at
    /// least `bits` leading zero bits (a share: proof of work done, as mining pools
    /// ask of their miners). Solutions are still reported; the caller tells them
    /// apart with [`SearchKernel::verify`]. `None`: this kernel has no shares.
    fn with_shares(&self, _bits: u32) -> Option<Arc<dyn SearchKernel>> {
        None
    }
}

/// The kernel of no-op jobs (scheduler benchmarks): searches nothing, finds nothing.
#[derive(Clone, Copy, Debug)]
pub struct NoopKernel {
    keyspace: u64,
}

impl NoopKernel {
    /// A kernel over `keyspace` indices.
    pub fn new(keyspace: u64) -> NoopKernel {
        NoopKernel { keyspace }
    }
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
