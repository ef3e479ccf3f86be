//! picluster-client: use a picluster cluster from Rust, and the `picluster` command.
//!
//! Connect with a cluster directory or a client bundle, submit jobs, stream their
//! progress, wait for reports, cancel, list; async first ([`Client`]) with a blocking
//! wrapper ([`blocking::Client`]). `LocalCluster` runs a coordinator and N workers
//! inside one process over real QUIC on loopback, for tests, examples and
//! single-machine use.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use picluster_client::{Client, JobKind, JobSpec, SearchMode, Sha256dJob, BlockHeader};
//! let client = Client::connect_cluster("mycluster".as_ref()).await?;
//! let header = BlockHeader::from_hex("01000000...")?;
//! let job = Sha256dJob::new(header, None, 0..1 << 32, 0)?;
//! let report = client.run(&JobSpec { kind: JobKind::Sha256d(job), mode: SearchMode::First }).await?;
//! println!("{:?}", report.solutions);
//! # Ok(()) }
//! ```
//!
//! By default the crate is the client library alone: what a program that submits
//! jobs needs. Feature `local` adds `LocalCluster` (the coordinator service and the
//! worker engine inside the program); feature `cli` the `picluster` command.
//!
//! # Layout
//! - [`client`]: the async client (one typed call for every request) and job watches.
//! - [`blocking`]: the blocking wrapper.
//! - `local` (feature `local`): the in-process cluster (the one module that uses
//!   `picluster-worker`).
//! - `mine` (feature `mine`): the Stratum V1 bridge that mines on a pool with the
//!   cluster (`picluster mine`).
//! - `cli` (feature `cli`): the `picluster` command line (the binary is
//!   `src/main.rs`): `args` (clap types), `spec` (input validation), `cmd` (each
//!   command), `output` (each command's output as a typed view, as text or JSON).

pub mod blocking;
#[cfg(feature = "cli")]
pub mod cli;
pub mod client;
#[cfg(feature = "local")]
pub mod local;
#[cfg(feature = "mine")]
pub mod mine;

pub use client::{
    join_as_client, merge_outputs, Client, ClientError, JobEvent, JobWatch, KernelError,
    KernelReport,
};
#[cfg(feature = "local")]
pub use local::{LocalCluster, LocalClusterError, LocalClusterOptions};
pub use picluster_core::hex;
pub use picluster_core::ids::JobId;
pub use picluster_core::job::{JobKind, JobSpec, SearchMode};
pub use picluster_core::kernel::custom::Kernel;
pub use picluster_core::kernel::hashcash::HashcashJob;
pub use picluster_core::kernel::preimage::{Mask, PreimageHash, PreimageJob};
pub use picluster_core::kernel::sha256d::{sha256, sha256d, BlockHeader, Sha256dJob, Target};
pub use picluster_core::kernel::{Solution, SolutionDetail};
pub use picluster_core::trust::Bundle;
pub use picluster_core::wire::{ClusterStatus, JobProgress, JobReport, JobState, JobSummary};
