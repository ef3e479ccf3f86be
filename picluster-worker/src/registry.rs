//! The custom kernels a worker can run, by name. A program that wants its own kernel
//! on the cluster builds a worker binary that registers it:
//!
//! ```no_run
//! # use picluster_core::kernel::custom::Kernel;
//! # struct MyKernel;
//! # impl Kernel for MyKernel {
//! #     const NAME: &'static str = "my/kernel/1";
//! #     type Params = u64;
//! #     type Output = u64;
//! #     fn keyspace(n: &u64) -> u64 { *n }
//! #     fn run(_: &u64, r: std::ops::Range<u64>) -> u64 { r.end - r.start }
//! #     fn merge(_: &u64, a: u64, b: u64) -> u64 { a + b }
//! # }
//! use picluster_worker::Registry;
//!
//! fn main() -> std::process::ExitCode {
//!     picluster_worker::cli::main(Registry::new().with::<MyKernel>())
//! }
//! ```

use picluster_core::kernel::custom::{bind, BindError, CustomJob, Kernel, MapKernel};
use std::collections::BTreeMap;
use std::sync::Arc;

type Binder = fn(&CustomJob) -> Result<Arc<dyn MapKernel>, BindError>;

/// Custom kernels by name. The built-in kernels (SHA-256d, hashcash, preimage) need
/// no registration.
#[derive(Clone, Default)]
pub struct Registry {
    kernels: BTreeMap<&'static str, Binder>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.kernels.keys()).finish()
    }
}

/// Why a custom job cannot run here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// No kernel of this name is registered (the coordinator only sends custom jobs
    /// to workers that said they have the kernel, so this means a mismatch).
    #[error("no kernel named {0:?} is registered in this worker")]
    Unknown(String),
    /// The job's parameters do not suit the kernel.
    #[error("kernel {kernel:?}: {source}")]
    Bind {
        /// The kernel.
        kernel: String,
        /// What went wrong.
        source: BindError,
    },
}

impl Registry {
    /// No custom kernels.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers kernel `K` (replacing one of the same name).
    pub fn register<K: Kernel>(&mut self) -> &mut Registry {
        self.kernels.insert(K::NAME, bind::<K>);
        self
    }

    /// This registry with kernel `K` registered.
    pub fn with<K: Kernel>(mut self) -> Registry {
        self.register::<K>();
        self
    }

    /// The registered kernels' names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.kernels.keys().map(|k| k.to_string()).collect()
    }

    /// The kernel of a custom job, bound to its parameters.
    pub fn bind(&self, job: &CustomJob) -> Result<Arc<dyn MapKernel>, RegistryError> {
        let binder = self
            .kernels
            .get(job.kernel.as_str())
            .ok_or_else(|| RegistryError::Unknown(job.kernel.clone()))?;
        binder(job).map_err(|source| RegistryError::Bind {
            kernel: job.kernel.clone(),
            source,
        })
    }
}
