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
//! max_jobs_per_client = 1000        # jobs one client may have queued or running
//! audit_percent = 2.0               # finished chunks searched again by another worker
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
    /// Jobs one client may have queued or running.
    pub(super) max_jobs_per_client: Option<u32>,
    /// Percent of finished chunks audited.
    pub(super) audit_percent: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use picluster_core::runtime::config::{read_config, uncomment_settings};
    use std::path::Path;

    /// The file the Debian package installs as /etc/picluster/coordinator.toml, and
    /// the same file with every commented-out key turned on.
    #[test]
    fn the_packaged_configuration_parses_with_and_without_its_comments() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/coordinator.toml");
        let config: CoordinatorFile = read_config(&path).unwrap();
        assert_eq!(
            config,
            CoordinatorFile {
                cluster: Some("/var/lib/picluster/cluster".into()),
                metrics: Some("127.0.0.1:9478".parse().unwrap()),
                keep_finished: None,
                keep_finished_for: None,
                max_jobs_per_client: None,
                audit_percent: None,
            }
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let uncommented = uncomment_settings(&text, &[]);
        let all: CoordinatorFile = toml::from_str(&uncommented).unwrap();
        assert_eq!(all.keep_finished, Some(1000));
        assert_eq!(all.keep_finished_for, Some(86400));
        assert_eq!(all.max_jobs_per_client, Some(1000));
        assert_eq!(all.audit_percent, Some(2.0));
    }
}
