//! User-defined kernels: "rayon across machines" for any compute over a range of
//! indices. A Rust user implements [`Kernel`] (typed parameters and results, both
//! serde types), registers it in a worker binary built on the `picluster-worker`
//! library, and submits jobs with `picluster-client`, which merges the typed results.
//!
//! Owns the typed trait, the job as the coordinator sees it ([`CustomJob`]: a kernel
//! name, encoded parameters, a keyspace), and the type-erased form the worker's engine
//! runs ([`MapKernel`], made by [`bind`]). The coordinator never runs user code: it
//! schedules the ranges, stores each committed range's encoded result, and passes them
//! to clients; a custom job goes only to workers that registered its kernel. Its
//! results are therefore trusted as the workers' certificates are, not re-verified.
//!
//! Results are merged in index order (`merge(earlier, later)`), so a merge need not be
//! commutative, but it must be associative: the worker merges the blocks of a report
//! interval, and the client merges the intervals.

use serde::{de::DeserializeOwned, Serialize};
use std::any::Any;
use std::ops::Range;
use std::sync::Arc;

/// Longest kernel name.
pub const MAX_NAME_LEN: usize = 128;
/// Largest encoded parameters (they travel with every chunk).
pub const MAX_PARAMS_LEN: usize = 256 * 1024;

/// A user-defined compute kernel over indices `0..keyspace(params)`.
///
/// The worker cuts each chunk into blocks of [`Kernel::BLOCK`] indices, runs them on
/// every core with rayon, merges the results of consecutive blocks in index order and
/// sends one result per progress report. A block should take well under a second on
/// one core (progress reports double as heartbeats, and a worker silent for 5 s loses
/// its chunks), and `run` must be a pure function of the params and the range: a range
/// may be run again after a failure, and only one run's result is kept.
///
/// ```
/// use picluster_core::kernel::custom::Kernel;
/// use std::ops::Range;
///
/// /// Sums of squares of 0..n.
/// struct SumOfSquares;
///
/// impl Kernel for SumOfSquares {
///     const NAME: &'static str = "example/sum-of-squares";
///     type Params = u64;
///     type Output = u128;
///     fn keyspace(n: &u64) -> u64 {
///         *n
///     }
///     fn run(_: &u64, range: Range<u64>) -> u128 {
///         range.map(|i| u128::from(i) * u128::from(i)).sum()
///     }
///     fn merge(_: &u64, earlier: u128, later: u128) -> u128 {
///         earlier + later
///     }
/// }
/// assert_eq!(SumOfSquares::run(&4, 0..4), 14);
/// ```
pub trait Kernel: Send + Sync + 'static {
    /// Unique name, shared by the worker that runs the kernel and the client that
    /// submits it. Put a version in it (`"myorg/pi/1"`) when the params or output
    /// types change.
    const NAME: &'static str;
    /// Indices per block: the unit of rayon work, of progress and of stop checks.
    const BLOCK: u64 = 1 << 16;
    /// The job's parameters.
    type Params: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The result of a range of indices.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// Number of indices of a job.
    fn keyspace(params: &Self::Params) -> u64;
    /// The result of `range` (never empty, within the keyspace).
    fn run(params: &Self::Params, range: Range<u64>) -> Self::Output;
    /// The result of two adjacent ranges, `earlier` just before `later`.
    fn merge(params: &Self::Params, earlier: Self::Output, later: Self::Output) -> Self::Output;
}

/// Why a custom job was rejected; the input must change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CustomError {
    /// A kernel name that is empty or too long.
    #[error("kernel name must be 1 to {MAX_NAME_LEN} bytes")]
    BadName,
    /// Parameters too large.
    #[error("parameters are {0} bytes; at most {MAX_PARAMS_LEN} are accepted")]
    ParamsTooLarge(usize),
    /// A job over no indices.
    #[error("the keyspace is empty")]
    EmptyKeyspace,
    /// A block size of zero.
    #[error("the block size is zero")]
    ZeroBlock,
}

/// A custom job as the coordinator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomJob {
    /// The kernel's [`Kernel::NAME`].
    pub kernel: String,
    /// The postcard-encoded [`Kernel::Params`].
    pub params: Arc<[u8]>,
    /// Number of indices.
    pub keyspace: u64,
    /// The kernel's [`Kernel::BLOCK`].
    pub block: u64,
}

