//! Shared support for the workspace's integration tests, benchmarks and examples,
//! which live in `tests/`, `benches/` and `examples/` beside this package.
//!
//! # Layout
//! - [`fixtures`]: real Bitcoin headers and an independent reference scan.
//! - [`sim`]: the deterministic simulation harness: the real coordinator and worker
//!   agents under simulated time, latency, loss and crashes.
//! - [`sim_election`]: the election of coordinators sharing etcd (the real
//!   `Election` machines, a model of etcd) under crashes and partitions.

#![allow(
    clippy::unwrap_used,
    reason = "test support: a fixture or simulation that meets the unexpected fails loudly"
)]

pub mod fixtures;
pub mod sim;
pub mod sim_election;
