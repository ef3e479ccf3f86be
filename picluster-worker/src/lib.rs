//! picluster-worker: the agent that runs on each Raspberry Pi (or any machine) of a
//! picluster cluster. It dials the coordinator (outbound only, so a Pi behind NAT
//! needs nothing forwarded), takes leases of keyspace, computes them on every core,
//! and reports progress and solutions.
//!
//! # Layout
//! - [`compute`]: the compute engine: a rayon pool running one lease at a time in
//!   64 Ki-index blocks, reporting the contiguous prefix searched.
//! - [`agent`]: the worker's protocol state machine (coordinator messages and compute
//!   events in, compute commands and messages out), with a cache of jobs' kernels.
//! - [`daemon`]: the async driver: connect, reconnect with backoff, graceful leave.
//!   Its queues are bounded and push back: compute threads wait for the daemon, the
//!   reader for the agent.
//! - [`enroll`]: joining with a token into a state directory, and certificate
//!   renewal.
//! - [`registry`]: the custom kernels (user-defined, see
//!   [`picluster_core::kernel::custom::Kernel`]) this worker can run.
//! - [`selftest`]: every kernel implementation against the reference.
//! - [`thermal`]: CPU temperature, the firmware's throttling flags, and the governor
//!   that runs fewer threads while the board is hot.
//! - `metrics`: the worker's own metrics for Prometheus (`--metrics`).
//! - [`config`]: the TOML configuration file (`--config`).
//! - [`cli`]: the `picluster-worker` command line, reusable by a worker binary that
//!   registers its own kernels.
//!
//! The `picluster-worker` binary (`src/main.rs`) is [`cli::main`] with no custom
//! kernels.

pub mod agent;
pub mod cli;
pub mod compute;
pub mod config;
pub mod daemon;
pub mod enroll;
mod metrics;
pub mod registry;
pub mod selftest;
pub mod thermal;

pub use daemon::{run, WorkerError, WorkerOptions};
pub use registry::Registry;
