//! The workspace's integration tests, compiled into one binary to keep link time low.

mod common;

mod agent;
mod cli;
mod compute;
mod coordinator;
mod e2e;
mod wire;
