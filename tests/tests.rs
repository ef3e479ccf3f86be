//! The workspace's integration tests, compiled into one binary to keep link time low.

#![allow(
    clippy::unwrap_used,
    reason = "a test that meets the unexpected should fail loudly, helpers included"
)]

mod agent;
mod api;
mod binaries;
mod cli;
mod compute;
mod coordinator;
mod crash;
mod e2e;
mod flood;
mod fuzz;
mod ha;
mod joins;
mod journal;
mod kernels;
mod kinds;
mod metrics;
mod mine;
mod node;
mod outage;
mod processes;
mod sessions;
mod sim;
mod template;
mod trust;
mod wire;
