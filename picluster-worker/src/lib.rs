//! picluster-worker: the agent that runs on each Raspberry Pi (or any machine) of a
//! picluster cluster. It dials the coordinator (outbound only, so a Pi behind NAT
//! needs nothing forwarded), takes leases of keyspace, computes them on every core,
//! and reports progress and solutions.
//!
//! # Layout
//! - [`compute`]: the compute engine: a rayon pool running one lease at a time in
//!   64 Ki-index blocks, reporting the contiguous prefix searched.
//! - [`agent`]: the worker's protocol state machine (coordinator messages and compute
//!   events in, compute commands and messages out).
//! - [`daemon`]: the async driver: connect, reconnect with backoff, graceful leave.
//! - [`selftest`]: every kernel implementation against the reference.
//!
//! The `picluster-worker` binary (`src/main.rs`) is a thin command line over
//! [`daemon::run`].

pub mod agent;
pub mod compute;
pub mod daemon;
pub mod selftest;

pub use daemon::{run, WorkerError, WorkerOptions};