impl CustomJob {
    /// Validates and builds a job.
    pub fn new(
        kernel: &str,
        params: &[u8],
        keyspace: u64,
        block: u64,
    ) -> Result<Self, CustomError> {
        if kernel.is_empty() || kernel.len() > MAX_NAME_LEN {
            return Err(CustomError::BadName);
        }
        if params.len() > MAX_PARAMS_LEN {
            return Err(CustomError::ParamsTooLarge(params.len()));
        }
        if keyspace == 0 {
            return Err(CustomError::EmptyKeyspace);
        }
        if block == 0 {
            return Err(CustomError::ZeroBlock);
        }
        Ok(CustomJob {
            kernel: kernel.to_string(),
            params: params.into(),
            keyspace,
            block,
        })
    }

    /// The job for `params` of kernel `K`.
    pub fn of<K: Kernel>(params: &K::Params) -> Result<Self, BindError> {
        let bytes = postcard::to_stdvec(params).map_err(BindError::Encode)?;
        Ok(CustomJob::new(
            K::NAME,
            &bytes,
            K::keyspace(params),
            K::BLOCK,
        )?)
    }
}

/// A partial result, type-erased: a [`Kernel::Output`] inside.
pub type Partial = Box<dyn Any + Send>;

/// A custom kernel bound to one job's parameters, as the worker's engine runs it.
pub trait MapKernel: Send + Sync + 'static {
    /// The kernel's name.
    fn name(&self) -> &str;
    /// Number of indices.
    fn keyspace(&self) -> u64;
    /// Indices per block.
    fn block(&self) -> u64;
    /// The result of `range`.
    fn run(&self, range: Range<u64>) -> Partial;
    /// The result of two adjacent ranges, `earlier` first.
    fn merge(&self, earlier: Partial, later: Partial) -> Partial;
    /// The result encoded for the wire.
    fn encode(&self, partial: &Partial) -> Result<Vec<u8>, BindError>;
}

/// Why a custom job's parameters or results could not be handled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// The parameters (or a result) do not decode as the kernel's types.
    #[error("parameters do not decode: {0}")]
    Decode(postcard::Error),
    /// A value could not be encoded with postcard.
    #[error("cannot encode: {0}")]
    Encode(postcard::Error),
    /// The job is invalid.
    #[error(transparent)]
    Job(#[from] CustomError),
    /// The job's keyspace or block size disagrees with the kernel's.
    #[error("the job says keyspace {job_keyspace} and block {job_block}; the kernel says keyspace {keyspace} and block {block}")]
    Mismatch {
        /// Keyspace in the job.
        job_keyspace: u64,
        /// Block in the job.
        job_block: u64,
        /// Keyspace by the kernel.
        keyspace: u64,
        /// Block by the kernel.
        block: u64,
    },
}

struct Bound<K: Kernel> {
    params: K::Params,
    keyspace: u64,
}

impl<K: Kernel> MapKernel for Bound<K> {
    fn name(&self) -> &str {
        K::NAME
    }

    fn keyspace(&self) -> u64 {
        self.keyspace
    }

    fn block(&self) -> u64 {
        K::BLOCK
    }

    fn run(&self, range: Range<u64>) -> Partial {
        Box::new(K::run(&self.params, range))
    }

    fn merge(&self, earlier: Partial, later: Partial) -> Partial {
        match (
            earlier.downcast::<K::Output>(),
            later.downcast::<K::Output>(),
        ) {
            (Ok(a), Ok(b)) => Box::new(K::merge(&self.params, *a, *b)),
            _ => unreachable!("a Bound<K> only ever makes K::Output partials"),
        }
    }

    fn encode(&self, partial: &Partial) -> Result<Vec<u8>, BindError> {
        let output = partial
            .downcast_ref::<K::Output>()
            .expect("a Bound<K> only ever makes K::Output partials");
        postcard::to_stdvec(output).map_err(BindError::Encode)
    }
}

/// Binds kernel `K` to a job's encoded parameters, checking that they decode and that
/// the job's keyspace and block size are the kernel's.
pub fn bind<K: Kernel>(job: &CustomJob) -> Result<Arc<dyn MapKernel>, BindError> {
    let params: K::Params = postcard::from_bytes(&job.params).map_err(BindError::Decode)?;
    let keyspace = K::keyspace(&params);
    if keyspace != job.keyspace || K::BLOCK != job.block {
        return Err(BindError::Mismatch {
            job_keyspace: job.keyspace,
            job_block: job.block,
            keyspace,
            block: K::BLOCK,
        });
    }
    Ok(Arc::new(Bound::<K> { params, keyspace }))
}

/// Decodes a job's encoded parameters.
pub fn decode_params<K: Kernel>(bytes: &[u8]) -> Result<K::Params, BindError> {
    postcard::from_bytes(bytes).map_err(BindError::Decode)
}

/// Decodes one range's encoded result.
pub fn decode_output<K: Kernel>(bytes: &[u8]) -> Result<K::Output, BindError> {
    postcard::from_bytes(bytes).map_err(BindError::Decode)
}
