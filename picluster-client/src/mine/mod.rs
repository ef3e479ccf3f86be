//! The Stratum V1 bridge (`picluster mine`): the whole cluster as one miner at a
//! pool. It takes the pool's jobs, turns each into a block template job on the
//! cluster at a priority below clients' jobs, and sends every share the coordinator
//! verified back to the pool.
//!
//! # Layout
//! - `protocol`: Stratum V1 lines, parsed and built; difficulty to target.
//! - `session`: one pool connection as a synchronous state machine.
//! - `bridge`: the async driver: sockets, failover and backoff, cluster jobs.
//! - `stats`: what the bridge tells of its pool.

mod bridge;
pub mod protocol;
pub mod session;
mod stats;

pub use bridge::{
    mine, template_job, MineError, MineOptions, PoolUrl, MINING_PRIORITY, PROBE_PRIMARY,
};
pub use stats::PoolStats;
