//! The coordinator's configuration file: TOML, every key optional, unknown keys
//! refused by name; options and `PICLUSTER_*` variables win over it, and it over the
//! built-in defaults. `picluster coordinator --config FILE` names it; without it,
//! [`DEFAULT_COORDINATOR_CONFIG`] is read when it exists.
//!
//! ```toml
//! cluster = "/var/lib/picluster/cluster"
//! metrics = "127.0.0.1:9478"        # default: no metrics
//! keep_finished = 1000              # finished jobs kept
//! keep_finished_for = 86400         # seconds a finished job is kept
//! ```

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the coordinator looks for its configuration when `--config` is not given.
pub(super) const DEFAULT_COORDINATOR_CONFIG: &str = "/etc/picluster/coordinator.toml";

/// The coordinator's configuration file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CoordinatorFile {
    /// The cluster directory.
    pub(super) cluster: Option<PathBuf>,
    /// Metrics address.
    pub(super) metrics: Option<SocketAddr>,
    /// Finished jobs kept.
    pub(super) keep_finished: Option<u32>,
    /// Seconds a finished job is kept.
    pub(super) keep_finished_for: Option<u64>,
}
